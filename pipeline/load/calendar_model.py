"""A client's change calendar and the MSP's staffed hours as typed values: windows, blackouts,
freezes, staffed hours, who is on call and the scheduled changes with their planned dates.

The seed's "Change calendars per client": standing change windows (several a day, some only for
lower risks), blackout dates, change freezes, scheduled changes with their planned dates (annual
DKIM rotations, policy escalation steps, recurring sub-domain delegations), the client's rollback
windows where they differ from the portfolio's, and who is on call. The gate's time rules
(pipeline.gate.windows) and `dmarcops calendar` (pipeline.calendar) read this one model; it is
read from policy/calendars/<client>.yaml and policy/staffing.yaml in calendar.py.
Every time of day here is local to the client's time zone (staffed hours: to their own zone when
policy/staffing.yaml names one).
"""

from __future__ import annotations

import calendar as stdlib_calendar
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from pathlib import Path

from pipeline.model import RiskLevel

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
SATURDAY, SUNDAY = 5, 6


@dataclass(frozen=True)
class Freeze:
    start: date
    end: date  # inclusive
    reason: str

    def covers(self, day: date) -> bool:
        return self.start <= day <= self.end


@dataclass(frozen=True)
class ChangeWindow:
    """A standing change window, in the client's time zone (seed: Tue-Thu mornings). `risks`
    limits which changes may start in it (seed: high only in the morning window); None: all."""

    days: frozenset[int] = frozenset({1, 2, 3})  # Monday is 0, as in date.weekday()
    start: time = time(9, 0)
    end: time = time(12, 0)
    risks: frozenset[RiskLevel] | None = None

    def admits(self, risk: RiskLevel | None) -> bool:
        return self.risks is None or risk is None or risk in self.risks

    @property
    def label(self) -> str:
        return f"{self.start:%H:%M}-{self.end:%H:%M}"

    def risks_label(self) -> str:
        if self.risks is None:
            return "all risks"
        return ", ".join(r.label for r in sorted(self.risks)) + " only"


DEFAULT_WINDOWS: tuple[ChangeWindow, ...] = (ChangeWindow(),)


@dataclass(frozen=True)
class Blackout:
    """A day without change windows (a public holiday, the client's all-hands), not a freeze:
    nothing is raised to high risk, there is simply no window that day."""

    day: date
    reason: str


@dataclass(frozen=True)
class StaffedHours:
    """When someone at the MSP watches: spans per weekday (minutes from local midnight, the end
    may be 24:00), days closed. `timezone` None: the client's own time zone."""

    spans: Mapping[int, tuple[tuple[int, int], ...]]
    closed: tuple[Blackout, ...] = ()
    timezone: str | None = None
    file: Path = Path()

    def spans_on(self, day: date) -> tuple[tuple[int, int], ...]:
        if any(c.day == day for c in self.closed):
            return ()
        return self.spans.get(day.weekday(), ())

    def staffed_at(self, local: datetime) -> bool:
        """Staffed at this local time: inside a span, its end included (a rollback window that
        ends as the desk closes ends watched)."""
        minute = local.hour * 60 + local.minute + local.second / 60
        return any(start <= minute <= end for start, end in self.spans_on(local.date()))

    def describe(self, day: date) -> str:
        spans = self.spans_on(day)
        if not spans:
            closed = next((c for c in self.closed if c.day == day), None)
            return f"closed ({closed.reason})" if closed else "not staffed"
        return ", ".join(f"{_hhmm(s)}-{_hhmm(e)}" for s, e in spans)


