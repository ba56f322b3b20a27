"""The pull-request gate against a local GitHub API: reviews as approvals, one comment, annotations,
the `dmarcops/approvals` commit status and the exit code.

Each test builds a real git repository from the example portfolio (sandbox provider): `main` holds
the northwind zones as live DNS has them, the pull request's commits change them. The API is
tests/github_server.py on loopback, answering with recorded response shapes and recording what the
gate sent. Example portfolio facts used here:
- nwh-patients.example pct=50 -> 100 is medium risk, request CR-0005 by mhara (github mhara-msp);
- northwind-health.example p=reject is high risk, request CR-0004 by mhara, with the client's
  written approval (removed where a test needs it missing);
- roster GitHub logins: jchen-msp, mhara-msp, sokafor-msp.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from github_server import ROSTER_IDS, FakeGitHub, comment, fixture, pull_request, review
from portfolio import REPO, copy_example
from signing import sign_if_valid

from pipeline.cli import main
from pipeline.commands.github import register
from pipeline.errors import EXIT_GATE, EXIT_INPUT, EnvironmentProblem, InputError
from pipeline.gate.approvals import GITHUB, Approval, verify
from pipeline.gate.roster import load_roster
from pipeline.github.api import GitHubClient
from pipeline.github.comment import fit, where_the_plan_is
from pipeline.github.events import PullRequestEvent, PushEvent, parse_event
from pipeline.github.pr import workflow_command, zones_changed
from pipeline.github.reviews import GitHubReviewApprovals
from pipeline.render.markdown import MARKER

if "github" not in main.commands:  # until pipeline/cli.py registers it itself
    register(main)

TOKEN = "ghs_dmarcopsTEST0token0never0printed0Zq9"
REPOSITORY = "msp-example/dns"
NUMBER = 7
AT = "2026-11-28T10:00:00Z"
NWH_PATIENTS = "zones/northwind-health/nwh-patients.example.yaml"
NWH = "zones/northwind-health/northwind-health.example.yaml"
CR_HIGH = "changes/requests/CR-0004-northwind-health.yaml"
STATUSES = f"/repos/{REPOSITORY}/statuses/"
COMMENTS = f"/repos/{REPOSITORY}/issues/{NUMBER}/comments"


# --- a pull request in a real git repository -------------------------------------------------


def git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-c", "user.name=Test", "-c", "user.email=test@msp.example", *args],
        cwd=repo,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()


def edit(repo: Path, path: str, old: str, new: str) -> None:
    file = repo / path
    text = file.read_text(encoding="utf-8")
    assert old in text, (path, old)
    file.write_text(text.replace(old, new), encoding="utf-8")


def commit(repo: Path, message: str) -> str:
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", message)
    return git(repo, "rev-parse", "HEAD")


@dataclass
class PullRequestRepo:
    root: Path
    base: str  # main, where the pull request branched off

    def push(self, path: str, old: str, new: str, message: str = "change") -> str:
        edit(self.root, path, old, new)
        return commit(self.root, message)


@pytest.fixture
def pr(tmp_path: Path) -> PullRequestRepo:
    root = copy_example(tmp_path / "repo")
    # As in a real dmarcops repository: runtime state (locks, the record index and the report
    # store under .dmarcops/) is gitignored, not a change of the checkout.
    shutil.copy(REPO / ".gitignore", root / ".gitignore")
    git(root, "init", "-q", "-b", "main")
    # main as live DNS has the northwind zones (sandbox/live): the pull request makes the changes.
    edit(root, NWH_PATIENTS, "pct=100", "pct=50")
    edit(root, NWH, r"p=reject\;", r"p=quarantine\; pct=100\;")
    base = commit(root, "main")
    git(root, "checkout", "-q", "-b", "change")
    return PullRequestRepo(root, base)


def medium_change(pr: PullRequestRepo) -> str:
    """nwh-patients.example pct=50 -> 100: medium, CR-0005 by mhara."""
    return pr.push(NWH_PATIENTS, "pct=50", "pct=100", "nwh-patients: pct=100")


def high_change(pr: PullRequestRepo, client_approval: bool = True) -> str:
    """northwind-health.example p=reject: high, CR-0004 by mhara."""
    if not client_approval:
        text = (pr.root / CR_HIGH).read_text(encoding="utf-8")
        (pr.root / CR_HIGH).write_text(text.split("client_approval:")[0], encoding="utf-8")
        sign_if_valid(pr.root, "CR-0004-northwind-health")  # the author signs the edit
    return pr.push(NWH, r"p=quarantine\; pct=100\;", r"p=reject\;", "northwind: p=reject")


# --- GitHub: environment, API, event --------------------------------------------------------


@pytest.fixture
def github(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[FakeGitHub]:
    for name in list(os.environ):  # the tests may themselves run inside GitHub Actions
        if name.startswith("GITHUB_") or name == "DMARCOPS_NOW" or "proxy" in name.lower():
            monkeypatch.delenv(name)
    with FakeGitHub(REPOSITORY, TOKEN) as server:
        monkeypatch.setenv("GITHUB_API_URL", server.url)
        monkeypatch.setenv("GITHUB_TOKEN", TOKEN)
        monkeypatch.setenv("GITHUB_REPOSITORY", REPOSITORY)
        monkeypatch.setenv("GITHUB_SERVER_URL", "https://github.com")
        monkeypatch.setenv("GITHUB_RUN_ID", "4242")
        monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(tmp_path / "summary.md"))
        yield server


def approve(
    github: FakeGitHub, review_id: int, login: str, commit_id: str, state: str = "APPROVED"
) -> None:
    at = f"2026-11-27T{10 + review_id % 10:02d}:{review_id % 60:02d}:00Z"
    github.reviews.setdefault(NUMBER, []).append(review(review_id, login, state, commit_id, at))


@dataclass
class GateRun:
    result: Result
    out: Path
    summary: Path
    github: FakeGitHub
    head: str

    @property
    def status(self) -> dict[str, Any]:
        """The last commit status posted on the head commit."""
        assert self.github.statuses.get(self.head), self.result.output
        return self.github.statuses[self.head][-1]

    @property
    def comment(self) -> str:
        ours = [c for c in self.github.comments.get(NUMBER, []) if c["body"].startswith(MARKER)]
        assert len(ours) == 1, f"{len(ours)} plan comments"
        return str(ours[0]["body"])

    @property
    def plan(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(self.out.read_text(encoding="utf-8"))
        return data

    @property
    def everything_printed(self) -> str:
        return self.result.stdout + self.result.stderr


def gate(
    pr: PullRequestRepo,
    github: FakeGitHub,
    monkeypatch: pytest.MonkeyPatch,
    head: str,
    author: str = "mhara-msp",
    event: str = "pull_request",
    args: tuple[str, ...] = (),
    author_id: int | None = None,
) -> GateRun:
    payload = fixture(f"event_{event}")
    payload["pull_request"]["number"] = NUMBER
    payload["pull_request"]["user"]["login"] = author
    payload["pull_request"]["user"]["id"] = author_id or ROSTER_IDS.get(author.lower(), 1)
    payload["pull_request"]["head"]["sha"] = head
    payload["pull_request"]["base"]["sha"] = pr.base
    event_file = pr.root.parent / "event.json"
    event_file.write_text(json.dumps(payload), encoding="utf-8")
    monkeypatch.setenv("GITHUB_EVENT_NAME", event)
    monkeypatch.setenv("GITHUB_EVENT_PATH", str(event_file))
    git(pr.root, "checkout", "-q", head)
    out = pr.root.parent / "plan.json"
    result = CliRunner().invoke(
        main, ["--repo", str(pr.root), "github", "pr", "--at", AT, "--out", str(out), *args]
    )
    summary = Path(os.environ["GITHUB_STEP_SUMMARY"])
    return GateRun(result, out, summary, github, head)


# --- the scenarios ---------------------------------------------------------------------------


def test_an_approval_of_the_head_by_a_roster_analyst_other_than_the_author_is_green(
    pr: PullRequestRepo, github: FakeGitHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    head = medium_change(pr)
    approve(github, 11, "jchen-msp", head)
    run = gate(pr, github, monkeypatch, head)

    assert run.result.exit_code == 0, run.everything_printed
    assert run.status["state"] == "success"
    assert run.status["context"] == "dmarcops/approvals"
    assert run.status["target_url"] == f"https://github.com/{REPOSITORY}/actions/runs/4242"
    plan = run.plan
    # Only the zone the pull request touches was planned, and the status names that plan.
    assert {c["zone"] for c in plan["changes"]} == {"nwh-patients.example"}
    assert plan["risk"] == "medium"
    assert plan["plan_hash"][:12] in run.status["description"]
    assert f"- [x] peer review: &#64;jchen-msp (review 11 on `{head[:7]}`)" in run.comment
    assert "- [x] author: mhara (CR-0005-northwind-health.yaml)" in run.comment
    assert "- [ ]" not in run.comment
    assert "Approval gate: **passing**" in run.comment
    # The job summary gets the same markdown.
    assert run.comment in run.summary.read_text(encoding="utf-8")
    (reviews_read,) = github.requests("GET", r"/pulls/7/reviews$")
    assert reviews_read.query["per_page"] == "100"


def test_the_pull_request_authors_own_approval_does_not_count(
    pr: PullRequestRepo, github: FakeGitHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    # jchen opened the pull request for mhara's request CR-0005: jchen is not the request's author,
    # so only the pull-request-author rule keeps jchen's approval from counting.
    head = medium_change(pr)
    approve(github, 12, "jchen-msp", head)
    run = gate(pr, github, monkeypatch, head, author="jchen-msp")

    assert run.result.exit_code == EXIT_GATE
    assert run.status["state"] == "failure"
    assert run.status["description"] == "CR-0005-northwind-health needs peer review"
    assert "- [ ] peer review:" in run.comment
    assert "&#64;jchen-msp, review 12 on" in run.comment
    assert "opened this pull request" in run.comment


def test_an_approval_by_a_login_off_the_roster_does_not_count(
    pr: PullRequestRepo, github: FakeGitHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    head = medium_change(pr)
    approve(github, 13, "helpful-stranger", head)
    run = gate(pr, github, monkeypatch, head)

    assert run.result.exit_code == EXIT_GATE
    assert run.status["state"] == "failure"
    assert "CR-0005-northwind-health needs peer review" in run.status["description"]
    assert "&#64;helpful-stranger is not on the analyst roster" in run.comment


def test_an_approval_of_an_earlier_push_stops_counting_when_the_plan_changes(
    pr: PullRequestRepo, github: FakeGitHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    reviewed = medium_change(pr)
    approve(github, 14, "jchen-msp", reviewed)
    first = gate(pr, github, monkeypatch, reviewed)
    assert first.result.exit_code == 0, first.everything_printed
    assert first.status["state"] == "success"
    first_hash = first.plan["plan_hash"]

    git(pr.root, "checkout", "-q", "change")
    pushed = pr.push(NWH_PATIENTS, "pct=100", "pct=75", "pct=75 after all")
    second = gate(pr, github, monkeypatch, pushed)

    assert second.plan["plan_hash"] != first_hash
    assert second.result.exit_code == EXIT_GATE
    assert second.status["state"] == "failure"
    assert "needs peer review" in second.status["description"]
    assert f"it approves commit {reviewed[:7]}, not the current head {pushed[:7]}" in second.comment
    # The earlier commit keeps its own (green) status; the new head got the red one.
    assert github.statuses[reviewed][-1]["state"] == "success"


def test_high_risk_without_the_clients_approval_is_red_and_the_checklist_says_so(
    pr: PullRequestRepo, github: FakeGitHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    head = high_change(pr, client_approval=False)
    approve(github, 15, "jchen-msp", head)
    run = gate(pr, github, monkeypatch, head)

    assert run.result.exit_code == EXIT_GATE
    assert run.status["state"] == "failure"
    # Editing CR-0004 takes it off policy/gate.yaml's grandfathered list, so its move to
    # p=reject now needs report evidence too (docs/reports.md); the client approval is still named.
    assert (
        run.status["description"]
        == "CR-0004-northwind-health needs report evidence + client approval"
    )
    assert "carries no report evidence" in run.comment
    assert f"- [x] peer review: &#64;jchen-msp (review 15 on `{head[:7]}`)" in run.comment
    assert "- [ ] client approval: a high-risk change needs written approval" in run.comment
    assert "dana.whitfield&#64;northwind-health.example" in run.comment


def test_high_risk_with_peer_review_and_client_approval_is_green(
    pr: PullRequestRepo, github: FakeGitHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    head = high_change(pr, client_approval=True)
    approve(github, 16, "sokafor-msp", head)
    run = gate(pr, github, monkeypatch, head)

    assert run.result.exit_code == 0, run.everything_printed
    assert run.status["state"] == "success"
    assert "- [x] client approval: dana.whitfield&#64;northwind-health.example" in run.comment


@pytest.mark.parametrize(
    ("order", "green"),
    [(("APPROVED", "CHANGES_REQUESTED"), False), (("CHANGES_REQUESTED", "APPROVED"), True)],
)
def test_the_reviewers_latest_say_counts_a_later_change_request_withdraws(
    pr: PullRequestRepo,
    github: FakeGitHub,
    monkeypatch: pytest.MonkeyPatch,
    order: tuple[str, str],
    green: bool,
) -> None:
    head = medium_change(pr)
    approve(github, 21, "jchen-msp", head, state=order[0])
    approve(github, 22, "jchen-msp", head, state=order[1])
    run = gate(pr, github, monkeypatch, head)

    assert run.status["state"] == ("success" if green else "failure")
    assert run.result.exit_code == (0 if green else EXIT_GATE)
    if not green:
        assert "withdrawn: &#64;jchen-msp's later review 22 requested changes" in run.comment


def test_a_review_event_gates_like_a_push_and_reviews_on_a_second_page_are_read(
    pr: PullRequestRepo, github: FakeGitHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    head = medium_change(pr)
    github.page_size = 2
    approve(github, 31, "helpful-stranger", head)
    approve(github, 32, "mhara-msp", head, state="COMMENTED")
    approve(github, 33, "jchen-msp", head)  # page 2
    run = gate(pr, github, monkeypatch, head, event="pull_request_review")

    assert run.result.exit_code == 0, run.everything_printed
    assert run.status["state"] == "success"
    assert len(github.requests("GET", r"/pulls/7/reviews$")) == 2


def test_the_comment_is_edited_on_later_runs_never_duplicated(
    pr: PullRequestRepo, github: FakeGitHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    head = medium_change(pr)
    github.page_size = 2
    github.comments[NUMBER] = [
        comment(501, "Client confirmed by phone, ticket NWH-2231.", login="mhara-msp"),
        comment(502, f"Quoting the bot: {MARKER} should not be edited", login="jchen-msp"),
    ]
    first = gate(pr, github, monkeypatch, head)
    assert "needs peer review" in first.status["description"]
    (created,) = github.requests("POST", f"^{COMMENTS}$")
    assert created.body["body"].startswith(MARKER)
    ours = github.comments[NUMBER][-1]["id"]
    assert ours not in (501, 502)

    approve(github, 41, "jchen-msp", head)
    second = gate(pr, github, monkeypatch, head)

    assert len(github.requests("POST", f"^{COMMENTS}$")) == 1  # still only the first
    (patched,) = github.requests("PATCH", r"/issues/comments/")
    assert patched.path == f"/repos/{REPOSITORY}/issues/comments/{ours}"  # on page 2 of comments
    assert "Approval gate: **passing**" in second.comment  # the edited body is the new one
    assert [c["id"] for c in github.comments[NUMBER]] == [501, 502, ours]
    assert github.comments[NUMBER][1]["body"].startswith("Quoting the bot")
    assert "comment" in second.result.stdout and "updated" in second.result.stdout


def test_findings_are_annotated_on_their_zone_file_line(
    pr: PullRequestRepo, github: FakeGitHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    # An invalid adkim value (D4, an error) on the _dmarc record at line 5 of the zone file.
    head = pr.push(NWH_PATIENTS, "pct=50", "pct=100\\; adkim=x")
    approve(github, 51, "jchen-msp", head)
    run = gate(pr, github, monkeypatch, head)

    lines = run.result.stdout.splitlines()
    assert any(
        line.startswith(f"::error file={NWH_PATIENTS},line=5,title=D4::_dmarc: adkim=x")
        for line in lines
    ), run.result.stdout
    # Info findings become notices, on the same record line.
    assert any(line.startswith(f"::notice file={NWH_PATIENTS},line=5,title=D7::") for line in lines)
    # The plan is not valid: red even though the approval itself is fine.
    assert run.result.exit_code == EXIT_GATE
    assert run.status["description"] == "validation errors in the zone files"


def test_a_pull_request_that_touches_no_zone_plans_nothing_and_is_green(
    pr: PullRequestRepo, github: FakeGitHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    (pr.root / "NOTES.md").write_text("Runbook notes.\n", encoding="utf-8")
    head = commit(pr.root, "notes")
    run = gate(pr, github, monkeypatch, head)

    assert run.result.exit_code == 0, run.everything_printed
    assert run.status["state"] == "success"
    assert run.status["description"] == "no DNS changes in the zones this pull request touches"
    assert run.plan["changes"] == []


def test_a_forged_approval_file_claiming_to_be_a_github_review_does_not_count(
    pr: PullRequestRepo, github: FakeGitHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    head = medium_change(pr)
    first = gate(pr, github, monkeypatch, head)
    plan_hash = first.plan["plan_hash"]
    forged = Approval(plan_hash, "CR-0005-northwind-health", "jchen", _at(), GITHUB, "", "")
    directory = pr.root / "changes" / "approvals" / plan_hash
    directory.mkdir(parents=True)
    (directory / "CR-0005-northwind-health--jchen.json").write_text(
        json.dumps(forged.to_json()), encoding="utf-8"
    )
    head = commit(pr.root, "an approval file")
    run = gate(pr, github, monkeypatch, head)

    assert run.plan["plan_hash"] == plan_hash
    assert run.status["state"] == "failure"
    assert "does not verify" in run.comment


def test_a_run_that_cannot_gate_leaves_an_error_status_not_a_stale_green(
    pr: PullRequestRepo, github: FakeGitHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    head = medium_change(pr)
    approve(github, 71, "jchen-msp", head)
    assert gate(pr, github, monkeypatch, head).status["state"] == "success"
    git(pr.root, "checkout", "-q", "change")
    broken = pr.push(NWH_PATIENTS, "_dmarc:", "_dmarc: [", "a YAML typo")
    run = gate(pr, github, monkeypatch, broken)

    assert run.result.exit_code == EXIT_INPUT
    assert "nwh-patients.example.yaml:7:8: YAML syntax error" in run.result.stderr
    assert run.status["state"] == "error"
    assert run.status["description"].startswith("not gated: YAML syntax error")


def test_the_token_never_appears_in_any_output_even_when_github_refuses(
    pr: PullRequestRepo, github: FakeGitHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    head = medium_change(pr)
    approve(github, 61, "jchen-msp", head)
    github.failures[("POST", COMMENTS)] = (
        403,
        {"message": "Resource not accessible by integration", "status": "403"},
    )
    run = gate(pr, github, monkeypatch, head)

    assert run.result.exit_code == EXIT_INPUT
    assert f"GitHub API POST {COMMENTS} answered 403" in run.result.stderr
    assert "pull-requests: write" in run.result.stderr
    # The token was used (every request carried it) and shown nowhere.
    assert all(r.headers["Authorization"] == f"Bearer {TOKEN}" for r in github.received)
    shown = [
        run.everything_printed,
        run.summary.read_text(encoding="utf-8"),
        run.out.read_text(encoding="utf-8"),
        json.dumps([r.body for r in github.received]),
        repr(GitHubClient.from_environment()),
    ]
    assert not [text for text in shown if TOKEN in text]


def test_bad_credentials_are_an_environment_problem_naming_the_endpoint(
    github: FakeGitHub,
) -> None:
    client = GitHubClient(REPOSITORY, "ghs_wrong0token", github.url)
    with pytest.raises(EnvironmentProblem) as caught:
        client.reviews(NUMBER)
    assert str(caught.value).startswith(
        f"GitHub API GET /repos/{REPOSITORY}/pulls/7/reviews answered 401: Bad credentials"
    )
    assert "ghs_wrong0token" not in str(caught.value)


# --- the pieces ------------------------------------------------------------------------------


def _at() -> Any:
    from datetime import UTC, datetime

    return datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


def test_pulls_for_a_merge_commit_and_a_pull_request_are_typed(github: FakeGitHub) -> None:
    merge = "e5bd3914e2e596debea16f433f57875b5b90bcd6"
    github.commit_pulls[merge] = [pull_request(NUMBER, "mhara-msp", "a" * 40, "b" * 40)]
    github.pulls[NUMBER] = pull_request(NUMBER, "mhara-msp", "a" * 40, "b" * 40)
    client = GitHubClient(REPOSITORY, TOKEN, github.url)

    (found,) = client.pulls_for_commit(merge)
    assert (found.number, found.author, found.head_sha, found.base_ref) == (
        NUMBER,
        "mhara-msp",
        "a" * 40,
        "main",
    )
    assert client.pull_request(NUMBER) == found
    (request,) = github.requests("GET", "/commits/")
    assert request.path == f"/repos/{REPOSITORY}/commits/{merge}/pulls"
    assert request.query == {"per_page": "100"}


def test_events_become_typed_values() -> None:
    review_event = parse_event("pull_request_review", fixture("event_pull_request_review"))
    assert review_event == PullRequestEvent(
        name="pull_request_review",
        action="submitted",
        number=7,
        head_sha="ecdd80bb57125d7ba9641ffaa4d7d2c19d3f3091",
        head_ref="nwh-pct-100",
        base_sha="6dcb09b5b57875f334f61aebed695e2e4193db5e",
        base_ref="main",
        author="mhara-msp",
        review_id=80,
        author_id=583231,  # the recorded payload's user.id: the account, whatever its login
    )
    assert parse_event("push", fixture("event_push")) == PushEvent(
        "refs/heads/main",
        "6dcb09b5b57875f334f61aebed695e2e4193db5e",
        "e5bd3914e2e596debea16f433f57875b5b90bcd6",
    )
    with pytest.raises(InputError, match="pull_request_target"):
        parse_event("pull_request_target", fixture("event_pull_request"))
    with pytest.raises(EnvironmentProblem, match=r"pull_request\.head\.sha"):
        parse_event("pull_request", {"pull_request": {"number": 7}})


def test_an_approval_from_a_review_verifies_only_for_its_own_login(tmp_path: Path) -> None:
    roster = load_roster(copy_example(tmp_path))
    head = "c" * 40
    approvals = GitHubReviewApprovals(
        [_review(1, "JChen-MSP", head)], "mhara-msp", head, "d" * 64, roster
    )
    (approval,) = approvals.approvals_for("d" * 64, "CR-0005-northwind-health")
    assert approval.analyst == "jchen"  # logins are case-insensitive
    assert approval.reference == f"GitHub review 1 by @JChen-MSP on {head}"
    assert verify(approval, roster)
    assert not verify(
        Approval(
            approval.plan_hash,
            approval.request_id,
            "mhara",  # another analyst claiming jchen's review
            approval.approved_at,
            GITHUB,
            approval.reference,
        ),
        roster,
    )
    assert approvals.approvals_for("e" * 64, "CR-0005-northwind-health") == []


def _review(review_id: int, login: str, commit_id: str, state: str = "APPROVED") -> Any:
    from pipeline.github.payloads import parse_review as parse

    return parse(review(review_id, login, state, commit_id, "2026-11-27T12:00:00Z"), "test")


def test_zones_changed_follows_zone_client_and_policy_files(pr: PullRequestRepo) -> None:
    edit(pr.root, "policy/calendars/fabrikam-labs.yaml", "weekend_coverage: true", "")
    commit(pr.root, "fabrikam calendar")
    assert zones_changed(pr.root, pr.base) == {"fabrikam.example"}

    medium_change(pr)
    assert zones_changed(pr.root, pr.base) == {"fabrikam.example", "nwh-patients.example"}

    edit(pr.root, "policy/senders.yaml", "senders:", "# reviewed 2026-11\nsenders:")
    commit(pr.root, "senders")
    assert zones_changed(pr.root, pr.base) == {
        "contoso-retail.example",
        "fabrikam.example",
        "northwind-health.example",
        "nwh-patients.example",
    }


def test_zones_changed_covers_a_request_edited_on_its_own(pr: PullRequestRepo) -> None:
    edit(pr.root, CR_HIGH, "Quarantine review", "Quarantine review (re-checked)")
    commit(pr.root, "request evidence")
    assert zones_changed(pr.root, pr.base) == {"northwind-health.example"}
    (pr.root / "README.md").write_text("notes\n", encoding="utf-8")
    commit(pr.root, "readme")
    assert zones_changed(pr.root, pr.base) == {"northwind-health.example"}


def test_workflow_commands_escape_properties_and_message() -> None:
    assert (
        workflow_command("error", "50% off\r\nnext: line", "zones/a,b:c.yaml", 3, "D4: x,y")
        == "::error file=zones/a%2Cb%3Ac.yaml,line=3,title=D4%3A x%2Cy::50%25 off%0D%0Anext: line"
    )
    assert workflow_command("notice", "plain") == "::notice::plain"


def test_a_long_comment_drops_the_drafts_first_then_cuts_but_keeps_the_verdict() -> None:
    head = "### Approval gate: **failing** · `dmarcops/gate` on `abc1234`\n**Missing:** x\n"
    table = "| Domain | Record |\n|---|---|\n" + "".join(f"| row {i} | é |\n" for i in range(40))
    checklist = "#### `CR-1`\n\n- [ ] peer review: ...\n"
    drafts = "<details>\n" + "".join(f"draft line {i}\n" for i in range(5000)) + "</details>\n"

    whole = fit(head, table, checklist, "", 4096)
    assert whole == f"{MARKER}\n{head}\n{table}\n{checklist}\n"  # fits: nothing said

    no_drafts = fit(head, table, checklist, drafts, 4096, "https://github.example/run/1")
    assert len(no_drafts.encode("utf-8")) <= 4096
    assert no_drafts.startswith(f"{MARKER}\n{head}")
    assert "draft line" not in no_drafts and "| row 39 | é |" in no_drafts
    assert no_drafts.endswith(
        checklist + "\n" + where_the_plan_is("https://github.example/run/1") + "\n"
    )
    assert "[the workflow run](https://github.example/run/1)" in no_drafts

    long_table = table + "".join(f"| more {i} | é |\n" for i in range(5000))
    cut = fit(head, long_table, checklist, drafts, 4096)
    assert len(cut.encode("utf-8")) <= 4096
    assert cut.startswith(f"{MARKER}\n{head}")
    assert cut.endswith(checklist)  # the checklist keeps its budget before the table
    assert "| more 0 | é |" in cut and "| more 4999 | é |" not in cut
    assert "longer than one comment may be" in cut


def test_a_renamed_reviewer_counts_by_id_and_a_taken_login_does_not(
    pr: PullRequestRepo, github: FakeGitHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    head = medium_change(pr)
    # jchen renamed the account (the roster still says jchen-msp): the numeric id decides.
    approve(github, 11, "jia-chen-new", head)
    github.reviews[7][-1]["user"]["id"] = 7100001
    run = gate(pr, github, monkeypatch, head)
    assert run.result.exit_code == 0, run.comment
    assert "- [x] peer review: &#64;jia-chen-new" in run.comment

    # Someone else registers the login jchen-msp gave up: same login, another account.
    github.reviews[7] = []
    approve(github, 12, "jchen-msp", head)
    github.reviews[7][-1]["user"]["id"] = 9999999
    run = gate(pr, github, monkeypatch, head)
    assert run.result.exit_code != 0, run.everything_printed
    assert "- [ ] peer review" in run.comment


def test_a_renamed_pull_request_author_still_cannot_approve_their_own(
    pr: PullRequestRepo, github: FakeGitHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    # sokafor opened the pull request under a new login; the roster still says sokafor-msp.
    head = medium_change(pr)
    approve(github, 11, "sokafor-renamed", head)
    github.reviews[7][-1]["user"]["id"] = 7100003
    run = gate(pr, github, monkeypatch, head, author="sokafor-renamed", author_id=7100003)
    assert run.result.exit_code != 0, run.comment
    assert "- [ ] peer review" in run.comment
