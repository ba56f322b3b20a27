"""A table of RFC vectors: valid and invalid records of every owned kind, run through the validators.

Every invalid record must yield an ERROR finding with the rule code given here (the rule it breaks,
docs/rules.md); every valid one no ERROR at all (warnings are allowed: a valid record may still be a
bad idea, such as `?all`); and no record may crash validation or the diff (`facts`), in either
direction. The ABNF each vector exercises is named in its note:
DMARC RFC 7489 6.4 (and RFC 9989), SPF RFC 7208 4-7, DKIM RFC 6376 3.6.1 (RFC 8301, RFC 8463),
BIMI draft-brand-indicators-for-message-identification, MTA-STS RFC 8461 3.1, TLS-RPT RFC 8460 3.
"""

from __future__ import annotations

import base64
import json
import random
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
from portfolio import copy_example

import pipeline.diff as diff_stage
from pipeline.cli import main
from pipeline.diff.context import ZoneContext
from pipeline.model import RecordKind, Severity

ZONE = "example.com"
NAMES = {
    RecordKind.DMARC: "_dmarc",
    RecordKind.SPF: "",
    RecordKind.DKIM: "s2026._domainkey",
    RecordKind.BIMI: "default._bimi",
    RecordKind.MTA_STS: "_mta-sts",
    RecordKind.TLS_RPT: "_smtp._tls",
}
# BIMI needs an enforced DMARC policy (B2); with this one, only the BIMI record itself is judged.
CONTEXT = ZoneContext(ZONE, desired={("_dmarc", "TXT"): ("v=DMARC1; p=reject",)})


