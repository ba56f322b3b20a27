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
from collections.abc import Mapping
from datetime import date
from pathlib import Path

import dns.resolver
import pytest
from click.testing import CliRunner

from pipeline.cli import main
from pipeline.diff import mtasts
from pipeline.diff.context import RRsetKey, ZoneContext
from pipeline.diff.explain import RuleEntry, render_entry, rule_entries, rules_text
from pipeline.live.dns import report_authorised
from pipeline.live.spf_budget import SpfBudgetCounter
from pipeline.model import Finding
from pipeline.plan.build import record_findings

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
    # The example and the code's own fix, word for word from the `### S3` entry.
    entry = rules_text().split("### S3\n", 1)[1].split("###", 1)[0]
    example = next(t for t in entry.splitlines() if t.startswith("- example: "))
    fix = next(t for t in entry.splitlines() if t.startswith("- fix: "))
    assert f"example:  {example.removeprefix('- example: ')}\n" in shown.output
    assert f"fix:      {fix.removeprefix('- fix: ')}\n" in shown.output
    assert "many-mx.senders.test" in shown.output and "ip4:192.0.2.0/24" in shown.output
    # A rule whose text holds no "|" keeps its whole text; B1's severity is mixed.
    bimi = CliRunner().invoke(main, ["explain", "B1"])
    assert bimi.exit_code == 0 and "severity: error (non-SVG logo: warning)" in bimi.output
    assert "l=https://example.com/logo.svg" in bimi.output
    unknown = CliRunner().invoke(main, ["explain", "Z9"])
    assert unknown.exit_code == 1
    assert "no finding code 'Z9'" in unknown.output
    assert "Known codes: B1, B2, D1" in unknown.output


def test_every_entry_has_an_example_a_risk_and_its_own_fix() -> None:
    entries = rule_entries()
    for code, entry in entries.items():
        assert entry.example and entry.risk and entry.fix, f"{code}: example, risk or fix missing"
        assert _RECORD.match(entry.example), f"{code}: example does not start with a record"
        assert _RECORD.match(entry.fix), f"{code}: fix does not start with a record"
        assert entry.fix != entry.example
        shown = render_entry(entry)
        assert f"  risk:     {entry.risk}\n" in shown and f"  fix:      {entry.fix}\n" in shown
    # No two codes share a fix: each says how to repair its own rule, not a generic line.
    fixes = [e.fix for e in entries.values()]
    assert len(set(fixes)) == len(fixes)


# --- every documented example yields its code, every documented fix yields nothing -------------

ZONE = "example.com"
# `NAME` TYPE `VALUE` `VALUE` ... then prose; TYPE "file" is the MTA-STS policy file, one span a line.
_RECORD = re.compile(r"^`(?P<name>[^`]+)` (?P<type>[A-Z]+|file) (?P<values>`[^`]*`(?: `[^`]*`)*)")
_SPAN = re.compile(r"`([^`]*)`")

# What else the zone holds for an example to mean what its entry says; the entry names it in prose
# ("while `_dmarc` TXT is `v=DMARC1; p=none`"), which the test checks.
AROUND: dict[str, dict[RRsetKey, tuple[str, ...]]] = {
    "B1": {("_dmarc", "TXT"): ("v=DMARC1; p=reject",)},
    "B2": {("_dmarc", "TXT"): ("v=DMARC1; p=none",)},
    "N3": {("_dmarc.mail", "TXT"): ("v=DMARC1; p=reject",)},
}
# N3's fix takes the record below the cut out of the parent's zone file.
FIX_DROPS: dict[str, set[RRsetKey]] = {"N3": {("_dmarc.mail", "TXT")}}
# M3: the policy file changes from testing to enforce, the id must change with it.
LIVE_STS_ID = "20260101T000000"
POLICY_BEFORE = "version: STSv1\nmode: testing\nmx: mail.example.com\nmax_age: 86400\n"
POLICY_AFTER = "version: STSv1\nmode: enforce\nmx: mail.example.com\nmax_age: 86400\n"


def _record(text: str) -> tuple[RRsetKey, tuple[str, ...]]:
    match = _RECORD.match(text)
    assert match is not None, text
    name = "" if match.group("name") == "@" else match.group("name")
    return (name, match.group("type")), tuple(_SPAN.findall(match.group("values")))


