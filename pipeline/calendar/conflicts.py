"""The conflicts of one client's calendar: planned changes no window takes, or whose rollback
window runs into a freeze, a weekend or unstaffed hours (the one gate's time rules,
pipeline.gate.windows, asked as the gate would on the planned day); two changes on one domain in
one window; windows outside staffed hours."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from zoneinfo import ZoneInfo

from pipeline.calendar.view import Conflict, PlannedChange, Status, WindowEvent
from pipeline.gate.windows import (
    Window,
    WindowDecision,
    candidates,
    check_apply_time,
    staffed,
    staffing_zone,
    windows_on,
)
from pipeline.load.portfolio import ClientProfile

# The conflict kind (a key of CONFLICT_KINDS) of each time rule of the gate that can refuse a
# planned change.
_RULE_CONFLICT = {
    "freeze-rollback": "rollback-into-freeze",
    "weekend": "rollback-into-weekend",
    "unstaffed": "rollback-unstaffed",
}


def _placement(
    client: ClientProfile, change: PlannedChange
) -> tuple[Window | None, WindowDecision | None]:
    """Where on its planned day the change would run: the first moment a window that takes its
    risk allows it, else the first refusal (None, None: no window that day takes it)."""
    first: WindowDecision | None = None
    for window in windows_on(client, change.planned):
        if window.spec is not None and not window.spec.admits(change.risk):
            continue
        for at in candidates(client, window, window.start, change.rollback_hours):
            decision = check_apply_time(client, at, change.rollback_hours, change.risk)
            if decision.ok:
                return window, decision
            first = first or decision
            if first.window is None:
                first = WindowDecision(
                    False, first.reason, window, first.rollback, first.rule, first.freeze
                )
    return (first.window, first) if first is not None else (None, None)


def find_conflicts(
    client: ClientProfile, changes: Sequence[PlannedChange], windows: Sequence[WindowEvent]
) -> list[Conflict]:
    """The conflicts of the due and planned `changes` and the `windows` of `client`, by day."""
    found: list[Conflict] = []
    slots: dict[tuple[str, datetime], list[PlannedChange]] = {}
    for change in changes:
        if change.status not in (Status.DUE, Status.PLANNED):
            continue
        window, decision = _placement(client, change)
        if window is None:
            blackout = client.calendar.blackout_on(change.planned)
            why = f" (blackout: {blackout.reason})" if blackout is not None else ""
            found.append(
                Conflict(
                    client.id,
                    "no-window",
                    change.planned,
                    (change.uid,),
                    f"{change.what} is planned on {change.planned:%a %Y-%m-%d}, when no change "
                    f"window takes a {change.risk.label}-risk change{why}",
                )
            )
            continue
        slots.setdefault((change.domain, window.start), []).append(change)
        if decision is not None and not decision.ok and decision.rule in _RULE_CONFLICT:
            cover = (
                " (an on-call owner named in the request can cover it)"
                if decision.coverable
                else ""
            )
            found.append(
                Conflict(
                    client.id,
                    _RULE_CONFLICT[decision.rule],
                    change.planned,
                    (change.uid,),
                    f"{change.what} ({change.risk.label} risk, {change.rollback_hours} h) on "
                    f"{change.planned:%a %Y-%m-%d}: {decision.reason}{cover}",
                )
            )
    tz = ZoneInfo(client.timezone)
    for (domain, opens), together in sorted(slots.items()):
        if len(together) < 2:
            continue
        local = opens.astimezone(tz)
        found.append(
            Conflict(
                client.id,
                "same-window",
                local.date(),
                tuple(c.uid for c in together),
                f"{' and '.join(c.what for c in together)} are planned in the same change "
                f"window ({local:%a %Y-%m-%d %H:%M} {client.timezone}): two changes on {domain} "
                "in one window",
            )
        )
    for event in windows:
        ends_open = staffed(client, event.start) and staffed(client, event.end)
        if ends_open:
            continue
        staffing = client.calendar.staffing
        assert staffing is not None  # staffed() is always true without staffing data
        zone = staffing_zone(client)
        day = event.start.astimezone(zone).date()
        opens, closes = event.local()
        found.append(
            Conflict(
                client.id,
                "window-unstaffed",
                event.day,
                (event.uid,),
                f"the {opens:%H:%M}-{closes:%H:%M} window on {event.day:%a %Y-%m-%d} is "
                f"outside staffed hours ({day:%a}: {staffing.describe(day)} {zone})",
            )
        )
    return sorted(found, key=lambda c: (c.day, c.kind, c.subjects))
