"""The apply journal: what an apply is about to send to DNS, made durable before it is sent.

A change record says what an apply did; but an apply can die between the provider call and the
record (SIGKILL, a full disk, a read-only changes/, a power cut). So each apply keeps a journal,
`changes/journal/<apply-id>.jsonl`, one JSON object per line, each line but `done` fsynced before
the next step:

    begin    the plan, who applies, when, the zones and items          (before any record exists)
    records  the change records created for it, and their items        (before any provider call)
    intent   one zone: its items, before and after, their record ids    (before that zone is sent)
    done     that zone: the provider's result and the verification     (after it was sent; made
             durable by the next line's fsync: losing it only means recovery checks the zone again)

No provider call is made unless its `intent` line is on disk, so every item that can have reached
DNS is either in a finished change record or in a journal. When the apply finishes its records the
journal is removed. A journal left behind is recovered by `dmarcops recover`
(pipeline.apply.recover): the zones it had sent are checked against live DNS, the records finished
as observed and marked recovered, and the journal removed; until then apply refuses to start.

While an apply runs it holds an exclusive `flock` on its journal: the kernel drops the lock when the
process dies, so a journal whose lock can be taken is one whose apply is gone (never one that is
still running in another process).
"""

from __future__ import annotations

import fcntl
import json
import os
import secrets
import stat
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from pipeline.apply.verify import ItemCheck
from pipeline.errors import EnvironmentProblem, GateRefused
from pipeline.load.files import make_dir, read_bytes
from pipeline.records.record import parse_wire_time

JOURNAL_DIR = "journal"
SUFFIX = ".jsonl"
FORMAT_VERSION = 1

Key = tuple[str, str, str]  # zone, name, type


class JournalWriteError(EnvironmentProblem):
    """The journal could not be written (disk full, read-only): nothing more is sent to DNS."""


class JournalDamaged(EnvironmentProblem):
    """A journal that cannot be read (not one written by dmarcops)."""


def journal_dir(changes_dir: Path) -> Path:
    return changes_dir / JOURNAL_DIR


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)  # the file's creation or removal itself survives a crash
    finally:
        os.close(fd)


class Journal:
    """The journal of the apply running in this process; written line by line, each fsynced."""

    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self.apply_id = path.name.removesuffix(SUFFIX)
        self._fd = fd
        self._broken = False

    @classmethod
    def begin(cls, changes_dir: Path, now: datetime, header: dict[str, Any]) -> Journal:
        """Create the journal and write its `begin` line. On failure nothing is left behind
        (a journal that never got its first line has nothing to recover)."""
        folder = journal_dir(changes_dir)
        apply_id = f"{now.strftime('%Y%m%dT%H%M%SZ')}-{os.getpid()}-{secrets.token_hex(3)}"
        path = folder / f"{apply_id}{SUFFIX}"
        try:
            make_dir(folder, root=changes_dir.parent)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o644)
        except OSError as exc:
            raise JournalWriteError(
                f"cannot create the apply journal ({exc.strerror or exc}); nothing was sent to DNS",
                file=folder,
                hint="Free space on (or make writable) the file system of changes/, then apply "
                "again.",
            ) from None
        fcntl.flock(fd, fcntl.LOCK_EX)  # new file, ours alone: never blocks
        journal = cls(path, fd)
        try:
            journal.append(
                "begin",
                {"format_version": FORMAT_VERSION, "apply_id": apply_id, **header},
            )
            _fsync_dir(folder)
        except (JournalWriteError, OSError):
            journal.discard()
            raise
        return journal

    def append(self, event: str, data: dict[str, Any], *, durable: bool = True) -> None:
        """One line, fsynced before returning: after this returns the line survives a crash.

        `durable=False` (the `done` lines) leaves the fsync to the next durable line or `sync()`:
        a process killed after the write keeps the line (it is in the kernel's page cache); only
        a power cut can lose it, and then only lines after the last fsync, which recovery
        treats as never written (the zone is checked again)."""
        if self._broken:
            # A failed write may have left half a line: nothing may follow it.
            raise JournalWriteError(f"the apply journal {self.path.name} could not be written")
        line = (json.dumps({"event": event, **data}, sort_keys=True) + "\n").encode("utf-8")
        try:
            view = memoryview(line)
            while view:
                written = os.write(self._fd, view)
                view = view[written:]
            if durable:
                os.fsync(self._fd)
        except OSError as exc:
            self._broken = True
            raise JournalWriteError(
                f"cannot write the apply journal {self.path.name} ({exc.strerror or exc})",
                file=self.path,
            ) from None

    def sync(self) -> None:
        """Make every line written so far durable (after lines written with durable=False)."""
        if self._broken:
            raise JournalWriteError(f"the apply journal {self.path.name} could not be written")
        try:
            os.fsync(self._fd)
        except OSError as exc:
            self._broken = True
            raise JournalWriteError(
                f"cannot write the apply journal {self.path.name} ({exc.strerror or exc})",
                file=self.path,
            ) from None

    def release(self) -> None:
        """Stop writing and let go of the lock; the file stays for `dmarcops recover`."""
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def remove(self) -> None:
        """The apply is fully recorded: the journal goes (the records are the history)."""
        self.path.unlink(missing_ok=True)
        _fsync_dir(self.path.parent)
        self.release()

    def discard(self) -> None:
        # Removing works on a full disk; on a read-only one the half-made journal stays, and
        # recovery finds in it that nothing was sent.
        with suppress(OSError):
            self.path.unlink(missing_ok=True)
        self.release()


