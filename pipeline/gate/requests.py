"""Change requests (changes/requests/<id>.yaml): why a change is made and which plan items it covers.

The seed's first failure mode is the "I'll just push it" change: a change nobody filed. So every plan
item must be covered by exactly one request, and a request must say why in words that carry facts
("Because we agreed in the SOW isn't a rationale"). A request written from a ticket template
(`new_request`) still holding one of the template's <<...>> prompts is not a request yet.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar, Generic, Protocol, TypeVar

from pipeline.diff.kinds import kind_of
from pipeline.errors import GateRefused, InputError
from pipeline.gate.identity import Signer, signing_bytes, verify_signature
from pipeline.gate.roster import Roster, load_roster
from pipeline.gate.templates import (
    TEMPLATES_DIR,
    DetailField,
    TemplateSet,
    TicketTemplate,
    collect_templates,
)
from pipeline.load.files import replace_text
from pipeline.load.jsonfile import load_json
from pipeline.load.yamlfile import JsonPath, YamlDocument, iter_schema_errors, load_yaml
from pipeline.model import RiskLevel

REQUESTS_DIR = Path("changes") / "requests"
SCHEMA = Path("policy") / "schemas" / "change-request.schema.json"

# The id is the file stem; "--" is reserved as the separator in approval file names.
REQUEST_ID = re.compile(r"^CR-[0-9]{4,}(-[a-z0-9]+)*$")
PROMPT = re.compile(r"<<.*?>>", re.DOTALL)
# The `covers:` item pattern of change-request.schema.json, for checking selectors given on the CLI.
SELECTOR = re.compile(
    r"^[a-z0-9]([a-z0-9.-]*[a-z0-9])?( (@|[A-Za-z0-9_*][A-Za-z0-9_.-]*)( [A-Z][A-Z0-9]*)?)?$"
)
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

    @classmethod
    def parse(cls, text: str) -> RequestType:
        # `dmarcops new sender` is accepted as the short form of new-sender.
        return cls("new-sender" if text == "sender" else text)


RequestType.NEW_SENDER = RequestType("new-sender")
RequestType.POLICY_PROGRESSION = RequestType("policy-progression")
RequestType.DKIM_ROTATION = RequestType("dkim-rotation")
RequestType.EMERGENCY_ROLLBACK = RequestType("emergency-rollback")
RequestType.OTHER = RequestType("other")
RequestType.PLATFORM = RequestType("platform")
RequestType.DKIM_SWITCH = RequestType("dkim-switch")
MANUAL_TYPES = frozenset({RequestType.PLATFORM, RequestType.DKIM_SWITCH})


@dataclass(frozen=True)
class Selector:
    """`zone`, `zone name` or `zone name TYPE`; name "@" is the apex (plan items use "")."""

    zone: str
    name: str | None = None
    type: str | None = None

    @classmethod
    def parse(cls, text: str) -> Selector | None:
        if not SELECTOR.match(text):
            return None
        parts = text.split()
        zone = parts[0].lower().rstrip(".")
        name = parts[1].lower() if len(parts) > 1 else None
        if name is not None:
            name = "" if name == "@" else name.removesuffix("." + zone)
        rtype = parts[2].upper() if len(parts) > 2 else None
        return cls(zone, name, rtype)

    def matches(self, item: CoverableItem) -> bool:
        return (
            item.zone.lower() == self.zone
            and (self.name is None or item.name.lower() == self.name)
            and (self.type is None or item.type.upper() == self.type)
        )

    def __str__(self) -> str:
        parts = [self.zone]
        if self.name is not None:
            parts.append(self.name or "@")
        if self.type is not None:
            parts.append(self.type)
        return " ".join(parts)


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


class CoverableItem(Protocol):
    """What coverage needs of a plan item: a `PlanItem`, or a change read back from plan JSON."""

    @property
    def client(self) -> str: ...
    @property
    def zone(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def type(self) -> str: ...
    @property
    def risk(self) -> RiskLevel: ...


ItemT = TypeVar("ItemT", bound=CoverableItem)


def describe(item: CoverableItem) -> str:
    """The item as the selector that covers exactly it, ready to paste into `covers:`."""
    return f"{item.zone} {item.name or '@'} {item.type}"


def _selector(text: str) -> str:
    # "s2026", "s2026._domainkey" or "s2026 (RSA 2048)": the first label of the first word.
    words = text.strip().lower().split()
    return words[0].split(".")[0] if words else ""


def template_problem(request: ChangeRequest, item: CoverableItem) -> str | None:
    """Why `item` does not belong under `request`'s ticket template (None: it does). A template
    routes a change through its risk path, so a change of another kind under it would borrow that
    path: a DMARC change filed as a "routine" DKIM rotation."""
    template = request.template
    if template is None or template.may_change is None:
        return None
    allowed = template.may_change
    kind = kind_of(item.name, item.type)
    if kind not in allowed:
        names = ", ".join(sorted(k.value for k in allowed))
        return (
            f"a {request.type.value} request may change only {names} records, and "
            f"{describe(item)} is {kind.value if kind else 'not an owned record'}"
        )
    if template.selectors_from:
        details = dict(request.details)
        selectors = {_selector(details.get(k, "")) for k in template.selectors_from}
        selector = item.name.lower().split(".")[0]
        if selector not in selectors:
            named = " to ".join(repr(details.get(k)) for k in template.selectors_from)
            return f"{describe(item)} is selector {selector!r}, but the rotation is from {named}"
    return None


@dataclass(frozen=True)
class Coverage(Generic[ItemT]):
    covered: tuple[tuple[ItemT, ChangeRequest], ...]
    uncovered: tuple[ItemT, ...]
    conflicts: tuple[tuple[ItemT, tuple[ChangeRequest, ...]], ...]
    # Covered items their request's ticket template does not allow, with the reason.
    misfits: tuple[tuple[ItemT, ChangeRequest, str], ...] = ()

    @property
    def complete(self) -> bool:
        return not self.uncovered and not self.conflicts and not self.misfits

    @property
    def requests(self) -> tuple[ChangeRequest, ...]:
        """The requests that cover at least one item, in plan order."""
        seen: dict[str, ChangeRequest] = {}
        for _, request in self.covered:
            seen.setdefault(request.id, request)
        return tuple(seen.values())

    def items_of(self, request_id: str) -> tuple[ItemT, ...]:
        return tuple(item for item, request in self.covered if request.id == request_id)

    def risk_of(self, request_id: str) -> RiskLevel | None:
        return max((item.risk for item in self.items_of(request_id)), default=None)

    def check(self) -> None:
        """GateRefused (exit 2) unless every item has exactly one request."""
        if self.complete:
            return
        lines: list[str] = []
        hints: list[str] = []
        if self.uncovered:
            lines.append(
                'every change needs a change request (seed: the "I\'ll just push it" change); '
                f"{len(self.uncovered)} plan item(s) covered by none:"
            )
            lines += [
                f"  {describe(i)}  (client {i.client}, risk {i.risk.label})" for i in self.uncovered
            ]
            example = self.uncovered[0]
            hints.append(
                f"File one: dmarcops new TYPE --client {example.client} "
                f"--cover '{describe(example)}' --author YOUR-ID, replace its <<...>> prompts and "
                "commit it under changes/requests/ (or add the selector to the `covers:` of an "
                "existing request for the same change)."
            )
        if self.conflicts:
            lines.append(
                f"{len(self.conflicts)} plan item(s) claimed by more than one change request:"
            )
            for item, requests in self.conflicts:
                where = ", ".join(f"{r.id} ({_shown(r)})" for r in requests)
                lines.append(f"  {describe(item)}: {where}")
            hints.append(
                "A change has exactly one request: narrow the `covers:` selectors "
                "(ZONE NAME TYPE) so that only one request matches each item."
            )
        if self.misfits:
            lines.append(
                f"{len(self.misfits)} plan item(s) outside their request's ticket template:"
            )
            lines += [f"  {r.id} ({_shown(r)}): {reason}" for _, r, reason in self.misfits]
            hints.append(
                "File the change under a request of the right type (`dmarcops new TYPE`), or "
                "`type: other` when no template fits; docs/evidence.md lists what each allows."
            )
        raise GateRefused("\n".join(lines), hint="\n  ".join(hints))


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


def _read_signature(path: Path) -> tuple[RequestSignature | None, str | None]:
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


def sign_request(root: Path, request_id: str, signer: Signer, at: datetime) -> RequestSignature:
    """Sign the request's current content as its author and write <id>.sig.json.

    InputError when the request is not valid yet or the key's owner is not its author.
    """
    request, problems = _load_one(root, request_id)
    if request is None:
        raise problems[0] if problems else InputError(f"no change request {request_id!r}")
    if signer.analyst != request.author:
        raise InputError(
            f"the key is {signer.analyst}'s, but {request.id}'s author: is {request.author}",
            file=request.file,
            line=request.line_of("author"),
            hint="A request is signed by its author. To take it over, set author: to your own "
            "roster id first (the author is who is accountable for it).",
        )
    unsigned = RequestSignature(
        request.id, request.sha256, signer.analyst, at.astimezone(UTC).replace(microsecond=0), ""
    )
    signed = RequestSignature(
        unsigned.request_id,
        unsigned.request_sha256,
        unsigned.signer,
        unsigned.signed_at,
        signer.sign(unsigned.payload()),
        signature_path(root, request.id),
    )
    # By rename inside the repository: a link planted at that name is replaced, not written through.
    replace_text(
        signed.file, json.dumps(signed.to_json(), indent=2, sort_keys=True) + "\n", root=root
    )
    return signed


def _load_one(root: Path, request_id: str) -> tuple[ChangeRequest | None, list[InputError]]:
    path = request_path(root, request_id)
    if not path.exists():
        known = sorted(
            p.stem for p in (root / REQUESTS_DIR).glob("*.yaml") if REQUEST_ID.match(p.stem)
        )
        return None, [
            InputError(
                f"no change request {request_id!r}",
                hint=f"Requests in {REQUESTS_DIR}/: {', '.join(known) or 'none'}.",
            )
        ]
    templates, problems = templates_for(root)
    request = _check_file(path, root, load_roster(root), templates, problems)
    return request, problems


def templates_for(root: Path) -> tuple[TemplateSet, list[InputError]]:
    """The ticket templates requests are judged by: as the policy of record has them (an edited
    template counts once a lead seals it, like any policy), the working tree's before
    `dmarcops init`; with every problem found in them."""
    from pipeline.records.policy_of_record import policy_of_record  # records imports the gate

    try:
        where = policy_of_record(root, required=False).root(root)
    except (GateRefused, InputError):
        # A ledger or a policy/ that cannot be read: the gating commands refuse it by name
        # themselves (and `validate` names the file); the working tree's templates meanwhile.
        where = root
    return collect_templates(where)


def _shown(request: ChangeRequest) -> str:
    line = request.line_of("covers")
    return f"{request.file.name}:{line}" if line else request.file.name


def cover(items: Sequence[ItemT], requests: Sequence[ChangeRequest]) -> Coverage[ItemT]:
    """Map each plan item to the one request whose `covers:` matches it."""
    covered: list[tuple[ItemT, ChangeRequest]] = []
    uncovered: list[ItemT] = []
    conflicts: list[tuple[ItemT, tuple[ChangeRequest, ...]]] = []
    misfits: list[tuple[ItemT, ChangeRequest, str]] = []
    # A request covers only its own client's items (covers_item): matching each item against
    # its client's requests alone is the same result, without items x requests (2,500 x 2,500
    # at 10,000 domains).
    by_client: dict[str, list[ChangeRequest]] = {}
    for request in requests:
        by_client.setdefault(request.client, []).append(request)
    for item in items:
        if str(getattr(getattr(item, "kind", None), "value", getattr(item, "kind", ""))) == (
            "policy"
        ):
            # A pending policy edit is not a client's change: no request covers it, a lead's
            # seal does (pipeline.records.policy_of_record); it is never applied to DNS.
            continue
        claims = tuple(r for r in by_client.get(item.client, ()) if r.covers_item(item))
        if not claims:
            uncovered.append(item)
        elif len(claims) > 1:
            conflicts.append((item, claims))
        else:
            covered.append((item, claims[0]))
            problem = template_problem(claims[0], item)
            if problem is not None:
                misfits.append((item, claims[0], problem))
    return Coverage(tuple(covered), tuple(uncovered), tuple(conflicts), tuple(misfits))


def check_requested_risk(request: ChangeRequest, computed: RiskLevel) -> RiskLevel:
    """The risk the request goes through: the computed level, or the requested one when higher.

    A requested level below the computed one is refused (seed: the "this is routine"
    misclassification, "Confidence isn't a substitute for peer review").
    """
    requested = request.requested_risk
    if requested is None:
        return computed
    if requested < computed:
        raise GateRefused(
            f"{request.id} asks for {requested.label} risk, but the risk rules classify its "
            f"changes {computed.label}",
            file=request.file,
            line=request.line_of("requested_risk"),
            hint='Confidence isn\'t a substitute for peer review (seed: the "this is routine" '
            f"misclassification). Set requested_risk: {computed.label} or remove it; if a rule is "
            "wrong, change it in policy/risk-rules.yaml in its own reviewed change.",
        )
    return max(requested, computed)


# Phrases that say who agreed or where to look, not why the change is right (seed: "Because we
# agreed in the SOW" isn't a rationale). Longer phrases first: the alternation tries them in order.
BOILERPLATE = (
    r"because (we|the client|they) (agreed|asked|requested)( to)?( it| this| so)?"
    r"( in| with| per| on)?( the)?( sow| contract| msa| statement of work| call| meeting)?",
    r"(as |we |it was )(agreed|discussed|requested|planned|instructed|promised)"
    r"( in| with| on| by| per)?"
    r"( the)?( sow| contract| msa| statement of work| client| customer| call| meeting| email| ticket)?",
    r"agreed( in| with| on| by| per)( the)?( sow| contract| msa| statement of work| client| call)",
    r"per (the )?(sow|msa|contract|statement of work|client|customer|request|ticket|email|"
    r"agreement|plan|policy|runbook|call|meeting)",
    r"(the )?(client|customer) (asked|requested|wants|wanted|approved|said)( for)?"
    r"( it| this| that| us| so)?( to)?",
    r"see (the )?(ticket|email|e-mail|jira|psa|thread|above|below|attached|attachment|description|pr)"
    r"( #?[\w-]+)?",
    r"(a )?routine( change| maintenance| update| work| request)?",
    r"(a )?standard (change|procedure|request)",
    r"business as usual|bau|as usual|same as (before|last time|always)",
    r"n/a|na|tbd|tba|todo|none|nothing|no reason|just because|because|self[- ]explanatory",
)
_BOILERPLATE = re.compile(r"(?<![\w/])(?:" + "|".join(BOILERPLATE) + r")(?![\w/])", re.IGNORECASE)
_TOKEN = re.compile(r"[^\W_][\w.=%/:@+-]*")
MIN_RATIONALE_CHARS = 30
MIN_RATIONALE_WORDS = 5
RATIONALE_HINT = (
    'Say why this change, now, with facts: e.g. "Pass rate at pct=50 has been stable at 99.3% '
    'for 14 days across all known senders" (seed: "Because we agreed in the SOW" isn\'t a '
    "rationale)."
)


def rationale_problem(text: str | None, what: str = "rationale") -> str | None:
    """Why `text` is not a rationale, or None when it is one."""
    if text is None or not text.strip():
        return f"{what} is empty"
    found = [m.group(0).strip() for m in _BOILERPLATE.finditer(text) if m.group(0).strip()]
    rest = _BOILERPLATE.sub(" ", text)
    content = " ".join(_TOKEN.findall(rest))
    if len(content) >= MIN_RATIONALE_CHARS and len(_TOKEN.findall(rest)) >= MIN_RATIONALE_WORDS:
        return None
    if found:
        return (
            f"{what} is boilerplate: {found[0]!r} says who agreed or where to look, not why this "
            "change is right"
        )
    return (
        f"{what} is too short to be a reason ({len(content)} characters of content; at least "
        f"{MIN_RATIONALE_CHARS} and {MIN_RATIONALE_WORDS} words)"
    )


def _strings(data: Any, here: JsonPath = ()) -> Iterator[tuple[JsonPath, str]]:
    if isinstance(data, str):
        yield here, data
    elif isinstance(data, dict):
        for key, value in data.items():
            yield from _strings(value, (*here, str(key)))
    elif isinstance(data, list):
        for i, value in enumerate(data):
            yield from _strings(value, (*here, i))


def _timestamp(text: str) -> datetime | None:
    for fmt in TIMESTAMP_FORMATS:
        try:
            return datetime.strptime(text, fmt).replace(tzinfo=UTC)
        except ValueError:
            continue
    return None


def client_domains(root: Path, client: str) -> list[str] | None:
    """The client's domains, or None when its profile is unreadable (`validate` reports that)."""
    path = root / "policy" / "clients" / f"{client}.yaml"
    try:
        stamp = path.stat().st_mtime_ns
    except OSError:
        return None
    domains = _client_domains(path, stamp)
    return list(domains) if domains is not None else None


