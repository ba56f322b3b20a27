"""DMARC report-destination authorisations: TXT `<domain>._report._dmarc[.sub]` (RFC 7489 7.1).

Publishing one tells receivers that this zone accepts the DMARC reports about `<domain>`.
"""

from __future__ import annotations

from pipeline.diff.context import ZoneContext
from pipeline.diff.errors import RecordSyntaxError
from pipeline.diff.rrset import joined, same_values
from pipeline.diff.taglist import parse_tag_list, require_version
from pipeline.model import Fact, Finding, Severity, fact


def authorised_domain(name: str) -> str:
    """`customer.example._report._dmarc` -> `customer.example`."""
    return name.partition("._report._dmarc")[0]


def validate(name: str, rtype: str, values: tuple[str, ...], ctx: ZoneContext) -> list[Finding]:
    findings: list[Finding] = []
    for text in values:
        try:
            require_version(text, parse_tag_list(text, "D7", lower_names=True), "DMARC1", "D7")
        except RecordSyntaxError as err:
            findings.append(
                Finding(
                    "D7",
                    Severity.WARNING,
                    f"{err.message}: receivers will not send {authorised_domain(name)}'s reports "
                    "here (RFC 7489 7.1); publish exactly v=DMARC1",
                    name,
                )
            )
    return findings


def facts(
    name: str, rtype: str, before: tuple[str, ...], after: tuple[str, ...], ctx: ZoneContext
) -> list[Fact]:
    if same_values(before, after):
        return []
    return [
        fact("report_auth.record", joined(before), joined(after), domain=authorised_domain(name))
    ]
