"""The one gate's conditions and records, as the operator sees them: emergencies, on-call cover,
the apply-time checks and what an allowed decision records. In process, on the example portfolio,
with the requests and approvals tests/test_gate_table.py builds. Found by mutation testing
(docs/mutation-testing.md, third run)."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import shutil
import socket
import struct
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path

import dkim
import pytest
import test_reports_gate as reports_gate
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.asymmetric.ec import SECP256R1, generate_private_key
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from dns_server import NamedServer
from portfolio import REPO, copy_example
from signing import KEYS
from test_approvals import _Item as Item
from test_approvals import author_signature, key
from test_gate_table import APPROVER, PLAN, REQ_SHA, TIMES, request_of

from pipeline.diff.context import ScheduledSelector
from pipeline.errors import EXIT_GATE, GateRefused, InputError
from pipeline.gate import decide
from pipeline.gate.approvals import (
    Approval,
    ExcludingAnalysts,
    PlannedChange,
    SignedApprovalFiles,
    hash_of_changes,
    load_plan_file,
    sign,
    verify,
    write_approval,
)
from pipeline.gate.authoring import new_request, next_request_id, sign_request
from pipeline.gate.coverage import Coverage, check_requested_risk, cover
from pipeline.gate.evidence import dns_txt, parse_mail, store_eml, verify_dkim
from pipeline.gate.identity import (
    generate_key,
    load_private_key,
    load_signer,
    public_key_text,
    signing_bytes,
    verify_signature,
)
from pipeline.gate.manual import (
    ManualPlan,
    approve,
    judge,
    manual_items,
    manual_plan,
    manual_plan_hash,
)
from pipeline.gate.requests import (
    ChangeRequest,
    ClientApproval,
    RequestSignature,
    RequestType,
    read_signature,
    signature_path,
    signature_refusal,
)
from pipeline.gate.roster import Role as AnalystRole
from pipeline.gate.roster import Roster, load_roster
from pipeline.gate.templates import load_templates
from pipeline.gate.windows import next_window
from pipeline.live.dns import Nameservers
from pipeline.load.calendar_model import OnCall
from pipeline.load.gate_policy import PassRateThreshold
from pipeline.load.portfolio import ClientProfile, Portfolio, load_portfolio
from pipeline.load.request_files import Selector
from pipeline.model import Fact, RecordKind, RiskLevel, fact
from pipeline.reports.evidence import Evidence, SourceCount, write_evidence

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
    # Before apply nothing about the clock is decided or recorded.
    assert (emergency.change_window, emergency.freeze_exception, emergency.on_call) == (
        None,
        "",
        "",
    )
    # The author's own sign-off is still needed: an unsigned emergency is missing its author.
    unsigned = gate(
        world, decide.Stage.REVIEW, items, emergency_reason="mail bouncing", signature=None
    )
    assert [p.role for p in unsigned.problems if isinstance(p, decide.Missing)] == ["author"]
    assert rules(unsigned) == []


def test_an_emergency_rollback_request_is_an_emergency_without_a_stated_reason(
    world: World,
) -> None:
    # The emergency-rollback type is an emergency by itself; the reason it records is then empty.
    decision = gate(
        world, decide.Stage.REVIEW, [FactItem((LOOSER,))], type=RequestType.EMERGENCY_ROLLBACK
    )
    assert decision.allowed and decision.emergency == decide.Emergency("", "")


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


def test_an_emergency_change_without_facts_is_shown_as_such(world: World) -> None:
    # A gate item need not carry facts (pipeline.gate.decision.GateItem): it de-escalates nothing.
    decision = gate(world, decide.Stage.REVIEW, [Item(RiskLevel.LOW)], emergency_reason="x")
    shown = "_dmarc.northwind-health.example TXT: no facts"
    assert rules(decision) == [("emergency-not-deescalation", TIGHTENS.format(shown=shown))]


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


@pytest.mark.parametrize(
    "incident",
    ["INC 2041", "inc-2041", "INC-2041x", "TICKET-1"],
    ids=["space", "lower-case", "trailing-letter", "other-prefix"],
)
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


@pytest.mark.parametrize(
    ("executor", "shown"), [("ghost", "'ghost'"), (None, "None")], ids=["ghost", "none"]
)
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


def test_an_on_call_owner_named_but_not_needed_is_not_recorded(world: World) -> None:
    # Four hours from Tuesday 09:00 end at 13:00, watched: the cover was not used.
    now = TIMES["in window"]
    decision = gate(
        world,
        decide.Stage.APPLY,
        [FactItem()],
        approvals=(approval("sokafor", now),),
        on_call="mhara",
    )
    assert decision.allowed and decision.on_call == ""


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
    ids=["off-roster", "automation", "not-on-rota"],
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
    # Two on call that day: both are named.
    pair = with_calendar(world, on_call=(OnCall("mhara"), OnCall("jchen", start=tuesday)))
    assert rules(late_change(pair, on_call="sokafor"))[1] == (
        "on-call",
        "sokafor is not northwind-health's on-call owner on 2026-12-01, when the rollback window "
        "ends (the calendar names mhara, jchen that day)",
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


# --- service tiers and the DKIM selector switch (conditions.tier_problems, dkim_switch_problems) --

SELF_SERVE = (
    "northwind-health is on the self-serve tier (policy/clients/northwind-health.yaml "
    "`tier: self-serve`): the MSP monitors and recommends, and does not make its changes; send "
    "the recommendation (`dmarcops recommend --client northwind-health`) to the client's DNS team"
)


def test_a_self_serve_clients_change_is_planned_but_never_approved_or_applied(
    world: World,
) -> None:
    self_serve = with_client(world, tier="self-serve")
    items = [Item(RiskLevel.LOW)]
    assert gate(self_serve, decide.Stage.PLAN, items).allowed
    for stage in (decide.Stage.REVIEW, decide.Stage.APPLY):
        assert rules(gate(self_serve, stage, items)) == [("self-serve-tier", SELF_SERVE)]
    # An emergency too: the client's own team makes it.
    emergency = gate(self_serve, decide.Stage.REVIEW, [FactItem((LOOSER,))], emergency_reason="x")
    assert rules(emergency) == [("self-serve-tier", SELF_SERVE)]
    assert gate(world, decide.Stage.REVIEW, items).allowed


def switch(
    world: World,
    stage: decide.Stage,
    checks: dict[tuple[str, str], tuple[bool, str]],
    selector: str = " s2026 ",
) -> decide.Decision:
    """jchen's dkim-switch of northwind-health's two domains to `selector`, judged with the live
    answers `checks` (pipeline.live.selector) at `stage`."""
    portfolio, roster = world
    now = TIMES["in window"]
    covers = tuple(
        replace(s, zone=zone, name="", type="")
        for s in request_of(RequestType.OTHER, "none", now).covers
        for zone in (ZONE, ZONE, "nwh-mail.example")
    )
    request = replace(
        request_of(RequestType.DKIM_SWITCH, "none", now),
        covers=covers,
        details=(("new_selector", selector),),
    )
    extra: dict[str, object] = {"executor": "jchen"} if stage is decide.Stage.APPLY else {}
    ctx = decide.context(portfolio, NWH, stage, now, PLAN, roster, selector_checks=checks, **extra)
    return decide.decide(request, [], [], ctx)


def test_a_dkim_switch_is_judged_on_the_live_answer_for_each_domain_once(world: World) -> None:
    published = {(ZONE, "s2026"): (True, "a valid key"), ("nwh-mail.example", "s2026"): (True, "")}
    for stage in (decide.Stage.REVIEW, decide.Stage.APPLY):
        assert switch(world, stage, published).allowed
    unchecked = {(ZONE, "s2026"): (False, "NXDOMAIN")}
    assert rules(switch(world, decide.Stage.REVIEW, unchecked)) == [
        (
            "dkim-switch-unpublished",
            "the new selector s2026 is not published and valid in live DNS (NXDOMAIN); publish "
            "it first (a dkim-rotation request), then switch",
        ),
        (
            "dkim-switch-unverified",
            "s2026._domainkey.nwh-mail.example was not checked in live DNS: a dkim-switch is "
            "judged only with the live answer",
        ),
    ]
    # A plan does not ask DNS: nothing is refused before review.
    assert switch(world, decide.Stage.PLAN, {}).allowed
    # Only a dkim-switch asks: another request type with the same details does not.
    portfolio, roster = world
    now = TIMES["in window"]
    other = replace(
        request_of(RequestType.OTHER, "none", now), details=(("new_selector", "s2026"),)
    )
    ctx = decide.context(portfolio, NWH, decide.Stage.REVIEW, now, PLAN, roster)
    assert decide.decide(other, [Item(RiskLevel.LOW)], [], ctx).allowed


def test_a_request_with_no_planned_items_is_low_risk_with_the_authors_sign_off(
    world: World,
) -> None:
    published = {(ZONE, "s2026"): (True, ""), ("nwh-mail.example", "s2026"): (True, "")}
    decision = switch(world, decide.Stage.REVIEW, published)
    assert decision.risk is RiskLevel.LOW and decision.items == ()
    assert decide.chain_labels(decision) == ("author",)
    assert decision.rollback_hours == 4  # northwind-health's calendar: low-risk changes, 4 hours


def test_the_approve_stage_lists_the_approvers_refusal_beside_the_others(world: World) -> None:
    portfolio, roster = world
    now = TIMES["in window"]
    request = replace(request_of(RequestType.OTHER, "none", now), client="contoso-retail")
    ctx = decide.context(portfolio, NWH, decide.Stage.APPROVE, now, PLAN, roster, approver="ghost")
    decision = decide.decide(request, [Item(RiskLevel.LOW)], [], ctx)
    assert [p.rule for p in decide.refused(decision)] == [
        "request-client",
        "approver-not-on-roster",
    ]


def test_a_window_that_takes_only_some_risks_refuses_the_others(world: World) -> None:
    # Northwind's Tuesday-Thursday 08:00-11:00, for low-risk changes only.
    (standing,) = world[0].clients[NWH].calendar.windows
    low_only = with_calendar(world, windows=(replace(standing, risks=frozenset({RiskLevel.LOW})),))
    assert gate(low_only, decide.Stage.APPLY, [FactItem(risk=RiskLevel.LOW)]).allowed
    now = TIMES["in window"]
    medium = gate(
        low_only,
        decide.Stage.APPLY,
        [FactItem(risk=RiskLevel.MEDIUM)],
        approvals=(approval("sokafor", now),),
    )
    assert rules(medium) == [
        (
            "outside-window",
            "2026-12-01 15:00 UTC (Tue 09:00 America/Chicago) is in Northwind Health's "
            "08:00-11:00 window, which takes low only: not a medium-risk change",
        )
    ]


# --- report evidence at the major-source boundaries (conditions.evidence_shortfalls) -------------

NEED = PassRateThreshold(
    min_pass_rate=90.0,
    min_days=14,
    min_messages=1000,
    max_age_days=7,
    major_source_share=10.0,
    min_source_pass_rate=95.0,
)
UNTIL = datetime(2026, 11, 20, tzinfo=UTC)


def sources_short(*sources: SourceCount) -> list[str]:
    """The shortfalls of 14 days of 2000 messages (1900 passing) with these sources."""
    evidence = Evidence(
        sha256="ab" * 32,
        client=NWH,
        domain=ZONE,
        since=UNTIL - timedelta(days=14),
        until=UNTIL,
        reports=20,
        messages=2000,
        dmarc_pass=1900,
        sources=sources,
    )
    return decide.evidence_shortfalls(evidence, NEED, UNTIL + timedelta(days=1))


def test_a_source_of_exactly_the_major_share_must_pass_on_its_own() -> None:
    # 200 of 2000 messages is exactly 10 %: a major source, and 94 % is below 95 %.
    assert sources_short(SourceCount("192.0.2.1", 200, 188)) == [
        "major sources below 95%: 192.0.2.1 (94.0% of 200)"
    ]
    # One message fewer is not major.
    assert sources_short(SourceCount("192.0.2.1", 199, 0)) == []


def test_a_major_source_a_fraction_below_its_pass_rate_fails() -> None:
    # 1898 of 2000 is 94.9 %; counted as 101 hundredths it would pass.
    assert sources_short(SourceCount("192.0.2.1", 2000, 1898)) == [
        "major sources below 95%: 192.0.2.1 (94.9% of 2000)"
    ]
    assert sources_short(SourceCount("192.0.2.1", 2000, 1900)) == []


# --- which changes need report evidence, and each refusal in full (conditions.report_evidence_problems,
# tightened_policy, _dmarc_p) ----------------------------------------------------------------------

FABRIKAM = "fabrikam-labs"
FABRIKAM_ZONE = "fabrikam.example"
EVIDENCE_AT = datetime(2026, 11, 30, tzinfo=UTC)


def dmarc_change(before: tuple[str, ...], after: tuple[str, ...], name: str = "_dmarc") -> Item:
    return Item(
        RiskLevel.MEDIUM,
        client=FABRIKAM,
        zone=FABRIKAM_ZONE,
        name=name,
        before=before,
        after=after,
    )


NONE_TO_QUARANTINE = dmarc_change(("v=DMARC1; p=none",), ("v=DMARC1; p=quarantine",))


def evidence_refusals(
    fabrikam: FabrikamWorld, items: list[Item], digest: str = ""
) -> list[tuple[str, str]]:
    """The refusals (rule, text) of fabrikam-labs' signed request for `items` at plan time,
    carrying `digest` as its report evidence."""
    repo, portfolio, roster = fabrikam
    request = replace(
        reports_gate.request(repo, digest),
        covers=tuple(Selector(i.zone, i.name, i.type) for i in items),
    )
    ctx = decide.context(portfolio, FABRIKAM, decide.Stage.PLAN, EVIDENCE_AT, PLAN, roster)
    decision = decide.decide(request, items, (), ctx)
    return [(p.rule, p.reason) for p in decide.refused(decision)]


def write_report_evidence(
    fabrikam: FabrikamWorld, domain: str, messages: int, passing: int, days: int
) -> str:
    """An evidence file as `dmarcops reports evidence` writes it (pipeline/reports/evidence.py),
    with one source sending all the mail; its hash."""
    document = {
        "format_version": 1,
        "kind": "dmarcops-report-evidence",
        "client": FABRIKAM,
        "domain": domain,
        "since": f"{EVIDENCE_AT - timedelta(days=days):%Y-%m-%dT%H:%M:%SZ}",
        "until": f"{EVIDENCE_AT:%Y-%m-%dT%H:%M:%SZ}",
        "reports": days,
        "messages": messages,
        "dmarc_pass": passing,
        "sources": [{"source_ip": "192.0.2.1", "messages": messages, "dmarc_pass": passing}],
    }
    digest, _ = write_evidence(fabrikam[0], document)
    return digest


FabrikamWorld = tuple[Path, Portfolio, Roster]


@pytest.fixture(scope="module")
def fabrikam(tmp_path_factory: pytest.TempPathFactory) -> FabrikamWorld:
    # Loaded once: the evidence files the tests write are named by their hash, so they never
    # meet, and the gate's own work is what each test spends its time on (mutmut runs the
    # fastest tests first).
    repo = copy_example(tmp_path_factory.mktemp("fabrikam"))
    return repo, load_portfolio(repo), load_roster(repo)


def test_each_domain_whose_dmarc_p_tightens_needs_its_own_evidence(fabrikam: FabrikamWorld) -> None:
    # Of four changes, a pct step and a DMARC-looking TXT that is not at _dmarc need none; the
    # apex and a subdomain that move p= up are each refused, in order.
    pct = dmarc_change(("v=DMARC1; p=quarantine; pct=50",), ("v=DMARC1; p=quarantine",))
    elsewhere = dmarc_change((), ("v=DMARC1; p=reject",), name="_dmarc-old")
    subdomain = dmarc_change((), ("v=DMARC1; p=reject",), name="_dmarc.mail")
    refusals = evidence_refusals(fabrikam, [pct, elsewhere, NONE_TO_QUARANTINE, subdomain])
    assert refusals == [
        (
            "report-evidence",
            "fabrikam.example moves to p=quarantine, and CR-0009-fabrikam-labs carries no report "
            "evidence: run `dmarcops reports evidence --client fabrikam-labs --domain "
            "fabrikam.example --days 14` and put its hash in details.report_evidence",
        ),
        (
            "report-evidence",
            "mail.fabrikam.example moves to p=reject, and CR-0009-fabrikam-labs carries no "
            "report evidence: run `dmarcops reports evidence --client fabrikam-labs --domain "
            "mail.fabrikam.example --days 30` and put its hash in details.report_evidence",
        ),
    ]


@pytest.mark.parametrize(
    ("before", "after", "target"),
    [
        # A new record, or one without p= or with a p= receivers ignore, enforces nothing yet.
        ((), ("v=DMARC1; p=quarantine",), "quarantine"),
        (("v=DMARC1; rua=mailto:d@fabrikam.example",), ("v=DMARC1; p=reject",), "reject"),
        (("v=DMARC1; p=bogus",), ("v=DMARC1; p=quarantine",), "quarantine"),
        # As zone files hold them: escaped semicolons, tags in any case, a stray leading space.
        (("v=DMARC1\\; p=none",), ("v=DMARC1\\; p=reject",), "reject"),
        (("V=DMARC1; P=NONE",), ("v=dmarc1; p=QUARANTINE",), "quarantine"),
        ((" v=DMARC1; p=none",), (" v=DMARC1; p=quarantine",), "quarantine"),
    ],
    ids=["new", "no-p", "unknown-p", "escaped", "upper-case", "leading-space"],
)
def test_the_p_a_record_moves_to_is_read_as_receivers_read_it(
    fabrikam: FabrikamWorld, before: tuple[str, ...], after: tuple[str, ...], target: str
) -> None:
    ((rule, text),) = evidence_refusals(fabrikam, [dmarc_change(before, after)])
    assert rule == "report-evidence"
    assert text.startswith(f"fabrikam.example moves to p={target}, and CR-0009-fabrikam-labs")


def test_a_record_enforcing_already_needs_no_evidence_to_stay(fabrikam: FabrikamWorld) -> None:
    # p= stays quarantine behind an escaped semicolon: nothing tightens.
    same = dmarc_change(("v=DMARC1\\; p=quarantine",), ("v=DMARC1\\; p=quarantine\\; pct=100",))
    assert evidence_refusals(fabrikam, [same]) == []


def test_unreadable_evidence_is_refused_for_each_domain(fabrikam: FabrikamWorld) -> None:
    subdomain = dmarc_change((), ("v=DMARC1; p=quarantine",), name="_dmarc.mail")
    refusals = evidence_refusals(fabrikam, [NONE_TO_QUARANTINE, subdomain], digest="ab" * 32)
    assert [rule for rule, _ in refusals] == ["report-evidence", "report-evidence"]
    apex, sub = (text for _, text in refusals)
    assert apex.startswith("report evidence for fabrikam.example: ")
    assert sub.startswith("report evidence for mail.fabrikam.example: ")
    assert "cannot read the file" in apex and "cannot read the file" in sub


def test_evidence_for_another_domain_or_short_of_it_is_refused(fabrikam: FabrikamWorld) -> None:
    # Ten days of 2000 messages, 95 % passing, for the apex: it says each shortfall, with the
    # evidence's hash and period; the subdomain's change cannot use the apex's evidence.
    digest = write_report_evidence(fabrikam, FABRIKAM_ZONE, messages=2000, passing=1900, days=10)
    subdomain = dmarc_change((), ("v=DMARC1; p=quarantine",), name="_dmarc.mail")
    assert evidence_refusals(fabrikam, [subdomain, NONE_TO_QUARANTINE], digest) == [
        (
            "report-evidence",
            "the report evidence is for fabrikam-labs / fabrikam.example, not "
            "fabrikam-labs / mail.fabrikam.example",
        ),
        (
            "report-evidence",
            f"fabrikam.example may not move to p=quarantine on this evidence ({digest[:16]}, "
            "2026-11-20..2026-11-30): it covers 10.0 days, fewer than 14; pass rate 95.00%, "
            "below 98%",
        ),
    ]


# --- the clock at apply (windows.check_apply_time through the gate) ------------------------------


def at_apply(
    world: World, when: datetime, hours: int = 4, risk: RiskLevel = RiskLevel.LOW
) -> list[tuple[str, str]]:
    """The refusals of a reviewed change of `risk` applied at `when` with a rollback window of
    `hours` (northwind-health's own low-risk window is 4 hours)."""
    approvals = (approval("sokafor", when - timedelta(hours=1)),)
    items = [FactItem(risk=risk, rollback_hours=hours)]
    return rules(gate(world, decide.Stage.APPLY, items, when=when, approvals=approvals))


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def test_the_window_opens_at_its_start_and_closes_at_its_end(world: World) -> None:
    # Tuesday 08:00-11:00 in Chicago is 14:00-17:00 UTC in December.
    assert at_apply(world, utc("2026-12-01T14:00")) == []
    assert at_apply(world, utc("2026-12-01T16:59")) == []
    assert at_apply(world, utc("2026-12-01T17:00")) == [
        (
            "outside-window",
            "2026-12-01 17:00 UTC (Tue 11:00 America/Chicago) is outside Northwind Health's "
            "change window",
        )
    ]
    assert at_apply(world, utc("2026-12-01T13:59"))[0][1].startswith(
        "2026-12-01 13:59 UTC (Tue 07:59 America/Chicago) is outside"
    )


def test_a_blackout_day_has_no_window_and_says_why(world: World) -> None:
    assert at_apply(world, utc("2026-12-24T15:00")) == [
        (
            "outside-window",
            "2026-12-24 15:00 UTC (Thu 09:00 America/Chicago) is outside Northwind Health's "
            "change window (blackout 2026-12-24: Christmas Eve: the client's IT is away)",
        )
    ]


EVERY_DAY = frozenset(range(7))


def every_morning(world: World, **changes: object) -> World:
    """Northwind with a window every day 08:00-11:00, and the other calendar changes given."""
    (standing,) = world[0].clients[NWH].calendar.windows
    return with_calendar(world, windows=(replace(standing, days=EVERY_DAY),), **changes)


def test_a_freeze_is_judged_on_the_clients_days_from_first_to_last(world: World) -> None:
    unwatched = every_morning(world, staffing=None)
    # Wednesday 09:00 the day before the freeze (2027-03-25..2027-04-05); 14 hours end at 23:00
    # in Chicago (04:00 on the 25th in UTC), 15 hours at midnight, on the freeze's first day.
    assert at_apply(unwatched, utc("2027-03-24T14:00"), 14) == []
    assert at_apply(unwatched, utc("2027-03-24T14:00"), 15) == [
        (
            "freeze-rollback",
            "the 15 h rollback window would run into the change freeze 2027-03-25..2027-04-05 "
            "(Quarter-end claims processing). During a freeze only an emergency, or a high-risk "
            "change whose client approval names the freeze (client_approval.freeze), passes",
        )
    ]
    # The freeze's last day is inside it; the day after is not.
    assert [rule for rule, _ in at_apply(unwatched, utc("2027-04-05T14:00"))] == ["freeze"]
    assert at_apply(unwatched, utc("2027-04-06T14:00")) == []


WEEKEND = (
    "the {hours} h rollback window would run into the weekend ({day}) and the client profile does "
    "not say weekends are covered. Unless the client's on-call owner covers it (`on_call:` in "
    "the request, signed by its author)"
)


def test_a_weekend_counts_from_the_clients_saturday_midnight(world: World) -> None:
    unwatched = every_morning(world, staffing=None)
    friday = utc("2026-12-04T15:00")  # 09:00 in Chicago
    assert at_apply(unwatched, friday, 14) == []  # ends Friday 23:00
    assert at_apply(unwatched, friday, 15) == [
        ("weekend", WEEKEND.format(hours=15, day="2026-12-05"))
    ]
    # A change on a Sunday, and one spanning a whole weekend, name its first day.
    assert at_apply(unwatched, utc("2026-12-06T15:00")) == [
        ("weekend", WEEKEND.format(hours=4, day="2026-12-06"))
    ]
    assert at_apply(unwatched, friday, 72)[0][1] == WEEKEND.format(hours=72, day="2026-12-05")
    # A client whose weekends are covered is watched then.
    covered = every_morning(world, staffing=None, weekend_coverage=True)
    assert at_apply(covered, friday, 72) == []


def test_staffed_hours_are_checked_when_the_change_starts_and_when_its_window_ends(
    world: World,
) -> None:
    (standing,) = world[0].clients[NWH].calendar.windows
    early = replace(standing, start=standing.start.replace(hour=6))  # 06:00-11:00
    dawn = with_calendar(world, windows=(early,))
    assert at_apply(dawn, utc("2026-12-01T12:30")) == [
        (
            "unstaffed",
            "the change would start outside staffed hours (Tue 2026-12-01 06:30 "
            "America/Chicago; staffed that day: 07:00-20:00). Unless the client's on-call owner "
            "covers it (`on_call:` in the request, signed by its author)",
        )
    ]
    # 07:00 is staffed; a window that closes exactly as the desk closes (20:00) ends watched.
    assert at_apply(dawn, utc("2026-12-01T13:00")) == []
    assert at_apply(dawn, utc("2026-12-01T13:00"), 13) == []
    assert [rule for rule, _ in at_apply(dawn, utc("2026-12-01T13:00"), 14)] == ["unstaffed"]
    # Without staffing data nobody is ever missing; staffed hours in another time zone are read
    # there.
    assert at_apply(with_calendar(dawn, staffing=None), utc("2026-12-01T12:30")) == []
    staffing = world[0].clients[NWH].calendar.staffing
    assert staffing is not None
    in_utc = with_calendar(dawn, staffing=replace(staffing, timezone="UTC"))
    assert at_apply(in_utc, utc("2026-12-01T15:00"), 12) == [
        (
            "unstaffed",
            "the 12 h rollback window would end outside staffed hours (Wed 2026-12-02 03:00 UTC; "
            "staffed that day: 07:00-20:00): nobody would be watching when it closes" + UNLESS,
        )
    ]


def test_a_change_starting_before_the_desk_opens_is_covered_by_that_days_on_call_owner(
    world: World,
) -> None:
    # 06:30 in Chicago, before the 07:00 desk: the on-call owner covers it, and the rota is
    # read on the day the 4 h rollback window ends (Tuesday).
    (standing,) = world[0].clients[NWH].calendar.windows
    early = replace(standing, start=standing.start.replace(hour=6))  # 06:00-11:00
    rota = (OnCall("mhara", until=date(2026, 12, 1)), OnCall("sokafor", start=date(2026, 12, 2)))
    dawn = with_calendar(world, windows=(early,), on_call=rota)
    at = utc("2026-12-01T12:30")
    approvals = (approval("sokafor", at - timedelta(hours=1)),)
    covered = gate(
        dawn,
        decide.Stage.APPLY,
        [FactItem(rollback_hours=4)],
        when=at,
        approvals=approvals,
        on_call="mhara",
    )
    assert covered.allowed and covered.on_call == "mhara"
    refused = gate(
        dawn,
        decide.Stage.APPLY,
        [FactItem(rollback_hours=4)],
        when=at,
        approvals=approvals,
        on_call="sokafor",
    )
    assert rules(refused)[1] == (
        "on-call",
        "sokafor is not northwind-health's on-call owner on 2026-12-01, when the rollback window "
        "ends (the calendar names mhara that day)",
    )


def test_a_covered_weekend_is_staffed_but_a_closed_day_is_not(world: World) -> None:
    # Weekend cover makes Saturday and Sunday watched whatever the staffed hours say; Christmas
    # Day (policy/staffing.yaml `closed`) is a weekday nobody watches.
    covered = every_morning(world, weekend_coverage=True)
    assert at_apply(covered, utc("2026-12-05T15:00")) == []
    assert at_apply(covered, utc("2026-12-25T15:00")) == [
        (
            "unstaffed",
            "the change would start outside staffed hours (Fri 2026-12-25 09:00 "
            "America/Chicago; staffed that day: closed (Christmas Day))" + UNLESS,
        )
    ]


# --- the next moment a change may run (windows.next_window: `dmarcops window`, the calendar) ----


def test_the_next_window_is_now_when_now_is_inside_one(world: World) -> None:
    northwind = world[0].clients[NWH]
    found = next_window(northwind, utc("2026-12-01T15:30"), 4)
    assert found.ok and found.rollback.start == utc("2026-12-01T15:30")
    # After today's window has closed: tomorrow's opening.
    found = next_window(northwind, utc("2026-12-01T17:30"), 4)
    assert found.ok and found.rollback.start == utc("2026-12-02T14:00")
    assert found.window is not None and found.window.start == utc("2026-12-02T14:00")


def test_the_next_window_starts_late_enough_to_end_when_the_desk_opens(world: World) -> None:
    northwind = world[0].clients[NWH]
    # 23 hours from the window's opening (08:00) end at 07:00 the next day, as the desk opens.
    assert next_window(northwind, utc("2026-12-01T13:00"), 23).rollback.start == utc(
        "2026-12-01T14:00"
    )
    # 22 hours from 08:00 would end at 06:00, unwatched: the change waits until 09:00.
    found = next_window(northwind, utc("2026-12-01T13:00"), 22)
    assert found.ok and found.rollback.start == utc("2026-12-01T15:00")
    assert found.rollback.end == utc("2026-12-02T13:00")


def test_the_next_window_looks_as_many_days_ahead_as_the_rollback_window_runs(
    world: World,
) -> None:
    northwind = world[0].clients[NWH]
    # 46 hours from 08:00 Tuesday end at 06:00 Thursday; from 09:00 at 07:00, as the desk opens.
    found = next_window(northwind, utc("2026-12-01T13:00"), 46)
    assert found.rollback.start == utc("2026-12-01T15:00")


def test_the_next_window_is_never_before_the_moment_asked_about(world: World) -> None:
    # At 09:30, 22 hours end at 07:30 the next day: watched, so now; not 09:00, which is past.
    found = next_window(world[0].clients[NWH], utc("2026-12-01T15:30"), 22)
    assert found.rollback.start == utc("2026-12-01T15:30")


def test_the_next_window_may_be_a_later_window_the_same_day(world: World) -> None:
    (standing,) = world[0].clients[NWH].calendar.windows
    early, late = replace(standing, end=time(9)), replace(standing, start=time(10))
    two = with_calendar(world, windows=(early, late))[0].clients[NWH]
    # At 09:30 the 08:00-09:00 window has closed; the 10:00-11:00 one is still ahead today.
    assert next_window(two, utc("2026-12-01T15:30"), 4).rollback.start == utc("2026-12-01T16:00")


def test_the_next_window_starts_when_the_desk_opens(world: World) -> None:
    (standing,) = world[0].clients[NWH].calendar.windows
    early = replace(standing, start=standing.start.replace(hour=6))  # 06:00-11:00
    dawn = with_calendar(world, windows=(early,))[0].clients[NWH]
    # The window opens at 06:00 and the desk at 07:00: the first moment is 07:00.
    found = next_window(dawn, utc("2026-12-01T11:00"), 4)
    assert found.ok and found.rollback.start == utc("2026-12-01T13:00")


def test_the_next_window_skips_windows_that_do_not_take_the_risk(world: World) -> None:
    (standing,) = world[0].clients[NWH].calendar.windows
    tuesday_low = replace(standing, days=frozenset({1}), risks=frozenset({RiskLevel.LOW}))
    wednesday = replace(standing, days=frozenset({2}))
    both = with_calendar(world, windows=(tuesday_low, wednesday))[0].clients[NWH]
    medium = next_window(both, utc("2026-12-01T13:00"), 4, RiskLevel.MEDIUM)
    assert medium.rollback.start == utc("2026-12-02T14:00")
    low = next_window(both, utc("2026-12-01T13:00"), 4, RiskLevel.LOW)
    assert low.rollback.start == utc("2026-12-01T14:00")


def test_no_window_at_all_is_said_in_words(world: World) -> None:
    never = with_calendar(world, windows=())[0].clients[NWH]
    found = next_window(never, utc("2026-12-01T13:00"), 8)
    assert not found.ok and found.window is None
    assert found.reason == "no change window in the next 400 days allows a 8 h rollback window"
    assert (found.rollback.start, found.rollback.end) == (utc("2026-12-01T13:00"),) * 2


# --- the author's signature (requests.signature_problem, as the gate's missing author) ----------

HOW = "the author signs it: dmarcops sign-request CR-0001-nwh --key YOUR-KEY"


def author_reason(world: World, **fields: object) -> list[str]:
    decision = gate(world, decide.Stage.REVIEW, [Item(RiskLevel.LOW)], **fields)
    return [p.reason for p in decide.missing(decision) if p.role == "author"]


def test_an_unsigned_request_is_missing_its_author(world: World) -> None:
    assert author_reason(world) == []
    assert author_reason(world, signature=None) == [
        f"author's signature: CR-0001-nwh.yaml is not signed by its author ({HOW})"
    ]
    unreadable = (
        "its signature file CR-0001-nwh.sig.json is not a request signature: not a JSON object"
    )
    assert author_reason(world, signature=None, signature_error=unreadable) == [
        f"author's signature: {unreadable}; {HOW}"
    ]


def test_a_signature_counts_only_for_its_request_its_content_and_its_author(world: World) -> None:
    now = TIMES["in window"]
    signed = request_of(RequestType.OTHER, "none", now).signature
    assert signed is not None
    other = author_signature(request_id="CR-0002-nwh")
    assert author_reason(world, signature=other) == [
        f"author's signature: CR-0002-nwh.sig.json signs request CR-0002-nwh, not CR-0001-nwh; {HOW}"
    ]
    forged = replace(signed, signer="sokafor")
    assert author_reason(world, signature=forged) == [
        "author's signature: CR-0001-nwh.sig.json does not verify with sokafor's key in the "
        f"roster (altered after signing, or signed with another key); {HOW}"
    ]
    assert author_reason(world, sha256="d4" * 32) == [
        "author's signature: CR-0001-nwh.yaml changed after jchen signed it (content "
        f"d4d4d4d4d4d4d4d4, signed c3c3c3c3c3c3c3c3); {HOW} again, and reviewers approve the "
        "new content"
    ]
    by_peer = author_signature(signer="sokafor")
    assert author_reason(world, signature=by_peer) == [
        "author's signature: CR-0001-nwh.yaml is signed by sokafor, but its author: is jchen; a "
        "request is signed by its author's key"
    ]


# --- which approvals count (approvals.not_counting, verify: the review's "does not count") ------


def ignored(world: World, *approvals: Approval) -> tuple[str, ...]:
    """Why each approval of jchen's medium change does not count, at review."""
    decision = gate(world, decide.Stage.REVIEW, [Item(RiskLevel.MEDIUM)], approvals=approvals)
    return decision.ignored


def test_an_approval_counts_only_when_signed_for_this_request_and_its_content(
    world: World,
) -> None:
    now = TIMES["in window"]
    good = approval("sokafor", now)
    assert ignored(world, good) == ()
    assert ignored(world, replace(good, analyst="ghost")) == (
        "approval by ghost: 'ghost' is not on the analyst roster",
    )
    assert ignored(world, replace(good, source="email")) == (
        "approval by sokafor: unknown approval source 'email'",
    )
    # Any edit of what was signed (here the time) breaks the signature.
    assert ignored(world, replace(good, approved_at=now - timedelta(seconds=1))) == (
        "approval by sokafor: it does not verify with sokafor's key in the roster (altered "
        "after signing, or signed with another key)",
    )
    other = sign(key("sokafor"), PLAN, "CR-0002-nwh", "sokafor", now, REQ_SHA)
    assert ignored(world, other) == (
        "approval by sokafor: it approves request CR-0002-nwh, not CR-0001-nwh",
    )
    edited = sign(key("sokafor"), PLAN, "CR-0001-nwh", "sokafor", now, "d4" * 32)
    assert ignored(world, edited) == (
        "approval by sokafor: it approves other content of CR-0001-nwh (d4d4d4d4d4d4d4d4, now "
        "c3c3c3c3c3c3c3c3): the request was edited after the review, so it needs a new one",
    )
    format_1 = sign(key("sokafor"), PLAN, "CR-0001-nwh", "sokafor", now, "")
    assert ignored(world, format_1)[0].startswith(
        "approval by sokafor: it approves other content of CR-0001-nwh (no content hash: "
        "format 1, now c3c3c3c3c3c3c3c3)"
    )


def test_an_approval_signed_earlier_keeps_counting(world: World) -> None:
    # What an approval signs is fixed: approvals already stored, and those copied into change
    # records for `audit verify`, must keep verifying. These signatures were made by sokafor's
    # key over the canonical JSON of the approval, a real one and a rehearsal's.
    at = TIMES["in window"]
    stored = Approval(
        PLAN,
        "CR-0001-nwh",
        "sokafor",
        at,
        signature="42T5DVKNmVKVtJeXgcfcDSB4Rb72aZuAT2rxZjolfrRir/7CrUckUlih13TzGmfk1dJQLG2jmlirtjmB1KVHBg==",
        request_sha256=REQ_SHA,
    )
    assert stored.payload() == (
        b'{"analyst":"sokafor","approved_at":"2026-12-01T15:00:00Z","plan_hash":"'
        + PLAN.encode()
        + b'","request_id":"CR-0001-nwh","request_sha256":"'
        + REQ_SHA.encode()
        + b'"}'
    )
    decision = gate(world, decide.Stage.REVIEW, [Item(RiskLevel.MEDIUM)], approvals=(stored,))
    assert decision.allowed and decision.ignored == ()
    rehearsed = replace(
        stored,
        simulated=True,
        signature="jnnBachcnLL1bDN2O1aIRKwHamUL9/gWuS9ETxvvTQesOZECP/OXT8JniErg0Vq8aTd3kJONSWy6FgEOCDQ+DQ==",
    )
    assert rehearsed.payload().endswith(b'","simulated":true}')
    assert ignored(world, replace(rehearsed, simulated=False))[0].endswith(
        "it does not verify with sokafor's key in the roster (altered after signing, or signed "
        "with another key)"
    )
    assert verify(rehearsed, world[1])


def test_the_peer_link_carries_the_signature_audit_verify_checks_again(world: World) -> None:
    # The change record copies each approval's signature and its rehearsal flag (part of what
    # was signed), so `audit verify` can check the approval again from the record alone.
    now = TIMES["in window"]
    for simulated in (False, True):
        given = sign(
            key("sokafor"), PLAN, "CR-0001-nwh", "sokafor", now, REQ_SHA, simulated=simulated
        )
        decision = gate(world, decide.Stage.REVIEW, [FactItem()], approvals=(given,))
        (peer,) = [link for link in decision.evidence if link.role == "peer review"]
        assert (peer.who, peer.signature, peer.simulated) == (
            "sokafor",
            given.signature,
            simulated,
        )


def test_shadowing_ends_on_the_thirtieth_day_and_needs_a_start_date(world: World) -> None:
    # policy/gate.yaml: 30 days of shadowing from the start date. On the 30th day after it,
    # sokafor's review of a medium change counts; the day before, it does not; an analyst
    # whose start date the roster does not give is not shadowing.
    portfolio, roster = world
    now = TIMES["in window"]

    def review_counts(started: date | None) -> bool:
        analysts = tuple(
            replace(a, start_date=started) if a.id == "sokafor" else a for a in roster.analysts
        )
        decision = gate(
            (portfolio, replace(roster, analysts=analysts)),
            decide.Stage.REVIEW,
            [Item(RiskLevel.MEDIUM)],
            approvals=(approval("sokafor", now),),
        )
        return decision.allowed

    assert review_counts(now.date() - timedelta(days=30))
    assert not review_counts(now.date() - timedelta(days=29))
    assert review_counts(None)


def test_a_signature_with_a_character_outside_base64_does_not_count(world: World) -> None:
    given = approval("sokafor", TIMES["in window"])
    middle = len(given.signature) // 2
    for junk in ("*", " ", "\n"):
        mangled = given.signature[:middle] + junk + given.signature[middle:]
        (why,) = ignored(world, replace(given, signature=mangled))
        assert why.endswith(
            "it does not verify with sokafor's key in the roster (altered after "
            "signing, or signed with another key)"
        ), junk


def test_a_request_signed_earlier_keeps_its_author(world: World) -> None:
    # What the author signs is fixed: a request signed before (this signature was made by
    # jchen's key over the request's id, content hash, time and signer) keeps counting.
    signed = RequestSignature(
        "CR-0001-nwh",
        REQ_SHA,
        "jchen",
        datetime(2026, 11, 23, 16, 0, tzinfo=UTC),
        "TtUadLO9xLJz19vqW8Q9OEsu36AEug5Nk0HsvdHA3HnZAeE+QbsqiLnBU22BWHLv2CXMiw4hkp5LlI0xHTfiBg==",
        Path("CR-0001-nwh.sig.json"),
    )
    assert signed.payload() == (
        b'{"purpose":"change-request","request_id":"CR-0001-nwh","request_sha256":"'
        + REQ_SHA.encode()
        + b'","signed_at":"2026-11-23T16:00:00Z","signer":"jchen"}'
    )
    decision = gate(world, decide.Stage.REVIEW, [Item(RiskLevel.LOW)], signature=signed)
    assert decision.allowed, decision.problems


def test_the_automations_key_approves_nothing(world: World) -> None:
    now = TIMES["in window"]
    bot = sign(key("dmarcops-bot"), PLAN, "CR-0001-nwh", "dmarcops-bot", now, REQ_SHA)
    assert ignored(world, bot) == (
        "approval by dmarcops-bot: it does not verify with dmarcops-bot's key in the roster "
        "(altered after signing, or signed with another key)",
    )


def github_review(login: str, user_id: int | None = None, signature: str = "") -> Approval:
    by = f"@{login}" + (f" (id {user_id})" if user_id is not None else "")
    return Approval(
        PLAN,
        "CR-0001-nwh",
        "sokafor",
        TIMES["in window"],
        source="github",
        reference=f"GitHub review 12 by {by} on 0a1b2c3",
        signature=signature,
    )


def test_a_github_review_counts_for_the_rosters_login_or_id(world: World) -> None:
    for review in (
        github_review("sokafor-msp"),
        github_review("SOKAFOR-MSP"),
        github_review("renamed-login", 7100003),
    ):
        decision = gate(world, decide.Stage.REVIEW, [Item(RiskLevel.MEDIUM)], approvals=(review,))
        assert decision.allowed, (review.reference, decision.problems)
        assert decision.evidence[-1].reference == review.reference
    not_hers = "does not verify with sokafor's key in the roster"
    for review in (
        github_review("jchen-msp"),
        github_review("sokafor-msp", 7100001),
        github_review("sokafor-msp", signature="c2lnbmVk"),
        replace(github_review("sokafor-msp"), reference="changes/approvals/sokafor.json"),
    ):
        (why,) = ignored(world, review)
        assert not_hers in why, review.reference


# --- which request covers each change (coverage.cover, Coverage.check, template_problem) --------


def filed(
    request_id: str, *selectors: str, rtype: RequestType = RequestType.OTHER, **fields: object
) -> ChangeRequest:
    """jchen's request `request_id` for northwind-health, covering `selectors`."""
    parsed = tuple(Selector.parse(s) for s in selectors)
    assert all(parsed)
    return replace(
        request_of(rtype, "none", TIMES["in window"]),
        id=request_id,
        covers=parsed,
        file=Path(f"changes/requests/{request_id}.yaml"),
        **fields,  # type: ignore[arg-type]
    )


def refusal(coverage: Coverage[FactItem]) -> tuple[str, str]:
    with pytest.raises(GateRefused) as caught:
        coverage.check()
    assert caught.value.exit_code == EXIT_GATE
    return caught.value.message, caught.value.hint or ""


def test_every_change_needs_exactly_one_request(world: World) -> None:
    dmarc = FactItem(risk=RiskLevel.LOW)
    apex = FactItem(risk=RiskLevel.HIGH, name="", type="MX")
    shop = FactItem(name="_dmarc.shop", risk=RiskLevel.MEDIUM)
    one = filed("CR-0001-nwh", f"{ZONE} _dmarc TXT", f"{ZONE} _dmarc.shop")
    wide = filed("CR-0002-nwh", ZONE, lines=(("covers", 7),))
    theirs = replace(filed("CR-0003-cr", ZONE), client="contoso-retail")
    coverage = cover([dmarc, apex, shop], [one, theirs])
    assert coverage.covered == ((dmarc, one), (shop, one))
    assert coverage.uncovered == (apex,)
    assert coverage.requests == (one,) and coverage.items_of("CR-0001-nwh") == (dmarc, shop)
    assert coverage.risk_of("CR-0001-nwh") is RiskLevel.MEDIUM
    assert coverage.risk_of("CR-0009-nwh") is None
    assert not coverage.complete
    assert refusal(coverage) == (
        'every change needs a change request (seed: the "I\'ll just push it" change); 1 plan '
        "item(s) covered by none:\n"
        "  northwind-health.example @ MX  (client northwind-health, risk high)",
        "File one: dmarcops new TYPE --client northwind-health --cover 'northwind-health.example "
        "@ MX' --author YOUR-ID, replace its <<...>> prompts and commit it under "
        "changes/requests/ (or add the selector to the `covers:` of an existing request for the "
        "same change).",
    )
    both = cover([dmarc, apex], [one, wide])
    assert both.conflicts == ((dmarc, (one, wide)),) and both.covered == ((apex, wide),)
    assert refusal(both) == (
        "1 plan item(s) claimed by more than one change request:\n"
        "  northwind-health.example _dmarc TXT: CR-0001-nwh (CR-0001-nwh.yaml), CR-0002-nwh "
        "(CR-0002-nwh.yaml:7)",
        "A change has exactly one request: narrow the `covers:` selectors (ZONE NAME TYPE) so "
        "that only one request matches each item.",
    )
    # Complete: nothing to say.
    assert cover([dmarc], [one]).complete
    cover([dmarc], [one]).check()


def test_a_ticket_template_allows_only_its_kinds_and_selectors(world: World) -> None:
    templates = load_templates(world[0].root)
    rotation = filed(
        "CR-0001-nwh",
        ZONE,
        rtype=RequestType.DKIM_ROTATION,
        template=templates.get("dkim-rotation"),
        details=(("current_selector", "s2025._domainkey"), ("new_selector", " S2026 (RSA 2048)")),
    )
    new_key = FactItem(name="s2026._domainkey", risk=RiskLevel.LOW)
    old_key = FactItem(name="S2025._domainkey", risk=RiskLevel.LOW)
    third = FactItem(name="s2024._domainkey", risk=RiskLevel.LOW)
    dmarc = FactItem(risk=RiskLevel.LOW)
    coverage = cover([new_key, old_key, third, dmarc], [rotation])
    assert [reason for _, _, reason in coverage.misfits] == [
        "northwind-health.example s2024._domainkey TXT is selector 's2024', but the rotation is "
        "from 's2025._domainkey' to ' S2026 (RSA 2048)'",
        "a dkim-rotation request may change only dkim records, and northwind-health.example "
        "_dmarc TXT is dmarc",
    ]
    message, hint = refusal(coverage)
    assert message.startswith(
        "2 plan item(s) outside their request's ticket template:\n"
        "  CR-0001-nwh (CR-0001-nwh.yaml): northwind-health.example s2024._domainkey TXT is "
    )
    assert hint == (
        "File the change under a request of the right type (`dmarcops new TYPE`), or `type: "
        "other` when no template fits; docs/evidence.md lists what each allows."
    )
    # Beside an uncovered change, both hints are given, one per line.
    _, both = refusal(cover([dmarc, FactItem(zone="nwh-patients.example")], [rotation]))
    assert both.startswith("File one: dmarcops new TYPE --client northwind-health --cover ")
    assert "existing request for the same change).\n  File the change under" in both
    # A template that takes several kinds names them all.
    sender = replace(rotation, type=RequestType.NEW_SENDER, template=templates.get("new-sender"))
    (misfit,) = cover([dmarc], [sender]).misfits
    assert misfit[2] == (
        "a new-sender request may change only dkim, spf records, and northwind-health.example "
        "_dmarc TXT is dmarc"
    )
    # A rotation whose request does not name its current selector allows only the new one.
    unnamed = replace(rotation, details=(("new_selector", "s2026"),))
    (misfit,) = cover([new_key, third], [unnamed]).misfits
    assert misfit[2] == (
        "northwind-health.example s2024._domainkey TXT is selector 's2024', but the rotation is "
        "from None to 's2026'"
    )
    # A record the portfolio does not own is named as such; `other` takes any kind.
    mx = FactItem(name="", type="MX")
    (misfit,) = cover([mx], [rotation]).misfits
    assert misfit[2].endswith("northwind-health.example @ MX is not an owned record")
    other = replace(rotation, type=RequestType.OTHER, template=templates.get("other"))
    assert cover([mx, dmarc, third], [other]).complete


def test_a_request_may_ask_for_more_risk_than_computed_never_less() -> None:
    request = filed("CR-0001-nwh", ZONE, lines=(("requested_risk", 9),))
    assert check_requested_risk(request, RiskLevel.MEDIUM) is RiskLevel.MEDIUM
    higher = replace(request, requested_risk=RiskLevel.HIGH)
    assert check_requested_risk(higher, RiskLevel.MEDIUM) is RiskLevel.HIGH
    assert check_requested_risk(higher, RiskLevel.HIGH) is RiskLevel.HIGH
    lower = replace(request, requested_risk=RiskLevel.LOW)
    with pytest.raises(GateRefused) as caught:
        check_requested_risk(lower, RiskLevel.MEDIUM)
    assert caught.value.message == (
        "CR-0001-nwh asks for low risk, but the risk rules classify its changes medium"
    )
    assert (caught.value.file, caught.value.line) == (Path("changes/requests/CR-0001-nwh.yaml"), 9)
    assert caught.value.hint == (
        'Confidence isn\'t a substitute for peer review (seed: the "this is routine" '
        "misclassification). Set requested_risk: medium or remove it; if a rule is wrong, change "
        "it in policy/risk-rules.yaml in its own reviewed change."
    )


# --- the client's approving e-mail (evidence.store_eml, read_mail, check_client_mail) -----------

GIVEN_AT = datetime(2026, 11, 30, 15, 0, tzinfo=UTC)
MAIL = (
    "From: Dana Whitfield <Dana.Whitfield@northwind-health.example>\r\n"
    "To: jchen@msp.example\r\n"
    "Date: Mon, 30 Nov 2026 09:00:00 -0600\r\n"
    "Message-ID: <a81f2@mail.northwind-health.example>\r\n"
    "Subject: Re: CR-0001-nwh\r\n\r\nApproved.\r\n"
)


def stored(world: World, tmp_path: Path, text: str) -> str:
    """`text` saved as an .eml and stored in the world's changes/evidence/ as `dmarcops` does."""
    source = tmp_path / "approval.eml"
    source.write_bytes(text.encode())
    return store_eml(world[0].root, source).as_posix()


def placed(world: World, text: str) -> str:
    """`text` written straight into changes/evidence/ under its hash (store_eml would refuse it)."""
    raw = text.encode()
    relative = f"changes/evidence/{hashlib.sha256(raw).hexdigest()}.eml"
    (world[0].root / relative).write_bytes(raw)
    return relative


def by_mail(
    world: World, eml: str, reference: str = "<a81f2@mail.northwind-health.example>"
) -> decide.Decision:
    """A reviewed high change whose client approval (given at GIVEN_AT) rests on `eml`."""
    portfolio = world[0]
    given = ClientApproval(APPROVER, GIVEN_AT, reference, eml=eml)
    return gate(
        world,
        decide.Stage.REVIEW,
        [Item(RiskLevel.HIGH)],
        approvals=(approval("sokafor", TIMES["in window"]),),
        client_approval=given,
        file=portfolio.root / "changes/requests/CR-0001-nwh.yaml",
    )


def client_missing(decision: decide.Decision) -> list[str]:
    return [p.reason for p in decide.missing(decision) if p.role == "client approval"]


def test_a_stored_unsigned_mail_that_says_what_the_request_claims_counts(
    world: World, tmp_path: Path
) -> None:
    eml = stored(world, tmp_path, MAIL)
    assert eml == f"changes/evidence/{hashlib.sha256(MAIL.encode()).hexdigest()}.eml"
    # Stored as received, readable by everyone who checks out the repository.
    assert (world[0].root / eml).read_bytes() == MAIL.encode()
    assert (world[0].root / eml).stat().st_mode & 0o777 == 0o644
    # Storing it again finds the same file.
    assert stored(world, tmp_path, MAIL) == eml
    decision = by_mail(world, eml)
    assert decision.allowed, decision.problems
    assert decision.evidence[-1].reference == (
        f"<a81f2@mail.northwind-health.example>, {eml} (DKIM: unsigned)"
    )
    # A ticket reference is not a Message-ID, so it is not compared with the mail's.
    assert by_mail(world, eml, reference="TICKET-4471").allowed


def test_a_mail_that_says_something_else_is_named_for_each_difference(
    world: World, tmp_path: Path
) -> None:
    other = (
        MAIL.replace("Dana.Whitfield@", "Dan@")
        .replace("09:00:00", "09:01:01")
        .replace("<a81f2@", "<zz@")
    )
    eml = stored(world, tmp_path, other)
    assert client_missing(by_mail(world, eml)) == [
        f"{eml} is from dan@northwind-health.example, not the approver {APPROVER}",
        f"{eml} is dated 2026-11-30T09:01:01-06:00, not the approval time "
        "2026-11-30T15:00:00+00:00 given in the request",
        f"{eml} has Message-ID <zz@mail.northwind-health.example>, not the reference "
        "<a81f2@mail.northwind-health.example>",
    ]
    # A minute either way is the same moment; two authors are no single address; no Date and
    # no Message-ID are said as such.
    lax = (
        MAIL.replace("09:00:00", "09:01:00")
        .replace("From: Dana", "From: ann@northwind-health.example, Dana")
        .replace("Date: Mon, 30 Nov 2026 09:01:00 -0600\r\n", "")
        .replace("Message-ID: <a81f2@mail.northwind-health.example>\r\n", "")
    )
    eml = placed(world, lax.replace("To:", "Date: Mon, 30 Nov 2026 09:01:00 -0600\r\nTo:"))
    assert client_missing(by_mail(world, eml)) == [
        f"{eml} is from no single address, not the approver {APPROVER}",
        f"{eml} has Message-ID (none), not the reference <a81f2@mail.northwind-health.example>",
    ]
    eml = placed(world, lax)
    assert f"{eml} has no readable Date header" in client_missing(by_mail(world, eml))
    # A Date in an unknown zone (-0000, RFC 5322 3.3) is no moment either.
    eml = placed(world, MAIL.replace("-0600", "-0000"))
    assert client_missing(by_mail(world, eml)) == [f"{eml} has no readable Date header"]


# --- the client's mail signed with DKIM, its key served by a real named on loopback
# (evidence.verify_dkim, dns_txt, _aligned; the gate records the verdict) ---------------------


@dataclass(frozen=True)
class Signer:
    """One RSA key, published at sel1._domainkey of several domains by a real named."""

    private: bytes
    nameservers: Nameservers

    def sign(self, raw: bytes, domain: str, selector: str = "sel1") -> bytes:
        return dkim.sign(raw, selector.encode(), domain.encode(), self.private) + raw


@pytest.fixture(scope="module")
def signer() -> Iterator[Signer]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    der = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    # 2048 bits: the key is two TXT strings, joined back by the reader (RFC 6376 3.6.2.2).
    record = "v=DKIM1; k=rsa; p=" + base64.b64encode(der).decode()
    published = [("sel1._domainkey", "TXT", record), ("nokey._domainkey", "A", "192.0.2.1")]
    server = NamedServer(
        {
            domain: published
            for domain in ("northwind-health.example", "msp.example", "health.example", "example")
        }
    )
    server.start()
    yield Signer(private, Nameservers((server.host,), port=server.port, timeout=2.0))
    server.stop()


def dkim_verdict(signer: Signer, raw: bytes) -> str:
    """verify_dkim's answer for `raw`, asking the signer's named."""
    mail = parse_mail(raw, Path("changes/evidence/x.eml"))
    status, why = verify_dkim(mail, dns_txt(signer.nameservers))
    return status if why is None else f"{status}: {why}"


def test_a_dkim_signed_approval_is_recorded_as_verified_by_the_gate(
    world: World, tmp_path: Path, signer: Signer
) -> None:
    raw = signer.sign(MAIL.encode(), "northwind-health.example")
    eml = stored(world, tmp_path, raw.decode())
    portfolio, roster = world
    now = TIMES["in window"]
    request = replace(
        request_of(RequestType.OTHER, "none", now),
        client_approval=ClientApproval(
            APPROVER, GIVEN_AT, "<a81f2@mail.northwind-health.example>", eml=eml
        ),
        file=portfolio.root / "changes/requests/CR-0001-nwh.yaml",
    )
    ctx = decide.context(
        portfolio,
        NWH,
        decide.Stage.REVIEW,
        now,
        PLAN,
        roster,
        dnsfunc=dns_txt(signer.nameservers),
    )
    decision = decide.decide(request, [Item(RiskLevel.HIGH)], [approval("sokafor", now)], ctx)
    assert decision.allowed, decision.problems
    assert decision.evidence[-1].reference == (
        f"<a81f2@mail.northwind-health.example>, {eml} (DKIM: verified d=northwind-health.example)"
    )
    # The same mail altered after signing is missing its client approval, saying why.
    altered = placed(world, raw.decode().replace("Subject: Re: CR-0001-nwh", "Subject: Re: CR-2"))
    ctx_request = replace(request, client_approval=replace(request.client_approval, eml=altered))
    refused = decide.decide(ctx_request, [Item(RiskLevel.HIGH)], [approval("sokafor", now)], ctx)
    assert client_missing(refused) == [
        f"{altered}: DKIM: signature 1 (d=northwind-health.example) does not verify: the mail "
        "was altered after it was signed, or the key in DNS is not the signer's"
    ]


def test_only_a_signature_by_the_from_domain_or_a_parent_of_it_counts(signer: Signer) -> None:
    raw = MAIL.encode()
    assert dkim_verdict(signer, signer.sign(raw, "northwind-health.example")) == (
        "verified d=northwind-health.example"
    )
    # A parent of the From domain aligns (relaxed); a top-level label or a domain that merely
    # ends the same way does not.
    sub = raw.replace(b"@northwind-health.example>", b"@mail.northwind-health.example>", 1)
    assert dkim_verdict(signer, signer.sign(sub, "northwind-health.example")) == (
        "verified d=northwind-health.example"
    )
    for domain in ("msp.example", "example", "health.example"):
        assert dkim_verdict(signer, signer.sign(raw, domain)) == (
            f"failed: DKIM: signature 1 is by d={domain}, not the From domain "
            "northwind-health.example"
        )
    # The domain is what follows the last @ (a quoted local part may hold one).
    quoted = raw.replace(b"<Dana.Whitfield@", b'<"dana@msp.example"@', 1)
    assert dkim_verdict(signer, signer.sign(quoted, "northwind-health.example")) == (
        "verified d=northwind-health.example"
    )


def test_every_signature_is_tried_until_one_by_the_from_domain_holds(signer: Signer) -> None:
    raw = MAIL.encode()
    # The platform's own signature on top, the client's below it: the second counts.
    both = signer.sign(signer.sign(raw, "northwind-health.example"), "msp.example")
    assert dkim_verdict(signer, both) == "verified d=northwind-health.example"
    # A signature dkimpy cannot even read is named, and the next one is still tried.
    broken = b"DKIM-Signature: v=1; a=rsa-sha256; d=msp.example\r\n"
    assert dkim_verdict(signer, broken + signer.sign(raw, "northwind-health.example")) == (
        "verified d=northwind-health.example"
    )
    assert dkim_verdict(signer, broken + raw).startswith("failed: DKIM: signature 1: ")
    # The client's altered after signing, then signed again by the platform: each is named.
    altered = signer.sign(raw, "northwind-health.example").replace(b"Approved.", b"Rejected.")
    assert dkim_verdict(signer, signer.sign(altered, "msp.example")) == (
        "failed: DKIM: signature 1 is by d=msp.example, not the From domain "
        "northwind-health.example; signature 2: body hash mismatch (got "
        + dkim_body_hash(altered)
        + ", expected "
        + dkim_body_hash(raw)
        + ")"
    )


def dkim_body_hash(raw: bytes) -> str:
    """The b64 body hash dkimpy names in a mismatch, of the body of `raw`."""
    body = raw.split(b"\r\n\r\n", 1)[1]
    return "b'" + base64.b64encode(hashlib.sha256(body).digest()).decode() + "'"


def test_a_key_not_in_dns_or_dns_that_does_not_answer_fails_the_mail(signer: Signer) -> None:
    raw = MAIL.encode()
    # No such name, and a name without TXT: no key to check the signature with. (dkimpy says
    # "does not verify" for both, as for an altered mail.)
    for selector in ("gone", "nokey"):
        assert dkim_verdict(signer, signer.sign(raw, "northwind-health.example", selector)) == (
            "failed: DKIM: signature 1 (d=northwind-health.example) cannot be checked: no key "
            f"is published at {selector}._domainkey.northwind-health.example (TXT)"
        )
    # A name server that refuses to answer (this one does not serve .test).
    verdict = dkim_verdict(signer, signer.sign(raw, "contoso.test"))
    assert verdict.startswith(
        "failed: DKIM: signature 1 (d=contoso.test) cannot be checked: DNS did not answer for "
        "its key (b'sel1._domainkey.contoso.test.': "
    )
    assert verdict.endswith(" answered REFUSED); check again when it does")
    # An unsigned mail proves no more than the typed fields, and says so.
    assert dkim_verdict(signer, raw) == "unsigned"


def test_a_stored_mail_must_still_be_the_mail_that_was_stored(world: World, tmp_path: Path) -> None:
    eml = stored(world, tmp_path, MAIL)
    path = world[0].root / eml
    path.write_bytes(MAIL.replace("Approved.", "Approved, not.").encode())
    now = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
    try:
        assert client_missing(by_mail(world, eml)) == [
            f"{eml} changed after it was stored: its SHA-256 is now {now} (the name is the hash "
            "of the mail as received)"
        ]
    finally:
        path.unlink()
    (why,) = client_missing(by_mail(world, eml))
    assert why.startswith(f"cannot read {eml}: ")
    for elsewhere in ("evidence/" + path.name, f"changes/evidence/{path.stem}.txt"):
        assert client_missing(by_mail(world, elsewhere)) == [
            f"{elsewhere} is not a stored e-mail (changes/evidence/<sha256>.eml)"
        ]


def test_only_one_approving_mail_with_a_sender_is_stored(world: World, tmp_path: Path) -> None:
    source = tmp_path / "forward.eml"
    source.write_bytes(b"Subject: Fwd: approval\r\n\r\nsee below\r\n")
    with pytest.raises(InputError) as caught:
        store_eml(world[0].root, source)
    assert caught.value.message == "not an e-mail: it has no From address"
    assert (caught.value.file, caught.value.hint) == (
        source,
        "Save the message as received, headers included (.eml), not a forward or print.",
    )
    # Over the 10 MiB an approval may take, by one byte or by a mailbox: the same refusal, with
    # the real limit (a file two bytes over was read_bytes's, naming a limit one byte too high).
    limit = 10 * 1024 * 1024
    dump = tmp_path / "mailbox.eml"
    for size in (limit + 1, limit + 2, 3 * limit):
        dump.write_bytes(MAIL.encode().ljust(size, b"x"))
        with pytest.raises(InputError) as caught:
            store_eml(world[0].root, dump)
        assert caught.value.message == (
            f"{size} bytes is not one approving e-mail (at most {limit})"
        ), size
        assert (caught.value.file, caught.value.hint) == (
            dump,
            "Save the single message (in your mail client: Save as / Download .eml).",
        )
    dump.write_bytes(MAIL.encode().ljust(limit, b"x"))  # at the limit: a mail like any other
    assert store_eml(world[0].root, dump).parent == Path("changes") / "evidence"


def test_a_link_planted_at_a_mails_stored_name_is_never_written_through(tmp_path: Path) -> None:
    # Someone with write access to the repository plants changes/evidence/<hash>.eml as a link
    # to a file elsewhere: storing that mail must not write into the file the link names.
    repo = copy_example(tmp_path / "repo")
    victim = tmp_path / "outside.txt"
    victim.write_text("untouched", encoding="utf-8")
    relative = f"changes/evidence/{hashlib.sha256(MAIL.encode()).hexdigest()}.eml"
    (repo / relative).parent.mkdir(parents=True, exist_ok=True)
    (repo / relative).symlink_to(victim)
    source = tmp_path / "approval.eml"
    source.write_bytes(MAIL.encode())
    assert store_eml(repo, source).as_posix() == relative
    assert victim.read_text(encoding="utf-8") == "untouched"
    assert (repo / relative).is_symlink()


# --- the analyst roster (roster.load_roster and its look-ups) -----------------------------------

JCHEN_KEY = "Wmwwz4+5WfUL7tw45MxbWZJ4kqVwLf++6nmc66s5myg="


def ssh_line(base64_key: str) -> str:
    """The same key as an OpenSSH public key line (RFC 8709)."""
    raw = base64.b64decode(base64_key)
    blob = struct.pack(">I", 11) + b"ssh-ed25519" + struct.pack(">I", 32) + raw
    return f"ssh-ed25519 {base64.b64encode(blob).decode()} jchen@laptop"


def roster_with(tmp_path: Path, old: str, new: str) -> Roster:
    """The example roster with `old` replaced by `new` (the text must be there), loaded."""
    shutil.copytree(REPO / "policy", tmp_path / "policy")
    path = tmp_path / "policy/roster.yaml"
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1), encoding="utf-8")
    return load_roster(tmp_path)


