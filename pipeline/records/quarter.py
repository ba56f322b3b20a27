"""The quarterly review (issue 12, item 1): where the policy was bent in one quarter, from the records.

Seed ("Audit trail and compliance"): the compliance lead reviews, each quarter, where change
management was bent and what should change. Everything here is read from the change records the
ledger vouches for (run `dmarcops audit verify` first: the review trusts the records it reads);
nothing is typed in. A record belongs to the quarter in which it was executed (created, when it
never was).

Bends the records hold and the review lists: emergency changes (with their verdict, follow-up,
incident and whether the review was late or is missing), forced closes, freeze exceptions,
rollbacks, applies finished from a journal (recovered), records closed as accepted without
aggregate-report evidence (issue 14 part 5: a person's signed override with its reason, or an
acceptance with neither evidence nor reason), changes made outside standard change management at
a client's direction (the record's `change_management` label, from the client's profile), and
changes made outside the pipeline and adopted afterwards (`dmarcops drift adopt`). One kind the
issue names is not in the records yet and is said so in the report instead of being guessed:
approvals that a lead gave because the analyst was shadowing.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pipeline.errors import InputError
from pipeline.records.record import ChangeRecord, ChangeType, Outcome, format_utc

_QUARTER = re.compile(r"^(\d{4})[Qq]([1-4])$", re.ASCII)

NOT_RECORDED = (
    "approvals a lead gave because the analyst was shadowing (the gate requires them; the record "
    "does not yet say why a lead approved)",
)


@dataclass(frozen=True)
class Quarter:
    year: int
    number: int  # 1..4

    @classmethod
    def parse(cls, text: str) -> Quarter:
        match = _QUARTER.match(text.strip())
        if match is None or not 1 <= int(match.group(1)) <= 9998:
            raise InputError(
                f"{text!r} is not a quarter",
                hint="Write the year and the quarter, e.g. 2026Q3.",
            )
        return cls(int(match.group(1)), int(match.group(2)))

    @property
    def start(self) -> datetime:
        return datetime(self.year, 3 * self.number - 2, 1, tzinfo=UTC)

    @property
    def end(self) -> datetime:
        """The first moment after the quarter."""
        if self.number == 4:
            return datetime(self.year + 1, 1, 1, tzinfo=UTC)
        return datetime(self.year, 3 * self.number + 1, 1, tzinfo=UTC)

    def __str__(self) -> str:
        return f"{self.year}Q{self.number}"

    def holds(self, record: ChangeRecord) -> bool:
        when = record.executed_at or record.created_at
        return self.start <= when < self.end


@dataclass(frozen=True)
class Bend:
    """One place where the policy was bent, with the record that shows it."""

    # "emergency" | "forced close" | "freeze exception" | "rollback" | "recovered" |
    # "accepted without evidence" | "outside change management" | "unrecorded change"
    kind: str
    record_id: str
    client: str
    analyst: str
    detail: str

    def to_json(self) -> dict[str, str]:
        return {
            "kind": self.kind,
            "record": self.record_id,
            "client": self.client,
            "analyst": self.analyst,
            "detail": self.detail,
        }


@dataclass(frozen=True)
class QuarterReport:
    quarter: Quarter
    generated_at: datetime
    records: tuple[str, ...]
    bends: tuple[Bend, ...]
    by_client: dict[str, int]
    by_analyst: dict[str, int]
    by_risk: dict[str, int]
    by_type: dict[str, int]
    open_outcomes: tuple[str, ...]  # executed, not yet sealed
    overdue_reviews: tuple[str, ...]
    follow_ups: tuple[tuple[str, str], ...]  # (follow-up reference, record)
    not_recorded: tuple[str, ...] = field(default=NOT_RECORDED)

    def to_json(self) -> dict[str, Any]:
        return {
            "quarter": str(self.quarter),
            "from": format_utc(self.quarter.start),
            "until": format_utc(self.quarter.end),
            "generated_at": format_utc(self.generated_at),
            "records": list(self.records),
            "bends": [b.to_json() for b in self.bends],
            "counts": {
                "client": self.by_client,
                "analyst": self.by_analyst,
                "risk": self.by_risk,
                "type": self.by_type,
            },
            "open_outcomes": list(self.open_outcomes),
            "overdue_reviews": list(self.overdue_reviews),
            "what_to_change": [{"follow_up": f, "record": r} for f, r in self.follow_ups],
            "not_recorded": list(self.not_recorded),
        }


def _emergency_detail(record: ChangeRecord, now: datetime) -> str:
    emergency = record.emergency
    assert emergency is not None
    parts = [f"reason: {emergency.reason}"]
    if record.incident:
        parts.append(f"incident {record.incident}")
    if emergency.reviewed:
        verdict = emergency.verdict or "reviewed (no verdict recorded)"
        parts.append(f"{verdict} by {emergency.reviewed_by}")
        if emergency.late:
            parts.append("review late")
        if emergency.follow_up:
            parts.append(f"follow-up {emergency.follow_up}")
    elif now > emergency.review_due:
        parts.append(f"review overdue since {format_utc(emergency.review_due)}")
    else:
        parts.append(f"review due {format_utc(emergency.review_due)}")
    return "; ".join(parts)


def _bends(record: ChangeRecord, now: datetime) -> list[Bend]:
    def bend(kind: str, detail: str) -> Bend:
        return Bend(kind, record.id, record.client, record.executed_by, detail)

    found: list[Bend] = []
    if record.emergency is not None:
        found.append(bend("emergency", _emergency_detail(record, now)))
    if record.closed_forced:
        closed = format_utc(record.closed_at) if record.closed_at else "?"
        found.append(
            bend(
                "forced close",
                f"closed {closed} by {record.closed_by}, before its rollback window ended "
                f"{format_utc(record.rollback_window.end)}",
            )
        )
    if record.freeze_exception:
        found.append(bend("freeze exception", record.freeze_exception))
    if record.on_call:
        found.append(
            bend(
                "on-call cover",
                f"{record.on_call} covered a rollback window ending outside staffed hours "
                f"(until {format_utc(record.rollback_window.end)})",
            )
        )
    if record.change_type is ChangeType.EMERGENCY_ROLLBACK or record.outcome is Outcome.ROLLED_BACK:
        what = (
            "an emergency rollback"
            if record.change_type is ChangeType.EMERGENCY_ROLLBACK
            else "rolled back"
        )
        linked = f" (linked: {', '.join(record.references)})" if record.references else ""
        found.append(bend("rollback", what + linked))
    if record.closed_without_evidence:
        closed = format_utc(record.closed_at) if record.closed_at else "?"
        check = record.report_verification
        said = f"; the reports said {check.verdict}: {check.summary}" if check else ""
        found.append(
            bend(
                "accepted without evidence",
                f"closed as accepted {closed} by {record.closed_by} without report evidence: "
                f"{record.closed_without_evidence}{said}",
            )
        )
    elif (
        record.sealed and record.outcome is Outcome.ACCEPTED and record.report_verification is None
    ):
        found.append(
            bend(
                "accepted without evidence",
                f"closed as accepted by {record.closed_by} with no report verification and no "
                "reason in the record (sealed before dmarcops required either?)",
            )
        )
    if record.recovery is not None:
        found.append(
            bend("recovered", f"finished from an interrupted apply: {record.recovery.detail}")
        )
    if record.change_management:
        found.append(bend("outside change management", record.change_management))
    if record.adopted is not None:
        found.append(
            Bend(
                "unrecorded change",
                record.id,
                record.client,
                record.adopted.adopted_by,
                f"{record.adopted.note} (seen live {format_utc(record.adopted.observed_at)})",
            )
        )
    return found


def quarter_report(
    records: Iterable[ChangeRecord], quarter: Quarter, now: datetime
) -> QuarterReport:
    mine = sorted((r for r in records if quarter.holds(r)), key=lambda r: r.id)
    bends = [b for r in mine for b in _bends(r, now)]
    follow_ups = [
        (r.emergency.follow_up, r.id)
        for r in mine
        if r.emergency is not None and r.emergency.follow_up
    ]
    overdue = [
        r.id
        for r in mine
        if r.emergency is not None and not r.emergency.reviewed and now > r.emergency.review_due
    ]
    return QuarterReport(
        quarter=quarter,
        generated_at=now,
        records=tuple(r.id for r in mine),
        bends=tuple(bends),
        by_client=dict(sorted(Counter(r.client for r in mine).items())),
        by_analyst=dict(sorted(Counter(r.executed_by or "(not executed)" for r in mine).items())),
        by_risk=dict(sorted(Counter(r.risk.label for r in mine).items())),
        by_type=dict(sorted(Counter(r.change_type.value for r in mine).items())),
        open_outcomes=tuple(r.id for r in mine if r.executed_at is not None and not r.sealed),
        overdue_reviews=tuple(overdue),
        follow_ups=tuple(sorted(follow_ups)),
    )
