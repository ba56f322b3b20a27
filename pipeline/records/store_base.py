"""Where the change records live, reading and searching them (through the record index), and the
plumbing every writer of pipeline.records.store uses: the lock, the ledger as the index knows it,
the append that keeps the index in step."""

from __future__ import annotations

import builtins
import contextlib
import os
import sqlite3
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from pipeline.errors import InputError
from pipeline.gate.identity import Signer
from pipeline.gate.roster import Roster, load_roster
from pipeline.load.files import exists, is_regular, read_bytes
from pipeline.records.index import INDEX_PATH, index_of
from pipeline.records.index_ledger import LedgerView, appended, ledger_view
from pipeline.records.index_records import (
    EVERY_RECORD,
    IndexTampered,
    RecordFilter,
    count_rows,
    drop_record,
    executed_of_plan,
    executed_of_request,
    executed_requests,
    list_fields,
    list_row,
    listed,
    open_executed,
    put_record,
    read_row,
    refresh,
    restoration_key,
    restoring,
    unexecuted_of_plan,
)
from pipeline.records.ledger import (
    LEDGER_NAME,
    Ledger,
    LedgerEntry,
    LedgerEvent,
    exclusive_lock,
)
from pipeline.records.policy_of_record import sealed_policy
from pipeline.records.record import (
    RECORD_ID,
    ChangeRecord,
    utc,
)
from pipeline.records.record_files import (
    RECORDS_DIR,
    UnknownRecordError,
    _check_id,
    _parse,
    _sort_key,
)


