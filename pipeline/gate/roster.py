"""The analyst roster (policy/roster.yaml): who may author and review changes, and their public keys.

An approval is an Ed25519 signature; the roster holds each analyst's public key, so any approval can
be verified offline, years later, from the repository alone (seed: "Approval chain documented. Who
proposed, who reviewed, who approved"). Private keys never live in the repository.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from pipeline.errors import InputError
from pipeline.load.yamlfile import iter_schema_errors, load_yaml

ROSTER_FILE = Path("policy") / "roster.yaml"


@dataclass(frozen=True)
class Analyst:
    id: str
    name: str
    email: str
    github: str
    public_key: str  # base64 of the raw 32-byte Ed25519 public key

    def key(self) -> Ed25519PublicKey:
        return Ed25519PublicKey.from_public_bytes(base64.b64decode(self.public_key))

    def public_keys(self) -> tuple[Ed25519PublicKey, ...]:
        """Every key this analyst may sign with (pipeline.gate.identity verifies against all)."""
        return (self.key(),)

    def key_texts(self) -> tuple[str, ...]:
        return (self.public_key,)


@dataclass(frozen=True)
class Roster:
    analysts: tuple[Analyst, ...]
    file: Path = Path()

    def get(self, analyst_id: str) -> Analyst | None:
        return next((a for a in self.analysts if a.id == analyst_id), None)

    def by_github(self, login: str) -> Analyst | None:
        login = login.lower()  # GitHub logins are case-insensitive
        return next((a for a in self.analysts if a.github.lower() == login), None)

    def id_of_key(self, public_key: str) -> str | None:
        """The analyst one of whose keys is `public_key` (base64 raw Ed25519)."""
        return next((a.id for a in self.analysts if public_key in a.key_texts()), None)

    def __contains__(self, analyst_id: object) -> bool:
        return any(a.id == analyst_id for a in self.analysts)

    @property
    def ids(self) -> tuple[str, ...]:
        return tuple(a.id for a in self.analysts)


def _decoded_key(text: str) -> bytes | None:
    try:
        raw = base64.b64decode(text, validate=True)
        Ed25519PublicKey.from_public_bytes(raw)
    except (binascii.Error, ValueError):
        return None
    return raw


def load_roster(root: Path) -> Roster:
    """policy/roster.yaml, schema-checked; ids, e-mails, GitHub logins and keys unique."""
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
        analyst = Analyst(
            id=entry["id"],
            name=entry["name"],
            email=entry["email"],
            github=entry["github"],
            public_key=entry["public_key"],
        )
        if _decoded_key(analyst.public_key) is None:
            raise doc.error(
                ("analysts", i, "public_key"),
                f"public_key of {analyst.id!r} is not an Ed25519 public key",
                hint="Paste the base64 line `dmarcops keygen` printed (32 raw bytes).",
            )
        for field_name, value in (
            ("id", analyst.id),
            ("email", analyst.email.lower()),
            ("github", analyst.github.lower()),
            ("public_key", analyst.public_key),
        ):
            first = seen.get((field_name, value))
            if first is not None:
                raise doc.error(
                    ("analysts", i, field_name),
                    f"{field_name} {value!r} is also used by the analyst at line "
                    f"{doc.line_of(('analysts', first))}",
                    hint="Each analyst has their own id, e-mail, GitHub login and key: "
                    "a shared key would let one person approve as another.",
                )
            seen[(field_name, value)] = i
        analysts.append(analyst)
    return Roster(tuple(analysts), path)
