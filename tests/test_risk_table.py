"""One test per row of the change -> risk table (policy/risk-rules.yaml, docs/rules.md), through the whole chain:
real record values -> diff facts -> the shipped policy/risk-rules.yaml -> risk level and reasons.
"""

from __future__ import annotations

import base64
from dataclasses import replace
from datetime import date

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from portfolio import REPO

from pipeline import diff
from pipeline.classify.rules import Classification, ClientContext, RiskRules, classify
from pipeline.diff import mtasts
from pipeline.diff.context import DkimLifecycle, RetiredSelector, ScheduledSelector, ZoneContext
from pipeline.diff.kinds import kind_of
from pipeline.load.portfolio import load_portfolio
from pipeline.model import RiskLevel, Severity, SpfBudget, fact

ZONE = "client.example"
TODAY = date(2026, 12, 1)


@pytest.fixture(scope="module")
def rules() -> RiskRules:
    return load_portfolio(REPO).rules


def dkim_key(bits: int) -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=bits).public_key()
    der = key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return base64.b64encode(der).decode()


def budget_of(costs: dict[str, int]) -> object:
    """A budget counter over a fixed table: include:X costs costs[X] lookups."""

    def count(record: str, fqdn: str) -> SpfBudget:
        total = sum(
            costs.get(term.split(":", 1)[1], 1)
            for term in record.split()
            if term.lstrip("+-~?").startswith(("include:", "a", "mx", "exists:"))
            and not term.lstrip("+-~?").startswith("all")
        )
        return SpfBudget(lookups=total, void_lookups=0, source="dns")

    return count


BASE = ZoneContext(
    zone=ZONE,
    today=TODAY,
    pre_approved_sender=lambda term: {"include:sendgrid.net": "SendGrid"}.get(term),
    spf_budget=budget_of({"_spf.google.com": 4, "sendgrid.net": 1, "mailgun.org": 3}),  # type: ignore[arg-type]
)


def risk_of(
    rules: RiskRules,
    name: str,
    rtype: str,
    before: tuple[str, ...],
    after: tuple[str, ...],
    ctx: ZoneContext = BASE,
    client: ClientContext | None = None,
) -> Classification:
    kind = kind_of(name, rtype)
    assert kind is not None
    facts = diff.facts(kind, name, rtype, before, after, ctx)
    assert facts, "a change must produce facts"
    return classify(facts, client or ClientContext(regulated=ctx.regulated), rules)


def reasons(c: Classification) -> str:
    return "\n".join(c.reasons)


DMARC_NONE = "v=DMARC1; p=none; rua=mailto:d@client.example"
DMARC_Q50 = "v=DMARC1; p=quarantine; pct=50; rua=mailto:d@client.example"
DMARC_Q100 = "v=DMARC1; p=quarantine; pct=100; rua=mailto:d@client.example"
DMARC_REJECT = "v=DMARC1; p=reject; rua=mailto:d@client.example"


@pytest.mark.parametrize(
    ("row", "before", "after", "expected", "rule"),
    [
        (
            "p none -> quarantine",
            DMARC_NONE,
            DMARC_Q100,
            RiskLevel.MEDIUM,
            "dmarc-policy-quarantine",
        ),
        (
            "pct 50 -> 100 inside quarantine",
            DMARC_Q50,
            DMARC_Q100,
            RiskLevel.MEDIUM,
            "dmarc-pct-increase",
        ),
        ("p -> reject", DMARC_Q100, DMARC_REJECT, RiskLevel.HIGH, "dmarc-policy-reject"),
        ("relaxed -> none", DMARC_REJECT, DMARC_NONE, RiskLevel.HIGH, "dmarc-policy-relaxed"),
        (
            "sp on the same scale as p",
            DMARC_REJECT,
            DMARC_REJECT.replace("p=reject", "p=reject; sp=none"),
            RiskLevel.HIGH,
            "dmarc-policy-relaxed",
        ),
        (
            "new RUA destination",
            DMARC_NONE,
            DMARC_NONE + ",mailto:x@client.example",
            RiskLevel.LOW,
            "dmarc-rua-added",
        ),
        (
            "ruf added",
            DMARC_NONE,
            DMARC_NONE + "; ruf=mailto:f@client.example",
            RiskLevel.MEDIUM,
            "dmarc-ruf-added",
        ),
    ],
)
def test_dmarc_rows(
    rules: RiskRules, row: str, before: str, after: str, expected: RiskLevel, rule: str
) -> None:
    c = risk_of(rules, "_dmarc", "TXT", (before,), (after,))
    assert c.risk is expected, reasons(c)
    assert rule in c.rule_ids, reasons(c)


