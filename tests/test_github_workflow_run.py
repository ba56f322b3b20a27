"""The privileged gate `dmarcops github gate` (gate.yml, on workflow_run): the default branch's
checkout judges the pull request's data, and the verdict is the check run `dmarcops/gate`.

Each test builds a real git repository from the example portfolio: `main` is checked out (as
gate.yml checks out the default branch) and the pull request's commits are only in the object
store, as after `git fetch origin SHA`. The API is tests/github_server.py on loopback.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from github_server import FakeGitHub, fixture, pull_request
from test_github_gate import (  # the same repository, API and review helpers as `github pr`
    NUMBER,
    NWH_PATIENTS,
    REPOSITORY,
    PullRequestRepo,
    approve,
    commit,
    edit,
    git,
    github,
    medium_change,
    pr,
)

from pipeline.cli import main
from pipeline.errors import EXIT_GATE, EXIT_INPUT, InputError
from pipeline.github.overlay import data_path_problem, overlay_pull_request
from pipeline.render.markdown import MARKER

__all__ = ["github", "pr"]  # fixtures, imported for pytest

AT = "2026-11-28T10:00:00Z"
CHECK = "dmarcops/gate"
LEDGER = "changes/ledger.jsonl"


@dataclass
class GateRun:
    result: Result
    github: FakeGitHub
    head: str
    root: Path

    @property
    def check(self) -> dict[str, Any]:
        runs = self.github.check_runs.get(self.head)
        assert runs, self.everything_printed
        assert len(runs) == 1, f"{len(runs)} check runs"
        return runs[0]

    @property
    def comment(self) -> str:
        ours = [c for c in self.github.comments.get(NUMBER, []) if c["body"].startswith(MARKER)]
        assert len(ours) == 1, f"{len(ours)} plan comments"
        return str(ours[0]["body"])

    @property
    def everything_printed(self) -> str:
        return self.result.stdout + self.result.stderr


def run_gate(
    pr: PullRequestRepo,
    github: FakeGitHub,
    monkeypatch: pytest.MonkeyPatch,
    head: str,
    author: str = "mhara-msp",
    *,
    pr_head: str | None = None,
    numbers: tuple[int, ...] = (NUMBER,),
) -> GateRun:
    """The plan workflow finished for `head`: gate it from main's checkout."""
    github.pulls[NUMBER] = pull_request(NUMBER, author, pr_head or head, pr.base)
    payload = fixture("event_workflow_run")
    payload["workflow_run"]["head_sha"] = head
    payload["workflow_run"]["pull_requests"] = [
        {**payload["workflow_run"]["pull_requests"][0], "number": n} for n in numbers
    ]
    event_file = pr.root.parent / "event.json"
    event_file.write_text(json.dumps(payload), encoding="utf-8")
    monkeypatch.setenv("GITHUB_EVENT_NAME", "workflow_run")
    monkeypatch.setenv("GITHUB_EVENT_PATH", str(event_file))
    # gate.yml checks out the default branch afresh on every run.
    git(pr.root, "checkout", "-q", "-f", "main")
    git(pr.root, "clean", "-q", "-f", "-d", "--", "zones", "changes")
    result = CliRunner().invoke(main, ["--repo", str(pr.root), "github", "gate", "--at", AT])
    return GateRun(result, github, head, pr.root)


