"""`dmarcops plan --changed-since REF` in a real git repository built from the example portfolio:
only the zones a change touches are planned (zone file, client profile, change request), every zone
when portfolio-wide policy changed, and a bad REF or a directory outside git is exit 1.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from gitrepo import commit, example_repo, git
from portfolio import copy_example, write

from pipeline.cli import main
from pipeline.errors import InputError
from pipeline.plan.changes import zones_changed_since

ALL_ZONES = [
    "contoso-retail.example",
    "fabrikam.example",
    "northwind-health.example",
    "nwh-patients.example",
]
AT = "2026-11-28"  # the README's quick-start time: every example change is covered and plannable


def append(path: Path, text: str) -> None:
    with path.open("a", encoding="utf-8") as f:
        f.write(text)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """The example portfolio as a git repository: `main` with one commit, then branch `change`."""
    return example_repo(tmp_path / "repo")


def plan(repo: Path, *args: str) -> Result:
    return CliRunner().invoke(
        main, ["--repo", str(repo), "plan", "--at", AT, "--format", "json", *args]
    )


def planned_zones(result: Result) -> list[str]:
    assert result.exit_code == 0, result.output
    return sorted(z["zone"] for z in json.loads(result.stdout)["zones"])


def test_one_zone_changed_plans_only_that_zone(repo: Path) -> None:
    append(repo / "zones/northwind-health/nwh-patients.example.yaml", "# reviewed\n")
    commit(repo, "nwh-patients: comment")

    result = plan(repo, "--changed-since", "main")

    assert planned_zones(result) == ["nwh-patients.example"]
    changes = json.loads(result.stdout)["changes"]
    assert {c["zone"] for c in changes} == {"nwh-patients.example"}
    assert "nwh-patients.example: zones/northwind-health/nwh-patients.example.yaml changed" in (
        result.stderr
    )


def test_the_same_change_planned_in_full_has_the_same_items(repo: Path) -> None:
    append(repo / "zones/fabrikam-labs/fabrikam.example.yaml", "# reviewed\n")
    commit(repo, "fabrikam: comment")

    incremental = json.loads(plan(repo, "--changed-since", "main").stdout)
    full = json.loads(plan(repo, "--zone", "fabrikam.example").stdout)

    assert incremental["plan_hash"] == full["plan_hash"]


def test_mta_sts_policy_file_changed_plans_its_zone(repo: Path) -> None:
    write(
        repo / "zones/contoso-retail/contoso-retail.example.mta-sts.txt",
        "version: STSv1\nmode: testing\nmx: mail.contoso-retail.example\nmax_age: 86400\n",
    )

    changed = zones_changed_since(repo, "main")

    assert changed.zones == ("contoso-retail.example",)
    assert changed.reasons["contoso-retail.example"].endswith("changed (MTA-STS policy)")


def test_client_profile_changed_plans_all_its_zones(repo: Path) -> None:
    append(repo / "policy/clients/northwind-health.yaml", "# reviewed\n")
    commit(repo, "northwind: profile comment")

    result = plan(repo, "--changed-since", "main")

    assert planned_zones(result) == ["northwind-health.example", "nwh-patients.example"]
    assert "(client profile)" in result.stderr


def test_changed_since_reads_only_the_profiles_of_its_clients(
    repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """At 10,000 zones every client profile checked against its schema was most of a one-client
    plan; an unchanged, sealed profile was checked in full when a lead sealed it."""
    from pipeline.load import portfolio

    read: list[str] = []
    real = portfolio.load_yaml

    def recorded(path: Path, **kwargs: object) -> object:
        read.append(path.relative_to(repo).as_posix() if path.is_relative_to(repo) else "")
        return real(path, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(portfolio, "load_yaml", recorded)
    append(repo / "zones/northwind-health/nwh-patients.example.yaml", "# reviewed\n")

    result = plan(repo, "--changed-since", "HEAD")

    assert planned_zones(result) == ["nwh-patients.example"]
    profiles = sorted(p for p in read if p.startswith("policy/clients/"))
    assert profiles == ["policy/clients/northwind-health.yaml"]


def test_unsealed_broken_profile_of_another_client_still_refuses(repo: Path) -> None:
    """The profiles a changed-since plan skips are the sealed ones: an edit waiting for its seal
    is checked whichever client it is of, as a full plan checks it."""
    profile = repo / "policy/clients/contoso-retail.yaml"
    profile.write_text(profile.read_text(encoding="utf-8") + "colour: blue\n", encoding="utf-8")
    commit(repo, "contoso: a key the schema does not know")
    append(repo / "zones/northwind-health/nwh-patients.example.yaml", "# reviewed\n")

    result = plan(repo, "--changed-since", "HEAD")

    assert result.exit_code == 1, result.output
    assert "policy/clients/contoso-retail.yaml" in result.stderr
    assert "colour" in result.stderr


def test_change_request_changed_plans_the_zones_it_covers(repo: Path) -> None:
    append(repo / "changes/requests/CR-0006-contoso-retail.yaml", "# reviewed\n")
    commit(repo, "contoso: request comment")

    assert planned_zones(plan(repo, "--changed-since", "main")) == ["contoso-retail.example"]


@pytest.mark.parametrize(
    "policy_file",
    [
        "policy/risk-rules.yaml",
        "policy/senders.yaml",
        "policy/providers.yaml",
        "policy/settings.yaml",
    ],
)
def test_portfolio_wide_policy_changed_plans_every_zone(repo: Path, policy_file: str) -> None:
    append(repo / policy_file, "# reviewed\n")
    commit(repo, f"{policy_file}: comment")

    result = plan(repo, "--changed-since", "main")

    assert planned_zones(result) == ALL_ZONES
    assert f"planning every zone since main: {policy_file} changed" in result.stderr


def test_uncommitted_and_untracked_changes_count(repo: Path) -> None:
    append(repo / "zones/fabrikam-labs/fabrikam.example.yaml", "# not committed yet\n")
    write(repo / "changes/requests/CR-0099-contoso-retail.yaml", "client: contoso-retail\n")

    changed = zones_changed_since(repo, "HEAD")

    # The untracked request has no `covers:` yet: its client's zones stand in.
    assert changed.zones == ("contoso-retail.example", "fabrikam.example")
    assert not changed.everything
    assert changed.reasons["fabrikam.example"] == (
        "zones/fabrikam-labs/fabrikam.example.yaml changed"
    )


def test_nothing_changed_plans_nothing(repo: Path) -> None:
    result = plan(repo, "--changed-since", "main")

    assert planned_zones(result) == []
    assert json.loads(result.stdout)["changes"] == []
    assert "no zone changed since main: nothing to plan" in result.stderr


def test_removed_zone_file_is_reported_not_planned(repo: Path) -> None:
    git(repo, "rm", "-q", "zones/northwind-health/nwh-patients.example.yaml")
    commit(repo, "nwh-patients: stop managing")

    result = plan(repo, "--changed-since", "main")

    assert planned_zones(result) == []
    assert (
        "removed zone file: zones/northwind-health/nwh-patients.example.yaml: the pipeline does "
        "not delete records of a removed zone automatically"
    ) in result.stderr


def test_zone_file_moved_between_suffixes_is_planned_not_removed(repo: Path) -> None:
    git(
        repo,
        "mv",
        "zones/fabrikam-labs/fabrikam.example.yaml",
        "zones/fabrikam-labs/fabrikam.example.yml",
    )
    commit(repo, "fabrikam: rename")

    changed = zones_changed_since(repo, "main")

    assert changed.zones == ("fabrikam.example",)
    assert changed.removed == ()


def test_bad_ref_is_exit_1_with_a_clear_message(repo: Path) -> None:
    result = plan(repo, "--changed-since", "no-such-branch")

    assert result.exit_code == 1
    assert "git does not know the revision 'no-such-branch'" in result.stderr
    assert "fetch-depth: 0" in result.stderr
    assert "Traceback" not in result.output


def test_option_looking_ref_is_refused(repo: Path) -> None:
    with pytest.raises(InputError, match="not a git revision"):
        zones_changed_since(repo, "--output=/tmp/x")


def test_not_a_git_repository_is_exit_1(tmp_path: Path) -> None:
    root = copy_example(tmp_path / "plain")

    # GIT_CEILING_DIRECTORIES: a temporary directory inside some clone must not count as one.
    result = CliRunner().invoke(
        main,
        ["--repo", str(root), "plan", "--changed-since", "HEAD~1"],
        env={"GIT_CEILING_DIRECTORIES": str(tmp_path)},
    )

    assert result.exit_code == 1
    assert "--changed-since needs a git repository" in result.stderr
