"""Who did something is proven by a signature, never by a typed name.

A `Signer` is an analyst's private key (a `dmarcops keygen` key or an OpenSSH ed25519 key, which
signs through `ssh-keygen -Y sign`, pipeline/gate/sshsig.py); the analyst it speaks for is found by the key's public
half in policy/roster.yaml, so `--as jchen` with mhara's key is mhara (or refused). Every actor
entry of the audit trail (apply, rollback, close, review, approval) carries such a signature,
checked offline with the roster's keys.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from pipeline.errors import InputError
from pipeline.gate import sshsig
from pipeline.gate.roster import Roster


def signing_bytes(fields: dict[str, Any]) -> bytes:
    """Canonical JSON (sorted keys, no spaces, ASCII) of exactly what a signature vouches for."""
    return json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


@dataclass(frozen=True)
class Signer:
    analyst: str  # the roster id the key belongs to
    key: Ed25519PrivateKey | None  # a `dmarcops keygen` key, or
    ssh_key: Path | None = None  # an OpenSSH ed25519 key (or its .pub: the agent signs)

    def sign(self, payload: bytes) -> str:
        """Base64 Ed25519 signature of `payload`, or an armored sshsig for an OpenSSH key."""
        if self.key is not None:
            return base64.b64encode(self.key.sign(payload)).decode()
        assert self.ssh_key is not None
        return sshsig.sign_with_ssh_keygen(self.ssh_key, payload)


def _is_openssh(path: Path) -> bool:
    from pipeline.load.files import read_bytes

    if path.suffix == ".pub":
        return True
    head = read_bytes(path, limit=64 * 1024, outside_ok=True)[:64]
    return head.startswith(b"-----BEGIN OPENSSH PRIVATE KEY-----")


def load_signer(path: Path, roster: Roster, claimed: str | None = None) -> Signer:
    """The analyst whose roster key matches the private key in `path`.

    `path` is a `dmarcops keygen` PEM key, or an OpenSSH ed25519 key (private, with its .pub
    beside it, or the .pub alone when an ssh-agent holds the private half).
    `claimed` is what the user typed (`--as`, `--by`): it must be that analyst, or the command is
    refused; it never chooses who the key speaks for.
    """
    from pipeline.gate.approvals import load_private_key

    if _is_openssh(path):
        key: Ed25519PrivateKey | None = None
        public = sshsig.public_key_line(path)
    else:
        key = load_private_key(path)
        public = _public_text(key)
    signer_id = roster.id_of_key(public)
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
    return Signer(signer_id, key, None if key is not None else path)


def signature_holds(keys: Sequence[Ed25519PublicKey], payload: bytes, signature: str) -> bool:
    """A raw base64 Ed25519 signature or an armored sshsig, by one of `keys`, over `payload`."""
    if sshsig.is_armored(signature):
        return sshsig.verify(keys, payload, signature)
    try:
        raw = base64.b64decode(signature, validate=True)
    except (binascii.Error, ValueError):
        return False
    for key in keys:  # any of the person's keys (a rotation keeps the old one)
        try:
            key.verify(raw, payload)
        except InvalidSignature:
            continue
        return True
    return False


def _public_text(key: Ed25519PrivateKey) -> str:
    from pipeline.gate.approvals import public_key_text

    return public_key_text(key)


def verify_signature(roster: Roster, analyst: str, payload: bytes, signature: str) -> bool:
    """True when `signature` over `payload` verifies with one of `analyst`'s roster keys."""
    member = roster.get(analyst)
    # The automation's key records what the pipeline did; it never authors or approves.
    return (
        member is not None
        and member.is_person
        and signature_holds(member.public_keys(), payload, signature)
    )
