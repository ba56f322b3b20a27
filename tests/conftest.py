"""Shared fixtures: a real BIND 9 serving third-party sender zones on loopback, and a factory.

The sender data is modelled on what the big senders publish (values trimmed), plus synthetic
names under `senders.test` (RFC 2606 reserves .test) for the edge cases of RFC 7208 4.6.4.
Tests import the names below (`from conftest import SENDGRID, ...`) instead of repeating them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path

import dns.resolver
import pytest
from dns_server import NamedServer, ZoneSpec

from pipeline.live.dns import Nameservers, make_resolver

SENDGRID = "sendgrid.net"
GOOGLE = "_spf.google.com"
OUTLOOK = "spf.protection.outlook.com"
MAILGUN = "mailgun.org"
MANDRILL = "spf.mandrillapp.com"
ZENDESK = "mail.zendesk.com"
LAB = "senders.test"
MANY_MX = f"many-mx.{LAB}"  # 11 MX names: over the limit of 10 (S3)
TEN_MX = f"ten-mx.{LAB}"  # exactly 10 MX names: at the limit, allowed
REDIRECTED = f"redirected.{LAB}"  # v=spf1 redirect=_spf.senders.test
LAB_SPF = f"_spf.{LAB}"  # include:sendgrid.net include:mailgun.org
DEEP = f"deep1.{LAB}"  # deep1 -> deep2 -> deep3 -> deep4, each with a and mx: 12 lookups
DEEP3 = f"deep3.{LAB}"  # the tail of that chain: 6 lookups
LOOP_A = f"loop-a.{LAB}"  # includes loop-b, which includes loop-a
LOOP_B = f"loop-b.{LAB}"
NO_SPF = f"nospf.{LAB}"  # TXT without v=spf1
TWO_SPF = f"twospf.{LAB}"  # two v=spf1 values: permerror
EMPTY = f"empty.{LAB}"  # exists (has a TXT) but no A/AAAA/MX: NODATA, a void lookup
MAIL_HOST = f"mail.{LAB}"  # has an A record
VOID_NAMES = (f"gone1.{LAB}", f"gone2.{LAB}", f"gone3.{LAB}")  # NXDOMAIN
REPORT_DEST = "dmarc-reports.test"  # accepts reports for client.example only
REPORT_WILDCARD_DEST = "all-reports.test"  # *._report._dmarc: accepts reports for anyone

_deep = [(f"deep{n}", "TXT", f"v=spf1 a mx include:deep{n + 1}.{LAB} ~all") for n in (1, 2, 3)] + [
    ("deep4", "TXT", "v=spf1 a mx ~all")
]

SENDER_ZONES: dict[str, list[tuple[str, str, str]]] = {
    SENDGRID: [
        (
            "@",
            "TXT",
            "v=spf1 ip4:167.89.0.0/17 ip4:208.117.48.0/20 ip4:50.31.32.0/19 ip4:198.37.144.0/20"
            " ip4:198.21.0.0/21 ip4:192.254.112.0/20 ip4:168.245.0.0/17 ip4:149.72.0.0/16"
            " ip4:159.183.0.0/16 ~all",
        ),
    ],
    "google.com": [
        (
            "_spf",
            "TXT",
            "v=spf1 include:_netblocks.google.com include:_netblocks2.google.com"
            " include:_netblocks3.google.com ~all",
        ),
        (
            "_netblocks",
            "TXT",
            "v=spf1 ip4:35.190.247.0/24 ip4:64.233.160.0/19 ip4:66.102.0.0/20 ip4:66.249.80.0/20"
            " ip4:72.14.192.0/18 ip4:74.125.0.0/16 ip4:108.177.8.0/21 ip4:173.194.0.0/16"
            " ip4:209.85.128.0/17 ip4:216.58.192.0/19 ip4:216.239.32.0/19 ~all",
        ),
        (
            "_netblocks2",
            "TXT",
            "v=spf1 ip6:2001:4860:4000::/36 ip6:2404:6800:4000::/36 ip6:2607:f8b0:4000::/36"
            " ip6:2800:3f0:4000::/36 ip6:2a00:1450:4000::/36 ip6:2c0f:fb50:4000::/36 ~all",
        ),
        (
            "_netblocks3",
            "TXT",
            "v=spf1 ip4:172.217.0.0/19 ip4:172.217.32.0/20 ip4:172.217.128.0/19"
            " ip4:172.253.56.0/21 ip4:108.177.96.0/19 ip4:35.191.0.0/16 ip4:130.211.0.0/22 ~all",
        ),
    ],
    "protection.outlook.com": [
        (
            "spf",
            "TXT",
            "v=spf1 ip4:40.92.0.0/15 ip4:40.107.0.0/16 ip4:52.100.0.0/15 ip4:52.102.0.0/16"
            " ip4:104.47.0.0/17 ip6:2a01:111:f400::/48 ip6:2a01:111:f403::/49"
            " include:spfd.protection.outlook.com -all",
        ),
        (
            "spfd",
            "TXT",
            "v=spf1 ip4:51.4.72.0/24 ip4:51.5.72.0/24 ip6:2a01:4180:4051:0800::/64 -all",
        ),
    ],
    MAILGUN: [
        ("@", "TXT", "v=spf1 include:_spf.mailgun.org include:_spf.eu.mailgun.org ~all"),
        ("_spf", "TXT", "v=spf1 ip4:209.61.151.0/24 ip4:166.78.68.0/22 ip4:159.135.224.0/20 ~all"),
        ("_spf.eu", "TXT", "v=spf1 ip4:141.193.32.0/23 ip4:159.112.240.0/20 ~all"),
    ],
    "mandrillapp.com": [("spf", "TXT", "v=spf1 ip4:198.2.128.0/18 ip4:148.105.8.0/21 ~all")],
    "zendesk.com": [("mail", "TXT", "v=spf1 ip4:192.161.144.0/20 ip4:185.12.80.0/22 ~all")],
    LAB: [
        ("mail", "A", "192.0.2.25"),
        ("many-mx", "TXT", "v=spf1 mx -all"),
        *[("many-mx", "MX", f"{n} mx{n}.{LAB}.") for n in range(1, 12)],
        *[("ten-mx", "MX", f"{n} mx{n}.{LAB}.") for n in range(1, 11)],
        ("redirected", "TXT", f"v=spf1 redirect={LAB_SPF}"),
        ("_spf", "TXT", f"v=spf1 include:{SENDGRID} include:{MAILGUN} ~all"),
        *_deep,
        *[(f"deep{n}", "A", f"192.0.2.{n}") for n in (1, 2, 3, 4)],
        *[(f"deep{n}", "MX", f"10 {MAIL_HOST}.") for n in (1, 2, 3, 4)],
        ("loop-a", "TXT", f"v=spf1 include:{LOOP_B} -all"),
        ("loop-b", "TXT", f"v=spf1 ip4:192.0.2.8 include:{LOOP_A} -all"),
        ("nospf", "TXT", "google-site-verification=abc123"),
        ("twospf", "TXT", "v=spf1 ip4:192.0.2.1 -all"),
        ("twospf", "TXT", "v=spf1 ip4:192.0.2.2 -all"),
        ("empty", "TXT", "this name exists but has no address or MX"),
    ],
    REPORT_DEST: [
        ("client.example._report._dmarc", "TXT", "v=DMARC1"),
        ("other.example._report._dmarc", "TXT", "v=spf1 -all"),  # a value, but not DMARC1
    ],
    REPORT_WILDCARD_DEST: [("*._report._dmarc", "TXT", "v=DMARC1")],
}

# What `include:<name>` costs in total, itself included (RFC 7208 4.6.4), counted by hand from
# SENDER_ZONES; the form of the sender catalog that estimate_from_catalog() takes. The figures for
# real senders match policy/senders.yaml.
SENDER_COSTS: dict[str, int] = {
    f"include:{SENDGRID}": 1,  # ip4 and ~all only
    f"include:{GOOGLE}": 4,  # itself + _netblocks, _netblocks2, _netblocks3
    f"include:{OUTLOOK}": 2,  # itself + spfd
    f"include:{MAILGUN}": 3,  # itself + _spf.mailgun.org + _spf.eu.mailgun.org
    f"include:{MANDRILL}": 1,
    f"include:{ZENDESK}": 1,
    f"include:{LAB_SPF}": 5,  # itself + sendgrid (1) + mailgun (3)
    f"include:{DEEP3}": 6,  # itself + a + mx + include:deep4 + a + mx
}


@pytest.fixture(scope="session", autouse=True)
def private_state_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The session's XDG_STATE_HOME, a temporary directory: what dmarcops keeps per user (the
    record index's HMAC key, crash logs) is written there, never into the real ~/.local/state of
    whoever runs the tests. A test that sets its own (monkeypatch.setenv, a CliRunner env) wins
    for its duration; subprocesses inherit this one."""
    state = tmp_path_factory.mktemp("state")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("XDG_STATE_HOME", str(state))
        yield state


