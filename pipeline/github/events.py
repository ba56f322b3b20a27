"""The event that started the workflow run: `GITHUB_EVENT_NAME` and the payload at `GITHUB_EVENT_PATH`.

Only the fields the gate and the apply stage use become typed values. The head SHA of a pull request
comes from the payload (`pull_request.head.sha`), never from `GITHUB_SHA`: on pull_request events
that is the test merge commit GitHub made, which no review ever approves.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.errors import EnvironmentProblem, InputError
from pipeline.github.payloads import user_id
from pipeline.load.jsonfile import load_json

PULL_REQUEST_EVENTS = ("pull_request", "pull_request_review")
PUSH = "push"
WORKFLOW_RUN = "workflow_run"


@dataclass(frozen=True)
class PullRequestEvent:
    """pull_request (opened, synchronize, reopened, ...) or pull_request_review (submitted, ...)."""

    name: str
    action: str
    number: int
    head_sha: str
    head_ref: str
    base_sha: str
    base_ref: str
    author: str  # login of whoever opened the pull request
    review_id: int | None = None  # the review that triggered a pull_request_review run
    author_id: int | None = None  # their numeric GitHub id: it survives a rename


@dataclass(frozen=True)
class PushEvent:
    ref: str  # refs/heads/main
    before: str
    after: str  # the commit pushed: for a merged pull request, its merge commit


@dataclass(frozen=True)
class WorkflowRunEvent:
    """workflow_run (completed): the unprivileged plan workflow finished for a pull request.

    Everything here comes from GitHub, not from the run's artifacts: the head commit the run was
    for, and the pull requests GitHub associates with it (empty for a fork's)."""

    action: str
    head_sha: str
    head_branch: str
    event: str  # what started the plan run: pull_request or pull_request_review
    pull_requests: tuple[int, ...]
    repository_id: int | None = None


Event = PullRequestEvent | PushEvent | WorkflowRunEvent


class _Payload:
    def __init__(self, data: Any, source: str) -> None:
        if not isinstance(data, dict):
            raise EnvironmentProblem("the event payload is not a JSON object", file=source)
        self.data = data
        self.source = source

    def get(self, *path: str, kind: type = str) -> Any:
        value: Any = self.data
        for key in path:
            value = value.get(key) if isinstance(value, dict) else None
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise EnvironmentProblem(
                f"the event payload has no {'.'.join(path)} ({kind.__name__})",
                file=self.source,
                hint="Is GITHUB_EVENT_NAME the event this payload belongs to?",
            )
        return value


def parse_event(name: str, data: Any, source: str = "event payload") -> Event:
    """The typed event from a webhook payload, as GitHub Actions writes it to GITHUB_EVENT_PATH."""
    payload = _Payload(data, source)
    if name in PULL_REQUEST_EVENTS:
        review_id = None
        if name == "pull_request_review":
            review_id = payload.get("review", "id", kind=int)
        return PullRequestEvent(
            name=name,
            action=str(payload.data.get("action") or ""),
            number=payload.get("pull_request", "number", kind=int),
            head_sha=payload.get("pull_request", "head", "sha"),
            head_ref=payload.get("pull_request", "head", "ref"),
            base_sha=payload.get("pull_request", "base", "sha"),
            base_ref=payload.get("pull_request", "base", "ref"),
            author=payload.get("pull_request", "user", "login"),
            review_id=review_id,
            author_id=_author_id(payload.data.get("pull_request")),
        )
    if name == PUSH:
        return PushEvent(
            ref=payload.get("ref"), before=payload.get("before"), after=payload.get("after")
        )
    if name == WORKFLOW_RUN:
        runs = (
            payload.data["workflow_run"]
            if isinstance(payload.data.get("workflow_run"), dict)
            else {}
        )
        numbers = []
        for pull in runs.get("pull_requests") or []:
            number = pull.get("number") if isinstance(pull, dict) else None
            if isinstance(number, int) and not isinstance(number, bool):
                numbers.append(number)
        repo_id = (
            payload.data.get("repository", {}).get("id")
            if isinstance(payload.data.get("repository"), dict)
            else None
        )
        return WorkflowRunEvent(
            action=str(payload.data.get("action") or ""),
            head_sha=payload.get("workflow_run", "head_sha"),
            head_branch=str(runs.get("head_branch") or ""),
            event=str(runs.get("event") or ""),
            pull_requests=tuple(numbers),
            repository_id=repo_id if isinstance(repo_id, int) else None,
        )
    raise InputError(
        f"dmarcops reads pull_request, pull_request_review, workflow_run and push events, not {name!r}",
        hint="Run the gate `on: pull_request` and `on: pull_request_review`, the apply `on: push`. "
        "(pull_request_target would run it with a write token on a fork's files: not supported.)",
    )


def read_event(environ: Mapping[str, str] | None = None) -> Event:
    """The event of this workflow run, from GITHUB_EVENT_NAME and GITHUB_EVENT_PATH."""
    env = os.environ if environ is None else environ
    name = env.get("GITHUB_EVENT_NAME", "")
    location = env.get("GITHUB_EVENT_PATH", "")
    if not name or not location:
        raise EnvironmentProblem(
            "GITHUB_EVENT_NAME and GITHUB_EVENT_PATH are not set: this runs inside GitHub Actions",
            hint="To try it elsewhere, write an event payload to a file and set both variables.",
        )
    path = Path(location)
    # GitHub writes it outside the repository; still a regular file within max_log_bytes.
    data = load_json(
        path,
        what="the event payload is not JSON",
        hint="GITHUB_EVENT_PATH must name the event file GitHub Actions wrote.",
        outside_ok=True,
        log=True,
    )
    return parse_event(name, data, str(path))


def _author_id(pull: Any) -> int | None:
    return user_id(pull.get("user")) if isinstance(pull, dict) else None
