"""The pull-request gate: plan the zones a pull request touches and say, on GitHub, whether it may merge.

For a pull_request or pull_request_review run:
1. plan only the zones the pull request changes (`zones_changed`: a zone file, its client's profile,
   or a policy file every zone depends on);
2. cover each change with its open change request and evaluate each request's approval chain for
   this plan, from the pull request's reviews of its head commit and the signed approval files;
3. report: the JSON plan (`--out`, the workflow's artifact), one annotation per validation finding on
   its zone file line, the change-record draft with an approval checklist per request as ONE pull
   request comment (found again by its hidden marker and edited, never duplicated) and in the job
   summary, and finally the commit status `dmarcops/approvals` on the head commit, which branch
   protection requires: success only when the plan is valid, every change has a request and every
   request's chain is complete for the current plan.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

from pipeline.apply.run import open_requests
from pipeline.errors import EnvironmentProblem, InputError
from pipeline.gate import approvals as gate
from pipeline.gate.coverage import describe
from pipeline.github.api import CHECK_SUMMARY_LIMIT, GitHubClient
from pipeline.github.comment import SUMMARY_LIMIT, render_comment, request_refs
from pipeline.github.events import PullRequestEvent
from pipeline.github.payloads import IssueComment
from pipeline.github.reviews import GitHubReviewApprovals
from pipeline.github.transport import GitHubApiError
from pipeline.github.verdict import (
    STATUS_CONTEXT,
    PullRequestGate,
    gate_pull_request,
    pr_author_ids,
)
from pipeline.load.files import write_output
from pipeline.load.portfolio import Portfolio
from pipeline.load.yamlfile import load_yaml
from pipeline.model import Severity
from pipeline.plan.build import PlanOptions, make_plan
from pipeline.plan.changes import zones_changed_since
from pipeline.plan.items import Plan
from pipeline.records import RecordStore
from pipeline.records.policy_of_record import roster_of_record
from pipeline.render.json_plan import render_json
from pipeline.render.markdown import MARKER
from pipeline.text.safe import clean

ANNOTATION_LEVEL = {Severity.ERROR: "error", Severity.WARNING: "warning", Severity.INFO: "notice"}

Echo = Callable[[str], None]


# --- which zones a pull request touches ------------------------------------------------------


def _git(repo: Path, *args: str) -> str:
    try:
        done = subprocess.run(
            ["git", *args], cwd=repo, capture_output=True, text=True, check=False, timeout=60
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise EnvironmentProblem(f"cannot run git: {exc}") from None
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no message"])[-1]
        raise EnvironmentProblem(
            f"git {' '.join(args[:2])} failed in {repo}: {last}",
            hint="The gate needs the repository's history: check out with "
            "`actions/checkout` and `fetch-depth: 0`.",
        )
    return done.stdout


def zones_changed(repo: Path, base_ref: str) -> frozenset[str]:
    """The domains a pull request touches since its base (pipeline.plan.changes has the rules:
    zone and MTA-STS files, client profiles, change requests, portfolio-wide policy)."""
    return frozenset(zones_changed_since(repo, base_ref).zones)


def verify_checkout(repo: Path, head_sha: str) -> None:
    """The files being planned are the head commit's (or GitHub's merge of it): otherwise reviews of
    the head would be counted for a plan of other files."""
    head = _git(repo, "rev-parse", "HEAD").strip()
    if head == head_sha:
        return
    parents = _git(repo, "rev-list", "--parents", "-n", "1", "HEAD").split()
    if len(parents) == 3 and parents[2] == head_sha:
        return  # refs/pull/N/merge: parents are the base and the pull request's head
    raise EnvironmentProblem(
        f"the checked-out commit {head[:12]} is neither the pull request's head {head_sha[:12]} "
        "nor GitHub's merge of it: the pull request moved on since this run started",
        hint="A newer run gates the new head. Check out the head explicitly: actions/checkout "
        "with `ref: ${{ github.event.pull_request.head.sha }}`.",
    )


# --- workflow commands (annotations) ------------------------------------------------------


def _property(value: str) -> str:
    return (
        _visible(value)
        .replace("%", "%25")
        .replace("\r", "%0D")
        .replace("\n", "%0A")
        .replace(":", "%3A")
        .replace(",", "%2C")
    )


def _visible(value: str) -> str:
    # The Actions log renders ANSI escape sequences: every other control, bidi or invisible
    # character is shown escaped (text/safe.py); newlines and carriage returns are kept for
    # the %0A / %0D encoding below.
    return "".join(
        part if part in ("\r", "\n") else clean(part) for part in re.split(r"([\r\n])", value)
    )


def _data(value: str) -> str:
    return _visible(value).replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def workflow_command(
    level: str, message: str, file: str | None = None, line: int | None = None, title: str = ""
) -> str:
    """`::error file=F,line=L,title=T::message`, escaped as the runner requires."""
    props = []
    if file:
        props.append(f"file={_property(file)}")
    if line:
        props.append(f"line={line}")
    if title:
        props.append(f"title={_property(title)}")
    return (
        f"::{level} {','.join(props)}::{_data(message)}"
        if props
        else f"::{level}::{_data(message)}"
    )


def _shown_path(path: Path, workspace: Path) -> str:
    try:
        return path.resolve().relative_to(workspace.resolve()).as_posix()
    except ValueError:
        return path.as_posix()


def finding_annotations(gated: PullRequestGate, portfolio: Portfolio, workspace: Path) -> list[str]:
    """One workflow command per validation finding (and per uncovered change, per unreadable zone),
    on the line of the record's name in its zone file."""
    files = {z.domain: z.path for z in portfolio.zone_files}
    docs: dict[str, dict[str, int]] = {}

    def where(zone: str, name: str) -> tuple[str | None, int | None]:
        path = files.get(zone)
        if path is None:
            return None, None
        if zone not in docs:
            doc = load_yaml(path)
            docs[zone] = {str(k[0]): v for k, v in doc.lines.items() if len(k) == 1}
        return _shown_path(path, workspace), docs[zone].get(name)

    out: list[str] = []
    for zone in gated.plan.zones:
        if zone.failed:
            file, _ = where(zone.zone, "")
            out.append(
                workflow_command(
                    "error",
                    f"could not read live DNS through {zone.provider}: {zone.error}",
                    file,
                    None,
                    "live DNS",
                )
            )
        for finding in zone.findings:
            file, line = where(zone.zone, finding.name)
            out.append(
                workflow_command(
                    ANNOTATION_LEVEL[finding.severity],
                    f"{finding.name or '@'}: {finding.message}",
                    file,
                    line,
                    finding.code,
                )
            )
    for item in gated.coverage.uncovered:
        file, line = where(item.zone, item.name)
        out.append(
            workflow_command(
                "error",
                f"{describe(item)} ({item.risk.label} risk) is covered by no change request",
                file,
                line,
                "no change request",
            )
        )
    return out


