"""The example portfolio as a git repository, and git run as the tests' fixed analyst.

For the tests of `plan --changed-since` and its no-op shortcut: a fixed identity and no user or
system configuration, so git behaves the same on any machine.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from portfolio import copy_example

GIT_ENV = {
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_AUTHOR_NAME": "Test Analyst",
    "GIT_AUTHOR_EMAIL": "analyst@msp.example",
    "GIT_COMMITTER_NAME": "Test Analyst",
    "GIT_COMMITTER_EMAIL": "analyst@msp.example",
}


def git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(repo), *args],
        capture_output=True,
        text=True,
        env={**os.environ, **GIT_ENV},
        check=True,
    ).stdout


def commit(repo: Path, message: str) -> None:
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", message)


def example_repo(root: Path) -> Path:
    """The example portfolio copied to `root`: `main` with one commit, then branch `change`."""
    copy_example(root)
    git(root, "init", "-q", "-b", "main")
    commit(root, "example portfolio")
    git(root, "checkout", "-q", "-b", "change")
    return root