@functools.lru_cache(maxsize=1024)
def _client_domains(path: Path, stamp: int) -> tuple[str, ...] | None:
    # Many requests name the same client: read its profile once per version of the file.
    try:
        data = load_yaml(path).data
    except InputError:
        return None
    domains = data.get("domains") if isinstance(data, dict) else None
    return tuple(str(d).lower() for d in domains) if isinstance(domains, list) else None


# policy-progression's pass_rate_evidence: "99.3% aligned pass over 14 days[ ...]" (the schema's
# pattern); the seed's template asks for the pass rate over the last 14 days.
PASS_RATE = re.compile(r"^(?P<percent>[0-9]{1,3}(\.[0-9]+)?)% (.* )?over (?P<days>[0-9]+) days")
MIN_PASS_RATE_DAYS = 14


def _check_value(doc: YamlDocument, detail: DetailField, value: str) -> None:
    where = ("details", detail.name)
    if detail.format == "date":
        try:
            datetime.strptime(value, "%Y-%m-%d")
        except ValueError:
            raise doc.error(
                where,
                f"{detail.name} {value!r} is not a calendar date",
                hint="Write it as YYYY-MM-DD, e.g. 2026-12-01.",
            ) from None
    if detail.format == "pass-rate":
        match = PASS_RATE.match(value)
        if match is None:
            raise doc.error(
                where,
                f"{detail.name} {value!r} does not give a pass rate and its period",
                hint='Write the aligned pass rate, then the period: "99.3% aligned pass over 14 '
                'days at pct=50".',
            )
        percent, days = float(match.group("percent")), int(match.group("days"))
        if percent > 100:
            raise doc.error(
                where,
                f"a pass rate of {match.group('percent')}% is over 100%",
                hint="Copy the aligned pass rate from the aggregate-report export.",
            )
        if days < detail.min_days:
            raise doc.error(
                where,
                f"a pass rate over {days} days is too short a period to progress a policy "
                f"(at least {detail.min_days} days)",
                hint=f"Wait until the reports cover at least {detail.min_days} days at the current "
                "policy (seed: policy progression template, aggregate reports of the last 14 days).",
            )
    if detail.pattern and not re.match(detail.pattern, value):
        raise doc.error(
            where,
            f"{detail.name} {value!r} is not in the form the template asks for",
            hint=f"{detail.prompt} (pattern {detail.pattern})",
        )


