"""A pull request's data laid over the default branch, for the privileged gate (`github gate`).

The privileged workflow checks out the default branch and runs dmarcops from it. The pull
request's commit is fetched as git objects only, never checked out: what it changes under the
data paths (zone files, change requests, approvals) is copied onto the work tree from those
objects, and everything else it changes (policy/, the ledger, sealed policy, code, workflows) is
left as the default branch has it and listed. So the base branch's policy of record and ledger
judge the pull request's zones, and nothing the pull request wrote ever runs or decides.

What is copied, and what is refused (InputError, exit 1: the check run then says so):
- only paths the pull request changed since it left the default branch (`git diff --no-renames
  MERGE-BASE HEAD`), so a branch that is behind does not undo what main has since;
- only regular files (git modes 100644/100755): a symbolic link or a submodule in a data path is
  refused, never written (a link there could point the plan at any file on the runner);
- each path at the depth its kind has (zones/<client>/<file>, changes/requests/<file>,
  changes/approvals/<plan>/<file>), no `.` or `..` component, no hidden or control characters;
- within the default branch's max_file_bytes, written by rename (a link at the name is
  replaced, not followed), into directories that resolve inside the repository;
- a work tree with no local edits under the data paths (otherwise it would judge something else).
"""

from __future__ import annotations

import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

from pipeline.errors import EnvironmentProblem, InputError
from pipeline.load.files import configured_limits, make_dir, replace_bytes

GIT_TIMEOUT = 60.0
DATA_ROOTS = ("zones", "changes/requests", "changes/approvals", "changes/evidence")
# (prefix, how many components follow it): zones/<client>/<file>, changes/requests/<file>,
# changes/approvals/<plan hash>/<file>, changes/evidence/<sha256>.eml (a client's e-mail, stored
# by hash and DKIM-verified when it is used).
_DATA_SHAPES = (
    ("zones/", 2),
    ("changes/requests/", 1),
    ("changes/approvals/", 2),
    ("changes/evidence/", 1),
)
_COMPONENT = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.@+-]*$")
_SHA = re.compile(r"^[0-9a-f]{40}([0-9a-f]{24})?$")
REGULAR_MODES = ("100644", "100755")
# Paths outside the data that dmarcops itself reads to judge: a pull request changing them is
# asking to change the rules, which a lead reviews (docs/github.md).
JUDGING_ROOTS = ("policy/", "changes/ledger.jsonl", "changes/policy/", ".github/", "pipeline/")


@dataclass(frozen=True)
class Overlay:
    """What the overlay took from the pull request and what it left as on the default branch."""

    base: str  # the merge base: where the pull request left the default branch
    head: str
    written: tuple[str, ...]  # data paths copied from the pull request's commit
    removed: tuple[str, ...]  # data paths the pull request deleted
    not_taken: tuple[str, ...]  # every other path it changed: judged as on the default branch

    @property
    def judging(self) -> tuple[str, ...]:
        """Changed paths that dmarcops reads to judge (policy, ledger, code, workflows)."""
        return tuple(p for p in self.not_taken if p.startswith(JUDGING_ROOTS))


def _git(repo: Path, *args: str, binary: bool = False) -> bytes:
    try:
        done = subprocess.run(
            ["git", "-C", str(repo), *args], capture_output=True, timeout=GIT_TIMEOUT, check=False
        )
    except FileNotFoundError:
        raise EnvironmentProblem("the gate needs git, which is not installed") from None
    except subprocess.TimeoutExpired:
        raise EnvironmentProblem(f"git {args[0]} did not finish in {GIT_TIMEOUT:.0f} s") from None
    if done.returncode != 0:
        said = done.stderr.decode("utf-8", "replace").strip().splitlines()
        raise EnvironmentProblem(
            f"git {args[0]} failed in {repo}: {said[-1] if said else f'exit {done.returncode}'}",
            hint="Check out the default branch with `fetch-depth: 0` and fetch the pull "
            "request's head commit (`git fetch origin SHA`) before the gate.",
        )
    return done.stdout


def data_path_problem(path: str) -> str | None:
    """Why `path` (as git names it) may not be copied from a pull request; None when it may."""
    for prefix, depth in _DATA_SHAPES:
        if path.startswith(prefix):
            parts = path[len(prefix) :].split("/")
            if len(parts) != depth:
                return f"not at the depth {prefix}* files have"
            if not all(_COMPONENT.match(p) for p in parts):
                return "a name with characters dmarcops does not accept in data paths"
            return None
    return "outside zones/ and changes/requests|approvals|evidence/"


