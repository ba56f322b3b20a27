"""GitHub pull request reviews as approvals of the plan, behind the same `ApprovalSource` as signed files.

A review counts as a peer approval only when all of these hold (docs/github.md):
- its state is APPROVED, and no later review by the same person requested changes or was dismissed
  (their latest say is what counts; a plain comment review changes nothing);
- it approves the pull request's current head commit: a review of an earlier push approved other
  files, and the plan may have changed since;
- the reviewer did not open the pull request (an author inside the owning team can count as implicit
  approval on GitHub: we enforce reviewer != author ourselves);
- the reviewer's login is on the analyst roster (policy/roster.yaml `github:`).
Every review that does not count is kept with its reason, for the pull request comment.
`evaluate()` then applies the seed's chain: the request's own author cannot review it either.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from pipeline.gate.approvals import GITHUB, Approval
from pipeline.gate.roster import Analyst, Roster
from pipeline.github.payloads import Review

APPROVED = "APPROVED"
WITHDRAWING = {"CHANGES_REQUESTED": "requested changes", "DISMISSED": "was dismissed"}


def short_sha(sha: str | None) -> str:
    return sha[:7] if sha else "(unknown commit)"


def review_reference(review: Review, analyst: Analyst | None = None) -> str:
    """How an approval from this review is referenced (and verified: gate.approvals). When the
    reviewer's login is not the roster's (a renamed account, matched by its numeric id), the id
    is part of the reference, so the verifier matches the id instead of the login."""
    renamed = (
        analyst is not None
        and review.user_id is not None
        and (review.login or "").lower() != analyst.github.lower()
    )
    by = f"@{review.login} (id {review.user_id})" if renamed else f"@{review.login}"
    return f"GitHub review {review.id} by {by} on {review.commit_id}"


@dataclass(frozen=True)
class CountedReview:
    review: Review
    analyst: Analyst


@dataclass(frozen=True)
class DiscountedReview:
    review: Review
    reason: str


def _judge(
    reviews: Sequence[Review], pr_author: str, head_sha: str, roster: Roster
) -> tuple[list[CountedReview], list[DiscountedReview]]:
    # GitHub lists reviews oldest first; submitted_at orders them when a caller mixed sources.
    ordered = sorted(
        (r for r in reviews if r.submitted_at is not None),
        key=lambda r: (r.submitted_at or datetime.min.replace(tzinfo=UTC), r.id),
    )
    latest_say: dict[str, Review] = {}  # per login: their latest approving or withdrawing review
    for review in ordered:
        if review.login and (review.state == APPROVED or review.state in WITHDRAWING):
            latest_say[review.login.lower()] = review
    counted: list[CountedReview] = []
    discounted: list[DiscountedReview] = []
    for review in ordered:
        if review.state != APPROVED:
            # Only a withdrawal still in force is news; a comment review is no approval either way.
            if review.login and latest_say.get(review.login.lower()) is review:
                discounted.append(DiscountedReview(review, f"it {WITHDRAWING[review.state]}"))
            continue
        reason = _reason(review, latest_say, pr_author, head_sha, roster)
        analyst = roster.by_github(review.login, review.user_id) if review.login else None
        if reason is None and analyst is not None:
            counted.append(CountedReview(review, analyst))
        else:
            discounted.append(DiscountedReview(review, reason or "not on the analyst roster"))
    return counted, discounted


def _reason(
    review: Review, latest_say: dict[str, Review], pr_author: str, head_sha: str, roster: Roster
) -> str | None:
    if not review.login:
        return "the reviewer's account no longer exists"
    latest = latest_say[review.login.lower()]
    if latest.id != review.id:
        if latest.state in WITHDRAWING:
            return (
                f"withdrawn: @{review.login}'s later review {latest.id} {WITHDRAWING[latest.state]}"
            )
        return f"superseded by @{review.login}'s later approval (review {latest.id})"
    if review.login.lower() == pr_author.lower():
        return (
            f"@{review.login} opened this pull request: an author's own approval does not count "
            '(seed: "a self-review preserves all the same blind spots")'
        )
    if review.commit_id != head_sha:
        return (
            f"it approves commit {short_sha(review.commit_id)}, not the current head "
            f"{short_sha(head_sha)}: the changes were pushed after the review, so the plan may "
            "differ; it needs a new approving review"
        )
    if roster.by_github(review.login, review.user_id) is None:
        return (
            f"@{review.login} is not on the analyst roster (no `github: {review.login}` in "
            "policy/roster.yaml)"
        )
    return None


class GitHubReviewApprovals:
    """The `ApprovalSource` of one pull request's reviews, judged against its current head commit.

    The reviews are read from the API at gate time, for the plan made from the head's files
    (`plan_hash`): each counting review approves every request of that plan, and none of any other.
    """

    def __init__(
        self,
        reviews: Sequence[Review],
        pr_author: str,
        head_sha: str,
        plan_hash: str,
        roster: Roster,
    ) -> None:
        self.pr_author = pr_author
        self.head_sha = head_sha
        self.plan_hash = plan_hash
        counted, discounted = _judge(reviews, pr_author, head_sha, roster)
        self.counted: tuple[CountedReview, ...] = tuple(counted)
        self.discounted: tuple[DiscountedReview, ...] = tuple(discounted)

    def approvals_for(self, plan_hash: str, request_id: str) -> list[Approval]:
        if plan_hash != self.plan_hash:
            return []  # these reviews were judged for the plan of the head commit only
        return [
            Approval(
                plan_hash=plan_hash,
                request_id=request_id,
                analyst=c.analyst.id,
                approved_at=(c.review.submitted_at or datetime.now(UTC)).replace(microsecond=0),
                source=GITHUB,
                reference=review_reference(c.review, c.analyst),
                signature="",
            )
            for c in self.counted
        ]

    def review_of(self, analyst_id: str) -> Review | None:
        """The counting review an analyst's approval came from."""
        return next((c.review for c in self.counted if c.analyst.id == analyst_id), None)
