"""The whole lifecycle through the CLI against a real named, with injected time:
request -> plan -> approve -> apply in window -> verify -> close -> sealed; and every refusal.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result
from clockcli import invoke_at
from dns_server import NamedServer
from portfolio import REPO, write
from reports_fixtures import HEALTHY, write_days
from signing import BOT, JCHEN, reseal, sign_if_valid
from test_apply_named import served
from test_plan_named import make_repo

KEYS = REPO / "tests" / "keys"
TUESDAY = "2026-12-01T10:00:00Z"  # alpha's window: Tue-Thu 09:00-12:00 UTC (its time zone)
RATIONALE = (
    "DMARC aggregate reports show 99.4% alignment for 21 days across all known senders; "
    "SendGrid starts sending invoices on 2026-12-02."
)


def cli(repo: Path, *args: str) -> Result:
    # `--at` stands for the machine's clock: mutating commands refuse a typed time.
    return invoke_at(["--repo", str(repo), *args])


def request(repo: Path, rid: str, covers: list[str], author: str = "jchen", **extra: Any) -> None:
    data: dict[str, Any] = {
        "type": "other",
        "client": "alpha",
        "covers": covers,
        "author": author,
        "rationale": RATIONALE,
        **extra,
    }
    write(repo / "changes" / "requests" / f"{rid}.yaml", json.dumps(data))
    sign_if_valid(repo, rid)


@pytest.fixture
def repo(tmp_path: Path, client_dns: NamedServer) -> Path:
    return make_repo(tmp_path / "repo", with_requests=False)


def plan(
    repo: Path, sender_dns: NamedServer, at: str = TUESDAY, *zones: str, expect: int = 0
) -> tuple[Path, str]:
    out = repo / "plan.json"
    args = [
        "plan",
        "--format",
        "json",
        "--out",
        str(out),
        "--at",
        at,
        "--nameserver",
        f"127.0.0.1:{sender_dns.port}",
    ]
    for zone in zones or ("alpha.example",):
        args += ["--zone", zone]
    result = cli(repo, *args)
    assert result.exit_code == expect, result.stderr
    if expect == 1:
        return out, ""
    return out, json.loads(out.read_text())["plan_hash"]


def approve(repo: Path, plan_path: Path, rid: str, who: str, at: str = TUESDAY) -> Result:
    return cli(
        repo,
        "approve",
        "--plan",
        str(plan_path),
        "--request",
        rid,
        "--as",
        who,
        "--key",
        str(KEYS / f"{who}.pem"),
        "--at",  # the machine's clock at that moment (tests/clockcli.py)
        at,
    )


def apply(
    repo: Path, plan_path: Path, sender_dns: NamedServer, at: str = TUESDAY, *extra: str
) -> Result:
    return cli(
        repo,
        "apply",
        "--plan",
        str(plan_path),
        "--key",
        str(KEYS / "jchen.pem"),
        "--at",
        at.rstrip("Z"),
        "--nameserver",
        f"127.0.0.1:{sender_dns.port}",
        *extra,
    )


def record(repo: Path, rid: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((repo / "changes" / "records" / f"{rid}.json").read_text())
    return data


def test_whole_lifecycle(
    repo: Path, client_dns: NamedServer, sender_dns: NamedServer, tmp_path: Path
) -> None:
    request(repo, "CR-0001-alpha", ["alpha.example"])
    plan_path, plan_hash = plan(repo, sender_dns)
    assert approve(repo, plan_path, "CR-0001-alpha", "mhara").exit_code == 0

    result = apply(repo, plan_path, sender_dns, "2026-12-01T10:05:00Z")
    assert result.exit_code == 0, result.output
    assert "change record 2026-0001" in result.stdout
    assert "alpha.example: applied, 2/2 verified" in result.stdout
    assert served(client_dns, "_dmarc.alpha.example.") == [
        "v=DMARC1; p=quarantine; rua=mailto:dmarc@alpha.example"
    ]

    rec = record(repo, "2026-0001")
    assert rec["plan_hash"] == plan_hash
    assert rec["risk"] == "medium"
    assert rec["rationale"] == RATIONALE
    assert rec["executed_by"] == "jchen"
    assert rec["executed_at"] == "2026-12-01T10:05:00Z"
    assert {a["role"]: a["who"] for a in rec["approvals"]} == {"analyst": "jchen", "peer": "mhara"}
    assert rec["change_window"] == {"start": "2026-12-01T09:00:00Z", "end": "2026-12-01T12:00:00Z"}
    assert rec["rollback_window"]["end"] == "2026-12-01T18:05:00Z"  # medium: 8 h
    assert {v["status"] for v in rec["verification"]} == {"verified"}

    early = cli(
        repo,
        "close",
        "2026-0001",
        "--outcome",
        "accepted",
        "--key",
        str(KEYS / "jchen.pem"),
        "--at",
        "2026-12-01T12:00:00Z",
    )
    assert early.exit_code == 2
    # The rollback window is over, but no report covers a day after the change: never accepted
    # on silence (issue 14 part 5).
    silent = cli(
        repo,
        "close",
        "2026-0001",
        "--outcome",
        "accepted",
        "--key",
        str(KEYS / "jchen.pem"),
        "--at",
        "2026-12-01T19:00:00Z",
    )
    assert silent.exit_code == 2, silent.output
    assert "not closed as accepted on silence" in silent.stderr
    assert "no evidence yet: no report store" in silent.stderr
    assert not (repo / "changes" / "evidence").exists()  # the refused close left nothing
    # Two weeks before the change and two days after it, as Google reports them.
    drop = tmp_path / "rua"
    write_days(drop, "alpha.example", datetime(2026, 11, 17, tzinfo=UTC), 14, HEALTHY)
    after = [(ip, n, ok, "none" if ok else "quarantine") for ip, n, ok, _ in HEALTHY]
    write_days(drop, "alpha.example", datetime(2026, 12, 2, tzinfo=UTC), 2, after)
    assert cli(repo, "reports", "ingest", str(drop)).exit_code == 0
    closed = cli(
        repo,
        "close",
        "2026-0001",
        "--outcome",
        "accepted",
        "--key",
        str(KEYS / "jchen.pem"),
        "--at",
        "2026-12-04T06:00:00Z",
    )
    assert closed.exit_code == 0, closed.output
    assert "report evidence: accepted" in closed.stdout
    sealed = record(repo, "2026-0001")
    assert sealed["sealed"] is True
    assert sealed["report_verification"]["post_messages"] == 2220
    assert sealed["report_verification"]["baseline_messages"] == 14 * 1110
    audit = cli(repo, "audit", "verify", "--at", "2026-12-04T06:00:00Z")
    assert audit.exit_code == 0, audit.output
    # Sealed means sealed: an edit is detected and the record named.
    path = repo / "changes" / "records" / "2026-0001.json"
    path.write_text(path.read_text().replace("jchen", "sokafor"))
    tampered = cli(repo, "audit", "verify", "--at", "2026-12-04T06:00:00Z")
    assert tampered.exit_code == 2
    assert "2026-0001" in tampered.output


def test_uncovered_change_is_refused(repo: Path, sender_dns: NamedServer) -> None:
    request(repo, "CR-0001-alpha", ["alpha.example _dmarc"])  # the SPF change has no request
    plan_path, _ = plan(repo, sender_dns, expect=2)  # the plan itself refuses, and says why
    result = apply(repo, plan_path, sender_dns)
    assert result.exit_code == 2
    assert "alpha.example" in result.stderr and "request" in result.stderr


def test_boilerplate_rationale_is_refused(repo: Path, sender_dns: NamedServer) -> None:
    request(repo, "CR-0001-alpha", ["alpha.example"], rationale="per SOW")
    refused = cli(repo, "plan", "--zone", "alpha.example")
    assert refused.exit_code == 1
    assert "CR-0001-alpha.yaml" in refused.stderr
    request(repo, "CR-0001-alpha", ["alpha.example"])
    plan_path, _ = plan(repo, sender_dns)
    request(repo, "CR-0001-alpha", ["alpha.example"], rationale="per SOW")
    result = apply(repo, plan_path, sender_dns)
    assert result.exit_code == 1
    assert "CR-0001-alpha.yaml" in result.stderr
    assert "rationale" in result.stderr


def test_author_cannot_approve_own_medium_change(repo: Path, sender_dns: NamedServer) -> None:
    request(repo, "CR-0001-alpha", ["alpha.example"])
    plan_path, _ = plan(repo, sender_dns)
    own = approve(repo, plan_path, "CR-0001-alpha", "jchen")
    assert own.exit_code == 2
    result = apply(repo, plan_path, sender_dns)
    assert result.exit_code == 2
    assert "peer" in result.stderr.lower() or "review" in result.stderr.lower()


def test_approval_of_an_older_plan_hash_does_not_count(repo: Path, sender_dns: NamedServer) -> None:
    request(repo, "CR-0001-alpha", ["alpha.example"])
    old_plan, old_hash = plan(repo, sender_dns)
    assert approve(repo, old_plan, "CR-0001-alpha", "mhara").exit_code == 0
    zone = repo / "zones" / "alpha" / "alpha.example.yaml"
    zone.write_text(zone.read_text().replace("p=quarantine", "p=quarantine\\; pct=50"))
    new_plan, new_hash = plan(repo, sender_dns)
    assert new_hash != old_hash
    result = apply(repo, new_plan, sender_dns)
    assert result.exit_code == 2
    assert "nothing was changed" in result.stderr
    # The old plan cannot be applied either: it is stale against the zone files now.
    again = apply(repo, old_plan, sender_dns)
    assert again.exit_code == 2


def test_high_risk_needs_the_clients_written_approval(repo: Path, sender_dns: NamedServer) -> None:
    # beta.example drops its SPF sender: high risk.
    request(repo, "CR-0001-alpha", ["beta.example"])
    plan_path, _ = plan(repo, sender_dns, TUESDAY, "beta.example")
    assert approve(repo, plan_path, "CR-0001-alpha", "mhara").exit_code == 0
    result = apply(repo, plan_path, sender_dns)
    assert result.exit_code == 2
    assert "client" in result.stderr.lower()
    assert not (repo / "changes" / "records").exists() or not list(
        (repo / "changes" / "records").glob("*.json")
    )


def test_outside_the_window_and_inside_a_freeze(repo: Path, sender_dns: NamedServer) -> None:
    request(repo, "CR-0001-alpha", ["alpha.example"])
    plan_path, _ = plan(repo, sender_dns)
    assert approve(repo, plan_path, "CR-0001-alpha", "mhara").exit_code == 0
    monday = apply(repo, plan_path, sender_dns, "2026-11-30T10:00:00Z")
    assert monday.exit_code == 2
    assert "outside" in monday.stderr and "change window" in monday.stderr
    profile = repo / "policy" / "clients" / "alpha.yaml"
    profile.write_text(
        profile.read_text()
        + "freezes:\n  - {start: '2026-12-01', end: '2026-12-01', reason: 'Board meeting'}\n"
    )
    reseal(repo)  # setup: the edit as a lead sealed it
    frozen = apply(repo, plan_path, sender_dns)
    assert frozen.exit_code == 2
    assert "Board meeting" in frozen.stderr


def test_stale_plan_is_refused(
    repo: Path, client_dns: NamedServer, sender_dns: NamedServer
) -> None:
    request(repo, "CR-0001-alpha", ["alpha.example"])
    plan_path, _ = plan(repo, sender_dns)
    assert approve(repo, plan_path, "CR-0001-alpha", "mhara").exit_code == 0
    client_dns.update("alpha.example", "_dmarc", "TXT", ["v=DMARC1; p=none; pct=5"])
    result = apply(repo, plan_path, sender_dns)
    assert result.exit_code == 2
    assert "stale: live DNS changed since approval" in result.stderr
    assert served(client_dns, "_dmarc.alpha.example.") == ["v=DMARC1; p=none; pct=5"]


def test_emergency_skips_window_and_is_reviewed(
    repo: Path, client_dns: NamedServer, sender_dns: NamedServer
) -> None:
    request(repo, "CR-0001-alpha", ["alpha.example"])
    saturday = "2026-12-05T03:00:00Z"
    plan_path, _ = plan(repo, sender_dns, saturday)
    vague = apply(repo, plan_path, sender_dns, saturday, "--emergency", "--reason", "x")
    assert vague.exit_code == 1
    reason = ("--emergency", "--reason", "payroll mail rejected since 02:40 UTC")
    # The change tightens DMARC and adds a sender: not a de-escalation, so no incident, no entry.
    undeclared = apply(repo, plan_path, sender_dns, saturday, *reason)
    assert undeclared.exit_code == 2
    assert "[emergency-not-deescalation]" in undeclared.stderr
    assert not (repo / "changes" / "records").exists() or not list(
        (repo / "changes" / "records").glob("*.json")
    )
    result = apply(repo, plan_path, sender_dns, saturday, *reason, "--incident", "INC-2041")
    assert result.exit_code == 0, result.output
    rec = record(repo, "2026-0001")
    assert rec["emergency"]["review_due"] == "2026-12-06T03:00:00Z"
    assert rec["change_window"] is None
    overdue = cli(repo, "audit", "verify", "--at", "2026-12-06T04:00:00Z")
    assert overdue.exit_code == 2
    assert "2026-0001" in overdue.output
    reviewed = cli(
        repo,
        "review",
        "2026-0001",
        "--key",
        str(KEYS / "mhara.pem"),
        "--verdict",
        "justified",
        "--notes",
        "Genuine emergency: payroll provider rejected.",
        "--at",
        "2026-12-05T09:00:00Z",
    )
    assert reviewed.exit_code == 0, reviewed.output
    assert cli(repo, "audit", "verify", "--at", "2026-12-06T04:00:00Z").exit_code == 0


def test_rollback_restores_the_before_state_and_links_both_records(
    repo: Path, client_dns: NamedServer, sender_dns: NamedServer
) -> None:
    request(repo, "CR-0001-alpha", ["alpha.example"])
    plan_path, _ = plan(repo, sender_dns)
    assert approve(repo, plan_path, "CR-0001-alpha", "mhara").exit_code == 0
    assert apply(repo, plan_path, sender_dns).exit_code == 0
    before_dmarc = "v=DMARC1; p=none; rua=mailto:dmarc@alpha.example"
    result = cli(
        repo,
        "rollback",
        "2026-0001",
        "--key",
        str(KEYS / "jchen.pem"),
        "--reason",
        "quarantine is catching the CRM's mail",
        "--at",
        "2026-12-01T11:00:00",
        "--nameserver",
        f"127.0.0.1:{sender_dns.port}",
    )
    assert result.exit_code == 0, result.output
    assert served(client_dns, "_dmarc.alpha.example.") == [before_dmarc]
    back = record(repo, "2026-0002")
    assert back["change_type"] == "Emergency rollback"
    assert "2026-0001" in back["references"]
    assert "2026-0002" in record(repo, "2026-0001")["references"]
    # The zone file holds the before-state too, so the next plan does not undo the rollback.
    again = cli(
        repo,
        "plan",
        "--format",
        "json",
        "--zone",
        "alpha.example",
        "--nameserver",
        f"127.0.0.1:{sender_dns.port}",
    )
    assert json.loads(again.stdout)["changes"] == []


def test_two_applies_for_one_client_at_once(
    repo: Path, client_dns: NamedServer, sender_dns: NamedServer
) -> None:
    request(repo, "CR-0001-alpha", ["alpha.example"])
    plan_path, _ = plan(repo, sender_dns)
    assert approve(repo, plan_path, "CR-0001-alpha", "mhara").exit_code == 0
    cmd = [
        sys.executable,
        str(REPO / "tests" / "run_at.py"),  # a machine whose clock reads 10:05 on Tuesday
        "2026-12-01T10:05:00Z",
        "--repo",
        str(repo),
        "apply",
        "--plan",
        str(plan_path),
        "--key",
        str(KEYS / "jchen.pem"),
        "--nameserver",
        f"127.0.0.1:{sender_dns.port}",
    ]
    env = dict(os.environ)
    procs = [
        subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    outcomes = sorted(p.wait(60) for p in procs)
    errors = " ".join(p.stderr.read() for p in procs if p.stderr)
    assert outcomes == [0, 2], errors
    records = sorted(p.name for p in (repo / "changes" / "records").glob("*.json"))
    assert records == ["2026-0001.json"]
    assert cli(repo, "audit", "verify", "--at", "2026-12-01T10:06:00Z").exit_code == 0


def test_named_killed_mid_apply_is_recorded_exactly_and_rolled_back_later(
    repo: Path, client_dns: NamedServer, sender_dns: NamedServer
) -> None:

    from pipeline.apply.run import ApplyOptions, run_apply
    from pipeline.live.dns import Nameservers
    from pipeline.load.portfolio import load_portfolio

    request(repo, "CR-0001-alpha", ["alpha.example"])
    request(
        repo,
        "CR-0002-alpha",
        ["beta.example"],
        client_approval={
            "approver": "ops@alpha.example",
            "at": "2026-11-30T12:00:00Z",
            "reference": "<a1b2@mail.alpha.example>",
        },
    )
    profile = repo / "policy" / "clients" / "alpha.yaml"
    profile.write_text(
        profile.read_text()
        + "authorised_approvers:\n  - {name: Alpha Ops, email: ops@alpha.example}\n"
    )
    reseal(repo)  # setup: the edit as a lead sealed it
    plan_path, _ = plan(repo, sender_dns, TUESDAY, "alpha.example", "beta.example")
    for rid in ("CR-0001-alpha", "CR-0002-alpha"):
        assert approve(repo, plan_path, rid, "mhara").exit_code == 0

    def kill_before_beta(zone: str) -> None:
        if zone == "beta.example":
            client_dns.kill()

    records = run_apply(
        load_portfolio(repo),
        ApplyOptions(
            plan_file=plan_path,
            by="jchen",
            now=datetime(2026, 12, 1, 10, 5, tzinfo=UTC),
            nameservers=Nameservers(("127.0.0.1",), sender_dns.port, 2.0),
            verify_timeout=1.0,
            progress=kill_before_beta,
            signer=JCHEN,
        ),
    )
    by_request = {r.request_id: r for r in records}
    alpha = by_request["CR-0001-alpha"]
    beta = by_request["CR-0002-alpha"]
    # alpha's check runs while beta is sent (pipeline.apply.execute): named may die before or
    # after it answered. The zone was applied either way; its count is what the check saw.
    (alpha_zone,) = alpha.zone_results
    assert (alpha_zone.zone, alpha_zone.status.value, alpha_zone.error) == (
        "alpha.example",
        "applied",
        "",
    )
    assert alpha_zone.applied == sum(v.status.value == "verified" for v in alpha.verification)
    assert len(alpha.verification) == 2
    assert all(
        v.status.value == "verified"
        or (v.status.value == "unverifiable" and "did not answer" in v.detail)
        for v in alpha.verification
    ), alpha.verification
    assert [(z.zone, z.status.value, z.applied) for z in beta.zone_results] == [
        ("beta.example", "failed", 0)
    ]
    assert beta.zone_results[0].error
    assert {v.status.value for v in beta.verification} == {"unverifiable"}
    # Nothing is lost: both records are on disk and in the ledger.
    assert cli(repo, "audit", "verify", "--at", "2026-12-01T10:06:00Z").exit_code == 0

    client_dns.start()
    result = cli(
        repo,
        "rollback",
        alpha.id,
        "--key",
        str(KEYS / "jchen.pem"),
        "--reason",
        "quarantine catches the CRM after the partial apply",
        "--at",
        "2026-12-01T10:30:00",
        "--nameserver",
        f"127.0.0.1:{sender_dns.port}",
    )
    assert result.exit_code == 0, result.output
    assert served(client_dns, "_dmarc.alpha.example.") == [
        "v=DMARC1; p=none; rua=mailto:dmarc@alpha.example"
    ]


def test_an_applied_plan_is_not_applied_twice(repo: Path, sender_dns: NamedServer) -> None:
    request(repo, "CR-0001-alpha", ["alpha.example"])
    plan_path, _ = plan(repo, sender_dns)
    assert approve(repo, plan_path, "CR-0001-alpha", "mhara").exit_code == 0
    assert apply(repo, plan_path, sender_dns).exit_code == 0
    again = apply(repo, plan_path, sender_dns, "2026-12-01T10:30:00Z")
    assert again.exit_code == 2
    assert "was already applied (change records 2026-0001)" in again.stderr


def test_scheduler_closes_clean_records_and_leaves_the_rest(
    repo: Path, client_dns: NamedServer, sender_dns: NamedServer, tmp_path: Path
) -> None:

    from pipeline.apply.pending import close_finished
    from pipeline.records import RecordStore

    request(repo, "CR-0001-alpha", ["alpha.example"])
    plan_path, _ = plan(repo, sender_dns)
    assert approve(repo, plan_path, "CR-0001-alpha", "mhara").exit_code == 0
    assert apply(repo, plan_path, sender_dns).exit_code == 0
    store = RecordStore(repo / "changes")
    # Inside the rollback window (8 h from 10:00): nothing is closed.
    inside = close_finished(store, datetime(2026, 12, 1, 17, 0, tzinfo=UTC), BOT)
    assert (inside.closed, inside.waiting, inside.attention) == ([], [], [])
    # The window is over but no report covers a day after the change: it stays open.
    silent = close_finished(store, datetime(2026, 12, 1, 18, 30, tzinfo=UTC), BOT)
    assert silent.closed == []
    assert silent.waiting == [
        ("2026-0001", "no evidence yet: no report store (run `dmarcops reports ingest` first)")
    ]
    assert not record(repo, "2026-0001")["sealed"]
    # Reports arrive: a baseline and two days after the change. The next run closes it.
    drop = tmp_path / "rua"
    write_days(drop, "alpha.example", datetime(2026, 11, 17, tzinfo=UTC), 14, HEALTHY)
    write_days(drop, "alpha.example", datetime(2026, 12, 2, tzinfo=UTC), 2, HEALTHY)
    assert cli(repo, "reports", "ingest", str(drop)).exit_code == 0
    run = close_finished(store, datetime(2026, 12, 4, 6, 0, tzinfo=UTC), BOT)
    assert [rid for rid, _ in run.closed] == ["2026-0001"], run
    assert run.closed[0][1] == (
        "alpha.example: 2220 messages over 2 day(s), 99.10% DMARC pass (before 99.10%)"
    )
    sealed = record(repo, "2026-0001")
    assert (sealed["sealed"], sealed["outcome"], sealed["closed_by"]) == (
        True,
        "accepted",
        "dmarcops-bot",  # the automation's key signed the close
    )
    assert sealed["report_verification"]["verdict"] == "accepted"
    # An emergency whose review is missing is left for a person.
    request(repo, "CR-0002-alpha", ["beta.example"])
    beta_plan, _ = plan(repo, sender_dns, "2026-12-05T03:00:00Z", "beta.example")
    emergency = apply(
        repo,
        beta_plan,
        sender_dns,
        "2026-12-05T03:00:00Z",
        "--emergency",
        "--reason",
        "the old SPF include is being hijacked",
        "--incident",
        "INC-2042",
    )
    assert emergency.exit_code == 0, emergency.output
    later = close_finished(store, datetime(2026, 12, 9, 12, 0, tzinfo=UTC), BOT)
    assert later.closed == []
    assert later.attention == [("2026-0002", "not clean enough to close")]


def test_risk_edited_in_the_saved_plan_does_not_lower_the_gate(
    repo: Path, sender_dns: NamedServer
) -> None:
    request(repo, "CR-0001-alpha", ["alpha.example"])
    plan_path, _ = plan(repo, sender_dns)
    saved = json.loads(plan_path.read_text())
    for change in saved["changes"]:
        change["risk"] = "low"  # not covered by the plan hash: the gate must not believe it
        change["rollback_hours"] = 0
    plan_path.write_text(json.dumps(saved))
    result = apply(repo, plan_path, sender_dns)
    assert result.exit_code == 2
    assert "medium risk" in result.stderr
    assert "peer review" in result.stderr


def test_a_plan_over_two_clients_applies_both(
    repo: Path, client_dns: NamedServer, sender_dns: NamedServer
) -> None:
    request(repo, "CR-0001-alpha", ["alpha.example"])
    write(
        repo / "changes/requests/CR-0002-gamma.yaml",
        json.dumps(
            {
                "type": "other",
                "client": "gamma",
                "covers": ["gamma.example"],
                "author": "jchen",
                "rationale": RATIONALE,
            }
        ),
    )
    sign_if_valid(repo, "CR-0002-gamma")
    saturday = "2026-12-05T03:00:00Z"
    plan_path, _ = plan(repo, sender_dns, saturday, "alpha.example", "gamma.example")
    result = apply(
        repo,
        plan_path,
        sender_dns,
        saturday,
        "--emergency",
        "--reason",
        "both clients' mail is bouncing at the same receiver",
        "--incident",
        "INC-2042",
    )
    assert result.exit_code == 0, result.output
    clients = sorted(
        json.loads(p.read_text())["client"] for p in (repo / "changes/records").glob("*.json")
    )
    assert clients == ["alpha", "gamma"]
    assert "v=spf1 include:_spf.google.com include:sendgrid.net -all" in served(
        client_dns, "gamma.example."
    )


def _applied_spf_only(repo: Path, sender_dns: NamedServer) -> None:
    request(repo, "CR-0001-alpha", ["alpha.example @ TXT"])
    request(repo, "CR-0002-alpha", ["alpha.example _dmarc TXT"])
    plan_path, _ = plan(repo, sender_dns)
    assert approve(repo, plan_path, "CR-0002-alpha", "mhara").exit_code == 0
    assert apply(repo, plan_path, sender_dns).exit_code == 0  # records 2026-0001 (SPF), -0002


def rollback(repo: Path, sender_dns: NamedServer, record_id: str, *extra: str) -> Result:
    return cli(
        repo,
        "rollback",
        record_id,
        "--key",
        str(KEYS / "jchen.pem"),
        "--reason",
        "the CRM's mail fails since the change",
        "--at",
        "2026-12-01T11:00:00",
        "--nameserver",
        f"127.0.0.1:{sender_dns.port}",
        *extra,
    )


def test_rollback_never_carries_other_pending_edits(
    repo: Path, client_dns: NamedServer, sender_dns: NamedServer
) -> None:
    _applied_spf_only(repo, sender_dns)
    zone = repo / "zones" / "alpha" / "alpha.example.yaml"
    # A new, unapproved edit waits in the same zone file.
    zone.write_text(zone.read_text().replace("p=quarantine", "p=reject"))
    staged = zone.read_text()
    requests_before = sorted(p.name for p in (repo / "changes/requests").iterdir())
    result = rollback(repo, sender_dns, "2026-0001")
    assert result.exit_code == 2
    assert "would also apply changes it did not make: _dmarc.alpha.example TXT" in result.stderr
    assert zone.read_text() == staged  # the repository is as it was
    assert sorted(p.name for p in (repo / "changes/requests").iterdir()) == requests_before
    assert served(client_dns, "_dmarc.alpha.example.") == [
        "v=DMARC1; p=quarantine; rua=mailto:dmarc@alpha.example"
    ]


def test_rollback_refuses_to_undo_later_changes_unless_forced(
    repo: Path, client_dns: NamedServer, sender_dns: NamedServer
) -> None:
    _applied_spf_only(repo, sender_dns)
    later = "v=DMARC1; p=quarantine; pct=40; rua=mailto:dmarc@alpha.example"
    client_dns.update("alpha.example", "_dmarc", "TXT", [later])
    zone = repo / "zones" / "alpha" / "alpha.example.yaml"
    zone.write_text(zone.read_text().replace("p=quarantine\\;", "p=quarantine\\; pct=40\\;"))
    result = rollback(repo, sender_dns, "2026-0002")
    assert result.exit_code == 2
    assert "live DNS is no longer what 2026-0002 left" in result.stderr
    assert served(client_dns, "_dmarc.alpha.example.") == [later]
    forced = rollback(repo, sender_dns, "2026-0002", "--force")
    assert forced.exit_code == 0, forced.output
    assert served(client_dns, "_dmarc.alpha.example.") == [
        "v=DMARC1; p=none; rua=mailto:dmarc@alpha.example"
    ]
    # The before-state is restored exactly, TTL included (the zone's records use 300 s).
    assert "ttl: 300" in zone.read_text().split("_dmarc:")[1].split("old._domainkey")[0]


def test_a_refused_rollback_leaves_nothing_behind(
    repo: Path, client_dns: NamedServer, sender_dns: NamedServer
) -> None:
    _applied_spf_only(repo, sender_dns)
    zone = repo / "zones" / "alpha" / "alpha.example.yaml"
    text = zone.read_text()
    requests_before = sorted(p.name for p in (repo / "changes/requests").iterdir())
    result = cli(
        repo,
        "rollback",
        "2026-0001",
        "--as",
        "nobody",
        "--key",
        str(KEYS / "jchen.pem"),  # a typed name that is not the key's owner
        "--reason",
        "the CRM's mail fails since the change",
        "--at",
        "2026-12-01T11:00:00",
    )
    assert result.exit_code == 1
    assert "this key is not nobody's: it is jchen's" in result.stderr
    assert zone.read_text() == text
    assert sorted(p.name for p in (repo / "changes/requests").iterdir()) == requests_before
