"""Signing test requests as their authors, with the test keys (tests/keys/<analyst>.pem)."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

from pipeline.gate.authoring import sign_request
from pipeline.gate.identity import Signer, load_signer
from pipeline.gate.request_loader import collect_requests, load_requests
from pipeline.gate.requests import RequestSignature
from pipeline.gate.roster import load_roster
from pipeline.records.policy_seal import current_snapshot
from pipeline.records.store import RecordStore

KEYS = Path(__file__).resolve().parent / "keys"
SIGNED_AT = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


def sign_as_author(repo: Path, request_id: str, key_name: str | None = None) -> RequestSignature:
    """Sign the request with its author's test key (or `key_name`'s)."""
    (request,) = [r for r in load_requests(repo) if r.id == request_id]
    signer = load_signer(KEYS / f"{key_name or request.author}.pem", load_roster(repo))
    return sign_request(repo, request_id, signer, SIGNED_AT)


def sign_all(repo: Path) -> None:
    """Sign every request under changes/requests/ as its author. The requests, the roster and each
    author's key are read once: sign_as_author per request would read every request each time."""
    roster = load_roster(repo)
    signers: dict[str, Signer] = {}
    for request in load_requests(repo, roster):
        if request.author not in signers:
            signers[request.author] = load_signer(KEYS / f"{request.author}.pem", roster)
        sign_request(repo, request.id, signers[request.author], SIGNED_AT, roster)


def sign_if_valid(repo: Path, request_id: str) -> None:
    """Sign the request when it loads; a test of a refused request leaves it as written."""
    if any(r.id == request_id for r in collect_requests(repo)[0]):
        sign_as_author(repo, request_id)


REPO = Path(__file__).resolve().parent.parent
GENESIS_AT = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


def signer(analyst: str, repo: Path = REPO) -> Signer:
    """The analyst's test key, as the roster of `repo` knows it."""
    return load_signer(KEYS / f"{analyst}.pem", load_roster(repo))


def genesis(root: Path, at: datetime = GENESIS_AT) -> RecordStore:
    """A repository at `root` whose ledger begins as `dmarcops init` begins it: this project's
    policy/ (copied when missing) sealed by the lead mhara."""
    if not (root / "policy").is_dir():
        shutil.copytree(REPO / "policy", root / "policy")
    store = RecordStore(root / "changes")
    store.seal_policy(current_snapshot(root), at, signer("mhara", root), genesis=True)
    return store


JCHEN = signer("jchen")
MHARA = signer("mhara")
SOKAFOR = signer("sokafor")
BOT = signer("dmarcops-bot")


def reseal(root: Path, by: str = "mhara") -> None:
    """A lead seals the working tree's policy/ (what `dmarcops policy seal` does), dated just
    after the ledger's last line so the ledger's clock keeps running forward."""
    store = RecordStore(root / "changes")
    entries = store.ledger.read()
    at = max(GENESIS_AT, *(e.at for e in entries)) + timedelta(seconds=1)
    store.seal_policy(current_snapshot(root), at, signer(by, root))


def seal_example() -> None:
    """Start the example repository's ledger again with its policy/ as it is now (run after an
    edit under the example's policy/: `.venv/bin/python tests/signing.py`). The example has no
    records, so its genesis is all there is."""
    changes = REPO / "changes"
    (changes / "ledger.jsonl").unlink(missing_ok=True)
    shutil.rmtree(changes / "policy", ignore_errors=True)
    genesis(REPO)


if __name__ == "__main__":
    seal_example()
