"""Approvals bound to a plan hash and a request hash, and the seed's approval chain by risk level.

An approval says: analyst A approved request R, with content hash C, as planned in plan H, at time
T. It is an Ed25519 signature over exactly those five values, so it can be checked offline, for as
long as the roster keeps A's public key, and it stops counting the moment the plan changes or
the request is edited (a `covers:` widened, a `client_approval` added after the review).

Which approvals a change needs, and from whom, is decided in one place: pipeline.gate.decide.
This module only says whether one approval is genuine and about this plan and request
(`not_counting`).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
)

from pipeline.errors import InputError
from pipeline.gate.identity import Signer, signature_holds
from pipeline.gate.requests import REQUEST_ID, ChangeRequest
from pipeline.gate.roster import Analyst, Roster
from pipeline.load.files import make_dir
from pipeline.load.jsonfile import load_json
from pipeline.model import RiskLevel

APPROVALS_DIR = Path("changes") / "approvals"
SIGNED = "signed"
GITHUB = "github"
TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
# 2: the signed payload names the request's content hash (request_sha256). Format-1 files are still
# read, so they can be named as not counting.
FORMAT_VERSION = 2
PLAN_HASH = re.compile(r"^[0-9a-f]{64}$")
ANALYST_ID = re.compile(r"^[a-z][a-z0-9]*(-[a-z0-9]+)*$")


def utc_text(at: datetime) -> str:
    return at.astimezone(UTC).strftime(TIME_FORMAT)


def signed_payload(
    plan_hash: str,
    request_id: str,
    analyst: str,
    approved_at: datetime,
    request_sha256: str,
    simulated: bool = False,
) -> bytes:
    """Canonical JSON (sorted keys, no spaces) of exactly what an approval vouches for."""
    fields: dict[str, Any] = {
        "analyst": analyst,
        "approved_at": utc_text(approved_at),
        "plan_hash": plan_hash,
        "request_id": request_id,
        "request_sha256": request_sha256,
    }
    if simulated:
        # Signed, so a rehearsal's approval cannot be passed off as a real one by editing a flag.
        fields["simulated"] = True
    return json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


@dataclass(frozen=True)
class Approval:
    plan_hash: str
    request_id: str
    analyst: str  # roster id
    approved_at: datetime  # UTC, whole seconds
    source: str = SIGNED  # "signed"; the GitHub review source adds "github"
    reference: str = ""  # where it came from: the approval file, a review URL
    signature: str = ""  # base64 Ed25519 signature of `payload()`
    # The content hash of the request as approved (ChangeRequest.sha256); "" for a GitHub review,
    # which approves a commit and so the request file in it.
    request_sha256: str = ""
    # Given at an injected time in a sandbox rehearsal (pipeline.clock), not by the system clock.
    simulated: bool = False

    def payload(self) -> bytes:
        return signed_payload(
            self.plan_hash,
            self.request_id,
            self.analyst,
            self.approved_at,
            self.request_sha256,
            self.simulated,
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "format_version": FORMAT_VERSION,
            "plan_hash": self.plan_hash,
            "request_id": self.request_id,
            "request_sha256": self.request_sha256,
            "analyst": self.analyst,
            "approved_at": utc_text(self.approved_at),
            "source": self.source,
            "signature": self.signature,
            "simulated": self.simulated,
        }

    @classmethod
    def from_json(cls, data: Any, reference: str = "") -> Approval:
        """ValueError naming the field when `data` is not an approval."""
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
        for key in ("plan_hash", "request_id", "analyst", "approved_at", "source", "signature"):
            if not isinstance(data.get(key), str):
                raise ValueError(f"{key!r} is missing or not a string")
        try:
            at = datetime.strptime(data["approved_at"], TIME_FORMAT).replace(tzinfo=UTC)
        except ValueError:
            raise ValueError(f"approved_at {data['approved_at']!r} is not a UTC time") from None
        return cls(
            plan_hash=data["plan_hash"],
            request_id=data["request_id"],
            analyst=data["analyst"],
            approved_at=at,
            source=data["source"],
            reference=reference,
            signature=data["signature"],
            # Absent in format 1: such an approval names no request content and does not count.
            request_sha256=str(data.get("request_sha256", "")),
            simulated=data.get("simulated") is True,
        )


def sign(
    key: Ed25519PrivateKey | Signer,
    plan_hash: str,
    request_id: str,
    analyst: str,
    approved_at: datetime,
    request_sha256: str,
    *,
    simulated: bool = False,
) -> Approval:
    at = approved_at.astimezone(UTC).replace(microsecond=0)
    payload = signed_payload(plan_hash, request_id, analyst, at, request_sha256, simulated)
    # A Signer may be an OpenSSH key (an armored sshsig); a bare key signs raw Ed25519.
    signature = (
        key.sign(payload)
        if isinstance(key, Signer)
        else base64.b64encode(key.sign(payload)).decode()
    )
    return Approval(
        plan_hash, request_id, analyst, at, SIGNED, "", signature, request_sha256, simulated
    )


def _signature_ok(approval: Approval, analyst: Analyst) -> bool:
    # Any of the person's keys (a rotation keeps the old one); raw Ed25519 or sshsig. The
    # automation's key (role automation) never approves anything.
    return analyst.is_person and signature_holds(
        analyst.public_keys(), approval.payload(), approval.signature
    )


# The reference pipeline.github.reviews gives an approval read from a GitHub review.
GITHUB_REVIEW_REFERENCE = re.compile(
    r"^GitHub review [0-9]+ by @(?P<login>[A-Za-z0-9-]+(\[bot\])?)( \(id (?P<id>[0-9]{1,12})\))?"
    r" on [0-9a-f]{7,64}$"
)


def _github_login_ok(approval: Approval, analyst: Analyst) -> bool:
    # The review was read from GitHub's API at gate time, so the API vouches for who submitted it:
    # it verifies when that login is the analyst's GitHub login in the roster. A file under
    # changes/approvals/ claiming source "github" never gets here with such a reference: its
    # reference is its path, so it does not verify.
    match = GITHUB_REVIEW_REFERENCE.match(approval.reference)
    if match is None or approval.signature:
        return False
    if match.group("id") is not None:  # a renamed account: its numeric id is the roster's
        return analyst.github_id is not None and int(match.group("id")) == analyst.github_id
    return match.group("login").lower() == analyst.github.lower()


# How each source proves who approved, behind the same `verify`: signed approvals carry their
# proof; GitHub reviews are proven by the API they were read from.
VERIFIERS: dict[str, Callable[[Approval, Analyst], bool]] = {
    SIGNED: _signature_ok,
    GITHUB: _github_login_ok,
}


def verify(approval: Approval, roster: Roster) -> bool:
    """True when the approval is what its analyst signed, checked with the roster's key only."""
    analyst = roster.get(approval.analyst)
    verifier = VERIFIERS.get(approval.source)
    return analyst is not None and verifier is not None and verifier(approval, analyst)


