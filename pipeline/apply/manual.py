"""Executing a manual change (pipeline.gate.manual): its change record, then its checklist.

The gate judges a manual change's plan (pipeline.gate.manual); carrying it out is recorded
here, as an apply records a DNS change: the one gate at execution, then a change record whose
checklist the executor fills in (`dmarcops manual apply`, `dmarcops manual verify`).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta

from pipeline.apply.run import approval_evidence
from pipeline.errors import GateRefused, InputError
from pipeline.gate import decide
from pipeline.gate.approvals import SignedApprovalFiles
from pipeline.gate.identity import Signer
from pipeline.gate.manual import ManualPlan, judge, request_details
from pipeline.gate.requests import RequestType
from pipeline.gate.roster import Roster
from pipeline.load.portfolio import Portfolio
from pipeline.records import (
    ChangeRecord,
    ChangeType,
    Check,
    ManualChange,
    RecordItem,
    RecordStore,
    TimeWindow,
    ZoneOutcome,
    ZoneStatus,
)


def execute(
    portfolio: Portfolio,
    plan: ManualPlan,
    signer: Signer,
    now: datetime,
    roster: Roster,
    simulated: bool = False,
) -> ChangeRecord:
    """The one gate at execution; then the change record, its checklist pending: the executor
    now does the steps and records each check (`verify`)."""
    request = plan.request
    store = RecordStore(portfolio.root / "changes")
    done = [r.id for r in store.executed_of_request(request.id)]
    if done:
        raise GateRefused(
            f"{request.id} was already executed (change record {', '.join(done)})",
            hint="A request is executed once; file a new one for another change.",
        )
    approvals = SignedApprovalFiles(portfolio.root).approvals_for(plan.plan_hash, request.id)
    decision = judge(
        portfolio, plan, decide.Stage.APPLY, now, roster, approvals, executor=signer.analyst
    )
    if not decision.allowed:
        raise GateRefused(
            "manual change refused; do not carry out its steps: " + decide.explain(decision),
            hint="Approvals: dmarcops approve --request ID; windows: dmarcops window CLIENT.",
        )
    client = portfolio.clients[request.client]
    details = request_details(request)
    window = decision.change_window
    change = ManualChange(
        kind=request.type.value,
        platform=details.get("platform", ""),
        setting=details.get("setting", "DKIM signing selector"),
        steps=request.steps,
        checklist=tuple(Check(item) for item in request.checklist),
    )

    def build(record_id: str) -> ChangeRecord:
        return ChangeRecord(
            id=record_id,
            client=client.id,
            client_name=client.name,
            zones=tuple(sorted({i.zone for i in plan.items})),
            change_type=ChangeType.PLATFORM
            if request.type is RequestType.PLATFORM
            else ChangeType.DKIM_SWITCH,
            risk=decision.risk,
            plan_hash=plan.plan_hash,
            request_id=request.id,
            request_sha256=request.sha256,
            rationale=request.rationale,
            items=tuple(RecordItem.from_plan_item(i) for i in plan.items),
            approvals=approval_evidence(decision),
            change_window=TimeWindow(window.start, window.end) if window is not None else None,
            rollback_window=TimeWindow(now, now + timedelta(hours=decision.rollback_hours)),
            created_at=now,
            executed_at=now,
            executed_by=signer.analyst,
            freeze_exception=decision.freeze_exception,
            simulated=simulated,
            policy_sha256=portfolio.policy_sha256,
            change_management=client.outside_change_management,
            manual=change,
        )

    return store.create(build, now, signer, simulated)


def verify(
    store: RecordStore,
    record_id: str,
    results: dict[int, tuple[str, str]],
    signer: Signer,
    now: datetime,
    simulated: bool = False,
) -> ChangeRecord:
    """Record checklist results: line number (from 1) -> ("verified" | "failed", note). When
    every line is verified, the record's domains count as applied (the scheduled run may close it
    after its rollback window, as any clean record)."""
    record = store.get(record_id)
    if record.manual is None:
        raise InputError(
            f"record {record_id} is not a manual change: DNS changes are verified by apply"
        )
    if record.sealed:
        raise GateRefused(f"record {record_id} is sealed: nothing is written to it again")
    checklist = list(record.manual.checklist)
    for number, (status, note) in sorted(results.items()):
        if not 1 <= number <= len(checklist):
            raise InputError(
                f"record {record_id}'s checklist has {len(checklist)} line(s); there is no {number}"
            )
        checklist[number - 1] = Check(checklist[number - 1].item, status, now, signer.analyst, note)
    manual = replace(record.manual, checklist=tuple(checklist))
    zone_results = (
        tuple(ZoneOutcome(z, ZoneStatus.APPLIED, 1) for z in record.zones)
        if manual.verified
        else ()
    )
    updated = replace(record, manual=manual, zone_results=zone_results)
    return store.update(updated, now, signer, simulated)
