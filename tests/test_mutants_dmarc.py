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
            fact("dmarc.p", "reject", "none", direction="looser", pct=100),
            fact(
                "dmarc.breaks_bimi",
                None,
                "p=none is not an enforced policy",
                bimi="default._bimi.example.com",
            ),
        ],
    ),
    (
        'f("v=DMARC1; p=reject", "v=DMARC1; p=none", ctx=c(default___bimi="v=BIMI1; l=; a=https://b.example/vmc.pem"))',
        [
            fact("dmarc.p", "reject", "none", direction="looser", pct=100),
            fact(
                "dmarc.breaks_bimi",
                None,
                "p=none is not an enforced policy",
                bimi="default._bimi.example.com",
            ),
        ],
    ),
    (
        'f("v=DMARC1; p=reject", "v=DMARC1; p=none", ctx=c(default___bimi="v=BIMI1; l=; a="))',
        [fact("dmarc.p", "reject", "none", direction="looser", pct=100)],
    ),
    (
        'f("v=DMARC1; p=reject", "v=DMARC1; p=none", ctx=c(default___bimi="v=BIMI1; broken"))',
        [
            fact("dmarc.p", "reject", "none", direction="looser", pct=100),
            fact(
                "dmarc.breaks_bimi",
                None,
                "p=none is not an enforced policy",
                bimi="default._bimi.example.com",
            ),
        ],
    ),
    (
        'f("v=DMARC1; p=reject", "v=DMARC1; p=none", name="_dmarc.Xmail", ctx=c(default___bimi__Xmail=LOGO, _dmarc__Xmail="v=DMARC1; p=reject"))',
        [
            fact("dmarc.p", "reject", "none", direction="looser", pct=100),
            fact(
                "dmarc.breaks_bimi",
                None,
                "p=none is not an enforced policy",
                bimi="default._bimi.Xmail.example.com",
            ),
        ],
    ),
    (
        'f("v=DMARC1; p=reject", "v=DMARC1; p=none", ctx=c(default___bimi__Xmail=LOGO, _dmarc__Xmail="v=DMARC1; p=reject"))',
        [fact("dmarc.p", "reject", "none", direction="looser", pct=100)],
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
