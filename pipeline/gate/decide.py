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

import enum
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from pipeline.errors import InputError
from pipeline.gate import approvals as signed
from pipeline.gate.approvals import Approval, ApprovalEvidence
from pipeline.gate.evidence import DnsFunc, check_client_mail
from pipeline.gate.requests import ChangeRequest, signature_problem
from pipeline.gate.roster import Analyst, Roster
from pipeline.gate.windows import Window, check_apply_time
from pipeline.load.calendar import Freeze
from pipeline.load.gate_policy import GatePolicy, PassRateThreshold, Role
from pipeline.load.portfolio import ClientProfile, Portfolio
from pipeline.load.request_files import CoverableItem
from pipeline.model import Fact, RiskLevel
from pipeline.reports.evidence import Evidence, load_evidence

# The rule codes of time refusals: the merge path queues a change refused only for these.
TIME_RULES = frozenset({"outside-window", "freeze", "freeze-rollback", "weekend", "unstaffed"})
POLICY_KIND = "policy"
DKIM_SWITCH = "dkim-switch"


class Stage(enum.Enum):
    """What is being asked. Each stage judges what it can know at that point."""

    PLAN = "plan"  # is the change requested, at a risk no lower than computed?
    APPROVE = "approve"  # may this person approve it; what is still missing?
    REVIEW = "review"  # the pull-request gate: the whole approval chain, not the clock
    APPLY = "apply"  # everything, at the system clock's now


@dataclass(frozen=True)
class Missing:
    role: str  # author | peer | lead | client
    reason: str

    def __str__(self) -> str:
        return f"{self.role}: {self.reason}"


@dataclass(frozen=True)
class Refused:
    rule: str  # a stable code, documented in docs/threat-model.md
    reason: str

    def __str__(self) -> str:
        return f"{self.reason} [{self.rule}]"


Problem = Missing | Refused

# How each link of the chain is named to people (PR checklist, refusals, records).
ROLE_LABELS = ("author", "peer review", "lead", "client approval")
_LABEL = {
    Role.AUTHOR: "author",
    Role.PEER: "peer review",
    Role.LEAD: "lead",
    Role.CLIENT: "client approval",
}


class GateItem(CoverableItem, Protocol):
    """What the gate needs of a change: what coverage needs, plus its before and after values."""

    @property
    def before(self) -> tuple[str, ...]: ...
    @property
    def after(self) -> tuple[str, ...]: ...


@dataclass(frozen=True)
class Emergency:
    """An emergency as declared: what is breaking now, and the incident, when one is declared."""

    reason: str
    incident: str = ""


@dataclass(frozen=True)
class GateContext:
    stage: Stage
    now: datetime  # UTC, from pipeline.clock: the system clock unless a sandbox rehearsal
    plan_hash: str
    roster: Roster
    client: ClientProfile
    policy: GatePolicy
    rollback_by_risk: Mapping[RiskLevel, int]
    executor: str | None = None  # the roster id whose key signs the apply
    approver: str | None = None  # APPROVE: the roster id whose key signs the approval
    emergency: Emergency | None = None
    # Does this item put back a before-state an earlier change record holds? (emergency restore)
    restores: Callable[[GateItem], bool] = lambda item: False
    # Answers the DKIM key lookups of a client approval's stored e-mail (None: system resolvers).
    dnsfunc: DnsFunc | None = None
    # A dkim-switch request's new selector as checked in live DNS by the caller
    # (pipeline.live.selector): (domain, selector) -> (published and valid?, what was found).
    selector_checks: Mapping[tuple[str, str], tuple[bool, str]] = field(default_factory=dict)


@dataclass(frozen=True)
class Judgement:
    request: ChangeRequest
    risk: RiskLevel
    items: tuple[GateItem, ...]
    chain: tuple[Role, ...]  # the sign-offs this change needs
    evidence: tuple[ApprovalEvidence, ...]  # the links that count
    ignored: tuple[str, ...]  # each offered approval that does not count, with why
    rollback_hours: int
    change_window: Window | None
    freeze_exception: str  # "" unless a freeze was passed by exception, then what and why
    # The on-call owner whose cover passed the staffed-hours and weekend rules (the Friday
    # rule), "" when none was needed: the record names them.
    on_call: str
    emergency: Emergency | None

    @property
    def allowed(self) -> bool:
        return not self.problems

    @property
    def problems(self) -> tuple[Problem, ...]:
        return ()

    # The shapes the renderers print: "role: reason" per missing link, then refusals.
    @property
    def ok(self) -> bool:
        return self.allowed

    @property
    def missing(self) -> tuple[str, ...]:
        return tuple(str(p) for p in self.problems)


