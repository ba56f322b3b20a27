"""octodns-bind's Rfc2136Provider with a faster reader of live zones: the same AXFR, the same records.

octodns-bind reads a zone by AXFR into a dnspython Zone (which hashes every rdata again as it files
it), prints every rdata as text, and hands octoDNS text records that octoDNS parses back. For TXT
that parse runs dnspython's tokenizer twice per value. That read was about 60% of a zone's plan
(benchmarks/README.md). The subclass below keeps the transfer itself as it
was (`dns.query.xfr`: the query, TSIG signing and checking of every message, the AXFR state
machine) and builds octoDNS's records straight from the transferred rdata objects:

- TXT and SPF values come from the rdata's character strings: joined, decoded as UTF-8 and with
  `;` escaped, which is what octoDNS's `from_rdata_text` makes of dnspython's quoted text form.
- Every other type still goes through `rdata.to_text()` and octoDNS's own parser of that text,
  as in octodns-bind (they are cheap, and their parsers hold octoDNS's own rules).
- The zone checks of `dns.zone.from_xfr` are kept: the origin is the first record's owner, names
  outside it are skipped, an SOA elsewhere or a record of another class is refused, the origin
  must hold SOA and NS. RRsets split over several messages are merged (smallest TTL, each rdata
  once), and records are made in octoDNS's order (owner name, then type).
- Read leniently (as octoDNS reads a target), records skip the validators whose only outcome would
  be a warning nobody sees (pipeline/live/records.py).

tests/test_live_axfr.py checks, against a real BIND, that both readers give equal records (values,
TTLs, types, names, the order) for every type octodns-bind supports, TXT escaping and chunking
included. The class keeps octodns-bind's name: pipeline.apply.verify recognises the provider by it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import dns.exception
import dns.message
import dns.name
import dns.query
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.zone
from octodns.record import Record
from octodns.record.chunked import _ChunkedValue
from octodns.record.rr import RdataParseError
from octodns_bind import AxfrSourceZoneTransferFailed
from octodns_bind import Rfc2136Provider as OctodnsRfc2136Provider

from pipeline.live.records import new_record

# octoDNS's conversion of TXT/SPF presentation text, which the shortcut below reproduces. If an
# octoDNS release replaces it, TXT values go through octoDNS's own parser again.
_CHUNKED_FROM_TEXT = _ChunkedValue.from_rdata_text.__func__
_STRING_TYPES = frozenset({dns.rdatatype.TXT, dns.rdatatype.SPF})


class _Text:
    """The one record octoDNS's `data_from_rrs` reads: name, type, TTL and the rdata as text."""

    __slots__ = ("_type", "name", "rdata", "ttl")

    def __init__(self, name: str, rtype: str, ttl: int, rdata: str) -> None:
        self.name, self._type, self.ttl, self.rdata = name, rtype, ttl, rdata


def chunked_text(rdata: Any) -> str:
    """What `_ChunkedValue.from_rdata_text(rdata.to_text())` returns for a TXT or SPF rdata,
    without printing and tokenizing it: the strings joined, UTF-8, `;` escaped as octoDNS
    stores it (dnspython refuses a TXT rdata of no strings on the wire already)."""
    try:
        return b"".join(rdata.strings).decode("utf-8").replace(";", "\\;")
    except UnicodeDecodeError as error:
        raise RdataParseError() from error


class _RRset:
    __slots__ = ("name", "rdatas", "rdtype", "ttl")

    def __init__(
        self, name: dns.name.Name, rdtype: dns.rdatatype.RdataType, ttl: int, rdatas: list[Any]
    ) -> None:
        self.name, self.rdtype, self.ttl, self.rdatas = name, rdtype, ttl, rdatas