def _check_template(doc: YamlDocument, template: TicketTemplate, data: Mapping[str, Any]) -> None:
    """The fields and details the request's ticket template requires, in the forms it gives."""
    for name, prompt in template.fields:
        if name not in data:
            raise doc.error(
                (),
                f"a {template.id} request needs `{name}:` ({prompt})",
                hint=f"{template.file.name} lists what a {template.title} request holds.",
            )
    if "rollback_of" in data and "rollback_of" not in dict(template.fields):
        raise doc.error(
            ("rollback_of",),
            f"rollback_of belongs to emergency-rollback requests, not {template.id}",
            hint="Set `type: emergency-rollback` or remove rollback_of.",
        )
    details: Mapping[str, Any] = data.get("details") or {}
    for detail in template.details:
        if detail.name not in details:
            if detail.required:
                raise doc.error(
                    ("details",) if "details" in data else (),
                    f"a {template.id} request needs details.{detail.name} ({detail.prompt})",
                    hint=f"{template.file.name} lists the pre-built fields of a {template.title} "
                    "request.",
                )
            continue
        _check_value(doc, detail, str(details[detail.name]))


def _check_manual(
    doc: YamlDocument, rtype: RequestType, covers: Sequence[Selector], data: Mapping[str, Any]
) -> None:
    """A manual request names domains, not records; only a manual request has steps."""
    if not rtype.manual:
        for key in ("steps", "checklist"):
            if key in data:
                raise doc.error(
                    (key,),
                    f"{key} belong to platform and dkim-switch requests, not {rtype.value}",
                    hint="A DNS change is verified against the authoritative servers; remove it.",
                )
        return
    for key in ("steps", "checklist"):
        if not data.get(key):
            raise doc.error(
                (),
                f"a {rtype.value} request needs `{key}:` (a list: "
                + ("what is done by hand, in order" if key == "steps" else "what proves it worked")
                + ")",
                hint="`dmarcops new " + rtype.value + "` writes the skeleton with both.",
            )
    for i, selector in enumerate(covers):
        if selector.name is not None:
            raise doc.error(
                ("covers", i),
                f"a {rtype.value} request covers domains, not records: write {selector.zone!r}",
                hint="It changes no DNS record; `covers:` says which domains it affects.",
            )
    if rtype is RequestType.DKIM_SWITCH and len({s.zone for s in covers}) != 1:
        raise doc.error(
            ("covers",),
            "a dkim-switch request covers exactly one domain",
            hint="File one request per domain: each switches to its own selector.",
        )


