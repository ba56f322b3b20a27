"""`audit verify`: every way of tampering with the trail is caught and names the record.

The trail under test holds four records whose events interleave in the ledger:
line 1 created 0001, 2 created 0002, 3 updated 0001, 4 created 0003, 5 sealed 0001,
6 updated 0002, 7 created 0004, 8 sealed 0004 (forced).
"""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest
from signing import JCHEN, MHARA, genesis
from test_records import T0, cli, make_record

from pipeline.errors import EXIT_GATE
from pipeline.records import (
    AuditProblem,
    LedgerCorrupt,
    Outcome,
    RecordStore,
    verify,
)
from pipeline.records.ledger import LedgerEntry, LedgerEvent
from pipeline.records.store import record_file_bytes

LATER = T0 + timedelta(days=2)
EVENTS = [
    ("2026-0001", "created"),
    ("2026-0002", "created"),
    ("2026-0001", "updated"),
    ("2026-0003", "created"),
    ("2026-0001", "sealed"),
    ("2026-0002", "updated"),
    ("2026-0004", "created"),
    ("2026-0004", "sealed"),
]


@pytest.fixture
def store(tmp_path: Path) -> RecordStore:
    store = genesis(tmp_path)
    first = store.create(lambda rid: make_record(rid, executed_at=None), at=T0, signer=JCHEN)
    second = store.create(make_record, at=T0, signer=JCHEN)
    store.update(replace(first, executed_at=T0, executed_by="jchen"), at=T0, signer=JCHEN)
    store.create(make_record, at=T0, signer=JCHEN)
    store.seal(first.id, Outcome.ACCEPTED, LATER, JCHEN, without_evidence="no reports in this test")
    store.update(replace(second, internal_notes="client asked for a call"), at=LATER, signer=JCHEN)
    fourth = store.create(lambda rid: make_record(rid, executed_at=LATER), at=LATER, signer=JCHEN)
    store.seal(fourth.id, Outcome.SUPERSEDED, LATER, MHARA, forced=True)
    return store


def lines_of(store: RecordStore) -> list[str]:
    """The record events: every line after the genesis (the policy seal `dmarcops init` wrote),
    which the tampering below leaves in place."""
    return store.ledger.path.read_text(encoding="utf-8").splitlines()[1:]


def write_lines(store: RecordStore, lines: list[str]) -> None:
    genesis_line = store.ledger.path.read_text(encoding="utf-8").splitlines()[0]
    text = "".join(f"{line}\n" for line in [genesis_line, *lines])
    store.ledger.path.write_text(text, encoding="utf-8")


def json_path(store: RecordStore, record_id: str) -> Path:
    return store.records_dir / f"{record_id}.json"


def assert_named(store: RecordStore, *record_ids: str) -> list[AuditProblem]:
    """The library and `dmarcops audit verify` both fail and name every record given."""
    problems = verify(store.changes_dir, LATER)
    assert problems, "the tampering went unnoticed"
    named = {p.record_id for p in problems}
    for record_id in record_ids:
        assert record_id in named, (record_id, [str(p) for p in problems])
    result = cli(store.changes_dir.parent, "audit", "verify", "--at", "2026-06-11T09:23:00Z")
    assert result.exit_code == EXIT_GATE, result.output
    assert "chain intact" not in result.stdout
    for record_id in record_ids:
        assert f"problem: {record_id}: " in result.stdout
    assert "Traceback" not in result.output
    return problems


def test_an_untouched_trail_verifies(store: RecordStore) -> None:
    assert [
        (json.loads(line)["record_id"], json.loads(line)["event"]) for line in lines_of(store)
    ] == EVENTS
    assert verify(store.changes_dir, LATER) == []
    result = cli(store.changes_dir.parent, "audit", "verify", "--at", "2026-06-11T09:23:00Z")
    assert result.exit_code == 0, result.output
    head = json.loads(lines_of(store)[-1])["entry_sha256"]
    assert result.stdout == (f"ok: 4 records, 9 ledger entries, chain intact\nchain head: {head}\n")