def approval_path(root: Path, approval: Approval) -> Path:
    return (
        root
        / APPROVALS_DIR
        / approval.plan_hash
        / f"{approval.request_id}--{approval.analyst}.json"
    )


def write_approval(root: Path, approval: Approval) -> Path:
    """Store a signed approval; never overwrites one (the audit trail only grows)."""
    # These values become path parts: refuse anything that could leave changes/approvals/.
    if not PLAN_HASH.match(approval.plan_hash):
        raise InputError(f"{approval.plan_hash!r} is not a plan hash (64 hex digits)")
    if not REQUEST_ID.match(approval.request_id):
        raise InputError(f"{approval.request_id!r} is not a change request id")
    if not ANALYST_ID.match(approval.analyst):
        raise InputError(f"{approval.analyst!r} is not an analyst id")
    path = approval_path(root, approval)
    make_dir(path.parent, root=root)
    try:
        with path.open("x", encoding="utf-8") as out:
            json.dump(approval.to_json(), out, indent=2, sort_keys=True)
            out.write("\n")
    except FileExistsError:
        raise InputError(
            f"{approval.analyst} has already approved {approval.request_id} for this plan",
            file=path,
            hint="An approval is never replaced; if this one is wrong, remove it in a reviewed "
            "commit and approve again.",
        ) from None
    return path


class ApprovalSource(Protocol):
    """Where approvals come from: signed files in the repository; GitHub reviews (later)."""

    def approvals_for(self, plan_hash: str, request_id: str) -> list[Approval]: ...