def transferred_rrsets(messages: Iterable[dns.message.Message]) -> list[_RRset]:
    """The zone's RRsets as `dns.zone.from_xfr(messages, relativize=False)` would file them (but
    the SOA, whose content nothing reads), and with its errors, without building the zone (whose
    rdata sets hash every rdata on insert)."""
    origin: dns.name.Name | None = None
    rdclass = dns.rdataclass.IN
    found: dict[tuple[dns.name.Name, dns.rdatatype.RdataType, dns.rdatatype.RdataType], _RRset] = {}
    # A zone files every RRset of one owner under the spelling that came first (names compare
    # without case), and octodns-bind prints that spelling.
    owners: dict[dns.name.Name, dns.name.Name] = {}
    for message in messages:
        if origin is None:
            origin = message.answer[0].name
            rdclass = message.answer[0].rdclass
        for rrset in message.answer:
            name = rrset.name
            if not name.is_subdomain(origin):
                continue  # glue outside the zone, as from_xfr skips it
            if rrset.rdtype == dns.rdatatype.SOA and name != origin:
                raise dns.exception.FormError("non-origin SOA in zone transfer")  # type: ignore[no-untyped-call]
            if rrset.rdclass != rdclass:
                raise dns.exception.FormError("wrong rdclass in zone transfer")  # type: ignore[no-untyped-call]
            name = owners.setdefault(name, name)
            key = (name, rrset.rdtype, rrset.covers)
            have = found.get(key)
            if have is None:
                # A message's RRset holds each rdata once already (dnspython merged it).
                found[key] = _RRset(name, rrset.rdtype, rrset.ttl, list(rrset))
                continue
            if rrset.rdtype == dns.rdatatype.SOA:
                # The closing SOA: of the SOA only its presence at the origin is read (octoDNS
                # does not manage it), and comparing SOA rdata costs two renderings to wire.
                continue
            # The same RRset again (split over messages): merge as a zone's rdataset does,
            # smallest TTL and each rdata once.
            have.ttl = min(have.ttl, rrset.ttl)
            for rdata in rrset:
                if rdata not in have.rdatas:
                    have.rdatas.append(rdata)
    if origin is None:
        raise ValueError("empty transfer")
    if (origin, dns.rdatatype.SOA, dns.rdatatype.NONE) not in found:
        raise dns.zone.NoSOA
    if (origin, dns.rdatatype.NS, dns.rdatatype.NONE) not in found:
        raise dns.zone.NoNS
    return list(found.values())


def records_of(
    zone: Any, rrsets: Iterable[_RRset], supported: set[str], lenient: bool
) -> list[Any]:
    """octoDNS records of the supported types, as `Record.from_rrs` makes them from octodns-bind's
    text records: grouped by (owner, type), in sorted order, each through `Record.new`."""
    grouped: dict[tuple[str, str], _RRset] = {}
    for rrset in rrsets:
        rtype = dns.rdatatype.to_text(rrset.rdtype)
        if rtype in supported:
            grouped[(rrset.name.to_text(), rtype)] = rrset
    records = []
    for (fqdn, rtype), rrset in sorted(grouped.items()):
        record_class = Record._CLASSES[rtype]
        value_type = record_class._value_type
        if rrset.rdtype in _STRING_TYPES and (
            getattr(value_type.from_rdata_text, "__func__", None) is _CHUNKED_FROM_TEXT
        ):
            data = {
                "ttl": rrset.ttl,
                "type": rtype,
                "values": [chunked_text(rdata) for rdata in rrset.rdatas],
            }
        else:
            data = record_class.data_from_rrs(
                [_Text(fqdn, rtype, rrset.ttl, rdata.to_text()) for rdata in rrset.rdatas]
            )
        name = zone.hostname_from_fqdn(fqdn)
        records.append(new_record(zone, name, data, None, lenient))
    return records


class Rfc2136Provider(OctodnsRfc2136Provider):  # type: ignore[misc]
    """octodns_bind.Rfc2136Provider (policy/providers.yaml names that class) reading zones faster;
    writing is octodns-bind's own (and pipeline.live.bind's guarded apply)."""

    def populate(self, zone: Any, target: bool = False, lenient: bool = False) -> bool:
        self.log.debug("populate: name=%s, target=%s, lenient=%s", zone.name, target, lenient)
        before = len(zone.records)
        try:
            rrsets = transferred_rrsets(
                dns.query.xfr(
                    self.host,
                    zone.name,
                    port=self.port,
                    timeout=self.timeout,
                    lifetime=self.timeout,
                    relativize=False,
                    **self._auth_params(),
                )
            )
        except dns.exception.DNSException as err:
            raise AxfrSourceZoneTransferFailed(err) from None
        for record in records_of(zone, rrsets, self.SUPPORTS, lenient):
            zone.add_record(record, lenient=lenient)
        self.log.info("populate:   found %s records", len(zone.records) - before)
        result: bool = self.zone_exists(zone, target)
        return result
