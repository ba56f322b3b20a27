"""The record index (.dmarcops/records.sqlite, pipeline.records.index): a cache that never changes
an answer.

Whatever happens to it (deleted, corrupt, a link or a FIFO in its place, rows deleted or edited,
one copied from another checkout), `records list` prints what a full read of changes/ gives and
`audit verify` judges the files; a record or a ledger line written without it (an older dmarcops,
a hand edit) is caught up; and a write asks it, not the history.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from signing import JCHEN, MHARA, genesis, signer
from test_records import T0, cli, make_record

import pipeline.records.store_base as store_module
from pipeline.model import RiskLevel
from pipeline.records import (
    ApprovalRole,
    ChangeRecord,
    Outcome,
    RecordMismatchError,
    RecordStore,
    verify,
)
from pipeline.records.index import INDEX_PATH, KEY_NAME, index_key
from pipeline.records.index_records import RecordFilter
from pipeline.records.ledger import GENESIS, LedgerEntry, LedgerEvent
from pipeline.records.store import record_file_bytes

LATER = T0 + timedelta(days=30)

SPECS: list[dict[str, Any]] = [
    dict(client="contoso-retail", zone="contoso-retail.example", risk=RiskLevel.HIGH,
         author="jchen", peer="mhara", executed_at=datetime(2026, 3, 1, 9, tzinfo=UTC),
         rationale="Payroll vendor added to SPF"),
    dict(client="fabrikam-labs", zone="Fabrikam.example.", risk=RiskLevel.LOW,
         author="sokafor", peer="", executed_at=datetime(2026, 6, 9, 23, 59, tzinfo=UTC)),
    dict(client="fabrikam-labs", zone="fabrikam.example", risk=RiskLevel.MEDIUM,
         author="sokafor", peer="mhara", executed_at=datetime(2026, 6, 10, 9, tzinfo=UTC),
         internal_notes="The client's IT is SLOW"),
    dict(client="contoso-retail", zone="contoso-shop.example", risk=RiskLevel.MEDIUM,
         author="jchen", peer="sokafor", executed_at=None),
    dict(client="northwind-health", zone="nwh-patients.example", risk=RiskLevel.HIGH,
         author="mhara", peer="jchen", executed_at=datetime(2026, 6, 9, 0, 0, tzinfo=UTC)),
]  # fmt: skip


@pytest.fixture
def portfolio(tmp_path: Path) -> RecordStore:
    """Five records (two sealed) written through the store, so the index knows them."""
    store = genesis(tmp_path)
    for spec in SPECS:
        store.create(partial(make_record, **spec), at=T0, signer=signer(str(spec["author"])))
    store.seal("2026-0001", Outcome.ACCEPTED, LATER, MHARA, without_evidence="checked by hand")
    store.seal("2026-0003", Outcome.ROLLED_BACK, LATER, MHARA)
    return store


def index_file(store: RecordStore) -> Path:
    return store.changes_dir.parent / INDEX_PATH


def listing(store: RecordStore, *filters: str) -> str:
    result = cli(store.changes_dir.parent, "records", "list", "--format", "json", *filters)
    assert result.exit_code == 0, result.output
    return result.output


def scan(store: RecordStore, **f: Any) -> list[str]:
    """`records list` as it was before the index: every file read, the filters applied to the
    record itself (independent of pipeline.records.index)."""
    out = []
    for r in store.all():
        if f.get("client") is not None and r.client != f["client"]:
            continue
        if f.get("domain") is not None and f["domain"].rstrip(".").lower() not in {
            z.rstrip(".").lower() for z in r.zones
        }:
            continue
        if f.get("analyst") is not None and f["analyst"].casefold() not in {
            a.casefold() for a in r.analysts
        }:
            continue
        if f.get("risk") is not None and r.risk is not f["risk"]:
            continue
        if f.get("since") is not None and r.when < f["since"]:
            continue
        if f.get("until") is not None and r.when >= f["until"]:
            continue
        if f.get("approver") is not None and f["approver"].casefold() not in {
            a.who.casefold() for a in r.approvals if a.role is not ApprovalRole.ANALYST
        }:
            continue
        if f.get("change_type") is not None and (
            r.change_type.value.casefold() != f["change_type"].casefold()
        ):
            continue
        if (
            f.get("outcome") is not None
            and (r.outcome.value if r.outcome else "open") != f["outcome"]
        ):
            continue
        if f.get("text") is not None and f["text"].casefold() not in (
            f"{r.rationale}\n{r.internal_notes}".casefold()
        ):
            continue
        out.append(r.id)
    return out


# --- rebuilt or bypassed, never a different answer ---------------------------------------------


def test_the_index_is_built_by_writes_and_answers_list(portfolio: RecordStore) -> None:
    assert index_file(portfolio).is_file()
    with sqlite3.connect(index_file(portfolio)) as conn:
        rows = [r[0] for r in conn.execute("SELECT record_id FROM records ORDER BY record_id")]
        head = dict(conn.execute("SELECT key, value FROM meta"))["head"]
    assert rows == [f"2026-000{n}" for n in range(1, 6)]
    assert head == portfolio.ledger.read()[-1].entry_sha256  # the ledger head it was built at
    assert [r.id for r in portfolio.list(RecordFilter(client="fabrikam-labs"))] == [
        "2026-0002",
        "2026-0003",
    ]


@pytest.mark.parametrize("damage", ["deleted", "garbage", "foreign schema", "truncated"])
def test_a_missing_or_corrupt_index_is_rebuilt_with_the_same_answer(
    portfolio: RecordStore, damage: str
) -> None:
    before = listing(portfolio, "--client", "fabrikam-labs")
    path = index_file(portfolio)
    if damage == "deleted":
        path.unlink()
    elif damage == "garbage":
        path.write_bytes(b"not a database at all" * 100)
    elif damage == "foreign schema":
        path.unlink()
        with sqlite3.connect(path) as conn:
            conn.execute("CREATE TABLE records (record_id TEXT, fields TEXT)")
            conn.execute("INSERT INTO records VALUES ('2026-0002', '{}')")
    else:
        path.write_bytes(path.read_bytes()[:1000])
    assert listing(portfolio, "--client", "fabrikam-labs") == before
    assert listing(portfolio) == listing_by_scan(portfolio)
    # Rebuilt in place: the next write numbers correctly and indexes itself.
    assert portfolio.create(make_record, at=T0, signer=JCHEN).id == "2026-0006"
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT count(*) FROM records").fetchone()[0] == 6


def listing_by_scan(store: RecordStore) -> str:
    """The JSON listing with the index out of the way (moved aside, then put back)."""
    path = index_file(store)
    aside = path.with_name("aside")
    path.rename(aside)
    try:
        return listing_without_index(store)
    finally:
        path.unlink(missing_ok=True)
        aside.rename(path)


def listing_without_index(store: RecordStore) -> str:
    path = index_file(store)
    path.parent.mkdir(exist_ok=True)
    path.mkdir()  # a directory in its place: the index cannot be used at all
    try:
        return listing(store)
    finally:
        path.rmdir()


@pytest.mark.parametrize("kind", ["symlink", "fifo", "journal symlink"])
def test_a_link_or_fifo_in_its_place_is_bypassed_and_never_written_through(
    portfolio: RecordStore, tmp_path: Path, kind: str
) -> None:
    expected = listing(portfolio, "--analyst", "SOKAFOR")
    path = index_file(portfolio)
    path.unlink()
    elsewhere = tmp_path.parent / f"{tmp_path.name}-outside.sqlite"
    elsewhere.write_bytes(b"someone else's file")
    if kind == "symlink":
        path.symlink_to(elsewhere)
    elif kind == "fifo":
        os.mkfifo(path)
    else:
        path.with_name(path.name + "-journal").symlink_to(elsewhere)
    assert listing(portfolio, "--analyst", "SOKAFOR") == expected  # no hang, no traceback
    record = portfolio.create(make_record, at=T0, signer=JCHEN)  # writes work without it
    assert record.id == "2026-0006"
    assert elsewhere.read_bytes() == b"someone else's file"
    assert os.path.islink(path) or not path.is_file() or kind == "journal symlink"
    reindexed = cli(portfolio.changes_dir.parent, "records", "reindex")
    if kind == "journal symlink":
        assert reindexed.exit_code == 1
        assert "cannot be written" in reindexed.output
    else:
        assert reindexed.exit_code == 1, reindexed.output
        assert "records.sqlite" in reindexed.output
    assert "Traceback" not in reindexed.output


def test_reindex_rebuilds_from_the_records_and_the_ledger(portfolio: RecordStore) -> None:
    before = listing(portfolio)
    index_file(portfolio).write_bytes(b"\0" * 4096)
    result = cli(portfolio.changes_dir.parent, "records", "reindex")
    assert result.exit_code == 0, result.output
    assert result.output == "record index rebuilt: 5 records\n"
    assert listing(portfolio) == before


# --- stale: written without the index ----------------------------------------------------------


def test_a_record_written_without_the_index_is_caught_up(
    portfolio: RecordStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An older dmarcops (or a copy without .dmarcops/) writes records and ledger lines the index
    never saw; the next run notices the ledger moved on and reads only what is new."""
    listing(portfolio)
    with monkeypatch.context() as older:
        older.setattr(store_module, "index_of", _no_index)
        written = portfolio.create(
            partial(make_record, client="acme-new", zone="acme.example"), at=T0, signer=JCHEN
        )
        portfolio.seal("2026-0004", Outcome.FAILED, LATER, JCHEN)
    assert written.id == "2026-0006"
    assert [r.id for r in portfolio.list(RecordFilter(client="acme-new"))] == ["2026-0006"]
    assert [r.id for r in portfolio.list(RecordFilter(outcome="failed"))] == ["2026-0004"]
    assert portfolio.create(make_record, at=T0, signer=JCHEN).id == "2026-0007"
    assert portfolio.executed_requests(["req-2026-06-08-nwh", "req-none"]) == {"req-2026-06-08-nwh"}
    with sqlite3.connect(index_file(portfolio)) as conn:
        meta = dict(conn.execute("SELECT key, value FROM meta"))
    assert int(meta["ledger_size"]) == portfolio.ledger.path.stat().st_size
    assert meta["head"] == portfolio.ledger.read()[-1].entry_sha256


