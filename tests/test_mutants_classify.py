"""Risk rules as data (policy/risk-rules.yaml) and the seed's change types: each
part of a rule's `when` (fact pattern, change, from, to, attrs with min/max or a list, client) is
shown to select exactly the facts it names, and the risk, reasons, rollback hours and rule ids of
a classification are checked whole. Found by mutation testing (docs/mutation-testing.md)."""

from __future__ import annotations

from typing import Any

import pytest

from pipeline.classify import change_type as ct
from pipeline.classify.rules import ClientContext, classify, rules_from_data
from pipeline.model import Fact, RecordKind, RiskLevel, fact

BASE: dict[str, Any] = {
    "unknown_fact_risk": "medium",
    "rollback_hours": {"low": 1, "medium": 4, "high": 24},
}


def rules(*raw: dict[str, Any]) -> Any:
    return rules_from_data({**BASE, "rules": list(raw)})


def rule(rid: str, risk: str | None = "high", **when: Any) -> dict[str, Any]:
    raw: dict[str, Any] = {"id": rid, "reason": f"reason {rid}", "when": when}
    if risk is not None:
        raw["risk"] = risk
    return raw


def level(facts: list[Fact], *raw: dict[str, Any], client: ClientContext | None = None) -> str:
    return classify(facts, client or ClientContext(), rules(*raw)).risk.label


P = fact("dmarc.p", "none", "reject", direction="stricter", pct=100)


@pytest.mark.parametrize(
    ("when", "matches"),
    [
        ({"fact": "dmarc.*"}, True),
        ({"fact": ["spf.*", "dmarc.p"]}, True),
        ({"fact": "DMARC.P"}, False),  # patterns are case-sensitive
        ({"fact": "dmarc.p", "change": "changed"}, True),
        ({"fact": "dmarc.p", "change": ["added", "removed"]}, False),
        ({"fact": "dmarc.p", "from": "none"}, True),
        ({"fact": "dmarc.p", "from": ["quarantine"]}, False),
        ({"fact": "dmarc.p", "to": ["quarantine", "reject"]}, True),
        ({"fact": "dmarc.p", "to": None}, False),  # to: null is "disappears", not "any"
        ({"fact": "dmarc.p", "from": None}, False),
        ({"fact": "dmarc.p", "attrs": {"direction": "stricter"}}, True),
        ({"fact": "dmarc.p", "attrs": {"direction": ["looser", "stricter"]}}, True),
        ({"fact": "dmarc.p", "attrs": {"direction": "looser"}}, False),
        ({"fact": "dmarc.p", "attrs": {"missing": "x"}}, False),
        ({"fact": "dmarc.p", "attrs": {"pct": {"min": 100}}}, True),
        ({"fact": "dmarc.p", "attrs": {"pct": {"min": 101}}}, False),
        ({"fact": "dmarc.p", "attrs": {"pct": {"max": 100}}}, True),
        ({"fact": "dmarc.p", "attrs": {"pct": {"max": 99}}}, False),
        ({"fact": "dmarc.p", "attrs": {"pct": {"min": 50, "max": 100}}}, True),
        ({"fact": "dmarc.p", "attrs": {"direction": {"min": 0}}}, False),  # not a number
        ({"fact": "dmarc.p", "attrs": {"pct": 100}}, True),
        ({"fact": "dmarc.p", "attrs": {"pct": True}}, False),  # True is not 1 in a rule
        ({"fact": "dmarc.p", "client": {"regulated": True}}, False),
        ({"fact": "dmarc.p", "client": {"regulated": False}}, True),
    ],
)
def test_each_part_of_when_selects_the_fact(when: dict[str, Any], matches: bool) -> None:
    assert level([P], rule("r", "high", **when)) == ("high" if matches else "medium")


def test_a_boolean_attribute_is_not_a_number() -> None:
    flag = fact("spf.include", None, "x.example", sender=True)
    assert level([flag], rule("r", "high", fact="spf.*", attrs={"sender": {"min": 0}})) == "medium"
    assert level([flag], rule("r", "high", fact="spf.*", attrs={"sender": 1})) == "medium"
    assert level([flag], rule("r", "high", fact="spf.*", attrs={"sender": True})) == "high"


def test_a_classification_is_checked_whole() -> None:
    removed = fact("spf.include", "x.example", None, sender=True)
    odd = fact("mystery.fact", "a", "b")
    data = (
        rule("low-p", "low", fact="dmarc.p"),
        {**rule("high-p", "high", fact="dmarc.*"), "rollback_hours": 48},
        rule("spf-gone", "medium", fact="spf.include", change="removed"),
        rule("raise-regulated", None, client={"regulated": True}) | {"raise": 1},
        rule("freeze", "high", client={"in_freeze": True}),
    )
    client = ClientContext(regulated=True, in_freeze=True, freeze_reason="year-end freeze")
    result = classify([P, removed, odd], client, rules(*data))
    assert result.risk is RiskLevel.HIGH
    assert result.rule_ids == ("low-p", "high-p", "spf-gone", "raise-regulated", "freeze")
    assert result.rollback_hours == 48
    assert result.reasons == (
        "low: reason low-p [low-p: dmarc.p none->reject]",
        "high: reason high-p [high-p: dmarc.p none->reject]",
        "medium: reason spf-gone [spf-gone: spf.include -x.example]",
        "high: reason freeze [freeze: year-end freeze]",
        "medium: no rule understands mystery.fact a->b (anything not understood is at least medium)",
        "high: raised 1 level: reason raise-regulated [raise-regulated]",
    )


