"""`audit verify` on every core: the checks of one record file, or of one ledger line's signature,
depend on nothing the others compute, so they run in forked copies of this process, in ranges,
and their results are put back together in order: the report is the same, problem for problem,
as one process would give (tests/test_audit_pool.py).

A child is forked when its work is known, so it inherits what it needs (the ledger's entries,
the rosters, the keys) without it being copied through a pipe; only its result travels back.
The signatures of the first lines are checked while this process still reads the last ones, and
this process takes a share of the record files itself: the cores stay busy from the first line
to the last file. Plain os.fork and a pipe per child, no pool: a pool's manager thread would make
every later fork one from a process with threads. A child that dies (killed, out of memory)
costs time, not the verdict: this process then does that work itself.
"""

from __future__ import annotations

import contextlib
import gc
import os
import pickle
import signal
import threading
from collections.abc import Callable
from types import TracebackType
from typing import Any, Generic, TypeVar

# Below this many items forking costs more than it saves.
PARALLEL_FROM = 2_000
# Ranges per core: small enough that the last one to finish does not leave the others idle long.
RANGES_PER_CORE = 2

T = TypeVar("T")


def workers() -> int:
    """The cores this process may run on (a container's limit included, via its CPU set)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        return os.cpu_count() or 1


def may_fork() -> bool:
    # Forking a process that runs other threads (a notebook, an ITSM service calling
    # pipeline.api) could copy a lock one of them holds into the child: then one process.
    return workers() >= 2 and threading.active_count() == 1


class Child(Generic[T]):
    """`work(start, stop)`, computed in a child forked now when `fork`, else when asked."""

    def __init__(
        self,
        work: Callable[[int, int], list[T]],
        start: int,
        stop: int,
        siblings: list[Child[Any]] | None = None,
    ):
        """`siblings`: the children forked before this one, None to compute in this process."""
        self._work, self._start, self._stop = work, start, stop
        self._pid: int | None = None
        self._fd = -1
        self._status = -1  # the child's exit code, once reaped
        if siblings is not None:
            self._fork(siblings)

    def _fork(self, siblings: list[Child[Any]]) -> None:
        read_end, write_end = os.pipe()
        # What the child inherits stays out of the collector's sight: its passes would write to
        # every object, copying this process's memory into the child page by page.
        gc.freeze()
        pid = os.fork()
        if pid == 0:  # the child: compute, send, leave without running anything of the parent's
            code = 1
            try:
                os.close(read_end)
                # The earlier children's pipes are theirs and the parent's: holding them open
                # here would keep a pipe alive after the parent dropped it.
                for sibling in siblings:
                    if sibling._pid is not None:
                        os.close(sibling._fd)
                view = memoryview(pickle.dumps(self._work(self._start, self._stop), protocol=5))
                while view:
                    view = view[os.write(write_end, view) :]
                code = 0
            finally:
                os._exit(code)
        os.close(write_end)
        self._pid, self._fd = pid, read_end

    def result(self) -> list[T]:
        if self._pid is None:
            return self._work(self._start, self._stop)
        chunks = []
        try:
            while chunk := os.read(self._fd, 1 << 20):
                chunks.append(chunk)
        finally:
            self._reap(kill=False)
        if self._status == 0:
            try:
                # Bytes from this process's own child through a pipe only the two of them hold.
                got: list[T] = pickle.loads(b"".join(chunks))  # noqa: S301
                return got
            except (pickle.UnpicklingError, EOFError, ValueError):
                pass
        return self._work(self._start, self._stop)  # the child died: this process does it

    def _reap(self, *, kill: bool) -> None:
        if self._pid is None:
            return
        os.close(self._fd)
        if kill:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self._pid, signal.SIGKILL)
        _, status = os.waitpid(self._pid, 0)
        self._status = os.waitstatus_to_exitcode(status)
        self._pid = None


class Forks:
    """`with Forks(count) as forks: forks.child(work, a, b)`: children forked only for work of
    `count` items or more on a machine with cores to spare; every child reaped on the way out,
    killed first if its result was never asked for (an exception in this process)."""

    def __init__(self, count: int) -> None:
        self.enabled = count >= PARALLEL_FROM and may_fork()
        self._children: list[Child[Any]] = []

    def __enter__(self) -> Forks:
        return self

    def child(self, work: Callable[[int, int], list[T]], start: int, stop: int) -> Child[T]:
        fork = self.enabled and threading.active_count() == 1
        made = Child(work, start, stop, self._children if fork else None)
        self._children.append(made)
        return made

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        for made in self._children:
            made._reap(kill=True)
        if self.enabled:
            gc.unfreeze()


def in_ranges(count: int, work: Callable[[int, int], list[T]]) -> list[T]:
    """`work(start, stop)` over consecutive ranges covering 0..count, results joined in order:
    the first range in this process, the others in children running meanwhile."""
    with Forks(count) as forks:
        if not forks.enabled:
            return work(0, count)
        size = max(1, -(-count // (workers() * RANGES_PER_CORE)))
        children = [forks.child(work, s, min(s + size, count)) for s in range(size, count, size)]
        out = work(0, min(size, count))
        for made in children:
            out.extend(made.result())
        return out
