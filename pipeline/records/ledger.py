"""The append-only, hash-chained ledger of change-record events: `changes/ledger.jsonl`.

Seed ("Audit trail and compliance"): "Immutable record. Change records cannot be edited after
closure." A record file alone cannot prove that; the ledger can. Each line says which record changed,
how (created, updated, sealed), the SHA-256 of the record's canonical bytes after the event, and
chains to the line before it, so deleting, reordering or editing a line breaks the chain, and editing
a record file breaks its match with its last ledger line.

`record_prev` chains the events of one record (the record_sha256 of its previous event), so a deleted
line names the record it belonged to, not only the place where the chain broke.

All writers hold an exclusive flock on `changes/.lock` (see `exclusive_lock`): appends never
interleave and record numbers are allocated without gaps or duplicates.
"""

from __future__ import annotations

import enum
import fcntl
import hashlib
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from pipeline.errors import GateRefused
from pipeline.load.files import exists, make_dir, open_append, open_lock, read_bytes
from pipeline.records.record import (
    RECORD_ID,
    canonical_bytes,
    format_utc,
    parse_wire_time,
    utc,
)

GENESIS = "0" * 64
LEDGER_NAME = "ledger.jsonl"
LOCK_NAME = ".lock"
_SHA256 = frozenset("0123456789abcdef")
_KEYS = frozenset(
    {"seq", "record_id", "event", "record_sha256", "record_prev", "at", "prev", "entry_sha256"}
)


class LedgerEvent(enum.StrEnum):
    CREATED = "created"
    UPDATED = "updated"
    SEALED = "sealed"


class LedgerCorrupt(GateRefused):
    """A ledger line cannot be read, so nothing can be appended after it. Exit 2."""


def _is_sha256(value: str) -> bool:
    return len(value) == 64 and set(value) <= _SHA256


@dataclass(frozen=True)
class LedgerEntry:
    seq: int  # 1, 2, 3, ... with no gaps
    record_id: str
    event: LedgerEvent
    record_sha256: str  # the record's canonical bytes after this event
    record_prev: str  # record_sha256 of this record's previous event; GENESIS for `created`
    at: datetime  # UTC
    prev: str  # entry_sha256 of the line before; GENESIS for the first line
    entry_sha256: str  # over the canonical JSON of all the fields above

    def __post_init__(self) -> None:
        object.__setattr__(self, "at", utc(self.at))

    def body(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "record_id": self.record_id,
            "event": self.event.value,
            "record_sha256": self.record_sha256,
            "record_prev": self.record_prev,
            "at": format_utc(self.at),
            "prev": self.prev,
        }

    def computed_sha256(self) -> str:
        return hashlib.sha256(canonical_bytes(self.body())).hexdigest()

    def to_json(self) -> dict[str, Any]:
        return {**self.body(), "entry_sha256": self.entry_sha256}

    def to_line(self) -> str:
        return canonical_bytes(self.to_json()).decode("utf-8") + "\n"

    @classmethod
    def make(
        cls,
        *,
        seq: int,
        record_id: str,
        event: LedgerEvent,
        record_sha256: str,
        record_prev: str,
        at: datetime,
        prev: str,
    ) -> LedgerEntry:
        unsigned = cls(seq, record_id, event, record_sha256, record_prev, at, prev, "")
        return cls(
            seq, record_id, event, record_sha256, record_prev, at, prev, unsigned.computed_sha256()
        )

    @classmethod
    def from_line(cls, line: str) -> LedgerEntry:
        """One line as written; raises ValueError saying what is wrong. Hashes are not checked."""
        try:
            data = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ValueError(f"not JSON ({exc.msg})") from None
        except RecursionError:  # thousands of nested brackets: no entry looks like that
            raise ValueError("not a ledger entry (nested too deeply)") from None
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
        if set(data) != _KEYS:
            raise ValueError(f"fields {sorted(data)} are not {sorted(_KEYS)}")
        texts = {k: data[k] for k in _KEYS - {"seq"}}
        for key, value in texts.items():
            if not isinstance(value, str):
                raise ValueError(f"{key} is not a string")
        seq = data["seq"]
        if not isinstance(seq, int) or isinstance(seq, bool) or seq < 1:
            raise ValueError(f"seq {seq!r} is not a positive integer")
        if not RECORD_ID.match(texts["record_id"]):
            raise ValueError(f"record_id {texts['record_id']!r} is not YYYY-NNNN")
        for key in ("record_sha256", "record_prev", "prev", "entry_sha256"):
            if not _is_sha256(texts[key]):
                raise ValueError(f"{key} is not a SHA-256 in lowercase hex")
        try:
            event = LedgerEvent(texts["event"])
        except ValueError:
            raise ValueError(
                f"event {texts['event']!r} is not created | updated | sealed"
            ) from None
        return cls(
            seq=seq,
            record_id=texts["record_id"],
            event=event,
            record_sha256=texts["record_sha256"],
            record_prev=texts["record_prev"],
            at=parse_wire_time(texts["at"]),
            prev=texts["prev"],
            entry_sha256=texts["entry_sha256"],
        )


