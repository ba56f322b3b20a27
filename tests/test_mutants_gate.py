"""The one gate's conditions and records, as the operator sees them: emergencies, on-call cover,
the apply-time checks and what an allowed decision records. In process, on the example portfolio,
with the requests and approvals tests/test_gate_table.py builds. Found by mutation testing
(docs/mutation-testing.md, third run)."""

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
from pipeline.gate.requests import ChangeRequest, ClientApproval, RequestType
from pipeline.gate.roster import Roster, load_roster
from pipeline.load.calendar_model import OnCall
from pipeline.load.portfolio import ClientProfile, Portfolio, load_portfolio
from pipeline.model import Fact, RiskLevel, fact

NWH = "northwind-health"
ZONE = "northwind-health.example"
World = tuple[Portfolio, Roster]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    repo = copy_example(tmp_path_factory.mktemp("gate-mutants3"))
    return load_portfolio(repo), load_roster(repo)


@dataclass(frozen=True)
class FactItem:
    """A planned DNS change with its facts, as pipeline/plan/build.py hands it to the gate."""

    facts: tuple[Fact, ...] = ()
    risk: RiskLevel = RiskLevel.MEDIUM
    client: str = NWH
    zone: str = ZONE
    name: str = "_dmarc"
    type: str = "TXT"
    before: tuple[str, ...] = ()
    after: tuple[str, ...] = ()
    rollback_hours: int | None = None


LOOSER = fact("dmarc.p", "reject", "quarantine", direction="looser")
TIGHTER = fact("dmarc.p", "none", "reject", direction="stricter")
PCT_DOWN = fact("dmarc.pct", "100", "50", direction="decrease")


def approval(analyst: str, at: datetime) -> Approval:
    return sign(key(analyst), PLAN, "CR-0001-nwh", analyst, at, REQ_SHA)


def with_client(world: World, **changes: object) -> World:
    """The world with northwind-health's profile changed."""
    portfolio, roster = world
    clients = dict(portfolio.clients)
    clients[NWH] = replace(clients[NWH], **changes)  # type: ignore[arg-type]
    return replace(portfolio, clients=clients), roster


def with_calendar(world: World, **changes: object) -> World:
    client: ClientProfile = world[0].clients[NWH]
    return with_client(world, calendar=replace(client.calendar, **changes))  # type: ignore[arg-type]


def gate(
    world: World,
    stage: decide.Stage,
    items: list[FactItem] | list[Item],
    *,
    when: str | datetime = "in window",
    approvals: tuple[Approval, ...] = (),
    **request_fields: object,
) -> decide.Decision:
    """Judge CR-0001-nwh (jchen's, signed) at `stage`; jchen executes an apply."""
    portfolio, roster = world
    now = TIMES[when] if isinstance(when, str) else when
    request: ChangeRequest = replace(
        request_of(RequestType.OTHER, "none", now),
        **request_fields,  # type: ignore[arg-type]
    )
    extra: dict[str, object] = {"executor": "jchen"} if stage is decide.Stage.APPLY else {}
    ctx = decide.context(portfolio, NWH, stage, now, PLAN, roster, **extra)
    return decide.decide(request, items, list(approvals), ctx)


def rules(decision: decide.Decision) -> list[tuple[str, str]]:
    return [(p.rule, p.reason) for p in decide.refused(decision)]


# --- emergencies (conditions.emergency_problem, decide's emergency path) ------------------------


def test_an_emergency_that_loosens_skips_the_wait_for_a_review(world: World) -> None:
    # A medium change with no peer review: a normal request waits for one, an emergency does not.
    items = [FactItem((LOOSER,)), FactItem((PCT_DOWN,), name="_dmarc.shop")]
    normal = gate(world, decide.Stage.REVIEW, items)
    assert [p.role for p in decide.missing(normal)] == ["peer review"]
    emergency = gate(world, decide.Stage.REVIEW, items, emergency_reason="mail bouncing")
    assert emergency.allowed, emergency.problems
    assert emergency.emergency == decide.Emergency("mail bouncing", "")
    assert emergency.items == tuple(items)
    # The author's own sign-off is still needed: an unsigned emergency is missing its author.
    unsigned = gate(
        world, decide.Stage.REVIEW, items, emergency_reason="mail bouncing", signature=None
    )
    assert [p.role for p in unsigned.problems if isinstance(p, decide.Missing)] == ["author"]
    assert rules(unsigned) == []


TIGHTENS = (
    "an emergency may only de-escalate (policy towards none, pct down, removing a record) or "
    "restore a value an earlier change record held; these changes do neither: {shown}. Declare "
    "the incident (--incident INC-...) or go through the normal approval chain"
)


