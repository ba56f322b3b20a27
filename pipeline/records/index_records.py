"""The record index's record part (pipeline.records.index): per record what `records list`
filters on and what `plan` asks (its request, whether it was executed), each row bound to its
file's identity and signed with the index key."""

from __future__ import annotations

import contextlib
import hmac
import json
import os
import sqlite3
import stat
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from pipeline.model import RiskLevel
from pipeline.records.index import _EPOCH, _mac, _meta, index_key
from pipeline.records.record import RECORD_ID, ApprovalRole, ChangeRecord, format_utc, utc


def _micros(value: datetime) -> int:
    return (utc(value) - _EPOCH) // timedelta(microseconds=1)


def list_fields(record: ChangeRecord) -> dict[str, Any]:
    """What `records list` filters on, normalised as its filters compare (RecordStore.list)."""
    return {
        "client": record.client,
        "zones": sorted({z.rstrip(".").lower() for z in record.zones}),
        "analysts": sorted({a.casefold() for a in record.analysts}),
        "risk": record.risk.label,
        "when": _micros(record.when),
        "approvers": sorted(
            {a.who.casefold() for a in record.approvals if a.role is not ApprovalRole.ANALYST}
        ),
        "type": record.change_type.value.casefold(),
        "outcome": record.outcome.value if record.outcome else "open",
        "text": f"{record.rationale}\n{record.internal_notes}".casefold(),
        "row": list_row(record),
    }


def list_row(record: ChangeRecord) -> dict[str, Any]:
    """What `records list` prints of a record (its table, JSON and CSV), as the record says it:
    kept in the index so that a listing does not read each file."""
    executed = record.executed_at
    return {
        "id": record.id,
        "client": record.client,
        "zones": list(record.zones),
        "risk": record.risk.label,
        "type": record.change_type.value,
        "executed_at": format_utc(executed) if executed else "",
        "executed_short": executed.strftime("%Y-%m-%d %H:%M") if executed else "-",
        "executed_by": record.executed_by,
        "approvers": [a.who for a in record.approvals if a.role is not ApprovalRole.ANALYST],
        "outcome": record.outcome.value if record.outcome else "open",
        "sealed": record.sealed,
    }


@dataclass(frozen=True)
class RecordFilter:
    """The filters of `records list` (RecordStore.list and list_rows): a record matches when it
    matches every filter given. Dates look at `ChangeRecord.when` (executed, else filed): `since`
    inclusive, `until` exclusive. `analyst` matches the author, any approver, the executor, the
    emergency reviewer or the closer, ignoring case; `approver` only who approved (peer, lead or
    client); `outcome` "open" for a record not yet sealed; `text` a case-insensitive substring of
    the rationale or the internal notes. Applied to `list_fields`: the same test for a row of the
    index and for a record read from its file."""

    client: str | None = None
    domain: str | None = None
    analyst: str | None = None
    risk: RiskLevel | None = None
    since: datetime | None = None
    until: datetime | None = None
    approver: str | None = None
    change_type: str | None = None
    outcome: str | None = None
    text: str | None = None

    def matches(self, f: dict[str, Any]) -> bool:
        return (
            (self.client is None or f["client"] == self.client)
            and (self.domain is None or self.domain.rstrip(".").lower() in f["zones"])
            and (self.analyst is None or self.analyst.casefold() in f["analysts"])
            and (self.risk is None or f["risk"] == self.risk.label)
            and (self.since is None or f["when"] >= _micros(self.since))
            and (self.until is None or f["when"] < _micros(self.until))
            and (self.approver is None or self.approver.casefold() in f["approvers"])
            and (self.change_type is None or f["type"] == self.change_type.casefold())
            and (self.outcome is None or f["outcome"] == self.outcome)
            and (self.text is None or self.text.casefold() in f["text"])
        )


# No filter given: every record matches.
EVERY_RECORD = RecordFilter()


def _identity(st: os.stat_result) -> str:
    return f"{st.st_ino}:{st.st_size}:{st.st_mtime_ns}:{st.st_ctime_ns}"


# id, file identity, request, plan hash, executed, open, fields, mac; then the record's
# restoration keys (`befores`, kept in their own table).
Row = tuple[str, str, str, str, int, int, str, str, tuple[str, ...]]


