"""DKIM validation (K1-K6) and facts, with real keys made by cryptography."""

from __future__ import annotations

import base64
import hashlib
import secrets
from datetime import date, timedelta

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from pipeline.diff import dkim
from pipeline.diff.context import DkimLifecycle, RetiredSelector, ScheduledSelector, ZoneContext
from pipeline.diff.errors import RecordSyntaxError
from pipeline.model import Fact, Finding, Severity

TODAY = date(2026, 3, 1)
SPKI = serialization.PublicFormat.SubjectPublicKeyInfo
DER = serialization.Encoding.DER


def rsa_der(bits: int) -> bytes:
    return rsa.generate_private_key(65537, bits).public_key().public_bytes(DER, SPKI)


def small_rsa_der(bits: int) -> bytes:
    # cryptography refuses to generate keys under 1024 bits; a public key only needs a modulus.
    modulus = secrets.randbits(bits) | (1 << (bits - 1)) | 1
    return rsa.RSAPublicNumbers(65537, modulus).public_key().public_bytes(DER, SPKI)


def ed25519_key() -> ed25519.Ed25519PublicKey:
    return ed25519.Ed25519PrivateKey.generate().public_key()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def fingerprint(der: bytes) -> str:
    return hashlib.sha256(der).hexdigest()[:12]


@pytest.fixture(scope="module")
def rsa1024() -> bytes:
    return rsa_der(1024)


@pytest.fixture(scope="module")
def rsa2048() -> bytes:
    return rsa_der(2048)


@pytest.fixture(scope="module")
def other2048() -> bytes:
    return rsa_der(2048)


def ctx(
    active: frozenset[str] = frozenset(),
    scheduled: tuple[ScheduledSelector, ...] = (),
    retired: tuple[RetiredSelector, ...] = (),
) -> ZoneContext:
    lifecycle = DkimLifecycle(
        active=active, scheduled=scheduled, retired=retired, retire_wait_days=7
    )
    return ZoneContext("example.com", today=TODAY, dkim=lifecycle)


def check(
    value: str, name: str = "s1._domainkey", context: ZoneContext | None = None
) -> list[Finding]:
    return dkim.validate(name, "TXT", (value,), context or ctx())


def found(findings: list[Finding], code: str) -> list[Severity]:
    return [f.severity for f in findings if f.code == code]


def one(facts: list[Fact], code: str) -> Fact:
    matching = [f for f in facts if f.code == code]
    assert len(matching) == 1, [str(f) for f in facts]
    return matching[0]


def test_good_2048_key_has_no_findings(rsa2048: bytes) -> None:
    assert check(f"v=DKIM1; k=rsa; p={b64(rsa2048)}") == []
    assert dkim.parse(f"v=DKIM1; p={b64(rsa2048)}").bits == 2048


# --- validation -------------------------------------------------------------------------------


@pytest.mark.parametrize("template", ["k=rsa; v=DKIM1; p={p}", "v=DKIM2; p={p}"])
def test_k1_version_must_be_first_and_exact(template: str, rsa2048: bytes) -> None:
    assert found(check(template.format(p=b64(rsa2048))), "K1") == [Severity.ERROR]


def test_k1_version_is_optional(rsa2048: bytes) -> None:
    assert found(check(f"k=rsa; p={b64(rsa2048)}"), "K1") == []


def test_k1_two_keys_at_one_selector(rsa2048: bytes, other2048: bytes) -> None:
    values = (f"p={b64(rsa2048)}", f"p={b64(other2048)}")
    assert found(dkim.validate("s1._domainkey", "TXT", values, ctx()), "K1") == [Severity.ERROR]


def test_k2_missing_p_is_an_error() -> None:
    assert found(check("v=DKIM1; k=rsa"), "K2") == [Severity.ERROR]
    with pytest.raises(RecordSyntaxError) as err:
        dkim.parse("v=DKIM1; k=rsa")
    assert err.value.code == "K2"


def test_k2_empty_p_is_info_when_retired_error_otherwise() -> None:
    retired = ctx(retired=(RetiredSelector("s1", TODAY - timedelta(days=10)),))
    assert found(check("v=DKIM1; p=", context=retired), "K2") == [Severity.INFO]
    assert found(check("v=DKIM1; p="), "K2") == [Severity.ERROR]


