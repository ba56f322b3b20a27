"""The one way dmarcops reads a file it did not write itself this run: zones, policy, requests,
approvals, change records, the ledger, MTA-STS policies, plan files.

A repository is input from many hands (pull requests from forks included), so a file is read only
if it is a regular file, not a symbolic link, inside the repository, and not larger than the limit.
Everything else is refused with an InputError naming the file and what to do, and is never read:
a FIFO would block the run forever, a device can be endless (/dev/zero), a symbolic link can point
at a secret outside the repository (~/.ssh/id_ed25519) whose content would then appear in a
message or a pull-request comment.

docs/input-safety.md describes the limits and every refusal.
"""

from __future__ import annotations

import contextlib
import os
import stat
from pathlib import Path
from typing import TYPE_CHECKING

from pipeline.errors import InputError
from pipeline.load.limits import DEFAULT_LIMITS, Limits

if TYPE_CHECKING:
    from pipeline.load.yamltext import YamlDocument


def find_root(path: Path) -> Path | None:
    """The repository a path belongs to: its nearest ancestor, taken as written (symbolic links
    not followed), that holds a policy/ directory, or a policy/ link (a repository whose policy/
    was replaced by a link to elsewhere is still that repository: its files are then refused as
    outside it). None for a file outside any repository."""
    absolute = Path(os.path.abspath(path))
    for parent in absolute.parents:
        try:
            mode = os.lstat(parent / "policy").st_mode
        except OSError:
            continue
        if stat.S_ISDIR(mode) or stat.S_ISLNK(mode):
            return parent
    return None


def _kind(mode: int) -> str:
    if stat.S_ISLNK(mode):
        return "a symbolic link"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISDIR(mode):
        return "a directory"
    return "not a regular file"


def _refuse(path: Path, what: str, hint: str) -> InputError:
    return InputError(what, file=path, hint=hint)


_real_roots: dict[str, tuple[tuple[int, int], str]] = {}


def _real_root(root: Path) -> str:
    """os.path.realpath(root), remembered while the directory it names stays the same one: one
    stat instead of one lstat per component (audit verify reads 100,000 files of one root)."""
    key = os.fspath(root)
    try:
        st = os.stat(key)
    except OSError:
        return os.path.realpath(key)
    seen = _real_roots.get(key)
    if seen is not None and seen[0] == (st.st_dev, st.st_ino):
        return seen[1]
    real = os.path.realpath(key)
    _real_roots[key] = ((st.st_dev, st.st_ino), real)
    return real


def _inside(real: str, root: Path) -> bool:
    real_root = _real_root(root)
    return real == real_root or real.startswith(real_root.rstrip(os.sep) + os.sep)


def _real_path_of(fd: int, path: Path) -> str:
    # The path of what was actually opened (Linux): immune to a directory swapped after the check.
    try:
        return os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return os.path.realpath(path)


def read_bytes(
    path: Path,
    *,
    limit: int | None = None,
    root: Path | None = None,
    outside_ok: bool = False,
    log: bool = False,
) -> bytes:
    """The content of a regular file inside the repository, within the size limit.

    `root` defaults to the repository the path is in (find_root); `limit` to the repository's
    `input_limits` (max_log_bytes when `log`). `outside_ok` is for files a user names on the
    command line (--plan): they may live anywhere, but are still only regular files within limits.
    """
    root = root if root is not None else find_root(path)
    if limit is None:
        limits = configured_limits(root)
        limit = limits.max_log_bytes if log else limits.max_file_bytes
    try:
        before = os.lstat(path)
    except OSError as exc:
        raise InputError(f"cannot read the file: {exc.strerror}", file=path) from None
    # Checked on the name first so that a FIFO or device is never even opened.
    if not stat.S_ISREG(before.st_mode):
        raise _refuse(
            path,
            f"refused: the file is {_kind(before.st_mode)}; dmarcops reads only regular files",
            "Replace it with a regular file holding the content (git stores symbolic links as "
            "links: commit the file itself).",
        )
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        # ELOOP: the name became a symbolic link between the lstat and the open.
        raise InputError(f"cannot read the file: {exc.strerror}", file=path) from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or (st.st_dev, st.st_ino) != (before.st_dev, before.st_ino):
            raise _refuse(
                path,
                "refused: the file changed into something other than a regular file while it "
                "was being opened",
                "Run again; if it repeats, something is tampering with the repository.",
            )
        if root is not None and not outside_ok:
            real = _real_path_of(fd, path)
            if not _inside(real, root):
                raise _refuse(
                    path,
                    "refused: the file resolves outside the repository "
                    "(a directory on its path is a symbolic link)",
                    f"Keep every input file inside {root}; replace the linked directory with a "
                    "real one.",
                )
        if st.st_size > limit:
            raise _too_large(path, st.st_size, limit, log)
        chunks: list[bytes] = []
        total = 0
        # Read at most limit + 1 bytes: a file that grows while we read is still cut off.
        while total <= limit:
            chunk = os.read(fd, min(1 << 20, limit + 1 - total))
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
        if total > limit:
            raise _too_large(path, total, limit, log)
        return b"".join(chunks)
    finally:
        os.close(fd)


