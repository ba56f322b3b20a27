"""What the on-call analyst sees on Monday: per client, what is planned, due, overdue, frozen or
conflicting in a date range, and what was changed in the last 60 days (seed: "Change calendars
per client": standing windows, freezes, scheduled changes, a 60-day rolling log).

Pure: the portfolio (its calendars), the change records and the open change requests in, a
typed `CalendarView` (pipeline.calendar.view) out; the renderers (pipeline.render.calendar) print
it. The planned changes and whether they are done are pipeline.calendar.planned, their conflicts
pipeline.calendar.conflicts.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from pipeline.calendar.conflicts import find_conflicts
from pipeline.calendar.planned import planned_changes
from pipeline.calendar.view import (
    RECENT_DAYS,
    CalendarView,
    ClientCalendar,
    RecentChange,
    WindowEvent,
)
from pipeline.gate.decide import rollback_by_risk
from pipeline.gate.requests import ChangeRequest
from pipeline.gate.windows import windows_on
from pipeline.load.portfolio import ClientProfile, Portfolio
from pipeline.records.record import ChangeRecord


def this_week(today: date) -> tuple[date, date]:
    """Monday to Sunday of the week holding `today`."""
    monday = today - timedelta(days=today.weekday())
    return monday, monday + timedelta(days=6)


def _days(start: date, end: date) -> list[date]:
    return [start + timedelta(days=n) for n in range((end - start).days + 1)]


def _windows(client: ClientProfile, start: date, end: date) -> list[WindowEvent]:
    found = []
    for day in _days(start, end):
        if client.freeze_on(day) is not None:
            continue  # a frozen day has no window for planned changes
        for n, window in enumerate(windows_on(client, day), start=1):
            found.append(
                WindowEvent(
                    client.id,
                    day,
                    n,
                    window.start,
                    window.end,
                    client.timezone,
                    window.spec.risks_label() if window.spec is not None else "all risks",
                )
            )
    return found


def _recent(
    records: Sequence[ChangeRecord], client: ClientProfile, now: datetime
) -> list[RecentChange]:
    since = now - timedelta(days=RECENT_DAYS)
    found = [
        RecentChange(
            r.id,
            r.when,
            r.zones,
            r.change_type.value,
            r.risk,
            r.outcome.value if r.outcome is not None else "open",
            r.executed_by,
            r.on_call,
        )
        for r in records
        if r.client == client.id and since <= r.when <= now
    ]
    return sorted(found, key=lambda r: (r.when, r.id), reverse=True)


def build_calendar(
    portfolio: Portfolio,
    records: Sequence[ChangeRecord],
    requests: Sequence[ChangeRequest],
    now: datetime,
    start: date,
    end: date,
    clients: Sequence[str] = (),
) -> CalendarView:
    """The calendar of `clients` (every client when empty) from `start` to `end` (inclusive, the
    clients' local dates), as of `now` (UTC). `requests`: the open change requests."""
    now = now.astimezone(UTC)
    shown = []
    for client_id in sorted(clients or portfolio.clients):
        client = portfolio.clients[client_id]
        tz = ZoneInfo(client.timezone)
        today = now.astimezone(tz).date()
        rollback = rollback_by_risk(portfolio, client_id)
        windows = _windows(client, start, end)
        changes = planned_changes(portfolio, client, records, requests, start, end, today, rollback)
        shown.append(
            ClientCalendar(
                id=client.id,
                name=client.name,
                timezone=client.timezone,
                today=today,
                on_call=client.calendar.on_call_on(today),
                windows=tuple(windows),
                freezes=tuple(f for f in client.freezes if f.start <= end and start <= f.end),
                blackouts=tuple(b for b in client.calendar.blackouts if start <= b.day <= end),
                changes=tuple(changes),
                conflicts=tuple(find_conflicts(client, changes, windows)),
                recent=tuple(_recent(records, client, now)),
            )
        )
    return CalendarView(now, start, end, tuple(shown))