def test_an_empty_trail_verifies(tmp_path: Path) -> None:
    assert verify(tmp_path / "changes", T0) == []


# --- record files -------------------------------------------------------------------------------


def test_editing_a_field_of_a_sealed_record_is_detected(store: RecordStore) -> None:
    path = json_path(store, "2026-0001")
    data = json.loads(path.read_text(encoding="utf-8"))
    data["outcome"] = "rolled-back"
    # Written exactly as dmarcops writes, so only the content differs.
    path.write_text(json.dumps(data, sort_keys=True, indent=2, ensure_ascii=False) + "\n")
    problems = assert_named(store, "2026-0001")
    assert {p.record_id for p in problems} == {"2026-0001"}
    assert "edited or replaced" in str(problems[0])


def test_reformatting_a_record_file_is_detected(store: RecordStore) -> None:
    path = json_path(store, "2026-0004")
    path.write_text(json.dumps(json.loads(path.read_text()), indent=4, sort_keys=True))
    problems = assert_named(store, "2026-0004")
    assert "not as dmarcops writes it" in str(problems[0])


def test_a_deleted_record_file_is_named(store: RecordStore) -> None:
    json_path(store, "2026-0002").unlink()
    problems = assert_named(store, "2026-0002")
    assert "record file is missing" in str(problems[0])


def test_swapped_record_files_are_both_named(store: RecordStore) -> None:
    a, b = json_path(store, "2026-0001"), json_path(store, "2026-0002")
    a_bytes, b_bytes = a.read_bytes(), b.read_bytes()
    a.write_bytes(b_bytes)
    b.write_bytes(a_bytes)
    problems = assert_named(store, "2026-0001", "2026-0002")
    text = "\n".join(str(p) for p in problems)
    assert "2026-0001: 2026-0001.json does not match" in text
    assert "it holds the content of record 2026-0002" in text
    assert "it holds the content of record 2026-0001" in text


def test_a_record_file_the_ledger_never_saw_is_named(store: RecordStore) -> None:
    forged = make_record("2026-0005")
    json_path(store, "2026-0005").write_bytes(record_file_bytes(forged))
    problems = assert_named(store, "2026-0005")
    assert "never recorded" in str(problems[0])


def test_a_reference_to_a_missing_record_is_named(store: RecordStore) -> None:
    record = store.get("2026-0002")
    store.update(replace(record, references=("2026-0009",)), at=LATER, signer=JCHEN)
    problems = assert_named(store, "2026-0002")
    assert "references record 2026-0009, which does not exist" in str(problems[0])


# --- the ledger ---------------------------------------------------------------------------------


@pytest.mark.parametrize("index", range(len(EVENTS)))
def test_deleting_any_ledger_line_names_its_record(store: RecordStore, index: int) -> None:
    lines = lines_of(store)
    del lines[index]
    write_lines(store, lines)
    assert_named(store, EVENTS[index][0])


@pytest.mark.parametrize("index", range(len(EVENTS) - 1))
def test_reordering_two_ledger_lines_names_both_records(store: RecordStore, index: int) -> None:
    lines = lines_of(store)
    lines[index], lines[index + 1] = lines[index + 1], lines[index]
    write_lines(store, lines)
    assert_named(store, EVENTS[index][0], EVENTS[index + 1][0])


def test_editing_a_ledger_entry_is_detected(store: RecordStore) -> None:
    lines = lines_of(store)
    entry = json.loads(lines[4])  # sealed 0001
    entry["at"] = "2026-06-09T09:23:00Z"  # pretend it was closed at execution time
    lines[4] = json.dumps(entry, sort_keys=True, separators=(",", ":"))
    write_lines(store, lines)
    problems = assert_named(store, "2026-0001")
    assert "ledger line 6 (sealed): entry_sha256 does not match" in "\n".join(map(str, problems))


