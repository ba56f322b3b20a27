"""NS delegations of sub-domains (issue 13 item 6) against a real named: planned, classified
(a delegation change is medium; removing a delegated sending sub-domain is high), applied and
verified by asking the parent's server for the referral; the apex NS is never touched."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path

import pytest
from dns_server import NamedServer, ZoneSpec
from portfolio import REPO, write
from signing import genesis

from pipeline.apply.execute import apply_plan
from pipeline.diff.context import ZoneContext
from pipeline.diff.kinds import kind_of
from pipeline.diff.ns import validate
from pipeline.errors import InputError
from pipeline.live.dns import Nameservers
from pipeline.load.portfolio import load_portfolio
from pipeline.load.zones import check_zone_file
from pipeline.model import RecordKind, RiskLevel, Severity
from pipeline.plan.build import PlanOptions, make_plan
from pipeline.plan.items import Plan

AT = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
ZONE = "deleg.example"
VENDOR = ("ns1.reports-vendor.example.", "ns2.reports-vendor.example.")
ESP = ("ns1.esp.example.", "ns2.esp.example.")
NEWS = ("ns1.news-platform.example.", "ns2.news-platform.example.")

LIVE: dict[str, ZoneSpec] = {
    ZONE: [
        ("@", "TXT", "v=spf1 include:_spf.google.com -all"),
        ("_dmarc", "TXT", "v=DMARC1; p=reject; rua=mailto:dmarc@reports.deleg.example"),
        *[("reports", "NS", ns) for ns in VENDOR],
        *[("mail", "NS", ns) for ns in ESP],
        ("www", "A", "192.0.2.10"),
    ]
}

HEAD = """---
'':
  ttl: 300
  type: TXT
  value: v=spf1 include:_spf.google.com -all
_dmarc:
  ttl: 300
  type: TXT
  value: v=DMARC1\\; p=reject\\; rua=mailto:dmarc@reports.deleg.example
"""


def ns_block(name: str, hosts: tuple[str, ...]) -> str:
    values = "".join(f"  - {h}\n" for h in hosts)
    return f"{name}:\n  ttl: 300\n  type: NS\n  values:\n{values}"


@pytest.fixture
def deleg_dns(
    named_factory: Callable[[Mapping[str, ZoneSpec]], NamedServer],
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[NamedServer]:
    server = named_factory(LIVE)
    for name, value in server.client_env().items():
        monkeypatch.setenv(name, value)
    yield server


def make_repo(root: Path, zone_text: str) -> Path:
    for part in ("schemas", "risk-rules.yaml", "senders.yaml", "roster.yaml"):
        src = REPO / "policy" / part
        if src.is_dir():
            shutil.copytree(src, root / "policy" / part)
        else:
            write(root / "policy" / part, src.read_text())
    write(
        root / "policy/providers.yaml",
        """providers:
  bind:
    class: octodns_bind.Rfc2136Provider
    host: env/TEST_BIND_HOST
    port: env/TEST_BIND_PORT
    key_name: env/TEST_BIND_KEY_NAME
    key_secret: env/TEST_BIND_KEY_SECRET
    key_algorithm: hmac-sha256
