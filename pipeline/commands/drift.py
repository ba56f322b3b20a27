"""`dmarcops drift`, `dmarcops drift adopt` and `dmarcops recommend`: thin click commands over
pipeline.drift (docs/drift.md)."""

from __future__ import annotations

import sys
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import click

from pipeline.commands.common import (
    at_option,
    command_time,
    echo_error,
    key_option,
    nameserver_option,
    nameservers_from,
    now_from,
    parse_selector,
    reports_errors,
    signer_for,
)
from pipeline.drift import adopt as adopting
from pipeline.drift import recommend
from pipeline.drift import render as drift_render
from pipeline.drift.detect import detect as detect_drift
from pipeline.errors import EXIT_INPUT, InputError
from pipeline.load.files import write_output
from pipeline.load.portfolio import Portfolio
from pipeline.load.request_files import Selector
from pipeline.plan.build import PlanOptions
from pipeline.text.safe import clean, shown


def _load(repo: Path) -> tuple[Portfolio, dict[str, str]]:
    from pipeline.commands.loading import load_plannable

    portfolio, broken = load_plannable(repo)
    return portfolio, {domain: str(problem) for domain, problem in broken.items()}


def _check_scope(portfolio: Portfolio, clients: tuple[str, ...], zones: tuple[str, ...]) -> None:
    for client in clients:
        if client not in portfolio.clients:
            raise InputError(
                f"no client {client!r}", hint=f"Clients: {', '.join(sorted(portfolio.clients))}."
            )
    for zone in zones:
        if zone.rstrip(".").lower() not in {z.domain for z in portfolio.zone_files}:
            raise InputError(f"no zone file for {zone!r}", hint="See zones/<client>/<domain>.yaml.")


def _options(
    portfolio: Portfolio,
    broken: dict[str, str],
    clients: tuple[str, ...],
    zones: tuple[str, ...],
    nameservers: tuple[str, ...],
    now: datetime,
) -> PlanOptions:
    _check_scope(portfolio, clients, zones)
    return PlanOptions(
        now=now,
        clients=clients,
        zones=zones,
        nameservers=nameservers_from(nameservers, portfolio.settings.timeout),
        broken_zones=broken,
    )


def _write(out: Path | None, text: str, repo: Path) -> None:
    if out is None:
        return
    write_output(out, text, what="report")


_SCOPE = [
    click.option("--client", "clients", multiple=True, help="Only this client (repeatable)."),
    click.option("--zone", "zones", multiple=True, help="Only this domain (repeatable)."),
    nameserver_option("Resolver for SPF lookup budgets, HOST[:PORT] (repeatable)."),
]


F = TypeVar("F", bound=Callable[..., Any])


def _scoped(func: F) -> F:
    for option in reversed(_SCOPE):
        func = option(func)
    return func


