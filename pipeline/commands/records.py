"""`dmarcops records|audit|review|reviews|close`: thin click commands over `pipeline.records`.
This module holds `records` and registers them all; `audit` is in pipeline/commands/audit.py,
`review`, `reviews`, `close`, `init` and `policy` in pipeline/commands/review.py.

Read-only commands (records, audit verify, reviews overdue) may look at any moment (`--at`,
DMARCOPS_NOW). `close` and `review` write to the audit trail, so they take the system clock
(pipeline.clock): a typed time is refused there unless the record's client is on the sandbox.
The library takes `now` as a parameter, so tests and replays judge windows at a fixed time.
Exit codes (docs/exit-codes.md): 1 bad input (unknown id, unreadable time), 2 a gate refused (sealed
record, rollback window not over, review missing, audit problems).
"""

from __future__ import annotations

import csv
import io
import json
import sys
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import click

from pipeline.commands.audit import audit_group
from pipeline.commands.common import key_option, reports_errors, signer_for
from pipeline.commands.record_common import (
    _BARE_DATE,
    _at_option,
    _now,
    _store,
)
from pipeline.commands.review import (
    close_command,
    init_command,
    policy_group,
    review_command,
    reviews_group,
)
from pipeline.errors import EXIT_GATE, GateRefused, InputError
from pipeline.model import RiskLevel
from pipeline.records.index_records import RecordFilter
from pipeline.records.policy_of_record import portfolio_of_record
from pipeline.records.record import (
    ChangeType,
    Outcome,
    parse_time,
    plain,
    show_utc,
)

# --- records show / list ------------------------------------------------------------------------


@click.group("records")
def records_group() -> None:
    """Show and search change records (changes/records/): by client, domain, analyst, risk, date."""


@records_group.command("export")
@click.option("--client", "client_id", required=True, help="The client whose records to export.")
@click.option(
    "--out",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    metavar="DIR",
    help="A new directory for the bundle.",
)
@key_option("Your private key: you sign the export's manifest.")
@reports_errors
def export_command(client_id: str, out: Path, key_file: Path) -> None:
    """Write CLIENT's change records as a bundle they can verify offline: the records (internal
    notes kept or removed per the client's MSA, `export_internal_notes` in policy/clients/), the
    signed ledger lines about them, the signers' public keys and a manifest of hashes with the
    ledger's head, signed by you. `dmarcops audit verify --export DIR` checks it.

    \b
    Example:
      dmarcops records export --client northwind-health --out /tmp/nwh-2026Q3 \\
          --key ~/.config/dmarcops/mhara.pem
    """
    from pipeline.clock import system_now
    from pipeline.records.export import export_client

    store = _store()
    repo = store.changes_dir.parent
    portfolio = portfolio_of_record(repo)  # the MSA setting as sealed, not as edited
    client = portfolio.clients.get(client_id)
    if client is None:
        raise InputError(
            f"no client {client_id!r}", hint=f"Clients: {', '.join(sorted(portfolio.clients))}."
        )
    signer = signer_for(repo, key_file)
    done = export_client(
        store,
        client_id,
        out,
        notes_kept=client.export_internal_notes,
        signer=signer,
        at=system_now(),
    )
    notes = "kept (the client's MSA allows them)" if done.notes_kept else "removed"
    click.echo(
        f"exported: {len(done.records)} record(s) of {client_id} to {out}, internal notes "
        f"{notes}, manifest signed by {signer.analyst}"
    )


@records_group.command("retention")
@click.option("--purge", is_flag=True, help="Remove them, leaving signed tombstones (a lead).")
@click.option(
    "--key",
    "key_file",
    envvar="DMARCOPS_KEY",
    type=click.Path(dir_okay=False, path_type=Path),
    metavar="FILE",
    help="A lead's private key: needed with --purge (env DMARCOPS_KEY).",
)
@_at_option
@reports_errors
def retention_command(purge: bool, key_file: Path | None, at: str | None) -> None:
    """List the sealed records whose client's retention has ended (`retention_years` in the
    client's sealed profile; regulated clients and clients without it: kept indefinitely). With
    --purge, a lead removes them: each leaves a signed tombstone in the ledger, so `audit
    verify` still passes. Without --purge nothing is changed.

    \b
    Examples:
      dmarcops records retention
      dmarcops records retention --purge --key ~/.config/dmarcops/mhara.pem
    """
    from pipeline.records.retention import expired

    store = _store()
    repo = store.changes_dir.parent
    portfolio = portfolio_of_record(repo)
    if purge:
        if at is not None:
            raise GateRefused(
                "--purge uses the system clock; --at is for listing only",
                hint="Drop --at (and DMARCOPS_NOW) to purge.",
            )
        if key_file is None:
            raise InputError("--purge needs a lead's --key", hint="Pass --key FILE.")
    now = _now(at)
    due = expired(store.all(), portfolio.clients, now)
    if not due:
        click.echo("no record has outlived its retention")
        return
    signer = signer_for(repo, key_file) if purge and key_file is not None else None
    for item in due:
        r = item.record
        if signer is not None:
            store.purge(r.id, now, signer)
        verb = "purged" if signer is not None else "may be purged"
        click.echo(
            f"{r.id}  {plain(r.client)}  sealed {show_utc(r.closed_at or now)}  kept until "
            f"{show_utc(item.kept_until)}  {verb}"
        )


