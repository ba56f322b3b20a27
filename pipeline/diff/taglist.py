"""Tag=value lists (RFC 6376 3.2): the syntax of DMARC, DKIM, BIMI, MTA-STS and TLS-RPT records."""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from pipeline.diff.errors import RecordSyntaxError


@dataclass(frozen=True)
class Tag:
    name: str
    value: str

    def __str__(self) -> str:
        return f"{self.name}={self.value}"


def parse_tag_list(
    text: str, code: str, *, lower_names: bool = False, strict: bool = False
) -> tuple[Tag, ...]:
    """Split `a=1; b=2;` into tags, in order.

    RFC 6376 3.2: whitespace around tags and `=` is allowed, a trailing `;` is allowed, and a
    tag-list with a duplicate tag name is invalid as a whole. `code` is the rule reported when the
    text is not a tag-list at all. `strict` is the MTA-STS/TLS-RPT grammar (RFC 8461 3.1,
    RFC 8460 3): field names are case-sensitive (%s"...") and nothing may stand around `=`.
    """
    tags: list[Tag] = []
    seen: set[str] = set()
    for spec in text.split(";"):
        if not spec.strip():
            continue
        name, sep, value = spec.partition("=")
        if strict and sep and (name != name.rstrip() or value != value.lstrip()):
            # field-delim = *WSP ";" *WSP: spaces around ";" are fine, around "=" they are not.
            raise RecordSyntaxError(
                f"'{spec.strip()}': no spaces are allowed around '=' in this record; write "
                f"{name.strip()}={value.strip()}",
                code,
            )
        name = name.strip()
        if not sep or not name:
            raise RecordSyntaxError(f"'{spec.strip()}' is not a tag=value pair", code)
        if lower_names:
            name = name.lower()
        if name in seen:
            raise RecordSyntaxError(
                f"tag '{name}' appears twice; receivers reject the record", code
            )
        seen.add(name)
        tags.append(Tag(name, value.strip()))
    return tuple(tags)


def tag_value(tags: tuple[Tag, ...], name: str) -> str | None:
    return next((t.value for t in tags if t.name == name), None)


def require_version(text: str, tags: tuple[Tag, ...], version: str, code: str) -> None:
    """The first tag must be exactly `v=<version>` (DMARC, BIMI, MTA-STS and TLS-RPT all say so),
    at the very start of the record: their grammars begin with the version, not with whitespace
    (RFC 7489 6.4 dmarc-record, RFC 8461 3.1, RFC 8460 3)."""
    if text[:1] in (" ", "\t"):
        raise RecordSyntaxError(
            f"the record starts with whitespace before v={version}; receivers ignore it "
            "otherwise: remove the leading whitespace",
            code,
        )
    if not tags or tags[0].name != "v" or tags[0].value != version:
        first = str(tags[0]) if tags else "nothing"
        raise RecordSyntaxError(
            f"the record must start with v={version} (found {first}); receivers ignore it "
            "otherwise",
            code,
        )


def uri_list(value: str, code: str, tag: str = "rua") -> tuple[str, ...]:
    """A comma-separated URI list (RFC 7489 6.4 dmarc-urilist, RFC 8460 3 tlsrpt-rua):
    `uri *(*WSP "," *WSP uri)`, so never empty, no empty entries and no spaces inside an entry."""
    uris = tuple(u.strip(" \t") for u in value.split(","))
    if not value.strip() or any(not u for u in uris):
        raise RecordSyntaxError(
            f"{tag}={value}: an empty entry in the URI list (empty value, or a leading, trailing "
            "or doubled comma); list URIs separated by single commas",
            code,
        )
    for uri in uris:
        if any(c.isspace() for c in uri):
            raise RecordSyntaxError(
                f"{tag}={value}: URIs are separated by commas, not spaces", code
            )
    return uris


def ascii_number(value: str) -> bool:
    # The RFCs' DIGIT is %x30-39; str.isdigit() would also accept "５０" and int() would read it.
    return bool(re.fullmatch(r"[0-9]+", value))


