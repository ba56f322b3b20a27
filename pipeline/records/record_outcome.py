"""The parts of a change record that say what happened after the apply began (pipeline.records.
record): each zone's outcome, the live verification, an adoption of drift, the manual checklist,
a recovery, the post-change report verification. What was planned and approved is in
record_parts.py."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pipeline.records.record_base import (
    VerificationStatus,
    ZoneStatus,
    _Fields,
    _normalise_times,
    _read,
    _time_or_none,
    format_utc,
    show_utc,
)


@dataclass(frozen=True)
class ZoneOutcome:
    """What apply did to one zone; one failing zone does not stop the others."""

    zone: str
    status: ZoneStatus
    applied: int  # how many of the record's items were applied in this zone
    error: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "zone": self.zone,
            "status": self.status.value,
            "applied": self.applied,
            "error": self.error,
        }

    @classmethod
    def from_fields(cls, f: _Fields) -> ZoneOutcome:
        return cls(
            zone=f.text("zone"),
            status=f.choice("status", ZoneStatus),
            applied=f.number("applied"),
            error=f.text("error"),
        )


@dataclass(frozen=True)
class Verification:
    """What the authoritative servers (or the provider) served after the change."""

    zone: str
    name: str
    type: str
    status: VerificationStatus
    checked_at: datetime
    detail: str = ""

    def __post_init__(self) -> None:
        _normalise_times(self, "checked_at")

    @property
    def fqdn(self) -> str:
        return f"{self.name}.{self.zone}" if self.name else self.zone

    def to_json(self) -> dict[str, Any]:
        return {
            "zone": self.zone,
            "name": self.name,
            "type": self.type,
            "status": self.status.value,
            "checked_at": format_utc(self.checked_at),
            "detail": self.detail,
        }

    @classmethod
    def from_fields(cls, f: _Fields) -> Verification:
        return cls(
            zone=f.text("zone"),
            name=f.text("name"),
            type=f.text("type"),
            status=f.choice("status", VerificationStatus),
            checked_at=f.time("checked_at"),
            detail=f.text("detail"),
        )


@dataclass(frozen=True)
class Adoption:
    """A change made outside the pipeline (found by `dmarcops drift`) and adopted as the new
    recorded state by an analyst: nobody accountable executed it, so the record says who
    adopted it and when it was seen live."""

    observed_at: datetime
    adopted_by: str
    note: str  # "changed outside the pipeline, adopted by jchen: ..."

    def __post_init__(self) -> None:
        _normalise_times(self, "observed_at")

    def to_json(self) -> dict[str, Any]:
        return {
            "observed_at": format_utc(self.observed_at),
            "adopted_by": self.adopted_by,
            "note": self.note,
        }

    @classmethod
    def from_fields(cls, f: _Fields) -> Adoption:
        return _read(
            lambda: cls(
                observed_at=f.time("observed_at"),
                adopted_by=f.text("adopted_by"),
                note=f.text("note"),
            )
        )


CHECK_STATUSES = ("pending", "verified", "failed")


@dataclass(frozen=True)
class Check:
    """One line of a manual change's verification checklist, and what the executor found."""

    item: str
    status: str = "pending"  # CHECK_STATUSES
    at: datetime | None = None
    by: str = ""
    note: str = ""

    def __post_init__(self) -> None:
        if self.status not in CHECK_STATUSES:
            raise ValueError(
                f"check status {self.status!r} is not one of {', '.join(CHECK_STATUSES)}"
            )
        _normalise_times(self, "at")

    def to_json(self) -> dict[str, Any]:
        return {
            "item": self.item,
            "status": self.status,
            "at": _time_or_none(self.at),
            "by": self.by,
            "note": self.note,
        }

    @classmethod
    def from_fields(cls, f: _Fields) -> Check:
        return _read(
            lambda: cls(
                item=f.text("item"),
                status=f.text("status"),
                at=f.optional_time("at"),
                by=f.text("by"),
                note=f.text("note"),
            )
        )


