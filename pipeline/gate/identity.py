"""Who did something is proven by a signature, never by a typed name.

A `Signer` is an analyst's private key; the analyst it speaks for is found by the key's public
half in policy/roster.yaml, so `--as jchen` with mhara's key is mhara (or refused). Every actor
entry of the audit trail (apply, rollback, close, review, approval) carries such a signature,
checked offline with the roster's keys.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from pipeline.errors import InputError
from pipeline.gate.roster import Roster


def signing_bytes(fields: dict[str, Any]) -> bytes:
    """Canonical JSON (sorted keys, no spaces, ASCII) of exactly what a signature vouches for."""
    return json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


@dataclass(frozen=True)
class Signer:
    analyst: str  # the roster id the key belongs to
    key: Ed25519PrivateKey

    def sign(self, payload: bytes) -> str:
        """Base64 Ed25519 signature of `payload`."""
        return base64.b64encode(self.key.sign(payload)).decode()

    @property
    def public_key(self) -> str:
        from pipeline.gate.approvals import public_key_text

        return public_key_text(self.key)


def load_signer(path: Path, roster: Roster, claimed: str | None = None) -> Signer:
    """The analyst whose roster key matches the private key in `path`.

    `claimed` is what the user typed (`--as`, `--by`): it must be that analyst, or the command is
    refused; it never chooses who the key speaks for.
    """
    from pipeline.gate.approvals import load_private_key

    key = load_private_key(path)
    signer_id = roster.id_of_key(_public_text(key))
    if signer_id is None:
        raise InputError(
            "this key is not on the analyst roster",
            file=path,
            hint="Use your own key (the one whose public half is in policy/roster.yaml).",
        )
    if claimed is not None and claimed != signer_id:
        raise InputError(
            f"this key is not {claimed}'s: it is {signer_id}'s",
            file=path,
            hint="Who acts is the owner of the key that signs; pass your own key.",
        )
    return Signer(signer_id, key)


def _public_text(key: Ed25519PrivateKey) -> str:
    from pipeline.gate.approvals import public_key_text

    return public_key_text(key)


def verify_signature(roster: Roster, analyst: str, payload: bytes, signature: str) -> bool:
    """True when `signature` over `payload` verifies with one of `analyst`'s roster keys."""
    member = roster.get(analyst)
    if member is None:
        return False
    try:
        raw = base64.b64decode(signature, validate=True)
    except (binascii.Error, ValueError):
        return False
    for key in member.public_keys():
        try:
            key.verify(raw, payload)
        except InvalidSignature:
            continue
        return True
    return False
