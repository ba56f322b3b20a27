"""Building test repositories: a copy of the example portfolio, edited per test."""

from __future__ import annotations

import shutil
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def copy_example(dest: Path) -> Path:
    """The shipped example portfolio (zones/, policy/, sandbox/) copied to `dest`."""
    for part in ("zones", "policy", "sandbox", "changes"):
        # Lock files are the working copy's (gitignored), never part of the example.
        shutil.copytree(REPO / part, dest / part, ignore=shutil.ignore_patterns(".lock", ".locks"))
    return dest


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path
