"""The policy of record: policy/ as it was sealed into the ledger, not as the working tree has it.

A change must never be judged by rules it edits itself (seed: policy changes are themselves
changes, high risk, approved by a lead). So the policy that judges a change, and the roster whose
keys every ledger signature is checked against, is a *sealed snapshot*: every file under policy/,
byte for byte, stored once under its own hash as `changes/policy/<sha256>.json` and named by a
signed `policy` event of the ledger. `dmarcops init` seals the first one (the genesis); applying an
approved policy change seals the next. A policy/ that differs from the last seal is a pending
policy change: `plan` lists it as items of kind "policy", and until it is applied the old rules
hold.

To load a snapshot with the ordinary loaders (schemas, line numbers in messages and all), it is
written out as a private, read-only policy/ tree in a temporary directory (`materialize`).
"""

from __future__ import annotations

import atexit
import hashlib
import json
import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from pipeline.errors import InputError
from pipeline.load.files import exists, is_real_dir, make_dir, read_bytes, replace_text

POLICY_DIR = "policy"
SNAPSHOTS = "policy"  # under changes/
SNAPSHOT_FORMAT = "dmarcops-policy/1"

if TYPE_CHECKING:
    from pipeline.gate.roster import Roster


@dataclass(frozen=True)
class PolicySnapshot:
    """Every file under policy/ (path relative to the repository, "/"-separated) and its text."""

    files: Mapping[str, str]

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.canonical()).hexdigest()

    def canonical(self) -> bytes:
        body = {"format": SNAPSHOT_FORMAT, "files": dict(sorted(self.files.items()))}
        return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()

    def changed_files(self, other: PolicySnapshot) -> list[str]:
        """Paths added, removed or edited going from `self` to `other`."""
        paths = set(self.files) | set(other.files)
        return sorted(p for p in paths if self.files.get(p) != other.files.get(p))


def _walk(directory: Path, root: Path) -> list[Path]:
    """Regular files under `directory`, links and special files refused by the safe reader.

    Depth first, each directory's entries by name, as a recursive walk would list them; kept
    with a stack of its own, so a policy/ nested deeper than Python's recursion limit is listed
    (and its files judged) instead of crashing the command."""
    found: list[Path] = []
    stack = [iter(sorted(os.scandir(directory), key=lambda e: e.name))]
    while stack:
        entry = next(stack[-1], None)
        if entry is None:
            stack.pop()
        elif entry.is_dir(follow_symlinks=False):
            stack.append(iter(sorted(os.scandir(entry.path), key=lambda e: e.name)))
        else:
            # Every file, dot-files too: the loaders' globs match `.shadow.yaml`, so the seal
            # must see it. read_bytes refuses a link, FIFO or device by name.
            found.append(Path(entry.path))
    return found


def current_snapshot(root: Path) -> PolicySnapshot:
    """policy/ as the working tree has it now."""
    policy = root / POLICY_DIR
    if not is_real_dir(policy):
        raise InputError(
            "no policy/ directory here",
            file=policy,
            hint="Run dmarcops in the repository root (the directory holding policy/ and zones/).",
        )
    files: dict[str, str] = {}
    for path in _walk(policy, root):
        raw = read_bytes(path, root=root)
        try:
            files[path.relative_to(root).as_posix()] = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InputError(
                f"not UTF-8 at byte {exc.start}",
                file=path,
                hint="Policy files are UTF-8 text.",
            ) from None
    return PolicySnapshot(files)


def _inside_policy(name: str) -> bool:
    """A relative, normalised path under policy/ (what current_snapshot writes), nothing else."""
    parts = name.split("/")
    return (
        len(parts) >= 2
        and len(name.encode("utf-8", "surrogatepass")) <= 1000
        and all(len(p.encode("utf-8", "surrogatepass")) <= 200 for p in parts)
        and parts[0] == POLICY_DIR
        and all(p not in ("", ".", "..") for p in parts)
        and "\x00" not in name
        and "\\" not in name
    )


def snapshot_path(changes_dir: Path, digest: str) -> Path:
    return changes_dir / SNAPSHOTS / f"{digest}.json"


