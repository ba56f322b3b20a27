"""A client's change calendar (policy/calendars/<client>.yaml) and the MSP's staffed hours
(policy/staffing.yaml), read into the typed values of calendar_model.py.

The client profile's older keys (`change_window`, `freezes`, `weekend_coverage`,
`dkim.<domain>.scheduled`) are still read into the same model, so a policy sealed before the
calendar files existed keeps judging as it did; one thing defined in both places is refused.
"""

from __future__ import annotations

import itertools
import re
import zoneinfo
from collections.abc import Mapping
from datetime import time
from typing import Any

from pipeline.errors import InputError
from pipeline.load.calendar_model import (
    WEEKDAYS,
    Blackout,
    Calendar,
    ChangeWindow,
    Freeze,
    OnCall,
    ScheduledChange,
    StaffedHours,
    Step,
)
from pipeline.load.yamlfile import YamlDocument
from pipeline.model import RiskLevel

DAY_MINUTES = 24 * 60
_SPAN = re.compile(r"^(\d{2}):(\d{2})-(\d{2}):(\d{2})$")


def _spans(
    doc: YamlDocument, where: tuple[str | int, ...], texts: list[str]
) -> list[tuple[int, int]]:
    spans: list[tuple[int, int]] = []
    for i, text in enumerate(texts):
        match = _SPAN.match(str(text))
        if match is None:  # the schema's pattern keeps this from happening
            raise doc.error(
                (*where, i), f"cannot read the span {text!r}", hint="Write HH:MM-HH:MM."
            )
        h1, m1, h2, m2 = (int(g) for g in match.groups())
        start, end = h1 * 60 + m1, h2 * 60 + m2
        if h1 > 23 or m1 > 59 or m2 > 59 or end > DAY_MINUTES or end <= start:
            raise doc.error(
                (*where, i),
                f"{text} is not a span of one day (start before end, 00:00 to 24:00)",
                hint="A span past midnight is two spans: 18:00-24:00 and 00:00-02:00 the next day.",
            )
        spans.append((start, end))
    spans.sort()
    for (_, end), (start, _) in itertools.pairwise(spans):
        if start < end:
            raise doc.error(where, "two staffed spans of one day overlap", hint="Merge them.")
    return spans


def _timezone(doc: YamlDocument, where: tuple[str | int, ...], name: str) -> str:
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise doc.error(
            where,
            f"unknown time zone {name!r}",
            hint="Use an IANA name such as Europe/Berlin or America/Chicago.",
        ) from None
    return name


def staffed_hours_from(doc: YamlDocument, where: tuple[str | int, ...] = ()) -> StaffedHours:
    """policy/staffing.yaml, or a calendar's `staffed_hours:` (where = its key)."""
    data: Mapping[str, Any] = doc.data
    for key in where:
        data = data[key]  # type: ignore[index]
    hours = data.get("hours", {})
    spans = {
        WEEKDAYS.index(day): tuple(_spans(doc, (*where, "hours", day), texts))
        for day, texts in hours.items()
    }
    closed = tuple(
        Blackout(doc.date((*where, "closed", i, "date"), c["date"]), c["reason"])
        for i, c in enumerate(data.get("closed", []))
    )
    tz = data.get("timezone")
    return StaffedHours(
        spans=spans,
        closed=closed,
        timezone=_timezone(doc, (*where, "timezone"), tz) if tz else None,
        file=doc.path,
    )


def _window(
    doc: YamlDocument, where: tuple[str | int, ...], data: Mapping[str, Any]
) -> ChangeWindow:
    default = ChangeWindow()
    opens = time.fromisoformat(data["start"]) if "start" in data else default.start
    closes = time.fromisoformat(data["end"]) if "end" in data else default.end
    if closes <= opens:
        raise doc.error(
            (*where, "end"),
            f"the change window ends ({closes:%H:%M}) before it starts ({opens:%H:%M})",
            hint="Windows are within one day, in the client's time zone.",
        )
    return ChangeWindow(
        days=(
            frozenset(WEEKDAYS.index(d) for d in data["days"]) if "days" in data else default.days
        ),
        start=opens,
        end=closes,
        risks=frozenset(RiskLevel.parse(r) for r in data["risks"]) if "risks" in data else None,
    )