def test_k2_bad_base64() -> None:
    assert found(check("v=DKIM1; p=not*base64"), "K2") == [Severity.ERROR]


def test_k3_unknown_key_type_is_a_warning_and_parses(rsa2048: bytes) -> None:
    # RFC 6376 3.6.1: verifiers ignore a key of an unknown type; the record itself is well formed.
    assert found(check(f"v=DKIM1; k=dsa; p={b64(rsa2048)}"), "K3") == [Severity.WARNING]
    key = dkim.parse(f"v=DKIM1; k=dsa; p={b64(rsa2048)}")
    assert (key.key_type, key.bits) == ("dsa", 0)


def test_k4_key_of_an_unknown_algorithm_is_an_error_not_a_crash() -> None:
    # A SubjectPublicKeyInfo with OID 1.2.3.4: cryptography raises UnsupportedAlgorithm.
    unknown = b64(bytes.fromhex("3010300506032a0304030700010203040506"))
    assert found(check(f"v=DKIM1; p={unknown}"), "K4") == [Severity.ERROR]


@pytest.mark.parametrize(
    ("tags", "expected"),
    [
        ("h=sha512", [Severity.ERROR]),
        ("h=sha1", [Severity.ERROR]),
        ("h=sha1:sha256", [Severity.WARNING]),
        ("h=sha256", []),
        ("t=x", [Severity.WARNING]),
        ("t=y:s", []),
    ],
)
def test_k3_hashes_and_flags(tags: str, expected: list[Severity], rsa2048: bytes) -> None:
    assert found(check(f"v=DKIM1; {tags}; p={b64(rsa2048)}"), "K3") == expected


def test_k4_key_sizes(rsa1024: bytes, rsa2048: bytes) -> None:
    assert found(check(f"p={b64(small_rsa_der(768))}"), "K4") == [Severity.ERROR]
    assert found(check(f"p={b64(rsa1024)}"), "K4") == [Severity.WARNING]
    assert found(check(f"p={b64(rsa2048)}"), "K4") == []


def test_k4_key_split_over_strings_with_spaces(rsa2048: bytes) -> None:
    encoded = b64(rsa2048)
    assert len(encoded) == 392  # two TXT strings; the joined value may carry folding spaces
    key = dkim.parse(f"v=DKIM1; p={encoded[:200]} {encoded[200:]}")
    assert (key.bits, key.fingerprint) == (2048, fingerprint(rsa2048))


def test_k4_not_an_rsa_key() -> None:
    assert found(check(f"p={b64(b'garbage-not-der')}"), "K4") == [Severity.ERROR]
    ed_spki = ed25519_key().public_bytes(DER, SPKI)
    assert found(check(f"k=rsa; p={b64(ed_spki)}"), "K4") == [Severity.ERROR]


def test_k5_ed25519_raw_key() -> None:
    key = ed25519_key()
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    assert check(f"v=DKIM1; k=ed25519; p={b64(raw)}") == []
    assert dkim.parse(f"v=DKIM1; k=ed25519; p={b64(raw)}").bits == 256
    spki = key.public_bytes(DER, SPKI)
    assert found(check(f"v=DKIM1; k=ed25519; p={b64(spki)}"), "K5") == [Severity.ERROR]


def test_cname_selector_is_not_validated() -> None:
    assert dkim.validate("s1._domainkey", "CNAME", ("s1.dkim.esp.example.",), ctx()) == []


# --- facts (risk table rows) ------------------------------------------------------------------


def txt_diff(before: tuple[str, ...], after: tuple[str, ...], context: ZoneContext) -> list[Fact]:
    return dkim.facts("s2._domainkey", "TXT", before, after, context)


def test_identical_has_no_facts(rsa2048: bytes) -> None:
    value = (f"v=DKIM1; p={b64(rsa2048)}",)
    assert txt_diff(value, value, ctx()) == []


@pytest.mark.parametrize(("days", "on_schedule"), [(0, True), (-30, True), (30, True), (31, False)])
def test_new_selector_on_and_off_schedule(rsa2048: bytes, days: int, on_schedule: bool) -> None:
    context = ctx(scheduled=(ScheduledSelector("s2", TODAY + timedelta(days=days)),))
    fact = one(txt_diff((), (f"v=DKIM1; p={b64(rsa2048)}",), context), "dkim.selector")
    assert (fact.old, fact.new) == (None, "s2")
    assert dict(fact.attrs) == {"on_schedule": on_schedule, "key_type": "rsa", "bits": 2048}


