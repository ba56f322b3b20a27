"""`dmarcops keygen | approve | new | sign-request | requests check|sign | evidence add`: thin
click functions over pipeline.gate.

Register them on the main group with `register(main)`. Exit codes as everywhere: 0 done, 1 bad
input (file and line named), 2 a gate refused (no request, self-review, missing approvals).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import click

from pipeline import clock
from pipeline.clock import read_only_time
from pipeline.commands.common import (
    AT_FORMATS,
    command_time,
    nameserver_option,
    nameservers_from,
    reports_errors,
)
from pipeline.errors import GateRefused, InputError
from pipeline.gate import decide
from pipeline.gate.approvals import (
    PlanFile,
    SignedApprovalFiles,
    generate_key,
    load_plan_file,
    sign,
    utc_text,
    write_approval,
)
from pipeline.gate.authoring import new_request, next_request_id, sign_request
from pipeline.gate.coverage import cover, describe
from pipeline.gate.evidence import DnsFunc, dns_txt, parse_mail, store_eml, verify_dkim
from pipeline.gate.identity import load_signer
from pipeline.gate.request_loader import collect_requests, templates_for
from pipeline.gate.requests import (
    PROMPT,
    REQUEST_ID,
    ChangeRequest,
    request_path,
    signature_refusal,
)
from pipeline.gate.roster import Roster
from pipeline.load.portfolio import Portfolio
from pipeline.load.request_files import REQUESTS_DIR, Selector, client_domains
from pipeline.records.policy_of_record import portfolio_of_record, roster_of_record
from pipeline.records.store import RecordStore
from pipeline.text.safe import clean, shown

F = TypeVar("F", bound=Callable[..., Any])


def _error(text: str) -> None:
    click.echo(click.style("error: ", fg="red", bold=True) + text, err=True)


def _find_request(requests: list[ChangeRequest], request_id: str) -> ChangeRequest:
    for request in requests:
        if request.id == request_id:
            return request
    raise InputError(
        f"no change request {request_id!r}",
        hint=f"Requests in {REQUESTS_DIR}/: {', '.join(r.id for r in requests) or 'none'}.",
    )


def _show_decision(decision: decide.Decision) -> None:
    for link in decision.evidence:
        click.echo(f"    present: {clean(str(link))}")
    for line in decision.missing:
        # Indented entries say why an offered approval does not fill the link above them.
        shown_line = clean(line.strip())
        click.echo(f"      {shown_line}" if line.startswith(" ") else f"    missing: {shown_line}")
    if decision.ok:
        for line in decision.ignored:
            click.echo(f"    not counted: {clean(line)}")


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
    decision = _review(portfolio, plan, request, items, [*history, approval], roster, when.now)
    click.echo(
        f"  {shown(request.id)} is {'fully approved' if decision.ok else 'not yet approved'}"
    )
    _show_decision(decision)


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


def _review(
    portfolio: Portfolio,
    plan: PlanFile,
    request: ChangeRequest,
    items: Any,
    approvals: list[Any],
    roster: Roster,
    now: datetime,
    dnsfunc: DnsFunc | None = None,
) -> decide.Decision:
    return decide.decide(
        request,
        items,
        approvals,
        decide.context(
            portfolio,
            request.client,
            decide.Stage.REVIEW,
            now,
            plan.plan_hash,
            roster,
            dnsfunc=dnsfunc,
        ),
    )


def _list_templates(repo: Path) -> None:
    templates, problems = templates_for(repo)
    if problems:
        raise problems[0]
    for template in templates:
        aliases = f" (also: {', '.join(template.aliases)})" if template.aliases else ""
        click.echo(f"{template.id}{aliases}: {shown(template.title)}")
        click.echo(f"  routes through: {clean(template.routing)}")
        fields = [name for name, _ in template.fields] + [
            f"details.{d.name}" + ("" if d.format == "text" else f" ({d.format})")
            for d in template.details
            if d.required
        ]
        click.echo(f"  requires: {', '.join(['rationale', 'evidence', *fields])}")
        if template.may_change is not None:
            kinds = ", ".join(sorted(k.value for k in template.may_change))
            click.echo(f"  may change: {kinds}")


@click.command("new")
@click.argument("type_name", metavar="TYPE", required=False)
@click.option(
    "--list",
    "list_only",
    is_flag=True,
    help="List the ticket templates (policy/templates/) with what each requires, and stop.",
)
@click.option("--client", help="Client id (policy/clients/<client>.yaml).")
@click.option(
    "--cover",
    "covers",
    multiple=True,
    help="Which changes the request covers: 'ZONE', 'ZONE NAME' or 'ZONE NAME TYPE' "
    "(@ for the apex; repeatable).",
)
@click.option("--author", help="Your roster id.")
@click.option("--id", "request_id", help="Request id. Default: CR-<next number>-<client>.")
@click.option("--rollback-of", help="For emergency-rollback: the change record number.")
@click.option(
    "--key",
    "key_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Your private key: sign the request as written (only useful with no prompts left, as "
    "for an emergency-rollback with --rollback-of; otherwise sign after editing).",
)
@click.pass_obj
@reports_errors
def new(
    repo: Path,
    type_name: str | None,
    list_only: bool,
    client: str | None,
    covers: tuple[str, ...],
    author: str | None,
    request_id: str | None,
    rollback_of: str | None,
    key_file: Path | None,
) -> None:
    """Write a change request from the ticket template TYPE under changes/requests/. The
    templates are data, one file each in policy/templates/ (new-sender or sender,
    policy-progression, dkim-rotation, emergency-rollback, other, and any the MSP adds; `--list`
    shows them). Replace every <<...>> prompt before committing it: a request that still holds
    one is refused.

    \b
    Examples:
      dmarcops new --list
      dmarcops new new-sender --client fabrikam-labs --cover 'fabrikam.example @ TXT' \\
          --author jchen --id CR-0007-fabrikam-sendgrid
      dmarcops new policy-progression --client northwind-health \\
          --cover 'northwind-health.example _dmarc TXT' --author mhara
    """
    if list_only:
        _list_templates(repo)
        return
    missing = [
        name
        for name, value in (("TYPE", type_name), ("--client", client), ("--author", author))
        if not value
    ] + ([] if covers else ["--cover"])
    if missing:
        raise click.UsageError(f"missing {', '.join(missing)} (or --list to see the templates)")
    assert type_name is not None and client is not None and author is not None
    templates, problems = templates_for(repo)
    if problems:
        raise problems[0]
    template = templates.get(type_name)
    if not (repo / "policy" / "clients" / f"{client}.yaml").exists():
        known = sorted(p.stem for p in (repo / "policy" / "clients").glob("*.yaml"))
        raise InputError(f"no client {client!r}", hint=f"Clients: {', '.join(known) or 'none'}.")
    roster: Roster = roster_of_record(repo)
    if author not in roster:
        raise InputError(
            f"{author!r} is not on the analyst roster",
            file=roster.file,
            hint=f"Roster ids: {', '.join(roster.ids)}.",
        )
    # The key is checked before anything is written: --author must be its owner.
    signer = load_signer(key_file, roster, author) if key_file is not None else None
    domains = client_domains(repo, client) or []
    for text in covers:
        selector = Selector.parse(text)
        if selector is None:
            raise InputError(
                f"cannot read --cover {text!r}",
                hint="Write 'ZONE', 'ZONE NAME' or 'ZONE NAME TYPE', e.g. "
                "'fabrikam.example _dmarc TXT' (@ for the apex).",
            )
        if selector.zone not in domains:
            raise InputError(
                f"{selector.zone} is not a domain of client {client!r}",
                hint=f"{client}'s domains: {', '.join(domains) or 'none'}.",
            )
    if rollback_of is not None and not re.match(r"^[0-9]{4}-[0-9]{4,}$", rollback_of):
        raise InputError(
            f"{rollback_of!r} is not a change record number", hint="Write it as 2026-1247."
        )
    request_id = request_id or next_request_id(repo, client)
    if not REQUEST_ID.match(request_id):
        raise InputError(
            f"{request_id!r} is not a change request id",
            hint="Use CR-<number>-<words>, e.g. CR-0007-fabrikam-sendgrid.",
        )
    text = new_request(template, client, covers, author, rollback_of=rollback_of)
    path = request_path(repo, request_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with path.open("x", encoding="utf-8") as out:
            out.write(text)
    except FileExistsError:
        raise InputError(
            "a change request with this id already exists",
            file=path,
            hint="Edit it, or choose another --id (without --id the next free number is used).",
        ) from None
    prompts = len(PROMPT.findall(text))
    if signer is not None and prompts == 0:
        signed = sign_request(repo, request_id, signer, clock.system_now())
        click.echo(f"wrote {path.relative_to(repo)} and {signed.file.relative_to(repo)}")
        return
    click.echo(
        f"wrote {path.relative_to(repo)}: replace its {prompts} <<...>> prompts, sign it with "
        f"`dmarcops sign-request {request_id} --key YOUR-KEY`, then run `dmarcops requests check`"
    )


def _sign(repo: Path, request_id: str, key_file: Path, analyst_id: str | None) -> None:
    roster = roster_of_record(repo)
    signer = load_signer(key_file, roster, analyst_id)
    signed = sign_request(repo, request_id, signer, clock.system_now())
    click.echo(
        f"signed: {request_id} by {signed.signer} at {utc_text(signed.signed_at)}, content "
        f"sha256:{signed.request_sha256}"
    )
    click.echo(f"  wrote {signed.file.relative_to(repo)}")


_SIGN_HELP = """Sign a change request as its author: writes changes/requests/<ID>.sig.json, an
Ed25519 signature over the request's content hash (SHA-256 of its canonical content: comments and
layout do not matter, every field does). The key's owner must be the request's `author:`. An
unsigned request, or one edited after signing, does not count; approvals bind the same hash, so
signing an edited request asks its reviewers to approve again.

