"""`dmarcops calendar` as text (people), markdown (a pull request, a wiki page: every user string
escaped) and JSON (machines). The iCalendar form is pipeline.render.calendar_ics."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from pipeline.calendar.view import (
    CONFLICT_KINDS,
    RECENT_DAYS,
    CalendarView,
    ClientCalendar,
    PlannedChange,
    Status,
    WindowEvent,
)
from pipeline.text.markdown import code, escape
from pipeline.text.safe import clean

FORMAT_VERSION = 1


def _window_text(window: WindowEvent) -> str:
    opens, closes = window.local()
    return (
        f"{window.day:%a %Y-%m-%d} {opens:%H:%M}-{closes:%H:%M} {opens:%Z} "
        f"({window.start:%H:%M}-{window.end:%H:%M} UTC), {window.risks}"
    )


def _change_facts(change: PlannedChange) -> list[str]:
    facts = [f"{change.risk.label} risk, {change.rollback_hours} h rollback"]
    if change.step:
        facts.append(change.step)
    if change.request:
        facts.append(f"request {change.request}")
    if change.record:
        facts.append(f"record {change.record}")
    if change.owner:
        facts.append(f"owner {change.owner}")
    if change.note:
        facts.append(change.note)
    return facts


def _summary(view: CalendarView) -> str:
    counts = ", ".join(f"{view.count(s)} {s.value}" for s in Status)
    return f"{counts}; {len(view.conflicts)} conflict(s)"


# --- text -------------------------------------------------------------------------------------


def render_text(view: CalendarView) -> str:
    out = [
        f"Change calendar {view.start}..{view.end} (as of {view.now:%Y-%m-%d %H:%M} UTC)",
        "",
    ]
    for client in view.clients:
        out += _client_text(client)
    out.append(_summary(view))
    return "\n".join(out) + "\n"


def _client_text(client: ClientCalendar) -> list[str]:
    t = clean
    out = [
        f"{t(client.name)} ({client.id}, {client.timezone}), today {client.today}, "
        f"on call: {', '.join(client.on_call) or 'nobody named'}"
    ]
    out.append("  windows:" if client.windows else "  windows: none in this range")
    out += [f"    {_window_text(w)}" for w in client.windows]
    for freeze in client.freezes:
        out.append(f"  frozen: {freeze.start}..{freeze.end} {t(freeze.reason)}")
    for blackout in client.blackouts:
        out.append(f"  blackout: {blackout.day} {t(blackout.reason)}")
    out.append("  changes:" if client.changes else "  changes: none planned")
    for change in client.changes:
        out.append(
            f"    {change.status.value.upper():<8}{change.planned}  {t(change.what)}  "
            f"[{t('; '.join(_change_facts(change)))}]"
        )
    out.append("  conflicts:" if client.conflicts else "  conflicts: none")
    for conflict in client.conflicts:
        out.append(f"    {conflict.day} {conflict.kind}: {t(conflict.reason)}")
    out.append(
        f"  changed in the last {RECENT_DAYS} days:"
        if client.recent
        else f"  changed in the last {RECENT_DAYS} days: nothing"
    )
    for recent in client.recent:
        out.append(
            f"    {recent.when:%Y-%m-%d %H:%M} UTC  #{recent.id}  {t(', '.join(recent.zones))}  "
            f"{t(recent.change_type)}, {recent.risk.label}, {recent.outcome}"
            + (f", by {t(recent.executed_by)}" if recent.executed_by else "")
            + (f", on call {t(recent.on_call)}" if recent.on_call else "")
        )
    out.append("")
    return out


# --- markdown ---------------------------------------------------------------------------------


def render_markdown(view: CalendarView) -> str:
    out = [f"## Change calendar {view.start}..{view.end}", ""]
    out.append(f"As of {view.now:%Y-%m-%d %H:%M} UTC: {_summary(view)}.")
    out.append("")
    for client in view.clients:
        out += _client_markdown(client)
    return "\n".join(out) + "\n"


def _table(head: list[str], rows: list[list[str]]) -> list[str]:
    return [
        "| " + " | ".join(head) + " |",
        "|" + "---|" * len(head),
        *("| " + " | ".join(row) + " |" for row in rows),
        "",
    ]


def _client_markdown(client: ClientCalendar) -> list[str]:
    e: Callable[[str], str] = escape
    out = [f"### {e(client.name)} ({code(client.id)}, {e(client.timezone)})", ""]
    out.append(f"Today {client.today}; on call: {e(', '.join(client.on_call)) or 'nobody named'}.")
    out.append("")
    for freeze in client.freezes:
        out.append(f"- **Frozen** {freeze.start}..{freeze.end}: {e(freeze.reason)}")
    for blackout in client.blackouts:
        out.append(f"- **Blackout** {blackout.day}: {e(blackout.reason)}")
    if client.freezes or client.blackouts:
        out.append("")
    if client.windows:
        out += _table(
            ["Window (local)", "UTC", "Takes"],
            [
                [
                    f"{w.day:%a %Y-%m-%d} {w.local()[0]:%H:%M}-{w.local()[1]:%H:%M} "
                    f"{w.local()[0]:%Z}",
                    f"{w.start:%H:%M}-{w.end:%H:%M}",
                    e(w.risks),
                ]
                for w in client.windows
            ],
        )
    else:
        out += ["No change window in this range.", ""]
    if client.changes:
        out += _table(
            ["Status", "Planned", "Change", "Details"],
            [
                [
                    f"**{c.status.value}**",
                    str(c.planned),
                    e(c.what),
                    e("; ".join(_change_facts(c))),
                ]
                for c in client.changes
            ],
        )
    else:
        out += ["No changes planned.", ""]
    if client.conflicts:
        out.append("Conflicts:")
        out.append("")
        out += [f"- {c.day} {code(c.kind)}: {e(c.reason)}" for c in client.conflicts]
        out.append("")
    if client.recent:
        out += _table(
            ["Record", "When (UTC)", "Domains", "Type", "Risk", "Outcome"],
            [
                [
                    code(r.id),
                    f"{r.when:%Y-%m-%d %H:%M}",
                    e(", ".join(r.zones)),
                    e(r.change_type),
                    r.risk.label,
                    e(r.outcome),
                ]
                for r in client.recent
            ],
        )
    else:
        out += [f"Nothing changed in the last {RECENT_DAYS} days.", ""]
    return out


# --- JSON -------------------------------------------------------------------------------------


def _utc(value: datetime) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")


def _local(value: datetime, tz: str) -> str:
    return value.astimezone(ZoneInfo(tz)).isoformat()


def view_json(view: CalendarView) -> dict[str, Any]:
    return {
        "format_version": FORMAT_VERSION,
        "generated_at": _utc(view.now),
        "from": str(view.start),
        "to": str(view.end),
        "conflict_kinds": CONFLICT_KINDS,
        "clients": [
            {
                "client": c.id,
                "name": c.name,
                "timezone": c.timezone,
                "today": str(c.today),
                "on_call": list(c.on_call),
                "windows": [
                    {
                        "uid": w.uid,
                        "day": str(w.day),
                        "start": _utc(w.start),
                        "end": _utc(w.end),
                        "start_local": _local(w.start, w.timezone),
                        "end_local": _local(w.end, w.timezone),
                        "risks": w.risks,
                    }
                    for w in c.windows
                ],
                "freezes": [
                    {"start": str(f.start), "end": str(f.end), "reason": f.reason}
                    for f in c.freezes
                ],
                "blackouts": [{"date": str(b.day), "reason": b.reason} for b in c.blackouts],
                "changes": [
                    {
                        "uid": ch.uid,
                        "status": ch.status.value,
                        "planned": str(ch.planned),
                        "type": ch.type,
                        "domain": ch.domain,
                        "name": ch.name,
                        "selector": ch.selector,
                        "target": ch.target,
                        "step": ch.step,
                        "risk": ch.risk.label,
                        "rollback_hours": ch.rollback_hours,
                        "request": ch.request or None,
                        "record": ch.record or None,
                        "owner": ch.owner or None,
                        "note": ch.note,
                    }
                    for ch in c.changes
                ],
                "conflicts": [
                    {
                        "kind": k.kind,
                        "day": str(k.day),
                        "subjects": list(k.subjects),
                        "reason": k.reason,
                    }
                    for k in c.conflicts
                ],
                "recent": [
                    {
                        "record": r.id,
                        "when": _utc(r.when),
                        "zones": list(r.zones),
                        "change_type": r.change_type,
                        "risk": r.risk.label,
                        "outcome": r.outcome,
                        "executed_by": r.executed_by,
                        "on_call": r.on_call or None,
                    }
                    for r in c.recent
                ],
            }
            for c in view.clients
        ],
    }


def render_json(view: CalendarView) -> str:
    return json.dumps(view_json(view), indent=2, ensure_ascii=False) + "\n"
