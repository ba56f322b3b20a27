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
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

from pipeline.apply.run import open_requests
from pipeline.errors import EnvironmentProblem, InputError
from pipeline.gate import approvals as gate
from pipeline.gate import decide
from pipeline.gate.requests import ChangeRequest, Coverage, cover, describe
from pipeline.gate.roster import Roster
from pipeline.github.api import (
    CHECK_SUMMARY_LIMIT,
    STATUS_DESCRIPTION_LIMIT,
    GitHubApiError,
    GitHubClient,
    IssueComment,
)
from pipeline.github.events import PullRequestEvent
from pipeline.github.reviews import GitHubReviewApprovals, short_sha
from pipeline.load.portfolio import Portfolio
from pipeline.load.yamlfile import load_yaml
from pipeline.model import RiskLevel, Severity
from pipeline.plan.build import PlanOptions, make_plan
from pipeline.plan.changes import zones_changed_since
from pipeline.plan.items import ItemKey, Plan, PlanItem, RequestRef
from pipeline.records import RecordStore
from pipeline.records.policy_of_record import roster_of_record
from pipeline.render.json_plan import render_json
from pipeline.render.markdown import MARKER, render_markdown
from pipeline.render.markdown_text import code, escape
from pipeline.render.safe import clean

STATUS_CONTEXT = "dmarcops/approvals"
# The check run the privileged gate (`dmarcops github gate`, gate.yml) creates; a ruleset requires
# it from the GitHub Actions app (docs/github.md), so a status posted with another token is ignored.
CHECK_NAME = "dmarcops/gate"
COMMENT_LIMIT = 65_536  # GitHub refuses a longer comment body
SUMMARY_LIMIT = 1_048_576  # $GITHUB_STEP_SUMMARY: 1 MiB a step
ROLES = decide.ROLE_LABELS
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


# --- the gate itself: pure over typed values ---------------------------------------------------


@dataclass(frozen=True)
class RequestGate:
    request: ChangeRequest
    risk: RiskLevel
    items: tuple[PlanItem, ...]
    decision: decide.Decision
    refusal: str = ""  # the requested risk is below the computed one

    @property
    def ok(self) -> bool:
        return self.decision.ok and not self.refusal

    def missing_roles(self) -> list[str]:
        roles = []
        if self.refusal:
            roles.append("requested risk too low")
        for line in self.decision.missing:
            if line.startswith(" "):
                continue  # why an offered approval does not count
            if line.endswith("[report-evidence]"):
                roles.append("report evidence")  # docs/reports.md: DMARC p= moving up
                continue
            role = line.split(":", 1)[0]
            roles.append(role if role in ROLES else "approval chain")
        return list(dict.fromkeys(roles))


@dataclass(frozen=True)
class PullRequestGate:
    plan: Plan
    coverage: Coverage[PlanItem]
    requests: tuple[RequestGate, ...]
    reviews: GitHubReviewApprovals
    head_sha: str
    # Paths the pull request changes that dmarcops reads to judge (policy/, the ledger, sealed
    # policy, code, workflows): the privileged gate judges by the default branch's copies, and
    # asks for a lead's approving review of the head before such a pull request may merge.
    rule_changes: tuple[str, ...] = ()
    verdict_name: str = STATUS_CONTEXT  # the commit status, or the check run (github gate)

    @property
    def lead_approved(self) -> bool:
        return any(c.analyst.is_lead for c in self.reviews.counted)

    def problems(self) -> list[str]:
        """What keeps the gate red, shortest first, for the commit status."""
        out: list[str] = []
        if self.rule_changes and not self.lead_approved:
            out.append(
                f"changes {len(self.rule_changes)} file(s) that judge changes "
                f"({self.rule_changes[0]}): needs a lead's approving review"
            )
        failed = self.plan.failed_zones
        if failed:
            out.append(f"live DNS unreadable for {', '.join(z.zone for z in failed)}")
        if self.plan.has_errors:
            out.append("validation errors in the zone files")
        if self.coverage.uncovered:
            out.append(f"{len(self.coverage.uncovered)} change(s) without a change request")
        if self.coverage.conflicts:
            out.append(f"{len(self.coverage.conflicts)} change(s) claimed by several requests")
        out += [
            f"{r.request.id} needs {' + '.join(r.missing_roles())}"
            for r in self.requests
            if not r.ok
        ]
        return out

    @property
    def green(self) -> bool:
        return not self.problems()

    def description(self) -> str:
        """The commit status description (GitHub allows 140 characters)."""
        problems = self.problems()
        if problems:
            text = "; ".join(problems)
        elif not self.plan.items:
            text = "no DNS changes in the zones this pull request touches"
        else:
            risk = self.plan.risk.label if self.plan.risk else "none"
            text = (
                f"approved: {len(self.requests)} request(s), {len(self.plan.items)} change(s), "
                f"risk {risk}, plan {self.plan.hash[:12]}"
            )
        if len(text) > STATUS_DESCRIPTION_LIMIT:
            text = text[: STATUS_DESCRIPTION_LIMIT - 3] + "..."
        return text