def roster_error(tmp_path: Path, old: str, new: str) -> tuple[str, int | None]:
    with pytest.raises(InputError) as caught:
        roster_with(tmp_path, old, new)
    assert caught.value.file == tmp_path / "policy/roster.yaml"
    return caught.value.message, caught.value.line


def test_a_repository_without_a_roster_is_told_to_write_one(tmp_path: Path) -> None:
    with pytest.raises(InputError) as caught:
        load_roster(tmp_path)
    assert caught.value.message == "no analyst roster"
    assert caught.value.file == tmp_path / "policy/roster.yaml"
    assert caught.value.hint == (
        "Create policy/roster.yaml (see policy/schemas/roster.schema.json); `dmarcops keygen` "
        "prints each analyst's public key."
    )


def test_a_key_that_is_not_ed25519_is_named_at_its_line(tmp_path: Path) -> None:
    truncated = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5"
    assert roster_error(tmp_path / "a", JCHEN_KEY, truncated) == (
        "a key of 'jchen' is not an Ed25519 public key",
        15,
    )
    with pytest.raises(InputError) as caught:
        roster_with(tmp_path / "hint", JCHEN_KEY, truncated)
    assert caught.value.hint == (
        "Paste the base64 line `dmarcops keygen` printed (32 raw bytes), or an OpenSSH "
        "`ssh-ed25519 AAAA...` public key line."
    )
    # A rotated-out key in public_keys is checked too, at its own line.
    rotated = ssh_line("yzZbZo6jjx0wfZrBf0XB6o7sGTNZpGPRJ+vV3JAvXsk=")
    listed = f"{JCHEN_KEY}\n    public_keys:\n      - {rotated}\n      - {truncated}"
    assert roster_error(tmp_path / "b", JCHEN_KEY, listed) == (
        "a key of 'jchen' is not an Ed25519 public key",
        18,
    )


