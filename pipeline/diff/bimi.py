"""BIMI assertion records at `<selector>._bimi[.sub]` (the BIMI Internet-Draft).

A logo is shown only for mail under an enforced DMARC policy (B2), so validating a BIMI record needs
the DMARC record that governs its domain; `dmarc.bimi_problem_of` holds that rule.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from pipeline.diff.context import ZoneContext
from pipeline.diff.dmarc import bimi_domain, bimi_problem_of, dmarc_name_for
from pipeline.diff.errors import RecordSyntaxError
from pipeline.diff.rrset import diff_single_record
from pipeline.diff.taglist import Tag, parse_tag_list, require_version, tag_value
from pipeline.model import Fact, Finding, Severity, fact


@dataclass(frozen=True)
class BimiRecord:
    tags: tuple[Tag, ...]
    logo: str  # l=, "" when absent or empty
    authority: str  # a=, the VMC/CMC evidence document, "" when absent or empty

    @property
    def declination(self) -> bool:
        """`v=BIMI1; l=; a=;` says the domain shows no logo; no DMARC requirement applies."""
        return not self.logo and not self.authority


def parse(text: str) -> BimiRecord:
    tags = _tags(text)
    errors = [f for f in _tag_findings(tags, "") if f.severity is Severity.ERROR]
    if errors:
        raise RecordSyntaxError(errors[0].message, errors[0].code)
    return BimiRecord(tags, tag_value(tags, "l") or "", tag_value(tags, "a") or "")


def _tags(text: str) -> tuple[Tag, ...]:
    tags = parse_tag_list(text, "B1", lower_names=True)
    require_version(tags, "BIMI1", "B1")
    return tags


def _is_https(url: str) -> bool:
    parts = urlsplit(url)
    return parts.scheme.lower() == "https" and bool(parts.hostname)


def _tag_findings(tags: tuple[Tag, ...], name: str) -> list[Finding]:
    findings: list[Finding] = []
    logo = tag_value(tags, "l") or ""
    authority = tag_value(tags, "a") or ""
    if logo and not _is_https(logo):
        findings.append(
            Finding("B1", Severity.ERROR, f"l={logo}: the logo must be an https URL", name)
        )
    elif logo and not urlsplit(logo).path.lower().endswith(".svg"):
        findings.append(
            Finding(
                "B1",
                Severity.WARNING,
                f"l={logo} does not name an .svg file; the logo must be SVG Tiny PS",
                name,
            )
        )
    if authority and not _is_https(authority):
        findings.append(
            Finding(
                "B1",
                Severity.ERROR,
                f"a={authority}: the VMC/CMC evidence document must be an https URL",
                name,
            )
        )
    return findings


def validate(name: str, rtype: str, values: tuple[str, ...], ctx: ZoneContext) -> list[Finding]:
    findings: list[Finding] = []
    if len(values) > 1:
        findings.append(
            Finding(
                "B1",
                Severity.ERROR,
                f"{len(values)} BIMI records at {ctx.fqdn(name)}; receivers need exactly one",
                name,
            )
        )
    for text in values:
        try:
            tags = _tags(text)
        except RecordSyntaxError as err:
            findings.append(Finding(err.code, Severity.ERROR, err.message, name))
            continue
        findings.extend(_tag_findings(tags, name))
        if tag_value(tags, "l") or tag_value(tags, "a"):
            findings.extend(_dmarc_findings(name, ctx))
    return findings


def _dmarc_findings(name: str, ctx: ZoneContext) -> list[Finding]:
    dmarc_name = dmarc_name_for(bimi_domain(name), ctx.desired)
    problem = bimi_problem_of(ctx.desired.get((dmarc_name, "TXT"), ()))
    if problem is None:
        return []
    return [
        Finding(
            "B2",
            Severity.ERROR,
            f"the logo will not be shown: DMARC at {ctx.fqdn(dmarc_name)}: {problem}; BIMI needs "
            "p=quarantine with pct=100, or p=reject, and no sp=none",
            name,
        )
    ]


def facts(
    name: str, rtype: str, before: tuple[str, ...], after: tuple[str, ...], ctx: ZoneContext
) -> list[Fact]:
    return diff_single_record("bimi", before, after, parse, _diff)


def _diff(old: BimiRecord | None, new: BimiRecord | None) -> list[Fact]:
    found: list[Fact] = []
    for code, attr in (("bimi.logo", "logo"), ("bimi.authority", "authority")):
        before: str = getattr(old, attr) if old else ""
        after: str = getattr(new, attr) if new else ""
        if before != after:
            found.append(fact(code, before or None, after or None))
    return found