@click.group("drift", invoke_without_command=True)
@_scoped
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "json", "markdown"]),
    default="text",
    show_default=True,
    help="text for people, json for machines, markdown for a job summary or an issue.",
)
@click.option(
    "--out", type=click.Path(dir_okay=False, path_type=Path), help="Also save the JSON report."
)
@click.option(
    "--open-records",
    is_flag=True,
    help="Open a change record for each zone with unrecorded changes (once per change; the "
    "scheduled run does this), signed with --key.",
)
@click.option(
    "--key",
    "key_file",
    envvar=["DMARCOPS_KEY", "DMARCOPS_SIGNING_KEY"],
    type=click.Path(dir_okay=False, path_type=Path),
    metavar="FILE",
    help="With --open-records: the key that signs the records (a person's or the automation's; "
    "env DMARCOPS_KEY or DMARCOPS_SIGNING_KEY).",
)
@at_option("Compare as if it were this UTC time (freezes and schedules for the risk).")
@click.pass_context
@reports_errors
def drift_group(
    ctx: click.Context,
    clients: tuple[str, ...],
    zones: tuple[str, ...],
    nameservers: tuple[str, ...],
    fmt: str,
    out: Path | None,
    open_records: bool,
    key_file: Path | None,
    at: datetime | None,
) -> None:
    """Compare live DNS with the zone files and the last change records, and report every
    owned record someone changed outside the pipeline (an unrecorded change) with its before
    and after, what it means and its risk. Pending changes (requested, not applied yet) are
    listed too and are not drift. Exit 0 when there is no drift, 1 when there is (or a zone
    could not be read), so a scheduled run fails until each change is adopted or reverted.

    \b
    Examples:
      dmarcops drift
      dmarcops drift --client fabrikam-labs --format json --out drift.json
      dmarcops drift --open-records --key ~/.config/dmarcops/jchen.pem
      dmarcops drift adopt --record 'fabrikam.example _dmarc TXT' --key ~/.config/dmarcops/jchen.pem
    """
    if ctx.invoked_subcommand is not None:
        return
    repo: Path = ctx.obj
    if open_records and key_file is None:
        raise InputError(
            "--open-records signs the records it opens: give --key FILE",
            hint="Your key, or the automation's (env DMARCOPS_SIGNING_KEY in the scheduled run).",
        )
    portfolio, broken = _load(repo)
    # Writing records takes the system clock (a typed time only on the sandbox).
    when = (
        command_time(at, "drift --open-records", portfolio, clients or None)
        if open_records
        else None
    )
    options = _options(
        portfolio, broken, clients, zones, nameservers, when.now if when else now_from(at)
    )
    report = detect_drift(portfolio, options)
    if when is not None and key_file is not None:
        signer = signer_for(repo, key_file)
        opened, known = adopting.open_records(
            portfolio, report, signer, when.now, simulated=when.simulated
        )
        for record in opened:
            click.echo(
                f"opened change record {record.id}: {shown(record.client)} "
                f"{', '.join(record.zones)}, {len(record.items)} unrecorded change(s), "
                f"{record.risk.label} risk{when.label}",
                err=True,
            )
        for record in known:
            click.echo(
                f"already open: change record {record.id} ({', '.join(record.zones)})", err=True
            )
    if fmt == "json":
        click.echo(drift_render.render_json(report), nl=False)
    elif fmt == "markdown":
        names = {c.id: c.name for c in portfolio.clients.values()}
        click.echo(drift_render.render_markdown(report, names), nl=False)
    else:
        click.echo(drift_render.render_text(report), nl=False)
    _write(out, drift_render.render_json(report), repo)
    for zone in report.failed_zones:
        if zone.zone in broken:
            continue  # its zone-file problems were printed with their lines
        echo_error(
            f"{shown(zone.zone)}: could not read live DNS through {shown(zone.provider)}: "
            + clean(zone.error)
        )
    if report.has_drift or report.failed_zones:
        sys.exit(EXIT_INPUT)


@drift_group.command("adopt")
@click.option(
    "--record",
    "records",
    multiple=True,
    metavar="'ZONE [NAME [TYPE]]'",
    help="The unrecorded change(s) to adopt, as a request's covers: selector (@ for the apex; "
    "repeatable).",
)
@click.option("--all", "adopt_all", is_flag=True, help="Adopt every unrecorded change in scope.")
@_scoped
@click.option("--note", default="", help="Why the change is kept (who made it, the ticket).")
@click.option(
    "--no-write",
    is_flag=True,
    help="Leave the zone files alone and print what to write into them instead.",
)
@key_option("Your private key: you adopt the change, and your key signs its record.")
@click.option("--as", "by", help="Your roster id (optional: checked against the owner of --key).")
@at_option("Only for the sandbox (rehearsals, marked simulated); otherwise the system clock.")
@click.pass_obj
@reports_errors
def adopt_command(
    repo: Path,
    records: tuple[str, ...],
    adopt_all: bool,
    clients: tuple[str, ...],
    zones: tuple[str, ...],
    nameservers: tuple[str, ...],
    note: str,
    no_write: bool,
    key_file: Path,
    by: str | None,
    at: datetime | None,
) -> None:
    """Adopt unrecorded changes as the recorded state: one change record per zone, "changed
    outside the pipeline, adopted by YOU", signed with your key and sealed, and the zone file
    set to the live values (--no-write: printed instead), so the next plan keeps them and the
    next drift is clean. Nothing is sent to DNS. To undo a change instead, file a normal change
    request for the record (docs/drift.md).

    \b
    Examples:
      dmarcops drift adopt --record 'fabrikam.example _dmarc TXT' --key ~/.config/dmarcops/jchen.pem \\
          --note "client's IT set p=none during their mail migration, ticket CHG-2291"
      dmarcops drift adopt --all --client fabrikam-labs --key ~/.config/dmarcops/jchen.pem
    """
    selectors: list[Selector] = []
    for text in records:
        selectors.append(parse_selector(text, "--record"))
    if not selectors and not adopt_all:
        raise InputError(
            "say which unrecorded changes to adopt",
            hint="--record 'ZONE NAME TYPE' (repeatable), or --all for every one in scope.",
        )
    portfolio, broken = _load(repo)
    scope_clients = clients or tuple(
        sorted({portfolio.client_of(s.zone).id for s in selectors if _known(portfolio, s.zone)})
    )
    when = command_time(at, "drift adopt", portfolio, scope_clients or None)
    signer = signer_for(repo, key_file, by)
    options = _options(portfolio, broken, clients, zones, nameservers, when.now)
    report = detect_drift(portfolio, options)
    chosen = adopting.select(report, selectors)
    if not chosen:
        raise InputError(
            "no unrecorded change matches" + (f" {', '.join(records)}" if records else " in scope"),
            hint="`dmarcops drift` lists the unrecorded changes and their selectors.",
        )
    adopted = adopting.adopt(
        portfolio,
        chosen,
        signer,
        when.now,
        note=note,
        write=not no_write,
        simulated=when.simulated,
    )
    for done in adopted:
        record = done.record
        click.echo(
            f"change record {record.id}: {shown(record.client)} {', '.join(record.zones)} "
            f"adopted by {signer.analyst} ({record.risk.label} risk), sealed{when.label}"
        )
        for item in record.items:
            click.echo(
                f"  {shown(item.fqdn)} {clean(item.type)}: {clean('; '.join(item.facts) or 'TTL')}"
            )
        where = (
            done.zone_file.relative_to(repo)
            if done.zone_file.is_relative_to(repo)
            else done.zone_file
        )
        if done.written:
            click.echo(f"  wrote {where}: it now holds the live value(s)")
        elif no_write and done.snippet.strip():
            click.echo(f"  write into {where} (then commit it):")
            for line in done.snippet.splitlines():
                click.echo(f"    {clean(line)}")
        else:
            click.echo(f"  {where} already held the live value(s)")