def _freezes(doc: YamlDocument, key: str, items: list[Mapping[str, Any]]) -> list[Freeze]:
    freezes: list[Freeze] = []
    for i, f in enumerate(items):
        start = doc.date((key, i, "start"), f["start"])
        end = doc.date((key, i, "end"), f["end"])
        if end < start:
            raise doc.error((key, i, "end"), f"freeze ends ({end}) before it starts ({start})")
        if any(other.start == start for other in freezes):
            raise doc.error(
                (key, i, "start"),
                f"two freezes start on {start}",
                hint="A freeze is known by its first day (its calendar event's id): merge them.",
            )
        freezes.append(Freeze(start, end, f["reason"]))
    return freezes


def _step(doc: YamlDocument, where: tuple[str | int, ...], data: Mapping[str, Any]) -> Step:
    return Step(
        planned=doc.date((*where, "planned"), data["planned"]),
        target=str(data.get("target", "")),
        risk=RiskLevel.parse(data["risk"]) if "risk" in data else None,
        rollback_hours=data.get("rollback_hours"),
    )


def _scheduled(
    doc: YamlDocument, i: int, data: Mapping[str, Any], domains: tuple[str, ...]
) -> ScheduledChange:
    where: tuple[str | int, ...] = ("scheduled", i)
    domain = str(data["domain"]).lower()
    if domain not in domains:
        raise doc.error(
            (*where, "domain"),
            f"{domain} is not one of this client's domains",
            hint=f"The client's domains: {', '.join(domains)}.",
        )
    if "steps" in data:
        steps = tuple(_step(doc, (*where, "steps", j), s) for j, s in enumerate(data["steps"]))
        if any(b.planned <= a.planned for a, b in itertools.pairwise(steps)):
            raise doc.error(
                (*where, "steps"),
                "escalation steps must be planned in order, each after the one before",
            )
    else:
        steps = (_step(doc, where, data),)
    name = str(data.get("name", ""))
    selector = str(data.get("selector", ""))
    default_id = "-".join(p for p in (data["type"], name, selector, domain) if p)
    return ScheduledChange(
        id=str(data.get("id", default_id)),
        type=str(data["type"]),
        domain=domain,
        steps=steps,
        recurrence=str(data.get("recurrence", "none")),
        name=name,
        selector=selector,
        risk=RiskLevel.parse(data["risk"]) if "risk" in data else None,
        rollback_hours=data.get("rollback_hours"),
        note=str(data.get("note", "")),
        owner=str(data.get("owner", "")),
        line=doc.line_of(where),
    )


def _on_call(doc: YamlDocument, value: Any) -> tuple[OnCall, ...]:
    if isinstance(value, str):
        return (OnCall(value),)
    return tuple(
        OnCall(
            o["analyst"],
            doc.date(("on_call", i, "from"), o["from"]) if "from" in o else None,
            doc.date(("on_call", i, "until"), o["until"]) if "until" in o else None,
        )
        for i, o in enumerate(value)
    )


# The client profile's keys that the calendar file took over, and the calendar key of each.
LEGACY_KEYS = {
    "change_window": "windows",
    "freezes": "freezes",
    "weekend_coverage": "weekend_coverage",
}


