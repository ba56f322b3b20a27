"""The README's quick start: `dmarcops plan` on the shipped example portfolio, sandbox provider.

The example must show at least one low, one medium and one high change, each with its reason, and
the same plan must come out as text, JSON (the contract approvals bind) and markdown.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from portfolio import copy_example

from pipeline.cli import _progress, main

AT = "2026-11-28T10:00:00Z"  # inside Contoso's holiday freeze, before Fabrikam's rotation date


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return copy_example(tmp_path)


def run(repo: Path, *args: str) -> Any:
    return CliRunner().invoke(main, ["--repo", str(repo), "plan", "--at", AT, *args])


def test_example_plan_has_low_medium_and_high_with_reasons(repo: Path) -> None:
    result = run(repo, "--format", "json")
    assert result.exit_code == 0, result.stderr
    plan = json.loads(result.stdout)
    levels = {c["risk"] for c in plan["changes"]}
    assert levels == {"low", "medium", "high"}
    for c in plan["changes"]:
        assert c["reasons"], c
        assert any(r.startswith(c["risk"] + ":") for r in c["reasons"]), c["reasons"]
    assert plan["risk"] == "high"
    # The JSON contract approvals and the workflows rely on.
    for key in ("plan_hash", "risk", "changes"):
        assert key in plan
    for c in plan["changes"]:
        for key in (
            "client",
            "zone",
            "name",
            "type",
            "action",
            "before",
            "after",
            "risk",
            "reasons",
            "facts",
            "findings",
        ):
            assert key in c
        assert c["action"] in ("create", "update", "delete")
        for f in c["findings"]:
            assert set(f) >= {"severity", "code", "message"}
    # Raw values as served: semicolons unescaped.
    dmarc = next(c for c in plan["changes"] if c["zone"] == "northwind-health.example")
    assert dmarc["after"] == ["v=DMARC1; p=reject; rua=mailto:dmarc@northwind-health.example"]
    # The sandbox has no DNS: budgets come from the catalog, and the plan says so.
    assert {z["spf_budget_source"] for z in plan["zones"]} == {"catalog"}


def test_example_apex_tokens_are_kept(repo: Path) -> None:
    plan = json.loads(run(repo, "--format", "json").stdout)
    spf = next(c for c in plan["changes"] if c["zone"] == "fabrikam.example" and c["name"] == "")
    assert "google-site-verification=fab-77d1e0c3" in spf["before"]
    assert "google-site-verification=fab-77d1e0c3" in spf["after"]
    # Records the client owns (A, MX) never appear in a plan.
    assert {c["type"] for c in plan["changes"]} <= {"TXT", "CNAME"}


def test_text_output_has_the_summary_line(repo: Path) -> None:
    result = run(repo)
    assert result.exit_code == 0
    plan = json.loads(run(repo, "--format", "json").stdout)
    s = plan["summary"]
    expected = (
        f"{s['create']} to create, {s['update']} to update, {s['delete']} to delete; risk: "
        f"{s['risk']['low']} low, {s['risk']['medium']} medium, {s['risk']['high']} high"
    )
    assert result.stdout.rstrip().splitlines()[-1] == expected
    assert "\x1b[" not in result.stdout  # no colour when not on a terminal
    assert "Holiday peak season" in result.stdout


def test_out_file_is_the_json_plan(repo: Path, tmp_path: Path) -> None:
    out = tmp_path / "saved.json"
    result = run(repo, "--format", "markdown", "--out", str(out))
    assert result.exit_code == 0
    saved = json.loads(out.read_text())
    assert saved["plan_hash"] in result.stdout


def test_plan_hash_ignores_presentation_but_not_content(repo: Path) -> None:
    first = json.loads(run(repo, "--format", "json").stdout)
    later = json.loads(
        CliRunner()
        .invoke(main, ["--repo", str(repo), "plan", "--format", "json", "--at", "2027-02-01"])
        .stdout
    )
    # A different day changes risks (the freeze is over) but not what changes: same hash.
    assert later["plan_hash"] == first["plan_hash"]
    assert later["risk"] != first["risk"] or later["changes"] != first["changes"]
    zone = repo / "zones/fabrikam-labs/fabrikam.example.yaml"
    zone.write_text(zone.read_text().replace("pct=50", "pct=75"))
    changed = json.loads(run(repo, "--format", "json").stdout)
    assert changed["plan_hash"] != first["plan_hash"]


def test_validation_error_in_desired_state_exits_2(repo: Path) -> None:
    zone = repo / "zones/fabrikam-labs/fabrikam.example.yaml"
    zone.write_text(zone.read_text().replace("p=quarantine\\; pct=50", "p=block"))
    result = run(repo)
    assert result.exit_code == 2
    assert "D3" in result.stdout
    assert "validation errors" in result.stderr


def test_progress_indicator_counts_to_the_end(capsys: pytest.CaptureFixture[str]) -> None:
    for done in range(1, 4):
        _progress(done, 3)
    err = capsys.readouterr().err
    assert err == "\rplanning zones: 1/3\rplanning zones: 2/3\rplanning zones: 3/3\n"


def test_sandbox_provider_directory_is_resolved_against_the_repo(
    repo: Path, tmp_path: Path
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    cwd = os.getcwd()
    os.chdir(elsewhere)
    try:
        result = run(repo, "--format", "json")
    finally:
        os.chdir(cwd)
    assert result.exit_code == 0, result.stderr


def test_every_example_change_has_its_request(repo: Path) -> None:
    plan = json.loads(run(repo, "--format", "json").stdout)
    assert all(c["request"] is not None for c in plan["changes"])
    dmarc = next(c for c in plan["changes"] if c["zone"] == "northwind-health.example")
    assert dmarc["request"] == {
        "id": "CR-0004-northwind-health",
        "type": "policy-progression",
        "author": "mhara",
    }
    md = run(repo, "--format", "markdown").stdout
    assert "p=quarantine at pct=100 has run 45 days" in md  # the rationale fills the draft


def test_a_change_without_a_request_is_refused(repo: Path) -> None:
    (repo / "changes/requests/CR-0003-fabrikam-labs.yaml").unlink()
    result = run(repo)
    assert result.exit_code == 2
    assert "request: NONE" in result.stdout
    assert "fabrikam.example s2026._domainkey TXT" in result.stderr
    assert "dmarcops new TYPE --client fabrikam-labs" in result.stderr


def test_requested_risk_below_computed_is_refused(repo: Path) -> None:
    path = repo / "changes/requests/CR-0004-northwind-health.yaml"
    path.write_text(path.read_text() + 'requested_risk: "low"\n')
    result = run(repo)
    assert result.exit_code == 2
    assert "CR-0004-northwind-health asks for low risk but its changes are high" in result.stderr
    assert "[requested-risk-below-computed]" in result.stderr
