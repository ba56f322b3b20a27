"""The loopback BIND 9 test server itself, and DNS access through pipeline.live.dns."""

from __future__ import annotations

import socket
import time
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path

import dns.exception
import dns.rcode
import dns.resolver
import dns_server
import pytest
from conftest import REPORT_DEST, REPORT_WILDCARD_DEST
from dns_server import (
    DynamicUpdateRefusedError,
    NamedNotFoundError,
    NamedServer,
    NamedServerError,
    ZoneSpec,
    find_named,
)

from pipeline.live.dns import Nameservers, make_resolver, report_authorised

Factory = Callable[[Mapping[str, ZoneSpec]], NamedServer]


def txt(server: NamedServer, name: str) -> list[str]:
    response = server.query(name, "TXT")
    return [b"".join(rdata.strings).decode() for rrset in response.answer for rdata in rrset]


# -- NamedServer ---------------------------------------------------------------------------------


def test_start_serves_records_and_zone_text(named_factory: Factory) -> None:
    began = time.monotonic()
    server = named_factory(
        {
            "one.test": [("@", "TXT", "v=spf1 -all"), ("www", "A", "192.0.2.1")],
            # Zone-file text without an SOA gets the skeleton too.
            "two.test": 'txt 60 IN TXT "hello" " world"',
        }
    )
    assert time.monotonic() - began < 5
    assert server.running and server.port > 0
    assert txt(server, "one.test.") == ["v=spf1 -all"]
    assert txt(server, "txt.two.test.") == ["hello world"]
    soa = server.query("one.test.", "SOA")
    assert soa.rcode() == dns.rcode.NOERROR
    # NS outside the zone: BIND would refuse updates with an in-zone NS lacking an address.
    ns = server.query("one.test.", "NS").answer[0][0].target.to_text()
    assert ns == "ns1.example.net."


def test_long_txt_values_are_split_into_255_byte_strings(named_factory: Factory) -> None:
    value = "v=DKIM1; k=rsa; p=" + "A" * 400
    server = named_factory({"dkim.test": [("sel._domainkey", "TXT", value)]})
    response = server.query("sel._domainkey.dkim.test.", "TXT")
    strings = response.answer[0][0].strings
    assert [len(s) for s in strings] == [255, len(value) - 255]
    assert txt(server, "sel._domainkey.dkim.test.") == [value]


def test_dynamic_update_is_visible(named_factory: Factory) -> None:
    server = named_factory({"live.test": [("_dmarc", "TXT", "v=DMARC1; p=none")]})
    server.update("live.test", "_dmarc", "TXT", ["v=DMARC1; p=reject"])
    assert txt(server, "_dmarc.live.test.") == ["v=DMARC1; p=reject"]
    server.update("live.test", "_dmarc", "TXT", [])
    assert server.query("_dmarc.live.test.", "TXT").rcode() == dns.rcode.NXDOMAIN


def test_update_needs_the_tsig_key(named_factory: Factory) -> None:
    server = named_factory({"guarded.test": [("@", "TXT", "v=spf1 -all")]})
    wrong = "A" * 43 + "="
    with pytest.raises(DynamicUpdateRefusedError, match="TSIG"):
        server.update("guarded.test", "@", "TXT", ["v=spf1 +all"], key_secret=wrong)
    with pytest.raises(DynamicUpdateRefusedError) as unsigned:
        server.update("guarded.test", "@", "TXT", ["v=spf1 +all"], signed=False)
    assert unsigned.value.rcode == "REFUSED"
    assert txt(server, "guarded.test.") == ["v=spf1 -all"]


def test_add_zone_keeps_port_and_earlier_updates(named_factory: Factory) -> None:
    server = named_factory({"first.test": [("@", "TXT", "v=spf1 -all")]})
    port = server.port
    server.update("first.test", "@", "TXT", ["v=spf1 mx -all"])
    server.add_zone("second.test", [("@", "TXT", "v=spf1 a -all")])
    assert server.port == port
    assert txt(server, "second.test.") == ["v=spf1 a -all"]
    assert txt(server, "first.test.") == ["v=spf1 mx -all"]


def test_kill_and_start_again(named_factory: Factory) -> None:
    server = named_factory({"flaky.test": [("@", "TXT", "v=spf1 -all")]})
    server.kill()
    assert not server.running
    with pytest.raises(dns.exception.Timeout):
        server.query("flaky.test.", "TXT", timeout=0.2)
    server.start()
    assert txt(server, "flaky.test.") == ["v=spf1 -all"]


