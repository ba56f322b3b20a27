"""Apply on merge, end to end: gate on the PR head -> merge -> `dmarcops github merge` applies against
a real named, and the change record carries the GitHub review evidence. Outside the window the
approved plan is queued and the scheduled run applies it when the window opens.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result
from clockcli import invoke_at
from dns_server import NamedServer
from github_server import ROSTER_IDS, FakeGitHub, fixture, pull_request, review
from portfolio import write
from reports_fixtures import HEALTHY, write_days
from signing import KEYS, sign_if_valid
from test_apply_named import served
from test_plan_named import make_repo

from pipeline.errors import EXIT_GATE
from pipeline.github.merge import OUTCOME_MARKER

REPOSITORY = "msp-example/dns"
TOKEN = "ghs_mergeTestTokenNeverPrinted0123456789"
NUMBER = 7
TUESDAY = "2026-12-01T10:00:00Z"
RATIONALE = (
    "Aggregate reports show 99.4% alignment for 21 days across all known senders; SendGrid "
    "starts sending invoices on 2026-12-02."
)


def git(repo: Path, *args: str) -> str:
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@example.com",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@example.com",
    }
    done = subprocess.run(
        ["git", *args], cwd=repo, env=env, capture_output=True, text=True, check=True
    )
    return done.stdout.strip()


@pytest.fixture
def github(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeGitHub]:
    for name in list(os.environ):
        if name.startswith("GITHUB_") or name == "DMARCOPS_NOW" or "proxy" in name.lower():
            monkeypatch.delenv(name)
    with FakeGitHub(REPOSITORY, TOKEN) as server:
        monkeypatch.setenv("GITHUB_API_URL", server.url)
        monkeypatch.setenv("GITHUB_TOKEN", TOKEN)
        monkeypatch.setenv("GITHUB_REPOSITORY", REPOSITORY)
        # The automation's key (roster role automation), as the privileged workflow provides it.
        monkeypatch.setenv("DMARCOPS_SIGNING_KEY", str(KEYS / "dmarcops-bot.pem"))
        yield server


class Merged:
    def __init__(self, root: Path, base: str, head: str, merge: str) -> None:
        self.root, self.base, self.head, self.merge = root, base, head, merge


@pytest.fixture
def merged(
    tmp_path: Path,
    client_dns: NamedServer,
    github: FakeGitHub,
    monkeypatch: pytest.MonkeyPatch,
) -> Merged:
    root = make_repo(tmp_path / "repo", with_requests=False)
    zone = root / "zones/alpha/alpha.example.yaml"
    desired = zone.read_text()
    zone.unlink()
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "base")
    base = git(root, "rev-parse", "HEAD")
    git(root, "checkout", "-q", "-b", "alpha-sendgrid")
    zone.write_text(desired)
    write(
        root / "changes/requests/CR-0001-alpha.yaml",
        json.dumps(
            {
                "type": "other",
                "client": "alpha",
                "covers": ["alpha.example"],
                "author": "jchen",
                "rationale": RATIONALE,
            }
        ),
    )
    sign_if_valid(root, "CR-0001-alpha")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "alpha: add SendGrid, DMARC quarantine")
    head = git(root, "rev-parse", "HEAD")

    # The gate runs on the head, with mhara's approving review of that commit.
    github.reviews[NUMBER] = [review(11, "mhara-msp", "APPROVED", head, "2026-11-30T15:00:00Z")]
    github.pulls[NUMBER] = pull_request(NUMBER, "jchen-msp", head, base)
    payload = fixture("event_pull_request")
    payload["pull_request"].update(number=NUMBER)
    payload["pull_request"]["user"]["login"] = "jchen-msp"
    payload["pull_request"]["user"]["id"] = ROSTER_IDS.get("jchen-msp".lower(), 1)
    payload["pull_request"]["head"]["sha"] = head
    payload["pull_request"]["base"]["sha"] = base
    event = tmp_path / "pr-event.json"
    event.write_text(json.dumps(payload))
    monkeypatch.setenv("GITHUB_EVENT_NAME", "pull_request")
    monkeypatch.setenv("GITHUB_EVENT_PATH", str(event))
    gate = invoke_at(["--repo", str(root), "github", "pr", "--at", TUESDAY])
    assert gate.exit_code == 0, gate.output

    git(root, "checkout", "-q", "main")
    git(root, "merge", "-q", "--no-ff", "-m", "Merge pull request #7", "alpha-sendgrid")
    merge = git(root, "rev-parse", "HEAD")
    pr: dict[str, Any] = pull_request(NUMBER, "jchen-msp", head, base)
    pr.update(merged=True, merge_commit_sha=merge, state="closed")
    github.commit_pulls[merge] = [pr]
    push = fixture("event_push")
    push.update(before=base, after=merge, ref="refs/heads/main")
    push_file = tmp_path / "push-event.json"
    push_file.write_text(json.dumps(push))
    monkeypatch.setenv("GITHUB_EVENT_NAME", "push")
    monkeypatch.setenv("GITHUB_EVENT_PATH", str(push_file))
    monkeypatch.setenv("GITHUB_ACTOR", "mhara-msp")
    return Merged(root, base, head, merge)


def run(repo: Path, *args: str) -> Result:
    return invoke_at(["--repo", str(repo), "github", *args])


def outcome_comments(github: FakeGitHub) -> list[str]:
    return [
        c["body"] for c in github.comments.get(NUMBER, []) if c["body"].startswith(OUTCOME_MARKER)
    ]


def test_merge_in_window_applies_with_the_review_as_evidence(
    merged: Merged, client_dns: NamedServer, github: FakeGitHub
) -> None:
    result = run(
        merged.root,
        "merge",
        "--at",
        "2026-12-01T10:05:00Z",
        "--out",
        str(merged.root / "plan.json"),
    )
    assert result.exit_code == 0, result.output
    assert served(client_dns, "_dmarc.alpha.example.") == [
        "v=DMARC1; p=quarantine; rua=mailto:dmarc@alpha.example"
    ]
    record = json.loads((merged.root / "changes/records/2026-0001.json").read_text())
    peer = [a for a in record["approvals"] if a["role"] == "peer"]
    assert peer == [
        {
            "role": "peer",
            "who": "mhara",
            "at": "2026-11-30T15:00:00Z",
            "reference": f"GitHub review 11 by @mhara-msp on {merged.head}",
            "source": "github",
        }
    ]
    assert record["executed_by"] == "mhara"
    (comment,) = outcome_comments(github)
    assert "Change record `2026-0001`" in comment
    assert "alpha.example: applied, 2/2 verified" in comment
    assert json.loads((merged.root / "plan.json").read_text())["plan_hash"] == record["plan_hash"]
    assert TOKEN not in result.output


def test_merge_outside_the_window_is_queued_then_applied_by_the_scheduler(
    merged: Merged, client_dns: NamedServer, github: FakeGitHub, tmp_path: Path
) -> None:
    monday = run(merged.root, "merge", "--at", "2026-11-30T10:00:00Z")
    assert monday.exit_code == 0, monday.output
    assert "queued for the next change window" in monday.output
    pending = list((merged.root / "changes/pending").glob("*.json"))
    assert len(pending) == 1
    assert served(client_dns, "_dmarc.alpha.example.") == [
        "v=DMARC1; p=none; rua=mailto:dmarc@alpha.example"
    ]
    # Still Monday: the scheduled run waits.
    early = run(merged.root, "scheduled", "--at", "2026-11-30T16:00:00Z")
    assert early.exit_code == 0
    assert pending[0].exists()
    tuesday = run(merged.root, "scheduled", "--at", TUESDAY)
    assert tuesday.exit_code == 0, tuesday.output
    assert not pending[0].exists()
    record = json.loads((merged.root / "changes/records/2026-0001.json").read_text())
    assert any(a["source"] == "github" and a["who"] == "mhara" for a in record["approvals"])
    assert served(client_dns, "_dmarc.alpha.example.") == [
        "v=DMARC1; p=quarantine; rua=mailto:dmarc@alpha.example"
    ]
    assert len(outcome_comments(github)) == 2  # queued, then applied
    # After the rollback window, with no report after the change yet, the record stays open.
    later = run(merged.root, "scheduled", "--at", "2026-12-01T19:00:00Z")
    assert "stays open: 2026-0001 (no evidence yet: no report store" in later.output
    # Once the post-change reports are in the store, the scheduler closes the clean record.
    drop = tmp_path / "rua"
    write_days(drop, "alpha.example", datetime(2026, 11, 17, tzinfo=UTC), 14, HEALTHY)
    write_days(drop, "alpha.example", datetime(2026, 12, 2, tzinfo=UTC), 2, HEALTHY)
    ingest = invoke_at(["--repo", str(merged.root), "reports", "ingest", str(drop)])
    assert ingest.exit_code == 0, ingest.output
    closing = run(merged.root, "scheduled", "--at", "2026-12-04T06:00:00Z")
    assert (
        "closed 2026-0001: accepted on report evidence (alpha.example: 2220 messages over 2 "
        "day(s), 99.10% DMARC pass (before 99.10%))" in closing.output
    )


def test_a_merge_whose_plan_is_not_the_reviewed_one_is_refused(
    merged: Merged, client_dns: NamedServer, github: FakeGitHub
) -> None:
    # Live DNS moved after the review: the plan on main differs from the one the reviewers saw.
    client_dns.update("alpha.example", "_dmarc", "TXT", ["v=DMARC1; p=none; pct=1"])
    result = run(merged.root, "merge", "--at", "2026-12-01T10:05:00Z")
    assert result.exit_code == 2
    assert "is not the plan reviewed on pull request #7" in result.stderr
    assert not (merged.root / "changes/records").exists()


def test_a_queued_change_needs_its_reviews_again_when_the_window_opens(
    merged: Merged, client_dns: NamedServer, github: FakeGitHub
) -> None:
    assert run(merged.root, "merge", "--at", "2026-11-30T10:00:00Z").exit_code == 0
    pending = list((merged.root / "changes/pending").glob("*.json"))
    assert len(pending) == 1
    # The approval is withdrawn on GitHub before the window opens: the queue note does not count.
    github.reviews[NUMBER].append(
        review(12, "mhara-msp", "CHANGES_REQUESTED", merged.head, "2026-11-30T18:00:00Z")
    )
    tuesday = run(merged.root, "scheduled", "--at", TUESDAY)
    assert tuesday.exit_code == 0, tuesday.output
    assert "not applied yet, will retry" in tuesday.output
    assert "peer review" in tuesday.output
    assert pending[0].exists()
    assert not (merged.root / "changes/records").exists()
    assert served(client_dns, "_dmarc.alpha.example.") == [
        "v=DMARC1; p=none; rua=mailto:dmarc@alpha.example"
    ]


def test_the_pull_request_author_cannot_approve_with_a_signed_file(
    tmp_path: Path, client_dns: NamedServer, github: FakeGitHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    from portfolio import REPO

    root = make_repo(tmp_path / "repo", with_requests=False)
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "base")
    base = git(root, "rev-parse", "HEAD")
    # The request claims another author; the PR is jchen's, and jchen signs the approval.
    write(
        root / "changes/requests/CR-0001-alpha.yaml",
        json.dumps(
            {
                "type": "other",
                "client": "alpha",
                "covers": ["alpha.example"],
                "author": "sokafor",
                "rationale": RATIONALE,
            }
        ),
    )
    sign_if_valid(root, "CR-0001-alpha")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "request")
    head = git(root, "rev-parse", "HEAD")
    out = tmp_path / "plan.json"
    planned = invoke_at(
        [
            "--repo",
            str(root),
            "plan",
            "--zone",
            "alpha.example",
            "--at",
            TUESDAY,
            "--out",
            str(out),
        ],
    )
    assert planned.exit_code == 0, planned.output
    signed = invoke_at(
        [
            "--repo",
            str(root),
            "approve",
            "--plan",
            str(out),
            "--request",
            "CR-0001-alpha",
            "--key",
            str(REPO / "tests/keys/jchen.pem"),
        ],
    )
    assert signed.exit_code == 0, signed.output
    github.reviews[NUMBER] = []
    payload = fixture("event_pull_request")
    payload["pull_request"].update(number=NUMBER)
    payload["pull_request"]["user"]["login"] = "jchen-msp"
    payload["pull_request"]["user"]["id"] = ROSTER_IDS.get("jchen-msp".lower(), 1)
    payload["pull_request"]["head"]["sha"] = head
    payload["pull_request"]["base"]["sha"] = base
    event = tmp_path / "event.json"
    event.write_text(json.dumps(payload))
    monkeypatch.setenv("GITHUB_EVENT_NAME", "pull_request")
    monkeypatch.setenv("GITHUB_EVENT_PATH", str(event))
    gate = invoke_at(
        ["--repo", str(root), "github", "pr", "--zone", "alpha.example", "--at", TUESDAY]
    )
    assert gate.exit_code == 2, gate.output
    status = github.statuses[head][-1]
    assert status["state"] == "failure", status


def test_a_queued_change_survives_a_passing_failure(
    merged: Merged, client_dns: NamedServer, github: FakeGitHub
) -> None:
    from pipeline.apply.lock import client_lock

    assert run(merged.root, "merge", "--at", "2026-11-30T10:00:00Z").exit_code == 0
    (pending,) = list((merged.root / "changes/pending").glob("*.json"))
    with client_lock(merged.root / "changes", "alpha"):  # another apply is running
        busy = run(merged.root, "scheduled", "--at", TUESDAY)
    assert "not applied yet, will retry: another apply for client 'alpha' is running" in busy.output
    assert pending.exists()
    done = run(merged.root, "scheduled", "--at", "2026-12-01T10:30:00Z")
    assert "applied in its window" in done.output
    assert not pending.exists()


def test_a_push_to_main_without_a_pull_request_applies_nothing_above_low(
    merged: Merged, client_dns: NamedServer, github: FakeGitHub
) -> None:
    github.commit_pulls[merged.merge] = []  # nobody merged a pull request: a direct push
    result = run(merged.root, "merge", "--at", "2026-12-01T10:05:00Z")
    assert result.exit_code == EXIT_GATE, result.output
    assert "pushed to main without a pull request" in result.output
    assert "_dmarc.alpha.example" in result.output
    assert not (merged.root / "changes/records").exists() or not list(
        (merged.root / "changes/records").glob("*.json")
    )
    assert served(client_dns, "_dmarc.alpha.example.") != [
        "v=DMARC1; p=quarantine; rua=mailto:dmarc@alpha.example"
    ]
