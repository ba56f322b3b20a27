"""The portfolio's typed values: client profiles, zone files, providers, sender catalog, settings.

pipeline/load/portfolio.py reads them from the repository (and re-exports them: importers name
pipeline.load.portfolio); they live here so that the reading stays under 450 lines.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from pipeline.classify.rules import RiskRules
from pipeline.diff.context import DkimLifecycle
from pipeline.load.calendar_model import Calendar, Freeze
from pipeline.load.gate_policy import DEFAULT_CHAINS, GatePolicy

# Keys of ours in a provider entry, taken out before the options reach the octoDNS class.
MTA_STS_POLICIES = "mta_sts_policies"
# "host:port" of a DNS server authoritative for the provider's zones, for verification by DNS
# where the provider's own host and port are an HTTP API (PowerDNS).
DNS_SERVER = "dns_server"
# Route 53: domain -> hosted zone id, where a zone is named by id instead of found by name.
HOSTED_ZONES = "hosted_zones"
DMARCOPS_KEYS = frozenset({"class", MTA_STS_POLICIES, DNS_SERVER, HOSTED_ZONES})
DEFAULT_POLICY_URL = "https://mta-sts.{domain}/.well-known/mta-sts.txt"  # RFC 8461 3.3


SELF_SERVE = "self-serve"
OUTSIDE = "outside"
OUTSIDE_LABEL = "outside standard change management at client's direction"


@dataclass(frozen=True)
class AuthorisedApprover:
    name: str
    email: str


@dataclass(frozen=True)
class ClientProfile:
    id: str
    name: str
    provider: str
    domains: tuple[str, ...]
    regulated: bool = False
    industry: str = ""
    timezone: str = "UTC"
    dkim: Mapping[str, DkimLifecycle] = field(default_factory=dict)
    # Windows, freezes, blackouts, staffed hours, scheduled changes, on call: one model
    # (pipeline.load.calendar_model), read by pipeline.load.calendar from
    # policy/calendars/<client>.yaml and the profile's older keys.
    calendar: Calendar = field(default_factory=Calendar)
    authorised_approvers: tuple[AuthorisedApprover, ...] = ()
    team: str = ""
    file: Path = Path()
    # The client's MSA: does a records export give them the MSP's internal notes?
    export_internal_notes: bool = False
    # Years a sealed record is kept (policy/clients/ retention_years); None: indefinitely.
    retention_years: int | None = None
    # Service tier and change management (issue 13 item 7; docs/drift.md "Service tiers").
    tier: str = "managed"  # managed | self-serve
    change_management: str = "standard"  # standard | outside
    change_management_direction: str = ""  # the client's written direction, when outside
    # NS delegations by domain: sub-domain (relative) -> "sending" | "reporting".
    ns_delegations: Mapping[str, Mapping[str, str]] = field(default_factory=dict)

    @property
    def self_serve(self) -> bool:
        return self.tier == SELF_SERVE

    @property
    def outside_change_management(self) -> str:
        """The label every record of an "outside" client carries; "" for standard clients."""
        if self.change_management != OUTSIDE:
            return ""
        return f"{OUTSIDE_LABEL} (direction: {self.change_management_direction})"

    @property
    def freezes(self) -> tuple[Freeze, ...]:
        return self.calendar.freezes

    @property
    def weekend_coverage(self) -> bool:
        return self.calendar.weekend_coverage

    def freeze_on(self, day: date) -> Freeze | None:
        return next((f for f in self.freezes if f.covers(day)), None)


@dataclass(frozen=True)
class Sender:
    name: str
    spf: tuple[str, ...]
    lookups: int
    pre_approved: bool


@dataclass(frozen=True)
class SenderCatalog:
    senders: tuple[Sender, ...] = ()

    def sender_for(self, term: str) -> Sender | None:
        term = term.lower()
        return next((s for s in self.senders if term in (t.lower() for t in s.spf)), None)

    def pre_approved_sender(self, term: str) -> str | None:
        sender = self.sender_for(term)
        return sender.name if sender and sender.pre_approved else None

    def lookup_costs(self) -> dict[str, int]:
        """Term -> lookups it costs, for estimating budgets where DNS cannot be asked."""
        costs: dict[str, int] = {}
        for sender in self.senders:
            querying = [t for t in sender.spf if not t.startswith(("ip4:", "ip6:"))]
            for term in querying:
                # A sender's total is charged once, on its first querying term.
                costs[term.lower()] = sender.lookups if term == querying[0] else 1
        return costs


@dataclass(frozen=True)
class ProviderConfig:
    name: str
    options: Mapping[str, Any]
    file: Path
    line: int | None


@dataclass(frozen=True)
class Settings:
    nameservers: tuple[str, ...] = ()
    port: int = 53
    timeout: float = 3.0
    concurrency: int = 8


@dataclass(frozen=True)
class ZoneFile:
    client: str
    domain: str
    path: Path


@dataclass(frozen=True)
class Portfolio:
    root: Path
    clients: Mapping[str, ClientProfile]
    zone_files: tuple[ZoneFile, ...]
    providers: Mapping[str, ProviderConfig]
    senders: SenderCatalog
    rules: RiskRules
    settings: Settings
    gate: GatePolicy = field(default_factory=lambda: GatePolicy(DEFAULT_CHAINS))
    # Where policy/ was read from: the repository, or the sealed policy of record written out
    # (pipeline.records.policy_of_record) when the working tree's policy/ has unsealed edits.
    policy_root: Path | None = None
    policy_sha256: str = ""  # the sealed policy this portfolio was judged by; "" before init
    # Files under policy/ edited since that seal: (path, sealed SHA-256 or "", working or "").
    pending_policy: tuple[tuple[str, str, str], ...] = ()

    def client_of(self, domain: str) -> ClientProfile:
        for client in self.clients.values():
            if domain in client.domains:
                return client
        raise KeyError(domain)

    def schema_path(self, name: str) -> Path:
        return schema_file(self.policy_root or self.root, name)


def schema_file(root: Path, name: str) -> Path:
    return root / "policy" / "schemas" / f"{name}.schema.json"