def test_an_emergency_that_tightens_is_refused_and_names_each_change(world: World) -> None:
    items = [
        FactItem((LOOSER,)),  # de-escalates: not listed
        FactItem((TIGHTER, PCT_DOWN), name="_dmarc.shop"),  # one fact of two tightens
        FactItem(name="", type="MX"),  # the apex, and no facts at all
    ]
    decision = gate(world, decide.Stage.REVIEW, items, emergency_reason="spoofing")
    shown = (
        "_dmarc.shop.northwind-health.example TXT: dmarc.p none->reject, dmarc.pct 100->50; "
        "northwind-health.example MX: no facts"
    )
    assert rules(decision) == [("emergency-not-deescalation", TIGHTENS.format(shown=shown))]
    # The refusal stands in for the approval wait: no sign-off is listed as missing.
    assert decide.missing(decision) == []


def test_an_emergency_may_put_back_what_an_earlier_record_held(world: World) -> None:
    portfolio, roster = world
    now = TIMES["in window"]
    request = replace(request_of(RequestType.OTHER, "none", now), emergency_reason="rollback")
    items = [FactItem((TIGHTER,)), FactItem((TIGHTER,), name="_dmarc.shop")]
    ctx = decide.context(
        portfolio,
        NWH,
        decide.Stage.REVIEW,
        now,
        PLAN,
        roster,
        restores=lambda item: item.name == "_dmarc",
    )
    (problem,) = decide.refused(decide.decide(request, items, [], ctx))
    assert "these changes do neither: _dmarc.shop.northwind-health.example TXT:" in problem.reason
    everything = replace(ctx, restores=lambda item: True)
    assert decide.decide(request, items, [], everything).allowed


@pytest.mark.parametrize("incident", ["INC-2041", "SEC-1"])
def test_a_declared_incident_lets_an_emergency_tighten(world: World, incident: str) -> None:
    decision = gate(
        world,
        decide.Stage.REVIEW,
        [FactItem((TIGHTER,))],
        emergency_reason="spoofing wave",
        incident=incident,
    )
    assert decision.allowed, decision.problems
    assert decision.emergency == decide.Emergency("spoofing wave", incident)


@pytest.mark.parametrize("incident", ["INC 2041", "inc-2041", "INC-2041x", "TICKET-1"])
def test_an_incident_reference_must_have_the_declared_form(world: World, incident: str) -> None:
    # Even for a change that only loosens: a declared incident is checked whatever it answers.
    decision = gate(
        world,
        decide.Stage.REVIEW,
        [FactItem((LOOSER,))],
        emergency_reason="spoofing wave",
        incident=incident,
    )
    assert rules(decision) == [
        (
            "emergency-incident",
            f"incident reference {incident!r} does not match the declared form "
            "(^(INC|PD|OPS|SEC)-[0-9]{1,10}$, policy/gate.yaml)",
        )
    ]


def test_an_emergency_at_apply_is_judged_without_the_clock(world: World) -> None:
    portfolio, roster = world
    now = TIMES["outside window"]
    request = request_of(RequestType.OTHER, "none", now)
    items = [FactItem((LOOSER,))]
    ctx = decide.context(portfolio, NWH, decide.Stage.APPLY, now, PLAN, roster, executor="jchen")
    normal = decide.decide(request, items, [approval("sokafor", now)], ctx)
    assert [p.rule for p in decide.refused(normal)] == ["outside-window"]
    # apply hands the declared emergency in the context (the request's own flag is not read at
    # apply): no window, no wait, and the decision records the emergency.
    declared = replace(ctx, emergency=decide.Emergency("mail bouncing", ""))
    emergency = decide.decide(request, items, [], declared)
    assert emergency.allowed, emergency.problems
    assert emergency.change_window is None
    assert emergency.emergency == decide.Emergency("mail bouncing", "")
    # A request marked as an emergency, applied without one declared, is judged as normal.
    marked = replace(request, emergency_reason="mail bouncing")
    assert [p.rule for p in decide.refused(decide.decide(marked, items, [], ctx))] == [
        "outside-window"
    ]
    # Still an emergency: it must still de-escalate.
    tight = decide.decide(request, [FactItem((TIGHTER,))], [], declared)
    assert [p.rule for p in decide.refused(tight)] == ["emergency-not-deescalation"]


# --- who applies (decide's apply stage) ---------------------------------------------------------


