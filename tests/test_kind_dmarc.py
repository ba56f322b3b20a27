"""DMARC validation (D1-D7) and facts, against RFC 7489 (docs/rules.md)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from portfolio import copy_example

from pipeline.diff import dmarc
from pipeline.diff.context import ZoneContext
from pipeline.diff.errors import RecordSyntaxError
from pipeline.load.portfolio import load_portfolio
from pipeline.model import Fact, Finding, Severity
from pipeline.plan.build import PlanOptions, make_plan

ZONE = "example.com"


def ctx(**kwargs: object) -> ZoneContext:
    return ZoneContext(ZONE, **kwargs)  # type: ignore[arg-type]


def found(findings: list[Finding], code: str) -> list[Severity]:
    return [f.severity for f in findings if f.code == code]


def check(value: str, **kwargs: object) -> list[Finding]:
    return dmarc.validate("_dmarc", "TXT", (value,), ctx(**kwargs))


def diff(before: str | None, after: str | None, **kwargs: object) -> list[Fact]:
    old = (before,) if before else ()
    new = (after,) if after else ()
    return dmarc.facts("_dmarc", "TXT", old, new, ctx(**kwargs))


def by_code(facts: list[Fact], code: str) -> list[Fact]:
    return [f for f in facts if f.code == code]


def one(facts: list[Fact], code: str) -> Fact:
    matching = by_code(facts, code)
    assert len(matching) == 1, [str(f) for f in facts]
    return matching[0]


GOOD = "v=DMARC1; p=reject; rua=mailto:dmarc@example.com"


def test_good_record_has_no_findings() -> None:
    assert check(GOOD) == []


# --- validation -------------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["v=DMARC2; p=reject", "v=dmarc1; p=reject"])
def test_d1_wrong_version_is_an_error(value: str) -> None:
    assert found(check(value), "D1") == [Severity.ERROR]


def test_d1_value_not_starting_with_version_is_discarded() -> None:
    findings = dmarc.validate("_dmarc", "TXT", (GOOD, "p=reject; v=DMARC1"), ctx())
    assert found(findings, "D1") == [Severity.ERROR]
    assert found(findings, "D6") == []  # only one value is a DMARC record


def test_d1_parse_raises_with_code() -> None:
    with pytest.raises(RecordSyntaxError) as err:
        dmarc.parse("p=reject")
    assert err.value.code == "D1"


@pytest.mark.parametrize(
    "value", ["v=DMARC1; rua=mailto:d@example.com", "v=DMARC1; sp=none; p=reject"]
)
def test_d2_missing_or_misplaced_p_is_a_warning(value: str) -> None:
    assert found(check(value), "D2") == [Severity.WARNING]


def test_d2_missing_p_parses_as_none() -> None:
    record = dmarc.parse("v=DMARC1; rua=mailto:d@example.com")
    assert record.p is None
    assert record.effective_p == "none"


@pytest.mark.parametrize("tag", ["p=rejct", "sp=block", "np=all"])
def test_d3_bad_policy_is_an_error(tag: str) -> None:
    value = f"v=DMARC1; p=none; {tag}" if not tag.startswith("p=") else f"v=DMARC1; {tag}"
    assert found(check(value), "D3") == [Severity.ERROR]
    with pytest.raises(RecordSyntaxError) as err:
        dmarc.parse(value)
    assert err.value.code == "D3"


@pytest.mark.parametrize(
    "tag", ["adkim=x", "aspf=relaxed", "fo=2", "fo=0:z", "pct=101", "pct=-1", "ri=1h", "rua=foo"]
)
def test_d4_bad_tag_value_is_an_error(tag: str) -> None:
    assert found(check(f"v=DMARC1; p=none; {tag}"), "D4") == [Severity.ERROR]


def test_d4_good_values_pass() -> None:
    value = "v=DMARC1; p=none; adkim=s; aspf=r; fo=0:1:d:s; pct=100; ri=86400"
    assert found(check(value), "D4") == []


def test_d4_duplicate_tag_is_an_error() -> None:
    assert found(check("v=DMARC1; p=none; p=reject"), "D4") == [Severity.ERROR]


@pytest.mark.parametrize("tag", ["foo=bar", "pct=50", "t=y"])
def test_d5_tags_ignored_by_some_receivers_warn(tag: str) -> None:
    assert found(check(f"v=DMARC1; p=quarantine; {tag}"), "D5") == [Severity.WARNING]


def test_d5_known_tags_do_not_warn() -> None:
    assert found(check("v=DMARC1; p=quarantine; pct=100; np=reject; t=n; psd=n"), "D5") == []


def test_d6_two_records_is_an_error() -> None:
    findings = dmarc.validate("_dmarc", "TXT", (GOOD, "v=DMARC1; p=none"), ctx())
    assert found(findings, "D6") == [Severity.ERROR]
    assert found(check(GOOD), "D6") == []


def test_d7_unauthorised_external_destination_warns() -> None:
    asked: list[tuple[str, str]] = []

    def authorised(zone: str, dest: str) -> bool:
        asked.append((zone, dest))
        return False

    findings = check(
        "v=DMARC1; p=none; rua=mailto:r@Reports.Example.net!10m", report_authorised=authorised
    )
    assert found(findings, "D7") == [Severity.WARNING]
    assert asked == [(ZONE, "reports.example.net")]
    assert "example.com._report._dmarc.reports.example.net" in findings[0].message


def test_d7_unknown_authorisation_is_info() -> None:
    findings = check("v=DMARC1; p=none; ruf=mailto:r@reports.example.net")
    assert found(findings, "D7") == [Severity.INFO]


def test_d7_authorised_or_internal_destination_passes() -> None:
    def never(zone: str, dest: str) -> bool:
        raise AssertionError("internal destinations need no authorisation")

    internal = "v=DMARC1; p=none; rua=mailto:a@example.com,mailto:b@mail.example.com"
    assert found(check(internal, report_authorised=never), "D7") == []
    external = "v=DMARC1; p=none; rua=mailto:r@reports.example.net"
    assert found(check(external, report_authorised=lambda z, d: True), "D7") == []


def test_parse_typed_fields() -> None:
    record = dmarc.parse(
        "v=DMARC1; p=Quarantine; sp=reject; pct=25; rua=mailto:a@example.com, mailto:b@x.example; "
        "adkim=s; fo=1"
    )
    assert (record.p, record.sp, record.np, record.pct) == ("quarantine", "reject", None, 25)
    assert record.rua == ("mailto:a@example.com", "mailto:b@x.example")
    assert (record.effective_np, record.effective_aspf, record.adkim, record.fo) == (
        "reject",
        "r",
        "s",
        "1",
    )
    assert [t.name for t in record.tags] == ["v", "p", "sp", "pct", "rua", "adkim", "fo"]


# --- facts (risk table rows) ------------------------------------------------------------------


def test_identical_records_have_no_facts() -> None:
    assert diff(GOOD, GOOD) == []


def test_p_none_to_quarantine() -> None:
    facts = diff("v=DMARC1; p=none", "v=DMARC1; p=quarantine")
    fact = one(facts, "dmarc.p")
    assert str(fact) == "dmarc.p none->quarantine"
    assert fact.attrs["direction"] == "stricter"
    assert fact.attrs["pct"] == 100
    assert [f.code for f in facts] == ["dmarc.p"]


def test_pct_increase_inside_quarantine() -> None:
    facts = diff("v=DMARC1; p=quarantine; pct=50", "v=DMARC1; p=quarantine; pct=100")
    fact = one(facts, "dmarc.pct")
    assert (fact.old, fact.new) == ("50", "100")
    assert dict(fact.attrs) == {"direction": "increase", "policy": "quarantine"}
    assert by_code(facts, "dmarc.p") == []


def test_pct_default_is_100() -> None:
    fact = one(diff("v=DMARC1; p=quarantine", "v=DMARC1; p=quarantine; pct=20"), "dmarc.pct")
    assert (fact.old, fact.new, fact.attrs["direction"]) == ("100", "20", "decrease")


def test_p_escalation_to_reject() -> None:
    fact = one(diff("v=DMARC1; p=quarantine", "v=DMARC1; p=reject"), "dmarc.p")
    assert (fact.old, fact.new, fact.attrs["direction"]) == ("quarantine", "reject", "stricter")


def test_p_relaxed_to_none_is_looser() -> None:
    fact = one(diff("v=DMARC1; p=reject", "v=DMARC1; p=none"), "dmarc.p")
    assert (fact.old, fact.new, fact.attrs["direction"]) == ("reject", "none", "looser")


def test_record_deleted() -> None:
    facts = diff("v=DMARC1; p=reject; rua=mailto:d@example.com", None)
    assert str(one(facts, "dmarc.record")) == "dmarc.record -published"
    policy = one(facts, "dmarc.p")
    assert (policy.old, policy.new, policy.attrs["direction"]) == ("reject", None, "looser")
    assert str(one(facts, "dmarc.rua")) == "dmarc.rua -mailto:d@example.com"


def test_record_created_compares_against_none() -> None:
    facts = diff(None, "v=DMARC1; p=reject")
    assert str(one(facts, "dmarc.record")) == "dmarc.record +published"
    policy = one(facts, "dmarc.p")
    assert (policy.old, policy.new, policy.attrs["direction"]) == (None, "reject", "stricter")


def test_record_created_with_p_none_has_no_policy_fact() -> None:
    facts = diff(None, "v=DMARC1; p=none")
    assert [str(f) for f in facts] == ["dmarc.record +published"]


def test_sp_uses_effective_values_and_only_when_explicit() -> None:
    fact = one(diff("v=DMARC1; p=reject; sp=none", "v=DMARC1; p=reject"), "dmarc.sp")
    assert (fact.old, fact.new, fact.attrs["direction"]) == ("none", "reject", "stricter")
    # sp never written: p carries the change, no sp/np facts
    facts = diff("v=DMARC1; p=none", "v=DMARC1; p=reject")
    assert [f.code for f in facts] == ["dmarc.p"]


def test_np_added() -> None:
    fact = one(diff("v=DMARC1; p=none", "v=DMARC1; p=none; np=reject"), "dmarc.np")
    assert (fact.old, fact.new, fact.attrs["direction"]) == ("none", "reject", "stricter")


def test_new_rua_destination_external_and_internal() -> None:
    facts = diff(
        "v=DMARC1; p=none; rua=mailto:d@example.com",
        "v=DMARC1; p=none; rua=mailto:d@example.com,mailto:x@vendor.example,"
        "mailto:y@sub.example.com",
    )
    rua = by_code(facts, "dmarc.rua")
    assert [(f.new, f.attrs["external"]) for f in rua] == [
        ("mailto:x@vendor.example", True),
        ("mailto:y@sub.example.com", False),
    ]
    assert all(f.old is None for f in rua)


def test_ruf_added() -> None:
    fact = one(
        diff("v=DMARC1; p=none", "v=DMARC1; p=none; ruf=mailto:f@vendor.example"), "dmarc.ruf"
    )
    assert (fact.old, fact.new, fact.attrs["external"]) == (None, "mailto:f@vendor.example", True)


def test_alignment_strict() -> None:
    fact = one(diff("v=DMARC1; p=none", "v=DMARC1; p=none; adkim=s"), "dmarc.adkim")
    assert (fact.old, fact.new, fact.attrs["direction"]) == ("r", "s", "stricter")
    fact = one(diff("v=DMARC1; p=none; aspf=s", "v=DMARC1; p=none; aspf=r"), "dmarc.aspf")
    assert fact.attrs["direction"] == "looser"


def test_other_tag_change() -> None:
    fact = one(diff("v=DMARC1; p=none; fo=0", "v=DMARC1; p=none; fo=1"), "dmarc.tag")
    assert (str(fact), fact.attrs["tag"]) == ("dmarc.tag fo=0->fo=1", "fo")


def test_unparsed_after() -> None:
    facts = diff("v=DMARC1; p=none", "v=DMARC1; p=rejct")
    assert [str(f) for f in facts] == ["dmarc.unparsed v=DMARC1; p=none->v=DMARC1; p=rejct"]


def test_change_without_meaning_is_not_silent() -> None:
    facts = diff("v=DMARC1; p=none", "v=DMARC1; p=none; pct=100")
    assert [f.code for f in facts] == ["dmarc.changed"]


# --- no-op changes ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "equal"),
    [
        ("v=DMARC1;p=quarantine;pct=50;rua=mailto:dmarc@example.com", True),
        ("v=DMARC1; rua=mailto:dmarc@example.com; pct=50; p=quarantine", True),
        ("v=DMARC1 ; P = quarantine ; pct=50 ; rua=mailto:dmarc@example.com ;", True),
        ("v=DMARC1; p=quarantine; pct=100; rua=mailto:dmarc@example.com", False),
        ("v=DMARC1; p=quarantine; pct=50", False),
        ("v=DMARC1; p=Quarantine; pct=50; rua=mailto:dmarc@example.com", False),  # when in doubt
        ("p=quarantine; v=DMARC1; pct=50; rua=mailto:dmarc@example.com", False),  # D1: invalid
    ],
)
def test_equivalent_means_same_tags_and_values(value: str, equal: bool) -> None:
    live = ("v=DMARC1; p=quarantine; pct=50; rua=mailto:dmarc@example.com",)
    assert dmarc.equivalent(live, (value,)) is equal


def test_whitespace_or_tag_order_change_is_not_planned(tmp_path: Path) -> None:
    repo = copy_example(tmp_path)
    zone = repo / "zones/northwind-health/nwh-patients.example.yaml"
    text = zone.read_text(encoding="utf-8")
    # Live (sandbox/live) holds "v=DMARC1; p=quarantine; pct=50; rua=mailto:dmarc@...".
    reordered = r"v=DMARC1\;rua=mailto:dmarc@northwind-health.example\;  pct=50\; p=quarantine"
    zone.write_text(
        text.replace(
            r"v=DMARC1\; p=quarantine\; pct=100\; rua=mailto:dmarc@northwind-health.example",
            reordered,
        ),
        encoding="utf-8",
    )
    options = PlanOptions(now=datetime(2026, 12, 1, 9, tzinfo=UTC), zones=["nwh-patients.example"])
    for _ in range(2):  # and stays so: nothing is left for apply to converge
        plan = make_plan(load_portfolio(repo), options)
        assert plan.items == ()
        assert plan.zones[0].error == "" and plan.zones[0].octodns_plan is None
    # A real change next to it is planned as before, with the whole new text.
    zone.write_text(text.replace("pct=100", "pct=75"), encoding="utf-8")
    plan = make_plan(load_portfolio(repo), options)
    assert [str(f) for f in plan.items[0].facts] == ["dmarc.pct 50->75"]
