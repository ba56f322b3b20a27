"""The `dmarcops` command: thin click functions over the library calls tests and other code use.

Exit codes (docs/exit-codes.md): 0 success, 1 error in input, environment or command-line usage,
2 a gate refused, 70 a bug (one line and a crash log; --debug for the traceback), 130 interrupted.
"""

from __future__ import annotations

import importlib
import logging
import sys
from collections.abc import Callable, Iterator, Mapping, MutableMapping
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from pipeline.commands.common import (
    AT_FORMATS,
    DmarcopsGroup,
    reports_errors,
    set_debug,
)
from pipeline.errors import EXIT_GATE, EXIT_INPUT, GateRefused, InputError
from pipeline.load.codeowners import DEFAULT_OWNER
from pipeline.model import Severity
from pipeline.text.safe import clean, shown

if TYPE_CHECKING:
    from pipeline.load.portfolio import Portfolio
    from pipeline.plan.changes import ChangedZones

# Each command imports what it needs when it runs: `dmarcops --help` and the start of every
# command must not pay for octoDNS, dnspython, jsonschema, boto3 or cryptography
# (tests/test_imports.py; benchmarks/README.md has the figures).
F = TypeVar("F", bound=Callable[..., Any])

# The commands other modules define (pipeline/commands/<module>.py, each with a `register`):
# name -> (module, the start of its help: enough for the listing, which shows at most 80
# characters). The module is imported when the command runs; `dmarcops --help` lists the
# commands from this table without importing any of them.
# tests/test_imports.py checks the table against the modules' commands.
LAZY_COMMANDS: dict[str, tuple[str, str]] = {
    "apply": (
        "apply",
        "Apply an approved plan: check requests, approvals and the window; lock the client; plan again and refuse",
    ),
    "approve": (
        "approvals",
        "Sign your approval of one change request as planned in the plan file: it counts for that plan hash and",
    ),
    "audit": ("records", "Check the audit trail (changes/ledger.jsonl and changes/records/)."),
    "calendar": (
        "calendar",
        "Print the change calendar: per client, its change windows, freezes and blackouts in the range, its scheduled",
    ),
    "close": (
        "records",
        "Log the outcome of a change and seal its record: it is never edited again; a follow-up is a new record",
    ),
    "drift": (
        "drift",
        "Compare live DNS with the zone files and the last change records, and report every owned record someone",
    ),
    "evidence": (
        "approvals",
        "Evidence sealed by hash under changes/evidence/: the client's approving e-mail.",
    ),
    "github": (
        "github",
        "Run inside GitHub Actions: the privileged gate (`gate`, on workflow_run), the merge and scheduled runs,",
    ),
    "init": (
        "records",
        "Seal the policy of record: every file under policy/ (roster included) as it is now becomes the first,",
    ),
    "keygen": (
        "approvals",
        "Create an Ed25519 key for signing approvals and print its public key, which goes into your entry in policy/roster.yaml",
    ),
    "manual": (
        "manual",
        "Changes that are not DNS record edits: `platform` (a tenant-level setting at a mail platform) and `dkim-switch`",
    ),
    "new": (
        "approvals",
        "Write a change request from the ticket template TYPE under changes/requests/.",
    ),
    "policy": ("records", "The policy of record: what is sealed, what waits for a lead's seal."),
    "recommend": (
        "drift",
        "The recommendations for self-serve clients: what the MSP would change in their records (the zone file",
    ),
    "records": (
        "records",
        "Show and search change records (changes/records/): by client, domain, analyst, risk, date.",
    ),
    "recover": (
        "apply",
        "Finish the change records of an interrupted apply from its journal (changes/journal/): check live DNS",
    ),
    "reports": ("reports", "DMARC aggregate reports: ingest them, and read pass rates from them."),
    "requests": (
        "approvals",
        "Change requests under changes/requests/: one per change, with a real rationale, signed by its author.",
    ),
    "review": (
        "records",
        "Record the post-hoc review of an emergency change (due within 24 hours of it; a later one is recorded",
    ),
    "reviews": ("records", "Post-hoc reviews of emergency changes."),
    "rollback": (
        "apply",
        "Roll back change record RECORD_ID: restore its before-state in the zone files, file an emergency-rollback",
    ),
    "sign-request": (
        "approvals",
        "Sign a change request as its author: writes changes/requests/<ID>.sig.json, an Ed25519 signature over",
    ),
    "shard": (
        "shard",
        "Plan a large portfolio in client shards over a CI matrix, then merge the shard plans into",
    ),
}


class LazyCommands(MutableMapping[str, click.Command]):
    """A group's commands, with those of LAZY_COMMANDS imported on first use (by name, or all of
    them when a name is unknown, so that a command missing from the table still runs)."""

    def __init__(self, group: click.Group, table: Mapping[str, tuple[str, str]]) -> None:
        self._group = group
        self._loaded: dict[str, click.Command] = {}
        self._lazy = dict(table)

    def _load(self, module: str) -> None:
        for name in [n for n, (m, _) in self._lazy.items() if m == module]:
            del self._lazy[name]
        importlib.import_module(f"pipeline.commands.{module}").register(self._group)

    def load_all(self) -> None:
        for module in sorted({m for m, _ in self._lazy.values()}):
            self._load(module)

    def summary(self, name: str) -> str | None:
        """The table's summary of a command not imported yet; None once it is."""
        entry = self._lazy.get(name)
        return entry[1] if entry is not None else None

    def __getitem__(self, name: str) -> click.Command:
        if name not in self._loaded and name in self._lazy:
            self._load(self._lazy[name][0])
        return self._loaded[name]

    def __setitem__(self, name: str, command: click.Command) -> None:
        self._loaded[name] = command
        self._lazy.pop(name, None)

    def __delitem__(self, name: str) -> None:
        self._lazy.pop(name, None)
        self._loaded.pop(name, None)

    def __contains__(self, name: object) -> bool:
        return name in self._loaded or name in self._lazy

    def __iter__(self) -> Iterator[str]:
        return iter(sorted({*self._loaded, *self._lazy}))

    def __len__(self) -> int:
        return len({*self._loaded, *self._lazy})


class LazyGroup(DmarcopsGroup):
    """The root group, its sub-commands imported when used (LAZY_COMMANDS)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.commands = LazyCommands(self, LAZY_COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        found = super().get_command(ctx, cmd_name)
        if found is None and isinstance(self.commands, LazyCommands):
            self.commands.load_all()  # a command the table does not list yet
            found = super().get_command(ctx, cmd_name)
        return found

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """click's listing, with the table's summary for each command not imported."""
        commands = self.commands
        rows: list[tuple[str, click.Command]] = []
        for name in self.list_commands(ctx):
            summary = commands.summary(name) if isinstance(commands, LazyCommands) else None
            command = click.Command(name, help=summary) if summary is not None else commands[name]
            if not command.hidden:
                rows.append((name, command))
        if rows:
            limit = formatter.width - 6 - max(len(name) for name, _ in rows)
            with formatter.section("Commands"):
                formatter.write_dl([(name, c.get_short_help_str(limit)) for name, c in rows])


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
    from pipeline import api

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
    from pipeline import api

    report = api.plan(
        repo,
        clients=clients,
        zones=zones,
        nameservers=nameservers,
        at=at.replace(tzinfo=UTC) if at else None,
        concurrency=concurrency,
        changed_since=changed_since,
        progress=_progress_if_many,
        on_selected=lambda changed: _report_changed(changed, changed_since or ""),
    )
    # Coloured for a terminal; click.echo drops the colours elsewhere, as before.
    click.echo(api.render(report, fmt, color=True), nl=False)  # type: ignore[arg-type]
    if out is not None:
        try:
            out.write_text(api.render(report, "json"), encoding="utf-8")
        except OSError as exc:
            raise InputError(
                f"cannot write the plan: {exc.strerror or exc}",
                file=out,
                hint="Give --out a file in a directory that exists and that you may write.",
            ) from None
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
