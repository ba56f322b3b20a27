"""One portfolio on three providers: alpha on BIND, gamma on Route 53 (moto), delta on PowerDNS.

Planned and applied in one run; a provider that stops answering or starts refusing credentials in
the middle fails its own clients only, and each change record says exactly what reached which
provider. Then the credentials hygiene check: no secret of any provider in any output, log,
record, journal, ledger, plan file or crash log.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from aws_server import ThrottlingProxy
from click.testing import Result
from dns_server import NamedServer
from hosted_fixtures import AWS_SECRET, PdnsLive, Route53Live, use_provider
from portfolio import write
from signing import JCHEN, sign_if_valid
from test_apply_named import served
from test_lifecycle import RATIONALE, apply, cli, plan, request
from test_plan_named import LIVE, make_repo

from pipeline.apply.run import ApplyOptions, run_apply
from pipeline.live.dns import Nameservers
from pipeline.load.portfolio import load_portfolio

SATURDAY = "2026-12-05T03:00:00Z"
EMERGENCY = ("--emergency", "--reason", "mail to three clients is bouncing", "--incident", "INC-7")
DELTA_LIVE = [("@", "TXT", "v=spf1 include:_spf.google.com -all"),
              ("_dmarc", "TXT", "v=DMARC1; p=none; rua=mailto:dmarc@delta.example")]  # fmt: skip
DELTA_AFTER = "v=DMARC1; p=quarantine; rua=mailto:dmarc@delta.example"
GAMMA_SPF = "v=spf1 include:_spf.google.com include:sendgrid.net -all"
ALPHA_DMARC = "v=DMARC1; p=quarantine; rua=mailto:dmarc@alpha.example"


@pytest.fixture
def mixed(
    tmp_path: Path,
    client_dns: NamedServer,
    route53_live: Route53Live,
    pdns_live: PdnsLive,
) -> Path:
    repo = make_repo(tmp_path / "repo", gamma_provider="r53", with_requests=False)
    use_provider(repo, "gamma", "r53", route53_live.provider_entry("r53"))
    route53_live.create("gamma.example", [(n, t, v) for n, t, v, *_ in LIVE["gamma.example"]])  # type: ignore[misc]
    write(
        repo / "policy/clients/delta.yaml",
        "name: Delta Freight\nprovider: bind\ndomains: [delta.example]\n",
    )
    use_provider(repo, "delta", "pdns", pdns_live.provider_entry("pdns"))
    pdns_live.create("delta.example", DELTA_LIVE)
    write(
        repo / "zones/delta/delta.example.yaml",
        "---\n'':\n  ttl: 300\n  type: TXT\n  value: v=spf1 include:_spf.google.com -all\n"
        "_dmarc:\n  ttl: 300\n  type: TXT\n"
        "  value: v=DMARC1\\; p=quarantine\\; rua=mailto:dmarc@delta.example\n",
    )
    request(repo, "CR-0001-alpha", ["alpha.example"])
    for n, client, zone in ((2, "gamma", "gamma.example"), (3, "delta", "delta.example")):
        rid = f"CR-{n:04d}-{client}"
        write(
            repo / f"changes/requests/{rid}.yaml",
            json.dumps(
                {
                    "type": "other",
                    "client": client,
                    "covers": [zone],
                    "author": "jchen",
                    "rationale": RATIONALE,
                }
            ),
        )
        sign_if_valid(repo, rid)
    return repo


ZONES = ("alpha.example", "gamma.example", "delta.example")


def records(repo: Path) -> dict[str, dict[str, Any]]:
    out = {}
    for path in (repo / "changes" / "records").glob("*.json"):
        data = json.loads(path.read_text())
        out[data["client"]] = data
    return out


def test_three_providers_planned_and_applied_in_one_run(
    mixed: Path,
    client_dns: NamedServer,
    route53_live: Route53Live,
    pdns_live: PdnsLive,
    sender_dns: NamedServer,
) -> None:
    plan_path, _ = plan(mixed, sender_dns, SATURDAY, *ZONES)
    planned = json.loads(plan_path.read_text())
    assert {c["zone"] for c in planned["changes"]} == set(ZONES)
    result = apply(mixed, plan_path, sender_dns, SATURDAY, *EMERGENCY)
    assert result.exit_code == 0, result.output
    for zone in ZONES:
        assert f"{zone}: applied" in result.stdout
    by_client = records(mixed)
    assert sorted(by_client) == ["alpha", "delta", "gamma"]
    for rec in by_client.values():
        assert {v["status"] for v in rec["verification"]} == {"verified"}, rec["verification"]
    assert served(client_dns, "_dmarc.alpha.example.") == [ALPHA_DMARC]
    assert GAMMA_SPF in route53_live.served("gamma.example", "")
    assert pdns_live.served("delta.example", "_dmarc") == [DELTA_AFTER]


def test_providers_failing_mid_apply_fail_only_their_clients(
    mixed: Path,
    client_dns: NamedServer,
    route53_live: Route53Live,
    throttling: ThrottlingProxy,
    pdns_live: PdnsLive,
    sender_dns: NamedServer,
) -> None:
    """Route 53 starts refusing the credentials and PowerDNS goes down after the plan was made
    again under the locks; BIND's client is applied; the records say what reached whom."""
    plan_path, _ = plan(mixed, sender_dns, SATURDAY, *ZONES)

    def break_providers(zone: str) -> None:
        if zone == "gamma.example":
            throttling.throttle(["InvalidClientTokenId"] * 5)
        if zone == "delta.example":
            pdns_live.server.stop(keep=True)

    applied = run_apply(
        load_portfolio(mixed),
        ApplyOptions(
            plan_file=plan_path,
            by="jchen",
            now=datetime(2026, 12, 5, 3, 0, tzinfo=UTC),
            emergency_reason="mail to three clients is bouncing",
            incident="INC-7",
            nameservers=Nameservers(("127.0.0.1",), sender_dns.port, 2.0),
            verify_timeout=1.0,
            progress=break_providers,
            signer=JCHEN,
        ),
    )
    outcome = {
        r.client: [(z.zone, z.status.value, z.applied, z.error) for z in r.zone_results]
        for r in applied
    }
    assert outcome["alpha"] == [("alpha.example", "applied", 2, "")]
    (gamma,) = outcome["gamma"]
    assert gamma[:3] == ("gamma.example", "failed", 0)
    assert gamma[3].startswith("provider r53: ClientError: ") and "InvalidClientTokenId" in gamma[3]
    (delta,) = outcome["delta"]
    assert delta[:3] == ("delta.example", "failed", 0)
    assert delta[3].startswith("provider pdns: ConnectionError: ")
    assert "the provider's API did not answer" in delta[3]
    checks = {r.client: {v.status.value for v in r.verification} for r in applied}
    assert checks["alpha"] == {"verified"}
    assert checks["gamma"] == {"mismatch"}  # read back: Route 53 still holds the old values
    assert checks["delta"] == {"unverifiable"}  # its server is down: nothing can be asked
    assert throttling.passed == 0  # no change batch reached Route 53
    assert served(client_dns, "_dmarc.alpha.example.") == [ALPHA_DMARC]
    assert GAMMA_SPF not in route53_live.served("gamma.example", "")
    # The PowerDNS update never left this machine (connection refused), so the apply is settled:
    # no journal is left for `dmarcops recover`.
    assert not list((mixed / "changes").glob("*.journal*"))
    pdns_live.server.start()
    assert pdns_live.served("delta.example", "_dmarc") == [
        "v=DMARC1; p=none; rua=mailto:dmarc@delta.example"
    ]


