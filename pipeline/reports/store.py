"""The report store: SQLite, one row per report and one row per record per report.

It is a cache of the report files, not a record of its own: deleting it and ingesting the same
files again gives the same numbers (the audit trail is changes/, never this file). A report is
identified by its reporting org and report id (RFC 7489 appendix C: report_id is unique per
reporter), so the same report received twice (two rua addresses, a re-sent mail, an mbox export
overlapping a directory) is stored once.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from contextlib import closing
from pathlib import Path

from pipeline.errors import InputError
from pipeline.load.files import exists, is_regular, make_dir
from pipeline.reports.model import Report

# Bumped when the tables change; an older store is rebuilt from its files by ingesting again.
SCHEMA_VERSION = 1
DEFAULT_STORE = Path(".dmarcops") / "reports.sqlite"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS reports (
    id INTEGER PRIMARY KEY,
    org_name TEXT NOT NULL,
    report_id TEXT NOT NULL,
    email TEXT NOT NULL,
    domain TEXT NOT NULL,
    begin_ts INTEGER NOT NULL,
    end_ts INTEGER NOT NULL,
    policy TEXT NOT NULL,
    sp TEXT NOT NULL,
    np TEXT NOT NULL,
    testing TEXT NOT NULL,
    discovery_method TEXT NOT NULL,
    generator TEXT NOT NULL,
    schema TEXT NOT NULL,
    source TEXT NOT NULL,
    UNIQUE (org_name, report_id)
);
CREATE TABLE IF NOT EXISTS records (
    report INTEGER NOT NULL REFERENCES reports(id) ON DELETE CASCADE,
    source_ip TEXT NOT NULL,
    count INTEGER NOT NULL,
    disposition TEXT NOT NULL,
    dkim_aligned INTEGER NOT NULL,
    spf_aligned INTEGER NOT NULL,
    header_from TEXT NOT NULL,
    envelope_from TEXT NOT NULL,
    dkim_domains TEXT NOT NULL,
    spf_domains TEXT NOT NULL,
    reasons TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS records_report ON records(report);
CREATE INDEX IF NOT EXISTS reports_domain ON reports(domain, begin_ts);
"""


def open_store(
    path: Path, *, root: Path | None = None, readonly: bool = False
) -> sqlite3.Connection:
    """The store at `path`, created when missing. Its directory must resolve inside the
    repository (make_dir), like every other directory dmarcops writes into. `readonly`: an
    existing store, opened so that nothing can be written (summary, evidence)."""
    if readonly:
        if not is_regular(path):
            raise InputError(
                "no report store yet"
                if not exists(path)
                else "the report store is not a regular file",
                file=path,
                hint="Ingest reports first: dmarcops reports ingest PATH...",
            )
        try:
            connection = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
            version = connection.execute("PRAGMA user_version").fetchone()[0]
            connection.execute("SELECT count(*) FROM reports").fetchone()
        except sqlite3.DatabaseError as exc:
            raise InputError(
                f"cannot use the report store: {exc}",
                file=path,
                hint="Delete it and ingest the report files again (it is rebuildable).",
            ) from None
        if version != SCHEMA_VERSION:
            connection.close()
            raise InputError(
                f"the report store has schema version {version}, this dmarcops reads "
                f"{SCHEMA_VERSION}",
                file=path,
                hint="Delete it and ingest the report files again (it is rebuildable).",
            )
        return connection
    make_dir(path.parent, root=root)
    if path.is_symlink() or (path.exists() and not path.is_file()):
        raise InputError(
            "refused: the report store is not a regular file",
            file=path,
            hint="Remove it; `dmarcops reports ingest` rebuilds it from the report files.",
        )
    try:
        connection = sqlite3.connect(path)
        connection.execute("PRAGMA foreign_keys = ON")
        # No fsync per commit (one commit per input file): a killed process still leaves a
        # consistent store (the journal is written before the file is), only a power loss can
        # damage it, and the store is a cache rebuilt from the report files. 3-4x faster.
        connection.execute("PRAGMA synchronous = OFF")
        version = connection.execute("PRAGMA user_version").fetchone()[0]
        if version not in (0, SCHEMA_VERSION):
            connection.close()
            raise InputError(
                f"the report store has schema version {version}, this dmarcops writes "
                f"{SCHEMA_VERSION}",
                file=path,
                hint="Delete it and ingest the report files again (it is rebuildable).",
            )
        connection.executescript(_SCHEMA)
        connection.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
    except sqlite3.DatabaseError as exc:
        raise InputError(
            f"cannot use the report store: {exc}",
            file=path,
            hint="Delete it and ingest the report files again (it is rebuildable).",
        ) from None
    return connection


def _joined(values: Iterable[str]) -> str:
    return " ".join(sorted({v for v in values if v}))


def add_report(connection: sqlite3.Connection, report: Report, source: str) -> bool:
    """Store the report and its records; False (nothing written) when the same org and report
    id are already stored."""
    cursor = connection.execute(
        "INSERT OR IGNORE INTO reports (org_name, report_id, email, domain, begin_ts, end_ts, "
        "policy, sp, np, testing, discovery_method, generator, schema, source) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            report.org_name,
            report.report_id,
            report.email,
            report.domain,
            int(report.begin.timestamp()),
            int(report.end.timestamp()),
            report.policy,
            report.subdomain_policy,
            report.np,
            report.testing,
            report.discovery_method,
            report.generator,
            report.schema,
            source,
        ),
    )
    if cursor.rowcount == 0:
        return False
    key = cursor.lastrowid
    connection.executemany(
        "INSERT INTO records (report, source_ip, count, disposition, dkim_aligned, spf_aligned, "
        "header_from, envelope_from, dkim_domains, spf_domains, reasons) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            (
                key,
                row.source_ip,
                row.count,
                row.disposition,
                int(row.dkim_aligned),
                int(row.spf_aligned),
                row.header_from,
                row.envelope_from,
                _joined(a.domain for a in row.auth if a.method == "dkim" and a.result == "pass"),
                _joined(a.domain for a in row.auth if a.method == "spf" and a.result == "pass"),
                _joined(row.reasons),
            )
            for row in report.rows
        ],
    )
    return True


def counts(connection: sqlite3.Connection) -> tuple[int, int]:
    """(reports, records) stored."""
    with closing(connection.cursor()) as cursor:
        reports = cursor.execute("SELECT count(*) FROM reports").fetchone()[0]
        records = cursor.execute("SELECT count(*) FROM records").fetchone()[0]
    return int(reports), int(records)
