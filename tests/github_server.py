"""GitHub's REST API for one repository, served on loopback from recorded response shapes.

Responses are built from the objects in tests/fixtures/github/ (shaped as in GitHub's REST
description), with the fields a test cares about replaced. The server keeps the state a pull request
has (its reviews, its comments, the statuses posted) and records every request it receives (method,
path, query, JSON body, headers), so a test can assert what the gate read, POSTed and PATCHed.
List endpoints paginate like GitHub: `per_page` (at most 100, and at most `page_size` here, so
tests can force several pages) and a Link header with rel="next".
"""

from __future__ import annotations

import copy
import json
import re
import threading
import urllib.parse
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "github"


def fixture(name: str) -> Any:
    return json.loads((FIXTURES / f"{name}.json").read_text(encoding="utf-8"))


ROSTER_IDS = {"jchen-msp": 7100001, "mhara-msp": 7100002, "sokafor-msp": 7100003}


def review(
    review_id: int, login: str, state: str, commit_id: str, submitted_at: str
) -> dict[str, Any]:
    """A review object as GET .../pulls/{number}/reviews lists it."""
    data: dict[str, Any] = fixture("review")
    data["id"] = review_id
    data["user"]["login"] = login
    # GitHub's numeric ids of the roster's people (policy/roster.yaml github_id); anyone else
    # keeps the fixture's id, which no roster entry holds.
    data["user"]["id"] = ROSTER_IDS.get(login.lower(), data["user"]["id"])
    data["state"] = state
    data["commit_id"] = commit_id
    data["submitted_at"] = submitted_at
    data["html_url"] = data["html_url"].replace("-80", f"-{review_id}")
    data["_links"]["html"]["href"] = data["html_url"]
    return data


def comment(comment_id: int, body: str, login: str = "github-actions[bot]") -> dict[str, Any]:
    data: dict[str, Any] = fixture("issue_comment")
    data["id"] = comment_id
    data["body"] = body
    data["user"]["login"] = login
    data["user"]["type"] = "Bot" if login.endswith("[bot]") else "User"
    data["url"] = data["url"].replace("/comments/1", f"/comments/{comment_id}")
    data["html_url"] = data["html_url"].replace("issuecomment-1", f"issuecomment-{comment_id}")
    return data


def pull_request(number: int, author: str, head_sha: str, base_sha: str) -> dict[str, Any]:
    data: dict[str, Any] = fixture("pull_request")
    data["number"] = number
    data["user"]["login"] = author
    data["user"]["id"] = ROSTER_IDS.get(author.lower(), data["user"]["id"])
    data["head"]["sha"] = head_sha
    data["base"]["sha"] = base_sha
    return data


@dataclass(frozen=True)
class Received:
    method: str
    path: str
    query: dict[str, str]
    body: Any
    headers: dict[str, str]