@dataclass(frozen=True)
class ManualChange:
    """A change that is not a DNS record edit (request types `platform` and `dkim-switch`): the
    steps an analyst carries out by hand at the platform, and the checklist that verifies them."""

    kind: str  # "platform" | "dkim-switch"
    platform: str  # the mail platform or signing provider (Microsoft 365, Google Workspace, ...)
    setting: str  # the tenant-level setting, or "DKIM signing selector"
    steps: tuple[str, ...]
    checklist: tuple[Check, ...]

    @property
    def verified(self) -> bool:
        return bool(self.checklist) and all(c.status == "verified" for c in self.checklist)

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "platform": self.platform,
            "setting": self.setting,
            "steps": list(self.steps),
            "checklist": [c.to_json() for c in self.checklist],
        }

    @classmethod
    def from_fields(cls, f: _Fields) -> ManualChange:
        return _read(
            lambda: cls(
                kind=f.text("kind"),
                platform=f.text("platform"),
                setting=f.text("setting"),
                steps=f.texts("steps"),
                checklist=tuple(Check.from_fields(c) for c in f.objects("checklist")),
            )
        )


@dataclass(frozen=True)
class Recovery:
    """An apply that was interrupted and finished later from its journal (changes/journal/): the
    zones it had sent were checked against live DNS and recorded as observed."""

    at: datetime
    by: str
    journal: str  # the apply id: changes/journal/<id>.jsonl
    detail: str  # why it was interrupted and what the check found

    def __post_init__(self) -> None:
        _normalise_times(self, "at")

    def to_json(self) -> dict[str, Any]:
        return {
            "at": format_utc(self.at),
            "by": self.by,
            "journal": self.journal,
            "detail": self.detail,
        }

    @classmethod
    def from_fields(cls, f: _Fields) -> Recovery:
        return cls(
            at=f.time("at"), by=f.text("by"), journal=f.text("journal"), detail=f.text("detail")
        )


REPORT_VERDICTS = ("accepted", "no-evidence", "anomaly")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class ReportCheck:
    """What the aggregate reports said when the record was closed (issue 14 part 5): the
    comparison of the reports received since the change with the baseline before it, computed
    from the report store by pipeline.apply.verify_reports and written to
    changes/evidence/verification-<sha256>.json; the record seals its hash and the totals."""

    sha256: str
    verdict: str  # REPORT_VERDICTS
    as_of: datetime  # the end of the post-change period
    baseline_messages: int
    baseline_dmarc_pass: int
    post_messages: int
    post_dmarc_pass: int
    post_days: int  # UTC days on which a post-change report began
    summary: str  # why, in one line (from the comparison, never typed)

    def __post_init__(self) -> None:
        _normalise_times(self, "as_of")
        if self.verdict not in REPORT_VERDICTS:
            raise ValueError(f"report verdict {self.verdict!r} is not one of {REPORT_VERDICTS}")
        if not _SHA256.match(self.sha256):
            raise ValueError(f"report verification {self.sha256[:80]!r} is not a SHA-256")

    @property
    def file(self) -> str:
        return f"changes/evidence/verification-{self.sha256}.json"

    def to_json(self) -> dict[str, Any]:
        return {
            "sha256": self.sha256,
            "verdict": self.verdict,
            "as_of": format_utc(self.as_of),
            "baseline_messages": self.baseline_messages,
            "baseline_dmarc_pass": self.baseline_dmarc_pass,
            "post_messages": self.post_messages,
            "post_dmarc_pass": self.post_dmarc_pass,
            "post_days": self.post_days,
            "summary": self.summary,
        }

    @classmethod
    def from_fields(cls, f: _Fields) -> ReportCheck:
        return _read(
            lambda: cls(
                sha256=f.text("sha256"),
                verdict=f.text("verdict"),
                as_of=f.time("as_of"),
                baseline_messages=f.number("baseline_messages"),
                baseline_dmarc_pass=f.number("baseline_dmarc_pass"),
                post_messages=f.number("post_messages"),
                post_dmarc_pass=f.number("post_dmarc_pass"),
                post_days=f.number("post_days"),
                summary=f.text("summary"),
            )
        )

    def show(self) -> str:
        def rate(passed: int, messages: int) -> str:
            return f"{100 * passed / messages:.2f}%" if messages else "-"

        return (
            f"{self.verdict} as of {show_utc(self.as_of)}: after the change "
            f"{self.post_messages} messages over {self.post_days} day(s), "
            f"{rate(self.post_dmarc_pass, self.post_messages)} DMARC pass; before "
            f"{self.baseline_messages} messages, "
            f"{rate(self.baseline_dmarc_pass, self.baseline_messages)}"
        )
