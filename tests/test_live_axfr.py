"""pipeline/live/axfr.py reads a live zone into the same octoDNS records as octodns-bind does.

Both readers transfer the same zones from one real BIND; the records must be equal in everything
octoDNS plans with: owner, type, TTL, values (octoDNS's internal form: TXT with `;` escaped),
record class and order. The zones hold every type octodns-bind supports and the TXT values that
break naive readers: `;`, quotes, backslashes, non-ASCII text, several character strings, values
over 255 bytes (chunked), an empty string, and an RRset too large for one AXFR message.
"""

from __future__ import annotations

import itertools
import logging
import warnings
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import dns.query
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rrset
import dns.tsigkeyring
import pytest
from dns_server import NamedServer, ZoneSpec
from octodns.record import Record
from octodns.record.exception import ValidationError
from octodns.record.rr import RdataParseError
from octodns.zone import Zone
from octodns_bind import AxfrSourceZoneTransferFailed
from octodns_bind import Rfc2136Provider as OctodnsBind

from pipeline.live.axfr import Rfc2136Provider, chunked_text, records_of, transferred_rrsets
from pipeline.live.providers import provider_class
from pipeline.live.records import copy_record, new_record, warnings_logged
from pipeline.load.portfolio import ProviderConfig

KEY = "v=DKIM1; k=rsa; p=" + "MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA" * 9 + "IDAQAB"

ALL_TYPES: ZoneSpec = [
    ("@", "A", "192.0.2.1"),
    ("@", "A", "192.0.2.2"),
    ("@", "AAAA", "2001:db8::1"),
    ("@", "MX", "10 mail.example.net."),
    ("@", "MX", "20 mx2.example.net."),
    ("@", "CAA", '0 issue "letsencrypt.org"'),
    ("@", "TXT", "v=spf1 include:_spf.example.net ~all"),
    ("@", "TXT", "google-site-verification=abc123"),
    ("www", "CNAME", "host.example.net."),
    ("_dmarc", "TXT", "v=DMARC1; p=quarantine; pct=50; rua=mailto:d@example.net"),
    ("s1._domainkey", "TXT", KEY),  # over 255 bytes: two character strings
    ("s2._domainkey", "CNAME", "s2.dkim.example.net."),
    ("_mta-sts", "TXT", "v=STSv1; id=20261207"),
    ("_smtp._tls", "TXT", "v=TLSRPTv1; rua=mailto:tls@example.net", 600),
    ("default._bimi", "TXT", "v=BIMI1; l=https://example.net/logo.svg; a="),
    ("sub", "NS", "ns1.example.net."),
    ("sub", "NS", "ns2.example.net."),
    ("sub", "DS", "12345 13 2 " + "ab" * 32),
    ("quoted", "TXT", '"say \\"hi\\"; or \\\\not" "second string"'),
    ("utf8", "TXT", '"caf\\195\\169 ol\\195\\169"'),
    ("empty", "TXT", '""'),
    ("spf-type", "SPF", '"v=spf1 -all"'),
    ("_sip._tcp", "SRV", "10 60 5060 sip.example.net."),
    ("ptr", "PTR", "host.example.net."),
    ("naptr", "NAPTR", '100 10 "U" "E2U+sip" "!^.*$!sip:info@example.net!" .'),
    ("ssh", "SSHFP", "1 1 " + "12" * 20),
    ("_443._tcp", "TLSA", "3 1 1 " + "cd" * 32),
    ("loc", "LOC", "52 22 23.000 N 4 53 32.000 E -2.00m 0.00m 10000m 10m"),
    ("svc", "SVCB", '1 svc.example.net. alpn="h2,h3" port=8443'),
    ("svc", "HTTPS", "1 . alpn=h2"),
    ("Mixed-Case", "TXT", "upper and lower"),
    ("Mixed-Case", "A", "192.0.2.9"),
]

# Two RRsets of 60 values of 1,000 bytes: about 120 kB, more than one AXFR message holds (64 kB),
# so BIND sends an RRset in pieces that the reader must merge (checked below).
LARGE_SET: ZoneSpec = [
    (name, "TXT", f"{i:03d}" + "x" * 997) for name in ("big1", "big2") for i in range(60)
]


@pytest.fixture(scope="module")
def live() -> Iterator[NamedServer]:
    server = NamedServer({"types.example": ALL_TYPES, "large.example": LARGE_SET})
    server.start()
    yield server
    server.stop()


def read(cls: type[Any], server: NamedServer, zone: str, lenient: bool) -> Zone:
    target = Zone(f"{zone}.", [])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        cls("bind", **server.provider_config()).populate(target, lenient=lenient)
    return target


def snapshot(zone: Zone) -> list[tuple[Any, ...]]:
    """Everything octoDNS plans with, in the zone's own order."""
    return [
        (r.name, r._type, type(r).__name__, r.ttl, r._data(), repr(r), r.source)
        for r in zone.records
    ]


