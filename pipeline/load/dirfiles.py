"""Many files of one directory read as pipeline.load.files.read_bytes reads one, without paying
its per-file path work: `audit verify` reads two files per record, 100,000 at 50,000 records.

The directory is opened once (O_DIRECTORY) and must resolve inside the repository; each file is
then looked at and opened by name relative to it, with O_NOFOLLOW, so it can be neither a
symbolic link nor anywhere but in that directory. Anything that is not a plain regular file
within the limit (a link, a FIFO, a device, a file too large, a name that vanished) is handed to
read_bytes itself, which refuses it with its own message: the answers are read_bytes's, only the
common case is cheaper.
"""

from __future__ import annotations

import enum
import os
import stat
from pathlib import Path
from types import TracebackType

from pipeline.errors import InputError
from pipeline.load.files import _inside, _real_path_of, configured_limits, read_bytes

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC


class DirectoryFiles:
    """`with DirectoryFiles(directory, root) as files: files.read(name)`."""

    def __init__(self, directory: Path, root: Path) -> None:
        self.directory = directory
        self.root = root
        self.limit = configured_limits(root).max_file_bytes
        self._fd: int | None = None

    def __enter__(self) -> DirectoryFiles:
        try:
            fd = os.open(self.directory, _DIR_FLAGS)
        except OSError:
            return self  # every read goes through read_bytes, which says why
        if _inside(_real_path_of(fd, self.directory), self.root):
            self._fd = fd
        else:
            os.close(fd)  # a linked directory: read_bytes refuses each file by name
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def read(self, name: str) -> bytes:
        """The file's bytes, or read_bytes's InputError for it."""
        data = self._read(name, absent_ok=False)
        assert data is not None  # absent_ok=False: a missing file is read_bytes's to refuse
        return data

    def _read(self, name: str, *, absent_ok: bool) -> bytes | None:
        """read(); with `absent_ok`, None when nothing at all is at the name."""
        if self._fd is None or "/" in name:
            if absent_ok and not os.path.lexists(self.directory / name):
                return None
            return self._refused(name)
        try:
            before = os.stat(name, dir_fd=self._fd, follow_symlinks=False)
        except FileNotFoundError:
            if absent_ok:
                return None
            return self._refused(name)
        except OSError:
            return self._refused(name)
        # Checked on the name first, as read_bytes does, so a FIFO or device is never opened.
        if not stat.S_ISREG(before.st_mode) or before.st_size > self.limit:
            return self._refused(name)
        try:
            fd = os.open(name, _FILE_FLAGS, dir_fd=self._fd)
        except OSError:
            return self._refused(name)
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode) or (st.st_dev, st.st_ino) != (
                before.st_dev,
                before.st_ino,
            ):
                return self._refused(name)  # swapped meanwhile
            # One byte more than the size: fewer back is the whole file (a short read of a
            # regular file is its end), so the common case costs one read of the size it needs.
            data = os.read(fd, min(st.st_size, self.limit) + 1)
            # More back: it grew meanwhile. Read on to at most limit + 1 bytes: a file that grew
            # past the limit is read_bytes's to refuse.
            while st.st_size < len(data) <= self.limit:
                more = os.read(fd, self.limit + 1 - len(data))
                if not more:
                    break
                data += more
        finally:
            os.close(fd)
        if len(data) > self.limit:
            return self._refused(name)
        return data

    def _refused(self, name: str) -> bytes:
        """read_bytes's own answer for the file (its refusal, or the file when it changed into a
        readable one meanwhile): the path is built only here, off the common case."""
        return read_bytes(self.directory / name, root=self.root)

    def text_if_present(self, name: str) -> str | Absent | None:
        """ABSENT when nothing at all is at the name (pipeline.load.files.exists false: a dangling
        link is something); else the file as UTF-8 text, or None when it cannot be read or
        decoded (the caller reports a mismatch, as for a missing rendering). One look at the
        name."""
        try:
            data = self._read(name, absent_ok=True)
        except InputError:
            return None
        if data is None:
            return ABSENT
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            return None


class Absent(enum.Enum):
    ABSENT = "absent"


ABSENT = Absent.ABSENT
