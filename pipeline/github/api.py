"""A small typed client for the few GitHub REST endpoints the gate uses, over urllib.

Configured the way GitHub Actions configures every step: `GITHUB_API_URL` (default
https://api.github.com; GitHub Enterprise Server sets its own), `GITHUB_TOKEN` (the workflow's token,
passed in `env:`) and `GITHUB_REPOSITORY` (owner/name). The token goes into the Authorization header
and nowhere else: not into errors, not into `repr`, never to another host (redirects and pagination
links that leave the API's origin are refused).

Every HTTP failure becomes an `EnvironmentProblem` (exit 1) naming the endpoint, the status, GitHub's
message and, where the cause is usually a missing workflow permission, the `permissions:` entry.
"""

from __future__ import annotations

import json
import os
import re
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from http.client import HTTPMessage
from typing import Any

from pipeline.errors import EnvironmentProblem

DEFAULT_API_URL = "https://api.github.com"
API_VERSION = "2022-11-28"
PER_PAGE = 100
MAX_PAGES = 100  # 10,000 reviews or comments: far beyond any pull request we gate
TIMEOUT_SECONDS = 30.0

_REPOSITORY = re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$")
_SHA = re.compile(r"^[0-9a-f]{40}([0-9a-f]{24})?$")  # SHA-1, or SHA-256 repositories
_NEXT_LINK = re.compile(r'<([^>]+)>\s*;\s*rel="?next"?')
_STATES = ("error", "failure", "pending", "success")
STATUS_DESCRIPTION_LIMIT = 140  # GitHub refuses longer commit-status descriptions

_READ_PULLS = "the workflow needs `permissions: pull-requests: read` (and `contents: read`)"
_WRITE_COMMENTS = (
    "the workflow needs `permissions: pull-requests: write` (and `issues: write`); a pull request "
    "from a fork gets a read-only token whatever the workflow asks for"
)
_WRITE_STATUSES = "the workflow needs `permissions: statuses: write`"
_WRITE_CHECKS = (
    "the workflow needs `permissions: checks: write`; only the privileged gate (gate.yml, on "
    "workflow_run from the default branch) has it"
)
_READ_ADMIN = (
    "reading rulesets and branch protection needs a token with the repository's Administration "
    "(read) permission: a fine-grained token or a GitHub App, not the workflow's GITHUB_TOKEN"
)
_READ_ENVIRONMENTS = (
    "reading deployment environments needs a token with the repository's Actions (read) "
    "permission (a fine-grained token or a GitHub App)"
)
CHECK_CONCLUSIONS = ("success", "failure", "neutral", "cancelled", "action_required")
CHECK_TITLE_LIMIT = 255
CHECK_SUMMARY_LIMIT = 65_535  # GitHub refuses a longer output.summary


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


class _Shape:
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


def _pull_request(data: Any, endpoint: str) -> PullRequest:
    shape = _Shape(data, endpoint)
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


def _review(data: Any, endpoint: str) -> Review:
    shape = _Shape(data, endpoint)
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


def _comment(data: Any, endpoint: str) -> IssueComment:
    shape = _Shape(data, endpoint)
    body = shape.data.get("body")
    return IssueComment(
        id=shape.field("id", kind=int),
        body=body if isinstance(body, str) else "",
        login=_login(shape.data.get("user")),
        html_url=str(shape.data.get("html_url") or ""),
    )


class _SameOriginRedirects(urllib.request.HTTPRedirectHandler):
    """Follow a redirect (a renamed repository) only within the API's origin: urllib would carry
    the Authorization header to wherever the Location points."""

    def redirect_request(
        self,
        req: urllib.request.Request,
        fp: Any,
        code: int,
        msg: str,
        headers: HTTPMessage,
        newurl: str,
    ) -> urllib.request.Request | None:
        if _origin(newurl) != _origin(req.full_url):
            return None  # urllib then raises the 3xx as an HTTPError
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def _origin(url: str) -> tuple[str, str]:
    parts = urllib.parse.urlsplit(url)
    return parts.scheme.lower(), parts.netloc.lower()


