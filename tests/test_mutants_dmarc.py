"""DMARC (D1-D7, B2 in docs/rules.md, and the dmarc.* facts the risk rules read): the exact
findings and facts of the cases mutation testing found untested (docs/mutation-testing.md): the
direction of a looser policy, tags added and removed, which BIMI record a DMARC change breaks."""

from __future__ import annotations

import re

import pytest

from pipeline.diff import dmarc
from pipeline.diff.context import ZoneContext
from pipeline.model import Fact, Finding, Severity, fact

LOGO = "v=BIMI1; l=https://b.example/l.svg"
# p=reject loosened to p=none, and what that does to a BIMI record that shows a logo.
LOOSER = fact("dmarc.p", "reject", "none", direction="looser", pct=100)


def breaks_bimi(bimi: str) -> Fact:
    return fact("dmarc.breaks_bimi", None, "p=none is not an enforced policy", bimi=bimi)


def c(**records: str) -> ZoneContext:
    """A zone whose desired TXT records are `records` (`__` in a name stands for a dot)."""
    desired = {(k.replace("__", "."), "TXT"): (v,) for k, v in records.items()}
    return ZoneContext("example.com", desired=desired)


def f(
    a: str | None, b: str | None, name: str = "_dmarc", ctx: ZoneContext | None = None
) -> list[Fact]:
    return dmarc.facts(name, "TXT", (a,) if a else (), (b,) if b else (), ctx or c())


CASES = [
    (
        'dmarc.validate("_dmarc", "TXT", ("v=DMARC1; p=none", "x" * 60, "y" * 61), c())',
        [
            Finding(
                "D1",
                Severity.ERROR,
                "'xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx' does not start with v=DMARC1, so receivers discard it (RFC 7489 6.6.3); remove it or fix its version tag",
                "_dmarc",
            ),
            Finding(
                "D1",
                Severity.ERROR,
                "'yyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyy...' does not start with v=DMARC1, so receivers discard it (RFC 7489 6.6.3); remove it or fix its version tag",
                "_dmarc",
            ),
        ],
    ),
    (
        'f("v=DMARC1; p=reject", "v=DMARC1; p=quarantine")',
        [fact("dmarc.p", "reject", "quarantine", direction="looser", pct=100)],
    ),
    (
        'f("v=DMARC1; p=reject; adkim=s", "v=DMARC1; p=reject; adkim=r; fo=1")',
        [
            fact("dmarc.adkim", "s", "r", direction="looser"),
            fact("dmarc.tag", None, "fo=1", tag="fo"),
        ],
    ),
    (
        'f("v=DMARC1; p=reject; fo=1", "v=DMARC1; p=reject")',
        [fact("dmarc.tag", "fo=1", None, tag="fo")],
    ),
    (
        'f("v=DMARC1; p=reject", "v=DMARC1; p=reject; t=y", ctx=c(default___bimi=LOGO))',
        [
            fact("dmarc.tag", None, "t=y", tag="t"),
            fact(
                "dmarc.breaks_bimi",
                None,
                "t=y (testing) is not an enforced policy",
                bimi="default._bimi.example.com",
            ),
        ],
    ),
    (
        'f("v=DMARC1; p=reject", "v=DMARC1; p=none", ctx=c(default___bimi="v=BIMI1; L=; A=https://b.example/vmc.pem"))',
        [
            LOOSER,
            breaks_bimi("default._bimi.example.com"),
        ],
    ),
    (
        'f("v=DMARC1; p=reject", "v=DMARC1; p=none", ctx=c(default___bimi="v=BIMI1; l=; a=https://b.example/vmc.pem"))',
        [
            LOOSER,
            breaks_bimi("default._bimi.example.com"),
        ],
    ),
    (
        'f("v=DMARC1; p=reject", "v=DMARC1; p=none", ctx=c(default___bimi="v=BIMI1; l=; a="))',
        [LOOSER],
    ),
    (
        'f("v=DMARC1; p=reject", "v=DMARC1; p=none", ctx=c(default___bimi="v=BIMI1; broken"))',
        [
            LOOSER,
            breaks_bimi("default._bimi.example.com"),
        ],
    ),
    (
        'f("v=DMARC1; p=reject", "v=DMARC1; p=none", name="_dmarc.Xmail", ctx=c(default___bimi__Xmail=LOGO, _dmarc__Xmail="v=DMARC1; p=reject"))',
        [
            LOOSER,
            breaks_bimi("default._bimi.Xmail.example.com"),
        ],
    ),
    (
        'f("v=DMARC1; p=reject", "v=DMARC1; p=none", ctx=c(default___bimi__Xmail=LOGO, _dmarc__Xmail="v=DMARC1; p=reject"))',
        [LOOSER],
    ),
]


def case_ids(cases: list[tuple[str, object]]) -> list[str]:
    """Readable test ids made only of characters a pytest node id can carry on a command line."""
    return [
        f"{i}-{re.sub(r'[^A-Za-z0-9_.]+', '-', call)[:60].strip('-')}"
        for i, (call, _) in enumerate(cases)
    ]


@pytest.mark.parametrize(("call", "expected"), CASES, ids=case_ids(CASES))
def test_dmarc_findings_and_facts(call: str, expected: object) -> None:
    assert eval(call) == expected  # noqa: S307 - the call is one of the literal cases above


def test_why_a_dmarc_rrset_does_not_qualify_for_bimi() -> None:
    two = ("v=DMARC1; p=reject", "v=DMARC1; p=reject")
    assert dmarc.bimi_problem_of(two) == (
        "the DMARC record cannot be parsed: 2 records where receivers expect exactly one"
    )
    assert dmarc.bimi_problem_of(()) == "no DMARC record"
    assert dmarc.bimi_problem_of(("v=DMARC1; p=reject; t=y",)) == (
        "t=y (testing) is not an enforced policy"
    )
    assert (
        dmarc.bimi_problem_of(("v=DMARC1; p=quarantine; sp=none",)) == "sp=none disqualifies BIMI"
    )
    assert (
        dmarc.bimi_problem_of(("v=DMARC1; p=none; sp=reject",))
        == "p=none is not an enforced policy"
    )


# The second mutation run: report destinations that go away, every BIMI record a change breaks,
# and the no-op check of the live scope.


def test_a_removed_report_destination_says_whether_it_was_external() -> None:
    # ruf= is unchanged, so it has no fact; each removed rua= entry says where reports went.
    assert f(
        "v=DMARC1; p=none; rua=mailto:d@r.example.net, mailto:d@example.com; "
        "ruf=mailto:f@example.com",
        "v=DMARC1; p=reject; ruf=mailto:f@example.com",
    ) == [
        fact("dmarc.p", "none", "reject", direction="stricter", pct=100),
        fact("dmarc.rua", old="mailto:d@r.example.net", external=True),
        fact("dmarc.rua", old="mailto:d@example.com", external=False),
    ]


def test_a_looser_policy_names_every_bimi_record_it_breaks() -> None:
    assert f(
        "v=DMARC1; p=reject",
        "v=DMARC1; p=none",
        ctx=c(default___bimi=LOGO, brand___bimi=LOGO),
    ) == [
        LOOSER,
        fact(
            "dmarc.breaks_bimi",
            new="p=none is not an enforced policy",
            bimi="brand._bimi.example.com, default._bimi.example.com",
        ),
    ]


def test_publishing_or_deleting_a_record_is_never_a_no_op() -> None:
    # pipeline/live/scope.py skips changes dmarc.equivalent calls the same; one side empty is a
    # real change.
    record = ("v=DMARC1; p=none",)
    assert not dmarc.equivalent((), record)
    assert not dmarc.equivalent(record, ())
    assert dmarc.equivalent(("v=DMARC1;p=none",), record)


def test_a_dmarc_record_a_receiver_cannot_read_says_why_where_bimi_needs_it() -> None:
    assert f("v=DMARC1; p=reject", "v=DMARC1; p=reject; pct=x", ctx=c(default___bimi=LOGO)) == [
        fact("dmarc.unparsed", "v=DMARC1; p=reject", "v=DMARC1; p=reject; pct=x"),
        fact(
            "dmarc.breaks_bimi",
            new="the DMARC record cannot be parsed: pct=x: pct must be a whole number 0-100",
            bimi="default._bimi.example.com",
        ),
    ]