def _row_mac(
    rid: str, identity: str, request: str, plan: str, executed: int, is_open: int, fields: str
) -> str:
    key = index_key()
    assert key is not None  # open_index hands out no connection without it
    return _mac(key, rid, identity, request, plan, str(executed), str(is_open), fields)


def restoration_key(zone: str, name: str, type_: str, values: Iterable[str]) -> str:
    """How the index names a before-state an emergency may restore: `befores.key`."""
    return json.dumps([zone, name, type_, sorted(values)], ensure_ascii=True)


def _row(record: ChangeRecord, identity: str) -> Row:
    fields = json.dumps(list_fields(record), sort_keys=True, ensure_ascii=True)
    executed = int(record.executed_at is not None)
    is_open = int(executed and not record.sealed)
    mac = _row_mac(
        record.id, identity, record.request_id, record.plan_hash, executed, is_open, fields
    )
    befores = (
        tuple(sorted({restoration_key(i.zone, i.name, i.type, i.before) for i in record.items}))
        if executed
        else ()
    )
    return (
        record.id,
        identity,
        record.request_id,
        record.plan_hash,
        executed,
        is_open,
        fields,
        mac,
        befores,
    )


def _row_holds(row: tuple[Any, ...]) -> bool:
    rid, identity, request, plan, executed, is_open, fields, mac = (str(v) for v in row[:8])
    return hmac.compare_digest(
        mac, _row_mac(rid, identity, request, plan, int(executed), int(is_open), fields)
    )


def put_record(conn: sqlite3.Connection, row: Row) -> None:
    conn.execute(
        "INSERT OR REPLACE INTO records (record_id, file, request, plan, executed, open, "
        "fields, mac) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        row[:8],
    )
    conn.execute("DELETE FROM befores WHERE record_id = ?", (row[0],))
    conn.executemany("INSERT INTO befores VALUES (?, ?)", [(key, row[0]) for key in row[8]])
    conn.execute("DELETE FROM dirty WHERE record_id = ?", (row[0],))


def drop_record(conn: sqlite3.Connection, rid: str) -> None:
    """The record's row and its restoration keys go (its file is gone or not a regular file)."""
    conn.execute("DELETE FROM records WHERE record_id = ?", (rid,))
    conn.execute("DELETE FROM befores WHERE record_id = ?", (rid,))
    conn.execute("DELETE FROM dirty WHERE record_id = ?", (rid,))


def read_row(rid: str, records_dir: Path, load: Callable[[str], ChangeRecord]) -> Row | None:
    path = records_dir / f"{rid}.json"
    try:
        before = os.lstat(path)
    except FileNotFoundError:
        return None
    record = load(rid)  # a file that cannot be read is refused here, as a full read would
    if not stat.S_ISREG(before.st_mode):
        return None
    return _row(record, _identity(before))  # taken before the read: a later edit is re-read


def _sort_key(record_id: str) -> tuple[int, int]:
    year, number = record_id.split("-")
    return int(year), int(number)


def listed(
    conn: sqlite3.Connection, records_dir: Path, load: Callable[[str], ChangeRecord]
) -> list[tuple[str, dict[str, Any]]]:
    """(id, list fields) of every record file, in id order: from the index for each file whose
    identity is the one indexed, read again (and re-indexed) for every other."""
    files: dict[str, str] = {}
    if records_dir.is_dir():
        with os.scandir(records_dir) as found:
            for item in found:
                stem = item.name.removesuffix(".json")
                if item.name.startswith(".") or stem == item.name or not RECORD_ID.match(stem):
                    continue
                files[stem] = _identity(item.stat(follow_symlinks=False))
    indexed = {
        str(row[0]): row
        for row in conn.execute(
            "SELECT record_id, file, request, plan, executed, open, fields, mac FROM records"
        )
    }
    out: list[tuple[str, dict[str, Any]]] = []
    fresh: list[Row] = []
    for rid in sorted(files, key=_sort_key):
        known = indexed.get(rid)
        if known is not None and known[1] == files[rid] and _row_holds(known):
            try:
                out.append((rid, json.loads(known[6])))
                continue
            except ValueError:
                pass  # cannot happen for a row this code signed; read the file
        row = read_row(rid, records_dir, load)
        if row is None:
            # Not a regular file: `load` refused it already, so this is a file that vanished.
            continue
        fresh.append(row)
        out.append((rid, json.loads(row[6])))
    gone = set(indexed) - set(files)
    if fresh or gone:
        with contextlib.suppress(sqlite3.Error):
            conn.execute("BEGIN IMMEDIATE")
            try:
                for row in fresh:
                    put_record(conn, row)
                for rid in gone:
                    drop_record(conn, rid)
                conn.execute("COMMIT")
            except sqlite3.Error:
                conn.execute("ROLLBACK")
                raise
    return out


