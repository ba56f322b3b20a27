"""policy/gate.yaml: the approval chains by risk level and the exceptions to them, as data.

The one gate (pipeline/gate/decide.py) is the only reader of these tables; nothing else decides
who must sign off, who may not, or when an emergency is an emergency.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pipeline.model import AttrValue, Fact, RiskLevel


class Role(enum.StrEnum):
    """A link of the approval chain, in the seed's words."""

    AUTHOR = "author"  # proposes; for low risk also self-approves (the request is the log)
    PEER = "peer"  # "a second team member reviews": never the author
    LEAD = "lead"  # a peer reviewer whose roster role is lead
    CLIENT = "client"  # "written client approval ... from an authorised approver"


@dataclass(frozen=True)
class FactPattern:
    facts: tuple[str, ...]
    change: str | None = None
    attrs: Mapping[str, AttrValue] = field(default_factory=dict)

    def matches(self, fact: Fact) -> bool:
        return (
            fact.code in self.facts
            and (self.change is None or fact.change == self.change)
            and all(fact.attrs.get(k) == v for k, v in self.attrs.items())
        )


@dataclass(frozen=True)
class GatePolicy:
    chains: Mapping[RiskLevel, tuple[Role, ...]]
    policy_change_risk: RiskLevel = RiskLevel.HIGH
    policy_change_needs: tuple[Role, ...] = (Role.AUTHOR, Role.LEAD)
    shadowing_days: int = 30
    shadow_may_approve: RiskLevel = RiskLevel.LOW
    shadow_own_needs_lead: RiskLevel = RiskLevel.MEDIUM
    emergency_review_hours: int = 24
    deescalations: tuple[FactPattern, ...] = ()
    incident_reference: re.Pattern[str] = re.compile(r"^(INC|PD|OPS|SEC)-[0-9]{1,10}$")


DEFAULT_CHAINS: Mapping[RiskLevel, tuple[Role, ...]] = {
    RiskLevel.LOW: (Role.AUTHOR,),
    RiskLevel.MEDIUM: (Role.AUTHOR, Role.PEER),
    RiskLevel.HIGH: (Role.AUTHOR, Role.PEER, Role.CLIENT),
}


def gate_policy_from_data(data: Mapping[str, Any]) -> GatePolicy:
    """Build the tables from the YAML document (already checked against gate.schema.json)."""
    shadowing = data["shadowing"]
    emergency = data["emergency"]
    return GatePolicy(
        chains={
            RiskLevel.parse(level): tuple(Role(r) for r in roles)
            for level, roles in data["approval_chains"].items()
        },
        policy_change_risk=RiskLevel.parse(data["policy_change"]["risk"]),
        policy_change_needs=tuple(Role(r) for r in data["policy_change"]["needs"]),
        shadowing_days=int(shadowing["days"]),
        shadow_may_approve=RiskLevel.parse(shadowing["may_approve"]),
        shadow_own_needs_lead=RiskLevel.parse(shadowing["own_changes_need_lead"]),
        emergency_review_hours=int(emergency["review_within_hours"]),
        deescalations=tuple(
            FactPattern(tuple(p["fact"]), p.get("change"), dict(p.get("attrs", {})))
            for p in emergency["deescalations"]
        ),
        incident_reference=re.compile(emergency["incident_reference"]),
    )
