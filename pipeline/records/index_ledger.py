"""The record index's ledger part (pipeline.records.index): what a writer needs to know about the
ledger (head, each record's last event, the highest number of each year, the policy lines),
trusted only for the ledger bytes whose SHA-256 it keeps, caught up with lines appended since."""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import os
import sqlite3
import stat
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.load.files import exists, read_bytes
from pipeline.records.index import _mac, _meta, _signed, index_key
from pipeline.records.ledger import (
    GENESIS,
    Ledger,
    LedgerEntry,
    LedgerEvent,
    decode_ledger,
    parse_entries,
)


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
            # The file these bytes are, once a reader has hashed it settled (ledger_view).
            "ledger_file": "",
        }
        values["mac"] = _meta_mac(values, [e.to_line() for e in self.policy])
        self.conn.executemany("INSERT OR REPLACE INTO meta VALUES (?, ?)", values.items())


_META_KEYS = (
    "ledger_size",
    "ledger_sha256",
    "ledger_lines",
    "seq",
    "head",
    "first",
    "ledger_file",
)


def _meta_mac(values: dict[str, str], policy: list[str]) -> str:
    """The ledger part's summary and its policy lines, signed: an index edited to drop a later
    policy seal (and judge by an older roster) is rebuilt, not believed."""
    key = index_key()
    assert key is not None  # open_index hands out no connection without it
    return _mac(key, *(values.get(k, "") for k in _META_KEYS), *policy)


def _ledger_bytes(ledger: Ledger) -> bytes:
    if not exists(ledger.path):
        return b""
    # The same checks as Ledger.lines: a regular file inside the repository, within the limit.
    return read_bytes(ledger.path, root=ledger.path.parent.parent, log=True)


# Per ledger, in this process: the file's identity when it was last hashed, and that hash. A
# command asks for the policy of record several times (plan: the portfolio, the roster, the
# requests); an unchanged file is hashed once.
_hashed: dict[str, tuple[tuple[int, int, int, int, int], Any]] = {}
_SETTLED = 2_000_000_000  # ns


def _identity(path: Path) -> tuple[int, int, int, int, int] | None:
    try:
        st = os.lstat(path)
    except OSError:
        return None
    if not stat.S_ISREG(st.st_mode):
        return None
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def ledger_view(
    ledger: Ledger, conn: sqlite3.Connection | None, *, writing: bool = False
) -> LedgerView:
    """The ledger as the index knows it, caught up with lines appended since; rebuilt (and a
    damaged line refused by number, LedgerCorrupt) when the prefix it knows has changed. Without
    an index: a full read, as before the index existed.

    A reader (not `writing`: plan, the policy of record) takes the index's word without reading
    the file when the file is the very one a reader hashed before: same device, inode, size,
    mtime and ctime, recorded under the index's key. That is the rule the record rows follow
    (index_records), and git's for its own index: any write to the file moves its ctime, which
    no user can set back. A writer, who appends and must extend the hash, always reads it (once
    per process)."""
    identity = _identity(ledger.path)  # taken before reading: a later change is read again
    known = _hashed.get(str(ledger.path))
    if conn is not None and identity is not None and known is not None and known[0] == identity:
        try:
            view = _from_index(ledger, conn, None, known[1])
        except sqlite3.Error:
            view = None
        if view is not None:
            return view
    if conn is not None and identity is not None and not writing:
        try:
            view = _from_index(ledger, conn, None, same_file=_identity_text(identity))
        except sqlite3.Error:
            view = None
        if view is not None:
            return view
    raw = _ledger_bytes(ledger)
    view = _view_of(ledger, conn, raw)
    # Only for a file not changed in the last seconds (git's "racily clean" rule; ctime cannot be
    # set back): timestamps are as coarse as the kernel's clock tick, so an edit right after this
    # one could otherwise leave the same size, mtime and ctime.
    settled = identity is not None and time.time_ns() - max(identity[3:]) > _SETTLED
    if identity is not None and settled and view.size == len(raw):
        _hashed[str(ledger.path)] = (identity, view.digest.copy())
        if conn is not None:
            with contextlib.suppress(sqlite3.Error):
                _remember_file(conn, view, _identity_text(identity))
    return view


def _identity_text(identity: tuple[int, int, int, int, int]) -> str:
    return ":".join(str(part) for part in identity)


def _remember_file(conn: sqlite3.Connection, view: LedgerView, identity: str) -> None:
    """Record, under the index's key, that the bytes the index describes are the file `identity`
    (only when the index describes exactly the bytes just hashed)."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        meta = _meta(conn)
        policy = [str(line) for (line,) in conn.execute("SELECT line FROM policy ORDER BY seq")]
        if (
            meta.get("ledger_size") != str(view.size)
            or meta.get("ledger_sha256") != view.digest.hexdigest()
            or not hmac.compare_digest(meta.get("mac", ""), _meta_mac(meta, policy))
        ):
            conn.execute("ROLLBACK")
            return
        meta["ledger_file"] = identity
        updates = {"ledger_file": identity, "mac": _meta_mac(meta, policy)}
        conn.executemany("INSERT OR REPLACE INTO meta VALUES (?, ?)", updates.items())
        conn.execute("COMMIT")
    except BaseException:
        with contextlib.suppress(sqlite3.Error):
            conn.execute("ROLLBACK")
        raise


def appended(view: LedgerView) -> None:
    """After this process appended to the ledger under `exclusive_lock`: the bytes now on disk are
    the ones it hashed (the view's digest took in the line it wrote), so the next write of this
    process need not read and hash the ledger again. Taken only when the file's size is exactly
    what the view knows (no one else wrote), and never for a file this process did not write."""
    identity = _identity(view.ledger.path)
    if identity is not None and identity[2] == view.size:
        _hashed[str(view.ledger.path)] = (identity, view.digest.copy())


def _view_of(ledger: Ledger, conn: sqlite3.Connection | None, raw: bytes) -> LedgerView:
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


def _from_index(
    ledger: Ledger,
    conn: sqlite3.Connection,
    raw: bytes | None,
    hashed: Any = None,
    same_file: str = "",
) -> LedgerView | None:
    """The index's view of the ledger `raw` (or, when None, of the unchanged file whose SHA-256
    `hashed` this process already took, or, for a reader, of the file whose identity is
    `same_file` when the index recorded that identity); None when the index cannot say (rebuild
    it, or read the file). A view taken by identity has no digest: nothing may be appended to
    it."""
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
    if raw is None and same_file:
        if meta.get("ledger_file") != same_file:
            return None  # not the file a reader hashed (recorded only at the size it describes)
        return LedgerView(
            ledger, conn, seq=seq, head=meta.get("head", GENESIS), size=size, lines=lines,
            digest=None, first=first, policy=policy,
        )  # fmt: skip
    if raw is None:
        if hashed is None or hashed.hexdigest() != meta.get("ledger_sha256"):
            return None  # the index is not at the end of the file: read it and catch up
        digest = hashed.copy()
    else:
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
    if raw is None or size == len(raw):
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