_TOPLABEL = re.compile(r"[A-Za-z0-9]*[A-Za-z][A-Za-z0-9]*|[A-Za-z0-9]+-[A-Za-z0-9-]*[A-Za-z0-9]")
# RFC 1123 2.1 (RFC 952 as amended): a host name's labels are letters, digits and hyphens, with a
# letter or digit at both ends. Internationalised names are published in their xn-- form (RFC 5890
# 2.3.2.1), which is LDH too.
_HOST_LABEL = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?")
# A DNS name that is not a host (a TXT record's owner: `_spf.example.com`, `_report._dmarc`) may
# also hold underscores, the mark of the underscored names RFC 8552 2 registers.
_DNS_LABEL = re.compile(r"[A-Za-z0-9_](?:[A-Za-z0-9_-]*[A-Za-z0-9_])?")


def domain_problem(name: str, *, underscores: bool = False) -> str | None:
    """Why `name` cannot be a domain on the internet, or None: at least two labels, none empty or
    over 63 bytes, at most 253 in all, a top label that is not all digits (RFC 7208 7.1
    toplabel, the rule for every host name since RFC 1123 2.1), and every other label letters,
    digits and hyphens with no hyphen at either end (RFC 1123 2.1).

    `underscores`: the name is looked up as a TXT or address record, not connected to as a host
    (an SPF include or redirect target), so its labels may also hold underscores (RFC 8552 2:
    `_spf.example.com`). A mail domain, a web host or a nameserver never may."""
    labels = name.removesuffix(".").split(".")
    if len(labels) < 2:
        return f"{name} is a single label, not a domain"
    if any(not label for label in labels):
        return f"{name} has an empty label"
    if any(len(label.encode()) > 63 for label in labels):
        return f"{name} has a label longer than 63 bytes"
    if len(name.removesuffix(".").encode()) > 253:
        return f"{name} is longer than 253 bytes"
    if not _TOPLABEL.fullmatch(labels[-1]):
        return f"{name}: the top label {labels[-1]} is not a top-level domain"
    pattern = _DNS_LABEL if underscores else _HOST_LABEL
    bad = next((label for label in labels[:-1] if not pattern.fullmatch(label)), None)
    if bad is None:
        return None
    odd = next((c for c in bad if not (c.isascii() and (c.isalnum() or c in "-_"))), None)
    if odd is None and "_" in bad and not underscores:
        odd = "_"
    what = "starts or ends with a hyphen" if odd is None else f"holds {odd!r}"
    allowed = (
        "letters, digits, hyphens and underscores (RFC 8552 2)"
        if underscores
        else "letters, digits and hyphens"
    )
    if odd is not None and not odd.isascii():
        allowed += " (an internationalised name is written in its xn-- form, RFC 5890 2.3.2.1)"
    return (
        f"{name}: the label {bad} {what}; a domain's labels are {allowed}, with no hyphen at "
        "either end (RFC 1123 2.1)"
    )


def address_problem(uri: str) -> str | None:
    """Why a report URI with a scheme has no address to deliver to, or None: nothing after the
    scheme (`mailto:`), or a mailto: address without its `@` or its local part (RFC 6068 2: an
    address is local-part@domain). The domain itself is uri_host's and domain_problem's."""
    scheme, _, rest = uri.partition(":")
    if not rest:
        return f"has no address after {scheme}:"
    if scheme.lower() == "mailto":
        local, at, domain = rest.rpartition("@")
        if not at:
            return f"has no @ in {rest}: a mailto: address is local-part@domain"
        if not local:
            return f"has no local part before @{domain}"
    return None


def uri_host(uri: str, *, size_limit: bool = True) -> str | None:
    """The host a URI delivers to (`mailto:x@d.example!10m` -> `d.example`), None when it has
    none or cannot be read; never raises (urlsplit does, on `https://[x`).

    `size_limit`: the URI may end in a DMARC size limit `!10m`, which is not part of it (RFC 7489
    6.4 writes a `!` inside the URI as `%21`). TLS-RPT has no size limit (RFC 8460 3): there a `!`
    belongs to the URI, so `mailto:tls@example.com!10m` names the host `example.com!10m`, which
    no report reaches."""
    if size_limit:
        uri = uri.split("!", 1)[0]
    scheme, _, rest = uri.partition(":")
    if scheme.lower() == "mailto":
        local, at, domain = rest.rpartition("@")
        return (domain.lower().rstrip(".") or None) if at and local else None
    try:
        host = urlsplit(uri).hostname
    except ValueError:
        return None
    return host.lower() if host else None
