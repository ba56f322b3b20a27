"""Drift: live DNS compared with the zone files and the last change records (issue 13 item 4).

For every owned RRset of every zone (the records the pipeline owns: pipeline.diff.kinds; the
v=spf1 value only of a shared TXT set; never the apex NS), three states are compared:

- **live**: what the client's provider serves now (read through the same octoDNS provider and
  scope as `plan`);
- **recorded**: what the last change record that applied this RRset left it at (its `after`);
  an adopted drift record counts as such a record;
- **desired**: the zone file.

What the pipeline believes is live is the recorded state, or the zone file where no record ever
touched the RRset. A live RRset that differs from that belief is an **unrecorded change**: someone
changed it outside the pipeline. It is shown with its before (the belief) and after (live), what
it means in DMARC/SPF/DKIM terms (the same diff modules and risk rules as `plan`) and the findings
on the live value. Where live is as recorded but the zone file differs, the difference is the
pipeline's own pending change (covered by an open request) or a zone-file edit nobody requested;
neither is drift. Where no record exists and an open request covers the difference, the request
explains it (pending).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pipeline import diff
from pipeline.classify.rules import classify
from pipeline.diff.context import RRsetKey, ZoneContext
from pipeline.diff.kinds import is_owned_value, kind_of
from pipeline.gate.request_loader import collect_requests
from pipeline.gate.requests import ChangeRequest
from pipeline.load.portfolio import Portfolio
from pipeline.model import Fact, Finding, RecordKind, RiskLevel, fact
from pipeline.plan.build import PlanOptions, client_context, make_plan
from pipeline.plan.items import Plan, ZoneResult
from pipeline.records import ChangeRecord, RecordStore, ZoneStatus
from pipeline.records.policy_of_record import roster_of_record

UNRECORDED = "unrecorded"  # drift: live differs from what the pipeline recorded or wants
PENDING = "pending"  # the pipeline's own change, requested and not applied yet
UNREQUESTED = "unrequested"  # live as recorded; the zone file differs and no request covers it

STATUS_TEXT = {
    UNRECORDED: "unrecorded change",
    PENDING: "pending change",
    UNREQUESTED: "zone-file edit without a request",
}


@dataclass(frozen=True)
class Recorded:
    """The state the last applying change record left an RRset in."""

    record_id: str
    ttl: int | None
    values: tuple[str, ...]


@dataclass(frozen=True)
class DriftItem:
    client: str
    zone: str
    name: str  # relative to the zone, "" for the apex
    type: str
    kind: RecordKind
    status: str  # UNRECORDED | PENDING | UNREQUESTED
    # The transition explained. Unrecorded: from what the pipeline holds (the recorded state,
    # or the zone file) to what live DNS serves. Pending and unrequested: from live DNS to the
    # zone file (the change the pipeline would make). Owned values only.
    before: tuple[str, ...]
    after: tuple[str, ...]
    ttl_before: int | None
    ttl_after: int | None
    desired: tuple[str, ...]  # the zone file
    desired_ttl: int | None
    baseline: str  # "record 2026-0003" | "zone file": where the pipeline's belief comes from
    live: tuple[str, ...] = ()
    live_ttl: int | None = None
    facts: tuple[Fact, ...] = ()
    risk: RiskLevel = RiskLevel.LOW
    reasons: tuple[str, ...] = ()
    findings: tuple[Finding, ...] = ()  # the record rules on the live value
    request: str = ""  # the open request that covers this RRset, if any
    rollback_hours: int = 0

    @property
    def fqdn(self) -> str:
        return f"{self.name}.{self.zone}" if self.name else self.zone

    @property
    def action(self) -> str:
        if not self.before:
            return "create"
        if not self.after:
            return "delete"
        return "update"

    @property
    def zone_file_matches(self) -> bool:
        """The zone file already wants what live serves (adopting only records it)."""
        return _same(self.type, self.desired, self.desired_ttl, self.live, self.live_ttl)

    def to_json(self) -> dict[str, Any]:
        return {
            "client": self.client,
            "zone": self.zone,
            "name": self.name,
            "fqdn": self.fqdn,
            "type": self.type,
            "kind": self.kind.value,
            "status": self.status,
            "action": self.action,
            "baseline": self.baseline,
            "before": list(self.before),
            "after": list(self.after),
            "ttl": {"before": self.ttl_before, "after": self.ttl_after},
            "live": {"values": list(self.live), "ttl": self.live_ttl},
            "zone_file": {"values": list(self.desired), "ttl": self.desired_ttl},
            "zone_file_matches_live": self.zone_file_matches,
            "risk": self.risk.label,
            "reasons": list(self.reasons),
            "facts": [f.to_json() for f in self.facts],
            "findings": [f.to_json() for f in self.findings],
            "request": self.request or None,
        }


@dataclass(frozen=True)
class DriftReport:
    generated_at: datetime
    items: tuple[DriftItem, ...]
    zones: tuple[ZoneResult, ...]  # every zone compared (failed ones carry their error)
    plan: Plan | None = field(default=None, compare=False, repr=False)

    @property
    def unrecorded(self) -> tuple[DriftItem, ...]:
        return tuple(i for i in self.items if i.status == UNRECORDED)

    @property
    def has_drift(self) -> bool:
        return bool(self.unrecorded)

    @property
    def failed_zones(self) -> tuple[ZoneResult, ...]:
        return tuple(z for z in self.zones if z.failed)

    def to_json(self) -> dict[str, Any]:
        counts = {s: sum(1 for i in self.items if i.status == s) for s in STATUS_TEXT}
        return {
            "format_version": 1,
            "generated_at": self.generated_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "drift": self.has_drift,
            "summary": {
                **counts,
                "zones": len(self.zones),
                "failed_zones": len(self.failed_zones),
                "risk": {
                    level.label: sum(1 for i in self.unrecorded if i.risk is level)
                    for level in RiskLevel
                },
            },
            "items": [i.to_json() for i in self.items],
            "zones": [
                {
                    "client": z.client,
                    "zone": z.zone,
                    "provider": z.provider,
                    "tier": z.tier,
                    "status": "failed" if z.failed else "compared",
                    "error": z.error,
                }
                for z in self.zones
            ],
        }


def _norm(rtype: str, values: Iterable[str]) -> list[str]:
    if rtype.upper() == "TXT":
        return sorted(values)
    return sorted(v.lower() for v in values)


def _same(
    rtype: str,
    a: Sequence[str],
    a_ttl: int | None,
    b: Sequence[str],
    b_ttl: int | None,
) -> bool:
    if _norm(rtype, a) != _norm(rtype, b):
        return False
    # A TTL is part of the RRset; it counts only where both sides know it and there are values.
    return not a or a_ttl is None or b_ttl is None or a_ttl == b_ttl


def _owned(kind: RecordKind, values: Iterable[str]) -> tuple[str, ...]:
    return tuple(v for v in values if is_owned_value(kind, v))


def recorded_state(records: Iterable[ChangeRecord]) -> dict[tuple[str, str, str], Recorded]:
    """(zone, name, type) -> the state the last record that applied it left. Records in the
    order they happened; an item counts when its zone was applied (or the record adopted it)."""

    def order(r: ChangeRecord) -> tuple[datetime, int, int]:
        return (r.executed_at or r.created_at, r.year, r.number)

    state: dict[tuple[str, str, str], Recorded] = {}
    for record in sorted(records, key=order):
        if record.executed_at is None:
            continue
        applied = {z.zone for z in record.zone_results if z.status is ZoneStatus.APPLIED}
        for item in record.items:
            kind = kind_of(item.name, item.type)
            if kind is None:
                continue  # a manual change's item, or anything the pipeline does not own
            if record.adopted is None and item.zone not in applied:
                continue
            state[(item.zone, item.name, item.type)] = Recorded(
                record.id, item.ttl_after, _owned(kind, item.after)
            )
    return state


def open_requests_quietly(portfolio: Portfolio, store: RecordStore) -> list[ChangeRequest]:
    """The requests not yet executed. A request that does not load is left out here (`plan` and
    `requests check` report it): drift must still run."""
    try:
        roster = roster_of_record(portfolio.root)
    except Exception:  # no policy of record yet: drift still compares live with the files
        roster = None
    done = {r.request_id for r in store.all() if r.executed_at is not None}
    return [r for r in collect_requests(portfolio.root, roster)[0] if r.id not in done]


def detect(
    portfolio: Portfolio,
    options: PlanOptions | None = None,
    *,
    plan: Plan | None = None,
) -> DriftReport:
    """Compare every selected zone's live DNS with its zone file and its last records."""
    options = options or PlanOptions()
    now = (options.now or datetime.now(UTC)).astimezone(UTC)
    plan = plan if plan is not None else make_plan(portfolio, options)
    store = RecordStore(portfolio.root / "changes")
    recorded = recorded_state(store.all())
    requests = open_requests_quietly(portfolio, store)
    items: list[DriftItem] = []
    for zone in plan.zones:
        if zone.failed or zone.owned_live is None:
            continue
        items.extend(_zone_drift(portfolio, zone, now, recorded, requests))
    return DriftReport(now, tuple(items), plan.zones, plan)


