"""The GitHub API client under transient failures (issue 10, item 6): 5xx retried for requests
that may be repeated, rate limits waited out as GitHub asks, everything else reported at once.
Against recorded responses served over HTTP (tests/github_server.py), the waits recorded."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from github_server import FakeGitHub

from pipeline.errors import EnvironmentProblem
from pipeline.github.api import GitHubClient

REPOSITORY = "msp-example/dns"
TOKEN = "ghs_retrytoken0123456789"
REVIEWS = f"/repos/{REPOSITORY}/pulls/7/reviews"
COMMENTS = f"/repos/{REPOSITORY}/issues/7/comments"


@pytest.fixture
def github() -> Iterator[FakeGitHub]:
    with FakeGitHub(REPOSITORY, TOKEN) as server:
        server.reviews[7] = []
        yield server


def client(github: FakeGitHub) -> tuple[GitHubClient, list[float]]:
    api = GitHubClient(REPOSITORY, TOKEN, github.url)
    waits: list[float] = []
    api.sleep = waits.append
    return api, waits


def test_a_server_error_on_a_read_is_retried_with_backoff(github: FakeGitHub) -> None:
    github.transient[("GET", REVIEWS)] = [(502, {"message": "Bad Gateway"}, {})] * 2
    api, waits = client(github)
    assert api.reviews(7) == []
    assert waits == [1.0, 2.0]
    assert len(github.requests("GET", r"/pulls/7/reviews$")) == 3


@pytest.mark.parametrize(
    ("status", "body", "headers", "waited"),
    [
        (429, {"message": "Too Many Requests"}, {"Retry-After": "3"}, [3.0]),
        (403, {"message": "You have exceeded a secondary rate limit."}, {}, [60.0]),
        (403, {"message": "API rate limit exceeded"}, {"x-ratelimit-remaining": "0",
                                                      "x-ratelimit-reset": "0"}, [0.0]),
    ],
)  # fmt: skip
def test_a_rate_limit_is_waited_out_for_any_request(
    github: FakeGitHub,
    status: int,
    body: dict[str, str],
    headers: dict[str, str],
    waited: list[float],
) -> None:
    github.transient[("POST", COMMENTS)] = [(status, body, headers)]
    api, waits = client(github)
    comment = api.create_comment(7, "hello")
    assert comment.body == "hello"
    assert waits == waited
    assert len(github.comments[7]) == 1  # posted once


def test_a_server_error_on_a_post_is_not_repeated(github: FakeGitHub) -> None:
    # The comment may have been created before the 502: posting again could make a second one.
    github.transient[("POST", COMMENTS)] = [(502, {"message": "Bad Gateway"}, {})]
    api, waits = client(github)
    with pytest.raises(EnvironmentProblem, match="answered 502"):
        api.create_comment(7, "hello")
    assert waits == []


def test_retries_end_and_a_far_limit_is_reported_not_waited(github: FakeGitHub) -> None:
    github.transient[("GET", REVIEWS)] = [(503, {"message": "Unavailable"}, {})] * 5
    api, waits = client(github)
    with pytest.raises(EnvironmentProblem, match="answered 503"):
        api.reviews(7)
    assert waits == [1.0, 2.0, 4.0]  # four attempts in all
    github.transient[("GET", REVIEWS)] = [(429, {"message": "slow down"}, {"Retry-After": "3600"})]
    api, waits = client(github)
    with pytest.raises(EnvironmentProblem, match="answered 429"):
        api.reviews(7)
    assert waits == []


# --- the one plan comment per pull request ---------------------------------------------------


def _bot_comment(github: FakeGitHub, body: str) -> int:
    github.next_comment_id += 1
    comment = {"id": github.next_comment_id, "body": body, "user": {"login": "github-actions[bot]"},
               "html_url": f"https://github.com/{REPOSITORY}/pull/7#issuecomment-1"}  # fmt: skip
    github.comments.setdefault(7, []).append(comment)
    return github.next_comment_id


def test_extra_plan_comments_are_removed_and_the_first_kept(github: FakeGitHub) -> None:
    from pipeline.github.pr import upsert_comment
    from pipeline.render.markdown import MARKER

    first = _bot_comment(github, MARKER + "\nold plan")
    _bot_comment(github, MARKER + "\nan older version's second comment")
    api, _ = client(github)
    comment, added = upsert_comment(api, 7, MARKER + "\nnew plan")
    assert (comment.id, added) == (first, False)
    assert [c["body"] for c in github.comments[7]] == [MARKER + "\nnew plan"]


def test_a_plan_comment_deleted_by_hand_is_posted_again(github: FakeGitHub) -> None:
    from pipeline.github.pr import upsert_comment
    from pipeline.render.markdown import MARKER

    gone = _bot_comment(github, MARKER + "\nold plan")
    # Someone deletes it after dmarcops listed the comments, before the edit.
    path = f"/repos/{REPOSITORY}/issues/comments/{gone}"
    github.transient[("PATCH", path)] = [(404, {"message": "Not Found"}, {})]
    api, waits = client(github)
    comment, added = upsert_comment(api, 7, MARKER + "\nnew plan")
    assert added and comment.id != gone and waits == []
    assert github.comments[7][-1]["body"] == MARKER + "\nnew plan"
