"""pipeline.gate.identity.signature_holds: libsodium's Ed25519 check accepts exactly the
signatures of the key over the payload, and none of their malleated or truncated forms."""

from __future__ import annotations

import base64

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from pipeline.gate.identity import signature_holds

# The order of the Ed25519 group: S + L is the same scalar, another encoding of it.
L = 2**252 + 27742317777372353535851937790883648493


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def test_the_keys_signature_over_the_payload_and_nothing_else() -> None:
    key, other = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    payload = b'{"plan":"abc","signer":"jchen"}'
    raw = key.sign(payload)
    assert signature_holds([key.public_key()], payload, b64(raw))
    # Any of the person's keys (a rotation keeps the old one), in any order.
    assert signature_holds([other.public_key(), key.public_key()], payload, b64(raw))
    assert not signature_holds([other.public_key()], payload, b64(raw))
    assert not signature_holds([key.public_key()], payload + b" ", b64(raw))
    for n in range(0, 64, 7):
        flipped = bytearray(raw)
        flipped[n] ^= 1
        assert not signature_holds([key.public_key()], payload, b64(bytes(flipped))), n
    assert not signature_holds([key.public_key()], payload, b64(raw[:63]))
    assert not signature_holds([key.public_key()], payload, b64(raw + b"\0"))
    assert not signature_holds([key.public_key()], payload, "not base64!")
    assert not signature_holds([], payload, b64(raw))


def test_a_malleated_signature_is_refused_as_openssl_refuses_it() -> None:
    key = Ed25519PrivateKey.generate()
    payload = b"ledger line 7"
    raw = key.sign(payload)
    s = int.from_bytes(raw[32:], "little") + L  # the same signature, S not reduced
    malleated = raw[:32] + s.to_bytes(32, "little")
    try:
        key.public_key().verify(malleated, payload)
    except InvalidSignature:
        pass
    else:
        raise AssertionError("OpenSSL took the non-canonical S; the two checks would differ")
    assert not signature_holds([key.public_key()], payload, b64(malleated))
