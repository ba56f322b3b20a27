"""`dmarcops github pr`: the pull-request gate, a thin click command over pipeline.github.pr.

Register the group on the main command with `register(main)`. Exit codes: 0 the gate is green,
2 it is red (the commit status says why), 1 bad input or a GitHub/environment problem.
"""

from __future__ import annotations

import contextlib
import os
import sys
from datetime import datetime
from pathlib import Path

import click

from pipeline.commands.common import (
    AT_FORMATS,
    at_option,
    command_time,
    nameserver_option,
    nameservers_from,
    reports_errors,
    signer_for,
)
from pipeline.errors import EXIT_GATE, EXIT_INPUT, DmarcopsError, GateRefused, InputError
from pipeline.gate.identity import Signer
from pipeline.github.api import GitHubClient
from pipeline.github.events import (
    WORKFLOW_RUN,
    PullRequestEvent,
    PushEvent,
    WorkflowRunEvent,
    read_event,
)
from pipeline.github.payloads import PullRequest
from pipeline.github.pr import PullRequestGateOptions, run_pull_request_gate
from pipeline.github.setup import GITHUB_ACTIONS_APP_ID
from pipeline.github.verdict import CHECK_NAME, STATUS_CONTEXT
from pipeline.load.files import exists, read_text, write_output
from pipeline.records.policy_of_record import portfolio_of_record
from pipeline.text.safe import clean, shown


def _run_url() -> str | None:
    server, repository, run = (
        os.environ.get(k) for k in ("GITHUB_SERVER_URL", "GITHUB_REPOSITORY", "GITHUB_RUN_ID")
    )
    return f"{server}/{repository}/actions/runs/{run}" if server and repository and run else None


def _path_from_env(name: str) -> Path | None:
    value = os.environ.get(name)
    return Path(value) if value else None


@click.group("github")
def github_group() -> None:
    """Run inside GitHub Actions: the privileged gate (`gate`, on workflow_run), the merge and
    scheduled runs, the branch-protection check (`check-setup`); `pr` is the older in-PR gate. Reads GITHUB_EVENT_NAME,
    GITHUB_EVENT_PATH, GITHUB_REPOSITORY, GITHUB_TOKEN, GITHUB_API_URL and GITHUB_STEP_SUMMARY as
    Actions sets them.
    """


@github_group.command("pr")
@click.option(
    "--zone",
    "zones",
    multiple=True,
    help="Plan this domain (repeatable) instead of the zones the pull request's diff touches.",
)
@click.option(
    "--base",
    "base_ref",
    help="Diff against this revision (`git diff BASE...HEAD`). Default: the event's base commit.",
)
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Save the JSON plan to FILE (upload it as the run's artifact).",
)
@click.option(
    "--at",
    type=click.DateTime(formats=AT_FORMATS),
    envvar="DMARCOPS_NOW",
    metavar="UTC-TIME",
    help="Plan as if it were this UTC time (env DMARCOPS_NOW). Default: now.",
)
@click.pass_obj
@reports_errors
def pr_command(
    repo: Path, zones: tuple[str, ...], base_ref: str | None, out: Path | None, at: datetime | None
) -> None:
    """Gate a pull request: plan the zones it touches, evaluate every change request's approval
    chain from the pull request's reviews of its head commit (and signed approval files), then
    post the change-record draft with an approval checklist as one pull request comment (edited on
    later runs), annotate validation findings on their zone file lines, append the draft to the job
    summary and set the commit status `dmarcops/approvals` on the head commit. Exit 0 when the gate
    is green, 2 when it is red, 1 on bad input or a GitHub problem.

    A review counts when it approves the current head commit, is not by the pull request's author
    and its login is on the analyst roster (policy/roster.yaml `github:`); a later "changes
    requested" by the same reviewer withdraws it.

    \b
    Example workflow step (on: pull_request and pull_request_review):
      - uses: actions/checkout@v4
        with: {fetch-depth: 0, ref: "${{ github.event.pull_request.head.sha }}"}
      - run: dmarcops github pr --out plan.json
        env: {GITHUB_TOKEN: "${{ github.token }}"}
    with permissions: contents: read, pull-requests: write, issues: write, statuses: write.
    """
    from pipeline.commands.loading import load_checked

    event = read_event()
    if not isinstance(event, PullRequestEvent):
        raise InputError(
            "`dmarcops github pr` gates pull_request and pull_request_review events, not push",
            hint="On push to the main branch the apply stage runs instead.",
        )
    api = GitHubClient.from_environment()
    try:
        portfolio = load_checked(repo)
        gated = run_pull_request_gate(
            portfolio,
            event,
            api,
            PullRequestGateOptions(
                zones=zones,
                base_ref=base_ref,
                now=command_time(at, "github pr", portfolio).now,
                out=out,
                step_summary=_path_from_env("GITHUB_STEP_SUMMARY"),
                target_url=_run_url(),
                workspace=_path_from_env("GITHUB_WORKSPACE"),
            ),
            click.echo,
        )
    except DmarcopsError as exc:
        # Leave no stale green behind: a run that could not gate says so on the head commit.
        state = "failure" if isinstance(exc, GateRefused) else "error"
        first = exc.message.splitlines()[0] if exc.message else type(exc).__name__
        with contextlib.suppress(DmarcopsError):  # the original problem is the one to report
            api.set_status(event.head_sha, state, STATUS_CONTEXT, f"not gated: {first}", _run_url())
        raise
    if not gated.green:
        for problem in gated.problems():
            click.echo(click.style("refused: ", fg="red", bold=True) + problem, err=True)
        sys.exit(EXIT_GATE)


