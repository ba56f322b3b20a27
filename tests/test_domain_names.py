"""Every label of a domain a record names (issue 16, "tests that bite"): not only the top label.

A host name's labels are letters, digits and hyphens with no hyphen at either end (RFC 1123 2.1);
an internationalised name is published in its xn-- form (RFC 5890 2.3.2.1). A name that is looked
up, not connected to (an SPF include, redirect or exists target) may also hold underscores: the
underscored names of RFC 8552 2 (`_spf.example.com`). Each validator that reads a domain applies
the rule that fits it, and says which label is wrong.
"""

from __future__ import annotations

import pytest

from pipeline.diff import mtasts, ns, spf, tlsrpt
from pipeline.diff.context import ZoneContext
from pipeline.diff.errors import RecordSyntaxError
from pipeline.diff.taglist import domain_problem
from pipeline.model import Finding, Severity

HOST_RULE = (
    "a domain's labels are letters, digits and hyphens, with no hyphen at either end (RFC 1123 2.1)"
)
DNS_RULE = (
    "a domain's labels are letters, digits, hyphens and underscores (RFC 8552 2), with no hyphen "
    "at either end (RFC 1123 2.1)"
)
C = ZoneContext("example.com")


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("exa!mple.com", f"exa!mple.com: the label exa!mple holds '!'; {HOST_RULE}"),
        ("mail.exa mple.com", f"mail.exa mple.com: the label exa mple holds ' '; {HOST_RULE}"),
        ("mail_1.example.com", f"mail_1.example.com: the label mail_1 holds '_'; {HOST_RULE}"),
        ("_dmarc.example.com", f"_dmarc.example.com: the label _dmarc holds '_'; {HOST_RULE}"),
        (
            "-mail.example.com",
            f"-mail.example.com: the label -mail starts or ends with a hyphen; {HOST_RULE}",
        ),
        (
            "mail.example-.com",
            f"mail.example-.com: the label example- starts or ends with a hyphen; {HOST_RULE}",
        ),
        (
            "bücher.example",
            "bücher.example: the label bücher holds 'ü'; a domain's labels are letters, digits "
            "and hyphens (an internationalised name is written in its xn-- form, RFC 5890 "
            "2.3.2.1), with no hyphen at either end (RFC 1123 2.1)",
        ),
        # The first bad label is named, wherever it is.
        ("a.b.c!d.e.example", f"a.b.c!d.e.example: the label c!d holds '!'; {HOST_RULE}"),
    ],
    ids=[
        "bang",
        "space",
        "underscore",
        "service-label",
        "leading-hyphen",
        "trailing-hyphen",
        "u-label",
        "deep",
    ],
)
def test_every_label_of_a_host_name_is_letters_digits_and_hyphens(name: str, problem: str) -> None:
    assert domain_problem(name) == problem


@pytest.mark.parametrize(
    "name",
    [
        "example.com",
        "1mail.example.com",
        "a-b.example.com",
        "xn--bcher-kva.example",
        "mx.xn--p1ai",
        "a.example.com.",
    ],
)
def test_letter_digit_hyphen_names_are_host_names(name: str) -> None:
    assert domain_problem(name) is None
    assert domain_problem(name, underscores=True) is None


def test_underscored_labels_are_names_but_not_hosts() -> None:
    for name in ("_spf.example.com", "_report._dmarc.example.com", "spf_1.example.com"):
        assert domain_problem(name, underscores=True) is None, name
        assert domain_problem(name) is not None, name
    assert domain_problem("exa!mple.com", underscores=True) == (
        f"exa!mple.com: the label exa!mple holds '!'; {DNS_RULE}"
    )
    assert domain_problem("_spf-.example.com", underscores=True) == (
        f"_spf-.example.com: the label _spf- starts or ends with a hyphen; {DNS_RULE}"
    )
    # The top label keeps its own rule (and message): no underscore there either.
    assert domain_problem("spf.ex_ample", underscores=True) == (
        "spf.ex_ample: the top label ex_ample is not a top-level domain"
    )


# --- the validators that read a domain ----------------------------------------------------------


def test_spf_refuses_a_bad_label_in_a_domain_spec_and_takes_underscored_names() -> None:
    found = spf.validate("", "TXT", ("v=spf1 include:exa!mple.com -all",), C)
    assert found == [
        Finding(
            "S1",
            Severity.ERROR,
            f"'include:exa!mple.com': exa!mple.com: the label exa!mple holds '!'; {DNS_RULE}; "
            "receivers return permerror (RFC 7208 5)",
            "",
        )
    ]
    for record in (
        "v=spf1 include:_spf.google.com redirect=_s.x.example",
        # After a macro, the labels written out in full are checked; the one the macro ends in
        # and those holding an escape (%%, %_, %-) are the expansion's.
        "v=spf1 exists:%{i}x._spf.%%.example.com -all",
    ):
        assert spf.parse(record).text == record
        # No rule broken: only the count's note, as no budget counter is given here.
        assert [f.code for f in spf.validate("", "TXT", (record,), C)] == ["S2"]
    with pytest.raises(RecordSyntaxError) as refused:
        spf.parse("v=spf1 exists:%{i}._spf.ex*ample.com -all")
    assert refused.value.message == (
        f"'exists:%{{i}}._spf.ex*ample.com': %{{i}}._spf.ex*ample.com: the label ex*ample holds "
        f"'*'; {DNS_RULE}; receivers return permerror (RFC 7208 5)"
    )


def test_a_nameserver_is_a_host_name() -> None:
    values = ("ns_1.example.net.", "ns2.example.net.")
    assert ns.validate("mail", "NS", values, C) == [
        Finding(
            "N1",
            Severity.ERROR,
            f"NS ns_1.example.net.: ns_1.example.net: the label ns_1 holds '_'; {HOST_RULE}; "
            "resolvers cannot follow it",
            "mail",
        )
    ]


def test_a_tls_report_destination_is_a_host_name() -> None:
    with pytest.raises(RecordSyntaxError) as refused:
        tlsrpt.parse("v=TLSRPTv1; rua=mailto:tls@_tls.example.com")
    assert refused.value.message == (
        f"rua entry 'mailto:tls@_tls.example.com': _tls.example.com: the label _tls holds '_'; "
        f"{HOST_RULE}"
    )


POLICY = "version: STSv1\nmode: enforce\nmax_age: 86400\nmx: {}\n"


@pytest.mark.parametrize(
    "mx", ["mx1.example.com", "*.mail.example.com", "mx.example.xn--p1ai", "mx.example.com."]
)
def test_mta_sts_mx_patterns_are_host_names_or_wildcards(mx: str) -> None:
    assert mtasts.validate_policy(POLICY.format(mx)) == []


@pytest.mark.parametrize(
    "mx",
    [
        "mail_1.example.com",
        "exa!mple.com",
        "-mx.example.com",
        "*.*.example.com",
        "*.com",
        "mx.example.com..",
    ],
)
def test_mta_sts_refuses_an_mx_that_is_not_a_host_name(mx: str) -> None:
    # RFC 8461 3.2: sts-policy-mx-value = ["*."] Domain (RFC 5321 4.1.2): no underscore.
    assert mtasts.validate_policy(POLICY.format(mx)) == [
        Finding(
            "M2",
            Severity.ERROR,
            f"MTA-STS policy: mx {mx} is not a host name or a *.domain wildcard",
            "mta-sts",
        )
    ]