def _hhmm(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


@dataclass(frozen=True)
class OnCall:
    """Who is on call for the client, from and until which local dates (inclusive; None: open)."""

    analyst: str
    start: date | None = None
    until: date | None = None

    def covers(self, day: date) -> bool:
        return (self.start is None or self.start <= day) and (
            self.until is None or day <= self.until
        )


RECURRENCES = ("none", "weekly", "monthly", "quarterly", "yearly")
# What a scheduled change of each type is, unless it says otherwise (seed: routine rotation is
# low; policy progression medium; a delegation change medium).
DEFAULT_RISK = {
    "dkim-rotation": RiskLevel.LOW,
    "new-sender": RiskLevel.LOW,
    "policy-progression": RiskLevel.MEDIUM,
    "delegation": RiskLevel.MEDIUM,
}


@dataclass(frozen=True)
class Step:
    """One planned date of a scheduled change: the only one, a step of an escalation, or the
    first of a recurrence."""

    planned: date
    target: str = ""
    risk: RiskLevel | None = None
    rollback_hours: int | None = None


@dataclass(frozen=True)
class ScheduledChange:
    id: str  # stable: names the calendar events of every occurrence
    type: str  # dkim-rotation | policy-progression | delegation | new-sender | other | ...
    domain: str
    steps: tuple[Step, ...]
    recurrence: str = "none"
    name: str = ""  # the sub-domain (a delegation), relative to the domain
    selector: str = ""  # a DKIM rotation's new selector
    risk: RiskLevel | None = None
    rollback_hours: int | None = None
    note: str = ""
    owner: str = ""  # roster id of the analyst who will do it
    line: int | None = None

    @property
    def what(self) -> str:
        where = f"{self.name}.{self.domain}" if self.name else self.domain
        extra = f" ({self.selector})" if self.selector else ""
        return f"{self.type} {where}{extra}"

    def risk_of(self, step: Step) -> RiskLevel:
        return step.risk or self.risk or DEFAULT_RISK.get(self.type, RiskLevel.MEDIUM)

    def occurrences(self, until: date) -> list[tuple[int, Step]]:
        """(ordinal, step) of every occurrence planned on or before `until`, in date order."""
        if self.recurrence == "none":
            return [(i, s) for i, s in enumerate(self.steps) if s.planned <= until]
        first = self.steps[0]
        found: list[tuple[int, Step]] = []
        n = 0
        while True:
            day = recur(first.planned, self.recurrence, n)
            if day > until:
                return found
            found.append((n, Step(day, first.target, first.risk, first.rollback_hours)))
            n += 1


def recur(anchor: date, recurrence: str, n: int) -> date:
    """The n-th date of a recurrence from `anchor` (a 31st falls back to the month's last day;
    29 February to the 28th)."""
    if recurrence == "weekly":
        return anchor + timedelta(weeks=n)
    months = {"monthly": 1, "quarterly": 3, "yearly": 12}[recurrence] * n
    year, month = divmod(anchor.month - 1 + months, 12)
    year += anchor.year
    last = stdlib_calendar.monthrange(year, month + 1)[1]
    return date(year, month + 1, min(anchor.day, last))


@dataclass(frozen=True)
class Calendar:
    """The one model of a client's time: what the gate's time rules and `dmarcops calendar` use."""

    windows: tuple[ChangeWindow, ...] = DEFAULT_WINDOWS
    blackouts: tuple[Blackout, ...] = ()
    freezes: tuple[Freeze, ...] = ()
    weekend_coverage: bool = False
    rollback_hours: Mapping[RiskLevel, int] = field(default_factory=dict)
    # The staffed hours that apply to this client (its own, else policy/staffing.yaml); None:
    # no staffing data, so no instant counts as unstaffed (repositories from before the rule).
    staffing: StaffedHours | None = None
    on_call: tuple[OnCall, ...] = ()
    scheduled: tuple[ScheduledChange, ...] = ()
    file: Path | None = None  # policy/calendars/<client>.yaml, when there is one

    def blackout_on(self, day: date) -> Blackout | None:
        return next((b for b in self.blackouts if b.day == day), None)

    def on_call_on(self, day: date) -> tuple[str, ...]:
        return tuple(o.analyst for o in self.on_call if o.covers(day))
