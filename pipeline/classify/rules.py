"""Risk rules as data (policy/risk-rules.yaml), and the evaluation of a change's facts against them.

The seed's rules, in order of strength: a change's risk is the highest level any matching rule
gives; "raise" rules (a DMARC change that breaks BIMI) lift it afterwards; a fact no rule understands is at
least `unknown_fact_risk` ("when in doubt, classify higher").
"""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pipeline.model import AttrValue, Fact, RiskLevel


@dataclass(frozen=True)
class ClientContext:
    """What the rules may know about the client at the time of the plan."""

    regulated: bool = False
    in_freeze: bool = False
    freeze_reason: str = ""

    def get(self, key: str) -> bool:
        return bool(getattr(self, key))


@dataclass(frozen=True)
class Condition:
    facts: tuple[str, ...] = ()
    change: tuple[str, ...] = ()
    from_values: tuple[str | None, ...] | None = None
    to_values: tuple[str | None, ...] | None = None
    attrs: Mapping[str, Any] = field(default_factory=dict)
    client: Mapping[str, bool] = field(default_factory=dict)

    def matches_client(self, client: ClientContext) -> bool:
        return all(client.get(k) == v for k, v in self.client.items())

    def matches_fact(self, f: Fact) -> bool:
        if self.facts and not any(fnmatch.fnmatchcase(f.code, p) for p in self.facts):
            return False
        if self.change and f.change not in self.change:
            return False
        if self.from_values is not None and f.old not in self.from_values:
            return False
        if self.to_values is not None and f.new not in self.to_values:
            return False
        return all(_attr_matches(f.attrs.get(k), want) for k, want in self.attrs.items())


def _attr_matches(have: AttrValue | None, want: Any) -> bool:
    if have is None:
        return False
    if isinstance(want, dict):
        if isinstance(have, bool) or not isinstance(have, int):
            return False
        return ("min" not in want or have >= want["min"]) and (
            "max" not in want or have <= want["max"]
        )
    if isinstance(want, list):
        return any(_same(have, w) for w in want)
    return _same(have, want)


def _same(have: AttrValue, want: AttrValue) -> bool:
    # bool is an int in Python: keep True from matching 1 and the other way round.
    return type(have) is type(want) and have == want


@dataclass(frozen=True)
class RiskRule:
    id: str
    when: Condition
    reason: str
    risk: RiskLevel | None = None
    raise_by: int = 0
    rollback_hours: int | None = None

    @property
    def facts_pattern(self) -> tuple[str, ...]:
        return self.when.facts


@dataclass(frozen=True)
class RiskRules:
    rules: tuple[RiskRule, ...]
    unknown_fact_risk: RiskLevel
    rollback_hours: Mapping[RiskLevel, int]


def _tuple(value: Any) -> tuple[Any, ...]:
    if value is None:
        return ()
    return tuple(value) if isinstance(value, list) else (value,)


def rules_from_data(data: Mapping[str, Any]) -> RiskRules:
    """Build rules from the YAML document (already checked against risk-rules.schema.json)."""
    rules = []
    for raw in data["rules"]:
        when = raw["when"]
        rules.append(
            RiskRule(
                id=raw["id"],
                reason=raw["reason"],
                risk=RiskLevel.parse(raw["risk"]) if "risk" in raw else None,
                raise_by=int(raw.get("raise", 0)),
                rollback_hours=raw.get("rollback_hours"),
                when=Condition(
                    facts=_tuple(when.get("fact")),
                    change=_tuple(when.get("change")),
                    # `to: null` means "the thing disappears": None is distinct from "no condition".
                    from_values=(_tuple(when["from"]) or (None,)) if "from" in when else None,
                    to_values=(_tuple(when["to"]) or (None,)) if "to" in when else None,
                    attrs=dict(when.get("attrs", {})),
                    client=dict(when.get("client", {})),
                ),
            )
        )
    return RiskRules(
        rules=tuple(rules),
        unknown_fact_risk=RiskLevel.parse(data["unknown_fact_risk"]),
        rollback_hours={RiskLevel.parse(k): int(v) for k, v in data["rollback_hours"].items()},
    )


@dataclass(frozen=True)
class Classification:
    risk: RiskLevel
    reasons: tuple[str, ...]
    rollback_hours: int
    rule_ids: tuple[str, ...]


def classify(facts: Sequence[Fact], client: ClientContext, rules: RiskRules) -> Classification:
    """The risk of one change (one RRset transition) from its facts and the client's context."""
    level = RiskLevel.LOW
    matched: dict[str, list[str]] = {}  # rule id -> what it matched, in rule order of first match
    unknown: list[Fact] = []
    by_id = {rule.id: rule for rule in rules.rules}

    for f in facts:
        hits = [
            rule
            for rule in rules.rules
            if rule.facts_pattern and rule.when.matches_client(client) and rule.when.matches_fact(f)
        ]
        for rule in hits:
            matched.setdefault(rule.id, []).append(str(f))
        if not hits:
            unknown.append(f)
    if facts:
        for rule in rules.rules:
            if not rule.facts_pattern and rule.when.matches_client(client):
                about = client.freeze_reason if client.in_freeze else "client context"
                matched.setdefault(rule.id, []).append(about)

    reasons: list[str] = []
    rollback = 0
    floors = [by_id[i] for i in matched if by_id[i].risk is not None]
    for rule in floors:
        assert rule.risk is not None
        level = max(level, rule.risk)
        rollback = max(rollback, rule.rollback_hours or 0)
        reasons.append(
            f"{rule.risk.label}: {rule.reason} [{rule.id}: {'; '.join(matched[rule.id])}]"
        )
    for f in unknown:
        level = max(level, rules.unknown_fact_risk)
        reasons.append(
            f"{rules.unknown_fact_risk.label}: no rule understands {f} "
            "(anything not understood is at least medium)"
        )
    for rule in (by_id[i] for i in matched if by_id[i].risk is None):
        level = level.raised(rule.raise_by)
        reasons.append(f"{level.label}: raised {rule.raise_by} level: {rule.reason} [{rule.id}]")
    hours = max(rollback, rules.rollback_hours[level])
    rule_ids = tuple(matched)
    return Classification(level, tuple(reasons), hours, rule_ids)