def register(group: click.Group) -> None:
    group.add_command(github_group)


@github_group.command("merge")
@nameserver_option()
@at_option()
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also save the JSON plan to FILE (the run's artifact).",
)
@reports_errors
def merge_command(nameservers: tuple[str, ...], at: datetime | None, out: Path | None) -> None:
    """On a push to main: find the merged pull request, read its reviews, and apply the plan they
    approved when every client's window is open, or queue it (changes/pending/) for the scheduled
    run. Comments the outcome on the pull request. Exit 0 applied or queued, 2 refused, 1 failed.
    """
    from pipeline.github.merge import apply_merge, report

    event = read_event()
    if not isinstance(event, PushEvent):
        raise InputError("`dmarcops github merge` runs on push events")
    repo: Path = click.get_current_context().obj
    api = GitHubClient.from_environment()
    result = apply_merge(
        repo,
        api,
        event.before,
        event.after,
        command_time(at, "github merge", portfolio_of_record(repo)).now,
        nameservers_from(nameservers, 3.0),
        pusher=os.environ.get("GITHUB_ACTOR"),
        # Actions sets the numeric id beside the login; it survives a rename.
        pusher_id=int(os.environ["GITHUB_ACTOR_ID"])
        if os.environ.get("GITHUB_ACTOR_ID", "").isdigit()
        else None,
        signer=automation_signer(repo),
    )
    report(api, result)
    saved = repo / "changes" / "plans" / f"{result.plan_hash}.json"
    if out is not None and exists(saved):
        write_output(out, read_text(saved, root=repo, log=True), what="plan")
    click.echo(f"plan {result.plan_hash[:16]}: {clean(result.message)}")
    for record in result.records:
        click.echo(
            f"  change record {record.id}: "
            + ", ".join(f"{shown(z.zone)} {z.status.value}" for z in record.zone_results)
        )
    if any(z.status.value != "applied" for r in result.records for z in r.zone_results):
        sys.exit(1)


def automation_signer(repo: Path) -> Signer | None:
    """The automation's key (roster role `automation`), from the file DMARCOPS_SIGNING_KEY names:
    the workflow writes the repository secret to a file only the privileged job sees. None when
    unset: an apply then refuses and a finished record is left for a person to close."""
    path = os.environ.get("DMARCOPS_SIGNING_KEY", "")
    return signer_for(repo, Path(path)) if path else None


