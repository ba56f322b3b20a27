"""A change record on disk: its file's bytes, its id, reading it back, and the errors a store
raises about it (pipeline.records.store writes them; pipeline.records.audit checks them)."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from contextlib import suppress
from pathlib import Path

import orjson

from pipeline.errors import GateRefused, InputError
from pipeline.gate.identity import Signer, signature_holds
from pipeline.gate.roster import Roster
from pipeline.load.files import read_bytes
from pipeline.load.jsonfile import parse_json
from pipeline.records.record import (
    RECORD_ID,
    ChangeRecord,
    RecordFormatError,
    ReportCheck,
)

RECORDS_DIR = "records"


class UnknownRecordError(InputError):
    """No record with that id. Exit 1."""


class SealedRecordError(GateRefused):
    """Sealed records are never edited (seed). Exit 2."""


class RecordMismatchError(GateRefused):
    """A record file no longer matches the ledger: writing over it would bury the difference."""


ATTEST_VERDICTS = ("ok", "finding")


class UntrustedSigner(GateRefused):
    """The key is not on the roster as sealed: its entry would not verify. Exit 2."""


def record_file_bytes(record: ChangeRecord) -> bytes:
    """How a record is written: sorted, indented JSON (readable in a git diff), one per file.

    The ledger hashes the canonical bytes, not these, so the file's layout is checked separately:
    a file must be exactly what dmarcops writes for the JSON it holds.
    """
    data = record.to_json()
    if not _holds_float(data):
        # orjson writes this layout byte for byte for JSON without non-integer numbers
        # (pipeline/records/fastjson.py, tests/test_fastjson.py): an apply writes 500 record
        # files, and the standard library's indented encoder is pure Python (~0.5 ms a record).
        try:
            return orjson.dumps(data, option=orjson.OPT_SORT_KEYS | orjson.OPT_INDENT_2) + b"\n"
        except (orjson.JSONEncodeError, TypeError):
            pass  # an integer beyond 64 bits, a lone surrogate: the standard library's
    return _pretty(data)


def _holds_float(data: object) -> bool:
    if isinstance(data, float):
        return True
    if isinstance(data, dict):
        return any(_holds_float(v) for v in data.values())
    if isinstance(data, list | tuple):
        return any(_holds_float(v) for v in data)
    return False


def _pretty(data: object) -> bytes:
    """The record file layout, by the standard library: the reference (fastjson compares with
    it)."""
    return (json.dumps(data, sort_keys=True, indent=2, ensure_ascii=False) + "\n").encode("utf-8")


def write_atomic(path: Path, data: bytes) -> None:
    # A reader (or a crash) sees the old file or the new one, never half of one. Several files
    # of one directory: write_all_atomic, which fsyncs the directory once.
    tmp = _temporary(path)
    _write_synced(tmp, data)
    os.replace(tmp, path)
    fsync_dir(path.parent)


# How many files of a batch are written and fsynced at once (write_all_atomic).
GROUP_COMMIT_THREADS = 16


def write_all_atomic(files: Sequence[tuple[Path, bytes]], directory: Path) -> None:
    """Several files of `directory`, each replaced atomically, all durable when this returns.

    A group commit: every file is written to its temporary name and fsynced from a pool of
    threads, so the file system serves many waiting fsyncs with one journal commit (one after
    the other, each fsync waits for its own: 2-5 ms each on a busy disk). Only when every one is
    durable are they renamed into place (from the pool too: a rename over an existing file waits
    on the file system's journal as well), and the directory fsynced once. A crash leaves each
    file old or new, never half; a failed write renames nothing and removes the temporary files
    (on a full disk that keeps room for `dmarcops recover`)."""
    staged = [(_temporary(path), path, data) for path, data in files]
    if len(staged) <= 2:  # one record's two files: threads would cost more than they save
        for tmp, path, data in staged:
            _write_synced(tmp, data)
            os.replace(tmp, path)
        fsync_dir(directory)
        return
    with ThreadPoolExecutor(
        max_workers=min(GROUP_COMMIT_THREADS, len(staged)), thread_name_prefix="fsync"
    ) as pool:
        writes = [pool.submit(_write_synced, tmp, data) for tmp, _, data in staged]
        wait(writes)  # every write finished (or failed) before any temporary file is removed
        failed = [exc for exc in (w.exception() for w in writes) if exc is not None]
        if failed:
            for tmp, _, _ in staged:
                with suppress(OSError):
                    tmp.unlink()
            raise failed[0]
        for done in [pool.submit(os.replace, tmp, path) for tmp, path, _ in staged]:
            done.result()
    fsync_dir(directory)


def _temporary(path: Path) -> Path:
    return path.with_name(f".{path.name}.tmp-{os.getpid()}")


def _write_synced(tmp: Path, data: bytes) -> None:
    # O_NOFOLLOW: a symbolic link planted at the temporary name must not be written through.
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC
    with os.fdopen(os.open(tmp, flags, 0o644), "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def fsync_dir(path: Path) -> None:
    dir_fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(dir_fd)  # a rename in it survives a crash
    finally:
        os.close(dir_fd)


def _check_id(record_id: str) -> str:
    # Also keeps a typed id from naming a path outside changes/records/.
    if not RECORD_ID.match(record_id):
        raise InputError(
            f"{record_id!r} is not a change record id",
            hint="Record ids look like 2026-0001 (`dmarcops records list` shows them).",
        )
    return record_id


def _sort_key(record_id: str) -> tuple[int, int]:
    year, number = record_id.split("-")
    return int(year), int(number)


def verification_file(changes_dir: Path, sha256: str) -> Path:
    """Where the report verification a record seals is kept (pipeline.apply.verify_reports)."""
    return changes_dir / "evidence" / f"verification-{sha256}.json"


def verification_problem(changes_dir: Path, check: ReportCheck) -> str:
    """Why the verification file a record cites cannot be used ("" when it can)."""
    path = verification_file(changes_dir, check.sha256)
    try:
        raw = read_bytes(path, limit=16 * 1024 * 1024, root=changes_dir.parent)
    except InputError as exc:
        return f"its report verification {check.file} cannot be read: {exc.message}"
    if hashlib.sha256(raw).hexdigest() != check.sha256:
        return f"its report verification {check.file} does not hash to its name (edited)"
    return ""


def _check_signer(signer: Signer, roster: Roster) -> None:
    """Before any file is written: the key must be one the sealed roster holds for the name it
    claims (the ledger append checks the real entry again)."""
    member = roster.get(signer.analyst)
    probe = b"dmarcops: may this key sign for " + signer.analyst.encode()
    if member is None or not signature_holds(member.public_keys(), probe, signer.sign(probe)):
        raise UntrustedSigner(
            f"{signer.analyst}'s key is not the one the sealed roster holds for "
            f"{signer.analyst}; nothing was written",
            hint="Sign with your own key as the roster of record lists it (a key added to "
            "policy/roster.yaml counts once that policy change is approved and applied).",
        )


def _load_json(raw: bytes, path: Path, floats: list[str] | None = None) -> object:
    hint = "Change records are written by dmarcops; restore this one from git."
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise InputError(
            "not a JSON change record: not UTF-8 text", file=path, line=line, hint=hint
        ) from None
    return parse_json(text, path, "not a JSON change record", hint, floats)


def _parse(raw: bytes, path: Path) -> ChangeRecord:
    try:
        return ChangeRecord.from_json(_load_json(raw, path))
    except RecordFormatError as exc:
        raise InputError(exc.message, file=path, hint=exc.hint) from None