def _zone_drift(
    portfolio: Portfolio,
    zone: ZoneResult,
    now: datetime,
    recorded: Mapping[tuple[str, str, str], Recorded],
    requests: Sequence[ChangeRequest],
) -> list[DriftItem]:
    client = portfolio.clients[zone.client]
    live: Mapping[RRsetKey, tuple[int, tuple[str, ...]]] = zone.owned_live
    desired: Mapping[RRsetKey, tuple[int, tuple[str, ...]]] = zone.owned_desired or {}
    ctx: ZoneContext = zone.context
    keys = set(live) | set(desired) | {(n, t) for (z, n, t) in recorded if z == zone.zone}
    out: list[DriftItem] = []
    for name, rtype in sorted(keys):
        kind = kind_of(name, rtype)
        if kind is None:
            continue
        live_ttl, live_values = live.get((name, rtype), (None, ()))
        want_ttl, want_values = desired.get((name, rtype), (None, ()))
        last = recorded.get((zone.zone, name, rtype))
        if last is not None:
            base_values, base_ttl, baseline = last.values, last.ttl, f"record {last.record_id}"
        else:
            base_values, base_ttl, baseline = want_values, want_ttl, "zone file"
        covering = next(
            (
                r.id
                for r in requests
                if r.client == client.id and _covers(r, zone.zone, name, rtype)
            ),
            "",
        )
        if _same(rtype, live_values, live_ttl, base_values, base_ttl):
            if _same(rtype, live_values, live_ttl, want_values, want_ttl):
                continue  # live is what the pipeline recorded and wants
            status = PENDING if covering else UNREQUESTED
        elif last is None and covering and want_values:
            # No record contradicts the request that explains the zone file's value. (A live
            # RRset the zone file never held is drift even under a zone-wide request: nobody
            # asked for it, and the plan would delete it.)
            status = PENDING
        else:
            status = UNRECORDED
        if status == UNRECORDED:  # what changed behind the pipeline's back: belief -> live
            before, after = (base_values, base_ttl), (live_values, live_ttl)
        else:  # the pipeline's own change still to come: live -> zone file
            before, after = (live_values, live_ttl), (want_values, want_ttl)
        out.append(
            _explained(
                portfolio,
                client.id,
                zone.zone,
                name,
                rtype,
                kind,
                status,
                (*before, baseline),
                after,
                (want_values, want_ttl),
                (live_values, live_ttl),
                covering,
                ctx,
                now,
            )
        )
    return out


