"""Approvals: Ed25519 signatures bound to a plan hash, and the seed's chain by risk level.

Keys are real: tests/keys/<analyst>.pem match the public keys in policy/roster.yaml (test-only).
"""

from __future__ import annotations

import base64
import json
import shutil
import stat
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from portfolio import copy_example, write
from signing import sign_as_author

from pipeline.cli import main
from pipeline.commands.approvals import register
from pipeline.errors import EXIT_GATE, EXIT_INPUT, InputError
from pipeline.gate import decide
from pipeline.gate.approvals import (
    Approval,
    SignedApprovalFiles,
    load_plan_file,
    sign,
    verify,
    write_approval,
)
from pipeline.gate.decide import Decision
from pipeline.gate.identity import generate_key, load_private_key, public_key_text
from pipeline.gate.requests import (
    ChangeRequest,
    ClientApproval,
    RequestSignature,
    RequestType,
    Selector,
)
from pipeline.gate.roster import Roster, load_roster
from pipeline.load.gate_policy import DEFAULT_CHAINS, GatePolicy
from pipeline.load.portfolio import ClientProfile, load_portfolio
from pipeline.model import RiskLevel

if "approve" not in main.commands:  # until pipeline/cli.py registers them itself
    register(main)

KEYS = Path(__file__).resolve().parent / "keys"
PLAN = "a1" * 32
OLDER_PLAN = "b2" * 32
AT = datetime(2026, 11, 24, 9, 14, tzinfo=UTC)
REQ_SHA = "c3" * 32  # the content hash of the request the chain tests judge
SIGNED_AT = datetime(2026, 11, 23, 16, 0, tzinfo=UTC)
NWH_APPROVER = "dana.whitfield@northwind-health.example"  # northwind-health's authorised approver
RATIONALE = "Pass rate at pct=100 in quarantine stable at 99.6% for 30 days across all senders."


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = copy_example(tmp_path)
    # These tests file their own requests: start without the example's.
    shutil.rmtree(root / "changes" / "requests")
    return root


@pytest.fixture
def roster(repo: Path) -> Roster:
    return load_roster(repo)


@pytest.fixture
def northwind(repo: Path) -> ClientProfile:
    return load_portfolio(repo).clients["northwind-health"]


def key(analyst: str) -> Ed25519PrivateKey:
    return load_private_key(KEYS / f"{analyst}.pem")


def approval(
    analyst: str, plan_hash: str = PLAN, request_id: str = "CR-0001-nwh", sha: str = REQ_SHA
) -> Approval:
    return sign(key(analyst), plan_hash, request_id, analyst, AT, sha)


def author_signature(
    signer: str = "jchen", sha: str = REQ_SHA, request_id: str = "CR-0001-nwh"
) -> RequestSignature:
    unsigned = RequestSignature(request_id, sha, signer, SIGNED_AT, "")
    signature = base64.b64encode(key(signer).sign(unsigned.payload())).decode()
    return replace(unsigned, signature=signature, file=Path(f"{request_id}.sig.json"))


def request(client_approval: ClientApproval | None = None) -> ChangeRequest:
    return ChangeRequest(
        id="CR-0001-nwh",
        type=RequestType.POLICY_PROGRESSION,
        client="northwind-health",
        covers=(Selector("northwind-health.example", "_dmarc", "TXT"),),
        rationale=RATIONALE,
        author="jchen",
        client_approval=client_approval,
        file=Path("changes/requests/CR-0001-nwh.yaml"),
        sha256=REQ_SHA,
        signature=author_signature(),
    )


CLIENT_OK = ClientApproval(
    NWH_APPROVER, AT - timedelta(days=1), "<a81f2@mail.northwind-health.example>"
)


@dataclass(frozen=True)
class _Item:
    risk: RiskLevel
    client: str = "northwind-health"
    zone: str = "northwind-health.example"
    name: str = "_dmarc"
    type: str = "TXT"
    before: tuple[str, ...] = ()
    after: tuple[str, ...] = ()


def evaluate(
    risk: RiskLevel,
    request: ChangeRequest,
    plan_hash: str,
    approvals: list[Approval],
    roster: Roster,
    client: ClientProfile,
) -> Decision:
    """The approval chain as the one gate judges it for a pull request (no clock judgement)."""
    return decide.decide(
        request,
        [_Item(risk)],
        approvals,
        decide.GateContext(
            stage=decide.Stage.REVIEW,
            now=AT + timedelta(hours=1),
            plan_hash=plan_hash,
            roster=roster,
            client=client,
            policy=GatePolicy(DEFAULT_CHAINS),
            rollback_by_risk={RiskLevel.LOW: 2, RiskLevel.MEDIUM: 8, RiskLevel.HIGH: 24},
        ),
    )


