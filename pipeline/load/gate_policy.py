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
class PassRateThreshold:
    """What aggregate-report evidence must show before a domain's DMARC policy tightens to one
    target (quarantine, reject): policy/gate.yaml `report_evidence.thresholds`."""

    min_pass_rate: float  # percent of messages passing DMARC, over the whole period
    min_days: int  # length of the period the evidence covers
    min_messages: int  # below this the rate says too little
    max_age_days: int  # the period must have ended at most this long before the change
    major_source_share: float  # percent of the messages that makes a source "major"
    min_source_pass_rate: float  # every major source must pass at least this


@dataclass(frozen=True)
class ReportEvidencePolicy:
    thresholds: Mapping[str, PassRateThreshold] = field(default_factory=dict)
    # Requests filed before the rule existed, by id and content hash (an edit drops them).
    grandfathered: frozenset[tuple[str, str]] = frozenset()


@dataclass(frozen=True)
class VerificationPolicy:
    """How the reports after a change are compared with those before it (issue 14 part 5):
    policy/gate.yaml `report_verification`. Rates in percent, drops in percentage points."""

    baseline_days: int
    min_post_days: int
    min_post_messages: int
    min_volume_ratio: float
    max_pass_rate_drop: float
    major_source_share: float
    legitimate_pass_rate: float
    max_source_pass_rate_drop: float
    min_source_messages: int
    max_enforced_increase: float

    def to_json(self) -> dict[str, int | float]:
        return {name: getattr(self, name) for name in self.__dataclass_fields__}


DEFAULT_VERIFICATION = VerificationPolicy(
    baseline_days=14,
    min_post_days=1,
    min_post_messages=100,
    min_volume_ratio=50.0,
    max_pass_rate_drop=2.0,
    major_source_share=5.0,
    legitimate_pass_rate=90.0,
    max_source_pass_rate_drop=10.0,
    min_source_messages=20,
    max_enforced_increase=2.0,
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
    # None: no pass-rate rule (a gate.yaml without `report_evidence`).
    report_evidence: ReportEvidencePolicy | None = None
    # A gate.yaml without `report_verification` gets these defaults (the shipped values):
    # verification never falls back to accepting on silence.
    report_verification: VerificationPolicy = field(default_factory=lambda: DEFAULT_VERIFICATION)


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
        report_evidence=_report_evidence(data.get("report_evidence")),
        report_verification=_report_verification(data.get("report_verification")),
    )


def _report_evidence(data: Mapping[str, Any] | None) -> ReportEvidencePolicy | None:
    if data is None:
        return None
    return ReportEvidencePolicy(
        thresholds={
            target: PassRateThreshold(
                min_pass_rate=float(t["min_pass_rate"]),
                min_days=int(t["min_days"]),
                min_messages=int(t["min_messages"]),
                max_age_days=int(t["max_age_days"]),
                major_source_share=float(t["major_source_share"]),
                min_source_pass_rate=float(t["min_source_pass_rate"]),
            )
            for target, t in data["thresholds"].items()
        },
        grandfathered=frozenset(
            (str(g["request"]), str(g["sha256"])) for g in data.get("grandfathered", [])
        ),
    )


def _report_verification(data: Mapping[str, Any] | None) -> VerificationPolicy:
    if data is None:
        return DEFAULT_VERIFICATION
    return VerificationPolicy(
        baseline_days=int(data["baseline_days"]),
        min_post_days=int(data["min_post_days"]),
        min_post_messages=int(data["min_post_messages"]),
        min_volume_ratio=float(data["min_volume_ratio"]),
        max_pass_rate_drop=float(data["max_pass_rate_drop"]),
        major_source_share=float(data["major_source_share"]),
        legitimate_pass_rate=float(data["legitimate_pass_rate"]),
        max_source_pass_rate_drop=float(data["max_source_pass_rate_drop"]),
        min_source_messages=int(data["min_source_messages"]),
        max_enforced_increase=float(data["max_enforced_increase"]),
    )
