"""Run `dmarcops apply` as tests/run_at.py does, timing each stage of it (benchmarks only).

    python benchmarks/apply_stages.py OUT.json 2026-12-01T10:05:00Z --repo R apply --plan P --key K

Used by `apply_vs_dnspython.py --stages`. Before the CLI starts it imports what the apply needs
(timed: "interpreter + imports") and wraps, in this process only, the functions of each stage by name: each
call adds its wall time and the process's CPU time (user + system of every thread) to its stage.
At exit OUT.json holds {stage: [calls, wall s, CPU s]}.

Read it with care: a stage's CPU is the whole process's during that stage, so it includes any
thread running meanwhile (the gate files are read during the re-plan; checks run during the sends);
the checks and the journal's fsyncs run in threads, and their stages sum the time of every call,
much of it hidden behind the main thread's work. Stages are nested where indented.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

BEGAN = time.perf_counter()


def cpu() -> float:
    times = os.times()
    return times.user + times.system


STARTED_CPU = cpu()  # the interpreter's own start, before this line
stages: dict[str, list[float]] = {}
_lock = threading.Lock()


def add(stage: str, wall: float, used: float) -> None:
    with _lock:
        calls, walls, cpus = stages.get(stage, [0, 0.0, 0.0])
        stages[stage] = [calls + 1, walls + wall, cpus + used]


def timed(stage: str, function: Callable[..., Any]) -> Callable[..., Any]:
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        wall, used = time.perf_counter(), cpu()
        try:
            return function(*args, **kwargs)
        finally:
            add(stage, time.perf_counter() - wall, cpu() - used)

    return wrapper


# What the apply imports, lazily or not: imported here so that their cost is one stage.
MODULES = (
    "pipeline.cli",
    "pipeline.commands.apply",
    "pipeline.apply.run",
    "pipeline.apply.execute",
    "pipeline.apply.recover",
    "pipeline.plan.build",
    "pipeline.live.axfr",
    "pipeline.live.bind",
    "pipeline.records.store",
    "octodns_bind",
    "dns.query",
    "dns.update",
    "dns.tsig",
)


def wrap() -> None:
    import pipeline.apply.execute as execute
    import pipeline.apply.journal as journal
    import pipeline.apply.run as run
    import pipeline.commands.apply as command
    import pipeline.records.store as store
    import pipeline.records.store_base as store_base

    command.portfolio_of_record = timed("portfolio + policy of record", command.portfolio_of_record)
    command.run_apply = timed("run_apply (from the plan file to the records)", command.run_apply)
    run.make_plan = timed("  re-plan from live DNS (AXFRs, diff, rules)", run.make_plan)
    run.refuse_if_changed = timed(
        "  stale check (compare with the approved plan)", run.refuse_if_changed
    )
    run.read_gate_files = timed("  gate files: requests, approvals (a thread)", run.read_gate_files)
    run.gate_requests = timed(
        "  gate: signatures, approvals, window (main thread)", run.gate_requests
    )
    run.client_lock = timed("  client locks", run.client_lock)
    begin = journal.Journal.begin.__func__  # type: ignore[attr-defined]
    journal.Journal.begin = classmethod(timed("  journal: begin", begin))  # type: ignore[method-assign, assignment]
    append = journal.Journal.append

    def journal_append(self: Any, event: str, data: dict[str, Any], **kw: Any) -> None:
        label = (
            "intent lines (each fsynced, or written ahead)" if event == "intent" else "other lines"
        )
        timed(f"    journal: {label}", append)(self, event, data, **kw)

    journal.Journal.append = journal_append  # type: ignore[method-assign]
    journal.Journal.sync = timed(
        "    journal: fsyncs (of lines written ahead; a thread)", journal.Journal.sync
    )  # type: ignore[method-assign]
    journal.Journal.remove = timed("  journal: removed", journal.Journal.remove)  # type: ignore[method-assign]
    records = store.RecordStore
    records.create_many = timed("  records opened", records.create_many)  # type: ignore[method-assign]
    records.update_many = timed("  records finished", records.update_many)  # type: ignore[method-assign]
    store.write_all_atomic = timed(
        "    record files (group commit, both batches)", store.write_all_atomic
    )
    base = store_base.RecordStoreBase
    base._append_records = timed(
        "    ledger lines + record index (both batches)", base._append_records
    )  # type: ignore[method-assign]
    execute.apply_plan = timed("  send + verify", execute.apply_plan)
    run.apply_plan = execute.apply_plan
    execute._send = timed("    updates (the provider calls)", execute._send)
    execute._verify = timed("    verification (pool threads, summed)", execute._verify)


def main() -> None:
    out, clock, argv = Path(sys.argv[1]), sys.argv[2], sys.argv[3:]
    for name in MODULES:
        importlib.import_module(name)
    # Wall from this script's first line; CPU from the process's start (the interpreter's too).
    add("interpreter + imports", time.perf_counter() - BEGAN, cpu())
    wrap()
    import pipeline.clock
    from pipeline.cli import main as cli

    frozen = datetime.strptime(clock, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    pipeline.clock.system_now = lambda: frozen
    try:
        cli(args=argv, prog_name="dmarcops", standalone_mode=False)
    finally:
        add("whole command (this process)", time.perf_counter() - BEGAN, cpu())
        out.write_text(json.dumps(stages))


if __name__ == "__main__":
    main()
