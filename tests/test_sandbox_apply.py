"""Applying through the sandbox (octoDNS YamlProvider writes whole zones): records the pipeline does
not own are written back unchanged, never dropped. And a record of the client's that cannot coexist
with an owned one is a clear refusal, not a silent half-apply."""

from __future__ import annotations

import json
from pathlib import Path

import yaml
from click.testing import CliRunner
from portfolio import REPO, copy_example

from pipeline.cli import main

KEYS = REPO / "tests" / "keys"


def cli(repo: Path, *args: str) -> object:
    return CliRunner().invoke(main, ["--repo", str(repo), *args])


def test_sandbox_apply_keeps_the_clients_records(tmp_path: Path) -> None:
    repo = copy_example(tmp_path)
    live_file = repo / "sandbox/live/fabrikam.example.yaml"
    before = yaml.safe_load(live_file.read_text())
    plan = cli(
        repo,
        "plan",
        "--client",
        "fabrikam-labs",
        "--at",
        "2026-12-01T08:30:00Z",
        "--out",
        str(repo / "plan.json"),
    )
    assert plan.exit_code == 0, plan.output  # type: ignore[attr-defined]
    approve = cli(
        repo,
        "approve",
        "--plan",
        str(repo / "plan.json"),
        "--request",
        "CR-0002-fabrikam-labs",
        "--key",
        str(KEYS / "mhara.pem"),
        "--at",
        "2026-12-01T08:40:00",
    )
    assert approve.exit_code == 0, approve.output  # type: ignore[attr-defined]
    applied = cli(
        repo,
        "apply",
        "--plan",
        str(repo / "plan.json"),
        "--key",
        str(KEYS / "jchen.pem"),
        "--at",
        "2026-12-01T08:45:00",
    )
    assert applied.exit_code == 0, applied.output  # type: ignore[attr-defined]
    after = yaml.safe_load(live_file.read_text())
    apex = {r["type"]: r for r in after[""]}
    assert apex["A"] == next(r for r in before[""] if r["type"] == "A")
    assert "google-site-verification=fab-77d1e0c3" in apex["TXT"]["values"]
    assert (
        after["_dmarc"]["value"]
        == "v=DMARC1\\; p=quarantine\\; pct=50\\; rua=mailto:dmarc@fabrikam.example"
    )
    assert "s2026._domainkey" in after and "s2025._domainkey" in after
    again = cli(repo, "plan", "--client", "fabrikam-labs", "--format", "json")
    assert json.loads(again.stdout)["changes"] == []  # type: ignore[attr-defined]


def test_a_clients_cname_where_an_owned_record_goes_fails_the_zone_clearly(tmp_path: Path) -> None:
    repo = copy_example(tmp_path)
    live_file = repo / "sandbox/live/fabrikam.example.yaml"
    live_file.write_text(
        live_file.read_text().replace(
            "_dmarc:\n  type: TXT\n  value: v=DMARC1\\; p=none\\; rua=mailto:dmarc@fabrikam.example\n",
            "_dmarc:\n  type: CNAME\n  value: fabrikam.dmarc-vendor.example.\n",
        )
    )
    result = cli(repo, "plan", "--client", "fabrikam-labs", "--format", "json")
    assert result.exit_code == 1  # type: ignore[attr-defined]
    assert "_dmarc.fabrikam.example. has a CNAME record dmarcops does not manage" in result.stderr  # type: ignore[attr-defined]