def store_snapshot(changes_dir: Path, snapshot: PolicySnapshot) -> str:
    """Write the snapshot under its own hash (once) and return the hash. Caller holds the lock."""
    digest = snapshot.sha256
    path = snapshot_path(changes_dir, digest)
    text = snapshot.canonical().decode("ascii") + "\n"
    # Checked, never trusted: whatever sits at that name (planted garbage, a link, a FIFO) is
    # replaced by rename, so the line a lead signs always names a snapshot that loads.
    try:
        if exists(path) and read_bytes(path, root=changes_dir.parent, log=True) == text.encode():
            return digest
    except InputError:
        pass
    make_dir(path.parent, root=changes_dir.parent)
    replace_text(path, text, root=changes_dir.parent)
    return digest


def load_snapshot(changes_dir: Path, digest: str) -> PolicySnapshot:
    """The sealed snapshot `digest`; ValueError saying what is wrong (missing, altered)."""
    path = snapshot_path(changes_dir, digest)
    if not exists(path):
        raise ValueError(f"sealed policy {path.name} is missing from changes/{SNAPSHOTS}/")
    try:
        raw = read_bytes(path, root=changes_dir.parent, log=True)
    except InputError as exc:
        raise ValueError(f"sealed policy {path.name}: {exc.message}") from None
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError):  # not UTF-8, not JSON, too deep, a number too long
        raise ValueError(f"sealed policy {path.name} is not JSON") from None
    files = data.get("files") if isinstance(data, dict) else None
    if (
        not isinstance(data, dict)
        or data.get("format") != SNAPSHOT_FORMAT
        or not isinstance(files, dict)
        or not all(isinstance(k, str) and isinstance(v, str) for k, v in files.items())
    ):
        raise ValueError(f"sealed policy {path.name} is not a {SNAPSHOT_FORMAT} snapshot")
    for name in files:
        if not _inside_policy(name):
            raise ValueError(f"sealed policy {path.name} names a file outside policy/: {name!r}")
    snapshot = PolicySnapshot(files)
    if snapshot.sha256 != digest:
        raise ValueError(f"sealed policy {path.name} was edited (its hash is not its name)")
    return snapshot


# What load_roster reads: the roster, its schema, and the settings that set the input limits.
_ROSTER_FILES = ("policy/roster.yaml", "policy/settings.yaml", "policy/schemas/roster.schema.json")


def roster_of_snapshot(snapshot: PolicySnapshot) -> Roster:
    """The roster a sealed snapshot holds, read with the ordinary (schema-checked) loader. Only
    the files that loader reads are written out (unless the whole snapshot already is): a plan
    of 10,000 zones asks for the roster, and need not write 1,000 client profiles for it."""
    # Imported here: a no-op `plan --changed-since` hashes the working policy/ with this module
    # and never reads a roster (the roster's loader brings jsonschema and cryptography).
    from pipeline.gate.roster import load_roster

    if snapshot.sha256 in _MATERIALIZED:
        return load_roster(_MATERIALIZED[snapshot.sha256])
    files = {k: v for k, v in snapshot.files.items() if k in _ROSTER_FILES}
    return load_roster(materialize(snapshot, files, key=f"{snapshot.sha256}:roster"))


_MATERIALIZED: dict[str, Path] = {}


def materialize(
    snapshot: PolicySnapshot, files: dict[str, str] | None = None, key: str = ""
) -> Path:
    """A private directory holding the snapshot (or only `files` of it, remembered under `key`)
    as policy/...: a root the loaders can read.

    One per snapshot per process, removed at exit; files are read-only and the directory is
    mkdtemp's (mode 0700), so nobody else on the machine can swap a file in between.
    """
    digest = snapshot.sha256
    key = key or digest
    if key in _MATERIALIZED:
        return _MATERIALIZED[key]
    # Imported here: hashing policy/ (a no-op plan, tests/test_startup.py) writes nothing.
    import shutil
    import tempfile

    private = Path(tempfile.mkdtemp(prefix="dmarcops-"))
    atexit.register(shutil.rmtree, private, True)
    # Named after the seal, so a message about one of its files says which sealed policy it is.
    root = private / f"sealed-policy-{digest[:16]}"
    root.mkdir()
    for relative, text in (snapshot.files if files is None else files).items():
        if not _inside_policy(relative):
            raise ValueError(f"sealed policy names a file outside policy/: {relative!r}")
        path = root / relative
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
            path.chmod(stat.S_IRUSR)
        except (OSError, UnicodeEncodeError) as exc:  # a name that is both file and directory
            raise ValueError(f"sealed policy cannot hold {relative!r}: {exc}") from None
    _MATERIALIZED[key] = root
    return root
