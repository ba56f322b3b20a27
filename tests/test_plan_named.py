"""`dmarcops plan` end to end against real BIND 9 servers on loopback (octodns-bind, AXFR + TSIG).

Several clients and zones; SPF lookup budgets counted through the sender zones served by another
named; a zone whose server is down; records outside the pipeline's scope left alone; the apex TXT
set's other values preserved.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from dns_server import NamedServer, ZoneSpec
from portfolio import REPO, write
from signing import genesis, reseal, sign_all

from pipeline.cli import main

TOKEN = "google-site-verification=Zx81-token"

LIVE: dict[str, ZoneSpec] = {
    "alpha.example": [
        ("@", "A", "192.0.2.1"),
        ("@", "MX", "10 mx.alpha.example."),
        ("@", "TXT", TOKEN),
        ("@", "TXT", "v=spf1 include:_spf.google.com ~all"),
        ("www", "A", "192.0.2.2"),
        ("mail", "TXT", "some-other-verification=abc"),
        ("_github-challenge", "TXT", "deadbeef"),
        ("_dmarc", "TXT", "v=DMARC1; p=none; rua=mailto:dmarc@alpha.example"),
        ("old._domainkey", "CNAME", "old.dkim.sender.example."),
    ],
    "beta.example": [
        ("@", "TXT", TOKEN),
        ("@", "TXT", "v=spf1 include:sendgrid.net -all"),
        ("_dmarc", "TXT", "v=DMARC1; p=quarantine; rua=mailto:dmarc@beta.example"),
    ],
    "gamma.example": [
        ("@", "TXT", "v=spf1 include:_spf.google.com -all"),
        ("_dmarc", "TXT", "v=DMARC1; p=reject; rua=mailto:dmarc@gamma.example"),
    ],
}

DESIRED = {
    "alpha/alpha.example": """---
'':
  ttl: 300
  type: TXT
  value: v=spf1 include:_spf.google.com include:sendgrid.net ~all
_dmarc:
  ttl: 300
  type: TXT
  value: v=DMARC1\\; p=quarantine\\; rua=mailto:dmarc@alpha.example
old._domainkey:
  ttl: 300
  type: CNAME
  value: old.dkim.sender.example.
""",
    # SPF left out on purpose: the plan removes the v=spf1 value and keeps the token.
    "alpha/beta.example": """---
_dmarc:
  ttl: 300
  type: TXT
  value: v=DMARC1\\; p=quarantine\\; rua=mailto:dmarc@beta.example
""",
    "gamma/gamma.example": """---
'':
  ttl: 300
  type: TXT
  value: v=spf1 include:_spf.google.com include:sendgrid.net -all
_dmarc:
  ttl: 300
  type: TXT
  value: v=DMARC1\\; p=reject\\; rua=mailto:dmarc@gamma.example
""",
}


def make_repo(root: Path, gamma_provider: str = "bind", with_requests: bool = True) -> Path:
    for part in ("schemas", "risk-rules.yaml", "senders.yaml"):
        src = REPO / "policy" / part
        dest = root / "policy" / part
        if src.is_dir():
            import shutil

            shutil.copytree(src, dest)
        else:
            write(dest, src.read_text())
    write(
        root / "policy/providers.yaml",
        """providers:
  bind:
    class: octodns_bind.Rfc2136Provider
    host: env/TEST_BIND_HOST
    port: env/TEST_BIND_PORT
    key_name: env/TEST_BIND_KEY_NAME
    key_secret: env/TEST_BIND_KEY_SECRET
    key_algorithm: hmac-sha256
  bind-down:
    class: octodns_bind.Rfc2136Provider
    host: 127.0.0.1
    port: env/TEST_DOWN_PORT
    key_name: env/TEST_BIND_KEY_NAME
    key_secret: env/TEST_BIND_KEY_SECRET
    key_algorithm: hmac-sha256
    timeout: 1
