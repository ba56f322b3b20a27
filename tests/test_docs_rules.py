"""The docs a newcomer reads are the rules the code enforces (issue 16 item 3).

- Every finding code the validators can emit has an entry in docs/rules.md, and every entry is a
  code some validator emits (no stale rule).
- `dmarcops explain CODE` prints that entry, from the same file the package carries.
- No doc, workflow or source file cites a repository path that does not exist.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

from click.testing import CliRunner

from pipeline.cli import main
from pipeline.diff.explain import rule_entries, rules_text

ROOT = Path(__file__).resolve().parent.parent
# A finding code in the source: a quoted letter and number passed to Finding(...) or
# RecordSyntaxError(...) (the validators' only two ways to report).
_EMITTED = re.compile(r"\"([DSKBMTN]\d{1,2})\"")


def emitted_codes() -> set[str]:
    codes: set[str] = set()
    for path in (ROOT / "pipeline").rglob("*.py"):
        codes |= set(_EMITTED.findall(path.read_text(encoding="utf-8")))
    return codes


def test_every_emitted_code_has_an_entry_and_every_entry_is_emitted() -> None:
    documented = set(rule_entries())
    emitted = emitted_codes()
    assert len(emitted) >= 30  # the scan found the validators, not an empty tree
    assert emitted - documented == set(), "codes without an entry in docs/rules.md"
    assert documented - emitted == set(), "entries in docs/rules.md no validator emits"


def test_the_package_reads_the_same_rules_document() -> None:
    assert rules_text() == (ROOT / "docs" / "rules.md").read_text(encoding="utf-8")


def test_explain_prints_the_entry_and_refuses_an_unknown_code() -> None:
    shown = CliRunner().invoke(main, ["explain", "s3"])
    assert shown.exit_code == 0, shown.output
    row = next(line for line in rules_text().splitlines() if line.startswith("| S3 |"))
    rule, severity, clause = (c.strip() for c in row.strip("|").split("|")[1:])
    assert shown.output.startswith("S3  SPF")
    assert f"rule:     {rule}\n" in shown.output
    assert f"severity: {severity} " in shown.output
    assert f"clause:   {clause}\n" in shown.output
    # A rule whose text holds no "|" keeps its whole text; B1's severity is mixed.
    bimi = CliRunner().invoke(main, ["explain", "B1"])
    assert bimi.exit_code == 0 and "severity: error (non-SVG logo: warning)" in bimi.output
    unknown = CliRunner().invoke(main, ["explain", "Z9"])
    assert unknown.exit_code == 1
    assert "no finding code 'Z9'" in unknown.output
    assert "Known codes: B1, B2, D1" in unknown.output


def test_the_wheel_carries_the_rules_document(tmp_path: Path) -> None:
    # pipeline/diff/rules.md is a link to docs/rules.md: the built package must hold its text,
    # or `dmarcops explain` fails wherever dmarcops is installed from a wheel (the workflows).
    # Built from a copy (links kept as links): setuptools writes build/ beside the sources.
    source = tmp_path / "source"
    shutil.copytree(
        ROOT / "pipeline",
        source / "pipeline",
        symlinks=True,
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    (source / "docs").mkdir()
    shutil.copy(ROOT / "docs" / "rules.md", source / "docs" / "rules.md")
    shutil.copy(ROOT / "pyproject.toml", source / "pyproject.toml")
    assert (source / "pipeline" / "diff" / "rules.md").is_symlink()
    built = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path),
            str(source),
        ],
        cwd=source,
        capture_output=True,
        text=True,
        check=False,
    )
    assert built.returncode == 0, built.stderr
    (wheel,) = tmp_path.glob("dmarcops-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        text = archive.read("pipeline/diff/rules.md").decode("utf-8")
    assert text == (ROOT / "docs" / "rules.md").read_text(encoding="utf-8")


_CITED = re.compile(
    r"(?<![\w/.-])((?:docs|pipeline|tests|benchmarks|scripts|requirements|\.github/workflows)"
    r"/[\w./-]*\w)"
)


def test_every_cited_repository_path_exists() -> None:
    sources = [
        *ROOT.glob("docs/*.md"),
        ROOT / "README.md",
        *(ROOT / "pipeline").rglob("*.py"),
        *(ROOT / ".github" / "workflows").glob("*.yml"),
        *(ROOT / "benchmarks").glob("*.*"),
        *(ROOT / "scripts").glob("*"),
    ]
    missing = []
    for source in sources:
        for match in _CITED.finditer(source.read_text(encoding="utf-8", errors="replace")):
            cited = match.group(1).rstrip(".")
            if any(c in cited for c in "<>*{}"):
                continue  # a pattern (policy/calendars/<client>.yaml), not a file
            path = ROOT / cited
            # "tests/dns_server.NamedServer": a module's attribute, cited by its file.
            module = ROOT / (cited.rsplit(".", 1)[0] + ".py")
            if not path.exists() and not module.exists():
                missing.append(f"{source.relative_to(ROOT)} cites {cited}")
    assert missing == []