\b
Example:
  dmarcops sign-request CR-0007-fabrikam-sendgrid --key ~/.config/dmarcops/jchen.pem
"""


@click.command("sign-request", help=_SIGN_HELP)
@click.argument("request_id", metavar="ID")
@click.option(
    "--key",
    "key_file",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Your private key (from `dmarcops keygen`, or an OpenSSH ed25519 key on the roster).",
)
@click.option("--as", "analyst_id", help="Your roster id (checked against the key's owner).")
@click.pass_obj
@reports_errors
def sign_request_command(
    repo: Path, request_id: str, key_file: Path, analyst_id: str | None
) -> None:
    _sign(repo, request_id, key_file, analyst_id)


@click.group("requests")
def requests_group() -> None:
    """Change requests under changes/requests/: one per change, with a real rationale, signed by
    its author."""


# `requests sign` is `sign-request` under the group, with the same options and callback.
requests_group.add_command(
    click.Command(
        "sign",
        callback=sign_request_command.callback,
        params=sign_request_command.params,
        help=_SIGN_HELP.replace("dmarcops sign-request", "dmarcops requests sign"),
    )
)


@requests_group.command("check")
@click.option(
    "--plan",
    "plan_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also show which request covers each change of this JSON plan and each request's "
    "approvals: present and missing.",
)
@nameserver_option("Resolver for the DKIM keys of client approval e-mails, HOST[:PORT].")
@click.pass_obj
@reports_errors
def check(repo: Path, plan_file: Path | None, nameservers: tuple[str, ...]) -> None:
    """Validate every change request (schema, rationale, template prompts, client, author) and
    its author's signature. With --plan: every change must be covered by exactly one request of
    a fitting ticket template, and each request's approval chain is shown. Exit 1 on a bad
    request, 2 when a request is unsigned or changed after signing, a change has no request (or
    two) or a request lacks approvals it needs.

    \b
    Examples:
      dmarcops requests check
      dmarcops plan --out plan.json && dmarcops requests check --plan plan.json
    """
    roster = roster_of_record(repo)
    requests, problems = collect_requests(repo, roster)
    if problems:
        for problem in problems[:-1]:  # in file and line order, the last one raised
            _error(str(problem))
        raise problems[-1]
    unsigned = [r for r in (signature_refusal(q, roster) for q in requests) if r is not None]
    if plan_file is None:
        if unsigned:
            for refusal in unsigned[:-1]:
                click.echo(click.style("refused: ", fg="red", bold=True) + str(refusal), err=True)
            raise unsigned[-1]
        click.echo(f"ok: {len(requests)} change request(s), each signed by its author")
        return
    plan = load_plan_file(plan_file)
    dnsfunc = dns_txt(nameservers_from(nameservers, 5.0))
    refusals = _show_plan_status(repo, plan, requests, roster, portfolio_of_record(repo), dnsfunc)
    if refusals:
        for refusal in refusals[:-1]:
            click.echo(click.style("refused: ", fg="red", bold=True) + str(refusal), err=True)
        raise refusals[-1]


def _show_plan_status(
    repo: Path,
    plan: PlanFile,
    requests: list[ChangeRequest],
    roster: Roster,
    portfolio: Portfolio,
    dnsfunc: DnsFunc,
) -> list[GateRefused]:
    coverage = cover(plan.changes, requests)
    source = SignedApprovalFiles(repo)
    refusals: list[GateRefused] = []
    click.echo(
        f"Plan {plan.plan_hash[:16]}: {len(plan.changes)} change(s), "
        f"{len(coverage.requests)} change request(s)"
    )
    unapproved: list[str] = []
    now = read_only_time(None).now
    for request in coverage.requests:
        decision = _review(
            portfolio,
            plan,
            request,
            coverage.items_of(request.id),
            source.history(request.id),
            roster,
            now,
            dnsfunc,
        )
        status = "approved" if decision.ok else "NOT APPROVED"
        click.echo(
            f"\n{shown(request.id)} ({request.type.value}, {shown(request.client)}, "
            f"author {shown(request.author)}): "
            f"risk {decision.risk.label}, {status}"
        )
        for item in coverage.items_of(request.id):
            click.echo(
                f"    covers: {clean(describe(item))} {item.action} (risk {item.risk.label})"
            )
        _show_decision(decision)
        if not decision.ok:
            unapproved.append(request.id)
    if unapproved:
        refusals.append(
            GateRefused(
                f"not approved for plan {plan.plan_hash[:16]}: {', '.join(unapproved)} "
                "(see `missing:` above)",
                hint="Silence is never approval: each missing link must be present before apply.",
            )
        )
    try:
        coverage.check()
    except GateRefused as exc:
        refusals.append(exc)
    if not refusals:
        click.echo(f"\nok: every change is covered and approved for plan {plan.plan_hash[:16]}")
    return refusals


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
        raise GateRefused(
            f"stored {relative}, but its signature does not hold: {why}",
            file=eml,
            hint="Ask the client to send the approval again from their own mail system, and "
            "store that mail as received (a forwarded copy breaks the signature).",
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
