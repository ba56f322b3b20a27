"""The Friday rule (the seed's "rollback window of zero" change: executed at 5pm Friday with no one
watching): the one gate refuses a change whose rollback window ends outside staffed hours
(policy/staffing.yaml) unless the request names the client's on-call owner, and the change record
then names them. End to end on the example's sandbox, with the system clock set as the other
tests set it (tests/clockcli.py).

Fabrikam's calendar gets a Friday-morning window for these tests; the example's staffed hours end
at 13:00 on Fridays (Berlin, the client's time). Only CR-0001 (the SendGrid include, low risk,
2 h rollback window) is left to apply: at Friday 11:30 its rollback window ends at 13:30.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from clockcli import invoke_at
from portfolio import copy_example
from signing import KEYS, reseal, sign_as_author

from pipeline.errors import EXIT_GATE
from pipeline.records.store import RecordStore

FRIDAY = "2026-12-04T10:30:00Z"  # 11:30 in Berlin
REQUEST = "changes/requests/CR-0001-fabrikam-labs.yaml"


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = copy_example(tmp_path)
    zone = root / "zones/fabrikam-labs/fabrikam.example.yaml"
    desired = yaml.safe_load(zone.read_text())
    live = yaml.safe_load((root / "sandbox/live/fabrikam.example.yaml").read_text())
    desired["_dmarc"] = live["_dmarc"]  # only the SPF include is left to change
    del desired["s2026._domainkey"]
    zone.write_text(yaml.safe_dump(desired), encoding="utf-8")
    for rid in ("CR-0002-fabrikam-labs", "CR-0003-fabrikam-labs"):
        for suffix in (".yaml", ".sig.json"):
            (root / "changes/requests" / f"{rid}{suffix}").unlink()
    calendar = root / "policy/calendars/fabrikam-labs.yaml"
    calendar.write_text(
        calendar.read_text().replace(
            "windows:\n",
            'windows:\n  - days: [fri]\n    start: "10:00"\n    end: "12:00"\n',
        ),
        encoding="utf-8",
    )
    reseal(root)
    return root


def name_on_call(repo: Path, who: str) -> None:
    path = repo / REQUEST
    path.write_text(path.read_text() + f"on_call: {who}\n", encoding="utf-8")
    sign_as_author(repo, "CR-0001-fabrikam-labs")


def plan_and_apply(repo: Path) -> object:
    plan = invoke_at(
        [
            "--repo",
            str(repo),
            "plan",
            "--client",
            "fabrikam-labs",
            "--out",
            str(repo / "plan.json"),
            "--at",
            FRIDAY,
        ]
    )
    assert plan.exit_code == 0, plan.output
    changes = json.loads((repo / "plan.json").read_text())["changes"]
    assert [(c["name"], c["risk"]) for c in changes] == [("", "low")]
    return invoke_at(
        [
            "--repo",
            str(repo),
            "apply",
            "--plan",
            str(repo / "plan.json"),
            "--key",
            str(KEYS / "jchen.pem"),
            "--at",
            FRIDAY,
        ]
    )


def test_a_rollback_window_ending_on_friday_afternoon_is_refused(repo: Path) -> None:
    result = plan_and_apply(repo)
    assert result.exit_code == EXIT_GATE, result.output  # type: ignore[attr-defined]
    output = result.output  # type: ignore[attr-defined]
    assert (
        "the 2 h rollback window would end outside staffed hours (Fri 2026-12-04 13:30 "
        "Europe/Berlin; staffed that day: 07:00-13:00)"
    ) in output
    assert "Unless the client's on-call owner covers it" in output
    assert "[unstaffed]" in output
    assert RecordStore(repo / "changes").all() == []


def test_the_on_call_owner_covers_it_and_the_record_names_them(repo: Path) -> None:
    name_on_call(repo, "jchen")  # Fabrikam's calendar: jchen is on call 2026-11-30..12-06
    result = plan_and_apply(repo)
    assert result.exit_code == 0, result.output  # type: ignore[attr-defined]
    (record,) = RecordStore(repo / "changes").all()
    assert record.on_call == "jchen"
    assert record.to_json()["on_call"] == "jchen"
    assert "On call: jchen (covers the rollback window outside staffed hours)" in (
        record.render_text()
    )
    # The quarterly review lists the cover as a bend of the policy.
    review = invoke_at(
        ["--repo", str(repo), "audit", "quarter", "2026Q4", "--at", "2027-01-05T09:00:00Z"]
    )
    assert review.exit_code == 0, review.output
    assert "### On-call covers (rollback windows ending outside staffed hours): 1" in review.output
    assert "jchen covered a rollback window ending outside staffed hours" in review.output


@pytest.mark.parametrize(
    ("who", "why"),
    [
        (
            "sokafor",
            "sokafor is not fabrikam-labs's on-call owner on 2026-12-04, when the rollback window "
            "ends (the calendar names jchen that day)",
        ),
        ("dmarcops-bot", "'dmarcops-bot', named as on-call owner, is not an analyst on the roster"),
        ("nobody", "'nobody', named as on-call owner, is not an analyst on the roster"),
    ],
)
def test_only_the_calendars_on_call_analyst_covers(repo: Path, who: str, why: str) -> None:
    name_on_call(repo, who)
    result = plan_and_apply(repo)
    assert result.exit_code == EXIT_GATE, result.output  # type: ignore[attr-defined]
    assert f"{why} [on-call]" in result.output  # type: ignore[attr-defined]
    assert RecordStore(repo / "changes").all() == []


def test_a_record_without_cover_does_not_name_an_on_call_owner(repo: Path) -> None:
    # Tuesday 09:30 Berlin: the 2 h rollback window ends at 11:30, staffed; the request names an
    # on-call owner all the same, and the record does not claim a cover that was not needed.
    name_on_call(repo, "jchen")
    path = repo / "plan.json"
    tuesday = "2026-12-01T08:30:00Z"
    plan = invoke_at(
        [
            "--repo",
            str(repo),
            "plan",
            "--client",
            "fabrikam-labs",
            "--out",
            str(path),
            "--at",
            tuesday,
        ]
    )
    assert plan.exit_code == 0, plan.output
    applied = invoke_at(
        [
            "--repo",
            str(repo),
            "apply",
            "--plan",
            str(path),
            "--key",
            str(KEYS / "jchen.pem"),
            "--at",
            tuesday,
        ]
    )
    assert applied.exit_code == 0, applied.output
    (record,) = RecordStore(repo / "changes").all()
    assert record.on_call == ""
    assert "on_call" not in record.to_json()
