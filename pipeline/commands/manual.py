"""`dmarcops manual show|apply|verify`: the lifecycle of platform and dkim-switch requests
(pipeline.gate.manual). Approval is `dmarcops approve --request ID` (no --plan), closing is
`dmarcops close RECORD`, as for any change."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import click

from pipeline.apply import manual as manual_execution
from pipeline.commands.common import (
    at_option,
    command_time,
    key_option,
    nameserver_option,
    nameservers_from,
    now_from,
    reports_errors,
    signer_for,
)
from pipeline.errors import GateRefused, InputError
from pipeline.gate import decide
from pipeline.gate import manual as manual_changes
from pipeline.gate.approvals import SignedApprovalFiles
from pipeline.gate.request_loader import collect_requests
from pipeline.gate.requests import ChangeRequest, signature_refusal
from pipeline.load.portfolio import Portfolio
from pipeline.records import ChangeRecord, RecordStore
from pipeline.records.policy_of_record import portfolio_of_record, roster_of_record
from pipeline.text.safe import clean, shown


def manual_request(repo: Path, request_id: str) -> ChangeRequest:
    """The request, valid and signed by its author, and of a manual type."""
    roster = roster_of_record(repo)
    requests, problems = collect_requests(repo, roster)
    for problem in problems:
        if problem.file is not None and problem.file.stem == request_id:
            raise problem
    request = next((r for r in requests if r.id == request_id), None)
    if request is None:
        raise InputError(
            f"no change request {request_id!r}",
            hint=f"Requests: {', '.join(r.id for r in requests) or 'none'}.",
        )
    if not request.type.manual:
        raise InputError(
            f"{request.id} is a {request.type.value} request: it changes DNS records",
            file=request.file,
            hint="Plan it (`dmarcops plan --out plan.json`) and approve it with --plan.",
        )
    refusal = signature_refusal(request, roster)
    if refusal is not None:
        raise refusal
    return request


def show_decision(decision: decide.Decision) -> None:
    for link in decision.evidence:
        click.echo(f"    present: {clean(str(link))}")
    for line in decision.missing:
        click.echo(f"    missing: {clean(line.strip())}")


def _show_plan(plan: manual_changes.ManualPlan) -> None:
    request = plan.request
    click.echo(
        f"{shown(request.id)} ({request.type.value}, {shown(request.client)}, author "
        f"{shown(request.author)}): manual plan {plan.plan_hash[:16]}"
    )
    for item in plan.items:
        click.echo(f"  ~ {shown(item.fqdn)} {item.type}  risk: {item.risk.label.upper()}")
        click.echo(f"      - {clean(' | '.join(item.before))}")
        click.echo(f"      + {clean(' | '.join(item.after))}")
        click.echo("      changes: " + clean("; ".join(str(f) for f in item.facts)))
        for reason in item.reasons:
            click.echo(f"      why {clean(reason)}")
    for (domain, selector), (ok, detail) in sorted(plan.checks.items()):
        state = "published and valid" if ok else "NOT USABLE"
        click.echo(f"  live DNS: {selector}._domainkey.{domain}: {state}: {clean(detail)}")
    click.echo("  steps:")
    for n, step in enumerate(request.steps, 1):
        click.echo(f"    {n}. {clean(step)}")
    click.echo("  checklist (after the steps):")
    for n, check in enumerate(request.checklist, 1):
        click.echo(f"    {n}. {clean(check)}")


def _plan(
    repo: Path, request_id: str, now: datetime, nameservers: tuple[str, ...]
) -> tuple[Portfolio, manual_changes.ManualPlan]:
    request = manual_request(repo, request_id)
    portfolio = portfolio_of_record(repo)
    ns = nameservers_from(nameservers, portfolio.settings.timeout)
    return portfolio, manual_changes.manual_plan(portfolio, request, now, ns)


@click.group("manual")
def manual_group() -> None:
    """Changes that are not DNS record edits: `platform` (a tenant-level setting at a mail
    platform) and `dkim-switch` (the provider signs with another published selector). Same
    lifecycle as a DNS change: request, `dmarcops approve --request ID`, `manual apply`, the
    steps by hand, `manual verify`, `close` (docs/drift.md)."""


@manual_group.command("show")
@click.argument("request_id", metavar="REQUEST")
@nameserver_option("Resolver to follow a CNAME'd DKIM selector, HOST[:PORT].")
@at_option("Judge as if it were this UTC time.")
@click.pass_obj
@reports_errors
def show_command(
    repo: Path, request_id: str, nameservers: tuple[str, ...], at: datetime | None
) -> None:
    """Show REQUEST's manual plan: what changes per domain, its risk and why, the steps and the
    checklist, for a dkim-switch the new selector as live DNS serves it, and the approvals
    present and missing. Exit 0 when the one gate would let it run now (bar the clock), 2 when
    it would refuse."""
    now = now_from(at)
    portfolio, plan = _plan(repo, request_id, now, nameservers)
    _show_plan(plan)
    roster = roster_of_record(repo)
    approvals = SignedApprovalFiles(repo).approvals_for(plan.plan_hash, plan.request.id)
    decision = manual_changes.judge(portfolio, plan, decide.Stage.REVIEW, now, roster, approvals)
    click.echo(f"  risk {decision.risk.label}: {'approved' if decision.ok else 'NOT APPROVED'}")
    show_decision(decision)
    if not decision.ok:
        raise GateRefused(
            f"{plan.request.id} may not run yet: " + "; ".join(decision.missing),
            hint="`dmarcops approve --request ID --key KEY` by a peer; see the missing links.",
        )


@manual_group.command("apply")
@click.argument("request_id", metavar="REQUEST")
@key_option("Your private key: you execute the manual steps, and it signs the record.")
@click.option("--as", "by", help="Your roster id (optional: checked against the owner of --key).")
@nameserver_option("Resolver to follow a CNAME'd DKIM selector, HOST[:PORT].")
@at_option("Only for the sandbox (rehearsals, marked simulated); otherwise the system clock.")
@click.pass_obj
@reports_errors
def apply_command(
    repo: Path,
    request_id: str,
    key_file: Path,
    by: str | None,
    nameservers: tuple[str, ...],
    at: datetime | None,
) -> None:
    """Ask the one gate whether REQUEST may be carried out now (approvals, window, freeze,
    tier, for a dkim-switch the new selector in live DNS); if so, open its change record with
    the steps and the checklist pending, and print them. Then do the steps by hand and record
    each check with `dmarcops manual verify RECORD`. Refused: exit 2, nothing recorded, and the
    steps must not be done.

    \b
    Example:
      dmarcops manual apply CR-0009-fabrikam-labs --key ~/.config/dmarcops/jchen.pem
    """
    request = manual_request(repo, request_id)
    portfolio = portfolio_of_record(repo)
    when = command_time(at, "manual apply", portfolio, [request.client])
    signer = signer_for(repo, key_file, by)
    ns = nameservers_from(nameservers, portfolio.settings.timeout)
    plan = manual_changes.manual_plan(portfolio, request, when.now, ns)
    record = manual_execution.execute(
        portfolio, plan, signer, when.now, roster_of_record(repo), when.simulated
    )
    _report(record, when.label)
    click.echo(
        f"  now carry out the steps, then: dmarcops manual verify {record.id} --pass 1 ... "
        "--key YOUR-KEY (or --fail N --note TEXT)"
    )


def _report(record: ChangeRecord, label: str = "") -> None:
    manual = record.manual
    assert manual is not None
    click.echo(
        f"change record {record.id}: {shown(record.client)} {shown(record.request_id)} "
        f"({record.risk.label} risk, {record.change_type.value}) executed "
        f"{record.executed_at:%Y-%m-%d %H:%M} UTC by {shown(record.executed_by)}{label}"
    )
    click.echo("  steps:")
    for n, step in enumerate(manual.steps, 1):
        click.echo(f"    {n}. {clean(step)}")
    click.echo("  checklist:")
    for n, check in enumerate(manual.checklist, 1):
        note = f": {clean(check.note)}" if check.note else ""
        click.echo(f"    {n}. [{check.status}] {clean(check.item)}{note}")
    click.echo(f"  rollback window until {record.rollback_window.end:%Y-%m-%d %H:%M} UTC")


@manual_group.command("verify")
@click.argument("record_id", metavar="RECORD")
@click.option("--pass", "passed", type=int, multiple=True, help="A checklist line that held.")
@click.option("--fail", "failed", type=int, multiple=True, help="A checklist line that did not.")
@click.option("--note", default="", help="What you saw (a message id, a header, an error).")
@key_option("Your private key: it signs the record's update.")
@click.option("--as", "by", help="Your roster id (optional: checked against the owner of --key).")
@at_option("Only for the sandbox (rehearsals, marked simulated); otherwise the system clock.")
@click.pass_obj
@reports_errors
def verify_command(
    repo: Path,
    record_id: str,
    passed: tuple[int, ...],
    failed: tuple[int, ...],
    note: str,
    key_file: Path,
    by: str | None,
    at: datetime | None,
) -> None:
    """Record the checklist of a manual change's record: lines that held (--pass N) and lines
    that did not (--fail N), with a note. When every line has held, the record counts as applied
    and verified, and is closed after its rollback window like any clean record. A failed line
    is a reason to roll the setting back by hand and close the record as failed."""
    if not passed and not failed:
        raise InputError("say which checklist lines held (--pass N) or failed (--fail N)")
    if set(passed) & set(failed):
        raise InputError("a checklist line cannot both pass and fail")
    store = RecordStore(repo / "changes")
    record = store.get(record_id)
    when = command_time(at, "manual verify", portfolio_of_record(repo), [record.client])
    signer = signer_for(repo, key_file, by)
    results = {n: ("verified", note) for n in passed} | {n: ("failed", note) for n in failed}
    updated = manual_execution.verify(store, record_id, results, signer, when.now, when.simulated)
    _report(updated, when.label)
    assert updated.manual is not None
    if updated.manual.verified:
        click.echo(f"  every check held: {record_id} counts as applied and verified")


def register(group: click.Group) -> None:
    group.add_command(manual_group)
