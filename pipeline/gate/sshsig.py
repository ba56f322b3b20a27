"""OpenSSH signatures (`ssh-keygen -Y sign`, PROTOCOL.sshsig) over dmarcops payloads.

People already hold an ed25519 key their forge knows; the roster may list it as an
`ssh-ed25519 AAAA...` line and they sign with `ssh-keygen` (or their agent) instead of a
`dmarcops keygen` key. The armored signature is stored where a raw one would be, and verified here
with the roster's keys: only ssh-ed25519 keys, only the `dmarcops` namespace (so a signature made
for git commits or another tool can never be replayed as an approval), SHA-512 or SHA-256.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import struct
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from pipeline.errors import EnvironmentProblem, InputError

NAMESPACE = "dmarcops"
BEGIN = "-----BEGIN SSH SIGNATURE-----"
END = "-----END SSH SIGNATURE-----"
_MAGIC = b"SSHSIG"
_HASHES = {"sha512": hashlib.sha512, "sha256": hashlib.sha256}


def is_armored(signature: str) -> bool:
    return signature.lstrip().startswith(BEGIN)


def _string(data: bytes, at: int) -> tuple[bytes, int]:
    if at + 4 > len(data):
        raise ValueError("truncated")
    (n,) = struct.unpack(">I", data[at : at + 4])
    end = at + 4 + n
    if end > len(data):
        raise ValueError("truncated")
    return data[at + 4 : end], end


def _pack(value: bytes) -> bytes:
    return struct.pack(">I", len(value)) + value


def verify(keys: Sequence[Ed25519PublicKey], payload: bytes, armored: str) -> bool:
    """True when `armored` is an sshsig by one of `keys` over `payload` in our namespace."""
    text = armored.strip()
    if not (text.startswith(BEGIN) and text.endswith(END)):
        return False
    try:
        blob = base64.b64decode("".join(text[len(BEGIN) : -len(END)].split()), validate=True)
        if blob[:6] != _MAGIC or struct.unpack(">I", blob[6:10])[0] != 1:
            return False
        public, at = _string(blob, 10)
        namespace, at = _string(blob, at)
        reserved, at = _string(blob, at)
        hash_name, at = _string(blob, at)
        signature, at = _string(blob, at)
        if at != len(blob) or namespace != NAMESPACE.encode():
            return False
        kind, rest = _string(public, 0)
        raw_key, end = _string(public, rest)
        sig_kind, rest = _string(signature, 0)
        raw_sig, sig_end = _string(signature, rest)
        if kind != b"ssh-ed25519" or sig_kind != b"ssh-ed25519" or end != len(public):
            return False
        if sig_end != len(signature):
            return False
        digest = _HASHES.get(hash_name.decode("ascii", "replace"))
        if digest is None:
            return False
        signed = (
            _MAGIC
            + _pack(namespace)
            + _pack(reserved)
            + _pack(hash_name)
            + _pack(digest(payload).digest())
        )
        signer = Ed25519PublicKey.from_public_bytes(raw_key)
    except (binascii.Error, ValueError, struct.error, UnicodeError):
        return False
    # The key inside the signature is only a claim: it must be one of the roster's keys.
    wanted = {k.public_bytes_raw() for k in keys}
    if raw_key not in wanted:
        return False
    try:
        signer.verify(raw_sig, signed)
    except InvalidSignature:
        return False
    return True


def public_key_line(path: Path) -> str:
    """The `ssh-ed25519 AAAA...` line of an OpenSSH key: PATH.pub, or PATH when it is the .pub."""
    pub = path if path.suffix == ".pub" else path.with_name(path.name + ".pub")
    from pipeline.load.files import read_text

    try:
        text = read_text(pub, limit=16 * 1024, outside_ok=True).strip()
    except InputError:
        raise InputError(
            "an OpenSSH key needs its public half beside it",
            file=pub,
            hint="Keep KEY.pub next to the private key (ssh-keygen writes both), or pass the .pub "
            "file itself to sign with the key in your ssh-agent.",
        ) from None
    if not text.startswith("ssh-ed25519 "):
        raise InputError(
            "only ssh-ed25519 keys can sign for dmarcops",
            file=pub,
            hint="Create one with `ssh-keygen -t ed25519`.",
        )
    return " ".join(text.split()[:2])


def sign_with_ssh_keygen(key_path: Path, payload: bytes) -> str:
    """Sign with `ssh-keygen -Y sign -n dmarcops`: the private key (or the agent holding it, when
    `key_path` is the .pub) never passes through dmarcops."""
    with tempfile.TemporaryDirectory(prefix="dmarcops-sshsig-") as tmp:
        message = Path(tmp) / "payload"
        message.write_bytes(payload)
        try:
            done = subprocess.run(
                ["ssh-keygen", "-Y", "sign", "-n", NAMESPACE, "-f", str(key_path), str(message)],
                capture_output=True,
                text=True,
                timeout=120,
                check=False,
            )
        except FileNotFoundError:
            raise EnvironmentProblem(
                "ssh-keygen is not installed",
                hint="Install OpenSSH's client tools, or sign with a `dmarcops keygen` key.",
            ) from None
        except subprocess.TimeoutExpired:
            raise EnvironmentProblem("ssh-keygen did not finish signing in 120 s") from None
        signature = Path(tmp) / "payload.sig"
        if done.returncode != 0 or not signature.is_file():
            raise InputError(
                f"ssh-keygen could not sign: {done.stderr.strip() or 'no signature written'}",
                file=key_path,
                hint="Check the key's passphrase or that your ssh-agent holds it.",
            )
        return signature.read_text(encoding="ascii").strip()
