"""The roster (policy/roster.yaml): who may author, review and lead changes, and their public keys.

Every act of the audit trail is a signature checked against a key listed here, so a record can be
verified offline, years later, from the repository alone (seed: "Approval chain documented. Who
proposed, who reviewed, who approved"). Private keys never live in the repository.

Per person: id, name, e-mail, role (analyst | lead), GitHub login and numeric user id (a login can
be renamed and re-registered by someone else; the id cannot), one or more public keys (base64 raw
Ed25519 as `dmarcops keygen` prints, or an OpenSSH `ssh-ed25519 AAAA...` line so people can reuse
the key their forge already knows), and a start date: an analyst inside their first
`shadowing_days` (policy/gate.yaml, seed: "New analysts shadow change-controlled work for the first
30 days") is shadowing. No two people share key bytes, whatever form the key is written in.
"""

from __future__ import annotations

import base64
import binascii
import enum
import functools
import struct
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from pipeline.errors import InputError
from pipeline.load.yamlfile import iter_schema_errors, load_yaml

ROSTER_FILE = Path("policy") / "roster.yaml"
SSH_ED25519 = "ssh-ed25519"


class Role(enum.StrEnum):
    ANALYST = "analyst"
    LEAD = "lead"
    # The pipeline's own key in GitHub Actions (scheduled closes, apply on merge): it signs ledger
    # entries for what the automation did and nothing else. Its signature never counts as an
    # author's, a reviewer's or an approver's (pipeline.gate.identity.verify_signature).
    AUTOMATION = "automation"


def raw_key_bytes(text: str) -> bytes | None:
    """The 32 raw Ed25519 key bytes of a roster key in either form; None when it is neither."""
    text = text.strip()
    try:
        if text.startswith(SSH_ED25519 + " "):
            blob = base64.b64decode(text.split()[1], validate=True)
            raw = _ssh_ed25519_blob(blob)
        else:
            raw = base64.b64decode(text, validate=True)
        Ed25519PublicKey.from_public_bytes(raw)
    except (binascii.Error, ValueError, IndexError, struct.error):
        return None
    return raw


def _ssh_ed25519_blob(blob: bytes) -> bytes:
    """RFC 8709 public key blob: string "ssh-ed25519", string key (32 bytes)."""
    (n,) = struct.unpack(">I", blob[:4])
    if blob[4 : 4 + n] != SSH_ED25519.encode():
        raise ValueError("not an ssh-ed25519 key")
    rest = blob[4 + n :]
    (m,) = struct.unpack(">I", rest[:4])
    key = rest[4 : 4 + m]
    if m != 32 or len(rest) != 4 + m:
        raise ValueError("bad ssh-ed25519 key length")
    return key


def canonical_key_text(raw: bytes) -> str:
    """The one spelling of a key the rest of the pipeline compares: base64 of the raw bytes."""
    return base64.b64encode(raw).decode()


@dataclass(frozen=True)
class Analyst:
    id: str
    name: str
    email: str
    github: str
    public_key: str  # the first key, canonical base64 of the raw 32 bytes
    role: Role = Role.ANALYST
    github_id: int | None = None
    start_date: date | None = None
    other_keys: tuple[str, ...] = ()  # further keys, canonical base64

    def public_keys(self) -> tuple[Ed25519PublicKey, ...]:
        """Every key this analyst may sign with (pipeline.gate.identity verifies against all)."""
        return _decoded(self.key_texts())

    def key_texts(self) -> tuple[str, ...]:
        return (self.public_key, *self.other_keys)

    @property
    def is_lead(self) -> bool:
        return self.role is Role.LEAD

    @property
    def is_person(self) -> bool:
        return self.role is not Role.AUTOMATION

    def shadowing_until(self, shadowing_days: int) -> date | None:
        return self.start_date + timedelta(days=shadowing_days) if self.start_date else None

    def is_shadowing(self, at: datetime, shadowing_days: int) -> bool:
        """Inside the first `shadowing_days` after the start date (seed: 30 days of shadowing)."""
        until = self.shadowing_until(shadowing_days)
        return until is not None and at.date() < until


