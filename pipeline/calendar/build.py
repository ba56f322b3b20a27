"""What the on-call analyst sees on Monday: per client, what is planned, due, overdue, frozen or
conflicting in a date range, and what was changed in the last 60 days (seed: "Change calendars
per client": standing windows, freezes, scheduled changes, a 60-day rolling log).

Pure: the portfolio (its calendars), the change records and the open change requests in, a
typed `CalendarView` out; the renderers (pipeline.render.calendar) print it. Planned changes come
from two places: the calendars' scheduled changes (every occurrence of a recurrence, every step of
an escalation) and the open requests that give a `details.planned_date`; a request for the same
type, domain and date as a scheduled occurrence is that occurrence. Whether a change is done is
read from the records: the record of its request, or an executed record of the client for the
domain of the matching change type (for a type the records do not name, one that changed its
sub-domain), executed from EARLY_DAYS before its planned date on and not rolled back.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from pipeline.gate.decide import rollback_by_risk
from pipeline.gate.requests import ChangeRequest
from pipeline.gate.windows import (
    Window,
    WindowDecision,
    candidates,
    check_apply_time,
    staffed,
    staffing_zone,
    windows_on,
)
from pipeline.load.calendar import (
    DEFAULT_RISK,
    Blackout,
    Freeze,
    ScheduledChange,
    Step,
    recur,
)
from pipeline.load.portfolio import ClientProfile, Portfolio
from pipeline.model import RiskLevel
from pipeline.records.record import ChangeRecord, Outcome

EARLY_DAYS = 30  # a change done up to 30 days before its planned date counts for it
DUE_DAYS = 7  # "due": planned from today to a week ahead
RECENT_DAYS = 60  # seed: "A 60-day rolling log of what's been done"
# The change record's "Change type" of each scheduled type the records know.
RECORD_TYPES = {
    "dkim-rotation": "DKIM rotation",
    "policy-progression": "Policy progression",
    "new-sender": "New sender",
    "emergency-rollback": "Emergency rollback",
}
# What each conflict kind means, for the docs and the renderers.
CONFLICT_KINDS = {
    "same-window": "two changes on one domain in one change window",
    "rollback-into-freeze": "the rollback window would run into a change freeze",
    "rollback-into-weekend": "the rollback window would run into an unwatched weekend",
    "rollback-unstaffed": "the rollback window would end outside staffed hours (the Friday rule)",
    "no-window": "no change window that day takes the change",
    "window-unstaffed": "a change window outside staffed hours",
}
_RULE_CONFLICT = {
    "freeze-rollback": "rollback-into-freeze",
    "weekend": "rollback-into-weekend",
    "unstaffed": "rollback-unstaffed",
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


def this_week(today: date) -> tuple[date, date]:
    """Monday to Sunday of the week holding `today`."""
    monday = today - timedelta(days=today.weekday())
    return monday, monday + timedelta(days=6)


def _days(start: date, end: date) -> list[date]:
    return [start + timedelta(days=n) for n in range((end - start).days + 1)]


# --- planned changes ----------------------------------------------------------------------------


def _reject_hours(portfolio: Portfolio) -> int:
    rule = next((r for r in portfolio.rules.rules if r.id == "dmarc-policy-reject"), None)
    return rule.rollback_hours or 0 if rule is not None else 0


def _hours(
    portfolio: Portfolio,
    rollback: Mapping[RiskLevel, int],
    risk: RiskLevel,
    target: str,
    explicit: int | None,
) -> int:
    """The rollback window the change will have: its own, else its risk's for this client, and
    a p=reject target's (72 h) at least, as the risk rules give it."""
    hours = explicit or rollback[risk]
    if "p=reject" in target.replace(" ", "").lower():
        hours = max(hours, _reject_hours(portfolio))
    return hours


def _status(planned: date, today: date, done: str, frozen: bool) -> Status:
    if done:
        return Status.DONE
    if planned < today:
        return Status.OVERDUE
    if frozen:
        return Status.FROZEN
    if planned < today + timedelta(days=DUE_DAYS):
        return Status.DUE
    return Status.PLANNED


def _done_by(
    records: Sequence[ChangeRecord],
    client: ClientProfile,
    change: ScheduledChange,
    planned: date,
    until: date | None,
    request: str,
) -> str:
    """The record that did this occurrence, or ""."""
    tz = ZoneInfo(client.timezone)
    wanted = RECORD_TYPES.get(change.type)
    for record in records:
        if record.client != client.id or record.executed_at is None:
            continue
        if record.outcome in (Outcome.ROLLED_BACK, Outcome.FAILED):
            continue
        if request and record.request_id == request:
            return record.id
        if change.domain not in record.zones:
            continue
        if wanted is not None and record.change_type.value != wanted:
            continue
        if wanted is None and not change.name:
            continue  # a type the records do not name: only its request, or its sub-domain, tells
        if change.name and not any(
            i.zone == change.domain
            and (i.name == change.name or i.name.endswith("." + change.name))
            for i in record.items
        ):
            continue
        day = record.executed_at.astimezone(tz).date()
        if planned - timedelta(days=EARLY_DAYS) <= day and (
            until is None or day < until - timedelta(days=EARLY_DAYS)
        ):
            return record.id
    return ""


@dataclass(frozen=True)
class _Open:
    """An open request that names a planned date, per zone it covers."""

    request: ChangeRequest
    zone: str
    planned: date
    target: str


