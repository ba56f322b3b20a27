"""`dmarcops audit sample` and `audit attest` (issue 12, item 2): a reproducible, weighted pick and
a signed finding that binds the record it is about."""

from __future__ import annotations

import json
import re
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from signing import BOT, JCHEN, KEYS, MHARA, genesis
from test_records import cli, make_record

from pipeline.errors import EXIT_GATE, EXIT_INPUT
from pipeline.model import RiskLevel
from pipeline.records import Emergency, Outcome, RecordStore, verify
from pipeline.records.sample import pick
from pipeline.records.store import UntrustedSigner

START = datetime(2026, 7, 7, 9, 30, tzinfo=UTC)
RISKS = [RiskLevel.LOW, RiskLevel.MEDIUM, RiskLevel.HIGH]


@pytest.fixture
def history(tmp_path: Path) -> RecordStore:
    """30 sealed records: risks in turn, every 7th an emergency (reviewed by mhara)."""
    store = genesis(tmp_path)
    for n in range(30):
        at = START + timedelta(days=n)
        emergency = Emergency("bouncing", at + timedelta(hours=24)) if n % 7 == 0 else None
        record = store.create(
            lambda rid, at=at, n=n, e=emergency: make_record(
                rid, executed_at=at, risk=RISKS[n % 3], emergency=e, peer="" if e else "mhara"
            ),
            at,
            JCHEN,
        )
        if emergency is not None:
            store.review(record.id, MHARA, "justified", at + timedelta(hours=2))
    for n, record in enumerate(store.all()):  # closed after the last change, in order
        store.seal(
            record.id,
            Outcome.ACCEPTED,
            START + timedelta(days=40, minutes=n),
            MHARA,
            without_evidence="no reports in this test",
        )
    return store


def _ids(output: str) -> list[str]:
    return re.findall(r"^  (\d{4}-\d{4}) ", output, re.MULTILINE)


def test_the_same_seed_picks_the_same_records(history: RecordStore) -> None:
    root = history.changes_dir.parent
    first = cli(root, "audit", "sample", "--n", "10", "--seed", "2026Q3-audit")
    again = cli(root, "audit", "sample", "--n", "10", "--seed", "2026Q3-audit")
    other = cli(root, "audit", "sample", "--n", "10", "--seed", "another")
    assert first.exit_code == 0, first.output
    assert len(_ids(first.stdout)) == 10 and len(set(_ids(first.stdout))) == 10
    assert _ids(first.stdout) == _ids(again.stdout)
    assert _ids(first.stdout) != _ids(other.stdout)
    assert first.stdout.startswith("sample '2026Q3-audit': 10 of 30 sealed record(s)\n")


def test_the_draw_leans_towards_high_risk_and_emergencies(history: RecordStore) -> None:
    records = history.all()
    drawn: Counter[str] = Counter()
    for seed in range(400):
        for picked in pick(records, 5, str(seed)):
            drawn[picked.record.id] += 1
    by_id = {r.id: r for r in records}
    mean = {
        kind: sum(drawn[r.id] for r in group) / len(group)
        for kind, group in {
            "low": [r for r in records if r.risk is RiskLevel.LOW and not r.emergency],
            "high": [r for r in records if r.risk is RiskLevel.HIGH and not r.emergency],
            "emergency": [r for r in records if r.emergency],
        }.items()
    }
    assert mean["high"] > 2 * mean["low"], mean
    assert mean["emergency"] > mean["low"] * 2, mean
    assert set(drawn) <= set(by_id)


def test_an_attestation_is_signed_and_binds_the_record(history: RecordStore) -> None:
    root = history.changes_dir.parent
    result = cli(root, "audit", "attest", "2026-0004", "--key", str(KEYS / "sokafor.pem"),
                 "--verdict", "ok", "--notes", "Approvals and window match the plan",
                 "--sample", "2026Q3-audit")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("attested: 2026-0004 ok by sokafor (ledger line ")
    (entry,) = history.attestations()
    assert entry.actor == "sokafor"
    assert entry.payload["record"] == "2026-0004"
    assert entry.payload["record_sha256"] == history.get("2026-0004").sha256()
    assert verify(history.changes_dir, START + timedelta(days=60)) == []  # genuine: no problem
    # Someone edits the attestation's verdict afterwards: the line's hash and signature break.
    lines = history.ledger.path.read_text().splitlines()
    data = json.loads(lines[-1])
    data["payload"]["verdict"] = "finding"
    lines[-1] = json.dumps(data, sort_keys=True, separators=(",", ":"))
    history.ledger.path.write_text("\n".join(lines) + "\n")
    problems = [str(p) for p in verify(history.changes_dir, START + timedelta(days=60))]
    assert any("entry_sha256 does not match" in p for p in problems), problems


def test_an_attestation_of_a_version_the_record_never_had_is_named(history: RecordStore) -> None:
    from pipeline.records.ledger import LedgerEntry, LedgerEvent

    entries = history.ledger.read()
    forged = LedgerEntry.make(
        seq=entries[-1].seq + 1,
        event=LedgerEvent.ATTESTED,
        signer=JCHEN,
        at=entries[-1].at,
        prev=entries[-1].entry_sha256,
        payload={"record": "2026-0004", "record_sha256": "0" * 64, "verdict": "ok",
                 "notes": "fine", "sample": ""},
    )  # fmt: skip
    history.ledger.path.write_text(history.ledger.path.read_text() + forged.to_line())
    problems = [str(p) for p in verify(history.changes_dir, START + timedelta(days=60))]
    assert any("attests a version of the record it never had" in p for p in problems), problems


def test_the_automation_cannot_attest_and_bad_input_is_refused(history: RecordStore) -> None:
    with pytest.raises(UntrustedSigner, match="automation"):
        history.attest("2026-0004", "ok", "fine", START, BOT)
    root = history.changes_dir.parent
    unknown = cli(root, "audit", "attest", "2026-0999", "--key", str(KEYS / "sokafor.pem"),
                  "--verdict", "ok", "--notes", "x")  # fmt: skip
    assert unknown.exit_code == EXIT_INPUT and "no change record 2026-0999" in unknown.output
    empty = cli(root, "audit", "attest", "2026-0004", "--key", str(KEYS / "sokafor.pem"),
                "--verdict", "ok", "--notes", "  ")  # fmt: skip
    assert empty.exit_code == EXIT_INPUT and "needs notes" in empty.output
    history.json_path("2026-0004").write_text("{}")  # the record was edited: nothing attested
    edited = cli(root, "audit", "attest", "2026-0004", "--key", str(KEYS / "sokafor.pem"),
                 "--verdict", "ok", "--notes", "fine")  # fmt: skip
    assert edited.exit_code == EXIT_GATE and "nothing attested" in edited.output
    assert history.attestations() == []
