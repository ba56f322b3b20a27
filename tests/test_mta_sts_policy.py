"""MTA-STS policy files in the plan: validated (M2), diffed (mode, mx), id change enforced (M3)."""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from portfolio import copy_example, write
from signing import reseal, sign_if_valid

from pipeline.cli import main

AT = "2026-12-01T09:00:00Z"
ZONE = "zones/fabrikam-labs/fabrikam.example.yaml"


def policy(mode: str, *mx: str) -> str:
    lines = ["version: STSv1", f"mode: {mode}", *(f"mx: {m}" for m in mx), "max_age: 604800"]
    return "\r\n".join(lines) + "\r\n"


def sts(repo: Path, live_id: str, desired_id: str) -> None:
    live = repo / "sandbox/live/fabrikam.example.yaml"
    live.write_text(
        live.read_text().replace(
            "s2025._domainkey:",
            f"_mta-sts:\n  type: TXT\n  value: v=STSv1\\; id={live_id}\ns2025._domainkey:",
        )
    )
    zone = repo / ZONE
    zone.write_text(
        zone.read_text().replace(
            "s2025._domainkey:",
            f"_mta-sts:\n  type: TXT\n  value: v=STSv1\\; id={desired_id}\ns2025._domainkey:",
        )
    )
    write(
        repo / "changes/requests/CR-0010-fabrikam-labs.yaml",
        "type: other\nclient: fabrikam-labs\ncovers: ['fabrikam.example _mta-sts TXT']\n"
        "author: sokafor\nrationale: TLS-RPT shows every sending MTA negotiating TLS with both MX "
        "hosts for 30 days, so the policy can move from testing to enforce.\n",
    )
    sign_if_valid(repo, "CR-0010-fabrikam-labs")


def plan(repo: Path) -> tuple[int, dict[str, Any], str]:
    result = CliRunner().invoke(
        main,
        ["--repo", str(repo), "plan", "--format", "json", "--zone", "fabrikam.example", "--at", AT],
    )
    return result.exit_code, json.loads(result.stdout), result.stderr


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return copy_example(tmp_path)


def test_testing_to_enforce_is_high_and_carried_by_the_sts_record(repo: Path) -> None:
    sts(repo, "20261101", "20261201")
    write(
        repo / "sandbox/live/fabrikam.example.mta-sts.txt",
        policy("testing", "mx1.fabrikam.example"),
    )
    write(
        repo / "zones/fabrikam-labs/fabrikam.example.mta-sts.txt",
        policy("enforce", "mx1.fabrikam.example"),
    )
    code, out, err = plan(repo)
    assert code == 0, err
    item = next(c for c in out["changes"] if c["name"] == "_mta-sts")
    assert "mta_sts.mode testing->enforce" in [f["text"] for f in item["facts"]]
    assert item["risk"] == "high"
    assert any("mta-sts-to-enforce" in r for r in item["reasons"])


def test_policy_changed_without_new_id_is_refused(repo: Path) -> None:
    sts(repo, "20261101", "20261101")
    write(
        repo / "sandbox/live/fabrikam.example.mta-sts.txt",
        policy("enforce", "mx1.fabrikam.example"),
    )
    write(
        repo / "zones/fabrikam-labs/fabrikam.example.mta-sts.txt",
        policy("enforce", "mx1.fabrikam.example", "mx2.fabrikam.example"),
    )
    code, out, _ = plan(repo)
    assert code == 2
    zone = next(z for z in out["zones"] if z["zone"] == "fabrikam.example")
    assert any(f["code"] == "M3" and f["severity"] == "error" for f in zone["findings"])


def test_invalid_desired_policy_is_an_m2_error(repo: Path) -> None:
    write(
        repo / "zones/fabrikam-labs/fabrikam.example.mta-sts.txt", "version: STSv1\nmode: enforce\n"
    )
    code, out, _ = plan(repo)
    assert code == 2
    zone = next(z for z in out["zones"] if z["zone"] == "fabrikam.example")
    m2 = [f for f in zone["findings"] if f["code"] == "M2"]
    assert any("max_age" in f["message"] for f in m2)
    assert any("mx" in f["message"] for f in m2)


@pytest.fixture
def policy_server() -> Iterator[tuple[str, dict[str, str]]]:
    served: dict[str, str] = {}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = served.get(self.path)
            if body is None:
                self.send_response(404)
                self.end_headers()
                return
            self.send_response(200)
            self.end_headers()
            self.wfile.write(body.encode())

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", served
    server.shutdown()


def test_live_policy_is_fetched_over_http(
    repo: Path, policy_server: tuple[str, dict[str, str]]
) -> None:
    base, served = policy_server
    providers = repo / "policy/providers.yaml"
    providers.write_text(
        providers.read_text().replace(
            "mta_sts_policies: sandbox/live/{domain}.mta-sts.txt",
            f"mta_sts_policies: {base}/{{domain}}/.well-known/mta-sts.txt",
        )
    )
    reseal(repo)  # setup: the edit as a lead sealed it
    sts(repo, "20261101", "20261201")
    served["/fabrikam.example/.well-known/mta-sts.txt"] = policy("none")
    write(
        repo / "zones/fabrikam-labs/fabrikam.example.mta-sts.txt",
        policy("testing", "mx1.fabrikam.example"),
    )
    code, out, err = plan(repo)
    assert code == 0, err
    item = next(c for c in out["changes"] if c["name"] == "_mta-sts")
    assert "mta_sts.mode none->testing" in [f["text"] for f in item["facts"]]
    assert item["risk"] == "low"


def test_unreadable_live_policy_is_not_understood(repo: Path) -> None:
    providers = repo / "policy/providers.yaml"
    providers.write_text(
        providers.read_text().replace(
            "mta_sts_policies: sandbox/live/{domain}.mta-sts.txt",
            "mta_sts_policies: http://127.0.0.1:9/{domain}.txt",  # discard port: nothing listens
        )
    )
    reseal(repo)  # setup: the edit as a lead sealed it
    sts(repo, "20261101", "20261201")
    write(
        repo / "zones/fabrikam-labs/fabrikam.example.mta-sts.txt",
        policy("testing", "mx1.fabrikam.example"),
    )
    code, out, _ = plan(repo)
    assert code == 0
    item = next(c for c in out["changes"] if c["name"] == "_mta-sts")
    assert item["risk"] == "medium"
    assert any("no rule understands mta_sts.policy_unknown" in r for r in item["reasons"])