class ExcludingAnalysts:
    """An ApprovalSource minus the approvals of given analysts: whoever opened the pull request
    never approves it, by review or by signed file (the request's `author:` is only a claim in a
    file the pull request itself can write)."""

    def __init__(self, source: ApprovalSource, excluded: frozenset[str]) -> None:
        self.source = source
        self.excluded = excluded

    def approvals_for(self, plan_hash: str, request_id: str) -> list[Approval]:
        return [
            a
            for a in self.source.approvals_for(plan_hash, request_id)
            if a.analyst not in self.excluded
        ]


class SignedApprovalFiles:
    """changes/approvals/<plan_hash>/<request_id>--<analyst>.json"""

    def __init__(self, root: Path) -> None:
        self.root = root
        # Per plan folder, its names as last listed and the folder's identity then: the gate asks
        # once per request, and globbing the folder each time was requests x files.
        self._listed: dict[str, tuple[tuple[int, int, int], list[str]]] = {}
        # Read ahead by `read_ahead` (in another thread, while apply makes its plan again): each
        # answer handed out once, then asked of the files again.
        self._ahead: dict[tuple[str, str], list[Approval]] = {}

    def read_ahead(self, plan_hash: str, request_ids: list[str]) -> None:
        """Read the approvals of these requests for this plan now, for `approvals_for` later. A
        file that cannot be read is left to `approvals_for`, which raises as before."""
        for request_id in request_ids:
            try:
                self._ahead[(plan_hash, request_id)] = self._approvals_for(plan_hash, request_id)
            except InputError:
                continue

    def _names(self, directory: Path) -> list[str]:
        try:
            st = os.stat(directory)
        except OSError:
            return []
        identity = (st.st_dev, st.st_ino, st.st_mtime_ns)
        seen = self._listed.get(str(directory))
        if seen is None or seen[0] != identity:
            try:
                names = sorted(p.name for p in directory.iterdir())
            except OSError:  # not a directory, gone meanwhile: no approvals, as glob found none
                names = []
            seen = (identity, names)
            # A folder changed in the last seconds is listed again next time: a file added in
            # the same clock tick would leave its mtime as it was (git's "racily clean" rule).
            if time.time_ns() - st.st_mtime_ns > 2_000_000_000:
                self._listed[str(directory)] = seen
        return seen[1]

    def _read(self, path: Path) -> Approval:
        hint = "Approval files are written by `dmarcops approve`; never edit them."
        # Regular files inside the repository only (pipeline.load.files): an approval committed
        # as a symbolic link or a FIFO is refused with its name, never followed or waited on.
        data = load_json(path, what="not an approval file", hint=hint, root=self.root)
        try:
            reference = str(path.relative_to(self.root))
            return Approval.from_json(data, reference)
        except (KeyError, TypeError, ValueError) as exc:
            raise InputError(f"not an approval file: {exc}", file=path, hint=hint) from None

    def approvals_for(self, plan_hash: str, request_id: str) -> list[Approval]:
        ahead = self._ahead.pop((plan_hash, request_id), None)
        return ahead if ahead is not None else self._approvals_for(plan_hash, request_id)

    def _approvals_for(self, plan_hash: str, request_id: str) -> list[Approval]:
        if not PLAN_HASH.match(plan_hash):
            return []
        directory = self.root / APPROVALS_DIR / plan_hash
        prefix = f"{request_id}--"
        return [
            self._read(directory / name)
            for name in self._names(directory)
            if name.startswith(prefix) and name.endswith(".json") and len(name) > len(prefix) + 4
        ]

    def history(self, request_id: str) -> list[Approval]:
        """Approvals of the request for every plan, so a stale one can be named as stale."""
        directory = self.root / APPROVALS_DIR
        return [self._read(p) for p in sorted(directory.glob(f"*/{request_id}--*.json"))]


@dataclass(frozen=True)
class ApprovalEvidence:
    """One link of the approval chain, as the change record shows it."""

    role: str  # "author" | "peer review" | "client approval"
    who: str  # roster id, or the client approver's e-mail
    at: datetime | None  # UTC; None for the author's self-approval (the request is the log)
    reference: str  # the request file, the approval file, the message-id or ticket
    # The signature it rests on (the author's over the request, the approver's over plan and
    # request), copied into the change record so `audit verify` re-checks it there; "" for a
    # GitHub review or a client's e-mail.
    signature: str = ""
    simulated: bool = False  # the approval was given in a sandbox rehearsal (part of its payload)

    def __str__(self) -> str:
        when = f" at {utc_text(self.at)}" if self.at else ""
        return f"{self.role}: {self.who}{when} ({self.reference})"


