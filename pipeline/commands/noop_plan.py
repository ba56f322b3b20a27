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
- policy/ in the working tree is the policy the ledger's last `policy` line seals: otherwise its
  edits would be plan items (pipeline/plan/build.py, policy_items) of an otherwise empty plan;
- no genesis is pinned (DMARCOPS_GENESIS): the pin is checked against the whole ledger's first
  entry by the full path only.

What the shortcut does not repeat is what those inputs being unchanged makes the same as at REF:
the seals' signatures, the schemas of unchanged files, the requests' signatures. With no item in
the plan, no gate decision is taken on either path.

One difference is deliberate: a file git ignores is no change to `--changed-since` (as before),
so an ignored file under changes/requests/ (which can never reach a pull request) is not read
here, where the full path would refuse it if it did not load. policy/ has no such gap: every
file in it, ignored or not, is part of the hash compared with the seal.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath

from pipeline.errors import InputError
from pipeline.load.files import exists, is_real_dir, read_bytes
from pipeline.load.limits import DEFAULT_LIMITS
from pipeline.plan.changes import ChangedZones
from pipeline.records.policy_seal import POLICY_DIR, PolicySnapshot, _walk

# The top directories the plan reads (portfolio, zone files, requests, ledger and records, the
# sandbox's live state): a change under any of them takes the full path.
PLAN_INPUTS = frozenset({"policy", "zones", "changes", "sandbox"})
# pipeline.records.ledger.LEDGER_NAME and pipeline.records.policy_of_record.GENESIS_PIN, named
# again here because those modules import the ledger's verifier (cryptography and the roster);
# tests/test_startup.py checks they agree.
LEDGER_NAME = "ledger.jsonl"
GENESIS_PIN = "DMARCOPS_GENESIS"


def last_policy_seal(changes_dir: Path) -> str | None:
    """The `policy_sha256` of the ledger's last `policy` line; None when there is none, or when a
    line that could be one cannot be read (the full path then says what is wrong).

    Only lines that could decode to a `policy` event are parsed: a JSON line holding neither the
    word "policy" nor a backslash (no escape) cannot. A ledger of 100,000 record events is then
    searched, not parsed, which is what keeps this cheap at any size.
    """
    path = changes_dir / LEDGER_NAME
    if not exists(path):
        return None
    try:
        # Under the default limit: the configured one is in policy/settings.yaml, and parsing
        # YAML is a tenth of the time this path has. A larger ledger takes the full path.
        raw = read_bytes(path, root=changes_dir.parent, limit=DEFAULT_LIMITS.max_log_bytes)
    except InputError:
        return None
    for line in reversed(raw.split(b"\n")):
        if b"policy" not in line and b"\\" not in line:
            continue
        try:
            entry = json.loads(line)
        except (ValueError, RecursionError):
            return None  # a damaged line: the full path names it
        if not isinstance(entry, dict) or entry.get("event") != "policy":
            continue
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
    sealed = last_policy_seal(root / "changes")
    return sealed is not None and working_policy_sha256(root) == sealed


def working_policy_sha256(root: Path) -> str | None:
    """The hash of policy/ as pipeline.records.policy_seal.current_snapshot takes it (the same
    walk and snapshot), each file read under the default size limit instead of the configured
    one, which would cost parsing policy/settings.yaml. The same hash as a seal's means the same
    bytes, which the sealing run read under that settings.yaml's limits; a file the default
    refuses, or any file that cannot be read, gives None (the full path then judges)."""
    policy = root / POLICY_DIR
    if not is_real_dir(policy):
        return None
    files: dict[str, str] = {}
    try:
        for path in _walk(policy, root):
            raw = read_bytes(path, root=root, limit=DEFAULT_LIMITS.max_file_bytes)
            files[path.relative_to(root).as_posix()] = raw.decode("utf-8")
    except (InputError, OSError, UnicodeDecodeError):
        return None
    return PolicySnapshot(files).sha256


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