@github_group.command("scheduled")
@nameserver_option()
@at_option()
@reports_errors
def scheduled_command(nameservers: tuple[str, ...], at: datetime | None) -> None:
    """The scheduled run: apply queued changes whose window has opened (comment on their pull
    request); verify every applied, open record against the aggregate reports in the report store
    (`dmarcops reports verify`: what was received since the change against the baseline before
    it), and close as accepted the records whose rollback window ended with everything applied
    and verified and whose post-change reports say so. Never on silence: a record without that
    evidence stays open. Lists anomalies (rollback recommended) and the records a person must
    close.
    """
    from pipeline.github.merge import run_scheduled

    repo: Path = click.get_current_context().obj
    api = GitHubClient.from_environment() if os.environ.get("GITHUB_TOKEN") else None
    results, run = run_scheduled(
        repo,
        command_time(at, "github scheduled", portfolio_of_record(repo)).now,
        api,
        nameservers_from(nameservers, 3.0),
        automation_signer(repo),
    )
    for result in results:
        click.echo(f"plan {result.plan_hash[:16]}: {clean(result.message)}")
    for record_id, why in run.closed:
        click.echo(f"closed {record_id}: accepted on report evidence ({clean(why)})")
    for record_id, why in run.waiting:
        click.echo(f"stays open: {record_id} ({clean(why)})")
    for record_id, why in run.anomalies:
        click.echo(
            f"ANOMALY: {record_id}: {clean(why)}; rollback recommended "
            f"(dmarcops reports verify --record {record_id})"
        )
    for record_id, why in run.attention:
        click.echo(f"needs a person: {record_id} (rollback window over; {clean(why)})")


def _note_check_posted() -> None:
    """Tell gate.yml's fallback step that the verdict is on the commit (`check_posted=true` in
    $GITHUB_OUTPUT), so it does not post "could not run" over it."""
    output = _path_from_env("GITHUB_OUTPUT")
    if output is not None:
        with output.open("a", encoding="utf-8") as out:
            out.write("check_posted=true\n")


def _open_pull_request(api: GitHubClient, event: WorkflowRunEvent) -> PullRequest | None:
    """The open pull request whose head is the commit the plan run was for. The numbers come from
    GitHub's event (never from the plan run's artifacts); for a fork's pull request GitHub lists
    none, and the commit's pull requests are asked for instead."""
    candidates = [api.pull_request(n) for n in event.pull_requests]
    if not candidates:
        candidates = api.pulls_for_commit(event.head_sha)
    for pull in candidates:
        if pull.state == "open" and pull.head_sha == event.head_sha:
            return pull
    return None


