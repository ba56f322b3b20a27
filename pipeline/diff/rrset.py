"""The before/after skeleton shared by record kinds that hold one record per RRset.

A change is never silent: when the kind's own diff finds nothing to say about a value change, the
skeleton still emits `<kind>.changed` with the raw texts, and a value it cannot parse becomes
`<kind>.unparsed` (when in doubt, classify higher: anything not understood is at least medium).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from pipeline.diff.errors import RecordSyntaxError
from pipeline.model import Fact, Finding, Severity, fact

R = TypeVar("R")


def same_values(before: tuple[str, ...], after: tuple[str, ...]) -> bool:
    # An RRset is a set: servers may return its values in any order.
    return sorted(before) == sorted(after)


def joined(values: tuple[str, ...]) -> str | None:
    return " | ".join(values) if values else None


def single(values: tuple[str, ...], parse: Callable[[str], R]) -> R | None:
    """The one record of an RRset, None when there is none; more than one is ambiguous."""
    if not values:
        return None
    if len(values) > 1:
        raise RecordSyntaxError(f"{len(values)} records where receivers expect exactly one")
    return parse(values[0])


def diff_single_record(
    prefix: str,
    before: tuple[str, ...],
    after: tuple[str, ...],
    parse: Callable[[str], R],
    diff: Callable[[R | None, R | None], list[Fact]],
) -> list[Fact]:
    if same_values(before, after):
        return []
    facts: list[Fact] = []
    if not before:
        facts.append(fact(f"{prefix}.record", new="published"))
    elif not after:
        facts.append(fact(f"{prefix}.record", old="published"))
    try:
        old = single(before, parse)
        new = single(after, parse)
    except RecordSyntaxError:
        facts.append(fact(f"{prefix}.unparsed", joined(before), joined(after)))
        return facts
    facts.extend(diff(old, new))
    if not facts:
        facts.append(fact(f"{prefix}.changed", joined(before), joined(after)))
    return facts


def one_record_findings(
    values: tuple[str, ...],
    parse: Callable[[str], object],
    code: str,
    too_many: str,
    name: str,
) -> list[Finding]:
    """For kinds where receivers need exactly one record at the name (MTA-STS, TLS-RPT): an error
    when there are more (`too_many` says what receivers then do), and each value's syntax error."""
    findings: list[Finding] = []
    if len(values) > 1:
        findings.append(Finding(code, Severity.ERROR, f"{len(values)} {too_many}", name))
    for text in values:
        try:
            parse(text)
        except RecordSyntaxError as err:
            findings.append(Finding(err.code, Severity.ERROR, err.message, name))
    return findings
