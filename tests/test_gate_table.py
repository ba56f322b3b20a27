"""The one gate over every risk x change type x time x approver x client-approval combination,
compared with a table written by hand from policy/gate.yaml and the client's profile.

The expected answer is spelled out here from the policy's words, not computed by the gate's own
helpers: low needs the author; medium the author and a peer who is not the author and not
shadowing; high that plus the client's written approval. A change runs only in the client's
window and never in a freeze, except a high change whose client approval names the freeze.
"""

from __future__ import annotations

import itertools
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from portfolio import copy_example
from test_approvals import _Item as Item
from test_approvals import author_signature, key

from pipeline.gate import decide
from pipeline.gate.approvals import sign
from pipeline.gate.requests import ChangeRequest, ClientApproval, RequestType
from pipeline.gate.roster import Roster, load_roster
from pipeline.load.portfolio import Portfolio, load_portfolio
from pipeline.load.request_files import Selector
from pipeline.model import RiskLevel

PLAN = "e5" * 32
REQ_SHA = "c3" * 32
APPROVER = "dana.whitfield@northwind-health.example"
FREEZE_REASON = "Quarter-end claims processing"  # northwind-health: 2027-03-25..2027-04-05

# northwind-health's window: Tue-Thu 08:00-11:00 America/Chicago.
TIMES = {
    "in window": datetime(2026, 12, 1, 15, 0, tzinfo=UTC),  # Tue 09:00 CST
    "outside window": datetime(2026, 11, 30, 15, 0, tzinfo=UTC),  # Mon 09:00 CST
    "in freeze": datetime(2027, 3, 30, 14, 0, tzinfo=UTC),  # Tue 09:00 CDT, inside the freeze
}
RISKS = (RiskLevel.LOW, RiskLevel.MEDIUM, RiskLevel.HIGH)
TYPES = (
    RequestType.NEW_SENDER,
    RequestType.POLICY_PROGRESSION,
    RequestType.DKIM_ROTATION,
    RequestType.OTHER,
)
# Who signed an approval of the plan: the author (jchen), a peer analyst (sokafor), a lead
# (mhara), an analyst in their first 30 days (sokafor, start date moved), or nobody.
APPROVERS = ("nobody", "author", "peer", "lead", "shadowing")
CLIENT = ("none", "given", "names the freeze")


def expected(risk: RiskLevel, when: str, approver: str, client: str) -> bool:
    """The policy, by hand."""
    peer_ok = approver in {"peer", "lead"} or (approver == "shadowing" and risk is RiskLevel.LOW)
    client_ok = client in {"given", "names the freeze"}
    chain_ok = {
        RiskLevel.LOW: True,
        RiskLevel.MEDIUM: peer_ok,
        RiskLevel.HIGH: peer_ok and client_ok,
    }[risk]
    time_ok = {
        "in window": True,
        "outside window": False,
        "in freeze": risk is RiskLevel.HIGH and client == "names the freeze",
    }[when]
    return chain_ok and time_ok


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> tuple[Portfolio, Roster]:
    repo = copy_example(tmp_path_factory.mktemp("gate-table"))
    return load_portfolio(repo), load_roster(repo)


def shadowing_roster(roster: Roster, now: datetime) -> Roster:
    started = (now - timedelta(days=10)).date()
    return replace(
        roster,
        analysts=tuple(
            replace(a, start_date=started) if a.id == "sokafor" else a for a in roster.analysts
        ),
    )


def request_of(rtype: RequestType, client: str, now: datetime) -> ChangeRequest:
    given = (
        None
        if client == "none"
        else ClientApproval(
            APPROVER,
            now - timedelta(days=1),
            "<a81f2@mail.northwind-health.example>",
            freeze=FREEZE_REASON if client == "names the freeze" else "",
        )
    )
    return ChangeRequest(
        id="CR-0001-nwh",
        type=rtype,
        client="northwind-health",
        covers=(Selector("northwind-health.example", "_dmarc", "TXT"),),
        rationale="Pass rate at pct=100 in quarantine stable at 99.6% for 30 days everywhere.",
        author="jchen",
        client_approval=given,
        file=Path("changes/requests/CR-0001-nwh.yaml"),
        sha256=REQ_SHA,
        signature=author_signature(),
    )


CASES = list(itertools.product(RISKS, TYPES, TIMES, APPROVERS, CLIENT))


def test_the_table_covers_every_combination() -> None:
    assert len(CASES) == 3 * 4 * 3 * 5 * 3 == 540
    # Both answers occur for every risk: the table is not trivially all-yes or all-no.
    for risk in RISKS:
        answers = {expected(r, w, a, c) for r, _, w, a, c in CASES if r is risk}
        assert answers == {True, False}


@pytest.mark.parametrize(("risk", "rtype", "when", "approver", "client"), CASES)
def test_the_gate_matches_the_policy_table(
    world: tuple[Portfolio, Roster],
    risk: RiskLevel,
    rtype: RequestType,
    when: str,
    approver: str,
    client: str,
) -> None:
    portfolio, roster = world
    now = TIMES[when]
    if approver == "shadowing":
        roster = shadowing_roster(roster, now)
    signer = {"author": "jchen", "peer": "sokafor", "lead": "mhara", "shadowing": "sokafor"}
    approvals = (
        []
        if approver == "nobody"
        else [
            sign(
                key(signer[approver]),
                PLAN,
                "CR-0001-nwh",
                signer[approver],
                now - timedelta(hours=1),
                REQ_SHA,
            )
        ]
    )
    decision = decide.decide(
        request_of(rtype, client, now),
        [Item(risk)],
        approvals,
        decide.context(
            portfolio,
            "northwind-health",
            decide.Stage.APPLY,
            now,
            PLAN,
            roster,
            executor="jchen",
        ),
    )
    want = expected(risk, when, approver, client)
    assert decision.allowed is want, [str(p) for p in decision.problems]
    if want:
        assert isinstance(decision, decide.Allowed)
        assert decision.risk is risk
        assert (decision.freeze_exception != "") is (when == "in freeze")
    else:
        assert decision.problems  # a refusal always names what is missing or refused
        if when == "outside window" and expected(risk, "in window", approver, client):
            # Only the time is wrong: the refusal says so, and nothing about approvals.
            assert decide.only_waiting_for_time(decision)


def test_a_shadowing_authors_medium_change_says_why_it_needs_a_lead(
    world: tuple[Portfolio, Roster],
) -> None:
    # The lead is in the chain because the author is shadowing, not for a policy edit: the
    # refusal must name that rule, or the analyst hunts for a policy file they never touched.
    portfolio, roster = world
    now = TIMES["in window"]
    started = (now - timedelta(days=10)).date()
    roster = replace(
        roster,
        analysts=tuple(
            replace(a, start_date=started) if a.id == "jchen" else a for a in roster.analysts
        ),
    )
    approvals = [
        sign(key("sokafor"), PLAN, "CR-0001-nwh", "sokafor", now - timedelta(hours=1), REQ_SHA)
    ]
    decision = decide.decide(
        request_of(TYPES[0], "none", now),
        [Item(RiskLevel.MEDIUM)],
        approvals,
        decide.context(
            portfolio, "northwind-health", decide.Stage.APPLY, now, PLAN, roster, executor="jchen"
        ),
    )
    assert not decision.allowed
    (lead,) = [str(p) for p in decision.problems if "lead" in str(p).split(":")[0]]
    assert "a medium-risk change by jchen (shadowing) needs the approval of a lead" in lead
    assert "a policy change" not in lead
