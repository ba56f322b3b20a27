"""The gate's conditions besides the approval chain (pipeline.gate.decide): pass-rate evidence for
a tightened DMARC policy, service tiers, the DKIM selector of a switch, emergencies, and time
(change windows, freezes, weekends, staffed hours and on-call cover).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from zoneinfo import ZoneInfo

from pipeline.errors import InputError
from pipeline.gate.approval_chain import is_shadowing
from pipeline.gate.decision import (
    DKIM_SWITCH,
    GateContext,
    GateItem,
    Problem,
    Refused,
    Stage,
    repo_root,
)
from pipeline.gate.requests import ChangeRequest
from pipeline.gate.windows import Window, check_apply_time
from pipeline.load.calendar_model import Freeze
from pipeline.load.gate_policy import PassRateThreshold
from pipeline.load.portfolio import ClientProfile
from pipeline.model import Fact, RiskLevel
from pipeline.reports.evidence import Evidence, load_evidence

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
        rate = percent_below(evidence.dmarc_pass, evidence.messages, 2, need.min_pass_rate)
        found.append(f"pass rate {rate}%, below {need.min_pass_rate:g}%")
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
                f"{s.source_ip} "
                f"({percent_below(s.dmarc_pass, s.messages, 1, need.min_source_pass_rate)}% "
                f"of {s.messages})"
                for s in failing
            )
        )
    return found


def percent_below(part: int, whole: int, decimals: int, threshold: float) -> str:
    """100 * part / whole to `decimals` places, for a rate refused as below `threshold`: rounded
    as usual, except where rounding would reach the threshold, which is then rounded down (1899
    of 2000 read "95.0%" in "below 95%"; it reads "94.9%")."""
    shown = f"{100 * part / whole:.{decimals}f}"
    if float(shown) < threshold:
        return shown
    scaled = part * 100 * 10**decimals // whole
    whole_part, fraction = divmod(scaled, 10**decimals)
    return f"{whole_part}.{fraction:0{decimals}d}" if decimals else str(whole_part)


def report_evidence_problems(
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
            evidence = load_evidence(repo_root(request), digest)
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


def tier_problems(request: ChangeRequest, ctx: GateContext) -> list[Problem]:
    return list(tier_refusals(ctx.client, ctx.stage))


# --- DKIM active-selector switch (issue 13 item 5) -----------------------------------------


def dkim_switch_problems(request: ChangeRequest, ctx: GateContext) -> list[Problem]:
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


def emergency_problem(items: Sequence[GateItem], ctx: GateContext) -> Refused | None:
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
    if is_shadowing(owner, ctx):
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
class Timing:
    window: Window | None = None
    freeze_exception: str = ""
    on_call: str = ""
    problems: tuple[Problem, ...] = ()


def time_problems(request: ChangeRequest, risk: RiskLevel, hours: int, ctx: GateContext) -> Timing:
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
            return Timing(timing.window, freeze_exception, request.on_call if on_call else "")
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
            return Timing(
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
                return Timing(
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
                return Timing(
                    problems=(Refused(timing.rule, timing.reason), Refused("on-call", problem))
                )
            on_call = True
            continue
        return Timing(problems=(Refused(timing.rule, timing.reason),))
    raise AssertionError("unreachable: each exception is granted once")