# --- reading a journal -------------------------------------------------------------------------


@dataclass(frozen=True)
class ZoneDone:
    zone: str
    status: str  # applied | failed
    error: str
    settled: bool  # the checks say for every item whether it is live
    checks: tuple[ItemCheck, ...]


@dataclass(frozen=True)
class JournalState:
    """What a journal on disk says happened, as far as its durable lines go."""

    path: Path
    apply_id: str
    plan_hash: str
    by: str
    pid: int
    started_at: datetime
    clients: tuple[str, ...]
    record_ids: tuple[str, ...]
    intents: dict[str, tuple[Key, ...]]  # zone -> the items sent (or about to be)
    done: dict[str, ZoneDone]
    stopped: str  # why the apply stopped early, if it said so
    torn: bool  # the last line is incomplete (the write that failed): it never took effect

    @property
    def unsettled(self) -> list[str]:
        """Zones sent (or about to be) whose outcome no line records for certain."""
        return [z for z in self.intents if z not in self.done or not self.done[z].settled]


def _keys(raw: Any) -> tuple[Key, ...]:
    return tuple((str(i["zone"]), str(i["name"]), str(i["type"])) for i in raw)


def read_journal(path: Path) -> JournalState:
    # changes/journal/<apply>.jsonl: a regular file inside the repository within max_log_bytes;
    # a journal committed as a link or a FIFO is refused by name (pipeline.load.files).
    lines = read_bytes(path, root=path.parent.parent.parent, log=True).split(b"\n")
    torn = lines[-1] != b""  # every complete line ends with a newline
    events: list[dict[str, Any]] = []
    for number, line in enumerate(lines[:-1] if not torn else lines, 1):
        try:
            data = json.loads(line.decode("utf-8"))
            if not isinstance(data, dict):
                raise ValueError("not an object")
        except (UnicodeDecodeError, ValueError, RecursionError):  # RecursionError: nested [[[
            if number == len(lines):  # the last, unterminated line: a write that failed
                break
            raise JournalDamaged(f"line {number} is not a journal entry", file=path) from None
        events.append(data)
    if not events or events[0].get("event") != "begin":
        if torn or not events:  # the begin line itself never made it: nothing was sent
            return JournalState(
                path,
                path.name.removesuffix(SUFFIX),
                "",
                "",
                0,
                datetime.min,
                (),
                (),
                {},
                {},
                "",
                True,
            )
        raise JournalDamaged("the journal does not start with its begin line", file=path)
    try:
        begin = events[0]
        record_ids: list[str] = []
        intents: dict[str, tuple[Key, ...]] = {}
        done: dict[str, ZoneDone] = {}
        stopped = ""
        for e in events[1:]:
            kind = e["event"]
            if kind == "records":
                record_ids.extend(str(r["id"]) for r in e["records"])
            elif kind == "intent":
                intents[str(e["zone"])] = _keys(e["items"])
            elif kind == "done":
                done[str(e["zone"])] = ZoneDone(
                    str(e["zone"]),
                    str(e["status"]),
                    str(e["error"]),
                    bool(e["settled"]),
                    tuple(
                        ItemCheck(
                            str(c["zone"]),
                            str(c["name"]),
                            str(c["type"]),
                            str(c["status"]),
                            parse_wire_time(str(c["checked_at"])),
                            str(c["method"]),
                            str(c["detail"]),
                        )
                        for c in e["checks"]
                    ),
                )
            elif kind == "stopped":
                stopped = str(e["reason"])
        return JournalState(
            path=path,
            apply_id=str(begin["apply_id"]),
            plan_hash=str(begin["plan_hash"]),
            by=str(begin["by"]),
            pid=int(begin["pid"]),
            started_at=parse_wire_time(str(begin["started_at"])),
            clients=tuple(str(c) for c in begin["clients"]),
            record_ids=tuple(record_ids),
            intents=intents,
            done=done,
            stopped=stopped,
            torn=torn,
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise JournalDamaged(f"not a dmarcops apply journal ({exc})", file=path) from None


# --- finding journals whose apply is gone ------------------------------------------------------


def journals(changes_dir: Path) -> list[Path]:
    folder = journal_dir(changes_dir)
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.glob(f"*{SUFFIX}") if not p.name.startswith("."))


