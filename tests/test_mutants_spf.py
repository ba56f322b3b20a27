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


# The second mutation run: the words of S5, which the operator reads to choose the fix, and the
# record name every finding is reported at.


def test_an_open_or_neutral_all_is_refused_or_warned_in_words_at_its_name() -> None:
    def s5(text: str) -> list[tuple[str, Severity, str, str]]:
        found = spf.validate("mail", "TXT", (text,), C)
        return [(x.code, x.severity, x.message, x.name) for x in found if x.code == "S5"]

    assert s5("v=spf1 a +all") == [
        (
            "S5",
            Severity.ERROR,
            "+all lets every host on the internet send as this domain; use ~all or -all",
            "mail",
        )
    ]
    assert s5("v=spf1 a ?all") == [
        (
            "S5",
            Severity.WARNING,
            "?all (neutral) gives receivers no policy for unlisted senders; use ~all or -all",
            "mail",
        )
    ]
    assert s5("v=spf1 a ~all") == []


def over_budget(source: str) -> ZoneContext:
    """A zone whose SPF budget counter finds every limit broken, counted by `source`."""
    found = SpfBudget(
        lookups=12,
        void_lookups=3,
        source=source,
        mx_over_limit=("mx:big.example",),
        ptr_over_limit=("ptr",),
        errors=("temperror: x.example timed out", "include:y.example has no SPF record"),
        notes=("include:z.example not in the sender catalog: counted as 1",),
    )
    return ZoneContext("example.com", spf_budget=lambda text, fqdn: found)


SLOPPY = "v=spf1 ptr include:a.example redirect=r.example ?all mx include:b.example"
PERMERROR = "receivers return permerror (RFC 7208 4.6.4)"


@pytest.mark.parametrize(
    ("source", "estimated"),
    [("dns", ""), ("catalog", " (estimated from the sender catalog: DNS was not queried)")],
)
def test_every_spf_finding_says_what_is_wrong_and_where_the_count_came_from(
    source: str, estimated: str
) -> None:
    found = spf.validate("mail", "TXT", (SLOPPY,), over_budget(source))
    assert {x.name for x in found} == {"mail"}
    assert [(x.code, x.severity, x.message) for x in found] == [
        (
            "S5",
            Severity.WARNING,
            "?all (neutral) gives receivers no policy for unlisted senders; use ~all or -all",
        ),
        (
            "S6",
            Severity.WARNING,
            "ptr is slow and unreliable and SHOULD NOT be used (RFC 7208 5.5); list the sender's "
            "addresses with ip4/ip6 or an include instead",
        ),
        (
            "S9",
            Severity.WARNING,
            "redirect=r.example is ignored because the record has an all mechanism "
            "(RFC 7208 6.1); remove one of them",
        ),
        (
            "S9",
            Severity.WARNING,
            # As written: the record says `mx`, not the `+mx` it means.
            "terms after ?all are never evaluated (RFC 7208 5.1): mx include:b.example; move "
            "them before it",
        ),
        (
            "S2",
            Severity.ERROR,
            f"12 DNS-querying terms counted recursively{estimated}, above the limit of 10: "
            f"{PERMERROR}; remove senders or replace includes by ip4/ip6 terms",
        ),
        (
            "S3",
            Severity.ERROR,
            f"mx:big.example resolves to more than 10 MX names{estimated}: {PERMERROR}; use "
            "ip4/ip6 or an include for those hosts",
        ),
        (
            "S6",
            Severity.WARNING,
            "ptr returns more than 10 names; receivers use only the first 10 (RFC 7208 4.6.4)",
        ),
        (
            "S4",
            Severity.ERROR,
            f"3 lookups return no answer{estimated}, above the limit of 2: {PERMERROR}; remove "
            "terms that point at names without records",
        ),
        (
            "S2",
            Severity.WARNING,
            "following includes and redirects: temperror: x.example timed out; the lookup count "
            "is a lower bound",
        ),
        (
            "S2",
            Severity.ERROR,
            "following includes and redirects: include:y.example has no SPF record",
        ),
        (
            "S2",
            Severity.INFO,
            "lookup count: include:z.example not in the sender catalog: counted as 1",
        ),
    ]


def test_macros_are_checked_all_along_the_domain_spec() -> None:
    # A bad macro after good macros and literals is found; `%%` and good macros anywhere are not
    # mistaken for one (a scanner that lost its place would hang or stop early here).
    def s1(term: str) -> list[str]:
        found = spf.validate("", "TXT", (f"v=spf1 {term} -all",), ZoneContext("example.com"))
        return [x.message for x in found if x.code == "S1"]

    assert s1("exists:%{i}.x%{q}.example.com") == [
        "'exists:%{i}.x%{q}.example.com': bad macro at '%{q}.exa' (RFC 7208 7.1: %{letter} with "
        "letters s l o d i p h v, or %%, %_, %-); receivers return permerror (RFC 7208 5)"
    ]
    assert s1("exists:%{i}.ab%%c.%{d}") == []
    assert s1("exists:%{ir}.%{v}._spf.%{d2}") == []


