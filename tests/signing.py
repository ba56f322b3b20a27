"""Signing test requests as their authors, with the test keys (tests/keys/<analyst>.pem)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from pipeline.gate.identity import load_signer
from pipeline.gate.requests import RequestSignature, collect_requests, load_requests, sign_request
from pipeline.gate.roster import load_roster

KEYS = Path(__file__).resolve().parent / "keys"
SIGNED_AT = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


def sign_as_author(repo: Path, request_id: str, key_name: str | None = None) -> RequestSignature:
    """Sign the request with its author's test key (or `key_name`'s)."""
    (request,) = [r for r in load_requests(repo) if r.id == request_id]
    signer = load_signer(KEYS / f"{key_name or request.author}.pem", load_roster(repo))
    return sign_request(repo, request_id, signer, SIGNED_AT)


def sign_all(repo: Path) -> None:
    """Sign every request under changes/requests/ as its author."""
    for request in load_requests(repo):
        sign_as_author(repo, request.id)


def sign_if_valid(repo: Path, request_id: str) -> None:
    """Sign the request when it loads; a test of a refused request leaves it as written."""
    if any(r.id == request_id for r in collect_requests(repo)[0]):
        sign_as_author(repo, request_id)
