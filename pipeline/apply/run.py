"""`dmarcops apply`: an approved plan becomes a governed, verified, recorded change.

The order is the seed's: every item covered by a change request; each request's approval chain
complete for this plan hash (unless an emergency, which is logged at once and reviewed within 24 h);
inside the client's window and outside its freezes; then, under the per-client lock, the plan made
again from live DNS and refused if anything moved since approval; then zone-by-zone apply and
verification, written into one numbered change record per request.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from pipeline.apply.execute import ZoneApplication, apply_plan
from pipeline.apply.lock import client_lock
from pipeline.apply.stale import refuse_if_changed
from pipeline.classify.change_type import change_type
from pipeline.errors import GateRefused, InputError
from pipeline.gate import approvals as gate
from pipeline.gate.requests import ChangeRequest, check_requested_risk, cover, load_requests
from pipeline.gate.roster import load_roster
from pipeline.gate.windows import check_apply_time
from pipeline.live.dns import Nameservers
from pipeline.load.portfolio import Portfolio
from pipeline.model import RiskLevel
from pipeline.plan.build import PlanOptions, make_plan
from pipeline.plan.items import PlanItem
from pipeline.records import (
    ApprovalEvidence,
    ApprovalRole,
    ApprovalSource,
    ChangeRecord,
    ChangeType,
    Emergency,
    RecordItem,
    RecordStore,
    TimeWindow,
    Verification,
    VerificationStatus,
    ZoneOutcome,
    ZoneStatus,
)

EMERGENCY_REVIEW_HOURS = 24  # seed: "the post-hoc review happens within 24 hours"

_ROLES = {
    "author": (ApprovalRole.ANALYST, ApprovalSource.SELF),
    "peer review": (ApprovalRole.PEER, ApprovalSource.SIGNED),
    "client approval": (ApprovalRole.CLIENT, ApprovalSource.CLIENT_REFERENCE),
}


@dataclass(frozen=True)
class ApplyOptions:
    plan_file: Path
    by: str  # roster id of the analyst executing
    now: datetime
    emergency_reason: str = ""
    wait_seconds: float = 0.0
    nameservers: Nameservers | None = None
    verify_timeout: float = 10.0
    progress: Callable[[str], None] | None = None
    # When `now` was injected (--at, DMARCOPS_NOW), verification times follow it too, so records
    # made in tests and rehearsals read consistently; otherwise each check is stamped when made.
    clock: Callable[[], datetime] | None = None
    # Approvals besides the signed files in changes/approvals/ (GitHub reviews of the merged PR).
    approval_sources: tuple[gate.ApprovalSource, ...] = ()
    # Analysts whose approvals do not count here, whatever their source (the PR's author).
    excluded_approvers: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Gated:
    request: ChangeRequest
    risk: RiskLevel
    items: tuple[PlanItem, ...]  # the re-planned items the request covers
    evidence: tuple[ApprovalEvidence, ...]
    change_window: TimeWindow | None
    rollback_hours: int


def open_requests(root: Path, store: RecordStore) -> list[ChangeRequest]:
    """Requests not yet executed: an executed request's `covers:` must not claim later changes."""
    done = {r.request_id for r in store.all() if r.executed_at is not None}
    return [r for r in load_requests(root, load_roster(root)) if r.id not in done]


def _evidence(decision: gate.ApprovalDecision) -> tuple[ApprovalEvidence, ...]:
    out = []
    for e in decision.evidence:
        role, source = _ROLES.get(e.role, (ApprovalRole.PEER, ApprovalSource.SIGNED))
        if role is ApprovalRole.PEER and e.reference.startswith("GitHub review"):
            source = (
                ApprovalSource.GITHUB
            )  # the review id, login, time and commit are the reference
        out.append(ApprovalEvidence(role, e.who, e.at, e.reference, source))
    return tuple(out)


def _rollback_hours(portfolio: Portfolio, items: list[PlanItem], risk: RiskLevel) -> int:
    # The longest of the request's items (p=reject: 72 h), never below its risk level's window.
    return max([portfolio.rules.rollback_hours[risk], *(i.rollback_hours for i in items)])


