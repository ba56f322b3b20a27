"""Drift against a real named (issue 13 item 4): a record changed by a dynamic update behind the
pipeline's back is reported as an unrecorded change, adopted into a signed record, and the next
drift is clean; a revert goes through a normal request."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result
from clockcli import invoke_at
from dns_server import NamedServer
from portfolio import write
from test_apply_named import served
from test_lifecycle import KEYS, apply, approve, cli, plan, record, request
from test_plan_named import make_repo

ALPHA = "alpha.example"
DMARC_LIVE = "v=DMARC1; p=none; rua=mailto:dmarc@alpha.example"
ESCAPED = DMARC_LIVE.replace(";", "\\;")
DMARC_APPLIED = "v=DMARC1; p=quarantine; rua=mailto:dmarc@alpha.example"


def drift(repo: Path, sender_dns: NamedServer, *args: str) -> Result:
    return cli(
        repo, "drift", "--nameserver", f"127.0.0.1:{sender_dns.port}", "--zone", ALPHA, *args
    )


def drift_json(repo: Path, sender_dns: NamedServer) -> tuple[int, dict[str, Any]]:
    result = drift(repo, sender_dns, "--format", "json")
    return result.exit_code, json.loads(result.stdout)


def adopt(repo: Path, sender_dns: NamedServer, *args: str, key: str = "jchen") -> Result:
    return cli(
        repo,
        "drift",
        "--nameserver",
        f"127.0.0.1:{sender_dns.port}",
        "adopt",
        "--key",
        str(KEYS / f"{key}.pem"),
        "--at",  # the machine's clock (tests/clockcli.py): adopt writes the audit trail
        "2026-12-01T11:30:00Z",
        *args,
    )


@pytest.fixture
def repo(tmp_path: Path, client_dns: NamedServer) -> Path:
    return make_repo(tmp_path / "repo", with_requests=False)


@pytest.fixture
def in_step(repo: Path) -> Path:
    """alpha.example's zone file set to what live DNS serves: nothing pending, nothing drifted."""
    write(
        repo / "zones/alpha/alpha.example.yaml",
        f"""---
'':
  ttl: 300
  type: TXT
  value: v=spf1 include:_spf.google.com ~all
_dmarc:
  ttl: 300
  type: TXT
  value: {ESCAPED}
old._domainkey:
  ttl: 300
  type: CNAME
  value: old.dkim.sender.example.
""",
    )
    return repo


def test_a_dynamic_update_is_reported_adopted_and_then_clean(
    in_step: Path, client_dns: NamedServer, sender_dns: NamedServer
) -> None:
    repo = in_step
    clean = drift(repo, sender_dns)
    assert clean.exit_code == 0, clean.output
    assert "No drift" in clean.stdout

    # Someone with the TSIG key changes live DNS behind the pipeline's back.
    sneaky = "v=DMARC1; p=none; pct=100; rua=mailto:dmarc@alpha.example,mailto:x@elsewhere.example"
    client_dns.update(ALPHA, "_dmarc", "TXT", [sneaky])
    found = drift(repo, sender_dns)
    assert found.exit_code == 1, found.output
    out = found.stdout
    assert "_dmarc.alpha.example TXT (dmarc) unrecorded change  risk: LOW" in out
    assert f"- {DMARC_LIVE}" in out
    assert f"+ {sneaky}  (live)" in out
    assert "dmarc.rua +mailto:x@elsewhere.example" in out  # explained in DMARC terms
    assert "[dmarc-rua-added:" in out  # with the rule behind its risk
    assert "dmarcops drift adopt --record 'alpha.example _dmarc TXT'" in out
    code, report = drift_json(repo, sender_dns)
    assert code == 1 and report["drift"] is True
    (item,) = [i for i in report["items"] if i["status"] == "unrecorded"]
    assert (item["before"], item["after"], item["baseline"]) == (
        [DMARC_LIVE],
        [sneaky],
        "zone file",
    )
    # D7: the live value sends reports to another domain without its authorisation.
    assert "D7" in {f["code"] for f in item["findings"]}

    adopted = adopt(repo, sender_dns, "--record", "alpha.example _dmarc TXT", "--note", "CHG-2291")
    assert adopted.exit_code == 0, adopted.output
    assert "change record 2026-0001: alpha alpha.example adopted by jchen" in adopted.stdout
    rec = record(repo, "2026-0001")
    assert rec["change_type"] == "Unrecorded change (adopted)"
    assert rec["adopted"]["adopted_by"] == "jchen"
    assert rec["adopted"]["note"] == "changed outside the pipeline, adopted by jchen: CHG-2291"
    assert rec["sealed"] is True and rec["outcome"] == "accepted"
    assert rec["items"][0]["before"] == [DMARC_LIVE] and rec["items"][0]["after"] == [sneaky]
    ledger = (repo / "changes/ledger.jsonl").read_text().splitlines()
    assert {json.loads(line)["actor"] for line in ledger[-2:]} == {"jchen"}  # created, sealed
    # The zone file now wants the live value, so the next plan does not undo it...
    zone = (repo / "zones/alpha/alpha.example.yaml").read_text()
    assert "x@elsewhere.example" in zone
    again = drift(repo, sender_dns)
    assert again.exit_code == 0, again.output  # ...and the next drift is clean
    assert cli(repo, "audit", "verify").exit_code == 0
    assert served(client_dns, "_dmarc.alpha.example.") == [sneaky]  # adopt sent nothing


