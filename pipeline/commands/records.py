"""`dmarcops records|audit|review|reviews|close`: thin click commands over `pipeline.records`.

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
import os
import re
import sys
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import ParamSpec, TypeVar

import click

from pipeline.clock import CommandTime, is_sandbox, read_only_time
from pipeline.commands.common import command_time, key_option, reports_errors, signer_for
from pipeline.errors import EXIT_GATE, EXIT_INPUT, DmarcopsError, GateRefused, InputError
from pipeline.gate.roster import load_roster
from pipeline.load.portfolio import load_portfolio
from pipeline.model import RiskLevel
from pipeline.records.policy_of_record import GENESIS_PIN, policy_of_record, portfolio_of_record
from pipeline.records.record import (
    REVIEW_VERDICTS,
    ApprovalRole,
    ChangeRecord,
    ChangeType,
    Outcome,
    format_utc,
    parse_time,
    plain,
    show_utc,
)
from pipeline.records.store import RecordStore, audit, make_anchor, parse_anchor

P = ParamSpec("P")
R = TypeVar("R")
_BARE_DATE = re.compile(r"^\s*\d{4}-\d{2}-\d{2}\s*$")


def _store() -> RecordStore:
    root = click.get_current_context().obj
    return RecordStore((root if isinstance(root, Path) else Path.cwd()) / "changes")


def _now(at: str | None) -> datetime:
    return read_only_time(parse_time(at, what="--at / DMARCOPS_NOW") if at else None).now


def _mutating_now(at: str | None, command: str, record_id: str) -> CommandTime:
    """The system clock; a typed time only when the record's client is on the sandbox."""
    store = _store()
    client = store.get(record_id).client  # an unknown id is reported first, as itself
    repo = store.changes_dir.parent
    typed = parse_time(at, what="--at / DMARCOPS_NOW") if at else None
    return command_time(typed, command, portfolio_of_record(repo), {client})


def _sandbox_clients(store: RecordStore) -> frozenset[str]:
    """The clients whose provider is the sandbox: the only ones a simulated record may be for.
    A portfolio that cannot be read has none (a simulated record is then refused)."""
    try:
        portfolio = portfolio_of_record(store.changes_dir.parent)
    except DmarcopsError:
        return frozenset()
    return frozenset(
        cid
        for cid, client in portfolio.clients.items()
        if client.provider in portfolio.providers
        and is_sandbox(portfolio.providers[client.provider].options)
    )


