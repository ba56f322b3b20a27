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
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from nacl.bindings import crypto_sign_open
from nacl.exceptions import CryptoError

from pipeline.errors import InputError
from pipeline.gate import sshsig
from pipeline.gate.roster import Roster
from pipeline.load.files import read_bytes


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
    if _is_openssh(path):
        key: Ed25519PrivateKey | None = None
        public = sshsig.public_key_line(path)
    else:
        key = load_private_key(path)
        public = public_key_text(key)
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
    # Any of the person's keys (a rotation keeps the old one).
    return any(_verifies(key, raw, payload) for key in keys)


def _verifies(key: Ed25519PublicKey, signature: bytes, payload: bytes) -> bool:
    """Ed25519 (RFC 8032) through libsodium (PyNaCl): half the time of OpenSSL's, which counts
    when `audit verify` checks two signatures per record. libsodium is the stricter of the two
    (it refuses non-canonical and small-order encodings, which no honest signer produces), so
    nothing OpenSSL would refuse is accepted."""
    if len(signature) != 64:
        return False
    try:
        crypto_sign_open(signature + payload, key.public_bytes_raw())
    except CryptoError:
        return False
    return True


def verify_signature(roster: Roster, analyst: str, payload: bytes, signature: str) -> bool:
    """True when `signature` over `payload` verifies with one of `analyst`'s roster keys."""
    member = roster.get(analyst)
    # The automation's key records what the pipeline did; it never authors or approves.
    return (
        member is not None
        and member.is_person
        and signature_holds(member.public_keys(), payload, signature)
    )


def public_key_text(key: Ed25519PrivateKey | Ed25519PublicKey) -> str:
    """Base64 of the raw 32-byte public key: the form policy/roster.yaml holds."""
    public = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return base64.b64encode(raw).decode()


def generate_key(path: Path) -> str:
    """Write a new Ed25519 private key (PKCS8 PEM, mode 0600) and return its public key (base64)."""
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise InputError(
            "a key file already exists here",
            file=path,
            hint="Choose another path: overwriting would lose the key the roster trusts.",
        ) from None
    with os.fdopen(fd, "wb") as out:
        os.fchmod(out.fileno(), 0o600)
        out.write(pem)
    return public_key_text(key)


def load_private_key(path: Path) -> Ed25519PrivateKey:
    # Outside the repository by design, but still only a regular file of key size: a FIFO or
    # /dev/zero given as --key must not hang or exhaust the run.
    data = read_bytes(path, limit=64 * 1024, outside_ok=True)
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError):
        raise InputError(
            "not an unencrypted PEM private key",
            file=path,
            hint="Use the file `dmarcops keygen --out FILE` wrote.",
        ) from None
    if not isinstance(key, Ed25519PrivateKey):
        raise InputError(
            "not an Ed25519 key", file=path, hint="Create one with `dmarcops keygen --out FILE`."
        )
    return key