# Transient answers worth another try (GitHub's REST guidance): 5xx for requests that do the same
# thing twice (GET, PUT, PATCH, DELETE; a POST could create a second comment), and rate limits for
# any request (GitHub did not act on it). Waits follow Retry-After or x-ratelimit-reset, else
# 1, 2, 4 s; nothing waits more than MAX_RETRY_WAIT (a limit further off is reported instead).
RETRY_STATUSES = frozenset({500, 502, 503, 504})
IDEMPOTENT = frozenset({"GET", "PUT", "PATCH", "DELETE"})
MAX_ATTEMPTS = 4
MAX_RETRY_WAIT = 60.0
SECONDARY_LIMIT_WAIT = 60.0  # "wait at least one minute" (GitHub's REST best practices)


class GitHubApiError(EnvironmentProblem):
    """GitHub answered with an error status (kept, so a caller can tell a 404 from the rest)."""

    def __init__(self, message: str, *, hint: str = "", status: int) -> None:
        super().__init__(message, hint=hint)
        self.status = status


def _retry_wait(method: str, status: int, headers: Any, message: str, attempt: int) -> float | None:
    """Seconds to wait before trying again, or None: do not retry."""
    if attempt >= MAX_ATTEMPTS:
        return None
    backoff = float(2 ** (attempt - 1))
    retry_after = headers.get("Retry-After") if headers is not None else None
    limited = status == 429 or (
        status == 403
        and (
            retry_after is not None
            or "secondary rate limit" in message.lower()
            or (headers is not None and headers.get("x-ratelimit-remaining") == "0")
        )
    )
    if limited:
        # GitHub's documented order: Retry-After; else, with no requests left, the reset time;
        # else a secondary limit, for which GitHub asks for at least a minute.
        wait = SECONDARY_LIMIT_WAIT if status == 403 else backoff
        if retry_after is not None and retry_after.strip().isdigit():
            wait = float(retry_after.strip())
        elif headers is not None and (reset := headers.get("x-ratelimit-reset", "")).isdigit():
            wait = max(0.0, float(reset) - time.time())
        return wait if wait <= MAX_RETRY_WAIT else None
    if status in RETRY_STATUSES and method in IDEMPOTENT:
        return backoff
    return None


def _message(body: bytes) -> str:
    try:
        data = json.loads(body.decode("utf-8", "replace"))
    except ValueError:
        return ""
    if not isinstance(data, dict):
        return ""
    message = str(data.get("message") or "")
    errors = data.get("errors")
    if isinstance(errors, list) and errors:
        details = [str(e.get("message") or e.get("code") or e) for e in errors if e]
        message += f" ({'; '.join(details)})" if details else ""
    return message[:300]


