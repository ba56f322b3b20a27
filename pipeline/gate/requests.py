"""Change requests (changes/requests/<id>.yaml): why a change is made and which plan items it covers.

The seed's first failure mode is the "I'll just push it" change: a change nobody filed. So every plan
item must be covered by exactly one request, and a request must say why in words that carry facts
("Because we agreed in the SOW isn't a rationale"). A request written from a ticket template
(`new_request`) still holding one of the template's <<...>> prompts is not a request yet.

This module holds the request as a value and its author's signature; reading and checking the
files is pipeline.gate.request_loader, covering plan items pipeline.gate.coverage, writing a new
request pipeline.gate.authoring.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar

from pipeline.errors import GateRefused, InputError
from pipeline.gate.identity import signing_bytes, verify_signature
from pipeline.gate.roster import Roster
from pipeline.gate.templates import (
    TicketTemplate,
)
from pipeline.load.jsonfile import load_json
from pipeline.load.request_files import REQUESTS_DIR as REQUESTS_DIR
from pipeline.load.request_files import CoverableItem, Selector
from pipeline.model import RiskLevel

SCHEMA = Path("policy") / "schemas" / "change-request.schema.json"

# The id is the file stem; "--" is reserved as the separator in approval file names.
REQUEST_ID = re.compile(r"^CR-[0-9]{4,}(-[a-z0-9]+)*$")
PROMPT = re.compile(r"<<.*?>>", re.DOTALL)
TIMESTAMP_FORMATS = ("%Y-%m-%dT%H:%M:%SZ", "%Y-%m-%dT%H:%MZ")
# The author's signature of a request lives beside it: changes/requests/<id>.sig.json.
SIGNATURE_SUFFIX = ".sig.json"
SIGNATURE_FORMAT = 1
SIGNED_AT_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")


class RequestType(str):
    """The ticket template a request follows: a file of policy/templates/ (pipeline.gate.templates).

    Any template's name is a request type, so a new template needs no code; the constants name
    the seed's four (and "other"). One object per name, so `is` compares as `==` does.
    """

    __slots__ = ()
    _known: ClassVar[dict[str, RequestType]] = {}
    NEW_SENDER: ClassVar[RequestType]
    POLICY_PROGRESSION: ClassVar[RequestType]
    DKIM_ROTATION: ClassVar[RequestType]
    EMERGENCY_ROLLBACK: ClassVar[RequestType]
    OTHER: ClassVar[RequestType]
    # Changes that are not DNS record edits (issue 13 item 5; pipeline.gate.manual): the same
    # lifecycle, with manual steps and a verification checklist instead of a plan's diff. Their
    # templates are data like the others; what makes them manual is the code that runs them.
    PLATFORM: ClassVar[RequestType]  # a tenant-level setting at a mail platform
    DKIM_SWITCH: ClassVar[RequestType]  # the signing provider switches to a published selector

    def __new__(cls, value: str) -> RequestType:
        known = cls._known.get(value)
        if known is None:
            known = cls._known[value] = super().__new__(cls, value)
        return known

    @property
    def value(self) -> str:
        return str.__str__(self)

    def __repr__(self) -> str:
        return f"RequestType({self.value!r})"

    @property
    def manual(self) -> bool:
        return self in MANUAL_TYPES


RequestType.NEW_SENDER = RequestType("new-sender")
RequestType.POLICY_PROGRESSION = RequestType("policy-progression")
RequestType.DKIM_ROTATION = RequestType("dkim-rotation")
RequestType.EMERGENCY_ROLLBACK = RequestType("emergency-rollback")
RequestType.OTHER = RequestType("other")
RequestType.PLATFORM = RequestType("platform")
RequestType.DKIM_SWITCH = RequestType("dkim-switch")
MANUAL_TYPES = frozenset({RequestType.PLATFORM, RequestType.DKIM_SWITCH})


@dataclass(frozen=True)
class ClientApproval:
    """The client's written approval (seed: "an emailed acknowledgment is usually enough")."""

    approver: str  # e-mail address
    at: datetime  # UTC
    reference: str  # <message-id@host> or a ticket id
    freeze: str = ""  # the client freeze this approval knowingly overrides (a freeze exception)
    # The approving e-mail as received, stored by hash: changes/evidence/<sha256>.eml
    # (pipeline.gate.evidence checks it against approver, at and reference, and its DKIM signature).
    eml: str | None = None


