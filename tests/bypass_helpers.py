"""Helpers for tests/test_bypass.py: the lifecycle against real BIND, as an analyst would drive it.

Every mutating command goes through tests/clockcli.py (an `--at` there stands for the machine's
clock); the attacks that type a time themselves call the CLI directly.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from click.testing import CliRunner, Result
from dns_server import NamedServer
from signing import reseal
from test_apply_named import served
from test_lifecycle import KEYS, TUESDAY, cli

from pipeline.cli import main
from pipeline.gate.approvals import sign, write_approval
from pipeline.gate.identity import load_private_key
from pipeline.gate.request_loader import load_requests

TUESDAY_DT = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
MONDAY = "2026-11-30T10:00:00Z"  # outside alpha's window
SATURDAY = "2026-12-05T03:00:00Z"
LIVE_DMARC = ["v=DMARC1; p=none; rua=mailto:dmarc@alpha.example"]
NEW_DMARC = ["v=DMARC1; p=quarantine; rua=mailto:dmarc@alpha.example"]
LIVE_SPF = ["v=spf1 include:_spf.google.com ~all"]
LIVE_BETA_SPF = ["v=spf1 include:sendgrid.net -all"]
CLIENT_APPROVER = "ops@alpha.example"


def raw_cli(repo: Path, *args: str, env: dict[str, str] | None = None) -> Result:
    """The CLI exactly as the analyst types it: an `--at` here is the analyst's, not the clock."""
    return CliRunner().invoke(main, ["--repo", str(repo), *args], env=env)


def request_sha(repo: Path, rid: str) -> str:
    (req,) = [r for r in load_requests(repo) if r.id == rid]
    return req.sha256


def plan(repo: Path, sender_dns: NamedServer, *zones: str, at: str = TUESDAY) -> tuple[Path, str]:
    out = repo / "plan.json"
    args = ["plan", "--format", "json", "--out", str(out), "--at", at]
    args += ["--nameserver", f"127.0.0.1:{sender_dns.port}"]
    for zone in zones or ("alpha.example",):
        args += ["--zone", zone]
    result = cli(repo, *args)
    assert result.exit_code == 0, result.stderr
    return out, str(json.loads(out.read_text())["plan_hash"])


def approve(
    repo: Path, plan_path: Path, rid: str, who: str, at: str = TUESDAY, key: str | None = None
) -> Result:
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
        str(KEYS / f"{key or who}.pem"),
        "--at",
        at,
    )


def forge_approval(
    repo: Path,
    plan_hash: str,
    *,
    rid: str,
    named: str,
    signed_by: str,
    at: datetime = TUESDAY_DT,
    signed_rid: str | None = None,
    sha: str | None = None,
) -> Path:
    """An approval file for `rid` naming `named`, signed with `signed_by`'s key over `signed_rid`."""
    approval = sign(
        load_private_key(KEYS / f"{signed_by}.pem"),
        plan_hash,
        signed_rid or rid,
        named,
        at,
        sha if sha is not None else request_sha(repo, rid),
    )
    path = write_approval(repo, approval)
    if signed_rid and signed_rid != rid:
        # Filed under the request it is meant to pass for.
        target = path.with_name(f"{rid}--{named}.json")
        path.rename(target)
        return target
    return path


def records(repo: Path) -> list[str]:
    directory = repo / "changes" / "records"
    return sorted(p.name for p in directory.glob("*.json")) if directory.exists() else []


def approvals(repo: Path) -> list[Path]:
    directory = repo / "changes" / "approvals"
    return sorted(directory.rglob("*.json")) if directory.exists() else []


def assert_untouched(repo: Path, dns: NamedServer) -> None:
    """Nothing applied: no change record, and BIND still serves the live values."""
    assert records(repo) == []
    assert served(dns, "_dmarc.alpha.example.") == LIVE_DMARC
    assert [v for v in served(dns, "alpha.example.") if v.startswith("v=spf1")] == LIVE_SPF
    assert [v for v in served(dns, "beta.example.") if v.startswith("v=spf1")] == LIVE_BETA_SPF


def add_client_approvers(repo: Path, freeze: str = "") -> None:
    profile = repo / "policy" / "clients" / "alpha.yaml"
    text = profile.read_text() + (
        "authorised_approvers:\n  - {name: Alpha Ops, email: ops@alpha.example}\n"
    )
    if freeze:
        text += f"freezes:\n  - {{start: '2026-12-01', end: '2026-12-01', reason: '{freeze}'}}\n"
    profile.write_text(text)
    reseal(repo)  # the client's profile as a lead sealed it (setup, not the attack)


def client_approval(at: str = "2026-11-30T12:00:00Z", **extra: str) -> dict[str, str]:
    return {
        "approver": CLIENT_APPROVER,
        "at": at,
        "reference": "<a1b2@mail.alpha.example>",
        **extra,
    }