def _request(
    doc: YamlDocument, request_id: str, root: Path, roster: Roster, templates: TemplateSet
) -> ChangeRequest:
    data: Mapping[str, Any] = doc.data
    problem = rationale_problem(data.get("rationale"))
    if problem:
        raise doc.error(("rationale",), problem, hint=RATIONALE_HINT)
    template = next((t for t in templates if t.id == data["type"]), None)
    if template is None:
        raise doc.error(
            ("type",),
            f"no ticket template {data['type']!r}",
            hint=f"Templates (policy/templates/): {', '.join(t.id for t in templates) or 'none'}.",
        )
    rtype = RequestType(template.id)
    if "emergency_reason" in data:
        problem = rationale_problem(data["emergency_reason"], "emergency_reason")
        if problem:
            raise doc.error(
                ("emergency_reason",),
                problem,
                hint="Say what is breaking now and why it cannot wait for the standard approval "
                'cycle (seed: "the emergency that wasn\'t actually an emergency" erodes the policy).',
            )
    _check_template(doc, template, data)

    client = data["client"]
    clients_dir = root / "policy" / "clients"
    if not (clients_dir / f"{client}.yaml").exists():
        known = sorted(p.stem for p in clients_dir.glob("*.yaml"))
        raise doc.error(
            ("client",),
            f"no client {client!r}",
            hint=f"Clients (policy/clients/): {', '.join(known) or 'none'}.",
        )
    domains = client_domains(root, client)
    covers: list[Selector] = []
    for i, text in enumerate(data["covers"]):
        selector = Selector.parse(text)
        if selector is None:  # the schema's pattern keeps this from happening
            raise doc.error(("covers", i), f"cannot read selector {text!r}")
        if domains is not None and selector.zone not in domains:
            raise doc.error(
                ("covers", i),
                f"{selector.zone} is not a domain of client {client!r}",
                hint=f"{client}'s domains: {', '.join(domains)}. A request covers one client's "
                "changes; file one request per client.",
            )
        covers.append(selector)

    _check_manual(doc, rtype, covers, data)

    author = data["author"]
    if author not in roster:
        raise doc.error(
            ("author",),
            f"author {author!r} is not on the analyst roster",
            hint=f"Roster ids (policy/roster.yaml): {', '.join(roster.ids)}.",
        )

    approval: ClientApproval | None = None
    if "client_approval" in data:
        given = data["client_approval"]
        at = _timestamp(given["at"])
        if at is None:
            raise doc.error(
                ("client_approval", "at"),
                f"{given['at']!r} is not a UTC time",
                hint="Write it as 2026-06-08T09:14:00Z.",
            )
        approval = ClientApproval(
            given["approver"].lower(),
            at,
            given["reference"],
            freeze=str(given.get("freeze", "")),
            eml=given.get("eml"),
        )

    signature, unreadable = _read_signature(signature_path(root, request_id))
    return ChangeRequest(
        id=request_id,
        type=rtype,
        client=client,
        covers=tuple(covers),
        rationale=data["rationale"].strip(),
        author=author,
        evidence=tuple(data.get("evidence", ())),
        details=tuple((str(k), str(v)) for k, v in data.get("details", {}).items()),
        client_approval=approval,
        requested_risk=RiskLevel.parse(data["requested_risk"])
        if "requested_risk" in data
        else None,
        rollback_of=data.get("rollback_of"),
        emergency_reason=data.get("emergency_reason"),
        incident=str(data.get("incident", "")),
        on_call=str(data.get("on_call", "")),
        file=doc.path,
        lines=tuple((str(key), doc.line_of((str(key),)) or 0) for key in data),
        sha256=content_sha256(data),
        signature=signature,
        signature_error=unreadable,
        template=template,
        steps=tuple(str(x) for x in data.get("steps", ())),
        checklist=tuple(str(x) for x in data.get("checklist", ())),
    )


