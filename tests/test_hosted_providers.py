"""Route 53 (moto's server) and PowerDNS (a real pdns_server) as first-class providers.

The BIND lifecycle (tests/test_lifecycle.py) again on each: request, plan, approve, apply, verify,
close, rollback; a plan made stale behind dmarcops's back; TXT values over 255 characters; Route
53's throttling, private zones and zones named by id; PowerDNS refusing its API key or not running.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from aws_server import Route53Zones, ThrottlingProxy
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from dns_server import NamedServer
from hosted_fixtures import Live, PdnsLive, Route53Live, use_provider
from signing import reseal
from test_apply_named import plan_for
from test_lifecycle import KEYS, TUESDAY, apply, approve, cli, plan, record, request
from test_plan_named import LIVE, make_repo

from pipeline.apply.execute import apply_plan

BEFORE_DMARC = "v=DMARC1; p=none; rua=mailto:dmarc@alpha.example"
AFTER_DMARC = "v=DMARC1; p=quarantine; rua=mailto:dmarc@alpha.example"


def seed(live: Live, *zones: str) -> None:
    for zone in zones:
        live.create(zone, [(n, t, v) for n, t, v, *_ in LIVE[zone]])  # type: ignore[misc]


@pytest.fixture
def repo(tmp_path: Path, live: Live) -> Path:
    """The lifecycle tests' repository with client alpha on the provider under test."""
    root = make_repo(tmp_path / "repo", with_requests=False)
    use_provider(root, "alpha", "hosted", live.provider_entry("hosted"))
    seed(live, "alpha.example", "beta.example")
    return root


def test_whole_lifecycle(repo: Path, live: Live, sender_dns: NamedServer) -> None:
    request(repo, "CR-0001-alpha", ["alpha.example"])
    plan_path, plan_hash = plan(repo, sender_dns)
    assert approve(repo, plan_path, "CR-0001-alpha", "mhara").exit_code == 0
    result = apply(repo, plan_path, sender_dns, "2026-12-01T10:05:00Z")
    assert result.exit_code == 0, result.output
    assert "alpha.example: applied, 2/2 verified" in result.stdout
    assert live.served("alpha.example", "_dmarc") == [AFTER_DMARC]
    # What the pipeline does not own is as it was.
    assert live.served("alpha.example", "www", "A") == ["192.0.2.2"]
    assert live.served("alpha.example", "mail") == ["some-other-verification=abc"]

    rec = record(repo, "2026-0001")
    assert rec["plan_hash"] == plan_hash
    assert {v["status"] for v in rec["verification"]} == {"verified"}
    details = " ".join(v["detail"] for v in rec["verification"])
    if live.kind == "route53":  # GetChange INSYNC, then the records read back
        assert "INSYNC" in details and "read back through the provider" in details
    else:  # PowerDNS's own DNS server answered, not its API
        assert "dns: 127.0.0.1:" in details and "serves the new values" in details

    closed = cli(
        repo, "close", "2026-0001", "--outcome", "accepted", "--key", str(KEYS / "jchen.pem"), "--at",
        "2026-12-01T19:00:00Z", "--without-evidence", "no aggregate reports in this test",
    )  # fmt: skip
    assert closed.exit_code == 0, closed.output
    assert record(repo, "2026-0001")["sealed"] is True
    assert cli(repo, "audit", "verify", "--at", "2026-12-01T19:00:00Z").exit_code == 0
    # Nothing left to do: the values read back equal the desired ones (no perpetual diff).
    again = cli(repo, "plan", "--format", "json", "--zone", "alpha.example",
                "--nameserver", f"127.0.0.1:{sender_dns.port}")  # fmt: skip
    assert json.loads(again.stdout)["changes"] == []


