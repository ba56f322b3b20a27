"""The planned changes of one client's calendar, and whether each is done.

They come from two places: the calendar's scheduled changes (every occurrence of a recurrence,
every step of an escalation) and the open requests that give a `details.planned_date`; a request
for the same type, domain and date as a scheduled occurrence is that occurrence. Whether a change
is done is read from the records: the record of its request, or an executed record of the client
for the domain of the matching change type (for a type the records do not name, one that changed
its sub-domain), executed from EARLY_DAYS before its planned date on and not rolled back.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from zoneinfo import ZoneInfo

from pipeline.calendar.view import PlannedChange, Status
from pipeline.gate.requests import ChangeRequest
from pipeline.load.calendar_model import DEFAULT_RISK, ScheduledChange, Step, recur
from pipeline.load.portfolio import ClientProfile, Portfolio
from pipeline.model import RiskLevel
from pipeline.records.record import ChangeRecord, Outcome

EARLY_DAYS = 30  # a change done up to 30 days before its planned date counts for it
DUE_DAYS = 7  # "due": planned from today to a week ahead
# The change record's "Change type" of each scheduled type the records know.
RECORD_TYPES = {
    "dkim-rotation": "DKIM rotation",
    "policy-progression": "Policy progression",
    "new-sender": "New sender",
    "emergency-rollback": "Emergency rollback",
}


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


def planned_changes(
    portfolio: Portfolio,
    client: ClientProfile,
    records: Sequence[ChangeRecord],
    requests: Sequence[ChangeRequest],
    start: date,
    end: date,
    today: date,
    rollback: Mapping[RiskLevel, int],
) -> list[PlannedChange]:
    """The changes of `client` planned from `start` to `end` (its local dates), and every earlier
    one still undone (overdue), by planned date."""
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