def _known(portfolio: Portfolio, zone: str) -> bool:
    try:
        portfolio.client_of(zone)
    except KeyError:
        return False
    return True


@click.command("recommend")
@_scoped
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["markdown", "json", "text"]),
    default="markdown",
    show_default=True,
    help="markdown to send to the client, json for machines, text for a terminal.",
)
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), help="Write it to FILE.")
@at_option("Prepare it as if it were this UTC time.")
@click.pass_obj
@reports_errors
def recommend_command(
    repo: Path,
    clients: tuple[str, ...],
    zones: tuple[str, ...],
    nameservers: tuple[str, ...],
    fmt: str,
    out: Path | None,
    at: datetime | None,
) -> None:
    """The recommendations for self-serve clients: what the MSP would change in their records
    (the zone file against live DNS) and why, with the risk of each change, and what changed on
    their side since the last record. The MSP never applies these: the one gate refuses any
    apply for a self-serve client [self-serve-tier]. Exit 0, or 1 when a zone could not be read.

    \b
    Examples:
      dmarcops recommend --client contoso-retail --out contoso-recommendations.md
      dmarcops recommend --format json
    """
    portfolio, broken = _load(repo)
    chosen = [
        c
        for c in sorted(portfolio.clients.values(), key=lambda c: c.id)
        if c.self_serve and (not clients or c.id in clients)
    ]
    named = [c for c in clients if c in portfolio.clients and not portfolio.clients[c].self_serve]
    if named:
        raise InputError(
            f"{', '.join(named)} {'is' if len(named) == 1 else 'are'} not on the self-serve tier: "
            "the MSP changes their records through requests (`dmarcops plan`)",
            hint="Recommendations are for clients with `tier: self-serve` in their profile.",
        )
    now = now_from(at)
    if not chosen:
        click.echo(recommend.render_text([], now), nl=False)
        return
    options = _options(portfolio, broken, tuple(c.id for c in chosen), zones, nameservers, now)
    report = detect_drift(portfolio, options)
    assert report.plan is not None
    recs = recommend.recommendations(chosen, report.plan.items, report)
    render = {
        "markdown": recommend.render_markdown,
        "json": recommend.render_json,
        "text": recommend.render_text,
    }[fmt]
    text = render(recs, now)
    if out is not None:
        _write(out, text, repo)
        click.echo(f"wrote {out}")
    else:
        click.echo(text, nl=False)
    if report.failed_zones:
        sys.exit(EXIT_INPUT)


def register(group: click.Group) -> None:
    group.add_command(drift_group)
    group.add_command(recommend_command)
