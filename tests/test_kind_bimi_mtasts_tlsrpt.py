"""BIMI (B1-B2), MTA-STS (M1-M3), TLS-RPT (T1), report authorisations, and the kind registry."""

from __future__ import annotations

import pytest

import pipeline.diff as diff_stage
from pipeline.diff import bimi, dmarc, mtasts, reportauth, tlsrpt
from pipeline.diff.context import RRsetKey, ZoneContext
from pipeline.model import Fact, Finding, RecordKind, Severity

ZONE = "example.com"
LOGO = "v=BIMI1; l=https://brand.example.com/logo.svg; a=https://brand.example.com/vmc.pem"


def ctx(desired: dict[RRsetKey, tuple[str, ...]] | None = None) -> ZoneContext:
    return ZoneContext(ZONE, desired=desired or {})


def found(findings: list[Finding], code: str) -> list[Severity]:
    return [f.severity for f in findings if f.code == code]


def one(facts: list[Fact], code: str) -> Fact:
    matching = [f for f in facts if f.code == code]
    assert len(matching) == 1, [str(f) for f in facts]
    return matching[0]


def with_dmarc(policy: str, name: str = "_dmarc") -> dict[RRsetKey, tuple[str, ...]]:
    return {(name, "TXT"): (f"v=DMARC1; {policy}",), ("default._bimi", "TXT"): (LOGO,)}


# --- BIMI -------------------------------------------------------------------------------------


def test_good_bimi_has_no_findings() -> None:
    context = ctx(with_dmarc("p=reject"))
    assert bimi.validate("default._bimi", "TXT", (LOGO,), context) == []


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("v=BIMI2; l=https://b.example/logo.svg", [Severity.ERROR]),
        ("l=https://b.example/logo.svg; v=BIMI1", [Severity.ERROR]),
        ("v=BIMI1; l=http://b.example/logo.svg", [Severity.ERROR]),
        ("v=BIMI1; l=https://b.example/logo.png", [Severity.WARNING]),
        ("v=BIMI1; l=https://b.example/logo.svg; a=http://b.example/vmc.pem", [Severity.ERROR]),
        (
            "v=BIMI1; l=https://b.example/logo.png; a=ftp://b.example/vmc.pem",
            [Severity.WARNING, Severity.ERROR],
        ),
        ("v=BIMI1; l=http://b.example/logo.svg; a=ftp://b.example/vmc.pem", [Severity.ERROR] * 2),
        ("v=BIMI1; l=; a=;", []),
    ],
)
def test_b1(value: str, expected: list[Severity]) -> None:
    context = ctx(with_dmarc("p=reject"))
    assert found(bimi.validate("default._bimi", "TXT", (value,), context), "B1") == expected


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ("v=BIMI1; l=https://exa!mple.com/logo.svg", "the label exa!mple holds '!'"),
        ("v=BIMI1; l=https://brand/logo.svg", "brand is a single label, not a domain"),
        ("v=BIMI1; l=https://b_x.example/logo.svg", "the label b_x holds '_'"),
        ("v=BIMI1; l=https://192.0.2.1/logo.svg", "the top label 1 is not a top-level domain"),
        (
            "v=BIMI1; l=https://b.example/logo.svg; a=https://-vmc.example/v.pem",
            "the label -vmc starts or ends with a hyphen",
        ),
    ],
)
def test_b1_url_hosts_are_domains(value: str, says: str) -> None:
    # A logo or evidence URL is fetched by name over TLS: its host is checked as any domain.
    findings = bimi.validate("default._bimi", "TXT", (value,), ctx(with_dmarc("p=reject")))
    errors = [f.message for f in findings if f.code == "B1" and f.severity is Severity.ERROR]
    assert len(errors) == 1 and says in errors[0], errors


def test_b1_url_host_with_port_and_capitals_is_a_domain() -> None:
    value = "v=BIMI1; l=https://Brand.Example.COM:443/logo.svg"
    findings = bimi.validate("default._bimi", "TXT", (value,), ctx(with_dmarc("p=reject")))
    assert found(findings, "B1") == []