def test_rollback_restores_the_before_state(
    repo: Path, live: Live, sender_dns: NamedServer
) -> None:
    request(repo, "CR-0001-alpha", ["alpha.example"])
    plan_path, _ = plan(repo, sender_dns)
    assert approve(repo, plan_path, "CR-0001-alpha", "mhara").exit_code == 0
    assert apply(repo, plan_path, sender_dns).exit_code == 0
    assert live.served("alpha.example", "_dmarc") == [AFTER_DMARC]
    result = cli(
        repo, "rollback", "2026-0001", "--as", "jchen", "--key", str(KEYS / "jchen.pem"),
        "--reason", "quarantine is catching the CRM's mail", "--at", "2026-12-01T11:00:00",
        "--nameserver", f"127.0.0.1:{sender_dns.port}",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert live.served("alpha.example", "_dmarc") == [BEFORE_DMARC]
    back = record(repo, "2026-0002")
    assert back["change_type"] == "Emergency rollback"
    assert {v["status"] for v in back["verification"]} == {"verified"}
    assert "2026-0001" in back["references"]


def test_stale_plan_is_refused(repo: Path, live: Live, sender_dns: NamedServer) -> None:
    request(repo, "CR-0001-alpha", ["alpha.example"])
    plan_path, _ = plan(repo, sender_dns)
    assert approve(repo, plan_path, "CR-0001-alpha", "mhara").exit_code == 0
    live.update("alpha.example", "_dmarc", "TXT", ["v=DMARC1; p=none; pct=5"])  # a console edit
    result = apply(repo, plan_path, sender_dns)
    assert result.exit_code == 2
    assert "stale: live DNS changed since approval" in result.stderr
    assert live.served("alpha.example", "_dmarc") == ["v=DMARC1; p=none; pct=5"]
    assert not list((repo / "changes").glob("records/*.json"))


def _dkim_value() -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    der = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    import base64

    return "v=DKIM1; k=rsa; p=" + base64.b64encode(der).decode()


AT = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)


def test_txt_over_255_characters_is_split_and_joined(
    repo: Path, live: Live, sender_dns: NamedServer
) -> None:
    value = _dkim_value()
    assert len(value) > 255 * 1.5
    zone_file = repo / "zones" / "alpha" / "alpha.example.yaml"
    zone_file.write_text(
        zone_file.read_text()
        + "s2026._domainkey:\n  ttl: 300\n  type: TXT\n  value: "
        + value.replace(";", "\\;")
        + "\n"
    )
    plan = plan_for(repo, sender_dns, clients=("alpha",), zones=("alpha.example",))
    results = apply_plan(plan, verify_timeout=5.0)  # type: ignore[arg-type]
    assert [(r.zone, r.status, r.verified) for r in results] == [("alpha.example", "applied", 3)]
    assert live.served("alpha.example", "s2026._domainkey") == [value]
    if isinstance(live, Route53Live):
        # Route 53 holds it as quoted strings of at most 255 characters each.
        raw = live.zones.raw("alpha.example", "s2026._domainkey")
        assert len(raw) == 1 and raw[0].count('" "') == 1
    elif isinstance(live, PdnsLive):
        # PowerDNS stores one long string and splits it on the wire.
        assert live.server.strings("alpha.example", "s2026._domainkey") == [[255, len(value) - 255]]
    again = plan_for(repo, sender_dns, clients=("alpha",), zones=("alpha.example",))
    assert again.items == ()  # type: ignore[attr-defined]


# -- Route 53 only ------------------------------------------------------------------------------


@pytest.fixture
def r53_repo(tmp_path: Path, route53_live: Route53Live) -> Path:
    root = make_repo(tmp_path / "repo", with_requests=False)
    use_provider(root, "alpha", "r53", route53_live.provider_entry("r53"))
    return root


def test_route53_throttling_is_retried_with_backoff(
    r53_repo: Path,
    route53_live: Route53Live,
    throttling: ThrottlingProxy,
    sender_dns: NamedServer,
) -> None:
    seed(route53_live, "alpha.example")
    plan = plan_for(r53_repo, sender_dns, clients=("alpha",), zones=("alpha.example",))
    throttling.throttle(["Throttling", "PriorRequestNotComplete"])
    results = apply_plan(plan, verify_timeout=5.0)  # type: ignore[arg-type]
    assert [(r.zone, r.status, r.verified) for r in results] == [("alpha.example", "applied", 2)]
    assert throttling.throttled == ["Throttling", "PriorRequestNotComplete"]
    assert throttling.passed == 1  # one change batch reached Route 53, once
    assert route53_live.served("alpha.example", "_dmarc") == [AFTER_DMARC]