def _covers(request: ChangeRequest, zone: str, name: str, rtype: str) -> bool:
    return any(
        s.zone == zone and (s.name is None or s.name == name.lower()) and s.type in (None, rtype)
        for s in request.covers
    )


def _explained(
    portfolio: Portfolio,
    client_id: str,
    zone: str,
    name: str,
    rtype: str,
    kind: RecordKind,
    status: str,
    base: tuple[tuple[str, ...], int | None, str],
    target: tuple[tuple[str, ...], int | None],
    desired: tuple[tuple[str, ...], int | None],
    live: tuple[tuple[str, ...], int | None],
    request: str,
    ctx: ZoneContext,
    now: datetime,
) -> DriftItem:
    """The difference in DMARC/SPF/DKIM terms: facts from the kind's diff module, risk from the
    risk rules, and the record rules run over the live value."""
    (before, ttl_before, baseline), (after, ttl_after) = base, target
    facts = list(diff.facts(kind, name, rtype, before, after, ctx))
    if before and after and None not in (ttl_before, ttl_after) and ttl_before != ttl_after:
        facts.append(fact("ttl", str(ttl_before), str(ttl_after)))
    classification = classify(
        facts, client_context(portfolio.clients[client_id], now), portfolio.rules
    )
    findings = tuple(diff.validate(kind, name, rtype, live[0], ctx)) if live[0] else ()
    return DriftItem(
        client=client_id,
        zone=zone,
        name=name,
        type=rtype,
        kind=kind,
        status=status,
        before=before,
        after=after,
        ttl_before=ttl_before,
        ttl_after=ttl_after,
        desired=desired[0],
        desired_ttl=desired[1],
        live=live[0],
        live_ttl=live[1],
        baseline=baseline,
        facts=tuple(facts),
        risk=classification.risk,
        reasons=classification.reasons,
        findings=findings,
        request=request,
        rollback_hours=classification.rollback_hours,
    )
