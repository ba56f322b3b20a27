"""DNS access for the live stage: every query goes to explicit nameservers on an explicit port.

Nothing in the product reads /etc/resolv.conf: the plan must say which servers it asked, and
tests point the same code at a BIND 9 on loopback.
"""

from __future__ import annotations

from dataclasses import dataclass

import dns.exception
import dns.resolver

ATTEMPTS = 3  # tries per question within Nameservers.timeout


@dataclass(frozen=True)
class Nameservers:
    """Where DNS questions go: addresses (IPv4/IPv6 literals), one port, one overall timeout."""

    addresses: tuple[str, ...]
    port: int = 53
    timeout: float = 3.0


def make_resolver(ns: Nameservers) -> dns.resolver.Resolver:
    """A resolver that asks only `ns` (configure=False: no resolv.conf, no search list)."""
    resolver = dns.resolver.Resolver(configure=False)
    resolver.nameservers = list(ns.addresses)
    resolver.port = ns.port
    # `lifetime` bounds the whole question across servers and retries; `timeout` one attempt.
    # With both equal a single lost UDP datagram used up the whole budget; a third of it per
    # attempt lets dnspython retry (and move to the next server) before giving up.
    resolver.lifetime = ns.timeout
    resolver.timeout = ns.timeout / ATTEMPTS
    return resolver


def txt_values(answer: dns.resolver.Answer) -> list[str]:
    """TXT values as served: the character-strings of one record joined with no space
    (RFC 7208 3.3, RFC 7489 6.1 use the same rule)."""
    values = []
    for rdata in answer:
        strings: tuple[bytes, ...] = rdata.strings
        values.append(b"".join(strings).decode("utf-8", errors="replace"))
    return values


def report_authorised(resolver: dns.resolver.Resolver, zone: str, dest: str) -> bool | None:
    """Whether `dest` accepts DMARC reports about `zone` (RFC 7489 7.1, rule D7).

    The destination must publish TXT `<zone>._report._dmarc.<dest>` with a value starting
    `v=DMARC1`. True/False when the destination's servers answered; None when they could not be
    asked (timeout, REFUSED, SERVFAIL, no nameservers), so callers can say "unknown" instead of
    claiming the reports are lost.
    """
    qname = f"{zone.strip('.')}._report._dmarc.{dest.strip('.')}."
    try:
        answer = resolver.resolve(qname, "TXT", search=False)
    except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
        return False
    except dns.exception.DNSException:
        # NoNameservers (REFUSED/SERVFAIL from every server), LifetimeTimeout and the rest:
        # the question went unanswered, which is not the same as "not authorised".
        return None
    # 7.1: records that do not start with "v=DMARC1" are discarded, so only an exact prefix counts.
    return any(value.startswith("v=DMARC1") for value in txt_values(answer))