@pytest.mark.parametrize(
    ("policy", "qualifies"),
    [
        ("p=none", False),
        ("p=quarantine; pct=50", False),
        ("p=quarantine", True),
        ("p=quarantine; pct=100", True),
        ("p=reject", True),
        ("p=reject; sp=none", False),
        ("p=reject; t=y", False),
        ("p=rejct", False),
    ],
)
def test_b2_needs_enforced_dmarc(policy: str, qualifies: bool) -> None:
    findings = bimi.validate("default._bimi", "TXT", (LOGO,), ctx(with_dmarc(policy)))
    assert found(findings, "B2") == ([] if qualifies else [Severity.ERROR])


def test_b2_without_dmarc() -> None:
    findings = bimi.validate("default._bimi", "TXT", (LOGO,), ctx())
    assert found(findings, "B2") == [Severity.ERROR]
    assert "no DMARC record" in findings[0].message


def test_b2_subdomain_uses_its_own_dmarc_else_the_apex() -> None:
    desired = with_dmarc("p=reject")
    desired[("default._bimi.shop", "TXT")] = (LOGO,)
    assert found(bimi.validate("default._bimi.shop", "TXT", (LOGO,), ctx(desired)), "B2") == []
    desired[("_dmarc.shop", "TXT")] = ("v=DMARC1; p=none",)
    findings = bimi.validate("default._bimi.shop", "TXT", (LOGO,), ctx(desired))
    assert found(findings, "B2") == [Severity.ERROR]
    assert "_dmarc.shop.example.com" in findings[0].message


def test_b2_not_needed_for_a_declination() -> None:
    findings = bimi.validate("default._bimi", "TXT", ("v=BIMI1; l=; a=;",), ctx())
    assert findings == []


def test_bimi_facts() -> None:
    published = bimi.facts("default._bimi", "TXT", (), (LOGO,), ctx())
    assert [str(f) for f in published] == [
        "bimi.record +published",
        "bimi.logo +https://brand.example.com/logo.svg",
        "bimi.authority +https://brand.example.com/vmc.pem",
    ]
    changed = bimi.facts(
        "default._bimi", "TXT", (LOGO,), (LOGO.replace("logo.svg", "logo2.svg"),), ctx()
    )
    assert [f.code for f in changed] == ["bimi.logo"]
    assert changed[0].new == "https://brand.example.com/logo2.svg"
    assert [f.code for f in bimi.facts("default._bimi", "TXT", (LOGO,), ("v=BIMI2",), ctx())] == [
        "bimi.unparsed"
    ]
    assert bimi.facts("default._bimi", "TXT", (LOGO,), (LOGO,), ctx()) == []


def dmarc_facts(before: str, after: str, desired: dict[RRsetKey, tuple[str, ...]]) -> list[Fact]:
    desired = {**desired, ("_dmarc", "TXT"): (after,)}
    return dmarc.facts("_dmarc", "TXT", (before,), (after,), ctx(desired))


def test_dmarc_change_that_breaks_bimi() -> None:
    facts = dmarc_facts("v=DMARC1; p=reject", "v=DMARC1; p=quarantine; pct=50", with_dmarc(""))
    fact = one(facts, "dmarc.breaks_bimi")
    assert fact.new is not None and "pct=50" in fact.new
    assert fact.attrs["bimi"] == "default._bimi.example.com"


def test_dmarc_change_that_keeps_bimi_or_was_already_broken() -> None:
    desired = with_dmarc("")
    kept = dmarc_facts("v=DMARC1; p=quarantine", "v=DMARC1; p=reject", desired)
    assert [f for f in kept if f.code == "dmarc.breaks_bimi"] == []
    already = dmarc_facts("v=DMARC1; p=none", "v=DMARC1; p=none; fo=1", desired)
    assert [f for f in already if f.code == "dmarc.breaks_bimi"] == []


