"""The audit trail against a long history (issue 12, item 7): what grows with the records.

Builds a repository holding N synthetic change records (sealed, signed ledger lines, the example's
policy sealed as the genesis, the example's zones/) without going through N applies, and an empty
one (the genesis only) beside it, then measures:

- `audit verify` (the library call the command makes, in a child process of its own so that its
  peak RSS is its own): wall time and peak RSS;
- writing one record (`RecordStore.create`) with 0 and with N records, after `records reindex`
  built the record index (.dmarcops/records.sqlite): as the next write of a process (nothing read
  of the history) and as the first write of a process (the ledger's bytes hashed once, not
  parsed);
- `records list` at N from the index (RecordStore.list_rows, what the command prints: a filter
  matching nothing, and --client matching every record);
- `dmarcops plan --format json` (the CLI, a child process) with 0 and with N records: wall and CPU
  time (median of 3 after a warm-up; the CPU time is steadier on a shared machine).

Run it by hand with the project's venv (it imports the test helpers for keys and records):

    .venv/bin/python benchmarks/audit_scale.py --records 10000
    .venv/bin/python benchmarks/audit_scale.py --records 50000

Targets (issue 12): 50k records verified in 10 s or less and 300 MB or less; plan time with 50k
records within 10% of plan time with none.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from signing import JCHEN, MHARA, genesis  # noqa: E402
from test_records import T0, make_record  # noqa: E402

from pipeline.records import audit_pool, index_ledger  # noqa: E402
from pipeline.records.index_records import RecordFilter  # noqa: E402
from pipeline.records.ledger import GENESIS, LedgerEntry, LedgerEvent  # noqa: E402
from pipeline.records.record import Outcome  # noqa: E402
from pipeline.records.store import RecordStore, audit, record_file_bytes  # noqa: E402

LATER = T0 + timedelta(days=4000)
DMARCOPS = str(Path(sys.executable).with_name("dmarcops"))


def build(root: Path, count: int) -> RecordStore:
    """A repository of N sealed records after the example's genesis (append_sealed)."""
    store = genesis(root)
    append_sealed(store, count)
    return store