def record_id_of(line: str) -> str:
    """The record a damaged line is about, when that much can still be read (for messages)."""
    try:
        data = json.loads(line)
    except (json.JSONDecodeError, RecursionError):
        return ""
    value = data.get("record_id") if isinstance(data, dict) else None
    return value if isinstance(value, str) and RECORD_ID.match(value) else ""


@contextmanager
def exclusive_lock(changes_dir: Path) -> Iterator[None]:
    """Every writer of changes/ holds this, across processes (flock on changes/.lock).

    flock locks belong to an open file description, so a second `exclusive_lock` in the same
    process blocks too: the store's public methods take it once and call unlocked helpers.
    """
    make_dir(changes_dir, root=changes_dir.parent)
    # O_NOFOLLOW, regular files only: a lock committed as a link must not create or lock a file
    # elsewhere, nor a FIFO hang the run (pipeline.load.files.open_lock).
    fd = open_lock(changes_dir / LOCK_NAME, root=changes_dir.parent)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing the last descriptor releases the lock


class Ledger:
    def __init__(self, path: Path) -> None:
        self.path = path

    def lines(self) -> list[str]:
        """The raw lines, without their newline; [] when there is no ledger yet."""
        if not exists(self.path):
            return []
        # A regular file inside the repository within max_log_bytes (pipeline.load.files): a
        # ledger committed as a symbolic link or a FIFO is refused by name.
        raw = read_bytes(self.path, root=self.path.parent.parent, log=True)
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise LedgerCorrupt(
                f"not UTF-8 at byte {exc.start}",
                file=self.path,
                line=raw.count(b"\n", 0, exc.start) + 1,
                hint=_AUDIT_HINT,
            ) from None
        return text.splitlines()

    def read(self) -> list[LedgerEntry]:
        """Every entry, for writers: a line that cannot be read stops them (nothing is appended
        after a damaged line, which would bury it). `audit.verify` reads damaged ledgers."""
        entries = []
        for number, line in enumerate(self.lines(), 1):
            try:
                entries.append(LedgerEntry.from_line(line))
            except ValueError as exc:
                raise LedgerCorrupt(
                    str(exc), file=self.path, line=number, hint=_AUDIT_HINT
                ) from None
        return entries

    def append(
        self,
        entries: list[LedgerEntry],
        *,
        record_id: str,
        event: LedgerEvent,
        record_sha256: str,
        at: datetime,
    ) -> LedgerEntry:
        """Append one event after `entries` (what `read()` returned under the same lock).

        The caller holds `exclusive_lock`. The line is fsync'd before this returns: an event the
        pipeline reported as recorded survives a crash.
        """
        last = entries[-1] if entries else None
        record_prev = next(
            (e.record_sha256 for e in reversed(entries) if e.record_id == record_id), GENESIS
        )
        entry = LedgerEntry.make(
            seq=last.seq + 1 if last else 1,
            record_id=record_id,
            event=event,
            record_sha256=record_sha256,
            record_prev=record_prev,
            at=at,
            prev=last.entry_sha256 if last else GENESIS,
        )
        # Never through a symbolic link: the audit trail is appended to the ledger itself.
        fd = open_append(self.path, root=self.path.parent.parent)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(entry.to_line())
            handle.flush()
            os.fsync(handle.fileno())
        entries.append(entry)
        return entry


_AUDIT_HINT = "Run `dmarcops audit verify` to see what is wrong with the audit trail."