""",
    )
    write(
        root / "policy/clients/deleg.yaml",
        f"name: Deleg Corp\nprovider: bind\ndomains: [{ZONE}]\n"
        f"ns_delegations:\n  {ZONE}:\n    reports: reporting\n    mail: sending\n",
    )
    write(root / f"zones/deleg/{ZONE}.yaml", zone_text)
    genesis(root)
    return root


def plan_of(repo: Path, sender_dns: NamedServer) -> Plan:
    ns = Nameservers(("127.0.0.1",), sender_dns.port, 2.0)
    return make_plan(load_portfolio(repo), PlanOptions(now=AT, nameservers=ns))


def served_ns(server: NamedServer, name: str) -> list[str]:
    """The NS set the parent's server hands out for `name`: a referral (authority section) for
    a delegated sub-domain, the answer for the apex."""
    response = server.query(name, "NS")
    return sorted(
        rdata.to_text()
        for section in (response.answer, response.authority)
        for rrset in section
        if rrset.rdtype == 2 and rrset.name.to_text() == name
        for rdata in rrset
    )


def test_only_sub_domain_ns_is_owned() -> None:
    assert kind_of("reports", "NS") is RecordKind.NS_DELEGATION
    assert kind_of("a.b", "NS") is RecordKind.NS_DELEGATION
    assert kind_of("", "NS") is None  # the apex NS set is the zone's own


def test_a_zone_file_with_the_apex_ns_is_refused(tmp_path: Path) -> None:
    repo = make_repo(tmp_path, HEAD + "'':\n  type: NS\n  values: [ns1.other.example.]\n")
    zone_file = load_portfolio(repo).zone_files[0]
    problems = check_zone_file(zone_file, repo / "policy/schemas/zone.schema.json")
    assert problems and all(isinstance(p, InputError) for p in problems)


def test_delegations_are_planned_classified_applied_and_verified(
    tmp_path: Path, deleg_dns: NamedServer, sender_dns: NamedServer
) -> None:
    # In step with live: nothing to plan.
    repo = make_repo(tmp_path, HEAD + ns_block("mail", ESP) + ns_block("reports", VENDOR))
    assert plan_of(repo, sender_dns).items == ()

    # Add a delegation, move one to other nameservers, drop the sending one.
    write(
        repo / f"zones/deleg/{ZONE}.yaml",
        HEAD
        + ns_block("news", NEWS)
        + ns_block("reports", ("ns1.new-vendor.example.", *VENDOR[1:])),
    )
    plan = plan_of(repo, sender_dns)
    assert not plan.failed_zones, plan.failed_zones
    items = {i.name: i for i in plan.items}
    assert set(items) == {"news", "reports", "mail"}
    news, reports, mail = items["news"], items["reports"], items["mail"]
    assert (news.kind, news.action, news.risk) == (
        RecordKind.NS_DELEGATION,
        "create",
        RiskLevel.MEDIUM,
    )
    assert "[ns-delegation-added:" in news.reasons[0]
    assert (reports.action, reports.risk) == ("update", RiskLevel.MEDIUM)
    assert "[ns-delegation-changed:" in reports.reasons[0]
    assert (mail.action, mail.risk) == ("delete", RiskLevel.HIGH)
    assert "[ns-delegation-removed-sending:" in mail.reasons[0]
    assert {str(f) for f in mail.facts} == {"ns.delegation -ns1.esp.example | ns2.esp.example"}
    assert mail.facts[0].attrs["purpose"] == "sending"

    results = apply_plan(plan)
    assert [(r.zone, r.status) for r in results] == [(ZONE, "applied")]
    checks = {c.name: c for c in results[0].checks}
    assert {n: (c.status, c.method) for n, c in checks.items()} == {
        "news": ("verified", "dns"),
        "reports": ("verified", "dns"),
        "mail": ("verified", "dns"),
    }
    assert served_ns(deleg_dns, f"news.{ZONE}.") == sorted(NEWS)
    assert served_ns(deleg_dns, f"reports.{ZONE}.") == sorted(
        ["ns1.new-vendor.example.", VENDOR[1]]
    )
    assert served_ns(deleg_dns, f"mail.{ZONE}.") == []
    assert served_ns(deleg_dns, f"{ZONE}.") == ["ns1.example.net."]  # the apex NS as it was
    assert plan_of(repo, sender_dns).items == ()


def test_removing_a_reporting_delegation_is_medium_and_an_unnamed_one_high(
    tmp_path: Path, deleg_dns: NamedServer, sender_dns: NamedServer
) -> None:
    repo = make_repo(tmp_path, HEAD)  # both delegations gone from the zone file
    write(
        repo / "policy/clients/deleg.yaml",
        f"name: Deleg Corp\nprovider: bind\ndomains: [{ZONE}]\n"
        f"ns_delegations:\n  {ZONE}:\n    reports: reporting\n",
    )
    items = {i.name: i for i in plan_of(repo, sender_dns).items}
    assert items["reports"].risk is RiskLevel.MEDIUM
    assert "[ns-delegation-removed-reporting:" in items["reports"].reasons[0]
    # `mail` is not named in the profile: when in doubt, it counts as a sending sub-domain.
    assert items["mail"].risk is RiskLevel.HIGH
    assert items["mail"].facts[0].attrs["purpose"] == "unknown"


def test_delegation_findings() -> None:
    ctx = ZoneContext(
        zone=ZONE,
        desired={("reports", "NS"): VENDOR, ("_dmarc.reports", "TXT"): ("v=DMARC1; p=none",)},
    )
    codes = {(f.code, f.severity) for f in validate("reports", "NS", VENDOR, ctx)}
    assert codes == {("N3", Severity.ERROR)}  # a record below the cut is never served
    single = validate("news", "NS", ("192.0.2.53",), ZoneContext(zone=ZONE))
    assert {(f.code, f.severity) for f in single} == {
        ("N1", Severity.ERROR),
        ("N2", Severity.WARNING),
    }
    glue = validate(
        "news", "NS", ("ns1.news.deleg.example.", "ns2.other.example."), ZoneContext(zone=ZONE)
    )
    assert [f.code for f in glue] == ["N4"]
