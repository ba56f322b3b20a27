"""`dmarcops reports ingest`: files, directories and S3 prefixes into the report store.

Each input is read through pipeline.load.files (a symbolic link, FIFO or device is refused and
never opened, a file over the limit is never read), unpacked (pipeline.reports.unpack), parsed
(pipeline.reports.parse) and stored; a broken report is listed with its file and reason and the
others go on.
"""

from __future__ import annotations

import os
import sqlite3
import stat
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from pipeline.errors import InputError
from pipeline.load.files import read_bytes
from pipeline.reports.parse import ReportError, parse_report
from pipeline.reports.store import add_report
from pipeline.reports.unpack import DEFAULT_UNPACK_LIMITS, Payload, Problem, UnpackLimits, unpack


@dataclass
class IngestResult:
    files: int = 0
    stored: int = 0  # reports new to the store
    duplicates: int = 0  # reports already stored (same org and report id)
    records: int = 0  # records of the stored reports
    messages: int = 0
    problems: list[Problem] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)
    seconds: float = 0.0


class LazyStore:
    """The store's connection, opened when the first report is to be stored: an ingest that
    finds nothing to store (a mistyped path, a drop of broken files) creates no store and
    writes nothing."""

    def __init__(self, opener: Callable[[], sqlite3.Connection]) -> None:
        self._opener = opener
        self._connection: sqlite3.Connection | None = None

    @classmethod
    def of(cls, connection: sqlite3.Connection) -> LazyStore:
        return cls(lambda: connection)

    @property
    def opened(self) -> bool:
        return self._connection is not None

    def connection(self) -> sqlite3.Connection:
        if self._connection is None:
            self._connection = self._opener()
        return self._connection

    def commit(self) -> None:
        if self._connection is not None:
            self._connection.commit()

    def rollback(self) -> None:
        if self._connection is not None:
            self._connection.rollback()

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None


def _walk(path: Path) -> Iterator[Path | Problem]:
    """Regular files under `path`, sorted; a link or special file is a Problem, never followed
    (a link in a report drop could point at anything on the machine)."""
    try:
        mode = os.lstat(path).st_mode
    except OSError as exc:
        yield Problem(str(path), f"cannot read: {exc.strerror}")
        return
    except ValueError as exc:  # a name the file system cannot encode
        yield Problem(str(path), f"cannot read: {exc}")
        return
    if stat.S_ISDIR(mode):
        try:
            entries = sorted(os.scandir(path), key=lambda e: e.name)
        except OSError as exc:
            yield Problem(str(path), f"cannot list the directory: {exc.strerror}")
            return
        for entry in entries:
            if entry.name.startswith("."):
                continue  # .DS_Store, editor files, a store kept beside the reports
            yield from _walk(Path(entry.path))
    else:
        # Regular files and everything else: read_bytes refuses links, FIFOs and devices by name.
        yield path


def ingest_bytes(
    store: LazyStore | sqlite3.Connection,
    name: str,
    data: bytes,
    result: IngestResult,
    limits: UnpackLimits = DEFAULT_UNPACK_LIMITS,
) -> None:
    lazy = store if isinstance(store, LazyStore) else LazyStore.of(store)
    for item in unpack(name, data, limits):
        if isinstance(item, Problem):
            result.problems.append(item)
            continue
        assert isinstance(item, Payload)
        try:
            report = parse_report(item.data)
        except ReportError as exc:
            result.problems.append(Problem(item.name, exc.reason))
            continue
        result.warnings += [Problem(item.name, warning) for warning in report.warnings]
        if add_report(lazy.connection(), report, item.name):
            result.stored += 1
            result.records += len(report.rows)
            result.messages += report.messages
        else:
            result.duplicates += 1


def _ingest_file(
    store: LazyStore, name: str, data: bytes, result: IngestResult, limits: UnpackLimits
) -> None:
    # One transaction per input file: an interrupted run keeps every file it finished.
    try:
        ingest_bytes(store, name, data, result, limits)
    except BaseException:
        store.rollback()
        raise
    store.commit()


def ingest_paths(
    store: LazyStore | sqlite3.Connection,
    paths: list[str],
    limits: UnpackLimits = DEFAULT_UNPACK_LIMITS,
    *,
    s3_reader: Callable[[str], Iterator[tuple[str, bytes]]] | None = None,
) -> IngestResult:
    """Ingest every path (file, directory, or s3://bucket/prefix through `s3_reader`), committing
    once per input file so an interrupted run keeps what it finished."""
    lazy = store if isinstance(store, LazyStore) else LazyStore.of(store)
    result = IngestResult()
    started = time.perf_counter()
    for raw in paths:
        if not raw.strip():
            # Path("") is the working directory: an empty argument is a slip, not a request.
            result.problems.append(Problem(repr(raw), "an empty path"))
            continue
        if raw.startswith("s3://"):
            if s3_reader is None:
                result.problems.append(Problem(raw, "S3 is not available in this run"))
                continue
            try:
                for name, data in s3_reader(raw):
                    result.files += 1
                    _ingest_file(lazy, name, data, result, limits)
            except InputError as exc:
                result.problems.append(Problem(raw, exc.message))
            continue
        for item in _walk(Path(raw)):
            if isinstance(item, Problem):
                result.problems.append(item)
                continue
            try:
                data = read_bytes(item, limit=limits.max_file_bytes, outside_ok=True)
            except InputError as exc:
                result.problems.append(Problem(str(item), exc.message))
                continue
            result.files += 1
            _ingest_file(lazy, str(item), data, result, limits)
    result.seconds = time.perf_counter() - started
    return result