@pytest.mark.parametrize(
    ("record", "authorised", "expected"),
    [
        (
            "v=DMARC1; p=reject; pct=101",
            None,
            [("D4", Severity.ERROR, "pct=101: pct must be a whole number 0-100")],
        ),
        (
            "v=DMARC1; p=reject; pct=50",
            None,
            [
                (
                    "D5",
                    Severity.WARNING,
                    "pct=50: RFC 9989 receivers ignore pct and apply the policy to 100% of mail; "
                    "use t=y for a testing phase where that matters",
                )
            ],
        ),
        (
            "v=DMARC1; p=reject; rua=mailto:d@r.example.net",
            False,
            [
                (
                    "D7",
                    Severity.WARNING,
                    "reports to mailto:d@r.example.net go to another domain that does not "
                    "authorise them (no TXT v=DMARC1 at example.com._report._dmarc.r.example.net), "
                    "so receivers silently drop them (RFC 7489 7.1); ask r.example.net to publish "
                    "it",
                )
            ],
        ),
        (
            "v=DMARC1; p=reject; rua=mailto:d@r.example.net",
            None,
            [
                (
                    "D7",
                    Severity.INFO,
                    "could not check that r.example.net authorises reports for example.com (TXT "
                    "at example.com._report._dmarc.r.example.net)",
                )
            ],
        ),
        ("v=DMARC1; p=reject; rua=mailto:d@r.example.net", True, []),
        *[
            (
                f"v=DMARC1; p=reject; rua={uri}",
                None,
                [
                    (
                        "D4",
                        Severity.ERROR,
                        f"rua entry '{uri}' {problem}; write a report URI such as "
                        "mailto:dmarc@example.com",
                    )
                ],
            )
            for uri, problem in [
                # A scheme without its address is a missing address, not a missing scheme.
                ("mailto:", "has no address after mailto:"),
                ("mailto:!10m", "has no address after mailto:"),
                ("mail-to:a@x.example", "has no URI scheme"),
                ("mailto:nobody", "has no @ in nobody: a mailto: address is local-part@domain"),
                ("mailto:@x.example", "has no local part before @x.example"),
                ("mailto:a@", "names no destination host"),
                (
                    "mailto:a@exa!mple.com",
                    "has a size limit !mple.com that is not a number with an optional k, m, g or t",
                ),
                (
                    "mailto:a@exa_mple.com",
                    "exa_mple.com: the label exa_mple holds '_'; a domain's labels are letters, "
                    "digits and hyphens, with no hyphen at either end (RFC 1123 2.1)",
                ),
                (
                    "mailto:a@-x.example.com",
                    "-x.example.com: the label -x starts or ends with a hyphen; a domain's labels "
                    "are letters, digits and hyphens, with no hyphen at either end (RFC 1123 2.1)",
                ),
            ]
        ],
    ],
    ids=[
        "pct-101",
        "pct-50",
        "unauthorised",
        "unknown",
        "authorised",
        "empty",
        "empty-with-size",
        "dash",
        "no-at",
        "no-local-part",
        "no-domain",
        "bang-in-host",
        "underscore-in-host",
        "hyphen-at-label-start",
    ],
)
def test_pct_and_report_findings_are_reported_at_the_record_they_concern(
    record: str, authorised: bool | None, expected: list[tuple[str, Severity, str]]
) -> None:
    ctx = ZoneContext("example.com", report_authorised=lambda zone, dest: authorised)
    found = dmarc.validate("_dmarc.sub", "TXT", (record,), ctx)
    assert [(x.code, x.severity, x.message) for x in found] == expected
    assert all(x.name == "_dmarc.sub" for x in found)


def test_two_dmarc_records_at_a_name_are_refused_there() -> None:
    found = dmarc.validate("_dmarc.sub", "TXT", ("v=DMARC1; p=none", "v=DMARC1; p=reject"), c())
    assert found == [
        Finding(
            "D6",
            Severity.ERROR,
            "2 DMARC records at _dmarc.sub.example.com: receivers then apply no policy at all "
            "(RFC 7489 6.6.3); keep exactly one",
            "_dmarc.sub",
        )
    ]


