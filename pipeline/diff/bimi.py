"""BIMI assertion records at `<selector>._bimi[.sub]` (the BIMI Internet-Draft).

A logo is shown only for mail under an enforced DMARC policy (B2), so validating a BIMI record needs
the DMARC record that governs its domain; `dmarc.bimi_problem_of` holds that rule.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from pipeline.diff.context import ZoneContext
from pipeline.diff.dmarc import bimi_domain, bimi_problem_of, dmarc_name_for
from pipeline.diff.errors import RecordSyntaxError
from pipeline.diff.rrset import diff_single_record
from pipeline.diff.taglist import (
    Tag,
    domain_problem,
    parse_tag_list,
    require_version,
    tag_value,
    uri_host,
)
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
    require_version(text, tags, "BIMI1", "B1")
    return tags


# Another URI inside one value: a comma or space followed by a scheme.
_SECOND_URI = re.compile(r"[,\s]+[A-Za-z][A-Za-z0-9+.-]*:")
# lps= (local-part selectors): comma-separated local-parts, dot-atom-text of RFC 5322 3.2.3.
_LOCAL_PART = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*")


def _is_https(url: str) -> bool:
    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError:  # "https://[x": urlsplit raises on a malformed IPv6 host
        return False
    return parts.scheme.lower() == "https" and bool(host)


def _url_problem(tag: str, url: str, what: str) -> str | None:
    # The draft's bimi-location and bimi-evidence hold one URI each (or nothing).
    if _SECOND_URI.search(url):
        return f"{tag}={url}: several URIs; {tag}= holds exactly one https URL of {what}"
    if not _is_https(url):
        return f"{tag}={url}: {what} must be an https URL"
    # Mail clients fetch it by name over TLS: the host is a domain, checked as every other one.
    problem = domain_problem(uri_host(url, size_limit=False) or "")
    return f"{tag}={url}: {problem}" if problem else None


def _tag_findings(tags: tuple[Tag, ...], name: str) -> list[Finding]:
    findings: list[Finding] = []
    logo = tag_value(tags, "l")
    authority = tag_value(tags, "a") or ""
    if logo is None:
        findings.append(
            Finding(
                "B1",
                Severity.ERROR,
                "no l= tag: a BIMI record must carry l= with the logo's https URL (or an empty l= "
                "to decline a logo)",
                name,
            )
        )
        logo = ""
    logo_problem = _url_problem("l", logo, "the logo") if logo else None
    if logo_problem:
        findings.append(Finding("B1", Severity.ERROR, logo_problem, name))
    elif logo and not urlsplit(logo).path.lower().endswith(".svg"):
        findings.append(
            Finding(
                "B1",
                Severity.WARNING,
                f"l={logo} does not name an .svg file; the logo must be SVG Tiny PS",
                name,
            )
        )
    authority_problem = (
        _url_problem("a", authority, "the VMC/CMC evidence document") if authority else None
    )
    if authority_problem:
        findings.append(Finding("B1", Severity.ERROR, authority_problem, name))
    lps = tag_value(tags, "lps")
    if lps is not None and not all(
        _LOCAL_PART.fullmatch(part.strip(" \t")) for part in lps.split(",")
    ):
        findings.append(
            Finding(
                "B1",
                Severity.ERROR,
                f"lps={lps}: local-part selectors are a comma-separated list of local-parts "
                "(the part before @, e.g. lps=noreply,support), none empty",
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
