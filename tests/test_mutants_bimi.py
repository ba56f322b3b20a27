"""BIMI (B1, B2 in docs/rules.md): the exact findings and facts for each branch of the rules, so a
mutation of a rule or of the text the operator reads fails a test. Found by mutation testing
(docs/mutation-testing.md)."""

from __future__ import annotations

import re

import pytest

from pipeline.diff import bimi
from pipeline.diff.context import ZoneContext
from pipeline.diff.errors import RecordSyntaxError
from pipeline.diff.taglist import Tag
from pipeline.model import Finding, Severity, fact

LOGO = "v=BIMI1; l=https://brand.example.com/logo.svg; a=https://brand.example.com/vmc.pem"


def ctx(policy: str | None = None, name: str = "_dmarc") -> ZoneContext:
    desired = {} if policy is None else {(name, "TXT"): (f"v=DMARC1; {policy}",)}
    return ZoneContext("example.com", desired=desired)


def v(
    value: str | tuple[str, ...],
    policy: str | None = "p=reject",
    name: str = "default._bimi",
    dname: str = "_dmarc",
) -> list[Finding]:
    values = (value,) if isinstance(value, str) else value
    return bimi.validate(name, "TXT", values, ctx(policy, dname))


CASES = [
    (
        'v("v=BIMI1; a=https://b.example/vmc.pem")',
        [
            Finding(
                "B1",
                Severity.ERROR,
                "no l= tag: a BIMI record must carry l= with the logo's https URL (or an empty l= to decline a logo)",
                "default._bimi",
            )
        ],
    ),
    (
        'v("v=BIMI1; l=http://b.example/logo.svg")',
        [
            Finding(
                "B1",
                Severity.ERROR,
                "l=http://b.example/logo.svg: the logo must be an https URL",
                "default._bimi",
            )
        ],
    ),
    (
        'v("v=BIMI1; l=https://b.example/logo.svg, https://c.example/logo.svg")',
        [
            Finding(
                "B1",
                Severity.ERROR,
                "l=https://b.example/logo.svg, https://c.example/logo.svg: several URIs; l= holds exactly one https URL of the logo",
                "default._bimi",
            )
        ],
    ),
    (
        'v("v=BIMI1; l=https://b.example/logo.png?x.svg")',
        [
            Finding(
                "B1",
                Severity.WARNING,
                "l=https://b.example/logo.png?x.svg does not name an .svg file; the logo must be SVG Tiny PS",
                "default._bimi",
            )
        ],
    ),
    ('v("v=BIMI1; L=https://b.example/LOGO.SVG; A=https://b.example/vmc.pem")', []),
    (
        'v("v=BIMI1; l=https://b.example/logo.svg; a=http://b.example/vmc.pem")',
        [
            Finding(
                "B1",
                Severity.ERROR,
                "a=http://b.example/vmc.pem: the VMC/CMC evidence document must be an https URL",
                "default._bimi",
            )
        ],
    ),
    (
        'v("v=BIMI1; l=https://b.example/logo.svg; a=https://b.example/a.pem https://b.example/b.pem")',
        [
            Finding(
                "B1",
                Severity.ERROR,
                "a=https://b.example/a.pem https://b.example/b.pem: several URIs; a= holds exactly one https URL of the VMC/CMC evidence document",
                "default._bimi",
            )
        ],
    ),
    ('v("v=BIMI1; l=https://b.example/logo.svg; lps=noreply, \\tsupport")', []),
    (
        'v("v=BIMI1; l=https://b.example/logo.svg; lps=noreply,,support")',
        [
            Finding(
                "B1",
                Severity.ERROR,
                "lps=noreply,,support: local-part selectors are a comma-separated list of local-parts (the part before @, e.g. lps=noreply,support), none empty",
                "default._bimi",
            )
        ],
    ),
    (
        'v("v=BIMI1; l=https://b.example/logo.svg; lps=no reply")',
        [
            Finding(
                "B1",
                Severity.ERROR,
                "lps=no reply: local-part selectors are a comma-separated list of local-parts (the part before @, e.g. lps=noreply,support), none empty",
                "default._bimi",
            )
        ],
    ),
    (
        "v((LOGO, LOGO))",
        [
            Finding(
                "B1",
                Severity.ERROR,
                "2 BIMI records at default._bimi.example.com; receivers need exactly one",
                "default._bimi",
            )
        ],
    ),
    (
        'v(("v=BIMI2; l=https://b.example/logo.svg",))',
        [
            Finding(
                "B1",
                Severity.ERROR,
                "the record must start with v=BIMI1 (found v=BIMI2); receivers ignore it otherwise",
                "default._bimi",
            )
        ],
    ),
    (
        'v(LOGO, "p=none")',
        [
            Finding(
                "B2",
                Severity.ERROR,
                "the logo will not be shown: DMARC at _dmarc.example.com: p=none is not an enforced policy; BIMI needs p=quarantine with pct=100, or p=reject, and no sp=none",
                "default._bimi",
            )
        ],
    ),
    (
        "v(LOGO, None)",
        [
            Finding(
                "B2",
                Severity.ERROR,
                "the logo will not be shown: DMARC at _dmarc.example.com: no DMARC record; BIMI needs p=quarantine with pct=100, or p=reject, and no sp=none",
                "default._bimi",
            )
        ],
    ),
    ('v("v=BIMI1; l=; a=;", None)', []),
    (
        'v("v=BIMI1; l=; a=https://b.example/vmc.pem", "p=none")',
        [
            Finding(
                "B2",
                Severity.ERROR,
                "the logo will not be shown: DMARC at _dmarc.example.com: p=none is not an enforced policy; BIMI needs p=quarantine with pct=100, or p=reject, and no sp=none",
                "default._bimi",
            )
        ],
    ),
    (
        'v(LOGO, "p=quarantine; pct=50", name="brand._bimi.mail", dname="_dmarc.mail")',
        [
            Finding(
                "B2",
                Severity.ERROR,
                "the logo will not be shown: DMARC at _dmarc.mail.example.com: p=quarantine with pct=50 is not full enforcement; BIMI needs p=quarantine with pct=100, or p=reject, and no sp=none",
                "brand._bimi.mail",
            )
        ],
    ),
    ('v(LOGO, "p=reject", name="brand._bimi.mail", dname="_dmarc")', []),
    (
        'bimi.facts("default._bimi", "TXT", (LOGO,), ("v=BIMI1; l=https://brand.example.com/new.svg; a=https://brand.example.com/vmc.pem",), ctx())',
        [
            fact(
                "bimi.logo",
                "https://brand.example.com/logo.svg",
                "https://brand.example.com/new.svg",
            )
        ],
    ),
    (
        'bimi.facts("default._bimi", "TXT", (), (LOGO,), ctx())',
        [
            fact("bimi.record", None, "published"),
            fact("bimi.logo", None, "https://brand.example.com/logo.svg"),
            fact("bimi.authority", None, "https://brand.example.com/vmc.pem"),
        ],
    ),
    (
        'bimi.facts("default._bimi", "TXT", (LOGO,), (), ctx())',
        [
            fact("bimi.record", "published", None),
            fact("bimi.logo", "https://brand.example.com/logo.svg", None),
            fact("bimi.authority", "https://brand.example.com/vmc.pem", None),
        ],
    ),
    (
        'bimi.facts("default._bimi", "TXT", ("v=BIMI1; l=https://b.example/l.svg",), ("v=BIMI1; l=https://b.example/l.svg; a=https://b.example/v.pem",), ctx())',
        [fact("bimi.authority", None, "https://b.example/v.pem")],
    ),
    # p=none is named as such (sp inherits p); only an explicit sp=none is blamed on sp.
    (
        'v(LOGO, "p=reject; sp=none")',
        [
            Finding(
                "B2",
                Severity.ERROR,
                "the logo will not be shown: DMARC at _dmarc.example.com: sp=none disqualifies "
                "BIMI; BIMI needs p=quarantine with pct=100, or p=reject, and no sp=none",
                "default._bimi",
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
def test_bimi_findings_and_facts(call: str, expected: object) -> None:
    assert eval(call) == expected  # noqa: S307 - the call is one of the literal cases above


def test_a_declination_parses_to_no_logo() -> None:
    record = bimi.parse("v=BIMI1; l=; a=")
    assert (record.logo, record.authority, record.declination) == ("", "", True)


@pytest.mark.parametrize(
    ("lps", "valid"),
    [("noreply,X", True), (" noreply ,\tX", True), ("noreply,\u00a0support", False)],
)
def test_lps_allows_spaces_and_tabs_around_local_parts_only(lps: str, valid: bool) -> None:
    findings = v(f"v=BIMI1; l=https://b.example/logo.svg; lps={lps}")
    assert [f.code for f in findings] == ([] if valid else ["B1"])


def test_a_broken_record_does_not_hide_the_next_one() -> None:
    findings = v(("v=BIMI2; l=", "v=BIMI1; l=https://b.example/logo.svg"), "p=none")
    assert [f.code for f in findings] == ["B1", "B1", "B2"]


def test_a_logo_alone_needs_an_enforced_dmarc() -> None:
    findings = v("v=BIMI1; l=https://b.example/logo.svg", "p=none")
    assert [(f.code, f.severity) for f in findings] == [("B2", Severity.ERROR)]


def test_parse_keeps_the_logo_and_the_evidence() -> None:
    record = bimi.parse("v=BIMI1; L=https://b.example/l.svg; a=")
    assert record.tags == (Tag("v", "BIMI1"), Tag("l", "https://b.example/l.svg"), Tag("a", ""))
    assert (record.logo, record.authority, record.declination) == (
        "https://b.example/l.svg",
        "",
        False,
    )
    # A warning (not SVG) does not stop parsing; an error does, with its code and text.
    assert bimi.parse("v=BIMI1; l=https://b.example/l.png").logo == "https://b.example/l.png"
    with pytest.raises(RecordSyntaxError) as err:
        bimi.parse("v=BIMI1; l=http://b.example/l.svg")
    assert (err.value.code, err.value.message) == (
        "B1",
        "l=http://b.example/l.svg: the logo must be an https URL",
    )