def gate_requests(
    portfolio: Portfolio,
    options: ApplyOptions,
    plan_hash: str,
    current: list[PlanItem],
    store: RecordStore,
) -> list[Gated]:
    """The seed's gates, judged on the plan just made from live DNS (its risks, its rollback
    windows), never on the saved file: the file only names the plan hash the approvals signed, and
    the stale check has shown its changes are these."""
    roster = load_roster(portfolio.root)
    if options.by not in roster:
        raise InputError(
            f"{options.by!r} is not on the analyst roster",
            file=roster.file,
            hint="Pass --as with your roster id (policy/roster.yaml).",
        )
    coverage = cover(current, open_requests(portfolio.root, store))
    coverage.check()
    sources: list[gate.ApprovalSource] = [
        gate.ExcludingAnalysts(source, options.excluded_approvers)
        for source in (gate.SignedApprovalFiles(portfolio.root), *options.approval_sources)
    ]
    gated: list[Gated] = []
    refusals: list[str] = []
    for request in coverage.requests:
        risk = check_requested_risk(request, coverage.risk_of(request.id) or RiskLevel.LOW)
        client = portfolio.clients[request.client]
        decision = gate.evaluate(
            risk,
            request,
            plan_hash,
            [a for src in sources for a in src.approvals_for(plan_hash, request.id)],
            roster,
            client,
        )
        hours = _rollback_hours(portfolio, list(coverage.items_of(request.id)), risk)
        window: TimeWindow | None = None
        if options.emergency_reason:
            pass  # seed: emergencies skip the window and the approval wait; reviewed within 24 h
        else:
            if not decision.ok:
                refusals.append(f"{request.id} ({risk.label} risk): " + "; ".join(decision.missing))
            timing = check_apply_time(client, options.now, hours)
            if not timing.ok:
                refusals.append(f"{request.id}: {timing.reason}")
            elif timing.window is not None:
                window = TimeWindow(timing.window.start, timing.window.end)
        gated.append(
            Gated(
                request,
                risk,
                tuple(coverage.items_of(request.id)),
                _evidence(decision),
                window,
                hours,
            )
        )
    if refusals:
        raise GateRefused(
            "apply refused; nothing was changed:\n  - " + "\n  - ".join(refusals),
            hint="Approvals: dmarcops approve; windows: dmarcops window CLIENT; "
            "an emergency: --emergency --reason.",
        )
    return gated


def _keys(changes: Any) -> list[tuple[str, str, str]]:
    return [(c.zone, c.name, c.type) for c in changes]


def _record_type(request: ChangeRequest, items: list[PlanItem]) -> ChangeType:
    names = {t.value: t for t in ChangeType}
    wanted = {
        "new-sender": ChangeType.NEW_SENDER,
        "policy-progression": ChangeType.POLICY_PROGRESSION,
        "dkim-rotation": ChangeType.DKIM_ROTATION,
        "emergency-rollback": ChangeType.EMERGENCY_ROLLBACK,
    }.get(str(request.type.value))
    if wanted is not None:
        return wanted
    derived = {change_type(i.kind, i.facts) for i in items}
    return names.get(derived.pop(), ChangeType.OTHER) if len(derived) == 1 else ChangeType.OTHER


def _outcomes(
    apps: list[ZoneApplication], keys: set[tuple[str, str, str]]
) -> tuple[tuple[ZoneOutcome, ...], tuple[Verification, ...]]:
    zones: list[ZoneOutcome] = []
    checks: list[Verification] = []
    for app in apps:
        mine = [i for i in app.items if (i.zone, i.name, i.type) in keys]
        if not mine:
            continue
        verified = {(c.zone, c.name, c.type) for c in app.checks if c.status == "verified"}
        zones.append(
            ZoneOutcome(
                app.zone,
                ZoneStatus(app.status),
                sum(1 for i in mine if (i.zone, i.name, i.type) in verified),
                app.error,
            )
        )
        for c in app.checks:
            if (c.zone, c.name, c.type) in keys:
                checks.append(
                    Verification(
                        c.zone,
                        c.name,
                        c.type,
                        VerificationStatus(c.status),
                        c.checked_at,
                        f"{c.method}: {c.detail}",
                    )
                )
    return tuple(zones), tuple(checks)