def test_client_rules_name_the_client_context_and_need_a_change() -> None:
    data = (rule("reg", "medium", client={"regulated": True}),)
    client = ClientContext(regulated=True)
    result = classify(
        [fact("bimi.logo", None, "x")], client, rules(*data, rule("b", "low", fact="bimi.*"))
    )
    # Rules matched by a fact come first, then the client's.
    assert result.reasons == (
        "low: reason b [b: bimi.logo +x]",
        "medium: reason reg [reg: client context]",
    )
    assert result.risk is RiskLevel.MEDIUM and result.rollback_hours == 4
    # No facts, no change: client rules alone never make a risk.
    nothing = classify([], client, rules(*data))
    assert (nothing.risk, nothing.reasons, nothing.rule_ids, nothing.rollback_hours) == (
        RiskLevel.LOW,
        (),
        (),
        1,
    )


def test_raise_lifts_the_level_reached_so_far() -> None:
    data = (rule("p", "low", fact="dmarc.p"), rule("up", None, fact="dmarc.p") | {"raise": 2})
    result = classify([P], ClientContext(), rules(*data))
    assert result.risk is RiskLevel.HIGH
    assert result.reasons[-1] == "high: raised 2 level: reason up [up]"
    assert result.rollback_hours == 24


def test_rollback_hours_come_from_the_table_unless_a_rule_asks_for_more() -> None:
    table = {**BASE, "rollback_hours": {"low": 0, "medium": 4, "high": 24}}
    data = [rule("p", "low", fact="dmarc.p"), rule("q", "low", fact="dmarc.sp")]
    result = classify([P], ClientContext(), rules_from_data({**table, "rules": data}))
    assert (result.risk, result.rollback_hours) == (RiskLevel.LOW, 0)


def test_a_rule_names_every_fact_it_matched() -> None:
    sp = fact("dmarc.sp", "none", "reject", direction="stricter")
    result = classify([P, sp], ClientContext(), rules(rule("d", "medium", fact="dmarc.*")))
    assert result.reasons == ("medium: reason d [d: dmarc.p none->reject; dmarc.sp none->reject]",)


def test_rules_from_data_reads_every_field() -> None:
    built = rules(
        rule("a", "low", fact="x.*", change="added", attrs={"k": 1}, client={"regulated": True})
        | {"rollback_hours": 6},
        rule("b", None, fact=["y", "z"], to=None, **{"from": "q"}) | {"raise": 1},
    )
    a, b = built.rules
    assert (a.id, a.reason, a.risk, a.raise_by, a.rollback_hours) == (
        "a",
        "reason a",
        RiskLevel.LOW,
        0,
        6,
    )
    assert (a.when.facts, a.when.change, a.when.from_values, a.when.to_values) == (
        ("x.*",),
        ("added",),
        None,
        None,
    )
    assert (dict(a.when.attrs), dict(a.when.client)) == ({"k": 1}, {"regulated": True})
    assert (b.risk, b.raise_by, b.rollback_hours, b.when.facts) == (None, 1, None, ("y", "z"))
    assert (b.when.from_values, b.when.to_values) == (("q",), (None,))
    assert built.unknown_fact_risk is RiskLevel.MEDIUM
    assert dict(built.rollback_hours) == {RiskLevel.LOW: 1, RiskLevel.MEDIUM: 4, RiskLevel.HIGH: 24}


@pytest.mark.parametrize(
    ("kind", "facts", "expected"),
    [
        (RecordKind.DMARC, [fact("dmarc.pct", "50", "100")], ct.POLICY_PROGRESSION),
        (RecordKind.DMARC, [fact("dmarc.np", None, "reject")], ct.POLICY_PROGRESSION),
        (RecordKind.DMARC, [fact("dmarc.p", "none", "quarantine")], ct.POLICY_PROGRESSION),
        (RecordKind.DMARC, [fact("dmarc.sp", None, "reject")], ct.POLICY_PROGRESSION),
        (RecordKind.DMARC, [fact("dmarc.rua", None, "mailto:a@b.example")], ct.OTHER),
        (RecordKind.SPF, [fact("dmarc.p", "none", "reject")], ct.OTHER),
        (RecordKind.SPF, [fact("spf.include", None, "x.example", sender=True)], ct.NEW_SENDER),
        (RecordKind.SPF, [fact("spf.include", "x.example", None, sender=True)], ct.OTHER),
        (RecordKind.SPF, [fact("spf.redirect", None, "x.example")], ct.OTHER),
        (RecordKind.DKIM, [], ct.DKIM_ROTATION),
        (RecordKind.NS_DELEGATION, [fact("ns.delegation", None, "a")], ct.NS_DELEGATION),
        (RecordKind.BIMI, [fact("bimi.logo", None, "x")], ct.OTHER),
    ],
)
def test_change_type(kind: RecordKind, facts: list[Fact], expected: str) -> None:
    assert ct.change_type(kind, facts) == expected


def test_change_type_names_are_the_seed_templates() -> None:
    assert (ct.NEW_SENDER, ct.POLICY_PROGRESSION, ct.DKIM_ROTATION, ct.OTHER, ct.NS_DELEGATION) == (
        "New sender",
        "Policy progression",
        "DKIM rotation",
        "Other",
        "NS delegation",
    )
