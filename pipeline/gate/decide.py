"""The one gate: may this change request's changes proceed? Every stage asks here and nowhere else.

plan, approve, apply, rollback, `github pr`, the merge path and the scheduled runner all call
`decide()`; no other module knows which risk needs which sign-off, who may not give it, when a
change may run or how long its rollback window is. The tables are data (policy/gate.yaml for the
approval chain and its exceptions, policy/risk-rules.yaml for rollback windows), read from the
policy of record, never from the change being judged.

The answer is typed: `Allowed` (with the evidence that made it so: approvals, window, a freeze
exception), or `Denied` with its problems, each either `Missing(role, reason)` (a sign-off that
has not been given yet: ask for it) or `Refused(rule, reason)` (something that will not become
right by waiting: a requested risk below the computed one, an emergency that tightens, an
approver who may not approve).

The seed's chain: low, the author self-approves (the request is the log); medium, a second team
member who is not the author; high, that plus the client's written approval. Silence is never
approval; an approval of another plan or another request does not count; an approval dated after
the moment of judgement does not count (a backdated clock cannot make it earlier, and a future
one was not given when the change ran).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

from pipeline.gate.approval_chain import approval_chain, approver_problems, chain_for
from pipeline.gate.approvals import Approval, ApprovalEvidence
from pipeline.gate.conditions import (
    dkim_switch_problems,
    emergency_problem,
    evidence_shortfalls,
    report_evidence_problems,
    tier_problems,
    tier_refusals,
    tightened_policy,
    time_problems,
)
from pipeline.gate.decision import (
    DKIM_SWITCH,
    POLICY_KIND,
    ROLE_LABELS,
    TIME_RULES,
    Allowed,
    Decision,
    Denied,
    Emergency,
    GateContext,
    GateItem,
    Judgement,
    Missing,
    Problem,
    Refused,
    Stage,
    chain_labels,
    explain,
    is_policy_item,
    missing,
    only_waiting_for_time,
    refused,
    rollback_by_risk,
    rollback_hours,
)
from pipeline.gate.requests import ChangeRequest
from pipeline.gate.roster import Roster
from pipeline.gate.windows import Window
from pipeline.load.portfolio import Portfolio
from pipeline.model import RiskLevel

# The gate's whole surface, as callers have always reached it (`decide.Stage`, `decide.refused`):
# the values live in pipeline.gate.decision, the conditions in pipeline.gate.approval_chain and
# pipeline.gate.conditions; this module decides.
__all__ = [
    "DKIM_SWITCH",
    "POLICY_KIND",
    "ROLE_LABELS",
    "TIME_RULES",
    "Allowed",
    "Decision",
    "Denied",
    "Emergency",
    "GateContext",
    "GateItem",
    "Judgement",
    "Missing",
    "Problem",
    "Refused",
    "Stage",
    "chain_labels",
    "context",
    "decide",
    "evidence_shortfalls",
    "explain",
    "is_policy_item",
    "missing",
    "only_waiting_for_time",
    "refused",
    "rollback_by_risk",
    "rollback_hours",
    "tier_refusals",
    "tightened_policy",
]


# --- the decision -----------------------------------------------------------------------------


def decide(
    request: ChangeRequest,
    items: Sequence[GateItem],
    approvals: Sequence[Approval],
    ctx: GateContext,
) -> Decision:
    """May `request`'s `items` proceed at `ctx.stage`? The one answer every command uses."""
    problems: list[Problem] = []
    computed = max((i.risk for i in items), default=RiskLevel.LOW)
    if any(is_policy_item(i) for i in items):
        computed = max(computed, ctx.policy.policy_change_risk)
    risk = computed
    if request.requested_risk is not None:
        if request.requested_risk < computed:
            problems.append(
                Refused(
                    "requested-risk-below-computed",
                    f"{request.id} asks for {request.requested_risk.label} risk but its changes "
                    f'are {computed.label} (seed: the "this is routine" misclassification)',
                )
            )
        else:
            risk = request.requested_risk
    if request.client != ctx.client.id:
        problems.append(
            Refused(
                "request-client",
                f"{request.id} is for client {request.client}, not {ctx.client.id}",
            )
        )

    problems += report_evidence_problems(request, items, ctx)
    problems += tier_problems(request, ctx)
    problems += dkim_switch_problems(request, ctx)

    chain = chain_for(request, risk, items, ctx)
    hours = rollback_hours(ctx.rollback_by_risk, risk, items)
    evidence: list[ApprovalEvidence] = []
    ignored: list[str] = []
    window: Window | None = None
    freeze_exception = ""
    on_call = ""
    emergency = ctx.emergency
    if emergency is None and request.is_emergency and ctx.stage is not Stage.APPLY:
        emergency = Emergency(request.emergency_reason or "", request.incident)

    if ctx.stage is Stage.APPROVE and ctx.approver is not None:
        problems += approver_problems(request, risk, ctx)

    if ctx.stage is not Stage.PLAN:
        evidence, ignored, chain_problems = approval_chain(request, risk, chain, approvals, ctx)
        if emergency is not None:
            # Seed: emergencies skip the approval wait; the post-hoc review replaces it. They must
            # still be emergencies.
            problem = emergency_problem(items, replace(ctx, emergency=emergency))
            if problem is not None:
                problems.append(problem)
            problems += [p for p in chain_problems if isinstance(p, Missing) and p.role == "author"]
        else:
            problems += chain_problems

    if ctx.stage is Stage.APPLY:
        if ctx.executor is None or ctx.executor not in ctx.roster:
            problems.append(
                Refused("executor-not-on-roster", f"{ctx.executor!r} is not on the analyst roster")
            )
        if emergency is None:
            timing = time_problems(request, risk, hours, ctx)
            window, freeze_exception, on_call = (
                timing.window,
                timing.freeze_exception,
                timing.on_call,
            )
            problems += timing.problems

    judged = dict(
        request=request,
        risk=risk,
        items=tuple(items),
        chain=chain,
        evidence=tuple(evidence),
        ignored=tuple(ignored),
        rollback_hours=hours,
        change_window=window,
        freeze_exception=freeze_exception,
        on_call=on_call,
        emergency=emergency,
    )
    if problems:
        return Denied(**judged, reasons=tuple(problems))  # type: ignore[arg-type]
    return Allowed(**judged)  # type: ignore[arg-type]


def context(
    portfolio: Portfolio,
    client_id: str,
    stage: Stage,
    now: datetime,
    plan_hash: str,
    roster: Roster,
    **extra: Any,
) -> GateContext:
    """The context for one client's requests, with the tables of the portfolio's policy."""
    return GateContext(
        stage=stage,
        now=now,
        plan_hash=plan_hash,
        roster=roster,
        client=portfolio.clients[client_id],
        policy=portfolio.gate,
        rollback_by_risk=rollback_by_risk(portfolio, client_id),
        **extra,
    )