def test_editing_a_ledger_entry_and_rehashing_it_breaks_the_next_link(store: RecordStore) -> None:
    # An editor who recomputes the edited line's own hash still breaks the line after it, and the
    # message names the edited line's record.
    lines = lines_of(store)
    entry = LedgerEntry.from_line(lines[5])  # updated 0002
    forged = LedgerEntry.make(
        seq=entry.seq,
        record_id=entry.record_id,
        event=entry.event,
        record_sha256=entry.record_sha256,
        record_prev=entry.record_prev,
        at=LATER + timedelta(hours=1),  # the edit
        prev=entry.prev,
        signer=JCHEN,
    )
    lines[5] = forged.to_line().rstrip("\n")
    write_lines(store, lines)
    problems = assert_named(store, "2026-0004")
    assert "does not link to line 7 (record 2026-0002)" in "\n".join(map(str, problems))


def test_an_event_after_sealing_is_named(store: RecordStore) -> None:
    # Someone bypasses the store: rewrites a sealed record and appends a consistent event for it.
    entries = store.ledger.read()
    sealed = store.get("2026-0001")
    edited = replace(sealed, rationale="what we wish we had written")
    json_path(store, "2026-0001").write_bytes(record_file_bytes(edited))
    store.ledger.append(
        entries,
        record_id="2026-0001",
        event=LedgerEvent.UPDATED,
        record_sha256=edited.sha256(),
        at=LATER,
        signer=JCHEN,
        roster=store.trusted_roster(entries),
    )
    problems = assert_named(store, "2026-0001")
    assert "updated after the record was sealed at line 6" in "\n".join(map(str, problems))


def test_gaps_and_duplicates_in_numbering_are_named(store: RecordStore) -> None:
    entries = store.ledger.read()
    for record_id in ("2026-0007", "2026-0002"):  # skips 0005 and 0006; reuses 0002
        record = make_record(record_id)
        json_path(store, record_id).write_bytes(record_file_bytes(record))
        store.ledger.append(
            entries,
            record_id=record_id,
            event=LedgerEvent.CREATED,
            record_sha256=record.sha256(),
            at=LATER,
            signer=JCHEN,
            roster=store.trusted_roster(entries),
        )
    problems = assert_named(store, "2026-0005", "2026-0006", "2026-0002")
    text = "\n".join(map(str, problems))
    assert "2026-0002: ledger line 11: created again (first at line 3)" in text


def test_writers_stop_at_a_damaged_ledger(store: RecordStore) -> None:
    lines = lines_of(store)
    lines[2] = lines[2][:40]  # a torn line
    write_lines(store, lines)
    with pytest.raises(LedgerCorrupt) as refused:
        store.create(make_record, at=LATER, signer=JCHEN)
    assert refused.value.exit_code == EXIT_GATE
    assert refused.value.line == 4  # the genesis is line 1
    assert len(lines_of(store)) == len(EVENTS)  # nothing appended after the damage
    problems = assert_named(store, "2026-0001")  # line 4's record, its events no longer follow
    assert "ledger line 4: not JSON" in "\n".join(map(str, problems))


def test_a_record_never_marked_executed_is_an_interrupted_apply(tmp_path: Path) -> None:
    store = genesis(tmp_path)
    store.create(lambda rid: make_record(rid, executed_at=None), at=T0, signer=JCHEN)
    assert verify(store.changes_dir, T0 + timedelta(minutes=30)) == []  # an apply in progress
    (problem,) = verify(store.changes_dir, T0 + timedelta(hours=2))
    assert problem.record_id == "2026-0001"
    assert "never marked executed: an interrupted apply?" in problem.message


def test_an_edited_markdown_rendering_is_named(store: RecordStore) -> None:
    path = store.changes_dir / "records" / "2026-0001.md"
    path.write_text(path.read_text(encoding="utf-8").replace("accepted", "rolled back"))
    problems = verify(store.changes_dir, LATER)
    assert [p.record_id for p in problems] == ["2026-0001"]
    assert "2026-0001.md does not match the record" in problems[0].message
