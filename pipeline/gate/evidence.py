"""Evidence sealed by hash: the client's approving e-mail, stored as received and checked.

A `client_approval:` in a request says who approved, when and where (Message-ID or ticket). Typed,
those are claims. With `eml: changes/evidence/<sha256>.eml` they are checked against the mail
itself: the file is named by its SHA-256 (an edit after storing it shows), its From is the approver,
its Date is the `at`, its Message-ID the reference; and where the mail carries a DKIM signature,
dkimpy verifies it against the signing domain's key in DNS and the signing domain must be the From
domain's (DMARC alignment, relaxed). A mail without a DKIM signature is stored but marked
unverified: it proves no more than the typed fields.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import stat
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import dns.exception
import dns.rdatatype
import dns.resolver

from pipeline.errors import InputError
from pipeline.gate.requests import ClientApproval
from pipeline.live.dns import Nameservers, make_resolver
from pipeline.load.files import make_dir, read_bytes

if TYPE_CHECKING:
    from email.headerregistry import Address

EVIDENCE_DIR = Path("changes") / "evidence"
EML_NAME = re.compile(r"^[0-9a-f]{64}\.eml$")
MESSAGE_ID = re.compile(r"^<[^<>@\s]+@[^<>@\s]+>$")
# `at` is typed to the minute (schema); the mail's Date header is to the second.
DATE_TOLERANCE = timedelta(seconds=60)
MAX_EML_BYTES = 10 * 1024 * 1024  # an approval is a short mail; refuse a mailbox dump

# dkimpy's DNS hook: dnsfunc(name: bytes, timeout=5) -> the TXT record's bytes, or None.
DnsFunc = Callable[..., bytes | None]


def dns_txt(nameservers: Nameservers | None = None) -> DnsFunc:
    """A dkimpy `dnsfunc` asking `nameservers` (None: the system's resolvers) with dnspython."""
    resolver = make_resolver(nameservers) if nameservers is not None else dns.resolver.Resolver()

    def lookup(name: bytes, timeout: float = 5) -> bytes | None:
        import dkim  # see verify_dkim

        try:
            answer = resolver.resolve(
                name.decode("ascii"), dns.rdatatype.TXT, lifetime=timeout, search=False
            )
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            return None
        except (dns.exception.DNSException, UnicodeDecodeError) as exc:
            raise dkim.DnsTimeoutError(f"{name!r}: {exc}") from exc
        return b"".join(answer[0].strings)

    return lookup


@dataclass(frozen=True)
class Mail:
    """The headers of a stored approving e-mail that the checks read."""

    path: Path  # relative to the repository: changes/evidence/<sha256>.eml
    sha256: str
    raw: bytes
    from_address: str | None  # lower case
    date: datetime | None  # aware
    message_id: str | None


@dataclass(frozen=True)
class MailVerdict:
    problems: tuple[str, ...]
    dkim: str  # "verified d=<domain>" | "unsigned" | "failed" | "not checked"

    @property
    def ok(self) -> bool:
        return not self.problems


def store_eml(root: Path, source: Path) -> Path:
    """Copy an .eml into changes/evidence/ under its SHA-256; the stored path, relative to root."""
    # A file the user names: anywhere, but only a regular file (no FIFO, device or link). Its
    # size is looked at first, so a mailbox of any size is named as one (read_bytes would refuse
    # it too, in its own words); one that grows after the look is read_bytes's to refuse.
    with contextlib.suppress(OSError):  # missing or unreadable: read_bytes says which
        found = os.lstat(source)
        if stat.S_ISREG(found.st_mode) and found.st_size > MAX_EML_BYTES:
            raise InputError(
                f"{found.st_size} bytes is not one approving e-mail (at most {MAX_EML_BYTES})",
                file=source,
                hint="Save the single message (in your mail client: Save as / Download .eml).",
            )
    raw = read_bytes(source, limit=MAX_EML_BYTES, outside_ok=True)
    mail = parse_mail(raw, Path())
    if mail.from_address is None:
        raise InputError(
            "not an e-mail: it has no From address",
            file=source,
            hint="Save the message as received, headers included (.eml), not a forward or print.",
        )
    digest = hashlib.sha256(raw).hexdigest()
    relative = EVIDENCE_DIR / f"{digest}.eml"
    target = root / relative
    make_dir(target.parent, root=root)  # changes/evidence/ must resolve inside the repository
    try:
        # O_EXCL: never through a link planted at that name; an existing file is the same mail
        # (its name is its hash; read_mail checks that it still is).
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
    except FileExistsError:
        return relative
    with os.fdopen(fd, "wb") as out:
        out.write(raw)
    return relative


def parse_mail(raw: bytes, path: Path) -> Mail:
    # Imported here, as dkimpy below: only stored approving e-mails need them, and every plan
    # imports this module through the gate (tests/test_startup.py).
    import email
    import email.policy

    message = email.message_from_bytes(raw, policy=email.policy.default)
    return Mail(
        path=path,
        sha256=hashlib.sha256(raw).hexdigest(),
        raw=raw,
        from_address=_from_address(message),
        date=_date(message),
        message_id=_header(message, "Message-ID"),
    )


def _header(message: Any, name: str) -> str | None:
    try:
        value = message.get(name)
    except (ValueError, TypeError, IndexError):  # a header the parser cannot make sense of
        return None
    return str(value).strip() if value is not None else None


def _from_address(message: Any) -> str | None:
    try:
        header = message.get("From")
        addresses: tuple[Address, ...] = header.addresses if header is not None else ()
    except (ValueError, TypeError, IndexError, AttributeError):
        return None
    if len(addresses) != 1 or not addresses[0].addr_spec:
        return None  # none, or several authors: not one approver's mail
    return str(addresses[0].addr_spec).lower()


def _date(message: Any) -> datetime | None:
    try:
        header = message.get("Date")
        value = header.datetime if header is not None else None
    except (ValueError, TypeError, IndexError, AttributeError):
        return None
    return value if isinstance(value, datetime) and value.tzinfo is not None else None


def read_mail(root: Path, relative: str) -> Mail | str:
    """The stored mail, or why it cannot serve as evidence."""
    path = Path(relative)
    if path.parent != EVIDENCE_DIR or not EML_NAME.match(path.name):
        return f"{relative} is not a stored e-mail (changes/evidence/<sha256>.eml)"
    try:
        raw = read_bytes(root / path, limit=MAX_EML_BYTES, root=root)
    except InputError as exc:
        return f"cannot read {relative}: {exc.message}"
    mail = parse_mail(raw, path)
    if mail.sha256 != path.stem:
        return (
            f"{relative} changed after it was stored: its SHA-256 is now {mail.sha256[:16]} "
            "(the name is the hash of the mail as received)"
        )
    return mail


def _aligned(from_domain: str, signing_domain: str) -> bool:
    # Relaxed alignment (RFC 7489 3.1.1), without the public-suffix list: the signing domain is
    # the From domain or one of its parents, and more than a top-level label.
    return "." in signing_domain and (
        from_domain == signing_domain or from_domain.endswith("." + signing_domain)
    )


def _dkim_signatures(raw: bytes) -> int:
    import email
    import email.policy

    message = email.message_from_bytes(raw, policy=email.policy.compat32)
    return len(message.get_all("DKIM-Signature") or [])


def verify_dkim(mail: Mail, dnsfunc: DnsFunc) -> tuple[str, str | None]:
    """("verified d=...", None), ("unsigned", None) or ("failed", why)."""
    count = _dkim_signatures(mail.raw)
    if count == 0:
        return "unsigned", None
    # Imported here: dkimpy is for stored approving e-mails only, and every plan imports this
    # module through the gate (tests/test_startup.py).
    import dkim

    from_domain = (mail.from_address or "").rpartition("@")[2]
    reasons: list[str] = []
    # dkimpy logs a key it cannot find or a DNS failure and answers "does not verify", as for
    # an altered mail; the lookup notes which it was, so the reason says what to do.
    unfound: list[str] = []

    def lookup(name: bytes, timeout: float = 5) -> bytes | None:
        try:
            key = dnsfunc(name, timeout=timeout)
        except dkim.DnsTimeoutError as exc:
            unfound.append(f"DNS did not answer for its key ({exc}); check again when it does")
            raise
        if key is None:
            shown = name.decode("ascii", "replace").rstrip(".")
            unfound.append(f"no key is published at {shown} (TXT)")
        return key

    for idx in range(count):
        verifier = dkim.DKIM(mail.raw)
        unfound.clear()
        try:
            ok = bool(verifier.verify(idx=idx, dnsfunc=lookup))
        except dkim.DKIMException as exc:
            reasons.append(f"signature {idx + 1}: {exc}")
            continue
        domain = (
            verifier.domain.decode("ascii", "replace").lower().rstrip(".")
            if verifier.domain
            else ""
        )
        if not ok and unfound:
            reasons.append(f"signature {idx + 1} (d={domain}) cannot be checked: {unfound[0]}")
        elif not ok:
            reasons.append(
                f"signature {idx + 1} (d={domain}) does not verify: the mail was altered after "
                "it was signed, or the key in DNS is not the signer's"
            )
        elif not _aligned(from_domain, domain):
            reasons.append(
                f"signature {idx + 1} is by d={domain}, not the From domain {from_domain}"
            )
        else:
            return f"verified d={domain}", None
    return "failed", "DKIM: " + "; ".join(reasons)


def check_client_mail(
    root: Path,
    approval: ClientApproval,
    dnsfunc: DnsFunc | None = None,
) -> MailVerdict:
    """Does the stored mail say what `approval` claims, and does its DKIM signature hold?"""
    if approval.eml is None:
        return MailVerdict((), "not checked")
    read = read_mail(root, approval.eml)
    if isinstance(read, str):
        return MailVerdict((read,), "not checked")
    mail = read
    problems: list[str] = []
    if mail.from_address != approval.approver.lower():
        problems.append(
            f"{approval.eml} is from {mail.from_address or 'no single address'}, not the "
            f"approver {approval.approver}"
        )
    if mail.date is None:
        problems.append(f"{approval.eml} has no readable Date header")
    elif abs(mail.date - approval.at) > DATE_TOLERANCE:
        problems.append(
            f"{approval.eml} is dated {mail.date.isoformat()}, not the approval time "
            f"{approval.at.isoformat()} given in the request"
        )
    if MESSAGE_ID.match(approval.reference) and mail.message_id != approval.reference:
        problems.append(
            f"{approval.eml} has Message-ID {mail.message_id or '(none)'}, not the reference "
            f"{approval.reference}"
        )
    status, why = verify_dkim(mail, dnsfunc or dns_txt())
    if why is not None:
        problems.append(f"{approval.eml}: {why}")
    return MailVerdict(tuple(problems), status)
