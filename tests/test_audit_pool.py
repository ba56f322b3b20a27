"""`audit verify` on every core (pipeline.records.audit_pool) gives the report one process gives,
problem for problem and in the same order, and survives a worker that dies."""

from __future__ import annotations

import importlib
import json
import os
import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest
from signing import JCHEN, MHARA, genesis
from test_records import T0, make_record

from pipeline.records import Outcome, RecordStore, audit_pool
from pipeline.records.store import audit

LATER = T0 + timedelta(days=2)
RECORDS = 40


def tampered_trail(root: Path) -> RecordStore:
    """40 records, some sealed, then tampered with in every way verify checks per file and per
    line: an edited field, a reformatted file, an edited rendering, a deleted file, a file the
    ledger never saw, and two ledger lines whose signatures were swapped."""
    store = genesis(root)
    created = [store.create(make_record, at=T0, signer=JCHEN) for _ in range(RECORDS)]
    for record in created[::3]:
        store.seal(record.id, Outcome.SUPERSEDED, LATER, MHARA, forced=True)
    records = store.records_dir
    edited = json.loads((records / "2026-0005.json").read_text())
    edited["rationale"] = "rewritten after the fact"
    (records / "2026-0005.json").write_text(json.dumps(edited, indent=2, sort_keys=True) + "\n")
    reformatted = json.loads((records / "2026-0011.json").read_text())
    (records / "2026-0011.json").write_text(json.dumps(reformatted, indent=4, sort_keys=True))
    markdown = records / "2026-0020.md"
    markdown.write_text(markdown.read_text().replace("Medium", "Low"))
    (records / "2026-0031.json").unlink()
    (records / "2026-0099.json").write_bytes((records / "2026-0030.json").read_bytes())
    lines = store.ledger.path.read_text().splitlines()
    first, second = json.loads(lines[7]), json.loads(lines[12])
    first["signature"], second["signature"] = second["signature"], first["signature"]
    lines[7], lines[12] = (
        json.dumps(x, sort_keys=True, separators=(",", ":")) for x in (first, second)
    )
    store.ledger.path.write_text("".join(f"{line}\n" for line in lines))
    return store


def test_every_core_reports_what_one_process_reports(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = tampered_trail(tmp_path)
    monkeypatch.setattr(audit_pool, "workers", lambda: 1)
    alone = audit(store.changes_dir, LATER).problems
    monkeypatch.setattr(audit_pool, "workers", lambda: 2)
    monkeypatch.setattr(audit_pool, "PARALLEL_FROM", 1)
    # Signatures handed out a few lines at a time while the ledger is still being read: the
    # forged ones (lines 8 and 13) fall to different children.
    monkeypatch.setattr(
        importlib.import_module("pipeline.records.audit"), "SIGNATURES_PER_CHILD", 5
    )
    pooled = audit(store.changes_dir, LATER).problems
    assert pooled == alone
    text = [str(p) for p in pooled]
    for expected in (
        "2026-0005: 2026-0005.json does not match its last ledger event",
        "2026-0011: 2026-0011.json: same content, but not as dmarcops writes it",
        "2026-0020: 2026-0020.md does not match the record",
        "2026-0031: the ledger records it but its record file is missing",
        "2026-0099: 2026-0099.json: a record file the ledger never recorded",
    ):
        assert any(t.startswith(expected) for t in text), (expected, text)
    forged = [t for t in text if "the signature is not" in t]
    assert len(forged) == 2, text
    # In line order, each where the line's other problems are: the swap is reported at lines 8
    # and 13 (the genesis is line 1), before the record files.
    assert "ledger line 8 " in forged[0] and "ledger line 13 " in forged[1]
    first_file = next(t for t in text if t.startswith("2026-0005: 2026-0005.json"))
    assert text.index(forged[1]) < text.index(first_file)


def test_the_ranges_run_in_other_processes_and_come_back_in_order(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(audit_pool, "workers", lambda: 2)
    monkeypatch.setattr(audit_pool, "PARALLEL_FROM", 1)
    parent = os.getpid()
    got = audit_pool.in_ranges(100, lambda a, b: [(n, os.getpid()) for n in range(a, b)])
    assert [n for n, _ in got] == list(range(100))
    pids = {pid for _, pid in got}
    # This process takes the first range; the others ran in children (one per range).
    assert {pid for n, pid in got if n == 0} == {parent}
    assert len(pids - {parent}) == 2 * audit_pool.RANGES_PER_CORE - 1


def test_a_worker_that_dies_costs_time_not_the_verdict(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(audit_pool, "workers", lambda: 2)
    monkeypatch.setattr(audit_pool, "PARALLEL_FROM", 1)
    parent = os.getpid()

    def work(start: int, stop: int) -> list[int]:
        if os.getpid() != parent:
            os._exit(9)  # as a child killed by the OOM killer would end
        return list(range(start, stop))

    assert audit_pool.in_ranges(50, work) == list(range(50))


def test_children_are_reaped_when_this_process_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    """An exception (a disk error, Ctrl-C) before a child's result is asked for leaves no child
    running and no zombie behind."""
    monkeypatch.setattr(audit_pool, "workers", lambda: 2)
    monkeypatch.setattr(audit_pool, "PARALLEL_FROM", 1)

    def slow(start: int, stop: int) -> list[int]:
        time.sleep(60)
        return []

    with pytest.raises(RuntimeError), audit_pool.Forks(10) as forks:
        child = forks.child(slow, 0, 10)
        pid = child._pid
        assert pid is not None and pid != os.getpid()
        raise RuntimeError("the parent fails")
    with pytest.raises(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)  # reaped already: not a child of ours any more


def test_small_trails_stay_in_one_process(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(audit_pool, "workers", lambda: 2)
    parent = os.getpid()
    got = audit_pool.in_ranges(audit_pool.PARALLEL_FROM - 1, lambda a, b: [os.getpid()] * (b - a))
    assert set(got) == {parent}


def test_a_process_with_other_threads_is_not_forked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(audit_pool, "workers", lambda: 2)
    monkeypatch.setattr(audit_pool, "PARALLEL_FROM", 1)
    parent = os.getpid()
    stop = threading.Event()
    other = threading.Thread(target=stop.wait)
    other.start()
    try:
        got = audit_pool.in_ranges(100, lambda a, b: [os.getpid()] * (b - a))
    finally:
        stop.set()
        other.join()
    assert set(got) == {parent}


def test_a_child_holds_no_pipe_of_an_earlier_child(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each child holds only its own pipe: an earlier child's, held open in a later one, would
    outlive the parent's end of it."""
    monkeypatch.setattr(audit_pool, "workers", lambda: 2)
    monkeypatch.setattr(audit_pool, "PARALLEL_FROM", 1)

    def open_files(start: int, stop: int) -> list[tuple[int, int]]:
        held = []
        for fd in os.listdir("/proc/self/fd"):
            try:
                st = os.fstat(int(fd))
            except OSError:
                continue  # the listing's own descriptor, closed by now
            held.append((st.st_dev, st.st_ino))
        return held

    with audit_pool.Forks(10) as forks:
        first = forks.child(open_files, 0, 1)
        second = forks.child(open_files, 1, 2)
        assert first._pid is not None and second._pid is not None
        pipe = os.fstat(first._fd)
        assert (pipe.st_dev, pipe.st_ino) not in second.result()
        assert (pipe.st_dev, pipe.st_ino) in first.result()  # the first holds its own
