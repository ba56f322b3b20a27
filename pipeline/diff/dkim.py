"""DKIM key records at `<selector>._domainkey[.sub]` (RFC 6376, RFC 8301, RFC 8463).

A selector is either a TXT key record or a CNAME to a key the sending service publishes and rotates
itself; a CNAME is not validated here because its target is outside the zone.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import dataclass

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import load_der_public_key

from pipeline.diff.context import ZoneContext
from pipeline.diff.errors import RecordSyntaxError
from pipeline.diff.rrset import joined, same_values, single
from pipeline.diff.taglist import Tag, parse_tag_list, tag_value
from pipeline.model import AttrValue, Fact, Finding, Severity, fact

KEY_TYPES = frozenset({"rsa", "ed25519"})
HASHES = frozenset({"sha1", "sha256"})
FLAGS = frozenset({"y", "s"})
# RFC 6376 3.6.1 s=: a key applies only to the service types it lists; mail verifiers use a key
# whose list holds "email" or "*" (and a key without s=, which defaults to "*").
MAIL_SERVICES = frozenset({"email", "*"})
TLSRPT_SERVICE = "tlsrpt"  # RFC 8460 3: the service type of a key that signs TLS reports
RSA_MIN_BITS = 1024  # RFC 8301 3.2: verifiers MUST NOT accept smaller keys
RSA_RECOMMENDED_BITS = 2048  # RFC 8301 3.2: signers SHOULD use at least 2048 bits
ED25519_KEY_BYTES = 32  # RFC 8463 4: p= is the raw key, not a SubjectPublicKeyInfo
SCHEDULE_TOLERANCE_DAYS = 30
# Tags with their own facts (k -> dkim.key_type, p -> dkim.key/bits/revoked).
_DIFFED_TAGS = frozenset({"k", "p"})


@dataclass(frozen=True)
class DkimKey:
    """A parsed DKIM key record; `public_key` is empty when the key is revoked (RFC 6376 3.6.1)."""

    tags: tuple[Tag, ...]
    key_type: str
    hashes: tuple[str, ...]  # empty: any hash algorithm
    flags: tuple[str, ...]
    services: tuple[str, ...]
    public_key: bytes
    bits: int  # 0 when revoked

    @property
    def revoked(self) -> bool:
        return not self.public_key

    @property
    def fingerprint(self) -> str:
        return hashlib.sha256(self.public_key).hexdigest()[:12]


def selector_of(name: str) -> str:
    return name.split(".", 1)[0]


def parse(text: str) -> DkimKey:
    # RFC 6376 3.2: tag names are case-sensitive, unlike DMARC's.
    tags = parse_tag_list(text, "K1")
    version = tag_value(tags, "v")
    if version is not None and (tags[0].name != "v" or version != "DKIM1"):
        raise RecordSyntaxError(
            "v= is optional but, when present, must be the first tag and exactly v=DKIM1 "
            "(RFC 6376 3.6.1); otherwise verifiers ignore the key",
            "K1",
        )
    p = tag_value(tags, "p")
    if p is None:
        raise RecordSyntaxError(
            "no p= tag: a key record must carry the public key, or an empty p= to revoke it "
            "(RFC 6376 3.6.1)",
            "K2",
        )
    # RFC 6376 3.6.1: verifiers ignore a key of a type they do not know; that is a K3 warning
    # (_key_findings), not a record receivers reject.
    key_type = tag_value(tags, "k") or "rsa"
    public_key = _decode(p)
    return DkimKey(
        tags=tags,
        key_type=key_type,
        hashes=_colon_list(tag_value(tags, "h")),
        flags=_colon_list(tag_value(tags, "t")),
        services=_colon_list(tag_value(tags, "s")),
        public_key=public_key,
        bits=_bits(key_type, public_key),
    )


def _colon_list(value: str | None) -> tuple[str, ...]:
    return tuple(v.strip() for v in (value or "").split(":") if v.strip())


def _decode(p: str) -> bytes:
    # RFC 6376 3.6.1: the base64 value may contain folding whitespace.
    try:
        return base64.b64decode("".join(p.split()), validate=True)
    except binascii.Error as err:
        raise RecordSyntaxError(f"p= is not valid base64 ({err})", "K2") from err
    except ValueError:  # a str with non-ASCII characters (e.g. a fullwidth digit): not binascii's
        raise RecordSyntaxError(
            "p= is not valid base64 (it holds characters outside ASCII)", "K2"
        ) from None


def _bits(key_type: str, key: bytes) -> int:
    if not key or key_type not in KEY_TYPES:
        return 0
    if key_type == "ed25519":
        if len(key) != ED25519_KEY_BYTES:
            raise RecordSyntaxError(
                f"an ed25519 p= must be the raw {ED25519_KEY_BYTES}-byte key (RFC 8463 4), found "
                f"{len(key)} bytes; publish the raw key, not a SubjectPublicKeyInfo",
                "K5",
            )
        return ED25519_KEY_BYTES * 8
    try:
        loaded = load_der_public_key(key)
    except (ValueError, UnsupportedAlgorithm) as err:
        # UnsupportedAlgorithm: a SubjectPublicKeyInfo of an algorithm cryptography does not know.
        raise RecordSyntaxError(
            "p= does not hold a DER RSA public key (RFC 6376 3.6.1)", "K4"
        ) from err
    if not isinstance(loaded, rsa.RSAPublicKey):
        raise RecordSyntaxError("k=rsa but p= holds a key of another type", "K4")
    return loaded.key_size


def validate(name: str, rtype: str, values: tuple[str, ...], ctx: ZoneContext) -> list[Finding]:
    if rtype.upper() != "TXT":
        return []
    findings: list[Finding] = []
    if len(values) > 1:
        findings.append(
            Finding(
                "K1",
                Severity.ERROR,
                f"{len(values)} key records at one selector: verifiers may pick any of them "
                "(RFC 6376 3.6.2.2); publish one key per selector",
                name,
            )
        )
    for text in values:
        try:
            key = parse(text)
        except RecordSyntaxError as err:
            findings.append(Finding(err.code, Severity.ERROR, err.message, name))
            continue
        findings.extend(_key_findings(key, name, ctx))
    return findings


def _key_findings(key: DkimKey, name: str, ctx: ZoneContext) -> list[Finding]:
    findings: list[Finding] = []

    def add(code: str, severity: Severity, message: str) -> None:
        findings.append(Finding(code, severity, message, name))

    selector = selector_of(name)
    if key.revoked:
        if ctx.dkim.retired_since(selector) is not None:
            add("K2", Severity.INFO, f"selector {selector} is revoked (empty p=), as documented")
        else:
            add(
                "K2",
                Severity.ERROR,
                f"empty p= revokes selector {selector}, which the client profile does not list "
                "as retired: mail still signed with it fails DKIM; retire it in the profile first",
            )
    if key.key_type not in KEY_TYPES:
        add(
            "K3",
            Severity.WARNING,
            f"k={key.key_type}: verifiers know only rsa and ed25519 and ignore this key (RFC 6376 "
            "3.6.1, RFC 8463), so mail signed with it fails DKIM; publish k=rsa or k=ed25519",
        )
    unknown_hashes = [h for h in key.hashes if h not in HASHES]
    if unknown_hashes:
        add(
            "K3",
            Severity.ERROR,
            f"h= lists {':'.join(unknown_hashes)}; only sha1 and sha256 exist (RFC 6376 3.6.1)",
        )
    if "sha1" in key.hashes:
        only = set(key.hashes) <= {"sha1"}
        add(
            "K3",
            Severity.ERROR if only else Severity.WARNING,
            "h= allows sha1, which verifiers no longer accept (RFC 8301 3.1); use h=sha256 "
            "or drop h=",
        )
    unknown_flags = [f for f in key.flags if f not in FLAGS]
    if unknown_flags:
        add(
            "K3",
            Severity.WARNING,
            f"t= flags {':'.join(unknown_flags)} are unknown and ignored; only y and s exist",
        )
    if not key.revoked:
        findings.extend(_service_findings(key, name, selector, ctx))
    if key.key_type == "rsa" and not key.revoked:
        if key.bits < RSA_MIN_BITS:
            add(
                "K4",
                Severity.ERROR,
                f"RSA key of {key.bits} bits: verifiers reject keys under {RSA_MIN_BITS} bits "
                f"(RFC 8301 3.2); publish a {RSA_RECOMMENDED_BITS}-bit key on a new selector",
            )
        elif key.bits < RSA_RECOMMENDED_BITS:
            add(
                "K4",
                Severity.WARNING,
                f"RSA key of {key.bits} bits: use at least {RSA_RECOMMENDED_BITS} bits "
                "(RFC 8301 3.2) at the next rotation",
            )
    return findings


def _service_findings(key: DkimKey, name: str, selector: str, ctx: ZoneContext) -> list[Finding]:
    """K6: s= must cover email, or mail verifiers ignore the key (RFC 6376 3.6.1: "Verifiers for
    a given service type MUST ignore this record if the appropriate type is not listed")."""
    written = tag_value(key.tags, "s")
    if written is None or MAIL_SERVICES & set(key.services):
        return []
    if any(s.lower() == "email" for s in key.services):
        # RFC 6376 3.2: tag values are case-sensitive unless the tag says otherwise, and s= does
        # not; its ABNF's "email" would match any case (RFC 5234 2.3). Verifiers differ (dkimpy
        # compares the bytes), so the spelling that every verifier reads is the one to publish.
        return [
            Finding(
                "K6",
                Severity.WARNING,
                f"s={written}: verifiers that compare service types as written (RFC 6376 3.2) do "
                "not read this as email and ignore the key; write s=email",
                name,
            )
        ]
    if TLSRPT_SERVICE in key.services and selector not in ctx.dkim.active:
        return [
            Finding(
                "K6",
                Severity.WARNING,
                f"s={written}: the key signs TLS reports only (RFC 8460 3); mail signed with "
                f"selector {selector} fails DKIM (RFC 6376 3.6.1); write s=email:{written} if "
                "it signs mail too",
                name,
            )
        ]
    return [
        Finding(
            "K6",
            Severity.ERROR,
            f"s={written}: the key does not cover email (only s=email or s=* do), so mail "
            f"verifiers ignore it and every message signed with selector {selector} fails DKIM "
            "(RFC 6376 3.6.1); write s=email or drop s=",
            name,
        )
    ]


# --- facts -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _SelectorStatus:
    """What the client profile says about one selector, as fact attributes."""

    active: bool
    retired: bool
    wait_over: bool
    on_schedule: bool

    @classmethod
    def of(cls, selector: str, ctx: ZoneContext) -> _SelectorStatus:
        since = ctx.dkim.retired_since(selector)
        scheduled = ctx.dkim.scheduled_for(selector)
        return cls(
            active=selector in ctx.dkim.active,
            retired=since is not None,
            wait_over=since is not None and (ctx.today - since).days >= ctx.dkim.retire_wait_days,
            on_schedule=scheduled is not None
            and abs((scheduled.planned - ctx.today).days) <= SCHEDULE_TOLERANCE_DAYS,
        )

    def removal(self) -> dict[str, AttrValue]:
        return {"active": self.active, "retired": self.retired, "wait_over": self.wait_over}


def facts(
    name: str, rtype: str, before: tuple[str, ...], after: tuple[str, ...], ctx: ZoneContext
) -> list[Fact]:
    if same_values(before, after):
        return []
    selector = selector_of(name)
    status = _SelectorStatus.of(selector, ctx)
    if rtype.upper() == "CNAME":
        found = _cname_facts(selector, before, after, status)
    else:
        found = _txt_facts(selector, before, after, status)
    if not found:
        found.append(fact("dkim.changed", joined(before), joined(after)))
    return found


def _cname_facts(
    selector: str, before: tuple[str, ...], after: tuple[str, ...], status: _SelectorStatus
) -> list[Fact]:
    old = _target(before)
    new = _target(after)
    found: list[Fact] = []
    if old is None and new is not None:
        found.append(_selector_added(selector, status, key_type="", bits=0))
    elif new is None and old is not None:
        found.append(fact("dkim.selector", selector, None, **status.removal()))
    if old != new:
        found.append(fact("dkim.cname", old, new, active=status.active))
    return found


def _target(values: tuple[str, ...]) -> str | None:
    return " ".join(sorted(v.lower().rstrip(".") for v in values)) or None


def _selector_added(selector: str, status: _SelectorStatus, key_type: str, bits: int) -> Fact:
    return fact(
        "dkim.selector",
        None,
        selector,
        on_schedule=status.on_schedule,
        key_type=key_type,
        bits=bits,
    )


def _txt_facts(
    selector: str, before: tuple[str, ...], after: tuple[str, ...], status: _SelectorStatus
) -> list[Fact]:
    try:
        old = single(before, parse)
        new = single(after, parse)
    except RecordSyntaxError:
        unparsed = fact("dkim.unparsed", joined(before), joined(after))
        if not before:
            return [_selector_added(selector, status, key_type="", bits=0), unparsed]
        if not after:
            return [fact("dkim.selector", selector, None, **status.removal()), unparsed]
        return [unparsed]
    if old is None and new is not None:
        return [_selector_added(selector, status, key_type=new.key_type, bits=new.bits)]
    if new is None or old is None:
        return [fact("dkim.selector", selector, None, **status.removal())]
    return _key_facts(old, new, status) + _tag_facts(old, new)


def _key_facts(old: DkimKey, new: DkimKey, status: _SelectorStatus) -> list[Fact]:
    if old.public_key == new.public_key:
        return []
    if new.revoked:
        return [fact("dkim.revoked", old.fingerprint, None, **status.removal())]
    if old.revoked:
        # Publishing a key on a revoked selector reuses its name, which rotation practice forbids.
        return [fact("dkim.key", "revoked", new.fingerprint, active=status.active, reused=True)]
    found = [fact("dkim.key", old.fingerprint, new.fingerprint, active=status.active)]
    if old.bits != new.bits:
        found.append(fact("dkim.bits", str(old.bits), str(new.bits), active=status.active))
    if old.key_type != new.key_type:
        found.append(fact("dkim.key_type", old.key_type, new.key_type, active=status.active))
    return found


def _tag_facts(old: DkimKey, new: DkimKey) -> list[Fact]:
    before = {t.name: t for t in old.tags if t.name not in _DIFFED_TAGS}
    after = {t.name: t for t in new.tags if t.name not in _DIFFED_TAGS}
    found: list[Fact] = []
    for tag in [*before, *(n for n in after if n not in before)]:
        b, a = before.get(tag), after.get(tag)
        if b != a:
            found.append(fact("dkim.tag", str(b) if b else None, str(a) if a else None, tag=tag))
    return found