@pytest.mark.parametrize(
    ("old", "new", "said"),
    [
        ("id: sokafor", "id: jchen", "id 'jchen'"),
        ("sam.okafor@msp.example", "Jia.Chen@msp.example", "email 'jia.chen@msp.example'"),
        ("github: sokafor-msp", "github: JCHEN-msp", "github 'jchen-msp'"),
        ("github_id: 7100003", "github_id: 7100001", "github_id '7100001'"),
        (
            "cXuE9qHqShUjT+6AVzvNw8CMICBLW6baZ+DVRH7UYvc=",
            ssh_line(JCHEN_KEY),
            f"key '{JCHEN_KEY}'",
        ),
    ],
    ids=["id", "email", "github", "github-id", "key"],
)
def test_no_two_people_share_an_id_an_address_an_account_or_a_key(
    tmp_path: Path, old: str, new: str, said: str
) -> None:
    assert roster_error(tmp_path, old, new) == (
        f"{said} is also used by the person at line 8",
        24,
    )


def test_a_shared_identity_is_refused_saying_why(tmp_path: Path) -> None:
    with pytest.raises(InputError) as caught:
        roster_with(tmp_path, "id: sokafor", "id: jchen")
    assert caught.value.hint == (
        "Each person has their own id, e-mail, GitHub account and keys: a shared key would let "
        "one person sign as another."
    )


