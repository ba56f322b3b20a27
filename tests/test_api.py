"""The library surface (pipeline/api.py, `import dmarcops`; docs/api.md): the same results the
commands print, as typed values, on the example portfolio (sandbox provider) and against real BIND
9 servers on loopback.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner
from dns_server import NamedServer, ZoneSpec
from portfolio import copy_example
from test_plan_named import LIVE, TOKEN, make_repo

import dmarcops
from pipeline import api
from pipeline.cli import main
from pipeline.errors import InputError
from pipeline.model import RiskLevel, Severity

AT = datetime(2026, 11, 28, 10, 0, tzinfo=UTC)  # the README's quick-start time
AT_TEXT = "2026-11-28T10:00:00Z"


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return copy_example(tmp_path / "repo")


def cli(repo: Path, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, ["--repo", str(repo), *args])
    return result.exit_code, result.stdout, result.stderr


def test_import_dmarcops_is_the_api() -> None:
    assert dmarcops.plan is api.plan
    assert dmarcops.verify_audit is api.verify_audit
    assert set(dmarcops.__all__) == {*api.__all__, "api"}


def test_plan_renders_exactly_what_the_command_prints(repo: Path) -> None:
    report = api.plan(repo, at=AT)
    assert report.ok, (report.refusals, report.failed_zones)
    for fmt in ("json", "text", "markdown"):
        code, out, _ = cli(repo, "plan", "--at", AT_TEXT, "--format", fmt)
        assert code == 0
        assert api.render(report, fmt) == out, fmt
    printed = json.loads(api.render(report, "json"))
    assert printed["plan_hash"] == report.hash
    assert len(printed["changes"]) == len(report.items)


def test_plan_does_not_read_the_history(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Which requests were executed comes from the record index, for the plan's requests only:
    reading every record made a plan 20x slower with 50,000 records (benchmarks/audit_scale.py)."""
    from pipeline.records.store_base import RecordStoreBase

    def every_record(self: RecordStoreBase) -> list[object]:
        raise AssertionError("plan read every change record")

    monkeypatch.setattr(RecordStoreBase, "all", every_record)
    report = api.plan(repo, at=AT)
    assert report.ok and report.items, report.refusals


