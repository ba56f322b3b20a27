"""The plan as the draft of the seed's change record, one section per client/domain, for pull requests.

Fields follow the seed's template (CHANGE RECORD #...): client, domain, record, change type, risk
level, before, after, rationale, approval chain, change window, rollback window, executed,
verification, outcome. Fields only known later (rationale, approvals, execution) are marked pending.
Every string that came from a user or from DNS is escaped.
"""

from __future__ import annotations

from collections.abc import Mapping

from pipeline.classify.change_type import change_type
from pipeline.model import RecordKind, RiskLevel, Severity
from pipeline.plan.items import ItemKey, Plan, PlanItem, RequestRef, ZoneResult
from pipeline.render.text import summary_line
from pipeline.text.markdown import code, escape

MARKER = "<!-- dmarcops-plan -->"

APPROVALS = {
    RiskLevel.LOW: "analyst self-approval, logged (seed: low risk)",
    RiskLevel.MEDIUM: "peer review by a roster analyst who is not the author (seed: medium risk)",
    RiskLevel.HIGH: "peer review **and** written client approval from an authorised approver, "
    "referenced by message-id or ticket (seed: high risk)",
}
SEVERITY_ICON = {
    Severity.INFO: "info",
    Severity.WARNING: "**warning**",
    Severity.ERROR: "**ERROR**",
}


def _values(values: tuple[str, ...]) -> str:
    return "<br>".join(code(v) for v in values) if values else "_(none)_"


def _item(item: PlanItem, request: RequestRef | None, recommend: bool = False) -> list[str]:
    rationale = (
        f"{escape(request.rationale)} (request {code(request.id)} by {escape(request.author)})"
        if request
        else "_a recommendation only: the client is on the self-serve tier and its DNS team "
        "makes the change_"
        if recommend
        else "**missing: no change request covers this change**"
    )
    lines = [
        f"#### {escape(item.action)} {code(item.fqdn)} {escape(item.type)}: "
        f"risk **{item.risk.label}**",
        "",
        "| Field | Value |",
        "|---|---|",
        f"| Record affected | {code(item.name or '@')} {escape(item.type)} ({item.kind.value}) |",
        f"| Change type | {escape(change_type(item.kind, item.facts))} |",
        f"| Risk level | **{item.risk.label.capitalize()}** |",
        f"| Before | {_values(item.before)} |",
        f"| After | {_values(item.after)} |",
        f"| What changes | {'<br>'.join(code(str(f)) for f in item.facts) or '_(nothing)_'} |",
        f"| Why this risk | {'<br>'.join(escape(r) for r in item.reasons) or '_(no rule)_'} |",
        f"| Rationale | {rationale} |",
        f"| Approval needed | {APPROVALS[item.risk]} |",
        "| Change window | _pending: the client's next standing window_ |",
        f"| Rollback window | {item.rollback_hours} h from execution |",
        "| Executed | _pending_ |",
        "| Verification | _pending_ |",
        "| Outcome | _pending_ |",
        "",
    ]
    if item.findings:
        lines.append("Findings on this record:")
        lines.extend(
            f"- {SEVERITY_ICON[f.severity]} {escape(f.code)}: {escape(f.message)}"
            for f in item.findings
        )
        lines.append("")
    return lines


def _zone(
    zone: ZoneResult,
    items: list[PlanItem],
    client_name: str,
    requests: Mapping[ItemKey, RequestRef],
) -> list[str]:
    lines = [f"### {escape(client_name)}: {escape(zone.zone)}", ""]
    lines.append(
        f"Client: {escape(client_name)} ({code(zone.client)}) · Domain affected: "
        f"{escape(zone.zone)} · Provider: {code(zone.provider)}"
    )
    lines.append("")
    if zone.failed:
        lines.append(f"**Planning failed**: {escape(zone.error)}")
        lines.append("")
        return lines
    for item in items:
        lines.extend(
            _item(item, requests.get((item.zone, item.name, item.type)), zone.recommend_only)
        )
    others = [f for f in zone.findings if f.name not in {i.name for i in items}]
    if others:
        lines.append("Findings on unchanged records:")
        lines.extend(
            f"- {SEVERITY_ICON[f.severity]} {escape(f.code)} {code(f.name or '@')}: "
            f"{escape(f.message)}"
            for f in others
        )
        lines.append("")
    if zone.budget_source == "catalog":
        lines.append("_SPF lookup counts are estimated from the sender catalog (DNS not queried)._")
        lines.append("")
    return lines


def render_markdown(
    plan: Plan,
    client_names: Mapping[str, str] | None = None,
    requests: Mapping[ItemKey, RequestRef] | None = None,
) -> str:
    names = client_names or {}
    requests = requests or {}
    overall = plan.risk.label if plan.risk else "none"
    out = [
        MARKER,
        f"## dmarcops plan: risk **{overall}**",
        "",
        f"Plan hash {code(plan.hash)} · generated "
        f"{plan.generated_at.strftime('%Y-%m-%d %H:%M')} UTC",
        "",
        escape(summary_line(plan)),
        "",
    ]
    by_zone: dict[tuple[str, str], list[PlanItem]] = {}
    for item in plan.items:
        by_zone.setdefault((item.client, item.zone), []).append(item)
    for zone in plan.zones:
        items = by_zone.get((zone.client, zone.zone), [])
        if items or zone.failed or zone.findings:
            out.extend(_zone(zone, items, names.get(zone.client, zone.client), requests))
    pending = [i for i in plan.items if i.kind is RecordKind.POLICY]
    if pending:
        out += ["### Policy edits waiting for a lead's seal", ""]
        out += [
            f"- {escape(i.action)} {code(i.name)} (risk {escape(i.risk.label)}): "
            + "; ".join(escape(r) for r in i.reasons)
            for i in pending
        ]
        out.append("")
    return "\n".join(out) + "\n"
