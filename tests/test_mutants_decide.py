"""The one gate's refusals, word for word where the operator acts on them (docs/threat-model.md
names the rules): the client approval a high-risk change needs, a freeze named by the client's
approval, and "only waiting for time", which lets the merge path queue a change. Found by
mutation testing (docs/mutation-testing.md)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta

import pytest
from portfolio import copy_example
from test_approvals import _Item as Item
from test_approvals import key
from test_gate_table import APPROVER, PLAN, REQ_SHA, TIMES, request_of

from pipeline.gate import decide
from pipeline.gate.approvals import Approval, sign
from pipeline.gate.requests import ClientApproval, RequestType
from pipeline.gate.roster import Role as AnalystRole
from pipeline.gate.roster import Roster, load_roster
from pipeline.load.gate_policy import PassRateThreshold
from pipeline.load.gate_policy import Role as ChainRole
from pipeline.load.portfolio import Portfolio, load_portfolio
from pipeline.model import RecordKind, RiskLevel
from pipeline.reports.evidence import Evidence, SourceCount

NWH = "northwind-health"
FREEZE_TEXT = (
    "inside Northwind Health's change freeze 2027-03-25..2027-04-05: Quarter-end claims "
    "processing. During a freeze only an emergency, or a high-risk change whose client approval "
    "names the freeze (client_approval.freeze), passes"
)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> tuple[Portfolio, Roster]:
    repo = copy_example(tmp_path_factory.mktemp("gate-mutants"))
    return load_portfolio(repo), load_roster(repo)


def judge(
    world: tuple[Portfolio, Roster],
    when: str | datetime,
    given: ClientApproval | None,
    risk: RiskLevel = RiskLevel.HIGH,
    peer: bool = True,
) -> decide.Decision:
    portfolio, roster = world
    now = TIMES[when] if isinstance(when, str) else when
    request = replace(request_of(RequestType.OTHER, "none", now), client_approval=given)
    approvals = (
        [sign(key("sokafor"), PLAN, "CR-0001-nwh", "sokafor", now - timedelta(hours=1), REQ_SHA)]
        if peer
        else []
    )
    ctx = decide.context(portfolio, NWH, decide.Stage.APPLY, now, PLAN, roster, executor="jchen")
    return decide.decide(request, [Item(risk)], approvals, ctx)


def client_reason(decision: decide.Decision) -> list[str]:
    return [p.reason for p in decide.missing(decision) if p.role == "client approval"]


def test_a_high_risk_change_without_client_approval_says_who_may_give_it(
    world: tuple[Portfolio, Roster],
) -> None:
    decision = judge(world, "in window", None)
    assert not decision.allowed
    reason = (
        "a high-risk change needs written approval from one of northwind-health's authorised "
        "approvers (dana.whitfield@northwind-health.example), recorded under `client_approval:` "
        "in CR-0001-nwh.yaml with approver, at (UTC) and reference. No answer is not an approval."
    )
    assert client_reason(decision) == [reason]
    assert decide.explain(decision) == f"CR-0001-nwh (high risk): client approval: {reason}"
    assert not decide.only_waiting_for_time(decision)


def test_a_client_without_listed_approvers_is_told_so(world: tuple[Portfolio, Roster]) -> None:
    portfolio, roster = world
    clients = dict(portfolio.clients)
    clients[NWH] = replace(clients[NWH], authorised_approvers=())
    decision = judge((replace(portfolio, clients=clients), roster), "in window", None)
    assert "authorised approvers (none listed in the client profile)" in client_reason(decision)[0]
    # Several approvers are listed in order, comma-separated.
    (dana,) = portfolio.clients[NWH].authorised_approvers
    second = replace(dana, email="Ann.Lee@northwind-health.example")
    clients[NWH] = replace(clients[NWH], authorised_approvers=(dana, second))
    decision = judge((replace(portfolio, clients=clients), roster), "in window", None)
    assert (
        "authorised approvers (ann.lee@northwind-health.example, "
        "dana.whitfield@northwind-health.example)"
    ) in client_reason(decision)[0]


def test_the_client_approval_must_come_from_a_listed_approver_with_a_reference(
    world: tuple[Portfolio, Roster],
) -> None:
    now = TIMES["in window"]
    stranger = ClientApproval("x@evil.example", now - timedelta(days=1), "<ref>")
    assert client_reason(judge(world, "in window", stranger)) == [
        "x@evil.example is not one of northwind-health's authorised approvers "
        "(dana.whitfield@northwind-health.example)"
    ]
    # The address is compared without case; the reference must say something.
    no_reference = ClientApproval(APPROVER.upper(), now - timedelta(days=1), "  ")
    assert client_reason(judge(world, "in window", no_reference)) == [
        "no message-id or ticket reference"
    ]


def test_the_client_approves_before_the_change_runs(world: tuple[Portfolio, Roster]) -> None:
    now = TIMES["in window"]
    later = ClientApproval(APPROVER, now + timedelta(days=1), "<ref>")
    assert client_reason(judge(world, "in window", later)) == [
        "it is dated 2026-12-02T15:00:00Z, after now (2026-12-01T15:00:00Z): the client approves "
        "before the change runs"
    ]
    # Given at this very moment counts.
    assert judge(world, "in window", ClientApproval(APPROVER, now, "<ref>")).allowed


@pytest.mark.parametrize(
    "named", ["  QUARTER-END claims processing ", "2027-03-25..2027-04-05", "2027-03-25"]
)
def test_a_freeze_is_named_by_its_reason_its_dates_or_its_first_day(
    world: tuple[Portfolio, Roster], named: str
) -> None:
    now = TIMES["in freeze"]
    given = ClientApproval(APPROVER, now - timedelta(days=1), "<ref>", freeze=named)
    decision = judge(world, "in freeze", given)
    assert decision.allowed, decision.problems
    assert decision.freeze_exception == (
        "freeze exception: 2027-03-25..2027-04-05 (Quarter-end claims processing) knowingly "
        f"overridden by {APPROVER} (<ref>)"
    )


@pytest.mark.parametrize("named", ["", "   ", "another freeze", "2027-04-05"])
def test_anything_else_does_not_name_the_freeze(
    world: tuple[Portfolio, Roster], named: str
) -> None:
    now = TIMES["in freeze"]
    given = ClientApproval(APPROVER, now - timedelta(days=1), "<ref>", freeze=named)
    decision = judge(world, "in freeze", given)
    assert [str(p) for p in decision.problems] == [f"{FREEZE_TEXT} [freeze]"]
    # Approvals are all there: only the calendar stands in the way, so the merge may queue it.
    assert decide.only_waiting_for_time(decision)


def test_waiting_for_time_means_nothing_else_is_missing(world: tuple[Portfolio, Roster]) -> None:
    time_only = judge(world, "outside window", None, risk=RiskLevel.MEDIUM)
    assert decide.only_waiting_for_time(time_only)
    also_unreviewed = judge(world, "outside window", None, risk=RiskLevel.MEDIUM, peer=False)
    assert [type(p).__name__ for p in also_unreviewed.problems] == ["Missing", "Refused"]
    assert not decide.only_waiting_for_time(also_unreviewed)
    first, second = (str(p) for p in also_unreviewed.problems)
    assert decide.explain(also_unreviewed) == f"CR-0001-nwh (medium risk): {first}; {second}"
    allowed = judge(world, "in window", None, risk=RiskLevel.MEDIUM)
    assert allowed.allowed and not decide.only_waiting_for_time(allowed)
    assert decide.chain_labels(allowed) == ("author", "peer review")
    assert decide.chain_labels(judge(world, "in window", None)) == (
        "author",
        "peer review",
        "client approval",
    )


def test_problems_print_as_people_read_them() -> None:
    assert str(decide.Missing("peer review", "needed")) == "peer review: needed"
    assert str(decide.Refused("freeze", "inside the freeze")) == "inside the freeze [freeze]"


# --- report evidence (policy/gate.yaml `report_evidence.thresholds`) at its boundaries -----------

NEED = PassRateThreshold(
    min_pass_rate=98.0,
    min_days=14,
    min_messages=1000,
    max_age_days=7,
    major_source_share=10.0,
    min_source_pass_rate=95.0,
)
UNTIL = datetime(2026, 11, 20, tzinfo=UTC)


def evidence(
    messages: int = 1000, passing: int = 980, sources: tuple[SourceCount, ...] = ()
) -> Evidence:
    return Evidence(
        sha256="ab" * 32,
        client=NWH,
        domain="northwind-health.example",
        since=UNTIL - timedelta(days=14),
        until=UNTIL,
        reports=20,
        messages=messages,
        dmarc_pass=passing,
        sources=sources,
    )


def test_evidence_exactly_at_every_threshold_suffices() -> None:
    # 14 days, 1000 messages, 98.00 %, ended 7 days ago; a source of exactly 10 % of the mail
    # (major) passing exactly 95 %.
    major = SourceCount("192.0.2.1", 100, 95)
    now = UNTIL + timedelta(days=7)
    assert decide.evidence_shortfalls(evidence(sources=(major,)), NEED, now) == []


def test_evidence_just_past_every_threshold_says_each_shortfall() -> None:
    failing = SourceCount("192.0.2.1", 100, 94)
    minor = SourceCount("192.0.2.9", 99, 0)  # 9.9 % of 999: not a major source
    short = replace(evidence(999, 978, (failing, minor)), since=UNTIL - timedelta(days=13))
    now = UNTIL + timedelta(days=7, seconds=1)
    assert decide.evidence_shortfalls(short, NEED, now) == [
        "it covers 13.0 days, fewer than 14",
        "it is stale: its period ended 2026-11-20, 7 days ago (at most 7)",
        "999 messages, fewer than 1000",
        "pass rate 97.90%, below 98%",
        "major sources below 95%: 192.0.2.1 (94.0% of 100)",
    ]


def test_evidence_from_the_future_and_several_failing_sources() -> None:
    a, b = SourceCount("192.0.2.1", 500, 400), SourceCount("192.0.2.2", 500, 450)
    found = decide.evidence_shortfalls(
        evidence(1000, 985, (a, b)), NEED, UNTIL - timedelta(hours=1)
    )
    assert found == [
        "its period ends 2026-11-20 00:00, after now",
        "major sources below 95%: 192.0.2.1 (80.0% of 500), 192.0.2.2 (90.0% of 500)",
    ]


def test_a_rate_just_below_a_threshold_is_never_shown_at_it() -> None:
    """1899 of 2000 (94.95 %) is refused below 95 %: rounded to one place it read "95.0%" in
    "below 95%". Where rounding reaches the threshold the rate is rounded down instead; elsewhere
    it is rounded as before (97.897 % is "97.90%" in the test above)."""
    now = UNTIL + timedelta(days=1)
    overall = evidence(100_000, 97_999)  # 97.999 %: rounded, "98.00%"
    assert decide.evidence_shortfalls(overall, NEED, now) == ["pass rate 97.99%, below 98%"]
    source = evidence(20_000, 19_600, (SourceCount("192.0.2.1", 2000, 1899),))
    assert decide.evidence_shortfalls(source, NEED, now) == [
        "major sources below 95%: 192.0.2.1 (94.9% of 2000)"
    ]


# --- peer approvals ------------------------------------------------------------------------


def review(
    world: tuple[Portfolio, Roster], approvals: list[Approval], author_signed: bool = True
) -> decide.Decision:
    portfolio, roster = world
    now = TIMES["in window"]
    request = request_of(RequestType.OTHER, "none", now)
    if not author_signed:
        request = replace(request, signature=None)
    ctx = decide.context(portfolio, NWH, decide.Stage.REVIEW, now, PLAN, roster, executor="jchen")
    return decide.decide(request, [Item(RiskLevel.MEDIUM)], approvals, ctx)


def peer_approval(analyst: str, at: datetime, plan: str = PLAN) -> Approval:
    return sign(key(analyst), plan, "CR-0001-nwh", analyst, at, REQ_SHA)


def test_an_approval_counts_from_the_moment_it_is_given(world: tuple[Portfolio, Roster]) -> None:
    now = TIMES["in window"]
    assert review(world, [peer_approval("sokafor", now)]).allowed
    later = review(world, [peer_approval("sokafor", now + timedelta(minutes=1))])
    (ignored,) = later.ignored
    assert ignored.startswith("approval by sokafor")
    assert ignored.endswith(
        ": it is dated 2026-12-01T15:01:00Z, after now (2026-12-01T15:00:00Z): an approval "
        "counts from when it was given"
    )
    assert [p.role for p in decide.missing(later)] == ["peer review"]


def test_an_approval_of_another_plan_or_by_the_author_does_not_count(
    world: tuple[Portfolio, Roster],
) -> None:
    now = TIMES["in window"]
    other_plan = review(world, [peer_approval("sokafor", now, plan="f0" * 32)])
    assert not other_plan.allowed
    (ignored,) = other_plan.ignored
    assert ignored.endswith(
        ": it approves plan f0f0f0f0f0f0f0f0, not this plan e5e5e5e5e5e5e5e5: the plan changed "
        "after the review, so it needs a new one"
    )
    (own,) = review(world, [peer_approval("jchen", now)]).ignored
    assert own.startswith("approval by jchen")
    assert own.endswith(
        ": the author cannot review their own change (seed: a self-review preserves all the "
        "same blind spots)"
    )


def test_an_unsigned_request_has_no_author(world: tuple[Portfolio, Roster]) -> None:
    now = TIMES["in window"]
    decision = review(world, [peer_approval("sokafor", now)], author_signed=False)
    assert [p.role for p in decide.missing(decision)] == ["author"]
    assert decide.missing(decision)[0].reason.startswith("author's signature: ")


def test_the_record_names_the_author_and_the_earliest_review(
    world: tuple[Portfolio, Roster],
) -> None:
    now = TIMES["in window"]
    first, again = now - timedelta(hours=2), now - timedelta(hours=1)
    decision = review(world, [peer_approval("sokafor", again), peer_approval("sokafor", first)])
    assert decision.allowed
    author, peer = decision.evidence
    request = decision.request
    assert request.signature is not None
    assert (author.role, author.who, author.at, author.reference, author.signature) == (
        "author",
        "jchen",
        request.signature.signed_at,
        "CR-0001-nwh.yaml",
        request.signature.signature,
    )
    assert (peer.role, peer.who, peer.at, peer.reference) == (
        "peer review",
        "sokafor",
        first,
        "signed",
    )
    assert peer.signature and not peer.simulated


def test_a_missing_review_lists_the_approvals_that_do_not_count(
    world: tuple[Portfolio, Roster],
) -> None:
    decision = review(world, [peer_approval("jchen", TIMES["in window"])])
    assert [str(p) for p in decision.problems] == [
        "peer review: an approval of this plan (e5e5e5e5e5e5e5e5) for CR-0001-nwh by a roster "
        "analyst other than the author jchen (`dmarcops approve --request CR-0001-nwh ...`)\n"
        "    does not count: approval by jchen: the author cannot review their own change "
        "(seed: a self-review preserves all the same blind spots)"
    ]


def test_an_approval_that_does_not_count_names_its_file(world: tuple[Portfolio, Roster]) -> None:
    # Read from changes/approvals/, an approval names its file; made in code (above) it has none,
    # and the message then shows no empty brackets.
    approval = replace(
        peer_approval("jchen", TIMES["in window"]), reference="changes/approvals/jchen.json"
    )
    (ignored,) = review(world, [approval]).ignored
    assert ignored.startswith("approval by jchen (changes/approvals/jchen.json): the author ")


def test_the_authors_own_approval_of_a_low_change_is_simply_not_needed(
    world: tuple[Portfolio, Roster],
) -> None:
    portfolio, roster = world
    now = TIMES["in window"]
    ctx = decide.context(portfolio, NWH, decide.Stage.REVIEW, now, PLAN, roster, executor="jchen")
    request = request_of(RequestType.OTHER, "none", now)
    low = decide.decide(request, [Item(RiskLevel.LOW)], [peer_approval("jchen", now)], ctx)
    assert low.allowed and low.ignored == ()
    assert [e.role for e in low.evidence] == ["author"]


def test_an_author_off_the_roster_proposed_nothing(world: tuple[Portfolio, Roster]) -> None:
    portfolio, roster = world
    now = TIMES["in window"]
    request = replace(request_of(RequestType.OTHER, "none", now), author="ghost")
    ctx = decide.context(portfolio, NWH, decide.Stage.REVIEW, now, PLAN, roster, executor="jchen")
    decision = decide.decide(request, [Item(RiskLevel.LOW)], [], ctx)
    assert [str(p) for p in decide.missing(decision)] == [
        "author: 'ghost' is not on the analyst roster, so nobody accountable proposed this change"
    ]


# --- policy items (the second mutation run) ----------------------------------------------------


@dataclass(frozen=True)
class PolicyItem:
    """An edit of a file under policy/, as the plan lists it (pipeline/plan/build.py)."""

    risk: RiskLevel = RiskLevel.LOW
    kind: RecordKind = RecordKind.POLICY
    client: str = ""
    zone: str = "policy"
    name: str = "policy/gate.yaml"
    type: str = "FILE"
    before: tuple[str, ...] = ("sha256:aa",)
    after: tuple[str, ...] = ("sha256:bb",)


def test_a_policy_edit_is_judged_at_the_policys_own_risk_with_its_sign_offs(
    world: tuple[Portfolio, Roster],
) -> None:
    portfolio, roster = world
    now = TIMES["in window"]
    request = request_of(RequestType.OTHER, "none", now)
    ctx = decide.context(portfolio, NWH, decide.Stage.PLAN, now, PLAN, roster)
    policy_edit = decide.decide(request, [PolicyItem()], [], ctx)
    record_edit = decide.decide(request, [Item(RiskLevel.LOW)], [], ctx)
    # policy/gate.yaml: policy_change risk high, needs author and lead.
    assert (policy_edit.risk, record_edit.risk) == (RiskLevel.HIGH, RiskLevel.LOW)
    # The policy's sign-offs come on top of the high-risk chain, not instead of it.
    assert decide.chain_labels(policy_edit) == (
        "author",
        "peer review",
        "client approval",
        "lead",
    )
    assert decide.chain_labels(record_edit) == ("author",)


@dataclass(frozen=True)
class RejectItem:
    """A DMARC change to p=reject, whose rule asks for a 72-hour rollback window."""

    risk: RiskLevel = RiskLevel.LOW
    rollback_hours: int | None = 72
    client: str = NWH
    zone: str = "northwind-health.example"
    name: str = "_dmarc"
    type: str = "TXT"
    before: tuple[str, ...] = ()
    after: tuple[str, ...] = ()


def test_the_rollback_window_is_the_longest_any_change_asks_for(
    world: tuple[Portfolio, Roster],
) -> None:
    portfolio, roster = world
    now = TIMES["in window"]
    request = request_of(RequestType.OTHER, "none", now)
    ctx = decide.context(portfolio, NWH, decide.Stage.PLAN, now, PLAN, roster)
    table = ctx.rollback_by_risk[RiskLevel.LOW]
    assert table < 72
    assert decide.decide(request, [RejectItem()], [], ctx).rollback_hours == 72
    assert decide.decide(request, [RejectItem(rollback_hours=None)], [], ctx).rollback_hours == (
        table
    )


# --- who may approve (the approve stage) -------------------------------------------------------


def approving(
    world: tuple[Portfolio, Roster], approver: str, risk: RiskLevel, roster: Roster | None = None
) -> list[tuple[str, str]]:
    """The refusals `dmarcops approve` gives `approver` for a change of `risk` by jchen."""
    portfolio, base = world
    now = TIMES["in window"]
    request = request_of(RequestType.OTHER, "none", now)
    ctx = decide.context(
        portfolio, NWH, decide.Stage.APPROVE, now, PLAN, roster or base, approver=approver
    )
    decision = decide.decide(request, [Item(risk)], [], ctx)
    return [(p.rule, p.reason) for p in decide.refused(decision)]


def test_an_approver_off_the_roster_is_refused(world: tuple[Portfolio, Roster]) -> None:
    assert approving(world, "ghost", RiskLevel.LOW) == [
        ("approver-not-on-roster", "'ghost' is not on the analyst roster")
    ]


def test_the_author_approves_only_their_own_low_risk_change(
    world: tuple[Portfolio, Roster],
) -> None:
    assert approving(world, "jchen", RiskLevel.LOW) == []
    assert approving(world, "jchen", RiskLevel.MEDIUM) == [
        (
            "author-approves-own",
            "jchen wrote CR-0001-nwh: the author cannot review it (the peer review is what "
            "catches the mistakes the author missed)",
        )
    ]
    assert approving(world, "sokafor", RiskLevel.MEDIUM) == []


def test_a_shadowing_analyst_approves_only_low_risk(world: tuple[Portfolio, Roster]) -> None:
    shadowing, until = shadowing_sokafor(world[1])
    assert approving(world, "sokafor", RiskLevel.LOW, shadowing) == []
    assert approving(world, "sokafor", RiskLevel.MEDIUM, shadowing) == [
        (
            "shadowing-approver",
            f"sokafor is shadowing until {until} and may approve only low-risk changes; this "
            "one is medium",
        )
    ]


def shadowing_sokafor(roster: Roster) -> tuple[Roster, date]:
    """The roster with sokafor in their first 30 days; and the day their shadowing ends."""
    started = TIMES["in window"].date() - timedelta(days=10)
    new = tuple(replace(a, start_date=started) if a.id == "sokafor" else a for a in roster.analysts)
    return replace(roster, analysts=new), started + timedelta(days=30)


def test_a_shadowing_analysts_review_counts_only_for_a_low_change(
    world: tuple[Portfolio, Roster],
) -> None:
    portfolio, base = world
    roster, until = shadowing_sokafor(base)
    now = TIMES["in window"]
    request = request_of(RequestType.OTHER, "none", now)
    ctx = decide.context(portfolio, NWH, decide.Stage.REVIEW, now, PLAN, roster, executor="jchen")
    approval = [peer_approval("sokafor", now)]
    low = decide.decide(request, [Item(RiskLevel.LOW)], approval, ctx)
    # A low change needs no peer: the approval is neither evidence nor a problem.
    assert low.allowed and low.ignored == ()
    assert [e.role for e in low.evidence] == ["author"]
    medium = decide.decide(request, [Item(RiskLevel.MEDIUM)], approval, ctx)
    (ignored,) = medium.ignored
    assert ignored.endswith(
        f": sokafor is shadowing until {until} and may approve only low-risk changes"
    )
    # A counted review is recorded as signed, not simulated.
    counted = decide.decide(request, [Item(RiskLevel.MEDIUM)], approval, replace(ctx, roster=base))
    assert [(e.role, e.simulated) for e in counted.evidence] == [
        ("author", False),
        ("peer review", False),
    ]


LEAD_RULE = (
    "needs the approval of a lead ({leads}), other than the author: policy edits, and the "
    "medium/high changes of analysts still shadowing"
)


def lead_reasons(decision: decide.Decision) -> list[str]:
    return [p.reason for p in decide.missing(decision) if p.role == "lead"]


def test_a_missing_lead_says_which_rule_asked_for_one_and_who_the_leads_are(
    world: tuple[Portfolio, Roster],
) -> None:
    portfolio, roster = world
    now = TIMES["in window"]
    request = request_of(RequestType.OTHER, "none", now)
    ctx = decide.context(portfolio, NWH, decide.Stage.REVIEW, now, PLAN, roster, executor="jchen")
    policy = decide.decide(request, [PolicyItem()], [], ctx)
    assert lead_reasons(policy) == ["a policy change " + LEAD_RULE.format(leads="mhara")]
    # mhara is the lead: their approval is the lead's.
    signed = decide.decide(request, [PolicyItem()], [peer_approval("mhara", now)], ctx)
    assert lead_reasons(signed) == []
    # With no lead on the roster it says so.
    no_leads = tuple(replace(a, role=AnalystRole.ANALYST) for a in roster.analysts)
    nobody = decide.decide(
        request, [PolicyItem()], [], replace(ctx, roster=replace(roster, analysts=no_leads))
    )
    assert lead_reasons(nobody) == [
        "a policy change " + LEAD_RULE.format(leads="none on the roster")
    ]
    # Several leads are listed, comma-separated.
    two_leads = tuple(
        replace(a, role=AnalystRole.LEAD) if a.id == "sokafor" else a for a in roster.analysts
    )
    both_leads = decide.decide(
        request, [PolicyItem()], [], replace(ctx, roster=replace(roster, analysts=two_leads))
    )
    assert lead_reasons(both_leads) == [
        "a policy change " + LEAD_RULE.format(leads="mhara, sokafor")
    ]
    # Author and executor both shadowing: both are named.
    started = now.date() - timedelta(days=5)
    new = tuple(
        replace(a, start_date=started) if a.id in ("jchen", "sokafor") else a
        for a in roster.analysts
    )
    both = replace(ctx, roster=replace(roster, analysts=new), executor="sokafor")
    shadowed = decide.decide(request, [Item(RiskLevel.MEDIUM)], [], both)
    assert lead_reasons(shadowed) == [
        "a medium-risk change by jchen and sokafor (shadowing) " + LEAD_RULE.format(leads="mhara")
    ]
    # A policy whose own chain names the lead.
    chains = {**ctx.policy.chains, RiskLevel.MEDIUM: (ChainRole.AUTHOR, ChainRole.LEAD)}
    own = replace(ctx, policy=replace(ctx.policy, chains=chains))
    assert lead_reasons(decide.decide(request, [Item(RiskLevel.MEDIUM)], [], own)) == [
        "this change " + LEAD_RULE.format(leads="mhara")
    ]


def test_a_missing_review_lists_every_approval_that_does_not_count(
    world: tuple[Portfolio, Roster],
) -> None:
    now = TIMES["in window"]
    decision = review(
        world, [peer_approval("jchen", now), peer_approval("sokafor", now, plan="f0" * 32)]
    )
    (peer,) = decide.missing(decision)
    assert peer.reason.endswith(
        "(`dmarcops approve --request CR-0001-nwh ...`)\n"
        "    does not count: approval by jchen: the author cannot review their own change "
        "(seed: a self-review preserves all the same blind spots)\n"
        "    does not count: approval by sokafor: it approves plan f0f0f0f0f0f0f0f0, not this "
        "plan e5e5e5e5e5e5e5e5: the plan changed after the review, so it needs a new one"
    )


def test_the_client_approval_is_recorded_with_who_when_and_the_reference(
    world: tuple[Portfolio, Roster],
) -> None:
    given = ClientApproval(APPROVER, TIMES["in window"] - timedelta(days=1), "<ref@x>")
    decision = judge(world, "in window", given)
    assert decision.allowed
    client = decision.evidence[-1]
    assert (client.role, client.who, client.at, client.reference) == (
        "client approval",
        APPROVER,
        given.at,
        "<ref@x>",
    )


def test_a_client_approval_whose_stored_mail_fails_its_check_is_missing(
    world: tuple[Portfolio, Roster],
) -> None:
    # The DKIM-verified case needs a name server (tests/test_evidence.py); a mail that is not
    # a stored one fails before any lookup.
    eml = "changes/evidence/missing.eml"
    given = ClientApproval(APPROVER, TIMES["in window"] - timedelta(days=1), "<ref@x>", eml=eml)
    decision = judge(world, "in window", given)
    assert not decision.allowed
    assert [(p.role, p.reason) for p in decide.missing(decision)] == [
        ("client approval", f"{eml} is not a stored e-mail (changes/evidence/<sha256>.eml)")
    ]
    assert [e.role for e in decision.evidence] == ["author", "peer review"]
    # Beside another missing sign-off, both are listed.
    alone = judge(world, "in window", given, peer=False)
    assert [p.role for p in decide.missing(alone)] == ["peer review", "client approval"]


def test_a_change_allowed_now_records_its_window_and_no_on_call_cover(
    world: tuple[Portfolio, Roster],
) -> None:
    now = TIMES["in window"]
    decision = judge(world, "in window", ClientApproval(APPROVER, now, "<ref>"))
    assert decision.allowed
    assert decision.change_window is not None and decision.change_window.contains(now)
    assert decision.on_call == ""


# --- what the request claims (decide() itself) ---------------------------------------------------


def test_a_request_may_ask_for_more_risk_never_less_and_only_for_its_client(
    world: tuple[Portfolio, Roster],
) -> None:
    portfolio, roster = world
    now = TIMES["in window"]
    ctx = decide.context(portfolio, NWH, decide.Stage.PLAN, now, PLAN, roster)
    request = request_of(RequestType.OTHER, "none", now)

    def plan(**claims: object) -> decide.Decision:
        return decide.decide(replace(request, **claims), [Item(RiskLevel.MEDIUM)], [], ctx)

    below = plan(requested_risk=RiskLevel.LOW)
    assert [(p.rule, p.reason) for p in decide.refused(below)] == [
        (
            "requested-risk-below-computed",
            'CR-0001-nwh asks for low risk but its changes are medium (seed: the "this is '
            'routine" misclassification)',
        )
    ]
    assert below.risk is RiskLevel.MEDIUM
    same = plan(requested_risk=RiskLevel.MEDIUM)
    assert same.allowed and same.risk is RiskLevel.MEDIUM
    above = plan(requested_risk=RiskLevel.HIGH)
    assert above.allowed and above.risk is RiskLevel.HIGH
    other = plan(client="contoso-retail")
    assert [(p.rule, p.reason) for p in decide.refused(other)] == [
        ("request-client", "CR-0001-nwh is for client contoso-retail, not northwind-health")
    ]
