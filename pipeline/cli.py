"""The `dmarcops` command: thin click functions over the library calls tests and other code use.

Exit codes (docs/exit-codes.md): 0 success, 1 error in input, environment or command-line usage,
2 a gate refused, 70 a bug (one line and a crash log; --debug for the traceback), 130 interrupted.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

import click
import yaml

from pipeline.apply.run import open_requests
from pipeline.commands.apply import register as register_apply_commands
from pipeline.commands.approvals import register as register_approval_commands
from pipeline.commands.calendar import register as register_calendar_commands
from pipeline.commands.common import (
    AT_FORMATS,
    DmarcopsGroup,
    nameservers_from,
    reports_errors,
    set_debug,
)
from pipeline.commands.drift import register as register_drift_commands
from pipeline.commands.github import register as register_github_commands
from pipeline.commands.loading import load_checked, load_plannable, templates_of_record
from pipeline.commands.manual import register as register_manual_commands
from pipeline.commands.records import register as register_records_commands
from pipeline.commands.reports import register as register_reports_commands
from pipeline.errors import EXIT_GATE, EXIT_INPUT, GateRefused, InputError
from pipeline.gate import decide
from pipeline.gate.coverage import cover
from pipeline.gate.request_loader import collect_requests
from pipeline.gate.requests import signature_refusal
from pipeline.gate.roster import load_roster
from pipeline.gate.windows import next_window
from pipeline.load.codeowners import (
    CODEOWNERS,
    DEFAULT_OWNER,
    codeowners_diff,
    committed_codeowners,
    generate_codeowners,
)
from pipeline.load.files import replace_text
from pipeline.load.octodns_config import octodns_config
from pipeline.load.portfolio import Portfolio, load_portfolio
from pipeline.load.yamlfile import load_yaml
from pipeline.model import RiskLevel, Severity
from pipeline.plan.build import PlanOptions, make_plan, offline_findings, select_zones
from pipeline.plan.changes import ChangedZones, zones_changed_since
from pipeline.plan.items import RequestRef
from pipeline.records import RecordStore
from pipeline.records.policy_of_record import (
    portfolio_of_record,
    roster_of_record,
)
from pipeline.render.json_plan import render_json
from pipeline.render.markdown import render_markdown
from pipeline.render.text import render_text
from pipeline.text.safe import clean, shown

F = TypeVar("F", bound=Callable[..., Any])


@click.group(
    cls=DmarcopsGroup,
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
    # octoDNS logs through the root logger; its warnings are for octoDNS operators, not analysts.
    logging.basicConfig(
        level=logging.INFO if verbose else logging.ERROR, format="%(name)s: %(message)s"
    )
    ctx.obj = repo.resolve()


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
    portfolio = load_checked(repo, of_record=False)  # the files as they are in the working tree
    errors = 0
    now = datetime.now(UTC)
    for zone_file in portfolio.zone_files:
        doc = load_yaml(zone_file.path)
        for finding in offline_findings(portfolio, zone_file, now):
            if finding.severity is Severity.INFO:
                continue
            errors += finding.severity is Severity.ERROR
            where = InputError("", file=zone_file.path, line=doc.line_of((finding.name,))).where
            label = click.style(
                f"{finding.severity.label}: ",
                fg="red" if finding.severity is Severity.ERROR else "yellow",
                bold=True,
            )
            click.echo(f"{label}{clean(where)}: {finding.code} {clean(finding.message)}", err=True)
    if errors:
        click.echo(
            click.style("refused: ", fg="red", bold=True)
            + f"{errors} record error(s): receivers would not apply these records as written; "
            "fix them before planning (docs/rules.md explains each code)",
            err=True,
        )
        sys.exit(EXIT_GATE)
    click.echo(
        f"ok: {len(portfolio.clients)} clients, {len(portfolio.zone_files)} zone files, "
        f"{len(portfolio.providers)} providers, {len(portfolio.rules.rules)} risk rules, "
        f"{sum(a.is_person for a in load_roster(repo).analysts)} analysts, "
        f"{len(collect_requests(repo, templates=templates_of_record(repo))[0])} change requests"
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
@click.pass_obj
@reports_errors
def plan(
    repo: Path,
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
    changed = zones_changed_since(repo, changed_since) if changed_since else None
    only = None if changed is None or changed.everything else list(changed.zones)
    # Zone files nobody touched were validated when they last changed (and `dmarcops validate`
    # still checks them all); a portfolio-wide change validates everything.
    # One broken zone file is reported and left out; the other zones are still planned (exit 1).
    portfolio, broken = load_plannable(repo, zones_only=only)
    for client in clients:
        if client not in portfolio.clients:
            raise InputError(
                f"no client {client!r}",
                hint=f"Clients: {', '.join(sorted(portfolio.clients))}.",
            )
    for zone in zones:
        if zone.rstrip(".").lower() not in {z.domain for z in portfolio.zone_files}:
            raise InputError(f"no zone file for {zone!r}", hint="See zones/<client>/<domain>.yaml.")
    options = PlanOptions(
        now=at.replace(tzinfo=UTC) if at else None,
        clients=clients,
        zones=zones,
        nameservers=nameservers_from(nameservers, portfolio.settings.timeout),
        concurrency=concurrency,
        changed_since=changed,
        broken_zones={domain: str(problem) for domain, problem in broken.items()},
    )
    if changed is not None and changed_since is not None:
        _report_changed(changed, changed_since)
    many = len(select_zones(portfolio, options)) >= 20
    show_progress = many and sys.stderr.isatty()
    requests = open_requests(repo, RecordStore(repo / "changes"))
    result = make_plan(portfolio, options, progress=_progress if show_progress else None)
    # A self-serve client's changes are recommendations (docs/drift.md): no request covers them,
    # and the one gate refuses to approve or apply them [self-serve-tier].
    advised = {z.client for z in result.zones if z.recommend_only}
    coverage = cover([i for i in result.items if i.client not in advised], requests)
    refs = {
        (item.zone, item.name, item.type): RequestRef(
            request.id, request.type.value, request.author, request.rationale
        )
        for item, request in coverage.covered
    }
    if fmt == "json":
        click.echo(render_json(result, refs), nl=False)
    elif fmt == "markdown":
        names = {c.id: c.name for c in portfolio.clients.values()}
        click.echo(render_markdown(result, names, refs), nl=False)
    else:
        click.echo(render_text(result, refs), nl=False)
    if out is not None:
        try:
            out.write_text(render_json(result, refs), encoding="utf-8")
        except OSError as exc:
            raise InputError(
                f"cannot write the plan: {exc.strerror or exc}",
                file=out,
                hint="Give --out a file in a directory that exists and that you may write.",
            ) from None
    for failed in result.failed_zones:
        if failed.zone in broken:
            continue  # its zone-file problems were printed with their lines above
        click.echo(
            click.style("error: ", fg="red", bold=True)
            # The error can quote the provider's or a file's text: escaped (text/safe.py).
            + f"{shown(failed.zone)}: could not read live DNS through {shown(failed.provider)}: "
            + clean(failed.error),
            err=True,
        )
    if result.failed_zones:
        sys.exit(EXIT_INPUT)
    refusals: list[str] = []
    if result.has_errors:
        refusals.append("the desired state has validation errors (see ERROR findings above)")
    try:
        coverage.check()
    except GateRefused as exc:
        refusals.append(str(exc))
    roster = roster_of_record(repo)
    for request in coverage.requests:
        decision = decide.decide(
            request,
            coverage.items_of(request.id),
            (),
            decide.context(
                portfolio,
                request.client,
                decide.Stage.PLAN,
                result.generated_at,
                result.hash,
                roster,
            ),
        )
        refusals += [f"{request.id}: {problem}" for problem in decide.refused(decision)]
    # A request its author has not signed (or edited since) covers nothing that can be approved.
    refusals += [
        str(refusal)
        for refusal in (signature_refusal(r, roster) for r in coverage.requests)
        if refusal is not None
    ]
    for refusal in refusals:
        click.echo(click.style("refused: ", fg="red", bold=True) + refusal, err=True)
    if refusals:
        sys.exit(EXIT_GATE)


register_approval_commands(main)
register_records_commands(main)
register_apply_commands(main)
register_github_commands(main)
register_reports_commands(main)
register_calendar_commands(main)
register_drift_commands(main)
register_manual_commands(main)
__import__("pipeline.commands.shard", fromlist=["register"]).register(main)  # dmarcops shard


if __name__ == "__main__":
    main()
