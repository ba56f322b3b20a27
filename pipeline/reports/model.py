"""Typed values for an aggregate report: what the parser returns and the store keeps.

Only what the summaries and the gate need is typed; anything else a reporter sends (extensions,
human_result) is left out on purpose, since the files stay the source of truth (the store is
rebuildable from them).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

# The RFC 9990 namespace; RFC 7489 reports have none (some reporters sent the draft's
# "http://dmarc.org/dmarc-xml/0.1"), so elements are matched by local name whatever it is.
RFC9990_NAMESPACE = "urn:ietf:params:xml:ns:dmarc-2.0"


@dataclass(frozen=True)
class AuthResult:
    """One <dkim> or <spf> of a record's auth_results: the raw, unaligned result."""

    method: str  # "dkim" | "spf"
    domain: str
    result: str
    selector: str = ""  # DKIM only
    scope: str = ""  # SPF only: "mfrom" or "helo"


@dataclass(frozen=True)
class Row:
    """One <record> of a report: `count` messages from one source with one set of results."""

    source_ip: str
    count: int
    disposition: str  # none | quarantine | reject (| pass in RFC 9990 reports)
    dkim_aligned: bool  # policy_evaluated/dkim == pass: DKIM passed *and* aligned
    spf_aligned: bool  # policy_evaluated/spf == pass
    header_from: str
    envelope_from: str = ""
    envelope_to: str = ""
    reasons: tuple[str, ...] = ()  # policy override reasons (forwarded, local_policy, ...)
    auth: tuple[AuthResult, ...] = ()

    @property
    def dmarc_pass(self) -> bool:
        # RFC 7489 3.1 / RFC 9989: DMARC passes when either identifier passes aligned.
        return self.dkim_aligned or self.spf_aligned


@dataclass(frozen=True)
class Report:
    org_name: str
    report_id: str
    begin: datetime
    end: datetime
    domain: str  # policy_published/domain
    policy: str  # p
    email: str = ""
    subdomain_policy: str = ""  # sp
    np: str = ""  # RFC 9990: policy for non-existent subdomains
    testing: str = ""  # RFC 9990: t=y|n
    discovery_method: str = ""  # RFC 9990: psl | treewalk
    generator: str = ""  # RFC 9990: the reporting software
    adkim: str = ""
    aspf: str = ""
    pct: int | None = None  # RFC 7489 only; RFC 9990 dropped it
    namespace: str = ""
    version: str = ""
    rows: tuple[Row, ...] = ()
    warnings: tuple[str, ...] = field(default=())

    @property
    def schema(self) -> str:
        """Which format the report follows, for people: rfc9990 when it says so by namespace or
        carries an element only RFC 9990 defines. Not by <version>1.0</version>: RFC 7489's
        schema has that element too, and Microsoft's reports carry it."""
        if (
            self.namespace == RFC9990_NAMESPACE
            or self.np
            or self.testing
            or self.discovery_method
            or self.generator
        ):
            return "rfc9990"
        return "rfc7489"

    @property
    def messages(self) -> int:
        return sum(row.count for row in self.rows)
