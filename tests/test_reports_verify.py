"""Verification in the rollback window (issue 14 part 5): the reports received since a change
against the baseline before it. An anomaly is raised and nothing accepted when a legitimate source
fails; healthy reports propose acceptance with numbers, and the close seals them; without
post-change reports the record stays open ("no evidence yet"); an override close is a bend the
quarterly review lists.

The record: fabrikam.example's DMARC record moved from p=none to p=quarantine, applied
2026-12-01 10:05 UTC, rollback window 8 h. Reports: Google's daily reports, 14 days of baseline
(2026-11-17..30: 1000 messages a day from the mail platform, 100 from the CRM, 10 spoofed) and
two days after the change (2026-12-02, -03); the report of 2026-12-01 spans the change.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import Result
from clockcli import invoke_at
from portfolio import copy_example
from reports_fixtures import HEALTHY, Row, write_days
from signing import BOT, JCHEN, KEYS, MHARA
from test_records import make_record

from pipeline.apply.pending import close_finished
from pipeline.errors import EXIT_CRASH, EXIT_GATE, EXIT_INPUT, EXIT_OK, GateRefused
from pipeline.gate.identity import Signer
from pipeline.records import Outcome, RecordStore, verify
from pipeline.records.store import UntrustedSigner

APPLIED = datetime(2026, 12, 1, 10, 5, tzinfo=UTC)
WINDOW_END = "2026-12-01T18:05:00Z"
AFTER_TWO_DAYS = "2026-12-04T06:00:00Z"
BASELINE = datetime(2026, 11, 17, tzinfo=UTC)
DAY_AFTER = datetime(2026, 12, 2, tzinfo=UTC)
# After p=quarantine the spoofed mail is quarantined: expected, not an anomaly.
QUARANTINED_SPOOF: list[Row] = [
    (ip, n, ok, "none" if ok else "quarantine") for ip, n, ok, _ in HEALTHY
]


def cli(repo: Path, *args: str) -> Result:
    result = invoke_at(["--repo", str(repo), *args])
    assert result.exit_code != EXIT_CRASH, result.output
    return result


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """The example portfolio (its ledger sealed over policy/), one applied progression record."""
    root = copy_example(tmp_path / "repo")
    store = RecordStore(root / "changes")
    record = make_record(
        "2026-0001",
        client="fabrikam-labs",
        zone="fabrikam.example",
        executed_at=APPLIED,
        before=("v=DMARC1; p=none; rua=mailto:dmarc@fabrikam.example",),
        after=("v=DMARC1; p=quarantine; rua=mailto:dmarc@fabrikam.example",),
    )
    store.create(lambda rid: replace(record, id=rid), APPLIED, JCHEN)
    return root


def ingest(repo: Path, tmp_path: Path, after: list[Row] | None, days_after: int = 2) -> None:
    drop = tmp_path / "rua"
    write_days(drop, "fabrikam.example", BASELINE, 14, HEALTHY)
    # The day of the change: a report spanning it, left out of both sides.
    write_days(drop, "fabrikam.example", datetime(2026, 12, 1, tzinfo=UTC), 1, HEALTHY)
    if after is not None:
        write_days(drop, "fabrikam.example", DAY_AFTER, days_after, after)
    result = cli(repo, "reports", "ingest", str(drop))
    assert result.exit_code == EXIT_OK, result.output


def verify_json(repo: Path, at: str = AFTER_TWO_DAYS) -> tuple[int, dict[str, object]]:
    result = cli(repo, "reports", "verify", "--format", "json", "--at", at)
    (document,) = json.loads(result.stdout)
    return result.exit_code, document


def close(repo: Path, *extra: str, at: str = AFTER_TWO_DAYS, key: str = "jchen") -> Result:
    return cli(
        repo, "close", "2026-0001", "--outcome", "accepted", "--key", str(KEYS / f"{key}.pem"),
        "--at", at, *extra,
    )  # fmt: skip


def record(repo: Path) -> dict[str, object]:
    data: dict[str, object] = json.loads((repo / "changes/records/2026-0001.json").read_text())
    return data


# ---- a legitimate source failing ---------------------------------------------------------------


def test_a_legitimate_source_failing_raises_an_anomaly_and_nothing_is_accepted(
    repo: Path, tmp_path: Path
) -> None:
    # After the change the CRM (167.89.55.10, 9% of the mail, all of it passing before) fails,
    # and receivers now quarantine it.
    crm_failing = [
        ("209.85.220.41", 1000, True, "none"),
        ("167.89.55.10", 100, False, "quarantine"),
        ("203.0.113.77", 10, False, "quarantine"),
    ]
    ingest(repo, tmp_path, crm_failing)
    code, document = verify_json(repo)
    assert code == EXIT_INPUT  # a finding: a monitor alerts on it
    assert document["verdict"] == "anomaly"
    (domain,) = document["domains"]  # type: ignore[misc]
    assert domain["anomalies"] == [
        "legitimate source 167.89.55.10 newly failing: it passed 100.00% of 1400 before the "
        "change, 0.00% of 200 after",
        "the domain's DMARC pass rate fell from 99.10% to 90.09% (9.01 points; at most 2)",
        "receivers quarantined or rejected 9.91% of the mail from sources seen before the "
        "change (220 of 2220); before it 0.00% was, and 0.90% failed",
    ]
    assert domain["straddling_reports"] == 1
    assert domain["baseline"]["messages"] == 14 * 1110 and domain["baseline"]["days"] == 14
    assert domain["post"]["messages"] == 2 * 1110 and domain["post"]["days"] == 2

    text = cli(repo, "reports", "verify", "--at", AFTER_TWO_DAYS)
    assert "verdict: ANOMALY, rollback recommended:" in text.stdout
    assert "167.89.55.10" in text.stdout and "(legitimate)" in text.stdout
    assert "dmarcops rollback 2026-0001 --key YOUR-KEY --reason TEXT" in text.stdout

    # Inside the window already, the scheduled run raises it; after the window it never closes.
    store = RecordStore(repo / "changes")
    run = close_finished(store, datetime(2026, 12, 4, 6, 0, tzinfo=UTC), BOT)
    assert run.closed == [] and [rid for rid, _ in run.anomalies] == ["2026-0001"]
    assert "legitimate source 167.89.55.10 newly failing" in run.anomalies[0][1]
    refused = close(repo)
    assert refused.exit_code == EXIT_GATE
    assert "not closed as accepted on silence: the aggregate reports say anomaly" in refused.stderr
    assert not record(repo)["sealed"]
    assert not (repo / "changes" / "evidence").exists()  # the refused close left nothing behind


def test_the_scheduled_run_reports_an_anomaly_inside_the_rollback_window(
    repo: Path, tmp_path: Path
) -> None:
    ingest(
        repo,
        tmp_path,
        [("209.85.220.41", 1000, True, "none"), ("167.89.55.10", 100, False, "reject")],
    )
    # The window has not ended (a high-risk change: say 72 h): only the anomaly is reported.
    store = RecordStore(repo / "changes")
    inside = datetime(2026, 12, 1, 17, 0, tzinfo=UTC) + timedelta(days=2)
    current = store.get("2026-0001")
    assert inside > current.rollback_window.end  # (the fixture's window is 8 h)
    run = close_finished(store, datetime(2026, 12, 1, 17, 0, tzinfo=UTC), BOT)
    assert run.anomalies == []  # no post-change report yet at 17:00 on the day of the change
    run = close_finished(store, inside, BOT)
    assert [rid for rid, _ in run.anomalies] == ["2026-0001"] and run.closed == []


def test_a_spoofing_wave_from_new_sources_is_no_anomaly(repo: Path, tmp_path: Path) -> None:
    # p=quarantine, and a botnet sends 5000 forged messages a day from new addresses: they
    # authenticate for no domain, receivers quarantine them, which is what the change is for.
    wave = [*QUARANTINED_SPOOF, ("198.51.100.99", 5000, False, "quarantine")]
    ingest(repo, tmp_path, wave)
    code, document = verify_json(repo)
    assert (code, document["verdict"]) == (EXIT_OK, "accepted"), document
    (domain,) = document["domains"]  # type: ignore[misc]
    assert domain["post"]["new_unauthenticated_messages"] == 10000
    assert domain["post"]["own_messages"] == 2220


def test_receivers_quarantining_mail_from_known_sources_is_an_anomaly(
    repo: Path, tmp_path: Path
) -> None:
    # A small legitimate source (a ticketing system, 4% of the mail: not a major source) fails
    # after the change and its mail is quarantined.
    baseline = [*HEALTHY, ("192.0.2.44", 46, True, "none")]
    drop = tmp_path / "rua"
    write_days(drop, "fabrikam.example", BASELINE, 14, baseline)
    write_days(
        drop,
        "fabrikam.example",
        DAY_AFTER,
        2,
        [*QUARANTINED_SPOOF, ("192.0.2.44", 46, False, "quarantine")],
    )
    assert cli(repo, "reports", "ingest", str(drop)).exit_code == EXIT_OK
    _, document = verify_json(repo)
    (domain,) = document["domains"]  # type: ignore[misc]
    assert document["verdict"] == "anomaly"
    assert not any("192.0.2.44 newly failing" in a for a in domain["anomalies"])
    assert domain["anomalies"] == [
        "the domain's DMARC pass rate fell from 99.13% to 95.16% (3.98 points; at most 2)",
        "receivers quarantined or rejected 4.84% of the mail from sources seen before the "
        "change (112 of 2312); before it 0.00% was, and 0.87% failed",
    ]


# ---- healthy reports ----------------------------------------------------------------------------


def test_healthy_reports_propose_acceptance_and_the_close_seals_the_numbers(
    repo: Path, tmp_path: Path
) -> None:
    ingest(repo, tmp_path, QUARANTINED_SPOOF)
    code, document = verify_json(repo)
    assert (code, document["verdict"]) == (EXIT_OK, "accepted")
    assert document["summary"] == (
        "fabrikam.example: 2220 messages over 2 day(s), 99.10% DMARC pass (before 99.10%)"
    )
    text = cli(repo, "reports", "verify", "--at", AFTER_TWO_DAYS).stdout
    assert "verdict: accepted proposed: fabrikam.example: 2220 messages" in text

    closed = close(repo)
    assert closed.exit_code == EXIT_OK, closed.output
    assert "report evidence: accepted as of 2026-12-04 06:00 UTC" in closed.stdout
    sealed = record(repo)
    check = sealed["report_verification"]
    assert check == {
        "sha256": check["sha256"],  # type: ignore[index]
        "verdict": "accepted",
        "as_of": "2026-12-04T06:00:00Z",
        "baseline_messages": 15540,
        "baseline_dmarc_pass": 15400,
        "post_messages": 2220,
        "post_dmarc_pass": 2200,
        "post_days": 2,
        "summary": document["summary"],
    }
    assert "closed_without_evidence" not in sealed
    # The evidence is the comparison computed from the store, sealed by hash: the file is the
    # same document `reports verify` showed at that moment.
    path = repo / "changes" / "evidence" / f"verification-{check['sha256']}.json"  # type: ignore[index]
    assert hashlib.sha256(path.read_bytes()).hexdigest() == check["sha256"]  # type: ignore[index]
    assert json.loads(path.read_bytes()) == document
    markdown = (repo / "changes/records/2026-0001.md").read_text()
    assert "Report evidence: accepted as of 2026-12-04 06:00 UTC" in markdown
    assert verify(repo / "changes", datetime(2026, 12, 4, 6, 0, tzinfo=UTC)) == []
    # The sealed evidence cannot be edited unseen.
    path.write_text(path.read_text().replace('"dmarc_pass": 2200', '"dmarc_pass": 2220'))
    problems = verify(repo / "changes", datetime(2026, 12, 4, 6, 0, tzinfo=UTC))
    assert [p.message for p in problems] == [
        f"its report verification changes/evidence/verification-{check['sha256']}.json does not "  # type: ignore[index]
        "hash to its name (edited)"
    ]


def test_the_scheduled_run_closes_on_healthy_reports_with_the_automations_key(
    repo: Path, tmp_path: Path
) -> None:
    ingest(repo, tmp_path, QUARANTINED_SPOOF)
    store = RecordStore(repo / "changes")
    run = close_finished(store, datetime(2026, 12, 4, 6, 0, tzinfo=UTC), BOT)
    assert run.closed == [
        (
            "2026-0001",
            "fabrikam.example: 2220 messages over 2 day(s), 99.10% DMARC pass (before 99.10%)",
        )
    ]
    sealed = record(repo)
    assert (sealed["closed_by"], sealed["outcome"]) == ("dmarcops-bot", "accepted")
    assert sealed["report_verification"]["post_messages"] == 2220  # type: ignore[index]


# ---- no evidence ---------------------------------------------------------------------------------


def test_without_post_change_reports_the_record_stays_open(repo: Path, tmp_path: Path) -> None:
    ingest(repo, tmp_path, None)
    code, document = verify_json(repo)
    assert (code, document["verdict"]) == (EXIT_OK, "no-evidence")
    assert document["summary"] == "fabrikam.example: no evidence yet: no post-change reports"
    text = cli(repo, "reports", "verify", "--at", AFTER_TWO_DAYS).stdout
    assert "verdict: stays open, fabrikam.example: no evidence yet: no post-change reports" in text
    store = RecordStore(repo / "changes")
    run = close_finished(store, datetime(2026, 12, 4, 6, 0, tzinfo=UTC), BOT)
    assert run.closed == [] and run.anomalies == []
    assert run.waiting == [("2026-0001", document["summary"])]
    assert not record(repo)["sealed"]
    refused = close(repo)
    assert refused.exit_code == EXIT_GATE
    assert "no evidence yet: no post-change reports" in refused.stderr


def test_too_little_or_collapsed_volume_is_no_evidence(repo: Path, tmp_path: Path) -> None:
    # Two days at a third of the usual volume: reports arrive, but the mail is not there.
    thin = [(ip, n // 3, ok, d) for ip, n, ok, d in QUARANTINED_SPOOF]
    ingest(repo, tmp_path, thin)
    _, document = verify_json(repo)
    assert document["verdict"] == "no-evidence"
    assert document["summary"] == (
        "fabrikam.example: the volume fell to 33% of the baseline's messages per day (369 "
        "against 1110; needs 50%)"
    )


def test_a_missing_store_is_no_evidence_not_an_error(repo: Path) -> None:
    code, document = verify_json(repo)
    assert (code, document["verdict"]) == (EXIT_OK, "no-evidence")
    assert document["problem"] == "no report store (run `dmarcops reports ingest` first)"


# ---- the override, and the quarterly review --------------------------------------------------------


def test_an_override_close_is_signed_recorded_and_listed_by_the_quarterly_review(
    repo: Path, tmp_path: Path
) -> None:
    ingest(repo, tmp_path, None)
    reason = "the client's rua mailbox was full all week; delivery checked with their IT"
    closed = close(repo, "--without-evidence", reason)
    assert closed.exit_code == EXIT_OK, closed.output
    assert f"closed without report evidence: {reason}" in closed.stdout
    sealed = record(repo)
    assert sealed["closed_without_evidence"] == reason
    assert sealed["closed_by"] == "jchen"
    # What the reports said is sealed all the same.
    assert sealed["report_verification"]["verdict"] == "no-evidence"  # type: ignore[index]
    # The closer signed the ledger line that seals it (reason included, in the record hash).
    last = json.loads((repo / "changes/ledger.jsonl").read_text().splitlines()[-1])
    assert (last["event"], last["actor"]) == ("sealed", "jchen")
    assert verify(repo / "changes", datetime(2026, 12, 4, 6, 0, tzinfo=UTC)) == []

    review = cli(repo, "audit", "quarter", "2026Q4", "--format", "json", "--at", "2027-01-02")
    (bend,) = [
        b for b in json.loads(review.stdout)["bends"] if b["kind"] == "accepted without evidence"
    ]
    assert bend == {
        "kind": "accepted without evidence",
        "record": "2026-0001",
        "client": "fabrikam-labs",
        "analyst": "jchen",
        "detail": f"closed as accepted 2026-12-04T06:00:00Z by jchen without report evidence: "
        f"{reason}; the reports said no-evidence: fabrikam.example: no evidence yet: no "
        "post-change reports",
    }
    markdown = cli(repo, "audit", "quarter", "2026Q4", "--at", "2027-01-02").stdout
    assert "### Closed as accepted without report evidence: 1" in markdown


def test_the_automation_never_overrides_and_a_reason_is_for_accepted_only(repo: Path) -> None:
    store = RecordStore(repo / "changes")
    at = datetime(2026, 12, 4, 6, 0, tzinfo=UTC)
    with pytest.raises(UntrustedSigner, match="automation's key"):
        store.seal("2026-0001", Outcome.ACCEPTED, at, BOT, without_evidence="nobody looked")
    with pytest.raises(GateRefused, match="not closed as accepted on silence"):
        store.seal("2026-0001", Outcome.ACCEPTED, at, MHARA)
    with pytest.raises(Exception, match="for --outcome accepted only"):
        store.seal("2026-0001", Outcome.ROLLED_BACK, at, MHARA, without_evidence="x")
    assert not store.get("2026-0001").sealed
    # Another outcome needs no evidence: a rollback is closed as such.
    rolled: Signer = MHARA
    assert store.seal("2026-0001", Outcome.ROLLED_BACK, at, rolled).sealed


def test_the_scheduled_workflow_ingests_the_reports_and_verifies() -> None:
    import yaml
    from portfolio import REPO

    workflow = yaml.safe_load((REPO / ".github/workflows/scheduled.yml").read_text())
    steps = workflow["jobs"]["scheduled"]["steps"]
    runs = [step.get("run", "") for step in steps]
    ingest = next(i for i, run in enumerate(runs) if "dmarcops reports ingest" in run)
    scheduled = next(i for i, run in enumerate(runs) if "dmarcops github scheduled" in run)
    verify_step = next(i for i, run in enumerate(runs) if "dmarcops reports verify" in run)
    commit = next(i for i, run in enumerate(runs) if "git push" in run)
    assert ingest < scheduled < verify_step < commit
    # The prefix comes from a variable through the environment, never into the script's text.
    assert steps[ingest]["if"] == "${{ vars.DMARCOPS_REPORTS != '' }}"
    assert '"$DMARCOPS_REPORTS"' in runs[ingest] and "${{" not in runs[ingest]
    # An anomaly fails the job, and the records are committed all the same.
    assert steps[commit]["if"] == "${{ !cancelled() }}"