def _check_file(
    path: Path, root: Path, roster: Roster, templates: TemplateSet, problems: list[InputError]
) -> ChangeRequest | None:
    request_id = path.stem
    if path.suffix != ".yaml":
        problems.append(
            InputError(
                "change requests are .yaml files", file=path, hint=f"Rename it {request_id}.yaml."
            )
        )
        return None
    if not REQUEST_ID.match(request_id):
        problems.append(
            InputError(
                f"{request_id!r} is not a change request id",
                file=path,
                hint="Name the file CR-<number>-<words>.yaml, e.g. CR-0007-fabrikam-sendgrid.yaml "
                "(lower case words, single hyphens); `dmarcops new` picks the next number.",
            )
        )
        return None
    try:
        doc = load_yaml(path)
    except InputError as exc:
        problems.append(exc)
        return None
    prompts = [
        doc.error(
            where,
            f"template prompt left in: {PROMPT.search(text).group(0)}",  # type: ignore[union-attr]
            hint="Replace each <<...>> prompt of the ticket template with the real value.",
        )
        for where, text in _strings(doc.data)
        if PROMPT.search(text)
    ]
    if prompts:
        problems.extend(prompts)
        return None
    errors = list(iter_schema_errors(doc, root / SCHEMA))
    if errors:
        problems.extend(errors)
        return None
    try:
        return _request(doc, request_id, root, roster, templates)
    except InputError as exc:
        problems.append(exc)
        return None


