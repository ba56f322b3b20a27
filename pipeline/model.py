"""The typed values every stage passes along: risk levels, findings, facts, plan items.

Nothing here does I/O. A plan item is immutable once built, so the plan hash computed over it
is the plan that gets rendered, approved and (later) applied.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

AttrValue = str | int | bool


class RiskLevel(enum.IntEnum):
    """Ordered so that `max()` gives the overall risk (the seed: "classify higher when in doubt")."""

    LOW = 1
    MEDIUM = 2
    HIGH = 3

    @property
    def label(self) -> str:
        return self.name.lower()

    @classmethod
    def parse(cls, text: str) -> RiskLevel:
        return cls[text.upper()]

    def raised(self, steps: int = 1) -> RiskLevel:
        return RiskLevel(min(RiskLevel.HIGH, self + steps))


class Severity(enum.IntEnum):
    INFO = 1
    WARNING = 2
    ERROR = 3

    @property
    def label(self) -> str:
        return self.name.lower()


class RecordKind(enum.Enum):
    """The record kinds the pipeline owns (docs: README "Repository layout"; the zone files hold only these)."""

    DMARC = "dmarc"
    SPF = "spf"
    DKIM = "dkim"
    BIMI = "bimi"
    MTA_STS = "mta-sts"
    MTA_STS_HOST = "mta-sts-host"
    TLS_RPT = "tls-rpt"
    REPORT_AUTH = "report-auth"
    # NS at a sub-domain (never the apex): the delegation of a reporting or sending sub-domain to
    # other nameservers (pipeline.diff.ns). The zone's own apex NS belongs to its DNS team.
    NS_DELEGATION = "ns-delegation"
    # Not a DNS record: an edit under policy/ not sealed yet (pipeline.records.policy_of_record).
    # It is listed in the plan and hashed with it; a lead's seal, not an apply, makes it count.
    POLICY = "policy"


@dataclass(frozen=True)
class Finding:
    """One validation result: a rule code from docs/rules.md (D1, S2, ...), never free text alone."""

    code: str
    severity: Severity
    message: str
    name: str = ""  # record name relative to the zone ("" is the apex)

    def to_json(self) -> dict[str, str]:
        return {
            "code": self.code,
            "severity": self.severity.label,
            "message": self.message,
            "name": self.name,
        }


@dataclass(frozen=True)
class Fact:
    """One semantic change inside a record, e.g. `dmarc.p none->quarantine`, `spf.include +sendgrid.net`.

    `old`/`new` are None when the thing appears/disappears. `attrs` carries what risk rules look at
    (e.g. `pre_approved`, `direction`); kept as a read-only mapping so facts stay hashable-ish values.
    """

    code: str
    old: str | None = None
    new: str | None = None
    attrs: Mapping[str, AttrValue] = field(default_factory=lambda: MappingProxyType({}))

    @property
    def change(self) -> str:
        if self.old is None and self.new is not None:
            return "added"
        if self.new is None and self.old is not None:
            return "removed"
        return "changed"

    def __str__(self) -> str:
        if self.old is not None and self.new is not None:
            return f"{self.code} {self.old}->{self.new}"
        if self.new is not None:
            return f"{self.code} +{self.new}"
        if self.old is not None:
            return f"{self.code} -{self.old}"
        return self.code

    def to_json(self) -> dict[str, object]:
        return {
            "code": self.code,
            "old": self.old,
            "new": self.new,
            "change": self.change,
            "attrs": dict(self.attrs),
            "text": str(self),
        }


def fact(code: str, old: str | None = None, new: str | None = None, **attrs: AttrValue) -> Fact:
    """Shorthand used by the diff modules: `fact("dmarc.p", "none", "reject", direction="stricter")`."""
    return Fact(code, old, new, MappingProxyType(dict(attrs)))


@dataclass(frozen=True)
class SpfBudget:
    """The SPF lookup budget of one record (RFC 7208 4.6.4), counted recursively.

    `source` is "dns" when counted by querying DNS, "catalog" when estimated from the sender catalog
    because DNS could not be reached (the sandbox), so the plan can say where the figure came from.
    """

    lookups: int
    void_lookups: int
    source: str  # "dns" | "catalog"
    mx_over_limit: tuple[str, ...] = ()  # mx terms whose host has more than 10 MX names (S3)
    ptr_over_limit: tuple[str, ...] = ()
    errors: tuple[str, ...] = ()  # permerror conditions met while following includes/redirects
    notes: tuple[
        str, ...
    ] = ()  # e.g. "include:foo.example not in the sender catalog: counted as 1"

    LIMIT = 10
    VOID_LIMIT = 2

    @property
    def headroom(self) -> int:
        return self.LIMIT - self.lookups