_at_option = click.option(
    "--at",
    "at",
    envvar="DMARCOPS_NOW",
    metavar="TIME",
    help="Act as if it were this UTC time (ISO 8601, e.g. 2026-06-09T17:30:00Z; env DMARCOPS_NOW).",
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


def _table(records: list[ChangeRecord]) -> list[str]:
    header = ("ID", "CLIENT", "ZONES", "RISK", "TYPE", "EXECUTED", "OUTCOME", "SEALED")
    rows = [
        (
            r.id,
            plain(r.client),
            plain(",".join(r.zones)),
            r.risk.label,
            r.change_type.value,
            r.executed_at.strftime("%Y-%m-%d %H:%M") if r.executed_at else "-",
            r.outcome.value if r.outcome else "open",
            "yes" if r.sealed else "no",
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
    records = _store().list(
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


def _row(r: ChangeRecord) -> dict[str, str]:
    return {
        "id": r.id,
        "client": r.client,
        "zones": " ".join(r.zones),
        "risk": r.risk.label,
        "type": r.change_type.value,
        "executed_at": format_utc(r.executed_at) if r.executed_at else "",
        "executed_by": r.executed_by,
        "approvers": " ".join(a.who for a in r.approvals if a.role is not ApprovalRole.ANALYST),
        "outcome": r.outcome.value if r.outcome else "open",
        "sealed": "yes" if r.sealed else "no",
    }


def _cell(value: str) -> str:
    value = plain(value)
    return "'" + value if value[:1] in ("=", "+", "-", "@") else value


# --- audit verify -------------------------------------------------------------------------------


@click.group("audit")
def audit_group() -> None:
    """Check the audit trail (changes/ledger.jsonl and changes/records/)."""


@audit_group.command("quarter")
@click.argument("quarter", metavar="YYYYQN")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["markdown", "json"]),
    default="markdown",
    show_default=True,
)
@_at_option
@reports_errors
def quarter_command(quarter: str, fmt: str, at: str | None) -> None:
    """The quarterly review: every place the policy was bent in QUARTER (emergencies and their
    verdicts, forced closes, freeze exceptions, rollbacks, recovered applies), counts per client,
    analyst, risk and type, open outcomes, overdue reviews, and the policy follow-ups the reviews
    named. Read from the change records; run `dmarcops audit verify` first.

    \b
    Examples:
      dmarcops audit quarter 2026Q3
      dmarcops audit quarter 2026Q3 --format json > review-2026Q3.json
    """
    from pipeline.records.quarter import Quarter, quarter_report
    from pipeline.render.quarter import render_quarter

    report = quarter_report(_store().all(), Quarter.parse(quarter), _now(at))
    if fmt == "json":
        click.echo(json.dumps(report.to_json(), indent=2, ensure_ascii=False))
    else:
        click.echo(render_quarter(report), nl=False)


@audit_group.command("sample")
@click.option("--n", "count", type=click.IntRange(min=1), default=10, show_default=True)
@click.option("--seed", required=True, help="Any text; the same seed picks the same records.")
@click.option("--quarter", metavar="YYYYQN", help="Only records executed in this quarter.")
@reports_errors
def sample_command(count: int, seed: str, quarter: str | None) -> None:
    """Pick records for a spot check, reproducibly: sealed records, weighted towards high risk
    (4) over medium (2) and low (1), an emergency three times its risk's weight. The same seed and
    the same records give the same picks (pipeline/records/sample.py documents the draw).

    \b
    Example:
      dmarcops audit sample --n 10 --seed 2026Q3-audit --quarter 2026Q3
    """
    from pipeline.records.quarter import Quarter
    from pipeline.records.sample import pick

    records = [r for r in _store().all() if r.sealed]
    if quarter is not None:
        period = Quarter.parse(quarter)
        records = [r for r in records if period.holds(r)]
    picked = pick(records, count, seed)
    click.echo(f"sample {plain(seed)!r}: {len(picked)} of {len(records)} sealed record(s)")
    for p in picked:
        r = p.record
        emergency = ", emergency" if r.emergency else ""
        click.echo(
            f"  {r.id}  {plain(r.client)}  {r.risk.label}{emergency}  weight {p.weight}  "
            f"executed by {plain(r.executed_by) or '-'}"
        )


@audit_group.command("attest")
@click.argument("record_id", metavar="ID")
@key_option("Your private key: the finding is yours because you sign it.")
@click.option("--verdict", required=True, type=click.Choice(["ok", "finding"]))
@click.option("--notes", required=True, metavar="TEXT", help="What was checked and found.")
@click.option("--sample", "sample_seed", default="", metavar="SEED", help="The sample's seed.")
@reports_errors
def attest_command(
    record_id: str, key_file: Path, verdict: str, notes: str, sample_seed: str
) -> None:
    """Record your signed spot-check finding about a record into the ledger. It binds the
    record's current content: `audit verify` names the record if it differs later.

    \b
    Example:
      dmarcops audit attest 2026-0007 --key ~/.config/dmarcops/auditor.pem --verdict ok \\
          --notes "Approvals, window and verification match the plan" --sample 2026Q3-audit
    """
    from pipeline.clock import system_now

    store = _store()
    signer = signer_for(store.changes_dir.parent, key_file)
    entry = store.attest(record_id, verdict, notes, system_now(), signer, sample=sample_seed)
    click.echo(
        f"attested: {record_id} {verdict} by {signer.analyst} "
        f"(ledger line {entry.seq}, record {str(entry.payload['record_sha256'])[:16]})"
    )


@audit_group.command("anchor")
@click.option(
    "--out",
    "out",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    metavar="FILE",
    help="Where to write the anchor: keep it outside the repository.",
)
@reports_errors
def anchor_command(out: Path) -> None:
    """Write the ledger's anchor (every line's seq, record and hash) to FILE. Kept outside the
    repository, it lets `dmarcops audit verify --anchor FILE` prove later that no line was removed
    or rewritten since (a truncated ledger, a re-hashed chain).

    \b
    Example:
      dmarcops audit anchor --out ~/dmarcops-anchors/2026-12-01.json
    """
    anchor = make_anchor(_store().changes_dir)
    out.write_text(json.dumps(anchor, indent=1) + "\n", encoding="utf-8")
    click.echo(f"anchored: ledger line {anchor['seq']}, head {anchor['head']} -> {out}")


def _read_anchor(path: Path) -> list[tuple[int, str, str]]:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read the anchor: {exc.strerror}", file=path) from None
    try:
        return parse_anchor(json.loads(raw.decode("utf-8")))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError, ValueError) as exc:
        raise InputError(
            f"not a ledger anchor: {exc}",
            file=path,
            hint="Pass a file `dmarcops audit anchor --out FILE` wrote.",
        ) from None


@audit_group.command("verify")
@_at_option
@click.option(
    "--anchor",
    "anchor_file",
    type=click.Path(dir_okay=False, path_type=Path),
    metavar="FILE",
    help="An anchor from `dmarcops audit anchor`: no anchored line may be gone or rewritten.",
)
@click.option(
    "--genesis",
    envvar=GENESIS_PIN,
    metavar="SHA256",
    help="The genesis `dmarcops init` printed: the ledger must begin with exactly it "
    f"(env {GENESIS_PIN}).",
)
@click.option(
    "--archive",
    "archive_url",
    metavar="s3://BUCKET/PREFIX",
    help="Also compare the repository with the WORM archive and name every difference.",
)
@click.option(
    "--export",
    "export_dir",
    type=click.Path(file_okay=False, path_type=Path),
    metavar="DIR",
    help="Verify a client export (`dmarcops records export`) instead of the repository.",
)
@reports_errors
def verify_command(
    at: str | None,
    anchor_file: Path | None,
    genesis: str | None,
    archive_url: str | None,
    export_dir: Path | None,
) -> None:
    """Verify the hash chain, every record against its last ledger event, gap-free numbering and
    overdue emergency reviews. Prints each problem with the record it concerns; exit 2 if any.

    \b
    Example:
      dmarcops audit verify
    """
    if export_dir is not None:
        _verify_export(export_dir)
        return
    store = _store()
    anchor = _read_anchor(anchor_file) if anchor_file is not None else None
    report = audit(
        store.changes_dir,
        _now(at),
        sandbox_clients=_sandbox_clients(store),
        anchor=anchor,
        genesis=(genesis or "").strip() or None,
    )
    if archive_url is not None:
        from pipeline.records.archive import ArchiveUrl, verify_archive
        from pipeline.records.store import AuditProblem

        differences = verify_archive(store, ArchiveUrl.parse(archive_url))
        report = replace(
            report,
            problems=(
                *report.problems,
                *(AuditProblem("", f"archive: {d}") for d in differences),
            ),
        )
    if report.ok:
        click.echo(
            f"ok: {report.records} records, {report.entries} ledger entries, chain intact\n"
            f"chain head: {report.head}"
        )
        return
    for problem in report.problems:
        click.echo(click.style("problem: ", fg="red", bold=True) + plain(str(problem)))
    click.echo(
        click.style("refused: ", fg="red", bold=True)
        + f"{len(report.problems)} problem(s) in the audit trail",
        err=True,
    )
    sys.exit(EXIT_GATE)


def _verify_export(directory: Path) -> None:
    from pipeline.records.export import verify_export

    if not directory.is_dir():
        raise InputError("not a directory", file=directory, hint="Pass the export's directory.")
    problems, keys = verify_export(directory)
    if not problems:
        click.echo(f"ok: export {directory} verifies; signed with these keys (compare them with "
                   "the ones your MSP published):")  # fmt: skip
        for actor, texts in sorted(keys.items()):
            click.echo(f"  {plain(actor)}: {', '.join(plain(t) for t in texts)}")
        return
    for problem in problems:
        click.echo(click.style("problem: ", fg="red", bold=True) + plain(problem))
    click.echo(
        click.style("refused: ", fg="red", bold=True) + f"{len(problems)} problem(s) in the export",
        err=True,
    )
    sys.exit(EXIT_GATE)


# --- emergency reviews --------------------------------------------------------------------------


@click.command("review")
@click.argument("record_id", metavar="ID")
@key_option("Your private key: the review is yours because you sign it.")
@click.option(
    "--by",
    "by",
    metavar="ANALYST",
    help="Your roster id (optional: the reviewer is the owner of --key; if given, it must match).",
)
@click.option(
    "--verdict",
    required=True,
    type=click.Choice(REVIEW_VERDICTS),
    help="Was the emergency justified? not-justified needs --follow-up.",
)
@click.option(
    "--follow-up",
    "follow_up",
    default="",
    metavar="REF",
    help="The policy follow-up (ticket, policy change) a not-justified emergency leads to.",
)
@click.option("--notes", required=True, metavar="TEXT", help="What the review found.")
@_at_option
@reports_errors
def review_command(
    record_id: str,
    key_file: Path,
    by: str | None,
    verdict: str,
    follow_up: str,
    notes: str,
    at: str | None,
) -> None:
    """Record the post-hoc review of an emergency change (due within 24 hours of it; a later one
    is recorded as late) with its verdict. The reviewer cannot be the analyst who proposed or
    executed it.

    \b
    Examples:
      dmarcops review 2026-0007 --key ~/.config/dmarcops/mhara.pem --verdict justified \\
          --notes "Rollback justified: bounces at Outlook."
      dmarcops review 2026-0008 --key ~/.config/dmarcops/mhara.pem --verdict not-justified \\
          --follow-up POL-12 --notes "Could have waited for the window."
    """
    when = _mutating_now(at, "review", record_id)
    store = _store()
    signer = signer_for(store.changes_dir.parent, key_file, by)
    record = store.review(
        record_id,
        signer,
        notes,
        when.now,
        simulated=when.simulated,
        verdict=verdict,
        follow_up=follow_up,
    )
    emergency = record.emergency
    assert emergency is not None and emergency.reviewed_at is not None
    late = " (late: after the review was due)" if emergency.late else ""
    click.echo(
        f"reviewed: {record.id} {verdict} by {signer.analyst} "
        f"{show_utc(emergency.reviewed_at)}{late}"
    )


@click.group("reviews")
def reviews_group() -> None:
    """Post-hoc reviews of emergency changes."""


@reviews_group.command("overdue")
@_at_option
@reports_errors
def overdue_command(at: str | None) -> None:
    """List emergency changes whose post-hoc review is past due and not recorded. Exit 1 when
    any is (a scheduled job or a monitor can alert on it), 0 when none.

    \b
    Example:
      dmarcops reviews overdue
    """
    now = _now(at)
    records = _store().overdue_reviews(now)
    if not records:
        click.echo("no overdue emergency reviews")
        return
    for record in records:
        assert record.emergency is not None
        hours = (now - record.emergency.review_due).total_seconds() / 3600
        click.echo(
            f"{record.id}  {plain(record.client)}  {plain(','.join(record.zones))}  "
            f"review due {show_utc(record.emergency.review_due)} ({hours:.0f} h overdue)  "
            f"executed by {plain(record.executed_by) or '-'}"
        )
    sys.exit(EXIT_INPUT)  # issue 9: an overdue review is a finding, not a listing


# --- close and seal -----------------------------------------------------------------------------


@click.command("close")
@click.argument("record_id", metavar="ID")
@click.option(
    "--outcome",
    required=True,
    type=click.Choice([o.value for o in Outcome]),
    help="What happened to the change.",
)
@key_option("Your private key: who closes the record is its owner.")
@click.option(
    "--by",
    "by",
    metavar="ANALYST",
    help="Your roster id (optional: checked against the owner of --key).",
)
@click.option(
    "--force",
    is_flag=True,
    help="Close before the rollback window has ended; the record says it was forced.",
)
@click.option(
    "--without-evidence",
    "without_evidence",
    metavar="REASON",
    default="",
    help="Close as accepted although the aggregate reports do not show it (no post-change "
    "reports, an anomaly): why. Signed by you; the quarterly review lists it.",
)
@click.option(
    "--store",
    "report_store",
    type=click.Path(dir_okay=False, path_type=Path),
    help="The report store the verification reads (default: .dmarcops/reports.sqlite).",
)
@_at_option
@reports_errors
def close_command(
    record_id: str,
    outcome: str,
    key_file: Path,
    by: str | None,
    force: bool,
    without_evidence: str,
    report_store: Path | None,
    at: str | None,
) -> None:
    """Log the outcome of a change and seal its record: it is never edited again; a follow-up is
    a new record that references it. Refused (exit 2) before the rollback window has ended unless
    --force, and for an emergency change whose post-hoc review is not recorded.

    Never accepted on silence: the reports received since the change are compared with the
    baseline before it (`dmarcops reports verify`) and the comparison is sealed into the record
    by hash. `--outcome accepted` is refused (exit 2) unless it says accepted, or you give
    --without-evidence REASON.

    \b
    Example:
      dmarcops close 2026-0001 --outcome accepted --key ~/.config/dmarcops/jchen.pem
      dmarcops close 2026-0002 --outcome accepted --without-evidence "client's rua mailbox \
        was down all week; checked delivery with the client" --key ~/.config/dmarcops/jchen.pem
    """
    from pipeline.reports.store import DEFAULT_STORE
    from pipeline.reports.verify import ReportSource, check_record, seal_evidence

    when = _mutating_now(at, "close", record_id)
    store = _store()
    repo = store.changes_dir.parent
    signer = signer_for(repo, key_file, by)
    current = store.get(record_id)
    verification = None
    written: Path | None = None
    # A manual change is verified by its signed checklist, not by reports (RecordStore.seal).
    if current.executed_at is not None and not current.sealed and current.manual is None:
        policy = portfolio_of_record(repo).gate.report_verification
        with ReportSource.open(report_store or repo / DEFAULT_STORE) as source:
            check = check_record(current, source, policy, when.now)
        evidence_dir = repo / "changes" / "evidence"
        had_dir = evidence_dir.is_dir()
        existed = set(evidence_dir.glob("verification-*.json"))
        verification = seal_evidence(repo, check)
        path = repo / verification.file
        written = None if path in existed else path
    try:
        record = store.seal(
            record_id,
            Outcome(outcome),
            when.now,
            signer,
            forced=force,
            simulated=when.simulated,
            verification=verification,
            without_evidence=without_evidence,
        )
    except BaseException:
        if written is not None:  # a refused close leaves nothing behind
            written.unlink(missing_ok=True)
            if not had_dir:
                written.parent.rmdir()
        raise
    assert record.closed_at is not None
    forced = " (forced: before the rollback window ended)" if record.closed_forced else ""
    click.echo(
        f"sealed: {record.id} {outcome} {show_utc(record.closed_at)} by {signer.analyst}{forced}"
    )
    if record.report_verification is not None:
        click.echo(f"  report evidence: {plain(record.report_verification.show())}")
        click.echo(f"    {plain(record.report_verification.summary)}")
        click.echo(f"    sealed: {record.report_verification.file}")
    if record.closed_without_evidence:
        click.echo(
            f"  closed without report evidence: {plain(record.closed_without_evidence)} "
            "(listed by `dmarcops audit quarter`)"
        )


@click.command("init")
@key_option("A lead's private key: the genesis is signed by a lead of the roster it seals.")
@reports_errors
def init_command(key_file: Path) -> None:
    """Seal the policy of record: every file under policy/ (roster included) as it is now becomes
    the first, signed line of the ledger. From then on, a change is judged by the sealed policy,
    signatures are checked against the sealed roster, and an edit under policy/ is a change of
    its own (planned, approved by a lead, applied). Run once, by a lead, in a new repository.

    \b
    Example:
      dmarcops init --key ~/.config/dmarcops/mhara.pem
    """
    from pipeline.clock import system_now
    from pipeline.gate.identity import load_signer
    from pipeline.records.policy_seal import current_snapshot

    store = _store()
    repo = store.changes_dir.parent
    pin = os.environ.get(GENESIS_PIN, "").strip()
    if pin:
        raise GateRefused(
            f"this repository's genesis is pinned ({GENESIS_PIN}={pin[:16]}...): it already had "
            "a ledger, and a new one would not be it",
            hint="Restore changes/ledger.jsonl and changes/policy/ from the repository's history.",
        )
    snapshot = current_snapshot(repo)
    load_portfolio(repo)  # a policy that does not load is not sealed
    signer = load_signer(key_file, load_roster(repo))
    entry = store.seal_policy(snapshot, system_now(), signer, genesis=True)
    click.echo(
        f"sealed: policy {entry.payload['policy_sha256'][:16]} ({len(snapshot.files)} files) as "
        f"the genesis of the ledger, signed by {signer.analyst}"
    )
    click.echo(
        f"genesis: {entry.entry_sha256}\n  Pin it where analysts cannot edit it: "
        f"{GENESIS_PIN} in the protected CI environment, and in your auditor's notes "
        f"(`dmarcops audit verify --genesis ...`)."
    )


@click.group("policy")
def policy_group() -> None:
    """The policy of record: what is sealed, what waits for a lead's seal."""


@policy_group.command("status")
@reports_errors
def policy_status_command() -> None:
    """Show the sealed policy and the files under policy/ edited since (pending: they judge
    nothing until a lead seals them). Exit 0 when nothing is pending, 2 when edits wait.

    \b
    Example:
      dmarcops policy status
    """
    record = policy_of_record(_store().changes_dir.parent, required=False)
    if record.sealed is None:
        click.echo("no policy of record: a lead runs `dmarcops init --key KEY` to seal policy/")
        sys.exit(EXIT_GATE)
    click.echo(f"policy of record: {record.sha256[:16]} ({len(record.sealed.files)} files)")
    pending = record.pending
    for path in pending:
        click.echo(f"  pending: {plain(path)}")
    if pending:
        click.echo(f"{len(pending)} file(s) edited since the seal; a lead seals them with "
                   "`dmarcops policy seal --key KEY`")  # fmt: skip
        sys.exit(EXIT_GATE)
    click.echo("policy/ is as sealed")


@policy_group.command("seal")
@key_option("A lead's private key: only a lead seals a policy change.")
@reports_errors
def policy_seal_command(key_file: Path) -> None:
    """Seal the edits under policy/ as the new policy of record, after reviewing them (`dmarcops
    plan` lists them as high-risk items of kind policy). Signed by a lead of the roster of record;
    from then on every change is judged by it. Refused when nothing is pending or the edited
    policy does not load.

    \b
    Example:
      dmarcops policy seal --key ~/.config/dmarcops/mhara.pem
    """
    from pipeline.clock import system_now

    store = _store()
    repo = store.changes_dir.parent
    record = policy_of_record(repo, required=False)
    if record.sealed is None:
        raise GateRefused(
            "no policy of record yet", hint="A lead runs `dmarcops init --key KEY` first."
        )
    if not record.pending:
        raise InputError("nothing to seal: policy/ is as sealed")
    load_portfolio(repo)  # the edited policy must load before it can judge anything
    load_roster(repo)  # pipeline.gate.roster
    signer = signer_for(repo, key_file)
    entry = store.seal_policy(record.working, system_now(), signer)
    click.echo(
        f"sealed: policy {entry.payload['policy_sha256'][:16]} by {signer.analyst}; "
        f"{len(record.pending)} file(s) changed: {', '.join(plain(p) for p in record.pending)}"
    )


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
