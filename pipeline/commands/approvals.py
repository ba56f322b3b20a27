"""`dmarcops keygen | approve | evidence add`: thin click functions over pipeline.gate.

Register them on the main group with `register(main)`, which also registers the change request
commands (`new | sign-request | requests check|sign`, pipeline.commands.requests). Exit codes as everywhere: 0 done, 1 bad
input (file and line named), 2 a gate refused (no request, self-review, missing approvals).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import click

from pipeline.commands.common import (
    AT_FORMATS,
    command_time,
    nameserver_option,
    nameservers_from,
    reports_errors,
)
from pipeline.commands.requests import (
    new,
    requests_group,
    review_decision,
    show_decision,
    sign_request_command,
)
from pipeline.errors import GateRefused, InputError
from pipeline.gate import decide
from pipeline.gate.approvals import (
    SignedApprovalFiles,
    load_plan_file,
    sign,
    utc_text,
    write_approval,
)
from pipeline.gate.coverage import cover, describe
from pipeline.gate.evidence import dns_txt, parse_mail, store_eml, verify_dkim
from pipeline.gate.identity import generate_key, load_signer
from pipeline.gate.request_loader import collect_requests
from pipeline.gate.requests import (
    ChangeRequest,
    signature_refusal,
)
from pipeline.load.request_files import REQUESTS_DIR
from pipeline.records.policy_of_record import portfolio_of_record, roster_of_record
from pipeline.records.store import RecordStore
from pipeline.text.safe import shown

F = TypeVar("F", bound=Callable[..., Any])


def _find_request(requests: list[ChangeRequest], request_id: str) -> ChangeRequest:
    for request in requests:
        if request.id == request_id:
            return request
    raise InputError(
        f"no change request {request_id!r}",
        hint=f"Requests in {REQUESTS_DIR}/: {', '.join(r.id for r in requests) or 'none'}.",
    )


@click.command()
@click.option(
    "--out",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Where to write the private key (PKCS8 PEM, mode 0600). Keep it out of the repository.",
)
@reports_errors
def keygen(out: Path) -> None:
    """Create an Ed25519 key for signing approvals and print its public key, which goes into your
    entry in policy/roster.yaml (`public_key:`). The private key never enters the repository.

    \b
    Example:
      dmarcops keygen --out ~/.config/dmarcops/mhara.pem
    """
    public = generate_key(out)
    click.echo(public)
    click.echo(
        f"wrote {out} (keep it private); put the line above into your roster entry as public_key",
        err=True,
    )


@click.command()
@click.option(
    "--plan",
    "plan_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="The JSON plan you reviewed (`dmarcops plan --out plan.json`). Not for a platform or "
    "dkim-switch request, whose manual plan is made from the request (`dmarcops manual show`).",
)
@click.option("--request", "request_id", required=True, help="The change request you approve.")
@nameserver_option("Resolver to follow a CNAME'd DKIM selector (dkim-switch), HOST[:PORT].")
@click.option(
    "--as",
    "analyst_id",
    help="Your roster id (optional: who approves is the owner of --key; if given, it must match).",
)
@click.option(
    "--key",
    "key_file",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Your private key (from `dmarcops keygen`); its owner in the roster is the approver.",
)
@click.option(
    "--at",
    type=click.DateTime(formats=AT_FORMATS),
    metavar="UTC-TIME",
    envvar="DMARCOPS_NOW",
    help="Approval time, UTC (env DMARCOPS_NOW): only for a plan whose clients are all on the "
    "sandbox (the approval is marked simulated). Default and otherwise: the system clock.",
)
@click.pass_obj
@reports_errors
def approve(
    repo: Path,
    plan_file: Path | None,
    request_id: str,
    nameservers: tuple[str, ...],
    analyst_id: str | None,
    key_file: Path,
    at: datetime | None,
) -> None:
    """Sign your approval of one change request as planned in the plan file: it counts for that
    plan hash and that request content only, so any later change to the plan or an edit of the
    request needs a new approval. You cannot approve a medium or high change you authored (seed:
    "Can the analyst peer-review their own change? No."), nor a request its author has not signed.
    Writes changes/approvals/<plan_hash>/<request>--<you>.json and shows what is still missing.

    \b
    Example:
      dmarcops plan --out plan.json
      dmarcops approve --plan plan.json --request CR-0007-fabrikam-sendgrid \\
          --key ~/.config/dmarcops/mhara.pem
      dmarcops approve --request CR-0009-fabrikam-labs --key ~/.config/dmarcops/mhara.pem
    """
    if plan_file is None:
        _approve_manual(repo, request_id, analyst_id, key_file, at, nameservers)
        return
    plan = load_plan_file(plan_file)
    roster = roster_of_record(repo)
    # Who approves is the owner of the key that signs; --as only has to agree.
    signer = load_signer(key_file, roster, claimed=analyst_id)
    requests, problems = collect_requests(repo, roster)
    for problem in problems:
        if problem.file is not None and problem.file.stem == request_id:
            raise problem  # the request itself is not valid yet
    request = _find_request(requests, request_id)
    refusal = signature_refusal(request, roster)
    if refusal is not None:
        raise refusal  # approving content its author has not vouched for proves nothing
    portfolio = portfolio_of_record(repo)
    clients = {str(c.client) for c in plan.changes if c.client}  # policy items: no client
    when = command_time(at, "approve", portfolio, clients)
    # As plan and apply do: an executed request's `covers:` no longer claims later changes.
    done = {r.request_id for r in RecordStore(repo / "changes").all() if r.executed_at is not None}
    coverage = cover(plan.changes, [r for r in requests if r.id not in done])
    items = coverage.items_of(request.id)
    if not items:
        claimed = [describe(i) for i, rs in coverage.conflicts if request in rs]
        raise GateRefused(
            f"{request.id} covers no change of plan {plan.plan_hash[:16]}"
            + (
                f" on its own (shared with another request: {', '.join(claimed)})"
                if claimed
                else ""
            ),
            file=request.file,
            line=request.line_of("covers"),
            hint="Check its `covers:` selectors against the plan's changes (ZONE NAME TYPE).",
        )
    misfits = [reason for _, r, reason in coverage.misfits if r.id == request.id]
    if misfits:
        raise GateRefused(
            f"{request.id} covers changes outside its ticket template: {'; '.join(misfits)}",
            file=request.file,
            line=request.line_of("type"),
            hint="File those changes under a request of the right type (docs/evidence.md).",
        )
    history = SignedApprovalFiles(repo).history(request.id)
    asked = decide.decide(
        request,
        items,
        history,
        decide.context(
            portfolio,
            request.client,
            decide.Stage.APPROVE,
            when.now,
            plan.plan_hash,
            roster,
            approver=signer.analyst,
        ),
    )
    refusals = [p for p in decide.refused(asked)]
    if refusals:
        raise GateRefused(
            f"{signer.analyst} may not approve {request.id} ({asked.risk.label} risk): "
            + "; ".join(str(p) for p in refusals),
            file=request.file,
            line=request.line_of("author"),
            hint="Ask another analyst on the roster to review the plan and run `dmarcops approve` "
            '(seed: "a self-review preserves all the same blind spots").',
        )
    approval = sign(
        signer,
        plan.plan_hash,
        request.id,
        signer.analyst,
        when.now,
        request.sha256,
        simulated=when.simulated,
    )
    path = write_approval(repo, approval)
    click.echo(
        f"approved: {request.id} ({len(items)} change(s), risk {asked.risk.label}) in plan "
        f"{plan.plan_hash[:16]} by {signer.analyst} at {utc_text(approval.approved_at)}"
        f"{when.label}"
    )
    click.echo(f"  wrote {path.relative_to(repo) if path.is_relative_to(repo) else path}")
    decision = review_decision(
        portfolio, plan, request, items, [*history, approval], roster, when.now
    )
    click.echo(
        f"  {shown(request.id)} is {'fully approved' if decision.ok else 'not yet approved'}"
    )
    show_decision(decision)


def _approve_manual(
    repo: Path,
    request_id: str,
    analyst_id: str | None,
    key_file: Path,
    at: datetime | None,
    nameservers: tuple[str, ...],
) -> None:
    """A platform or dkim-switch request: the approval binds its manual plan's hash."""
    from pipeline.commands.manual import manual_request, show_decision
    from pipeline.gate import manual as manual_changes

    roster = roster_of_record(repo)
    signer = load_signer(key_file, roster, claimed=analyst_id)
    try:
        request = manual_request(repo, request_id)
    except InputError as exc:
        if "changes DNS records" in exc.message:
            raise InputError(
                f"{request_id} changes DNS records: approve it as planned",
                hint="dmarcops plan --out plan.json, then dmarcops approve --plan plan.json "
                f"--request {request_id} --key YOUR-KEY",
            ) from None
        raise
    portfolio = portfolio_of_record(repo)
    when = command_time(at, "approve", portfolio, [request.client])
    plan = manual_changes.manual_plan(
        portfolio, request, when.now, nameservers_from(nameservers, portfolio.settings.timeout)
    )
    approval, decision = manual_changes.approve(
        portfolio, plan, signer, when.now, roster, when.simulated
    )
    click.echo(
        f"approved: {request.id} ({request.type.value}, risk {decision.risk.label}) in manual "
        f"plan {plan.plan_hash[:16]} by {signer.analyst} at {utc_text(approval.approved_at)}"
        f"{when.label}"
    )
    click.echo(
        f"  {shown(request.id)} is {'fully approved' if decision.ok else 'not yet approved'}"
    )
    show_decision(decision)


@click.group("evidence")
def evidence_group() -> None:
    """Evidence sealed by hash under changes/evidence/: the client's approving e-mail."""


@evidence_group.command("add")
@click.argument("eml", type=click.Path(dir_okay=False, path_type=Path))
@nameserver_option("Resolver for the DKIM key of the mail's signing domain, HOST[:PORT].")
@click.pass_obj
@reports_errors
def evidence_add(repo: Path, eml: Path, nameservers: tuple[str, ...]) -> None:
    """Store the client's approving e-mail (.eml, as received, headers included) as
    changes/evidence/<sha256>.eml, verify its DKIM signature against DNS, and print the
    `client_approval:` block to put into the request (then the author signs the request again).
    Exit 1 when the mail is not one readable message; 2 when its DKIM signature fails.

    \b
    Example:
      dmarcops evidence add ~/Downloads/approval.eml
    """
    relative = store_eml(repo, eml)
    mail = parse_mail((repo / relative).read_bytes(), relative)
    status, why = verify_dkim(mail, dns_txt(nameservers_from(nameservers, 5.0)))
    if why is not None:
        # A key that could not be read is no sign of a bad mail: resending would not help.
        unread = "cannot be checked" in why and "does not verify" not in why
        raise GateRefused(
            f"stored {relative}, but its signature does not hold: {why}",
            file=eml,
            hint=(
                "Its signing domain's key could not be read from DNS: check the resolver "
                "(--nameserver, or policy/settings.yaml) and that the domain publishes the key "
                "of the selector its signature names, then run this again."
                if unread
                else "Ask the client to send the approval again from their own mail system, "
                "and store that mail as received (a forwarded copy breaks the signature)."
            ),
        )
    click.echo(f"stored {relative} (DKIM: {status})")
    at = (
        mail.date.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        if mail.date
        else "<<the approval's time, UTC>>"
    )
    click.echo("client_approval:")
    click.echo(f'  approver: "{mail.from_address}"')
    click.echo(f'  at: "{at}"')
    click.echo(f'  reference: "{mail.message_id or "<<the ticket id>>"}"')
    click.echo(f'  eml: "{relative}"')


COMMANDS: tuple[click.Command, ...] = (
    keygen,
    approve,
    new,
    sign_request_command,
    requests_group,
    evidence_group,
)


def register(group: click.Group) -> None:
    for command in COMMANDS:
        group.add_command(command)