def test_new_selector_not_scheduled_at_all(rsa2048: bytes) -> None:
    fact = one(txt_diff((), (f"p={b64(rsa2048)}",), ctx()), "dkim.selector")
    assert fact.attrs["on_schedule"] is False


def test_key_length_change(rsa1024: bytes, rsa2048: bytes) -> None:
    context = ctx(active=frozenset({"s2"}))
    facts = txt_diff((f"v=DKIM1; p={b64(rsa1024)}",), (f"v=DKIM1; p={b64(rsa2048)}",), context)
    bits = one(facts, "dkim.bits")
    assert (bits.old, bits.new, bits.attrs["active"]) == ("1024", "2048", True)
    key = one(facts, "dkim.key")
    assert (key.old, key.new) == (fingerprint(rsa1024), fingerprint(rsa2048))


def test_key_replaced_in_place(rsa2048: bytes, other2048: bytes) -> None:
    before, after = (f"p={b64(rsa2048)}",), (f"p={b64(other2048)}",)
    active = one(txt_diff(before, after, ctx(active=frozenset({"s2"}))), "dkim.key")
    assert active.attrs["active"] is True
    facts = txt_diff(before, after, ctx())
    assert one(facts, "dkim.key").attrs["active"] is False
    assert [f for f in facts if f.code == "dkim.bits"] == []


def test_key_type_change(rsa2048: bytes) -> None:
    raw = ed25519_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    facts = txt_diff((f"p={b64(rsa2048)}",), (f"k=ed25519; p={b64(raw)}",), ctx())
    assert str(one(facts, "dkim.key_type")) == "dkim.key_type rsa->ed25519"
    assert str(one(facts, "dkim.bits")) == "dkim.bits 2048->256"


def test_active_selector_revoked(rsa2048: bytes) -> None:
    facts = txt_diff(
        (f"v=DKIM1; p={b64(rsa2048)}",), ("v=DKIM1; p=",), ctx(active=frozenset({"s2"}))
    )
    revoked = one(facts, "dkim.revoked")
    assert revoked.old == fingerprint(rsa2048)
    assert dict(revoked.attrs) == {"active": True, "retired": False, "wait_over": False}


def test_active_selector_deleted(rsa2048: bytes) -> None:
    fact = one(txt_diff((f"p={b64(rsa2048)}",), (), ctx(active=frozenset({"s2"}))), "dkim.selector")
    assert (fact.old, fact.new, fact.attrs["active"]) == ("s2", None, True)


@pytest.mark.parametrize(("days", "wait_over"), [(7, True), (30, True), (6, False)])
def test_retired_selector_removed_after_wait(rsa2048: bytes, days: int, wait_over: bool) -> None:
    context = ctx(retired=(RetiredSelector("s2", TODAY - timedelta(days=days)),))
    fact = one(txt_diff((f"p={b64(rsa2048)}",), (), context), "dkim.selector")
    assert dict(fact.attrs) == {"active": False, "retired": True, "wait_over": wait_over}


def test_revoked_selector_reused(rsa2048: bytes) -> None:
    fact = one(txt_diff(("p=",), (f"p={b64(rsa2048)}",), ctx()), "dkim.key")
    assert (fact.old, fact.new, fact.attrs["reused"]) == ("revoked", fingerprint(rsa2048), True)


def test_tag_change(rsa2048: bytes) -> None:
    facts = txt_diff((f"t=y; p={b64(rsa2048)}",), (f"t=s; p={b64(rsa2048)}",), ctx())
    assert [(str(f), f.attrs["tag"]) for f in facts] == [("dkim.tag t=y->t=s", "t")]


def test_unparsed(rsa2048: bytes) -> None:
    facts = txt_diff((f"p={b64(rsa2048)}",), ("v=DKIM2; p=AAAA",), ctx())
    assert [f.code for f in facts] == ["dkim.unparsed"]
    added = txt_diff((), ("v=DKIM2; p=AAAA",), ctx())
    assert [f.code for f in added] == ["dkim.selector", "dkim.unparsed"]
    assert added[0].attrs["bits"] == 0