def test_dmarc_change_without_bimi_or_with_declination() -> None:
    none = dmarc_facts("v=DMARC1; p=reject", "v=DMARC1; p=none", {})
    assert [f for f in none if f.code == "dmarc.breaks_bimi"] == []
    declined = {("default._bimi", "TXT"): ("v=BIMI1; l=; a=;",)}
    facts = dmarc_facts("v=DMARC1; p=reject", "v=DMARC1; p=none", declined)
    assert [f for f in facts if f.code == "dmarc.breaks_bimi"] == []


def test_dmarc_sp_none_breaks_bimi() -> None:
    facts = dmarc_facts("v=DMARC1; p=reject", "v=DMARC1; p=reject; sp=none", with_dmarc(""))
    assert "sp=none" in (one(facts, "dmarc.breaks_bimi").new or "")


# --- MTA-STS record ---------------------------------------------------------------------------

STS = "v=STSv1; id=20260101T000000"


def test_m1_good_record() -> None:
    assert mtasts.validate("_mta-sts", "TXT", (STS,), ctx()) == []


@pytest.mark.parametrize(
    "values",
    [
        (STS, "v=STSv1; id=2"),
        ("v=STSv1; id=2026-01-01",),
        ("v=STSv1; id=" + "a" * 33,),
        ("v=STSv1",),
        ("id=1; v=STSv1",),
    ],
)
def test_m1_errors(values: tuple[str, ...]) -> None:
    assert found(mtasts.validate("_mta-sts", "TXT", values, ctx()), "M1") == [Severity.ERROR]


def test_mta_sts_record_facts() -> None:
    changed = mtasts.facts("_mta-sts", "TXT", (STS,), ("v=STSv1; id=2",), ctx())
    assert [str(f) for f in changed] == ["mta_sts.id 20260101T000000->2"]
    published = mtasts.facts("_mta-sts", "TXT", (), (STS,), ctx())
    assert [str(f) for f in published] == [
        "mta_sts.record +published",
        "mta_sts.id +20260101T000000",
    ]
    assert [f.code for f in mtasts.facts("_mta-sts", "TXT", (STS,), ("v=STSv1",), ctx())] == [
        "mta_sts.unparsed"
    ]


# --- MTA-STS policy file ----------------------------------------------------------------------


def policy(mode: str, *mx: str, max_age: int = 604800) -> str:
    lines = ["version: STSv1", f"mode: {mode}", *(f"mx: {m}" for m in mx), f"max_age: {max_age}"]
    return "\r\n".join(lines) + "\r\n"


def test_m2_good_policies() -> None:
    assert mtasts.validate_policy(policy("enforce", "mx1.example.com", "*.mail.example.com")) == []
    assert mtasts.validate_policy(policy("none")) == []
    parsed = mtasts.parse_policy(policy("testing", "MX1.example.com"))
    assert (parsed.mode, parsed.max_age, parsed.mx) == ("testing", 604800, ("mx1.example.com",))


@pytest.mark.parametrize(
    "text",
    [
        policy("enforce", "mx1.example.com").replace("STSv1", "STSv2"),
        policy("strict", "mx1.example.com"),
        policy("enforce", "mx1.example.com", max_age=31557601),
        policy("enforce"),
        policy("testing", "mx1.example.com") + "mode: enforce\n",
        "version: STSv1\nmode: none\n",
        policy("enforce", "not a host"),
        # RFC 8461 3.2 max_age is 1*10(DIGIT): ASCII digits; int() would read these.
        policy("enforce", "mx1.example.com").replace("604800", "６０４８００"),
    ],
)
def test_m2_errors(text: str) -> None:
    assert found(mtasts.validate_policy(text), "M2") == [Severity.ERROR]