@records_group.command("archive")
@click.option("--to", "url", required=True, metavar="s3://BUCKET/PREFIX", help="The WORM archive.")
@reports_errors
def archive_command(url: str) -> None:
    """Write sealed records and the ledger to an S3 bucket with Object Lock (COMPLIANCE mode,
    retained until the record's retention ends; the ledger and indefinitely kept records for 100
    years). Never overwrites: an archived object whose content differs is reported (exit 2) and
    left alone. Credentials by the standard AWS chain.

    \b
    Example:
      dmarcops records archive --to s3://msp-dmarcops-archive/changes
    """
    from pipeline.clock import system_now
    from pipeline.records.archive import ArchiveUrl, archive

    store = _store()
    portfolio = portfolio_of_record(store.changes_dir.parent)
    run = archive(store, portfolio.clients, ArchiveUrl.parse(url), system_now())
    click.echo(f"archived: {len(run.written)} object(s) written to {plain(url)}")
    for reason in run.refused:
        click.echo(click.style("problem: ", fg="red", bold=True) + plain(reason))
    if run.refused:
        sys.exit(EXIT_GATE)


@records_group.command("reconcile")
@click.option(
    "--from",
    "source",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    metavar="DIR",
    help="The changes/ directory of an apply run's artifact.",
)
@reports_errors
def reconcile_command(source: Path) -> None:
    """Put back the change records an apply wrote but could not push (the run uploaded its
    changes/ as an artifact and opened an issue): the ledger lines and records the repository is
    missing, checked line by line (chain, hash, signature) and record by record (its hash), and
    only when the repository's ledger is a prefix of the artifact's. Nothing else is written.

    \b
    Example:
      gh run download 4242 -n apply-records-run4242-1 -D /tmp/run4242
      dmarcops records reconcile --from /tmp/run4242/changes
    """
    from pipeline.records.reconcile import reconcile

    done = reconcile(_store(), source)
    if not done.lines:
        click.echo("nothing to reconcile: the repository already holds the artifact's ledger")
        return
    click.echo(
        f"reconciled: {done.lines} ledger line(s), record(s) {', '.join(done.records) or '-'}"
    )


@records_group.command("show")
@click.argument("record_id", metavar="ID")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "json", "markdown"]),
    default="text",
    show_default=True,
    help="text for people, json for machines, markdown as the seed's change-record template.",
)
@click.option(
    "--client-export",
    is_flag=True,
    help="What the client may see: leaves the MSP's internal notes out.",
)
@reports_errors
def show(record_id: str, fmt: str, client_export: bool) -> None:
    """Print one change record.

    \b
    Examples:
      dmarcops records show 2026-0001
      dmarcops records show 2026-0001 --format markdown --client-export
    """
    record = _store().get(record_id)
    if fmt == "json":
        data = record.client_export() if client_export else record.to_json()
        click.echo(json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False))
    elif fmt == "markdown":
        click.echo(record.render_markdown(include_internal=not client_export), nl=False)
    else:
        click.echo(record.render_text(include_internal=not client_export), nl=False)


def _table(records: list[dict[str, Any]]) -> list[str]:
    """`records` as RecordStore.list_rows gives them (pipeline.records.index_records.list_row)."""
    header = ("ID", "CLIENT", "ZONES", "RISK", "TYPE", "EXECUTED", "OUTCOME", "SEALED")
    rows = [
        (
            str(r["id"]),
            plain(str(r["client"])),
            plain(",".join(r["zones"])),
            str(r["risk"]),
            str(r["type"]),
            str(r["executed_short"]),
            str(r["outcome"]),
            "yes" if r["sealed"] else "no",
        )
        for r in records
    ]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    return [
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
        for row in [header, *rows]
    ]


def _date_bound(text: str | None, *, what: str, end_of_day: bool) -> datetime | None:
    if text is None:
        return None
    value = parse_time(text, what=what)
    # "--until 2026-06-09" means through that day, not up to its first second.
    return value + timedelta(days=1) if end_of_day and _BARE_DATE.match(text) else value


@records_group.command("list")
@click.option("--client", help="Only this client (its id in policy/clients/).")
@click.option("--domain", help="Only records touching this domain.")
@click.option("--analyst", help="Only records this analyst proposed, approved, executed or closed.")
@click.option("--risk", type=click.Choice([r.label for r in RiskLevel]), help="Only this risk.")
@click.option("--since", metavar="DATE", help="Executed (else filed) at or after DATE (UTC).")
@click.option("--until", metavar="DATE", help="Executed (else filed) before DATE's end (UTC).")
@click.option("--approver", help="Only records this person approved (peer, lead or client).")
@click.option(
    "--type",
    "change_type",
    type=click.Choice([t.value for t in ChangeType], case_sensitive=False),
    help="Only this change type.",
)
@click.option(
    "--outcome",
    type=click.Choice(["open", *(o.value for o in Outcome)]),
    help="Only this outcome (open: not yet sealed).",
)
@click.option("--text", help="Only records whose rationale or notes contain TEXT (any case).")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "json", "csv"]),
    default="table",
    show_default=True,
)
@reports_errors
def list_records(
    client: str | None,
    domain: str | None,
    analyst: str | None,
    risk: str | None,
    since: str | None,
    until: str | None,
    approver: str | None,
    change_type: str | None,
    outcome: str | None,
    text: str | None,
    fmt: str,
) -> None:
    """List change records: id, client, zones, risk, type, executed, executor, outcome, sealed.

    \b
    Examples:
      dmarcops records list --client northwind-health --since 2026-01-01
      dmarcops records list --analyst jchen --risk high
      dmarcops records list --approver mhara --outcome rolled-back --format csv > rollbacks.csv
      dmarcops records list --text "payroll" --format json
    """
    wanted = RecordFilter(
        client=client,
        domain=domain,
        analyst=analyst,
        risk=RiskLevel.parse(risk) if risk else None,
        since=_date_bound(since, what="--since", end_of_day=False),
        until=_date_bound(until, what="--until", end_of_day=True),
        approver=approver,
        change_type=change_type,
        outcome=outcome,
        text=text,
    )
    records = _store().list_rows(wanted)
    if fmt == "json":
        click.echo(json.dumps([_row(r) for r in records], indent=2, ensure_ascii=False))
        return
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=list(_ROW_FIELDS), lineterminator="\n")
        writer.writeheader()
        # Spreadsheet formula injection: a cell a user wrote that starts with = + - @ is quoted.
        writer.writerows({k: _cell(v) for k, v in _row(r).items()} for r in records)
        click.echo(out.getvalue(), nl=False)
        return
    if not records:
        click.echo("no change records match")
        return
    for line in _table(records):
        click.echo(line)


@records_group.command("reindex")
@reports_errors
def reindex_command() -> None:
    """Rebuild the record index (.dmarcops/records.sqlite) from changes/ledger.jsonl and
    changes/records/.

    The index is a cache that `records list`, `plan` and every record write use so that their
    cost does not grow with the history; it is never the source of truth (`audit verify` does not
    read it). A missing, stale or damaged index is rebuilt or caught up on its own; this command
    does it now, e.g. after restoring changes/ from a backup.

    \b
    Examples:
      dmarcops records reindex
    """
    count = _store().reindex()
    click.echo(f"record index rebuilt: {count} record{'s' if count != 1 else ''}")


_ROW_FIELDS = (
    "id",
    "client",
    "zones",
    "risk",
    "type",
    "executed_at",
    "executed_by",
    "approvers",
    "outcome",
    "sealed",
)


def _row(r: dict[str, Any]) -> dict[str, str]:
    return {
        "id": str(r["id"]),
        "client": str(r["client"]),
        "zones": " ".join(r["zones"]),
        "risk": str(r["risk"]),
        "type": str(r["type"]),
        "executed_at": str(r["executed_at"]),
        "executed_by": str(r["executed_by"]),
        "approvers": " ".join(r["approvers"]),
        "outcome": str(r["outcome"]),
        "sealed": "yes" if r["sealed"] else "no",
    }


def _cell(value: str) -> str:
    value = plain(value)
    return "'" + value if value[:1] in ("=", "+", "-", "@") else value


COMMANDS: tuple[click.Command, ...] = (
    init_command,
    policy_group,
    records_group,
    audit_group,
    review_command,
    reviews_group,
    close_command,
)


def register(group: click.Group) -> None:
    """Attach every command of this module to the `dmarcops` group."""
    for command in COMMANDS:
        group.add_command(command)
