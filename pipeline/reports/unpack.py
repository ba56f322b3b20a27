"""From a file's bytes to the aggregate-report XML documents inside it.

Receivers send reports as bare XML, gzip (Google, Yahoo), zip (Microsoft, many others) or as the
attachment of a mail; an analyst hands over single files, .eml files or a whole mbox export. The
container is recognised by its content, never by its name (reporters name files freely, and a
.zip that is really gzip is common). Everything is capped: a gzip or zip bomb stops at the limit
of decompressed bytes, archives at a number of members, mail at a depth of nesting.
"""

from __future__ import annotations

import email
import email.policy
import gzip
import io
import re
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from email.message import Message

MIB = 1024 * 1024


@dataclass(frozen=True)
class UnpackLimits:
    # One input file (an mbox of a month's reports is tens of MiB).
    max_file_bytes: int = 256 * MIB
    # One report's XML after decompression: the biggest real daily reports are a few MiB.
    max_xml_bytes: int = 32 * MIB
    # Members of one zip and reports in one mail or mbox.
    max_members: int = 100_000
    # Mail inside zip inside mail ... : real reports nest two deep at most.
    max_depth: int = 4


DEFAULT_UNPACK_LIMITS = UnpackLimits()


@dataclass(frozen=True)
class Payload:
    """One XML document and where it came from (`file!member!attachment`)."""

    name: str
    data: bytes


@dataclass(frozen=True)
class Problem:
    name: str
    reason: str


_MAIL_HEADER = re.compile(rb"^[A-Za-z][A-Za-z0-9-]*:")
_MBOX_SEPARATOR = re.compile(rb"(?:^|\n)From [^\n]*\n")


def kind_of(data: bytes) -> str:
    """gzip | zip | xml | mbox | mail | unknown, from the first bytes."""
    if data.startswith(b"\x1f\x8b"):
        return "gzip"
    if data.startswith(b"PK\x03\x04") or data.startswith(b"PK\x05\x06"):
        return "zip"
    head = data[:4096].lstrip(b"\xef\xbb\xbf \t\r\n")
    if head.startswith(b"<"):
        return "xml"
    if head.startswith(b"From "):
        return "mbox"
    if _MAIL_HEADER.match(head):
        return "mail"
    return "unknown"


def _gunzip(data: bytes, limit: int) -> bytes:
    # Read at most limit + 1 bytes: a 10 KB gzip that expands to 10 GB stops here.
    with gzip.GzipFile(fileobj=io.BytesIO(data)) as stream:
        out = stream.read(limit + 1)
    if len(out) > limit:
        raise ValueError(f"refused: decompresses to more than {limit} bytes")
    return out


def _mbox_messages(data: bytes) -> list[bytes]:
    """The messages of an mbox (mboxrd/mboxo: each starts with a `From ` line at a line start)."""
    starts = [
        m.start() if data[m.start() : m.start() + 1] != b"\n" else m.start() + 1
        for m in _MBOX_SEPARATOR.finditer(data)
    ]
    messages: list[bytes] = []
    for index, start in enumerate(starts):
        end = starts[index + 1] if index + 1 < len(starts) else len(data)
        chunk = data[start:end]
        body = chunk.split(b"\n", 1)[1] if b"\n" in chunk else b""
        # mboxrd quoting: ">From " at a line start was "From " in the message.
        messages.append(re.sub(rb"(?m)^>(>*From )", rb"\1", body))
    return messages


def _attachments(message: Message) -> Iterator[tuple[str, bytes]]:
    for index, part in enumerate(message.walk(), start=1):
        if part.is_multipart():
            continue
        content_type = part.get_content_type()
        filename = part.get_filename() or ""
        wanted = (
            filename
            or content_type.endswith(("/xml", "/zip", "/gzip", "/x-gzip", "/x-zip-compressed"))
            or content_type in {"application/octet-stream", "message/rfc822"}
        )
        if not wanted:
            continue  # the human-readable body of the report mail
        payload = part.get_payload(decode=True)
        if isinstance(payload, bytes) and payload:
            yield (filename or f"part{index}"), payload