def test_route53_throttling_past_the_retries_fails_the_zone_and_writes_nothing(
    r53_repo: Path,
    route53_live: Route53Live,
    throttling: ThrottlingProxy,
    sender_dns: NamedServer,
) -> None:
    seed(route53_live, "alpha.example")
    plan = plan_for(r53_repo, sender_dns, clients=("alpha",), zones=("alpha.example",))
    throttling.throttle(["Throttling"] * 10)
    results = apply_plan(plan, verify_timeout=2.0)  # type: ignore[arg-type]
    assert [(r.zone, r.status) for r in results] == [("alpha.example", "failed")]
    assert "Throttling" in results[0].error and "max retries" in results[0].error
    # botocore's client_max_attempts counts retries: 2 in the entry, so 3 requests in all.
    assert throttling.throttled == ["Throttling"] * 3
    assert throttling.passed == 0
    assert {c.status for c in results[0].checks} == {"mismatch"}  # read back: nothing changed
    assert route53_live.served("alpha.example", "_dmarc") == [BEFORE_DMARC]


def test_route53_private_zone_is_refused(
    r53_repo: Path, route53_live: Route53Live, sender_dns: NamedServer
) -> None:
    route53_live.zones.create("alpha.example", [("_dmarc", "TXT", BEFORE_DMARC)], private=True)
    result = cli(r53_repo, "plan", "--zone", "alpha.example", "--at", TUESDAY,
                 "--nameserver", f"127.0.0.1:{sender_dns.port}")  # fmt: skip
    assert result.exit_code == 1
    assert "private hosted zone" in result.output
    assert "Traceback" not in result.output
    # A public zone of the same name beside it is the one managed; the private one is untouched.
    seed(route53_live, "alpha.example")
    request(r53_repo, "CR-0001-alpha", ["alpha.example"])
    out, _ = plan(r53_repo, sender_dns, TUESDAY, "alpha.example")
    assert json.loads(out.read_text())["changes"]


def test_route53_zone_named_by_id_and_ambiguous_names(
    r53_repo: Path, route53_live: Route53Live, sender_dns: NamedServer
) -> None:
    seed(route53_live, "alpha.example")
    first = route53_live.zones.ids["alpha.example"]
    decoy = Route53Zones(route53_live.zones.endpoint)
    decoy.create("alpha.example", [("_dmarc", "TXT", "v=DMARC1; p=reject")])
    result = cli(r53_repo, "plan", "--zone", "alpha.example", "--at", TUESDAY,
                 "--nameserver", f"127.0.0.1:{sender_dns.port}")  # fmt: skip
    assert result.exit_code == 1
    assert "2 public hosted zones named alpha.example." in result.output
    providers = r53_repo / "policy" / "providers.yaml"
    providers.write_text(
        providers.read_text() + f"    hosted_zones:\n      alpha.example: {first}\n"
    )
    reseal(r53_repo)  # the pin counts once a lead has sealed it
    request(r53_repo, "CR-0001-alpha", ["alpha.example"])
    out, _ = plan(r53_repo, sender_dns, TUESDAY, "alpha.example")
    dmarc = [c for c in json.loads(out.read_text())["changes"] if c["name"] == "_dmarc"]
    assert dmarc[0]["before"] == [BEFORE_DMARC]  # the pinned zone's, not the decoy's p=reject


def test_route53_missing_zone_is_refused_never_created(
    r53_repo: Path, route53_live: Route53Live, sender_dns: NamedServer
) -> None:
    result = cli(r53_repo, "plan", "--zone", "alpha.example", "--at", TUESDAY,
                 "--nameserver", f"127.0.0.1:{sender_dns.port}")  # fmt: skip
    assert result.exit_code == 1
    assert "Route 53 has no hosted zone alpha.example.; dmarcops never creates zones" in (
        result.output
    )
    assert route53_live.zones.client.list_hosted_zones()["HostedZones"] == []


