"""SPF policies (RFC 7208): the `v=spf1` value inside a TXT set the client otherwise owns.

Only the v=spf1 value is the pipeline's; the other values of the set (site verifications and the
like) matter only for the size of the DNS answer (S8).

The record's syntax is in spf_record.py and the facts of a change in spf_facts.py; this module
holds the findings of a TXT set and is the kind's face (parse, validate, facts), as for every kind.
"""

from __future__ import annotations

import math

from pipeline.diff.context import ZoneContext
from pipeline.diff.errors import RecordSyntaxError
from pipeline.diff.kinds import is_spf_value
from pipeline.diff.spf_facts import facts
from pipeline.diff.spf_record import SpfRecord, parse
from pipeline.model import Finding, Severity, SpfBudget

__all__ = [
    "MAX_ANSWER_BYTES",
    "MAX_STRING_BYTES",
    "answer_size",
    "facts",
    "parse",
    "validate",
    "validate_txt_strings",
]

MAX_STRING_BYTES = 255  # RFC 7208 3.3, one character-string
MAX_ANSWER_BYTES = 450  # RFC 7208 3.4: keep the answer within a 512-byte UDP datagram
_RR_OVERHEAD_BYTES = 12  # name pointer, type, class, TTL and RDLENGTH of each TXT record


def validate(name: str, rtype: str, values: tuple[str, ...], ctx: ZoneContext) -> list[Finding]:
    findings: list[Finding] = []
    records = [v for v in values if is_spf_value(v)]
    if len(records) > 1:
        findings.append(
            Finding(
                "S1",
                Severity.ERROR,
                f"{len(records)} TXT values at {ctx.fqdn(name)} start with v=spf1: receivers "
                "return permerror (RFC 7208 4.5); merge them into one",
                name,
            )
        )
    if records:
        findings.extend(_size_findings(name, values))
    for text in records:
        try:
            record = parse(text)
        except RecordSyntaxError as err:
            findings.append(Finding(err.code or "S1", Severity.ERROR, err.message, name))
            continue
        findings.extend(_record_findings(record, name))
        findings.extend(_budget_findings(ctx.spf_budget(text, ctx.fqdn(name)), name))
    return findings


def validate_txt_strings(name: str, strings: tuple[str, ...]) -> list[Finding]:
    """S7 for a caller that still sees the character-strings of one TXT value before joining."""
    return [
        Finding(
            "S7",
            Severity.ERROR,
            f"a TXT string of {len(s.encode())} bytes exceeds {MAX_STRING_BYTES} (RFC 7208 3.3); "
            "split it into several strings",
            name,
        )
        for s in strings
        if len(s.encode()) > MAX_STRING_BYTES
    ]


def answer_size(values: tuple[str, ...]) -> int:
    """Bytes of the TXT answer: each value split into 255-byte strings, each with a length byte."""
    size = 0
    for value in values:
        length = len(value.encode())
        size += _RR_OVERHEAD_BYTES + length + max(1, math.ceil(length / MAX_STRING_BYTES))
    return size


def _size_findings(name: str, values: tuple[str, ...]) -> list[Finding]:
    size = answer_size(values)
    if size <= MAX_ANSWER_BYTES:
        return []
    return [
        Finding(
            "S8",
            Severity.WARNING,
            f"the TXT answer at this name is about {size} bytes (all {len(values)} values), above "
            f"~{MAX_ANSWER_BYTES}: it may not fit a UDP response (RFC 7208 3.4) and some receivers "
            "then fail SPF; remove stale values or move senders to an included name",
            name,
        )
    ]


def _record_findings(record: SpfRecord, name: str) -> list[Finding]:
    findings: list[Finding] = []
    all_ = record.all
    if all_ is not None and all_.qualifier == "+":
        findings.append(
            Finding(
                "S5",
                Severity.ERROR,
                "+all lets every host on the internet send as this domain; use ~all or -all",
                name,
            )
        )
    elif all_ is not None and all_.qualifier == "?":
        findings.append(
            Finding(
                "S5",
                Severity.WARNING,
                "?all (neutral) gives receivers no policy for unlisted senders; use ~all or -all",
                name,
            )
        )
    if any(m.name == "ptr" for m in record.mechanisms):
        findings.append(
            Finding(
                "S6",
                Severity.WARNING,
                "ptr is slow and unreliable and SHOULD NOT be used (RFC 7208 5.5); list the "
                "sender's addresses with ip4/ip6 or an include instead",
                name,
            )
        )
    if all_ is not None:
        if record.redirect is not None:
            findings.append(
                Finding(
                    "S9",
                    Severity.WARNING,
                    f"redirect={record.redirect} is ignored because the record has an all "
                    "mechanism (RFC 7208 6.1); remove one of them",
                    name,
                )
            )
        after_all = record.mechanisms[record.mechanisms.index(all_) + 1 :]
        if after_all:
            # As written: a bare `mx` is quoted as `mx`, not as the `+mx` it means.
            ignored = " ".join(m.as_written for m in after_all)
            findings.append(
                Finding(
                    "S9",
                    Severity.WARNING,
                    f"terms after {all_.as_written} are never evaluated (RFC 7208 5.1): {ignored}; "
                    "move them before it",
                    name,
                )
            )
    return findings


def _budget_findings(budget: SpfBudget, name: str) -> list[Finding]:
    estimated = (
        " (estimated from the sender catalog: DNS was not queried)"
        if budget.source == "catalog"
        else ""
    )
    findings: list[Finding] = []
    if budget.lookups > budget.LIMIT:
        findings.append(
            Finding(
                "S2",
                Severity.ERROR,
                f"{budget.lookups} DNS-querying terms counted recursively{estimated}, above the "
                f"limit of {budget.LIMIT}: receivers return permerror (RFC 7208 4.6.4); remove "
                "senders or replace includes by ip4/ip6 terms",
                name,
            )
        )
    for term in budget.mx_over_limit:
        findings.append(
            Finding(
                "S3",
                Severity.ERROR,
                f"{term} resolves to more than 10 MX names{estimated}: receivers return "
                "permerror (RFC 7208 4.6.4); use ip4/ip6 or an include for those hosts",
                name,
            )
        )
    for term in budget.ptr_over_limit:
        findings.append(
            Finding(
                "S6",
                Severity.WARNING,
                f"{term} returns more than 10 names; receivers use only the first 10 "
                "(RFC 7208 4.6.4)",
                name,
            )
        )
    if budget.void_lookups > budget.VOID_LIMIT:
        findings.append(
            Finding(
                "S4",
                Severity.ERROR,
                f"{budget.void_lookups} lookups return no answer{estimated}, above the limit of "
                f"{budget.VOID_LIMIT}: receivers return permerror (RFC 7208 4.6.4); remove terms "
                "that point at names without records",
                name,
            )
        )
    for error in budget.errors:
        # A temperror is our lookup failing, not the record: the count is then a lower bound.
        temporary = error.startswith("temperror")
        findings.append(
            Finding(
                "S2",
                Severity.WARNING if temporary else Severity.ERROR,
                f"following includes and redirects: {error}"
                + ("; the lookup count is a lower bound" if temporary else ""),
                name,
            )
        )
    for note in budget.notes:
        findings.append(Finding("S2", Severity.INFO, f"lookup count: {note}", name))
    return findings