def test_p_reject_has_a_72_hour_rollback_window(rules: RiskRules) -> None:
    c = risk_of(rules, "_dmarc", "TXT", (DMARC_Q100,), (DMARC_REJECT,))
    assert c.rollback_hours == 72
    medium = risk_of(rules, "_dmarc", "TXT", (DMARC_NONE,), (DMARC_Q100,))
    assert medium.rollback_hours == 8


def test_dmarc_record_deleted_is_high(rules: RiskRules) -> None:
    c = risk_of(rules, "_dmarc", "TXT", (DMARC_Q100,), ())
    assert c.risk is RiskLevel.HIGH
    assert "dmarc-deleted" in c.rule_ids


def test_new_rua_for_a_regulated_client_is_high(rules: RiskRules) -> None:
    ctx = replace(BASE, regulated=True)
    c = risk_of(
        rules, "_dmarc", "TXT", (DMARC_NONE,), (DMARC_NONE + ",mailto:x@client.example",), ctx
    )
    assert c.risk is RiskLevel.HIGH
    assert "dmarc-regulated-rua" in c.rule_ids


SPF_GOOGLE = "v=spf1 include:_spf.google.com ~all"


def test_spf_pre_approved_sender_with_headroom_is_low(rules: RiskRules) -> None:
    c = risk_of(
        rules,
        "",
        "TXT",
        (SPF_GOOGLE,),
        ("v=spf1 include:_spf.google.com include:sendgrid.net ~all",),
    )
    assert c.risk is RiskLevel.LOW, reasons(c)
    assert "spf-sender-pre-approved" in c.rule_ids


def test_spf_sender_not_pre_approved_is_medium(rules: RiskRules) -> None:
    c = risk_of(
        rules,
        "",
        "TXT",
        (SPF_GOOGLE,),
        ("v=spf1 include:_spf.google.com include:mailgun.org ~all",),
    )
    assert c.risk is RiskLevel.MEDIUM, reasons(c)
    assert "spf-sender-not-pre-approved" in c.rule_ids


def test_spf_pre_approved_sender_without_headroom_is_medium(rules: RiskRules) -> None:
    ctx = replace(
        BASE, spf_budget=budget_of({"_spf.google.com": 4, "mailgun.org": 3, "sendgrid.net": 2})
    )  # type: ignore[arg-type]
    before = "v=spf1 include:_spf.google.com include:mailgun.org ~all"  # 7
    after = "v=spf1 include:_spf.google.com include:mailgun.org include:sendgrid.net ~all"  # 9
    c = risk_of(rules, "", "TXT", (before,), (after,), ctx)
    assert c.risk is RiskLevel.MEDIUM, reasons(c)
    assert "spf-lookups-no-headroom" in c.rule_ids


def test_spf_over_ten_lookups_blocks(rules: RiskRules) -> None:
    ctx = replace(
        BASE, spf_budget=budget_of({"_spf.google.com": 4, "mailgun.org": 3, "big.example": 4})
    )  # type: ignore[arg-type]
    record = "v=spf1 include:_spf.google.com include:mailgun.org include:big.example ~all"
    findings = diff.validate(kind_of("", "TXT"), "", "TXT", (record,), ctx)  # type: ignore[arg-type]
    s2 = [f for f in findings if f.code == "S2"]
    assert s2 and s2[0].severity is Severity.ERROR


def test_spf_sender_removed_is_high(rules: RiskRules) -> None:
    c = risk_of(
        rules,
        "",
        "TXT",
        ("v=spf1 include:_spf.google.com include:sendgrid.net ~all",),
        (SPF_GOOGLE,),
    )
    assert c.risk is RiskLevel.HIGH
    assert "spf-sender-removed" in c.rule_ids


