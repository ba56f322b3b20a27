"""After an apply: do the authoritative servers answer with the new values?

For a provider with a queryable server (octodns-bind's Rfc2136Provider: host and port) the records
are asked with dnspython, retrying until a timeout (a server may take a moment to load an update).
Where DNS cannot reach the provider (the sandbox, an API-only provider in tests), the zone is read
back through the provider itself, and the result says which way it was checked.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, Protocol

import dns.exception
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdatatype
from octodns.zone import Zone

from pipeline.live.hosted import wait_insync
from pipeline.live.scope import raw_values

Clock = Callable[[], datetime]


class Checkable(Protocol):
    """What verification needs of an item: a plan item at apply time, a record item when an
    interrupted apply is recovered from its journal."""

    @property
    def zone(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def type(self) -> str: ...
    @property
    def after(self) -> tuple[str, ...]: ...
    @property
    def fqdn(self) -> str: ...


@dataclass(frozen=True)
class ItemCheck:
    zone: str
    name: str
    type: str
    status: str  # verified | mismatch | unverifiable
    checked_at: datetime
    method: str  # dns | provider
    detail: str


def _served_values(answer: dns.message.Message, fqdn: str, rtype: str) -> tuple[str, ...]:
    name = dns.name.from_text(fqdn)
    kind = dns.rdatatype.from_text(rtype)
    values: list[str] = []
    sections = list(answer.answer)
    if kind == dns.rdatatype.NS:
        # At a delegation point the parent's server answers with a referral: the NS set is in
        # the authority section, not the answer (RFC 1034 4.3.2 step 3b).
        sections += list(answer.authority)
    for rrset in sections:
        if rrset.name != name or rrset.rdtype != kind:
            continue
        for rdata in rrset:
            if kind == dns.rdatatype.TXT:
                values.append(b"".join(rdata.strings).decode("utf-8", "replace"))
            else:
                values.append(rdata.to_text())
    return tuple(values)


def _normalise(rtype: str, values: Sequence[str]) -> list[str]:
    if rtype == "TXT":
        return sorted(values)
    return sorted(v.lower().rstrip(".") for v in values)


class ServerRefused(Exception):
    """The authoritative server answered with an error rcode (REFUSED, SERVFAIL, NOTAUTH)."""


def _query(host: str, port: int, fqdn: str, rtype: str, timeout: float) -> tuple[str, ...]:
    query = dns.message.make_query(fqdn, rtype)
    query.flags &= ~0x0100  # RD off: we ask the authoritative server, not a resolver
    answer = dns.query.udp(query, host, port=port, timeout=timeout)
    if answer.flags & 0x0200:  # TC: the answer did not fit (2048-bit DKIM keys): ask over TCP
        answer = dns.query.tcp(query, host, port=port, timeout=timeout)
    if answer.rcode() not in (dns.rcode.NOERROR, dns.rcode.NXDOMAIN):
        raise ServerRefused(dns.rcode.to_text(answer.rcode()))
    return _served_values(answer, fqdn, rtype)


def verify_by_dns(
    host: str,
    port: int,
    items: Sequence[Checkable],
    *,
    timeout: float = 10.0,
    interval: float = 0.2,
    clock: Clock = lambda: datetime.now(UTC),
) -> list[ItemCheck]:
    pending = list(items)
    results: dict[int, ItemCheck] = {}
    deadline = time.monotonic() + timeout
    while True:
        still: list[Checkable] = []
        for item in pending:
            try:
                served = _query(host, port, f"{item.fqdn}.", item.type, min(2.0, timeout))
            except (dns.exception.DNSException, ServerRefused, OSError) as exc:
                served = None
                detail = f"{host}:{port} did not answer: {exc or type(exc).__name__}"
            if served is not None and _normalise(item.type, served) == _normalise(
                item.type, item.after
            ):
                results[id(item)] = ItemCheck(
                    item.zone,
                    item.name,
                    item.type,
                    "verified",
                    clock(),
                    "dns",
                    f"{host}:{port} serves the new values",
                )
                continue
            if served is not None:
                detail = f"{host}:{port} serves {list(served)!r}, expected {list(item.after)!r}"
            results[id(item)] = ItemCheck(
                item.zone,
                item.name,
                item.type,
                "mismatch" if served is not None else "unverifiable",
                clock(),
                "dns",
                detail,
            )
            still.append(item)
        if not still or time.monotonic() >= deadline:
            break
        pending = still
        time.sleep(interval)
    return [results[id(item)] for item in items]


def verify_by_provider(
    target: Any, zone: str, items: Sequence[Checkable], clock: Clock = lambda: datetime.now(UTC)
) -> list[ItemCheck]:
    live = Zone(f"{zone}.", [])
    target.populate(live, target=True, lenient=True)
    served = {(r.name, r._type): raw_values(r) for r in live.records}
    checks = []
    for item in items:
        values = served.get((item.name, item.type), ())
        ok = _normalise(item.type, values) == _normalise(item.type, item.after)
        checks.append(
            ItemCheck(
                item.zone,
                item.name,
                item.type,
                "verified" if ok else "mismatch",
                clock(),
                "provider",
                "read back through the provider"
                if ok
                else f"provider holds {list(values)!r}, expected {list(item.after)!r}",
            )
        )
    return checks


def authoritative_server(target: Any) -> tuple[str, int] | None:
    """Where DNS can ask the provider directly: the entry's `dns_server` (PowerDNS: its host and
    port are the HTTP API's), else octodns-bind's host and port."""
    configured = getattr(target, "dmarcops_dns_server", None)
    if configured is not None:
        return (str(configured[0]), int(configured[1]))
    if type(target).__name__ != "Rfc2136Provider":
        return None
    host, port = getattr(target, "host", None), getattr(target, "port", None)
    if isinstance(host, str) and isinstance(port, int):
        return host, port
    return None


def verify_route53(
    target: Any, zone: str, items: Sequence[Checkable], timeout: float, clock: Clock
) -> list[ItemCheck]:
    """GetChange until INSYNC, then the records read back (Route 53 has no server a test can
    query; in production its public servers serve what INSYNC says they have)."""
    changes = list(getattr(target, "dmarcops_changes", ()))
    try:
        pending = wait_insync(target, changes, timeout)
    except Exception as exc:
        pending = f"GetChange failed: {str(exc).splitlines()[0] if str(exc) else exc}"
    if pending:
        return [
            ItemCheck(i.zone, i.name, i.type, "unverifiable", clock(), "provider", pending)
            for i in items
        ]
    target._r53_rrsets = {}  # the zone as cached before the apply: read it again
    checks = verify_by_provider(target, zone, items, clock)
    insync = f"change {', '.join(changes)} INSYNC; " if changes else ""
    return [replace(c, detail=f"{insync}{c.detail}") for c in checks]