class RecordStoreBase:
    def __init__(self, changes_dir: Path) -> None:
        self.changes_dir = changes_dir
        self.records_dir = changes_dir / RECORDS_DIR
        self.ledger = Ledger(changes_dir / LEDGER_NAME)

    def json_path(self, record_id: str) -> Path:
        return self.records_dir / f"{_check_id(record_id)}.json"

    def markdown_path(self, record_id: str) -> Path:
        return self.records_dir / f"{_check_id(record_id)}.md"

    # -- who may write

    def trusted_roster(
        self, entries: builtins.list[LedgerEntry] | LedgerView | None = None
    ) -> Roster:
        """The roster whose keys the next entry must verify with: the last sealed policy's (each
        seal checked to be a lead's), or, before `dmarcops init`, policy/roster.yaml as it is.
        `entries`: the ledger as read (a list, or the index's view); None: the view, now."""
        if entries is None:
            entries = self._policy_entries()
        if isinstance(entries, LedgerView):
            entries = entries.policy_entries()  # the policy lines are all the walk looks at
        found = sealed_policy(self.changes_dir, entries)
        return found[1] if found else load_roster(self.changes_dir.parent)

    # -- the index (pipeline.records.index): a cache of the ledger and the records, never trusted
    # by `audit verify`

    def _policy_entries(self) -> builtins.list[LedgerEntry]:
        """The ledger's first line and policy lines, as the index knows them, caught up (a full
        read without a usable index)."""
        with index_of(self.changes_dir.parent) as conn:
            return ledger_view(self.ledger, conn).policy_entries()

    @contextlib.contextmanager
    def _writing(self) -> Iterator[LedgerView]:
        """The lock every writer holds, and the ledger as it stands under it."""
        with exclusive_lock(self.changes_dir), index_of(self.changes_dir.parent) as conn:
            yield ledger_view(self.ledger, conn, writing=True)

    def _append(
        self,
        view: LedgerView,
        *,
        event: LedgerEvent,
        signer: Signer,
        at: datetime,
        roster: Roster,
        simulated: bool = False,
        record_id: str = "",
        record_sha256: str = "",
        payload: dict[str, object] | None = None,
        durable: bool = True,
    ) -> LedgerEntry:
        """Append one signed event after the view's head, then bring the index up to date in one
        transaction (ledger part, and the record's row read back from its file). A failure of the
        index leaves it behind the ledger: the next run catches up. `durable=False`: the caller
        makes the ledger durable with `ledger.sync()` before it reports the batch recorded."""
        entry = self.ledger.append_after(
            view.seq,
            view.head,
            event=event,
            signer=signer,
            at=at,
            roster=roster,
            simulated=simulated,
            record_id=record_id,
            record_sha256=record_sha256,
            record_prev=view.record_prev(record_id) if record_id else "",
            payload=payload,
            durable=durable,
        )
        line = entry.to_line().encode("utf-8")
        conn = view.conn
        if conn is None:
            view.add(entry, line)
            return entry
        try:
            conn.execute("BEGIN IMMEDIATE")
            view.add(entry, line)
            appended(view)
            row = None
            if record_id and event is not LedgerEvent.PURGED:
                row = read_row(record_id, self.records_dir, self.get)
            if row is not None:
                put_record(conn, row)
            elif record_id:  # purged (its file is removed next), or not a regular file
                drop_record(conn, record_id)
            view.save()
            conn.execute("COMMIT")
        except (sqlite3.Error, InputError):
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
        return entry

    def _append_records(
        self,
        view: LedgerView,
        records: Sequence[ChangeRecord],
        *,
        event: LedgerEvent,
        signer: Signer,
        at: datetime,
        roster: Roster,
        simulated: bool,
    ) -> None:
        """One signed event per record (their files already durable), then the ledger fsynced
        once, and the index brought up to date in one transaction for all of them, committed
        after that fsync. One transaction, not one per line: each SQLite commit costs its own
        fsyncs (three per line was 1,500 of them for an apply of 250 records). Each record's
        row is made from the record written and its file's identity (`read_row` with the record
        in hand: the file was written from it a moment ago, under the same lock).

        A failure of the index rolls back the whole batch's part of it and leaves the rest of
        the batch out of it: it then describes the ledger as it was before the batch, and the
        next run catches up with the lines it missed. It never describes a line whose events it
        lacks."""
        conn = view.conn
        indexing = conn is not None
        if conn is not None:
            try:
                conn.execute("BEGIN IMMEDIATE")
            except sqlite3.Error:
                indexing = False
        try:
            indexing = self._append_each(
                view, records, indexing, event, signer, at, roster, simulated
            )
        except BaseException:
            # A ledger line or its fsync failed: the index keeps the ledger as it was before the
            # batch, and catches up with what was written on the next run.
            if conn is not None and conn.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
            raise
        if indexing and conn is not None:
            try:
                appended(view)
                view.save()
                conn.execute("COMMIT")
            except sqlite3.Error:
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")

    def _append_each(
        self,
        view: LedgerView,
        records: Sequence[ChangeRecord],
        indexing: bool,
        event: LedgerEvent,
        signer: Signer,
        at: datetime,
        roster: Roster,
        simulated: bool,
    ) -> bool:
        """The ledger lines of `_append_records`, and the index's part while it keeps up; False
        once it has dropped out (its transaction rolled back)."""
        conn = view.conn
        for record in records:
            entry = self.ledger.append_after(
                view.seq,
                view.head,
                event=event,
                signer=signer,
                at=at,
                roster=roster,
                simulated=simulated or record.simulated,
                record_id=record.id,
                record_sha256=record.sha256(),
                record_prev=view.record_prev(record.id),
                durable=False,
            )
            line = entry.to_line().encode("utf-8")
            if indexing and conn is not None:
                kept = (view.seq, view.head, view.size, view.lines, view.digest.copy())
                try:
                    view.add(entry, line)
                    row = read_row(record.id, self.records_dir, _given(record))
                    if row is not None:
                        put_record(conn, row)
                    continue
                except sqlite3.Error:
                    with contextlib.suppress(sqlite3.Error):
                        conn.execute("ROLLBACK")
                    indexing = False
                    view.seq, view.head, view.size, view.lines, view.digest = kept
            _advance(view, entry, line)
        self.ledger.sync()
        return indexing

    def _raw(self, record_id: str) -> bytes:
        path = self.json_path(record_id)
        if not exists(path):
            raise UnknownRecordError(
                f"no change record {record_id}",
                hint="`dmarcops records list` shows the records.",
            )
        # Regular files inside the repository only: a record committed as a symbolic link to a
        # file elsewhere (or as a FIFO) is refused by name, never followed or waited on.
        return read_bytes(path, root=self.changes_dir.parent)

    def get(self, record_id: str) -> ChangeRecord:
        return _parse(self._raw(record_id), self.json_path(record_id))

    def all(self) -> builtins.list[ChangeRecord]:
        if not self.records_dir.is_dir():
            return []
        ids = [
            p.stem
            for p in self.records_dir.glob("*.json")
            if not p.name.startswith(".") and RECORD_ID.match(p.stem)
        ]
        return [self.get(i) for i in sorted(ids, key=_sort_key)]

    def overdue_reviews(self, now: datetime) -> builtins.list[ChangeRecord]:
        return [r for r in self.all() if r.review_overdue(utc(now))]

    def list(self, wanted: RecordFilter = EVERY_RECORD) -> builtins.list[ChangeRecord]:
        """The records matching `wanted` (RecordFilter), in id order."""
        return [self.get(str(row["id"])) for row in self.list_rows(wanted)]

    def list_rows(self, wanted: RecordFilter = EVERY_RECORD) -> builtins.list[dict[str, Any]]:
        """What `records list` prints of each record matching `wanted` (`list_row`), in id
        order: from the index, each file read only when it changed since it was indexed; from
        every file when there is no usable index."""
        with index_of(self.changes_dir.parent) as conn:
            if conn is not None:
                try:
                    rows = listed(conn, self.records_dir, self.get)
                except sqlite3.Error:
                    pass
                else:
                    return [dict(f["row"]) for _, f in rows if wanted.matches(f)]
        # No usable index (a link or a FIFO in its place, a read-only checkout): every file.
        return [list_row(r) for r in self.all() if wanted.matches(list_fields(r))]

    def executed_requests(self, request_ids: builtins.list[str]) -> set[str]:
        """Which of `request_ids` an executed record names: from the index (caught up with the
        ledger), so `plan` does not read every record; a full read without a usable index."""
        with index_of(self.changes_dir.parent) as conn:
            if conn is not None:
                try:
                    ledger_view(self.ledger, conn)  # lines appended since: their records marked
                    refresh(conn, self.records_dir, self.get)
                    return executed_requests(conn, request_ids)
                except (sqlite3.Error, IndexTampered):
                    pass
        wanted = set(request_ids)
        return {r.request_id for r in self.all() if r.executed_at is not None} & wanted

    def _indexed(self, ask: Callable[[sqlite3.Connection], Iterable[str]]) -> builtins.list[str]:
        """The record ids the index answers `ask` with, caught up with the ledger first; raises
        _NoIndex when there is no usable index (or a row is not this machine's)."""
        with index_of(self.changes_dir.parent) as conn:
            if conn is not None:
                try:
                    ledger_view(self.ledger, conn)  # lines appended since: their records marked
                    refresh(conn, self.records_dir, self.get)
                    if count_rows(conn) != self._count_files():
                        # A row lost (or a file no row knows): every file's identity compared
                        # and the differing ones read. Counting names costs no file read.
                        listed(conn, self.records_dir, self.get)
                    return sorted(set(ask(conn)), key=_sort_key)
                except (sqlite3.Error, IndexTampered):
                    pass
        raise _NoIndex

    def _count_files(self) -> int:
        if not self.records_dir.is_dir():
            return 0
        with os.scandir(self.records_dir) as found:
            return sum(
                1
                for item in found
                if item.name.endswith(".json")
                and not item.name.startswith(".")
                and RECORD_ID.match(item.name.removesuffix(".json"))
            )

    def where(
        self,
        ask: Callable[[sqlite3.Connection], Iterable[str]],
        keep: Callable[[ChangeRecord], bool],
    ) -> builtins.list[ChangeRecord]:
        """The records for which `keep` holds, in id order. The index names the candidates
        (`ask`), so the cost is theirs, not the history's; each is then read from its file and
        `keep` judged on what the file says: an answer that gates an action never rests on the
        index alone. Without a usable index, every record is read."""
        try:
            ids = self._indexed(ask)
        except _NoIndex:
            return [r for r in self.all() if keep(r)]
        out = []
        for record_id in ids:
            if not exists(self.json_path(record_id)):
                continue  # removed since the index was caught up
            record = self.get(record_id)
            if keep(record):
                out.append(record)
        return out

    def executed_of_plan(self, plan_hash: str) -> builtins.list[ChangeRecord]:
        """The executed records of the plan `plan_hash`."""
        return self.where(
            lambda conn: executed_of_plan(conn, plan_hash),
            lambda r: r.plan_hash == plan_hash and r.executed_at is not None,
        )

    def executed_of_request(self, request_id: str) -> builtins.list[ChangeRecord]:
        """The executed records of the change request `request_id`."""
        return self.where(
            lambda conn: executed_of_request(conn, request_id),
            lambda r: r.request_id == request_id and r.executed_at is not None,
        )

    def unexecuted_of_plan(self, plan_hash: str) -> builtins.list[ChangeRecord]:
        """The records of the plan `plan_hash` opened and never executed (an interrupted apply's)."""
        return self.where(
            lambda conn: unexecuted_of_plan(conn, plan_hash),
            lambda r: r.plan_hash == plan_hash and r.executed_at is None,
        )

    def last_logged(self, record_ids: Iterable[str]) -> dict[str, str]:
        """The hash the ledger's last line for each record logged (records it never logged are
        left out), from the index's view of the ledger: no full read."""
        with index_of(self.changes_dir.parent) as conn:
            view = ledger_view(self.ledger, conn)
            out: dict[str, str] = {}
            for record_id in record_ids:
                last = view.last_event(record_id)
                if last is not None:
                    out[record_id] = last[1]
            return out

    def logged_versions(self, record_id: str) -> builtins.list[str]:
        """Every hash the ledger logged for the record, in order (a full read of the ledger:
        for recovery's rare cases)."""
        return [e.record_sha256 for e in self.ledger.read() if e.record_id == record_id]

    def unlogged_files(self) -> builtins.list[str]:
        """Record files numbered above the highest number the ledger gave in their year: the
        files of a creation cut short before its ledger lines (numbers are given under the lock,
        in order, so nothing the ledger logged is above them). Their names only are read."""
        if not self.records_dir.is_dir():
            return []
        with os.scandir(self.records_dir) as found:
            names = [item.name for item in found if item.name.endswith(".json")]
        ids = [
            stem
            for stem in (name.removesuffix(".json") for name in names)
            if not stem.startswith(".") and RECORD_ID.match(stem)
        ]
        with index_of(self.changes_dir.parent) as conn:
            view = ledger_view(self.ledger, conn)
            highest = {
                year: int(view.next_id(year).split("-")[1]) - 1
                for year in {int(i.split("-")[0]) for i in ids}
            }
        return sorted(
            (i for i in ids if int(i.split("-")[1]) > highest[int(i.split("-")[0])]),
            key=_sort_key,
        )

    def open_executed(self) -> builtins.list[ChangeRecord]:
        """The records executed and not yet sealed."""
        return self.where(open_executed, lambda r: r.executed_at is not None and not r.sealed)

    def restoring(
        self, wanted: Iterable[tuple[str, str, str, tuple[str, ...]]]
    ) -> set[tuple[str, str, str, tuple[str, ...]]]:
        """Which of `wanted` (zone, name, type, values) an executed record held as an item's
        before-state. Each match is confirmed in the record's file."""
        keys = {restoration_key(*w): w for w in wanted}
        try:
            found = self._indexed(
                lambda conn: [r for ids in restoring(conn, keys).values() for r in ids]
            )
        except _NoIndex:
            found = None
        records = (
            [self.get(i) for i in found if exists(self.json_path(i))]
            if found is not None
            else self.all()
        )
        held = {
            restoration_key(i.zone, i.name, i.type, i.before)
            for r in records
            if r.executed_at is not None
            for i in r.items
        }
        return {w for key, w in keys.items() if key in held}

    def reindex(self) -> int:
        """Rebuild the index from the ledger and the record files (`dmarcops records reindex`);
        the number of records indexed. InputError when there is no usable place for it."""
        index = self.changes_dir.parent / INDEX_PATH
        with exclusive_lock(self.changes_dir):
            for name in [index, *(index.with_name(index.name + s) for s in ("-journal",))]:
                if is_regular(name):
                    name.unlink()
            with index_of(self.changes_dir.parent) as conn:
                if conn is None:
                    raise InputError(
                        "the record index cannot be written (is .dmarcops/records.sqlite a link "
                        "or a FIFO, or .dmarcops linked outside the repository?)",
                        file=index,
                        hint="Remove what is in its place; dmarcops works without it, reading "
                        "every record.",
                    )
                ledger_view(self.ledger, conn)
                refresh(conn, self.records_dir, self.get)
                return int(conn.execute("SELECT count(*) FROM records").fetchone()[0])


class _NoIndex(Exception):
    """No usable record index: the caller reads every record."""


def _advance(view: LedgerView, entry: LedgerEntry, line: bytes) -> None:
    """The view past one more line without the index (its transaction was rolled back): the
    head and the hash of the bytes, for the next line's signature. The record events themselves
    are looked up in the index as it was before the batch, which no line of one batch needs
    (each record appears once in it)."""
    view.seq, view.head = entry.seq, entry.entry_sha256
    view.size += len(line)
    view.lines += 1
    view.digest.update(line)


def _given(record: ChangeRecord) -> Callable[[str], ChangeRecord]:
    """A loader that hands back the record just written instead of reading its file again."""

    def load(record_id: str) -> ChangeRecord:
        return record

    return load