def run_apply(portfolio: Portfolio, options: ApplyOptions) -> list[ChangeRecord]:
    """Gate, lock, re-plan, refuse if stale, apply, verify, record. Returns the change records."""
    plan_file = gate.load_plan_file(options.plan_file)
    # The file is read once: the hash the approvals signed and the changes the stale check compares
    # come from the same bytes.
    approved: dict[str, Any] = {
        "plan_hash": plan_file.plan_hash,
        "changes": [
            {
                "zone": c.zone,
                "name": c.name,
                "type": c.type,
                "before": list(c.before),
                "after": list(c.after),
                "ttl": {"before": c.ttl_before, "after": c.ttl_after},
            }
            for c in plan_file.changes
        ],
    }
    store = RecordStore(portfolio.root / "changes")
    done = sorted(r.id for r in store.all() if r.plan_hash == plan_file.plan_hash and r.executed_at)
    if done:
        raise GateRefused(
            f"plan {plan_file.plan_hash[:16]} was already applied (change records "
            f"{', '.join(done)}); an approved plan is applied once",
            file=options.plan_file,
            hint="Plan again to see what is left to do.",
        )
    clients = sorted({c.client for c in plan_file.changes})
    if not clients:
        raise InputError("the plan has no changes to apply", file=options.plan_file)
    zones = sorted({c.zone for c in plan_file.changes})
    with ExitStack() as locks:
        # Every client of the plan, in a fixed order (two applies never deadlock), held until
        # the records are written: the plan is made again and judged under the locks.
        for client_id in clients:
            locks.enter_context(client_lock(store.changes_dir, client_id, options.wait_seconds))
        current = make_plan(
            portfolio,
            PlanOptions(
                now=options.now,
                clients=tuple(clients),
                zones=zones,
                nameservers=options.nameservers,
            ),
        )
        if current.failed_zones:
            raise GateRefused(
                "live DNS could not be read, nothing was applied: "
                + "; ".join(f"{z.zone}: {z.error}" for z in current.failed_zones)
            )
        refuse_if_changed(approved, current)
        gated = gate_requests(portfolio, options, plan_file.plan_hash, list(current.items), store)
        items = {(i.zone, i.name, i.type): i for i in current.items}
        return _execute(portfolio, options, store, plan_file, current, items, gated)


def _execute(
    portfolio: Portfolio,
    options: ApplyOptions,
    store: RecordStore,
    plan_file: gate.PlanFile,
    current: Any,
    items: dict[tuple[str, str, str], PlanItem],
    gated: list[Gated],
) -> list[ChangeRecord]:
    now = options.now
    opened: list[tuple[ChangeRecord, set[tuple[str, str, str]]]] = []
    for g in gated:
        keys = set(_keys(g.items))
        mine = [items[k] for k in sorted(keys)]
        client = portfolio.clients[g.request.client]

        def build(
            record_id: str, g: Gated = g, mine: list[PlanItem] = mine, client: Any = client
        ) -> ChangeRecord:
            return ChangeRecord(
                id=record_id,
                client=client.id,
                client_name=client.name,
                zones=tuple(sorted({i.zone for i in mine})),
                change_type=_record_type(g.request, mine),
                risk=g.risk,
                plan_hash=plan_file.plan_hash,
                request_id=g.request.id,
                request_sha256=g.request.sha256,
                rationale=g.request.rationale,
                items=tuple(RecordItem.from_plan_item(i) for i in mine),
                approvals=g.evidence,
                change_window=g.change_window,
                rollback_window=TimeWindow(now, now + timedelta(hours=g.rollback_hours)),
                created_at=now,
                executed_by=options.by,
                emergency=(
                    Emergency(
                        options.emergency_reason,
                        now + timedelta(hours=EMERGENCY_REVIEW_HOURS),
                    )
                    if options.emergency_reason
                    else None
                ),
                references=((g.request.rollback_of,) if g.request.rollback_of else ()),
            )

        # Logged before anything changes: a crash mid-apply still leaves the record behind.
        opened.append((store.create(build, now), keys))
    try:
        applications = apply_plan(
            current,
            verify_timeout=options.verify_timeout,
            progress=options.progress,
            clock=options.clock or (lambda: datetime.now(UTC)),
        )
    except BaseException as exc:  # interrupted (Ctrl-C, a bug): say so in every open record
        for record, _ in opened:
            unknown = tuple(
                ZoneOutcome(
                    zone,
                    ZoneStatus.FAILED,
                    0,
                    f"apply interrupted ({type(exc).__name__}); what reached DNS is unknown: "
                    "compare live DNS with the items",
                )
                for zone in record.zones
            )
            store.update(replace(record, executed_at=now, zone_results=unknown), now)
        raise
    finished = []
    for record, keys in opened:
        zone_results, checks = _outcomes(applications, keys)
        done = replace(
            record,
            executed_at=now,
            zone_results=zone_results,
            verification=checks,
        )
        finished.append(store.update(done, now))
    return finished