def test_one_person_listing_the_same_key_twice_is_refused(tmp_path: Path) -> None:
    twice = f"{JCHEN_KEY}\n    public_keys: ['{JCHEN_KEY}']"
    assert roster_error(tmp_path, JCHEN_KEY, twice) == (
        f"key '{JCHEN_KEY}' is also used by the person at line 8",
        8,
    )


def test_a_roster_reads_both_key_forms(tmp_path: Path) -> None:
    rotated = base64.b64encode(
        Ed25519PrivateKey.generate().public_key().public_bytes_raw()
    ).decode()
    both = f"public_key: '{ssh_line(JCHEN_KEY)}'\n    public_keys: ['{ssh_line(rotated)}']"
    roster = roster_with(tmp_path, f"public_key: {JCHEN_KEY}", both)
    jchen = roster.get("jchen")
    # Stored as the one spelling the rest of the pipeline compares: base64 of the key bytes.
    assert jchen is not None and (jchen.public_key, jchen.other_keys) == (JCHEN_KEY, (rotated,))
    assert jchen.role is AnalystRole.ANALYST and jchen.is_person
    assert roster.get("nobody") is None and "nobody" not in roster and "jchen" in roster
    assert roster.ids == ("jchen", "mhara", "sokafor", "dmarcops-bot")
    assert roster.policy_root(Path("elsewhere")) == tmp_path
    assert Roster(roster.analysts).policy_root(Path("elsewhere")) == Path("elsewhere")
    # A key is found by its bytes, written either way; an unreadable one is nobody's.
    assert roster.id_of_key(JCHEN_KEY) == "jchen"
    assert roster.id_of_key(f"  {ssh_line(rotated)}  ") == "jchen"
    assert roster.id_of_key("H9IRYgV4HSH9KOZ2lAIUa3xF1XTZdQP2Ryk5pTcEdSs=") == "mhara"
    assert roster.id_of_key("not a key") is None
    # A key with a character that is not base64 is not read around it.
    assert roster.id_of_key(JCHEN_KEY[:10] + "!" + JCHEN_KEY[10:]) is None
    line = ssh_line(JCHEN_KEY).split()
    assert roster.id_of_key(f"{line[0]} {line[1][:10]}!{line[1][10:]}") is None
    assert roster.id_of_key("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5") is None


