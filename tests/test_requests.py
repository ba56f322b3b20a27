"""Change requests: a real rationale, no template prompt left in, one request per plan item.

Seed: "Because we agreed in the SOW isn't a rationale"; the "I'll just push it" change (no record);
the "this is routine" misclassification (a requested risk below the computed one).
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
import signing
from click.testing import CliRunner, Result
from portfolio import copy_example, write
from signing import sign_as_author

from pipeline.cli import main
from pipeline.commands.approvals import register
from pipeline.errors import EXIT_GATE, EXIT_INPUT, GateRefused, InputError
from pipeline.gate.approvals import PlannedChange
from pipeline.gate.authoring import new_request
from pipeline.gate.coverage import check_requested_risk, cover
from pipeline.gate.request_loader import load_requests
from pipeline.gate.requests import ChangeRequest, RequestType, Selector, signature_refusal
from pipeline.gate.roster import Roster, load_roster
from pipeline.gate.templates import load_templates
from pipeline.model import RiskLevel

if "requests" not in main.commands:  # until pipeline/cli.py registers them itself
    register(main)

GOOD_RATIONALE = (
    "Pass rate at pct=50 has been stable at 99.3% for the last 14 days across all known senders."
)
REQ = "changes/requests/CR-0007-fabrikam-sendgrid.yaml"


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = copy_example(tmp_path)
    # These tests file their own requests: start without the example's.
    shutil.rmtree(root / "changes" / "requests")
    return root


def request_text(rationale: str, covers: str = "fabrikam.example", extra: str = "") -> str:
    # The rationale is on line 5: tests assert that errors point there.
    return (
        "type: other\n"
        "client: fabrikam-labs\n"
        f"covers: [{covers}]\n"
        "author: jchen\n"
        f"rationale: {rationale}\n"
        "evidence: [DMARC aggregate reports 2026-11-01..2026-11-14]\n" + extra
    )


def run(repo: Path, *args: str) -> Result:
    result = CliRunner().invoke(main, ["--repo", str(repo), *args])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result


def change(zone: str, name: str, rtype: str = "TXT", risk: str = "low") -> PlannedChange:
    client = {
        "fabrikam.example": "fabrikam-labs",
        "contoso-retail.example": "contoso-retail",
        "northwind-health.example": "northwind-health",
    }[zone]
    return PlannedChange(
        client, zone, name, rtype, "update", RiskLevel.parse(risk), ("a",), ("b",), 3600, 3600
    )


def request(
    request_id: str, *covers: str, requested: RiskLevel | None = None, client: str = "fabrikam-labs"
) -> ChangeRequest:
    selectors = tuple(s for c in covers if (s := Selector.parse(c)) is not None)
    assert len(selectors) == len(covers)
    return ChangeRequest(
        id=request_id,
        type=RequestType.OTHER,
        client=client,
        covers=selectors,
        rationale=GOOD_RATIONALE,
        author="jchen",
        requested_risk=requested,
        file=Path(f"changes/requests/{request_id}.yaml"),
        lines=(("covers", 3), ("requested_risk", 7)),
    )


# --- rationale ---------------------------------------------------------------------------------


def test_a_factual_rationale_is_accepted(repo: Path) -> None:
    write(repo / REQ, request_text(GOOD_RATIONALE))
    (loaded,) = load_requests(repo)
    assert loaded.id == "CR-0007-fabrikam-sendgrid"
    assert loaded.rationale == GOOD_RATIONALE
    assert loaded.covers == (Selector("fabrikam.example"),)
    sign_as_author(repo, loaded.id)
    assert run(repo, "requests", "check").exit_code == 0


def test_a_rationale_naming_the_sow_beside_facts_is_accepted(repo: Path) -> None:
    text = "Per SOW phase 3: pass rate at pct=50 stable at 99.3% for 14 days, all senders aligned."
    write(repo / REQ, request_text(f'"{text}"'))
    assert load_requests(repo)[0].rationale == text


@pytest.mark.parametrize("rationale", ['""', "", "'   '"])
def test_empty_rationale_is_refused_with_file_and_line(repo: Path, rationale: str) -> None:
    write(repo / REQ, request_text(rationale))
    with pytest.raises(InputError, match="rationale is empty") as caught:
        load_requests(repo)
    assert caught.value.file == repo / REQ and caught.value.line == 5
    result = run(repo, "requests", "check")
    assert result.exit_code == EXIT_INPUT
    assert f"{REQ}:5: rationale is empty" in result.output


@pytest.mark.parametrize(
    "rationale",
    [
        "Because we agreed in the SOW.",
        "per SOW",
        "As agreed with the client.",
        "Client asked.",
        "The client asked for it, routine change, per SOW.",
        "Routine",
        "n/a",
        "TBD",
        "see ticket",
        "See ticket #4411",
    ],
)
def test_boilerplate_rationale_is_refused(repo: Path, rationale: str) -> None:
    write(repo / REQ, request_text(f'"{rationale}"'))
    result = run(repo, "requests", "check")
    assert result.exit_code == EXIT_INPUT
    assert f"{REQ}:5: rationale is boilerplate" in result.output
    assert "Traceback" not in result.output


def test_short_rationale_is_refused(repo: Path) -> None:
    write(repo / REQ, request_text("Add SendGrid to SPF"))
    with pytest.raises(InputError, match="too short") as caught:
        load_requests(repo)
    assert caught.value.line == 5


def test_every_problem_is_reported_in_one_run(repo: Path) -> None:
    write(repo / REQ, request_text("TBD"))
    write(
        repo / "changes/requests/CR-0008-fabrikam-dkim.yaml",
        request_text(GOOD_RATIONALE).replace("author: jchen", "author: nobody"),
    )
    result = run(repo, "requests", "check")
    assert result.exit_code == EXIT_INPUT
    assert f"{REQ}:5: rationale is boilerplate" in result.output
    assert "CR-0008-fabrikam-dkim.yaml:4: author 'nobody' is not on the analyst roster" in (
        result.output
    )


# --- what a request may say -----------------------------------------------------------------------


def test_a_zone_of_another_client_is_refused(repo: Path) -> None:
    write(repo / REQ, request_text(GOOD_RATIONALE, covers="northwind-health.example"))
    with pytest.raises(InputError, match="not a domain of client 'fabrikam-labs'") as caught:
        load_requests(repo)
    assert caught.value.line == 3


def test_schema_errors_name_the_line(repo: Path) -> None:
    write(repo / REQ, request_text(GOOD_RATIONALE, extra="requested_risk: trivial\n"))
    with pytest.raises(InputError, match="requested_risk") as caught:
        load_requests(repo)
    assert caught.value.line == 7


def test_a_bad_file_name_is_refused(repo: Path) -> None:
    write(repo / "changes/requests/fabrikam--sendgrid.yaml", request_text(GOOD_RATIONALE))
    with pytest.raises(InputError, match="not a change request id"):
        load_requests(repo)


def test_rollback_of_belongs_to_emergency_rollbacks(repo: Path) -> None:
    write(repo / REQ, request_text(GOOD_RATIONALE, extra="rollback_of: 2026-1247\n"))
    with pytest.raises(InputError, match="rollback_of belongs to emergency-rollback") as caught:
        load_requests(repo)
    assert caught.value.line == 7


# --- ticket templates -------------------------------------------------------------------------


PROMPT = re.compile(r'"<<.*?>>"')


def fill(template: str, leave: str = "") -> str:
    """Replace every prompt with a plausible value, except those on lines holding `leave`."""
    lines = []
    for line in template.splitlines():
        if leave and leave in line:
            lines.append(line)
            continue
        key = line.strip().split(":")[0]
        value = {
            "planned_date": "2026-12-01",
            "rollback_of": "2026-1247",
            "pass_rate_evidence": '"99.3% aligned pass over 14 days at pct=50"',
            "current_selector": "s2025",
            "new_selector": "s2026",
        }.get(key, f'"{GOOD_RATIONALE}"')
        lines.append(PROMPT.sub(value, line))
    return "\n".join(lines) + "\n"


EXPECTED_FIELDS = {
    RequestType.NEW_SENDER: {"sender_name", "spf_include", "dkim_selector", "alignment"},
    RequestType.POLICY_PROGRESSION: {
        "current_policy",
        "target_policy",
        "pass_rate_evidence",
        "planned_date",
    },
    RequestType.DKIM_ROTATION: {"current_selector", "new_selector", "planned_date"},
    RequestType.EMERGENCY_ROLLBACK: {"current_state", "target_state", "notified"},
    RequestType.OTHER: set(),
    RequestType.PLATFORM: {"platform", "setting", "current_value", "new_value"},
    RequestType.DKIM_SWITCH: {"platform", "current_selector", "new_selector"},
}


@pytest.mark.parametrize("rtype", list(EXPECTED_FIELDS))
def test_a_filled_template_loads_with_the_seed_fields(repo: Path, rtype: RequestType) -> None:
    # A platform or dkim-switch request covers domains, not records (docs/drift.md).
    covers = "fabrikam.example" if rtype.manual else "fabrikam.example _dmarc TXT"
    template = load_templates(repo).get(rtype.value)
    text = new_request(template, "fabrikam-labs", [covers], "jchen")
    assert PROMPT.search(text)
    write(repo / REQ, fill(text))
    (loaded,) = load_requests(repo)
    assert loaded.type is rtype
    assert {key for key, _ in loaded.details} == EXPECTED_FIELDS[rtype]
    assert loaded.covers == (Selector.parse(covers),)
    assert bool(loaded.steps) == bool(loaded.checklist) == rtype.manual
    if rtype is RequestType.EMERGENCY_ROLLBACK:
        assert loaded.rollback_of == "2026-1247" and loaded.is_emergency


def test_a_template_prompt_left_in_is_refused_with_its_line(repo: Path) -> None:
    template = load_templates(repo).get("policy-progression")
    text = new_request(template, "fabrikam-labs", ["fabrikam.example"], "jchen")
    write(repo / REQ, fill(text, leave="target_policy"))
    line = next(i for i, t in enumerate(fill(text).splitlines(), 1) if "target_policy" in t)
    with pytest.raises(InputError, match="template prompt left in") as caught:
        load_requests(repo)
    assert caught.value.line == line
    result = run(repo, "requests", "check")
    assert result.exit_code == EXIT_INPUT
    assert f"{REQ}:{line}: template prompt left in" in result.output


def test_new_writes_the_template_and_refuses_to_overwrite(repo: Path) -> None:
    args = ["new", "sender", "--client", "fabrikam-labs", "--cover", "fabrikam.example @ TXT"]
    result = run(repo, *args, "--author", "jchen", "--id", "CR-0007-fabrikam-sendgrid")
    assert result.exit_code == 0, result.output
    written = (repo / REQ).read_text()
    assert "type: new-sender" in written and "sender_name:" in written
    # Fresh from the template it is not a request yet.
    assert run(repo, "requests", "check").exit_code == EXIT_INPUT
    (repo / REQ).write_text("edited by the analyst\n")
    again = run(repo, *args, "--author", "jchen", "--id", "CR-0007-fabrikam-sendgrid")
    assert again.exit_code == EXIT_INPUT
    assert "already exists" in again.output
    assert (repo / REQ).read_text() == "edited by the analyst\n"
    numbered = run(repo, *args, "--author", "jchen")
    assert numbered.exit_code == 0
    assert (repo / "changes/requests/CR-0008-fabrikam-labs.yaml").exists()


def test_new_refuses_an_unknown_author_and_a_foreign_zone(repo: Path) -> None:
    base = ["new", "other", "--client", "fabrikam-labs"]
    stranger = run(repo, *base, "--cover", "fabrikam.example", "--author", "mallory")
    assert stranger.exit_code == EXIT_INPUT and "not on the analyst roster" in stranger.output
    foreign = run(repo, *base, "--cover", "northwind-health.example", "--author", "jchen")
    assert foreign.exit_code == EXIT_INPUT and "not a domain of client" in foreign.output
    assert not (repo / "changes/requests").exists() or not any(
        (repo / "changes/requests").iterdir()
    )


# --- coverage ---------------------------------------------------------------------------------


def test_each_item_maps_to_the_one_request_whose_selector_matches() -> None:
    spf = change("fabrikam.example", "", risk="low")
    dmarc = change("fabrikam.example", "_dmarc", risk="medium")
    apex = request("CR-0001-spf", "fabrikam.example @ TXT")
    policy = request("CR-0002-dmarc", "fabrikam.example _dmarc")
    coverage = cover([spf, dmarc], [apex, policy])
    assert coverage.complete
    assert coverage.items_of("CR-0001-spf") == (spf,)
    assert coverage.items_of("CR-0002-dmarc") == (dmarc,)
    assert coverage.risk_of("CR-0002-dmarc") is RiskLevel.MEDIUM
    coverage.check()


def test_an_uncovered_item_is_refused_with_exit_2_and_how_to_file() -> None:
    spf = change("fabrikam.example", "")
    dmarc = change("fabrikam.example", "_dmarc", risk="medium")
    coverage = cover([spf, dmarc], [request("CR-0001-spf", "fabrikam.example @ TXT")])
    assert coverage.uncovered == (dmarc,)
    with pytest.raises(GateRefused) as caught:
        coverage.check()
    assert caught.value.exit_code == EXIT_GATE
    assert "every change needs a change request" in caught.value.message
    assert "fabrikam.example _dmarc TXT" in caught.value.message
    assert "fabrikam.example @ TXT" not in caught.value.message
    assert "dmarcops new" in caught.value.hint


def test_a_type_selector_does_not_cover_another_type() -> None:
    cname = change("fabrikam.example", "s1._domainkey", rtype="CNAME")
    coverage = cover([cname], [request("CR-0001-dkim", "fabrikam.example s1._domainkey TXT")])
    assert coverage.uncovered == (cname,)


def test_a_request_of_another_client_does_not_cover() -> None:
    item = change("northwind-health.example", "_dmarc")
    coverage = cover([item], [request("CR-0001-x", "northwind-health.example")])
    assert coverage.uncovered == (item,)


def test_an_item_claimed_by_two_requests_is_refused() -> None:
    dmarc = change("fabrikam.example", "_dmarc", risk="medium")
    whole = request("CR-0001-zone", "fabrikam.example")
    exact = request("CR-0002-dmarc", "fabrikam.example _dmarc TXT")
    coverage = cover([dmarc], [whole, exact])
    assert not coverage.complete and coverage.covered == ()
    with pytest.raises(GateRefused) as caught:
        coverage.check()
    assert caught.value.exit_code == EXIT_GATE
    assert "claimed by more than one change request" in caught.value.message
    assert "CR-0001-zone" in caught.value.message and "CR-0002-dmarc" in caught.value.message


# --- requested risk ----------------------------------------------------------------------------


def test_a_requested_risk_below_the_computed_one_is_refused() -> None:
    routine = request("CR-0001-dmarc", "fabrikam.example", requested=RiskLevel.LOW)
    with pytest.raises(GateRefused, match=r"asks for low risk.*classify its changes medium") as c:
        check_requested_risk(routine, RiskLevel.MEDIUM)
    assert c.value.exit_code == EXIT_GATE
    assert c.value.line == 7


def test_a_requested_risk_at_or_above_the_computed_one_is_kept() -> None:
    same = request("CR-0001-a", "fabrikam.example", requested=RiskLevel.MEDIUM)
    higher = request("CR-0002-b", "fabrikam.example", requested=RiskLevel.HIGH)
    unset = request("CR-0003-c", "fabrikam.example")
    assert check_requested_risk(same, RiskLevel.MEDIUM) is RiskLevel.MEDIUM
    assert check_requested_risk(higher, RiskLevel.MEDIUM) is RiskLevel.HIGH
    assert check_requested_risk(unset, RiskLevel.HIGH) is RiskLevel.HIGH


def test_signing_every_request_reads_the_requests_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The helper the plan and shard tests sign their portfolios with: linear in the requests.
    root = copy_example(tmp_path)
    requests = root / "changes/requests"
    for signature in requests.glob("*.sig.json"):
        signature.unlink()
    reads: list[Path] = []

    def counted(repo: Path, roster: Roster | None = None) -> list[ChangeRequest]:
        reads.append(repo)
        return load_requests(repo, roster)

    monkeypatch.setattr(signing, "load_requests", counted)
    signing.sign_all(root)
    assert reads == [root]
    roster = load_roster(root)
    signed = load_requests(root, roster)
    assert len(signed) == 6
    assert [signature_refusal(r, roster) for r in signed] == [None] * 6
    assert sorted(p.name for p in requests.glob("*.sig.json")) == sorted(
        f"{r.id}.sig.json" for r in signed
    )
