"""A rebuildable index of the ledger and the change records: `.dmarcops/records.sqlite` (issue 12,
item 7), so that writing a record, `records list` and `plan` do not re-read the whole history.

It is a cache, never the source of truth:

- `audit verify` never opens it: it reads changes/ledger.jsonl and changes/records/ itself.
- Its ledger part (each record's last event, the highest number per year, the policy lines, the
  head) is trusted only for the ledger bytes it was built from: it keeps their length and their
  SHA-256, and every use re-hashes that prefix of the file (a few tens of milliseconds for 50k
  records; parsing it took seconds). A prefix that no longer hashes the same (a line edited,
  deleted, the ledger replaced) is read again in full, so a damaged line still stops a writer by
  line number. Lines appended after it (by another clone, an older dmarcops, by hand) are read and
  added: the cost is the new lines, not the history.
- Its record part (what `records list` filters on, per record) is bound to each file's inode,
  size, mtime and ctime: a row whose file differs is read again, a file without a row is read, a
  row without a file is dropped. A row copied from elsewhere (another machine, a commit) cannot
  match the inode and ctime of a file checked out here.
- Missing, corrupt, of another schema: rebuilt. Not a regular file (a link, a FIFO: the
  repository is input from many hands), or unwritable: bypassed, and every answer comes from a
  full read of changes/ as before. Nothing in it ever causes a traceback.

Writers hold `exclusive_lock` and update it in the same step as their ledger append, in one SQLite
transaction: a kill -9 leaves the index before or after the write, and a ledger line the index
missed is caught up on the next run. Readers that catch up (list, plan) write only if nobody
advanced the index meanwhile.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import os
import secrets
import sqlite3
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from pipeline.errors import InputError
from pipeline.load.files import exists, make_dir, read_bytes
from pipeline.records.ledger import (
    GENESIS,
    Ledger,
    LedgerEntry,
    LedgerEvent,
    decode_ledger,
    parse_entries,
)
from pipeline.records.record import RECORD_ID, ApprovalRole, ChangeRecord, utc

INDEX_PATH = Path(".dmarcops") / "records.sqlite"
SCHEMA_VERSION = 2
_SCHEMA = (
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    # The ledger part: per record its last event, per year its highest number, every policy line.
    "CREATE TABLE events (record_id TEXT PRIMARY KEY, event TEXT NOT NULL, "
    "record_sha256 TEXT NOT NULL, mac TEXT NOT NULL)",
    "CREATE TABLE numbers (year INTEGER PRIMARY KEY, highest INTEGER NOT NULL, mac TEXT NOT NULL)",
    "CREATE TABLE policy (seq INTEGER PRIMARY KEY, line TEXT NOT NULL)",
    # Records the ledger changed since their row was written: read again before the next answer.
    "CREATE TABLE dirty (record_id TEXT PRIMARY KEY)",
    # The record part: what `records list` and `plan` ask, bound to the file's identity.
    "CREATE TABLE records (record_id TEXT PRIMARY KEY, file TEXT NOT NULL, "
    "request TEXT NOT NULL, executed INTEGER NOT NULL, fields TEXT NOT NULL, mac TEXT NOT NULL)",
    "CREATE INDEX records_request ON records(request)",
)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
KEY_NAME = "records-index.key"
_key_cache: dict[str, bytes | None] = {}


def _state_dir() -> Path:
    # Where the crash logs go too (pipeline.commands.common): the user's, not the repository's.
    state = os.environ.get("XDG_STATE_HOME", "")
    base = Path(state) if state and os.path.isabs(state) else Path.home() / ".local" / "state"
    return base / "dmarcops"


def index_key() -> bytes | None:
    """The secret the index's answers are signed with (HMAC), kept outside the repository
    (mode 0600 in the user's state directory): an index planted in, or edited through, the
    repository cannot forge a row. None when it cannot be kept: the index is then not used."""
    where = str(_state_dir())
    if where in _key_cache:
        return _key_cache[where]
    path = Path(where) / KEY_NAME
    key: bytes | None = None
    try:
        os.makedirs(where, mode=0o700, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        except FileExistsError:
            pass
        else:
            with os.fdopen(fd, "wb") as handle:
                handle.write(secrets.token_bytes(32))
                handle.flush()
                os.fsync(handle.fileno())
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        try:
            st = os.fstat(fd)
            data = os.read(fd, 64) if stat.S_ISREG(st.st_mode) else b""
        finally:
            os.close(fd)
        key = data if len(data) == 32 else None
    except OSError:
        key = None
    _key_cache[where] = key
    return key


def _mac(key: bytes, *parts: str) -> str:
    message = "\x1f".join(parts).encode("utf-8", "surrogatepass")
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def _signed(*parts: str) -> str:
    key = index_key()
    assert key is not None  # open_index hands out no connection without it
    return _mac(key, *parts)


def _expected_schema() -> list[tuple[str, str, str | None]]:
    with contextlib.closing(sqlite3.connect(":memory:")) as conn:
        for statement in _SCHEMA:
            conn.execute(statement)
        return _schema_of(conn)


def _schema_of(conn: sqlite3.Connection) -> list[tuple[str, str, str | None]]:
    return [
        (str(kind), str(name), sql)
        for kind, name, sql in conn.execute(
            "SELECT type, name, sql FROM sqlite_master ORDER BY type, name"
        )
    ]


def _sidecars(path: Path) -> list[Path]:
    return [path, *(path.with_name(path.name + s) for s in ("-journal", "-wal", "-shm"))]


def open_index(root: Path) -> sqlite3.Connection | None:
    """The index of the repository at `root`, created or rebuilt when missing, corrupt or of
    another schema; None when it cannot be used (then every caller reads changes/ in full)."""
    path = root / INDEX_PATH
    if index_key() is None:
        return None
    try:
        make_dir(path.parent, root=root)  # a .dmarcops linked outside the repository: refused
    except InputError:
        return None
    for attempt in (1, 2):
        for name in _sidecars(path):
            try:
                mode = os.lstat(name).st_mode
            except FileNotFoundError:
                continue
            except OSError:
                return None
            if not stat.S_ISREG(mode):
                # A link or a FIFO planted where SQLite would write: never written through,
                # never waited on, and not ours to remove.
                return None
        conn: sqlite3.Connection | None = None
        try:
            conn = sqlite3.connect(path, timeout=30, isolation_level=None)
            conn.execute("PRAGMA trusted_schema = OFF")  # no functions run from its schema
            conn.execute("PRAGMA synchronous = NORMAL")  # a cache: the journal keeps it whole
            if _ready(conn):
                return conn
        except sqlite3.Error:
            pass
        if conn is not None:
            conn.close()
        if attempt == 1:
            # Corrupt, or another program's file: the index is rebuildable, start it again.
            for name in _sidecars(path):
                with contextlib.suppress(OSError):
                    if stat.S_ISREG(os.lstat(name).st_mode):
                        os.unlink(name)
    return None


def _ready(conn: sqlite3.Connection) -> bool:
    """Whether the index holds exactly this schema (creating it in an empty file)."""
    if _schema_of(conn) == _expected_schema():
        return int(conn.execute("PRAGMA user_version").fetchone()[0]) == SCHEMA_VERSION
    conn.execute("BEGIN IMMEDIATE")
    try:
        if _schema_of(conn):
            # Someone else's tables (another version, a planted file): not trusted, rebuilt.
            conn.execute("ROLLBACK")
            return _schema_of(conn) == _expected_schema() and (
                int(conn.execute("PRAGMA user_version").fetchone()[0]) == SCHEMA_VERSION
            )
        for statement in _SCHEMA:
            conn.execute(statement)
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        conn.execute("COMMIT")
    except sqlite3.Error:
        with contextlib.suppress(sqlite3.Error):
            conn.execute("ROLLBACK")
        raise
    return True


@contextlib.contextmanager
def index_of(root: Path) -> Iterator[sqlite3.Connection | None]:
    conn = open_index(root)
    try:
        yield conn
    finally:
        if conn is not None:
            conn.close()


# --- the ledger part ----------------------------------------------------------------------------


@dataclass
class LedgerView:
    """What a writer needs to know about the ledger without holding every entry: its head, each
    record's last event, the highest number of each year, the first line and the policy lines
    (the sealed policy is re-checked from them). Backed by the index, or by dictionaries built
    from a full read when there is no usable index."""

    ledger: Ledger
    conn: sqlite3.Connection | None
    seq: int = 0
    head: str = GENESIS
    size: int = 0
    lines: int = 0
    digest: Any = field(default_factory=hashlib.sha256)
    first: LedgerEntry | None = None
    policy: list[LedgerEntry] = field(default_factory=list)
    _events: dict[str, tuple[LedgerEvent, str]] = field(default_factory=dict)
    _numbers: dict[int, int] = field(default_factory=dict)

    def policy_entries(self) -> list[LedgerEntry]:
        """The first line and every policy line, in order: what `sealed_policy` walks (it checks
        the genesis pin against the first, and that the genesis seal is the first line)."""
        rest = [e for e in self.policy if self.first is None or e.seq != self.first.seq]
        return ([self.first] if self.first is not None else []) + rest

    def _full(self) -> LedgerView:
        """The same answers from a full read: for a row of the index that is not signed with
        this machine's key (edited in place), which is then not believed."""
        return ledger_view(self.ledger, None)

    def last_event(self, record_id: str) -> tuple[LedgerEvent, str] | None:
        if self.conn is None:
            return self._events.get(record_id)
        row = self.conn.execute(
            "SELECT event, record_sha256, mac FROM events WHERE record_id = ?", (record_id,)
        ).fetchone()
        if row is None:
            return None
        event, digest, mac = (str(v) for v in row)
        if not hmac.compare_digest(mac, _signed("event", record_id, event, digest)):
            return self._full().last_event(record_id)
        return LedgerEvent(event), digest

    def next_id(self, year: int) -> str:
        if self.conn is None:
            highest = self._numbers.get(year, 0)
        else:
            row = self.conn.execute(
                "SELECT highest, mac FROM numbers WHERE year = ?", (year,)
            ).fetchone()
            highest = int(row[0]) if row else 0
            if row and not hmac.compare_digest(
                str(row[1]), _signed("number", str(year), str(highest))
            ):
                return self._full().next_id(year)
        return f"{year:04d}-{highest + 1:04d}"

    def record_prev(self, record_id: str) -> str:
        last = self.last_event(record_id)
        return last[1] if last else GENESIS

    def add(self, entry: LedgerEntry, line: bytes) -> None:
        """Take in one more line of the ledger (read, or just appended)."""
        self.seq, self.head = entry.seq, entry.entry_sha256
        self.size += len(line)
        self.lines += 1
        self.digest.update(line)
        if self.first is None:
            self.first = entry
        if entry.event is LedgerEvent.POLICY:
            self.policy.append(entry)
            if self.conn is not None:
                self.conn.execute(
                    "INSERT OR REPLACE INTO policy VALUES (?, ?)", (entry.seq, entry.to_line())
                )
        if not entry.is_record_event:
            return
        rid = entry.record_id
        year, number = (int(part) for part in rid.split("-"))
        if self.conn is None:
            self._events[rid] = (entry.event, entry.record_sha256)
            if entry.event is LedgerEvent.CREATED:
                self._numbers[year] = max(self._numbers.get(year, 0), number)
            return
        self.conn.execute(
            "INSERT OR REPLACE INTO events VALUES (?, ?, ?, ?)",
            (
                rid,
                entry.event.value,
                entry.record_sha256,
                _signed("event", rid, entry.event.value, entry.record_sha256),
            ),
        )
        if entry.event is LedgerEvent.CREATED:
            row = self.conn.execute(
                "SELECT highest FROM numbers WHERE year = ?", (year,)
            ).fetchone()
            highest = max(number, int(row[0]) if row else 0)
            self.conn.execute(
                "INSERT OR REPLACE INTO numbers VALUES (?, ?, ?)",
                (year, highest, _signed("number", str(year), str(highest))),
            )
        self.conn.execute("INSERT OR IGNORE INTO dirty VALUES (?)", (rid,))

    def save(self) -> None:
        """Record in the index which ledger bytes it now describes (inside the caller's
        transaction)."""
        if self.conn is None:
            return
        values = {
            "ledger_size": str(self.size),
            "ledger_sha256": self.digest.hexdigest(),
            "ledger_lines": str(self.lines),
            "seq": str(self.seq),
            "head": self.head,
            "first": self.first.to_line() if self.first else "",
        }
        values["mac"] = _meta_mac(values, [e.to_line() for e in self.policy])
        self.conn.executemany("INSERT OR REPLACE INTO meta VALUES (?, ?)", values.items())


_META_KEYS = ("ledger_size", "ledger_sha256", "ledger_lines", "seq", "head", "first")


def _meta_mac(values: dict[str, str], policy: list[str]) -> str:
    """The ledger part's summary and its policy lines, signed: an index edited to drop a later
    policy seal (and judge by an older roster) is rebuilt, not believed."""
    key = index_key()
    assert key is not None  # open_index hands out no connection without it
    return _mac(key, *(values.get(k, "") for k in _META_KEYS), *policy)


def _meta(conn: sqlite3.Connection) -> dict[str, str]:
    return {str(k): str(v) for k, v in conn.execute("SELECT key, value FROM meta")}


def _ledger_bytes(ledger: Ledger) -> bytes:
    if not exists(ledger.path):
        return b""
    # The same checks as Ledger.lines: a regular file inside the repository, within the limit.
    return read_bytes(ledger.path, root=ledger.path.parent.parent, log=True)


def ledger_view(ledger: Ledger, conn: sqlite3.Connection | None) -> LedgerView:
    """The ledger as the index knows it, caught up with lines appended since; rebuilt (and a
    damaged line refused by number, LedgerCorrupt) when the prefix it knows has changed. Without
    an index: a full read, as before the index existed."""
    raw = _ledger_bytes(ledger)
    if conn is not None:
        try:
            view = _from_index(ledger, conn, raw)
        except sqlite3.Error:
            view = None
        if view is not None:
            return view
    view = LedgerView(ledger, None)
    lines = decode_ledger(raw, ledger.path)
    entries = parse_entries(lines, ledger.path)
    for entry, line in zip(entries, raw.split(b"\n"), strict=False):
        view.add(entry, line + b"\n")
    view.size = len(raw)
    view.digest = hashlib.sha256(raw)
    if conn is not None:
        with contextlib.suppress(sqlite3.Error):
            return _rebuild_ledger_part(conn, view, entries, raw)
    return view


def _from_index(ledger: Ledger, conn: sqlite3.Connection, raw: bytes) -> LedgerView | None:
    meta = _meta(conn)
    try:
        size, lines, seq = (int(meta[k]) for k in ("ledger_size", "ledger_lines", "seq"))
        first = LedgerEntry.from_line(meta["first"]) if meta["first"] else None
        policy = [
            LedgerEntry.from_line(str(line))
            for (line,) in conn.execute("SELECT line FROM policy ORDER BY seq")
        ]
    except (KeyError, ValueError):
        return None  # never built, or not what this code writes: rebuilt from the ledger
    if not hmac.compare_digest(meta.get("mac", ""), _meta_mac(meta, [e.to_line() for e in policy])):
        return None  # not what this machine's dmarcops wrote
    if size > len(raw):
        return None  # truncated
    digest = hashlib.sha256(raw[:size])
    if digest.hexdigest() != meta.get("ledger_sha256"):
        return None  # a known line changed: read it all again (and refuse a damaged line)
    view = LedgerView(
        ledger,
        conn,
        seq=seq,
        head=meta.get("head", GENESIS),
        size=size,
        lines=lines,
        digest=digest,
        first=first,
        policy=policy,
    )
    if size == len(raw):
        return view
    tail = raw[size:]
    entries = parse_entries(
        decode_ledger(tail, ledger.path, size, lines + 1), ledger.path, lines + 1
    )
    conn.execute("BEGIN IMMEDIATE")
    try:
        if _meta(conn).get("ledger_size") != str(size):
            conn.execute("ROLLBACK")
            return _from_index(ledger, conn, raw)  # another process caught up meanwhile
        for entry, line in zip(entries, tail.split(b"\n"), strict=False):
            view.add(entry, line + b"\n")
        view.size, view.digest = len(raw), hashlib.sha256(raw)
        view.save()
        conn.execute("COMMIT")
    except BaseException:
        with contextlib.suppress(sqlite3.Error):
            conn.execute("ROLLBACK")
        raise
    return view


def _rebuild_ledger_part(
    conn: sqlite3.Connection, memory: LedgerView, entries: list[LedgerEntry], raw: bytes
) -> LedgerView:
    """Replace the index's ledger part with what a full read found. The record rows stay (each
    is bound to its file's identity); the next `refresh` checks every file once, since a rewritten
    ledger says nothing about which record files changed with it."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        for table in ("meta", "events", "numbers", "policy", "dirty"):
            conn.execute(f"DELETE FROM {table}")  # noqa: S608 (fixed names)
        view = LedgerView(memory.ledger, conn)
        for entry, line in zip(entries, raw.split(b"\n"), strict=False):
            view.add(entry, line + b"\n")
        view.size, view.digest = len(raw), hashlib.sha256(raw)
        view.save()
        conn.execute("INSERT OR REPLACE INTO meta VALUES ('rebuilt', '1')")
        conn.execute("COMMIT")
    except BaseException:
        with contextlib.suppress(sqlite3.Error):
            conn.execute("ROLLBACK")
        raise
    return view


# --- the record part ----------------------------------------------------------------------------


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
    }


@dataclass(frozen=True)
class ListFilter:
    """The filters of `records list`, applied to `list_fields` (the same test for a row of the
    index and for a record read from its file)."""

    client: str | None = None
    domain: str | None = None
    analyst: str | None = None
    risk: str | None = None
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
            and (self.risk is None or f["risk"] == self.risk)
            and (self.since is None or f["when"] >= _micros(self.since))
            and (self.until is None or f["when"] < _micros(self.until))
            and (self.approver is None or self.approver.casefold() in f["approvers"])
            and (self.change_type is None or f["type"] == self.change_type.casefold())
            and (self.outcome is None or f["outcome"] == self.outcome)
            and (self.text is None or self.text.casefold() in f["text"])
        )


def _identity(st: os.stat_result) -> str:
    return f"{st.st_ino}:{st.st_size}:{st.st_mtime_ns}:{st.st_ctime_ns}"


Row = tuple[str, str, str, int, str, str]  # id, file identity, request, executed, fields, mac


def _row_mac(rid: str, identity: str, request: str, executed: int, fields: str) -> str:
    key = index_key()
    assert key is not None  # open_index hands out no connection without it
    return _mac(key, rid, identity, request, str(executed), fields)


def _row(record: ChangeRecord, identity: str) -> Row:
    fields = json.dumps(list_fields(record), sort_keys=True, ensure_ascii=True)
    executed = int(record.executed_at is not None)
    mac = _row_mac(record.id, identity, record.request_id, executed, fields)
    return (record.id, identity, record.request_id, executed, fields, mac)


def _row_holds(row: tuple[Any, ...]) -> bool:
    rid, identity, request, executed, fields, mac = (str(v) for v in row)
    return hmac.compare_digest(mac, _row_mac(rid, identity, request, int(executed), fields))


def put_record(conn: sqlite3.Connection, row: Row) -> None:
    conn.execute("INSERT OR REPLACE INTO records VALUES (?, ?, ?, ?, ?, ?)", row)
    conn.execute("DELETE FROM dirty WHERE record_id = ?", (row[0],))


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
            "SELECT record_id, file, request, executed, fields, mac FROM records"
        )
    }
    out: list[tuple[str, dict[str, Any]]] = []
    fresh: list[Row] = []
    for rid in sorted(files, key=_sort_key):
        known = indexed.get(rid)
        if known is not None and known[1] == files[rid] and _row_holds(known):
            try:
                out.append((rid, json.loads(known[4])))
                continue
            except ValueError:
                pass  # cannot happen for a row this code signed; read the file
        row = read_row(rid, records_dir, load)
        if row is None:
            # Not a regular file: `load` refused it already, so this is a file that vanished.
            continue
        fresh.append(row)
        out.append((rid, json.loads(row[4])))
    gone = set(indexed) - set(files)
    if fresh or gone:
        with contextlib.suppress(sqlite3.Error):
            conn.execute("BEGIN IMMEDIATE")
            try:
                for row in fresh:
                    put_record(conn, row)
                conn.executemany("DELETE FROM records WHERE record_id = ?", [(r,) for r in gone])
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
                conn.execute("DELETE FROM records WHERE record_id = ?", (rid,))
                conn.execute("DELETE FROM dirty WHERE record_id = ?", (rid,))
            else:
                put_record(conn, row)
        conn.execute("COMMIT")
    except sqlite3.Error:
        conn.execute("ROLLBACK")
        raise


class IndexTampered(Exception):
    """A row of the index is not signed with this machine's key: the caller reads the files."""


def executed_requests(conn: sqlite3.Connection, request_ids: list[str]) -> set[str]:
    """Which of `request_ids` an executed change record names (what `plan` asks); raises
    IndexTampered when a row it would use is not one this machine's dmarcops wrote."""
    out: set[str] = set()
    for rid in request_ids:
        for row in conn.execute(
            "SELECT record_id, file, request, executed, fields, mac FROM records WHERE request = ?",
            (rid,),
        ):
            if not _row_holds(row):
                raise IndexTampered(str(row[0]))
            if int(row[3]):
                out.add(rid)
    return out