@contextmanager
def orphan_lock(path: Path) -> Iterator[bool]:
    """Yield True while holding the journal's lock (its apply is gone), False if a running apply
    holds it. Held for the whole recovery: two recoveries never finish the same records."""
    try:
        # O_NOFOLLOW | O_NONBLOCK: a FIFO or link in changes/journal/ must not hang or redirect.
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        yield False  # finished (and removed) meanwhile
        return
    except OSError as exc:
        raise JournalDamaged(
            f"cannot open the apply journal: {exc.strerror} (it is not a regular file)",
            file=path,
            hint="dmarcops writes journals as regular files; remove this one by hand after "
            "checking live DNS.",
        ) from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise JournalDamaged(
            "the apply journal is not a regular file",
            file=path,
            hint="dmarcops writes journals as regular files; remove this one by hand after "
            "checking live DNS.",
        )
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        yield path.exists()  # removed by its apply just before we locked it: nothing to do
    finally:
        os.close(fd)


def orphaned(changes_dir: Path) -> list[Path]:
    out = []
    for path in journals(changes_dir):
        with orphan_lock(path) as mine:
            if mine:
                out.append(path)
    return out


def refuse_if_unrecovered(changes_dir: Path) -> None:
    """Apply (and rollback, and the GitHub paths through run_apply) start only on a clean slate:
    an interrupted apply's items may be live with no finished record saying so."""
    left = orphaned(changes_dir)
    if left:
        names = ", ".join(p.name for p in left)
        raise GateRefused(
            f"an earlier apply was interrupted and its journal is not recovered ({names}); "
            "what it sent to DNS is not yet in its change records, so nothing new is applied",
            file=left[0],
            hint="Run `dmarcops recover --key YOUR-KEY`: it checks live DNS, finishes the records as "
            "observed and removes the journal. Then apply again.",
        )