def collect_requests(
    root: Path, roster: Roster | None = None
) -> tuple[list[ChangeRequest], list[InputError]]:
    """Every request under changes/requests/, with every problem found (for `requests check`)."""
    directory = root / REQUESTS_DIR
    if not directory.is_dir():
        return [], []
    roster = roster if roster is not None else load_roster(root)
    # `plan` validates the requests, then covers the plan with them: read them once per version
    # of the files (names, sizes and modification times) and of the roster.
    # lstat, and nothing skipped for its kind: a directory, link or FIFO named like a request is
    # read (and refused by name) like any request file, never silently left out or followed.
    stamp = tuple(
        (p.name, st.st_mtime_ns, st.st_size)
        for p in sorted(directory.iterdir())
        # The signature files too: signing a request changes whether it counts.
        if p.suffix in (".yaml", ".yml") or p.name.endswith(SIGNATURE_SUFFIX)
        for st in [p.lstat()]
    )
    templates, problems = templates_for(root)
    requests, found = _collect(root, roster, templates, stamp)
    return list(requests), [*problems, *found]


@functools.lru_cache(maxsize=8)
def _collect(
    root: Path, roster: Roster, templates: TemplateSet, stamp: tuple[tuple[str, int, int], ...]
) -> tuple[tuple[ChangeRequest, ...], tuple[InputError, ...]]:
    requests: list[ChangeRequest] = []
    problems: list[InputError] = []
    for name, _, _ in stamp:
        if name.endswith(SIGNATURE_SUFFIX):
            continue  # read with its request
        request = _check_file(root / REQUESTS_DIR / name, root, roster, templates, problems)
        if request is not None:
            requests.append(request)
    return tuple(requests), tuple(problems)


