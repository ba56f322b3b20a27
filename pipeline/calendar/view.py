"""The calendar view's typed values: what `build_calendar` (pipeline.calendar.build) returns and the
renderers (pipeline.render.calendar, pipeline.render.calendar_ics) print, with the words they show
(the conflict kinds, the length of the rolling log)."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import date, datetime
from zoneinfo import ZoneInfo

from pipeline.load.calendar_model import Blackout, Freeze
from pipeline.model import RiskLevel

RECENT_DAYS = 60  # seed: "A 60-day rolling log of what's been done"
# What each conflict kind means, for the docs and the renderers.
CONFLICT_KINDS = {
    "same-window": "two changes on one domain in one change window",
    "rollback-into-freeze": "the rollback window would run into a change freeze",
    "rollback-into-weekend": "the rollback window would run into an unwatched weekend",
    "rollback-unstaffed": "the rollback window would end outside staffed hours (the Friday rule)",
    "no-window": "no change window that day takes the change",
    "window-unstaffed": "a change window outside staffed hours",
}


class Status(enum.StrEnum):
    DONE = "done"
    OVERDUE = "overdue"
    FROZEN = "frozen"
    DUE = "due"
    PLANNED = "planned"


@dataclass(frozen=True)
class WindowEvent:
    client: str
    day: date  # the client's local date
    ordinal: int  # the n-th window of that day, from 1
    start: datetime  # UTC
    end: datetime  # UTC
    timezone: str
    risks: str  # "all risks", "low only"

    @property
    def uid(self) -> str:
        return f"window.{self.client}.{self.day:%Y%m%d}.{self.ordinal}@dmarcops"

    def local(self) -> tuple[datetime, datetime]:
        tz = ZoneInfo(self.timezone)
        return self.start.astimezone(tz), self.end.astimezone(tz)


@dataclass(frozen=True)
class PlannedChange:
    client: str
    uid: str
    type: str
    domain: str
    planned: date
    status: Status
    risk: RiskLevel
    rollback_hours: int
    name: str = ""
    selector: str = ""
    target: str = ""
    step: str = ""  # "step 2 of 3", "2027 (yearly)"
    request: str = ""  # the open change request for it
    record: str = ""  # the change record that did it
    owner: str = ""
    note: str = ""

    @property
    def what(self) -> str:
        where = f"{self.name}.{self.domain}" if self.name else self.domain
        extra = f" ({self.selector})" if self.selector else ""
        target = f" -> {self.target}" if self.target else ""
        return f"{self.type} {where}{extra}{target}"


@dataclass(frozen=True)
class Conflict:
    client: str
    kind: str  # a key of CONFLICT_KINDS
    day: date
    subjects: tuple[str, ...]  # the uids of the changes or window it is about
    reason: str


@dataclass(frozen=True)
class RecentChange:
    id: str
    when: datetime
    zones: tuple[str, ...]
    change_type: str
    risk: RiskLevel
    outcome: str  # the record's outcome, "open" before it is closed
    executed_by: str
    on_call: str = ""


@dataclass(frozen=True)
class ClientCalendar:
    id: str
    name: str
    timezone: str
    today: date  # in the client's time zone
    on_call: tuple[str, ...]  # on call today
    windows: tuple[WindowEvent, ...]
    freezes: tuple[Freeze, ...]
    blackouts: tuple[Blackout, ...]
    changes: tuple[PlannedChange, ...]
    conflicts: tuple[Conflict, ...]
    recent: tuple[RecentChange, ...]


@dataclass(frozen=True)
class CalendarView:
    now: datetime  # UTC, from the system clock
    start: date
    end: date  # inclusive
    clients: tuple[ClientCalendar, ...]

    @property
    def conflicts(self) -> tuple[Conflict, ...]:
        return tuple(c for client in self.clients for c in client.conflicts)

    def count(self, status: Status) -> int:
        return sum(1 for client in self.clients for c in client.changes if c.status is status)
