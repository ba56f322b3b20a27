"""The diff stage: per record kind, validation findings and semantic facts.

Each owned record kind (kinds.py) has one module here with the same two pure functions:
`validate(name, rtype, values, ctx)` and `facts(name, rtype, before, after, ctx)`. The classify
stage turns facts into risk with rules written as data against the fact codes.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType

from pipeline.diff import bimi, dkim, dmarc, mtasts, ns, reportauth, spf, tlsrpt
from pipeline.diff.context import ZoneContext
from pipeline.model import Fact, Finding, RecordKind

Validator = Callable[[str, str, tuple[str, ...], ZoneContext], list[Finding]]
Differ = Callable[[str, str, tuple[str, ...], tuple[str, ...], ZoneContext], list[Fact]]


@dataclass(frozen=True)
class KindRules:
    """The validation and diff functions of one record kind."""

    validate: Validator
    facts: Differ


KIND_MODULES: Mapping[RecordKind, KindRules] = MappingProxyType(
    {
        RecordKind.DMARC: KindRules(dmarc.validate, dmarc.facts),
        RecordKind.SPF: KindRules(spf.validate, spf.facts),
        RecordKind.DKIM: KindRules(dkim.validate, dkim.facts),
        RecordKind.BIMI: KindRules(bimi.validate, bimi.facts),
        RecordKind.MTA_STS: KindRules(mtasts.validate, mtasts.facts),
        RecordKind.MTA_STS_HOST: KindRules(mtasts.validate_host, mtasts.host_facts),
        RecordKind.TLS_RPT: KindRules(tlsrpt.validate, tlsrpt.facts),
        RecordKind.REPORT_AUTH: KindRules(reportauth.validate, reportauth.facts),
        RecordKind.NS_DELEGATION: KindRules(ns.validate, ns.facts),
    }
)


def validate(
    kind: RecordKind, name: str, rtype: str, values: tuple[str, ...], ctx: ZoneContext
) -> list[Finding]:
    """Findings for one desired RRset; `name` is relative to the zone, values as served."""
    return KIND_MODULES[kind].validate(name, rtype, values, ctx)


def facts(
    kind: RecordKind,
    name: str,
    rtype: str,
    before: tuple[str, ...],
    after: tuple[str, ...],
    ctx: ZoneContext,
) -> list[Fact]:
    """What changes between the live and the desired values of one RRset; [] when nothing does."""
    return KIND_MODULES[kind].facts(name, rtype, before, after, ctx)


__all__ = ["KIND_MODULES", "KindRules", "facts", "validate"]
