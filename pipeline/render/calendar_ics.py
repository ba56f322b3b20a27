"""`dmarcops calendar --format ics`: the calendar as iCalendar (RFC 5545), for the on-call
analyst's calendar app.

One VEVENT per change window, per freeze and per planned change. UIDs are stable (client, date
and ordinal for a window; client and first day for a freeze; client and the scheduled change's id
and occurrence, or the request's id, for a change), so importing the file again updates the
events instead of adding copies. Windows carry their client's time zone (TZID, with a VTIMEZONE
from the zoneinfo database, so a window across a DST change keeps its local hours); freezes,
blackouts and planned changes are all-day events on the client's local dates. DTSTAMP is the
view's time (the system clock), in UTC.
"""

from __future__ import annotations

from datetime import timedelta

import icalendar

from pipeline.calendar.view import CONFLICT_KINDS, CalendarView, ClientCalendar, Status

PRODID = "-//dmarcops//change calendar//EN"


def _event(uid: str, summary: str, view: CalendarView) -> icalendar.Event:
    event = icalendar.Event()
    event.add("uid", uid)
    event.add("dtstamp", view.now)
    event.add("summary", summary)
    return event


def _client_events(client: ClientCalendar, view: CalendarView) -> list[icalendar.Event]:
    events = []
    for window in client.windows:
        opens, closes = window.local()
        event = _event(window.uid, f"{client.name}: change window ({window.risks})", view)
        event.add("dtstart", opens)
        event.add("dtend", closes)
        event.add("transp", "TRANSPARENT")
        event.add("categories", ["change-window"])
        event.add(
            "description",
            f"Planned changes for {client.name} ({client.id}) may start in this window: "
            f"{window.risks}.",
        )
        events.append(event)
    for freeze in client.freezes:
        event = _event(
            f"freeze.{client.id}.{freeze.start:%Y%m%d}@dmarcops",
            f"{client.name}: change freeze",
            view,
        )
        event.add("dtstart", freeze.start)
        event.add("dtend", freeze.end + timedelta(days=1))  # DTEND of a date is exclusive
        event.add("transp", "TRANSPARENT")
        event.add("categories", ["change-freeze"])
        event.add(
            "description",
            f"{freeze.reason} (through {freeze.end}). During a freeze only an emergency, or a "
            "high-risk change whose client approval names the freeze, passes.",
        )
        events.append(event)
    for blackout in client.blackouts:
        event = _event(
            f"blackout.{client.id}.{blackout.day:%Y%m%d}@dmarcops",
            f"{client.name}: no change window ({blackout.reason})",
            view,
        )
        event.add("dtstart", blackout.day)
        event.add("dtend", blackout.day + timedelta(days=1))
        event.add("transp", "TRANSPARENT")
        event.add("categories", ["blackout"])
        events.append(event)
    for change in client.changes:
        event = _event(change.uid, f"{client.name}: {change.what} [{change.status.value}]", view)
        event.add("dtstart", change.planned)
        event.add("dtend", change.planned + timedelta(days=1))
        event.add("transp", "TRANSPARENT")
        event.add("categories", ["scheduled-change", change.status.value])
        lines = [
            f"{change.type} for {change.domain}"
            + (f" ({change.name})" if change.name else "")
            + f", planned {change.planned}: {change.status.value}.",
            f"Risk {change.risk.label}, rollback window {change.rollback_hours} h.",
        ]
        if change.step:
            lines.append(change.step.capitalize() + ".")
        if change.request:
            lines.append(f"Change request {change.request}.")
        if change.record:
            lines.append(f"Done: change record {change.record}.")
        if change.owner:
            lines.append(f"Owner: {change.owner}.")
        if change.note:
            lines.append(change.note)
        for conflict in client.conflicts:
            if change.uid in conflict.subjects:
                lines.append(f"Conflict ({CONFLICT_KINDS[conflict.kind]}): {conflict.reason}")
        event.add("description", "\n".join(lines))
        if change.status is Status.OVERDUE:
            event.add("priority", 1)
        events.append(event)
    return events


def render_ics(view: CalendarView) -> bytes:
    calendar = icalendar.Calendar()
    calendar.add("prodid", PRODID)
    calendar.add("version", "2.0")
    calendar.add("calscale", "GREGORIAN")
    calendar.add("x-wr-calname", "dmarcops change calendar")
    for client in view.clients:
        for event in _client_events(client, view):
            calendar.add_component(event)
    calendar.add_missing_timezones()
    return bytes(calendar.to_ical())