def test_spf_flattening_is_medium(rules: RiskRules) -> None:
    before = "v=spf1 include:sendgrid.net include:mailgun.org ~all"
    after = "v=spf1 ip4:167.89.0.0/17 ip4:198.61.254.0/23 ~all"
    c = risk_of(rules, "", "TXT", (before,), (after,))
    assert c.risk is RiskLevel.MEDIUM, reasons(c)
    assert "spf-flattened" in c.rule_ids


def test_spf_change_for_regulated_client_is_high(rules: RiskRules) -> None:
    ctx = replace(BASE, regulated=True)
    c = risk_of(
        rules,
        "",
        "TXT",
        (SPF_GOOGLE,),
        ("v=spf1 include:_spf.google.com include:sendgrid.net ~all",),
        ctx,
    )
    assert c.risk is RiskLevel.HIGH
    assert "spf-regulated" in c.rule_ids


@pytest.mark.parametrize(
    ("after", "expected"),
    [("-all", RiskLevel.MEDIUM), ("?all", RiskLevel.HIGH), ("+all", RiskLevel.HIGH)],
)
def test_spf_all_qualifier(rules: RiskRules, after: str, expected: RiskLevel) -> None:
    c = risk_of(rules, "", "TXT", (SPF_GOOGLE,), (f"v=spf1 include:_spf.google.com {after}",))
    assert c.risk is expected, reasons(c)


def test_dkim_new_selector_on_schedule_is_low_and_off_schedule_medium(rules: RiskRules) -> None:
    value = f"v=DKIM1; k=rsa; p={dkim_key(2048)}"
    on = replace(BASE, dkim=DkimLifecycle(scheduled=(ScheduledSelector("s2026", TODAY),)))
    assert risk_of(rules, "s2026._domainkey", "TXT", (), (value,), on).risk is RiskLevel.LOW
    off = risk_of(rules, "s2026._domainkey", "TXT", (), (value,), BASE)
    assert off.risk is RiskLevel.MEDIUM
    assert "dkim-new-selector-off-schedule" in off.rule_ids


def test_dkim_key_length_change_on_idle_selector_is_medium(rules: RiskRules) -> None:
    c = risk_of(
        rules,
        "s2._domainkey",
        "TXT",
        (f"v=DKIM1; p={dkim_key(1024)}",),
        (f"v=DKIM1; p={dkim_key(2048)}",),
    )
    assert c.risk is RiskLevel.MEDIUM, reasons(c)
    assert "dkim-key-length" in c.rule_ids


def test_dkim_key_replaced_on_active_selector_is_high(rules: RiskRules) -> None:
    ctx = replace(BASE, dkim=DkimLifecycle(active=frozenset({"s1"})))
    c = risk_of(
        rules,
        "s1._domainkey",
        "TXT",
        (f"v=DKIM1; p={dkim_key(2048)}",),
        (f"v=DKIM1; p={dkim_key(2048)}",),
        ctx,
    )
    assert c.risk is RiskLevel.HIGH, reasons(c)
    assert "dkim-key-replaced" in c.rule_ids


def test_dkim_active_selector_deleted_or_revoked_is_high(rules: RiskRules) -> None:
    ctx = replace(BASE, dkim=DkimLifecycle(active=frozenset({"s1"})))
    value = f"v=DKIM1; p={dkim_key(2048)}"
    assert risk_of(rules, "s1._domainkey", "TXT", (value,), (), ctx).risk is RiskLevel.HIGH
    assert (
        risk_of(rules, "s1._domainkey", "TXT", (value,), ("v=DKIM1; p=",), ctx).risk
        is RiskLevel.HIGH
    )


def test_dkim_retired_selector_removed_after_wait_is_medium(rules: RiskRules) -> None:
    value = f"v=DKIM1; p={dkim_key(1024)}"
    waited = replace(BASE, dkim=DkimLifecycle(retired=(RetiredSelector("s0", date(2026, 11, 1)),)))
    c = risk_of(rules, "s0._domainkey", "TXT", (value,), (), waited)
    assert c.risk is RiskLevel.MEDIUM, reasons(c)
    early = replace(BASE, dkim=DkimLifecycle(retired=(RetiredSelector("s0", date(2026, 11, 29)),)))
    assert risk_of(rules, "s0._domainkey", "TXT", (value,), (), early).risk is RiskLevel.HIGH


