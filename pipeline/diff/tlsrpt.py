"""SMTP TLS reporting policies at `_smtp._tls[.sub]` (RFC 8460)."""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.diff.context import ZoneContext
from pipeline.diff.errors import RecordSyntaxError
from pipeline.diff.rrset import diff_single_record, one_record_findings
from pipeline.diff.taglist import (
    Tag,
    address_problem,
    domain_problem,
    parse_tag_list,
    require_version,
    tag_value,
    uri_host,
    uri_list,
)
from pipeline.model import Fact, Finding, fact

REPORT_SCHEMES = ("mailto", "https")  # RFC 8460 3


@dataclass(frozen=True)
class TlsRptRecord:
    tags: tuple[Tag, ...]
    rua: tuple[str, ...]


def parse(text: str) -> TlsRptRecord:
    # RFC 8460 3: %s"v=TLSRPTv1" and %s"rua=": case-sensitive names, no spaces around "=".
    tags = parse_tag_list(text, "T1", strict=True)
    require_version(text, tags, "TLSRPTv1", "T1")
    value = tag_value(tags, "rua")
    if value is None:
        raise RecordSyntaxError(
            "rua= is required: the list of mailto: or https: addresses that receive the reports "
            "(RFC 8460 3)",
            "T1",
        )
    rua = uri_list(value, "T1")
    for uri in rua:
        scheme, colon, _ = uri.partition(":")
        if colon and scheme.lower() in REPORT_SCHEMES:
            # `mailto:` is a mailto: URI without its address: say that, not "must be mailto:".
            missing = address_problem(uri)
            if missing:
                raise RecordSyntaxError(
                    f"rua entry '{uri}' {missing}; write e.g. mailto:tls-reports@example.com",
                    "T1",
                )
        host = uri_host(uri, size_limit=False)
        if not colon or scheme.lower() not in REPORT_SCHEMES or host is None:
            raise RecordSyntaxError(f"rua entry '{uri}' must be a mailto: or https: URI", "T1")
        problem = domain_problem(host)
        if problem:
            raise RecordSyntaxError(f"rua entry '{uri}': {problem}", "T1")
    return TlsRptRecord(tags, rua)


def validate(name: str, rtype: str, values: tuple[str, ...], ctx: ZoneContext) -> list[Finding]:
    return one_record_findings(
        values,
        parse,
        "T1",
        f"TLS-RPT records at {ctx.fqdn(name)}: senders then use none of them (RFC 8460 3); "
        "keep exactly one",
        name,
    )


def facts(
    name: str, rtype: str, before: tuple[str, ...], after: tuple[str, ...], ctx: ZoneContext
) -> list[Fact]:
    return diff_single_record("tls_rpt", before, after, parse, _diff)


def _diff(old: TlsRptRecord | None, new: TlsRptRecord | None) -> list[Fact]:
    before = old.rua if old else ()
    after = new.rua if new else ()
    removed = [fact("tls_rpt.rua", uri, None) for uri in before if uri not in after]
    added = [fact("tls_rpt.rua", None, uri) for uri in after if uri not in before]
    return removed + added
