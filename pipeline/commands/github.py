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
from pipeline.errors import EXIT_GATE, DmarcopsError, GateRefused, InputError
from pipeline.gate.identity import Signer
from pipeline.github.api import GitHubClient
from pipeline.github.events import PullRequestEvent, PushEvent, read_event
from pipeline.github.pr import STATUS_CONTEXT, PullRequestGateOptions, run_pull_request_gate
from pipeline.load.files import exists, read_text
from pipeline.load.portfolio import load_portfolio
from pipeline.render.safe import clean, shown


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
    """Run inside GitHub Actions: the pull-request gate (`pr`). Reads GITHUB_EVENT_NAME,
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
    from pipeline.cli import load_checked  # the one "load and validate everything" of the CLI

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
        command_time(at, "github merge", load_portfolio(repo)).now,
        nameservers_from(nameservers, 3.0),
        pusher=os.environ.get("GITHUB_ACTOR"),
        signer=automation_signer(repo),
    )
    report(api, result)
    saved = repo / "changes" / "plans" / f"{result.plan_hash}.json"
    if out is not None and exists(saved):
        out.write_text(read_text(saved, root=repo, log=True), encoding="utf-8")
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
    request) and close, as accepted, records whose rollback window ended with everything applied
    and verified. Lists the records a person must close.
    """
    from pipeline.github.merge import run_scheduled

    repo: Path = click.get_current_context().obj
    api = GitHubClient.from_environment() if os.environ.get("GITHUB_TOKEN") else None
    results, closed, attention = run_scheduled(
        repo,
        command_time(at, "github scheduled", load_portfolio(repo)).now,
        api,
        nameservers_from(nameservers, 3.0),
        automation_signer(repo),
    )
    for result in results:
        click.echo(f"plan {result.plan_hash[:16]}: {clean(result.message)}")
    for record_id in closed:
        click.echo(f"closed {record_id}: accepted (rollback window over, applied and verified)")
    for record_id in attention:
        click.echo(f"needs a person: {record_id} (rollback window over; not clean enough to close)")
