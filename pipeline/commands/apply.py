"""`dmarcops apply` and `dmarcops rollback`: thin click commands over pipeline.apply."""

from __future__ import annotations

import sys
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import ParamSpec, TypeVar

import click

from pipeline.apply.rollback import RollbackOptions, roll_back
from pipeline.apply.run import ApplyOptions, run_apply
from pipeline.commands.common import (
    at_option,
    command_time,
    key_option,
    nameserver_option,
    nameservers_from,
    reports_errors,
    signer_for,
)
from pipeline.errors import EXIT_INPUT, DmarcopsError, InputError
from pipeline.gate.approvals import load_plan_file
from pipeline.live.dns import Nameservers
from pipeline.records import ChangeRecord, RecordStore, ZoneStatus
from pipeline.records.policy_of_record import portfolio_of_record
from pipeline.text.safe import clean, shown

P = ParamSpec("P")
R = TypeVar("R")


def _nameservers(values: tuple[str, ...]) -> Nameservers | None:
    return nameservers_from(values, 3.0)


def _report(record: ChangeRecord) -> bool:
    ok = True
    click.echo(
        f"change record {record.id}: {shown(record.client)} {shown(record.request_id)} "
        f"({record.risk.label} risk) executed {record.executed_at:%Y-%m-%d %H:%M} UTC"
        if record.executed_at
        else f"change record {record.id}: not executed"
    )
    for zone in record.zone_results:
        total = sum(1 for i in record.items if i.zone == zone.zone)
        line = f"  {shown(zone.zone)}: {zone.status.value}, {zone.applied}/{total} verified"
        if zone.error:
            line += f" ({clean(zone.error)})"
        ok = ok and zone.status is ZoneStatus.APPLIED and zone.applied == total
        click.echo(line)
    click.echo(f"  rollback window until {record.rollback_window.end:%Y-%m-%d %H:%M} UTC")
    if record.emergency:
        click.echo(
            f"  emergency: post-hoc review due {record.emergency.review_due:%Y-%m-%d %H:%M} UTC"
        )
    return ok


_OPTIONS = [
    key_option("Your private key: who executes is its owner, and it signs the ledger."),
    click.option(
        "--as",
        "by",
        help="Your roster id (optional: checked against the owner of --key).",
    ),
    at_option("Only for the sandbox (rehearsals, marked simulated): applies use the system clock."),
    nameserver_option("Resolver for SPF budgets when re-planning, HOST[:PORT]."),
    click.option(
        "--wait",
        "wait_seconds",
        type=float,
        default=0.0,
        show_default=True,
        help="Seconds to wait for another apply of the same client to finish.",
    ),
    click.option(
        "--verify-timeout",
        type=float,
        default=10.0,
        show_default=True,
        help="Seconds to keep asking the authoritative servers for the new values.",
    ),
]


def _with_options(func: Callable[P, R]) -> Callable[P, R]:
    for option in reversed(_OPTIONS):
        func = option(func)
    return func


@click.command()
@click.option(
    "--plan",
    "plan_path",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="The approved JSON plan (dmarcops plan --out).",
)
@click.option(
    "--emergency",
    is_flag=True,
    help="Skip the window and the approval wait (logged, reviewed within 24 h).",
)
@click.option("--reason", default="", help="Why it is an emergency (required with --emergency).")
@click.option(
    "--incident",
    default="",
    help="A declared incident's reference (e.g. INC-2041): needed for an emergency that does "
    "more than de-escalate or restore.",
)
@_with_options
@reports_errors
def apply(
    plan_path: Path,
    emergency: bool,
    reason: str,
    incident: str,
    key_file: Path,
    by: str | None,
    at: datetime | None,
    nameservers: tuple[str, ...],
    wait_seconds: float,
    verify_timeout: float,
) -> None:
    """Apply an approved plan: check requests, approvals and the window; lock the client; plan
    again and refuse if anything moved since approval; apply zone by zone; verify against the
    authoritative servers; write a numbered change record per request.

    \b
    Examples:
      dmarcops apply --plan plan.json --key ~/.config/dmarcops/jchen.pem
      dmarcops apply --plan plan.json --key ~/.config/dmarcops/jchen.pem --emergency \\
          --reason "p=reject bouncing payroll mail"
    """
    if emergency and len(reason.strip()) < 10:
        raise InputError(
            "--emergency needs --reason saying what is breaking now",
            hint="Seed: the emergency that wasn't an emergency erodes the policy; say why.",
        )
    repo: Path = click.get_current_context().obj
    portfolio = portfolio_of_record(repo)
    # Policy items (pending edits under policy/) belong to no client.
    clients = {c.client for c in load_plan_file(plan_path).changes if c.client}
    when = command_time(at, "apply", portfolio, clients)
    signer = signer_for(repo, key_file, by)
    records = run_apply(
        portfolio,
        ApplyOptions(
            plan_file=plan_path,
            by=signer.analyst,
            now=when.now,
            emergency_reason=reason.strip() if emergency else "",
            incident=incident.strip() if emergency else "",
            wait_seconds=wait_seconds,
            nameservers=_nameservers(nameservers),
            verify_timeout=verify_timeout,
            clock=(lambda: when.now) if when.simulated else None,
            simulated=when.simulated,
            signer=signer,
        ),
    )
    ok = all([_report(r) for r in records])
    if not ok:
        click.echo("error: some zones were not applied or not verified; see the records", err=True)
        sys.exit(EXIT_INPUT)