BAD_MACRO = "(RFC 7208 7.1: %{letter} with letters s l o d i p h v, or %%, %_, %-)"
AFTER_MACRO = "after the last macro the domain must end in '.' and a top label"
TERMS = [
    ("exists:%{q}abcdefghij", f"bad macro at '%{{q}}abcd' {BAD_MACRO}"),
    ("exists:x%%%q.example.com", f"bad macro at '%q.examp' {BAD_MACRO}"),
    ("exists:%{i}.%%.example", None),
    ("exists:%%%{i}.x%%.example.com", None),
    ("a:%%.example.com", None),
    ("redirect=", "empty domain"),
    ("a:localhost", "localhost is a single label, not a domain"),
    ("exists:%{i}.123", "%{i}.123: the top label 123 is not a top-level domain"),
    ("exists:%{i}.example..", "%{i}.example.. has an empty label"),
    ("exists:%{i}.%{d}x", AFTER_MACRO),
    ("exists:%{i}x.", AFTER_MACRO),
    ("exists:%{i}.%{d}.example", None),
    ("exists:%{i}.example.", None),
    ("exists:%{i}.X", None),
    ("foo:x.example", "unknown mechanism"),
    ("all:x", "all takes no argument"),
    ("ip4:", "ip4 needs an argument (ip4:...)"),
    ("ip6:", "ip6 needs an argument (ip6:...)"),
    ("a:example.com/033", "bad domain or prefix length (no leading zeros, ASCII digits)"),
    ("a/32", None),
    ("a/33", "IPv4 prefix length above 32"),
    ("mx//128", None),
    ("mx//129", "IPv6 prefix length above 128"),
    ("ptr:localhost", "localhost is a single label, not a domain"),
]


@pytest.mark.parametrize(
    ("term", "problem"),
    TERMS,
    ids=[f"{i}-{re.sub(r'[^A-Za-z0-9_.]+', '-', t)}" for i, (t, _) in enumerate(TERMS)],
)
def test_each_term_is_read_as_receivers_read_it(term: str, problem: str | None) -> None:
    found = spf.validate("mail", "TXT", (f"v=spf1 {term} -all",), ZoneContext("example.com"))
    section = "6" if "=" in term else "5"  # modifiers (6) or mechanisms (5)
    expected = (
        []
        if problem is None
        else [
            (
                "S1",
                f"'{term}': {problem}; receivers return permerror (RFC 7208 {section})",
                "mail",
            )
        ]
    )
    assert [(x.code, x.message, x.name) for x in found if x.code in ("S1", "S5")] == expected


def test_each_spf_value_at_a_name_is_checked_and_reported_there() -> None:
    ctx = ZoneContext("example.com")
    found = spf.validate("mail", "TXT", ("v=spf1 exists: -all", "v=spf1 +all"), ctx)
    assert [(x.code, x.message, x.name) for x in found if x.code != "S2"] == [
        (
            "S1",
            "2 TXT values at mail.example.com start with v=spf1: receivers return permerror "
            "(RFC 7208 4.5); merge them into one",
            "mail",
        ),
        (
            "S1",
            "'exists:': exists needs an argument (exists:...); receivers return permerror "
            "(RFC 7208 5)",
            "mail",
        ),
        (
            "S5",
            "+all lets every host on the internet send as this domain; use ~all or -all",
            "mail",
        ),
    ]
    big = "v=spf1 " + " ".join(f"ip4:192.0.2.{i}" for i in range(40)) + " -all"
    # S8, the answer size, is reported at the name too (S2 says no budget counter is set).
    assert [(x.code, x.name) for x in spf.validate("mail", "TXT", (big,), ctx)] == [
        ("S8", "mail"),
        ("S2", "mail"),
    ]


def test_an_answer_of_450_bytes_fits_and_one_more_does_not() -> None:
    # RFC 7208 3.4: S8 warns above ~450 bytes; 12 bytes of RR overhead and two length bytes for a
    # value split into two strings.
    def value(size: int) -> str:
        return "v=spf1 " + "a" * (size - len("v=spf1 .example -all")) + ".example -all"

    assert spf.answer_size((value(436),)) == 450
    ctx = ZoneContext("example.com")
    assert [x for x in spf.validate("mail", "TXT", (value(436),), ctx) if x.code == "S8"] == []
    assert [x for x in spf.validate("mail", "TXT", (value(437),), ctx) if x.code == "S8"] == [
        Finding(
            "S8",
            Severity.WARNING,
            "the TXT answer at this name is about 451 bytes (all 1 values), above ~450: it may "
            "not fit a UDP response (RFC 7208 3.4) and some receivers then fail SPF; remove "
            "stale values or move senders to an included name",
            "mail",
        )
    ]


NOT_VISIBLE = (
    "SPF terms are separated by spaces only and use visible ASCII (RFC 7208 4.6.1); receivers "
    "return permerror"
)


@pytest.mark.parametrize(
    ("record", "expected"),
    [
        ("v=spf1 a\tmx -all", [("S1", f"the record holds a tab: {NOT_VISIBLE}")]),
        ("v=spf1 a\x7f -all", [("S1", f"the record holds the character '\\x7f': {NOT_VISIBLE}")]),
        # "!" (0x21) is the first visible character: a literal of a macro-string.
        ("v=spf1 -all note=hi!", []),
        (
            "v=spf1 Xinclude:a.example -all",
            [
                (
                    "S7",
                    "'Xinclude:a.example' looks like two terms run together: TXT strings are "
                    "joined with no space (RFC 7208 3.3), so put the separating space inside one "
                    "of the strings",
                )
            ],
        ),
        (
            "v=spf1 redirect=a.example redirect=b.example",
            [
                (
                    "S9",
                    "redirect= appears more than once, which is a permerror (RFC 7208 6); keep one",
                )
            ],
        ),
    ],
    ids=["tab", "del", "bang", "glued", "two-redirects"],
)
def test_a_record_receivers_cannot_read_is_refused_with_the_reason(
    record: str, expected: list[tuple[str, str]]
) -> None:
    found = spf.validate("mail", "TXT", (record,), ZoneContext("example.com"))
    assert [(x.code, x.message) for x in found if x.code != "S2"] == expected


def test_a_modifier_is_named_by_what_stands_before_its_first_equals_sign() -> None:
    assert f("v=spf1 -all", "v=spf1 -all note=a=b") == [
        fact("spf.modifier", None, "note=a=b", modifier="note")
    ]
