"""Which zones a change touches: `dmarcops plan --changed-since REF` plans only those.

A pull request usually edits one or two zone files of a portfolio of hundreds; planning every zone
reads every client's live DNS for nothing. The zones to plan are the ones whose desired state, or
the policy that judges it, differs between REF and the work tree:

- `zones/<client>/<domain>.yaml` or its MTA-STS policy file `<domain>.mta-sts.txt` changed: that
  zone;
- `policy/clients/<client>.yaml` or `policy/calendars/<client>.yaml` changed: every zone of that
  client (freezes, regulated, DKIM schedule and provider all change how its zones are planned and
  classified);
- `changes/requests/<id>.yaml` changed: the zones it covers (the plan shows which request covers
  each change, and refuses changes no request covers);
- risk rules, sender catalog, providers, settings or a JSON Schema changed: every zone;
- the sandbox's live state `sandbox/live/<domain>.yaml` changed: that zone.

"Differs" is `git diff REF...HEAD` (what the branch did since it left REF, as a pull request shows
it) plus what is not committed yet: staged, unstaged and untracked files, so an analyst's local run
agrees with the pull request it becomes. Records a zone file no longer lists are not deleted by the
pipeline, and a removed zone file cannot be planned: those are reported, not planned.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from pipeline.errors import EnvironmentProblem, InputError
from pipeline.load.request_files import REQUESTS_DIR, Selector, client_domains

# Files every plan depends on: a change to any of them can change any zone's risk or live state.
PORTFOLIO_WIDE = (
    "policy/risk-rules.yaml",
    "policy/senders.yaml",
    "policy/providers.yaml",
    "policy/settings.yaml",
)
ZONE_SUFFIXES = (".yaml", ".yml")
# The desired MTA-STS policy file beside the zone file (pipeline/live/mta_sts_policy.py).
MTA_STS_POLICY_SUFFIX = ".mta-sts.txt"
GIT_TIMEOUT = 60.0


@dataclass(frozen=True)
class ChangedZones:
    """The zones to plan (domains, sorted), why each one is planned, and whether the change
    touches the whole portfolio. `removed` lists zone files that are gone (path relative to the
    repository), whose zones cannot be planned."""

    zones: tuple[str, ...]
    reasons: dict[str, str] = field(default_factory=dict)
    everything: bool = False
    removed: tuple[str, ...] = ()


def _git(root: Path, *args: str) -> str:
    try:
        done = subprocess.run(
            ["git", "-C", str(root), *args],
            capture_output=True,
            # A path git prints is bytes: one that is not UTF-8 (an untracked `docs-\xff.md`)
            # keeps its bytes as surrogates, which every printer of a path escapes (text/safe.py).
            encoding="utf-8",
            errors="surrogateescape",
            timeout=GIT_TIMEOUT,
            check=False,
        )
    except FileNotFoundError:
        raise EnvironmentProblem(
            "--changed-since needs git, which is not installed",
            hint="Install git (Debian: apt-get install git), or plan without --changed-since.",
        ) from None
    except subprocess.TimeoutExpired:
        raise EnvironmentProblem(f"git {args[0]} did not finish in {GIT_TIMEOUT:.0f} s") from None
    if done.returncode != 0:
        said = done.stderr.strip().splitlines()
        raise InputError(f"git {args[0]}: {said[0] if said else f'exit {done.returncode}'}")
    return done.stdout


def _resolve(root: Path, ref: str) -> str:
    """The commit REF names, or InputError. A REF starting with '-' would be read as an option."""
    if not ref or ref.startswith("-"):
        raise InputError(f"{ref!r} is not a git revision", hint="Name a branch, tag or commit.")
    # Both questions in one git run when both have answers (a no-op plan is mostly process
    # starts: tests/test_startup.py); when either fails, asked apart for the message that says
    # which.
    try:
        return (
            _git(root, "rev-parse", "--show-toplevel", "--verify", "--quiet", f"{ref}^{{commit}}")
            .splitlines()[-1]
            .strip()
        )
    except InputError:
        pass
    try:
        _git(root, "rev-parse", "--show-toplevel")
    except InputError as exc:
        # Usually "not a git repository"; also "dubious ownership" when the clone belongs to
        # another user (git's safe.directory), which git's own message names.
        raise InputError(
            f"--changed-since needs a git repository at {root} ({exc.message})",
            hint="Run it in a clone of the dmarcops repository, or plan without --changed-since.",
        ) from None
    try:
        return _git(root, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}").strip()
    except InputError:
        raise InputError(
            f"git does not know the revision {ref!r}",
            hint="Name a branch, tag or commit this clone has (git fetch origin first). In GitHub "
            "Actions, check out with `fetch-depth: 0`: a shallow clone lacks the base branch.",
        ) from None


def _null_separated(text: str) -> list[str]:
    return [p for p in text.split("\0") if p]


def changed_paths(root: Path, ref: str) -> list[str]:
    """Paths (relative to `root`, `/`-separated) that differ between REF and the work tree."""
    commit = _resolve(root, ref)
    # --no-renames: a zone file moved to another client shows as the old path deleted and the
    # new one added, so both are seen. --relative: paths relative to `root`, which may be a
    # subdirectory of the clone. -z: names with any characters arrive intact.
    diff = ["diff", "--name-only", "--no-renames", "--relative", "-z"]
    paths = _null_separated(_git(root, *diff, f"{commit}...HEAD", "--"))
    paths += _null_separated(_git(root, *diff, "HEAD", "--"))  # staged and unstaged
    paths += _null_separated(_git(root, "ls-files", "--others", "--exclude-standard", "-z"))
    return sorted(set(paths))


def _zone_files(root: Path) -> dict[str, tuple[str, str]]:
    """domain -> (client, path relative to root) for the zone files in the work tree."""
    found: dict[str, tuple[str, str]] = {}
    zones = root / "zones"
    if not zones.is_dir():
        return found
    # Names, not Paths: 10,000 zone files are listed for a plan of one. scandir's is_dir (which
    # follows links, as Path.is_dir) reads the entry's type instead of a stat per directory.
    clients = sorted(entry.name for entry in os.scandir(zones) if entry.is_dir())
    for client in clients:
        for name in sorted(os.listdir(zones / client)):
            stem, suffix = os.path.splitext(name)
            if suffix in ZONE_SUFFIXES:
                found.setdefault(stem, (client, f"zones/{client}/{name}"))
    return found


def _request_zones(root: Path, path: str) -> list[str]:
    """The zones a change request covers; its client's zones when it cannot be read (`validate`
    names the problem), none when it is gone (a deleted request covers nothing)."""
    # Imported here: a change that touches no request never loads YAML (a no-op plan stays
    # light, tests/test_startup.py).
    from pipeline.load.yamlfile import load_yaml

    file = root / path
    if not file.exists():
        return []
    try:
        data = load_yaml(file).data
    except InputError:
        return []
    if not isinstance(data, dict):
        return []
    covered = [
        selector.zone
        for text in data.get("covers") or []
        if isinstance(text, str) and (selector := Selector.parse(text)) is not None
    ]
    if covered:
        return covered
    client = data.get("client")
    return (client_domains(root, client) or []) if isinstance(client, str) else []


def zones_for_paths(root: Path, paths: Iterable[str]) -> ChangedZones:
    """Map changed paths to the zones they affect (see the module docstring for the rules)."""
    listed: dict[str, tuple[str, str]] | None = None
    reasons: dict[str, str] = {}
    removed: list[str] = []

    def zone_files() -> dict[str, tuple[str, str]]:
        # Listed when a path needs it: a change outside zones/, policy/, changes/requests/ and
        # sandbox/ (docs, CI) maps to nothing without listing 10,000 zone files.
        nonlocal listed
        if listed is None:
            listed = _zone_files(root)
        return listed

    def add(domain: str, reason: str) -> None:
        if domain in zone_files():
            reasons.setdefault(domain, reason)

    wide: list[str] = []
    for path in paths:
        parts = PurePosixPath(path).parts
        if path in PORTFOLIO_WIDE or parts[:2] == ("policy", "schemas"):
            wide.append(path)
        elif len(parts) == 3 and parts[:2] == ("sandbox", "live") and path.endswith(ZONE_SUFFIXES):
            add(PurePosixPath(path).stem, f"{path} changed (sandbox live state)")
        elif len(parts) == 3 and parts[0] == "zones" and path.endswith(MTA_STS_POLICY_SUFFIX):
            # Added, edited or removed, the policy file is part of the zone's desired state.
            add(parts[2].removesuffix(MTA_STS_POLICY_SUFFIX), f"{path} changed (MTA-STS policy)")
        elif len(parts) == 3 and parts[0] == "zones" and path.endswith(ZONE_SUFFIXES):
            domain = PurePosixPath(path).stem
            if (root / path).exists():
                add(domain, f"{path} changed")
            elif domain not in zone_files():  # not merely moved to another client or suffix
                removed.append(path)
        elif (
            len(parts) == 3
            and parts[:2] in (("policy", "clients"), ("policy", "calendars"))
            and path.endswith(".yaml")
        ):
            client = PurePosixPath(path).stem
            what = "client profile" if parts[1] == "clients" else "client calendar"
            for domain, (owner, _) in zone_files().items():
                if owner == client:
                    add(domain, f"{path} changed ({what})")
        elif path.startswith(f"{REQUESTS_DIR.as_posix()}/") and path.endswith(ZONE_SUFFIXES):
            for domain in _request_zones(root, path):
                add(domain, f"{path} changed (change request)")

    if wide:
        existing = zone_files()
        why = f"{', '.join(wide)} changed (affects every zone)"
        return ChangedZones(
            zones=tuple(sorted(existing)),
            reasons=dict.fromkeys(sorted(existing), why),
            everything=True,
            removed=tuple(removed),
        )
    return ChangedZones(
        zones=tuple(sorted(reasons)),
        reasons=dict(sorted(reasons.items())),
        removed=tuple(removed),
    )


def zones_changed_since(root: Path, ref: str) -> ChangedZones:
    """The zones `dmarcops plan --changed-since REF` plans. InputError (exit 1) when `root` is not
    in a git repository or REF is not a commit this clone knows."""
    return zones_for_paths(root, changed_paths(root, ref))