# --- talking to GitHub -------------------------------------------------------------------------


def upsert_comment(api: GitHubClient, number: int, body: str) -> tuple[IssueComment, bool]:
    """Edit our earlier comment (its body starts with the marker) or add one; True when added.

    Only a bot's comment is ours: a person's comment that starts with the marker is left alone
    (and could not be edited with the workflow's token anyway)."""
    ours = [
        c
        for c in api.issue_comments(number)
        if c.body.startswith(MARKER) and (c.login or "").endswith("[bot]")
    ]
    # Exactly one plan comment per pull request: extras (two runs racing, an older version's)
    # are removed, keeping the first so its place in the conversation stays.
    for extra in ours[1:]:
        api.delete_comment(extra.id)
    if ours:
        try:
            return api.update_comment(ours[0].id, body), False
        except GitHubApiError as exc:
            if exc.status != 404:
                raise
            # Deleted by hand between the listing and the edit: post it again.
    return api.create_comment(number, body), True


@dataclass(frozen=True)
class PullRequestGateOptions:
    zones: tuple[str, ...] = ()  # plan these instead of the zones the diff touches
    base_ref: str | None = None  # default: the event's base commit
    now: datetime | None = None
    out: Path | None = None  # the JSON plan, for the workflow's artifact
    step_summary: Path | None = None  # $GITHUB_STEP_SUMMARY
    target_url: str | None = None  # the workflow run, linked from the commit status
    workspace: Path | None = None  # $GITHUB_WORKSPACE: annotation paths are relative to it
    # The privileged gate: the work tree is the default branch with the pull request's data laid
    # over it (overlay.py), so it is not the head commit; the verdict is a check run of this name
    # instead of the commit status.
    verify_head: bool = True
    check_name: str | None = None
    rule_changes: tuple[str, ...] = ()