def test_route53_without_credentials_is_a_clear_error(
    r53_repo: Path,
    route53_live: Route53Live,
    sender_dns: NamedServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seed(route53_live, "alpha.example")
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    result = cli(r53_repo, "plan", "--zone", "alpha.example", "--at", TUESDAY,
                 "--nameserver", f"127.0.0.1:{sender_dns.port}")  # fmt: skip
    assert result.exit_code == 1
    assert "Unable to locate credentials" in result.output
    assert "standard AWS chain" in result.output


@pytest.mark.parametrize(
    ("key", "value"),
    [("secret_access_key", "wJalrXUtnFEMI/K7MDENG"), ("api_key", "s3cr3t-in-the-repo")],
)
def test_credentials_written_in_providers_yaml_are_refused(
    r53_repo: Path, key: str, value: str
) -> None:
    providers = r53_repo / "policy" / "providers.yaml"
    providers.write_text(providers.read_text() + f"    {key}: {value}\n")
    result = cli(r53_repo, "validate")
    assert result.exit_code == 1
    assert f"providers.yaml:{len(providers.read_text().splitlines())}" in result.output
    assert f"{key} is written in the file" in result.output
    assert value not in result.output


# -- PowerDNS only ------------------------------------------------------------------------------


def test_powerdns_wrong_api_key_and_server_down_are_clear_errors(
    tmp_path: Path,
    pdns_live: PdnsLive,
    sender_dns: NamedServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    root = make_repo(tmp_path / "repo", with_requests=False)
    use_provider(root, "alpha", "pdns", pdns_live.provider_entry("pdns"))
    seed(pdns_live, "alpha.example")
    monkeypatch.setenv("TEST_PDNS_API_KEY", "not-the-key")
    refused = cli(root, "plan", "--zone", "alpha.example", "--at", TUESDAY,
                  "--nameserver", f"127.0.0.1:{sender_dns.port}")  # fmt: skip
    assert refused.exit_code == 1
    assert "refused the API key (HTTP 401)" in refused.output
    monkeypatch.setenv("TEST_PDNS_API_KEY", pdns_live.server.api_key)
    pdns_live.server.stop(keep=True)
    down = cli(root, "plan", "--zone", "alpha.example", "--at", TUESDAY,
               "--nameserver", f"127.0.0.1:{sender_dns.port}")  # fmt: skip
    assert down.exit_code == 1
    assert "the provider's API did not answer" in down.output
    assert "Traceback" not in down.output


def test_powerdns_missing_zone_is_refused_never_created(
    tmp_path: Path, pdns_live: PdnsLive, sender_dns: NamedServer
) -> None:
    root = make_repo(tmp_path / "repo", with_requests=False)
    use_provider(root, "alpha", "pdns", pdns_live.provider_entry("pdns"))
    result = cli(root, "plan", "--zone", "alpha.example", "--at", TUESDAY,
                 "--nameserver", f"127.0.0.1:{sender_dns.port}")  # fmt: skip
    assert result.exit_code == 1
    assert "has no zone alpha.example.; dmarcops never creates zones" in result.output
    assert pdns_live.server.request("GET", "zones") == []


def test_dmarcops_provider_keys_are_checked_with_their_line(r53_repo: Path) -> None:
    providers = r53_repo / "policy" / "providers.yaml"
    providers.write_text(providers.read_text() + "    hosted_zones: [alpha.example]\n")
    result = cli(r53_repo, "validate")
    assert result.exit_code == 1
    assert f"providers.yaml:{len(providers.read_text().splitlines())}" in result.output
    assert "Traceback" not in result.output


def test_route53_value_over_its_limit_is_refused_at_plan_time(
    r53_repo: Path, route53_live: Route53Live, sender_dns: NamedServer
) -> None:
    """moto takes any length; Route 53 refuses a value over 4000 characters, so dmarcops refuses
    it first, in the plan, instead of failing the apply."""
    seed(route53_live, "alpha.example")
    zone_file = r53_repo / "zones" / "alpha" / "alpha.example.yaml"
    zone_file.write_text(
        zone_file.read_text()
        + "s2026._domainkey:\n  ttl: 300\n  type: TXT\n  value: v=DKIM1\\; k=rsa\\; p="
        + "A" * 3950
        + "\n"
    )
    result = cli(r53_repo, "plan", "--zone", "alpha.example", "--at", TUESDAY,
                 "--nameserver", f"127.0.0.1:{sender_dns.port}")  # fmt: skip
    assert result.exit_code == 1
    assert "over Route 53's limit of 4000" in result.output


def test_a_missing_server_fails_never_skips(monkeypatch: pytest.MonkeyPatch) -> None:
    """The fixtures raise, so a machine without pdns_server or moto fails these tests."""
    import importlib.util

    import aws_server
    import pdns_server

    monkeypatch.setattr(pdns_server.shutil, "which", lambda name: None)
    monkeypatch.setattr(pdns_server, "PDNS_FALLBACKS", ("/nonexistent/pdns_server",))
    with pytest.raises(pdns_server.PdnsNotFoundError, match="do not skip"):
        pdns_server.PdnsServer()
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(aws_server.MotoNotFoundError, match="do not skip"):
        aws_server.MotoServer()