def test_an_approved_pull_request_is_gated_from_main_and_the_verdict_is_a_check_run(
    pr: PullRequestRepo, github: FakeGitHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    head = medium_change(pr)
    approve(github, 11, "jchen-msp", head)
    run = run_gate(pr, github, monkeypatch, head)

    assert run.result.exit_code == 0, run.everything_printed
    assert run.check["name"] == CHECK
    assert run.check["conclusion"] == "success"
    assert run.check["head_sha"] == head
    assert run.check["output"]["summary"].startswith(MARKER)
    # The verdict is the check run only: no commit status that any token could also post.
    assert github.requests("POST", "/statuses/") == []
    assert "Approval gate: **passing**" in run.comment
    assert f"`dmarcops/gate` on `{head[:7]}`" in run.comment
    # main is still checked out; the pull request's zone file was laid over it as data.
    assert git(pr.root, "rev-parse", "--abbrev-ref", "HEAD") == "main"
    assert "pct=100" in (pr.root / NWH_PATIENTS).read_text(encoding="utf-8")
    assert git(pr.root, "status", "--porcelain") == f"M {NWH_PATIENTS}"


def test_without_a_review_the_check_fails_and_says_what_is_missing(
    pr: PullRequestRepo, github: FakeGitHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    head = medium_change(pr)
    run = run_gate(pr, github, monkeypatch, head)

    assert run.result.exit_code == EXIT_GATE
    assert run.check["conclusion"] == "failure"
    assert run.check["output"]["title"] == "CR-0005-northwind-health needs peer review"


def test_a_pull_request_that_lowers_the_risk_table_is_judged_by_mains_policy_and_needs_a_lead(
    pr: PullRequestRepo, github: FakeGitHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    # One commit: the risk table says pct increases are low, and the zone makes one.
    edit(
        pr.root,
        "policy/risk-rules.yaml",
        "direction: increase}}\n    risk: medium",
        "direction: increase}}\n    risk: low",
    )
    edit(pr.root, NWH_PATIENTS, "pct=50", "pct=100")
    head = commit(pr.root, "pct=100, and pct increases are low now")
    approve(github, 12, "jchen-msp", head)  # a peer, not a lead
    run = run_gate(pr, github, monkeypatch, head)

    assert run.result.exit_code == EXIT_GATE, run.everything_printed
    assert run.check["conclusion"] == "failure"
    # main's risk table judged: the change is still medium (jchen's review covers that) ...
    assert "medium risk" in run.comment
    # ... and the edit of the table itself needs a lead before the pull request may merge.
    assert "needs a lead's approving review" in run.check["output"]["title"]
    assert "- `policy/risk-rules.yaml`" in run.comment
    assert "risk: medium" in (pr.root / "policy/risk-rules.yaml").read_text(encoding="utf-8")
    assert "not taken from the pull request" in run.result.stdout

    approve(github, 13, "mhara-msp", head)  # the lead, but also the pull request's author
    assert run_gate(pr, github, monkeypatch, head).result.exit_code == EXIT_GATE


def test_a_lead_approving_the_rule_change_lets_it_pass(
    pr: PullRequestRepo, github: FakeGitHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    edit(pr.root, "policy/risk-rules.yaml", "    risk: medium", "    risk: medium  # reviewed")
    edit(pr.root, NWH_PATIENTS, "pct=50", "pct=100")
    head = commit(pr.root, "a comment in the risk table, and pct=100")
    approve(github, 14, "mhara-msp", head)  # the lead, for the rule change
    approve(github, 15, "sokafor-msp", head)  # a peer for mhara's CR-0005
    run = run_gate(pr, github, monkeypatch, head, author="jchen-msp")

    assert run.result.exit_code == 0, run.everything_printed
    assert "Files that judge changes (approved by a lead)" in run.comment


def test_a_truncated_ledger_in_the_pull_request_is_not_what_judges(
    pr: PullRequestRepo, github: FakeGitHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    ledger = (pr.root / LEDGER).read_text(encoding="utf-8")
    (pr.root / LEDGER).write_text("", encoding="utf-8")
    edit(pr.root, NWH_PATIENTS, "pct=50", "pct=100")
    head = commit(pr.root, "drop the ledger's seals")
    run = run_gate(pr, github, monkeypatch, head)

    assert (pr.root / LEDGER).read_text(encoding="utf-8") == ledger  # main's, untouched
    assert run.result.exit_code == EXIT_GATE
    assert "changes/ledger.jsonl" in run.check["output"]["title"]


def test_a_symbolic_link_in_the_pull_requests_zones_is_refused_and_the_check_says_not_gated(
    pr: PullRequestRepo, github: FakeGitHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    (pr.root / NWH_PATIENTS).unlink()
    os.symlink("/etc/passwd", pr.root / NWH_PATIENTS)
    head = commit(pr.root, "a link")
    run = run_gate(pr, github, monkeypatch, head)

    assert run.result.exit_code == EXIT_INPUT
    assert "is a symbolic link" in run.result.stderr
    assert "Traceback" not in run.everything_printed
    assert run.check["conclusion"] == "failure"
    assert run.check["output"]["title"].startswith("not gated: refused")
    assert not (pr.root / NWH_PATIENTS).is_symlink()
    assert git(pr.root, "status", "--porcelain") == ""  # nothing was written


def test_a_pull_request_that_moved_on_is_left_to_its_newer_run(
    pr: PullRequestRepo, github: FakeGitHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    head = medium_change(pr)
    run = run_gate(pr, github, monkeypatch, head, pr_head="f" * 40)

    assert run.result.exit_code == 0
    assert "nothing to gate" in run.result.stdout
    assert github.check_runs == {}
    assert git(pr.root, "status", "--porcelain") == ""


def test_a_forks_pull_request_is_found_through_its_commit(
    pr: PullRequestRepo, github: FakeGitHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    head = medium_change(pr)
    approve(github, 15, "jchen-msp", head)
    github.commit_pulls[head] = [pull_request(NUMBER, "mhara-msp", head, pr.base)]
    run = run_gate(pr, github, monkeypatch, head, numbers=())

    assert run.result.exit_code == 0, run.everything_printed
    assert run.check["conclusion"] == "success"


def test_a_deleted_request_is_deleted_and_a_missing_head_commit_is_named(
    pr: PullRequestRepo, github: FakeGitHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    (pr.root / "changes/requests/CR-0005-northwind-health.yaml").unlink()
    edit(pr.root, NWH_PATIENTS, "pct=50", "pct=100")
    head = commit(pr.root, "pct=100 without its request")
    run = run_gate(pr, github, monkeypatch, head)

    assert run.result.exit_code == EXIT_GATE
    assert "1 change(s) without a change request" in run.check["output"]["title"]
    assert not (pr.root / "changes/requests/CR-0005-northwind-health.yaml").exists()

    # A head commit that was not fetched: named, and the check says the run could not gate.
    missing = run_gate(pr, github, monkeypatch, "e" * 40)
    assert missing.result.exit_code == EXIT_INPUT
    assert "is not in this clone" in missing.result.stderr
    assert "git fetch --no-tags origin SHA" in missing.result.stderr
    assert missing.check["conclusion"] == "failure"


def test_the_gate_refuses_other_events(
    pr: PullRequestRepo, github: FakeGitHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    payload = fixture("event_pull_request")
    event_file = pr.root.parent / "event.json"
    event_file.write_text(json.dumps(payload), encoding="utf-8")
    monkeypatch.setenv("GITHUB_EVENT_NAME", "pull_request")
    monkeypatch.setenv("GITHUB_EVENT_PATH", str(event_file))
    result = CliRunner().invoke(main, ["--repo", str(pr.root), "github", "gate"])

    assert result.exit_code == EXIT_INPUT
    assert "runs on workflow_run events" in result.stderr


def test_local_edits_under_the_data_paths_are_refused_before_anything_is_written(
    pr: PullRequestRepo,
) -> None:
    head = medium_change(pr)
    git(pr.root, "checkout", "-q", "main")
    (pr.root / "zones/northwind-health/extra.example.yaml").write_text("{}\n", encoding="utf-8")

    with pytest.raises(InputError, match="local edits under the data paths"):
        overlay_pull_request(pr.root, head)


@pytest.mark.parametrize(
    ("path", "ok"),
    [
        ("zones/contoso-retail/contoso-retail.example.yaml", True),
        ("changes/requests/CR-0009-contoso-retail.sig.json", True),
        ("changes/approvals/149ef8f7/CR-0002-fabrikam-labs--mhara.json", True),
        ("changes/evidence/ab12.eml", True),
        ("zones/contoso-retail/deeper/x.yaml", False),
        ("zones/.hidden/x.yaml", False),
        ("changes/requests/..", False),
        ("changes/requests/x\nimport.yaml", False),
        ("policy/gate.yaml", False),
        ("changes/ledger.jsonl", False),
    ],
)
def test_only_data_paths_at_their_shape_are_taken(path: str, ok: bool) -> None:
    assert (data_path_problem(path) is None) is ok


def test_the_check_run_is_posted_with_the_workflows_token_on_the_head(
    pr: PullRequestRepo, github: FakeGitHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    head = medium_change(pr)
    approve(github, 16, "jchen-msp", head)
    run_gate(pr, github, monkeypatch, head)

    (posted,) = github.requests("POST", r"/check-runs$")
    assert posted.path == f"/repos/{REPOSITORY}/check-runs"
    assert posted.body["head_sha"] == head and posted.body["status"] == "completed"
    assert posted.headers["Authorization"].startswith("Bearer ")
    assert posted.body["details_url"].endswith("/actions/runs/4242")


def test_a_file_name_that_is_not_utf8_outside_the_data_is_listed_not_a_crash(
    pr: PullRequestRepo, github: FakeGitHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    odd = os.path.join(os.fsencode(pr.root), b"notes-\xff\x1b[31m.md")
    with open(odd, "wb") as out:
        out.write(b"hello\n")
    head = medium_change(pr)
    approve(github, 17, "jchen-msp", head)
    run = run_gate(pr, github, monkeypatch, head)

    assert run.result.exit_code == 0, run.everything_printed
    assert "not taken from the pull request" in run.result.stdout
    assert "\x1b" not in run.result.stdout  # shown escaped, never sent to the terminal


def test_a_green_status_posted_by_another_token_changes_nothing(
    pr: PullRequestRepo, github: FakeGitHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    head = medium_change(pr)
    forged = fixture("status")
    forged.update(state="success", context="dmarcops/approvals", description="approved")
    forged["creator"] = {"login": "mhara-msp", "id": 7100002, "type": "User"}
    github.statuses[head] = [forged]
    run = run_gate(pr, github, monkeypatch, head)

    assert run.result.exit_code == EXIT_GATE
    assert run.check["conclusion"] == "failure"
    assert github.requests("GET", "/status") == []  # the gate never reads statuses


def test_a_gate_that_crashes_posts_a_failed_check_not_a_pending_one_and_no_internals(
    pr: PullRequestRepo, github: FakeGitHub, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    head = medium_change(pr)

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("internal state: token=ghs_do_not_show")

    monkeypatch.setattr("pipeline.commands.github.run_pull_request_gate", broken)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    outputs = tmp_path / "github_output"
    monkeypatch.setenv("GITHUB_OUTPUT", str(outputs))
    run = run_gate(pr, github, monkeypatch, head)

    assert run.result.exit_code == 70, run.everything_printed  # a bug: EX_SOFTWARE, crash log
    assert run.check["status"] == "completed" and run.check["conclusion"] == "failure"
    assert (
        run.check["output"]["title"]
        == "not gated: dmarcops hit a bug (RuntimeError); the run's log names the crash log"
    )
    assert "ghs_do_not_show" not in json.dumps(run.check)
    assert "ghs_do_not_show" not in run.everything_printed
    assert list((tmp_path / "state" / "dmarcops").glob("crash-*.log"))
    # gate.yml's fallback step reads this and stays quiet: the verdict is already on the commit.
    assert outputs.read_text(encoding="utf-8") == "check_posted=true\n"


def test_a_gate_that_cannot_reach_github_leaves_the_fallback_to_post_the_check(
    pr: PullRequestRepo, github: FakeGitHub, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    head = medium_change(pr)
    outputs = tmp_path / "github_output"
    monkeypatch.setenv("GITHUB_OUTPUT", str(outputs))
    monkeypatch.setenv("GITHUB_API_URL", "http://127.0.0.1:9")  # nothing listens: unreachable
    run = run_gate(pr, github, monkeypatch, head)

    assert run.result.exit_code == EXIT_INPUT
    assert "cannot reach http://127.0.0.1:9" in run.result.stderr
    assert not github.check_runs.get(head)
    assert not outputs.exists()  # no check_posted: gate.yml's fallback posts "could not run"


def test_a_normal_run_tells_the_fallback_its_check_is_posted(
    pr: PullRequestRepo, github: FakeGitHub, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    head = medium_change(pr)
    outputs = tmp_path / "github_output"
    monkeypatch.setenv("GITHUB_OUTPUT", str(outputs))
    run = run_gate(pr, github, monkeypatch, head)

    assert run.result.exit_code == EXIT_GATE  # no review yet: red, and the check says so
    assert run.check["conclusion"] == "failure"
    assert outputs.read_text(encoding="utf-8") == "check_posted=true\n"
