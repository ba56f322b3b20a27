"""The workflows' hashed lock (requirements/workflows.lock, scripts/lock) against pyproject.toml:
every run-time dependency pinned inside its declared range, every pin hashed, setuptools for the
build locked too, and nothing that sends pip to another index. A dependency added to or narrowed
in pyproject.toml fails here until `bash scripts/lock` is run again."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent
LOCK = ROOT / "requirements" / "workflows.lock"
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s\\;]+)")
HASH = re.compile(r"--hash=sha256:[0-9a-f]{64}\b")


def pins() -> dict[str, tuple[str, int]]:
    """name -> (version, number of hashes), from the lock's requirement entries."""
    entries: dict[str, tuple[str, int]] = {}
    text = LOCK.read_text(encoding="utf-8")
    for block in re.split(r"\n(?=[A-Za-z0-9])", text):
        match = PIN.match(block)
        if match:
            name = canonicalize_name(match.group(1))
            hashes = len(HASH.findall(block))
            version, count = entries.get(name, (match.group(2), 0))
            assert version == match.group(2), f"{name} pinned twice at different versions"
            entries[name] = (version, count + hashes)
    return entries


def project() -> dict[str, object]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def test_every_runtime_dependency_is_pinned_inside_its_range() -> None:
    locked = pins()
    data = project()
    wanted = [Requirement(r) for r in data["project"]["dependencies"]]  # type: ignore[index]
    wanted += [Requirement(r) for r in data["build-system"]["requires"]]  # type: ignore[index]

    for req in wanted:
        name = canonicalize_name(req.name)
        assert name in locked, f"{req.name} is not in the lock: run `bash scripts/lock`"
        version = locked[name][0]
        assert req.specifier.contains(version, prereleases=True), (
            f"{req.name}=={version} is outside {req.specifier}: run `bash scripts/lock`"
        )


def test_every_pin_carries_hashes_and_nothing_redirects_pip() -> None:
    locked = pins()
    lines = [
        line.strip()
        for line in LOCK.read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.strip().startswith("#")
    ]

    assert len(locked) >= 20  # octoDNS, boto3, cryptography and theirs: not an empty lock
    assert [name for name, (_, hashes) in locked.items() if hashes == 0] == []
    # pip --require-hashes refuses an unhashed or unpinned line; options that point pip
    # at another index or at local files would bypass what the hashes protect.
    assert not [line for line in lines if line.startswith("-") and not HASH.match(line)]
    assert not [line for line in lines if "://" in line or line.startswith((".", "/"))]