def test_keys_may_all_be_listed_under_public_keys(tmp_path: Path) -> None:
    roster = roster_with(tmp_path, f"public_key: {JCHEN_KEY}", f"public_keys: ['{JCHEN_KEY}']")
    jchen = roster.get("jchen")
    assert jchen is not None and (jchen.public_key, jchen.other_keys) == (JCHEN_KEY, ())
    # The start date is read: the first 30 days after it are shadowing.
    assert jchen.start_date == date(2024, 3, 4)


def test_a_github_account_is_the_rosters_by_its_id_first(world: World) -> None:
    roster = world[1]
    found = roster.by_github("renamed", 7100003)
    assert found is not None and found.id == "sokafor"
    found = roster.by_github("SOKAFOR-MSP")
    assert found is not None and found.id == "sokafor"
    # The roster's login, now someone else's account: not the roster's person.
    assert roster.by_github("sokafor-msp", 99) is None
    # A login without an id on the roster is still found by login.
    found = roster.by_github("dmarcops-bot", 99)
    assert found is not None and found.id == "dmarcops-bot"
    assert roster.by_github("stranger") is None


# --- the request's signature file (requests.read_signature, RequestSignature.from_json) ---------


def signature_file(tmp_path: Path, content: object) -> tuple[RequestSignature | None, str | None]:
    path = signature_path(tmp_path, "CR-0001-nwh")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(content if isinstance(content, str) else json.dumps(content), encoding="utf-8")
    return read_signature(path)