def append_sealed(store: RecordStore, count: int) -> None:
    """N sealed records after the ledger's last line: created by jchen, sealed by mhara, ledger
    lines signed as they would be (benchmarks/apply_vs_dnspython.py's --history uses it too)."""
    store.records_dir.mkdir(parents=True, exist_ok=True)
    entries = store.ledger.read()
    prev = entries[-1].entry_sha256
    seq = entries[-1].seq
    lines: list[str] = []
    per_year: dict[int, int] = {}
    first = T0.replace(hour=9, minute=30)
    for n in range(count):
        # 30 changes a day inside the 09:00-12:00 window the synthetic records claim.
        at = first + timedelta(days=n // 30, minutes=5 * (n % 30))
        per_year[at.year] = per_year.get(at.year, 0) + 1
        rid = f"{at.year:04d}-{per_year[at.year]:04d}"
        record = make_record(rid, executed_at=at)
        created_hash = record.sha256()
        sealed = replace(
            record,
            outcome=Outcome.ACCEPTED,
            closed_at=record.rollback_window.end,
            closed_by="mhara",
            sealed=True,
        )
        for event, signer, body, when, record_prev in (
            (LedgerEvent.CREATED, JCHEN, created_hash, at, GENESIS),
            (LedgerEvent.SEALED, MHARA, sealed.sha256(), at, created_hash),
        ):
            seq += 1
            entry = LedgerEntry.make(
                seq=seq,
                event=event,
                signer=signer,
                at=when,
                prev=prev,
                record_id=rid,
                record_sha256=body,
                record_prev=record_prev,
            )
            prev = entry.entry_sha256
            lines.append(entry.to_line())
        (store.records_dir / f"{rid}.json").write_bytes(record_file_bytes(sealed))
        (store.records_dir / f"{rid}.md").write_text(sealed.render_markdown(), encoding="utf-8")
    with store.ledger.path.open("a", encoding="utf-8") as handle:
        handle.writelines(lines)


def verify_child(root: Path) -> None:
    """In the child: audit verify, then its time, problems and peak RSS as one JSON line."""
    started, cpu = time.perf_counter(), time.process_time()
    report = audit(root / "changes", LATER)
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # The workers (pipeline.records.audit_pool): their CPU, and the largest one's peak RSS (mostly
    # pages shared with this process, which forked them).
    workers = resource.getrusage(resource.RUSAGE_CHILDREN)
    first = [str(p) for p in report.problems[:5]]
    print(json.dumps({"s": seconds, "cpu": cpu, "mb": peak_kb / 1024, "first": first,
                      "workers_cpu": workers.ru_utime + workers.ru_stime,
                      "workers_mb": workers.ru_maxrss / 1024,
                      "problems": len(report.problems), "entries": report.entries}))  # fmt: skip


def timed_plan(root: Path) -> tuple[float, float]:
    """One `dmarcops plan --format json` in `root`: (wall s, CPU s of the child)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(
        [DMARCOPS, "plan", "--format", "json"],
        cwd=root,
        capture_output=True,
        check=False,
        env={**os.environ, "DMARCOPS_NOW": "2026-12-01T10:00:00Z"},
    )
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode not in (0, 2) or b'"plan_hash"' not in done.stdout:
        raise SystemExit(f"plan failed ({done.returncode}): {done.stderr.decode()[-2000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def plan_times(
    empty: Path, root: Path, runs: int = 7
) -> tuple[tuple[float, float, float], tuple[float, float, float]]:
    """For the repository without records and the one with them: (first run's wall, median
    wall, median CPU) of `runs` plans after the first. The two alternate, so a change in the
    machine's load between them does not pass for a cost of the history (the plan is ~0.5 s:
    10% of it is less than one run's spread)."""
    firsts = timed_plan(empty)[0], timed_plan(root)[0]  # the first at N builds the index
    times: tuple[list[tuple[float, float]], list[tuple[float, float]]] = ([], [])
    for _ in range(runs):
        times[0].append(timed_plan(empty))
        times[1].append(timed_plan(root))
    return (
        (firsts[0], statistics.median(t[0] for t in times[0]), statistics.median(t[1] for t in times[0])),
        (firsts[1], statistics.median(t[0] for t in times[1]), statistics.median(t[1] for t in times[1])),
    )  # fmt: skip


def timed_create(store: RecordStore, fresh: bool = False) -> tuple[float, float]:
    """(wall s, CPU s) of writing one record; `fresh`: as the first write of a new process (the
    ledger's bytes not yet hashed by it), else as the next write of the same process."""
    if fresh:
        index_ledger._hashed.clear()
    started, cpu = time.perf_counter(), time.process_time()
    store.create(lambda rid: make_record(rid), LATER, JCHEN)
    return time.perf_counter() - started, time.process_time() - cpu


def median_of(runs: list[tuple[float, float]]) -> tuple[float, float]:
    return statistics.median(r[0] for r in runs), statistics.median(r[1] for r in runs)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=10_000)
    parser.add_argument(
        "--reuse",
        type=Path,
        metavar="DIR",
        help="a repository an earlier run built and kept (--keep): skips building the history; "
        "its record index is removed first, so every run starts without one",
    )
    parser.add_argument(
        "--keep", action="store_true", help="keep the repository built (path printed)"
    )
    parser.add_argument("--verify-runs", type=int, default=3, help="audit verify runs (median)")
    parser.add_argument("--verify-only", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.verify_only:
        verify_child(args.verify_only)
        return 0
    root = args.reuse or Path(tempfile.mkdtemp(prefix="dmarcops-audit-bench-"))
    empty = Path(tempfile.mkdtemp(prefix="dmarcops-audit-bench-empty-"))
    try:
        started = time.perf_counter()
        if args.reuse:
            shutil.rmtree(root / ".dmarcops", ignore_errors=True)
            store = RecordStore(root / "changes")
            found = sum(1 for _ in store.records_dir.glob("*.json"))
            if found < args.records:  # each run adds the few records it writes
                raise SystemExit(f"{root} holds {found} records, fewer than {args.records}")
        else:
            store = build(root, args.records)
            shutil.copytree(ROOT / "zones", root / "zones")
        built = time.perf_counter() - started
        genesis(empty)
        shutil.copytree(ROOT / "zones", empty / "zones")
        print(
            f"records: {args.records}, built in {built:.1f} s"
            + (f" (kept: {root})" if args.keep else "")
        )
        runs = []
        for _ in range(args.verify_runs):
            child = subprocess.run(
                [sys.executable, __file__, "--verify-only", str(root)],
                capture_output=True, check=True, text=True,
            )  # fmt: skip
            verified = json.loads(child.stdout)
            runs.append(verified["s"])
            print(f"audit verify: {verified['s']:.2f} s wall, {verified['cpu']:.2f} s CPU "
                  f"(+ {verified['workers_cpu']:.2f} s in its children, {audit_pool.workers()} "
                  f"cores), peak RSS {verified['mb']:.0f} MB (largest child "
                  f"{verified['workers_mb']:.0f} MB), ledger lines {verified['entries']}, "
                  f"problems {verified['problems']}, load {os.getloadavg()[0]:.1f}")  # fmt: skip
            for problem in verified["first"]:
                print("  problem:", problem)
        print(f"audit verify, median of {len(runs)}: {statistics.median(runs):.2f} s "
              f"(min {min(runs):.2f}, max {max(runs):.2f})")  # fmt: skip

        plan0, planned = plan_times(empty, root)
        print(f"plan, 0 records: {plan0[1]:.2f} s wall, {plan0[2]:.2f} s CPU (median of 7)")
        print(f"plan, {args.records} records: {planned[1]:.2f} s wall, {planned[2]:.2f} s CPU "
              f"(median of 7, alternating with the plan of 0 records; the first run, which "
              f"builds the index: {planned[0]:.2f} s)")  # fmt: skip
        print(f"plan ratio {args.records} / 0 records: wall {planned[1] / plan0[1]:.2f}, "
              f"CPU {planned[2] / plan0[2]:.2f}")  # fmt: skip

        empty_store = RecordStore(empty / "changes")
        timed_create(empty_store)  # builds the (empty) index
        write0 = median_of([timed_create(empty_store) for _ in range(3)])
        first0 = median_of([timed_create(empty_store, fresh=True) for _ in range(3)])
        started = time.perf_counter()
        store.reindex()
        reindex_s = time.perf_counter() - started
        write_n = median_of([timed_create(store) for _ in range(3)])
        first_n = median_of([timed_create(store, fresh=True) for _ in range(3)])
        print(f"`records reindex` at {args.records}: {reindex_s:.1f} s")
        for what, at0, at_n in (
            ("next write of a process", write0, write_n),
            ("first write of a process", first0, first_n),
        ):
            print(f"write one record, {what} (median of 3): {at0[0] * 1000:.0f} ms wall, "
                  f"{at0[1] * 1000:.0f} ms CPU with 0 records; {at_n[0] * 1000:.0f} ms wall, "
                  f"{at_n[1] * 1000:.0f} ms CPU with {args.records}")  # fmt: skip

        started, cpu = time.perf_counter(), time.process_time()
        none = store.list_rows(RecordFilter(analyst="nobody-at-all"))
        list_none = (time.perf_counter() - started, time.process_time() - cpu)
        started, cpu = time.perf_counter(), time.process_time()
        every = store.list_rows(RecordFilter(client="northwind-health"))
        list_all = (time.perf_counter() - started, time.process_time() - cpu)
        print(f"records list at {args.records}: {list_none[0] * 1000:.0f} ms wall, "
              f"{list_none[1] * 1000:.0f} ms CPU for a filter matching {len(none)}; "
              f"{list_all[0]:.2f} s wall, {list_all[1]:.2f} s CPU for --client matching "
              f"{len(every)} (what `records list` prints, from the index)")  # fmt: skip
        return 0 if verified["problems"] == 0 else 1
    finally:
        if not (args.keep or args.reuse):
            shutil.rmtree(root, ignore_errors=True)
        shutil.rmtree(empty, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
