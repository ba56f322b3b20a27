"""One apply per client at a time, across processes (README: "under a per-client lock").

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
from pipeline.load.files import make_dir, open_lock
from pipeline.text.safe import clean


@contextmanager
def client_lock(changes_dir: Path, client: str, wait_seconds: float = 0.0) -> Iterator[None]:
    root = changes_dir.parent
    locks = make_dir(changes_dir / ".locks", root=root)
    path = locks / f"{client}.lock"
    # O_NOFOLLOW, regular files only (pipeline.load.files.open_lock): a lock file committed as a
    # symbolic link to another file must not have that file truncated and written.
    fd = open_lock(path, root=root)
    try:
        deadline = time.monotonic() + wait_seconds
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    # From our own descriptor: the name could be swapped meanwhile.
                    note = os.pread(fd, 200, 0).decode("utf-8", "replace").strip()
                    holder = clean(note) or "another process"
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
