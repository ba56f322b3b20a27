"""SPF (S1-S7 in docs/rules.md and the spf.* facts the risk rules read): the exact facts of each
kind of change (senders, qualifiers, flattening, modifiers, the lookup budget) and the exact S1/S7
findings at their boundaries, so a mutation of the diff or of a check fails a test. Found by
mutation testing (docs/mutation-testing.md)."""

from __future__ import annotations

import re

import pytest

from pipeline.diff import spf
from pipeline.diff.context import ZoneContext
from pipeline.model import Fact, Finding, Severity, SpfBudget, fact


def budget(text: str, fqdn: str) -> SpfBudget:
    # One lookup per include, and one more for mail.example.com: the budget is asked for the
    # record's own domain.
    lookups = text.count("include:") + (1 if fqdn == "mail.example.com" else 0)
    return SpfBudget(lookups=lookups, void_lookups=0, source="dns")


def sender_name(term: str) -> str | None:
    return "SendGrid" if term == "include:sendgrid.net" else None


C = ZoneContext("example.com", spf_budget=budget, pre_approved_sender=sender_name)


def f(a: str | None, b: str | None, name: str = "mail") -> list[Fact]:
    return spf.facts(name, "TXT", (a,) if a else (), (b,) if b else (), C)


def v(text: str) -> list[Finding]:
    # S3 (the lookup budget) has its own tests; these cases are about the terms.
    return [x for x in spf.validate("", "TXT", (text,), C) if x.code != "S3"]


CASES = [
    (
        'f("v=spf1 include:a.example -all", "v=spf1 include:A.example ~all")',
        [fact("spf.all", "-all", "~all", direction="looser", to="~")],
    ),
    (
        'f("v=spf1 include:a.example include:b.example a -all", "v=spf1 a ip4:192.0.2.0/24 ip6:2001:db8::/32 -all")',
        [
            fact(
                "spf.flattened",
                "include:a.example include:b.example",
                "ip4:192.0.2.0/24 ip6:2001:db8::/32",
                includes_removed=2,
                ip_terms_added=2,
            ),
            fact("spf.lookups", "3", "1", headroom=9, source="dns", void_lookups=0),
        ],
    ),
    (
        'f("v=spf1 a ~mx include:sendgrid.net -all", "v=spf1 ?a -mx +include:sendgrid.net -all")',
        [
            fact(
                "spf.a",
                "+a",
                "?a",
                direction="stricter",
                sender=True,
                qualifier="?",
                pre_approved=False,
                sender_name="",
            ),
            fact(
                "spf.mx",
                "~mx",
                "-mx",
                direction="stricter",
                sender=True,
                qualifier="-",
                pre_approved=False,
                sender_name="",
            ),
        ],
    ),
    (
        'f("v=spf1 a include:sendgrid.net -all", "v=spf1 include:x.example -all", name="")',
        [
            fact(
                "spf.a",
                "example.com",
                None,
                sender=True,
                qualifier="+",
                pre_approved=False,
                sender_name="",
            ),
            fact(
                "spf.include",
                "sendgrid.net",
                None,
                sender=True,
                qualifier="+",
                pre_approved=True,
                sender_name="SendGrid",
            ),
            fact(
                "spf.include",
                None,
                "x.example",
                sender=True,
                qualifier="+",
                pre_approved=False,
                sender_name="",
            ),
        ],
    ),
    (
        'f("v=spf1 exp=e.example foo=1 redirect=a.example", "v=spf1 exp=e.example foo=2 redirect=b.example bar=3")',
        [
            fact("spf.modifier", "foo=1", "foo=2", modifier="foo"),
            fact("spf.redirect", "a.example", "b.example"),
            fact("spf.modifier", None, "bar=3", modifier="bar"),
        ],
    ),
    (
        'f("v=spf1 foo=1 exp=x.example -all", "v=spf1 -all")',
        [fact("spf.modifier", "foo=1", None, modifier="foo"), fact("spf.exp", "x.example", None)],
    ),
    ('f("v=spf1 -all", "v=spf1  -all")', [fact("spf.changed", "v=spf1 -all", "v=spf1  -all")]),
    (
        'f(None, "v=spf1 -all")',
        [
            fact("spf.record", None, "published"),
            fact("spf.all", None, "-all", direction="stricter", to="-"),
            fact("spf.lookups", None, "1", headroom=9, source="dns", void_lookups=0),
        ],
    ),
    (
        'f("v=spf1 -all", None)',
        [
            fact("spf.record", "published", None),
            fact("spf.all", "-all", None, direction="looser", to=""),
        ],
    ),
    (
        'f("v=spf1 include:a.example -all", None)',
        [
            fact("spf.record", "published", None),
            fact(
                "spf.include",
                "a.example",
                None,
                sender=True,
                qualifier="+",
                pre_approved=False,
                sender_name="",
            ),
            fact("spf.all", "-all", None, direction="looser", to=""),
        ],
    ),
    (
        'f("v=spf1 -all", "v=spf1 include:a.example -all")',
        [
            fact(
                "spf.include",
                None,
                "a.example",
                sender=True,
                qualifier="+",
                pre_approved=False,
                sender_name="",
            ),
            fact("spf.lookups", "1", "2", headroom=8, source="dns", void_lookups=0),
        ],
    ),
    (
        'f("v=spf1 -all", "v=spf1 include:")',
        [fact("spf.unparsed", "v=spf1 -all", "v=spf1 include:")],
    ),
    (
        'f("v=spf1 -all", "v=spf1 ?all")',
        [fact("spf.all", "-all", "?all", direction="looser", to="?")],
    ),
    ('f("v=spf1 a", "v=spf1 a ?all")', [fact("spf.all", None, "?all", direction="same", to="?")]),
    ('f("v=spf1 a ?all", "v=spf1 a")', [fact("spf.all", "?all", None, direction="same", to="")]),
    ('spf.validate_txt_strings("", ("v=spf1 " + "a" * 248, "x"))', []),
    (
        'spf.validate_txt_strings("mail", ("v=spf1 " + "a" * 249,))',
        [
            Finding(
                "S7",
                Severity.ERROR,
                "a TXT string of 256 bytes exceeds 255 (RFC 7208 3.3); split it into several strings",
                "mail",
            )
        ],
    ),
    ('v("v=spf1 ip4:192.0.2.1/24 ip6:2001:DB8::1/128 -all")', []),
    (
        'v("v=spf1 ip6:fe80::1%eth0 -all")',
        [
            Finding(
                "S1",
                Severity.ERROR,
                "'ip6:fe80::1%eth0': not an IPv6 address or network; receivers return permerror (RFC 7208 5)",
                "",
            )
        ],
    ),
    (
        'v("v=spf1 ip6:2001:db8::/129 -all")',
        [
            Finding(
                "S1",
                Severity.ERROR,
                "'ip6:2001:db8::/129': not an IPv6 address or network; receivers return permerror (RFC 7208 5)",
                "",
            )
        ],
    ),
    (
        'v("v=spf1 ip4:192.0.2.0/33 -all")',
        [
            Finding(
                "S1",
                Severity.ERROR,
                "'ip4:192.0.2.0/33': not an IPv4 address or network; receivers return permerror (RFC 7208 5)",
                "",
            )
        ],
    ),
    (
        'v("v=spf1 ip4:192.0.2.0/255.255.255.0 -all")',
        [
            Finding(
                "S1",
                Severity.ERROR,
                "'ip4:192.0.2.0/255.255.255.0': not an IPv4 address or network; receivers return permerror (RFC 7208 5)",
                "",
            )
        ],
    ),
    (
        'v("v=spf1 ip4:2001:db8::1 -all")',
        [
            Finding(
                "S1",
                Severity.ERROR,
                "'ip4:2001:db8::1': not an IPv4 address or network; receivers return permerror (RFC 7208 5)",
                "",
            )
        ],
    ),
]


def case_ids(cases: list[tuple[str, object]]) -> list[str]:
    """Readable test ids made only of characters a pytest node id can carry on a command line."""
    return [
        f"{i}-{re.sub(r'[^A-Za-z0-9_.]+', '-', call)[:60].strip('-')}"
        for i, (call, _) in enumerate(cases)
    ]


@pytest.mark.parametrize(("call", "expected"), CASES, ids=case_ids(CASES))
def test_spf_facts_and_findings(call: str, expected: object) -> None:
    assert eval(call) == expected  # noqa: S307 - the call is one of the literal cases above
