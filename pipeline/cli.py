"""The `dmarcops` command: thin click functions over the library calls tests and other code use.

Exit codes (docs/exit-codes.md): 0 success, 1 error in input, environment or command-line usage,
2 a gate refused, 70 a bug (one line and a crash log; --debug for the traceback), 130 interrupted.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from pipeline.cli_lazy import LAZY_COMMANDS, LazyCommands, LazyGroup
from pipeline.commands.common import (
    AT_FORMATS,
    echo_error,
    read_nameservers,
    reports_errors,
    set_debug,
)
from pipeline.errors import EXIT_GATE, EXIT_INPUT, GateRefused, InputError
from pipeline.load.codeowners import DEFAULT_OWNER
from pipeline.text.safe import clean, shown

if TYPE_CHECKING:
    from pipeline.load.portfolio import Portfolio
    from pipeline.plan.changes import ChangedZones

# Each command imports what it needs when it runs: `dmarcops --help` and the start of every
# command must not pay for octoDNS, dnspython, jsonschema, boto3 or cryptography
# (tests/test_imports.py; benchmarks/README.md has the figures). The table of those commands,
# LAZY_COMMANDS, and the group that reads it are in pipeline/cli_lazy.py.
F = TypeVar("F", bound=Callable[..., Any])

__all__ = ["LAZY_COMMANDS", "LazyCommands", "LazyGroup", "main", "rollback_hours_for"]


@click.group(
    cls=LazyGroup,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.option(
    "--repo",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("."),
    show_default=True,
    help="The dmarcops repository (the directory holding zones/ and policy/).",
)
@click.pass_context
@click.option("-v", "--verbose", is_flag=True, help="Show octoDNS's own log messages.")
@click.option(
    "--debug",
    is_flag=True,
    is_eager=True,
    expose_value=False,
    callback=set_debug,
    envvar="DMARCOPS_DEBUG",
    help="On a bug, show the Python traceback instead of writing a crash log (env DMARCOPS_DEBUG).",
)
def main(ctx: click.Context, repo: Path, verbose: bool) -> None:
    """Plan and govern changes to email-authentication DNS records (DMARC, SPF, DKIM, BIMI,
    MTA-STS, TLS-RPT) for a portfolio of clients.

    \b
    Examples:
      dmarcops validate
      dmarcops plan
      dmarcops plan --client fabrikam-labs --format markdown
      dmarcops plan --format json --out plan.json
    """
    ctx.obj = repo.resolve()
    ctx.meta[_VERBOSE] = verbose
    # `plan` configures it itself, once it knows it will plan anything: importing logging is
    # a tenth of a no-op plan's time (tests/test_startup.py).
    if ctx.invoked_subcommand != "plan":
        _configure_logging(verbose)


_VERBOSE = "dmarcops.verbose"


def _configure_logging(verbose: bool) -> None:
    import logging

    # octoDNS logs through the root logger; its warnings are for octoDNS operators, not analysts.
    logging.basicConfig(
        level=logging.INFO if verbose else logging.ERROR, format="%(name)s: %(message)s"
    )


@main.command()
@click.pass_obj
@reports_errors
def validate(repo: Path) -> None:
    """Check every zone file and policy file against its JSON Schema, the pipeline's scope and
    octoDNS's own record validation, then run every record rule offline (the findings `plan`
    reports, without DNS: SPF lookups estimated from the sender catalog, report authorisations not
    looked up). Prints each problem with its file and line; exit 1 for bad files, 2 when a record
    has an error finding (as `plan` refuses), 0 otherwise (warnings are printed).
    """
    from pipeline import api
    from pipeline.model import Severity

    report = api.validate(repo)  # the files as they are in the working tree
    for found in report.findings:
        finding = found.finding
        where = InputError("", file=found.file, line=found.line).where
        label = click.style(
            f"{finding.severity.label}: ",
            fg="red" if finding.severity is Severity.ERROR else "yellow",
            bold=True,
        )
        click.echo(f"{label}{clean(where)}: {finding.code} {clean(finding.message)}", err=True)
    if report.errors:
        click.echo(
            click.style("refused: ", fg="red", bold=True)
            + f"{len(report.errors)} record error(s): receivers would not apply these records as "
            "written; fix them before planning (docs/rules.md explains each code)",
            err=True,
        )
        sys.exit(EXIT_GATE)
    portfolio = report.portfolio
    click.echo(
        f"ok: {len(portfolio.clients)} clients, {len(portfolio.zone_files)} zone files, "
        f"{len(portfolio.providers)} providers, {len(portfolio.rules.rules)} risk rules, "
        f"{report.analysts} analysts, {report.requests} change requests"
    )


@main.command()
@click.argument("client_id", metavar="CLIENT")
@click.option(
    "--risk",
    type=click.Choice(["low", "medium", "high", "reject"]),
    default="medium",
    show_default=True,
    help="Risk of the change, for the length of its rollback window (reject: a p=reject change).",
)
@click.option(
    "--at", "at", type=click.DateTime(formats=AT_FORMATS), help="Search from this UTC time."
)
@click.pass_obj
@reports_errors
def window(repo: Path, client_id: str, risk: str, at: datetime | None) -> None:
    """Print CLIENT's next open change window: inside one of its standing windows that takes the
    risk, outside freezes and blackout dates, with a rollback window that runs into neither a
    freeze nor an unstaffed weekend and ends inside staffed hours (policy/staffing.yaml).

    \b
    Examples:
      dmarcops window fabrikam-labs
      dmarcops window northwind-health --risk reject
    """
    from zoneinfo import ZoneInfo

    from pipeline.gate.windows import next_window
    from pipeline.model import RiskLevel
    from pipeline.records.policy_of_record import portfolio_of_record

    portfolio = portfolio_of_record(repo)
    client = portfolio.clients.get(client_id)
    if client is None:
        raise InputError(
            f"no client {client_id!r}", hint=f"Clients: {', '.join(sorted(portfolio.clients))}."
        )
    hours = rollback_hours_for(portfolio, risk, client_id)
    now = at.replace(tzinfo=UTC) if at else datetime.now(UTC)
    level = RiskLevel.HIGH if risk == "reject" else RiskLevel.parse(risk)
    decision = next_window(client, now, hours, level)
    if decision.window is None:
        raise GateRefused(decision.reason)
    tz = ZoneInfo(client.timezone)
    opens = max(decision.window.start, now)
    click.echo(
        f"{shown(client.name)}: next change window {opens:%Y-%m-%d %H:%M}-{decision.window.end:%H:%M} UTC "
        f"({opens.astimezone(tz):%a %Y-%m-%d %H:%M}-"
        f"{decision.window.end.astimezone(tz):%H:%M} {client.timezone})"
    )
    click.echo(
        f"rollback window for a {risk} change applied then: {hours} h, until "
        f"{decision.rollback.end:%Y-%m-%d %H:%M} UTC"
    )


def rollback_hours_for(portfolio: Portfolio, risk: str, client_id: str) -> int:
    """The rollback window of a change of this risk for this client (its calendar may lengthen
    the portfolio's), a p=reject change's as its risk rule says."""
    from pipeline.gate import decide
    from pipeline.model import RiskLevel

    by_risk = decide.rollback_by_risk(portfolio, client_id)
    if risk == "reject":
        reject = next(r for r in portfolio.rules.rules if r.id == "dmarc-policy-reject")
        return max(reject.rollback_hours or 0, by_risk[RiskLevel.HIGH])
    return by_risk[RiskLevel.parse(risk)]


@main.command("explain")
@click.argument("code")
@reports_errors
def explain_command(code: str) -> None:
    """Print the rule behind a finding code (D4, S1, K3, ...): what it checks, its severity, the
    RFC clause, an example, the risk and the fix, from docs/rules.md. Example: `dmarcops explain S3`.
    """
    from pipeline.diff.explain import render_entry, rule_entries

    entries = rule_entries()
    entry = entries.get(code.strip().upper())
    if entry is None:
        raise InputError(
            f"no finding code {code!r}",
            hint="Known codes: " + ", ".join(sorted(entries)) + " (docs/rules.md).",
        )
    click.echo(render_entry(entry), nl=False)


@main.command("octodns-config")
@click.pass_obj
@reports_errors
def octodns_config_command(repo: Path) -> None:
    """Print an octoDNS config for the portfolio (zone files as sources, each client's provider
    as target), for octoDNS's own tools: `octodns-validate --config-file FILE`.
    """
    import yaml

    from pipeline.load.octodns_config import octodns_config
    from pipeline.load.portfolio import load_portfolio

    portfolio = load_portfolio(repo)  # zone files are octoDNS's to judge here
    click.echo(yaml.safe_dump(octodns_config(portfolio), sort_keys=True), nl=False)


@main.command("codeowners")
@click.option("--check", is_flag=True, help="Write nothing; exit 1 with a diff when out of date.")
@click.option(
    "--default-owner",
    default=DEFAULT_OWNER,
    show_default=True,
    help="The MSP-wide owner (@org/team or @user) of everything no client team owns.",
)
@click.pass_obj
@reports_errors
def codeowners_command(repo: Path, check: bool, default_owner: str) -> None:
    """Write .github/CODEOWNERS from the `team:` of each client profile, so that branch protection's
    code-owner review asks the client's team to review its zones and profile.

    \b
    Examples:
      dmarcops codeowners
      dmarcops codeowners --check
    """
    from pipeline.load.codeowners import (
        CODEOWNERS,
        codeowners_diff,
        committed_codeowners,
        generate_codeowners,
    )
    from pipeline.load.files import replace_text

    generated = generate_codeowners(repo, default_owner)
    committed = committed_codeowners(repo)
    if check:
        diff = codeowners_diff(committed, generated)
        if diff:
            click.echo("".join(diff), err=True, nl=False)
            raise InputError(
                f"{CODEOWNERS.as_posix()} is out of date with the client profiles",
                hint="Run `dmarcops codeowners` and commit .github/CODEOWNERS.",
            )
        click.echo(f"ok: {CODEOWNERS.as_posix()} is up to date")
        return
    path = repo / CODEOWNERS
    if committed == generated:
        click.echo(f"unchanged: {CODEOWNERS.as_posix()}")
        return
    # By rename: a CODEOWNERS committed as a link is replaced, never written through.
    replace_text(path, generated, root=repo)
    click.echo(f"wrote {CODEOWNERS.as_posix()}")


def _progress(done: int, total: int) -> None:
    click.echo(f"\rplanning zones: {done}/{total}", nl=done == total, err=True)


def _progress_if_many(done: int, total: int) -> None:
    # Only for 20 zones or more, and only to a terminal.
    if total >= 20 and sys.stderr.isatty():
        _progress(done, total)


def _report_changed(changed: ChangedZones, ref: str, at_most: int = 20) -> None:
    """On stderr, so that --format json stays one JSON object on stdout."""
    if changed.everything:
        why = next(iter(changed.reasons.values()), "")
        click.echo(f"planning every zone since {clean(ref)}: {clean(why)}", err=True)
    elif not changed.zones:
        click.echo(f"no zone changed since {clean(ref)}: nothing to plan", err=True)
    else:
        click.echo(f"planning {len(changed.zones)} zone(s) changed since {clean(ref)}:", err=True)
        for zone in changed.zones[:at_most]:
            click.echo(f"  {shown(zone)}: {clean(changed.reasons[zone])}", err=True)
        if len(changed.zones) > at_most:
            click.echo(f"  ... and {len(changed.zones) - at_most} more", err=True)
    for path in changed.removed:
        click.echo(
            click.style("warning: ", fg="yellow", bold=True)
            + f"removed zone file: {shown(str(path))}: the pipeline does not delete records of a removed "
            "zone automatically (remove them in the client's DNS by hand, under a change "
            "request, if that is intended)",
            err=True,
        )


def _write_plan(out: Path, text: str) -> None:
    from pipeline.load.files import write_output

    write_output(out, text, what="plan")


@main.command()
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "json", "markdown"]),
    default="text",
    show_default=True,
    help="text for people, json for machines (the contract in README.md), markdown for pull "
    "requests (the change-record draft).",
)
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also save the JSON plan to FILE.",
)
@click.option("--client", "clients", multiple=True, help="Plan only this client (repeatable).")
@click.option("--zone", "zones", multiple=True, help="Plan only this domain (repeatable).")
@click.option(
    "--nameserver",
    "nameservers",
    multiple=True,
    envvar="DMARCOPS_NAMESERVERS",
    help="Resolver for SPF lookup budgets and report authorisations, HOST[:PORT] (repeatable; "
    "env DMARCOPS_NAMESERVERS, comma-separated). Default: policy/settings.yaml.",
)
@click.option(
    "--at",
    "at",
    type=click.DateTime(formats=AT_FORMATS),
    help="Plan as if it were this UTC time (freezes and schedules are judged then).",
)
@click.option("--concurrency", type=click.IntRange(1, 64), help="Zones planned at once.")
@click.option(
    "--changed-since",
    "changed_since",
    metavar="REF",
    help="Plan only the zones whose zone file, client profile or change request changed since "
    "the git revision REF (git diff REF...HEAD plus uncommitted and untracked files); every zone "
    "when the risk rules, senders, providers or settings changed.",
)
@click.pass_context
@reports_errors
def plan(
    ctx: click.Context,
    fmt: str,
    out: Path | None,
    clients: tuple[str, ...],
    zones: tuple[str, ...],
    nameservers: tuple[str, ...],
    at: datetime | None,
    concurrency: int | None,
    changed_since: str | None,
) -> None:
    """Diff the zone files against live DNS (through each client's octoDNS provider) and show every
    change to an owned record: what it means, its risk level with the rules that set it, and the
    validation findings. Exit 0 when planned, 1 on bad input or a zone that could not be read,
    2 when the desired state has validation errors.

    \b
    Examples:
      dmarcops plan
      dmarcops plan --zone fabrikam.example --format markdown
      dmarcops plan --nameserver 127.0.0.1:5353 --format json --out plan.json
      dmarcops plan --changed-since origin/main
    """
    repo: Path = ctx.obj
    at_utc = at.replace(tzinfo=UTC) if at else None
    changed: ChangedZones | None = None
    if changed_since is not None:
        # What changed, with git and the light imports only: when the plan would be empty
        # (pipeline/commands/noop_plan.py says when), print it without loading the portfolio.
        from pipeline.commands.noop_plan import nothing_to_plan, render_empty
        from pipeline.plan.changes import changed_paths, zones_for_paths

        paths = changed_paths(repo, changed_since)
        changed = zones_for_paths(repo, paths)
        if not clients and not zones and nothing_to_plan(repo, paths, changed):
            read_nameservers(nameservers)  # a bad --nameserver is refused on either path
            _report_changed(changed, changed_since)
            click.echo(render_empty(fmt, at_utc, color=True), nl=False)
            if out is not None:
                _write_plan(out, render_empty("json", at_utc, color=False))
            return

    _configure_logging(bool(ctx.meta.get(_VERBOSE)))
    from pipeline import api

    report = api.plan(
        repo,
        clients=clients,
        zones=zones,
        nameservers=nameservers,
        at=at_utc,
        concurrency=concurrency,
        changed_since=changed if changed is not None else changed_since,
        progress=_progress_if_many,
        on_zone_problem=lambda problem: echo_error(str(problem)),
        on_selected=lambda changed: _report_changed(changed, changed_since or ""),
    )
    # Coloured for a terminal; click.echo drops the colours elsewhere, as before.
    click.echo(api.render(report, fmt, color=True), nl=False)  # type: ignore[arg-type]
    if out is not None:
        _write_plan(out, api.render(report, "json"))
    for failed in report.failed_zones:
        if failed.zone in report.broken_zones:
            continue  # its zone-file problems were printed with their lines above
        click.echo(
            click.style("error: ", fg="red", bold=True)
            # The error can quote the provider's or a file's text: escaped (text/safe.py).
            + f"{shown(failed.zone)}: could not read live DNS through {shown(failed.provider)}: "
            + clean(failed.error),
            err=True,
        )
    if report.failed_zones:
        sys.exit(EXIT_INPUT)
    for refusal in report.refusals:
        click.echo(click.style("refused: ", fg="red", bold=True) + refusal, err=True)
    if report.refusals:
        sys.exit(EXIT_GATE)


if __name__ == "__main__":
    main()
