"""Report-destination authorisations (D7 in docs/rules.md, RFC 7489 7.1): the exact warning and
fact, so a mutation of the rule or of the text the operator reads fails a test. Found by mutation
testing (docs/mutation-testing.md)."""

from __future__ import annotations

from pipeline.diff import reportauth
from pipeline.diff.context import ZoneContext
from pipeline.model import Finding, Severity, fact

C = ZoneContext("example.com")
NAME = "customer.example._report._dmarc"
TAIL = ": receivers will not send customer.example's reports here (RFC 7489 7.1); publish exactly v=DMARC1"


def test_the_version_tag_name_is_case_insensitive() -> None:
    # RFC 7489 6.4: tag names are case-insensitive; "DMARC1" is not.
    assert reportauth.validate(NAME, "TXT", ("V=DMARC1",), C) == []


def test_a_wrong_version_or_a_broken_tag_list_is_d7() -> None:
    values = ("v=DMARC2", "v=DMARC1; x")
    assert reportauth.validate(NAME, "TXT", values, C) == [
        Finding(
            "D7",
            Severity.WARNING,
            "the record must start with v=DMARC1 (found v=DMARC2); receivers ignore it otherwise"
            + TAIL,
            NAME,
        ),
        Finding("D7", Severity.WARNING, "'x' is not a tag=value pair" + TAIL, NAME),
    ]


def test_facts_name_the_authorised_domain() -> None:
    assert reportauth.facts(NAME, "TXT", (), ("v=DMARC1",), C) == [
        fact("report_auth.record", None, "v=DMARC1", domain="customer.example")
    ]
    assert reportauth.facts(NAME, "TXT", ("v=DMARC1",), ("v=DMARC1;",), C) == [
        fact("report_auth.record", "v=DMARC1", "v=DMARC1;", domain="customer.example")
    ]
    assert reportauth.facts(NAME, "TXT", ("v=DMARC1",), ("v=DMARC1",), C) == []
