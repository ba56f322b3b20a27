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
from http.client import HTTPMessage
from typing import Any

from pipeline.errors import EnvironmentProblem
from pipeline.github.payloads import (
    IssueComment,
    PullRequest,
    Review,
    Shape,
    parse_comment,
    parse_pull_request,
    parse_review,
)
from pipeline.github.transport import (
    GitHubApiError,
    SameOriginRedirects,
    error_message,
    origin_of,
    retry_wait,
)

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
        self._opener = urllib.request.build_opener(SameOriginRedirects())
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
                    message = error_message(exc.read())
                except OSError:
                    message = ""
                wait = retry_wait(method, exc.code, exc.headers, message, attempt)
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
        if origin_of(url) != origin_of(self.api_url):
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
        return parse_pull_request(self._get(path, _READ_PULLS), f"GET {path}")

    def reviews(self, number: int) -> list[Review]:
        """Every review of the pull request, oldest first (GitHub lists them chronologically)."""
        path = self._path("pulls", number, "reviews")
        return [parse_review(r, f"GET {path}") for r in self._get_all(path, _READ_PULLS)]

    def pulls_for_commit(self, sha: str) -> list[PullRequest]:
        """The pull requests a commit belongs to (for a merge commit: the PR it merged)."""
        path = self._path("commits", self._sha(sha), "pulls")
        return [parse_pull_request(p, f"GET {path}") for p in self._get_all(path, _READ_PULLS)]

    def issue_comments(self, number: int) -> list[IssueComment]:
        path = self._path("issues", number, "comments")
        return [parse_comment(c, f"GET {path}") for c in self._get_all(path, _READ_PULLS)]

    def create_comment(self, number: int, body: str) -> IssueComment:
        path = self._path("issues", number, "comments")
        data, _ = self._call("POST", self.api_url + path, path, _WRITE_COMMENTS, {"body": body})
        return parse_comment(data, f"POST {path}")

    def update_comment(self, comment_id: int, body: str) -> IssueComment:
        path = self._path("issues", "comments", comment_id)
        data, _ = self._call("PATCH", self.api_url + path, path, _WRITE_COMMENTS, {"body": body})
        return parse_comment(data, f"PATCH {path}")

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
        return int(Shape(data, f"POST {path}").field("id", kind=int))

    def repository_info(self) -> dict[str, Any]:
        """GET /repos/{owner}/{repo}: default_branch, id (the numeric id OIDC subjects carry)."""
        path = self._path()
        data = self._get(path, _READ_ADMIN)
        Shape(data, f"GET {path}").field("default_branch")
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
        Shape(data, f"GET {path}").field("id", kind=int)
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
        Shape(data, f"GET {path}").field("name")
        return dict(data)

    def deployment_branch_policies(self, name: str) -> list[dict[str, Any]]:
        """The environment's custom deployment branch (and tag) policies, at most 100: an
        environment meant for one branch has one."""
        path = self._path("environments", name, "deployment-branch-policies")
        data = self._call(
            "GET", f"{self.api_url}{path}?per_page={PER_PAGE}", path, _READ_ENVIRONMENTS
        )[0]
        policies = Shape(data, f"GET {path}").field("branch_policies", kind=list)
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
        Shape(data, f"GET {path}")
        return dict(data)
