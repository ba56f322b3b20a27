"""`dmarcops plan --changed-since REF` when nothing is to be planned: the empty plan, at once.

A pull request that touches no zone (docs, CI, a script) still runs `plan --changed-since`. The
full path answers "no zone changed" only after loading and checking the portfolio, the policy of
record, the roster and the requests: about 0.4 s of imports and reading, for a plan with no item.
This module decides, from git and two small reads, that the full path would print exactly the
empty plan, and only then is that plan printed without it (the lead's target: under 0.1 s).

The empty plan is taken only when all of these hold; anything else, or any doubt, takes the full
path, which judges and prints as before:

- no zone is selected, none is planned for a portfolio-wide change and no zone file was removed
  (pipeline/plan/changes.py maps the changed paths, as for every plan);
- no changed path is one the plan reads at all: nothing under policy/, zones/, changes/ or
  sandbox/. So the portfolio, the roster, the requests and the ledger are the ones REF has, which
  the plan of REF judged (a broken file there was refused then, and `validate` and `audit verify`
  still check them all);
- policy/ in the working tree is the policy the ledger's last `policy` line seals, that line in
  its place (its `seq` its line number; a copied seal is not the full path's policy of record):
  otherwise policy/'s edits would be plan items (pipeline/plan/build.py, policy_items) of an
  otherwise empty plan;
- no genesis is pinned (DMARCOPS_GENESIS): the pin is checked against the whole ledger's first
  entry by the full path only;
- the ledger and every file under policy/ are, byte for byte, the blobs HEAD has (one
  `git ls-tree`): the seal is trusted, not verified, only because git vouches that it is what was
  judged, and git's diff can be told not to look (`update-index --assume-unchanged`,
  `--skip-worktree`), which would let a line appended by hand seal an edit of policy/.

What the shortcut does not repeat is what those inputs being unchanged makes the same as at REF:
the seals' signatures, the schemas of unchanged files, the requests' signatures. With no item in
the plan, no gate decision is taken on either path. So REF is trusted as a revision whose plan
was judged (the base branch, in CI): a seal nobody signed, committed on the branch that is then
named as REF, is refused by the full path (exit 2) and not seen here.

One difference is deliberate: a file git ignores is no change to `--changed-since` (as before),
so an ignored file under changes/requests/ (which can never reach a pull request) is not read
here, where the full path would refuse it if it did not load. policy/ has no such gap: every
file in it, ignored or not, is part of the hash compared with the seal.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath

from pipeline.errors import InputError
from pipeline.load.files import exists, is_real_dir, read_bytes
from pipeline.load.limits import DEFAULT_LIMITS
from pipeline.plan.changes import GIT_TIMEOUT, ChangedZones
from pipeline.records.policy_seal import POLICY_DIR, PolicySnapshot, _walk

# The top directories the plan reads (portfolio, zone files, requests, ledger and records, the
# sandbox's live state): a change under any of them takes the full path.
PLAN_INPUTS = frozenset({"policy", "zones", "changes", "sandbox"})
# pipeline.records.ledger.LEDGER_NAME and pipeline.records.policy_of_record.GENESIS_PIN, named
# again here because those modules import the ledger's verifier (cryptography and the roster);
# tests/test_startup.py checks they agree.
LEDGER_NAME = "ledger.jsonl"
GENESIS_PIN = "DMARCOPS_GENESIS"
LEDGER_PATH = f"changes/{LEDGER_NAME}"


def last_policy_seal(changes_dir: Path) -> str | None:
    """The `policy_sha256` of the ledger's last `policy` line; None when there is none, or when a
    line that could be one cannot be read (the full path then says what is wrong)."""
    raw = _ledger_bytes(changes_dir)
    return None if raw is None else _last_seal(raw)


def _ledger_bytes(changes_dir: Path) -> bytes | None:
    path = changes_dir / LEDGER_NAME
    if not exists(path):
        return None
    try:
        # Under the default limit: the configured one is in policy/settings.yaml, and parsing
        # YAML is a tenth of the time this path has. A larger ledger takes the full path.
        return read_bytes(path, root=changes_dir.parent, limit=DEFAULT_LIMITS.max_log_bytes)
    except InputError:
        return None


def _last_seal(raw: bytes) -> str | None:
    """The seal of the ledger's last `policy` line, when the full path would take that line.

    Only lines that could decode to a `policy` event are parsed: a JSON line holding neither the
    word "policy" nor a backslash (no escape) cannot. A ledger of 100,000 record events is then
    searched, not parsed, which is what keeps this cheap at any size.

    The line's `seq` must be its line number, as every line the ledger writes has. The full path
    orders the policy lines by `seq` and skips one with the genesis's `seq` after the genesis
    (pipeline/records/index_ledger.py, policy_entries): a genuine seal copied to the end (a
    replay) is not its policy of record, and must not be this one's either.
    """
    lines = raw.split(b"\n")
    for number in range(len(lines), 0, -1):
        line = lines[number - 1]
        if b"policy" not in line and b"\\" not in line:
            continue
        try:
            entry = json.loads(line)
        except (ValueError, RecursionError):
            return None  # a damaged line: the full path names it
        if not isinstance(entry, dict) or entry.get("event") != "policy":
            continue
        seq = entry.get("seq")
        if type(seq) is not int or seq != number:
            return None  # out of place: the full path judges which seal holds
        payload = entry.get("payload")
        digest = payload.get("policy_sha256") if isinstance(payload, dict) else None
        return digest if isinstance(digest, str) else None
    return None


def nothing_to_plan(root: Path, paths: Iterable[str], changed: ChangedZones) -> bool:
    """Whether the full plan of `changed` (selected from `paths`, the paths git says changed)
    would certainly be the empty plan, judged as the module docstring says."""
    if changed.zones or changed.everything or changed.removed:
        return False
    if any(PurePosixPath(path).parts[0] in PLAN_INPUTS for path in paths if path):
        return False
    if os.environ.get(GENESIS_PIN, "").strip():
        return False
    if _zones_linked(root / "zones"):
        return False  # the full path refuses it (pipeline/load/portfolio.py)
    ledger = _ledger_bytes(root / "changes")
    policy = _policy_files(root)
    if ledger is None or policy is None:
        return False
    sealed = _last_seal(ledger)
    if sealed is None or _policy_sha256(policy) != sealed:
        return False
    return _as_at_head(root, {**policy, LEDGER_PATH: ledger})


def _zones_linked(zones: Path) -> bool:
    """zones/ or one of its client directories is a symbolic link: edits made through it are
    paths git reports outside zones/, so no changed path says a zone changed."""
    if os.path.islink(zones):
        return True
    try:
        with os.scandir(zones) as entries:
            return any(entry.is_symlink() for entry in entries)
    except OSError:
        return False


def working_policy_sha256(root: Path) -> str | None:
    """The hash of policy/ as pipeline.records.policy_seal.current_snapshot takes it (the same
    walk and snapshot), each file read under the default size limit instead of the configured
    one, which would cost parsing policy/settings.yaml. The same hash as a seal's means the same
    bytes, which the sealing run read under that settings.yaml's limits; a file the default
    refuses, or any file that cannot be read, gives None (the full path then judges)."""
    policy = _policy_files(root)
    return None if policy is None else _policy_sha256(policy)


def _policy_files(root: Path) -> dict[str, bytes] | None:
    """Every file under policy/ (path relative to `root`: its bytes); None when one cannot be
    read as the full path reads it."""
    policy = root / POLICY_DIR
    if not is_real_dir(policy):
        return None
    files: dict[str, bytes] = {}
    try:
        for path in _walk(policy, root):
            raw = read_bytes(path, root=root, limit=DEFAULT_LIMITS.max_file_bytes)
            files[path.relative_to(root).as_posix()] = raw
    except (InputError, OSError):
        return None
    return files


def _policy_sha256(files: dict[str, bytes]) -> str | None:
    try:
        return PolicySnapshot({name: raw.decode("utf-8") for name, raw in files.items()}).sha256
    except UnicodeDecodeError:
        return None


def _as_at_head(root: Path, files: dict[str, bytes]) -> bool:
    """Whether `files` (path relative to `root`: bytes) are exactly what HEAD has under the same
    paths, and HEAD has no other file under policy/: git's object ids of the bytes read here
    against `git ls-tree` of HEAD. What git's diff was told to skip, or a filter changed, or
    anything git cannot answer, is False (the full path then judges)."""
    try:
        done = subprocess.run(
            ["git", "-C", str(root), "ls-tree", "-r", "-z", "HEAD", "--", POLICY_DIR, LEDGER_PATH],
            capture_output=True,
            timeout=GIT_TIMEOUT,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return False
    if done.returncode != 0:
        return False
    at_head: dict[str, str] = {}
    for row in done.stdout.split(b"\0"):
        meta, tab, name = row.partition(b"\t")
        if not tab:
            continue
        mode, kind, oid = meta.decode("ascii", "replace").split(" ")
        if kind != "blob" or mode not in ("100644", "100755"):
            return False  # a link or a submodule under policy/: the full path judges
        at_head[os.fsdecode(name)] = oid
    if set(at_head) != set(files):
        return False
    return all(_object_id(files[name], len(oid)) == oid for name, oid in at_head.items())


def _object_id(raw: bytes, length: int) -> str:
    """git's id of a blob holding `raw`, in the repository's hash (SHA-1, or SHA-256)."""
    # SHA-1 because git names objects so; finding bytes with the id of HEAD's ledger is a
    # second preimage, which SHA-1 still resists.
    digest = hashlib.sha1() if length == 40 else hashlib.sha256()  # noqa: S324
    digest.update(b"blob %d\0" % len(raw))
    digest.update(raw)  # not concatenated: a ledger of 50 MB is not copied to be hashed
    return digest.hexdigest()


def render_empty(fmt: str, at: datetime | None, *, color: bool) -> str:
    """The plan with no item and no zone as `dmarcops plan --format FMT` prints it (the same
    renderers as pipeline.api.render; tests/test_startup.py compares the two)."""
    from pipeline.plan.items import Plan

    plan = Plan(generated_at=(at or datetime.now(UTC)).astimezone(UTC), items=(), zones=())
    if fmt == "json":
        from pipeline.render.json_plan import render_json

        return render_json(plan, {})
    if fmt == "markdown":
        from pipeline.render.markdown import render_markdown

        return render_markdown(plan, {}, {})
    import click

    from pipeline.render.text import render_text

    text = render_text(plan, {})
    return text if color else click.unstyle(text)