@github_group.command("gate")
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Save the JSON plan to FILE (upload it as the run's artifact).",
)
@click.option(
    "--at",
    type=click.DateTime(formats=AT_FORMATS),
    envvar="DMARCOPS_NOW",
    metavar="UTC-TIME",
    help="Gate as if it were this UTC time (sandbox clients only).",
)
@click.option(
    "--check-name",
    default=CHECK_NAME,
    show_default=True,
    help="Name of the check run the verdict is posted as (the ruleset requires it).",
)
@click.pass_obj
@reports_errors
def gate_command(repo: Path, out: Path | None, at: datetime | None, check_name: str) -> None:
    """The privileged gate, on workflow_run after the unprivileged plan workflow: run from the
    default branch's checkout, lay the pull request's zone files, change requests, approvals and
    evidence over it (from its head commit's git objects, never checked out), plan and gate them
    by the default branch's policy of record and ledger, and post the verdict as the check run
    `dmarcops/gate` on the head commit plus one pull request comment. Files the pull request
    changes elsewhere are not taken; those that judge (policy/, the ledger, code, workflows)
    need a lead's approving review. Exit 0 green, 2 red, 1 bad input or a GitHub problem.

    \b
    The head commit must be in the clone: `git fetch --no-tags origin SHA` (gate.yml does).
    """
    from pipeline.commands.loading import load_checked
    from pipeline.github.overlay import overlay_pull_request

    event = read_event()
    if not isinstance(event, WorkflowRunEvent):
        raise InputError(
            "`dmarcops github gate` runs on workflow_run events (after the plan workflow)",
            hint="See .github/workflows/gate.yml; on a pull request itself `dmarcops validate` "
            "runs, unprivileged.",
        )
    api = GitHubClient.from_environment()
    pull = _open_pull_request(api, event)
    if pull is None:
        click.echo(
            f"no open pull request has {event.head_sha[:12]} as its head any more: "
            "nothing to gate (a newer push is gated by its own run)"
        )
        return
    try:
        overlay = overlay_pull_request(repo, pull.head_sha)
        for path in overlay.not_taken:
            click.echo(
                f"not taken from the pull request (judged as on the default branch): {shown(path)}"
            )
        portfolio = load_checked(repo)
        gated = run_pull_request_gate(
            portfolio,
            PullRequestEvent(
                name=WORKFLOW_RUN,
                action=event.action,
                number=pull.number,
                head_sha=pull.head_sha,
                head_ref=pull.head_ref,
                base_sha=overlay.base,
                base_ref=pull.base_ref,
                author=pull.author,
            ),
            api,
            PullRequestGateOptions(
                # HEAD is the default branch: what differs from it is the pull request's overlay.
                base_ref="HEAD",
                now=command_time(at, "github gate", portfolio).now,
                out=out,
                step_summary=_path_from_env("GITHUB_STEP_SUMMARY"),
                target_url=_run_url(),
                workspace=_path_from_env("GITHUB_WORKSPACE"),
                verify_head=False,
                check_name=check_name,
                rule_changes=overlay.judging,
            ),
            click.echo,
        )
    except Exception as exc:
        # A run that could not gate says so on the head commit: never a missing or stale check,
        # whether the input was bad (exit 1) or dmarcops hit a bug (exit 70, crash log).
        # A bug's own text stays in the crash log: it may quote anything the code held.
        known = isinstance(exc, DmarcopsError)
        message = (
            exc.message
            if isinstance(exc, DmarcopsError)
            else f"dmarcops hit a bug ({type(exc).__name__}); the run's log names the crash log"
        )
        first = message.splitlines()[0] if message else type(exc).__name__
        with contextlib.suppress(DmarcopsError):
            api.create_check_run(
                pull.head_sha,
                check_name,
                "failure",
                f"not gated: {clean(first)}",
                clean(str(exc)) if known else message,
                _run_url(),
            )
            _note_check_posted()
        raise
    _note_check_posted()
    if not gated.green:
        for problem in gated.problems():
            click.echo(click.style("refused: ", fg="red", bold=True) + problem, err=True)
        sys.exit(EXIT_GATE)


@github_group.command("check-setup")
@click.option("--branch", help="The protected branch. Default: the repository's default branch.")
@click.option("--check-name", default=CHECK_NAME, show_default=True, help="The required check.")
@click.option(
    "--app-id",
    type=int,
    default=GITHUB_ACTIONS_APP_ID,
    show_default=True,
    help="The app the required check must come from (15368: GitHub Actions).",
)
@reports_errors
def check_setup_command(branch: str | None, check_name: str, app_id: int) -> None:
    """Read the default branch's rulesets and classic protection through the REST API and report
    every setting the gate depends on that is missing or weaker than docs/github.md asks: the
    required check from its app, reviews (code owners, stale dismissal, last push), force pushes,
    deletion, linear history and bypass. Exit 0 all in place, 1 any missing or weaker.

    Needs GITHUB_REPOSITORY and a GITHUB_TOKEN that may read the repository's administration
    settings (a lead's fine-grained token; the workflow's own token cannot).
    """
    from pipeline.github.setup import check_setup

    api = GitHubClient.from_environment()
    info = api.repository_info()
    target = branch or str(info["default_branch"])
    findings, sources = check_setup(api, target, check_name, app_id, str(info["default_branch"]))
    click.echo(f"{api.repository} {target}: read from {', '.join(sources) or 'no rules at all'}")
    for finding in findings:
        mark = "ok     " if finding.ok else "MISSING"
        click.echo(f"  {mark} {finding.setting}: {clean(finding.detail)}")
    weak = [f for f in findings if not f.ok]
    if weak:
        click.echo(f"{len(weak)} setting(s) missing or weaker than docs/github.md asks", err=True)
        sys.exit(EXIT_INPUT)
    click.echo("ok: the branch is protected as the gate needs")