@pytest.fixture(scope="session")
def sender_dns() -> Iterator[NamedServer]:
    """One named for the whole session serving SENDER_ZONES. Tests must not update it
    (use `named_factory` for zones a test changes)."""
    server = NamedServer(SENDER_ZONES)
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def sender_nameservers(sender_dns: NamedServer) -> Nameservers:
    return Nameservers((sender_dns.host,), port=sender_dns.port, timeout=2.0)


@pytest.fixture
def sender_resolver(sender_nameservers: Nameservers) -> dns.resolver.Resolver:
    """A fresh resolver per test (they are cheap; no state leaks between tests)."""
    return make_resolver(sender_nameservers)


@pytest.fixture
def named_factory() -> Iterator[Callable[[Mapping[str, ZoneSpec]], NamedServer]]:
    """Start extra servers: `server = named_factory({"example.com": [("@", "TXT", "...")]})`.
    All are stopped at teardown."""
    servers: list[NamedServer] = []

    def start(zones: Mapping[str, ZoneSpec]) -> NamedServer:
        server = NamedServer(zones)
        servers.append(server)
        server.start()
        return server

    yield start
    for server in servers:
        server.stop()


# The client-zone server of the end-to-end plan tests, shared with the apply tests.
from test_plan_named import client_dns  # noqa: E402, F401


@pytest.fixture
def system_clock(monkeypatch: pytest.MonkeyPatch) -> Callable[[datetime], None]:
    """Set the machine's clock as mutating commands see it (pipeline.clock.system_now)."""
    import pipeline.clock

    def set_clock(at: datetime) -> None:
        monkeypatch.setattr(pipeline.clock, "system_now", lambda: at.astimezone(UTC))

    return set_clock


# The hosted providers' servers (moto for Route 53, PowerDNS) and the `live` parametrisation.
from hosted_fixtures import (  # noqa: E402, F401
    live,
    moto_server,
    pdns_live,
    pdns_server,
    route53_live,
    throttling,
)