@pytest.mark.parametrize(("executor", "shown"), [("ghost", "'ghost'"), (None, "None")])
def test_an_executor_off_the_roster_may_not_apply(
    world: World, executor: str | None, shown: str
) -> None:
    portfolio, roster = world
    now = TIMES["in window"]
    request = request_of(RequestType.OTHER, "none", now)
    ctx = decide.context(portfolio, NWH, decide.Stage.APPLY, now, PLAN, roster, executor=executor)
    decision = decide.decide(request, [Item(RiskLevel.LOW)], [], ctx)
    assert rules(decision) == [("executor-not-on-roster", f"{shown} is not on the analyst roster")]
    assert decide.decide(
        request, [Item(RiskLevel.LOW)], [], replace(ctx, executor="sokafor")
    ).allowed


# --- on-call cover (conditions.time_problems, _on_call_problem: the Friday rule) ----------------

# Tuesday 09:00 in Chicago; a 12-hour rollback window ends at 21:00, after the staffed 07:00-20:00.
LATE = (
    "the 12 h rollback window would end outside staffed hours (Tue 2026-12-01 21:00 "
    "America/Chicago; staffed that day: 07:00-20:00): nobody would be watching when it closes"
)
UNLESS = ". Unless the client's on-call owner covers it (`on_call:` in the request, signed by its author)"


def late_change(
    world: World, when: str | datetime = "in window", **fields: object
) -> decide.Decision:
    """A reviewed medium change at `when` whose rollback window runs 12 hours."""
    now = TIMES[when] if isinstance(when, str) else when
    return gate(
        world,
        decide.Stage.APPLY,
        [FactItem(rollback_hours=12)],
        when=when,
        approvals=(approval("sokafor", now - timedelta(hours=1)),),
        **fields,
    )


def test_unwatched_hours_are_refused_unless_an_on_call_owner_is_named(world: World) -> None:
    refused = late_change(world)
    assert rules(refused) == [("unstaffed", LATE + UNLESS)]
    # Only the clock stands in the way: the merge path may queue it.
    assert decide.only_waiting_for_time(refused) and refused.on_call == ""


def test_the_on_call_owner_covers_it_and_the_decision_names_them(world: World) -> None:
    covered = late_change(world, on_call="mhara")
    assert covered.allowed, covered.problems
    assert covered.on_call == "mhara"
    assert covered.rollback_hours == 12
    window = covered.change_window
    assert window is not None and (window.start, window.end) == (
        datetime(2026, 12, 1, 14, 0, tzinfo=UTC),
        datetime(2026, 12, 1, 17, 0, tzinfo=UTC),
    )
    assert covered.freeze_exception == ""


def test_a_weekend_in_the_rollback_window_is_covered_the_same_way(world: World) -> None:
    thursday = datetime(2026, 12, 3, 15, 0, tzinfo=UTC)  # 09:00 in Chicago
    items = [FactItem(rollback_hours=48)]
    approvals = (approval("sokafor", thursday),)
    refused = gate(world, decide.Stage.APPLY, items, when=thursday, approvals=approvals)
    assert rules(refused) == [
        (
            "weekend",
            "the 48 h rollback window would run into the weekend (2026-12-05) and the client "
            "profile does not say weekends are covered" + UNLESS,
        )
    ]
    covered = gate(
        world, decide.Stage.APPLY, items, when=thursday, approvals=approvals, on_call="mhara"
    )
    assert covered.allowed and covered.on_call == "mhara"


@pytest.mark.parametrize(
    ("who", "why"),
    [
        ("ghost", "'ghost', named as on-call owner, is not an analyst on the roster"),
        ("dmarcops-bot", "'dmarcops-bot', named as on-call owner, is not an analyst on the roster"),
        (
            "sokafor",
            "sokafor is not northwind-health's on-call owner on 2026-12-01, when the rollback "
            "window ends (the calendar names mhara that day)",
        ),
    ],
)
def test_only_the_calendars_on_call_analyst_covers(world: World, who: str, why: str) -> None:
    decision = late_change(world, on_call=who)
    assert rules(decision) == [("unstaffed", LATE), ("on-call", why)]
    assert decision.on_call == ""
    # A refused owner is more than waiting for time.
    assert not decide.only_waiting_for_time(decision)


