"""The change record: the seed's CHANGE RECORD template as a typed, immutable value.

A record is what the audit trail keeps of one change-controlled change: the before/after state, the
rationale, the approval chain, the timing and the outcome (seed: "The change-record template").
It is hashed over canonical JSON, so the ledger can prove that what is on disk is what was written,
and rendered as the seed's template in markdown (every user string escaped) and plain text.

All times are UTC with whole seconds (seed: "Timestamp accuracy. UTC, not local time"): anything
finer would not survive the "YYYY-MM-DDTHH:MM:SSZ" serialisation, and a record must hash the same
after a round trip through its file.
"""

from __future__ import annotations

import enum
import hashlib
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

from pipeline.errors import InputError
from pipeline.model import RiskLevel
from pipeline.plan.items import PlanItem
from pipeline.text.markdown import code, escape
from pipeline.text.safe import clean

FORMAT_VERSION = 1
# "2026-1247" in the seed: the UTC year, then a sequence number of at least four digits.
RECORD_ID = re.compile(r"^(\d{4})-(\d{4,})$")
_WIRE_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$", re.ASCII)
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class ChangeType(enum.StrEnum):
    """The seed's ticket templates; "Other" for anything they do not cover."""

    NEW_SENDER = "New sender"
    POLICY_PROGRESSION = "Policy progression"
    DKIM_ROTATION = "DKIM rotation"
    EMERGENCY_ROLLBACK = "Emergency rollback"
    OTHER = "Other"
    # Issue 13: changes that are not (or were not) the pipeline's own record edits.
    NS_DELEGATION = "NS delegation"
    PLATFORM = "Platform change"  # a tenant-level setting at a mail platform (manual)
    DKIM_SWITCH = "DKIM selector switch"  # the provider signs with another selector (manual)
    ADOPTED = "Unrecorded change (adopted)"  # changed outside the pipeline, adopted (drift)
    # Found by `dmarcops drift --open-records` (the scheduled run): open until a person adopts it
    # (superseded by the adoption's record) or reverts it (closed as rolled-back).
    UNRECORDED = "Unrecorded change (open)"


class ApprovalRole(enum.StrEnum):
    ANALYST = "analyst"  # the author, proposing (self-approval for low risk)
    PEER = "peer"
    CLIENT = "client"


class ApprovalSource(enum.StrEnum):
    """Where the evidence of an approval lives, so an auditor knows where to look it up."""

    SIGNED = "signed"
    GITHUB = "github"
    CLIENT_REFERENCE = "client-reference"
    SELF = "self"


class ZoneStatus(enum.StrEnum):
    APPLIED = "applied"
    FAILED = "failed"
    NOT_ATTEMPTED = "not-attempted"


class VerificationStatus(enum.StrEnum):
    VERIFIED = "verified"
    MISMATCH = "mismatch"
    UNVERIFIABLE = "unverifiable"


class Outcome(enum.StrEnum):
    ACCEPTED = "accepted"
    ROLLED_BACK = "rolled-back"
    PARTIALLY_APPLIED = "partially-applied"
    FAILED = "failed"
    SUPERSEDED = "superseded"

    @property
    def sentence(self) -> str:
        return _OUTCOME_SENTENCES[self]


_OUTCOME_SENTENCES = {
    Outcome.ACCEPTED: "Change accepted.",
    Outcome.ROLLED_BACK: "Change rolled back.",
    Outcome.PARTIALLY_APPLIED: "Change partially applied.",
    Outcome.FAILED: "Change failed.",
    Outcome.SUPERSEDED: "Change superseded.",
}

ACTIONS = ("create", "update", "delete")


class RecordFormatError(InputError):
    """A record's JSON does not hold what a change record holds. Exit 1."""


# --- time -------------------------------------------------------------------------------------


def utc(value: datetime) -> datetime:
    """The same instant in UTC, whole seconds. A naive datetime is a bug: its zone is a guess."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"naive datetime {value!r}: change records hold UTC times only")
    return value.astimezone(UTC).replace(microsecond=0)


def format_utc(value: datetime) -> str:
    return utc(value).strftime("%Y-%m-%dT%H:%M:%SZ")


def show_utc(value: datetime) -> str:
    """The seed's display form, "2026-06-09 09:23 UTC"."""
    return utc(value).strftime("%Y-%m-%d %H:%M UTC")