@dataclass(frozen=True)
class Roster:
    analysts: tuple[Analyst, ...]
    file: Path = Path()

    def policy_root(self, default: Path) -> Path:
        """The tree whose policy/ this roster was read from: the sealed copy for the roster of
        record (pipeline.records.policy_of_record), the working tree for the working roster;
        `default` for a roster made in code."""
        if self.file == Path():
            return default
        return Path(*self.file.parts[: -len(ROSTER_FILE.parts)])

    def get(self, analyst_id: str) -> Analyst | None:
        return next((a for a in self.analysts if a.id == analyst_id), None)

    def by_github(self, login: str, user_id: int | None = None) -> Analyst | None:
        """The analyst behind a GitHub account. GitHub's numeric user id, when the caller has it,
        decides: it survives a rename (the roster's login may be the old one) and a login that
        was given up and taken by someone else is not the roster's person. Without an id, the
        login (case-insensitive)."""
        if user_id is not None:
            by_id = next((a for a in self.analysts if a.github_id == user_id), None)
            if by_id is not None:
                return by_id
        login = login.lower()  # GitHub logins are case-insensitive
        found = next((a for a in self.analysts if a.github.lower() == login), None)
        if found is not None and user_id is not None and found.github_id is not None:
            return None  # the login is the roster's, the account is not (re-registered)
        return found

    def id_of_key(self, public_key: str) -> str | None:
        """The analyst one of whose keys is `public_key` (base64 raw Ed25519 or an OpenSSH
        `ssh-ed25519 AAAA...` line: compared by key bytes, as the roster stores them)."""
        raw = raw_key_bytes(public_key)
        if raw is None:
            return None
        canonical = base64.b64encode(raw).decode()
        return next((a.id for a in self.analysts if canonical in a.key_texts()), None)

    def __contains__(self, analyst_id: object) -> bool:
        return any(a.id == analyst_id for a in self.analysts)

    @property
    def ids(self) -> tuple[str, ...]:
        return tuple(a.id for a in self.analysts)


def load_roster(root: Path) -> Roster:
    """policy/roster.yaml, schema-checked; ids, e-mails, GitHub logins, ids and key bytes unique."""
    path = root / ROSTER_FILE
    if not path.exists():
        raise InputError(
            "no analyst roster",
            file=path,
            hint="Create policy/roster.yaml (see policy/schemas/roster.schema.json); "
            "`dmarcops keygen` prints each analyst's public key.",
        )
    doc = load_yaml(path)
    for error in iter_schema_errors(doc, root / "policy" / "schemas" / "roster.schema.json"):
        raise error
    analysts: list[Analyst] = []
    seen: dict[tuple[str, str], int] = {}
    for i, entry in enumerate(doc.data["analysts"]):
        written = [entry["public_key"]] if "public_key" in entry else []
        written += list(entry.get("public_keys", []))
        if not written:
            raise doc.error(
                ("analysts", i),
                f"{entry['id']!r} has no public key",
                hint="Add public_key (or public_keys): `dmarcops keygen` prints one.",
            )
        keys: list[str] = []
        for k, text in enumerate(written):
            raw = raw_key_bytes(text)
            where: tuple[str | int, ...] = (
                ("analysts", i, "public_key")
                if k == 0 and "public_key" in entry
                else ("analysts", i, "public_keys", k - int("public_key" in entry))
            )
            if raw is None:
                raise doc.error(
                    where,
                    f"a key of {entry['id']!r} is not an Ed25519 public key",
                    hint="Paste the base64 line `dmarcops keygen` printed (32 raw bytes), or an "
                    "OpenSSH `ssh-ed25519 AAAA...` public key line.",
                )
            keys.append(canonical_key_text(raw))
        start = entry.get("start_date")
        analyst = Analyst(
            id=entry["id"],
            name=entry["name"],
            email=entry["email"],
            github=entry["github"],
            public_key=keys[0],
            role=Role(entry.get("role", Role.ANALYST.value)),
            github_id=entry.get("github_id"),
            start_date=date.fromisoformat(str(start)) if start is not None else None,
            other_keys=tuple(keys[1:]),
        )
        checks: list[tuple[str, str]] = [
            ("id", analyst.id),
            ("email", analyst.email.lower()),
            ("github", analyst.github.lower()),
        ]
        if analyst.github_id is not None:
            checks.append(("github_id", str(analyst.github_id)))
        checks += [("key", k) for k in keys]
        for field_name, value in checks:
            first = seen.get((field_name, value))
            if first is not None and (first != i or field_name == "key"):
                raise doc.error(
                    ("analysts", i),
                    f"{field_name} {value!r} is also used by the person at line "
                    f"{doc.line_of(('analysts', first))}",
                    hint="Each person has their own id, e-mail, GitHub account and keys: a "
                    "shared key would let one person sign as another.",
                )
            seen[(field_name, value)] = i
        analysts.append(analyst)
    return Roster(tuple(analysts), path)


@functools.lru_cache(maxsize=4096)
def _decoded(texts: tuple[str, ...]) -> tuple[Ed25519PublicKey, ...]:
    # Decoded once per process: every ledger line a writer appends checks its own signature.
    return tuple(Ed25519PublicKey.from_public_bytes(base64.b64decode(k)) for k in texts)
