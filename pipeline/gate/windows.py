"""Change windows, freezes and rollback windows (the seed's "Change windows and rollback windows").

Planned changes run only inside the client's standing window (its own time zone), never inside a
freeze, and not when the rollback window that follows would run into a freeze or into an unstaffed
weekend ("the rollback window of zero change": executed at 5pm Friday with no one watching), unless
the client profile says weekends are covered. All inputs and outputs are UTC; the client's time
zone is used only to decide what "Tuesday 09:00" and "a weekend" mean for that client.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from pipeline.load.portfolio import ClientProfile, Freeze

SATURDAY, SUNDAY = 5, 6
SEARCH_DAYS = 400  # a year of freezes and a holiday season still leaves a window to find


@dataclass(frozen=True)
class Window:
    start: datetime  # UTC
    end: datetime  # UTC

    def contains(self, at: datetime) -> bool:
        return self.start <= at < self.end


@dataclass(frozen=True)
class WindowDecision:
    ok: bool
    reason: str
    window: Window | None  # the window `at` falls in, when it does
    rollback: Window  # the rollback window a change made at `at` would have
    rule: str = ""  # which rule said no: outside-window | freeze | freeze-rollback | weekend
    freeze: Freeze | None = None  # the freeze that said no, for a freeze exception


def _local(client: ClientProfile, at: datetime) -> datetime:
    return at.astimezone(ZoneInfo(client.timezone))


def window_on(client: ClientProfile, day: date) -> Window | None:
    """The standing window on a local calendar day, or None when that day has none."""
    if day.weekday() not in client.change_window.days:
        return None
    tz = ZoneInfo(client.timezone)
    start = datetime.combine(day, client.change_window.start, tzinfo=tz)
    end = datetime.combine(day, client.change_window.end, tzinfo=tz)
    return Window(start.astimezone(UTC), end.astimezone(UTC))


def freeze_during(client: ClientProfile, span: Window) -> Freeze | None:
    """A freeze any local day of which overlaps `span`."""
    first = _local(client, span.start).date()
    last = _local(client, span.end).date()
    return next(
        (f for f in client.freezes if f.start <= last and first <= f.end),
        None,
    )


def unstaffed_weekend_during(client: ClientProfile, span: Window) -> date | None:
    if client.weekend_coverage:
        return None
    day = _local(client, span.start).date()
    last = _local(client, span.end).date()
    while day <= last:
        if day.weekday() in (SATURDAY, SUNDAY):
            return day
        day += timedelta(days=1)
    return None


def check_apply_time(client: ClientProfile, at: datetime, rollback_hours: int) -> WindowDecision:
    """May a planned change for this client be applied at `at` (UTC)?"""
    at = at.astimezone(UTC)
    rollback = Window(at, at + timedelta(hours=rollback_hours))
    local = _local(client, at)
    window = window_on(client, local.date())
    if window is None or not window.contains(at):
        return WindowDecision(
            False,
            f"{at:%Y-%m-%d %H:%M} UTC ({local:%a %H:%M} {client.timezone}) is outside "
            f"{client.name}'s change window",
            None,
            rollback,
            "outside-window",
        )
    freeze = freeze_during(client, Window(at, at))
    if freeze is not None:
        return WindowDecision(
            False,
            f"inside {client.name}'s change freeze {freeze.start}..{freeze.end}: {freeze.reason}",
            window,
            rollback,
            "freeze",
            freeze,
        )
    freeze = freeze_during(client, rollback)
    if freeze is not None:
        return WindowDecision(
            False,
            f"the {rollback_hours} h rollback window would run into the change freeze "
            f"{freeze.start}..{freeze.end} ({freeze.reason})",
            window,
            rollback,
            "freeze-rollback",
            freeze,
        )
    weekend = unstaffed_weekend_during(client, rollback)
    if weekend is not None:
        return WindowDecision(
            False,
            f"the {rollback_hours} h rollback window would run into the weekend ({weekend}) "
            "and the client profile does not say weekends are covered",
            window,
            rollback,
            "weekend",
        )
    return WindowDecision(True, "inside the change window", window, rollback)


def next_window(client: ClientProfile, after: datetime, rollback_hours: int) -> WindowDecision:
    """The first moment from `after` at which a change with this rollback window may be applied."""
    after = after.astimezone(UTC)
    day = _local(client, after).date()
    for _ in range(SEARCH_DAYS):
        window = window_on(client, day)
        if window is not None and window.end > after:
            # Within a window the rollback window only grows later, so its start is the best try.
            at = max(window.start, after)
            decision = check_apply_time(client, at, rollback_hours)
            if decision.ok:
                return decision
        day += timedelta(days=1)
    return WindowDecision(
        False,
        f"no change window in the next {SEARCH_DAYS} days allows a {rollback_hours} h rollback window",
        None,
        Window(after, after),
    )
