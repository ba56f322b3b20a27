"""The entry of one finding code from the rules document (`dmarcops explain CODE`).

The document is docs/rules.md; pipeline/diff/rules.md links to it, so the installed package
carries the same text (setuptools copies the file the link points at) and there is one source
for the rules a newcomer reads and the ones `explain` prints.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources

_ROW = re.compile(r"^\|\s*(?P<code>[A-Z]\d{1,2})\s*\|(?P<rest>.*)\|\s*$")
_SEVERITIES = ("error", "warning", "info")


@dataclass(frozen=True)
class RuleEntry:
    code: str
    kind: str  # the section the code belongs to: "DMARC (`_dmarc` TXT; RFC 7489, RFC 9989)"
    rule: str
    severity: str  # "error", "warning", or mixed: "error/warning", "error (non-SVG logo: warning)"
    clause: str


def rules_text() -> str:
    return resources.files("pipeline.diff").joinpath("rules.md").read_text(encoding="utf-8")


def rule_entries() -> dict[str, RuleEntry]:
    """Every row `| CODE | rule | severity | clause |` of the rules document, by code."""
    entries: dict[str, RuleEntry] = {}
    kind = ""
    for line in rules_text().splitlines():
        if line.startswith("## "):
            kind = line[3:].strip()
            continue
        match = _ROW.match(line)
        if match is None:
            continue
        # The rule text may hold "|" inside backticks (D4's `!size[k|m|g|t]`): severity and
        # clause are the last two cells, and the rule is kept as written.
        cells = [c.strip() for c in match.group("rest").rsplit("|", 2)]
        if len(cells) < 3 or not cells[1].startswith(_SEVERITIES):
            continue
        entries[match.group("code")] = RuleEntry(match.group("code"), kind, *cells)
    return entries


def render_entry(entry: RuleEntry) -> str:
    return (
        f"{entry.code}  {entry.kind}\n"
        f"  rule:     {entry.rule}\n"
        f"  severity: {entry.severity} (an error makes `dmarcops plan` and `dmarcops validate` "
        "refuse the change, exit 2; a warning or info is printed and does not block)\n"
        f"  clause:   {entry.clause}\n"
        "  fix:      change the record so the rule holds; `dmarcops validate` shows the zone "
        "file and line of every finding\n"
    )