@dataclass
class FakeGitHub:
    repository: str
    token: str
    page_size: int = 100
    pulls: dict[int, dict[str, Any]] = field(default_factory=dict)
    reviews: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    comments: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    commit_pulls: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    statuses: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    check_runs: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    # Branch protection as GitHub keeps it: rulesets by id (GET rules/branches/{branch} is derived
    # from the active ones, as GitHub does) and classic protection by branch.
    rulesets: dict[int, dict[str, Any]] = field(default_factory=dict)
    protection: dict[str, dict[str, Any]] = field(default_factory=dict)
    # Deployment environments by name, and each one's custom deployment branch policies.
    environments: dict[str, dict[str, Any]] = field(default_factory=dict)
    branch_policies: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    default_branch: str = "main"
    # (method, path) -> (HTTP status, JSON body): answer this instead of the normal response.
    failures: dict[tuple[str, str], tuple[int, dict[str, Any]]] = field(default_factory=dict)
    # (method, path) -> answers to give first, one per request, before the normal response:
    # (HTTP status, JSON body, headers), for the retries of a transient failure.
    transient: dict[tuple[str, str], list[tuple[int, dict[str, Any], dict[str, str]]]] = field(
        default_factory=dict
    )
    received: list[Received] = field(default_factory=list)
    next_comment_id: int = 9000
    _server: ThreadingHTTPServer | None = None
    _thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        assert self._server is not None
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def requests(self, method: str, path_pattern: str = "") -> list[Received]:
        return [r for r in self.received if r.method == method and re.search(path_pattern, r.path)]

    def __enter__(self) -> FakeGitHub:
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._server is not None and self._thread is not None
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    # --- routing ----------------------------------------------------------------------------

    def answer(
        self, method: str, path: str, query: dict[str, str], body: Any
    ) -> tuple[int, Any, dict[str, str]]:
        if (method, path) in self.failures:
            status, data = self.failures[(method, path)]
            return status, data, {}
        if self.transient.get((method, path)):
            return self.transient[(method, path)].pop(0)
        prefix = f"/repos/{self.repository}"
        if path != prefix and not path.startswith(prefix + "/"):
            return _not_found()
        rest = path[len(prefix) :]
        if method == "GET" and (m := re.fullmatch(r"/pulls/(\d+)", rest)):
            number = int(m.group(1))
            return (200, self.pulls[number], {}) if number in self.pulls else _not_found()
        if method == "GET" and (m := re.fullmatch(r"/pulls/(\d+)/reviews", rest)):
            return self._page(path, query, self.reviews.get(int(m.group(1)), []))
        if method == "GET" and (m := re.fullmatch(r"/commits/([0-9a-f]{40})/pulls", rest)):
            return self._page(path, query, self.commit_pulls.get(m.group(1), []))
        if method == "GET" and (m := re.fullmatch(r"/issues/(\d+)/comments", rest)):
            return self._page(path, query, self.comments.get(int(m.group(1)), []))
        if method == "POST" and (m := re.fullmatch(r"/issues/(\d+)/comments", rest)):
            self.next_comment_id += 1
            created = comment(self.next_comment_id, body["body"])
            self.comments.setdefault(int(m.group(1)), []).append(created)
            return 201, created, {}
        if method == "PATCH" and (m := re.fullmatch(r"/issues/comments/(\d+)", rest)):
            for thread in self.comments.values():
                for existing in thread:
                    if existing["id"] == int(m.group(1)):
                        existing["body"] = body["body"]
                        return 200, existing, {}
            return _not_found()
        if method == "DELETE" and (m := re.fullmatch(r"/issues/comments/(\d+)", rest)):
            for thread in self.comments.values():
                for existing in list(thread):
                    if existing["id"] == int(m.group(1)):
                        thread.remove(existing)
                        return 204, None, {}
            return _not_found()
        if method == "POST" and (m := re.fullmatch(r"/statuses/([0-9a-f]{40})", rest)):
            if not isinstance(body.get("description", ""), str) or len(body["description"]) > 140:
                return 422, {"message": "Validation Failed"}, {}
            status = fixture("status")
            status.update({k: body.get(k) for k in ("state", "description", "context")})
            status["target_url"] = body.get("target_url")
            self.statuses.setdefault(m.group(1), []).append(copy.deepcopy(status))
            return 201, status, {}
        if method == "POST" and rest == "/check-runs":
            if not isinstance(body, dict) or not isinstance(body.get("head_sha"), str):
                return 422, {"message": "Invalid request", "errors": ["head_sha"]}, {}
            run = fixture("check_run")
            run["id"] = 100 + sum(len(v) for v in self.check_runs.values())
            run.update(
                {k: body[k] for k in ("name", "head_sha", "status", "conclusion") if k in body}
            )
            run["output"].update(body.get("output") or {})
            self.check_runs.setdefault(body["head_sha"], []).append(run)
            return 201, run, {}
        if method == "GET" and rest == "":
            repo = fixture("repository")
            repo["default_branch"] = self.default_branch
            return 200, repo, {}
        if method == "GET" and rest == "/rulesets":
            summaries = [
                {k: v for k, v in r.items() if k not in ("rules", "conditions", "bypass_actors")}
                for r in self.rulesets.values()
            ]
            return self._page(path, query, summaries)
        if method == "GET" and (m := re.fullmatch(r"/rulesets/(\d+)", rest)):
            found = self.rulesets.get(int(m.group(1)))
            return (200, found, {}) if found else _not_found()
        if method == "GET" and (m := re.fullmatch(r"/rules/branches/([^/]+)", rest)):
            in_force = [
                {
                    **rule,
                    "ruleset_source_type": "Repository",
                    "ruleset_source": self.repository,
                    "ruleset_id": r["id"],
                }
                for r in self.rulesets.values()
                if r.get("enforcement") == "active" and self._targets(r, m.group(1))
                for rule in r.get("rules", [])
            ]
            return self._page(path, query, in_force)
        if method == "GET" and (m := re.fullmatch(r"/branches/([^/]+)/protection", rest)):
            if m.group(1) in self.protection:
                return 200, self.protection[m.group(1)], {}
            return 404, {"message": "Branch not protected"}, {}
        if method == "GET" and (m := re.fullmatch(r"/environments/([^/]+)", rest)):
            found = self.environments.get(urllib.parse.unquote(m.group(1)))
            return (200, found, {}) if found else _not_found()
        if method == "GET" and (
            m := re.fullmatch(r"/environments/([^/]+)/deployment-branch-policies", rest)
        ):
            name = urllib.parse.unquote(m.group(1))
            if name not in self.environments:
                return _not_found()
            policies = self.branch_policies.get(name, [])
            return 200, {"total_count": len(policies), "branch_policies": policies}, {}
        return _not_found()

    def _targets(self, ruleset: dict[str, Any], branch: str) -> bool:
        include = ruleset.get("conditions", {}).get("ref_name", {}).get("include", [])
        names = {"~ALL", f"refs/heads/{branch}"}
        if branch == self.default_branch:
            names.add("~DEFAULT_BRANCH")
        return bool(names & set(include))

    def _page(
        self, path: str, query: dict[str, str], items: list[dict[str, Any]]
    ) -> tuple[int, Any, dict[str, str]]:
        per_page = min(int(query.get("per_page", "30")), 100, self.page_size)
        page = int(query.get("page", "1"))
        chunk = items[(page - 1) * per_page : page * per_page]
        headers: dict[str, str] = {}
        if page * per_page < len(items):
            nxt = f"{self.url}{path}?per_page={query.get('per_page', '30')}&page={page + 1}"
            headers["Link"] = f'<{nxt}>; rel="next"'
        return 200, chunk, headers


def _not_found() -> tuple[int, Any, dict[str, str]]:
    return (
        404,
        {"message": "Not Found", "documentation_url": "https://docs.github.com/rest"},
        {},
    )


def _handler(api: FakeGitHub) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _serve(self) -> None:
            parts = urllib.parse.urlsplit(self.path)
            query = dict(urllib.parse.parse_qsl(parts.query))
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            body = json.loads(raw) if raw else None
            api.received.append(
                Received(self.command, parts.path, query, body, dict(self.headers.items()))
            )
            headers: dict[str, str] = {}
            if self.headers.get("Authorization") != f"Bearer {api.token}":
                status, data = 401, {"message": "Bad credentials"}
            else:
                status, data, headers = api.answer(self.command, parts.path, query, body)
            payload = json.dumps(data).encode() if data is not None else b""
            self.send_response(status)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(payload)))
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(payload)

        do_GET = _serve
        do_POST = _serve
        do_PATCH = _serve
        do_DELETE = _serve

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler
