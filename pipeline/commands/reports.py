"""`dmarcops reports ingest|summary`: aggregate reports into the store, and the numbers back out.

The store is `.dmarcops/reports.sqlite` under the repository (gitignored: it is a cache, rebuilt
by ingesting the report files again); `--store` puts it elsewhere. Exit codes (docs/exit-codes.md):
ingest exits 1 when any input could not be read as a report (the others are stored all the same),
summary exits 1 on bad input (unknown client or domain, unreadable --since).
"""

from __future__ import annotations

import re
import sys
from contextlib import closing
from datetime import UTC, datetime, timedelta
from pathlib import Path

import click

from pipeline.clock import read_only_time
from pipeline.commands.common import AT_FORMATS, echo_error, echo_warning, reports_errors
from pipeline.errors import EXIT_INPUT, InputError
from pipeline.gate import decide
from pipeline.load.files import write_output
from pipeline.load.portfolio import load_portfolio
from pipeline.records.policy_of_record import portfolio_of_record
from pipeline.reports.asn import load_asn_table
from pipeline.reports.chart import svg_chart
from pipeline.reports.evidence import evidence_document, load_evidence, write_evidence
from pipeline.reports.ingest import LazyStore, ingest_paths
from pipeline.reports.s3 import read_prefix
from pipeline.reports.store import DEFAULT_STORE, counts, open_store
from pipeline.reports.summary import (
    load_rows,
    render_csv,
    render_json,
    render_text,
    summarise,
    unknown_senders,
)
from pipeline.text.safe import clean

_RELATIVE = re.compile(r"^\s*(\d{1,4})\s*([dhw])\s*$")


def parse_since(value: str, now: datetime) -> datetime:
    """`30d`, `12h`, `2w` before `now`, or a date / time in UTC."""
    match = _RELATIVE.match(value)
    if match:
        amount, unit = int(match.group(1)), match.group(2)
        hours = {"h": 1, "d": 24, "w": 24 * 7}[unit] * amount
        return _before(now, timedelta(hours=hours))
    for fmt in AT_FORMATS:
        try:
            return datetime.strptime(value.strip(), fmt).replace(tzinfo=UTC)
        except ValueError:
            continue
    raise InputError(
        f"--since {value!r} is neither a duration nor a date",
        hint="Write 30d, 12h, 2w, or a UTC date such as 2026-11-01.",
    )


def _before(now: datetime, span: timedelta) -> datetime:
    try:
        return now - span
    except OverflowError:  # --at 0001-01-01 --since 30d
        raise InputError(
            f"the period would start before the year 1 (--at {now:%Y-%m-%d})",
            hint="Give --at a real date.",
        ) from None


def _store_path(repo: Path, store: Path | None) -> Path:
    return store if store is not None else repo / DEFAULT_STORE


_store_option = click.option(
    "--store",
    type=click.Path(dir_okay=False, path_type=Path),
    help=f"The report store (default: {DEFAULT_STORE} under the repository).",
)


@click.group("reports")
def reports() -> None:
    """DMARC aggregate reports: ingest them, and read pass rates from them."""


@reports.command("ingest")
@click.argument("paths", nargs=-1, required=True, metavar="PATH...")
@_store_option
@click.pass_obj
@reports_errors
def ingest_command(repo: Path, paths: tuple[str, ...], store: Path | None) -> None:
    """Read aggregate reports (XML, .gz, .zip, .eml, mbox; attachments in any of those) from
    files, directories (recursively) and s3://BUCKET/PREFIX into the report store. A report
    already stored (same org and report id) is counted as a duplicate and not stored again.
    Exit 1 when any input could not be read as a report; the others are stored all the same.

    \b
    Examples:
      dmarcops reports ingest ~/rua-export/
      dmarcops reports ingest inbox.mbox google-2026-11-30.xml.gz
      dmarcops reports ingest s3://msp-rua/fabrikam/
    """
    path = _store_path(repo, store)
    root = repo if store is None else None
    lazy = LazyStore(lambda: open_store(path, root=root))
    try:
        result = ingest_paths(lazy, list(paths), s3_reader=read_prefix)
        totals = counts(lazy.connection()) if lazy.opened else None
    finally:
        lazy.close()
    for warning in result.warnings:
        echo_warning(f"{clean(warning.name)}: {clean(warning.reason)}")
    for problem in result.problems:
        echo_error(f"{clean(problem.name)}: {clean(problem.reason)}")
    rate = result.stored / result.seconds if result.seconds > 0 else 0.0
    click.echo(
        f"ingested {result.files} file(s): {result.stored} new report(s) "
        f"({result.records} records, {result.messages} messages), {result.duplicates} "
        f"duplicate(s), {len(result.problems)} problem(s) in {result.seconds:.2f} s "
        f"({rate:.0f} reports/s)"
    )
    # Shown relative to the working directory, as every file dmarcops names.
    shown = InputError("", file=path).where
    if totals is None:
        click.echo(f"store {clean(shown)}: not written (nothing to store)")
    else:
        click.echo(f"store {clean(shown)}: {totals[0]} reports, {totals[1]} records")
    if result.problems:
        sys.exit(EXIT_INPUT)


