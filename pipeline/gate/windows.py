"""Change windows, freezes, staffed hours and rollback windows (the seed's "Change windows and
rollback windows", and its "rollback window of zero" change: executed at 5pm Friday with no one
watching).

Planned changes run only inside one of the client's standing windows that takes their risk (its
own time zone), never on a blackout date or inside a freeze, and not when the rollback window that
follows would run into a freeze or into an unstaffed weekend (unless the client profile says
weekends are covered), nor when the change starts or its rollback window ends outside the MSP's
staffed hours (policy/staffing.yaml: the Friday rule). The weekend and staffed-hours rules are the
ones an on-call owner can cover (pipeline.gate.decide). All inputs and outputs are UTC; the client's
time zone is used only to decide what "Tuesday 09:00" and "a weekend" mean for that client.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from pipeline.load.calendar_model import SATURDAY, SUNDAY, ChangeWindow, Freeze
from pipeline.load.portfolio import ClientProfile
from pipeline.model import RiskLevel

SEARCH_DAYS = 400  # a year of freezes and a holiday season still leaves a window to find
# The time rules an on-call owner named in the request may cover (pipeline.gate.decide).
COVERABLE_RULES = frozenset({"weekend", "unstaffed"})


@dataclass(frozen=True)
class Window:
    start: datetime  # UTC
    end: datetime  # UTC
    spec: ChangeWindow | None = None  # the standing window this is a day of

    def contains(self, at: datetime) -> bool:
        return self.start <= at < self.end


@dataclass(frozen=True)
class WindowDecision:
    ok: bool
    reason: str
    window: Window | None  # the window `at` falls in, when it does
    rollback: Window  # the rollback window a change made at `at` would have
    # which rule said no: outside-window | freeze | freeze-rollback | weekend | unstaffed
    rule: str = ""
    freeze: Freeze | None = None  # the freeze that said no, for a freeze exception

    @property
    def coverable(self) -> bool:
        """Refused only for want of someone watching: an on-call owner may cover it."""
        return not self.ok and self.rule in COVERABLE_RULES


def _local(client: ClientProfile, at: datetime) -> datetime:
    return at.astimezone(ZoneInfo(client.timezone))


def windows_on(client: ClientProfile, day: date) -> list[Window]:
    """The standing windows on a local calendar day, in time order (none on a blackout date)."""
    if client.calendar.blackout_on(day) is not None:
        return []
    tz = ZoneInfo(client.timezone)
    found = [
        Window(
            datetime.combine(day, spec.start, tzinfo=tz).astimezone(UTC),
            datetime.combine(day, spec.end, tzinfo=tz).astimezone(UTC),
            spec,
        )
        for spec in client.calendar.windows
        if day.weekday() in spec.days
    ]
    return sorted(found, key=lambda w: w.start)


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


def staffing_zone(client: ClientProfile) -> ZoneInfo:
    staffing = client.calendar.staffing
    return ZoneInfo(staffing.timezone if staffing and staffing.timezone else client.timezone)


def staffed(client: ClientProfile, at: datetime) -> bool:
    """Is someone at the MSP watching this client at `at`? Always, without staffing data; on the
    client's own weekend days when it has weekend coverage."""
    staffing = client.calendar.staffing
    if staffing is None:
        return True
    if client.weekend_coverage and _local(client, at).weekday() in (SATURDAY, SUNDAY):
        return True
    return staffing.staffed_at(at.astimezone(staffing_zone(client)))


def _staffed_text(client: ClientProfile, at: datetime) -> str:
    staffing = client.calendar.staffing
    assert staffing is not None
    local = at.astimezone(staffing_zone(client))
    return (
        f"{local:%a %Y-%m-%d %H:%M} {local.tzinfo}; staffed that day: "
        f"{staffing.describe(local.date())}"
    )


def check_apply_time(
    client: ClientProfile,
    at: datetime,
    rollback_hours: int,
    risk: RiskLevel | None = None,
    *,
    on_call: bool = False,
) -> WindowDecision:
    """May a planned change of this risk for this client be applied at `at` (UTC)? `on_call`: an
    on-call owner covers the unwatched hours, so the weekend and staffed-hours rules are met."""
    at = at.astimezone(UTC)
    rollback = Window(at, at + timedelta(hours=rollback_hours))
    local = _local(client, at)
    window = next((w for w in windows_on(client, local.date()) if w.contains(at)), None)
    if window is None:
        blackout = client.calendar.blackout_on(local.date())
        why = f" (blackout {blackout.day}: {blackout.reason})" if blackout is not None else ""
        return WindowDecision(
            False,
            f"{at:%Y-%m-%d %H:%M} UTC ({local:%a %H:%M} {client.timezone}) is outside "
            f"{client.name}'s change window{why}",
            None,
            rollback,
            "outside-window",
        )
    if window.spec is not None and not window.spec.admits(risk):
        assert risk is not None
        return WindowDecision(
            False,
            f"{at:%Y-%m-%d %H:%M} UTC ({local:%a %H:%M} {client.timezone}) is in "
            f"{client.name}'s {window.spec.label} window, which takes "
            f"{window.spec.risks_label()}: not a {risk.label}-risk change",
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
    if on_call:
        return WindowDecision(True, "inside the change window, on-call cover", window, rollback)
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
    if not staffed(client, at):
        return WindowDecision(
            False,
            f"the change would start outside staffed hours ({_staffed_text(client, at)})",
            window,
            rollback,
            "unstaffed",
        )
    if not staffed(client, rollback.end):
        return WindowDecision(
            False,
            f"the {rollback_hours} h rollback window would end outside staffed hours "
            f"({_staffed_text(client, rollback.end)}): nobody would be watching when it closes",
            window,
            rollback,
            "unstaffed",
        )
    return WindowDecision(True, "inside the change window", window, rollback)


def candidates(
    client: ClientProfile, window: Window, after: datetime, rollback_hours: int
) -> list[datetime]:
    """Moments in `window` worth trying: its start, and each moment at which the change or its
    rollback window's end would meet the start of a staffed span (a later start can pass the
    staffed-hours rule where an earlier one does not)."""
    first = max(window.start, after)
    found = {first}
    staffing = client.calendar.staffing
    if staffing is not None:
        tz = staffing_zone(client)
        day = window.start.astimezone(tz).date()
        for offset in range(-1, rollback_hours // 24 + 3):
            for start, _ in staffing.spans_on(day + timedelta(days=offset)):
                opens = datetime.combine(day + timedelta(days=offset), datetime.min.time(), tz)
                opens = (opens + timedelta(minutes=start)).astimezone(UTC)
                for at in (opens, opens - timedelta(hours=rollback_hours)):
                    if first <= at and window.contains(at):
                        found.add(at)
    return sorted(found)


def next_window(
    client: ClientProfile,
    after: datetime,
    rollback_hours: int,
    risk: RiskLevel | None = None,
) -> WindowDecision:
    """The first moment from `after` at which a change with this rollback window may be applied."""
    after = after.astimezone(UTC)
    day = _local(client, after).date()
    for _ in range(SEARCH_DAYS):
        for window in windows_on(client, day):
            if window.end <= after or (window.spec is not None and not window.spec.admits(risk)):
                continue
            for at in candidates(client, window, after, rollback_hours):
                decision = check_apply_time(client, at, rollback_hours, risk)
                if decision.ok:
                    return decision
        day += timedelta(days=1)
    return WindowDecision(
        False,
        f"no change window in the next {SEARCH_DAYS} days allows a {rollback_hours} h rollback window",
        None,
        Window(after, after),
    )
