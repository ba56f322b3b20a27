"""The approval chain a change needs, and whether the approvals given fill it (pipeline.gate.decide).

The chain by risk is data (policy/gate.yaml); a lead joins it for policy edits and for the
medium and high changes of analysts still shadowing. An approval counts only for this plan and
this request, from someone the roster lets approve, who is neither the author nor the executor,
given before the moment of judgement.
"""

from __future__ import annotations

from collections.abc import Sequence

from pipeline.gate import approvals as signed
from pipeline.gate.approvals import Approval, ApprovalEvidence
from pipeline.gate.decision import (
    GateContext,
    GateItem,
    Missing,
    Problem,
    Refused,
    is_policy_item,
    repo_root,
)
from pipeline.gate.evidence import check_client_mail
from pipeline.gate.requests import ChangeRequest, signature_problem
from pipeline.gate.roster import Analyst
from pipeline.load.gate_policy import Role
from pipeline.model import RiskLevel

# --- the approval chain -----------------------------------------------------------------------


def chain_for(
    request: ChangeRequest, risk: RiskLevel, items: Sequence[GateItem], ctx: GateContext
) -> tuple[Role, ...]:
    chain = list(ctx.policy.chains[risk])
    if any(is_policy_item(i) for i in items):
        chain += [r for r in ctx.policy.policy_change_needs if r not in chain]
    if _shadowing_actors(request, risk, ctx):
        chain.append(Role.LEAD)  # seed: new analysts shadow; their changes need a lead
    return tuple(dict.fromkeys(chain))


def _shadowing_actors(request: ChangeRequest, risk: RiskLevel, ctx: GateContext) -> list[str]:
    """The author and executor still shadowing, when the risk makes their change need a lead."""
    if risk < ctx.policy.shadow_own_needs_lead:
        return []
    ids = dict.fromkeys(i for i in (request.author, ctx.executor) if i)
    return [a.id for i in ids if (a := ctx.roster.get(i)) is not None and is_shadowing(a, ctx)]


def is_shadowing(analyst: Analyst, ctx: GateContext) -> bool:
    return analyst.is_shadowing(ctx.now, ctx.policy.shadowing_days)


def _approval_problem(
    approval: Approval, request: ChangeRequest, risk: RiskLevel, ctx: GateContext
) -> str | None:
    reason = signed.not_counting(approval, request, ctx.plan_hash, ctx.roster)
    if reason is not None:
        return reason
    if approval.approved_at > ctx.now:
        return (
            f"it is dated {signed.utc_text(approval.approved_at)}, after now "
            f"({signed.utc_text(ctx.now)}): an approval counts from when it was given"
        )
    if approval.analyst == request.author:
        return (
            "the author cannot review their own change (seed: a self-review preserves all the "
            "same blind spots)"
        )
    analyst = ctx.roster.get(approval.analyst)
    if analyst is not None and is_shadowing(analyst, ctx) and risk > ctx.policy.shadow_may_approve:
        until = analyst.shadowing_until(ctx.policy.shadowing_days)
        return (
            f"{approval.analyst} is shadowing until {until} and may approve only "
            f"{ctx.policy.shadow_may_approve.label}-risk changes"
        )
    return None


def _client_problem(request: ChangeRequest, ctx: GateContext) -> str | None:
    client = ctx.client
    authorised = {a.email.lower() for a in client.authorised_approvers}
    listed = ", ".join(sorted(authorised)) or "none listed in the client profile"
    given = request.client_approval
    if given is None:
        return (
            f"a high-risk change needs written approval from one of {client.id}'s authorised "
            f"approvers ({listed}), recorded under `client_approval:` in {request.file.name} with "
            "approver, at (UTC) and reference. No answer is not an approval."
        )
    if given.approver.lower() not in authorised:
        return f"{given.approver} is not one of {client.id}'s authorised approvers ({listed})"
    if not given.reference.strip():
        return "no message-id or ticket reference"
    if given.at > ctx.now:
        return (
            f"it is dated {signed.utc_text(given.at)}, after now ({signed.utc_text(ctx.now)}): "
            "the client approves before the change runs"
        )
    return None