def _no_index(root: Path) -> Any:
    from contextlib import nullcontext

    return nullcontext(None)


def test_a_ledger_line_appended_by_hand_is_caught_up(portfolio: RecordStore) -> None:
    """A created line and its file added the way benchmarks/audit_scale.py builds history."""
    entries = portfolio.ledger.read()
    record = make_record("2026-0006", client="hand-made", zone="hand.example")
    entry = LedgerEntry.make(
        seq=entries[-1].seq + 1,
        event=LedgerEvent.CREATED,
        signer=JCHEN,
        at=entries[-1].at + timedelta(seconds=1),
        prev=entries[-1].entry_sha256,
        record_id=record.id,
        record_sha256=record.sha256(),
        record_prev=GENESIS,
    )
    with portfolio.ledger.path.open("a", encoding="utf-8") as handle:
        handle.write(entry.to_line())
    (portfolio.records_dir / "2026-0006.json").write_bytes(record_file_bytes(record))
    assert portfolio.allocate(2026) == "2026-0007"  # the index's highest number caught up
    assert [r.id for r in portfolio.list(RecordFilter(client="hand-made"))] == ["2026-0006"]


def test_a_record_file_edited_by_hand_is_listed_as_it_now_is(portfolio: RecordStore) -> None:
    listing(portfolio)
    path = portfolio.json_path("2026-0002")
    edited = replace(portfolio.get("2026-0002"), client="renamed-client")
    path.write_bytes(record_file_bytes(edited))
    assert [r.id for r in portfolio.list(RecordFilter(client="renamed-client"))] == ["2026-0002"]
    assert [r.id for r in portfolio.list(RecordFilter(client="fabrikam-labs"))] == ["2026-0003"]
    assert any("2026-0002" in str(p) for p in verify(portfolio.changes_dir, LATER))


