"""The plan: immutable items (one per zone/name/type RRset transition) and the plan hash over them.

The plan hash is a SHA-256 over the normalised items (zone, name, type, sorted before values, sorted
after values, TTLs), never over rendered text: an approval binds to what will change, not to how it
was displayed (a rendered text changes with the renderer; the values it shows do not).
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from typing import Any

from pipeline.model import Fact, Finding, RecordKind, RiskLevel, Severity


@dataclass(frozen=True)
class PlanItem:
    client: str
    zone: str
    name: str  # relative to the zone, "" for the apex
    type: str
    action: str  # create | update | delete
    kind: RecordKind
    before: tuple[str, ...]
    after: tuple[str, ...]
    ttl_before: int | None
    ttl_after: int | None
    facts: tuple[Fact, ...]
    findings: tuple[Finding, ...]
    risk: RiskLevel
    reasons: tuple[str, ...]
    rollback_hours: int

    @property
    def fqdn(self) -> str:
        if self.kind is RecordKind.POLICY:
            return self.name  # a file under policy/, not a DNS name
        return f"{self.name}.{self.zone}" if self.name else self.zone

    def normalised(self) -> list[Any]:
        return [
            self.zone,
            self.name,
            self.type,
            sorted(self.before),
            sorted(self.after),
            self.ttl_before,
            self.ttl_after,
        ]


@dataclass(frozen=True)
class RequestRef:
    """The change request an item belongs to, as the plan shows it (the record draft's Rationale)."""

    id: str
    type: str
    author: str
    rationale: str


ItemKey = tuple[str, str, str]  # (zone, name, type)


@dataclass(frozen=True)
class ZoneResult:
    """How planning one zone went, with the validation findings on its whole desired state."""

    client: str
    zone: str
    provider: str
    error: str = ""
    findings: tuple[Finding, ...] = ()
    budget_source: str = ""  # "dns" | "catalog" | "" when the zone has no SPF
    # The octoDNS plan behind the items and the provider that made it, for the apply stage;
    # not part of the plan's identity.
    octodns_plan: Any = field(default=None, compare=False, repr=False)
    octodns_target: Any = field(default=None, compare=False, repr=False)
    # The client's service tier (policy/clients/ `tier:`): a self-serve client's changes are
    # recommendations, never applied (pipeline.gate.decide, rule self-serve-tier).
    tier: str = "managed"
    # The owned RRsets as live DNS serves them and as the zone file wants them, (name, type) ->
    # (ttl, owned values), and the zone's diff context: what `dmarcops drift` compares with the
    # records. Not part of the plan's identity.
    owned_live: Any = field(default=None, compare=False, repr=False)
    owned_desired: Any = field(default=None, compare=False, repr=False)
    context: Any = field(default=None, compare=False, repr=False)

    @property
    def recommend_only(self) -> bool:
        return self.tier == "self-serve"

    @property
    def failed(self) -> bool:
        return bool(self.error)


def plan_hash(items: tuple[PlanItem, ...]) -> str:
    normalised = sorted(item.normalised() for item in items)
    canonical = json.dumps(normalised, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(canonical.encode()).hexdigest()


@dataclass(frozen=True)
class Plan:
    generated_at: datetime  # UTC
    items: tuple[PlanItem, ...]
    zones: tuple[ZoneResult, ...]

    # Computed once: the items are immutable, and the gate asks for the hash once per request
    # (at 10,000 zones, 2,500 requests x a hash over 2,500 items was half of the plan's CPU).
    @cached_property
    def hash(self) -> str:
        return plan_hash(self.items)

    @property
    def risk(self) -> RiskLevel | None:
        return max((i.risk for i in self.items), default=None)

    @property
    def failed_zones(self) -> tuple[ZoneResult, ...]:
        return tuple(z for z in self.zones if z.failed)

    def action_counts(self) -> Counter[str]:
        return Counter(i.action for i in self.items)

    def risk_counts(self) -> Counter[RiskLevel]:
        return Counter(i.risk for i in self.items)

    def all_findings(self) -> list[tuple[ZoneResult, Finding]]:
        return [(z, f) for z in self.zones for f in z.findings]

    @property
    def has_errors(self) -> bool:
        return any(f.severity is Severity.ERROR for _, f in self.all_findings())