def _too_large(path: Path, size: int, limit: int, log: bool) -> InputError:
    key = "max_log_bytes" if log else "max_file_bytes"
    return InputError(
        f"refused: the file is {size} bytes, over the limit of {limit} bytes",
        file=path,
        hint=f"Split it, or raise input_limits.{key} in policy/settings.yaml if it is genuine.",
    )


def read_text(
    path: Path,
    *,
    limit: int | None = None,
    root: Path | None = None,
    outside_ok: bool = False,
    log: bool = False,
) -> str:
    """read_bytes, decoded as UTF-8 (an InputError naming the byte offset when it is not)."""
    raw = read_bytes(path, limit=limit, root=root, outside_ok=outside_ok, log=log)
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise InputError(
            "the file is not UTF-8 text",
            file=path,
            line=line,
            hint="Save it as UTF-8.",
        ) from None


def is_regular(path: Path) -> bool:
    """True for a regular file (not a symbolic link): what `path.exists()` should mean for input."""
    try:
        return stat.S_ISREG(os.lstat(path).st_mode)
    except OSError:
        return False


def is_real_dir(path: Path) -> bool:
    """A directory that is not a symbolic link: discovery never walks into a linked directory."""
    try:
        return stat.S_ISDIR(os.lstat(path).st_mode)
    except OSError:
        return False


def configured_limits(root: Path | None) -> Limits:
    """The limits a read in `root` is held to: policy/settings.yaml's, the defaults outside a
    repository."""
    return DEFAULT_LIMITS if root is None else limits_for(root)


def _settings_limits(doc: YamlDocument) -> Limits:
    section = doc.data.get("input_limits") if isinstance(doc.data, dict) else None
    if section is None:
        return DEFAULT_LIMITS
    if not isinstance(section, dict):
        raise doc.error(("input_limits",), "input_limits must be a mapping")
    values: dict[str, int] = {}
    for name in Limits.__dataclass_fields__:
        if name not in section:
            continue
        value = section[name]
        # bool is an int in Python: `true` is not a size.
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise doc.error(
                ("input_limits", name),
                f"input_limits.{name} must be a positive whole number, not {value!r}",
                hint="settings.schema.json describes the keys; see docs/input-safety.md.",
            )
        values[name] = value
    unknown = sorted(set(section) - set(Limits.__dataclass_fields__))
    if unknown:
        raise doc.error(
            ("input_limits", unknown[0]),
            f"unknown key input_limits.{unknown[0]}",
            hint=f"Known keys: {', '.join(Limits.__dataclass_fields__)}.",
        )
    return Limits(**values)


_limits_cache: dict[tuple[str, int, int, int], Limits] = {}


def limits_for(root: Path) -> Limits:
    """The repository's input limits (policy/settings.yaml `input_limits`), read once per version.

    policy/settings.yaml itself is read under the default limits: its own limits cannot be used to
    admit it.
    """
    path = root / "policy" / "settings.yaml"
    try:
        st = os.lstat(path)
    except OSError:
        return DEFAULT_LIMITS
    key = (str(path), st.st_ino, st.st_mtime_ns, st.st_size)
    found = _limits_cache.get(key)
    if found is None:
        # Imported here, not at the top: PyYAML is a heavy import that `dmarcops --help` and every
        # command reading no repository file go without (tests/test_imports.py).
        from pipeline.load.yamltext import parse_yaml

        text = read_text(path, root=root, limit=DEFAULT_LIMITS.max_file_bytes)
        found = _settings_limits(parse_yaml(text, path, DEFAULT_LIMITS))
        _limits_cache[key] = found
    return found