""",
    )
    write(
        root / "policy/clients/alpha.yaml",
        "name: Alpha *Corp* | <b>\nprovider: bind\ndomains: [alpha.example, beta.example]\n",
    )
    write(
        root / "policy/clients/gamma.yaml",
        "name: Gamma Bank\nregulated: true\ntimezone: Europe/London\n"
        f"provider: {gamma_provider}\ndomains: [gamma.example]\n"
        "freezes:\n  - {start: '2027-06-01', end: '2027-06-30', reason: 'Half-year close'}\n",
    )
    for path, text in DESIRED.items():
        write(root / "zones" / f"{path}.yaml", text)
    write(root / "policy/roster.yaml", (REPO / "policy/roster.yaml").read_text())
    if with_requests:
        for n, (client, zone) in enumerate(
            [("alpha", "alpha.example"), ("alpha", "beta.example"), ("gamma", "gamma.example")],
            start=1,
        ):
            write(
                root / f"changes/requests/CR-{n:04d}-{client}.yaml",
                f"type: other\nclient: {client}\ncovers: ['{zone}']\nauthor: jchen\n"
                "rationale: Aggregate reports show the new senders failing SPF for 14 days; "
                "this aligns the records with the senders the client uses.\n",
            )
        sign_all(root)
    # The ledger begins as `dmarcops init` begins it: this policy sealed by the lead mhara.
    genesis(root)
    return root


@pytest.fixture
def client_dns(
    named_factory: Callable[[Mapping[str, ZoneSpec]], NamedServer],
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[NamedServer]:
    server = named_factory(LIVE)
    for name, value in server.client_env().items():
        monkeypatch.setenv(name, value)
    yield server


def plan_json(repo: Path, sender_dns: NamedServer, *args: str) -> tuple[int, dict[str, Any], str]:
    result = CliRunner().invoke(
        main,
        [
            "--repo",
            str(repo),
            "plan",
            "--format",
            "json",
            "--nameserver",
            f"127.0.0.1:{sender_dns.port}",
            "--at",
            "2026-12-01T10:00:00Z",
            *args,
        ],
    )
    assert not isinstance(result.exception, Exception) or isinstance(
        result.exception, SystemExit
    ), result.exception
    stdout = result.stdout
    return result.exit_code, json.loads(stdout) if stdout.strip() else {}, result.stderr


def change(plan: dict[str, Any], zone: str, name: str, rtype: str = "TXT") -> dict[str, Any]:
    found = [c for c in plan["changes"] if (c["zone"], c["name"], c["type"]) == (zone, name, rtype)]
    assert len(found) == 1, [(c["zone"], c["name"], c["type"]) for c in plan["changes"]]
    return found[0]


def test_portfolio_plan_against_named(
    tmp_path: Path, client_dns: NamedServer, sender_dns: NamedServer
) -> None:
    repo = make_repo(tmp_path)
    code, plan, err = plan_json(repo, sender_dns)
    assert code == 0, err

    # Only owned records: www A, MX, the mail token, _github-challenge never appear.
    keys = {(c["zone"], c["name"], c["type"]) for c in plan["changes"]}
    assert keys == {
        ("alpha.example", "", "TXT"),
        ("alpha.example", "_dmarc", "TXT"),
        ("beta.example", "", "TXT"),
        ("gamma.example", "", "TXT"),
    }

    spf = change(plan, "alpha.example", "")
    assert spf["action"] == "update"
    assert sorted(spf["before"]) == sorted([TOKEN, "v=spf1 include:_spf.google.com ~all"])
    assert sorted(spf["after"]) == sorted(
        [TOKEN, "v=spf1 include:_spf.google.com include:sendgrid.net ~all"]
    )
    assert spf["risk"] == "low"
    lookups = next(f for f in spf["facts"] if f["code"] == "spf.lookups")
    # Counted through DNS: _spf.google.com = 1 + its 3 nested includes; sendgrid.net = 1.
    assert (lookups["old"], lookups["new"]) == ("4", "5")
    assert lookups["attrs"]["source"] == "dns"

    dmarc = change(plan, "alpha.example", "_dmarc")
    assert dmarc["risk"] == "medium"
    assert dmarc["before"] == ["v=DMARC1; p=none; rua=mailto:dmarc@alpha.example"]
    assert any("dmarc-policy-quarantine" in r for r in dmarc["reasons"])

    # SPF left out of beta's zone file: the v=spf1 value goes, the token stays (an update).
    beta = change(plan, "beta.example", "")
    assert beta["action"] == "update"
    assert beta["after"] == [TOKEN]
    assert beta["risk"] == "high"

    # A regulated client's SPF change is high whatever the sender.
    gamma = change(plan, "gamma.example", "")
    assert gamma["risk"] == "high"
    assert any("spf-regulated" in r for r in gamma["reasons"])

    assert plan["risk"] == "high"
    assert plan["summary"]["update"] == 4
    assert all(z["status"] == "planned" for z in plan["zones"])


def test_zone_whose_server_is_down_is_reported_and_others_planned(
    tmp_path: Path,
    client_dns: NamedServer,
    sender_dns: NamedServer,
    named_factory: Callable[[Mapping[str, ZoneSpec]], NamedServer],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    down = named_factory({"gamma.example": LIVE["gamma.example"]})
    monkeypatch.setenv("TEST_DOWN_PORT", str(down.port))
    down.kill()
    repo = make_repo(tmp_path, gamma_provider="bind-down")
    code, plan, err = plan_json(repo, sender_dns)
    assert code == 1
    assert "gamma.example: could not read live DNS through bind-down" in err
    statuses = {z["zone"]: z["status"] for z in plan["zones"]}
    assert statuses == {
        "alpha.example": "planned",
        "beta.example": "planned",
        "gamma.example": "failed",
    }
    assert {c["zone"] for c in plan["changes"]} == {"alpha.example", "beta.example"}


def test_plan_hash_is_stable_and_follows_live_dns(
    tmp_path: Path, client_dns: NamedServer, sender_dns: NamedServer
) -> None:
    repo = make_repo(tmp_path)
    _, first, _ = plan_json(repo, sender_dns)
    _, second, _ = plan_json(repo, sender_dns, "--concurrency", "1")
    assert first["plan_hash"] == second["plan_hash"]
    # Someone edits live DNS behind the pipeline's back: the before-state and the hash change.
    client_dns.update("alpha.example", "_dmarc", "TXT", ["v=DMARC1; p=none; pct=20"])
    _, third, _ = plan_json(repo, sender_dns)
    assert third["plan_hash"] != first["plan_hash"]
    assert change(third, "alpha.example", "_dmarc")["before"] == ["v=DMARC1; p=none; pct=20"]


def test_narrowing_by_client_and_zone(
    tmp_path: Path, client_dns: NamedServer, sender_dns: NamedServer
) -> None:
    repo = make_repo(tmp_path)
    _, by_client, _ = plan_json(repo, sender_dns, "--client", "gamma")
    assert {z["zone"] for z in by_client["zones"]} == {"gamma.example"}
    _, by_zone, _ = plan_json(repo, sender_dns, "--zone", "beta.example")
    assert {c["zone"] for c in by_zone["changes"]} == {"beta.example"}
    code, _, err = plan_json(repo, sender_dns, "--client", "nobody")
    assert code == 1
    assert "no client 'nobody'" in err


def test_freeze_raises_everything_to_high(
    tmp_path: Path, client_dns: NamedServer, sender_dns: NamedServer
) -> None:
    repo = make_repo(tmp_path)
    path = repo / "policy/clients/alpha.yaml"
    path.write_text(
        path.read_text()
        + "freezes:\n  - {start: '2026-11-30', end: '2026-12-02', reason: 'Audit'}\n"
    )
    reseal(repo)  # setup: the edit as a lead sealed it
    _, plan, _ = plan_json(repo, sender_dns, "--client", "alpha")
    spf = change(plan, "alpha.example", "")
    assert spf["risk"] == "high"
    assert any("change-freeze" in r and "Audit" in r for r in spf["reasons"])


def test_missing_secret_names_the_variable(
    tmp_path: Path,
    client_dns: NamedServer,
    sender_dns: NamedServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    repo = make_repo(tmp_path)
    monkeypatch.delenv("TEST_BIND_KEY_SECRET")
    code, _, err = plan_json(repo, sender_dns, "--client", "gamma")
    assert code == 1
    assert "TEST_BIND_KEY_SECRET" in err
    assert "Traceback" not in err


def test_markdown_is_a_change_record_draft_with_escaped_strings(
    tmp_path: Path, client_dns: NamedServer, sender_dns: NamedServer
) -> None:
    repo = make_repo(tmp_path)
    result = CliRunner().invoke(
        main,
        [
            "--repo",
            str(repo),
            "plan",
            "--format",
            "markdown",
            "--client",
            "alpha",
            "--nameserver",
            f"127.0.0.1:{sender_dns.port}",
            "--out",
            str(tmp_path / "plan.json"),
        ],
    )
    md = result.stdout
    assert result.exit_code == 0, result.stderr
    assert md.startswith("<!-- dmarcops-plan -->")
    # The client's display name carries markdown and HTML: it is shown, never interpreted.
    assert "Alpha \\*Corp\\* \\| \\<b\\>" in md
    assert "<b>" not in md
    for field in (
        "Record affected",
        "Change type",
        "Risk level",
        "Before",
        "After",
        "Rationale",
        "Approval needed",
        "Change window",
        "Rollback window",
        "Executed",
        "Verification",
        "Outcome",
    ):
        assert f"| {field} |" in md
    saved = json.loads((tmp_path / "plan.json").read_text())
    assert saved["plan_hash"] in md