def test_m2_lines_are_read_as_senders_read_them() -> None:
    good = "version: STSv1\nmode:\tenforce \t\nmx: mx1.example.com\r\nmax_age: 86400"
    assert mtasts.validate_policy(good) == []
    assert mtasts.parse_policy(good).mode == "enforce"

    def m2(text: str) -> list[str]:
        return [f.message.removeprefix("MTA-STS policy: ") for f in mtasts.validate_policy(text)]

    # A field name with a space before it or before its ":" is another field to senders, so the
    # policy has no mode (RFC 8461 3.2: the name starts the line, ":" follows it).
    assert m2(policy("none").replace("mode: none", " mode: none")) == [
        "line 2 ' mode: none': no spaces are allowed before the field name or between it and ':' "
        "(RFC 8461 3.2); write mode: none",
        "the mode field is missing",
    ]
    assert m2(policy("none").replace("mode: none", "mode : none"))[0] == (
        "line 2 'mode : none': no spaces are allowed before the field name or between it and ':' "
        "(RFC 8461 3.2); write mode: none"
    )
    # Lines end at LF or CRLF only: a lone CR does not break the line for senders, who then read
    # version "STSv1\rmode: none"; the lint must not split there either.
    assert m2("version: STSv1\rmode: none\nmax_age: 1\n") == [
        "line 1 holds the control character '\\r'; a policy line is text ending in LF or CRLF "
        "(RFC 8461 3.2)",
        "the version field is missing",
        "the mode field is missing",
    ]
    assert m2(policy("none") + "\x0c\n")[0].startswith("line 4 holds the control character '\\x0c'")


def test_m3_policy_changed_without_id_change() -> None:
    before, after = policy("testing", "mx1.example.com"), policy("enforce", "mx1.example.com")
    _, findings = mtasts.policy_facts(before, after, "1", "1")
    assert found(findings, "M3") == [Severity.ERROR]
    _, findings = mtasts.policy_facts(before, after, "1", "2")
    assert findings == []


def test_m3_layout_only_change_needs_no_new_id() -> None:
    before = policy("enforce", "mx1.example.com", "mx2.example.com")
    after = policy("enforce", "mx2.example.com", "mx1.example.com").replace("\r\n", "\n")
    facts, findings = mtasts.policy_facts(before, after, "1", "1")
    assert findings == []
    assert [f.code for f in facts] == ["mta_sts.changed"]


@pytest.mark.parametrize(
    ("old", "new", "direction"),
    [
        ("none", "testing", "stricter"),
        ("testing", "enforce", "stricter"),
        ("enforce", "testing", "looser"),
    ],
)
def test_policy_mode_change(old: str, new: str, direction: str) -> None:
    facts, _ = mtasts.policy_facts(
        policy(old, "mx1.example.com"), policy(new, "mx1.example.com"), "1", "2"
    )
    fact = one(facts, "mta_sts.mode")
    assert (fact.old, fact.new, fact.attrs["direction"]) == (old, new, direction)


def test_policy_mx_change_while_enforcing() -> None:
    facts, _ = mtasts.policy_facts(
        policy("enforce", "mx1.example.com"), policy("enforce", "mx2.example.com"), "1", "2"
    )
    mx = [(f.old, f.new, f.attrs["enforcing"]) for f in facts if f.code == "mta_sts.mx"]
    assert mx == [("mx1.example.com", None, True), (None, "mx2.example.com", True)]
    testing, _ = mtasts.policy_facts(
        policy("testing", "mx1.example.com"), policy("testing", "mx2.example.com"), "1", "2"
    )
    assert {f.attrs["enforcing"] for f in testing if f.code == "mta_sts.mx"} == {False}


def test_policy_max_age_and_publication() -> None:
    facts, _ = mtasts.policy_facts(
        policy("testing", "mx1.example.com"),
        policy("testing", "mx1.example.com", max_age=86400),
        "1",
        "2",
    )
    assert [str(f) for f in facts] == ["mta_sts.max_age 604800->86400"]
    new, findings = mtasts.policy_facts(None, policy("testing", "mx1.example.com"), None, "1")
    assert [f.code for f in new] == [
        "mta_sts.policy",
        "mta_sts.mode",
        "mta_sts.mx",
        "mta_sts.max_age",
    ]
    assert findings == []
    assert mtasts.policy_facts(policy("none"), policy("none"), "1", "1") == ([], [])


