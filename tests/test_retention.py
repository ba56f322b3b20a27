"""`dmarcops records retention` (issue 12, item 4): records past their client's retention are
listed, purged by a lead with a signed tombstone, and `audit verify` still passes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from clockcli import invoke_at
from signing import JCHEN, KEYS, MHARA, genesis, reseal
from test_records import make_record

from pipeline.errors import EXIT_GATE
from pipeline.records import Outcome, RecordStore, verify
from pipeline.records.ledger import LedgerEvent

START = datetime(2026, 7, 7, 9, 30, tzinfo=UTC)
LATER = "2030-01-01T12:00:00Z"  # 3.5 years on


@pytest.fixture
def store(tmp_path: Path) -> RecordStore:
    store = genesis(tmp_path / "repo")
    root = store.changes_dir.parent
    profile = root / "policy" / "clients" / "fabrikam-labs.yaml"
    profile.write_text(profile.read_text() + "retention_years: 3\n")
    reseal(root)
    specs = [
        ("fabrikam-labs", "fabrikam.example"),  # 0001: 3 years, sealed: expires
        ("northwind-health", "nwh-patients.example"),  # 0002: regulated: kept indefinitely
        ("contoso-retail", "contoso-retail.example"),  # 0003: no retention_years: kept
        ("fabrikam-labs", "fabrikam.example"),  # 0004: 3 years, never sealed: kept
    ]
    for n, (client, zone) in enumerate(specs):
        at = START + timedelta(days=n)
        store.create(lambda rid, c=client, z=zone, a=at: make_record(rid, client=c, zone=z,
                                                                    executed_at=a), at, JCHEN)  # fmt: skip
    for rid in ("2026-0001", "2026-0002", "2026-0003"):
        store.seal(
            rid,
            Outcome.ACCEPTED,
            START + timedelta(days=30),
            MHARA,
            without_evidence="no reports in this test",
        )
    return store


def run(store: RecordStore, *args: str) -> tuple[int, str]:
    result = invoke_at(["--repo", str(store.changes_dir.parent), "records", "retention", *args])
    return result.exit_code, result.output


def test_only_an_expired_sealed_record_of_a_client_with_retention_is_listed(
    store: RecordStore,
) -> None:
    code, output = run(store, "--at", LATER)
    assert code == 0, output
    assert output.splitlines() == [
        "2026-0001  fabrikam-labs  sealed 2026-08-06 09:30 UTC  kept until 2029-08-06 09:30 UTC  "
        "may be purged"
    ]
    assert run(store, "--at", "2029-08-06T09:29:00Z")[1] == "no record has outlived its retention\n"
    assert store.json_path("2026-0001").exists()  # listing changes nothing


def test_a_lead_purges_with_a_tombstone_and_the_trail_still_verifies(store: RecordStore) -> None:
    code, output = run(store, "--purge", "--key", str(KEYS / "jchen.pem"), "--at", LATER)
    assert code == EXIT_GATE and "not a lead" in output
    assert store.json_path("2026-0001").exists()
    code, output = run(store, "--purge", "--key", str(KEYS / "mhara.pem"), "--at", LATER)
    assert code == 0, output
    assert output.endswith("purged\n")
    assert not store.json_path("2026-0001").exists()
    assert not store.markdown_path("2026-0001").exists()
    tombstone = store.ledger.read()[-1]
    assert (tombstone.event.value, tombstone.record_id, tombstone.actor) == (
        "purged",
        "2026-0001",
        "mhara",
    )
    now = datetime(2030, 1, 2, tzinfo=UTC)
    assert verify(store.changes_dir, now) == []
    # The purged file put back is named; so is a purge line written by an analyst.
    (store.json_path("2026-0001")).write_text("{}")
    assert any("its file is back" in str(p) for p in verify(store.changes_dir, now))
    store.json_path("2026-0001").unlink()
    entries = store.ledger.read()
    last_0002 = next(e for e in reversed(entries) if e.record_id == "2026-0002")
    store.ledger.append(
        entries,
        event=LedgerEvent.PURGED,
        signer=JCHEN,
        at=now,
        roster=store.trusted_roster(entries),
        record_id="2026-0002",
        record_sha256=last_0002.record_sha256,
    )
    for path in (store.json_path("2026-0002"), store.markdown_path("2026-0002")):
        path.unlink()
    problems = [str(p) for p in verify(store.changes_dir, now)]
    assert problems == [
        "2026-0002: ledger line 11 (purged): purged by jchen, who is not a lead (only a lead "
        "ends a record's retention)"
    ]


def test_an_unsealed_record_cannot_be_purged(store: RecordStore) -> None:
    with pytest.raises(Exception, match="not sealed"):
        store.purge("2026-0004", START + timedelta(days=4000), MHARA)