@dataclass(frozen=True)
class Allowed(Judgement):
    pass


@dataclass(frozen=True)
class Denied(Judgement):
    reasons: tuple[Problem, ...]

    @property
    def problems(self) -> tuple[Problem, ...]:
        return self.reasons


Decision = Allowed | Denied


def missing(decision: Decision) -> list[Missing]:
    return [p for p in decision.problems if isinstance(p, Missing)]


def refused(decision: Decision) -> list[Refused]:
    return [p for p in decision.problems if isinstance(p, Refused)]


def chain_labels(decision: Decision) -> tuple[str, ...]:
    """The sign-offs the decision's change needs, in chain order, as people call them."""
    return tuple(_LABEL[r] for r in decision.chain)


def only_waiting_for_time(decision: Decision) -> bool:
    """Denied only by the clock (window, freeze, weekend): the merge path may queue it."""
    return not decision.allowed and all(
        isinstance(p, Refused) and p.rule in TIME_RULES for p in decision.problems
    )


def is_policy_item(item: GateItem) -> bool:
    return str(getattr(getattr(item, "kind", None), "value", "")) == POLICY_KIND


def rollback_hours(
    rollback_by_risk: Mapping[RiskLevel, int], risk: RiskLevel, items: Sequence[GateItem]
) -> int:
    """The longest rollback window any item asks for (p=reject: 72 h), never below its risk's."""
    return max(
        [rollback_by_risk[risk], *(int(getattr(i, "rollback_hours", 0) or 0) for i in items)]
    )


# --- the approval chain -----------------------------------------------------------------------


