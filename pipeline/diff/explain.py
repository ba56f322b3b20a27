"""The entry of one finding code from the rules document (`dmarcops explain CODE`).

The document is docs/rules.md; pipeline/diff/rules.md links to it, so the installed package
carries the same text (setuptools copies the file the link points at) and there is one source
for the rules a newcomer reads and the ones `explain` prints.

An entry is the code's table row (`| CODE | rule | severity | clause |`) and, under its section,
a `### CODE` heading followed by three one-line items: `- example:`, `- risk:` and `- fix:`.
An example or fix starts with the record it is about, `` `NAME` TYPE `VALUE` `VALUE` ``, then any
prose; tests/test_docs_rules.py runs every example and fix through the validators.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources

_ROW = re.compile(r"^\|\s*(?P<code>[A-Z]\d{1,2})\s*\|(?P<rest>.*)\|\s*$")
_HEADING = re.compile(r"^###\s+(?P<code>[A-Z]\d{1,2})\s*$")
_ITEM = re.compile(r"^- (?P<field>example|risk|fix): (?P<text>.+)$")
_SEVERITIES = ("error", "warning", "info")


@dataclass(frozen=True)
class RuleEntry:
    code: str
    kind: str  # the section the code belongs to: "DMARC (`_dmarc` TXT; RFC 7489, RFC 9989)"
    rule: str
    severity: str  # "error", "warning", or mixed: "error/warning", "error (non-SVG logo: warning)"
    clause: str
    example: str = ""  # "`_dmarc` TXT `v=DMARC1; p=monitor`": a record that yields this code
    risk: str = ""  # what it does to mail, and what the pipeline does about it
    fix: str = ""  # the corrected record, then how to get there


def rules_text() -> str:
    return resources.files("pipeline.diff").joinpath("rules.md").read_text(encoding="utf-8")


def rule_entries() -> dict[str, RuleEntry]:
    """Every code of the rules document: its table row, with the items under its `### CODE`."""
    rows: dict[str, RuleEntry] = {}
    items: dict[str, dict[str, str]] = {}
    kind = ""
    heading = ""
    for line in rules_text().splitlines():
        if line.startswith("## "):
            kind, heading = line[3:].strip(), ""
            continue
        if (found := _HEADING.match(line)) is not None:
            heading = found.group("code")
            continue
        if line.startswith("#"):
            heading = ""
            continue
        if heading and (item := _ITEM.match(line)) is not None:
            items.setdefault(heading, {})[item.group("field")] = item.group("text").strip()
            continue
        match = _ROW.match(line)
        if match is None:
            continue
        # The rule text may hold "|" inside backticks (D4's `!size[k|m|g|t]`): severity and
        # clause are the last two cells, and the rule is kept as written.
        cells = [c.strip() for c in match.group("rest").rsplit("|", 2)]
        if len(cells) < 3 or not cells[1].startswith(_SEVERITIES):
            continue
        rows[match.group("code")] = RuleEntry(match.group("code"), kind, *cells)
    return {
        code: RuleEntry(
            row.code,
            row.kind,
            row.rule,
            row.severity,
            row.clause,
            items.get(code, {}).get("example", ""),
            items.get(code, {}).get("risk", ""),
            items.get(code, {}).get("fix", ""),
        )
        for code, row in rows.items()
    }


def render_entry(entry: RuleEntry) -> str:
    return (
        f"{entry.code}  {entry.kind}\n"
        f"  rule:     {entry.rule}\n"
        f"  severity: {entry.severity} (an error makes `dmarcops plan` and `dmarcops validate` "
        "refuse the change, exit 2; a warning or info is printed and does not block)\n"
        f"  clause:   {entry.clause}\n"
        f"  example:  {entry.example}\n"
        f"  risk:     {entry.risk}\n"
        f"  fix:      {entry.fix}\n"
        "  (`dmarcops validate` shows the zone file and line of every finding)\n"
    )
