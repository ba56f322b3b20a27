"""SPF validation (S1-S9) and facts, against RFC 7208 (docs/rules.md)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from pipeline.diff import spf
from pipeline.diff.context import ZoneContext
from pipeline.diff.errors import RecordSyntaxError
from pipeline.model import Fact, Finding, Severity, SpfBudget

ZONE = "example.com"
GOOD = "v=spf1 include:_spf.google.com ip4:192.0.2.0/24 -all"
QUERYING = ("include:", "a", "mx", "ptr", "exists:", "redirect=")


def counting_budget(source: str = "dns") -> Callable[[str, str], SpfBudget]:
    """Counts the querying terms of the record itself (one level is enough for these tests)."""

    def budget(text: str, fqdn: str) -> SpfBudget:
        terms = [t.lstrip("+-~?").lower() for t in text.split()[1:]]
        lookups = sum(
            1
            for t in terms
            if t.startswith(("include:", "exists:", "redirect="))
            or t.split(":")[0].split("/")[0] in ("a", "mx", "ptr")
        )
        return SpfBudget(lookups=lookups, void_lookups=0, source=source)

    return budget


def fixed_budget(**fields: object) -> Callable[[str, str], SpfBudget]:
    values = {"lookups": 1, "void_lookups": 0, "source": "dns", **fields}
    return lambda text, fqdn: SpfBudget(**values)  # type: ignore[arg-type]


APPROVED = {"include:sendgrid.net": "SendGrid", "include:_spf.google.com": "Google Workspace"}


def ctx(**kwargs: object) -> ZoneContext:
    kwargs.setdefault("spf_budget", counting_budget())
    kwargs.setdefault("pre_approved_sender", APPROVED.get)
    return ZoneContext(ZONE, **kwargs)  # type: ignore[arg-type]


def check(*values: str, name: str = "", **kwargs: object) -> list[Finding]:
    return spf.validate(name, "TXT", values, ctx(**kwargs))


def found(findings: list[Finding], code: str) -> list[Severity]:
    return [f.severity for f in findings if f.code == code]


def diff(
    before: tuple[str, ...], after: tuple[str, ...], name: str = "", **kw: object
) -> list[Fact]:
    return spf.facts(name, "TXT", before, after, ctx(**kw))


def by_code(facts: list[Fact], code: str) -> list[Fact]:
    return [f for f in facts if f.code == code]


def one(facts: list[Fact], code: str) -> Fact:
    matching = by_code(facts, code)
    assert len(matching) == 1, [str(f) for f in facts]
    return matching[0]


def test_good_record_has_no_findings() -> None:
    assert check(GOOD, "google-site-verification=abc") == []


# --- validation -------------------------------------------------------------------------------


def test_s1_two_spf_values_is_an_error() -> None:
    findings = check(GOOD, "v=spf1 -all")
    assert found(findings, "S1") == [Severity.ERROR]


@pytest.mark.parametrize(
    "value",
    [
        "v=spf1 foo:bar -all",
        "v=spf1 include -all",
        "v=spf1 ip4:300.1.1.1 -all",
        "v=spf1 ip6:192.0.2.1 -all",
        "v=spf1 a/33 -all",
        "v=spf1 all:x",
    ],
)
def test_s1_syntax_errors(value: str) -> None:
    assert found(check(value), "S1") == [Severity.ERROR]
    with pytest.raises(RecordSyntaxError):
        spf.parse(value)


def test_s2_too_many_lookups_is_an_error_and_says_estimated() -> None:
    findings = check(GOOD, spf_budget=fixed_budget(lookups=11, source="catalog"))
    assert found(findings, "S2") == [Severity.ERROR]
    assert "estimated from the sender catalog" in findings[0].message
    dns = check(GOOD, spf_budget=fixed_budget(lookups=11, source="dns"))
    assert "estimated" not in dns[0].message


def test_s2_ten_lookups_pass() -> None:
    assert found(check(GOOD, spf_budget=fixed_budget(lookups=10)), "S2") == []


def test_s2_budget_errors_surface() -> None:
    budget = fixed_budget(errors=("include:gone.example has no SPF record",))
    findings = check(GOOD, spf_budget=budget)
    assert found(findings, "S2") == [Severity.ERROR]
    assert "gone.example" in findings[0].message


def test_budget_is_asked_with_the_spf_text_and_fqdn() -> None:
    asked: list[tuple[str, str]] = []

    def budget(text: str, fqdn: str) -> SpfBudget:
        asked.append((text, fqdn))
        return SpfBudget(1, 0, "dns")

    check(GOOD, "other=1", name="mail", spf_budget=budget)
    assert asked == [(GOOD, "mail.example.com")]


def test_s3_mx_over_limit() -> None:
    findings = check(GOOD, spf_budget=fixed_budget(mx_over_limit=("mx:big.example",)))
    assert found(findings, "S3") == [Severity.ERROR]
    assert "mx:big.example" in findings[0].message


def test_s4_void_lookups() -> None:
    assert found(check(GOOD, spf_budget=fixed_budget(void_lookups=3)), "S4") == [Severity.ERROR]
    assert found(check(GOOD, spf_budget=fixed_budget(void_lookups=2)), "S4") == []


def test_s5_all_qualifiers() -> None:
    assert found(check("v=spf1 mx +all"), "S5") == [Severity.ERROR]
    assert found(check("v=spf1 mx all"), "S5") == [Severity.ERROR]  # no qualifier means +
    assert found(check("v=spf1 mx ?all"), "S5") == [Severity.WARNING]
    assert found(check("v=spf1 mx ~all"), "S5") == []


def test_s6_ptr_warns() -> None:
    assert found(check("v=spf1 ptr:example.com -all"), "S6") == [Severity.WARNING]
    assert found(check(GOOD), "S6") == []


def test_s7_strings_joined_without_space() -> None:
    findings = check("v=spf1 include:_spf.google.cominclude:sendgrid.net -all")
    assert found(findings, "S7") == [Severity.ERROR]
    assert found(check("v=spf1 ~include:sendgrid.net -all"), "S7") == []


def test_s7_string_length() -> None:
    assert found(spf.validate_txt_strings("", ("x" * 256,)), "S7") == [Severity.ERROR]
    assert spf.validate_txt_strings("", ("x" * 255, "y" * 10)) == []


def test_s8_measures_the_whole_set() -> None:
    big = "google-site-verification=" + "x" * 400
    assert found(check(GOOD, big), "S8") == [Severity.WARNING]
    assert found(check(GOOD, "google-site-verification=abc"), "S8") == []
    assert spf.answer_size((GOOD,)) == 12 + len(GOOD) + 1
    assert spf.answer_size(("x" * 300,)) == 12 + 300 + 2  # two character-strings


def test_s9_redirect_twice_is_an_error() -> None:
    findings = check("v=spf1 redirect=a.example redirect=b.example")
    assert found(findings, "S9") == [Severity.ERROR]


def test_s9_redirect_with_all_and_terms_after_all_warn() -> None:
    findings = check("v=spf1 mx -all include:sendgrid.net redirect=_spf.example.com")
    assert found(findings, "S9") == [Severity.WARNING, Severity.WARNING]
    messages = " ".join(f.message for f in findings if f.code == "S9")
    assert "redirect=_spf.example.com" in messages
    # The terms as the record writes them, not with the implicit "+" (`+include:...`).
    assert "-all are never evaluated (RFC 7208 5.1): include:sendgrid.net;" in messages
    assert "+include" not in messages
    written = check("v=spf1 -all +mx ~Include:sendgrid.net MX:mail.example.com")
    (after,) = [f.message for f in written if f.code == "S9"]
    assert ": +mx ~Include:sendgrid.net MX:mail.example.com;" in after
    assert found(check("v=spf1 mx redirect=_spf.example.com"), "S9") == []


def test_parse_terms() -> None:
    record = spf.parse(
        "v=spf1 a/24 mx:mail.example.com//64 ~include:x.example ip6:2001:db8::/32 -all"
    )
    assert [(m.qualifier, m.name, m.argument, m.cidr) for m in record.mechanisms] == [
        ("+", "a", "", "/24"),
        ("+", "mx", "mail.example.com", "//64"),
        ("~", "include", "x.example", ""),
        ("+", "ip6", "2001:db8::/32", ""),
        ("-", "all", "", ""),
    ]


# --- facts (risk table rows) ------------------------------------------------------------------

BEFORE = "v=spf1 include:_spf.google.com ~all"


def test_identical_and_other_values_only_give_no_facts() -> None:
    assert (
        diff((BEFORE, "google-site-verification=a"), ("google-site-verification=b", BEFORE)) == []
    )


def test_sender_added_pre_approved_with_headroom() -> None:
    facts = diff((BEFORE,), ("v=spf1 include:_spf.google.com include:sendgrid.net ~all",))
    added = one(facts, "spf.include")
    assert str(added) == "spf.include +sendgrid.net"
    assert dict(added.attrs) == {
        "sender": True,
        "qualifier": "+",
        "pre_approved": True,
        "sender_name": "SendGrid",
    }
    lookups = one(facts, "spf.lookups")
    assert (lookups.old, lookups.new) == ("1", "2")
    assert dict(lookups.attrs) == {"headroom": 8, "source": "dns", "void_lookups": 0}


def test_sender_added_not_pre_approved() -> None:
    facts = diff((BEFORE,), ("v=spf1 include:_spf.google.com include:mailgun.org ~all",))
    added = one(facts, "spf.include")
    assert (added.new, added.attrs["pre_approved"], added.attrs["sender_name"]) == (
        "mailgun.org",
        False,
        "",
    )


def test_sender_added_without_headroom() -> None:
    before = "v=spf1 " + " ".join(f"include:s{i}.example" for i in range(8)) + " ~all"
    after = before.replace(" ~all", " include:sendgrid.net ~all")
    lookups = one(diff((before,), (after,)), "spf.lookups")
    assert (lookups.old, lookups.new, lookups.attrs["headroom"]) == ("8", "9", 1)
    estimated = one(diff((before,), (after,), spf_budget=counting_budget("catalog")), "spf.lookups")
    assert estimated.attrs["source"] == "catalog"


def test_sender_ip_added() -> None:
    facts = diff((BEFORE,), ("v=spf1 include:_spf.google.com ip4:198.51.100.7 ~all",))
    fact = one(facts, "spf.ip4")
    assert (fact.new, fact.attrs["sender"], fact.attrs["pre_approved"]) == (
        "198.51.100.7",
        True,
        False,
    )
    assert by_code(facts, "spf.lookups") == []  # the count did not change


def test_bare_mx_and_a_name_the_record_domain() -> None:
    facts = diff(("v=spf1 -all",), ("v=spf1 mx a/24 -all",), name="mail")
    assert one(facts, "spf.mx").new == "mail.example.com"
    assert one(facts, "spf.a").new == "mail.example.com/24"


def test_sender_removed() -> None:
    facts = diff(("v=spf1 include:_spf.google.com include:sendgrid.net ~all",), (BEFORE,))
    removed = one(facts, "spf.include")
    assert (removed.old, removed.new, removed.change) == ("sendgrid.net", None, "removed")
    assert removed.attrs["sender_name"] == "SendGrid"


def test_flattening_consolidates_includes() -> None:
    facts = diff(
        ("v=spf1 include:_spf.google.com include:sendgrid.net mx ~all",),
        ("v=spf1 ip4:192.0.2.0/24 ip6:2001:db8::/32 include:sendgrid.net mx ~all",),
    )
    flattened = one(facts, "spf.flattened")
    assert flattened.old == "include:_spf.google.com"
    assert flattened.new == "ip4:192.0.2.0/24 ip6:2001:db8::/32"
    assert flattened.attrs["includes_removed"] == 1
    assert by_code(facts, "spf.include") == []
    assert by_code(facts, "spf.ip4") == by_code(facts, "spf.ip6") == []


def test_include_removed_without_new_ips_is_not_flattening() -> None:
    facts = diff(("v=spf1 include:a.example ip4:192.0.2.1 -all",), ("v=spf1 ip4:192.0.2.1 -all",))
    assert by_code(facts, "spf.flattened") == []
    assert one(facts, "spf.include").old == "a.example"


@pytest.mark.parametrize(
    ("old", "new", "direction", "to"),
    [
        ("~all", "-all", "stricter", "-"),
        ("~all", "?all", "looser", "?"),
        ("-all", "+all", "looser", "+"),
        ("-all", None, "looser", ""),
    ],
)
def test_all_qualifier_change(old: str, new: str | None, direction: str, to: str) -> None:
    after = f"v=spf1 mx {new}" if new else "v=spf1 mx"
    fact = one(diff((f"v=spf1 mx {old}",), (after,)), "spf.all")
    assert (fact.old, fact.new) == (old, new)
    assert dict(fact.attrs) == {"direction": direction, "to": to}


def test_qualifier_change_on_kept_mechanism() -> None:
    fact = one(
        diff(("v=spf1 include:sendgrid.net -all",), ("v=spf1 ~include:sendgrid.net -all",)),
        "spf.include",
    )
    assert (fact.old, fact.new) == ("+include:sendgrid.net", "~include:sendgrid.net")
    assert (fact.attrs["qualifier"], fact.attrs["direction"]) == ("~", "stricter")


def test_record_created_and_deleted() -> None:
    facts = diff(("google-site-verification=a",), ("google-site-verification=a", BEFORE))
    assert str(one(facts, "spf.record")) == "spf.record +published"
    assert str(one(facts, "spf.include")) == "spf.include +_spf.google.com"
    assert str(one(facts, "spf.all")) == "spf.all +~all"
    lookups = one(facts, "spf.lookups")
    assert (lookups.old, lookups.new, lookups.attrs["headroom"]) == (None, "1", 9)
    gone = diff((BEFORE,), ())
    assert str(one(gone, "spf.record")) == "spf.record -published"
    assert one(gone, "spf.include").attrs["sender"] is True
    assert by_code(gone, "spf.lookups") == []


def test_modifiers() -> None:
    facts = diff(
        ("v=spf1 redirect=_spf.a.example",),
        ("v=spf1 redirect=_spf.b.example exp=why.example foo=bar",),
    )
    assert str(one(facts, "spf.redirect")) == "spf.redirect _spf.a.example->_spf.b.example"
    assert str(one(facts, "spf.exp")) == "spf.exp +why.example"
    modifier = one(facts, "spf.modifier")
    assert (modifier.new, modifier.attrs["modifier"]) == ("foo=bar", "foo")


def test_unparsed_and_duplicate_records() -> None:
    facts = diff((BEFORE,), ("v=spf1 bogus -all",))
    assert [str(f) for f in facts] == [f"spf.unparsed {BEFORE}->v=spf1 bogus -all"]
    two = diff((BEFORE,), (BEFORE, "v=spf1 -all"))
    assert [f.code for f in two] == ["spf.unparsed"]


def test_change_without_meaning_is_not_silent() -> None:
    facts = diff(("v=spf1 mx -all",), ("v=spf1 MX  -all",))
    assert [f.code for f in facts] == ["spf.changed"]