def refresh(
    conn: sqlite3.Connection, records_dir: Path, load: Callable[[str], ChangeRecord]
) -> None:
    """Read again the records the ledger changed since they were indexed (cost: those records),
    and after a rebuild every record file."""
    if _meta(conn).get("rebuilt") == "1":
        listed(conn, records_dir, load)  # every file read once, then the flag goes
        conn.execute("DELETE FROM meta WHERE key = 'rebuilt'")
    dirty = [str(r) for (r,) in conn.execute("SELECT record_id FROM dirty")]
    if not dirty:
        return
    rows = [(rid, read_row(rid, records_dir, load)) for rid in sorted(dirty, key=_sort_key)]
    conn.execute("BEGIN IMMEDIATE")
    try:
        for rid, row in rows:
            if row is None:
                drop_record(conn, rid)
            else:
                put_record(conn, row)
        conn.execute("COMMIT")
    except sqlite3.Error:
        conn.execute("ROLLBACK")
        raise


class IndexTampered(Exception):
    """A row of the index is not signed with this machine's key: the caller reads the files."""


def _checked(rows: Iterable[tuple[Any, ...]]) -> list[str]:
    """The ids of `rows`, each row's signature checked; IndexTampered at the first that is not
    one this machine's dmarcops wrote."""
    out: list[str] = []
    for row in rows:
        if not _row_holds(row):
            raise IndexTampered(str(row[0]))
        out.append(str(row[0]))
    return sorted(out, key=_sort_key)


def executed_requests(conn: sqlite3.Connection, request_ids: list[str]) -> set[str]:
    """Which of `request_ids` an executed change record names (what `plan` asks); raises
    IndexTampered when a row it would use is not one this machine's dmarcops wrote."""
    out: set[str] = set()
    for rid in request_ids:
        for row in conn.execute(
            "SELECT record_id, file, request, plan, executed, open, fields, mac FROM records WHERE request = ?",
            (rid,),
        ):
            if not _row_holds(row):
                raise IndexTampered(str(row[0]))
            if int(row[4]):
                out.add(rid)
    return out


def count_rows(conn: sqlite3.Connection) -> int:
    return int(conn.execute("SELECT count(*) FROM records").fetchone()[0])


def executed_of_plan(conn: sqlite3.Connection, plan_hash: str) -> list[str]:
    """The executed records of the plan `plan_hash` (an approved plan is applied once)."""
    return _checked(
        conn.execute(
            "SELECT record_id, file, request, plan, executed, open, fields, mac FROM records WHERE plan = ? AND executed = 1",
            (plan_hash,),
        )
    )


def unexecuted_of_plan(conn: sqlite3.Connection, plan_hash: str) -> list[str]:
    """The records of the plan `plan_hash` not executed (opened by an apply that stopped)."""
    return _checked(
        conn.execute(
            "SELECT record_id, file, request, plan, executed, open, fields, mac FROM records "
            "WHERE plan = ? AND executed = 0",
            (plan_hash,),
        )
    )


def executed_of_request(conn: sqlite3.Connection, request_id: str) -> list[str]:
    """The executed records of the change request `request_id` (a request is executed once)."""
    return _checked(
        conn.execute(
            "SELECT record_id, file, request, plan, executed, open, fields, mac FROM records WHERE request = ? AND executed = 1",
            (request_id,),
        )
    )


def open_executed(conn: sqlite3.Connection) -> list[str]:
    """The records executed and not sealed: what the scheduled run may close."""
    return _checked(
        conn.execute(
            "SELECT record_id, file, request, plan, executed, open, fields, mac FROM records WHERE open = 1"
        )
    )


def restoring(conn: sqlite3.Connection, keys: Iterable[str]) -> dict[str, list[str]]:
    """Per restoration key (`restoration_key`), the executed records whose item held it before:
    candidates the caller confirms in each record's file."""
    out: dict[str, list[str]] = {}
    for key in sorted(set(keys)):
        for (rid,) in conn.execute("SELECT record_id FROM befores WHERE key = ?", (key,)):
            out.setdefault(key, []).append(str(rid))
    return out
