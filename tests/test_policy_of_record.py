"""Policy of record (issue 9): a change is judged by the policy as sealed, never by edits it makes.

Each attack is the analyst's (jchen's) against a real BIND, beside its twin: the same edit, once a
lead has sealed it, does take effect.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from bypass_helpers import MONDAY, approvals, assert_untouched, plan, raw_cli, records
from dns_server import NamedServer
from signing import JCHEN, reseal
from test_lifecycle import KEYS, apply, cli, record, request
from test_plan_named import make_repo

from pipeline.errors import EXIT_GATE, EXIT_INPUT, EXIT_OK
from pipeline.records import RecordStore, verify
from pipeline.records.ledger import LedgerEvent
from pipeline.records.policy_seal import current_snapshot, store_snapshot


@pytest.fixture
def repo(tmp_path: Path, client_dns: NamedServer) -> Path:
    return make_repo(tmp_path / "repo", with_requests=False)


def _changes(plan_path: Path) -> list[dict[str, object]]:
    data: dict[str, list[dict[str, object]]] = json.loads(plan_path.read_text())
    return data["changes"]


def _lower_every_risk(repo: Path) -> None:
    rules = repo / "policy" / "risk-rules.yaml"
    text = rules.read_text()
    rules.write_text(text.replace("risk: medium", "risk: low").replace("risk: high", "risk: low"))


def test_a_risk_lowered_in_the_same_change_does_not_lower_the_gate(
    repo: Path, client_dns: NamedServer, sender_dns: NamedServer
) -> None:
    request(repo, "CR-0001-alpha", ["alpha.example"])
    _lower_every_risk(repo)  # the attack: the same change makes its own DNS edit "low"
    plan_path, _ = plan(repo, sender_dns)
    changes = _changes(plan_path)
    dns = [c for c in changes if c["kind"] != "policy"]
    edits = [c for c in changes if c["kind"] == "policy"]
    assert "medium" in {c["risk"] for c in dns}  # judged by the sealed risk table
    assert [(c["name"], c["risk"]) for c in edits] == [("policy/risk-rules.yaml", "high")]
    # With the author's signature alone (enough for low), the apply is refused: a peer is missing.
    refused = apply(repo, plan_path, sender_dns)
    assert refused.exit_code == EXIT_GATE, refused.output
    assert "peer review" in refused.stderr
    assert records(repo) == [] and approvals(repo) == []
    assert_untouched(repo, client_dns)
    # Twin: once a lead seals the table, the same DNS change is low and the author's signature
    # is enough.
    reseal(repo)
    plan_path, _ = plan(repo, sender_dns)
    assert {c["risk"] for c in _changes(plan_path)} == {"low"}
    assert apply(repo, plan_path, sender_dns).exit_code == EXIT_OK
    assert record(repo, "2026-0001")["risk"] == "low"


def test_a_window_widened_in_the_same_change_does_not_open(
    repo: Path, client_dns: NamedServer, sender_dns: NamedServer
) -> None:
    profile = repo / "policy" / "clients" / "alpha.yaml"
    profile.write_text(
        profile.read_text()
        + "change_window:\n  days: [mon, tue, wed, thu, fri, sat, sun]\n"
        + '  start: "00:00"\n  end: "23:59"\n'
    )
    request(repo, "CR-0001-alpha", ["alpha.example"])
    plan_path, _ = plan(repo, sender_dns, at=MONDAY)
    assert cli(repo, "approve", "--plan", str(plan_path), "--request", "CR-0001-alpha",
               "--key", str(KEYS / "mhara.pem"), "--at", MONDAY).exit_code == 0  # fmt: skip
    refused = apply(repo, plan_path, sender_dns, MONDAY)
    assert refused.exit_code == EXIT_GATE, refused.output
    assert "window" in refused.stderr
    assert records(repo) == []
    assert_untouched(repo, client_dns)
    # Twin: sealed by a lead, the widened window holds Monday too.
    reseal(repo)
    plan_path, _ = plan(repo, sender_dns, at=MONDAY)
    assert cli(repo, "approve", "--plan", str(plan_path), "--request", "CR-0001-alpha",
               "--key", str(KEYS / "mhara.pem"), "--at", MONDAY).exit_code == 0  # fmt: skip
    assert apply(repo, plan_path, sender_dns, MONDAY).exit_code == EXIT_OK


def test_a_policy_line_signed_by_an_analyst_is_not_policy_of_record(
    repo: Path, sender_dns: NamedServer
) -> None:
    # jchen seals their own edit by hand: a `policy` line signed with jchen's key.
    _lower_every_risk(repo)
    store = RecordStore(repo / "changes")
    entries = store.ledger.read()
    digest = store_snapshot(store.changes_dir, current_snapshot(repo))
    store.ledger.append(
        entries,
        event=LedgerEvent.POLICY,
        signer=JCHEN,
        at=entries[-1].at,
        roster=store.trusted_roster(entries),
        payload={"policy_sha256": digest},
    )
    result = raw_cli(repo, "plan", "--at", "2026-12-01T10:00:00Z", "--nameserver",
                     f"127.0.0.1:{sender_dns.port}")  # fmt: skip
    assert result.exit_code == EXIT_GATE, result.output
    assert "not a lead" in result.stderr and "ledger.jsonl" in result.stderr
    problems = [str(p) for p in verify(store.changes_dir, entries[-1].at)]
    assert any("policy sealed by jchen, who is not a lead" in p for p in problems), problems
    # The store refuses the same through its own door.
    with pytest.raises(Exception, match="not a lead"):
        store.seal_policy(current_snapshot(repo), entries[-1].at, JCHEN)


def test_policy_seal_is_a_leads_and_needs_a_pending_edit_that_loads(repo: Path) -> None:
    nothing = raw_cli(repo, "policy", "seal", "--key", str(KEYS / "mhara.pem"))
    assert nothing.exit_code == EXIT_INPUT and "nothing to seal" in nothing.output
    _lower_every_risk(repo)
    status = raw_cli(repo, "policy", "status")
    assert status.exit_code == EXIT_GATE and "pending: policy/risk-rules.yaml" in status.output
    by_analyst = raw_cli(repo, "policy", "seal", "--key", str(KEYS / "jchen.pem"))
    assert by_analyst.exit_code == EXIT_GATE and "not a lead" in by_analyst.output
    profile = repo / "policy" / "clients" / "alpha.yaml"
    good = profile.read_text()
    profile.write_text(good + "no_such_field: 1\n")  # an edit that does not load
    broken = raw_cli(repo, "policy", "seal", "--key", str(KEYS / "mhara.pem"))
    assert broken.exit_code == EXIT_INPUT and "alpha.yaml" in broken.output
    profile.write_text(good)
    sealed = raw_cli(repo, "policy", "seal", "--key", str(KEYS / "mhara.pem"))
    assert sealed.exit_code == EXIT_OK, sealed.output
    assert "by mhara; 1 file(s) changed: policy/risk-rules.yaml" in sealed.output
    assert raw_cli(repo, "policy", "status").exit_code == EXIT_OK


def test_a_record_names_the_policy_that_judged_it(
    repo: Path, client_dns: NamedServer, sender_dns: NamedServer
) -> None:
    request(repo, "CR-0001-alpha", ["alpha.example"])
    plan_path, _ = plan(repo, sender_dns)
    assert cli(repo, "approve", "--plan", str(plan_path), "--request", "CR-0001-alpha",
               "--key", str(KEYS / "mhara.pem"), "--at", "2026-12-01T10:00:00Z").exit_code == 0  # fmt: skip
    assert apply(repo, plan_path, sender_dns).exit_code == EXIT_OK
    sealed = RecordStore(repo / "changes").ledger.read()[0].payload["policy_sha256"]
    assert record(repo, "2026-0001")["policy_sha256"] == sealed


def test_a_pending_policy_edit_does_not_hold_up_a_rollback(
    repo: Path, client_dns: NamedServer, sender_dns: NamedServer
) -> None:
    request(repo, "CR-0001-alpha", ["alpha.example"])
    plan_path, _ = plan(repo, sender_dns)
    assert cli(repo, "approve", "--plan", str(plan_path), "--request", "CR-0001-alpha",
               "--key", str(KEYS / "mhara.pem"), "--at", "2026-12-01T10:00:00Z").exit_code == 0  # fmt: skip
    assert apply(repo, plan_path, sender_dns).exit_code == EXIT_OK
    _lower_every_risk(repo)  # a policy edit waiting for a lead: never applied, never in the way
    result = cli(repo, "rollback", "2026-0001", "--key", str(KEYS / "jchen.pem"), "--reason",
                 "quarantine is catching the CRM's mail", "--at", "2026-12-01T11:00:00",
                 "--nameserver", f"127.0.0.1:{sender_dns.port}")  # fmt: skip
    assert result.exit_code == EXIT_OK, result.output
    assert record(repo, "2026-0002")["change_type"] == "Emergency rollback"