def _rsa_key(bits: int, seed: int) -> str:
    # A verifier reads only the modulus size, so any odd modulus of the right length makes a valid
    # SubjectPublicKeyInfo; seeded, so the vector ids and values are the same on every run.
    modulus = random.Random(seed).getrandbits(bits) | (1 << (bits - 1)) | 1
    der = (
        rsa.RSAPublicNumbers(65537, modulus)
        .public_key()
        .public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    return base64.b64encode(der).decode()


RSA2048 = _rsa_key(2048, 1)
RSA1024 = _rsa_key(1024, 2)
RSA512 = _rsa_key(512, 3)
ED25519 = base64.b64encode(bytes(range(32))).decode()  # RFC 8463 4: the raw 32-byte key
ED25519_SPKI = base64.b64encode(
    ed25519.Ed25519PublicKey.from_public_bytes(bytes(range(32))).public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
).decode()
# A SubjectPublicKeyInfo with an algorithm OID (1.2.3.4) no library knows.
UNKNOWN_SPKI = base64.b64encode(bytes.fromhex("3010300506032a0304030700010203040506")).decode()


@dataclass(frozen=True)
class Vector:
    kind: RecordKind
    value: str
    code: str | None  # the rule an invalid record breaks; None for a valid record
    note: str


def valid(kind: RecordKind, value: str, note: str) -> Vector:
    return Vector(kind, value, None, note)


def invalid(kind: RecordKind, code: str, value: str, note: str) -> Vector:
    return Vector(kind, value, code, note)


D, S, K, B, M, T = (
    RecordKind.DMARC,
    RecordKind.SPF,
    RecordKind.DKIM,
    RecordKind.BIMI,
    RecordKind.MTA_STS,
    RecordKind.TLS_RPT,
)

VECTORS: tuple[Vector, ...] = (
    # --- DMARC, RFC 7489 6.4 ------------------------------------------------------------------
    valid(D, "v=DMARC1; p=none", "minimal record"),
    valid(D, "v=DMARC1; p=reject; rua=mailto:dmarc@example.com", "aggregate reports"),
    valid(D, "v=DMARC1;p=quarantine;pct=50", "dmarc-sep without spaces"),
    valid(D, "v=DMARC1; p=none;", "trailing separator"),
    valid(D, "v=DMARC1 ; p = reject", "*WSP around = and ; (dmarc-request)"),
    valid(D, "v=DMARC1;\tp=none", "WSP includes HTAB"),
    valid(D, "v=DMARC1; p=REJECT", "policy keywords are case-insensitive ABNF strings"),
    valid(D, "v=DMARC1; p=reject; sp=quarantine; np=reject", "sp and np (RFC 9989)"),
    valid(D, "v=DMARC1; p=none; rua=mailto:a@example.com,mailto:b@example.com", "URI list"),
    valid(D, "v=DMARC1; p=none; rua=mailto:a@example.com , mailto:b@example.com", "*WSP , *WSP"),
    valid(D, "v=DMARC1; p=none; rua=mailto:a@example.com!10m", "size limit with unit"),
    valid(D, "v=DMARC1; p=none; rua=mailto:a@example.com!50000", "size limit without unit"),
    valid(D, "v=DMARC1; p=none; rua=https://reports.example.com/dmarc", "https report URI"),
    valid(D, "v=DMARC1; p=none; ruf=mailto:forensic@example.com; fo=1", "failure reports"),
    valid(D, "v=DMARC1; p=reject; adkim=s; aspf=r", "alignment modes"),
    valid(D, "v=DMARC1; p=none; fo=0:1:d:s", "every failure option"),
    valid(D, "v=DMARC1; p=none; ri=86400; rf=afrf", "report interval and format"),
    valid(D, "v=DMARC1; p=none; pct=0", "pct lower bound"),
    valid(D, "v=DMARC1; p=none; pct=100", "pct upper bound"),
    valid(D, "v=DMARC1; p=reject; t=n; psd=n", "RFC 9989 t and psd"),
    valid(D, "v=DMARC1; p=none; rua=mailto:dmarc@sub.example.co.uk", "multi-label domain"),
    invalid(D, "D3", "v=DMARC1; p=foo", "p outside none/quarantine/reject"),
    invalid(D, "D3", "v=DMARC1; p=", "empty p"),
    invalid(D, "D3", "v=DMARC1; p=none; sp=bar", "sp outside the policies"),
    invalid(D, "D3", "v=DMARC1; p=none; np=maybe", "np outside the policies"),
    invalid(D, "D1", "v=DMARC2; p=none", "unknown version"),
    invalid(D, "D1", "v=dmarc1; p=none", "version value is %x44 %x4d ... (case-sensitive)"),
    invalid(D, "D1", " v=DMARC1; p=none", "leading whitespace before v="),
    invalid(D, "D1", "\tv=DMARC1; p=none", "leading tab before v="),
    invalid(D, "D1", "p=none; v=DMARC1", "v= not first"),
    invalid(D, "D1", "v=DMARC1 p=none", "missing separator"),
    invalid(D, "D4", "v=DMARC1; p=none; rua=", "empty rua"),
    invalid(D, "D4", "v=DMARC1; p=none; ruf=", "empty ruf"),
    invalid(D, "D4", "v=DMARC1; p=none; rua=mailto:a@example.com mailto:b@example.com", "spaces"),
    invalid(D, "D4", "v=DMARC1; p=none; ruf=mailto:a@example.com mailto:b@example.com", "spaces"),
    invalid(D, "D4", "v=DMARC1; p=none; rua=mailto:a@example.com,", "trailing comma"),
    invalid(D, "D4", "v=DMARC1; p=none; rua=,mailto:a@example.com", "leading comma"),
    invalid(D, "D4", "v=DMARC1; p=none; rua=mailto:a@example.com,,mailto:b@example.com", ",,"),
    invalid(D, "D4", "v=DMARC1; p=none; rua=dmarc@example.com", "no URI scheme"),
    invalid(D, "D4", "v=DMARC1; p=none; rua=mailto:", "mailto without address"),
    invalid(D, "D4", "v=DMARC1; p=none; rua=mailto:nobody", "mailto without domain"),
    invalid(D, "D4", "v=DMARC1; p=none; rua=mailto:dmarc@localhost", "single-label domain"),
    invalid(D, "D4", "v=DMARC1; p=none; rua=mailto:dmarc@example.123", "all-numeric top label"),
    invalid(D, "D4", "v=DMARC1; p=none; rua=mailto:@example.com", "mailto without local part"),
    invalid(D, "D4", "v=DMARC1; p=none; rua=mailto:d@exa_mple.com", "underscore in a mail domain"),
    invalid(D, "D4", "v=DMARC1; p=none; rua=https://r.-x.example/", "label starting with -"),
    invalid(D, "D4", "v=DMARC1; p=none; rua=mailto:d@bücher.example", "U-label, not xn--"),
    invalid(D, "D4", "v=DMARC1; p=none; rua=https://[x", "malformed IPv6 host"),
    invalid(D, "D4", "v=DMARC1; p=none; rua=https://[x/report", "malformed IPv6 host"),
    invalid(D, "D4", "v=DMARC1; p=none; rua=https://", "https without host"),
    invalid(D, "D4", "v=DMARC1; p=none; rua=mailto:a@example.com!10x", "unknown size unit"),
    invalid(D, "D4", "v=DMARC1; p=none; rua=mailto:a@example.com!", "empty size limit"),
    invalid(D, "D4", "v=DMARC1; p=none; pct=５０", "non-ASCII digits (fullwidth)"),
    invalid(D, "D4", "v=DMARC1; p=none; pct=٥٠", "non-ASCII digits (Arabic-Indic)"),
    invalid(D, "D4", "v=DMARC1; p=none; pct=101", "pct above 100"),
    invalid(D, "D4", "v=DMARC1; p=none; pct=-1", "negative pct"),
    invalid(D, "D4", "v=DMARC1; p=none; pct=50.5", "fractional pct"),
    invalid(D, "D4", "v=DMARC1; p=none; pct=", "empty pct"),
    invalid(D, "D4", "v=DMARC1; p=none; ri=３６００", "ri with non-ASCII digits"),
    invalid(D, "D4", "v=DMARC1; p=none; ri=1h", "ri with a unit"),
    invalid(D, "D4", "v=DMARC1; p=none; adkim=x", "adkim outside r/s"),
    invalid(D, "D4", "v=DMARC1; p=none; aspf=relaxed", "aspf spelled out"),
    invalid(D, "D4", "v=DMARC1; p=none; fo=2", "unknown failure option"),
    invalid(D, "D4", "v=DMARC1; p=none; fo=0:x", "unknown failure option in a list"),
    invalid(D, "D4", "v=DMARC1; p=none; fo=", "empty fo"),
    invalid(D, "D4", "v=DMARC1; p=none; t=maybe", "t outside y/n"),
    invalid(D, "D4", "v=DMARC1; p=none; psd=x", "psd outside y/n/u"),
    invalid(D, "D4", "v=DMARC1; p=none; p=reject", "duplicate tag"),
    invalid(D, "D4", "v=DMARC1; p=none; =x", "tag without a name"),
    invalid(D, "D4", "v=DMARC1; p=none; rua", "tag without ="),
    # --- SPF, RFC 7208 ---------------------------------------------------------------------------
    valid(S, "v=spf1 -all", "minimal record"),
    valid(S, "V=SPF1 -ALL", "version and mechanisms are case-insensitive"),
    valid(S, "v=spf1  ip4:192.0.2.0/24  -all", "1*SP between terms"),
    valid(S, "v=spf1 -all ", "trailing *SP"),
    valid(S, "v=spf1 ip4:192.0.2.1 ip4:192.0.2.0/32 -all", "ip4 address and /32"),
    valid(S, "v=spf1 ip6:2001:db8::/32 ~all", "ip6 network"),
    valid(S, "v=spf1 include:_spf.google.com ~all", "include"),
    valid(S, "v=spf1 include:example.com. -all", "domain-end may end in a dot"),
    valid(S, "v=spf1 include:xn--bcher-kva.example -all", "A-label"),
    valid(S, "v=spf1 a mx -all", "bare a and mx"),
    valid(S, "v=spf1 a/24 mx/24//64 a//128 -all", "dual-cidr-length"),
    valid(S, "v=spf1 a:mail.example.com/28 mx:example.com//64 -all", "domain and cidr"),
    valid(S, "v=spf1 ?include:a.example.com -ip4:192.0.2.1 +mx ~all", "qualifiers"),
    valid(S, "v=spf1 redirect=_spf.example.com", "redirect"),
    valid(S, "v=spf1 exists:%{i}._spf.example.com -all", "macro (section 7)"),
    valid(S, "v=spf1 exists:%{ir}.%{l1r+-}._spf.%{d} -all", "transformers and delimiters"),
    valid(S, "v=spf1 exists:%{d2}.%{h}.%{v}.%{o}.%{s}.%{p}._spf.example.com -all", "letters"),
    valid(S, "v=spf1 exists:%{l}.%_%-%%.example.com -all", "macro-literal escapes"),
    valid(S, "v=spf1 include:_spf.example.com exp=explain._spf.%{d} -all", "exp with a macro"),
    # domain-end is "." toplabel: after a macro one literal label is a whole domain-end (7.1).
    valid(S, "v=spf1 exists:%{i}.example -all", "one label after a macro"),
    valid(S, "v=spf1 unknown-mod=whatever -all", "unknown modifiers are ignored (6)"),
    valid(S, "v=spf1 ptr -all", "ptr: a warning, not an error"),
    valid(S, "v=spf1 ?all", "neutral: a warning, not an error"),
    invalid(S, "S5", "v=spf1 +all", "+all"),
    invalid(S, "S1", "v=spf1 foo -all", "unknown mechanism"),
    invalid(S, "S1", "v=spf1 1mod=x -all", "modifier name must start with a letter"),
    invalid(S, "S1", "v=spf1 ip4:999.0.0.1 -all", "not an IPv4 address"),
    invalid(S, "S1", "v=spf1 ip4:0192.0.2.1 -all", "leading zero in an octet (qnum)"),
    invalid(S, "S1", "v=spf1 ip4:192.0.2.0/33 -all", "IPv4 prefix above 32"),
    invalid(S, "S1", "v=spf1 ip4:192.0.2.0/024 -all", "prefix with a leading zero"),
    invalid(S, "S1", "v=spf1 ip4:192.0.2.0/ -all", "empty prefix"),
    invalid(S, "S1", "v=spf1 ip6:2001:db8::/129 -all", "IPv6 prefix above 128"),
    invalid(S, "S1", "v=spf1 ip6:2001:db8::/048 -all", "IPv6 prefix with a leading zero"),
    invalid(S, "S1", "v=spf1 ip6:192.0.2.1 -all", "IPv4 address in ip6"),
    invalid(S, "S1", "v=spf1 a/024 -all", "a prefix with a leading zero"),
    invalid(S, "S1", "v=spf1 mx//064 -all", "mx IPv6 prefix with a leading zero"),
    invalid(S, "S1", "v=spf1 a/２４ -all", "prefix in non-ASCII digits"),
    invalid(S, "S1", "v=spf1 mx:example.com/33 -all", "mx prefix above 32"),
    invalid(S, "S1", "v=spf1 a:example.com/ -all", "a with an empty prefix"),
    invalid(S, "S1", "v=spf1 include: -all", "empty include"),
    invalid(S, "S1", "v=spf1 include -all", "include without domain"),
    invalid(S, "S1", "v=spf1 exists -all", "exists without domain"),
    invalid(S, "S1", "v=spf1 all:foo", "all takes no argument"),
    invalid(S, "S1", "v=spf1 redirect=", "empty redirect"),
    invalid(S, "S1", "v=spf1 exp= -all", "empty exp"),
    invalid(S, "S9", "v=spf1 exp=a.example.com exp=b.example.com -all", "exp twice"),
    invalid(S, "S9", "v=spf1 redirect=a.example.com redirect=b.example.com", "redirect twice"),
    invalid(S, "S1", "v=spf1 include:localhost -all", "single-label domain"),
    invalid(S, "S1", "v=spf1 redirect=example", "single-label redirect"),
    invalid(S, "S1", "v=spf1 include:192.0.2.1 -all", "all-numeric top label"),
    invalid(S, "S1", "v=spf1 a:mail.123 -all", "all-numeric top label"),
    invalid(S, "S1", "v=spf1 include:example.com- -all", "top label ending in a hyphen"),
    invalid(S, "S1", "v=spf1 include:example..com -all", "empty label"),
    invalid(S, "S1", "v=spf1 include:exa!mple.com -all", "'!' in a label (RFC 1123 2.1)"),
    invalid(S, "S1", "v=spf1 a:mail-.example.com -all", "label ending in a hyphen"),
    invalid(S, "S1", "v=spf1 redirect=spf.-x.example.com", "label starting with a hyphen"),
    invalid(S, "S1", "v=spf1 exists:%{i}.ex*ample.com -all", "'*' in a label after a macro"),
    invalid(S, "S1", "v=spf1 include:" + "a" * 64 + ".example.com -all", "label over 63"),
    invalid(S, "S1", "v=spf1 exists:%{x}.example.com -all", "unknown macro letter"),
    invalid(S, "S1", "v=spf1 exists:%{c}.example.com -all", "c only in exp text (7.2)"),
    invalid(S, "S1", "v=spf1 exists:%{i -all", "unterminated macro"),
    invalid(S, "S1", "v=spf1 exists:%{i0}.example.com -all", "DIGIT transformer of zero"),
    invalid(S, "S1", "v=spf1 exists:%{ir2}.example.com -all", "r before the digits"),
    invalid(S, "S1", "v=spf1 exists:%i.example.com -all", "% not followed by { _ - %"),
    invalid(S, "S1", "v=spf1 exists:%{i}.example.com% -all", "lone % at the end"),
    invalid(S, "S1", "v=spf1 exp=%{x}.example.com -all", "bad macro in exp"),
    invalid(S, "S1", "v=spf1 exists:%{i}example -all", "no '.' toplabel after the macro"),
    invalid(S, "S1", "v=spf1 exists:%{i}.123 -all", "all-digit top label after a macro"),
    invalid(S, "S1", "v=spf1 exists:%{i}.ex..ample -all", "empty label after a macro"),
    invalid(S, "S1", "v=spf1 ip4:192.0.2.1\tinclude:_spf.example.com -all", "tab between terms"),
    invalid(S, "S1", "v=spf1 include:_spf.example.com\t-all", "tab between terms"),
    invalid(S, "S7", "v=spf1 include:a.example.cominclude:b.example.com -all", "glued terms"),
    # --- DKIM key records, RFC 6376 3.6.1 --------------------------------------------------------
    valid(K, f"v=DKIM1; k=rsa; p={RSA2048}", "RSA 2048"),
    valid(K, f"p={RSA2048}", "v= is optional"),
    valid(K, f" v=DKIM1 ; p = {RSA2048} ;", "FWS around tags and ="),
    valid(K, f"v=DKIM1; h=sha256; p={RSA2048}", "h=sha256"),
    valid(K, f"v=DKIM1; k=rsa; t=s; s=email; n=notes; p={RSA2048}", "flags, service, notes"),
    valid(K, f"v=DKIM1; k=ed25519; p={ED25519}", "ed25519 raw key (RFC 8463)"),
    valid(K, f"v=DKIM1; p={RSA2048[:200]} {RSA2048[200:]}", "base64 with whitespace"),
    valid(K, f"v=DKIM1; p={RSA1024}", "RSA 1024: a warning (RFC 8301)"),
    valid(K, f"v=DKIM1; t=y:x; p={RSA2048}", "unknown flag: a warning"),
    valid(K, f"v=DKIM1; k=foo; p={RSA2048}", "unknown key type: verifiers ignore the key"),
    valid(K, f"v=DKIM1; s=*; p={RSA2048}", "s=*: all service types"),
    valid(K, f"v=DKIM1; s=email:tlsrpt; p={RSA2048}", "mail and TLS reports"),
    valid(K, f"v=DKIM1; s = x-future : email ; p={RSA2048}", "unknown type beside email"),
    valid(K, f"v=DKIM1; s=EMAIL; p={RSA2048}", "email in capitals: a warning"),
    valid(K, f"v=DKIM1; s=tlsrpt; p={RSA2048}", "TLS reports only (RFC 8460 3): a warning"),
    invalid(K, "K1", f"v=DKIM2; p={RSA2048}", "unknown version"),
    invalid(K, "K1", f"k=rsa; v=DKIM1; p={RSA2048}", "v= not first"),
    invalid(K, "K1", f"v=DKIM1; p={RSA2048}; p={RSA2048}", "duplicate tag"),
    invalid(K, "K2", "v=DKIM1; k=rsa", "no p="),
    invalid(K, "K2", "v=DKIM1; p=!!!notbase64", "p= not base64"),
    invalid(K, "K2", "v=DKIM1; p=abc", "p= with bad padding"),
    invalid(K, "K2", "v=DKIM1; p=", "revoked, but the selector is not retired"),
    invalid(K, "K3", f"v=DKIM1; h=md5; p={RSA2048}", "unknown hash"),
    invalid(K, "K3", f"v=DKIM1; h=sha1; p={RSA2048}", "sha1 only (RFC 8301 3.1)"),
    invalid(K, "K4", f"v=DKIM1; p={RSA512}", "RSA under 1024 bits"),
    invalid(K, "K4", "v=DKIM1; p=MIIB", "truncated DER"),
    invalid(K, "K4", f"v=DKIM1; k=rsa; p={ED25519_SPKI}", "k=rsa with an Ed25519 key"),
    invalid(K, "K4", f"v=DKIM1; p={UNKNOWN_SPKI}", "key of an unknown algorithm"),
    invalid(K, "K5", f"v=DKIM1; k=ed25519; p={ED25519_SPKI}", "ed25519 as SubjectPublicKeyInfo"),
    invalid(K, "K5", f"v=DKIM1; k=ed25519; p={RSA2048}", "RSA key under k=ed25519"),
    invalid(K, "K6", f"v=DKIM1; s=mail; p={RSA2048}", "s= without email or * (3.6.1)"),
    invalid(K, "K6", f"v=DKIM1; s=; p={RSA2048}", "empty s= lists no service"),
    invalid(K, "K6", f"v=DKIM1; s=e-mail:x; p={RSA2048}", "misspelt email"),
    # --- BIMI, draft-brand-indicators-for-message-identification ------------------------------
    valid(B, "v=BIMI1; l=https://example.com/logo.svg", "self-asserted logo"),
    valid(B, "v=BIMI1; l=https://example.com/logo.svg; a=https://example.com/vmc.pem", "VMC"),
    valid(B, "v=BIMI1;l=https://example.com/logo.svg;", "no spaces, trailing separator"),
    valid(B, "v=BIMI1; l=; a=;", "declination"),
    valid(B, "v=BIMI1; l=https://example.com/logo.svg; a=;", "empty a="),
    valid(B, "v=BIMI1; l=HTTPS://example.com/logo.svg", "URI scheme is case-insensitive"),
    valid(B, "v=BIMI1; l=https://example.com/logo.svg; lps=noreply,support", "local-parts"),
    valid(B, "v=BIMI1; l=https://example.com/logo.svg; lps=no-reply, first.last", "lps *WSP"),
    valid(B, "v=BIMI1; l=https://example.com/logo.svg; avp=brand", "avatar preference"),
    invalid(B, "B1", "v=BIMI1", "no l="),
    invalid(B, "B1", "v=BIMI1; a=https://example.com/vmc.pem", "a= without l="),
    invalid(B, "B1", "v=BIMI1; l=https://example.com/a.svg,https://example.com/b.svg", "two l="),
    invalid(
        B,
        "B1",
        "v=BIMI1; l=https://example.com/a.svg; a=https://e.com/a.pem,https://e.com/b",
        "two a=",
    ),
    invalid(B, "B1", "v=BIMI1; l=http://example.com/logo.svg", "http logo"),
    invalid(B, "B1", "v=BIMI1; l=example.com/logo.svg", "no scheme"),
    invalid(B, "B1", "v=BIMI1; l=https:///logo.svg", "no host"),
    invalid(B, "B1", "v=BIMI1; l=https://[x", "malformed IPv6 host"),
    invalid(B, "B1", "v=BIMI1; l=https://[x/logo.svg", "malformed IPv6 host"),
    invalid(B, "B1", "v=BIMI1; l=https://example.com/logo.svg; a=https://[x", "malformed a="),
    invalid(B, "B1", "v=BIMI1; l=https://example.com/logo.svg; a=http://example.com/v.pem", "http"),
    invalid(B, "B1", "v=BIMI2; l=https://example.com/logo.svg", "unknown version"),
    invalid(B, "B1", "v=bimi1; l=https://example.com/logo.svg", "version is case-sensitive"),
    invalid(B, "B1", " v=BIMI1; l=https://example.com/logo.svg", "leading whitespace"),
    invalid(B, "B1", "l=https://example.com/logo.svg; v=BIMI1", "v= not first"),
    invalid(B, "B1", "v=BIMI1; l=https://example.com/a.svg; l=https://example.com/b.svg", "dup"),
    invalid(B, "B1", "v=BIMI1; l=https://example.com/logo.svg; lps=", "empty lps"),
    invalid(B, "B1", "v=BIMI1; l=https://example.com/logo.svg; lps=a@example.com", "lps with @"),
    invalid(B, "B1", "v=BIMI1; l=https://example.com/logo.svg; lps=a,,b", "empty local-part"),
    # --- MTA-STS, RFC 8461 3.1 --------------------------------------------------------------------
    valid(M, "v=STSv1; id=20260101T000000", "timestamp id"),
    valid(M, "v=STSv1;id=1", "no whitespace"),
    valid(M, "v=STSv1; id=abc123;", "trailing separator"),
    valid(M, "v=STSv1; id=20190429T010101; ext-1=foo", "extension field"),
    invalid(M, "M1", "v=STSv1", "no id"),
    invalid(M, "M1", "v=STSv1; id=", "empty id"),
    invalid(M, "M1", "v=STSv1; id=2026-01-01", "punctuation in id"),
    invalid(M, "M1", "v=STSv1; id=" + "a" * 33, "id over 32 characters"),
    invalid(M, "M1", "v=STSv1; id=２０２６", "non-ASCII digits in id"),
    invalid(M, "M1", "v=STSv2; id=1", "unknown version"),
    invalid(M, "M1", "v=stsv1; id=1", "version value is case-sensitive"),
    invalid(M, "M1", "V=STSv1; id=1", "field names are case-sensitive (%s)"),
    invalid(M, "M1", "v=STSv1; ID=1", "field names are case-sensitive (%s)"),
    invalid(M, "M1", "v = STSv1; id=1", "no whitespace around ="),
    invalid(M, "M1", "v=STSv1; id = 1", "no whitespace around ="),
    invalid(M, "M1", " v=STSv1; id=1", "leading whitespace"),
    invalid(M, "M1", "id=1; v=STSv1", "v= not first"),
    invalid(M, "M1", "v=STSv1; id=1; id=2", "duplicate id"),
    invalid(M, "M1", "v=STSv1 id=1", "missing separator"),
    # --- TLS-RPT, RFC 8460 3 ----------------------------------------------------------------------
    valid(T, "v=TLSRPTv1; rua=mailto:tls@example.com", "mailto"),
    valid(T, "v=TLSRPTv1; rua=https://reports.example.com/tls", "https"),
    valid(T, "v=TLSRPTv1;rua=mailto:tls@example.com;", "no whitespace, trailing separator"),
    valid(T, "v=TLSRPTv1; rua=mailto:a@example.com,mailto:b@example.com", "URI list"),
    valid(T, "v=TLSRPTv1; rua=mailto:a@example.com , https://r.example.com/x", "*WSP , *WSP"),
    invalid(T, "T1", "v=TLSRPTv1", "no rua"),
    invalid(T, "T1", "v=TLSRPTv1; rua=", "empty rua"),
    invalid(T, "T1", "v=TLSRPTv1; rua=http://r.example.com/tls", "http"),
    invalid(T, "T1", "v=TLSRPTv1; rua=tls@example.com", "no scheme"),
    invalid(T, "T1", "v=TLSRPTv1; rua=mailto:", "mailto without address"),
    invalid(T, "T1", "v=TLSRPTv1; rua=mailto:@example.com", "mailto without local part"),
    invalid(T, "T1", "v=TLSRPTv1; rua=mailto:tls@exa!mple.com", "'!' in a label"),
    invalid(T, "T1", "v=TLSRPTv1; rua=https://r_1.example.com/tls", "underscore in a web host"),
    invalid(T, "T1", "v=TLSRPTv1; rua=https://[x", "malformed IPv6 host"),
    invalid(T, "T1", "v=TLSRPTv1; rua=mailto:a@example.com,", "trailing comma"),
    invalid(T, "T1", "v=TLSRPTv1; rua=mailto:a@example.com mailto:b@example.com", "spaces"),
    invalid(T, "T1", "V=TLSRPTv1; rua=mailto:a@example.com", "field names are case-sensitive"),
    invalid(T, "T1", "v=TLSRPTv1; RUA=mailto:a@example.com", "field names are case-sensitive"),
    invalid(T, "T1", "v = TLSRPTv1; rua=mailto:a@example.com", "no whitespace around ="),
    invalid(T, "T1", "v=TLSRPTv1; rua = mailto:a@example.com", "no whitespace around ="),
    invalid(T, "T1", "v=tlsrptv1; rua=mailto:a@example.com", "version value is case-sensitive"),
    invalid(T, "T1", " v=TLSRPTv1; rua=mailto:a@example.com", "leading whitespace"),
    invalid(T, "T1", "rua=mailto:a@example.com; v=TLSRPTv1", "v= not first"),
    invalid(T, "T1", "v=TLSRPTv1; rua=mailto:a@x.example; rua=mailto:b@x.example", "duplicate"),
)


def _id(vector: Vector) -> str:
    verdict = "valid" if vector.code is None else f"invalid-{vector.code}"
    return f"{vector.kind.value}-{verdict}-{vector.note}"


@pytest.mark.parametrize("vector", VECTORS, ids=[_id(v) for v in VECTORS])
def test_vector(vector: Vector) -> None:
    name = NAMES[vector.kind]
    findings = diff_stage.validate(vector.kind, name, "TXT", (vector.value,), CONTEXT)
    errors = [f for f in findings if f.severity is Severity.ERROR]
    if vector.code is None:
        assert errors == [], f"valid record {vector.value!r} rejected: {errors}"
    else:
        assert vector.code in {f.code for f in errors}, (
            f"invalid record {vector.value!r} ({vector.note}) accepted: {findings}"
        )
    # The diff must not crash either, whichever side the record is on.
    for before, after in (
        ((), (vector.value,)),
        ((vector.value,), ()),
        ((GOOD[vector.kind],), (vector.value,)),
    ):
        diff_stage.facts(vector.kind, name, "TXT", before, after, CONTEXT)


GOOD = {
    D: "v=DMARC1; p=none",
    S: "v=spf1 -all",
    K: f"v=DKIM1; k=rsa; p={RSA2048}",
    B: "v=BIMI1; l=https://example.com/logo.svg",
    M: "v=STSv1; id=1",
    T: "v=TLSRPTv1; rua=mailto:tls@example.com",
}


def test_the_table_covers_every_kind_both_ways() -> None:
    for kind in NAMES:
        verdicts = {v.code is None for v in VECTORS if v.kind is kind}
        assert verdicts == {True, False}, kind
    assert len(VECTORS) >= 200


# --- `dmarcops validate` runs the same rules offline ---------------------------------------------


def test_validate_reports_record_errors_offline_with_file_and_line(tmp_path: Path) -> None:
    repo = copy_example(tmp_path)
    path = repo / "zones/fabrikam-labs/fabrikam.example.yaml"
    text = path.read_text(encoding="utf-8")
    # p=foo passed `validate` before and only `plan` reported it (issue 11, item 5).
    path.write_text(text.replace(r"p=quarantine\;", r"p=foo\;"), encoding="utf-8")
    result = CliRunner().invoke(main, ["--repo", str(repo), "validate"])
    assert isinstance(result.exception, SystemExit), result.exception
    assert result.exit_code == 2, result.output
    line = next(n for n, t in enumerate(text.splitlines(), start=1) if t.startswith("_dmarc:"))
    reported = [t for t in result.output.splitlines() if f"fabrikam.example.yaml:{line}: D3" in t]
    assert len(reported) == 1 and reported[0].startswith("error: "), result.output
    assert "p=foo" in reported[0]
    assert "ok:" not in result.output


def test_validate_prints_warnings_and_passes(tmp_path: Path) -> None:
    repo = copy_example(tmp_path)
    result = CliRunner().invoke(main, ["--repo", str(repo), "validate"])
    assert result.exit_code == 0, result.output
    warned = [t for t in result.output.splitlines() if "fabrikam.example.yaml:5: D5 pct=50" in t]
    assert len(warned) == 1 and warned[0].startswith("warning: "), result.output
    assert "ok: 3 clients" in result.output


def test_one_broken_zone_file_does_not_stop_the_plan_of_the_others(tmp_path: Path) -> None:
    repo = copy_example(tmp_path)
    broken = repo / "zones/fabrikam-labs/fabrikam.example.yaml"
    broken.write_text("---\n- not\n- a mapping\n", encoding="utf-8")
    result = CliRunner().invoke(
        main, ["--repo", str(repo), "plan", "--format", "json", "--at", "2026-11-28"]
    )
    assert isinstance(result.exception, SystemExit), result.exception
    assert result.exit_code == 1  # bad input (README), after planning the rest
    plan = json.loads(result.stdout)
    planned = {change["zone"] for change in plan["changes"]}
    assert planned == {"contoso-retail.example", "northwind-health.example", "nwh-patients.example"}
    failed = [z for z in plan["zones"] if z["error"]]
    assert [z["zone"] for z in failed] == ["fabrikam.example"]
    assert "fabrikam.example.yaml:2:" in failed[0]["error"]
    assert "fabrikam.example.yaml:2:" in result.stderr
