"""The pass-rate rule of the one gate (issue 14): a change that tightens DMARC p= must carry
report evidence computed by `dmarcops reports evidence` and meeting policy/gate.yaml's
`report_evidence` thresholds; refused below, accepted above, the failing sources named."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from portfolio import copy_example
from test_approvals import _Item as Item
from test_approvals import author_signature

from pipeline.cli import main
from pipeline.errors import EXIT_CRASH, EXIT_OK
from pipeline.gate import decide
from pipeline.gate.request_loader import load_requests
from pipeline.gate.requests import ChangeRequest, RequestType
from pipeline.gate.roster import load_roster
from pipeline.load.portfolio import load_portfolio
from pipeline.load.request_files import Selector
from pipeline.model import RiskLevel

PLAN = "e5" * 32
UNTIL = datetime(2026, 11, 30, tzinfo=UTC)
TO_QUARANTINE = Item(
    RiskLevel.MEDIUM,
    client="fabrikam-labs",
    zone="fabrikam.example",
    before=("v=DMARC1; p=none; rua=mailto:dmarc@fabrikam.example",),
    after=("v=DMARC1; p=quarantine; rua=mailto:dmarc@fabrikam.example",),
)
TO_REJECT = replace(
    TO_QUARANTINE,
    risk=RiskLevel.HIGH,
    after=("v=DMARC1; p=reject; rua=mailto:dmarc@fabrikam.example",),
)


def report(org: str, report_id: str, day: datetime, rows: list[tuple[str, int, bool]]) -> str:
    begin = int(day.timestamp())
    records = "".join(
        f"<record><row><source_ip>{ip}</source_ip><count>{count}</count><policy_evaluated>"
        f"<disposition>none</disposition><dkim>{'pass' if ok else 'fail'}</dkim>"
        f"<spf>{'pass' if ok else 'fail'}</spf></policy_evaluated></row>"
        "<identifiers><header_from>fabrikam.example</header_from></identifiers></record>"
        for ip, count, ok in rows
    )
    return (
        f"<feedback><report_metadata><org_name>{org}</org_name><email>r@{org}</email>"
        f"<report_id>{report_id}</report_id><date_range><begin>{begin}</begin>"
        f"<end>{begin + 86399}</end></date_range></report_metadata><policy_published>"
        f"<domain>fabrikam.example</domain><p>none</p></policy_published>{records}</feedback>"
    )


def drop(directory: Path, crm_failing: int) -> Path:
    """14 daily Google-style reports up to UTIL: 1000 good messages a day from the mail
    platform, 10 spoofed, and the CRM's 100 with `crm_failing` of them failing."""
    directory.mkdir(parents=True)
    for n in range(14):
        day = UNTIL - timedelta(days=14 - n)
        rows = [
            ("209.85.220.41", 1000, True),
            ("203.0.113.77", 10, False),
            ("167.89.55.10", 100 - crm_failing, True),
        ]
        if crm_failing:
            rows.append(("167.89.55.10", crm_failing, False))
        (directory / f"google-{n}.xml").write_text(report("google.com", f"g{n}", day, rows))
    return directory


def cli(repo: Path, *args: str) -> Result:
    result = CliRunner().invoke(main, ["--repo", str(repo), *args])
    assert result.exit_code != EXIT_CRASH, result.output
    return result


def evidence_for(repo: Path, tmp_path: Path, crm_failing: int) -> tuple[str, str]:
    cli(repo, "reports", "ingest", str(drop(tmp_path / "drop", crm_failing)))
    result = cli(
        repo,
        "reports",
        "evidence",
        "--client",
        "fabrikam-labs",
        "--domain",
        "fabrikam.example",
        "--days",
        "14",
        "--at",
        "2026-11-30",
    )
    assert result.exit_code == EXIT_OK, result.output
    digest = result.output.rsplit('report_evidence: "', 1)[1].split('"')[0]
    return digest, result.output