@dataclass(frozen=True)
class RequestSignature:
    """The author's Ed25519 signature of a request's content hash (changes/requests/<id>.sig.json)."""

    request_id: str
    request_sha256: str
    signer: str  # roster id of the key's owner
    signed_at: datetime  # UTC, whole seconds
    signature: str  # base64 Ed25519 signature of `payload()`
    file: Path = Path()

    def payload(self) -> bytes:
        return signing_bytes(
            {
                "purpose": "change-request",
                "request_id": self.request_id,
                "request_sha256": self.request_sha256,
                "signed_at": self.signed_at.astimezone(UTC).strftime(SIGNED_AT_FORMAT),
                "signer": self.signer,
            }
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "format_version": SIGNATURE_FORMAT,
            "request_id": self.request_id,
            "request_sha256": self.request_sha256,
            "signer": self.signer,
            "signed_at": self.signed_at.astimezone(UTC).strftime(SIGNED_AT_FORMAT),
            "signature": self.signature,
        }

    @classmethod
    def from_json(cls, data: Any, file: Path) -> RequestSignature:
        """ValueError naming the field when `data` is not a request signature."""
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
        if data.get("format_version") != SIGNATURE_FORMAT:
            raise ValueError(f"format_version is not {SIGNATURE_FORMAT}")
        for key in ("request_id", "request_sha256", "signer", "signed_at", "signature"):
            if not isinstance(data.get(key), str):
                raise ValueError(f"{key!r} is missing or not a string")
        try:
            at = datetime.strptime(data["signed_at"], SIGNED_AT_FORMAT).replace(tzinfo=UTC)
        except ValueError:
            raise ValueError(f"signed_at {data['signed_at']!r} is not a UTC time") from None
        return cls(
            data["request_id"],
            data["request_sha256"],
            data["signer"],
            at,
            data["signature"],
            file,
        )


@dataclass(frozen=True)
class ChangeRequest:
    id: str
    type: RequestType
    client: str
    covers: tuple[Selector, ...]
    rationale: str
    author: str
    evidence: tuple[str, ...] = ()
    details: tuple[tuple[str, str], ...] = ()
    client_approval: ClientApproval | None = None
    requested_risk: RiskLevel | None = None
    rollback_of: str | None = None
    emergency_reason: str | None = None
    incident: str = ""  # a declared incident's reference (policy/gate.yaml emergency)
    # The roster id of the client's on-call owner who covers a rollback window that ends outside
    # staffed hours (the Friday rule, pipeline.gate.decide); "" when none is named.
    on_call: str = ""
    file: Path = Path()
    # Line of each top-level key, so a gate can point at `requested_risk:` or `client_approval:`.
    lines: tuple[tuple[str, int], ...] = field(default=(), compare=False, repr=False)
    # SHA-256 of the request's canonical content (`content_sha256`): what the author signs and
    # every approval binds, and what the change record carries.
    sha256: str = ""
    signature: RequestSignature | None = None  # as read; `signature_problem` judges it
    signature_error: str | None = None  # why <id>.sig.json exists but could not be read
    # The ticket template it follows, as the policy of record has it (None: built in code).
    template: TicketTemplate | None = field(default=None, compare=False, repr=False)
    # A manual change (platform, dkim-switch): what the executor does by hand, and what they
    # check afterwards (pipeline.gate.manual).
    steps: tuple[str, ...] = ()
    checklist: tuple[str, ...] = ()

    def line_of(self, key: str) -> int | None:
        return dict(self.lines).get(key)

    @property
    def is_emergency(self) -> bool:
        if self.emergency_reason is not None:
            return True
        if self.template is not None:
            return self.template.emergency
        return self.type == RequestType.EMERGENCY_ROLLBACK

    def covers_item(self, item: CoverableItem) -> bool:
        if self.type.manual:
            # Its `covers:` names the domains it affects; it never claims a DNS plan item.
            return False
        return item.client == self.client and any(s.matches(item) for s in self.covers)

    @property
    def domains(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(s.zone for s in self.covers))