def test_plan_hashes_its_items_once(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The gate asks for the plan hash once per request, the renderers once each: hashing 2,500
    items for each of 2,500 requests was half of a 10,000-zone plan (benchmarks/README.md)."""
    from pipeline.plan import items

    hashed: list[int] = []
    real = items.plan_hash

    def counted(plan_items: tuple[items.PlanItem, ...]) -> str:
        hashed.append(len(plan_items))
        return real(plan_items)

    monkeypatch.setattr(items, "plan_hash", counted)
    report = api.plan(repo, at=AT)
    assert report.ok and len({r.id for r in report.requests.values()}) > 1, report.refusals
    for fmt in ("json", "text", "markdown"):
        api.render(report, fmt)
    assert hashed == [len(report.items)]
    assert report.hash == real(report.items)


def test_plan_items_are_typed_and_classified(repo: Path) -> None:
    report = api.plan(repo, at=AT)
    assert {i.risk for i in report.items} == {RiskLevel.LOW, RiskLevel.MEDIUM, RiskLevel.HIGH}
    dmarc = next(i for i in report.items if i.zone == "northwind-health.example")
    assert (dmarc.name, dmarc.type, dmarc.action) == ("_dmarc", "TXT", "update")
    assert dmarc.after == ("v=DMARC1; p=reject; rua=mailto:dmarc@northwind-health.example",)
    classified = {(c.zone, c.name, c.type): c for c in api.classify(report)}
    assert len(classified) == len(report.items)
    printed = {
        (c["zone"], c["name"], c["type"]): c
        for c in json.loads(api.render(report, "json"))["changes"]
    }
    for key, c in classified.items():
        assert c.change_type == printed[key]["change_type"]
        assert c.risk.label == printed[key]["risk"]
        assert list(c.reasons) == printed[key]["reasons"]
        assert c.request is not None and c.request.id == printed[key]["request"]["id"]
    assert classified[("northwind-health.example", "_dmarc", "TXT")].request is not None
    request = classified[("northwind-health.example", "_dmarc", "TXT")].request
    assert request is not None and request.id == "CR-0004-northwind-health"


def test_plan_narrowing_and_unknown_client(repo: Path) -> None:
    report = api.plan(repo, at=AT, clients=["fabrikam-labs"])
    assert {z.zone for z in report.plan.zones} == {"fabrikam.example"}
    with pytest.raises(InputError, match="no client 'nobody'"):
        api.plan(repo, at=AT, clients=["nobody"])


def test_plan_reports_refusals_as_data(repo: Path) -> None:
    # A request edited after its author signed it covers nothing that can be approved.
    path = repo / "changes/requests/CR-0004-northwind-health.yaml"
    path.write_text(path.read_text().replace("final phase", "last phase"), encoding="utf-8")
    report = api.plan(repo, at=AT)
    assert not report.ok
    assert any("CR-0004-northwind-health" in r and "does not count" in r for r in report.refusals)
    code, _, err = cli(repo, "plan", "--at", AT_TEXT)
    assert code == 2
    assert all(r in err for r in report.refusals)


def test_a_broken_zone_file_is_a_failed_zone_not_an_exception(repo: Path) -> None:
    path = repo / "zones/fabrikam-labs/fabrikam.example.yaml"
    path.write_text(path.read_text() + "www:\n  type: A\n  value: 192.0.2.1\n", encoding="utf-8")
    seen: list[InputError] = []
    report = api.plan(repo, at=AT, on_zone_problem=seen.append)
    assert [str(e.file) for e in seen] == [str(path)]
    assert "outside the pipeline's scope" in seen[0].message and seen[0].line == 14
    assert set(report.broken_zones) == {"fabrikam.example"}
    assert [z.zone for z in report.failed_zones] == ["fabrikam.example"]
    assert "fabrikam.example" not in {i.zone for i in report.items}
    assert not report.ok


def test_the_library_prints_no_zone_problem_and_returns_them_all(
    repo: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    # A library does not write to the caller's stderr: the problems are in the report, and the
    # CLI prints them as before (one error line each, with the file and line).
    path = repo / "zones/fabrikam-labs/fabrikam.example.yaml"
    path.write_text(path.read_text() + "www:\n  type: A\n  value: 192.0.2.1\n", encoding="utf-8")
    report = api.plan(repo, at=AT)
    assert capfd.readouterr().err == ""
    assert [(str(p.file), p.line) for p in report.zone_problems] == [(str(path), 14)]
    assert report.broken_zones == {"fabrikam.example": report.zone_problems[0]}
    code, _, err = cli(repo, "plan", "--at", AT_TEXT)
    assert code == 1
    assert f"error: {report.zone_problems[0]}" in err


def test_the_library_prints_no_policy_problem_and_raises_them_all(
    repo: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    # Two broken client profiles (and what follows from them): the first problem is raised, the
    # others ride on it (`also`); nothing is written to the caller's stderr. The CLI prints them
    # all, each with its file, as it printed them before.
    broken = [
        repo / "policy/clients/fabrikam-labs.yaml",
        repo / "policy/clients/contoso-retail.yaml",
    ]
    for path in broken:
        path.write_text(path.read_text() + "no_such_setting: 1\n", encoding="utf-8")
    with pytest.raises(InputError) as caught:
        api.plan(repo, at=AT)
    assert capfd.readouterr().err == ""
    found = [caught.value, *caught.value.also]
    assert {str(p) for p in broken} <= {str(p.file) for p in found}
    code, _, err = cli(repo, "plan", "--at", AT_TEXT)
    assert code == 1
    for problem in found:
        assert f"error: {problem}" in err


def test_validate_matches_the_command(repo: Path) -> None:
    report = api.validate(repo)
    assert report.ok
    assert {(f.file.name, f.line, f.finding.code) for f in report.findings} == {
        ("contoso-retail.example.yaml", 11, "K4"),
        ("fabrikam.example.yaml", 5, "D5"),
    }
    assert all(f.severity is Severity.WARNING for f in report.findings)
    code, out, _ = cli(repo, "validate")
    assert code == 0
    portfolio = report.portfolio
    assert out == (
        f"ok: {len(portfolio.clients)} clients, {len(portfolio.zone_files)} zone files, "
        f"{len(portfolio.providers)} providers, {len(portfolio.rules.rules)} risk rules, "
        f"{report.analysts} analysts, {report.requests} change requests\n"
    )
    assert (report.analysts, report.requests) == (3, 6)


def test_validate_finds_a_record_error_with_its_line(repo: Path) -> None:
    path = repo / "zones/fabrikam-labs/fabrikam.example.yaml"
    path.write_text(path.read_text().replace("sendgrid.net ~all", "sendgrid.net +all"))
    report = api.validate(repo)
    assert not report.ok
    (error,) = report.errors
    assert (error.file, error.line, error.finding.code) == (path, 2, "S5")
    code, _, err = cli(repo, "validate")
    assert code == 2
    assert "fabrikam.example.yaml:2: S5" in err


def test_load_portfolio_and_changed_zones_outside_git(repo: Path) -> None:
    portfolio = api.load_portfolio(repo)
    assert sorted(portfolio.clients) == ["contoso-retail", "fabrikam-labs", "northwind-health"]
    assert portfolio.policy_sha256  # judged by the sealed policy of record
    with pytest.raises(InputError):
        api.changed_zones(repo, "HEAD~1")  # not a git repository: said so, never a traceback


def test_verify_audit_matches_the_command(repo: Path) -> None:
    report = api.verify_audit(repo, at=AT)
    assert report.ok
    code, out, _ = cli(repo, "audit", "verify")
    assert code == 0
    assert out == (
        f"ok: {report.records} records, {report.entries} ledger entries, chain intact\n"
        f"chain head: {report.head}\n"
    )
    assert report.entries == 1  # the example's genesis
    pinned = api.verify_audit(repo, at=AT, genesis="0" * 64)
    assert not pinned.ok
    assert "pinned genesis" in str(pinned.problems[0])


def test_verify_audit_finds_a_rewritten_ledger(repo: Path) -> None:
    ledger = repo / "changes/ledger.jsonl"
    # The genesis re-dated: its hash no longer matches its content.
    text = ledger.read_text()
    assert '"at":"2026-01-05T09:00:00Z"' in text
    ledger.write_text(text.replace("2026-01-05T09:00:00Z", "2026-01-04T09:00:00Z", 1))
    report = api.verify_audit(repo, at=AT)
    assert not report.ok
    code, out, _ = cli(repo, "audit", "verify")
    assert code == 2
    assert all(str(p) in out for p in report.problems)


# --- against BIND --------------------------------------------------------------------------


@pytest.fixture
def client_dns(
    named_factory: Callable[[Mapping[str, ZoneSpec]], NamedServer],
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[NamedServer]:
    server = named_factory(LIVE)
    for name, value in server.client_env().items():
        monkeypatch.setenv(name, value)
    yield server


def test_plan_against_named_with_progress(
    tmp_path: Path, client_dns: NamedServer, sender_dns: NamedServer
) -> None:
    repo = make_repo(tmp_path)
    calls: list[tuple[int, int]] = []
    report = api.plan(
        repo,
        at=datetime(2026, 12, 1, 10, 0, tzinfo=UTC),
        nameservers=[f"127.0.0.1:{sender_dns.port}"],
        progress=lambda done, total: calls.append((done, total)),
    )
    assert report.ok, report.refusals
    assert calls == [(1, 3), (2, 3), (3, 3)]
    assert {(i.zone, i.name, i.type) for i in report.items} == {
        ("alpha.example", "", "TXT"),
        ("alpha.example", "_dmarc", "TXT"),
        ("beta.example", "", "TXT"),
        ("gamma.example", "", "TXT"),
    }
    spf = next(i for i in report.items if (i.zone, i.name) == ("alpha.example", ""))
    assert sorted(spf.before) == sorted([TOKEN, "v=spf1 include:_spf.google.com ~all"])
    lookups = next(f for f in spf.facts if f.code == "spf.lookups")
    assert (lookups.old, lookups.new) == ("4", "5")  # counted through the sender zones' DNS
    assert {z.zone: z.budget_source for z in report.plan.zones}["alpha.example"] == "dns"
    by_key = {(c.zone, c.name): c for c in api.classify(report)}
    assert by_key[("gamma.example", "")].risk is RiskLevel.HIGH
    assert any("spf-regulated" in r for r in by_key[("gamma.example", "")].reasons)


def test_a_zone_whose_server_is_down_is_a_failed_zone(
    tmp_path: Path,
    client_dns: NamedServer,
    sender_dns: NamedServer,
    named_factory: Callable[[Mapping[str, ZoneSpec]], NamedServer],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    down = named_factory({"gamma.example": LIVE["gamma.example"]})
    monkeypatch.setenv("TEST_DOWN_PORT", str(down.port))
    down.kill()
    repo = make_repo(tmp_path, gamma_provider="bind-down")
    report = api.plan(
        repo,
        at=datetime(2026, 12, 1, 10, 0, tzinfo=UTC),
        nameservers=[f"127.0.0.1:{sender_dns.port}"],
    )
    assert not report.ok
    (failed,) = report.failed_zones
    assert (failed.zone, failed.provider) == ("gamma.example", "bind-down")
    assert failed.error
    assert {i.zone for i in report.items} == {"alpha.example", "beta.example"}