def unpack(
    name: str,
    data: bytes,
    limits: UnpackLimits = DEFAULT_UNPACK_LIMITS,
    depth: int = 0,
) -> Iterator[Payload | Problem]:
    """Every report XML inside `data`, and a Problem for each part that could not be read; a
    broken part never stops the others."""
    if depth > limits.max_depth:
        yield Problem(name, f"refused: nested more than {limits.max_depth} containers deep")
        return
    kind = kind_of(data)
    if kind == "xml":
        if len(data) > limits.max_xml_bytes:
            yield Problem(name, f"refused: {len(data)} bytes of XML, over {limits.max_xml_bytes}")
        else:
            yield Payload(name, data)
    elif kind == "gzip":
        try:
            inner = _gunzip(data, limits.max_xml_bytes)
        except (OSError, EOFError, zlib.error, ValueError) as exc:
            yield Problem(name, _why("gzip", exc))
            return
        yield from unpack(name, inner, limits, depth + 1)
    elif kind == "zip":
        yield from _unzip(name, data, limits, depth)
    elif kind in {"mail", "mbox"}:
        messages = _mbox_messages(data) if kind == "mbox" else [data]
        if len(messages) > limits.max_members:
            yield Problem(name, f"refused: {len(messages)} messages, over {limits.max_members}")
            return
        found = 0
        for number, raw in enumerate(messages, start=1):
            where = f"{name}!message{number}" if kind == "mbox" else name
            # compat32, not policy.default: the modern header parser raises (IndexError,
            # HeaderParseError) on headers spammers and broken reporters send, lazily, on first
            # access; the old one reads what it can. And still: the standard library's mail
            # parser is not written for hostile input, so whatever it raises on one message is
            # that message's problem, never the run's.
            try:
                message = email.message_from_bytes(raw, policy=email.policy.compat32)
                attachments = list(_attachments(message))
            except Exception as exc:
                yield Problem(where, f"not a readable mail: {type(exc).__name__}: {exc}")
                continue
            for filename, payload in attachments:
                found += 1
                yield from unpack(f"{where}!{filename}", payload, limits, depth + 1)
        if not found and len(messages) == 1:
            yield Problem(name, "no report attachment (XML, gzip or zip) in the mail")
        elif not found:
            yield Problem(name, "no report attachment (XML, gzip or zip) in any message")
    else:
        yield Problem(name, "not a report: neither XML, gzip, zip nor a mail")


def _unzip(name: str, data: bytes, limits: UnpackLimits, depth: int) -> Iterator[Payload | Problem]:
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        members = [m for m in archive.infolist() if not m.is_dir()]
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
        yield Problem(name, _why("zip", exc))
        return
    if len(members) > limits.max_members:
        yield Problem(name, f"refused: {len(members)} zip members, over {limits.max_members}")
        return
    if not members:
        yield Problem(name, "the zip archive is empty")
    for member in members:
        where = f"{name}!{member.filename}"
        if member.file_size > limits.max_xml_bytes:
            yield Problem(where, f"refused: {member.file_size} bytes, over {limits.max_xml_bytes}")
            continue
        try:
            with archive.open(member) as stream:
                # The header's size can lie: read at most one byte over the limit.
                inner = stream.read(limits.max_xml_bytes + 1)
        except (
            zipfile.BadZipFile,
            OSError,
            ValueError,
            EOFError,
            zlib.error,
            NotImplementedError,
            RuntimeError,
        ) as exc:
            yield Problem(where, _why("zip member", exc))
            continue
        if len(inner) > limits.max_xml_bytes:
            yield Problem(where, f"refused: decompresses to more than {limits.max_xml_bytes} bytes")
            continue
        yield from unpack(where, inner, limits, depth + 1)


def _why(what: str, exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    if text.startswith("refused:"):
        return text
    return f"not a readable {what}: {text}"
