"""Issue 13 items 5 and 7 on the sandbox: platform and dkim-switch requests through the one gate
(a switch to an unpublished selector refused, to a published one accepted), self-serve clients
refused by the gate with its rule code, and "outside" clients labelled and in the quarter report."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner, Result
from portfolio import REPO, copy_example, write
from signing import reseal, sign_as_author

from pipeline.cli import main

KEYS = REPO / "tests" / "keys"
TUESDAY = "2026-12-08T09:00:00"  # fabrikam's window: Tue-Thu 09:00-12:00 Europe/Berlin
RATIONALE = (
    "Annual rotation: s2026 was published on 2026-12-01 and has been served for a week; the "
    "provider now signs with s2026 so that s2025 can be retired on schedule."
)


def cli(repo: Path, *args: str) -> Result:
    return CliRunner().invoke(main, ["--repo", str(repo), *args])


def record(repo: Path, rid: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((repo / f"changes/records/{rid}.json").read_text())
    return data


def request(repo: Path, rid: str, data: dict[str, Any]) -> None:
    write(repo / f"changes/requests/{rid}.yaml", yaml.safe_dump(data, sort_keys=False))
    sign_as_author(repo, rid)


def dkim_switch(repo: Path, rid: str = "CR-0009-fabrikam-labs", new: str = "s2026") -> str:
    request(
        repo,
        rid,
        {
            "type": "dkim-switch",
            "client": "fabrikam-labs",
            "covers": ["fabrikam.example"],
            "author": "jchen",
            "rationale": RATIONALE,
            "details": {
                "platform": "Google Workspace",
                "current_selector": "s2025",
                "new_selector": new,
            },
            "steps": ["Admin console > Gmail > Authenticate email: select " + new],
            "checklist": [
                f"A test mail carries DKIM-Signature s={new} and passes DKIM",
                "The next day's aggregate reports show DKIM pass for Google's sources",
            ],
        },
    )
    return rid


def publish_s2026(repo: Path) -> None:
    """What the s2026 rotation's apply did: the selector is in the sandbox's live zone."""
    zone = (repo / "zones/fabrikam-labs/fabrikam.example.yaml").read_text()
    block = re.search(r"s2026\._domainkey:\n(?:  .*\n)+", zone)
    assert block is not None
    live = repo / "sandbox/live/fabrikam.example.yaml"
    live.write_text(live.read_text() + block.group(0))


def approve(repo: Path, rid: str, who: str = "mhara", at: str = TUESDAY) -> Result:
    return cli(repo, "approve", "--request", rid, "--key", str(KEYS / f"{who}.pem"), "--at", at)


def manual_apply(repo: Path, rid: str, at: str = "2026-12-08T09:10:00") -> Result:
    return cli(repo, "manual", "apply", rid, "--key", str(KEYS / "jchen.pem"), "--at", at)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return copy_example(tmp_path / "repo")


def test_a_switch_to_an_unpublished_selector_is_refused(repo: Path) -> None:
    rid = dkim_switch(repo)
    shown = cli(repo, "manual", "show", rid, "--at", TUESDAY)
    assert shown.exit_code == 2
    assert "s2026._domainkey.fabrikam.example: NOT USABLE" in shown.stdout
    refused = approve(repo, rid)
    assert refused.exit_code == 2
    assert "[dkim-switch-unpublished]" in refused.stderr
    applied = manual_apply(repo, rid)
    assert applied.exit_code == 2
    assert "[dkim-switch-unpublished]" in applied.stderr
    assert "do not carry out its steps" in applied.stderr
    assert not (repo / "changes/records").exists()


def test_a_selector_with_a_revoked_key_is_not_published(repo: Path) -> None:
    live = repo / "sandbox/live/fabrikam.example.yaml"
    live.write_text(live.read_text() + "s2026._domainkey:\n  type: TXT\n  value: v=DKIM1\\; p=\n")
    refused = approve(repo, dkim_switch(repo))
    assert refused.exit_code == 2
    assert "its p= is empty: the key is revoked" in refused.stderr


def test_a_switch_to_a_published_selector_runs_through_the_lifecycle(repo: Path) -> None:
    publish_s2026(repo)
    rid = dkim_switch(repo)
    shown = cli(repo, "manual", "show", rid, "--at", TUESDAY)
    assert "s2026._domainkey.fabrikam.example: published and valid" in shown.stdout
    assert "[dkim-switch-on-schedule:" in shown.stdout  # the profile schedules s2026
    approved = approve(repo, rid)
    assert approved.exit_code == 0, approved.output
    early = manual_apply(repo, rid, "2026-12-08T07:00:00")  # before the window
    assert early.exit_code == 2 and "[outside-window]" in early.stderr
    applied = manual_apply(repo, rid)
    assert applied.exit_code == 0, applied.output
    assert "change record 2026-0001" in applied.stdout
    rec = record(repo, "2026-0001")
    assert rec["change_type"] == "DKIM selector switch"
    assert rec["request_id"] == rid and rec["executed_by"] == "jchen"
    assert rec["items"][0]["before"] == ["s2025"] and rec["items"][0]["after"] == ["s2026"]
    assert [c["status"] for c in rec["manual"]["checklist"]] == ["pending", "pending"]
    again = manual_apply(repo, rid)
    assert again.exit_code == 2 and "already executed" in again.stderr

    key = str(KEYS / "jchen.pem")
    one = cli(repo, "manual", "verify", "2026-0001", "--pass", "1", "--key", key, "--at",
              "2026-12-08T09:30:00", "--note", "s=s2026 dkim=pass")  # fmt: skip
    assert one.exit_code == 0, one.output
    assert "every check held" not in one.stdout
    two = cli(repo, "manual", "verify", "2026-0001", "--pass", "2", "--key", key, "--at",
              "2026-12-09T09:30:00")  # fmt: skip
    assert "every check held" in two.stdout
    rec = record(repo, "2026-0001")
    assert rec["manual"]["checklist"][0]["note"] == "s=s2026 dkim=pass"
    assert rec["zone_results"] == [
        {"zone": "fabrikam.example", "status": "applied", "applied": 1, "error": ""}
    ]
    closed = cli(repo, "close", "2026-0001", "--outcome", "accepted", "--key", key, "--at",
                 "2026-12-09T10:00:00")  # fmt: skip
    assert closed.exit_code == 0, closed.output
    assert cli(repo, "audit", "verify", "--at", "2026-12-09T10:00:00").exit_code == 0
    shown_record = cli(repo, "records", "show", "2026-0001")
    assert "Manual change: Google Workspace: DKIM signing selector (dkim-switch)" in (
        shown_record.stdout
    )


PLATFORM = "CR-0010-fabrikam-labs"


def platform_change(repo: Path, rid: str = PLATFORM) -> str:
    request(
        repo,
        rid,
        {
            "type": "platform",
            "client": "fabrikam-labs",
            "covers": ["fabrikam.example"],
            "author": "jchen",
            "rationale": "Microsoft 365 signs fabrikam.example mail with its onmicrosoft.com "
            "domain today, so DKIM does not align; custom-domain signing fixes 18% of failures.",
            "details": {
                "platform": "Microsoft 365",
                "setting": "DKIM signing for fabrikam.example",
                "current_value": "disabled",
                "new_value": "enabled",
            },
            "steps": ["Defender portal > Email authentication > DKIM > fabrikam.example > Enable"],
            "checklist": ["A test mail from Outlook passes DKIM as d=fabrikam.example"],
        },
    )
    return rid


def test_a_platform_change_needs_a_peer(repo: Path) -> None:
    rid = platform_change(repo)
    shown = cli(repo, "manual", "show", rid, "--at", TUESDAY)
    assert "risk: MEDIUM" in shown.stdout and "[platform-setting:" in shown.stdout
    assert "missing: peer review" in shown.stdout
    own = approve(repo, rid, who="jchen")
    assert own.exit_code == 2 and "[author-approves-own]" in own.stderr
    assert manual_apply(repo, rid).exit_code == 2
    assert approve(repo, rid, who="mhara").exit_code == 0
    applied = manual_apply(repo, rid)
    assert applied.exit_code == 0, applied.output
    rec = record(repo, "2026-0001")
    assert rec["change_type"] == "Platform change"
    assert {a["role"]: a["who"] for a in rec["approvals"]} == {"analyst": "jchen", "peer": "mhara"}
    # A platform change never claims a DNS plan item: the plan's coverage is as before.
    planned = cli(repo, "plan", "--at", "2026-11-28")
    assert planned.exit_code == 0, planned.output


def test_an_edited_request_needs_a_new_approval(repo: Path) -> None:
    rid = platform_change(repo)
    assert approve(repo, rid).exit_code == 0
    path = repo / f"changes/requests/{rid}.yaml"
    data = yaml.safe_load(path.read_text())
    data["steps"].append("Also enable it for the fabrikam.dev alias")
    request(repo, rid, data)  # signed again by its author: the content hash moved
    applied = manual_apply(repo, rid)
    assert applied.exit_code == 2 and "peer review" in applied.stderr
    assert approve(repo, rid).exit_code == 0
    assert manual_apply(repo, rid).exit_code == 0


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"covers": ["fabrikam.example _dmarc TXT"]}, "covers domains, not records"),
        ({"type": "other", "steps": ["x y z"]}, "steps belong to platform and dkim-switch"),
    ],
)
def test_manual_requests_are_checked(repo: Path, data: dict[str, Any], message: str) -> None:
    base = {
        "type": "dkim-switch",
        "client": "fabrikam-labs",
        "covers": ["fabrikam.example"],
        "author": "jchen",
        "rationale": RATIONALE,
        "details": {"platform": "Google", "current_selector": "s2025", "new_selector": "s2026"},
        "steps": ["Switch the selector"],
        "checklist": ["A test mail passes"],
    }
    write(repo / "changes/requests/CR-0011-fabrikam-labs.yaml", json.dumps({**base, **data}))
    checked = cli(repo, "requests", "check")
    assert checked.exit_code == 1
    assert message in checked.stderr


# --- service tiers --------------------------------------------------------------------------


def set_profile(repo: Path, client: str, extra: str) -> None:
    path = repo / f"policy/clients/{client}.yaml"
    path.write_text(path.read_text() + extra)
    reseal(repo)


def test_a_self_serve_client_gets_recommendations_and_apply_is_refused(repo: Path) -> None:
    set_profile(repo, "fabrikam-labs", "tier: self-serve\n")
    planned = cli(repo, "plan", "--client", "fabrikam-labs", "--at", "2026-12-01T08:30:00Z",
                  "--out", str(repo / "plan.json"))  # fmt: skip
    assert planned.exit_code == 0, planned.output  # no request needed for advice
    assert "request: none needed: a recommendation only (self-serve tier" in planned.stdout
    plan = json.loads((repo / "plan.json").read_text())
    assert {c["recommendation_only"] for c in plan["changes"]} == {True}

    advice = cli(repo, "recommend", "--client", "fabrikam-labs", "--at", "2026-12-01T08:30:00Z")
    assert advice.exit_code == 0, advice.output
    assert "# DNS recommendations for Fabrikam Labs" in advice.stdout
    assert "(risk: medium)" in advice.stdout and "dmarc.p none->quarantine" in advice.stdout
    as_json = cli(repo, "recommend", "--format", "json", "--at", "2026-12-01T08:30:00Z")
    (client,) = json.loads(as_json.stdout)["clients"]
    assert client["client"] == "fabrikam-labs" and len(client["recommendations"]) == 3
    managed = cli(repo, "recommend", "--client", "contoso-retail")
    assert managed.exit_code == 1 and "not on the self-serve tier" in managed.stderr

    # The one gate refuses, with its rule code, whether or not a request covers the change.
    refused = cli(repo, "approve", "--plan", str(repo / "plan.json"), "--request",
                  "CR-0002-fabrikam-labs", "--key", str(KEYS / "mhara.pem"),
                  "--at", "2026-12-01T08:40:00")  # fmt: skip
    assert refused.exit_code == 2 and "[self-serve-tier]" in refused.stderr
    applied = cli(repo, "apply", "--plan", str(repo / "plan.json"), "--key",
                  str(KEYS / "jchen.pem"), "--at", "2026-12-01T08:45:00")  # fmt: skip
    assert applied.exit_code == 2 and "[self-serve-tier]" in applied.stderr
    assert "nothing was changed" in applied.stderr
    assert not (repo / "changes/records").exists()
    # Drift still runs for a self-serve client.
    assert cli(repo, "drift", "--client", "fabrikam-labs").exit_code == 0


def test_a_self_serve_clients_manual_change_is_refused_too(repo: Path) -> None:
    set_profile(repo, "fabrikam-labs", "tier: self-serve\n")
    publish_s2026(repo)
    rid = dkim_switch(repo)
    refused = approve(repo, rid)
    assert refused.exit_code == 2 and "[self-serve-tier]" in refused.stderr


def test_outside_change_management_needs_the_direction(repo: Path) -> None:
    path = repo / "policy/clients/fabrikam-labs.yaml"
    path.write_text(path.read_text() + "change_management: outside\n")
    checked = cli(repo, "validate")
    assert checked.exit_code == 1
    assert "change_management_direction" in checked.stderr


def test_outside_clients_records_are_labelled_and_in_the_quarter(repo: Path) -> None:
    set_profile(
        repo,
        "fabrikam-labs",
        "change_management: outside\n"
        'change_management_direction: "<dir-2026-11@fabrikam.example> (CTO, 2026-11-02)"\n',
    )
    plan = repo / "plan.json"
    assert cli(repo, "plan", "--client", "fabrikam-labs", "--at", "2026-12-01T08:30:00Z",
               "--out", str(plan)).exit_code == 0  # fmt: skip
    assert cli(repo, "approve", "--plan", str(plan), "--request", "CR-0002-fabrikam-labs",
               "--key", str(KEYS / "mhara.pem"), "--at", "2026-12-01T08:40:00").exit_code == 0  # fmt: skip
    applied = cli(repo, "apply", "--plan", str(plan), "--key", str(KEYS / "jchen.pem"),
                  "--at", "2026-12-01T08:45:00")  # fmt: skip
    assert applied.exit_code == 0, applied.output
    label = (
        "outside standard change management at client's direction "
        "(direction: <dir-2026-11@fabrikam.example> (CTO, 2026-11-02))"
    )
    assert {
        record(repo, r)["change_management"] for r in ("2026-0001", "2026-0002", "2026-0003")
    } == {label}
    shown = cli(repo, "records", "show", "2026-0002")
    assert f"Change management: {label}" in shown.stdout
    quarter = cli(repo, "audit", "quarter", "2026Q4", "--format", "json", "--at", "2027-01-05")
    assert quarter.exit_code == 0, quarter.output
    bends = [
        b for b in json.loads(quarter.stdout)["bends"] if b["kind"] == "outside change management"
    ]
    assert {b["record"] for b in bends} == {"2026-0001", "2026-0002", "2026-0003"}
    text = cli(repo, "audit", "quarter", "2026Q4", "--at", "2027-01-05")
    assert "### Outside standard change management at the client's direction: 3" in text.stdout