EXTERNAL = "v=DMARC1; p=none; rua=mailto:d@r.example.net"
UNCHECKED = (
    "D7",
    Severity.INFO,
    "could not check that r.example.net authorises reports for example.com (TXT at "
    "example.com._report._dmarc.r.example.net)",
)
TWO = (
    "D6",
    Severity.ERROR,
    "2 DMARC records at _dmarc.sub.example.com: receivers then apply no policy at all "
    "(RFC 7489 6.6.3); keep exactly one",
)
RECORDS = [
    # RFC 7489 6.4 allows spaces around "=": still a DMARC record, and a good one.
    (("v = DMARC1; p=reject",), []),
    # A record that cannot be read does not hide the one after it.
    (
        (" v=DMARC1; p=reject", EXTERNAL),
        [
            TWO,
            (
                "D1",
                Severity.ERROR,
                "the record starts with whitespace before v=DMARC1; receivers ignore it "
                "otherwise: remove the leading whitespace",
            ),
            UNCHECKED,
        ],
    ),
    (
        ("v=DMARC1; rua=mailto:d@example.com,,x", EXTERNAL),
        [
            TWO,
            (
                "D2",
                Severity.WARNING,
                "no p= tag: RFC 7489 receivers treat the record as invalid unless rua is usable, "
                "RFC 9989 ones as p=none; add p=none (or stricter) right after v=DMARC1",
            ),
            (
                "D4",
                Severity.ERROR,
                "rua=mailto:d@example.com,,x: an empty entry in the URI list (empty value, or a "
                "leading, trailing or doubled comma); list URIs separated by single commas "
                "(RFC 7489 6.4)",
            ),
            UNCHECKED,
        ],
    ),
    (
        ("v=DMARC1; adkim=x; aspf=s; p=maybe; fo=2; ri=1h; t=x; psd=q; foo=bar",),
        [
            (
                "D2",
                Severity.WARNING,
                "p= is not the tag right after v=DMARC1, which RFC 7489 requires; move it there",
            ),
            ("D4", Severity.ERROR, "adkim=x: adkim must be r (relaxed) or s (strict)"),
            (
                "D3",
                Severity.ERROR,
                "p=maybe: p must be none, quarantine or reject; receivers may ignore the whole "
                "record",
            ),
            ("D4", Severity.ERROR, "fo=2: fo must be a colon-separated list of 0, 1, d, s"),
            ("D4", Severity.ERROR, "ri=1h: ri must be a whole number of seconds"),
            ("D4", Severity.ERROR, "t=x: t must be y or n (RFC 9989)"),
            ("D4", Severity.ERROR, "psd=q: psd must be y, n or u (RFC 9989)"),
            (
                "D5",
                Severity.WARNING,
                "unknown tag foo=bar: receivers ignore it; check the spelling or remove it",
            ),
        ],
    ),
    # A broken URI list does not stop the check of the tags after it; psd= takes y, n or u.
    (
        ("v=DMARC1; p=none; ruf=,mailto:a@example.com; psd=y; foo=1",),
        [
            (
                "D4",
                Severity.ERROR,
                "ruf=,mailto:a@example.com: an empty entry in the URI list (empty value, or a "
                "leading, trailing or doubled comma); list URIs separated by single commas "
                "(RFC 7489 6.4)",
            ),
            (
                "D5",
                Severity.WARNING,
                "unknown tag foo=1: receivers ignore it; check the spelling or remove it",
            ),
        ],
    ),
    (("v=DMARC1; p=none; psd=u",), []),
    (
        ("v=DMARC1; p=none; t=y",),
        [
            (
                "D5",
                Severity.WARNING,
                "t=y (RFC 9989 testing mode) is unknown to RFC 7489 receivers, which apply the "
                "policy in full",
            )
        ],
    ),
]


@pytest.mark.parametrize(
    ("values", "expected"),
    RECORDS,
    ids=[f"{i}-{'-'.join(e[0] for e in exp) or 'none'}" for i, (_, exp) in enumerate(RECORDS)],
)
def test_each_dmarc_finding_says_what_is_wrong_at_the_record_name(
    values: tuple[str, ...], expected: list[tuple[str, Severity, str]]
) -> None:
    found = dmarc.validate("_dmarc.sub", "TXT", values, c())
    assert [(x.code, x.severity, x.message) for x in found] == expected
    assert all(x.name == "_dmarc.sub" for x in found)