def test_cname_selector_facts() -> None:
    context = ctx(active=frozenset({"s2"}), scheduled=(ScheduledSelector("s3", TODAY),))
    added = dkim.facts("s3._domainkey", "CNAME", (), ("s3.dkim.esp.example.",), context)
    assert [str(f) for f in added] == ["dkim.selector +s3", "dkim.cname +s3.dkim.esp.example"]
    assert added[0].attrs["on_schedule"] is True
    changed = dkim.facts(
        "s2._domainkey", "CNAME", ("s2.dkim.esp.example.",), ("s2.dkim.other.example.",), context
    )
    assert [str(f) for f in changed] == ["dkim.cname s2.dkim.esp.example->s2.dkim.other.example"]
    assert changed[0].attrs["active"] is True
    removed = dkim.facts("s2._domainkey", "CNAME", ("s2.dkim.esp.example.",), (), context)
    assert [f.code for f in removed] == ["dkim.selector", "dkim.cname"]
    assert removed[0].attrs["active"] is True


def test_selector_under_a_subdomain(rsa2048: bytes) -> None:
    fact = one(
        dkim.facts("s9._domainkey.mail", "TXT", (), (f"p={b64(rsa2048)}",), ctx()), "dkim.selector"
    )
    assert fact.new == "s9"


# --- K6: the service types of s= (RFC 6376 3.6.1) -----------------------------------------------

ED = b64(bytes(range(32)))  # a raw ed25519 key: only s= decides the findings below


@pytest.mark.parametrize(
    "services",
    [None, "email", "*", "email:tlsrpt", " x-future : email ", "*:tlsrpt"],
    ids=["absent", "email", "star", "email-and-tlsrpt", "unknown-beside-email", "star-and-tlsrpt"],
)
def test_k6_a_key_that_covers_email_is_fine(services: str | None) -> None:
    s_tag = "" if services is None else f"s={services}; "
    assert check(f"v=DKIM1; k=ed25519; {s_tag}p={ED}") == []


def test_k6_a_key_for_another_service_is_refused_where_it_is_published() -> None:
    assert check(f"v=DKIM1; k=ed25519; s=mail; p={ED}") == [
        Finding(
            "K6",
            Severity.ERROR,
            "s=mail: the key does not cover email (only s=email or s=* do), so mail verifiers "
            "ignore it and every message signed with selector s1 fails DKIM (RFC 6376 3.6.1); "
            "write s=email or drop s=",
            "s1._domainkey",
        )
    ]
    # An empty s= lists no service at all: not the same as leaving s= out (the default "*").
    assert found(check(f"v=DKIM1; k=ed25519; s=; p={ED}"), "K6") == [Severity.ERROR]
    assert found(check(f"v=DKIM1; k=ed25519; s=e-mail:x-other; p={ED}"), "K6") == [Severity.ERROR]


def test_k6_a_tls_report_key_warns_unless_the_profile_signs_mail_with_it() -> None:
    record = f"v=DKIM1; k=ed25519; s=tlsrpt; p={ED}"
    assert check(record) == [
        Finding(
            "K6",
            Severity.WARNING,
            "s=tlsrpt: the key signs TLS reports only (RFC 8460 3); mail signed with selector s1 "
            "fails DKIM (RFC 6376 3.6.1); write s=email:tlsrpt if it signs mail too",
            "s1._domainkey",
        )
    ]
    # The client profile says mail is signed with s1: then the key breaks it, an error.
    assert found(check(record, context=ctx(active=frozenset({"s1"}))), "K6") == [Severity.ERROR]


def test_k6_email_in_another_case_is_a_warning() -> None:
    assert check(f"v=DKIM1; k=ed25519; s=EMAIL; p={ED}") == [
        Finding(
            "K6",
            Severity.WARNING,
            "s=EMAIL: verifiers that compare service types as written (RFC 6376 3.2) do not read "
            "this as email and ignore the key; write s=email",
            "s1._domainkey",
        )
    ]


def test_k6_is_not_raised_for_a_revoked_key() -> None:
    # A revoked key verifies nothing whatever its s= says; K2 is the finding that matters there.
    retired = ctx(retired=(RetiredSelector("s1", TODAY - timedelta(days=30)),))
    findings = check("v=DKIM1; k=rsa; s=mail; p=", context=retired)
    assert [f.code for f in findings] == ["K2"]
