"""The ledger's anchor (`dmarcops audit anchor`, `audit verify --anchor`): every line's hash, kept
outside the repository, so that lines removed or rewritten since, even with the whole chain
re-hashed, are named."""

from __future__ import annotations

import builtins
from pathlib import Path

from pipeline.records.audit_files import AuditProblem
from pipeline.records.ledger import GENESIS, LEDGER_NAME, Ledger, LedgerEntry

ANCHOR_FORMAT = "dmarcops-ledger-anchor/1"


def make_anchor(changes_dir: Path) -> dict[str, object]:
    """The ledger as it stands, line by line (seq, record, entry hash): kept outside the
    repository (a file, the audit issue's archive), it lets `audit verify --anchor` prove that no
    line up to it was removed or rewritten since, even with the whole chain re-hashed."""
    entries = Ledger(changes_dir / LEDGER_NAME).read()  # a damaged ledger is not anchored
    return {
        "format": ANCHOR_FORMAT,
        "seq": entries[-1].seq if entries else 0,
        "head": entries[-1].entry_sha256 if entries else GENESIS,
        "lines": [[e.seq, e.record_id, e.entry_sha256] for e in entries],
    }


def parse_anchor(data: object) -> builtins.list[tuple[int, str, str]]:
    """The anchor's lines; ValueError saying what is wrong."""
    if not isinstance(data, dict) or data.get("format") != ANCHOR_FORMAT:
        raise ValueError(f"not a ledger anchor (format {ANCHOR_FORMAT})")
    lines = data.get("lines")
    if not isinstance(lines, builtins.list):
        raise ValueError("lines is not a list")
    out: builtins.list[tuple[int, str, str]] = []
    for number, item in enumerate(lines, 1):
        if (
            not isinstance(item, builtins.list)
            or len(item) != 3
            or item[0] != number
            or not isinstance(item[1], str)
            or not isinstance(item[2], str)
        ):
            raise ValueError(f"line {number} of the anchor is not [seq, record, entry_sha256]")
        out.append((item[0], item[1], item[2]))
    return out


def _check_anchor(
    entries: builtins.list[tuple[int, LedgerEntry]],
    anchor: builtins.list[tuple[int, str, str]],
    problems: builtins.list[AuditProblem],
) -> None:
    """Every anchored line is still there, unchanged; lines after the anchor are new."""
    by_seq = {entry.seq: entry for _, entry in entries}
    for seq, record_id, digest in anchor:
        entry = by_seq.get(seq)
        if entry is None:
            problems.append(
                AuditProblem(
                    record_id,
                    f"ledger line {seq} is in the anchor but no longer in the ledger "
                    "(truncated or deleted since the anchor)",
                )
            )
        elif entry.entry_sha256 != digest:
            problems.append(
                AuditProblem(
                    record_id,
                    f"ledger line {seq} differs from the anchor (rewritten since the anchor"
                    + (f"; it now names {entry.record_id}" if entry.record_id != record_id else "")
                    + ")",
                )
            )