def test_the_example_keys_match_the_roster(roster: Roster) -> None:
    for analyst in roster.analysts:
        assert public_key_text(key(analyst.id)) == analyst.public_key


# --- signatures -------------------------------------------------------------------------------


def test_sign_verify_round_trip_through_the_stored_file(repo: Path, roster: Roster) -> None:
    signed = approval("mhara")
    assert verify(signed, roster)
    path = write_approval(repo, signed)
    assert path == repo / f"changes/approvals/{PLAN}/CR-0001-nwh--mhara.json"
    (read,) = SignedApprovalFiles(repo).approvals_for(PLAN, "CR-0001-nwh")
    assert replace(read, reference="") == signed
    assert read.reference == f"changes/approvals/{PLAN}/CR-0001-nwh--mhara.json"
    assert verify(read, roster)
    assert SignedApprovalFiles(repo).approvals_for(OLDER_PLAN, "CR-0001-nwh") == []


def test_the_signed_payload_is_canonical_json_of_the_five_values() -> None:
    signed = approval("mhara")
    assert signed.payload() == (
        b'{"analyst":"mhara","approved_at":"2026-11-24T09:14:00Z",'
        b'"plan_hash":"' + PLAN.encode() + b'","request_id":"CR-0001-nwh",'
        b'"request_sha256":"' + REQ_SHA.encode() + b'"}'
    )


@pytest.mark.parametrize(
    "tampered",
    [
        {"plan_hash": OLDER_PLAN},
        {"analyst": "sokafor"},
        {"request_id": "CR-0002-other"},
        {"approved_at": AT + timedelta(hours=1)},
        {"request_sha256": "d4" * 32},
        {"simulated": True},
    ],
)
def test_a_tampered_approval_fails_verification(
    roster: Roster, tampered: dict[str, object]
) -> None:
    signed = approval("mhara")
    assert not verify(replace(signed, **tampered), roster)  # type: ignore[arg-type]


def test_a_tampered_file_fails_verification(repo: Path, roster: Roster) -> None:
    path = write_approval(repo, approval("mhara"))
    data = json.loads(path.read_text())
    data["analyst"] = "sokafor"
    path.write_text(json.dumps(data))
    (read,) = SignedApprovalFiles(repo).approvals_for(PLAN, "CR-0001-nwh")
    assert not verify(read, roster)


def test_a_signature_by_someone_else_fails(roster: Roster) -> None:
    forged = sign(key("jchen"), PLAN, "CR-0001-nwh", "mhara", AT, REQ_SHA)  # jchen signs as mhara
    assert not verify(forged, roster)
    assert not verify(replace(approval("mhara"), signature="not base64!"), roster)


