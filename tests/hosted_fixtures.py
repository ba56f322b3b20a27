"""Fixtures for the hosted providers: moto's server standing in for Route 53, a real PowerDNS.

Both servers run once per session on loopback; each test starts from empty backends (moto reset,
every PowerDNS zone deleted). `live` is parametrised over the two providers, so a test written
once runs against each; `Live` is what a test needs of a provider whatever it is.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Protocol

import pytest
from aws_server import MotoServer, Route53Zones, ThrottlingProxy
from pdns_server import PdnsServer
from signing import reseal

# Recognisable, random per run: the hygiene test greps every output and file for them.
AWS_KEY_ID = "AKIA" + secrets.token_hex(8).upper()
AWS_SECRET = "dmarcops-aws-secret-" + secrets.token_hex(12)


class Live(Protocol):
    kind: str

    def create(self, zone: str, records: Sequence[tuple[str, str, str]]) -> None: ...
    def update(self, zone: str, name: str, rtype: str, values: Sequence[str]) -> None: ...
    def served(self, zone: str, name: str, rtype: str = "TXT") -> list[str]: ...
    def provider_entry(self, name: str) -> str: ...


class Route53Live:
    kind = "route53"

    def __init__(self, endpoint: str) -> None:
        self.zones = Route53Zones(endpoint)

    def create(self, zone: str, records: Sequence[tuple[str, str, str]]) -> None:
        self.zones.create(zone, records)

    def update(self, zone: str, name: str, rtype: str, values: Sequence[str]) -> None:
        self.zones.update(zone, name, rtype, values)

    def served(self, zone: str, name: str, rtype: str = "TXT") -> list[str]:
        return self.zones.served(zone, name, rtype)

    def provider_entry(self, name: str) -> str:
        # No credentials at all: boto3's standard chain (the AWS_* variables here). Two retries
        # keep the throttling tests' backoff short.
        return (
            f"  {name}:\n    class: octodns_route53.Route53Provider\n    client_max_attempts: 2\n"
        )


class PdnsLive:
    kind = "powerdns"

    def __init__(self, server: PdnsServer) -> None:
        self.server = server

    def create(self, zone: str, records: Sequence[tuple[str, str, str]]) -> None:
        self.server.create(zone, records)

    def update(self, zone: str, name: str, rtype: str, values: Sequence[str]) -> None:
        self.server.update(zone, name, rtype, values)

    def served(self, zone: str, name: str, rtype: str = "TXT") -> list[str]:
        return self.server.served(zone, name, rtype)

    def provider_entry(self, name: str) -> str:
        return self.server.provider_entry(name)


@pytest.fixture(scope="session")
def moto_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoServer]:
    server = MotoServer()
    server.start(tmp_path_factory.mktemp("moto") / "moto.log")
    yield server
    server.stop()


@pytest.fixture(scope="session")
def pdns_server() -> Iterator[PdnsServer]:
    server = PdnsServer()
    server.start()
    yield server
    server.stop()


def aws_environment(monkeypatch: pytest.MonkeyPatch, endpoint: str) -> None:
    """The standard chain, pointed at moto; no file on this machine can leak in."""
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ROLE_ARN", "AWS_RETRY_MODE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", AWS_KEY_ID)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", AWS_SECRET)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent/dmarcops-aws-config")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/dmarcops-aws-credentials")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


@pytest.fixture
def route53_live(moto_server: MotoServer, monkeypatch: pytest.MonkeyPatch) -> Route53Live:
    moto_server.reset()
    aws_environment(monkeypatch, moto_server.url)
    return Route53Live(moto_server.url)


@pytest.fixture
def throttling(
    moto_server: MotoServer, monkeypatch: pytest.MonkeyPatch
) -> Iterator[ThrottlingProxy]:
    """Route 53 through a proxy that throttles on request (set before route53_live's env)."""
    with ThrottlingProxy(moto_server.port) as proxy:
        monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.url)
        yield proxy


@pytest.fixture
def pdns_live(pdns_server: PdnsServer, monkeypatch: pytest.MonkeyPatch) -> PdnsLive:
    pdns_server.start()  # a test may have stopped it
    for zone in pdns_server.request("GET", "zones"):
        pdns_server.request("DELETE", f"zones/{zone['id']}")
    monkeypatch.setenv("TEST_PDNS_API_PORT", str(pdns_server.api_port))
    monkeypatch.setenv("TEST_PDNS_API_KEY", pdns_server.api_key)
    monkeypatch.setenv("TEST_PDNS_DNS", f"127.0.0.1:{pdns_server.port}")
    return PdnsLive(pdns_server)


@pytest.fixture(params=["route53", "powerdns"])
def live(request: pytest.FixtureRequest) -> Live:
    fixture = "route53_live" if request.param == "route53" else "pdns_live"
    found: Live = request.getfixturevalue(fixture)
    return found


def use_provider(repo: Path, client: str, name: str, entry: str) -> None:
    """Add `entry` to policy/providers.yaml and move `client` onto it."""
    providers = repo / "policy" / "providers.yaml"
    providers.write_text(providers.read_text().rstrip("\n") + "\n" + entry)
    profile = repo / "policy" / "clients" / f"{client}.yaml"
    lines = [
        f"provider: {name}" if line.startswith("provider:") else line
        for line in profile.read_text().splitlines()
    ]
    profile.write_text("\n".join(lines) + "\n")
    reseal(repo)  # setup: the provider move as a lead sealed it