@reports.command("summary")
@click.option("--client", "client_id", required=True, help="The client (policy/clients/<id>.yaml).")
@click.option(
    "--domain",
    "domains",
    multiple=True,
    help="Only this domain of the client, and its subdomains (repeatable; default: all of them).",
)
@click.option(
    "--since", default="30d", show_default=True, help="Start: 30d, 12h, 2w, or a UTC date."
)
@click.option(
    "--at",
    "at",
    envvar="DMARCOPS_NOW",
    type=click.DateTime(formats=AT_FORMATS),
    help="Summarise as if it were this UTC time (the end of the period; env DMARCOPS_NOW).",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "json", "csv"]),
    default="text",
    show_default=True,
)
@click.option(
    "--chart",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also write the pass rate per day as an SVG chart to this file (.svg).",
)
@click.option(
    "--asn-table",
    "asn_table",
    envvar="DMARCOPS_ASN_TABLE",
    type=click.Path(dir_okay=False, path_type=Path),
    help="An offline IP-to-ASN table (iptoasn.com's ip2asn TSV, plain or .gz): source IPs are "
    "also grouped by AS (env DMARCOPS_ASN_TABLE). No lookup leaves the machine.",
)
@_store_option
@click.pass_obj
@reports_errors
def summary_command(
    repo: Path,
    client_id: str,
    domains: tuple[str, ...],
    since: str,
    at: datetime | None,
    fmt: str,
    chart: Path | None,
    asn_table: Path | None,
    store: Path | None,
) -> None:
    """Messages, DKIM-aligned, SPF-aligned and DMARC pass rate for a client's domains, per
    domain, reporting org, source IP, envelope domain and day; then the failing sources with a
    suggested action and their entry in policy/senders.yaml.

    \b
    Examples:
      dmarcops reports summary --client fabrikam-labs --since 30d
      dmarcops reports summary --client fabrikam-labs --domain fabrikam.example --format json
    """
    portfolio = load_portfolio(repo)
    client = portfolio.clients.get(client_id)
    if client is None:
        raise InputError(
            f"no client {client_id!r}", hint=f"Clients: {', '.join(sorted(portfolio.clients))}."
        )
    chosen = tuple(d.rstrip(".").lower() for d in domains) or client.domains
    for domain in chosen:
        if domain not in client.domains:
            raise InputError(
                f"{domain!r} is not a domain of {client_id}",
                hint=f"Its domains: {', '.join(client.domains)}.",
            )
    until = read_only_time(at).now
    start = parse_since(since, until)
    if start >= until:
        raise InputError(
            f"--since {since!r} is not before the end of the period ({until:%Y-%m-%d %H:%M} UTC)",
            hint="Give --since a duration (30d) or an earlier date, or --at a later one.",
        )
    with closing(open_store(_store_path(repo, store), readonly=True)) as connection:
        rows = load_rows(connection, chosen, start, until)
    if chart is not None and chart.suffix.lower() != ".svg":
        raise InputError(
            f"--chart {chart.name!r}: the chart is written as SVG only",
            hint="Name it .svg; for a PNG, convert it (rsvg-convert chart.svg -o chart.png).",
        )
    asn = load_asn_table(asn_table) if asn_table is not None else None
    summary = summarise(rows, client_id, chosen, start, until, asn=asn)
    unknown = unknown_senders(rows, portfolio.senders)
    if chart is not None:
        write_output(chart, svg_chart(summary), what="chart", option="--chart")
    if fmt == "json":
        click.echo(render_json(summary, unknown), nl=False)
    elif fmt == "csv":
        click.echo(render_csv(summary), nl=False)
    else:
        click.echo(render_text(summary, unknown), nl=False)


