"""The pull-request gate's verdict, pure over typed values: which requests cover the plan's changes,
and whether each request's approval chain is complete for this plan, as the one gate
(pipeline.gate.decide) judges it. Rendering is pipeline.github.comment's; talking to GitHub is
pipeline.github.pr's.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from pipeline.gate import approvals as gate
from pipeline.gate import decide
from pipeline.gate.coverage import Coverage, cover
from pipeline.gate.requests import ChangeRequest
from pipeline.gate.roster import Roster
from pipeline.github.api import STATUS_DESCRIPTION_LIMIT
from pipeline.github.reviews import GitHubReviewApprovals
from pipeline.load.portfolio import Portfolio
from pipeline.model import RiskLevel
from pipeline.plan.items import Plan, PlanItem

STATUS_CONTEXT = "dmarcops/approvals"
# The check run the privileged gate (`dmarcops github gate`, gate.yml) creates; a ruleset requires
# it from the GitHub Actions app (docs/github.md), so a status posted with another token is ignored.
CHECK_NAME = "dmarcops/gate"
ROLES = decide.ROLE_LABELS


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
