"""`audit verify` on every core: the checks of one record file, or of one ledger line's signature,
depend on nothing the others compute, so they run in worker processes, in ranges, and their
results are put back together in order: the report is the same, problem for problem, as one
process would give (tests/test_audit_pool.py).

The workers are forked after the ledger has been read and its order checked, so they inherit
what they need (the ledger's last events, the rosters, the keys) without it being copied through
a pipe; only their results travel back. A worker that dies (killed, out of memory) costs time, not
the verdict: the parent then does that work itself.
"""

from __future__ import annotations

import gc
import os
import threading
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from multiprocessing import get_context
from typing import Any, TypeVar

# Below this many items a pool costs more (forking, collecting) than it saves.
PARALLEL_FROM = 2_000
# Ranges per worker: small enough that one slow range does not leave the other cores idle.
RANGES_PER_WORKER = 8

T = TypeVar("T")

_work: Callable[[int, int], list[Any]] | None = None


def _run(start: int, stop: int) -> list[Any]:
    assert _work is not None  # set before the pool forked this process
    return _work(start, stop)


def workers() -> int:
    """The cores this process may run on (a container's limit included, via its CPU set)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        return os.cpu_count() or 1


def in_ranges(count: int, work: Callable[[int, int], list[T]]) -> list[T]:
    """`work(start, stop)` over consecutive ranges covering 0..count, results joined in order."""
    global _work
    cores = workers()
    # Forking a process that runs other threads (a notebook, an ITSM service calling
    # pipeline.api) could copy a lock one of them holds into the workers: then one process.
    if cores < 2 or count < PARALLEL_FROM or threading.active_count() > 1:
        return work(0, count)
    size = max(1, -(-count // (cores * RANGES_PER_WORKER)))
    _work = work
    # Objects the workers inherit stay out of their collector's sight: its passes would write to
    # every one of them, copying the parent's memory page by page into each worker.
    gc.freeze()
    try:
        with ProcessPoolExecutor(cores, mp_context=get_context("fork")) as pool:
            futures = [pool.submit(_run, s, min(s + size, count)) for s in range(0, count, size)]
            out: list[T] = []
            for future in futures:
                out.extend(future.result())
            return out
    except BrokenProcessPool:
        return work(0, count)
    finally:
        _work = None
        gc.unfreeze()