def load_requests(root: Path, roster: Roster | None = None) -> list[ChangeRequest]:
    """Every change request, or InputError (exit 1) naming the file and line of the first problem."""
    requests, problems = collect_requests(root, roster)
    if problems:
        raise problems[0]
    return requests


def request_path(root: Path, request_id: str) -> Path:
    return root / REQUESTS_DIR / f"{request_id}.yaml"


def next_request_id(root: Path, client: str) -> str:
    """CR-<next number>-<client>: numbers count across all clients, like the seed's record numbers."""
    numbers = [
        int(m.group(1))
        for p in (root / REQUESTS_DIR).glob("CR-*")
        if (m := re.match(r"CR-([0-9]+)", p.name))
    ]
    return f"CR-{max(numbers, default=0) + 1:04d}-{client}"


def _prompt(text: str) -> str:
    return json.dumps(f"<<{text}>>")


def new_request(
    template: TicketTemplate,
    client: str,
    covers: Sequence[str],
    author: str,
    *,
    rollback_of: str | None = None,
) -> str:
    """The YAML text of a new request from a ticket template (policy/templates/<type>.yaml).

    Every field the analyst must supply is a <<...>> prompt; a request still holding one is refused.
    """
    lines = [
        f'# Change request from the "{template.title}" ticket template '
        f"({TEMPLATES_DIR.as_posix()}/{template.id}.yaml).",
        f"# Routes through: {template.routing}.",
        "# Schema: policy/schemas/change-request.schema.json",
        "# Replace every <<...>> prompt; a request that still holds one is refused.",
        f"type: {template.id}",
        f"client: {json.dumps(client)}",
        "covers:",
        *(f"  - {json.dumps(c)}" for c in covers),
        f"author: {json.dumps(author)}",
        f"rationale: {_prompt(template.rationale)}",
        "evidence:",
        f"  - {_prompt(template.evidence)}",
    ]
    for name, prompt in template.fields:
        given = rollback_of if name == "rollback_of" else None
        lines.append(f"{name}: " + (json.dumps(given) if given else _prompt(prompt)))
    if template.details:
        lines.append("details:")
        lines += [f"  {d.name}: {_prompt(d.prompt)}" for d in template.details]
    if template.manual is not None:
        step, check = template.manual
        lines += ["steps:", f"  - {_prompt(step)}", "checklist:", f"  - {_prompt(check)}"]
    lines += [
        "# requested_risk: low          # optional; a level below the computed one is refused",
        "# client_approval:             # required for high-risk changes (p=reject, removing a",
        "#                              # sender, a regulated client's SPF/RUA, a freeze)",
        "#   approver: name@client.example            # one of the client's authorised_approvers",
        "#   at: 2026-06-08T09:14:00Z                 # UTC",
        '#   reference: "<message-id@mail.client.example>"   # or a ticket id such as CHG-2291',
        "# on_call: ROSTER-ID           # the client's on-call owner, who covers a rollback window",
        "#                              # ending outside staffed hours (the Friday rule)",
    ]
    return "\n".join(lines) + "\n"