def test_generate_key_writes_a_private_pem_and_returns_its_public_key(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "new.pem"
    public = generate_key(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_text().startswith("-----BEGIN PRIVATE KEY-----")
    assert public_key_text(load_private_key(path)) == public
    before = path.read_bytes()
    with pytest.raises(InputError, match="already exists"):
        generate_key(path)
    assert path.read_bytes() == before


def test_a_second_approval_file_is_never_overwritten(repo: Path) -> None:
    write_approval(repo, approval("mhara"))
    with pytest.raises(InputError, match="already approved"):
        write_approval(
            repo, sign(key("mhara"), PLAN, "CR-0001-nwh", "mhara", AT + timedelta(1), REQ_SHA)
        )


# --- the chain ----------------------------------------------------------------------------------


def test_medium_with_a_peer_approval_of_this_plan_is_ok(
    roster: Roster, northwind: ClientProfile
) -> None:
    decision = evaluate(RiskLevel.MEDIUM, request(), PLAN, [approval("mhara")], roster, northwind)
    assert decision.ok and decision.missing == ()
    assert [(e.role, e.who, e.at) for e in decision.evidence] == [
        ("author", "jchen", SIGNED_AT),
        ("peer review", "mhara", AT),
    ]


def test_silence_is_not_approval(roster: Roster, northwind: ClientProfile) -> None:
    decision = evaluate(RiskLevel.MEDIUM, request(), PLAN, [], roster, northwind)
    assert not decision.ok
    assert len(decision.missing) == 1 and decision.missing[0].startswith("peer review")


def test_an_approval_of_an_older_plan_does_not_count(
    roster: Roster, northwind: ClientProfile
) -> None:
    stale = approval("mhara", plan_hash=OLDER_PLAN)
    assert verify(stale, roster)  # a genuine approval, of another plan
    decision = evaluate(RiskLevel.MEDIUM, request(), PLAN, [stale], roster, northwind)
    assert not decision.ok
    assert any("approves plan " + OLDER_PLAN[:16] in m for m in decision.missing)
    assert any("plan changed" in m for m in decision.missing)


def test_an_approval_of_another_request_does_not_count(
    roster: Roster, northwind: ClientProfile
) -> None:
    other = approval("mhara", request_id="CR-0002-other")
    decision = evaluate(RiskLevel.MEDIUM, request(), PLAN, [other], roster, northwind)
    assert not decision.ok
    assert any("approves request CR-0002-other" in m for m in decision.missing)


def test_the_author_approving_their_own_medium_change_does_not_count(
    roster: Roster, northwind: ClientProfile
) -> None:
    own = approval("jchen")
    assert verify(own, roster)
    decision = evaluate(RiskLevel.MEDIUM, request(), PLAN, [own], roster, northwind)
    assert not decision.ok
    assert any("author cannot review their own change" in m for m in decision.missing)
    assert "peer review" not in [e.role for e in decision.evidence]


def test_an_analyst_not_on_the_roster_does_not_count(
    tmp_path: Path, roster: Roster, northwind: ClientProfile
) -> None:
    generate_key(tmp_path / "intruder.pem")
    intruder = load_private_key(tmp_path / "intruder.pem")
    outsider = sign(intruder, PLAN, "CR-0001-nwh", "eve", AT, REQ_SHA)
    decision = evaluate(RiskLevel.MEDIUM, request(), PLAN, [outsider], roster, northwind)
    assert not decision.ok
    assert any("'eve' is not on the analyst roster" in m for m in decision.missing)


def test_a_bad_signature_does_not_count(roster: Roster, northwind: ClientProfile) -> None:
    forged = sign(key("jchen"), PLAN, "CR-0001-nwh", "mhara", AT, REQ_SHA)
    decision = evaluate(RiskLevel.MEDIUM, request(), PLAN, [forged], roster, northwind)
    assert not decision.ok
    assert any("does not verify with mhara's key" in m for m in decision.missing)


def test_a_valid_approval_beside_a_stale_one_is_enough(
    roster: Roster, northwind: ClientProfile
) -> None:
    approvals = [approval("sokafor", plan_hash=OLDER_PLAN), approval("mhara")]
    decision = evaluate(RiskLevel.MEDIUM, request(), PLAN, approvals, roster, northwind)
    assert decision.ok
    assert [e.who for e in decision.evidence if e.role == "peer review"] == ["mhara"]
    assert len(decision.ignored) == 1 and "sokafor" in decision.ignored[0]


def test_high_without_client_approval_misses_it(roster: Roster, northwind: ClientProfile) -> None:
    decision = evaluate(RiskLevel.HIGH, request(), PLAN, [approval("mhara")], roster, northwind)
    assert not decision.ok
    assert len(decision.missing) == 1
    assert decision.missing[0].startswith("client approval")
    assert NWH_APPROVER in decision.missing[0]


def test_high_with_an_approver_not_authorised_misses_it(
    roster: Roster, northwind: ClientProfile
) -> None:
    # Fabrikam's CTO is an authorised approver, but not for Northwind Health.
    wrong = replace(CLIENT_OK, approver="jonas.keller@fabrikam.example")
    decision = evaluate(
        RiskLevel.HIGH, request(wrong), PLAN, [approval("mhara")], roster, northwind
    )
    assert not decision.ok
    assert len(decision.missing) == 1
    assert "jonas.keller@fabrikam.example is not one of northwind-health's" in decision.missing[0]


def test_high_with_client_approval_but_no_peer_misses_the_peer(
    roster: Roster, northwind: ClientProfile
) -> None:
    decision = evaluate(RiskLevel.HIGH, request(CLIENT_OK), PLAN, [], roster, northwind)
    assert not decision.ok
    assert len(decision.missing) == 1 and decision.missing[0].startswith("peer review")


def test_high_complete_is_ok(roster: Roster, northwind: ClientProfile) -> None:
    decision = evaluate(
        RiskLevel.HIGH, request(CLIENT_OK), PLAN, [approval("mhara")], roster, northwind
    )
    assert decision.ok, decision.missing
    client = [e for e in decision.evidence if e.role == "client approval"]
    assert [(e.who, e.at, e.reference) for e in client] == [
        (NWH_APPROVER, CLIENT_OK.at, CLIENT_OK.reference)
    ]


def test_low_is_the_authors_self_approval(roster: Roster, northwind: ClientProfile) -> None:
    decision = evaluate(RiskLevel.LOW, request(), PLAN, [], roster, northwind)
    assert decision.ok
    assert [(e.role, e.who) for e in decision.evidence] == [("author", "jchen")]


def test_low_by_an_author_not_on_the_roster_is_not_ok(
    roster: Roster, northwind: ClientProfile
) -> None:
    stranger = replace(request(), author="eve")
    decision = evaluate(RiskLevel.LOW, stranger, PLAN, [], roster, northwind)
    assert not decision.ok
    assert "'eve' is not on the analyst roster" in decision.missing[0]


# --- end to end: plan, request, approve, re-plan ---------------------------------------------

AT_PLAN = "2026-11-24T10:00:00Z"  # a Tuesday, no freeze for Northwind
NWH_REQ = "changes/requests/CR-0001-nwh-patients-pct.yaml"


def run(repo: Path, *args: str, env: dict[str, str] | None = None) -> Result:
    result = CliRunner().invoke(main, ["--repo", str(repo), *args], env=env)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result


def plan_to(repo: Path, name: str) -> Path:
    out = repo / name
    result = run(repo, "plan", "--at", AT_PLAN, "--zone", "nwh-patients.example", "--out", str(out))
    # Without a request the plan is refused (exit 2) but still written: what would change.
    covered = (repo / NWH_REQ).exists()
    assert result.exit_code == (0 if covered else 2), result.output
    return out


def nwh_request(repo: Path) -> None:
    write(
        repo / NWH_REQ,
        "type: policy-progression\n"
        "client: northwind-health\n"
        "covers: [nwh-patients.example _dmarc TXT]\n"
        "author: jchen\n"
        f"rationale: {RATIONALE}\n"
        "details:\n"
        "  current_policy: p=quarantine; pct=50\n"
        "  target_policy: p=quarantine; pct=100\n"
        "  pass_rate_evidence: 99.6% over 30 days\n"
        "  planned_date: 2026-11-24\n",
    )


def approve(repo: Path, plan: Path, analyst: str, key_name: str | None = None) -> Result:
    return run(
        repo,
        "approve",
        "--plan",
        str(plan),
        "--request",
        "CR-0001-nwh-patients-pct",
        "--as",
        analyst,
        "--key",
        str(KEYS / f"{key_name or analyst}.pem"),
        env={"DMARCOPS_NOW": "2026-11-24T09:30:00Z"},
    )


def test_the_saved_plan_hash_is_recomputed_and_checked(repo: Path) -> None:
    plan = plan_to(repo, "plan.json")
    data = json.loads(plan.read_text())
    assert load_plan_file(plan).plan_hash == data["plan_hash"]
    data["changes"][0]["after"] = ["v=DMARC1; p=none"]
    plan.write_text(json.dumps(data))
    with pytest.raises(InputError, match="not the hash of its changes"):
        load_plan_file(plan)


def test_uncovered_plan_is_refused_by_requests_check(repo: Path) -> None:
    plan = plan_to(repo, "plan.json")
    result = run(repo, "requests", "check", "--plan", str(plan))
    assert result.exit_code == EXIT_GATE
    assert "every change needs a change request" in result.output
    assert "nwh-patients.example _dmarc TXT" in result.output


def test_approve_then_replan_makes_the_approval_stale(repo: Path) -> None:
    plan = plan_to(repo, "plan.json")
    nwh_request(repo)
    sign_as_author(repo, "CR-0001-nwh-patients-pct")
    check = run(repo, "requests", "check", "--plan", str(plan))
    assert check.exit_code == EXIT_GATE
    assert "risk medium, NOT APPROVED" in check.output
    assert "missing: peer review" in check.output

    own = approve(repo, plan, "jchen")
    assert own.exit_code == EXIT_GATE
    assert "the author cannot review it" in own.output
    wrong_key = approve(repo, plan, "mhara", key_name="sokafor")
    assert wrong_key.exit_code == EXIT_INPUT
    assert "this key is not mhara's: it is sokafor's" in wrong_key.output
    assert not (repo / "changes/approvals").exists()

    ok = approve(repo, plan, "mhara")
    assert ok.exit_code == 0, ok.output
    plan_hash = load_plan_file(plan).plan_hash
    stored = repo / f"changes/approvals/{plan_hash}/CR-0001-nwh-patients-pct--mhara.json"
    (read,) = SignedApprovalFiles(repo).approvals_for(plan_hash, "CR-0001-nwh-patients-pct")
    assert read.approved_at == datetime(2026, 11, 24, 9, 30, tzinfo=UTC)  # DMARCOPS_NOW
    assert stored.exists() and verify(read, load_roster(repo))
    check = run(repo, "requests", "check", "--plan", str(plan))
    assert check.exit_code == 0, check.output
    assert "risk medium, approved" in check.output
    assert "present: peer review: mhara at 2026-11-24T09:30:00Z" in check.output

    # The desired state changes after the review: a new plan, and the approval no longer counts.
    zone = repo / "zones/northwind-health/nwh-patients.example.yaml"
    zone.write_text(zone.read_text().replace("pct=100\\; ", "pct=75\\; "))
    replanned = plan_to(repo, "plan2.json")
    assert load_plan_file(replanned).plan_hash != plan_hash
    stale = run(repo, "requests", "check", "--plan", str(replanned))
    assert stale.exit_code == EXIT_GATE
    assert "NOT APPROVED" in stale.output
    assert f"approves plan {plan_hash[:16]}" in stale.output
