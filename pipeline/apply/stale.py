"""A plan that changed after approval is never applied (README: the plan made again from live DNS must equal the approved one).

The approved plan is the JSON that `dmarcops plan --out` saved and the approvals signed (its
plan_hash). Just before applying, under the client lock, the plan is made again from live DNS: any
difference is reported item by item (live DNS moved: "stale"; the zone files moved: "changed") and
the apply is refused. Comparing hashes alone would be enough to refuse, but not to say why.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pipeline.errors import GateRefused
from pipeline.plan.build import POLICY_ZONE
from pipeline.plan.items import Plan, PlanItem, plan_hash

Key = tuple[str, str, str]


def _key(change: Mapping[str, Any]) -> Key:
    return (str(change["zone"]), str(change["name"]), str(change["type"]))


def _show(name: str, zone: str, rtype: str) -> str:
    if zone == POLICY_ZONE:  # a pending edit under policy/: the file, not a DNS name
        return f"{name} (policy edit waiting for a lead's seal)"
    return f"{name + '.' if name else ''}{zone} {rtype}"


def differences(approved: Mapping[str, Any], current: Plan) -> list[str]:
    now: dict[Key, PlanItem] = {(i.zone, i.name, i.type): i for i in current.items}
    then = {_key(c): c for c in approved["changes"]}
    problems: list[str] = []
    for key, change in sorted(then.items()):
        where = _show(key[1], key[0], key[2])
        item = now.get(key)
        if item is None:
            problems.append(f"{where}: no longer in the plan (live DNS or the zone file changed)")
            continue
        if sorted(change["before"]) != sorted(item.before):
            problems.append(
                f"{where}: stale: live DNS changed since approval "
                f"(approved before-state {change['before']!r}, live now {list(item.before)!r})"
            )
        if sorted(change["after"]) != sorted(item.after):
            problems.append(f"{where}: the desired values changed since approval")
        if change.get("ttl", {}).get("after") != item.ttl_after:
            problems.append(f"{where}: the TTL changed since approval")
    for key in sorted(set(now) - set(then)):
        problems.append(
            f"{_show(key[1], key[0], key[2])}: a change that is not in the approved plan"
        )
    return problems


def refuse_if_changed(approved: Mapping[str, Any], current: Plan) -> None:
    problems = differences(approved, current)
    if not problems and plan_hash(current.items) != approved["plan_hash"]:
        problems.append("the plan hash differs from the approved one")
    if problems:
        raise GateRefused(
            "the plan changed after approval; nothing was applied:\n  - " + "\n  - ".join(problems),
            hint="Plan again, review the new plan and collect approvals for its hash.",
        )
