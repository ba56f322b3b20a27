"""`dmarcops github check-setup` against a local GitHub API serving recorded ruleset and branch
protection responses (tests/fixtures/github/ruleset.json, branch_protection.json): every setting
the gate depends on that is missing or weaker is named, exit 1 if any."""

from __future__ import annotations

import copy
import json
import os
import re
from collections.abc import Iterator
from typing import Any

import pytest
from click.testing import CliRunner, Result
from github_server import FakeGitHub, fixture
from portfolio import REPO

from pipeline.cli import main
from pipeline.errors import EXIT_INPUT

TOKEN = "github_pat_dmarcopsTEST0lead0token0never0shown"
REPOSITORY = "msp-example/dns"


@pytest.fixture
def github(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeGitHub]:
    for name in list(os.environ):
        if name.startswith("GITHUB_") or "proxy" in name.lower():
            monkeypatch.delenv(name)
    with FakeGitHub(REPOSITORY, TOKEN) as server:
        monkeypatch.setenv("GITHUB_API_URL", server.url)
        monkeypatch.setenv("GITHUB_TOKEN", TOKEN)
        monkeypatch.setenv("GITHUB_REPOSITORY", REPOSITORY)
        for name in ("production", "gate"):
            server.environments[name] = environment(name)
            server.branch_policies[name] = fixture("deployment_branch_policies")["branch_policies"]
        yield server