def not_counting(
    approval: Approval, request: ChangeRequest, plan_hash: str, roster: Roster
) -> str | None:
    if roster.get(approval.analyst) is None:
        return f"{approval.analyst!r} is not on the analyst roster"
    if approval.source not in VERIFIERS:
        return f"unknown approval source {approval.source!r}"
    if not verify(approval, roster):
        return (
            f"it does not verify with {approval.analyst}'s key in the roster "
            "(altered after signing, or signed with another key)"
        )
    if approval.request_id != request.id:
        return f"it approves request {approval.request_id}, not {request.id}"
    if approval.plan_hash != plan_hash:
        return (
            f"it approves plan {approval.plan_hash[:16]}, not this plan {plan_hash[:16]}: "
            "the plan changed after the review, so it needs a new one"
        )
    # A GitHub review approves a commit, and the request file in it; a signed approval names the
    # request's content hash, so an edit after the review (covers:, client_approval, ...) shows.
    if approval.source == SIGNED and approval.request_sha256 != request.sha256:
        return (
            f"it approves other content of {request.id} "
            f"({approval.request_sha256[:16] or 'no content hash: format 1'}, now "
            f"{request.sha256[:16]}): the request was edited after the review, so it needs a "
            "new one"
        )
    return None


@dataclass(frozen=True)
class PlannedChange:
    """One change of a saved plan (`dmarcops plan --out plan.json`), as coverage and approval use it."""

    client: str
    zone: str
    name: str
    type: str
    action: str
    risk: RiskLevel
    before: tuple[str, ...]
    after: tuple[str, ...]
    ttl_before: int | None
    ttl_after: int | None


@dataclass(frozen=True)
class PlanFile:
    path: Path
    plan_hash: str
    changes: tuple[PlannedChange, ...]


def hash_of_changes(changes: Sequence[PlannedChange]) -> str:
    """The plan hash of pipeline.plan.items.plan_hash, recomputed from the saved JSON."""
    normalised = sorted(
        [c.zone, c.name, c.type, sorted(c.before), sorted(c.after), c.ttl_before, c.ttl_after]
        for c in changes
    )
    canonical = json.dumps(normalised, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(canonical.encode()).hexdigest()


def load_plan_file(path: Path) -> PlanFile:
    """A saved JSON plan, refused unless its plan_hash is the hash of the changes it lists.

    A reviewer signs the hash; recomputing it means the hash signed is the hash of what was shown.
    """
    # Named on the command line, so it may live outside the repository; still a regular file
    # within max_log_bytes (a whole portfolio's plan), never a FIFO or a device.
    data = load_json(
        path,
        what="not a JSON plan",
        hint="Save one with `dmarcops plan --out plan.json`.",
        outside_ok=True,
        log=True,
    )
    try:
        changes = tuple(
            PlannedChange(
                client=str(c["client"]),
                zone=str(c["zone"]),
                name=str(c["name"]),
                type=str(c["type"]),
                action=str(c["action"]),
                risk=RiskLevel.parse(str(c["risk"])),
                before=tuple(str(v) for v in c["before"]),
                after=tuple(str(v) for v in c["after"]),
                ttl_before=c["ttl"]["before"],
                ttl_after=c["ttl"]["after"],
            )
            for c in data["changes"]
        )
        stated = str(data["plan_hash"])
    except (KeyError, TypeError) as exc:
        raise InputError(
            f"not a JSON plan: missing or invalid {exc}",
            file=path,
            hint="Save one with `dmarcops plan --out plan.json`.",
        ) from None
    computed = hash_of_changes(changes)
    if stated != computed:
        raise InputError(
            f"the plan's plan_hash {stated[:16]} is not the hash of its changes ({computed[:16]})",
            file=path,
            hint="The file was edited after `dmarcops plan` wrote it: plan again.",
        )
    return PlanFile(path, stated, changes)
