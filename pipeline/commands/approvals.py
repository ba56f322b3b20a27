"""`dmarcops keygen | approve | new | requests check`: thin click functions over pipeline.gate.

Register them on the main group with `register(main)`. Exit codes as everywhere: 0 done, 1 bad
input (file and line named), 2 a gate refused (no request, self-review, missing approvals).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import click

from pipeline.commands.common import AT_FORMATS, now_from, reports_errors
from pipeline.errors import GateRefused, InputError
from pipeline.gate.approvals import (
    ApprovalDecision,
    PlanFile,
    SignedApprovalFiles,
    evaluate,
    generate_key,
    load_plan_file,
    load_private_key,
    public_key_text,
    sign,
    utc_text,
    write_approval,
)
from pipeline.gate.requests import (
    PROMPT,
    REQUEST_ID,
    REQUESTS_DIR,
    ChangeRequest,
    Coverage,
    RequestType,
    Selector,
    check_requested_risk,
    client_domains,
    collect_requests,
    cover,
    describe,
    new_request,
    next_request_id,
    request_path,
)
from pipeline.gate.roster import Roster, load_roster
from pipeline.load.portfolio import ClientProfile, load_portfolio
from pipeline.model import RiskLevel
from pipeline.render.safe import clean, shown

F = TypeVar("F", bound=Callable[..., Any])
TYPE_NAMES = [t.value for t in RequestType] + ["sender"]


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


def _request_risk(coverage: Coverage[Any], request: ChangeRequest) -> RiskLevel:
    computed = coverage.risk_of(request.id)
    assert computed is not None  # callers pass requests that cover items
    return check_requested_risk(request, computed)


def _show_decision(decision: ApprovalDecision) -> None:
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
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="The JSON plan you reviewed (`dmarcops plan --out plan.json`).",
)
@click.option("--request", "request_id", required=True, help="The change request you approve.")
@click.option("--as", "analyst_id", required=True, help="Your roster id.")
@click.option(
    "--key",
    "key_file",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Your private key (from `dmarcops keygen`).",
)
@click.option(
    "--at",
    type=click.DateTime(formats=AT_FORMATS),
    metavar="UTC-TIME",
    envvar="DMARCOPS_NOW",
    help="Approval time, UTC (env DMARCOPS_NOW). Default: now.",
)
@click.pass_obj
@reports_errors
def approve(
    repo: Path,
    plan_file: Path,
    request_id: str,
    analyst_id: str,
    key_file: Path,
    at: datetime | None,
) -> None:
    """Sign your approval of one change request as planned in the plan file: it counts for that plan hash
    only, so any later change to the plan needs a new approval. You cannot approve a medium or
    high change you authored (seed: "Can the analyst peer-review their own change? No.").
    Writes changes/approvals/<plan_hash>/<request>--<you>.json and shows what is still missing.

    \b
    Example:
      dmarcops plan --out plan.json
      dmarcops approve --plan plan.json --request CR-0007-fabrikam-sendgrid \\
          --as mhara --key ~/.config/dmarcops/mhara.pem
    """
    plan = load_plan_file(plan_file)
    roster = load_roster(repo)
    requests, problems = collect_requests(repo, roster)
    for problem in problems:
        if problem.file is not None and problem.file.stem == request_id:
            raise problem  # the request itself is not valid yet
    request = _find_request(requests, request_id)
    analyst = roster.get(analyst_id)
    if analyst is None:
        raise InputError(
            f"{analyst_id!r} is not on the analyst roster",
            file=roster.file,
            hint=f"Roster ids: {', '.join(roster.ids)}.",
        )
    coverage = cover(plan.changes, requests)
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
    risk = _request_risk(coverage, request)
    if analyst.id == request.author and risk > RiskLevel.LOW:
        raise GateRefused(
            f"{analyst.id} wrote {request.id}, a {risk.label}-risk change: the author cannot "
            "review it",
            file=request.file,
            line=request.line_of("author"),
            hint="Ask another analyst on the roster to review the plan and run `dmarcops approve` "
            '(seed: "a self-review preserves all the same blind spots").',
        )
    key = load_private_key(key_file)
    if public_key_text(key) != analyst.public_key:
        raise InputError(
            f"this key is not {analyst.id}'s: its public key is not the one in the roster",
            file=key_file,
            hint=f"Use your own key, or update public_key of {analyst.id} in {roster.file.name} "
            "in a reviewed change.",
        )
    approval = sign(key, plan.plan_hash, request.id, analyst.id, now_from(at))
    path = write_approval(repo, approval)
    click.echo(
        f"approved: {request.id} ({len(items)} change(s), risk {risk.label}) in plan "
        f"{plan.plan_hash[:16]} by {analyst.id} at {utc_text(approval.approved_at)}"
    )
    click.echo(f"  wrote {path.relative_to(repo) if path.is_relative_to(repo) else path}")
    client = load_portfolio(repo).clients[request.client]
    decision = evaluate(
        risk, request, plan.plan_hash, SignedApprovalFiles(repo).history(request.id), roster, client
    )
    click.echo(
        f"  {shown(request.id)} is {'fully approved' if decision.ok else 'not yet approved'}"
    )
    _show_decision(decision)


@click.command("new")
@click.argument("type_name", metavar="TYPE", type=click.Choice(TYPE_NAMES))
@click.option("--client", required=True, help="Client id (policy/clients/<client>.yaml).")
@click.option(
    "--cover",
    "covers",
    multiple=True,
    required=True,
    help="Which changes the request covers: 'ZONE', 'ZONE NAME' or 'ZONE NAME TYPE' "
    "(@ for the apex; repeatable).",
)
@click.option("--author", required=True, help="Your roster id.")
@click.option("--id", "request_id", help="Request id. Default: CR-<next number>-<client>.")
@click.option("--rollback-of", help="For emergency-rollback: the change record number.")
@click.pass_obj
@reports_errors
def new(
    repo: Path,
    type_name: str,
    client: str,
    covers: tuple[str, ...],
    author: str,
    request_id: str | None,
    rollback_of: str | None,
) -> None:
    """Write a change request from the seed's ticket template for TYPE (new-sender,
    policy-progression, dkim-rotation, emergency-rollback, other) under changes/requests/.
    Replace every <<...>> prompt before committing it: a request that still holds one is refused.

    \b
    Examples:
      dmarcops new new-sender --client fabrikam-labs --cover 'fabrikam.example @ TXT' \\
          --author jchen --id CR-0007-fabrikam-sendgrid
      dmarcops new policy-progression --client northwind-health \\
          --cover 'northwind-health.example _dmarc TXT' --author mhara
    """
    if not (repo / "policy" / "clients" / f"{client}.yaml").exists():
        known = sorted(p.stem for p in (repo / "policy" / "clients").glob("*.yaml"))
        raise InputError(f"no client {client!r}", hint=f"Clients: {', '.join(known) or 'none'}.")
    roster: Roster = load_roster(repo)
    if author not in roster:
        raise InputError(
            f"{author!r} is not on the analyst roster",
            file=roster.file,
            hint=f"Roster ids: {', '.join(roster.ids)}.",
        )
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
    text = new_request(
        RequestType.parse(type_name), client, covers, author, rollback_of=rollback_of
    )
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
    click.echo(
        f"wrote {path.relative_to(repo)}: replace its {prompts} <<...>> prompts, then run "
        "`dmarcops requests check`"
    )


@click.group("requests")
def requests_group() -> None:
    """Change requests under changes/requests/: one per change, with a real rationale."""


@requests_group.command("check")
@click.option(
    "--plan",
    "plan_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also show which request covers each change of this JSON plan and each request's "
    "approvals: present and missing.",
)
@click.pass_obj
@reports_errors
def check(repo: Path, plan_file: Path | None) -> None:
    """Validate every change request (schema, rationale, template prompts, client, author).
    With --plan: every change must be covered by exactly one request, and each request's approval
    chain is shown. Exit 1 on a bad request, 2 when a change has no request (or two) or a request
    lacks approvals it needs.

    \b
    Examples:
      dmarcops requests check
      dmarcops plan --out plan.json && dmarcops requests check --plan plan.json
    """
    roster = load_roster(repo)
    requests, problems = collect_requests(repo, roster)
    if problems:
        for problem in problems[:-1]:  # in file and line order, the last one raised
            _error(str(problem))
        raise problems[-1]
    if plan_file is None:
        click.echo(f"ok: {len(requests)} change request(s)")
        return
    plan = load_plan_file(plan_file)
    clients = load_portfolio(repo).clients
    refusals = _show_plan_status(repo, plan, requests, roster, clients)
    if refusals:
        for refusal in refusals[:-1]:
            click.echo(click.style("refused: ", fg="red", bold=True) + str(refusal), err=True)
        raise refusals[-1]


def _show_plan_status(
    repo: Path,
    plan: PlanFile,
    requests: list[ChangeRequest],
    roster: Roster,
    clients: Mapping[str, ClientProfile],
) -> list[GateRefused]:
    coverage = cover(plan.changes, requests)
    source = SignedApprovalFiles(repo)
    refusals: list[GateRefused] = []
    click.echo(
        f"Plan {plan.plan_hash[:16]}: {len(plan.changes)} change(s), "
        f"{len(coverage.requests)} change request(s)"
    )
    unapproved: list[str] = []
    for request in coverage.requests:
        try:
            risk = _request_risk(coverage, request)
        except GateRefused as exc:
            refusals.append(exc)
            risk = coverage.risk_of(request.id) or RiskLevel.HIGH
        decision = evaluate(
            risk,
            request,
            plan.plan_hash,
            source.history(request.id),
            roster,
            clients[request.client],
        )
        status = "approved" if decision.ok else "NOT APPROVED"
        click.echo(
            f"\n{shown(request.id)} ({request.type.value}, {shown(request.client)}, "
            f"author {shown(request.author)}): "
            f"risk {risk.label}, {status}"
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


COMMANDS: tuple[click.Command, ...] = (keygen, approve, new, requests_group)


def register(group: click.Group) -> None:
    for command in COMMANDS:
        group.add_command(command)