def _canonical(data: Any) -> Any:
    # YAML keys may be numbers or booleans; canonical JSON needs text keys to sort them.
    if isinstance(data, dict):
        return {str(k): _canonical(v) for k, v in data.items()}
    if isinstance(data, list):
        return [_canonical(v) for v in data]
    return data


def content_sha256(data: Any) -> str:
    """SHA-256 (hex) of the canonical JSON of a request's parsed YAML.

    Comments, key order, quoting and layout do not change it; any value does.
    """
    return hashlib.sha256(signing_bytes({"request": _canonical(data)})).hexdigest()


def signature_path(root: Path, request_id: str) -> Path:
    return root / REQUESTS_DIR / f"{request_id}{SIGNATURE_SUFFIX}"


def read_signature(path: Path) -> tuple[RequestSignature | None, str | None]:
    """The signature file beside a request, or the reason it cannot be read (None, None: absent)."""
    if not os.path.lexists(path):
        return None, None
    try:
        # Through the safe reader: a link, FIFO or huge file there is refused, never followed.
        data = load_json(path, what="request signature", hint="Sign the request again.")
    except InputError as exc:
        return None, f"cannot read its signature file {path.name}: {exc.message}"
    try:
        return RequestSignature.from_json(data, path), None
    except ValueError as exc:
        return None, f"its signature file {path.name} is not a request signature: {exc}"


def signature_problem(request: ChangeRequest, roster: Roster) -> str | None:
    """Why the request does not count as its author's (None: signed by its author, unchanged)."""
    sig = request.signature
    how = f"the author signs it: dmarcops sign-request {request.id} --key YOUR-KEY"
    if sig is None:
        if request.signature_error is not None:
            return f"{request.signature_error}; {how}"
        return f"{request.file.name} is not signed by its author ({how})"
    if sig.request_id != request.id:
        return f"{sig.file.name} signs request {sig.request_id}, not {request.id}; {how}"
    if not verify_signature(roster, sig.signer, sig.payload(), sig.signature):
        return (
            f"{sig.file.name} does not verify with {sig.signer}'s key in the roster (altered "
            f"after signing, or signed with another key); {how}"
        )
    if sig.request_sha256 != request.sha256:
        return (
            f"{request.file.name} changed after {sig.signer} signed it (content "
            f"{request.sha256[:16]}, signed {sig.request_sha256[:16]}); {how} again, and "
            "reviewers approve the new content"
        )
    if sig.signer != request.author:
        return (
            f"{request.file.name} is signed by {sig.signer}, but its author: is "
            f"{request.author}; a request is signed by its author's key"
        )
    return None


def signature_refusal(request: ChangeRequest, roster: Roster) -> GateRefused | None:
    """The signature problem as a refusal naming the request's file (exit 2)."""
    problem = signature_problem(request, roster)
    if problem is None:
        return None
    return GateRefused(
        f"{request.id} does not count: {problem}",
        file=request.signature.file if request.signature else request.file,
        hint="A request counts once its author has signed its current content "
        "(`dmarcops sign-request ID --key FILE`); any later edit needs a new signature.",
    )


def request_path(root: Path, request_id: str) -> Path:
    return root / REQUESTS_DIR / f"{request_id}.yaml"
