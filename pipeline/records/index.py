"""A rebuildable index of the ledger and the change records: `.dmarcops/records.sqlite` (issue 12,
item 7), so that writing a record, `records list` and `plan` do not re-read the whole history.

This module opens it (and keeps its key); pipeline.records.index_ledger holds its ledger part and
pipeline.records.index_records its record part.

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
import os
import secrets
import sqlite3
import stat
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from pipeline.errors import InputError
from pipeline.load.files import make_dir

INDEX_PATH = Path(".dmarcops") / "records.sqlite"
SCHEMA_VERSION = 4
_SCHEMA = (
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    # The ledger part: per record its last event, per year its highest number, every policy line.
    "CREATE TABLE events (record_id TEXT PRIMARY KEY, event TEXT NOT NULL, "
    "record_sha256 TEXT NOT NULL, mac TEXT NOT NULL)",
    "CREATE TABLE numbers (year INTEGER PRIMARY KEY, highest INTEGER NOT NULL, mac TEXT NOT NULL)",
    "CREATE TABLE policy (seq INTEGER PRIMARY KEY, line TEXT NOT NULL)",
    # Records the ledger changed since their row was written: read again before the next answer.
    "CREATE TABLE dirty (record_id TEXT PRIMARY KEY)",
    # The record part: what `records list`, `plan` and `apply` ask, bound to the file's identity.
    # `open`: executed and not sealed (what the scheduled run closes).
    "CREATE TABLE records (record_id TEXT PRIMARY KEY, file TEXT NOT NULL, "
    "request TEXT NOT NULL, plan TEXT NOT NULL, executed INTEGER NOT NULL, "
    "open INTEGER NOT NULL, fields TEXT NOT NULL, mac TEXT NOT NULL)",
    "CREATE INDEX records_request ON records(request)",
    "CREATE INDEX records_plan ON records(plan)",
    "CREATE INDEX records_open ON records(open)",
    # Each executed record's items as they were before it (zone, name, type, sorted values): what
    # an emergency that restores one may put back. A hint only: the record file is read to
    # confirm every match.
    "CREATE TABLE befores (key TEXT NOT NULL, record_id TEXT NOT NULL)",
    "CREATE INDEX befores_key ON befores(key)",
    "CREATE INDEX befores_record ON befores(record_id)",
)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
KEY_NAME = "records-index.key"
_key_cache: dict[str, bytes | None] = {}
_places: dict[tuple[str, str], str] = {}


def _state_dir() -> Path:
    # Where the crash logs go too (pipeline.commands.common): the user's, not the repository's.
    state = os.environ.get("XDG_STATE_HOME", "")
    base = Path(state) if state and os.path.isabs(state) else Path.home() / ".local" / "state"
    return base / "dmarcops"


def index_key() -> bytes | None:
    """The secret the index's answers are signed with (HMAC), kept outside the repository
    (mode 0600 in the user's state directory): an index planted in, or edited through, the
    repository cannot forge a row. None when it cannot be kept: the index is then not used."""
    # Asked for every row signed or checked (thousands per apply): the place is worked out from
    # the environment once per value of it, the key read once per place.
    env = (os.environ.get("XDG_STATE_HOME", ""), os.environ.get("HOME", ""))
    where = _places.get(env) or str(_state_dir())
    _places[env] = where
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
    if key is not None:  # not cached when missing: another process may be writing it now
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


def _meta(conn: sqlite3.Connection) -> dict[str, str]:
    return {str(k): str(v) for k, v in conn.execute("SELECT key, value FROM meta")}
