"""The parts of a change record (pipeline.records.record): windows, items, approvals, the
emergency and its review, zone outcomes, verification, adoption, the manual checklist, recovery,
the report verification."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pipeline.model import RiskLevel
from pipeline.records.record_base import (
    ACTIONS,
    ApprovalRole,
    ApprovalSource,
    VerificationStatus,
    ZoneStatus,
    _Fields,
    _normalise_times,
    _read,
    _time_or_none,
    format_utc,
    show_utc,
)
from pipeline.records.transition import PlannedTransition

# --- the parts of a record --------------------------------------------------------------------


@dataclass(frozen=True)
class TimeWindow:
    """A change window or a rollback window: [start, end], UTC."""

    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        _normalise_times(self, "start", "end")
        if self.end < self.start:
            raise ValueError(f"window ends ({self.end}) before it starts ({self.start})")

    def contains(self, when: datetime) -> bool:
        return self.start <= when <= self.end

    def show(self) -> str:
        # The seed writes a same-day window as "2026-06-09 09:00-12:00 UTC".
        if self.start.date() == self.end.date():
            return f"{self.start:%Y-%m-%d %H:%M}-{self.end:%H:%M} UTC"
        return f"{self.start:%Y-%m-%d %H:%M} — {self.end:%Y-%m-%d %H:%M} UTC"

    def to_json(self) -> dict[str, str]:
        return {"start": format_utc(self.start), "end": format_utc(self.end)}

    @classmethod
    def from_fields(cls, f: _Fields) -> TimeWindow:
        start, end = f.time("start"), f.time("end")
        return _read(lambda: cls(start, end))


@dataclass(frozen=True)
class RecordItem:
    """One RRset transition as it was planned and approved (the "Record affected" of the seed)."""

    zone: str
    name: str  # relative to the zone, "" for the apex
    type: str
    action: str  # create | update | delete
    before: tuple[str, ...]
    after: tuple[str, ...]
    risk: RiskLevel
    facts: tuple[str, ...]  # e.g. "dmarc.pct 50->100"
    reasons: tuple[str, ...]
    # The TTLs of the transition, so a rollback restores the before-state exactly.
    ttl_before: int | None = None
    ttl_after: int | None = None

    def __post_init__(self) -> None:
        if self.action not in ACTIONS:
            raise ValueError(f"action {self.action!r} is not one of {', '.join(ACTIONS)}")

    @property
    def fqdn(self) -> str:
        return f"{self.name}.{self.zone}" if self.name else self.zone

    @classmethod
    def from_plan_item(cls, item: PlannedTransition) -> RecordItem:
        """The one way a record item is made from what was planned (apply, a manual change,
        drift adoption), so the three cannot drift apart in what they record."""
        return cls(
            zone=item.zone,
            name=item.name,
            type=item.type,
            action=item.action,
            before=item.before,
            after=item.after,
            risk=item.risk,
            facts=tuple(str(f) for f in item.facts),
            reasons=item.reasons,
            ttl_before=item.ttl_before,
            ttl_after=item.ttl_after,
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "zone": self.zone,
            "name": self.name,
            "type": self.type,
            "action": self.action,
            "before": list(self.before),
            "after": list(self.after),
            "risk": self.risk.label,
            "facts": list(self.facts),
            "reasons": list(self.reasons),
            "ttl_before": self.ttl_before,
            "ttl_after": self.ttl_after,
        }

    @classmethod
    def from_fields(cls, f: _Fields) -> RecordItem:
        return _read(
            lambda: cls(
                zone=f.text("zone"),
                name=f.text("name"),
                type=f.text("type"),
                action=f.text("action"),
                before=f.texts("before"),
                after=f.texts("after"),
                risk=f.risk("risk"),
                facts=f.texts("facts"),
                reasons=f.texts("reasons"),
                ttl_before=f.optional_number("ttl_before"),
                ttl_after=f.optional_number("ttl_after"),
            )
        )


@dataclass(frozen=True)
class ApprovalEvidence:
    """Who approved, when, and where the evidence is (seed: "Linkage to client communication")."""

    role: ApprovalRole
    who: str
    at: datetime | None  # None for the author's own proposal
    reference: str  # message-id, ticket, review id or signature id; "" for self
    source: ApprovalSource
    # The signature the link rests on (the author's over the request, an approver's over plan
    # and request), kept in the record so `audit verify` re-checks it against the roster of
    # record; written only when set, so records without one keep their hashes.
    signature: str = ""
    simulated: bool = False  # an approval given in a sandbox rehearsal (signed as such)

    def __post_init__(self) -> None:
        _normalise_times(self, "at")

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "role": self.role.value,
            "who": self.who,
            "at": _time_or_none(self.at),
            "reference": self.reference,
            "source": self.source.value,
        }
        if self.signature:
            out["signature"] = self.signature
        if self.simulated:
            out["simulated"] = True
        return out

    @classmethod
    def from_fields(cls, f: _Fields) -> ApprovalEvidence:
        return cls(
            role=f.choice("role", ApprovalRole),
            who=f.text("who"),
            at=f.optional_time("at"),
            reference=f.text("reference"),
            source=f.choice("source", ApprovalSource),
            signature=f.text("signature") if "signature" in f.data else "",
            simulated=f.flag("simulated") if "simulated" in f.data else False,
        )


REVIEW_VERDICTS = ("justified", "not-justified")


@dataclass(frozen=True)
class Emergency:
    """An emergency change: executed without waiting, reviewed afterwards (seed: within 24 hours)."""

    reason: str
    review_due: datetime
    reviewed_by: str = ""
    reviewed_at: datetime | None = None
    review_notes: str = ""
    # Issue 9 item 5: the review says whether the emergency was one; "not-justified" names the
    # policy follow-up; a review recorded after `review_due` is marked late.
    verdict: str = ""  # "" (not reviewed, or reviewed before verdicts existed) | REVIEW_VERDICTS
    follow_up: str = ""
    late: bool = False

    def __post_init__(self) -> None:
        _normalise_times(self, "review_due", "reviewed_at")

    @property
    def reviewed(self) -> bool:
        return self.reviewed_at is not None

    def overdue(self, now: datetime) -> bool:
        return not self.reviewed and self.review_due < now

    def to_json(self) -> dict[str, Any]:
        return {
            "reason": self.reason,
            "review_due": format_utc(self.review_due),
            "reviewed_by": self.reviewed_by,
            "reviewed_at": _time_or_none(self.reviewed_at),
            "review_notes": self.review_notes,
            # Only when set: records reviewed before these fields existed keep their hashes.
            **({"verdict": self.verdict} if self.verdict else {}),
            **({"follow_up": self.follow_up} if self.follow_up else {}),
            **({"late": True} if self.late else {}),
        }

    @classmethod
    def from_fields(cls, f: _Fields) -> Emergency:
        return cls(
            reason=f.text("reason"),
            review_due=f.time("review_due"),
            reviewed_by=f.text("reviewed_by"),
            reviewed_at=f.optional_time("reviewed_at"),
            review_notes=f.text("review_notes"),
            verdict=f.text("verdict") if "verdict" in f.data else "",
            follow_up=f.text("follow_up") if "follow_up" in f.data else "",
            late=f.data.get("late") is True,
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
