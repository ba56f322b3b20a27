"""The plan as JSON: the contract others build on (approvals bind its hash; the GitHub workflows read it)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import orjson

from pipeline.classify.change_type import change_type
from pipeline.model import RiskLevel
from pipeline.plan.items import ItemKey, Plan, PlanItem, RequestRef
from pipeline.text.safe import json_text

FORMAT_VERSION = 1


def item_to_json(
    item: PlanItem, request: RequestRef | None = None, recommend: bool = False
) -> dict[str, Any]:
    return {
        "client": item.client,
        "zone": item.zone,
        "name": item.name,
        "fqdn": item.fqdn,
        "type": item.type,
        "kind": item.kind.value,
        "action": item.action,
        "change_type": change_type(item.kind, item.facts),
        "before": list(item.before),
        "after": list(item.after),
        "ttl": {"before": item.ttl_before, "after": item.ttl_after},
        "risk": item.risk.label,
        "reasons": list(item.reasons),
        "rollback_hours": item.rollback_hours,
        "facts": [f.to_json() for f in item.facts],
        "findings": [f.to_json() for f in item.findings],
        "request": (
            {"id": request.id, "type": request.type, "author": request.author} if request else None
        ),
        # A self-serve client's change: what the MSP recommends, never applied (docs/drift.md).
        "recommendation_only": recommend,
    }


def plan_to_json(
    plan: Plan, requests: Mapping[ItemKey, RequestRef] | None = None
) -> dict[str, Any]:
    requests = requests or {}
    advised = {z.client for z in plan.zones if z.recommend_only}
    counts = plan.action_counts()
    risks = plan.risk_counts()
    return {
        "format_version": FORMAT_VERSION,
        "plan_hash": plan.hash,
        "risk": plan.risk.label if plan.risk else None,
        "generated_at": plan.generated_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "summary": {
            "create": counts["create"],
            "update": counts["update"],
            "delete": counts["delete"],
            "risk": {level.label: risks[level] for level in RiskLevel},
            "zones": len(plan.zones),
            "failed_zones": len(plan.failed_zones),
        },
        "changes": [
            item_to_json(i, requests.get((i.zone, i.name, i.type)), i.client in advised)
            for i in plan.items
        ],
        "zones": [
            {
                "client": z.client,
                "zone": z.zone,
                "provider": z.provider,
                "status": "failed" if z.failed else "planned",
                "error": z.error,
                "spf_budget_source": z.budget_source,
                "tier": z.tier,
                "findings": [f.to_json() for f in z.findings],
            }
            for z in plan.zones
        ],
    }


def indented(value: object) -> str:
    """`json.dumps(value, indent=2, ensure_ascii=False)`, written by orjson where it writes the same.

    The standard library indents in its pure-Python encoder (a few per cent of a 1,000-zone plan).
    For strings, integers, booleans, null, lists and dicts with string keys orjson writes the same
    text (tests/test_render_json.py compares every code point); the plan holds no other values
    (Fact attrs are str | int | bool, TTLs and hours int). What orjson refuses (an integer beyond
    64 bits, a lone surrogate) goes to the standard library.
    """
    try:
        return orjson.dumps(value, option=orjson.OPT_INDENT_2).decode()
    except (orjson.JSONEncodeError, TypeError):
        return json.dumps(value, indent=2, ensure_ascii=False)


def render_json(plan: Plan, requests: Mapping[ItemKey, RequestRef] | None = None) -> str:
    # Printed to terminals and embedded in comments: no raw C1 controls or bidi overrides, which
    # ensure_ascii=False would let through (json_text escapes them, the JSON value is unchanged).
    return json_text(indented(plan_to_json(plan, requests))) + "\n"