def is_data_path(path: str) -> bool:
    return path.startswith(tuple(prefix for prefix, _ in _DATA_SHAPES))


def _changes(repo: Path, base: str, head: str) -> list[tuple[str, str]]:
    """(status letter, path) of every path the pull request changed since `base`."""
    raw = _git(repo, "diff", "--no-renames", "--name-status", "-z", base, head, "--")
    # A name that is not UTF-8 is shown with U+FFFD: it can never match a data path anyway.
    fields = raw.decode("utf-8", "replace").split("\0")
    out: list[tuple[str, str]] = []
    for i in range(0, len(fields) - 1, 2):
        out.append((fields[i][:1], fields[i + 1]))
    return out


def _entry(repo: Path, head: str, path: str) -> tuple[str, str, str]:
    raw = _git(repo, "ls-tree", "-z", head, "--", path).decode("utf-8", "surrogateescape")
    entry = raw.split("\0")[0]
    meta, _, name = entry.partition("\t")
    parts = meta.split()
    if name != path or len(parts) != 3:
        raise EnvironmentProblem(f"git ls-tree does not list {path!r} in {head[:12]}")
    mode, kind, oid = parts
    return mode, kind, oid


def _clean_under(repo: Path) -> None:
    dirty = _git(repo, "status", "--porcelain", "-z", "--untracked-files=all", "--", *DATA_ROOTS)
    if dirty.strip(b"\0"):
        first = dirty.split(b"\0")[0].decode("utf-8", "replace")[3:]
        raise InputError(
            f"the work tree has local edits under the data paths ({first}): the gate would "
            "judge files that are neither the default branch's nor the pull request's",
            hint="Run the gate in a fresh checkout of the default branch.",
        )


def overlay_pull_request(repo: Path, head: str) -> Overlay:
    """Copy the pull request's changes under the data paths onto the work tree (the default
    branch at HEAD); refuse anything that is not a plain file at a data path's shape."""
    if not _SHA.match(head):
        raise InputError(f"{head!r} is not a full commit SHA")
    try:
        _git(repo, "cat-file", "-e", f"{head}^{{commit}}")
    except EnvironmentProblem:
        raise EnvironmentProblem(
            f"the pull request's head commit {head[:12]} is not in this clone",
            hint="Fetch it before the gate: `git fetch --no-tags origin SHA` (data only; it is "
            "never checked out).",
        ) from None
    _clean_under(repo)
    base = _git(repo, "merge-base", "HEAD", head).decode().strip()
    limit = configured_limits(repo).max_file_bytes
    written: list[str] = []
    removed: list[str] = []
    not_taken: list[str] = []
    planned: list[tuple[str, str, str]] = []  # (status, path, blob) checked before any write
    for status, path in _changes(repo, base, head):
        if not is_data_path(path):
            not_taken.append(path)
            continue
        problem = data_path_problem(path)
        if problem is not None:
            raise InputError(
                f"refused: the pull request changes {path!r}: {problem}",
                hint="Zone files are zones/<client>/<domain>.yaml, requests "
                "changes/requests/<id>.yaml, approvals changes/approvals/<plan>/<file>.json.",
            )
        if status == "D":
            planned.append((status, path, ""))
            continue
        mode, kind, oid = _entry(repo, head, path)
        if mode not in REGULAR_MODES or kind != "blob":
            what = {"120000": "a symbolic link", "160000": "a submodule"}.get(mode, f"mode {mode}")
            raise InputError(
                f"refused: the pull request's {path} is {what}; the gate copies only regular files",
                hint="Commit the file itself, not a link to it.",
            )
        size = int(_git(repo, "cat-file", "-s", oid).decode().strip() or "0")
        if size > limit:
            raise InputError(
                f"refused: the pull request's {path} is {size} bytes, over the limit of {limit}",
                hint="input_limits.max_file_bytes in policy/settings.yaml (the default branch's).",
            )
        planned.append((status, path, oid))
    # Everything is checked before the first write: a refused pull request leaves the tree as is.
    # The bytes are copied as they are: the readers (load/files.py) judge the content itself.
    contents = {path: _git(repo, "cat-file", "blob", oid) for status, path, oid in planned if oid}
    for status, path, _ in planned:
        target = repo / path
        if status == "D":
            if os.path.lexists(target):
                make_dir(target.parent, root=repo)  # refuses a parent that leads outside
                os.unlink(target)  # unlink never follows a link at the name
            removed.append(path)
        else:
            replace_bytes(target, contents[path], root=repo)
            written.append(path)
    return Overlay(base, head, tuple(written), tuple(removed), tuple(not_taken))