def calendar_from(
    profile: YamlDocument,
    own: YamlDocument | None,
    domains: tuple[str, ...],
    staffing: StaffedHours | None,
) -> Calendar:
    """The client's calendar: its calendar file (`own`), with the profile's older keys read into
    the same model; InputError naming the line of anything defined twice or out of place."""
    legacy: Mapping[str, Any] = profile.data
    data: Mapping[str, Any] = own.data if own is not None and own.data else {}
    if own is not None:
        for old, new in LEGACY_KEYS.items():
            if old in legacy and new in data:
                raise own.error(
                    (new,),
                    f"{new} is defined here and as `{old}:` in {profile.path.name}",
                    hint=f"Keep it here and remove `{old}:` from the client profile.",
                )
    doc = own if own is not None else profile

    windows: list[ChangeWindow]
    if "windows" in data:
        assert own is not None
        windows = [_window(own, ("windows", i), w) for i, w in enumerate(data["windows"])]
    else:
        windows = [_window(profile, ("change_window",), legacy.get("change_window", {}))]
    for a_index, a in enumerate(windows):
        for b in windows[a_index + 1 :]:
            if a.days & b.days and a.start < b.end and b.start < a.end:
                raise doc.error(
                    ("windows",),
                    f"the windows {a.label} and {b.label} overlap on "
                    f"{', '.join(WEEKDAYS[d] for d in sorted(a.days & b.days))}",
                    hint="A moment is in one window at most: split or merge them.",
                )

    if "freezes" in data:
        assert own is not None
        freezes = _freezes(own, "freezes", data["freezes"])
    else:
        freezes = _freezes(profile, "freezes", legacy.get("freezes", []))

    blackouts = tuple(
        Blackout(doc.date(("blackouts", i, "date"), b["date"]), b["reason"])
        for i, b in enumerate(data.get("blackouts", []))
    )

    scheduled: list[ScheduledChange] = []
    for domain, lifecycle in (legacy.get("dkim") or {}).items():
        for j, s in enumerate(lifecycle.get("scheduled", [])):
            planned = profile.date(("dkim", domain, "scheduled", j), s["planned"])
            scheduled.append(
                ScheduledChange(
                    id=f"dkim-rotation-{s['selector']}-{domain}",
                    type="dkim-rotation",
                    domain=str(domain).lower(),
                    steps=(Step(planned),),
                    selector=s["selector"],
                    line=profile.line_of(("dkim", domain, "scheduled", j)),
                )
            )
    if own is not None:
        for i, s in enumerate(data.get("scheduled", [])):
            change = _scheduled(own, i, s, domains)
            if any(c.id == change.id for c in scheduled):
                raise own.error(
                    ("scheduled", i),
                    f"scheduled change {change.id!r} is listed twice (here, or as "
                    f"dkim.{change.domain}.scheduled in {profile.path.name})",
                    hint="Give one of them its own `id:`, or remove the duplicate.",
                )
            scheduled.append(change)

    own_staffing = (
        staffed_hours_from(own, ("staffed_hours",))
        if own is not None and "staffed_hours" in data
        else None
    )
    return Calendar(
        windows=tuple(windows),
        blackouts=blackouts,
        freezes=tuple(freezes),
        weekend_coverage=bool(data.get("weekend_coverage", legacy.get("weekend_coverage", False))),
        rollback_hours={
            RiskLevel.parse(k): int(v) for k, v in data.get("rollback_hours", {}).items()
        },
        staffing=own_staffing or staffing,
        on_call=_on_call(doc, data["on_call"]) if "on_call" in data else (),
        scheduled=tuple(scheduled),
        file=own.path if own is not None else None,
    )


def check_rollback_overrides(
    calendar: Calendar, portfolio_hours: Mapping[RiskLevel, int]
) -> InputError | None:
    """A client's rollback window may be longer than the portfolio's, never shorter: the risk
    rules' own windows (72 h for p=reject) still hold for every change."""
    for risk, hours in sorted(calendar.rollback_hours.items()):
        if hours < portfolio_hours[risk]:
            return InputError(
                f"rollback_hours.{risk.label}: {hours} h is shorter than the portfolio's "
                f"{portfolio_hours[risk]} h (policy/risk-rules.yaml)",
                file=calendar.file,
                hint="A client override lengthens a rollback window; to shorten one for every "
                "client, change policy/risk-rules.yaml.",
            )
    return None