def _findings(
    code: str,
    records: Mapping[RRsetKey, tuple[str, ...]],
    resolver: dns.resolver.Resolver,
) -> list[Finding]:
    """What `dmarcops plan` reports for a zone holding `records`, with its real DNS lookups."""
    files = {key: values for key, values in records.items() if key[1] == "file"}
    desired = {key: values for key, values in records.items() if key[1] != "file"}
    ctx = ZoneContext(
        ZONE,
        desired=desired,
        live={("_mta-sts", "TXT"): (f"v=STSv1; id={LIVE_STS_ID}",)} if code == "M3" else {},
        today=date(2026, 3, 2),
        spf_budget=SpfBudgetCounter(resolver).count,
        report_authorised=lambda zone, dest: report_authorised(resolver, zone, dest),
    )
    found = record_findings(ctx)
    for values in files.values():
        found += mtasts.validate_policy("\n".join(values) + "\n")
    if code == "M3":
        sts = desired[("_mta-sts", "TXT")][0]
        found += mtasts.policy_facts(
            POLICY_BEFORE, POLICY_AFTER, LIVE_STS_ID, mtasts.parse(sts).id
        )[1]
    return found


@pytest.mark.parametrize("code", sorted(rule_entries()))
def test_the_documented_example_yields_its_code_and_the_fix_yields_nothing(
    code: str, sender_resolver: dns.resolver.Resolver
) -> None:
    entry: RuleEntry = rule_entries()[code]
    around = AROUND.get(code, {})
    for (name, rtype), values in around.items():
        assert f"`{name or '@'}` {rtype}" in entry.example, f"{code}: the example hides {name}"
        assert all(f"`{v}`" in entry.example for v in values), f"{code}: {values}"
    key, values = _record(entry.example)
    found = _findings(code, {**around, key: values}, sender_resolver)
    # The SPF lookup counter says how it counted each term (void lookups, ptr) as S2 infos, next
    # to whichever rule the record breaks; they explain, they are not a second rule broken.
    notes = [f for f in found if f.code == "S2" and f.message.startswith("lookup count: ")]
    ruled = [f for f in found if f not in notes or code == "S2"]
    assert {f.code for f in ruled} == {code}, found
    # The finding's severity is one the entry documents ("error/warning": either).
    assert {f.severity.label for f in ruled} <= set(
        re.findall(r"error|warning|info", entry.severity)
    )
    fix_key, fix_values = _record(entry.fix)
    fixed = {**around, key: values, fix_key: fix_values}
    for dropped in FIX_DROPS.get(code, set()):
        del fixed[dropped]
        assert f"`{dropped[0]}`" in entry.fix, f"{code}: the fix does not say {dropped[0]} moves"
    assert _findings(code, fixed, sender_resolver) == []


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
        *(ROOT / "policy").rglob("*.yaml"),
        *(ROOT / "changes").glob("*.md"),
        *(ROOT / "tests").glob("*.py"),
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


def test_nothing_cites_the_background_documents_outside_the_repository() -> None:
    # The rules a newcomer reads must be in the repository: a citation of a document only the
    # founders had (or of a sibling checkout) is a dead end, and the path test above cannot see it
    # when it is written without a directory.
    outside = re.compile(
        r"\.\./shared|shared/(seed|docs)/|\b(product|email-auth-rules|octodns-notes|github-notes|style)\.md\b"
    )
    found = [
        f"{path.relative_to(ROOT)}: {match.group(0)}"
        for path in [
            ROOT / "README.md",
            *ROOT.glob("docs/*.md"),
            *(ROOT / "pipeline").rglob("*.py"),
            *(ROOT / "policy").rglob("*.*"),
            *(ROOT / "tests").glob("*.py"),
            *(ROOT / "benchmarks").glob("*.*"),
            *(ROOT / "scripts").glob("*"),
            *(ROOT / ".github").rglob("*.yml"),
            ROOT / "pyproject.toml",
        ]
        if path.is_file() and path != Path(__file__)
        for match in outside.finditer(path.read_text(encoding="utf-8", errors="replace"))
    ]
    assert found == []