def request(repo: Path, digest: str = "", **changes: object) -> ChangeRequest:
    details = (("report_evidence", digest),) if digest else ()
    base = ChangeRequest(
        id="CR-0009-fabrikam-labs",
        type=RequestType.POLICY_PROGRESSION,
        client="fabrikam-labs",
        covers=(Selector("fabrikam.example", "_dmarc", "TXT"),),
        rationale="Reports show the CRM and the mail platform aligned for fourteen days now.",
        author="jchen",
        details=details,
        file=repo / "changes" / "requests" / "CR-0009-fabrikam-labs.yaml",
        sha256="c3" * 32,
        signature=author_signature(),
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def judge(repo: Path, req: ChangeRequest, item: Item, now: datetime = UNTIL) -> list[str]:
    portfolio = load_portfolio(repo)
    decision = decide.decide(
        req,
        [item],
        (),
        decide.context(portfolio, req.client, decide.Stage.PLAN, now, PLAN, load_roster(repo)),
    )
    return [str(p) for p in decide.refused(decision)]


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return copy_example(tmp_path / "repo")


def test_no_evidence_is_refused_with_what_to_run(repo: Path) -> None:
    (problem,) = judge(repo, request(repo), TO_QUARANTINE)
    assert problem.endswith("[report-evidence]")
    assert (
        "fabrikam.example moves to p=quarantine, and CR-0009-fabrikam-labs carries no report evidence"
        in problem
    )
    assert (
        "dmarcops reports evidence --client fabrikam-labs --domain fabrikam.example --days 14"
        in problem
    )


def test_a_change_that_does_not_tighten_p_needs_none(repo: Path) -> None:
    pct = replace(
        TO_QUARANTINE,
        before=("v=DMARC1; p=quarantine; pct=50",),
        after=("v=DMARC1; p=quarantine; pct=100",),
    )
    assert judge(repo, request(repo), pct) == []
    loosen = replace(TO_QUARANTINE, before=TO_QUARANTINE.after, after=TO_QUARANTINE.before)
    assert judge(repo, request(repo), loosen) == []


def test_above_threshold_is_accepted_for_quarantine_not_reject(repo: Path, tmp_path: Path) -> None:
    digest, out = evidence_for(repo, tmp_path, crm_failing=0)
    # 14 days x 1110 messages, 14 x 10 failing: 15540 messages, 99.10% pass.
    assert "15540 messages in 14 report(s), 99.10% DMARC pass, 3 source(s)" in out
    assert "p=quarantine threshold (policy/gate.yaml): meets it" in out
    assert (
        "p=reject threshold (policy/gate.yaml): falls short: it covers 14.0 days, fewer than 30; pass rate 99.10%, below 99.5%"
        in out
    )
    assert (repo / "changes" / "evidence" / f"reports-{digest}.json").is_file()
    assert judge(repo, request(repo, digest), TO_QUARANTINE) == []
    (problem,) = judge(repo, request(repo, digest), TO_REJECT)
    assert "fabrikam.example may not move to p=reject on this evidence" in problem
    assert "pass rate 99.10%, below 99.5%" in problem


def test_below_threshold_names_the_failing_source(repo: Path, tmp_path: Path) -> None:
    digest, _ = evidence_for(repo, tmp_path, crm_failing=50)
    # The CRM (167.89.55.10) sends 100 of 1110 a day (9%: a major source) and half fail.
    (problem,) = judge(repo, request(repo, digest), TO_QUARANTINE)
    assert "pass rate 94.59%, below 98%" in problem
    assert "major sources below 95%: 167.89.55.10 (50.0% of 1400)" in problem
    assert "203.0.113.77" not in problem  # 1% of the mail: not a major source


def test_stale_tampered_and_misdirected_evidence(repo: Path, tmp_path: Path) -> None:
    digest, _ = evidence_for(repo, tmp_path, crm_failing=0)
    (stale,) = judge(repo, request(repo, digest), TO_QUARANTINE, now=UNTIL + timedelta(days=20))
    assert "it is stale: its period ended 2026-11-30, 20 days ago (at most 7)" in stale
    other = replace(TO_QUARANTINE, client="contoso-retail", zone="contoso-retail.example")
    (wrong,) = judge(repo, request(repo, digest, client="contoso-retail"), other)
    assert (
        "is for fabrikam-labs / fabrikam.example, not contoso-retail / contoso-retail.example"
        in wrong
    )
    path = repo / "changes" / "evidence" / f"reports-{digest}.json"
    path.write_text(path.read_text().replace('"dmarc_pass": 15400', '"dmarc_pass": 15500', 1))
    (tampered,) = judge(repo, request(repo, digest), TO_QUARANTINE)
    assert "does not hash to its name" in tampered
    (missing,) = judge(repo, request(repo, "ab" * 32), TO_QUARANTINE)
    assert "report evidence for fabrikam.example:" in missing and "cannot read the file" in missing


def test_emergencies_and_grandfathered_requests(repo: Path) -> None:
    emergency = request(repo, type=RequestType.EMERGENCY_ROLLBACK, emergency_reason="spoofing wave")
    assert judge(repo, emergency, TO_QUARANTINE) == []
    (cr2,) = [r for r in load_requests(repo) if r.id == "CR-0002-fabrikam-labs"]
    item = replace(TO_QUARANTINE, after=("v=DMARC1; p=quarantine; pct=50",))
    assert judge(repo, cr2, item) == []  # filed before the rule, listed by its hash
    (edited,) = judge(repo, replace(cr2, sha256="0" * 64), item)
    assert "carries no report evidence" in edited