def test_strict_read_refuses_what_octodns_bind_refuses(live: NamedServer) -> None:
    """Not lenient (as octoDNS reads a source), the non-ASCII TXT fails both readers alike."""
    errors = []
    for cls in (Rfc2136Provider, OctodnsBind):
        with pytest.raises(ValidationError) as caught:
            read(cls, live, "types.example", lenient=False)
        errors.append(str(caught.value))
    assert errors[0] == errors[1]
    assert "non ASCII character" in errors[0]


@pytest.fixture(params=["warnings logged", "warnings dropped"])
def octodns_warnings(request: pytest.FixtureRequest, caplog: pytest.LogCaptureFixture) -> bool:
    """Both ways records are made leniently (pipeline/live/records.py): with octoDNS's warnings
    logged (Record.new itself) and dropped, as `dmarcops` runs without --verbose (no validators)."""
    logged = request.param == "warnings logged"
    caplog.set_level(logging.WARNING if logged else logging.ERROR, logger="Record")
    assert warnings_logged() is logged
    return logged


# types.example read strictly is refused (its non-ASCII TXT): the test above.
@pytest.mark.parametrize(
    "zone, lenient", [("types.example", True), ("large.example", True), ("large.example", False)]
)
def test_same_records_as_octodns_bind(
    live: NamedServer,
    zone: str,
    lenient: bool,
    octodns_warnings: bool,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.clear()
    theirs = read(OctodnsBind, live, zone, lenient)
    their_log = [r.getMessage() for r in caplog.records if r.name == "Record"]
    caplog.clear()
    ours = read(Rfc2136Provider, live, zone, lenient)
    our_log = [r.getMessage() for r in caplog.records if r.name == "Record"]
    # The same warnings when they are logged (the non-ASCII TXT's, read leniently).
    assert our_log == their_log
    if octodns_warnings and zone == "types.example":
        assert any("non ASCII character" in m for m in our_log)
    assert snapshot(ours) == snapshot(theirs)
    # Not vacuous: every type the zone holds arrived, with the values the tricky TXTs carry.
    spec = ALL_TYPES if zone == "types.example" else LARGE_SET
    wanted = {("" if r[0] == "@" else r[0].lower(), r[1]) for r in spec} | {("", "NS")}
    assert {(r.name, r._type) for r in ours.records} == wanted
    by_key = {(r.name, r._type): r for r in ours.records}
    if zone == "large.example":
        assert [len(by_key[(n, "TXT")].values) for n in ("big1", "big2")] == [60, 60]
        return
    assert by_key[("quoted", "TXT")].values == ['say "hi"\\; or \\not' + "second string"]
    assert by_key[("utf8", "TXT")].values == ["café olé"]
    assert by_key[("empty", "TXT")].values == [""]
    assert by_key[("s1._domainkey", "TXT")].values == [KEY.replace(";", "\\;")]
    assert by_key[("_smtp._tls", "TXT")].ttl == 600
    assert by_key[("mixed-case", "TXT")].values == ["upper and lower"]


def test_refused_transfer_fails_as_octodns_bind_fails(live: NamedServer) -> None:
    errors = []
    for cls in (Rfc2136Provider, OctodnsBind):
        with pytest.raises(AxfrSourceZoneTransferFailed) as caught:
            read(cls, live, "not-served.example", lenient=True)
        errors.append(str(caught.value))
    assert errors[0] == errors[1]
    assert "Unable to Perform Zone Transfer" in errors[0]


def test_wrong_key_fails_as_octodns_bind_fails(live: NamedServer) -> None:
    config = {**live.provider_config(), "key_secret": "d3Jvbmcta2V5LXdyb25nLWtleS13cm9uZy1rZXk="}
    errors = []
    for cls in (Rfc2136Provider, OctodnsBind):
        with pytest.raises(AxfrSourceZoneTransferFailed) as caught:
            cls("bind", **config).populate(Zone("types.example.", []), lenient=True)
        errors.append(str(caught.value))
    assert errors[0] == errors[1]


def test_large_zone_comes_in_several_messages(live: NamedServer) -> None:
    """The large zone exercises the merge: one of its RRsets spans two AXFR messages."""
    messages = list(
        dns.query.xfr(
            live.host,
            "large.example.",
            port=live.port,
            relativize=False,
            keyring=dns.tsigkeyring.from_text({live.key_name: live.key_secret}),
            keyalgorithm=live.key_algorithm,
        )
    )
    owners = [
        {r.name.to_text() for r in m.answer if r.rdtype == dns.rdatatype.TXT} for m in messages
    ]
    assert len(messages) > 1
    assert any(a & b for a, b in itertools.pairwise(owners))


def _message(*rrsets: dns.rrset.RRset) -> Any:
    return SimpleNamespace(answer=list(rrsets))


def _rrset(name: str, rtype: str, ttl: int, *texts: str) -> dns.rrset.RRset:
    return dns.rrset.from_text(name, ttl, "IN", rtype, *texts)


SOA = "ns1.example.net. hostmaster.z.example. 1 3600 600 604800 300"


def test_rrset_split_over_messages_keeps_smallest_ttl_and_each_value_once() -> None:
    messages = [
        _message(
            _rrset("z.example.", "SOA", 300, SOA),
            _rrset("z.example.", "NS", 300, "ns1.example.net."),
            _rrset("t.z.example.", "TXT", 600, '"a"', '"b"'),
        ),
        _message(
            _rrset("t.z.example.", "TXT", 300, '"b"', '"c"'),
            _rrset("outside.example.", "TXT", 300, '"glue"'),
            _rrset("z.example.", "SOA", 300, SOA),
        ),
    ]
    rrsets = transferred_rrsets(messages)
    got = {(r.name.to_text(), r.rdtype): (r.ttl, [d.to_text() for d in r.rdatas]) for r in rrsets}
    assert got[("t.z.example.", dns.rdatatype.TXT)] == (300, ['"a"', '"b"', '"c"'])
    assert ("outside.example.", dns.rdatatype.TXT) not in got
    assert len(got[("z.example.", dns.rdatatype.SOA)][1]) == 1


@pytest.mark.parametrize(
    "rrsets, error",
    [
        ([_rrset("z.example.", "NS", 300, "ns1.example.net.")], "NoSOA"),
        ([_rrset("z.example.", "SOA", 300, SOA)], "NoNS"),
        (
            [_rrset("z.example.", "SOA", 300, SOA), _rrset("a.z.example.", "SOA", 300, SOA)],
            "FormError",
        ),
    ],
)
def test_zone_checks_of_from_xfr_are_kept(rrsets: list[dns.rrset.RRset], error: str) -> None:
    with pytest.raises(Exception) as caught:
        transferred_rrsets([_message(*rrsets)])
    assert type(caught.value).__name__ == error


def test_undecodable_txt_fails_as_octodns_parse_fails() -> None:
    bad = dns.rdata.from_text("IN", "TXT", '"\\255\\254"')
    with pytest.raises(RdataParseError):
        chunked_text(bad)


def test_unsupported_types_are_left_out() -> None:
    zone = Zone("z.example.", [])
    rrsets = transferred_rrsets(
        [
            _message(
                _rrset("z.example.", "SOA", 300, SOA),
                _rrset("z.example.", "NS", 300, "ns1.example.net."),
                _rrset("h.z.example.", "HINFO", 300, '"cpu" "os"'),
            )
        ]
    )
    records = records_of(zone, rrsets, set(Rfc2136Provider.SUPPORTS), lenient=True)
    assert [(r.name, r._type) for r in records] == [("", "NS")]


def test_providers_file_class_builds_the_faster_reader(tmp_path: Any) -> None:
    config = ProviderConfig(
        name="bind", options={"class": "octodns_bind.Rfc2136Provider"}, file=tmp_path, line=1
    )
    cls = provider_class(config)
    assert cls is Rfc2136Provider and issubclass(cls, OctodnsBind)
    # pipeline.apply.verify recognises an RFC 2136 server by the class's name.
    assert cls.__name__ == "Rfc2136Provider"


def test_lenient_records_and_copies_are_octodns_own(octodns_warnings: bool) -> None:
    """new_record and copy_record make what Record.new and Record.copy make, valid or not."""
    zone, other = Zone("z.example.", []), Zone("z.example.", [])
    cases = [
        ("_dmarc", {"type": "TXT", "ttl": 300, "value": "v=DMARC1\\; p=none"}),
        (
            "",
            {"type": "MX", "ttl": 60, "values": [{"preference": 10, "exchange": "mx.z.example."}]},
        ),
        ("bad", {"type": "TXT", "ttl": 300, "value": "unescaped; café"}),  # two reasons
        ("www", {"type": "CNAME", "ttl": 300, "value": "host.example.net."}),
        ("ünï", {"type": "A", "ttl": 300, "value": "192.0.2.1"}),  # an IDN owner name
    ]
    for name, data in cases:
        made = new_record(zone, name, dict(data), "source", lenient=True)
        expected = Record.new(zone, name, dict(data), source="source", lenient=True)
        assert (made.name, made._data(), type(made), made.source) == (
            expected.name,
            expected._data(),
            type(expected),
            expected.source,
        )
        copied, copy = copy_record(made, other), made.copy(zone=other)
        assert (copied.zone, copied.name, copied._data(), copied.source) == (
            copy.zone,
            copy.name,
            copy._data(),
            copy.source,
        )
    # Strict is always octoDNS's own: the invalid value is refused either way.
    with pytest.raises(ValidationError):
        new_record(zone, "bad", {"type": "TXT", "ttl": 300, "value": "café"}, lenient=False)
    with pytest.raises(Exception, match="Unknown record type"):
        new_record(zone, "x", {"type": "NOPE", "ttl": 300, "value": "1"}, lenient=True)