def environment(name: str, **changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = fixture("environment")
    data["name"] = name
    data["url"] = data["url"].replace("/production", f"/{name}")
    data.update(changes)
    return data


def check_setup(*args: str) -> Result:
    return CliRunner().invoke(main, ["github", "check-setup", *args])


def missing(result: Result) -> list[str]:
    return re.findall(r"^  MISSING ([^:]+):", result.stdout, re.MULTILINE)


def ruleset(**changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = fixture("ruleset")
    data.update(changes)
    return data


def rule(data: dict[str, Any], kind: str) -> dict[str, Any]:
    found: dict[str, Any] = next(r for r in data["rules"] if r["type"] == kind)
    return found


def test_the_documented_ruleset_passes(github: FakeGitHub) -> None:
    github.rulesets[42] = ruleset()
    result = check_setup()

    assert result.exit_code == 0, result.output
    assert "read from ruleset dmarcops gate (42)" in result.stdout
    assert "  ok      required check dmarcops/gate: from app 15368 only" in result.stdout
    assert missing(result) == []
    # It read the rules in force on the default branch, then the ruleset for its bypass list.
    assert github.requests("GET", r"/rules/branches/main$")
    assert github.requests("GET", r"/rulesets/42$")


def test_the_ruleset_in_docs_github_md_passes(github: FakeGitHub) -> None:
    # The JSON a lead pastes from docs/github.md is the one check-setup accepts.
    text = (REPO / "docs" / "github.md").read_text(encoding="utf-8")
    block = re.search(r"```json\n(\{\n  \"name\": \"dmarcops gate\".*?)\n```", text, re.DOTALL)
    assert block, "docs/github.md lost its ruleset"
    github.rulesets[7] = {**json.loads(block.group(1)), "id": 7}
    result = check_setup()

    assert result.exit_code == 0, result.output


def test_no_protection_at_all_names_every_setting(github: FakeGitHub) -> None:
    result = check_setup()

    assert result.exit_code == EXIT_INPUT
    assert missing(result) == [
        "required check dmarcops/gate",
        "required reviews",
        "review from code owners",
        "dismiss stale approvals on push",
        "approval of the last push",
        "no force pushes",
        "no branch deletion",
        "linear history",
    ]
    assert "8 setting(s) missing or weaker" in result.stderr
    assert "no rules at all" in result.stdout


def test_a_check_any_token_can_satisfy_is_weaker(github: FakeGitHub) -> None:
    data = ruleset()
    checks = rule(data, "required_status_checks")["parameters"]["required_status_checks"]
    checks[0].pop("integration_id")  # "any source": a status posted with a personal token counts
    github.rulesets[42] = data
    result = check_setup()

    assert result.exit_code == EXIT_INPUT
    assert missing(result) == ["required check dmarcops/gate"]
    assert "accepted from any source: pin it to app 15368" in result.stdout


def test_the_old_status_context_is_not_the_gate(github: FakeGitHub) -> None:
    data = ruleset()
    checks = rule(data, "required_status_checks")["parameters"]["required_status_checks"]
    checks[0]["context"] = "dmarcops/approvals"  # what the in-PR workflow used to post
    github.rulesets[42] = data

    assert missing(check_setup()) == ["required check dmarcops/gate"]
    assert check_setup("--check-name", "dmarcops/approvals").exit_code == 0


def test_weaker_reviews_bypass_and_force_pushes_are_each_named(github: FakeGitHub) -> None:
    data = ruleset()
    reviews = rule(data, "pull_request")["parameters"]
    reviews["dismiss_stale_reviews_on_push"] = False
    reviews["require_code_owner_review"] = False
    data["rules"] = [r for r in data["rules"] if r["type"] != "non_fast_forward"]
    data["bypass_actors"].append(
        {"actor_id": 1, "actor_type": "OrganizationAdmin", "bypass_mode": "always"}
    )
    github.rulesets[42] = data
    result = check_setup()

    assert result.exit_code == EXIT_INPUT
    assert missing(result) == [
        "review from code owners",
        "dismiss stale approvals on push",
        "no force pushes",
        "no bypass",
    ]
    assert "ruleset 42 lets OrganizationAdmin 1 bypass (always)" in result.stdout


def test_the_example_in_docs_github_md_is_what_check_setup_prints(github: FakeGitHub) -> None:
    text = (REPO / "docs" / "github.md").read_text(encoding="utf-8")
    block = re.search(r"\$ GITHUB_REPOSITORY=.*?check-setup\n(.*?)\n```", text, re.DOTALL)
    assert block, "docs/github.md lost its check-setup example"
    data = ruleset()
    rule(data, "required_status_checks")["parameters"]["required_status_checks"][0].pop(
        "integration_id"
    )
    rule(data, "pull_request")["parameters"]["dismiss_stale_reviews_on_push"] = False
    data["bypass_actors"].append(
        {"actor_id": 1, "actor_type": "OrganizationAdmin", "bypass_mode": "always"}
    )
    github.rulesets[42] = data
    result = check_setup()

    assert result.exit_code == EXIT_INPUT
    assert result.stdout + result.stderr == block.group(1) + "\n"


def test_a_bypass_list_the_token_cannot_see_is_not_taken_as_empty(github: FakeGitHub) -> None:
    data = ruleset()
    data.pop("bypass_actors")  # what GitHub answers a token that may not edit the ruleset
    github.rulesets[42] = data
    result = check_setup()

    assert missing(result) == ["no bypass"]
    assert "bypass list is not visible to this token" in result.stdout


def test_an_evaluate_only_ruleset_enforces_nothing(github: FakeGitHub) -> None:
    github.rulesets[42] = ruleset(enforcement="evaluate")

    assert "required check dmarcops/gate" in missing(check_setup())


def test_classic_branch_protection_counts_too(github: FakeGitHub) -> None:
    github.protection["main"] = fixture("branch_protection")
    result = check_setup()

    assert result.exit_code == 0, result.output
    assert "read from classic branch protection" in result.stdout

    weak = copy.deepcopy(fixture("branch_protection"))
    weak["allow_force_pushes"]["enabled"] = True
    weak["enforce_admins"]["enabled"] = False
    weak["required_status_checks"]["checks"][0]["app_id"] = None
    github.protection["main"] = weak
    result = check_setup()
    assert missing(result) == ["required check dmarcops/gate", "no force pushes", "no bypass"]
    assert "not enforced for administrators" in result.stdout


def test_another_branch_and_app_can_be_named(github: FakeGitHub) -> None:
    github.default_branch = "trunk"
    for name in github.environments:  # the environments deploy from the default branch
        github.branch_policies[name] = [{"id": 9, "name": "trunk", "type": "branch"}]
    data = ruleset()
    rule(data, "required_status_checks")["parameters"]["required_status_checks"][0][
        "integration_id"
    ] = 901234  # the MSP's own GitHub App
    github.rulesets[42] = data

    assert check_setup("--app-id", "901234").exit_code == 0
    assert github.requests("GET", r"/rules/branches/trunk$")
    assert check_setup().exit_code == EXIT_INPUT


def test_a_token_that_may_not_read_the_settings_is_told_what_it_needs(github: FakeGitHub) -> None:
    github.rulesets[42] = ruleset()
    github.failures[("GET", f"/repos/{REPOSITORY}/rulesets/42")] = (
        403,
        {"message": "Resource not accessible by integration"},
    )
    result = check_setup()

    assert result.exit_code == EXIT_INPUT
    assert "answered 403: Resource not accessible by integration" in result.stderr
    assert "Administration" in result.stderr
    assert "Traceback" not in result.output
    assert TOKEN not in result.output


@pytest.mark.parametrize(
    ("name", "change", "policies", "detail"),
    [
        ("production", None, [], "missing: create it (Settings > Environments)"),
        ("gate", None, [], "missing: create it (Settings > Environments)"),
        (
            "production",
            {"deployment_branch_policy": None},
            [],
            "any branch may deploy: set a deployment branch policy",
        ),
        (
            "gate",
            {
                "deployment_branch_policy": {
                    "protected_branches": True,
                    "custom_branch_policies": False,
                }
            },
            [],
            "any protected branch may deploy: use a custom policy naming the default branch",
        ),
        (
            "production",
            None,
            [
                {"id": 1, "name": "main", "type": "branch"},
                {"id": 2, "name": "release/*", "type": "branch"},
            ],
            "deploys from branch main, branch release/*: allow the branch main only",
        ),
        (
            "gate",
            None,
            [{"id": 3, "name": "v*", "type": "tag"}],
            "deploys from tag v*: allow the branch main only",
        ),
    ],
)
def test_an_environment_other_branches_can_deploy_from_is_named(
    github: FakeGitHub, name: str, change: dict[str, Any] | None, policies: list[Any], detail: str
) -> None:
    github.rulesets[42] = ruleset()
    if change is None and not policies:
        del github.environments[name]
    if change is not None:
        github.environments[name].update(change)
    if policies:
        github.branch_policies[name] = policies
    result = check_setup()

    assert result.exit_code == EXIT_INPUT
    setting = (
        f"environment {name}"
        if "missing" in detail
        else f"environment {name}: deploys from main only"
    )
    assert missing(result) == [f"environment {name}"]  # the setting's name up to its colon
    assert f"  MISSING {setting}: {detail}" in result.stdout


def test_the_documented_environments_pass_and_are_read_by_name(github: FakeGitHub) -> None:
    github.rulesets[42] = ruleset()
    result = check_setup()

    assert result.exit_code == 0, result.output
    assert (
        "  ok      environment production: deploys from main only: branch policy: main"
        in result.stdout
    )
    assert (
        "  ok      environment gate: deploys from main only: branch policy: main" in result.stdout
    )
    assert github.requests("GET", r"/environments/gate/deployment-branch-policies$")