def test_providers_down_when_the_apply_starts_leave_out_only_their_clients(
    mixed: Path,
    client_dns: NamedServer,
    route53_live: Route53Live,
    pdns_live: PdnsLive,
    sender_dns: NamedServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Between approval and apply, Route 53's credentials disappear and PowerDNS stops: the plan
    made again under the locks cannot read their zones, so their clients are left out whole
    (nothing sent), alpha on BIND is applied, and the same plan applies the rest later, once."""
    plan_path, _ = plan(mixed, sender_dns, SATURDAY, *ZONES)
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    pdns_live.server.stop(keep=True)
    partial = apply(mixed, plan_path, sender_dns, SATURDAY, *EMERGENCY)
    assert partial.exit_code == 1, partial.output
    assert "applied for alpha (change records 2026-0001); not for delta, gamma" in partial.stderr
    assert "nothing was sent to their providers" in partial.stderr
    assert "gamma.example: Unable to locate credentials" in partial.stderr
    assert "delta.example: " in partial.stderr and "did not answer" in partial.stderr
    assert "Traceback" not in partial.output
    assert sorted(records(mixed)) == ["alpha"]
    assert served(client_dns, "_dmarc.alpha.example.") == [ALPHA_DMARC]

    pdns_live.server.start()
    monkeypatch.setenv("TEST_PDNS_API_PORT", str(pdns_live.server.api_port))
    monkeypatch.setenv("TEST_PDNS_DNS", f"127.0.0.1:{pdns_live.server.port}")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAAGAIN")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", AWS_SECRET)
    rest = apply(mixed, plan_path, sender_dns, SATURDAY, *EMERGENCY)
    assert rest.exit_code == 0, rest.output
    by_client = records(mixed)
    assert sorted(by_client) == ["alpha", "delta", "gamma"]
    assert {v["status"] for r in by_client.values() for v in r["verification"]} == {"verified"}
    assert pdns_live.served("delta.example", "_dmarc") == [DELTA_AFTER]
    assert GAMMA_SPF in route53_live.served("gamma.example", "")
    again = apply(mixed, plan_path, sender_dns, SATURDAY, *EMERGENCY)
    assert again.exit_code == 2
    assert "was already applied" in again.stderr


def _files_text(root: Path) -> Iterator[tuple[Path, str]]:
    for path in root.rglob("*"):
        if path.is_file():
            yield path, path.read_text(encoding="utf-8", errors="replace")


def test_no_provider_secret_in_any_output_log_record_or_crash_log(
    mixed: Path,
    client_dns: NamedServer,
    route53_live: Route53Live,
    pdns_live: PdnsLive,
    sender_dns: NamedServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)  # octoDNS, boto3/botocore, urllib3 at their most verbose
    state = tmp_path / "state"
    monkeypatch.setenv("XDG_STATE_HOME", str(state))
    monkeypatch.delenv("DMARCOPS_DEBUG", raising=False)
    secrets = {
        "AWS secret access key": AWS_SECRET,
        "PowerDNS API key": pdns_live.server.api_key,
        "BIND TSIG secret": client_dns.key_secret,
    }
    outputs: list[Result] = []
    plan_path, _ = plan(mixed, sender_dns, SATURDAY, *ZONES)
    outputs.append(cli(mixed, "plan", "--format", "markdown", "--at", SATURDAY,
                       "--nameserver", f"127.0.0.1:{sender_dns.port}"))  # fmt: skip
    outputs.append(apply(mixed, plan_path, sender_dns, SATURDAY, *EMERGENCY))
    assert outputs[-1].exit_code == 0, outputs[-1].output
    outputs.append(cli(mixed, "records", "list"))
    outputs.append(cli(mixed, "audit", "verify", "--at", SATURDAY))
    # A refused key and a provider that is down: their errors must not carry the secrets either.
    monkeypatch.setenv("TEST_PDNS_API_KEY", "wrong-" + pdns_live.server.api_key[:4])
    outputs.append(cli(mixed, "plan", "--zone", "delta.example", "--at", SATURDAY))
    monkeypatch.setenv("TEST_PDNS_API_KEY", pdns_live.server.api_key)

    # A bug while the providers' options are in hand: the crash log is scrubbed.
    # pipeline.api.plan (which the command calls) imports make_plan when it runs.
    import pipeline.plan.build
    from pipeline.live.providers import provider_options

    real = pipeline.plan.build.make_plan

    def buggy(portfolio: Any, *args: Any, **kwargs: Any) -> Any:
        real(portfolio, *args, **kwargs)
        options = {
            name: provider_options(config, portfolio.root)
            for name, config in portfolio.providers.items()
            if name in ("pdns", "bind")
        }
        raise RuntimeError(f"bug with {options} and {dict(__import__('os').environ)}")

    monkeypatch.setattr(pipeline.plan.build, "make_plan", buggy)
    crashed = cli(mixed, "plan", "--at", SATURDAY, "--nameserver", f"127.0.0.1:{sender_dns.port}")
    outputs.append(crashed)
    assert crashed.exit_code == 70, crashed.output
    crash_logs = list(state.rglob("crash-*.log"))
    assert crash_logs

    texts = [(f"output of command {i}", r.output) for i, r in enumerate(outputs)]
    texts += [(f"stderr of command {i}", r.stderr) for i, r in enumerate(outputs)]
    texts += [(str(p), t) for p, t in _files_text(mixed / "changes")]
    texts += [(str(plan_path), plan_path.read_text())]
    texts += [(str(p), p.read_text()) for p in crash_logs]
    texts += [("log records", caplog.text)]
    leaks = [
        f"{what} in {where}"
        for where, text in texts
        for what, secret in secrets.items()
        if secret in text
    ]
    assert leaks == []
