"""The plan for a terminal: one block per change, a summary line at the end.

Colour is added with click.style; click.echo drops it when the output is not a terminal.
"""

from __future__ import annotations

from collections.abc import Mapping

import click

from pipeline.model import RecordKind, RiskLevel, Severity
from pipeline.plan.items import ItemKey, Plan, PlanItem, RequestRef
from pipeline.text.safe import clean, shown

RISK_COLOUR = {RiskLevel.LOW: "green", RiskLevel.MEDIUM: "yellow", RiskLevel.HIGH: "red"}
SEVERITY_COLOUR = {Severity.INFO: "cyan", Severity.WARNING: "yellow", Severity.ERROR: "red"}
ACTION_MARK = {"create": "+", "update": "~", "delete": "-"}


def summary_line(plan: Plan) -> str:
    counts = plan.action_counts()
    risks = plan.risk_counts()
    line = (
        f"{counts['create']} to create, {counts['update']} to update, "
        f"{counts['delete']} to delete; risk: "
        + ", ".join(f"{risks[level]} {level.label}" for level in RiskLevel)
    )
    if plan.failed_zones:
        line += f"; {len(plan.failed_zones)} zone(s) failed"
    return line


LONG = 100


def _short(value: str) -> str:
    # Values come from live DNS and from pull requests: a terminal must never receive their control
    # characters (an escape sequence could rewrite what the reviewer sees), and a value with spaces
    # at its edges is quoted so that the spaces are seen.
    value = shown(value)
    # A 2048-bit DKIM key is ~400 characters: a terminal shows its start and its length; the
    # JSON and markdown outputs keep the whole value.
    return value if len(value) <= LONG else f"{value[: LONG - 20]}... ({len(value)} chars)"


RECOMMENDATION = (
    "none needed: a recommendation only (self-serve tier: the client's DNS team makes it)"
)


def _item(item: PlanItem, request: RequestRef | None, recommend: bool = False) -> list[str]:
    risk = click.style(item.risk.label.upper(), fg=RISK_COLOUR[item.risk], bold=True)
    lines = [
        f"  {ACTION_MARK[item.action]} {shown(item.fqdn)} {clean(item.type)} ({item.kind.value}) "
        f"{item.action}  risk: {risk}"
    ]
    for value in item.before:
        if value not in item.after:
            lines.append(click.style(f"      - {_short(value)}", fg="red"))
    for value in item.after:
        if value not in item.before:
            lines.append(click.style(f"      + {_short(value)}", fg="green"))
    kept = [v for v in item.after if v in item.before]
    for value in kept:
        lines.append(f"        {_short(value)}")
    if item.ttl_before != item.ttl_after and item.ttl_before and item.ttl_after:
        lines.append(f"      ttl {item.ttl_before} -> {item.ttl_after}")
    if item.facts:
        lines.append("      changes: " + clean("; ".join(str(f) for f in item.facts)))
    for reason in item.reasons:
        lines.append(f"      why {clean(reason)}")
    lines.append(f"      rollback window: {item.rollback_hours} h")
    if request is not None:
        lines.append(
            f"      request: {clean(request.id)} ({clean(request.type)}, by {clean(request.author)})"
        )
    elif recommend:
        lines.append(f"      request: {RECOMMENDATION}")
    else:
        lines.append(
            click.style("      request: NONE (every change needs a change request)", fg="red")
        )
    return lines


def render_text(plan: Plan, requests: Mapping[ItemKey, RequestRef] | None = None) -> str:
    requests = requests or {}
    out: list[str] = []
    by_zone: dict[tuple[str, str], list[PlanItem]] = {}
    for item in plan.items:
        by_zone.setdefault((item.client, item.zone), []).append(item)
    for zone in plan.zones:
        header = (
            click.style(f"{clean(zone.client)} / {shown(zone.zone)}", bold=True)
            + f"  (via {clean(zone.provider)})"
        )
        if zone.failed:
            out.append(header)
            out.append(click.style(f"  FAILED: {clean(zone.error)}", fg="red", bold=True))
            out.append("")
            continue
        items = by_zone.get((zone.client, zone.zone), [])
        if not items and not zone.findings:
            continue
        out.append(header)
        out.extend(
            line
            for item in items
            for line in _item(
                item, requests.get((item.zone, item.name, item.type)), zone.recommend_only
            )
        )
        if not items:
            out.append("  no changes")
        for finding in zone.findings:
            sev = click.style(finding.severity.label, fg=SEVERITY_COLOUR[finding.severity])
            where = finding.name or "@"
            out.append(f"  {sev} {clean(finding.code)} {shown(where)}: {clean(finding.message)}")
        if zone.budget_source == "catalog":
            out.append("  note: SPF lookup counts estimated from the sender catalog (no DNS)")
        out.append("")
    pending = [i for i in plan.items if i.kind is RecordKind.POLICY]
    if pending:
        out.append(click.style("policy/ (edits waiting for a lead's seal)", bold=True))
        for item in pending:
            risk_label = click.style(item.risk.label.upper(), fg=RISK_COLOUR[item.risk], bold=True)
            out.append(
                f"  {ACTION_MARK[item.action]} {shown(item.name)} {item.action}  risk: {risk_label}"
            )
            out.extend(f"      why {clean(reason)}" for reason in item.reasons)
        out.append("")
    overall = plan.risk
    risk = (
        click.style(overall.label.upper(), fg=RISK_COLOUR[overall], bold=True)
        if overall
        else "none"
    )
    out.append(f"Plan {plan.hash[:16]}  overall risk: {risk}")
    out.append(summary_line(plan))
    return "\n".join(out) + "\n"