@reports.command("evidence")
@click.option("--client", "client_id", required=True, help="The client (policy/clients/<id>.yaml).")
@click.option("--domain", required=True, help="The domain whose DMARC policy is to tighten.")
@click.option(
    "--days",
    type=click.IntRange(1, 366),
    default=14,
    show_default=True,
    help="The period: this many days up to now (or --at).",
)
@click.option(
    "--at",
    "at",
    envvar="DMARCOPS_NOW",
    type=click.DateTime(formats=AT_FORMATS),
    help="The end of the period, UTC (env DMARCOPS_NOW; default: now).",
)
@_store_option
@click.pass_obj
@reports_errors
def evidence_command(
    repo: Path, client_id: str, domain: str, days: int, at: datetime | None, store: Path | None
) -> None:
    """Compute pass-rate evidence for a policy progression from the report store and write it
    to changes/evidence/reports-<sha256>.json; the request names it as
    `details.report_evidence: <sha256>`, and the gate judges it against the thresholds of
    policy/gate.yaml (`report_evidence`).

    \b
    Examples:
      dmarcops reports evidence --client fabrikam-labs --domain fabrikam.example --days 14
    """
    portfolio = portfolio_of_record(repo)
    client = portfolio.clients.get(client_id)
    if client is None:
        raise InputError(
            f"no client {client_id!r}", hint=f"Clients: {', '.join(sorted(portfolio.clients))}."
        )
    domain = domain.rstrip(".").lower()
    if not any(domain == d or domain.endswith("." + d) for d in client.domains):
        raise InputError(
            f"{domain!r} is not a domain of {client_id}",
            hint=f"Its domains: {', '.join(client.domains)}.",
        )
    until = read_only_time(at).now.replace(microsecond=0)
    since = _before(until, timedelta(days=days))
    with closing(open_store(_store_path(repo, store), readonly=True)) as connection:
        rows = load_rows(connection, (domain,), since, until)
    document = evidence_document(
        rows, len({r.report for r in rows}), client_id, domain, since, until
    )
    digest, written = write_evidence(repo, document)
    evidence = load_evidence(repo, digest)
    rate = f"{100 * evidence.dmarc_pass / evidence.messages:.2f}%" if evidence.messages else "-"
    click.echo(f"wrote {clean(str(written.relative_to(repo)))}")
    click.echo(
        f"  {clean(domain)} {since:%Y-%m-%d %H:%M}..{until:%Y-%m-%d %H:%M} UTC: "
        f"{evidence.messages} messages in {evidence.reports} report(s), {rate} DMARC pass, "
        f"{len(evidence.sources)} source(s)"
    )
    rules = portfolio.gate.report_evidence
    for target, need in (rules.thresholds if rules else {}).items():
        shortfalls = decide.evidence_shortfalls(evidence, need, until)
        verdict = "meets it" if not shortfalls else "falls short: " + "; ".join(shortfalls)
        click.echo(f"  p={target} threshold (policy/gate.yaml): {clean(verdict)}")
    click.echo(f'  in the request: details: report_evidence: "{digest}"')


@reports.command("verify")
@click.option(
    "--record",
    "record_ids",
    multiple=True,
    metavar="ID",
    help="Only this change record (repeatable; default: every applied record not yet closed).",
)
@click.option(
    "--at",
    "at",
    envvar="DMARCOPS_NOW",
    type=click.DateTime(formats=AT_FORMATS),
    help="Verify as if it were this UTC time (env DMARCOPS_NOW; default: now).",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
)
@_store_option
@click.pass_obj
@reports_errors
def verify_command(
    repo: Path,
    record_ids: tuple[str, ...],
    at: datetime | None,
    fmt: str,
    store: Path | None,
) -> None:
    """Verification in the rollback window: for each applied change record not yet closed (or
    each --record), the aggregate reports received since the change against the baseline before
    it, per domain and per major source, and the verdict: accepted proposed (with the numbers),
    stays open ("no evidence yet"), or ANOMALY (a legitimate source newly failing, the pass rate
    falling, more mail quarantined or rejected: rollback recommended). Thresholds: policy/gate.yaml
    `report_verification`. The scheduled run closes on the same comparison. Exit 1 when any
    record shows an anomaly (a monitor can alert on it), 0 otherwise.

    \b
    Examples:
      dmarcops reports verify
      dmarcops reports verify --record 2026-0007 --format json
    """
    from pipeline.apply.verify_reports import ANOMALY, ReportSource, check_record, to_verify
    from pipeline.apply.verify_text import render_json as verify_json
    from pipeline.apply.verify_text import render_text as verify_text
    from pipeline.records.store import RecordStore

    now = read_only_time(at).now
    records = RecordStore(repo / "changes")
    if record_ids:
        chosen = [records.get(record_id) for record_id in record_ids]
        for record in chosen:
            if record.executed_at is None:
                raise InputError(
                    f"record {record.id} was never applied: there is nothing to verify",
                    hint="Only applied changes have reports after them.",
                )
    else:
        chosen = to_verify(records.all())
    policy = portfolio_of_record(repo).gate.report_verification
    with ReportSource.open(_store_path(repo, store)) as source:
        checks = [check_record(record, source, policy, now) for record in chosen]
    if fmt == "json":
        click.echo(verify_json(checks), nl=False)
    else:
        click.echo(verify_text(checks, now), nl=False)
    if any(check.verdict == ANOMALY for check in checks):
        sys.exit(EXIT_INPUT)


def register(group: click.Group) -> None:
    group.add_command(reports)
