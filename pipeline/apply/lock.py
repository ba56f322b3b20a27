"""One apply per client at a time, across processes (product.md: "takes a per-client lock").

An advisory `flock` on changes/.locks/<client>.lock: the kernel drops it when the process dies, so a
crashed apply never leaves a client locked forever.
"""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pipeline.errors import GateRefused


@contextmanager
def client_lock(changes_dir: Path, client: str, wait_seconds: float = 0.0) -> Iterator[None]:
    locks = changes_dir / ".locks"
    locks.mkdir(parents=True, exist_ok=True)
    path = locks / f"{client}.lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        deadline = time.monotonic() + wait_seconds
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    holder = path.read_text(encoding="utf-8").strip() or "another process"
                    raise GateRefused(
                        f"another apply for client {client!r} is running ({holder})",
                        file=path,
                        hint="Wait for it to finish, or pass --wait SECONDS to queue behind it.",
                    ) from None
                time.sleep(0.05)
        os.ftruncate(fd, 0)
        os.write(fd, f"pid {os.getpid()}".encode())
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock
