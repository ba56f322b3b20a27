"""One aggregate report's XML to a typed Report, or a ReportError saying why not.

The XML comes from anyone who can send mail to a client's rua address, so it is parsed only
through defusedxml with DTDs forbidden (no entity expansion, no external references: the
billion-laughs and XXE attacks are refused before anything expands) and only after the caller
has capped its size (pipeline.reports.unpack). Elements are matched by local name, so RFC 7489
reports (no namespace), RFC 9990 reports (urn:ietf:params:xml:ns:dmarc-2.0) and the early
draft's namespace all read the same.
"""

from __future__ import annotations

import ipaddress
import re
from datetime import UTC, datetime
from xml.etree.ElementTree import Element, ParseError

import defusedxml
import defusedxml.ElementTree as SafeET

from pipeline.reports.model import AuthResult, Report, Row

# A report with more records than this is refused rather than stored: the largest real daily
# reports (a big receiver for a big sender) hold a few thousand.
MAX_ROWS = 200_000
# RFC 7489 counts are 32-bit in practice; anything above this is a corrupt or hostile file.
MAX_COUNT = 10**12
_DECLARATION = re.compile(rb"^\s*<\?xml[^>]*\?>")
_DECLARED_ENCODING = re.compile(rb"""^\s*<\?xml[^>]*encoding\s*=\s*["']([A-Za-z0-9._-]+)["']""")


class ReportError(ValueError):
    """The file is not a usable aggregate report; `reason` says why, for the analyst."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _local(tag: object) -> str:
    # Comments and processing instructions have a non-string tag.
    if not isinstance(tag, str):
        return ""
    return tag.rsplit("}", 1)[-1]


def _namespace(tag: str) -> str:
    return tag[1:].split("}", 1)[0] if tag.startswith("{") else ""


def _child(parent: Element, name: str) -> Element | None:
    for child in parent:
        if _local(child.tag) == name:
            return child
    return None


def _children(parent: Element, name: str) -> list[Element]:
    return [child for child in parent if _local(child.tag) == name]


def _text(parent: Element | None, name: str) -> str:
    if parent is None:
        return ""
    child = _child(parent, name)
    if child is None or child.text is None:
        return ""
    return child.text.strip()


def _required(parent: Element | None, name: str, where: str) -> str:
    value = _text(parent, name)
    if not value:
        raise ReportError(f"{where}: <{name}> is missing or empty")
    return value


def _timestamp(value: str, where: str) -> datetime:
    try:
        seconds = int(value)
    except ValueError:
        raise ReportError(f"{where}: {value[:40]!r} is not a Unix time in seconds") from None
    # Before 2000 or after 2100: not a report date (and datetime would reject far values).
    if not 946_684_800 <= seconds <= 4_102_444_800:
        raise ReportError(f"{where}: {seconds} is not a plausible report time (2000..2100)")
    return datetime.fromtimestamp(seconds, UTC)


def _domain(value: str) -> str:
    return value.strip().rstrip(".").lower()


def _passes(value: str) -> bool:
    return value.strip().lower() == "pass"


def _row(record: Element, number: int, default_from: str) -> tuple[Row, list[str]]:
    where = f"record {number}"
    warnings: list[str] = []
    row = _child(record, "row")
    if row is None:
        raise ReportError(f"{where}: <row> is missing")
    raw_ip = _required(row, "source_ip", where)
    try:
        source_ip = str(ipaddress.ip_address(raw_ip))
    except ValueError:
        raise ReportError(f"{where}: source_ip {raw_ip[:60]!r} is not an IP address") from None
    raw_count = _required(row, "count", where)
    if not raw_count.isascii() or not raw_count.isdigit():
        raise ReportError(f"{where}: count {raw_count[:40]!r} is not a whole number")
    count = int(raw_count)
    if count > MAX_COUNT:
        raise ReportError(f"{where}: count {count} is implausibly large")
    evaluated = _child(row, "policy_evaluated")
    if evaluated is None:
        raise ReportError(f"{where}: <policy_evaluated> is missing")
    reasons = tuple(_text(reason, "type").lower() for reason in _children(evaluated, "reason"))
    identifiers = _child(record, "identifiers")
    header_from = _domain(_text(identifiers, "header_from"))
    if not header_from:
        # Seen from small reporters: fall back to the published domain, and say so.
        header_from = default_from
        warnings.append(f"{where}: no header_from; counted for {default_from}")
    auth: list[AuthResult] = []
    results = _child(record, "auth_results")
    if results is not None:
        for dkim in _children(results, "dkim"):
            auth.append(
                AuthResult(
                    "dkim",
                    _domain(_text(dkim, "domain")),
                    _text(dkim, "result").lower(),
                    selector=_text(dkim, "selector"),
                )
            )
        for spf in _children(results, "spf"):
            auth.append(
                AuthResult(
                    "spf",
                    _domain(_text(spf, "domain")),
                    _text(spf, "result").lower(),
                    scope=_text(spf, "scope").lower(),
                )
            )
    return (
        Row(
            source_ip=source_ip,
            count=count,
            disposition=_text(evaluated, "disposition").lower(),
            dkim_aligned=_passes(_text(evaluated, "dkim")),
            spf_aligned=_passes(_text(evaluated, "spf")),
            header_from=header_from,
            envelope_from=_domain(_text(identifiers, "envelope_from")),
            envelope_to=_domain(_text(identifiers, "envelope_to")),
            reasons=tuple(r for r in reasons if r),
            auth=tuple(auth),
        ),
        warnings,
    )


def _root(data: bytes) -> tuple[Element, list[str]]:
    """The document element, through defusedxml; invalid UTF-8 in a report that declares UTF-8
    (or nothing) is read with U+FFFD in its place and a warning, since a stray Latin-1 byte in
    an org name must not lose a day of counts."""
    try:
        return SafeET.fromstring(data, forbid_dtd=True), []
    except defusedxml.DefusedXmlException as exc:
        raise ReportError(
            f"refused: the XML uses {type(exc).__name__} features (a DTD or entities); "
            "aggregate reports never do, and entity expansion is how XML bombs work"
        ) from None
    except ParseError as exc:
        declared = _DECLARED_ENCODING.match(data)
        encoding = declared.group(1).decode("ascii").lower() if declared else "utf-8"
        if encoding.replace("_", "-") not in {"utf-8", "utf8"}:
            raise ReportError(f"not well-formed XML: {exc}") from None
        try:
            data.decode("utf-8")
        except UnicodeDecodeError as bad:
            text = _DECLARATION.sub(b"", data).decode("utf-8", errors="replace")
            try:
                root = SafeET.fromstring(text, forbid_dtd=True)
            except (ParseError, defusedxml.DefusedXmlException):
                raise ReportError(f"not well-formed XML: {exc}") from None
            return root, [f"invalid UTF-8 at byte {bad.start}: read with U+FFFD in its place"]
        raise ReportError(f"not well-formed XML: {exc}") from None


def parse_report(data: bytes) -> Report:
    """A Report from the bytes of one aggregate-report XML document (already size-capped)."""
    root, warnings = _root(data)
    if _local(root.tag) != "feedback":
        raise ReportError(f"not a DMARC aggregate report: the root element is <{_local(root.tag)}>")
    metadata = _child(root, "report_metadata")
    if metadata is None:
        raise ReportError("<report_metadata> is missing")
    org_name = _required(metadata, "org_name", "report_metadata")
    report_id = _required(metadata, "report_id", "report_metadata")
    date_range = _child(metadata, "date_range")
    begin = _timestamp(_required(date_range, "begin", "date_range"), "date_range/begin")
    end = _timestamp(_required(date_range, "end", "date_range"), "date_range/end")
    if end < begin:
        raise ReportError("date_range: end is before begin")
    published = _child(root, "policy_published")
    if published is None:
        raise ReportError("<policy_published> is missing")
    domain = _domain(_required(published, "domain", "policy_published"))
    pct_text = _text(published, "pct")
    pct = int(pct_text) if pct_text.isascii() and pct_text.isdigit() and len(pct_text) < 4 else None
    records = _children(root, "record")
    if len(records) > MAX_ROWS:
        raise ReportError(f"refused: {len(records)} records, over the limit of {MAX_ROWS}")
    rows: list[Row] = []
    for number, record in enumerate(records, start=1):
        row, row_warnings = _row(record, number, domain)
        rows.append(row)
        warnings += row_warnings
    return Report(
        org_name=org_name,
        report_id=report_id,
        begin=begin,
        end=end,
        domain=domain,
        # RFC 7489 makes p required; a report without it still counts, with the gap visible.
        policy=_text(published, "p").lower(),
        email=_text(metadata, "email"),
        subdomain_policy=_text(published, "sp").lower(),
        np=_text(published, "np").lower(),
        testing=_text(published, "testing").lower(),
        discovery_method=_text(published, "discovery_method").lower(),
        generator=_text(metadata, "generator"),
        adkim=_text(published, "adkim").lower(),
        aspf=_text(published, "aspf").lower(),
        pct=pct,
        namespace=_namespace(root.tag) if isinstance(root.tag, str) else "",
        version=_text(root, "version"),
        rows=tuple(rows),
        warnings=tuple(warnings),
    )