def test_a_damaged_ledger_line_still_stops_a_writer_despite_the_index(
    portfolio: RecordStore,
) -> None:
    """The index keeps the SHA-256 of the ledger bytes it knows: an edit inside them is noticed
    and the ledger read in full, which names the damaged line."""
    from pipeline.records import LedgerCorrupt

    lines = portfolio.ledger.path.read_bytes().split(b"\n")
    lines[2] = lines[2][:50]
    portfolio.ledger.path.write_bytes(b"\n".join(lines))
    with pytest.raises(LedgerCorrupt) as refused:
        portfolio.create(make_record, at=T0, signer=JCHEN)
    assert refused.value.line == 3


# --- tampered: never believed ------------------------------------------------------------------


@pytest.mark.parametrize("tamper", ["row deleted", "row edited", "copied from elsewhere"])
def test_a_tampered_index_hides_no_record_and_passes_no_audit(
    portfolio: RecordStore, tmp_path: Path, tamper: str
) -> None:
    expected = listing(portfolio, "--client", "fabrikam-labs")
    assert '"2026-0002"' in expected
    portfolio.json_path("2026-0002").write_bytes(
        record_file_bytes(replace(portfolio.get("2026-0002"), rationale="rewritten"))
    )
    expected = listing_by_scan(portfolio)
    path = index_file(portfolio)
    if tamper == "copied from elsewhere":
        # Another checkout's index, whose rows say 2026-0002 is someone else's.
        other = tmp_path / "other"
        shutil.copytree(portfolio.changes_dir.parent, other, symlinks=True)
        (other / INDEX_PATH).unlink()
        copy = RecordStore(other / "changes")
        copy.json_path("2026-0002").write_bytes(
            record_file_bytes(replace(copy.get("2026-0002"), client="hidden"))
        )
        copy.list()
        shutil.copy(other / INDEX_PATH, path)
    with sqlite3.connect(path) as conn:
        if tamper == "row deleted":
            conn.execute("DELETE FROM records WHERE record_id = '2026-0002'")
        elif tamper == "row edited":
            conn.execute(
                "UPDATE records SET fields = replace(fields, 'fabrikam-labs', 'hidden') "
                "WHERE record_id = '2026-0002'"
            )
    assert listing(portfolio) == expected
    assert [r.id for r in portfolio.list(RecordFilter(client="fabrikam-labs"))] == [
        "2026-0002",
        "2026-0003",
    ]
    problems = verify(portfolio.changes_dir, LATER)  # never reads the index
    assert any(p.record_id == "2026-0002" for p in problems)


