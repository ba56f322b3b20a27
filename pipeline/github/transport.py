"""What the GitHub client does with an HTTP answer besides reading it: redirects, retries, errors.

Redirects are followed only within the API's origin (the token never leaves it); transient
answers and rate limits are retried as GitHub's REST guidance asks; an error status becomes a
`GitHubApiError` (exit 1) with GitHub's own message.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.parse
import urllib.request
from http.client import HTTPMessage
from typing import Any

from pipeline.errors import EnvironmentProblem


class SameOriginRedirects(urllib.request.HTTPRedirectHandler):
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
        if origin_of(newurl) != origin_of(req.full_url):
            return None  # urllib then raises the 3xx as an HTTPError
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def origin_of(url: str) -> tuple[str, str]:
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


def retry_wait(method: str, status: int, headers: Any, message: str, attempt: int) -> float | None:
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


def error_message(body: bytes) -> str:
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