def test_a_signature_file_round_trips_and_verifies(tmp_path: Path) -> None:
    signed = author_signature()
    assert read_signature(signature_path(tmp_path, "CR-0001-nwh")) == (None, None)
    read, problem = signature_file(tmp_path, signed.to_json())
    assert problem is None and read is not None
    assert read == replace(signed, file=signature_path(tmp_path, "CR-0001-nwh"))
    assert signed.to_json() == {
        "format_version": 1,
        "request_id": "CR-0001-nwh",
        "request_sha256": REQ_SHA,
        "signer": "jchen",
        "signed_at": "2026-11-23T16:00:00Z",
        "signature": signed.signature,
    }


@pytest.mark.parametrize(
    ("change", "why"),
    [
        ({"format_version": 2}, "format_version is not 1"),
        ({"format_version": None}, "format_version is not 1"),
        ({"request_id": 7}, "'request_id' is missing or not a string"),
        ({"request_sha256": None}, "'request_sha256' is missing or not a string"),
        ({"signer": None}, "'signer' is missing or not a string"),
        ({"signed_at": None}, "'signed_at' is missing or not a string"),
        ({"signature": None}, "'signature' is missing or not a string"),
        ({"signed_at": "2026-11-20 12:00"}, "signed_at '2026-11-20 12:00' is not a UTC time"),
    ],
    ids=[
        "version-2",
        "no-version",
        "request-id",
        "request-sha256",
        "signer",
        "signed-at",
        "signature",
        "signed-at-form",
    ],
)
def test_a_signature_file_that_is_not_one_says_which_field(
    tmp_path: Path, change: dict[str, object], why: str
) -> None:
    data = {**author_signature().to_json(), **change}
    data = {k: v for k, v in data.items() if v is not None}
    assert signature_file(tmp_path, data) == (
        None,
        f"its signature file CR-0001-nwh.sig.json is not a request signature: {why}",
    )


def test_a_signature_file_that_is_not_json_cannot_be_read(tmp_path: Path) -> None:
    assert signature_file(tmp_path, ["a", "list"]) == (
        None,
        "its signature file CR-0001-nwh.sig.json is not a request signature: not a JSON object",
    )
    sig, problem = signature_file(tmp_path, "{not json")
    assert sig is None and problem is not None
    assert problem.startswith(
        "cannot read its signature file CR-0001-nwh.sig.json: request signature: "
    )


# --- whose key signs (identity.load_signer, load_private_key, generate_key, verify_signature) ---


def test_a_key_speaks_for_its_roster_owner_only(world: World, tmp_path: Path) -> None:
    roster = world[1]
    jchen = load_signer(KEYS / "jchen.pem", roster)
    assert (jchen.analyst, jchen.ssh_key) == ("jchen", None)
    assert load_signer(KEYS / "jchen.pem", roster, claimed="jchen").analyst == "jchen"
    with pytest.raises(InputError) as caught:
        load_signer(KEYS / "jchen.pem", roster, claimed="mhara")
    assert (caught.value.message, caught.value.file) == (
        "this key is not mhara's: it is jchen's",
        KEYS / "jchen.pem",
    )
    stranger = tmp_path / "stranger.pem"
    public = generate_key(stranger)
    assert stranger.stat().st_mode & 0o777 == 0o600
    assert roster.id_of_key(public) is None
    with pytest.raises(InputError) as caught:
        load_signer(stranger, roster)
    assert caught.value.message == "this key is not on the analyst roster"
    with pytest.raises(InputError) as caught:
        generate_key(stranger)
    assert caught.value.message == "a key file already exists here"
    assert public_key_text(load_private_key(stranger)) == public


def test_a_signature_verifies_only_with_a_persons_roster_key(world: World) -> None:
    roster = world[1]
    payload = signing_bytes({"b": 1, "a": "x"})
    assert payload == b'{"a":"x","b":1}'
    signature = load_signer(KEYS / "jchen.pem", roster).sign(payload)
    assert verify_signature(roster, "jchen", payload, signature)
    assert not verify_signature(roster, "sokafor", payload, signature)
    assert not verify_signature(roster, "ghost", payload, signature)
    assert not verify_signature(roster, "jchen", payload + b" ", signature)
    assert not verify_signature(roster, "jchen", payload, signature[:-4])
    assert not verify_signature(roster, "jchen", payload, "not base64!")
    bot = load_signer(KEYS / "dmarcops-bot.pem", roster).sign(payload)
    assert not verify_signature(roster, "dmarcops-bot", payload, bot)


