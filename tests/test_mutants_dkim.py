"""DKIM selectors (docs/rules.md: K1-K5 and the dkim.* facts the risk rules read): the exact facts
of each kind of selector change, with the profile's lifecycle attributes, so a mutation of the diff
fails a test. Found by mutation testing (docs/mutation-testing.md)."""

from __future__ import annotations

import base64
from datetime import date, timedelta

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from pipeline.diff import dkim
from pipeline.diff.context import DkimLifecycle, RetiredSelector, ScheduledSelector, ZoneContext
from pipeline.model import Fact, Severity, fact

TODAY = date(2026, 3, 1)
NAME = "s1._domainkey"


def key(bits: int, seed: int) -> str:
    """A fixed RSA public key of `bits` bits (a verifier only needs a modulus of that size)."""
    modulus = (1 << (bits - 1)) | (seed << 8) | 1
    der = (
        rsa.RSAPublicNumbers(65537, modulus)
        .public_key()
        .public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    return base64.b64encode(der).decode()


K2048, OTHER2048, K1024 = key(2048, 1), key(2048, 2), key(1024, 3)
ED = base64.b64encode(bytes(range(32))).decode()


def fp(p: str, k: str = "rsa") -> str:
    return dkim.parse(f"k={k}; p={p}").fingerprint


def ctx(
    active: bool = True, retired_days: int | None = None, planned_in: int | None = None
) -> ZoneContext:
    retired = (
        () if retired_days is None else (RetiredSelector("s1", TODAY - timedelta(retired_days)),)
    )
    scheduled = (
        () if planned_in is None else (ScheduledSelector("s1", TODAY + timedelta(planned_in)),)
    )
    lifecycle = DkimLifecycle(
        active=frozenset({"s1"} if active else ()), scheduled=scheduled, retired=retired
    )
    return ZoneContext("example.com", today=TODAY, dkim=lifecycle)


def txt(before: tuple[str, ...], after: tuple[str, ...], context: ZoneContext) -> list[Fact]:
    return dkim.facts(NAME, "TXT", before, after, context)


def removed(active: bool, retired: bool, wait_over: bool) -> Fact:
    return fact("dkim.selector", "s1", None, active=active, retired=retired, wait_over=wait_over)


@pytest.mark.parametrize(
    ("planned_in", "on_schedule"),
    [(None, False), (30, True), (-30, True), (31, False), (-31, False)],
)
def test_a_new_key_says_whether_it_is_on_the_profile_schedule(
    planned_in: int | None, on_schedule: bool
) -> None:
    assert txt((), (f"v=DKIM1; p={K2048}",), ctx(False, planned_in=planned_in)) == [
        fact("dkim.selector", None, "s1", on_schedule=on_schedule, key_type="rsa", bits=2048)
    ]


@pytest.mark.parametrize(
    ("retired_days", "retired", "wait_over"),
    [(None, False, False), (6, True, False), (7, True, True)],
)
def test_a_removed_key_carries_the_profile_lifecycle(
    retired_days: int | None, retired: bool, wait_over: bool
) -> None:
    assert txt((f"p={K2048}",), (), ctx(retired_days=retired_days)) == [
        removed(True, retired, wait_over)
    ]
    # Revoking (empty p=) reads the same lifecycle.
    assert txt((f"p={K2048}",), ("p=",), ctx(False, retired_days=retired_days)) == [
        fact("dkim.revoked", fp(K2048), None, active=False, retired=retired, wait_over=wait_over)
    ]


def test_a_key_on_a_revoked_selector_is_a_reuse() -> None:
    assert txt(("p=",), (f"p={K2048}",), ctx()) == [
        fact("dkim.key", "revoked", fp(K2048), active=True, reused=True)
    ]


def test_a_rotated_key_names_fingerprints_bits_and_type() -> None:
    assert txt((f"p={K1024}",), (f"p={K2048}",), ctx()) == [
        fact("dkim.key", fp(K1024), fp(K2048), active=True),
        fact("dkim.bits", "1024", "2048", active=True),
    ]
    assert txt((f"p={K2048}",), (f"k=ed25519; p={ED}",), ctx(False)) == [
        fact("dkim.key", fp(K2048), fp(ED, "ed25519"), active=False),
        fact("dkim.bits", "2048", "256", active=False),
        fact("dkim.key_type", "rsa", "ed25519", active=False),
    ]
    assert txt((f"p={K2048}",), (f"p={OTHER2048}",), ctx()) == [
        fact("dkim.key", fp(K2048), fp(OTHER2048), active=True)
    ]


def test_other_tags_are_diffed_one_by_one() -> None:
    before = (f"v=DKIM1; h=sha256; s=email; p={K2048}",)
    after = (f"v=DKIM1; s=*; t=y; p={K2048}",)
    assert txt(before, after, ctx()) == [
        fact("dkim.tag", "h=sha256", None, tag="h"),
        fact("dkim.tag", "s=email", "s=*", tag="s"),
        fact("dkim.tag", None, "t=y", tag="t"),
    ]


def test_only_spacing_changed_is_a_plain_change() -> None:
    before, after = (f"v=DKIM1; p={K2048}",), (f"v=DKIM1;  p={K2048}",)
    assert txt(before, after, ctx()) == [
        fact("dkim.changed", f"v=DKIM1; p={K2048}", f"v=DKIM1;  p={K2048}")
    ]


def test_an_unparsable_key_still_says_added_or_removed() -> None:
    assert txt((), ("p=!",), ctx(planned_in=0)) == [
        fact("dkim.selector", None, "s1", on_schedule=True, key_type="", bits=0),
        fact("dkim.unparsed", None, "p=!"),
    ]
    assert txt(("p=!",), (), ctx(retired_days=9)) == [
        removed(True, True, True),
        fact("dkim.unparsed", "p=!", None),
    ]
    assert txt(("p=!",), (f"p={K2048}",), ctx()) == [fact("dkim.unparsed", "p=!", f"p={K2048}")]


def test_cname_selectors_follow_the_target() -> None:
    cname = "CNAME"
    assert dkim.facts(NAME, cname, (), ("s1.dkim.esp.example.",), ctx(planned_in=1)) == [
        fact("dkim.selector", None, "s1", on_schedule=True, key_type="", bits=0),
        fact("dkim.cname", None, "s1.dkim.esp.example", active=True),
    ]
    assert dkim.facts(NAME, cname, ("s1.dkim.esp.example.",), (), ctx(retired_days=1)) == [
        removed(True, True, False),
        fact("dkim.cname", "s1.dkim.esp.example", None, active=True),
    ]
    moved = dkim.facts(NAME, cname, ("a.esp.example.",), ("b.esp.example.",), ctx(False))
    assert moved == [fact("dkim.cname", "a.esp.example", "b.esp.example", active=False)]
    # The same target spelled differently changes nothing a resolver sees.
    same = dkim.facts(NAME, cname, ("A.esp.example.",), ("a.esp.example",), ctx())
    assert same == [fact("dkim.changed", "A.esp.example.", "a.esp.example")]


# The second mutation run: the words of every DKIM finding, which the operator reads to fix the
# key, and that a bad value does not hide the values after it.

K512 = key(512, 4)
ED44 = base64.b64encode(bytes(44)).decode()
# An ed25519 key as a SubjectPublicKeyInfo: DER, but not RSA.
ED_SPKI = "MCowBQYDK2VwAyEAO2onvM62pC1io6jQKm8Nc2UyFXcd4kOmOsBIoYtZ2ik="
NOT_FIRST = (
    "v= is optional but, when present, must be the first tag and exactly v=DKIM1 "
    "(RFC 6376 3.6.1); otherwise verifiers ignore the key"
)
MANY = "2 key records at one selector: verifiers may pick any of them (RFC 6376 3.6.2.2); publish one key per selector"
SHA1 = "h= allows sha1, which verifiers no longer accept (RFC 8301 3.1); use h=sha256 or drop h="
FINDINGS = [
    (
        ("v=DKIM1; p=!!!", f"k=rsa; p={K1024}"),
        None,
        [
            ("K1", Severity.ERROR, MANY),
            ("K2", Severity.ERROR, "p= is not valid base64 (Only base64 data is allowed)"),
            (
                "K4",
                Severity.WARNING,
                "RSA key of 1024 bits: use at least 2048 bits (RFC 8301 3.2) at the next rotation",
            ),
        ],
    ),
    (
        ("v=DKIM1; p=",),
        None,
        [
            (
                "K2",
                Severity.ERROR,
                "empty p= revokes selector s1, which the client profile does not list as "
                "retired: mail still signed with it fails DKIM; retire it in the profile first",
            )
        ],
    ),
    (
        ("v=DKIM1; p=",),
        10,
        [("K2", Severity.INFO, "selector s1 is revoked (empty p=), as documented")],
    ),
    (
        (f"k=dsa; p={K2048}",),
        None,
        [
            (
                "K3",
                Severity.WARNING,
                "k=dsa: verifiers know only rsa and ed25519 and ignore this key (RFC 6376 3.6.1, "
                "RFC 8463), so mail signed with it fails DKIM; publish k=rsa or k=ed25519",
            )
        ],
    ),
    (
        (f"h=sha1:md5:x; t=y:q:z; p={K2048}",),
        None,
        [
            ("K3", Severity.ERROR, "h= lists md5:x; only sha1 and sha256 exist (RFC 6376 3.6.1)"),
            ("K3", Severity.WARNING, SHA1),
            ("K3", Severity.WARNING, "t= flags q:z are unknown and ignored; only y and s exist"),
        ],
    ),
    ((f"h=sha1; p={K2048}",), None, [("K3", Severity.ERROR, SHA1)]),
    (
        (f"p={K512}",),
        None,
        [
            (
                "K4",
                Severity.ERROR,
                "RSA key of 512 bits: verifiers reject keys under 1024 bits (RFC 8301 3.2); "
                "publish a 2048-bit key on a new selector",
            )
        ],
    ),
    (
        ("p=x; v=DKIM1", "v=DKIM2; p="),
        None,
        [("K1", Severity.ERROR, MANY)] + [("K1", Severity.ERROR, NOT_FIRST)] * 2,
    ),
    (
        ("v=DKIM1; k=rsa",),
        None,
        [
            (
                "K2",
                Severity.ERROR,
                "no p= tag: a key record must carry the public key, or an empty p= to revoke it "
                "(RFC 6376 3.6.1)",
            )
        ],
    ),
    (
        ("p=\uff15\uff10",),  # fullwidth digits
        None,
        [("K2", Severity.ERROR, "p= is not valid base64 (it holds characters outside ASCII)")],
    ),
    (
        ("p=AAAA", f"p={ED_SPKI}"),
        None,
        [
            ("K1", Severity.ERROR, MANY),
            ("K4", Severity.ERROR, "p= does not hold a DER RSA public key (RFC 6376 3.6.1)"),
            ("K4", Severity.ERROR, "k=rsa but p= holds a key of another type"),
        ],
    ),
    (
        (f"k=ed25519; p={ED44}",),
        None,
        [
            (
                "K5",
                Severity.ERROR,
                "an ed25519 p= must be the raw 32-byte key (RFC 8463 4), found 44 bytes; publish "
                "the raw key, not a SubjectPublicKeyInfo",
            )
        ],
    ),
]


@pytest.mark.parametrize(
    ("values", "retired_days", "expected"),
    FINDINGS,
    ids=[f"{i}-{'-'.join(c for c, _, _ in e)}" for i, (_, _, e) in enumerate(FINDINGS)],
)
def test_each_dkim_finding_says_what_is_wrong_at_which_selector(
    values: tuple[str, ...], retired_days: int | None, expected: list[tuple[str, Severity, str]]
) -> None:
    findings = dkim.validate(NAME, "TXT", values, ctx(retired_days=retired_days))
    assert [(f.code, f.severity, f.message) for f in findings] == expected
    assert {f.name for f in findings} == {NAME}