def test_an_edited_policy_summary_is_not_believed(portfolio: RecordStore) -> None:
    """The ledger part's summary is signed with a key outside the repository: an index edited to
    say something else about the ledger is rebuilt from the ledger."""
    with sqlite3.connect(index_file(portfolio)) as conn:
        conn.execute("UPDATE meta SET value = '99' WHERE key = 'seq'")
        conn.execute("UPDATE numbers SET highest = 1")
    assert portfolio.allocate(2026) == "2026-0006"


@pytest.mark.parametrize(
    "edit",
    [
        "UPDATE numbers SET highest = 1",
        "UPDATE events SET record_sha256 = (SELECT record_sha256 FROM events WHERE "
        "record_id = '2026-0001') WHERE record_id = '2026-0002'",
    ],
)
def test_an_edited_ledger_row_is_not_believed(portfolio: RecordStore, edit: str) -> None:
    """The numbers and last events a writer asks for are signed per row: an edited one is
    answered from the ledger instead."""
    before = [str(p) for p in verify(portfolio.changes_dir, LATER)]
    with sqlite3.connect(index_file(portfolio)) as conn:
        conn.execute(edit)
    assert portfolio.allocate(2026) == "2026-0006"
    updated = portfolio.update(
        replace(portfolio.get("2026-0002"), internal_notes="checked"), at=LATER, signer=JCHEN
    )
    assert updated.internal_notes == "checked"
    assert [str(p) for p in verify(portfolio.changes_dir, LATER)] == before  # chain intact


def test_the_key_lives_outside_the_repository(portfolio: RecordStore) -> None:
    key = index_key()
    assert key is not None and len(key) == 32
    root = portfolio.changes_dir.parent
    assert not any(key in p.read_bytes() for p in root.rglob("*") if p.is_file())


# --- list from the index == list from a full read ----------------------------------------------

_names = st.sampled_from(["jchen", "JCHEN", "mhara", "sokafor", "Sokafor", "nobody"])
_filters = st.fixed_dictionaries(
    {},
    optional={
        "client": st.sampled_from(["contoso-retail", "fabrikam-labs", "northwind-health", "x"]),
        "domain": st.sampled_from(
            ["fabrikam.example", "FABRIKAM.EXAMPLE.", "contoso-shop.example"]
        ),
        "analyst": _names,
        "approver": _names,
        "risk": st.sampled_from(list(RiskLevel)),
        "since": st.datetimes(
            min_value=datetime(2026, 2, 1), max_value=datetime(2026, 7, 1), timezones=st.just(UTC)
        ),
        "until": st.datetimes(
            min_value=datetime(2026, 2, 1), max_value=datetime(2026, 7, 1), timezones=st.just(UTC)
        ),
        "change_type": st.sampled_from(["policy-progression", "POLICY-PROGRESSION", "new-sender"]),
        "outcome": st.sampled_from(["open", "accepted", "rolled-back", "failed"]),
        "text": st.sampled_from(["payroll", "slow", "IT is", "99.3%", "absent"]),
    },
)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(filters=_filters)
def test_list_from_the_index_is_list_from_a_full_read(
    portfolio: RecordStore, filters: dict[str, Any]
) -> None:
    assert [r.id for r in portfolio.list(RecordFilter(**filters))] == scan(portfolio, **filters)