def _open_requests(requests: Sequence[ChangeRequest], client: ClientProfile) -> list[_Open]:
    found = []
    for request in requests:
        if request.client != client.id:
            continue
        details = dict(request.details)
        try:
            planned = date.fromisoformat(details.get("planned_date", ""))
        except ValueError:
            continue
        target = details.get("target_policy", "") or details.get("new_selector", "")
        for zone in dict.fromkeys(s.zone for s in request.covers):
            found.append(_Open(request, zone, planned, target))
    return found


def _planned(
    portfolio: Portfolio,
    client: ClientProfile,
    records: Sequence[ChangeRecord],
    requests: Sequence[ChangeRequest],
    start: date,
    end: date,
    today: date,
    rollback: Mapping[RiskLevel, int],
) -> list[PlannedChange]:
    frozen = client.freeze_on
    opened = _open_requests(requests, client)
    claimed: set[tuple[str, str]] = set()
    found: list[PlannedChange] = []
    for change in client.calendar.scheduled:
        occurrences = change.occurrences(max(end, today))
        judged = []
        for index, (n, step) in enumerate(occurrences):
            following = occurrences[index + 1][1].planned if index + 1 < len(occurrences) else None
            if following is None and change.recurrence != "none":
                following = recur(change.steps[0].planned, change.recurrence, n + 1)
            match = next(
                (
                    o
                    for o in opened
                    if o.request.type.value == change.type
                    and o.zone == change.domain
                    and o.planned == step.planned
                ),
                None,
            )
            request = match.request.id if match is not None else ""
            if match is not None:
                claimed.add((match.request.id, match.zone))
            done = _done_by(records, client, change, step.planned, following, request)
            status = _status(step.planned, today, done, frozen(step.planned) is not None)
            # Of a recurrence, an undone occurrence is overtaken by the next one once that is
            # due itself.
            current = following is None or following > today or change.recurrence == "none"
            owner = change.owner or (match.request.author if match is not None else "")
            judged.append((n, step, status, current, request, done, owner))
        for index, (n, step, status, current, request, done, owner) in enumerate(judged):
            in_range = start <= step.planned <= end
            # A past occurrence still undone is shown whatever the range (it is overdue), unless
            # a later one was done since (the series is up to date again).
            overdue = (
                status is Status.OVERDUE
                and current
                and not any(later[2] is Status.DONE for later in judged[index + 1 :])
            )
            if not (in_range and status is not Status.OVERDUE) and not overdue:
                continue
            found.append(
                _scheduled_entry(
                    portfolio, client, change, n, step, status, rollback, request, done, owner
                )
            )
    for item in opened:
        if (item.request.id, item.zone) in claimed:
            continue
        status = _status(item.planned, today, "", frozen(item.planned) is not None)
        if not (start <= item.planned <= end) and status is not Status.OVERDUE:
            continue
        found.append(_request_entry(portfolio, client, item, status, rollback))
    return sorted(found, key=lambda c: (c.planned, c.uid))


def _scheduled_entry(
    portfolio: Portfolio,
    client: ClientProfile,
    change: ScheduledChange,
    n: int,
    step: Step,
    status: Status,
    rollback: Mapping[RiskLevel, int],
    request: str,
    done: str,
    owner: str,
) -> PlannedChange:
    risk = change.risk_of(step)
    if change.recurrence != "none":
        label, uid = f"{change.recurrence}, occurrence {n + 1}", f"{change.id}.{n + 1}"
    elif len(change.steps) > 1:
        label, uid = f"step {n + 1} of {len(change.steps)}", f"{change.id}.step{n + 1}"
    else:
        label, uid = "", change.id
    return PlannedChange(
        client=client.id,
        uid=f"change.{client.id}.{uid}@dmarcops",
        type=change.type,
        domain=change.domain,
        planned=step.planned,
        status=status,
        risk=risk,
        rollback_hours=_hours(
            portfolio, rollback, risk, step.target, step.rollback_hours or change.rollback_hours
        ),
        name=change.name,
        selector=change.selector,
        target=step.target,
        step=label,
        request=request,
        record=done,
        owner=owner,
        note=change.note,
    )


def _request_entry(
    portfolio: Portfolio,
    client: ClientProfile,
    item: _Open,
    status: Status,
    rollback: Mapping[RiskLevel, int],
) -> PlannedChange:
    request = item.request
    risk = request.requested_risk or DEFAULT_RISK.get(request.type.value, RiskLevel.MEDIUM)
    if "p=reject" in item.target.replace(" ", "").lower():
        risk = RiskLevel.HIGH
    several = len({s.zone for s in request.covers}) > 1
    return PlannedChange(
        client=client.id,
        uid=f"request.{client.id}.{request.id}{'.' + item.zone if several else ''}@dmarcops",
        type=request.type.value,
        domain=item.zone,
        planned=item.planned,
        status=status,
        risk=risk,
        rollback_hours=_hours(portfolio, rollback, risk, item.target, None),
        target=item.target if request.type.value == "policy-progression" else "",
        selector=item.target if request.type.value == "dkim-rotation" else "",
        request=request.id,
        owner=request.author,
    )


# --- conflicts ------------------------------------------------------------------------------


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


def _conflicts(
    client: ClientProfile, changes: Sequence[PlannedChange], windows: Sequence[WindowEvent]
) -> list[Conflict]:
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


# --- the view --------------------------------------------------------------------------------


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
        changes = _planned(portfolio, client, records, requests, start, end, today, rollback)
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
                conflicts=tuple(_conflicts(client, changes, windows)),
                recent=tuple(_recent(records, client, now)),
            )
        )
    return CalendarView(now, start, end, tuple(shown))
