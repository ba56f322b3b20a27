"""The drift report for people (text), pull requests and job summaries (markdown), and machines
(JSON: DriftReport.to_json). Every string that came from DNS or a file is escaped."""

from __future__ import annotations

import json
from collections.abc import Mapping

import click

from pipeline.drift.detect import PENDING, STATUS_TEXT, UNRECORDED, DriftItem, DriftReport
from pipeline.model import RiskLevel
from pipeline.render.text import RISK_COLOUR, _short
from pipeline.text.markdown import code, escape
from pipeline.text.safe import clean, json_text, shown

MARK = {UNRECORDED: "!", PENDING: "~"}


def _values(values: tuple[str, ...]) -> str:
    return " | ".join(_short(v) for v in values) if values else "(none)"


def what_to_do(item: DriftItem) -> list[str]:
    """The two ways out of an unrecorded change, as commands."""
    selector = f"{item.zone} {item.name or '@'} {item.type}"
    keep = (
        "the zone file already wants the live value: adopting only records it"
        if item.zone_file_matches
        else "adopting also sets the zone file to the live value"
    )
    if not item.before and not item.desired:
        revert = "revert (remove it): the zone file does not hold it; "
    elif item.desired == item.before:
        revert = "revert: the zone file still holds the expected value; "
    else:
        revert = "revert: set the zone file to the value you want, then "
    return [
        f"keep it: dmarcops drift adopt --record '{selector}' --key YOUR-KEY ({keep})",
        f"{revert}dmarcops new other --client {item.client} --cover '{selector}' "
        "--author YOUR-ID, then plan, approve and apply it as any change",
    ]


def _item_text(item: DriftItem) -> list[str]:
    risk = click.style(item.risk.label.upper(), fg=RISK_COLOUR[item.risk], bold=True)
    mark = MARK.get(item.status, "?")
    lines = [
        f"  {mark} {shown(item.fqdn)} {clean(item.type)} ({item.kind.value}) "
        f"{STATUS_TEXT[item.status]}  risk: {risk}"
    ]
    if item.status == UNRECORDED:
        source = (
            f"as {clean(item.baseline)} left it"
            if item.baseline.startswith("record")
            else "as the zone file says (no record touched it yet)"
        )
        lines.append(f"      expected {source}; live differs:")
        lines.append(click.style(f"      - {_values(item.before)}", fg="red"))
        lines.append(click.style(f"      + {_values(item.after)}  (live)", fg="green"))
        if item.ttl_before != item.ttl_after and item.ttl_before and item.ttl_after:
            lines.append(f"      ttl {item.ttl_before} -> {item.ttl_after}")
        if item.facts:
            lines.append("      changes: " + clean("; ".join(str(f) for f in item.facts)))
        lines += [f"      why {clean(r)}" for r in item.reasons]
        for finding in item.findings:
            lines.append(
                f"      {finding.severity.label} {clean(finding.code)} on the live value: "
                f"{clean(finding.message)}"
            )
        if item.request:
            lines.append(
                f"      request {clean(item.request)} covers it: its plan shows this live value "
                "as its before"
            )
        lines += [f"      {clean(line)}" for line in what_to_do(item)]
    else:
        where = (
            f"live is as {clean(item.baseline)} left it"
            if item.baseline.startswith("record")
            else "no record touched it yet"
        )
        why = (
            f"{clean(item.request)} asks for it, not applied yet"
            if item.status == PENDING
            else "no open request covers that edit"
        )
        lines.append(f"      {where}; the zone file wants a change: {why}")
        if item.facts:
            lines.append("      changes: " + clean("; ".join(str(f) for f in item.facts)))
    return lines


def summary(report: DriftReport) -> str:
    drift = report.unrecorded
    zones = len({(i.client, i.zone) for i in drift})
    risks = ", ".join(
        f"{sum(1 for i in drift if i.risk is level)} {level.label}" for level in RiskLevel
    )
    pending = sum(1 for i in report.items if i.status == PENDING)
    others = len(report.items) - len(drift) - pending
    head = (
        f"Drift: {len(drift)} unrecorded change(s) in {zones} zone(s) (risk: {risks})"
        if drift
        else "No drift: live DNS is what the records and zone files say"
    )
    return (
        f"{head}; {pending} pending, {others} zone-file edit(s) without a request; "
        f"{len(report.zones)} zone(s) compared, {len(report.failed_zones)} unreadable"
    )


def render_text(report: DriftReport) -> str:
    out: list[str] = []
    by_zone: dict[tuple[str, str], list[DriftItem]] = {}
    for item in report.items:
        by_zone.setdefault((item.client, item.zone), []).append(item)
    for zone in report.zones:
        items = by_zone.get((zone.client, zone.zone), [])
        if not items and not zone.failed:
            continue
        tier = "  self-serve: monitored, recommendations only" if zone.recommend_only else ""
        out.append(
            click.style(f"{clean(zone.client)} / {shown(zone.zone)}", bold=True)
            + f"  (via {clean(zone.provider)}){tier}"
        )
        if zone.failed:
            out.append(click.style(f"  FAILED: {clean(zone.error)}", fg="red", bold=True))
        for item in items:
            out.extend(_item_text(item))
        out.append("")
    out.append(summary(report))
    return "\n".join(out) + "\n"


def render_markdown(report: DriftReport, names: Mapping[str, str] | None = None) -> str:
    names = names or {}
    out = [
        "## Drift: live DNS against the records and zone files",
        "",
        f"Compared {report.generated_at:%Y-%m-%d %H:%M} UTC. {escape(summary(report))}.",
        "",
    ]
    drift = report.unrecorded
    if drift:
        out += [
            "| Client | Record | Recorded | Before | After (live) | What changed | Risk |",
            "|---|---|---|---|---|---|---|",
        ]
        for i in drift:
            out.append(
                f"| {escape(names.get(i.client, i.client))} | {code(i.fqdn)} {escape(i.type)} | "
                f"{escape(i.baseline)} | "
                + ("<br>".join(code(v) for v in i.before) or "_(none)_")
                + " | "
                + ("<br>".join(code(v) for v in i.after) or "_(none)_")
                + " | "
                + ("<br>".join(code(str(f)) for f in i.facts) or "_(TTL only)_")
                + f" | **{i.risk.label}**<br>"
                + "<br>".join(escape(r) for r in i.reasons)
                + " |"
            )
        out += [
            "",
            "Keep a change: `dmarcops drift adopt --record 'ZONE NAME TYPE' --key KEY`. "
            "Undo it: a normal change request covering the record (docs/drift.md).",
            "",
        ]
    failed = report.failed_zones
    if failed:
        out.append("Zones that could not be read:")
        out += [f"- {escape(z.zone)}: {escape(z.error)}" for z in failed]
        out.append("")
    return "\n".join(out)


def render_json(report: DriftReport) -> str:
    return json_text(json.dumps(report.to_json(), indent=2, ensure_ascii=False)) + "\n"
