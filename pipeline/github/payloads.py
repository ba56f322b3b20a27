"""GitHub's JSON answers as typed values: pull requests, reviews, issue comments.

Each answer is read field by field (`Shape`): a field of the wrong kind is an error naming the
endpoint and the field, never a KeyError or a value of the wrong type passed on.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pipeline.errors import EnvironmentProblem


@dataclass(frozen=True)
class PullRequest:
    number: int
    state: str  # open | closed
    author: str  # user.login of whoever opened it
    head_sha: str
    head_ref: str
    base_sha: str
    base_ref: str
    merged: bool
    merge_commit_sha: str | None
    author_id: int | None = None  # user.id: the account, whatever its login is today


@dataclass(frozen=True)
class Review:
    """A pull request review, as GET /repos/{owner}/{repo}/pulls/{number}/reviews lists it."""

    id: int
    login: str | None  # None when the reviewer's account was deleted (GitHub shows "ghost")
    state: str  # APPROVED | CHANGES_REQUESTED | COMMENTED | DISMISSED | PENDING
    submitted_at: datetime | None  # None while PENDING
    commit_id: str | None  # None when the reviewed commit was garbage-collected (force-push)
    html_url: str = ""
    user_id: int | None = None  # GitHub's numeric id: it survives a rename, a login does not


@dataclass(frozen=True)
class IssueComment:
    id: int
    body: str
    login: str | None
    html_url: str = ""


def _time(text: Any) -> datetime | None:
    if not isinstance(text, str) or not text:
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)
    except ValueError:
        return None


def _login(user: Any) -> str | None:
    if isinstance(user, dict) and isinstance(user.get("login"), str):
        return str(user["login"])
    return None


class Shape:
    """Reads fields of one response object; a missing or mistyped field is an EnvironmentProblem."""

    def __init__(self, data: Any, endpoint: str) -> None:
        if not isinstance(data, dict):
            raise EnvironmentProblem(f"unexpected answer from {endpoint}: not a JSON object")
        self.data: dict[str, Any] = data
        self.endpoint = endpoint

    def field(self, *path: str, kind: type = str) -> Any:
        value: Any = self.data
        for key in path:
            value = value.get(key) if isinstance(value, dict) else None
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise EnvironmentProblem(
                f"unexpected answer from {self.endpoint}: {'.'.join(path)} is missing or not "
                f"a {kind.__name__}"
            )
        return value


def parse_pull_request(data: Any, endpoint: str) -> PullRequest:
    shape = Shape(data, endpoint)
    merge_sha = shape.data.get("merge_commit_sha")
    return PullRequest(
        number=shape.field("number", kind=int),
        state=shape.field("state"),
        author=shape.field("user", "login"),
        head_sha=shape.field("head", "sha"),
        head_ref=shape.field("head", "ref"),
        base_sha=shape.field("base", "sha"),
        base_ref=shape.field("base", "ref"),
        # `merged` is only in the full object; `merged_at` is in the listing's too.
        merged=bool(shape.data.get("merged") or shape.data.get("merged_at")),
        merge_commit_sha=merge_sha if isinstance(merge_sha, str) else None,
        author_id=user_id(shape.data.get("user")),
    )


def parse_review(data: Any, endpoint: str) -> Review:
    shape = Shape(data, endpoint)
    commit = shape.data.get("commit_id")
    return Review(
        id=shape.field("id", kind=int),
        login=_login(shape.data.get("user")),
        state=shape.field("state").upper(),
        submitted_at=_time(shape.data.get("submitted_at")),
        commit_id=commit if isinstance(commit, str) else None,
        html_url=str(shape.data.get("html_url") or ""),
        user_id=user_id(shape.data.get("user")),
    )


def user_id(user: Any) -> int | None:
    """GitHub's numeric id of a user object (None when absent or not an integer)."""
    value = user.get("id") if isinstance(user, dict) else None
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def parse_comment(data: Any, endpoint: str) -> IssueComment:
    shape = Shape(data, endpoint)
    body = shape.data.get("body")
    return IssueComment(
        id=shape.field("id", kind=int),
        body=body if isinstance(body, str) else "",
        login=_login(shape.data.get("user")),
        html_url=str(shape.data.get("html_url") or ""),
    )