def test_the_rota_is_read_on_the_clients_day_the_rollback_window_ends(world: World) -> None:
    # The window ends at 21:00 on Tuesday in Chicago, 03:00 on Wednesday in UTC: Tuesday's owner.
    tuesday, wednesday = date(2026, 12, 1), date(2026, 12, 2)
    rota = (OnCall("mhara", until=tuesday), OnCall("sokafor", start=wednesday))
    shifts = with_calendar(world, on_call=rota)
    assert late_change(shifts, on_call="mhara").allowed
    assert rules(late_change(shifts, on_call="sokafor"))[1] == (
        "on-call",
        "sokafor is not northwind-health's on-call owner on 2026-12-01, when the rollback window "
        "ends (the calendar names mhara that day)",
    )
    nobody = with_calendar(world, on_call=(OnCall("mhara", until=date(2026, 11, 30)),))
    assert rules(late_change(nobody, on_call="mhara"))[1] == (
        "on-call",
        "mhara is not northwind-health's on-call owner on 2026-12-01, when the rollback window "
        "ends (the calendar names nobody that day)",
    )
    # A calendar without a rota: any analyst on the roster may cover.
    open_rota = with_calendar(world, on_call=())
    assert late_change(open_rota, on_call="sokafor").on_call == "sokafor"


def test_a_shadowing_analyst_cannot_be_on_call_alone(world: World) -> None:
    portfolio, roster = world
    started = TIMES["in window"].date() - timedelta(days=10)
    new = tuple(replace(a, start_date=started) if a.id == "mhara" else a for a in roster.analysts)
    decision = late_change((portfolio, replace(roster, analysts=new)), on_call="mhara")
    assert rules(decision) == [
        ("unstaffed", LATE),
        (
            "on-call",
            f"mhara is shadowing until {started + timedelta(days=30)} and cannot be on call alone",
        ),
    ]


def test_a_freeze_exception_and_on_call_cover_are_both_granted_and_recorded(world: World) -> None:
    # A high change in the freeze, named by the client's approval, whose rollback window also ends
    # after hours: both exceptions, one after the other.
    now = TIMES["in freeze"]
    given = ClientApproval(APPROVER, now - timedelta(days=1), "<ref>", freeze="2027-03-25")
    # 36 hours from Tuesday 09:00 is Wednesday 21:00 (the high risk's own window is 24 hours).
    items = [FactItem(risk=RiskLevel.HIGH, rollback_hours=36)]
    approvals = (approval("sokafor", now - timedelta(hours=1)),)
    fields: dict[str, object] = {"client_approval": given}
    late = gate(world, decide.Stage.APPLY, items, when="in freeze", approvals=approvals, **fields)
    assert [p.rule for p in decide.refused(late)] == ["unstaffed"]
    covered = gate(
        world,
        decide.Stage.APPLY,
        items,
        when="in freeze",
        approvals=approvals,
        on_call="mhara",
        **fields,
    )
    assert covered.allowed, covered.problems
    assert covered.on_call == "mhara"
    assert covered.freeze_exception == (
        "freeze exception: 2027-03-25..2027-04-05 (Quarter-end claims processing) knowingly "
        f"overridden by {APPROVER} (<ref>)"
    )
    # A medium change cannot name the freeze: only a high one with the client's approval may.
    medium = gate(
        world,
        decide.Stage.APPLY,
        [FactItem(risk=RiskLevel.MEDIUM, rollback_hours=36)],
        when="in freeze",
        approvals=approvals,
        on_call="mhara",
        **fields,
    )
    assert [p.rule for p in decide.refused(medium)] == ["freeze"]
    assert medium.freeze_exception == "" and medium.change_window is None


def test_a_rollback_window_running_into_a_freeze_is_refused_or_excepted(world: World) -> None:
    eve = datetime(2027, 3, 24, 14, 0, tzinfo=UTC)  # Wednesday 09:00 in Chicago, the day before
    items = [FactItem(risk=RiskLevel.HIGH, rollback_hours=24)]
    approvals = (approval("sokafor", eve - timedelta(hours=1)),)
    given = ClientApproval(APPROVER, eve - timedelta(days=1), "<ref>")
    refused = gate(
        world, decide.Stage.APPLY, items, when=eve, approvals=approvals, client_approval=given
    )
    reason = (
        "the 24 h rollback window would run into the change freeze 2027-03-25..2027-04-05 "
        "(Quarter-end claims processing). During a freeze only an emergency, or a high-risk "
        "change whose client approval names the freeze (client_approval.freeze), passes"
    )
    assert rules(refused) == [("freeze-rollback", reason)]
    named = replace(given, freeze="Quarter-end claims processing")
    excepted = gate(
        world, decide.Stage.APPLY, items, when=eve, approvals=approvals, client_approval=named
    )
    assert excepted.allowed, excepted.problems
    assert excepted.freeze_exception.startswith("freeze exception: 2027-03-25..2027-04-05")