def test_drift_after_a_recorded_apply_and_its_revert_through_a_request(
    repo: Path, client_dns: NamedServer, sender_dns: NamedServer
) -> None:
    request(repo, "CR-0001-alpha", ["alpha.example"])
    plan_path, _ = plan(repo, sender_dns)
    assert approve(repo, plan_path, "CR-0001-alpha", "mhara").exit_code == 0
    assert apply(repo, plan_path, sender_dns).exit_code == 0
    assert drift(repo, sender_dns).exit_code == 0

    client_dns.update(ALPHA, "_dmarc", "TXT", [DMARC_LIVE])  # someone relaxes the policy
    found = drift(repo, sender_dns)
    assert found.exit_code == 1
    assert "expected as record 2026-0001 left it; live differs:" in found.stdout
    assert "risk: HIGH" in found.stdout and "[dmarc-policy-relaxed:" in found.stdout
    assert "revert: the zone file still holds the expected value" in found.stdout

    # Revert: a normal request; its plan puts the recorded value back, and its record is the
    # new recorded state.
    request(repo, "CR-0002-alpha", ["alpha.example _dmarc TXT"])
    still = drift(repo, sender_dns)
    assert still.exit_code == 1  # a request is not a revert until it is applied
    assert "request CR-0002-alpha covers it" in still.stdout
    plan_path, _ = plan(repo, sender_dns)
    approved = approve(repo, plan_path, "CR-0002-alpha", "mhara")
    assert approved.exit_code == 0, approved.output
    result = apply(repo, plan_path, sender_dns, "2026-12-01T10:30:00Z")
    assert result.exit_code == 0, result.output
    assert served(client_dns, "_dmarc.alpha.example.") == [DMARC_APPLIED]
    assert drift(repo, sender_dns).exit_code == 0


def test_pending_changes_are_not_drift_and_adopt_can_only_print(
    repo: Path, client_dns: NamedServer, sender_dns: NamedServer
) -> None:
    # The fixture's zone file wants SPF and DMARC changes: covered by a request, they are pending.
    request(repo, "CR-0001-alpha", ["alpha.example"])
    code, report = drift_json(repo, sender_dns)
    assert code == 0
    assert {(i["name"], i["status"], i["request"]) for i in report["items"]} == {
        ("", "pending", "CR-0001-alpha"),
        ("_dmarc", "pending", "CR-0001-alpha"),
    }
    # A DKIM selector created by hand is drift even with the request open (no request covers
    # an RRset the zone file does not hold: the plan would delete it).
    client_dns.update(ALPHA, "s1._domainkey", "CNAME", ["s1.dkim.vendor.example."])
    found = drift(repo, sender_dns)
    assert found.exit_code == 1
    assert "s1._domainkey.alpha.example CNAME (dkim) unrecorded change" in found.stdout
    assert "dkim.selector +s1; dkim.cname +s1.dkim.vendor.example" in found.stdout
    assert "revert (remove it): the zone file does not hold it" in found.stdout
    before = (repo / "zones/alpha/alpha.example.yaml").read_text()
    printed = adopt(repo, sender_dns, "--record", "alpha.example s1._domainkey", "--no-write")
    assert printed.exit_code == 0, printed.output
    assert "write into zones/alpha/alpha.example.yaml" in printed.stdout
    assert "s1._domainkey:" in printed.stdout and "value: s1.dkim.vendor.example." in printed.stdout
    assert (repo / "zones/alpha/alpha.example.yaml").read_text() == before


