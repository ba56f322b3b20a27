"""Apply a plan zone by zone through the octoDNS targets that planned it, then verify each zone.

octoDNS's Manager would stop at the first failing zone; the seed wants "one failing zone does not stop
the others; it is recorded as failed". So each zone is applied on its own, its exception caught and
recorded with exactly what it was, and verification (not the absence of an exception) says which
records are live: an RFC 2136 provider sends its changes in batches, so a zone can fail half-way.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from octodns_bind import Rfc2136Provider

from pipeline.apply.verify import (
    ItemCheck,
    authoritative_server,
    verify_by_dns,
    verify_by_provider,
)
from pipeline.live.bind import guarded_apply
from pipeline.plan.items import Plan, PlanItem, ZoneResult

Clock = Callable[[], datetime]


@dataclass(frozen=True)
class ZoneApplication:
    zone: str
    status: str  # applied | failed | not-attempted
    error: str
    items: tuple[PlanItem, ...]
    checks: tuple[ItemCheck, ...]

    @property
    def verified(self) -> int:
        return sum(1 for c in self.checks if c.status == "verified")


def _verify(
    zone: ZoneResult, items: Sequence[PlanItem], timeout: float, clock: Clock
) -> list[ItemCheck]:
    server = authoritative_server(zone.octodns_target)
    if server is not None:
        return verify_by_dns(server[0], server[1], items, timeout=timeout, clock=clock)
    try:
        return verify_by_provider(zone.octodns_target, zone.zone, items, clock)
    except Exception as exc:  # the provider cannot even be read: say so, per item
        return [
            ItemCheck(i.zone, i.name, i.type, "unverifiable", clock(), "provider", str(exc))
            for i in items
        ]


def apply_plan(
    plan: Plan,
    *,
    verify_timeout: float = 10.0,
    clock: Clock = lambda: datetime.now(UTC),
    progress: Callable[[str], None] | None = None,
) -> list[ZoneApplication]:
    results: list[ZoneApplication] = []
    for zone in plan.zones:
        items = tuple(i for i in plan.items if i.zone == zone.zone)
        if not items:
            continue
        if progress is not None:
            progress(zone.zone)
        if zone.failed or zone.octodns_plan is None:
            results.append(ZoneApplication(zone.zone, "not-attempted", zone.error, items, ()))
            continue
        error = ""
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                if isinstance(zone.octodns_target, Rfc2136Provider):
                    guarded_apply(zone.octodns_target, zone.octodns_plan)
                else:
                    zone.octodns_target.apply(zone.octodns_plan)
        except Exception as exc:  # recorded exactly; the other zones go on
            error = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}".rstrip(
                ": "
            )
        checks = _verify(zone, items, 0.5 if error else verify_timeout, clock)
        results.append(
            ZoneApplication(
                zone.zone, "failed" if error else "applied", error, items, tuple(checks)
            )
        )
    return results