# --- a write does not read the history ---------------------------------------------------------


def test_a_write_reads_no_other_record_and_parses_no_old_ledger_line(
    portfolio: RecordStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Creating, updating and sealing read no record file (the one they change is checked
    against the ledger from its bytes; its index row is made from the record written), and parse
    only the ledger lines the index has not seen (none): the cost does not grow with the
    history."""
    portfolio.list()  # the index is current
    parsed: list[str] = []
    read: list[str] = []
    real_from_line = LedgerEntry.from_line.__func__  # type: ignore[attr-defined]
    real_get = RecordStore.get

    def counting_from_line(cls: type[LedgerEntry], line: str) -> LedgerEntry:
        parsed.append(line)
        return real_from_line(cls, line)  # type: ignore[no-any-return]

    def counting_get(self: RecordStore, record_id: str) -> ChangeRecord:
        read.append(record_id)
        return real_get(self, record_id)

    monkeypatch.setattr(LedgerEntry, "from_line", classmethod(counting_from_line))
    monkeypatch.setattr(RecordStore, "get", counting_get)
    monkeypatch.setattr(RecordStore, "all", _never)
    created = portfolio.create(make_record, at=T0, signer=JCHEN)
    portfolio.update(replace(created, internal_notes="checked"), at=T0, signer=JCHEN)
    portfolio.seal(created.id, Outcome.FAILED, LATER, JCHEN)
    assert read == []  # not even the record written, to index it
    # Only the policy lines the index keeps (the genesis) are parsed, never a record's line.
    assert all('"event":"policy"' in line for line in parsed)


def ledger_reads(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """Every full read of a ledger from now on, the file taken as settled (as if it were old)."""
    from pipeline.records import index_ledger

    monkeypatch.setattr(index_ledger, "_SETTLED", -(10**12))
    reads: list[Path] = []
    real = index_ledger._ledger_bytes

    def counting(ledger: Any) -> bytes:
        reads.append(ledger.path)
        return real(ledger)

    monkeypatch.setattr(index_ledger, "_ledger_bytes", counting)
    return reads


def test_an_unchanged_ledger_is_hashed_once_per_process(
    portfolio: RecordStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """plan asks for the policy of record several times; a ledger that has not changed since it
    was hashed in this process is not read again, and one that changed is."""
    from pipeline.records import index_ledger
    from pipeline.records.policy_of_record import policy_of_record

    reads = ledger_reads(monkeypatch)
    monkeypatch.setattr(index_ledger, "_hashed", {})  # a new process
    root = portfolio.changes_dir.parent
    for _ in range(3):
        policy_of_record(root)
    assert len(reads) == 1
    # Its own writes: the line it appends is hashed as it is written, nothing is read again.
    portfolio.create(make_record, at=LATER, signer=JCHEN)
    portfolio.create(make_record, at=LATER, signer=JCHEN)
    policy_of_record(root)
    assert len(reads) == 1
    os.utime(portfolio.ledger.path)  # touched by someone else: its identity changed
    policy_of_record(root)
    assert len(reads) == 2


def test_a_reader_in_a_new_process_trusts_the_ledger_file_it_hashed_and_nothing_else(
    portfolio: RecordStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """plan, in a process of its own, does not read the ledger again when the file is the very
    one a reader hashed (device, inode, size, mtime, ctime under the index's key); any write to
    it moves the ctime, which no user can set back, so an edit that keeps the size and restores
    the mtime is read again and refused; a writer always reads."""
    from pipeline.records import index_ledger
    from pipeline.records.policy_of_record import PolicyNotOfRecord, policy_of_record

    reads = ledger_reads(monkeypatch)
    root = portfolio.changes_dir.parent
    monkeypatch.setattr(index_ledger, "_hashed", {})
    first = policy_of_record(root)
    assert len(reads) == 1
    for _ in range(3):
        monkeypatch.setattr(index_ledger, "_hashed", {})  # each a new process
        assert policy_of_record(root) == first
    assert len(reads) == 1
    # Same size, one byte of a line changed, the old mtime put back: read again, and refused.
    path = portfolio.ledger.path
    before = os.stat(path)
    original = path.read_bytes()
    data = bytearray(original)
    at = data.index(b'"actor":"') + len(b'"actor":"')
    data[at] = ord("x") if data[at] != ord("x") else ord("y")
    path.write_bytes(bytes(data))
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert os.stat(path).st_mtime_ns == before.st_mtime_ns
    monkeypatch.setattr(index_ledger, "_hashed", {})
    with pytest.raises(PolicyNotOfRecord) as refused:
        policy_of_record(root)  # the genesis now names a signer who is not on its roster
    assert "hara, who is not a lead" in refused.value.message
    assert len(reads) == 2
    # A writer in a new process reads the file even when a reader recorded it.
    path.write_bytes(original)
    monkeypatch.setattr(index_ledger, "_hashed", {})
    policy_of_record(root)
    assert len(reads) == 3
    monkeypatch.setattr(index_ledger, "_hashed", {})
    portfolio.create(make_record, at=LATER, signer=JCHEN)
    assert len(reads) == 4


def _never(self: RecordStore) -> list[ChangeRecord]:
    raise AssertionError("a write must not read every record")


def test_plan_asks_the_index_not_every_record(
    portfolio: RecordStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What plan reads of the history: which requests were executed, and the policy of record
    (the first line and the policy lines), neither by reading every record or ledger line."""
    from pipeline.records.policy_of_record import policy_of_record

    portfolio.list()
    parsed: list[str] = []
    real_from_line = LedgerEntry.from_line.__func__  # type: ignore[attr-defined]

    def counting_from_line(cls: type[LedgerEntry], line: str) -> LedgerEntry:
        parsed.append(line)
        return real_from_line(cls, line)  # type: ignore[no-any-return]

    monkeypatch.setattr(LedgerEntry, "from_line", classmethod(counting_from_line))
    monkeypatch.setattr(RecordStore, "all", _never)
    done = portfolio.executed_requests(["req-2026-06-08-nwh", "req-elsewhere"])
    assert done == {"req-2026-06-08-nwh"}
    sealed = policy_of_record(portfolio.changes_dir.parent).sealed
    assert sealed is not None and sealed.sha256
    assert parsed and all('"event":"policy"' in line for line in parsed)


def test_two_processes_writing_at_once_leave_a_consistent_index(portfolio: RecordStore) -> None:
    import multiprocessing

    context = multiprocessing.get_context("fork")
    workers = [
        context.Process(target=_create_many, args=(portfolio.changes_dir, 3)) for _ in range(2)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(120)
        assert worker.exitcode == 0
    ids = [r.id for r in portfolio.list()]
    assert ids == [f"2026-{n:04d}" for n in range(1, 12)]
    assert listing(portfolio) == listing_by_scan(portfolio)
    assert portfolio.allocate(2026) == "2026-0012"
    assert not any("ledger" in str(p) for p in verify(portfolio.changes_dir, LATER))


def _create_many(changes_dir: Path, count: int) -> None:
    store = RecordStore(changes_dir)
    for _ in range(count):
        store.create(make_record, at=LATER, signer=JCHEN)


def test_a_writer_killed_mid_write_leaves_an_index_that_catches_up(
    portfolio: RecordStore,
) -> None:
    """kill -9 at an arbitrary moment of a stream of writes: the index is as before or after a
    transaction, and the next run reads what the ledger and the files hold."""
    import multiprocessing
    import signal
    import time

    portfolio.list()
    context = multiprocessing.get_context("fork")
    worker = context.Process(target=_create_many, args=(portfolio.changes_dir, 1000))
    worker.start()
    deadline = time.monotonic() + 60
    while len(portfolio.ledger.lines()) < 10 and time.monotonic() < deadline:
        time.sleep(0.05)  # some writes done, and the next under way
    assert worker.pid is not None
    os.kill(worker.pid, signal.SIGKILL)
    worker.join(30)
    assert listing(portfolio) == listing_by_scan(portfolio)
    created = [e.record_id for e in portfolio.ledger.read() if e.event is LedgerEvent.CREATED]
    highest = max(int(rid.split("-")[1]) for rid in created)
    assert portfolio.allocate(2026) == f"2026-{highest + 1:04d}"
    following = f"2026-{highest + 1:04d}"
    if portfolio.json_path(following).exists():
        # Killed between the record's file and its ledger line: the store's own refusal, which
        # `audit verify` explains; the index has no say in it.
        with pytest.raises(RecordMismatchError):
            portfolio.create(make_record, at=LATER, signer=JCHEN)
    else:
        assert portfolio.create(make_record, at=LATER, signer=JCHEN).id == following


def test_the_tests_keep_the_index_key_out_of_the_home_directory(portfolio: RecordStore) -> None:
    # tests/conftest.py gives the session its own XDG_STATE_HOME: a test run must not write a
    # key into the ~/.local/state of whoever runs it.
    portfolio.list()
    real = Path.home() / ".local" / "state"
    state = Path(os.environ.get("XDG_STATE_HOME", real))
    assert real not in (state, *state.parents)
    assert (state / "dmarcops" / KEY_NAME).is_file()


# --- an apply's batch of records -----------------------------------------------------------------


def _statements(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every SQL statement run on the index from now on."""
    import pipeline.records.index as index_module

    seen: list[str] = []
    real_open = index_module.open_index

    def traced(root: Path) -> sqlite3.Connection | None:
        conn = real_open(root)
        if conn is not None:
            conn.set_trace_callback(seen.append)
        return conn

    monkeypatch.setattr(index_module, "open_index", traced)
    return seen


def test_a_batch_of_records_is_indexed_in_one_transaction(
    portfolio: RecordStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """create_many / update_many commit the index once for the whole batch (each SQLite commit
    costs its own fsyncs), and the index then answers as a full read does."""
    portfolio.list()  # the index is current: the batch's commit is the only one
    seen = _statements(monkeypatch)
    created = portfolio.create_many([make_record] * 20, at=LATER, signer=JCHEN)
    assert [s for s in seen if s == "COMMIT"] == ["COMMIT"]
    seen.clear()
    portfolio.update_many(
        [replace(r, internal_notes=f"checked {r.id}") for r in created], at=LATER, signer=JCHEN
    )
    assert [s for s in seen if s == "COMMIT"] == ["COMMIT"]
    assert listing(portfolio) == listing_by_scan(portfolio)
    # The rows were made from the records as finished, not as opened.
    found = json.loads(listing(portfolio, "--text", "checked 2026-0025"))
    assert [row["id"] for row in found] == ["2026-0025"]
    assert portfolio.allocate(2026) == "2026-0026"
    assert not any("ledger" in str(p) for p in verify(portfolio.changes_dir, LATER))


def test_an_index_failure_mid_batch_leaves_it_before_the_batch_and_it_catches_up(
    portfolio: RecordStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The index fails on the second record of a batch (a disk error): its part of the batch is
    rolled back whole, so it still describes the ledger as it was before (never lines whose
    events it lacks); the ledger has every line, rightly chained, and the next run catches up."""
    portfolio.list()
    before = len(portfolio.ledger.lines())
    real_put = store_module.put_record
    rows: list[str] = []

    def failing_put(conn: sqlite3.Connection, row: Any) -> None:
        rows.append(row[0])
        if len(rows) == 2:
            raise sqlite3.OperationalError("disk I/O error")
        real_put(conn, row)

    monkeypatch.setattr(store_module, "put_record", failing_put)
    created = portfolio.create_many([make_record] * 3, at=LATER, signer=JCHEN)
    monkeypatch.undo()
    assert rows == ["2026-0006", "2026-0007"]  # the third record was not offered to the index
    assert [r.id for r in created] == ["2026-0006", "2026-0007", "2026-0008"]
    assert len(portfolio.ledger.lines()) == before + 3
    with sqlite3.connect(index_file(portfolio)) as conn:
        lines = conn.execute("SELECT value FROM meta WHERE key = 'ledger_lines'").fetchone()
        indexed = {r for (r,) in conn.execute("SELECT record_id FROM records")}
    assert int(lines[0]) == before
    assert not indexed & {"2026-0006", "2026-0007", "2026-0008"}
    # Caught up: numbering, listing, and each record's previous event (the next write of one
    # chains to it) as if the index had never failed.
    assert portfolio.allocate(2026) == "2026-0009"
    assert listing(portfolio) == listing_by_scan(portfolio)
    portfolio.update(replace(created[1], internal_notes="after the failure"), LATER, JCHEN)
    assert not any("ledger" in str(p) for p in verify(portfolio.changes_dir, LATER))


# --- what an apply asks of the history (pipeline/apply/): the index names, the file confirms ----


def _apply_questions(store: RecordStore) -> dict[str, Any]:
    """Every question pipeline/apply/ asks of the history, with a key restored and one not."""
    by_id = {r.id: r for r in store.all()}
    item = by_id["2026-0001"].items[0]
    restored = (item.zone, item.name, item.type, tuple(item.before))
    unexecuted = by_id["2026-0004"].items[0]
    never = (unexecuted.zone, unexecuted.name, unexecuted.type, tuple(unexecuted.before))
    plan = by_id["2026-0001"].plan_hash
    return {
        "plan": [r.id for r in store.executed_of_plan(plan)],
        "other plan": [r.id for r in store.executed_of_plan("0" * 64)],
        "request": [r.id for r in store.executed_of_request(by_id["2026-0001"].request_id)],
        "open": [r.id for r in store.open_executed()],
        "restoring": store.restoring({restored, never}) == {restored},
    }


def _read_every_record(store: RecordStore) -> dict[str, Any]:
    records = store.all()
    executed = [r.id for r in records if r.executed_at is not None]
    return {
        "plan": executed,
        "other plan": [],
        "request": executed,
        "open": [r.id for r in records if r.executed_at is not None and not r.sealed],
        "restoring": True,
    }


def test_the_apply_questions_read_only_the_records_they_name(
    portfolio: RecordStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    expected = _read_every_record(portfolio)
    assert expected["open"] == ["2026-0002", "2026-0005"]
    portfolio.list()  # the index built
    read: list[str] = []
    real_get = RecordStore.get

    def counting_get(self: RecordStore, record_id: str) -> ChangeRecord:
        read.append(record_id)
        return real_get(self, record_id)

    monkeypatch.setattr(RecordStore, "all", _never)
    monkeypatch.setattr(RecordStore, "get", counting_get)
    by_index = _apply_questions_without_all(portfolio)
    assert by_index == expected
    # The open records read for `open`, the executed ones for the plan and the request, and the
    # one record holding the restored value: never 2026-0004, which answers none of them.
    assert "2026-0004" not in read
    read.clear()
    assert portfolio.open_executed() and sorted(set(read)) == ["2026-0002", "2026-0005"]


def _apply_questions_without_all(store: RecordStore) -> dict[str, Any]:
    # The keys of _apply_questions, taken from the files directly (RecordStore.all is patched).
    records = {p.stem: json.loads(p.read_text()) for p in sorted(store.records_dir.glob("*.json"))}
    item = records["2026-0001"]["items"][0]
    restored = (item["zone"], item["name"], item["type"], tuple(item["before"]))
    other = records["2026-0004"]["items"][0]
    never = (other["zone"], other["name"], other["type"], tuple(other["before"]))
    plan = records["2026-0001"]["plan_hash"]
    return {
        "plan": [r.id for r in store.executed_of_plan(plan)],
        "other plan": [r.id for r in store.executed_of_plan("0" * 64)],
        "request": [r.id for r in store.executed_of_request(records["2026-0001"]["request_id"])],
        "open": [r.id for r in store.open_executed()],
        "restoring": store.restoring({restored, never}) == {restored},
    }


@pytest.mark.parametrize(
    "tamper",
    ["restoration planted", "row says open", "row says executed", "row deleted", "no index"],
)
def test_a_tampered_index_changes_no_answer_an_apply_gets(
    portfolio: RecordStore, tamper: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pipeline.records import index_ledger

    # The ledger taken as settled: its hash is kept and later readers trust the index.
    monkeypatch.setattr(index_ledger, "_SETTLED", -(10**12))
    expected = _read_every_record(portfolio)
    portfolio.executed_requests([])  # the index built and caught up (its rebuilt flag gone)
    with sqlite3.connect(index_file(portfolio)) as conn:
        assert conn.execute("SELECT value FROM meta WHERE key = 'rebuilt'").fetchall() == []
        if tamper == "restoration planted":
            # The unexecuted record's before-state named as one an executed record held: the
            # file says it was never executed, so nothing is restored.
            other = portfolio.get("2026-0004").items[0]
            from pipeline.records.index_records import restoration_key

            conn.execute(
                "INSERT INTO befores VALUES (?, ?)",
                (restoration_key(other.zone, other.name, other.type, other.before), "2026-0004"),
            )
        elif tamper == "row says open":
            conn.execute("UPDATE records SET open = 1 WHERE record_id = '2026-0001'")
        elif tamper == "row says executed":
            conn.execute("UPDATE records SET executed = 1 WHERE record_id = '2026-0004'")
        elif tamper == "row deleted":
            conn.execute("DELETE FROM records WHERE record_id = '2026-0005'")
    if tamper == "no index":
        monkeypatch.setattr(store_module, "index_of", _no_index)
    assert _apply_questions(portfolio) == expected