def exists(path: Path) -> bool:
    """True when anything is at the name, a dangling symbolic link included: an optional input
    that is present but refused must be refused with its message, not skipped as missing."""
    return os.path.lexists(path)


def open_lock(path: Path, *, root: Path | None = None) -> int:
    """A lock file opened (created when missing) for flock and a short note of who holds it.

    O_NOFOLLOW: a lock file committed as a symbolic link to ~/.bashrc must not be truncated and
    written through; O_NONBLOCK: a FIFO in its place must not hang the run. The directory holding
    it must be inside the repository (a linked changes/.locks would put the file elsewhere).
    """
    return _open_regular(
        path,
        os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC,
        root,
        noun="lock file",
        verb="locks",
        hint="Remove it (git rm it if it was committed); dmarcops creates it when needed.",
    )


def open_append(path: Path, *, root: Path | None = None) -> int:
    """An append-only log (the ledger) opened for writing, never through a symbolic link, never
    a FIFO or device: a linked ledger must not append the audit trail to another file."""
    return _open_regular(
        path,
        os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC,
        root,
        noun="file",
        verb="writes",
        hint="Restore the file from git as a regular file.",
    )


def _open_regular(
    path: Path, flags: int, root: Path | None, *, noun: str, verb: str, hint: str
) -> int:
    """os.open for a file dmarcops writes, refused (with `hint`) when its directory resolves
    outside the repository or the name is anything but a regular file, before or after opening."""
    root = root if root is not None else find_root(path)
    if root is not None and not _inside(os.path.realpath(path.parent), root):
        raise _refuse(
            path,
            f"refused: the {noun}'s directory resolves outside the repository "
            "(a directory on its path is a symbolic link)",
            f"Replace the linked directory with a real one inside {root}.",
        )

    def refused(mode: int) -> InputError:
        return _refuse(
            path, f"refused: the {noun} is {_kind(mode)}; dmarcops {verb} only regular files", hint
        )

    try:
        fd = os.open(path, flags, 0o644)
    except OSError as exc:
        try:
            mode: int | None = os.lstat(path).st_mode
        except OSError:
            mode = None
        if mode is not None and not stat.S_ISREG(mode):
            raise refused(mode) from None
        raise InputError(f"cannot open the {noun}: {exc.strerror}", file=path) from None
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        raise refused(st.st_mode)
    return fd


def make_dir(directory: Path, *, root: Path | None = None) -> Path:
    """mkdir -p for a directory dmarcops writes into, refused when it resolves outside the
    repository (changes/records committed as a symbolic link to /tmp/elsewhere, say): what
    dmarcops writes must land where the audit trail says it is."""
    root = root if root is not None else find_root(directory)
    directory.mkdir(parents=True, exist_ok=True)
    if root is not None and not _inside(os.path.realpath(directory), root):
        raise _refuse(
            directory,
            "refused: the directory resolves outside the repository (it, or a directory on its "
            "path, is a symbolic link)",
            f"Replace the linked directory with a real one inside {root}.",
        )
    return directory


def replace_text(path: Path, text: str, *, root: Path | None = None) -> Path:
    """Write a whole file dmarcops owns (a saved plan, a generated CODEOWNERS, a request it
    files) by writing a temporary file beside it and renaming it over the name: a symbolic link
    committed at that name is replaced, never written through to the file it points at."""
    return replace_bytes(path, text.encode("utf-8"), root=root)


def write_output(path: Path, text: str, *, what: str, option: str = "--out") -> None:
    """A file a command's user named (`--out`, `--chart`), written as `replace_text` writes:
    beside the name, then renamed over it. So a symbolic link at that name (one a pull request
    committed where a workflow writes `--out plan.json`) is replaced, never written through to
    the file it points at. The directory must exist; a failure is an InputError naming the file."""
    try:
        replace_bytes(path, text.encode("utf-8"), make_parents=False)
    except OSError as exc:
        raise InputError(
            f"cannot write the {what}: {exc.strerror or exc}",
            file=path,
            hint=f"Give {option} a file in a directory that exists and that you may write.",
        ) from None


def replace_bytes(
    path: Path, data: bytes, *, root: Path | None = None, make_parents: bool = True
) -> Path:
    """As `replace_text`, for bytes (a pull request's files laid over the default branch).
    `make_parents=False`: the directory must exist (a file the user named)."""
    import tempfile  # only writers need it; every command reads through this module

    directory = make_dir(path.parent, root=root) if make_parents else path.parent
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return path