def approval_chain(
    request: ChangeRequest,
    risk: RiskLevel,
    chain: tuple[Role, ...],
    approvals: Sequence[Approval],
    ctx: GateContext,
) -> tuple[list[ApprovalEvidence], list[str], list[Problem]]:
    evidence: list[ApprovalEvidence] = []
    ignored: list[str] = []
    problems: list[Problem] = []

    unsigned = signature_problem(request, ctx.roster)
    if request.author in ctx.roster and unsigned is None:
        signed_at = request.signature.signed_at if request.signature else None
        evidence.append(
            ApprovalEvidence(
                "author",
                request.author,
                signed_at,
                request.file.name,
                request.signature.signature if request.signature else "",
            )
        )
    elif request.author in ctx.roster:
        # The author's signature is their approval (low risk: the only one): without it the
        # request is a file anyone with write access could have written.
        problems.append(Missing("author", f"author's signature: {unsigned}"))
    else:
        problems.append(
            Missing(
                "author",
                f"{request.author!r} is not on the analyst roster, so nobody accountable "
                "proposed this change",
            )
        )

    peers: list[Approval] = []
    for approval in sorted(approvals, key=lambda a: a.approved_at):
        reason = _approval_problem(approval, request, risk, ctx)
        if reason is None and approval.analyst not in (a.analyst for a in peers):
            peers.append(approval)
        elif reason is not None and not (
            risk is RiskLevel.LOW and approval.analyst == request.author
        ):
            # A signed self-approval of a low change adds nothing, and is no problem either.
            # An approval given in code (the API, a test) has no file or review to point at.
            where = f" ({approval.reference})" if approval.reference else ""
            ignored.append(f"approval by {approval.analyst}{where}: {reason}")

    if Role.PEER in chain or Role.LEAD in chain:
        evidence += [
            ApprovalEvidence(
                "peer review",
                a.analyst,
                a.approved_at,
                a.reference or a.source,
                a.signature,
                a.simulated,
            )
            for a in peers
        ]
    if Role.PEER in chain and not peers:
        problems.append(
            Missing(
                "peer review",
                f"an approval of this plan ({ctx.plan_hash[:16]}) for {request.id} by a roster "
                f"analyst other than the author {request.author} "
                f"(`dmarcops approve --request {request.id} ...`)"
                + "".join(f"\n    does not count: {r}" for r in ignored),
            )
        )
    if Role.LEAD in chain and not any(
        (a := ctx.roster.get(p.analyst)) is not None and a.is_lead for p in peers
    ):
        leads = ", ".join(a.id for a in ctx.roster.analysts if a.is_lead) or "none on the roster"
        # Say which rule put the lead in the chain (chain_for): the risk's own chain, a shadowing
        # author or executor, or a policy edit.
        shadowing = _shadowing_actors(request, risk, ctx)
        if Role.LEAD in ctx.policy.chains[risk]:
            why = "this change"
        elif shadowing:
            why = f"a {risk.label}-risk change by {' and '.join(shadowing)} (shadowing)"
        else:
            why = "a policy change"
        problems.append(
            Missing(
                "lead",
                f"{why} needs the approval of a lead ({leads}), other than the author: policy "
                "edits, and the medium/high changes of analysts still shadowing",
            )
        )

    if Role.CLIENT in chain:
        reason = _client_problem(request, ctx)
        if reason is not None:
            problems.append(Missing("client approval", reason))
        else:
            given = request.client_approval
            assert given is not None
            # The stored e-mail, when there is one, must say what the request claims and carry
            # a DKIM signature that holds (pipeline.gate.evidence).
            verdict = check_client_mail(repo_root(request), given, ctx.dnsfunc)
            if verdict.ok:
                reference = given.reference
                if given.eml is not None:
                    reference += f", {given.eml} (DKIM: {verdict.dkim})"
                evidence.append(
                    ApprovalEvidence("client approval", given.approver, given.at, reference)
                )
            else:
                problems += [Missing("client approval", p) for p in verdict.problems]
    return evidence, ignored, problems


def approver_problems(request: ChangeRequest, risk: RiskLevel, ctx: GateContext) -> list[Problem]:
    approver = ctx.roster.get(ctx.approver or "")
    if approver is None:
        return [Refused("approver-not-on-roster", f"{ctx.approver!r} is not on the analyst roster")]
    if approver.id == request.author and risk > RiskLevel.LOW:
        return [
            Refused(
                "author-approves-own",
                f"{approver.id} wrote {request.id}: the author cannot review it (the peer "
                "review is what catches the mistakes the author missed)",
            )
        ]
    if is_shadowing(approver, ctx) and risk > ctx.policy.shadow_may_approve:
        return [
            Refused(
                "shadowing-approver",
                f"{approver.id} is shadowing until "
                f"{approver.shadowing_until(ctx.policy.shadowing_days)} and may approve only "
                f"{ctx.policy.shadow_may_approve.label}-risk changes; this one is {risk.label}",
            )
        ]
    return []