def test_policy_unparsed_keeps_m3() -> None:
    facts, findings = mtasts.policy_facts(policy("none"), "garbage", "1", "1")
    assert [(f.code, f.attrs["part"]) for f in facts] == [("mta_sts.unparsed", "policy")]
    assert found(findings, "M3") == [Severity.ERROR]


def test_mta_sts_host() -> None:
    assert mtasts.validate_host("mta-sts", "A", ("192.0.2.1",), ctx()) == []
    assert [str(f) for f in mtasts.host_facts("mta-sts", "A", (), ("192.0.2.1",), ctx())] == [
        "mta_sts.host +192.0.2.1"
    ]
    changed = mtasts.host_facts("mta-sts", "CNAME", ("a.example.",), ("b.example.",), ctx())
    assert [str(f) for f in changed] == ["mta_sts.host a.example.->b.example."]
    assert (
        mtasts.host_facts("mta-sts", "A", ("1.1.1.1", "2.2.2.2"), ("2.2.2.2", "1.1.1.1"), ctx())
        == []
    )


# --- TLS-RPT ----------------------------------------------------------------------------------

TLSRPT = "v=TLSRPTv1; rua=mailto:tls@example.com,https://reports.example.net/tls"


def test_t1_good_record() -> None:
    assert tlsrpt.validate("_smtp._tls", "TXT", (TLSRPT,), ctx()) == []


@pytest.mark.parametrize(
    "values",
    [
        (TLSRPT, "v=TLSRPTv1; rua=mailto:b@example.com"),
        ("v=TLSRPTv1",),
        ("v=TLSRPTv1; rua=ftp://x.example/",),
        ("v=TLSRPTv2; rua=mailto:tls@example.com",),
    ],
)
def test_t1_errors(values: tuple[str, ...]) -> None:
    assert found(tlsrpt.validate("_smtp._tls", "TXT", values, ctx()), "T1") == [Severity.ERROR]


def test_tls_rpt_facts() -> None:
    facts = tlsrpt.facts(
        "_smtp._tls",
        "TXT",
        (TLSRPT,),
        ("v=TLSRPTv1; rua=mailto:tls@example.com,mailto:n@x.example",),
        ctx(),
    )
    assert [str(f) for f in facts] == [
        "tls_rpt.rua -https://reports.example.net/tls",
        "tls_rpt.rua +mailto:n@x.example",
    ]
    published = tlsrpt.facts("_smtp._tls", "TXT", (), (TLSRPT,), ctx())
    assert [str(f) for f in published] == [
        "tls_rpt.record +published",
        "tls_rpt.rua +mailto:tls@example.com",
        "tls_rpt.rua +https://reports.example.net/tls",
    ]


# --- report authorisation ---------------------------------------------------------------------


def test_report_authorisation() -> None:
    name = "customer.example._report._dmarc"
    assert reportauth.validate(name, "TXT", ("v=DMARC1",), ctx()) == []
    findings = reportauth.validate(name, "TXT", ("v=DMARC2",), ctx())
    assert found(findings, "D7") == [Severity.WARNING]
    assert "customer.example" in findings[0].message
    added = reportauth.facts(name, "TXT", (), ("v=DMARC1",), ctx())
    assert [(str(f), f.attrs["domain"]) for f in added] == [
        ("report_auth.record +v=DMARC1", "customer.example")
    ]
    assert reportauth.facts(name, "TXT", ("v=DMARC1",), ("v=DMARC1",), ctx()) == []


# --- registry ---------------------------------------------------------------------------------


def test_every_kind_is_registered_and_dispatches() -> None:
    # Every DNS kind; `policy` is an edit under policy/, never diffed as a record.
    assert set(diff_stage.KIND_MODULES) == set(RecordKind) - {RecordKind.POLICY}
    findings = diff_stage.validate(RecordKind.SPF, "", "TXT", ("v=spf1 +all",), ctx())
    assert "S5" in {f.code for f in findings}
    facts = diff_stage.facts(RecordKind.MTA_STS_HOST, "mta-sts", "A", (), ("192.0.2.1",), ctx())
    assert [f.code for f in facts] == ["mta_sts.host"]
