"""`dmarcops new | sign-request | requests check|sign`: change requests from a ticket template to
a signed request that covers the plan; thin click functions over pipeline.gate.

Registered with the approval commands (pipeline.commands.approvals `register`), which show a
request's decision the same way (`show_decision`).
"""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path
from typing import Any

import click

from pipeline import clock
from pipeline.clock import read_only_time
from pipeline.commands.common import (
    echo_error,
    nameserver_option,
    nameservers_from,
    parse_selector,
    reports_errors,
)
from pipeline.commands.loading import templates_of_record
from pipeline.errors import GateRefused, InputError
from pipeline.gate import decide
from pipeline.gate.approvals import (
    PlanFile,
    SignedApprovalFiles,
    load_plan_file,
    utc_text,
)
from pipeline.gate.authoring import new_request, next_request_id, sign_request
from pipeline.gate.coverage import cover, describe
from pipeline.gate.evidence import DnsFunc, dns_txt
from pipeline.gate.identity import load_signer
from pipeline.gate.request_loader import collect_requests
from pipeline.gate.requests import (
    PROMPT,
    REQUEST_ID,
    ChangeRequest,
    request_path,
    signature_refusal,
)
from pipeline.gate.roster import Roster
from pipeline.load.portfolio import Portfolio
from pipeline.load.request_files import client_domains
from pipeline.records.policy_of_record import portfolio_of_record, roster_of_record
from pipeline.text.safe import clean, shown


def show_decision(decision: decide.Decision) -> None:
    for link in decision.evidence:
        click.echo(f"    present: {clean(str(link))}")
    for line in decision.missing:
        # Indented entries say why an offered approval does not fill the link above them.
        shown_line = clean(line.strip())
        click.echo(f"      {shown_line}" if line.startswith(" ") else f"    missing: {shown_line}")
    if decision.ok:
        for line in decision.ignored:
            click.echo(f"    not counted: {clean(line)}")


def review_decision(
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
    templates, problems = templates_of_record(repo)
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
    templates, problems = templates_of_record(repo)
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
        selector = parse_selector(text, "--cover")
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
        signed = sign_request(repo, request_id, signer, clock.system_now(), roster)
        click.echo(f"wrote {path.relative_to(repo)} and {signed.file.relative_to(repo)}")
        return
    click.echo(
        f"wrote {path.relative_to(repo)}: replace its {prompts} <<...>> prompts, sign it with "
        f"`dmarcops sign-request {request_id} --key YOUR-KEY`, then run `dmarcops requests check`"
    )


def _sign(repo: Path, request_id: str, key_file: Path, analyst_id: str | None) -> None:
    roster = roster_of_record(repo)
    signer = load_signer(key_file, roster, analyst_id)
    signed = sign_request(repo, request_id, signer, clock.system_now(), roster)
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
            echo_error(str(problem))
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
        decision = review_decision(
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
        show_decision(decision)
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


# `requests sign` is `sign-request` under the group, with the same options and callback.
requests_group.add_command(
    click.Command(
        "sign",
        callback=sign_request_command.callback,
        params=sign_request_command.params,
        help=_SIGN_HELP.replace("dmarcops sign-request", "dmarcops requests sign"),
    )
)