def select_pr_zones(
    portfolio: Portfolio, event: PullRequestEvent, options: PullRequestGateOptions, echo: Echo
) -> tuple[str, ...]:
    known = {z.domain for z in portfolio.zone_files}
    if options.zones:
        wanted = {z.rstrip(".").lower() for z in options.zones}
        unknown = sorted(wanted - known)
        if unknown:
            raise InputError(
                f"no zone file for {unknown[0]!r}", hint="See zones/<client>/<domain>.yaml."
            )
        return tuple(sorted(wanted))
    touched = zones_changed(portfolio.root, options.base_ref or event.base_sha)
    for gone in sorted(touched - known):
        echo(
            workflow_command(
                "warning",
                f"{gone}: no zone file any more; dmarcops leaves its live records as they are",
                title="zone file removed",
            )
        )
    return tuple(sorted(touched & known))


def run_pull_request_gate(
    portfolio: Portfolio,
    event: PullRequestEvent,
    api: GitHubClient,
    options: PullRequestGateOptions,
    echo: Echo,
) -> PullRequestGate:
    """Plan, gate and report one pull request; the caller turns `green` into the exit code."""
    repo = portfolio.root
    if options.verify_head:
        verify_checkout(repo, event.head_sha)
    zones = select_pr_zones(portfolio, event, options, echo)
    now = (options.now or datetime.now(UTC)).astimezone(UTC)
    if zones:
        plan = make_plan(portfolio, PlanOptions(now=now, zones=zones))
    else:
        plan = Plan(generated_at=now, items=(), zones=())  # PlanOptions() would plan every zone
    roster = roster_of_record(repo)
    reviews = GitHubReviewApprovals(
        api.reviews(event.number), event.author, event.head_sha, plan.hash, roster
    )
    gated = gate_pull_request(
        portfolio,
        now,
        plan,
        open_requests(repo, RecordStore(repo / "changes")),
        roster,
        reviews,
        [
            gate.ExcludingAnalysts(
                gate.SignedApprovalFiles(repo), pr_author_ids(roster, event.author, event.author_id)
            )
        ],
        options.rule_changes,
    )
    if options.check_name:
        gated = replace(gated, verdict_name=options.check_name)

    if options.out is not None:
        write_output(options.out, render_json(plan, request_refs(gated.coverage)), what="plan")
    for line in finding_annotations(gated, portfolio, options.workspace or repo):
        echo(line)
    body = render_comment(gated, portfolio, roster, details_url=options.target_url)
    if options.step_summary is not None:
        summary = render_comment(gated, portfolio, roster, SUMMARY_LIMIT, options.target_url)
        with options.step_summary.open("a", encoding="utf-8") as out:
            out.write(summary + "\n")
    state = "success" if gated.green else "failure"
    if options.check_name:
        api.create_check_run(
            event.head_sha,
            options.check_name,
            state,
            gated.description(),
            render_comment(gated, portfolio, roster, CHECK_SUMMARY_LIMIT, options.target_url),
            options.target_url,
        )
        verdict = options.check_name
    else:
        api.set_status(
            event.head_sha, state, STATUS_CONTEXT, gated.description(), options.target_url
        )
        verdict = STATUS_CONTEXT
    comment, added = upsert_comment(api, event.number, body)
    echo(f"{verdict} {state} on {event.head_sha[:12]}: {clean(gated.description())}")
    echo(f"plan {plan.hash[:16]}: {len(plan.items)} change(s) in {len(zones)} zone(s)")
    echo(
        f"comment {comment.id} {'created' if added else 'updated'} on pull request #{event.number}"
    )
    return gated