def ecdsa_pem(path: Path) -> Path:
    path.write_bytes(
        generate_private_key(SECP256R1()).private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return path


def test_a_key_file_that_is_not_an_ed25519_pem_is_refused_naming_it_and_what_to_do(
    tmp_path: Path,
) -> None:
    text = tmp_path / "notes.pem"
    text.write_text("hello\n")
    with pytest.raises(InputError) as caught:
        load_private_key(text)
    assert caught.value.message == "not an unencrypted PEM private key"
    assert (caught.value.file, caught.value.hint) == (
        text,
        "Use the file `dmarcops keygen --out FILE` wrote.",
    )
    ecdsa = ecdsa_pem(tmp_path / "ecdsa.pem")
    with pytest.raises(InputError) as caught:
        load_private_key(ecdsa)
    assert caught.value.message == "not an Ed25519 key"
    assert (caught.value.file, caught.value.hint) == (
        ecdsa,
        "Create one with `dmarcops keygen --out FILE`.",
    )
    # A key file is at most 64 KiB: anything larger (a FIFO, /dev/zero, a wrong file) is
    # refused by its size before it is parsed.
    junk = tmp_path / "junk.pem"
    junk.write_bytes(b"x" * 64 * 1024)
    with pytest.raises(InputError) as caught:
        load_private_key(junk)
    assert caught.value.message == "not an unencrypted PEM private key"
    junk.write_bytes(b"x" * (64 * 1024 + 1))
    with pytest.raises(InputError) as caught:
        load_private_key(junk)
    assert caught.value.message == "refused: the file is 65537 bytes, over the limit of 65536 bytes"


# --- approvals on disk (approvals.write_approval, SignedApprovalFiles, load_plan_file) ----------


def test_an_approval_is_stored_once_and_read_back_for_its_plan_and_request(
    tmp_path: Path,
) -> None:
    now = TIMES["in window"]
    given = approval("sokafor", now)
    path = write_approval(tmp_path, given)
    assert path == tmp_path / f"changes/approvals/{PLAN}/CR-0001-nwh--sokafor.json"
    assert json.loads(path.read_text())["analyst"] == "sokafor"
    with pytest.raises(InputError) as caught:
        write_approval(tmp_path, given)
    assert caught.value.message == "sokafor has already approved CR-0001-nwh for this plan"
    lead = approval("mhara", now)
    write_approval(tmp_path, lead)
    write_approval(tmp_path, replace(given, request_id="CR-0001-nwh-2"))
    files = SignedApprovalFiles(tmp_path)
    read = files.approvals_for(PLAN, "CR-0001-nwh")
    assert [(a.analyst, a.reference) for a in read] == [
        ("mhara", f"changes/approvals/{PLAN}/CR-0001-nwh--mhara.json"),
        ("sokafor", f"changes/approvals/{PLAN}/CR-0001-nwh--sokafor.json"),
    ]
    assert read[1] == replace(given, reference=read[1].reference)
    assert files.approvals_for("f0" * 32, "CR-0001-nwh") == []
    assert files.approvals_for("../" + PLAN, "CR-0001-nwh") == []
    assert [a.analyst for a in files.history("CR-0001-nwh")] == ["mhara", "sokafor"]
    # Whoever opened the pull request never approves it.
    excluding = ExcludingAnalysts(files, frozenset({"mhara"}))
    assert [a.analyst for a in excluding.approvals_for(PLAN, "CR-0001-nwh")] == ["sokafor"]


def test_approvals_read_ahead_are_handed_out_once_then_read_again(tmp_path: Path) -> None:
    # `dmarcops apply` reads the approvals while it plans again (pipeline/apply/gating.py): the
    # gate gets that answer once; asked again, the files answer as they are now.
    now = TIMES["in window"]
    write_approval(tmp_path, approval("sokafor", now))
    files = SignedApprovalFiles(tmp_path)
    files.read_ahead(PLAN, ["CR-0001-nwh", "CR-0002-nwh"])
    write_approval(tmp_path, approval("mhara", now))
    assert [a.analyst for a in files.approvals_for(PLAN, "CR-0001-nwh")] == ["sokafor"]
    assert [a.analyst for a in files.approvals_for(PLAN, "CR-0001-nwh")] == ["mhara", "sokafor"]
    assert files.approvals_for(PLAN, "CR-0002-nwh") == []
    # Read ahead for another plan, or before the folder existed, answers nothing for this one.
    other = SignedApprovalFiles(tmp_path)
    other.read_ahead("f0" * 32, ["CR-0001-nwh"])
    assert [a.analyst for a in other.approvals_for(PLAN, "CR-0001-nwh")] == ["mhara", "sokafor"]


def test_an_approval_unreadable_when_read_ahead_is_refused_when_asked_for(tmp_path: Path) -> None:
    now = TIMES["in window"]
    broken = write_approval(tmp_path, approval("sokafor", now))
    broken.write_text("{", encoding="utf-8")
    write_approval(tmp_path, replace(approval("sokafor", now), request_id="CR-0002-nwh"))
    files = SignedApprovalFiles(tmp_path)
    # The first request's file cannot be read; the second request is still read ahead.
    files.read_ahead(PLAN, ["CR-0001-nwh", "CR-0002-nwh"])
    (tmp_path / f"changes/approvals/{PLAN}/CR-0002-nwh--sokafor.json").unlink()
    assert [a.request_id for a in files.approvals_for(PLAN, "CR-0002-nwh")] == ["CR-0002-nwh"]
    with pytest.raises(InputError) as caught:
        files.approvals_for(PLAN, "CR-0001-nwh")
    assert caught.value.message.startswith("not an approval file")
    assert caught.value.file == broken


def test_each_link_present_is_shown_with_who_when_and_its_reference(world: World) -> None:
    # `dmarcops requests check` prints each link as "present: <link>".
    now = TIMES["in window"]
    decision = gate(world, decide.Stage.REVIEW, [FactItem()], approvals=(approval("sokafor", now),))
    request = decision.request
    assert request.signature is not None
    signed_at = request.signature.signed_at.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert [str(link) for link in decision.evidence] == [
        f"author: jchen at {signed_at} (CR-0001-nwh.yaml)",
        "peer review: sokafor at 2026-12-01T15:00:00Z (signed)",
    ]
    # A link without a time shows none.
    undated = replace(decision.evidence[0], at=None)
    assert str(undated) == "author: jchen (CR-0001-nwh.yaml)"


@pytest.mark.parametrize(
    ("change", "why"),
    [
        ({"plan_hash": "../../x"}, "'../../x' is not a plan hash (64 hex digits)"),
        ({"request_id": "CR-1/../x"}, "'CR-1/../x' is not a change request id"),
        ({"analyst": "Sokafor"}, "'Sokafor' is not an analyst id"),
    ],
    ids=["plan-hash", "request-id", "analyst-id"],
)
def test_an_approval_that_would_leave_its_folder_is_not_stored(
    tmp_path: Path, change: dict[str, str], why: str
) -> None:
    with pytest.raises(InputError) as caught:
        write_approval(tmp_path, replace(approval("sokafor", TIMES["in window"]), **change))
    assert caught.value.message == why
    assert not (tmp_path / "changes").exists()


def test_an_approval_file_that_is_not_one_is_named(tmp_path: Path) -> None:
    path = write_approval(tmp_path, approval("sokafor", TIMES["in window"]))
    data = json.loads(path.read_text())
    path.write_text(json.dumps({**data, "approved_at": "yesterday"}))
    with pytest.raises(InputError) as caught:
        SignedApprovalFiles(tmp_path).approvals_for(PLAN, "CR-0001-nwh")
    assert caught.value.message == "not an approval file: approved_at 'yesterday' is not a UTC time"
    assert caught.value.file == path
    for key_name in ("plan_hash", "request_id", "analyst", "source", "signature"):
        path.write_text(json.dumps({k: v for k, v in data.items() if k != key_name}))
        with pytest.raises(InputError) as caught:
            SignedApprovalFiles(tmp_path).history("CR-0001-nwh")
        assert (
            caught.value.message == f"not an approval file: {key_name!r} is missing or not a string"
        )
    path.write_text("[]")
    with pytest.raises(InputError) as caught:
        SignedApprovalFiles(tmp_path).history("CR-0001-nwh")
    assert caught.value.message == "not an approval file: not a JSON object"
    # A format-1 file (no content hash) reads back with none; a simulated flag only when true.
    format_1 = {k: v for k, v in data.items() if k != "request_sha256"}
    path.write_text(json.dumps({**format_1, "simulated": "yes"}))
    (read,) = SignedApprovalFiles(tmp_path).history("CR-0001-nwh")
    assert (read.request_sha256, read.simulated) == ("", False)
    path.write_text(json.dumps({**data, "simulated": True}))
    (read,) = SignedApprovalFiles(tmp_path).history("CR-0001-nwh")
    assert read.simulated


def saved_plan(tmp_path: Path, **change: object) -> Path:
    entry = {
        "client": NWH,
        "zone": ZONE,
        "name": "_dmarc",
        "type": "TXT",
        "action": "update",
        "risk": "high",
        "before": ["v=DMARC1; p=none"],
        "after": ["v=DMARC1; p=reject"],
        "ttl": {"before": 3600, "after": 300},
    }
    entry.update(change)
    planned = PlannedChange(
        NWH,
        ZONE,
        "_dmarc",
        "TXT",
        "update",
        RiskLevel.HIGH,
        ("v=DMARC1; p=none",),
        ("v=DMARC1; p=reject",),
        3600,
        300,
    )
    path = tmp_path / "plan.json"
    path.write_text(
        json.dumps({"plan_hash": hash_of_changes([planned]), "changes": [entry]}),
        encoding="utf-8",
    )
    return path


def test_a_saved_plan_is_read_only_when_its_hash_is_the_hash_of_its_changes(
    tmp_path: Path,
) -> None:
    path = saved_plan(tmp_path)
    plan = load_plan_file(path)
    assert plan.path == path
    (change,) = plan.changes
    assert change == PlannedChange(
        NWH,
        ZONE,
        "_dmarc",
        "TXT",
        "update",
        RiskLevel.HIGH,
        ("v=DMARC1; p=none",),
        ("v=DMARC1; p=reject",),
        3600,
        300,
    )
    # The hash `dmarcops plan` writes (pipeline/plan/items.py plan_hash) for this change, and
    # the one approvals sign: it may not change with how it is recomputed.
    assert plan.plan_hash == "e8476d2d371ef0a7770d45977aec46b32b0bed0450a700e7d3e32e6b7d3fdc93"
    # Each value is part of the hash: the TTL, the values and their names.
    for edit in ({"ttl": {"before": 3600, "after": 60}}, {"after": ["v=DMARC1; p=none"]}):
        with pytest.raises(InputError) as caught:
            load_plan_file(saved_plan(tmp_path, **edit))
        assert caught.value.message.startswith(f"the plan's plan_hash {plan.plan_hash[:16]} is not")
    # The order of changes and of values does not change it.
    two = PlannedChange(NWH, ZONE, "", "MX", "add", RiskLevel.LOW, (), ("b", "a"), None, 60)
    swapped = replace(two, after=("a", "b"))
    assert hash_of_changes([change, two]) == hash_of_changes([swapped, change])
    with pytest.raises(InputError) as caught:
        load_plan_file(saved_plan(tmp_path, ttl=None))
    assert caught.value.message.startswith("not a JSON plan: missing or invalid ")
    assert (caught.value.file, caught.value.hint) == (
        path,
        "Save one with `dmarcops plan --out plan.json`.",
    )
    # A value outside ASCII is hashed as its JSON escape, as `dmarcops plan` hashes it.
    accented = replace(
        change, after=("v=DMARC1; p=reject; ruf=mailto:é@x.example",), ttl_before=None
    )
    assert hash_of_changes([accented]) == (
        "6c65c9a0ad5544a84f1d1f48345758eccbdadcef8aae4d669ccbc53d01762adb"
    )
    with pytest.raises(InputError) as caught:
        load_plan_file(saved_plan(tmp_path, after=["v=DMARC1; p=quarantine"]))
    edited = replace(change, after=("v=DMARC1; p=quarantine",))
    assert caught.value.message == (
        f"the plan's plan_hash {plan.plan_hash[:16]} is not the hash of its changes "
        f"({hash_of_changes([edited])[:16]})"
    )
    assert (caught.value.file, caught.value.hint) == (
        path,
        "The file was edited after `dmarcops plan` wrote it: plan again.",
    )
    path.write_text("{", encoding="utf-8")
    with pytest.raises(InputError) as caught:
        load_plan_file(path)
    assert caught.value.message.startswith("not a JSON plan")
    assert caught.value.hint == "Save one with `dmarcops plan --out plan.json`."


# --- manual changes (manual.manual_items, manual_plan, judge, approve) ---------------------------

PLATFORM_DETAILS = (
    ("platform", "Microsoft 365"),
    ("setting", "DKIM signing"),
    ("current_value", "disabled"),
    ("new_value", "enabled"),
)
DOMAINS = ("northwind-health.example", "nwh-patients.example")


def manual_request(rtype: RequestType, details: tuple[tuple[str, str], ...]) -> ChangeRequest:
    """jchen's signed manual request CR-0007-nwh over both of northwind-health's domains."""
    return filed(
        "CR-0007-nwh",
        *DOMAINS,
        rtype=rtype,
        details=details,
        signature=author_signature(request_id="CR-0007-nwh"),
    )


def test_a_platform_change_is_one_item_per_domain_judged_by_the_risk_rules(world: World) -> None:
    now = TIMES["in window"]
    request = manual_request(RequestType.PLATFORM, PLATFORM_DETAILS)
    items = manual_items(world[0], request, now)
    assert [(i.zone, i.fqdn, i.name, i.type) for i in items] == [
        (zone, zone, "", "PLATFORM") for zone in DOMAINS
    ]
    assert {i.client for i in items} == {NWH}
    item = items[0]
    assert (item.before, item.after) == (("DKIM signing: disabled",), ("DKIM signing: enabled",))
    assert [str(f) for f in item.facts] == ["platform.setting disabled->enabled"]
    assert dict(item.facts[0].attrs) == {"platform": "Microsoft 365", "setting": "DKIM signing"}
    assert (item.risk, item.rollback_hours, item.action) == (RiskLevel.MEDIUM, 8, "update")
    assert item.reasons[0].startswith("medium: a tenant-level setting at the mail platform")
    assert (item.ttl_before, item.ttl_after) == (None, None)
    with pytest.raises(InputError) as caught:
        manual_items(world[0], filed("CR-0001-nwh", ZONE), now)
    assert caught.value.message == "CR-0001-nwh is a other request: it has a DNS plan"


def test_a_manual_plans_hash_is_its_request_and_items(world: World) -> None:
    now = TIMES["in window"]
    request = manual_request(RequestType.PLATFORM, PLATFORM_DETAILS)
    plan = manual_plan(world[0], request, now, None)
    assert plan.checks == {} and plan.items == manual_items(world[0], request, now)
    assert plan.plan_hash == manual_plan_hash(request, plan.items)
    assert manual_plan_hash(request, plan.items[::-1]) == plan.plan_hash
    assert manual_plan_hash(request, plan.items[:1]) != plan.plan_hash
    assert manual_plan_hash(replace(request, sha256="d4" * 32), plan.items) != plan.plan_hash
    assert manual_plan_hash(replace(request, id="CR-0008-nwh"), plan.items) != plan.plan_hash
    switch = manual_request(
        RequestType.DKIM_SWITCH, (("current_selector", "selector1"), ("new_selector", "s2026"))
    )
    assert manual_plan_hash(switch, plan.items) != plan.plan_hash


def test_a_dkim_switch_is_low_risk_only_on_the_rotation_schedule(world: World) -> None:
    now = TIMES["in window"]
    details = (("current_selector", " selector1 "), ("new_selector", " s2026 "))
    request = manual_request(RequestType.DKIM_SWITCH, details)
    off = manual_items(world[0], request, now)
    assert [(i.fqdn, i.type, i.before, i.after) for i in off] == [
        (f"s2026._domainkey.{zone}", "DKIM-SWITCH", ("selector1",), ("s2026",)) for zone in DOMAINS
    ]
    assert [str(f) for f in off[0].facts] == ["dkim.active_selector selector1->s2026"]
    assert off[0].risk is RiskLevel.MEDIUM
    lifecycle = world[0].clients[NWH].dkim[ZONE]
    planned = replace(lifecycle, scheduled=(ScheduledSelector("s2026", date(2026, 12, 1)),))
    scheduled = with_client(world, dkim={ZONE: planned})
    on, other = manual_items(scheduled[0], request, now)
    assert (on.risk, other.risk) == (RiskLevel.LOW, RiskLevel.MEDIUM)


def test_a_manual_change_is_approved_by_a_peer_through_the_one_gate(world: World) -> None:
    portfolio, roster = world
    now = TIMES["in window"]
    request = manual_request(RequestType.PLATFORM, PLATFORM_DETAILS)
    plan = manual_plan(portfolio, request, now, None)
    before = judge(portfolio, plan, decide.Stage.REVIEW, now, roster, [])
    assert [p.role for p in decide.missing(before)] == ["peer review"]
    with pytest.raises(GateRefused) as caught:
        approve(portfolio, plan, load_signer(KEYS / "jchen.pem", roster), now, roster)
    assert caught.value.message == (
        "jchen may not approve CR-0007-nwh (medium risk): jchen wrote CR-0007-nwh: the author "
        "cannot review it (the peer review is what catches the mistakes the author missed) "
        "[author-approves-own]"
    )
    given, after = approve(portfolio, plan, load_signer(KEYS / "sokafor.pem", roster), now, roster)
    assert after.allowed, after.problems
    assert (given.plan_hash, given.analyst, given.request_sha256) == (
        plan.plan_hash,
        "sokafor",
        REQ_SHA,
    )
    stored = SignedApprovalFiles(portfolio.root).approvals_for(plan.plan_hash, "CR-0007-nwh")
    assert [a.analyst for a in stored] == ["sokafor"]
    assert not stored[0].simulated


# --- writing requests (authoring.new_request, next_request_id, sign_request) --------------------


def test_a_new_request_holds_a_prompt_for_everything_the_analyst_supplies(world: World) -> None:
    templates = load_templates(world[0].root)
    text = new_request(
        templates.get("emergency-rollback"),
        NWH,
        [f"{ZONE} _dmarc TXT", ZONE],
        "jchen",
        rollback_of="2026-1247",
    )
    lines = text.splitlines()
    assert lines[:13] == [
        '# Change request from the "Emergency rollback" ticket template '
        "(policy/templates/emergency-rollback.yaml).",
        "# Routes through: emergency: post-hoc peer review within 24 hours, logged at once.",
        "# Schema: policy/schemas/change-request.schema.json",
        "# Replace every <<...>> prompt; a request that still holds one is refused.",
        "type: emergency-rollback",
        'client: "northwind-health"',
        "covers:",
        '  - "northwind-health.example _dmarc TXT"',
        '  - "northwind-health.example"',
        'author: "jchen"',
        'rationale: "<<what the rollback restores and why that stops the breakage>>"',
        "evidence:",
        '  - "<<bounce messages, report excerpts or the client\'s incident ticket>>"',
    ]
    assert lines[13:19] == [
        'rollback_of: "2026-1247"',
        'emergency_reason: "<<why this is an emergency: what is breaking now, since when (UTC), '
        'for whom>>"',
        "details:",
        '  current_state: "<<the live record value that is breaking mail>>"',
        '  target_state: "<<the value to roll back to>>"',
        '  notified: "<<who was notified, and when (UTC): client contact, on-call peer>>"',
    ]
    # The optional fields, as comments to fill in.
    assert lines[19:] == [
        "# requested_risk: low          # optional; a level below the computed one is refused",
        "# client_approval:             # required for high-risk changes (p=reject, removing a",
        "#                              # sender, a regulated client's SPF/RUA, a freeze)",
        "#   approver: name@client.example            # one of the client's authorised_approvers",
        "#   at: 2026-06-08T09:14:00Z                 # UTC",
        '#   reference: "<message-id@mail.client.example>"   # or a ticket id such as CHG-2291',
        "# on_call: ROSTER-ID           # the client's on-call owner, who covers a rollback window",
        "#                              # ending outside staffed hours (the Friday rule)",
    ]
    assert text.endswith("(the Friday rule)\n")
    assert 'rollback_of: "<<the record number, e.g. 2026-1247>>"' in new_request(
        templates.get("emergency-rollback"), NWH, [ZONE], "jchen"
    )
    platform = new_request(templates.get("platform"), NWH, [ZONE], "jchen").splitlines()
    assert platform[0].startswith('# Change request from the "Platform change" ticket template')
    at = platform.index("steps:")
    assert platform[at : at + 4] == [
        "steps:",
        '  - "<<each step at the platform, in order, e.g. Admin centre > Email authentication > '
        'DKIM > Enable>>"',
        "checklist:",
        '  - "<<what proves it worked, e.g. a test mail to an outside mailbox passes DKIM as '
        'd=client.example>>"',
    ]
    assert "details:" not in new_request(templates.get("other"), NWH, [ZONE], "jchen")


def test_request_numbers_count_across_clients(tmp_path: Path) -> None:
    assert next_request_id(tmp_path, NWH) == "CR-0001-northwind-health"
    repo = copy_example(tmp_path / "repo")
    assert next_request_id(repo, "contoso-retail") == "CR-0007-contoso-retail"
    (repo / "changes/requests/CR-0123-x.yaml").write_text("")
    (repo / "changes/requests/notes-CR-0999.txt").write_text("")
    assert next_request_id(repo, NWH) == "CR-0124-northwind-health"


def test_only_the_author_signs_a_request_and_the_signature_verifies(tmp_path: Path) -> None:
    repo = copy_example(tmp_path)
    roster = load_roster(repo)
    at = datetime(2026, 12, 1, 9, 30, 15, 999_000, tzinfo=UTC)
    with pytest.raises(InputError) as caught:
        sign_request(repo, "CR-0001-fabrikam-labs", load_signer(KEYS / "mhara.pem", roster), at)
    assert caught.value.message == (
        "the key is mhara's, but CR-0001-fabrikam-labs's author: is jchen"
    )
    assert caught.value.file == repo / "changes/requests/CR-0001-fabrikam-labs.yaml"
    assert caught.value.line == 7
    assert caught.value.hint == (
        "A request is signed by its author. To take it over, set author: to your own roster id "
        "first (the author is who is accountable for it)."
    )
    signed = sign_request(
        repo, "CR-0001-fabrikam-labs", load_signer(KEYS / "jchen.pem", roster), at, roster
    )
    assert signed.signed_at == at.replace(microsecond=0)
    assert signed.file == repo / "changes/requests/CR-0001-fabrikam-labs.sig.json"
    read, problem = read_signature(signed.file)
    assert problem is None and read == signed
    assert signed.file.read_text() == json.dumps(signed.to_json(), indent=2, sort_keys=True) + "\n"
    assert verify_signature(roster, "jchen", signed.payload(), signed.signature)
    with pytest.raises(InputError) as caught:
        sign_request(repo, "CR-0404-nobody", load_signer(KEYS / "jchen.pem", roster), at)
    assert "CR-0404-nobody" in caught.value.message


@dataclass(frozen=True)
class PolicyEdit:
    """A pending edit under policy/, as the plan lists it: no request covers it, a seal does."""

    kind: object = RecordKind.POLICY
    risk: RiskLevel = RiskLevel.HIGH
    client: str = ""
    zone: str = "policy"
    name: str = "policy/gate.yaml"
    type: str = "FILE"


def test_a_manual_request_never_claims_a_planned_record(world: World) -> None:
    platform = filed("CR-0007-nwh", ZONE, rtype=RequestType.PLATFORM)
    assert cover([FactItem()], [platform]).uncovered == (FactItem(),)


def test_a_policy_edit_needs_no_request_and_the_changes_after_it_still_do(world: World) -> None:
    request = filed("CR-0001-nwh", ZONE)
    dmarc = FactItem()
    fabrikam = FactItem(client="fabrikam-labs", zone="fabrikam.example")
    # The kind as the plan has it (an enum) or as text.
    for edit in (PolicyEdit(), PolicyEdit(kind="policy")):
        coverage = cover([edit, dmarc, fabrikam], [request])
        assert coverage.covered == ((dmarc, request),)
        assert coverage.uncovered == (fabrikam,)
    # Any other kind needs its request.
    assert cover([PolicyEdit(kind="dmarc")], [request]).uncovered == (PolicyEdit(kind="dmarc"),)


def test_a_manual_plans_hash_is_stable_so_stored_approvals_keep_counting(world: World) -> None:
    request = manual_request(RequestType.PLATFORM, PLATFORM_DETAILS)
    plan = manual_plan(world[0], request, TIMES["in window"], None)
    # Approvals sign this value: any change to how it is computed voids every stored approval.
    assert plan.plan_hash == "a5db9d41a8935651a08f45cb37b2161f682753e1307e3a8f5fdf68bc3eca7a04"
    # A value outside ASCII is hashed as its JSON escape, as every other signed payload is.
    german = tuple(
        (k, "aktiviert (geprüft)" if k == "new_value" else v) for k, v in PLATFORM_DETAILS
    )
    plan = manual_plan(world[0], replace(request, details=german), TIMES["in window"], None)
    assert plan.plan_hash == "57ac52aa312c3469d93d118a6288cb57af5a33bee4895482835ba6c5b9d32d1c"


def test_a_dkim_switch_is_judged_with_the_live_answers_of_its_plan(world: World) -> None:
    portfolio, roster = world
    now = TIMES["in window"]
    details = (("current_selector", "selector1"), ("new_selector", "s2026"))
    request = manual_request(RequestType.DKIM_SWITCH, details)
    items = manual_items(portfolio, request, now)
    plan_hash = manual_plan_hash(request, items)
    peer = [sign(key("sokafor"), plan_hash, "CR-0007-nwh", "sokafor", now, REQ_SHA)]
    published = {(zone, "s2026"): (True, "a valid key") for zone in DOMAINS}
    plan = ManualPlan(request, items, plan_hash, published)
    assert judge(portfolio, plan, decide.Stage.REVIEW, now, roster, peer).allowed
    unchecked = ManualPlan(request, items, plan_hash, {})
    assert [
        p.rule
        for p in decide.refused(judge(portfolio, unchecked, decide.Stage.REVIEW, now, roster, peer))
    ] == [
        "dkim-switch-unverified",
        "dkim-switch-unverified",
    ]


def closed_resolver() -> Nameservers:
    """A resolver on loopback that answers nothing: the port was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return Nameservers(("127.0.0.1",), port=port, timeout=0.2)


def test_a_dkim_switch_plan_reads_each_new_selector_through_the_provider(tmp_path: Path) -> None:
    # The sandbox provider serves sandbox/live/: northwind-health.example publishes the key at
    # s2099, nwh-patients.example points s2099 by CNAME at a vendor that the resolver given
    # cannot reach. (The settings name no resolver, so only the one given can follow it.)
    repo = copy_example(tmp_path)
    key_value = re.search(
        r"s2026\._domainkey:\n  type: TXT\n  value: (.*)\n",
        (repo / "zones/fabrikam-labs/fabrikam.example.yaml").read_text(encoding="utf-8"),
    )
    assert key_value is not None
    live = repo / "sandbox/live/northwind-health.example.yaml"
    live.write_text(
        live.read_text(encoding="utf-8").replace(
            "selector1._domainkey:",
            f"s2099._domainkey:\n  type: TXT\n  value: {key_value.group(1)}\nselector1._domainkey:",
        ),
        encoding="utf-8",
    )
    patients = repo / "sandbox/live/nwh-patients.example.yaml"
    patients.write_text(
        patients.read_text(encoding="utf-8")
        + "s2099._domainkey:\n  type: CNAME\n  value: s2099.dkim.vendor.example.\n",
        encoding="utf-8",
    )
    details = (("current_selector", "selector1"), ("new_selector", " s2099 "))
    request = manual_request(RequestType.DKIM_SWITCH, details)
    plan = manual_plan(load_portfolio(repo), request, TIMES["in window"], closed_resolver())
    assert [item.zone for item in plan.items] == list(DOMAINS)
    assert plan.plan_hash == manual_plan_hash(request, plan.items)
    assert list(plan.checks) == [(domain, "s2099") for domain in DOMAINS]
    assert plan.checks[(DOMAINS[0], "s2099")] == (
        True,
        "s2099._domainkey.northwind-health.example TXT holds a valid key (read through the "
        "provider)",
    )
    valid, detail = plan.checks[(DOMAINS[1], "s2099")]
    assert not valid
    assert detail.startswith(
        "s2099._domainkey.nwh-patients.example points to s2099.dkim.vendor.example., which has "
        "no key: "
    )
    # Any other manual change has nothing to look up.
    platform = manual_request(RequestType.PLATFORM, PLATFORM_DETAILS)
    assert manual_plan(load_portfolio(repo), platform, TIMES["in window"], None).checks == {}


def test_each_approval_of_a_manual_change_adds_to_those_before_it(tmp_path: Path) -> None:
    repo = copy_example(tmp_path)
    portfolio, roster = load_portfolio(repo), load_roster(repo)
    now = TIMES["in window"]
    request = manual_request(RequestType.PLATFORM, PLATFORM_DETAILS)
    plan = manual_plan(portfolio, request, now, None)
    approve(portfolio, plan, load_signer(KEYS / "sokafor.pem", roster), now, roster)
    given, after = approve(
        portfolio, plan, load_signer(KEYS / "mhara.pem", roster), now, roster, simulated=True
    )
    assert given.simulated
    assert [(e.role, e.who) for e in after.evidence] == [
        ("author", "jchen"),
        ("peer review", "sokafor"),
        ("peer review", "mhara"),
    ]
    # Every refusal is named, on one line, against the request's file.
    self_serve = replace(
        portfolio,
        clients={**portfolio.clients, NWH: replace(portfolio.clients[NWH], tier="self-serve")},
    )
    with pytest.raises(GateRefused) as caught:
        approve(self_serve, plan, load_signer(KEYS / "jchen.pem", roster), now, roster)
    assert caught.value.message == (
        f"jchen may not approve CR-0007-nwh (medium risk): {SELF_SERVE} [self-serve-tier]; "
        "jchen wrote CR-0007-nwh: the author cannot review it (the peer review is what catches "
        "the mistakes the author missed) [author-approves-own]"
    )
    assert caught.value.file == Path("changes/requests/CR-0007-nwh.yaml")


def test_a_key_is_written_where_asked_even_in_a_new_folder(tmp_path: Path) -> None:
    path = tmp_path / "home/.config/dmarcops/ann.pem"
    public = generate_key(path)
    assert public_key_text(load_private_key(path)) == public
    assert path.stat().st_mode & 0o777 == 0o600
    with pytest.raises(InputError) as caught:
        generate_key(path)
    assert (caught.value.file, caught.value.hint) == (
        path,
        "Choose another path: overwriting would lose the key the roster trusts.",
    )


def test_an_approval_file_is_written_as_sorted_json_and_never_replaced(tmp_path: Path) -> None:
    given = approval("sokafor", TIMES["in window"])
    path = write_approval(tmp_path, given)
    assert path.read_text(encoding="utf-8") == (
        json.dumps(given.to_json(), indent=2, sort_keys=True) + "\n"
    )
    assert json.loads(path.read_text())["format_version"] == 2
    # What was written reads back the same, a rehearsal's flag and the source included.
    rehearsed = sign(
        key("mhara"), PLAN, "CR-0001-nwh", "mhara", given.approved_at, REQ_SHA, simulated=True
    )
    write_approval(tmp_path, rehearsed)
    review = replace(given, analyst="jchen", source="github", reference="", signature="")
    write_approval(tmp_path, review)
    read = {a.analyst: a for a in SignedApprovalFiles(tmp_path).history("CR-0001-nwh")}
    assert read["mhara"].simulated and not read["sokafor"].simulated
    assert read["jchen"].source == "github"
    with pytest.raises(InputError) as caught:
        write_approval(tmp_path, given)
    assert (caught.value.file, caught.value.hint) == (
        path,
        "An approval is never replaced; if this one is wrong, remove it in a reviewed commit and "
        "approve again.",
    )


def test_a_plan_folder_is_listed_again_whenever_it_changes(tmp_path: Path) -> None:
    now = TIMES["in window"]
    write_approval(tmp_path, approval("sokafor", now))
    folder = tmp_path / "changes/approvals" / PLAN
    files = SignedApprovalFiles(tmp_path)
    # A folder last changed long ago is listed once and remembered...
    os.utime(folder, ns=(1_000_000_000, 1_000_000_000))
    assert [a.analyst for a in files.approvals_for(PLAN, "CR-0001-nwh")] == ["sokafor"]
    # ... until it changes.
    write_approval(tmp_path, approval("mhara", now))
    assert [a.analyst for a in files.approvals_for(PLAN, "CR-0001-nwh")] == ["mhara", "sokafor"]
    # A folder changed in the last seconds is listed each time: a file added within the same
    # clock tick leaves its time as it was.
    fresh = SignedApprovalFiles(tmp_path)
    stamp = folder.stat().st_mtime_ns
    fresh.approvals_for(PLAN, "CR-0001-nwh")
    write_approval(tmp_path, approval("jchen", now))
    os.utime(folder, ns=(stamp, stamp))
    assert len(fresh.approvals_for(PLAN, "CR-0001-nwh")) == 3


def test_an_unreadable_approval_file_says_how_approvals_are_written(tmp_path: Path) -> None:
    path = write_approval(tmp_path, approval("sokafor", TIMES["in window"]))
    hint = "Approval files are written by `dmarcops approve`; never edit them."
    path.write_text("{", encoding="utf-8")
    with pytest.raises(InputError) as caught:
        SignedApprovalFiles(tmp_path).history("CR-0001-nwh")
    assert caught.value.message.startswith("not an approval file")
    assert (caught.value.file, caught.value.hint) == (path, hint)
    path.write_text("[]", encoding="utf-8")
    with pytest.raises(InputError) as caught:
        SignedApprovalFiles(tmp_path).history("CR-0001-nwh")
    assert (caught.value.file, caught.value.hint) == (path, hint)


def test_an_unsigned_request_is_refused_naming_the_file_to_sign(world: World) -> None:
    roster = world[1]
    request = request_of(RequestType.OTHER, "none", TIMES["in window"])
    assert signature_refusal(request, roster) is None
    unsigned = signature_refusal(replace(request, signature=None), roster)
    assert unsigned is not None
    assert unsigned.message == (
        "CR-0001-nwh does not count: CR-0001-nwh.yaml is not signed by its author (the author "
        "signs it: dmarcops sign-request CR-0001-nwh --key YOUR-KEY)"
    )
    assert unsigned.file == Path("changes/requests/CR-0001-nwh.yaml")
    assert unsigned.exit_code == EXIT_GATE
    assert unsigned.hint == (
        "A request counts once its author has signed its current content (`dmarcops "
        "sign-request ID --key FILE`); any later edit needs a new signature."
    )
    edited = signature_refusal(replace(request, sha256="d4" * 32), roster)
    assert edited is not None and edited.file == Path("CR-0001-nwh.sig.json")


def test_an_openssh_key_signs_as_its_roster_owner(tmp_path: Path) -> None:
    key_file = tmp_path / "keys/id_ed25519"
    key_file.parent.mkdir()
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "jchen", "-f", str(key_file)],
        check=True,
    )
    public_line = key_file.with_suffix(".pub").read_text().strip()
    roster = roster_with(tmp_path / "repo", JCHEN_KEY, f"'{public_line}'")
    payload = signing_bytes({"purpose": "test"})
    # The private key, or its .pub alone (an ssh-agent holds the private half).
    for given in (key_file, key_file.with_suffix(".pub")):
        signer = load_signer(given, roster)
        assert (signer.analyst, signer.key, signer.ssh_key) == ("jchen", None, given)
    signature = load_signer(key_file, roster).sign(payload)
    assert signature.startswith("-----BEGIN SSH SIGNATURE-----")
    assert verify_signature(roster, "jchen", payload, signature)
    assert not verify_signature(roster, "jchen", payload + b"x", signature)
    # The example roster does not know this key.
    with pytest.raises(InputError) as caught:
        load_signer(key_file, world_roster())
    assert (caught.value.message, caught.value.file, caught.value.hint) == (
        "this key is not on the analyst roster",
        key_file,
        "Use your own key (the one whose public half is in policy/roster.yaml).",
    )
    with pytest.raises(InputError) as caught:
        load_signer(key_file, roster, claimed="sokafor")
    assert caught.value.hint == "Who acts is the owner of the key that signs; pass your own key."


def world_roster() -> Roster:
    return load_roster(REPO)


def test_a_public_key_reads_the_same_from_either_half(tmp_path: Path) -> None:
    private = load_private_key(KEYS / "jchen.pem")
    assert public_key_text(private) == public_key_text(private.public_key()) == JCHEN_KEY


def test_evidence_add_says_what_to_do_for_a_key_it_cannot_read_and_for_a_broken_mail(
    world: World, tmp_path: Path, signer: Signer
) -> None:
    # `dmarcops evidence add`: a key DNS does not give is a resolver's or a publisher's matter,
    # not the client's; a mail that does not verify is one to send again.
    from click.testing import CliRunner

    from pipeline.cli import main

    server = f"{signer.nameservers.addresses[0]}:{signer.nameservers.port}"
    raw = MAIL.encode()
    unread = tmp_path / "unread.eml"
    unread.write_bytes(signer.sign(raw, "northwind-health.example", "gone"))
    broken = tmp_path / "broken.eml"
    broken.write_bytes(
        signer.sign(raw, "northwind-health.example").replace(b"Approved.", b"Rejected.")
    )
    root = str(world[0].root)
    said = CliRunner().invoke(
        main, ["--repo", root, "evidence", "add", str(unread), "--nameserver", server]
    )
    assert said.exit_code == 2, said.output
    assert "cannot be checked: no key is published at gone._domainkey" in said.output
    assert (
        "key could not be read from DNS" in said.output and "send the approval" not in said.output
    )
    said = CliRunner().invoke(
        main, ["--repo", root, "evidence", "add", str(broken), "--nameserver", server]
    )
    assert said.exit_code == 2, said.output
    assert "body hash mismatch" in said.output
    assert "Ask the client to send the approval again" in said.output
