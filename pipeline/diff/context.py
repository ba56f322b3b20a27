"""What a diff or a validation rule may know besides the record values.

Everything here is a plain value or a callable supplied by the plan stage, so the record-kind modules
stay pure: no DNS, no files. Tests build a context by hand.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date

from pipeline.model import SpfBudget

RRsetKey = tuple[str, str]  # (name relative to the zone, "" for the apex; record type)


@dataclass(frozen=True)
class ScheduledSelector:
    selector: str
    planned: date


@dataclass(frozen=True)
class RetiredSelector:
    selector: str
    since: date  # the day signing stopped with this selector


@dataclass(frozen=True)
class DkimLifecycle:
    """A domain's DKIM selectors as the client profile documents them.

    Rotation practice: publish a new selector, switch signing, keep the old one
    7-14 days, then revoke or delete; never reuse a selector name.
    """

    active: frozenset[str] = frozenset()
    scheduled: tuple[ScheduledSelector, ...] = ()
    retired: tuple[RetiredSelector, ...] = ()
    retire_wait_days: int = 7

    def scheduled_for(self, selector: str) -> ScheduledSelector | None:
        return next((s for s in self.scheduled if s.selector == selector), None)

    def retired_since(self, selector: str) -> date | None:
        return next((r.since for r in self.retired if r.selector == selector), None)


def _no_budget(record: str, fqdn: str) -> SpfBudget:
    return SpfBudget(lookups=0, void_lookups=0, source="catalog", notes=("no budget counter",))


@dataclass(frozen=True)
class ZoneContext:
    """One zone being validated or diffed.

    `desired` and `live` map (name, type) to the raw values as served (unescaped, strings joined),
    restricted to the records the pipeline owns.
    """

    zone: str  # "example.com", no trailing dot
    desired: Mapping[RRsetKey, tuple[str, ...]] = field(default_factory=dict)
    live: Mapping[RRsetKey, tuple[str, ...]] = field(default_factory=dict)
    today: date = date(2026, 1, 1)
    # (spf record text, fqdn) -> its lookup budget
    spf_budget: Callable[[str, str], SpfBudget] = _no_budget
    # (zone, destination domain) -> True/False when DNS answered, None when it could not be asked
    report_authorised: Callable[[str, str], bool | None] = lambda zone, dest: None
    # an SPF term ("include:sendgrid.net", "ip4:192.0.2.0/24") -> pre-approved sender name, or None
    pre_approved_sender: Callable[[str], str | None] = lambda term: None
    dkim: DkimLifecycle = field(default_factory=DkimLifecycle)
    regulated: bool = False
    # NS delegations of this zone as the client profile documents them (`ns_delegations:`):
    # sub-domain name relative to the zone -> "sending" | "reporting" (pipeline.diff.ns).
    delegations: Mapping[str, str] = field(default_factory=dict)

    def fqdn(self, name: str) -> str:
        return f"{name}.{self.zone}" if name else self.zone
