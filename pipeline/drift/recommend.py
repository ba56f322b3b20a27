"""Recommendations for self-serve clients (issue 13 item 7): what the MSP would change and why.

A self-serve client is monitored and advised; its own DNS team makes every change. For such a
client the plan (zone file against live DNS) is not a change to apply but advice: each change is
shown with what it means in DMARC/SPF/DKIM terms, its risk and the rules behind it, and the
record findings; the drift report adds what changed on the client's side since the last record.
The one gate refuses to approve or apply any of it [self-serve-tier].
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pipeline.classify.change_type import change_type
from pipeline.drift.detect import UNRECORDED, DriftItem, DriftReport
from pipeline.load.portfolio import ClientProfile
from pipeline.plan.items import PlanItem
from pipeline.text.markdown import code, escape
from pipeline.text.safe import clean, json_text, shown

ACTION_WORDS = {"create": "publish", "update": "change", "delete": "remove"}


@dataclass(frozen=True)
class ClientRecommendations:
    client: ClientProfile
    changes: tuple[PlanItem, ...]  # what the MSP would change (zone file against live)
    drift: tuple[DriftItem, ...]  # what changed on the client's side since the last record
    failed: tuple[str, ...]  # zones that could not be read, with why

    def to_json(self) -> dict[str, Any]:
        return {
            "client": self.client.id,
            "name": self.client.name,
            "tier": self.client.tier,
            "recommendations": [
                {
                    "zone": i.zone,
                    "fqdn": i.fqdn,
                    "type": i.type,
                    "kind": i.kind.value,
                    "action": i.action,
                    "change_type": change_type(i.kind, i.facts),
                    "live": list(i.before),
                    "recommended": list(i.after),
                    "ttl": {"live": i.ttl_before, "recommended": i.ttl_after},
                    "why": [str(f) for f in i.facts],
                    "risk": i.risk.label,
                    "reasons": list(i.reasons),
                    "findings": [f.to_json() for f in i.findings],
                }
                for i in self.changes
            ],
            "changed_by_client": [d.to_json() for d in self.drift],
            "unreadable_zones": list(self.failed),
        }


def recommendations(
    clients: Sequence[ClientProfile], items: Sequence[PlanItem], report: DriftReport
) -> list[ClientRecommendations]:
    out = []
    for client in clients:
        out.append(
            ClientRecommendations(
                client,
                tuple(i for i in items if i.client == client.id),
                tuple(d for d in report.items if d.client == client.id and d.status == UNRECORDED),
                tuple(f"{z.zone}: {z.error}" for z in report.failed_zones if z.client == client.id),
            )
        )
    return out


def render_json(recs: Sequence[ClientRecommendations], at: datetime) -> str:
    data = {
        "format_version": 1,
        "generated_at": at.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "clients": [r.to_json() for r in recs],
    }
    return json_text(json.dumps(data, indent=2, ensure_ascii=False)) + "\n"


def render_markdown(recs: Sequence[ClientRecommendations], at: datetime) -> str:
    out: list[str] = []
    for rec in recs:
        client = rec.client
        out += [
            f"# DNS recommendations for {escape(client.name)}",
            "",
            f"Prepared {at:%Y-%m-%d %H:%M} UTC. {escape(client.name)} is on the self-serve tier: "
            "we monitor your email-authentication records and advise; your DNS team makes the "
            "changes. Each recommendation says what to change, why, and how risky it is.",
            "",
        ]
        if not rec.changes:
            out += ["No change recommended: your records are as we would set them.", ""]
        for n, item in enumerate(rec.changes, start=1):
            out += [
                f"## {n}. {escape(ACTION_WORDS[item.action]).capitalize()} {code(item.fqdn)} "
                f"{escape(item.type)} (risk: {item.risk.label})",
                "",
                "| | |",
                "|---|---|",
                f"| Now (live) | {'<br>'.join(code(v) for v in item.before) or '_(not published)_'} |",
                f"| Recommended | {'<br>'.join(code(v) for v in item.after) or '_(remove it)_'} |",
                f"| What changes | {'<br>'.join(code(str(f)) for f in item.facts) or '_(TTL only)_'} |",
                f"| Why this risk | {'<br>'.join(escape(r) for r in item.reasons) or '_(no rule)_'} |",
                f"| Roll back within | {item.rollback_hours} h if mail is affected |",
                "",
            ]
            for finding in item.findings:
                out.append(
                    f"- {escape(finding.severity.label)} {escape(finding.code)}: "
                    f"{escape(finding.message)}"
                )
            if item.findings:
                out.append("")
        if rec.drift:
            out += ["## Changed on your side since our last review", ""]
            for d in rec.drift:
                out.append(
                    f"- {code(d.fqdn)} {escape(d.type)}: "
                    + ("<br>".join(code(v) for v in d.before) or "_(none)_")
                    + " → "
                    + ("<br>".join(code(v) for v in d.after) or "_(removed)_")
                    + f" ({escape('; '.join(str(f) for f in d.facts) or 'TTL')}; risk "
                    f"{d.risk.label})"
                )
            out.append("")
        for failed in rec.failed:
            out += [f"_Could not read {escape(failed)}._", ""]
    return "\n".join(out)


def render_text(recs: Sequence[ClientRecommendations], at: datetime) -> str:
    out: list[str] = []
    for rec in recs:
        out.append(
            f"{clean(rec.client.id)} ({clean(rec.client.name)}): self-serve, "
            f"{len(rec.changes)} recommendation(s), {len(rec.drift)} change(s) on the client's side"
        )
        for item in rec.changes:
            out.append(
                f"  {ACTION_WORDS[item.action]} {shown(item.fqdn)} {clean(item.type)}  "
                f"risk: {item.risk.label.upper()}"
            )
            for value in item.before:
                out.append(f"      now:         {shown(value)}")
            for value in item.after:
                out.append(f"      recommended: {shown(value)}")
            if item.facts:
                out.append("      changes: " + clean("; ".join(str(f) for f in item.facts)))
            out += [f"      why {clean(r)}" for r in item.reasons]
        for d in rec.drift:
            out.append(
                f"  changed by the client: {shown(d.fqdn)} {clean(d.type)}: "
                + clean("; ".join(str(f) for f in d.facts) or "TTL")
                + f"  risk: {d.risk.label.upper()}"
            )
        for failed in rec.failed:
            out.append(f"  could not read {clean(failed)}")
        out.append("")
    if not recs:
        out.append("no self-serve client selected")
    out.append(f"prepared {at:%Y-%m-%d %H:%M} UTC")
    return "\n".join(out) + "\n"