def pr_author_ids(roster: Roster, login: str, user_id: int | None = None) -> frozenset[str]:
    """The roster ids of the pull request's author (whose approvals never count on it), found by
    their numeric GitHub id when known (a renamed author is still the author)."""
    analyst = roster.by_github(login, user_id)
    return frozenset({analyst.id}) if analyst is not None else frozenset()


def gate_pull_request(
    portfolio: Portfolio,
    now: datetime,
    plan: Plan,
    requests: Sequence[ChangeRequest],
    roster: Roster,
    reviews: GitHubReviewApprovals,
    sources: Sequence[gate.ApprovalSource] = (),
    rule_changes: Sequence[str] = (),
) -> PullRequestGate:
    """Cover the plan's changes with requests and evaluate each request's approval chain for this
    plan, from the reviews and any further sources (the signed approval files)."""
    coverage = cover(plan.items, requests)
    gated: list[RequestGate] = []
    for request in coverage.requests:
        approvals = [
            a for src in (reviews, *sources) for a in src.approvals_for(plan.hash, request.id)
        ]
        decision = decide.decide(
            request,
            coverage.items_of(request.id),
            approvals,
            decide.context(portfolio, request.client, decide.Stage.REVIEW, now, plan.hash, roster),
        )
        refusal = "; ".join(
            p.reason for p in decide.refused(decision) if p.rule == "requested-risk-below-computed"
        )
        gated.append(
            RequestGate(request, decision.risk, coverage.items_of(request.id), decision, refusal)
        )
    return PullRequestGate(
        plan, coverage, tuple(gated), reviews, reviews.head_sha, tuple(rule_changes)
    )


# --- rendering -------------------------------------------------------------------------------


def _login(login: str | None) -> str:
    # "@" as an entity (escape): the comment names reviewers without notifying them on every push.
    return escape(f"@{login}" if login else "@ghost")


def _evidence_line(link: gate.ApprovalEvidence, gated: PullRequestGate, roster: Roster) -> str:
    if link.role == "author":
        return f"- [x] author: {escape(link.who)} ({escape(link.reference)})"
    if link.role == "peer review" and link.reference.startswith("GitHub review"):
        review = gated.reviews.review_of(link.who)
        analyst = roster.get(link.who)
        login = review.login if review else (analyst.github if analyst else link.who)
        rid = review.id if review else "?"
        return (
            f"- [x] peer review: {_login(login)} (review {rid} on "
            f"{code(short_sha(review.commit_id if review else None))})"
        )
    when = f" at {gate.utc_text(link.at)}" if link.at else ""
    # A signed approval's reference is its file; a client approval's, a message-id or ticket.
    reference = code(link.reference) if link.role == "peer review" else escape(link.reference)
    return f"- [x] {escape(link.role)}: {escape(link.who)}{when} ({reference})"


def _peer_review_needed(req: RequestGate, gated: PullRequestGate) -> str:
    return (
        f"- [ ] peer review: an approving review of the head commit "
        f"{code(short_sha(gated.head_sha))} by a roster analyst who is neither the request's "
        f"author ({escape(req.request.author)}) nor the pull request's author "
        f"({_login(gated.reviews.pr_author)}), or a signed `dmarcops approve --request "
        f"{req.request.id}` of plan {code(gated.plan.hash[:16])}"
    )


def _request_section(req: RequestGate, gated: PullRequestGate, roster: Roster) -> list[str]:
    count = len(req.items)
    state = "complete" if req.ok else "incomplete"
    lines = [
        f"#### {code(req.request.id)}: {req.risk.label} risk, {count} change(s), by "
        f"{escape(req.request.author)}: approval chain {state}",
        "",
    ]
    for role in decide.chain_labels(req.decision):
        present = [e for e in req.decision.evidence if e.role == role]
        missing = [m for m in req.decision.missing if m.startswith(f"{role}:")]
        lines += [_evidence_line(e, gated, roster) for e in present]
        if role == "peer review" and missing:
            lines.append(_peer_review_needed(req, gated))
        else:
            lines += [f"- [ ] {escape(m)}" for m in missing]
    other = [
        m for m in req.decision.missing if not m.startswith(" ") and m.split(":", 1)[0] not in ROLES
    ]
    lines += [f"- [ ] {escape(m)}" for m in other]
    if req.refusal:
        lines.append(f"- [ ] requested risk: {escape(req.refusal)}")
    lines += [f"  - does not count: {escape(i)}" for i in req.decision.ignored]
    lines.append("")
    return lines