@click.command()
@click.argument("record_id")
@click.option(
    "--reason", required=True, help="What is breaking: the emergency the rollback answers."
)
@click.option(
    "--notified",
    default="the client's authorised approvers",
    show_default=True,
    help="Who was told about the rollback.",
)
@click.option(
    "--force",
    is_flag=True,
    help="Roll back even though live DNS moved on after the record (later changes are undone too).",
)
@_with_options
@reports_errors
def rollback(
    record_id: str,
    reason: str,
    notified: str,
    force: bool,
    key_file: Path,
    by: str | None,
    at: datetime | None,
    nameservers: tuple[str, ...],
    wait_seconds: float,
    verify_timeout: float,
) -> None:
    """Roll back change record RECORD_ID: restore its before-state in the zone files, file an
    emergency-rollback request that references it, plan and apply it as an emergency, and link the
    two records both ways.

    \b
    Example:
      dmarcops rollback 2026-0007 --key ~/.config/dmarcops/jchen.pem \\
          --reason "legitimate payroll mail rejected since 09:40"
    """
    repo: Path = click.get_current_context().obj
    portfolio = portfolio_of_record(repo)
    when = command_time(at, "rollback", portfolio, _record_clients(repo, record_id))
    # Who rolls back is the owner of the key; --as only has to agree.
    signer = signer_for(repo, key_file, by)
    records = roll_back(
        portfolio,
        RollbackOptions(
            record_id=record_id,
            by=signer.analyst,
            reason=reason,
            notified=notified,
            now=when.now,
            nameservers=_nameservers(nameservers),
            wait_seconds=wait_seconds,
            verify_timeout=verify_timeout,
            clock=(lambda: when.now) if when.simulated else None,
            force=force,
            simulated=when.simulated,
            signer=signer,
        ),
    )
    click.echo(
        f"restored the before-state of {record_id} in zones/ and filed its emergency request"
    )
    ok = all([_report(r) for r in records])
    if not ok:
        sys.exit(EXIT_INPUT)


def _record_clients(repo: Path, record_id: str) -> set[str]:
    """The client of the record a rollback restores (an unknown id is reported by roll_back)."""
    try:
        return {RecordStore(repo / "changes").get(record_id).client}
    except DmarcopsError:
        return set()


@click.command()
@key_option("Your private key: the records you finish are signed with it.")
@click.option("--as", "by", help="Your roster id (optional: checked against the key's owner).")
@click.option(
    "--wait",
    "wait_seconds",
    type=float,
    default=0.0,
    show_default=True,
    help="Seconds to wait for an apply of the same client to finish.",
)
@reports_errors
def recover(key_file: Path, by: str | None, wait_seconds: float) -> None:
    """Finish the change records of an interrupted apply from its journal (changes/journal/):
    check live DNS for the zones it had sent, record each item as observed, mark the records
    recovered and remove the journal. Apply refuses to start until this has run.

    \b
    Example:
      dmarcops recover --key ~/.config/dmarcops/jchen.pem
    """
    from pipeline.apply.recover import recover_all
    from pipeline.clock import system_now

    repo: Path = click.get_current_context().obj
    # The recovery is signed into every record it finishes: by the owner of the key.
    signer = signer_for(repo, key_file, by)
    count = 0
    for done in recover_all(
        portfolio_of_record(repo), signer=signer, now=system_now(), wait_seconds=wait_seconds
    ):
        count += 1
        click.echo(f"recovered apply journal {shown(done.journal)}: {clean(done.detail)}")
        for record in done.records:
            _report(record)
    if not count:
        click.echo("nothing to recover: no interrupted apply left a journal")


def register(group: click.Group) -> None:
    group.add_command(apply)
    group.add_command(rollback)
    group.add_command(recover)