def parse_time(text: str, *, what: str = "time") -> datetime:
    """A time typed by a user (--at, DMARCOPS_NOW, --since): ISO 8601, UTC unless it says otherwise."""
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError:
        raise InputError(
            f"cannot read {what} {text!r}",
            hint="Write an ISO 8601 UTC time, e.g. 2026-06-09T09:23:00Z or 2026-06-09.",
        ) from None
    return utc(value if value.tzinfo is not None else value.replace(tzinfo=UTC))


def parse_wire_time(text: str) -> datetime:
    """A time as the audit trail writes it; anything else is refused, never guessed."""
    if not _WIRE_TIME.match(text):
        raise ValueError(f"{text!r} is not YYYY-MM-DDTHH:MM:SSZ")
    # The shape is checked above; fromisoformat is ~10x faster than strptime, which counts at
    # tens of thousands of records (benchmarks/audit_scale.py). It still refuses month 13.
    return datetime.fromisoformat(text[:-1]).replace(tzinfo=UTC)


def canonical_bytes(value: object) -> bytes:
    """The one serialisation every hash in the audit trail is taken over."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode(
        "utf-8"
    )


def sha256_hex(value: object) -> str:
    return hashlib.sha256(canonical_bytes(value)).hexdigest()


def _normalise_times(obj: object, *names: str) -> None:
    # Frozen dataclasses: normalising in __post_init__ is the one place it can happen.
    for name in names:
        value = getattr(obj, name)
        if value is not None:
            object.__setattr__(obj, name, utc(value))


def _time_or_none(value: datetime | None) -> str | None:
    return format_utc(value) if value is not None else None


# --- reading JSON with errors that say which field ----------------------------------------------

E = TypeVar("E", bound=enum.Enum)
T = TypeVar("T")


class _Fields:
    """One JSON object being read into a record: every error names the field it is about."""

    def __init__(self, data: object, where: str) -> None:
        if not isinstance(data, dict):
            raise RecordFormatError(f"{where}: expected an object")
        self.data: dict[str, Any] = data
        self.where = where

    def _get(self, key: str) -> Any:
        if key not in self.data:
            raise RecordFormatError(f"{self.where}.{key}: missing")
        return self.data[key]

    def _fail(self, key: str, expected: str) -> RecordFormatError:
        return RecordFormatError(f"{self.where}.{key}: expected {expected}")

    def text(self, key: str) -> str:
        value = self._get(key)
        if not isinstance(value, str):
            raise self._fail(key, "a string")
        return value

    def number(self, key: str) -> int:
        value = self._get(key)
        if not isinstance(value, int) or isinstance(value, bool):
            raise self._fail(key, "an integer")
        return value

    def optional_number(self, key: str) -> int | None:
        # Absent in records written before the field existed: those stay readable.
        return None if self.data.get(key) is None else self.number(key)

    def flag(self, key: str) -> bool:
        value = self._get(key)
        if not isinstance(value, bool):
            raise self._fail(key, "true or false")
        return value

    def texts(self, key: str) -> tuple[str, ...]:
        value = self._get(key)
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise self._fail(key, "a list of strings")
        return tuple(value)

    def time(self, key: str) -> datetime:
        value = self.text(key)
        try:
            return parse_wire_time(value)
        except ValueError:
            raise self._fail(key, "a UTC time YYYY-MM-DDTHH:MM:SSZ") from None

    def optional_time(self, key: str) -> datetime | None:
        return None if self._get(key) is None else self.time(key)

    def choice(self, key: str, kind: type[E]) -> E:
        value = self._get(key)
        try:
            return kind(value)
        except ValueError:
            allowed = " | ".join(str(m.value) for m in kind)
            raise self._fail(key, allowed) from None

    def optional_choice(self, key: str, kind: type[E]) -> E | None:
        return None if self._get(key) is None else self.choice(key, kind)

    def risk(self, key: str) -> RiskLevel:
        value = self.text(key)
        try:
            return RiskLevel.parse(value)
        except KeyError:
            raise self._fail(key, "low | medium | high") from None

    def objects(self, key: str) -> list[_Fields]:
        value = self._get(key)
        if not isinstance(value, list):
            raise self._fail(key, "a list")
        return [_Fields(v, f"{self.where}.{key}[{i}]") for i, v in enumerate(value)]

    def optional_object(self, key: str) -> _Fields | None:
        value = self._get(key)
        return None if value is None else _Fields(value, f"{self.where}.{key}")


def _read(build: Callable[[], T]) -> T:
    # A dataclass that refuses a value (a naive time, an unknown action) is bad input here.
    try:
        return build()
    except ValueError as exc:
        raise RecordFormatError(str(exc)) from None


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
    def from_plan_item(cls, item: PlanItem) -> RecordItem:
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
    from the report store by pipeline.reports.verify and written to
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


# --- the record -------------------------------------------------------------------------------


@dataclass(frozen=True)
class ChangeRecord:
    id: str  # "2026-0001"
    client: str  # the client's id in policy/clients/
    client_name: str
    zones: tuple[str, ...]
    change_type: ChangeType
    risk: RiskLevel
    plan_hash: str  # the plan the approvals were bound to
    request_id: str
    rationale: str
    items: tuple[RecordItem, ...]
    approvals: tuple[ApprovalEvidence, ...]
    change_window: TimeWindow | None  # None for an emergency change (it skips the window)
    rollback_window: TimeWindow
    created_at: datetime
    executed_at: datetime | None = None
    executed_by: str = ""
    emergency: Emergency | None = None
    zone_results: tuple[ZoneOutcome, ...] = ()
    verification: tuple[Verification, ...] = ()
    outcome: Outcome | None = None
    closed_at: datetime | None = None
    closed_by: str = ""
    closed_forced: bool = False  # closed before its rollback window ended (--force)
    sealed: bool = False
    references: tuple[
        str, ...
    ] = ()  # ids of related records: rollback-of, rolled-back-by, follow-ups
    internal_notes: str = ""  # MSP-side only: left out of client exports (seed FAQ)
    # What the one gate allowed by exception, and under which policy (pipeline.gate.decide).
    # Written only when set, so records made before these fields keep their hashes.
    freeze_exception: str = ""  # the freeze a client approval knowingly overrode, and who
    incident: str = ""  # the declared incident an emergency answered
    # The on-call owner who covered a rollback window ending outside staffed hours (the Friday
    # rule); written only when set.
    on_call: str = ""
    policy_sha256: str = ""  # the sealed policy the decision used
    recovery: Recovery | None = None  # finished from an interrupted apply's journal
    # Written under an injected time (a sandbox rehearsal, pipeline.clock): `audit verify` refuses
    # such a record for a client that is not on the sandbox.
    simulated: bool = False
    # SHA-256 of the change request's content as signed and approved (pipeline.gate.requests).
    request_sha256: str = ""
    # Issue 14 part 5: what the aggregate reports said at the close, and the reason a person
    # gave for closing as accepted without that evidence (the quarterly review lists it).
    report_verification: ReportCheck | None = None
    closed_without_evidence: str = ""
    # Issue 13. Written only when set, so records made before these fields keep their hashes.
    # The client's change management is outside the MSP's standard (label and direction).
    change_management: str = ""
    adopted: Adoption | None = None  # a drift adopted as the recorded state (`drift adopt`)
    manual: ManualChange | None = None  # a platform change or a DKIM selector switch

    def __post_init__(self) -> None:
        if not RECORD_ID.match(self.id):
            raise ValueError(f"record id {self.id!r} is not YYYY-NNNN")
        for ref in self.references:
            if not RECORD_ID.match(ref):
                raise ValueError(f"reference {ref!r} is not a record id (YYYY-NNNN)")
        _normalise_times(self, "created_at", "executed_at", "closed_at")
        if self.sealed and (self.outcome is None or self.closed_at is None or not self.closed_by):
            # Seed: the outcome is logged, then the record is sealed; never one without the other.
            raise ValueError(f"record {self.id} is sealed without an outcome, time and closer")

    # -- derived values

    @property
    def year(self) -> int:
        return int(self.id.split("-")[0])

    @property
    def number(self) -> int:
        return int(self.id.split("-")[1])

    @property
    def author(self) -> str:
        """The analyst who proposed the change (the seed's "Analyst: J. Chen (proposing)")."""
        return next((a.who for a in self.approvals if a.role is ApprovalRole.ANALYST), "")

    @property
    def analysts(self) -> frozenset[str]:
        """Everyone who touched the record: author, approvers, executor, reviewer, closer."""
        names = {a.who for a in self.approvals} | {self.executed_by, self.closed_by}
        if self.emergency is not None:
            names.add(self.emergency.reviewed_by)
        if self.adopted is not None:
            names.add(self.adopted.adopted_by)
        return frozenset(n for n in names if n)

    @property
    def when(self) -> datetime:
        """The date a search by date looks at: when it was executed, else when it was filed."""
        return self.executed_at or self.created_at

    def review_overdue(self, now: datetime) -> bool:
        return self.emergency is not None and self.emergency.overdue(now)

    # -- serialisation

    def to_json(self) -> dict[str, Any]:
        return {
            "format_version": FORMAT_VERSION,
            "id": self.id,
            "client": self.client,
            "client_name": self.client_name,
            "zones": list(self.zones),
            "change_type": self.change_type.value,
            "risk": self.risk.label,
            "plan_hash": self.plan_hash,
            "request_id": self.request_id,
            "request_sha256": self.request_sha256,
            "rationale": self.rationale,
            "items": [i.to_json() for i in self.items],
            "approvals": [a.to_json() for a in self.approvals],
            "change_window": self.change_window.to_json() if self.change_window else None,
            "rollback_window": self.rollback_window.to_json(),
            "created_at": format_utc(self.created_at),
            "executed_at": _time_or_none(self.executed_at),
            "executed_by": self.executed_by,
            "emergency": self.emergency.to_json() if self.emergency else None,
            "zone_results": [z.to_json() for z in self.zone_results],
            "verification": [v.to_json() for v in self.verification],
            "outcome": self.outcome.value if self.outcome else None,
            "closed_at": _time_or_none(self.closed_at),
            "closed_by": self.closed_by,
            "closed_forced": self.closed_forced,
            "sealed": self.sealed,
            "references": list(self.references),
            "internal_notes": self.internal_notes,
            **{
                key: value
                for key, value in (
                    ("freeze_exception", self.freeze_exception),
                    ("incident", self.incident),
                    ("on_call", self.on_call),
                    ("policy_sha256", self.policy_sha256),
                )
                if value
            },
            # Only when set: records written before the field existed keep their hashes.
            **({"recovery": self.recovery.to_json()} if self.recovery else {}),
            **({"simulated": True} if self.simulated else {}),
            **(
                {"report_verification": self.report_verification.to_json()}
                if self.report_verification
                else {}
            ),
            **(
                {"closed_without_evidence": self.closed_without_evidence}
                if self.closed_without_evidence
                else {}
            ),
            **({"change_management": self.change_management} if self.change_management else {}),
            **({"adopted": self.adopted.to_json()} if self.adopted else {}),
            **({"manual": self.manual.to_json()} if self.manual else {}),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | object) -> ChangeRecord:
        f = _Fields(data, "record")
        if f.number("format_version") != FORMAT_VERSION:
            raise RecordFormatError(
                f"record.format_version: {f.data['format_version']} is not {FORMAT_VERSION}",
                hint="This record was written by another version of dmarcops.",
            )
        change_window = f.optional_object("change_window")
        emergency = f.optional_object("emergency")
        rollback_window = f.optional_object("rollback_window")
        recovery = f.optional_object("recovery") if "recovery" in f.data else None
        checked = (
            f.optional_object("report_verification") if "report_verification" in f.data else None
        )
        adopted = f.optional_object("adopted") if "adopted" in f.data else None
        manual = f.optional_object("manual") if "manual" in f.data else None
        if rollback_window is None:
            raise RecordFormatError("record.rollback_window: missing")
        return _read(
            lambda: cls(
                id=f.text("id"),
                client=f.text("client"),
                client_name=f.text("client_name"),
                zones=f.texts("zones"),
                change_type=f.choice("change_type", ChangeType),
                risk=f.risk("risk"),
                plan_hash=f.text("plan_hash"),
                request_id=f.text("request_id"),
                # Absent in records written before the field existed: those stay readable.
                request_sha256=f.text("request_sha256") if "request_sha256" in f.data else "",
                rationale=f.text("rationale"),
                items=tuple(RecordItem.from_fields(i) for i in f.objects("items")),
                approvals=tuple(ApprovalEvidence.from_fields(a) for a in f.objects("approvals")),
                change_window=TimeWindow.from_fields(change_window) if change_window else None,
                rollback_window=TimeWindow.from_fields(rollback_window),
                created_at=f.time("created_at"),
                executed_at=f.optional_time("executed_at"),
                executed_by=f.text("executed_by"),
                emergency=Emergency.from_fields(emergency) if emergency else None,
                zone_results=tuple(ZoneOutcome.from_fields(z) for z in f.objects("zone_results")),
                verification=tuple(Verification.from_fields(v) for v in f.objects("verification")),
                outcome=f.optional_choice("outcome", Outcome),
                closed_at=f.optional_time("closed_at"),
                closed_by=f.text("closed_by"),
                closed_forced=f.flag("closed_forced"),
                sealed=f.flag("sealed"),
                references=f.texts("references"),
                internal_notes=f.text("internal_notes"),
                freeze_exception=f.text("freeze_exception") if "freeze_exception" in f.data else "",
                incident=f.text("incident") if "incident" in f.data else "",
                on_call=f.text("on_call") if "on_call" in f.data else "",
                policy_sha256=f.text("policy_sha256") if "policy_sha256" in f.data else "",
                recovery=Recovery.from_fields(recovery) if recovery else None,
                simulated=f.data.get("simulated") is True,
                report_verification=ReportCheck.from_fields(checked) if checked else None,
                closed_without_evidence=(
                    f.text("closed_without_evidence") if "closed_without_evidence" in f.data else ""
                ),
                change_management=f.text("change_management")
                if "change_management" in f.data
                else "",
                adopted=Adoption.from_fields(adopted) if adopted else None,
                manual=ManualChange.from_fields(manual) if manual else None,
            )
        )

    def canonical_bytes(self) -> bytes:
        return canonical_bytes(self.to_json())

    def sha256(self) -> str:
        return hashlib.sha256(self.canonical_bytes()).hexdigest()

    def client_export(self) -> dict[str, Any]:
        """What the client sees on request: everything but the MSP's internal notes (seed FAQ)."""
        data = self.to_json()
        del data["internal_notes"]
        return data

    # -- rendering

    def render_markdown(self, *, include_internal: bool = True) -> str:
        return _render(self, markdown=True, include_internal=include_internal)

    def render_text(self, *, include_internal: bool = True) -> str:
        return _render(self, markdown=False, include_internal=include_internal)


# --- the seed's template, in markdown and in plain text ----------------------------------------


def plain(text: str) -> str:
    """A user string for a terminal: no control characters (no escape sequences, no fake lines);
    C0 controls become spaces, and the rest (C1, bidi overrides, zero-width) visible escapes."""
    return clean(_CONTROL.sub(" ", text))


def _render(record: ChangeRecord, *, markdown: bool, include_internal: bool) -> str:
    # One layout for both outputs: `t` shows a user string as text, `c` as a value (a code span
    # in markdown), so the two renderings cannot drift apart field by field.
    t: Callable[[str], str] = escape if markdown else plain
    c: Callable[[str], str] = code if markdown else plain
    bullet = "- " if markdown else ""
    separator = "<br>" if markdown else "\n        "

    def values(vals: tuple[str, ...]) -> str:
        return separator.join(c(v) for v in vals) if vals else "(none)"

    # Each block is an optional heading ("Approval:") and its lines, a blank line between blocks.
    blocks: list[tuple[str, list[tuple[str, str]]]] = []
    blocks.append(
        (
            "",
            [
                ("Client", f"{t(record.client_name)} ({c(record.client)})"),
                ("Domain affected", ", ".join(t(z) for z in record.zones) or "(none)"),
                (
                    "Record affected",
                    separator.join(
                        f"{c(i.fqdn)} {t(i.type)} ({t(i.action)}, risk {i.risk.label})"
                        for i in record.items
                    )
                    or "(none)",
                ),
                ("Change type", t(record.change_type.value)),
                ("Risk level", record.risk.label.capitalize()),
                ("Plan", c(record.plan_hash)),
                (
                    "Change request",
                    c(record.request_id)
                    if record.request_id
                    else "none (changed outside the pipeline)",
                ),
            ],
        )
    )
    for item in record.items:
        # The seed's record has one record affected; with several, each before/after says which.
        which = f" ({c(item.fqdn)} {t(item.type)})" if len(record.items) > 1 else ""
        blocks.append(
            (
                "",
                [
                    (f"Before{which}", values(item.before)),
                    (f"After{which}", values(item.after)),
                    ("What changes", ", ".join(c(x) for x in item.facts) or "(nothing)"),
                    ("Why this risk", "; ".join(t(r) for r in item.reasons) or "(no rule)"),
                ],
            )
        )
    blocks.append(("", [("Rationale", t(record.rationale) or "(none)")]))
    blocks.append(("Approval", _approval_lines(record, t, c)))
    emergency = record.emergency
    blocks.append(
        (
            "",
            [
                (
                    "Change window",
                    record.change_window.show()
                    if record.change_window
                    else "none (changed outside the pipeline)"
                    if record.adopted is not None
                    else "none (emergency change: the window was skipped)",
                ),
                (
                    "Rollback window",
                    "none: the pipeline sent nothing to roll back (a revert is a new request)"
                    if record.adopted is not None
                    else record.rollback_window.show(),
                ),
                *(
                    [("Freeze exception", t(record.freeze_exception))]
                    if record.freeze_exception
                    else []
                ),
                *([("Incident", t(record.incident))] if record.incident else []),
                *(
                    [
                        (
                            "On call",
                            f"{t(record.on_call)} (covers the rollback window outside staffed hours)",
                        )
                    ]
                    if record.on_call
                    else []
                ),
                *([("Policy", c(record.policy_sha256[:16]))] if record.policy_sha256 else []),
                *(
                    [("Change management", t(record.change_management))]
                    if record.change_management
                    else []
                ),
            ],
        )
    )
    if record.adopted is not None:
        executed = (
            f"outside the pipeline (seen live {show_utc(record.adopted.observed_at)}); "
            f"{t(record.adopted.note)}"
        )
    elif record.executed_at:
        executed = f"{show_utc(record.executed_at)} by {t(record.executed_by)}"
    else:
        executed = "not yet"
    execution = [("Executed", executed)]
    if record.manual is not None:
        manual = record.manual
        execution.append(
            ("Manual change", f"{t(manual.platform)}: {t(manual.setting)} ({t(manual.kind)})")
        )
        execution.append(
            (
                "Steps",
                separator.join(f"{n}. {t(step)}" for n, step in enumerate(manual.steps, 1))
                or "(none)",
            )
        )
        execution.append(
            (
                "Checklist",
                separator.join(
                    f"{n}. [{check.status}] {t(check.item)}"
                    + (f" ({t(check.by)} {show_utc(check.at)})" if check.at else "")
                    + (f": {t(check.note)}" if check.note else "")
                    for n, check in enumerate(manual.checklist, 1)
                )
                or "(none)",
            )
        )
    execution.extend(
        (
            f"Zone {t(z.zone)}",
            f"{z.status.value}, {z.applied} item(s) applied"
            + (f": {t(z.error)}" if z.error else ""),
        )
        for z in record.zone_results
    )
    execution.append(
        (
            "Verification",
            separator.join(
                f"{c(v.fqdn)} {t(v.type)} {v.status.value} {show_utc(v.checked_at)}"
                + (f" ({t(v.detail)})" if v.detail else "")
                for v in record.verification
            )
            or "pending",
        )
    )
    if record.recovery is not None:
        rec = record.recovery
        execution.append(
            (
                "Recovered",
                f"{show_utc(rec.at)} by {t(rec.by)} from apply journal {c(rec.journal)}: "
                f"{t(rec.detail)}",
            )
        )
    blocks.append(("", execution))
    if emergency is not None:
        verdict = f"{emergency.verdict}, " if emergency.verdict else ""
        follow = f" (follow-up: {t(emergency.follow_up)})" if emergency.follow_up else ""
        late = " (late)" if emergency.late else ""
        review = (
            f"{verdict}by {t(emergency.reviewed_by)} {show_utc(emergency.reviewed_at)}{late}: "
            f"{t(emergency.review_notes)}{follow}"
            if emergency.reviewed_at
            else f"not yet recorded (due {show_utc(emergency.review_due)})"
        )
        blocks.append(("", [("Emergency", t(emergency.reason)), ("Post-hoc review", review)]))
    outcome = "open"
    if record.outcome is not None:
        outcome = record.outcome.sentence
        if record.closed_at is not None:
            outcome += f" Closed {show_utc(record.closed_at)} by {t(record.closed_by)}"
            outcome += (
                " before the rollback window ended (forced)." if record.closed_forced else "."
            )
    closing = [("Outcome", outcome)]
    if record.report_verification is not None:
        check = record.report_verification
        closing.append(
            (
                "Report evidence",
                f"{t(check.show())} ({t(check.summary)}); {c(check.file)}",
            )
        )
    if record.closed_without_evidence:
        closing.append(("Closed without report evidence", t(record.closed_without_evidence)))
    if record.references:
        closing.append(("References", ", ".join(f"#{r}" for r in record.references)))
    closing.append(("Sealed", "yes: never edited again" if record.sealed else "no"))
    blocks.append(("", closing))
    if include_internal and record.internal_notes:
        blocks.append(("", [("Internal notes", t(record.internal_notes))]))

    title = f"CHANGE RECORD #{record.id}"  # the id matched RECORD_ID: digits and a dash only
    out = [f"## {title}" if markdown else title, ""]
    for heading, lines in blocks:
        indent = ""
        if heading:
            out.append(f"{bullet}{heading}:")
            indent = "  "
        out.extend(f"{indent}{bullet}{label}: {value}" for label, value in lines)
        out.append("")
    return "\n".join(out)


def _approval_lines(
    record: ChangeRecord, t: Callable[[str], str], c: Callable[[str], str]
) -> list[tuple[str, str]]:
    def evidence(a: ApprovalEvidence, verb: str) -> str:
        when = f" {show_utc(a.at)}" if a.at else ""
        ref = f", {a.source.value} {c(a.reference)}" if a.reference else f", {a.source.value}"
        return f"{t(a.who)} ({verb}{when}{ref})"

    def of(role: ApprovalRole) -> list[ApprovalEvidence]:
        return [a for a in record.approvals if a.role is role]

    # Not obtained is "missing" unless the risk did not need it or the change was an emergency,
    # whose approval is the post-hoc review (seed: "post-hoc approval, log immediately").
    missing = (
        "not obtained before execution (emergency change: post-hoc review)"
        if record.emergency is not None
        else "none: changed outside the pipeline (adopted, not approved)"
        if record.adopted is not None
        else "missing"
    )
    peers = "; ".join(evidence(a, "approved") for a in of(ApprovalRole.PEER))
    clients = "; ".join(evidence(a, "approved") for a in of(ApprovalRole.CLIENT))
    lines = [
        (
            "Analyst",
            "; ".join(f"{t(a.who)} (proposing)" for a in of(ApprovalRole.ANALYST)) or "(none)",
        ),
        (
            "Peer review",
            peers
            or (
                "not required (low-risk: self-approved)"
                if record.risk is RiskLevel.LOW and record.adopted is None
                else missing
            ),
        ),
        (
            "Client approval",
            clients
            or (
                f"not required ({record.risk.label}-risk)"
                if record.risk < RiskLevel.HIGH
                else missing
            ),
        ),
    ]
    return lines