def render_gate(gated: PullRequestGate, roster: Roster) -> str:
    """The approvals part of the comment: the status, then a checklist per request."""
    verdict = "passing" if gated.green else "failing"
    lines = [
        f"### Approval gate: **{verdict}**",
        "",
        f"{code(gated.verdict_name)} on {code(short_sha(gated.head_sha))}: "
        f"{escape(gated.description())}",
        "",
    ]
    if gated.rule_changes:
        state = "approved by a lead" if gated.lead_approved else "needs a lead's approving review"
        lines += [
            f"#### Files that judge changes ({state})",
            "",
            "This pull request changes files dmarcops reads to judge. The gate judged it by the "
            "default branch's copies; a policy edit counts only once a lead seals it on main.",
            "",
        ]
        lines += [f"- {code(p)}" for p in gated.rule_changes]
        lines.append("")
    for req in gated.requests:
        lines += _request_section(req, gated, roster)
    if gated.coverage.uncovered:
        lines += ["#### Changes no change request covers", ""]
        lines += [
            f"- [ ] {code(describe(i))} (risk {i.risk.label}): file a request with "
            f"`dmarcops new`, or add the selector to an existing request's `covers:`"
            for i in gated.coverage.uncovered
        ]
        lines.append("")
    if gated.coverage.conflicts:
        lines += ["#### Changes claimed by more than one request", ""]
        lines += [
            f"- [ ] {code(describe(i))}: {', '.join(code(r.id) for r in rs)}"
            for i, rs in gated.coverage.conflicts
        ]
        lines.append("")
    if gated.reviews.discounted:
        lines += ["#### Reviews that do not count", ""]
        lines += [
            f"- {_login(d.review.login)}, review {d.review.id} on "
            f"{code(short_sha(d.review.commit_id))}: {escape(d.reason)}"
            for d in gated.reviews.discounted
        ]
        lines.append("")
    return "\n".join(lines)


def _cut(text: str, budget: int) -> tuple[str, int]:
    """The whole lines of `text` that fit in `budget` UTF-8 bytes, and their size."""
    kept: list[str] = []
    used = 0
    for line in text.splitlines(keepends=True):
        size = len(line.encode("utf-8"))
        if used + size > budget:
            break
        kept.append(line)
        used += size
    return "".join(kept), used


def fit(plan_markdown: str, gate_markdown: str, limit: int) -> str:
    """Plan draft + approval checklist within `limit` UTF-8 bytes: the plan is cut (at a line)
    before the checklist is, and the cut says where the whole plan is."""
    whole = plan_markdown + "\n" + gate_markdown
    if len(whole.encode("utf-8")) <= limit:
        return whole
    note = (
        "\n_The plan is too long for one comment and was cut here: the whole change-record draft "
        "is in the workflow run's summary and its `plan.json` artifact._\n\n"
    )
    head = MARKER + "\n"  # always kept: it finds this comment again on the next run
    fixed = len((head + note).encode("utf-8"))
    gate_part, gate_size = _cut(gate_markdown, limit - fixed)
    plan_part, _ = _cut(plan_markdown.removeprefix(head), limit - fixed - gate_size)
    return head + plan_part + note + gate_part


def request_refs(coverage: Coverage[PlanItem]) -> dict[ItemKey, RequestRef]:
    return {
        (item.zone, item.name, item.type): RequestRef(
            request.id, request.type.value, request.author, request.rationale
        )
        for item, request in coverage.covered
    }


def render_comment(
    gated: PullRequestGate, portfolio: Portfolio, roster: Roster, limit: int = COMMENT_LIMIT
) -> str:
    names = {c.id: c.name for c in portfolio.clients.values()}
    plan_md = render_markdown(gated.plan, names, request_refs(gated.coverage))
    return fit(plan_md, render_gate(gated, roster), limit)


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
    # character is shown escaped (render/safe.py); newlines and carriage returns are kept for
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
        options.out.write_text(render_json(plan, request_refs(gated.coverage)), encoding="utf-8")
    for line in finding_annotations(gated, portfolio, options.workspace or repo):
        echo(line)
    body = render_comment(gated, portfolio, roster)
    if options.step_summary is not None:
        summary = render_comment(gated, portfolio, roster, SUMMARY_LIMIT)
        with options.step_summary.open("a", encoding="utf-8") as out:
            out.write(summary + "\n")
    state = "success" if gated.green else "failure"
    if options.check_name:
        api.create_check_run(
            event.head_sha,
            options.check_name,
            state,
            gated.description(),
            render_comment(gated, portfolio, roster, CHECK_SUMMARY_LIMIT),
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
