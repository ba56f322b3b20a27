"""Apply on merge, and the scheduled window runner.

On a push to main the merged pull request is found from its merge commit, its reviews are read,
and the plan made from main is applied if it is the plan the reviews approved on the PR's head (the
gate's comment names that plan's hash) and every client's window is open. Otherwise the approved
plan is queued with the review evidence read now (changes/pending/), and the scheduled run applies
it when the window opens. The PR gets a comment with the outcome either way.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from pipeline.apply.pending import (
    CloseRun,
    PendingChange,
    close_finished,
    queue,
    queued,
)
from pipeline.apply.run import ApplyOptions, open_requests, run_apply
from pipeline.errors import DmarcopsError, GateRefused
from pipeline.gate import decide
from pipeline.gate.approvals import Approval, load_plan_file
from pipeline.gate.coverage import cover
from pipeline.gate.identity import Signer
from pipeline.gate.roster import Roster
from pipeline.github.api import GitHubClient
from pipeline.github.payloads import PullRequest
from pipeline.github.reviews import GitHubReviewApprovals
from pipeline.github.verdict import pr_author_ids
from pipeline.live.dns import Nameservers
from pipeline.load.files import exists, replace_text
from pipeline.load.jsonfile import load_json
from pipeline.load.portfolio import Portfolio
from pipeline.model import RecordKind, RiskLevel
from pipeline.plan.build import PlanOptions, make_plan
from pipeline.plan.changes import zones_changed_since
from pipeline.plan.items import Plan
from pipeline.records import ChangeRecord, RecordStore
from pipeline.records.policy_of_record import portfolio_of_record, roster_of_record
from pipeline.render.json_plan import render_json
from pipeline.render.markdown import MARKER
from pipeline.text.markdown import code, escape

PLANS_DIR = Path("changes") / "plans"
OUTCOME_MARKER = "<!-- dmarcops-outcome -->"
_PLAN_HASH = re.compile(r"Plan hash `([0-9a-f]{64})`")


@dataclass(frozen=True)
class MergeResult:
    pull_request: int | None
    plan_hash: str
    records: tuple[ChangeRecord, ...]
    queued: Path | None
    message: str


def merged_pull_request(api: GitHubClient, sha: str) -> PullRequest | None:
    pulls = api.pulls_for_commit(sha)
    merged = [p for p in pulls if p.merged and p.merge_commit_sha == sha]
    found = merged or pulls
    return found[0] if found else None


def reviewed_plan_hash(api: GitHubClient, number: int) -> str | None:
    """The plan hash the gate last showed on the PR (its comment is rewritten on every run)."""
    for comment in reversed(api.issue_comments(number)):
        if comment.body.startswith(MARKER) and (comment.login or "").endswith("[bot]"):
            match = _PLAN_HASH.search(comment.body)
            return match.group(1) if match else None
    return None


def executor(roster: Roster, *accounts: tuple[str | None, int | None]) -> str:
    """The roster id the change runs as: who merged, else who authored the pull request; each
    found by numeric GitHub id when known (a rename keeps the person, a re-registered login
    does not)."""
    for login, user_id in accounts:
        analyst = roster.by_github(login, user_id) if login else None
        if analyst is not None:
            return analyst.id
    raise GateRefused(
        f"none of {', '.join(repr(login) for login, _ in accounts if login)} is on the analyst "
        "roster",
        hint="Add the analyst's `github:` login to policy/roster.yaml.",
    )


def save_plan(root: Path, plan: Plan) -> Path:
    path = root / PLANS_DIR / f"{plan.hash}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_json(plan), encoding="utf-8")
    return path


def _outcome_comment(result: MergeResult) -> str:
    lines = [OUTCOME_MARKER, f"### dmarcops apply: plan {code(result.plan_hash[:16])}", ""]
    lines.append(escape(result.message))
    for record in result.records:
        lines.append("")
        lines.append(f"**Change record {code(record.id)}** ({escape(record.risk.label)} risk)")
        for zone in record.zone_results:
            total = sum(1 for i in record.items if i.zone == zone.zone)
            error = f": {escape(zone.error)}" if zone.error else ""
            lines.append(
                f"- {escape(zone.zone)}: {zone.status.value}, {zone.applied}/{total} verified{error}"
            )
        lines.append(f"- rollback window until {record.rollback_window.end:%Y-%m-%d %H:%M} UTC")
    return "\n".join(lines) + "\n"


def _time_problems(portfolio: Portfolio, plan: Plan, now: datetime) -> list[str]:
    """Why the one gate would refuse this plan now on time alone (window, freeze, weekend):
    asked of pipeline.gate.decide on the re-planned items, so a p=reject change's 72 h rollback
    window counts here exactly as it does in apply."""
    roster = roster_of_record(portfolio.root)
    store = RecordStore(portfolio.root / "changes")
    coverage = cover(plan.items, open_requests(portfolio.root, store))
    problems: list[str] = []
    for request in coverage.requests:
        decision = decide.decide(
            request,
            coverage.items_of(request.id),
            (),
            decide.context(portfolio, request.client, decide.Stage.APPLY, now, plan.hash, roster),
        )
        problems += [p.reason for p in decide.refused(decision) if p.rule in decide.TIME_RULES]
    return list(dict.fromkeys(problems))


def _replan(portfolio: Portfolio, plan_path: Path, now: datetime) -> Plan | None:
    """The queued plan made again from live DNS, or None when live DNS cannot be read now."""
    saved = load_plan_file(plan_path)
    plan = make_plan(
        portfolio,
        PlanOptions(
            now=now,
            clients=tuple(sorted({c.client for c in saved.changes})),
            zones=sorted({c.zone for c in saved.changes}),
        ),
    )
    return None if plan.failed_zones else plan


def apply_merge(
    repo: Path,
    api: GitHubClient,
    before: str,
    after: str,
    now: datetime,
    nameservers: Nameservers | None = None,
    pusher: str | None = None,
    signer: Signer | None = None,
    pusher_id: int | None = None,
) -> MergeResult:
    portfolio = portfolio_of_record(repo)
    roster = roster_of_record(repo)
    pr = merged_pull_request(api, after)
    changed = zones_changed_since(repo, before)
    plan = make_plan(
        portfolio, PlanOptions(now=now, changed_since=changed, nameservers=nameservers)
    )
    if not plan.items:
        return MergeResult(pr.number if pr else None, plan.hash, (), None, "nothing to apply")
    if pr is None:
        # Issue 10: a push to main that no pull request merged was reviewed by nobody on GitHub;
        # only what the author's signature alone may carry (low risk) applies that way.
        above = sorted(
            {
                i.fqdn
                for i in plan.items
                if i.kind is not RecordKind.POLICY and i.risk > RiskLevel.LOW
            }
        )
        if above:
            raise GateRefused(
                f"pushed to main without a pull request: only low-risk changes apply that way, "
                f"and this push holds {', '.join(above)} above low; nothing was applied",
                hint="Open a pull request for it: its review is the peer (and lead) approval.",
            )
    plan_path = save_plan(repo, plan)
    sources: tuple[GitHubReviewApprovals, ...] = ()
    if pr is not None:
        reviewed = reviewed_plan_hash(api, pr.number)
        if reviewed != plan.hash:
            raise GateRefused(
                f"the plan on main ({plan.hash[:16]}) is not the plan reviewed on pull request "
                f"#{pr.number} ({(reviewed or 'none')[:16]}): nothing was applied",
                hint="Live DNS or main moved since the review: open a pull request to re-plan.",
            )
        sources = (
            GitHubReviewApprovals(
                api.reviews(pr.number), pr.author, pr.head_sha, plan.hash, roster
            ),
        )
    by = executor(roster, (pusher, pusher_id), (pr.author, pr.author_id) if pr else (None, None))
    waiting = _time_problems(portfolio, plan, now)
    if waiting:
        store = RecordStore(repo / "changes")
        coverage = cover(plan.items, open_requests(repo, store))
        approvals: list[Approval] = [
            a for s in sources for r in coverage.requests for a in s.approvals_for(plan.hash, r.id)
        ]
        path = queue(
            repo,
            PendingChange(
                plan_hash=plan.hash,
                plan=load_json(
                    plan_path,
                    what="not a JSON plan",
                    hint="Save one with `dmarcops plan --out plan.json`.",
                    outside_ok=True,
                    log=True,
                ),
                approvals=tuple(approvals),
                queued_at=now.strftime("%Y-%m-%dT%H:%M:%SZ"),
                pull_request=pr.number if pr else None,
                reason="; ".join(waiting),
                executor=by,
            ),
        )
        return MergeResult(
            pr.number if pr else None,
            plan.hash,
            (),
            path,
            "queued for the next change window: " + "; ".join(waiting),
        )
    records = run_apply(
        portfolio,
        ApplyOptions(
            plan_file=plan_path,
            by=by,
            now=now,
            nameservers=nameservers,
            approval_sources=sources,
            excluded_approvers=(
                pr_author_ids(roster, pr.author, pr.author_id) if pr else frozenset()
            ),
            signer=signer,
        ),
    )
    return MergeResult(pr.number if pr else None, plan.hash, tuple(records), None, "applied")


def report(api: GitHubClient | None, result: MergeResult) -> None:
    if api is not None and result.pull_request is not None:
        api.create_comment(result.pull_request, _outcome_comment(result))


PERMANENT = ("the plan changed after approval", "was already applied")


def _fresh_review_source(
    api: GitHubClient | None, pending: PendingChange, roster: Roster
) -> tuple[tuple[GitHubReviewApprovals, ...], frozenset[str], str]:
    """The reviews of a queued change, read again now: the queue file is only a note of what was
    merged, never evidence on its own (anyone who can write to the repository can write it)."""
    if pending.pull_request is None:
        return (), frozenset(), ""
    if api is None:
        return (), frozenset(), "the GitHub API is needed to read the pull request's reviews again"
    pr = api.pull_request(pending.pull_request)
    if reviewed_plan_hash(api, pr.number) != pending.plan_hash:
        return (), frozenset(), f"pull request #{pr.number} was not reviewed with this plan"
    reviews = GitHubReviewApprovals(
        api.reviews(pr.number), pr.author, pr.head_sha, pending.plan_hash, roster
    )
    return (reviews,), pr_author_ids(roster, pr.author, pr.author_id), ""


def run_scheduled(
    repo: Path,
    now: datetime,
    api: GitHubClient | None = None,
    nameservers: Nameservers | None = None,
    signer: Signer | None = None,
) -> tuple[list[MergeResult], CloseRun]:
    """Apply queued changes whose window is open; verify the open records against the
    aggregate reports and close those whose rollback window ended with evidence."""
    portfolio = portfolio_of_record(repo)
    roster = roster_of_record(repo)
    results: list[MergeResult] = []
    for path, pending in queued(repo):
        plan_path = repo / PLANS_DIR / f"{pending.plan_hash}.json"
        if not exists(plan_path):
            # By rename inside the repository: never through a link planted at that name.
            replace_text(plan_path, json.dumps(pending.plan, indent=2), root=repo)
        current = _replan(portfolio, plan_path, now)
        if current is None or _time_problems(portfolio, current, now):
            continue
        sources, excluded, problem = _fresh_review_source(api, pending, roster)
        if problem:
            result = MergeResult(
                pending.pull_request, pending.plan_hash, (), path, f"still queued: {problem}"
            )
            results.append(result)
            continue
        try:
            records = run_apply(
                portfolio,
                ApplyOptions(
                    plan_file=plan_path,
                    by=pending.executor,
                    now=now,
                    nameservers=nameservers,
                    approval_sources=sources,
                    excluded_approvers=excluded,
                    signer=signer,
                ),
            )
            result = MergeResult(
                pending.pull_request,
                pending.plan_hash,
                tuple(records),
                None,
                "applied in its window",
            )
            path.unlink()
        except DmarcopsError as exc:
            if any(reason in exc.message for reason in PERMANENT):
                # A queued plan that no longer matches live DNS can never apply: drop it.
                path.unlink()
                message = f"not applied, removed from the queue: {exc.message}"
            else:  # a lock held, a server down: the next scheduled run tries again
                message = f"not applied yet, will retry: {exc.message}"
            result = MergeResult(pending.pull_request, pending.plan_hash, (), None, message)
        results.append(result)
        report(api, result)
    return results, close_finished(RecordStore(repo / "changes"), now, signer)