def _chain(
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
    return [a.id for i in ids if (a := ctx.roster.get(i)) is not None and _shadowing(a, ctx)]


def _shadowing(analyst: Analyst, ctx: GateContext) -> bool:
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
    if analyst is not None and _shadowing(analyst, ctx) and risk > ctx.policy.shadow_may_approve:
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


def _approval_chain(
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
            ignored.append(f"approval by {approval.analyst} ({approval.reference}): {reason}")

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
        # Say which rule put the lead in the chain (_chain): the risk's own chain, a shadowing
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
            verdict = check_client_mail(_repo_root(request), given, ctx.dnsfunc)
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


def _repo_root(request: ChangeRequest) -> Path:
    # changes/requests/<id>.yaml: the repository is three levels up.
    return request.file.parent.parent.parent


# --- pass-rate evidence from aggregate reports -----------------------------------------------

_POLICY_ORDER = {"none": 0, "quarantine": 1, "reject": 2}
_P_TAG = re.compile(r"(?:^|;)\s*p\s*=\s*([A-Za-z]+)", re.IGNORECASE)


def _dmarc_p(values: Sequence[str]) -> str:
    """The p= of a DMARC TXT value ("none" when there is no record or no p: what receivers
    apply then is no enforcement)."""
    for value in values:
        text = value.replace("\\;", ";")
        if text.lstrip().lower().startswith("v=dmarc1"):
            match = _P_TAG.search(text)
            if match and match.group(1).lower() in _POLICY_ORDER:
                return match.group(1).lower()
    return "none"


def tightened_policy(item: GateItem) -> tuple[str, str] | None:
    """(domain, target p) when the item moves a domain's DMARC p= up (none -> quarantine ->
    reject, a new record straight at quarantine or reject included); None otherwise."""
    if item.type != "TXT" or not (item.name == "_dmarc" or item.name.startswith("_dmarc.")):
        return None
    before, after = _dmarc_p(item.before), _dmarc_p(item.after)
    if _POLICY_ORDER[after] <= _POLICY_ORDER[before]:
        return None
    host = item.name.removeprefix("_dmarc").lstrip(".")
    return (f"{host}.{item.zone}" if host else item.zone), after


def evidence_shortfalls(evidence: Evidence, need: PassRateThreshold, now: datetime) -> list[str]:
    """Each way the evidence falls short of the threshold, in words. Rates are recomputed from
    the counts with integers, never read from the file."""
    found: list[str] = []
    if evidence.days < need.min_days:
        found.append(f"it covers {evidence.days:.1f} days, fewer than {need.min_days}")
    age = (now - evidence.until).total_seconds() / 86400
    if age > need.max_age_days:
        found.append(
            f"it is stale: its period ended {evidence.until:%Y-%m-%d}, {age:.0f} days ago "
            f"(at most {need.max_age_days})"
        )
    if evidence.until > now:
        found.append(f"its period ends {evidence.until:%Y-%m-%d %H:%M}, after now")
    if evidence.messages < need.min_messages:
        found.append(f"{evidence.messages} messages, fewer than {need.min_messages}")
    if evidence.messages and evidence.dmarc_pass * 100 < need.min_pass_rate * evidence.messages:
        rate = 100 * evidence.dmarc_pass / evidence.messages
        found.append(f"pass rate {rate:.2f}%, below {need.min_pass_rate:g}%")
    failing = [
        s
        for s in evidence.sources
        if s.messages * 100 >= need.major_source_share * evidence.messages
        and s.dmarc_pass * 100 < need.min_source_pass_rate * s.messages
    ]
    if failing:
        found.append(
            f"major sources below {need.min_source_pass_rate:g}%: "
            + ", ".join(
                f"{s.source_ip} ({100 * s.dmarc_pass / s.messages:.1f}% of {s.messages})"
                for s in failing
            )
        )
    return found


def _report_evidence_problems(
    request: ChangeRequest, items: Sequence[GateItem], ctx: GateContext
) -> list[Problem]:
    """A change that tightens DMARC p= must carry computed report evidence meeting the policy's
    threshold for its target (issue 14: a typed pass rate is whatever the analyst types)."""
    rules = ctx.policy.report_evidence
    if rules is None or request.is_emergency or ctx.emergency is not None:
        # Emergencies answer an incident (a spoofing wave); their post-hoc review judges them.
        return []
    if (request.id, request.sha256) in rules.grandfathered:
        return []
    problems: list[Problem] = []
    digest = dict(request.details).get("report_evidence", "")
    for item in items:
        tightened = tightened_policy(item)
        if tightened is None or tightened[1] not in rules.thresholds:
            continue
        domain, target = tightened
        need = rules.thresholds[target]
        if not digest:
            problems.append(
                Refused(
                    "report-evidence",
                    f"{domain} moves to p={target}, and {request.id} carries no report evidence: "
                    f"run `dmarcops reports evidence --client {request.client} --domain {domain} "
                    f"--days {need.min_days}` and put its hash in details.report_evidence",
                )
            )
            continue
        try:
            evidence = load_evidence(_repo_root(request), digest)
        except InputError as exc:
            problems.append(Refused("report-evidence", f"report evidence for {domain}: {exc}"))
            continue
        if (evidence.client, evidence.domain) != (request.client, domain):
            problems.append(
                Refused(
                    "report-evidence",
                    f"the report evidence is for {evidence.client} / {evidence.domain}, not "
                    f"{request.client} / {domain}",
                )
            )
            continue
        shortfalls = evidence_shortfalls(evidence, need, ctx.now)
        if shortfalls:
            problems.append(
                Refused(
                    "report-evidence",
                    f"{domain} may not move to p={target} on this evidence "
                    f"({evidence.sha256[:16]}, {evidence.since:%Y-%m-%d}..{evidence.until:%Y-%m-%d}): "
                    + "; ".join(shortfalls),
                )
            )
    return problems


# --- service tiers (issue 13 item 7) ------------------------------------------------------


def tier_refusals(client: ClientProfile, stage: Stage) -> list[Refused]:
    """A self-serve client is monitored and advised only: the MSP plans, reports drift and
    recommends (`dmarcops recommend`), but never approves or applies a change to its records,
    emergencies included (the client's own team makes them). Also asked by apply for a
    self-serve client's changes that no request covers, so the refusal names this rule."""
    if not client.self_serve or stage is Stage.PLAN:
        return []
    return [
        Refused(
            "self-serve-tier",
            f"{client.id} is on the self-serve tier (policy/clients/{client.id}.yaml "
            f"`tier: self-serve`): the MSP monitors and recommends, and does not make its changes; "
            f"send the recommendation (`dmarcops recommend --client {client.id}`) to the "
            "client's DNS team",
        )
    ]


def _tier_problems(request: ChangeRequest, ctx: GateContext) -> list[Problem]:
    return list(tier_refusals(ctx.client, ctx.stage))


# --- DKIM active-selector switch (issue 13 item 5) -----------------------------------------


def _dkim_switch_problems(request: ChangeRequest, ctx: GateContext) -> list[Problem]:
    """A signing provider switched to a selector receivers cannot find fails DKIM for every
    message: the new selector must be published and hold a valid key in live DNS, checked at
    approval and again at execution."""
    if request.type.value != DKIM_SWITCH or ctx.stage is Stage.PLAN:
        return []
    selector = dict(request.details).get("new_selector", "").strip()
    problems: list[Problem] = []
    for domain in dict.fromkeys(s.zone for s in request.covers):
        found = ctx.selector_checks.get((domain, selector))
        if found is None:
            problems.append(
                Refused(
                    "dkim-switch-unverified",
                    f"{selector}._domainkey.{domain} was not checked in live DNS: a dkim-switch "
                    "is judged only with the live answer",
                )
            )
        elif not found[0]:
            problems.append(
                Refused(
                    "dkim-switch-unpublished",
                    f"the new selector {selector} is not published and valid in live DNS "
                    f"({found[1]}); publish it first (a dkim-rotation request), then switch",
                )
            )
    return problems


# --- emergencies --------------------------------------------------------------------------------


def _deescalates(item: GateItem, ctx: GateContext) -> bool:
    facts: Sequence[Fact] = getattr(item, "facts", ())
    return bool(facts) and all(any(p.matches(f) for p in ctx.policy.deescalations) for f in facts)


def _emergency_problem(items: Sequence[GateItem], ctx: GateContext) -> Refused | None:
    """Seed: "The emergency that wasn't actually an emergency ... erodes the policy." An
    emergency must de-escalate or restore, or answer a declared incident."""
    emergency = ctx.emergency
    assert emergency is not None
    if emergency.incident:
        if ctx.policy.incident_reference.match(emergency.incident):
            return None
        return Refused(
            "emergency-incident",
            f"incident reference {emergency.incident!r} does not match the declared form "
            f"({ctx.policy.incident_reference.pattern}, policy/gate.yaml)",
        )
    tightening = [i for i in items if not (_deescalates(i, ctx) or ctx.restores(i))]
    if not tightening:
        return None
    shown = "; ".join(
        f"{i.name + '.' if i.name else ''}{i.zone} {i.type}: "
        + (", ".join(str(f) for f in getattr(i, "facts", ())) or "no facts")
        for i in tightening
    )
    return Refused(
        "emergency-not-deescalation",
        "an emergency may only de-escalate (policy towards none, pct down, removing a record) or "
        f"restore a value an earlier change record held; these changes do neither: {shown}. "
        "Declare the incident (--incident INC-...) or go through the normal approval chain",
    )


# --- time -----------------------------------------------------------------------------------


def _names_freeze(given: str, freeze: Freeze) -> bool:
    text = given.strip().lower()
    return bool(text) and text in {
        freeze.reason.strip().lower(),
        f"{freeze.start}..{freeze.end}",
        f"{freeze.start}",
    }


def _on_call_problem(request: ChangeRequest, rollback: Window, ctx: GateContext) -> str | None:
    """Why the request's on-call owner cannot cover the unwatched hours (None: they can)."""
    owner = ctx.roster.get(request.on_call)
    if owner is None or not owner.is_person:
        return f"{request.on_call!r}, named as on-call owner, is not an analyst on the roster"
    if _shadowing(owner, ctx):
        return (
            f"{owner.id} is shadowing until {owner.shadowing_until(ctx.policy.shadowing_days)} "
            "and cannot be on call alone"
        )
    calendar = ctx.client.calendar
    if calendar.on_call:
        tz = ZoneInfo(ctx.client.timezone)
        ends = rollback.end.astimezone(tz).date()
        rota = calendar.on_call_on(ends)
        if owner.id not in rota:
            return (
                f"{owner.id} is not {ctx.client.id}'s on-call owner on {ends}, when the rollback "
                f"window ends (the calendar names {', '.join(rota) or 'nobody'} that day)"
            )
    return None


@dataclass(frozen=True)
class _Timing:
    window: Window | None = None
    freeze_exception: str = ""
    on_call: str = ""
    problems: tuple[Problem, ...] = ()


def _timing(request: ChangeRequest, risk: RiskLevel, hours: int, ctx: GateContext) -> _Timing:
    """The change window, a freeze exception, on-call cover, or why not now (seed: windows,
    freezes, the "rollback window of zero" change: no one watching on a Friday afternoon)."""
    client = ctx.client
    freeze_exception = ""
    on_call = False
    # At most two exceptions, each granted once: a freeze named by the client's approval, and an
    # on-call owner covering the hours nobody is staffed.
    for _ in range(3):
        timing = check_apply_time(client, ctx.now, hours, risk, on_call=on_call)
        if timing.ok:
            return _Timing(timing.window, freeze_exception, request.on_call if on_call else "")
        freeze = timing.freeze
        if freeze is not None and not freeze_exception:
            given = request.client_approval
            if risk is RiskLevel.HIGH and given is not None and _names_freeze(given.freeze, freeze):
                client = replace(client, calendar=replace(client.calendar, freezes=()))
                freeze_exception = (
                    f"freeze exception: {freeze.start}..{freeze.end} ({freeze.reason}) knowingly "
                    f"overridden by {given.approver} ({given.reference})"
                )
                continue
            return _Timing(
                problems=(
                    Refused(
                        timing.rule,
                        f"{timing.reason}. During a freeze only an emergency, or a high-risk "
                        "change whose client approval names the freeze (client_approval.freeze), "
                        "passes",
                    ),
                )
            )
        if timing.coverable and not on_call:
            if not request.on_call:
                return _Timing(
                    problems=(
                        Refused(
                            timing.rule,
                            f"{timing.reason}. Unless the client's on-call owner covers it "
                            "(`on_call:` in the request, signed by its author)",
                        ),
                    )
                )
            problem = _on_call_problem(request, timing.rollback, ctx)
            if problem is not None:
                return _Timing(
                    problems=(Refused(timing.rule, timing.reason), Refused("on-call", problem))
                )
            on_call = True
            continue
        return _Timing(problems=(Refused(timing.rule, timing.reason),))
    raise AssertionError("unreachable: each exception is granted once")


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

    problems += _report_evidence_problems(request, items, ctx)
    problems += _tier_problems(request, ctx)
    problems += _dkim_switch_problems(request, ctx)

    chain = _chain(request, risk, items, ctx)
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
        problems += _approver_problems(request, risk, ctx)

    if ctx.stage is not Stage.PLAN:
        evidence, ignored, chain_problems = _approval_chain(request, risk, chain, approvals, ctx)
        if emergency is not None:
            # Seed: emergencies skip the approval wait; the post-hoc review replaces it. They must
            # still be emergencies.
            problem = _emergency_problem(items, replace(ctx, emergency=emergency))
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
            timing = _timing(request, risk, hours, ctx)
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


def _approver_problems(request: ChangeRequest, risk: RiskLevel, ctx: GateContext) -> list[Problem]:
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
    if _shadowing(approver, ctx) and risk > ctx.policy.shadow_may_approve:
        return [
            Refused(
                "shadowing-approver",
                f"{approver.id} is shadowing until "
                f"{approver.shadowing_until(ctx.policy.shadowing_days)} and may approve only "
                f"{ctx.policy.shadow_may_approve.label}-risk changes; this one is {risk.label}",
            )
        ]
    return []


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


def rollback_by_risk(portfolio: Portfolio, client_id: str) -> Mapping[RiskLevel, int]:
    """The rollback window per risk for this client: the portfolio's (policy/risk-rules.yaml),
    lengthened where the client's calendar says so."""
    return {
        **portfolio.rules.rollback_hours,
        **portfolio.clients[client_id].calendar.rollback_hours,
    }


def explain(decision: Decision) -> str:
    """One line per problem, for refusals."""
    head = f"{decision.request.id} ({decision.risk.label} risk)"
    return head + ": " + "; ".join(str(p) for p in decision.problems)