def test_adopt_needs_a_selection_a_roster_key_and_a_real_drift(
    in_step: Path, client_dns: NamedServer, sender_dns: NamedServer
) -> None:
    repo = in_step
    nothing = adopt(repo, sender_dns)
    assert nothing.exit_code == 1 and "--record 'ZONE NAME TYPE'" in nothing.stderr
    none_found = adopt(repo, sender_dns, "--all", "--zone", ALPHA)
    assert none_found.exit_code == 1 and "no unrecorded change matches" in none_found.stderr
    client_dns.update(ALPHA, "_dmarc", "TXT", ["v=DMARC1; p=reject"])
    # adopt writes the audit trail: for a client on BIND it takes the system clock, never a typed one.
    typed = invoke_at(
        [
            "--repo",
            str(repo),
            "drift",
            "adopt",
            "--all",
            "--zone",
            ALPHA,
            "--key",
            str(KEYS / "jchen.pem"),
        ],
        env={"DMARCOPS_NOW": "2026-12-01T10:00:00"},
    )
    assert typed.exit_code == 2 and "uses the system clock" in typed.stderr
    # Keeping a change nobody approved is a person's decision: the automation's key may not.
    bot = adopt(repo, sender_dns, "--all", "--zone", ALPHA, key="dmarcops-bot")
    assert bot.exit_code == 2 and "a person adopts" in bot.stderr
    assert not (repo / "changes/records").exists()


def test_the_scheduled_run_opens_one_record_per_drift_and_adoption_supersedes_it(
    in_step: Path, client_dns: NamedServer, sender_dns: NamedServer
) -> None:
    repo = in_step
    bot = str(KEYS / "dmarcops-bot.pem")
    at = ("--at", "2026-12-01T11:00:00Z")  # the machine's clock (tests/clockcli.py)
    unsigned = drift(repo, sender_dns, "--open-records")
    assert unsigned.exit_code == 1 and "give --key FILE" in unsigned.stderr
    nothing = drift(repo, sender_dns, "--open-records", "--key", bot, *at)
    assert nothing.exit_code == 0 and "opened" not in nothing.stderr
    assert not (repo / "changes/records/2026-0001.json").exists()

    sneaky = "v=DMARC1; p=reject; rua=mailto:dmarc@alpha.example"
    client_dns.update(ALPHA, "_dmarc", "TXT", [sneaky])
    found = drift(repo, sender_dns, "--open-records", "--key", bot, *at)
    assert found.exit_code == 1, found.output  # still drift: opening a record explains nothing
    assert (
        "opened change record 2026-0001: alpha alpha.example, 1 unrecorded change(s), high risk\n"
        in found.stderr
    )
    opened = record(repo, "2026-0001")
    assert opened["change_type"] == "Unrecorded change (open)"
    assert opened["sealed"] is False and opened.get("executed_at") is None
    assert opened["items"][0]["before"] == [DMARC_LIVE]
    assert opened["items"][0]["after"] == [sneaky]
    assert opened["risk"] == "high"  # p=none -> p=reject by hand
    # The next scheduled run sees the same drift: no second record, and still exit 1.
    again = drift(repo, sender_dns, "--open-records", "--key", bot, *at)
    assert again.exit_code == 1
    assert "already open: change record 2026-0001 (alpha.example)\n" in again.stderr
    assert not (repo / "changes/records/2026-0002.json").exists()
    code, report = drift_json(repo, sender_dns)
    assert code == 1 and [i["status"] for i in report["items"]] == ["unrecorded"]

    # Nobody closes it as accepted, not even a person with a reason-less close.
    accepted = cli(
        repo, "close", "2026-0001", "--outcome", "accepted", "--key", str(KEYS / "jchen.pem"), *at
    )
    assert accepted.exit_code == 2 and "never closed as accepted" in accepted.output

    adopted = adopt(repo, sender_dns, "--record", "alpha.example _dmarc TXT")
    assert adopted.exit_code == 0, adopted.output
    assert "change record 2026-0002" in adopted.stdout
    assert record(repo, "2026-0002")["outcome"] == "accepted"
    closed = record(repo, "2026-0001")
    assert closed["sealed"] is True and closed["outcome"] == "superseded"
    assert closed["closed_by"] == "jchen"
    assert drift(repo, sender_dns, "--open-records", "--key", bot, *at).exit_code == 0
    assert not (repo / "changes/records/2026-0003.json").exists()
    verified = cli(repo, "audit", "verify")
    assert verified.exit_code == 0, verified.output