def test_provider_config_works_with_octodns_bind(named_factory: Factory) -> None:
    from octodns.zone import Zone

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # octodns-bind 1.1 on octoDNS 1.22
        from octodns_bind import Rfc2136Provider

        server = named_factory({"octo.test": [("_dmarc", "TXT", "v=DMARC1; p=none")]})
        provider = Rfc2136Provider("bind", **server.provider_config())
        zone = Zone("octo.test.", [])
        provider.populate(zone)  # AXFR, allowed only with the TSIG key
    dmarc = next(r for r in zone.records if (r.name, r._type) == ("_dmarc", "TXT"))
    assert dmarc.values == ["v=DMARC1\\; p=none"]  # octoDNS keeps TXT escaped


def test_start_retries_on_a_port_taken_meanwhile(monkeypatch: pytest.MonkeyPatch) -> None:
    # Someone else binds the port between our check and named's start: named exits, we retry.
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as squatter:
        squatter.bind(("127.0.0.1", 0))
        taken = squatter.getsockname()[1]
        offered = iter([taken])
        real_free_port = dns_server.free_port
        monkeypatch.setattr(
            dns_server, "free_port", lambda: next(offered, None) or real_free_port()
        )
        with NamedServer({"retry.test": [("@", "TXT", "v=spf1 -all")]}) as server:
            assert server.port != taken
            assert txt(server, "retry.test.") == ["v=spf1 -all"]


def test_missing_named_fails_clearly(tmp_path: Path) -> None:
    with pytest.raises(NamedNotFoundError, match="apt-get install bind9"):
        find_named(path_env=str(tmp_path), fallbacks=(str(tmp_path / "named"),))
    with pytest.raises(NamedNotFoundError, match="missing or not executable"):
        NamedServer({"x.test": []}, named_path=str(tmp_path / "named"))


def test_start_failure_shows_the_named_log() -> None:
    # A record BIND rejects (CNAME beside other data) makes the zone fail to load.
    server = NamedServer({"broken.test": [("@", "CNAME", "elsewhere.test.")]})
    with pytest.raises(NamedServerError, match=r"named\.log") as failure:
        server.start()
    assert "broken.test: CNAME and other data" in str(failure.value)  # from named.log
    server.stop()


# -- pipeline.live.dns ---------------------------------------------------------------------------


def test_make_resolver_asks_only_the_given_servers(sender_nameservers: Nameservers) -> None:
    resolver = make_resolver(sender_nameservers)
    assert resolver.nameservers == ["127.0.0.1"]
    assert resolver.port == sender_nameservers.port
    assert resolver.lifetime == sender_nameservers.timeout
    assert resolver.search == []


def test_report_authorised_true(sender_resolver: dns.resolver.Resolver) -> None:
    assert report_authorised(sender_resolver, "client.example", REPORT_DEST) is True
    # Trailing dots are tolerated on both names.
    assert report_authorised(sender_resolver, "client.example.", REPORT_DEST + ".") is True
    # A wildcard at the destination authorises every domain (RFC 7489 7.1 allows it).
    assert report_authorised(sender_resolver, "anyone.example", REPORT_WILDCARD_DEST) is True


def test_report_authorised_false(sender_resolver: dns.resolver.Resolver) -> None:
    # NXDOMAIN: the destination never authorised this domain.
    assert report_authorised(sender_resolver, "stranger.example", REPORT_DEST) is False
    # A TXT that is not v=DMARC1 is discarded (7.1), so it is not an authorisation.
    assert report_authorised(sender_resolver, "other.example", REPORT_DEST) is False


def test_report_authorised_none_when_nobody_answers(
    sender_resolver: dns.resolver.Resolver, named_factory: Factory
) -> None:
    # REFUSED: the server is not authoritative for the destination.
    assert report_authorised(sender_resolver, "client.example", "unserved.example") is None
    # A stopped server: timeout.
    server = named_factory({REPORT_DEST: [("client.example._report._dmarc", "TXT", "v=DMARC1")]})
    resolver = make_resolver(Nameservers((server.host,), server.port, timeout=0.3))
    assert report_authorised(resolver, "client.example", REPORT_DEST) is True
    server.stop()
    assert report_authorised(resolver, "client.example", REPORT_DEST) is None
