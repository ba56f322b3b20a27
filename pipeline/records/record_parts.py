"""The parts of a change record (pipeline.records.record): windows, items, approvals, the
emergency and its review, zone outcomes, verification, adoption, the manual checklist, recovery,
the report verification."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pipeline.model import RiskLevel
from pipeline.records.record_base import (
    ACTIONS,
    ApprovalRole,
    ApprovalSource,
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
        start, end = show_utc(self.start)[:-4], show_utc(self.end)[:-4]
        if self.start.date() == self.end.date():
            return f"{start}-{end[-5:]} UTC"
        return f"{start} — {end} UTC"

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