BIMI = "v=BIMI1; l=https://client.example/logo.svg; a="


def test_bimi_published_is_low(rules: RiskRules) -> None:
    ctx = replace(BASE, desired={("_dmarc", "TXT"): (DMARC_REJECT,)})
    assert risk_of(rules, "default._bimi", "TXT", (), (BIMI,), ctx).risk is RiskLevel.LOW


def test_dmarc_change_that_breaks_bimi_raises_one_level(rules: RiskRules) -> None:
    # pct 100 -> 90 under quarantine disqualifies BIMI (B2): a medium change lifted to high.
    with_bimi = "v=DMARC1; p=quarantine; pct=100; rua=mailto:d@client.example"
    broken = "v=DMARC1; p=quarantine; pct=90; rua=mailto:d@client.example"
    ctx = replace(BASE, desired={("default._bimi", "TXT"): (BIMI,), ("_dmarc", "TXT"): (broken,)})
    c = risk_of(rules, "_dmarc", "TXT", (with_bimi,), (broken,), ctx)
    assert "dmarc-breaks-bimi" in c.rule_ids, reasons(c)
    assert c.risk is RiskLevel.HIGH
    without_bimi = risk_of(rules, "_dmarc", "TXT", (with_bimi,), (broken,))
    assert without_bimi.risk is RiskLevel.MEDIUM


def _policy(mode: str, mx: str = "mx1.client.example") -> str:
    return f"version: STSv1\nmode: {mode}\nmx: {mx}\nmax_age: 604800\n"


@pytest.mark.parametrize(
    ("before", "after", "expected"),
    [
        (_policy("none"), _policy("testing"), RiskLevel.LOW),
        (_policy("testing"), _policy("enforce"), RiskLevel.HIGH),
        (_policy("enforce"), _policy("enforce", "mx2.client.example"), RiskLevel.HIGH),
    ],
)
def test_mta_sts_policy_rows(
    rules: RiskRules, before: str, after: str, expected: RiskLevel
) -> None:
    facts, _ = mtasts.policy_facts(before, after, "20261101", "20261201")
    c = classify(facts, ClientContext(), rules)
    assert c.risk is expected, reasons(c)


def test_mta_sts_policy_changed_without_id_change_blocks() -> None:
    _, findings = mtasts.policy_facts(
        _policy("testing"), _policy("enforce"), "20261101", "20261101"
    )
    assert any(f.code == "M3" and f.severity is Severity.ERROR for f in findings)


def test_tls_rpt_change_is_low(rules: RiskRules) -> None:
    c = risk_of(rules, "_smtp._tls", "TXT", (), ("v=TLSRPTv1; rua=mailto:tls@client.example",))
    assert c.risk is RiskLevel.LOW


def test_anything_inside_a_freeze_is_high(rules: RiskRules) -> None:
    client = ClientContext(in_freeze=True, freeze_reason="freeze 2026-11-20..2027-01-04: holidays")
    c = risk_of(
        rules,
        "_smtp._tls",
        "TXT",
        (),
        ("v=TLSRPTv1; rua=mailto:tls@client.example",),
        client=client,
    )
    assert c.risk is RiskLevel.HIGH
    assert "holidays" in reasons(c)


def test_anything_not_understood_is_at_least_medium(rules: RiskRules) -> None:
    c = classify([fact("dmarc.unparsed", "v=DMARC1 garbage", DMARC_NONE)], ClientContext(), rules)
    assert c.risk is RiskLevel.MEDIUM
    assert "no rule understands" in reasons(c)
    c = classify([fact("something.new", None, "x")], ClientContext(), rules)
    assert c.risk is RiskLevel.MEDIUM


def test_overall_risk_is_the_highest_fact(rules: RiskRules) -> None:
    c = classify(
        [
            fact("tls_rpt.record", None, "published"),
            fact("dmarc.p", "quarantine", "reject", direction="stricter"),
        ],
        ClientContext(),
        rules,
    )
    assert c.risk is RiskLevel.HIGH
