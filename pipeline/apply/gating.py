"""The gate before an apply: what `dmarcops apply` runs, who runs it and the approvals it counts,
and the one gate (pipeline.gate.decide) judged on the plan made again from live DNS.

pipeline/apply/run.py calls `gate_requests` under the client locks and re-exports these names.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from pipeline.errors import GateRefused, InputError
from pipeline.gate import approvals as gate
from pipeline.gate import decide
from pipeline.gate.coverage import cover
from pipeline.gate.identity import Signer
from pipeline.gate.request_loader import load_requests
from pipeline.gate.requests import ChangeRequest
from pipeline.gate.roster import Roster
from pipeline.live.dns import Nameservers
from pipeline.load.portfolio import Portfolio
from pipeline.model import RiskLevel
from pipeline.plan.items import PlanItem
from pipeline.records import (
    ApprovalEvidence,
    ApprovalRole,
    ApprovalSource,
    RecordStore,
    TimeWindow,
)
from pipeline.records.policy_of_record import roster_of_record

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
    incident: str = ""  # a declared incident's reference, for an emergency that tightens
    wait_seconds: float = 0.0
    nameservers: Nameservers | None = None
    verify_timeout: float = 10.0
    progress: Callable[[str], None] | None = None
    # When `now` was injected (--at, DMARCOPS_NOW), verification times follow it too, so records
    # made in tests and rehearsals read consistently; otherwise each check is stamped when made.
    clock: Callable[[], datetime] | None = None
    # The time was injected for a sandbox rehearsal (pipeline.clock): the records say so.
    simulated: bool = False
    # Approvals besides the signed files in changes/approvals/ (GitHub reviews of the merged PR).
    approval_sources: tuple[gate.ApprovalSource, ...] = ()
    # Analysts whose approvals do not count here, whatever their source (the PR's author).
    excluded_approvers: frozenset[str] = frozenset()
    # Whose key signs the ledger entries of this apply: the executor's (--key), or the
    # automation's on the GitHub merge path. Nothing is written without one.
    signer: Signer | None = None


@dataclass(frozen=True)
class Gated:
    request: ChangeRequest
    risk: RiskLevel
    items: tuple[PlanItem, ...]  # the re-planned items the request covers
    evidence: tuple[ApprovalEvidence, ...]
    change_window: TimeWindow | None
    rollback_hours: int
    freeze_exception: str = ""
    on_call: str = ""  # the on-call owner whose cover passed the Friday rule


@dataclass(frozen=True)
class GateFiles:
    """What the gate reads from the repository whatever live DNS says: the roster of record,
    every change request and the plan's approval files (read while the plan is made again:
    `read_gate_files`)."""

    roster: Roster
    requests: tuple[ChangeRequest, ...]
    approvals: gate.SignedApprovalFiles  # the plan's approval files, read ahead


def read_gate_files(root: Path, plan_hash: str) -> GateFiles:
    roster = roster_of_record(root)
    requests = tuple(load_requests(root, roster))
    approvals = gate.SignedApprovalFiles(root)
    approvals.read_ahead(plan_hash, [r.id for r in requests])
    return GateFiles(roster, requests, approvals)


def open_requests(
    root: Path,
    store: RecordStore,
    roster: Roster | None = None,
    requests: Sequence[ChangeRequest] | None = None,
) -> list[ChangeRequest]:
    """Requests not yet executed: an executed request's `covers:` must not claim later changes.
    `roster`: the roster of record when the caller has it already (the gate does); `requests`:
    every request, when read already with that roster."""
    if requests is None:
        requests = load_requests(root, roster if roster is not None else roster_of_record(root))
    # Asked of the index for these requests only: a plan does not read every record.
    done = store.executed_requests([r.id for r in requests])
    return [r for r in requests if r.id not in done]


def approval_evidence(decision: decide.Decision) -> tuple[ApprovalEvidence, ...]:
    out = []
    for e in decision.evidence:
        role, source = _ROLES.get(e.role, (ApprovalRole.PEER, ApprovalSource.SIGNED))
        if role is ApprovalRole.PEER and e.reference.startswith("GitHub review"):
            source = (
                ApprovalSource.GITHUB
            )  # the review id, login, time and commit are the reference
        out.append(
            ApprovalEvidence(role, e.who, e.at, e.reference, source, e.signature, e.simulated)
        )
    return tuple(out)


def restorations(
    store: RecordStore, items: Iterable[decide.GateItem] = ()
) -> Callable[[decide.GateItem], bool]:
    """Whether an item puts back a before-state an executed change record holds: the one kind of
    emergency besides de-escalation that needs no declared incident. Asked of the record index
    (each match confirmed in its record's file) the first time the gate asks, for `items` at
    once: an apply that is no emergency never asks."""
    known: dict[tuple[str, str, str, tuple[str, ...]], bool] = {}

    def key(item: decide.GateItem) -> tuple[str, str, str, tuple[str, ...]]:
        return (item.zone, item.name, item.type, tuple(sorted(item.after)))

    def restores(item: decide.GateItem) -> bool:
        wanted = key(item)
        if wanted not in known:
            asked = {wanted, *(key(i) for i in items)} - known.keys()
            held = store.restoring(asked)
            known.update({k: k in held for k in asked})
        return known[wanted]

    return restores


def gate_requests(
    portfolio: Portfolio,
    options: ApplyOptions,
    plan_hash: str,
    current: list[PlanItem],
    store: RecordStore,
    files: GateFiles | None = None,
) -> list[Gated]:
    """The one gate (pipeline.gate.decide), judged on the plan just made from live DNS (its
    risks, its rollback windows), never on the saved file: the file only names the plan hash the
    approvals signed, and the stale check has shown its changes are these. `files`: the roster
    and requests, when read already (`read_gate_files`)."""
    roster = files.roster if files is not None else roster_of_record(portfolio.root)
    if options.by not in roster:
        raise InputError(
            f"{options.by!r} is not on the analyst roster",
            file=roster.file,
            hint="Pass --as with your roster id (policy/roster.yaml).",
        )
    if options.signer is None:
        raise InputError(
            "an apply is signed into the ledger: no signing key was given",
            hint="Pass --key with your private key (env DMARCOPS_KEY); on GitHub, set "
            "DMARCOPS_SIGNING_KEY to the automation's key file.",
        )
    # The one gate's client-level rule first: a self-serve client's changes are never applied,
    # whether or not someone filed a request for them [self-serve-tier].
    tiered = [
        f"{client_id}: {refusal}"
        for client_id in sorted({i.client for i in current if i.client})
        for refusal in decide.tier_refusals(portfolio.clients[client_id], decide.Stage.APPLY)
    ]
    if tiered:
        raise GateRefused(
            "apply refused; nothing was changed: " + "; ".join(tiered),
            hint="A self-serve client's records are changed by its own DNS team; "
            "`dmarcops recommend` writes what the MSP would change and why.",
        )
    coverage = cover(
        current,
        open_requests(portfolio.root, store, roster, files.requests if files is not None else None),
    )
    coverage.check()
    sources: list[gate.ApprovalSource] = [
        gate.ExcludingAnalysts(source, options.excluded_approvers)
        for source in (
            files.approvals if files is not None else gate.SignedApprovalFiles(portfolio.root),
            *options.approval_sources,
        )
    ]
    emergency = (
        decide.Emergency(options.emergency_reason, options.incident)
        if options.emergency_reason
        else None
    )
    restores = restorations(store, current)
    # Each request's items, grouped once (Coverage.items_of looks through every item).
    items_of: dict[str, list[PlanItem]] = {}
    for item, covering in coverage.covered:
        items_of.setdefault(covering.id, []).append(item)
    gated: list[Gated] = []
    refusals: list[str] = []
    for request in coverage.requests:
        decision = decide.decide(
            request,
            tuple(items_of[request.id]),
            [a for src in sources for a in src.approvals_for(plan_hash, request.id)],
            decide.context(
                portfolio,
                request.client,
                decide.Stage.APPLY,
                options.now,
                plan_hash,
                roster,
                executor=options.by,
                emergency=emergency,
                restores=restores,
            ),
        )
        if not decision.allowed:
            refusals.append(decide.explain(decision))
        window = decision.change_window
        gated.append(
            Gated(
                request,
                decision.risk,
                tuple(items_of[request.id]),
                approval_evidence(decision),
                TimeWindow(window.start, window.end) if window is not None else None,
                decision.rollback_hours,
                decision.freeze_exception,
                decision.on_call,
            )
        )
    if refusals:
        raise GateRefused(
            "apply refused; nothing was changed:\n  - " + "\n  - ".join(refusals),
            hint="Approvals: dmarcops approve; windows: dmarcops window CLIENT; "
            "an emergency: --emergency --reason (and --incident when it does not only "
            "de-escalate or restore).",
        )
    return gated