class GitHubClient:
    """The REST calls the pull-request gate and the apply stage need, with typed answers."""

    def __init__(
        self,
        repository: str,
        token: str,
        api_url: str = DEFAULT_API_URL,
        *,
        timeout: float = TIMEOUT_SECONDS,
    ) -> None:
        if not _REPOSITORY.match(repository):
            raise EnvironmentProblem(
                f"GITHUB_REPOSITORY {repository!r} is not OWNER/NAME",
                hint="GitHub Actions sets it; elsewhere export GITHUB_REPOSITORY=owner/name.",
            )
        parts = urllib.parse.urlsplit(api_url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise EnvironmentProblem(
                f"GITHUB_API_URL {api_url!r} is not an http(s) URL",
                hint="Leave it unset for github.com; GitHub Enterprise Server sets it itself.",
            )
        self.repository = repository
        self.api_url = api_url.rstrip("/")
        self.timeout = timeout
        self._token = token
        self._opener = urllib.request.build_opener(_SameOriginRedirects())
        # How long to wait before a retry; tests pass a recorder instead of time.sleep.
        self.sleep: Any = time.sleep

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> GitHubClient:
        env = os.environ if environ is None else environ
        token = env.get("GITHUB_TOKEN", "")
        if not token:
            raise EnvironmentProblem(
                "GITHUB_TOKEN is not set",
                hint="Pass the workflow's token to the step: `env: GITHUB_TOKEN: "
                "${{ github.token }}`.",
            )
        repository = env.get("GITHUB_REPOSITORY", "")
        if not repository:
            raise EnvironmentProblem(
                "GITHUB_REPOSITORY is not set",
                hint="GitHub Actions sets it; elsewhere export GITHUB_REPOSITORY=owner/name.",
            )
        return cls(repository, token, env.get("GITHUB_API_URL") or DEFAULT_API_URL)

    def __repr__(self) -> str:
        return f"GitHubClient({self.repository!r}, api_url={self.api_url!r})"

    # --- transport --------------------------------------------------------------------------

    def _call(
        self, method: str, url: str, endpoint: str, permission: str, body: Any = None
    ) -> tuple[Any, HTTPMessage]:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(url, data=data, method=method)  # noqa: S310 - http(s) only
        request.add_header("Accept", "application/vnd.github+json")
        request.add_header("X-GitHub-Api-Version", API_VERSION)
        request.add_header("User-Agent", "dmarcops")
        request.add_header("Authorization", f"Bearer {self._token}")
        if data is not None:
            request.add_header("Content-Type", "application/json")
        attempt = 1
        while True:
            try:
                with self._opener.open(request, timeout=self.timeout) as response:
                    raw = response.read()
                    headers = response.headers
                break
            except urllib.error.HTTPError as exc:
                try:
                    message = _message(exc.read())
                except OSError:
                    message = ""
                wait = _retry_wait(method, exc.code, exc.headers, message, attempt)
                if wait is None:
                    raise self._problem(method, endpoint, exc, permission, message) from None
                self.sleep(wait)
                attempt += 1
            except (urllib.error.URLError, TimeoutError, OSError) as exc:
                reason = getattr(exc, "reason", exc)
                raise EnvironmentProblem(
                    f"GitHub API {method} {endpoint}: cannot reach {self.api_url}: {reason}",
                    hint="Check GITHUB_API_URL and the runner's network.",
                ) from None
        if not raw:
            return None, headers
        try:
            return json.loads(raw.decode("utf-8")), headers
        except ValueError:
            raise EnvironmentProblem(
                f"GitHub API {method} {endpoint}: the answer is not JSON"
            ) from None

    def _problem(
        self,
        method: str,
        endpoint: str,
        exc: urllib.error.HTTPError,
        permission: str,
        message: str,
    ) -> EnvironmentProblem:
        status = exc.code
        message = message.replace(self._token, "***") if self._token else message
        headers = exc.headers
        if status == 401:
            hint = (
                "GitHub refused the token: pass the workflow's own token "
                "(`env: GITHUB_TOKEN: ${{ github.token }}`), not an expired one."
            )
        elif (
            status in (403, 429)
            and headers is not None
            and headers.get("x-ratelimit-remaining") == "0"
        ):
            reset = headers.get("x-ratelimit-reset", "")
            hint = f"The API rate limit is used up (resets at epoch {reset}); run again later."
        elif status == 403:
            hint = f"Permission denied: {permission}."
        elif status == 404:
            hint = (
                f"Check GITHUB_REPOSITORY ({self.repository}) and the number; a token that cannot "
                f"see the repository also gets 404 ({permission})."
            )
        elif 300 <= status < 400:
            hint = (
                "GitHub redirected to another host; the token is only ever sent to GITHUB_API_URL."
            )
        else:
            hint = ""
        text = f"GitHub API {method} {endpoint} answered {status}"
        return GitHubApiError(f"{text}: {message}" if message else text, hint=hint, status=status)

    def _path(self, *parts: str | int) -> str:
        owner, name = self.repository.split("/")
        quoted = [urllib.parse.quote(str(p), safe="") for p in parts]
        return "/".join(["/repos", owner, name, *quoted])

    def _get(self, path: str, permission: str) -> Any:
        return self._call("GET", self.api_url + path, path, permission)[0]

    def _get_all(
        self, path: str, permission: str, query: Mapping[str, str] | None = None
    ) -> list[Any]:
        """Every page of a list endpoint (`per_page=100`, then the Link header's rel="next")."""
        params = urllib.parse.urlencode({**(query or {}), "per_page": str(PER_PAGE)})
        url: str | None = f"{self.api_url}{path}?{params}"
        items: list[Any] = []
        seen: set[str] = set()
        while url is not None:
            if url in seen or len(seen) >= MAX_PAGES:
                raise EnvironmentProblem(f"GitHub API GET {path}: pagination does not end")
            seen.add(url)
            page, headers = self._call("GET", url, path, permission)
            if not isinstance(page, list):
                raise EnvironmentProblem(f"unexpected answer from GET {path}: not a JSON list")
            items.extend(page)
            url = self._next_page(headers.get("Link", ""), path)
        return items

    def _next_page(self, link: str, path: str) -> str | None:
        match = _NEXT_LINK.search(link or "")
        if match is None:
            return None
        url: str = urllib.parse.urljoin(self.api_url + "/", str(match.group(1)))
        if _origin(url) != _origin(self.api_url):
            raise EnvironmentProblem(
                f"GitHub API GET {path}: the next page is on another host",
                hint="The token is only ever sent to GITHUB_API_URL.",
            )
        return url

    @staticmethod
    def _sha(sha: str) -> str:
        if not _SHA.match(sha):
            raise EnvironmentProblem(f"{sha!r} is not a full commit SHA")
        return sha

    # --- endpoints --------------------------------------------------------------------------

    def pull_request(self, number: int) -> PullRequest:
        path = self._path("pulls", number)
        return _pull_request(self._get(path, _READ_PULLS), f"GET {path}")

    def reviews(self, number: int) -> list[Review]:
        """Every review of the pull request, oldest first (GitHub lists them chronologically)."""
        path = self._path("pulls", number, "reviews")
        return [_review(r, f"GET {path}") for r in self._get_all(path, _READ_PULLS)]

    def pulls_for_commit(self, sha: str) -> list[PullRequest]:
        """The pull requests a commit belongs to (for a merge commit: the PR it merged)."""
        path = self._path("commits", self._sha(sha), "pulls")
        return [_pull_request(p, f"GET {path}") for p in self._get_all(path, _READ_PULLS)]

    def issue_comments(self, number: int) -> list[IssueComment]:
        path = self._path("issues", number, "comments")
        return [_comment(c, f"GET {path}") for c in self._get_all(path, _READ_PULLS)]

    def create_comment(self, number: int, body: str) -> IssueComment:
        path = self._path("issues", number, "comments")
        data, _ = self._call("POST", self.api_url + path, path, _WRITE_COMMENTS, {"body": body})
        return _comment(data, f"POST {path}")

    def update_comment(self, comment_id: int, body: str) -> IssueComment:
        path = self._path("issues", "comments", comment_id)
        data, _ = self._call("PATCH", self.api_url + path, path, _WRITE_COMMENTS, {"body": body})
        return _comment(data, f"PATCH {path}")

    def delete_comment(self, comment_id: int) -> None:
        path = self._path("issues", "comments", comment_id)
        self._call("DELETE", self.api_url + path, path, _WRITE_COMMENTS)

    def set_status(
        self,
        sha: str,
        state: str,
        context: str,
        description: str,
        target_url: str | None = None,
    ) -> None:
        """A commit status on `sha`; the latest one per context is what branch protection reads."""
        if state not in _STATES:
            raise ValueError(f"commit status state {state!r} is not one of {_STATES}")
        if len(description) > STATUS_DESCRIPTION_LIMIT:
            description = description[: STATUS_DESCRIPTION_LIMIT - 3] + "..."
        body: dict[str, str] = {"state": state, "context": context, "description": description}
        if target_url:
            body["target_url"] = target_url
        path = self._path("statuses", self._sha(sha))
        self._call("POST", self.api_url + path, path, _WRITE_STATUSES, body)

    def create_check_run(
        self,
        sha: str,
        name: str,
        conclusion: str,
        title: str,
        summary: str,
        details_url: str | None = None,
    ) -> int:
        """A completed check run on `sha`, created as whoever owns the token: with the workflow's
        GITHUB_TOKEN that is the GitHub Actions app (id 15368), which a ruleset can pin the
        required check to. Returns its id."""
        if conclusion not in CHECK_CONCLUSIONS:
            raise ValueError(
                f"check run conclusion {conclusion!r} is not one of {CHECK_CONCLUSIONS}"
            )
        body: dict[str, Any] = {
            "name": name,
            "head_sha": self._sha(sha),
            "status": "completed",
            "conclusion": conclusion,
            "output": {
                "title": title[:CHECK_TITLE_LIMIT],
                "summary": summary[:CHECK_SUMMARY_LIMIT],
            },
        }
        if details_url:
            body["details_url"] = details_url
        path = self._path("check-runs")
        data, _ = self._call("POST", self.api_url + path, path, _WRITE_CHECKS, body)
        return int(_Shape(data, f"POST {path}").field("id", kind=int))

    def repository_info(self) -> dict[str, Any]:
        """GET /repos/{owner}/{repo}: default_branch, id (the numeric id OIDC subjects carry)."""
        path = self._path()
        data = self._get(path, _READ_ADMIN)
        _Shape(data, f"GET {path}").field("default_branch")
        return dict(data)

    def branch_rules(self, branch: str) -> list[dict[str, Any]]:
        """Every rule in force on `branch`, from all rulesets (repository and organisation)."""
        path = self._path("rules", "branches", branch)
        return [r for r in self._get_all(path, _READ_ADMIN) if isinstance(r, dict)]

    def rulesets(self) -> list[dict[str, Any]]:
        """The repository's rulesets and its organisation's (summaries: id, name, enforcement)."""
        path = self._path("rulesets")
        return [
            r
            for r in self._get_all(path, _READ_ADMIN, {"includes_parents": "true"})
            if isinstance(r, dict)
        ]

    def ruleset(self, ruleset_id: int) -> dict[str, Any]:
        """One ruleset in full: rules, conditions and bypass_actors (visible to admins)."""
        path = self._path("rulesets", ruleset_id)
        data = self._get(path, _READ_ADMIN)
        _Shape(data, f"GET {path}").field("id", kind=int)
        return dict(data)

    def environment(self, name: str) -> dict[str, Any] | None:
        """A deployment environment (protection rules, deployment branch policy); None when the
        repository has no environment of that name (GitHub: 404)."""
        path = self._path("environments", name)
        try:
            data = self._get(path, _READ_ENVIRONMENTS)
        except GitHubApiError as exc:
            if exc.status == 404:
                return None
            raise
        _Shape(data, f"GET {path}").field("name")
        return dict(data)

    def deployment_branch_policies(self, name: str) -> list[dict[str, Any]]:
        """The environment's custom deployment branch (and tag) policies, at most 100: an
        environment meant for one branch has one."""
        path = self._path("environments", name, "deployment-branch-policies")
        data = self._call(
            "GET", f"{self.api_url}{path}?per_page={PER_PAGE}", path, _READ_ENVIRONMENTS
        )[0]
        policies = _Shape(data, f"GET {path}").field("branch_policies", kind=list)
        total = data.get("total_count") if isinstance(data, dict) else None
        if isinstance(total, int) and total > len(policies):
            raise EnvironmentProblem(
                f"GitHub API GET {path}: {total} deployment branch policies; dmarcops reads at "
                f"most {PER_PAGE}",
                hint="An environment the pipeline uses should allow the default branch only.",
            )
        return [p for p in policies if isinstance(p, dict)]

    def branch_protection(self, branch: str) -> dict[str, Any] | None:
        """Classic branch protection of `branch`; None when the branch has none (GitHub: 404)."""
        path = self._path("branches", branch, "protection")
        try:
            data = self._get(path, _READ_ADMIN)
        except EnvironmentProblem as exc:
            if " answered 404" in exc.message:
                return None
            raise
        _Shape(data, f"GET {path}")
        return dict(data)
