"""The change calendar (`dmarcops calendar`): per client, a date range of windows, freezes and
scheduled changes with their status and conflicts, and the last 60 days of change records."""

from pipeline.calendar.build import build_calendar, this_week
from pipeline.calendar.view import (
    CalendarView,
    ClientCalendar,
    Conflict,
    PlannedChange,
    RecentChange,
    Status,
    WindowEvent,
)

__all__ = [
    "CalendarView",
    "ClientCalendar",
    "Conflict",
    "PlannedChange",
    "RecentChange",
    "Status",
    "WindowEvent",
    "build_calendar",
    "this_week",
]
