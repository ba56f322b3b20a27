"""A DMARC record (RFC 7489, RFC 9989) as written: its tags, the checks of each tag's syntax and
value, and the parsed record with its effective policy. Findings of an RRset and the facts of a
change are in dmarc.py.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from pipeline.diff.errors import RecordSyntaxError
from pipeline.diff.taglist import (
    Tag,
    address_problem,
    ascii_number,
    domain_problem,
    parse_tag_list,
    require_version,
    tag_value,
    uri_host,
    uri_list,
)
from pipeline.model import Finding, Severity

POLICIES = ("none", "quarantine", "reject")  # in order of strictness
ALIGNMENT_MODES = ("r", "s")  # relaxed, then strict
FAILURE_OPTIONS = frozenset({"0", "1", "d", "s"})
KNOWN_TAGS = frozenset(
    {"v", "p", "sp", "np", "pct", "rua", "ruf", "adkim", "aspf", "fo", "rf", "ri", "t", "psd"}
)


@dataclass(frozen=True)
class DmarcRecord:
    """A parsed DMARC record; tag fields are None when the tag is absent (see effective_*)."""

    tags: tuple[Tag, ...]
    p: str | None
    sp: str | None
    np: str | None
    pct: int | None
    rua: tuple[str, ...]
    ruf: tuple[str, ...]
    adkim: str | None
    aspf: str | None
    fo: str | None
    testing: bool  # RFC 9989 t=y

    @property
    def effective_p(self) -> str:
        # RFC 9989 4.7: a missing p is treated as p=none.
        return self.p or "none"

    @property
    def effective_sp(self) -> str:
        return self.sp or self.effective_p

    @property
    def effective_np(self) -> str:
        # RFC 9989 4.7 (and RFC 9091): np falls back to sp, which falls back to p.
        return self.np or self.effective_sp

    @property
    def effective_pct(self) -> int:
        return 100 if self.pct is None else self.pct

    @property
    def effective_adkim(self) -> str:
        return self.adkim or "r"

    @property
    def effective_aspf(self) -> str:
        return self.aspf or "r"

    def bimi_problem(self) -> str | None:
        """Why this policy does not qualify the domain for BIMI (rule B2), or None when it does."""
        # An explicit sp=none only: without sp= the sub-domains inherit p=, and p=none is named below.
        if self.sp == "none":
            return "sp=none disqualifies BIMI"
        if self.testing:
            return "t=y (testing) is not an enforced policy"
        if self.effective_p == "reject":
            return None
        if self.effective_p == "quarantine":
            if self.effective_pct == 100:
                return None
            return f"p=quarantine with pct={self.effective_pct} is not full enforcement"
        return "p=none is not an enforced policy"


def parse(text: str) -> DmarcRecord:
    tags = record_tags(text)
    errors = [f for f in tag_findings(tags, "") if f.severity is Severity.ERROR]
    if errors:
        raise RecordSyntaxError(errors[0].message, errors[0].code)
    pct = tag_value(tags, "pct")
    t = tag_value(tags, "t")
    return DmarcRecord(
        tags=tags,
        p=_lower(tag_value(tags, "p")),
        sp=_lower(tag_value(tags, "sp")),
        np=_lower(tag_value(tags, "np")),
        pct=None if pct is None else int(pct),
        rua=uris_of(tags, "rua"),
        ruf=uris_of(tags, "ruf"),
        adkim=_lower(tag_value(tags, "adkim")),
        aspf=_lower(tag_value(tags, "aspf")),
        fo=tag_value(tags, "fo"),
        testing=(t or "").lower() == "y",
    )


def destination_domain(uri: str) -> str | None:
    """The domain a report URI delivers to: `mailto:x@d.example!10m` -> `d.example`."""
    return uri_host(uri)


def record_tags(text: str) -> tuple[Tag, ...]:
    # RFC 7489 6.4: tag names are ABNF literals (case-insensitive), but "DMARC1" is spelled %x44...
    # so the version value is case-sensitive.
    tags = parse_tag_list(text, "D4", lower_names=True)
    require_version(text, tags, "DMARC1", "D1")
    return tags


def uris_of(tags: tuple[Tag, ...], tag: str) -> tuple[str, ...]:
    value = tag_value(tags, tag)
    return () if value is None else uri_list(value, "D4", tag)


def _lower(value: str | None) -> str | None:
    return None if value is None else value.lower()


def tag_findings(tags: tuple[Tag, ...], name: str) -> list[Finding]:
    findings: list[Finding] = []

    def add(code: str, severity: Severity, message: str) -> None:
        findings.append(Finding(code, severity, message, name))

    names = [t.name for t in tags]
    if "p" not in names:
        add(
            "D2",
            Severity.WARNING,
            "no p= tag: RFC 7489 receivers treat the record as invalid unless rua is usable, RFC "
            "9989 ones as p=none; add p=none (or stricter) right after v=DMARC1",
        )
    elif names.index("p") != 1:
        add(
            "D2",
            Severity.WARNING,
            "p= is not the tag right after v=DMARC1, which RFC 7489 requires; move it there",
        )
    for tag in tags:
        value = tag.value.lower()
        if tag.name in ("p", "sp", "np") and value not in POLICIES:
            add(
                "D3",
                Severity.ERROR,
                f"{tag}: {tag.name} must be none, quarantine or reject; receivers may ignore the "
                "whole record",
            )
        elif tag.name in ("adkim", "aspf") and value not in ALIGNMENT_MODES:
            add("D4", Severity.ERROR, f"{tag}: {tag.name} must be r (relaxed) or s (strict)")
        elif tag.name == "fo" and not set(value.split(":")) <= FAILURE_OPTIONS:
            add("D4", Severity.ERROR, f"{tag}: fo must be a colon-separated list of 0, 1, d, s")
        elif tag.name == "pct":
            findings.extend(_pct_findings(tag, name))
        elif tag.name == "ri" and not ascii_number(tag.value):
            add("D4", Severity.ERROR, f"{tag}: ri must be a whole number of seconds")
        elif tag.name == "t" and value not in ("y", "n"):
            add("D4", Severity.ERROR, f"{tag}: t must be y or n (RFC 9989)")
        elif tag.name == "t" and value == "y":
            add(
                "D5",
                Severity.WARNING,
                "t=y (RFC 9989 testing mode) is unknown to RFC 7489 receivers, which apply the "
                "policy in full",
            )
        elif tag.name == "psd" and value not in ("y", "n", "u"):
            add("D4", Severity.ERROR, f"{tag}: psd must be y, n or u (RFC 9989)")
        elif tag.name in ("rua", "ruf"):
            try:
                uris = uri_list(tag.value, "D4", tag.name)
            except RecordSyntaxError as err:
                add("D4", Severity.ERROR, f"{err.message} (RFC 7489 6.4)")
                continue
            for uri in uris:
                problem = report_uri_problem(uri)
                if problem:
                    add(
                        "D4",
                        Severity.ERROR,
                        f"{tag.name} entry '{uri}' {problem}; write a report URI such as "
                        "mailto:dmarc@example.com",
                    )
        elif tag.name not in KNOWN_TAGS:
            add(
                "D5",
                Severity.WARNING,
                f"unknown tag {tag}: receivers ignore it; check the spelling or remove it",
            )
    return findings


def _pct_findings(tag: Tag, name: str) -> list[Finding]:
    if not ascii_number(tag.value) or not 0 <= int(tag.value) <= 100:
        return [Finding("D4", Severity.ERROR, f"{tag}: pct must be a whole number 0-100", name)]
    if int(tag.value) != 100:
        # RFC 9989 removed pct: its receivers apply the policy to all mail.
        return [
            Finding(
                "D5",
                Severity.WARNING,
                f"{tag}: RFC 9989 receivers ignore pct and apply the policy to 100% of mail; "
                "use t=y for a testing phase where that matters",
                name,
            )
        ]
    return []


_SIZE_LIMIT = re.compile(r"[0-9]+[kmgtKMGT]?")


def report_uri_problem(uri: str) -> str | None:
    """Why `uri` is not a dmarc-uri (RFC 7489 6.4: URI [ "!" 1*DIGIT [ "k"/"m"/"g"/"t" ] ])."""
    scheme, colon, _ = uri.partition(":")
    if not colon or not scheme.isascii() or not scheme.isalpha():
        return "has no URI scheme"
    address, bang, size = uri.partition("!")
    if bang and not _SIZE_LIMIT.fullmatch(size):
        return f"has a size limit !{size} that is not a number with an optional k, m, g or t"
    # `mailto:` has a scheme and no address: say that, not "no URI scheme".
    missing = address_problem(address)
    if missing:
        return missing
    host = destination_domain(address)
    if host is None:
        return "names no destination host"
    return domain_problem(host)
