"""GitHub as the pipeline's front door: events, reviews as approvals, the pull-request gate.

- `api`: a small typed REST client over urllib (GITHUB_API_URL, GITHUB_TOKEN, GITHUB_REPOSITORY);
  its answers as typed values in `payloads`, redirects, retries and errors in `transport`;
- `events`: the workflow run's event payload (pull_request, pull_request_review, push);
- `reviews`: pull request reviews as an `ApprovalSource` (head commit only, not the PR author's own,
  roster logins only, a later "changes requested" withdraws);
- `pr`: the gate `dmarcops github pr` runs: plan the touched zones, evaluate, comment, annotate,
  set the `dmarcops/approvals` commit status.
"""

from pipeline.github.api import GitHubClient
from pipeline.github.events import Event, PullRequestEvent, PushEvent, read_event
from pipeline.github.payloads import IssueComment, PullRequest, Review
from pipeline.github.reviews import GitHubReviewApprovals

__all__ = [
    "Event",
    "GitHubClient",
    "GitHubReviewApprovals",
    "IssueComment",
    "PullRequest",
    "PullRequestEvent",
    "PushEvent",
    "Review",
    "read_event",
]
