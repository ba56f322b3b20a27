"""Files a command's user names (`--out`, `--chart`) are replaced, never written through a link.

A workflow runs `dmarcops github pr --out plan.json` (and `github merge`, `plan --out shard-N.json`)
in a checkout whose files a pull request chose: a `plan.json` committed as a symbolic link to a
file elsewhere on the runner would have had the plan written into that file. Every such write goes
through pipeline.load.files.write_output: beside the name, then renamed over it.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from portfolio import copy_example

from pipeline.cli import main

AT = "2026-11-28T10:00:00Z"


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return copy_example(tmp_path / "repo")


def run(repo: Path, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["--repo", str(repo), *args])
    return result.exit_code, result.output


@pytest.mark.parametrize(
    ("command", "check"),
    [
        (("plan", "--at", AT, "--format", "json", "--out"), "plan_hash"),
        (("audit", "anchor", "--out"), "head"),
    ],
    ids=["plan", "audit-anchor"],
)
def test_a_link_at_the_named_file_is_replaced_not_written_through(
    repo: Path, tmp_path: Path, command: tuple[str, ...], check: str
) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n", encoding="utf-8")
    out = repo / "plan.json"
    out.symlink_to(victim)
    code, output = run(repo, *command, str(out))
    assert code == 0, output
    assert victim.read_text(encoding="utf-8") == "precious\n"
    assert not out.is_symlink() and check in json.loads(out.read_text(encoding="utf-8"))
    assert [p.name for p in repo.iterdir() if p.name.startswith(".plan.json")] == []


def test_a_missing_directory_is_a_clear_error(repo: Path, tmp_path: Path) -> None:
    # Not created for the user (a mistyped path): said, with what to do.
    code, output = run(repo, "plan", "--at", AT, "--out", str(tmp_path / "no" / "p.json"))
    assert code == 1, output
    assert "cannot write the plan: No such file or directory" in output
    assert "a directory that exists" in output and "Traceback" not in output
    assert not (tmp_path / "no").exists()
