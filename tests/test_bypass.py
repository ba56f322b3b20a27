"""Red team (issue 9): each control tried by the analyst it constrains, against a real BIND.

One test per attack, beside its legitimate twin where it is cheap: the twin succeeds, so the
attack's refusal is the control holding, not the setup failing. Each attack asserts the exit code,
the reason (or rule code) named, and that nothing reached DNS or the records. An attack that gets
through is a real bypass: it stays asserted as refused and is marked xfail(strict) "BYPASS: ...".
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest
from bypass_helpers import (
    LIVE_DMARC,
    MONDAY,
    NEW_DMARC,
    SATURDAY,
    TUESDAY_DT,
    add_client_approvers,
    approvals,
    approve,
    assert_untouched,
    client_approval,
    forge_approval,
    plan,
    raw_cli,
    records,
)
from dns_server import NamedServer
from signing import reseal
from test_apply_named import served
from test_lifecycle import KEYS, TUESDAY, apply, cli, record, request
from test_plan_named import make_repo

from pipeline.errors import EXIT_GATE, EXIT_INPUT
from pipeline.gate.identity import load_private_key
from pipeline.gate.requests import RequestSignature


@pytest.fixture
def repo(tmp_path: Path, client_dns: NamedServer) -> Path:
    return make_repo(tmp_path / "repo", with_requests=False)


def approved_medium(repo: Path, sender_dns: NamedServer) -> tuple[Path, str]:
    """CR-0001-alpha (alpha.example: DMARC tightened, a sender added: medium), peer-approved."""
    request(repo, "CR-0001-alpha", ["alpha.example"])
    plan_path, plan_hash = plan(repo, sender_dns)
    assert approve(repo, plan_path, "CR-0001-alpha", "mhara").exit_code == 0
    return plan_path, plan_hash


def applied(result_code: int, repo: Path, dns: NamedServer) -> None:
    assert result_code == 0
    assert records(repo) == ["2026-0001.json"]
    assert served(dns, "_dmarc.alpha.example.") == NEW_DMARC


# --- (1) a self-set clock on a real server --------------------------------------------------


@pytest.mark.parametrize("how", ["--at", "DMARCOPS_NOW"])
def test_1_self_set_clock_on_apply_to_bind(
    repo: Path,
    client_dns: NamedServer,
    sender_dns: NamedServer,
    system_clock: Callable[[datetime], None],
    how: str,
) -> None:
    plan_path, _ = approved_medium(repo, sender_dns)
    # The machine's clock reads Monday (outside alpha's window); the analyst claims Tuesday.
    set_clock = system_clock
    set_clock(datetime(2026, 11, 30, 10, 0, tzinfo=UTC))
    base = ["apply", "--plan", str(plan_path), "--key", str(KEYS / "jchen.pem")]
    base += ["--nameserver", f"127.0.0.1:{sender_dns.port}"]
    if how == "--at":
        result = raw_cli(repo, *base, "--at", TUESDAY)
    else:
        result = raw_cli(repo, *base, env={"DMARCOPS_NOW": TUESDAY})
    assert result.exit_code == EXIT_GATE, result.output
    assert "uses the system clock" in result.stderr
    assert "--at" in result.stderr and "DMARCOPS_NOW" in result.stderr
    assert_untouched(repo, client_dns)
    # Without the typed time, Monday's clock is outside the window: still nothing.
    monday = raw_cli(repo, *base)
    assert monday.exit_code == EXIT_GATE
    assert "outside" in monday.stderr
    assert_untouched(repo, client_dns)
    # Twin: the machine's clock really reads Tuesday.
    set_clock(TUESDAY_DT)
    applied(raw_cli(repo, *base).exit_code, repo, client_dns)


# --- (2) a backdated approval -------------------------------------------------------------


def test_2_backdated_approval_does_not_count(
    repo: Path, client_dns: NamedServer, sender_dns: NamedServer
) -> None:
    plan_path, _ = approved_medium(repo, sender_dns)
    (path,) = approvals(repo)
    original = path.read_text()
    data = json.loads(original)
    assert data["approved_at"] == "2026-12-01T10:00:00Z"
    data["approved_at"] = "2026-11-24T09:00:00Z"  # "given last week"
    path.write_text(json.dumps(data))
    result = apply(repo, plan_path, sender_dns)
    assert result.exit_code == EXIT_GATE, result.output
    assert "peer review" in result.stderr
    assert "does not verify with mhara's key" in result.stderr
    assert_untouched(repo, client_dns)
    # Backdating through the command itself: approve refuses a typed time.
    typed = raw_cli(
        repo,
        "approve",
        "--plan",
        str(plan_path),
        "--request",
        "CR-0001-alpha",
        "--key",
        str(KEYS / "sokafor.pem"),
        "--at",
        "2026-11-24T09:00:00Z",
    )
    assert typed.exit_code == EXIT_GATE, typed.output
    assert "uses the system clock" in typed.stderr
    assert len(approvals(repo)) == 1
    # Twin: the approval as signed.
    path.write_text(original)
    applied(apply(repo, plan_path, sender_dns).exit_code, repo, client_dns)


# --- (3) an approval of a different request with the same plan hash --------------------------


def test_3_approval_of_another_request_same_plan_does_not_count(
    repo: Path, client_dns: NamedServer, sender_dns: NamedServer
) -> None:
    request(repo, "CR-0001-alpha", ["alpha.example"])
    plan_path, plan_hash = plan(repo, sender_dns)
    # mhara's genuine approval of CR-0002-alpha for this very plan (same content hash even),
    # filed under CR-0001-alpha.
    forged = forge_approval(
        repo,
        plan_hash,
        rid="CR-0001-alpha",
        named="mhara",
        signed_by="mhara",
        signed_rid="CR-0002-alpha",
    )
    assert forged.name == "CR-0001-alpha--mhara.json"
    result = apply(repo, plan_path, sender_dns)
    assert result.exit_code == EXIT_GATE, result.output
    assert "it approves request CR-0002-alpha, not CR-0001-alpha" in result.stderr
    assert_untouched(repo, client_dns)
    # Twin: the same approval, of this request.
    forged.unlink()
    forge_approval(repo, plan_hash, rid="CR-0001-alpha", named="mhara", signed_by="mhara")
    applied(apply(repo, plan_path, sender_dns).exit_code, repo, client_dns)


# --- (4) an approver named in the file, signed by the author --------------------------------


def test_4_approver_named_but_signed_by_author_does_not_count(
    repo: Path, client_dns: NamedServer, sender_dns: NamedServer
) -> None:
    request(repo, "CR-0001-alpha", ["alpha.example"])
    plan_path, plan_hash = plan(repo, sender_dns)
    forged = forge_approval(repo, plan_hash, rid="CR-0001-alpha", named="mhara", signed_by="jchen")
    result = apply(repo, plan_path, sender_dns)
    assert result.exit_code == EXIT_GATE, result.output
    assert "does not verify with mhara's key" in result.stderr
    assert "peer review" in result.stderr
    assert_untouched(repo, client_dns)
    # Twin: signed by mhara.
    forged.unlink()
    forge_approval(repo, plan_hash, rid="CR-0001-alpha", named="mhara", signed_by="mhara")
    applied(apply(repo, plan_path, sender_dns).exit_code, repo, client_dns)


# --- (5) two roster entries with one key ----------------------------------------------------


def test_5_two_roster_entries_with_one_key_are_refused_at_load(
    repo: Path, client_dns: NamedServer, sender_dns: NamedServer
) -> None:
    plan_path, _ = approved_medium(repo, sender_dns)  # twin: the real roster loads and approves
    roster = repo / "policy" / "roster.yaml"
    original = roster.read_text()
    jchen_key = "Wmwwz4+5WfUL7tw45MxbWZJ4kqVwLf++6nmc66s5myg="
    sokafor_key = "cXuE9qHqShUjT+6AVzvNw8CMICBLW6baZ+DVRH7UYvc="
    assert jchen_key in original and sokafor_key in original
    # sokafor's entry now holds jchen's key: jchen could sign as sokafor.
    roster.write_text(original.replace(sokafor_key, jchen_key))
    result = approve(repo, plan_path, "CR-0001-alpha", "sokafor", key="jchen")
    assert result.exit_code == EXIT_INPUT, result.output
    assert "roster.yaml" in result.stderr
    assert "is also used by the person at line" in result.stderr
    applied_attempt = apply(repo, plan_path, sender_dns)
    # The roster edit is a pending policy change the approved plan did not hold: refused.
    assert applied_attempt.exit_code == EXIT_GATE, applied_attempt.output
    assert "policy/roster.yaml (policy edit waiting for a lead's seal)" in applied_attempt.stderr
    assert len(approvals(repo)) == 1
    assert_untouched(repo, client_dns)
    # The same key written in another form (an OpenSSH line) is the same key.
    raw = base64.b64decode(jchen_key)
    wire = b"".join(len(p).to_bytes(4, "big") + p for p in (b"ssh-ed25519", raw))
    openssh = "ssh-ed25519 " + base64.b64encode(wire).decode()
    roster.write_text(original.replace(sokafor_key, f'"{openssh}"'))
    disguised = approve(repo, plan_path, "CR-0001-alpha", "sokafor", key="jchen")
    assert disguised.exit_code == EXIT_INPUT, disguised.output
    assert "is also used by the person at line" in disguised.stderr
    assert len(approvals(repo)) == 1
    assert_untouched(repo, client_dns)
    roster.write_text(original)
    applied(apply(repo, plan_path, sender_dns).exit_code, repo, client_dns)


# --- (6) a shadowing analyst approving medium -----------------------------------------------


def test_6_shadowing_analyst_cannot_approve_medium(
    repo: Path, client_dns: NamedServer, sender_dns: NamedServer
) -> None:
    request(repo, "CR-0001-alpha", ["alpha.example"])
    plan_path, plan_hash = plan(repo, sender_dns)
    roster = repo / "policy" / "roster.yaml"
    original = roster.read_text()
    roster.write_text(original.replace('start_date: "2025-06-02"', 'start_date: "2026-11-20"'))
    reseal(repo)  # setup: sokafor joined recently, as the roster of record says
    result = approve(repo, plan_path, "CR-0001-alpha", "sokafor")
    assert result.exit_code == EXIT_GATE, result.output
    assert "[shadowing-approver]" in result.stderr
    assert approvals(repo) == []
    # A shadowing approval filed by hand (signed with sokafor's own key) does not count either.
    forge_approval(repo, plan_hash, rid="CR-0001-alpha", named="sokafor", signed_by="sokafor")
    refused = apply(repo, plan_path, sender_dns)
    assert refused.exit_code == EXIT_GATE, refused.output
    assert "shadowing until" in refused.stderr
    assert_untouched(repo, client_dns)
    # Twin: past the shadowing period, the same analyst's approval counts.
    roster.write_text(original)
    reseal(repo)
    applied(apply(repo, plan_path, sender_dns).exit_code, repo, client_dns)


# --- (7) an emergency for a tightening change -----------------------------------------------


def test_7_emergency_for_tightening_change_without_incident(
    repo: Path, client_dns: NamedServer, sender_dns: NamedServer
) -> None:
    request(repo, "CR-0001-alpha", ["alpha.example"])
    plan_path, _ = plan(repo, sender_dns, at=SATURDAY)
    reason = ("--emergency", "--reason", "payroll mail rejected since 02:40 UTC")
    result = apply(repo, plan_path, sender_dns, SATURDAY, *reason)
    assert result.exit_code == EXIT_GATE, result.output
    assert "[emergency-not-deescalation]" in result.stderr
    assert_untouched(repo, client_dns)
    # A made-up incident reference is no incident.
    fake = apply(repo, plan_path, sender_dns, SATURDAY, *reason, "--incident", "see Slack")
    assert fake.exit_code == EXIT_GATE
    assert "[emergency-incident]" in fake.stderr
    assert_untouched(repo, client_dns)
    # Twin: a declared incident.
    declared = apply(repo, plan_path, sender_dns, SATURDAY, *reason, "--incident", "INC-2041")
    applied(declared.exit_code, repo, client_dns)


# --- (8) the review of an emergency by its executor ------------------------------------------


def _emergency_applied(repo: Path, client_dns: NamedServer, sender_dns: NamedServer) -> None:
    request(repo, "CR-0001-alpha", ["alpha.example"])
    plan_path, _ = plan(repo, sender_dns, at=SATURDAY)
    reason = ("--emergency", "--reason", "payroll mail rejected since 02:40 UTC")
    result = apply(repo, plan_path, sender_dns, SATURDAY, *reason, "--incident", "INC-2041")
    applied(result.exit_code, repo, client_dns)
    assert record(repo, "2026-0001")["executed_by"] == "jchen"


REVIEW_ARGS = (
    "--key",
    str(KEYS / "mhara.pem"),
    "--notes",
    "Genuine emergency: payroll provider rejected.",
    "--verdict",
    "justified",
)


def _review(repo: Path, by: str, key: str) -> tuple[int, str]:
    """`dmarcops review` typed as `by`, signed with `key`'s test key (who is at the keyboard)."""
    result = cli(
        repo,
        "review",
        "2026-0001",
        "--key",
        str(KEYS / f"{key}.pem"),
        "--by",
        by,
        "--notes",
        "Genuine emergency: payroll provider rejected.",
        "--verdict",
        "justified",
        "--at",
        "2026-12-05T09:00:00Z",
    )
    return result.exit_code, result.stderr


def test_8_review_by_executor_is_refused(
    repo: Path, client_dns: NamedServer, sender_dns: NamedServer
) -> None:
    _emergency_applied(repo, client_dns, sender_dns)
    code, err = _review(repo, "jchen", "jchen")
    assert code == EXIT_GATE
    assert "cannot review it" in err
    assert record(repo, "2026-0001")["emergency"].get("reviewed_by") in (None, "")
    # Twin: another analyst reviews it.
    assert _review(repo, "mhara", "mhara")[0] == 0
    assert record(repo, "2026-0001")["emergency"]["reviewed_by"] == "mhara"


@pytest.mark.parametrize("spelling", ["JChen", "Jia Chen", "jchen "])
def test_8b_review_by_executor_under_another_spelling(
    repo: Path, client_dns: NamedServer, sender_dns: NamedServer, spelling: str
) -> None:
    _emergency_applied(repo, client_dns, sender_dns)
    code, _ = _review(repo, spelling, "jchen")
    assert code != 0
    assert record(repo, "2026-0001")["emergency"].get("reviewed_by") in (None, "")


@pytest.mark.parametrize("name", ["mhara", "nobody"])
def test_8c_review_in_another_name_is_not_signed(
    repo: Path, client_dns: NamedServer, sender_dns: NamedServer, name: str
) -> None:
    _emergency_applied(repo, client_dns, sender_dns)
    # jchen at the keyboard, no key of mhara's: the review must need the reviewer's signature.
    code, _ = _review(repo, name, "jchen")
    assert code != 0
    assert record(repo, "2026-0001")["emergency"].get("reviewed_by") in (None, "")


# --- (9) a freeze passed without a client approval naming it ---------------------------------


def _high_beta(repo: Path, sender_dns: NamedServer, **approval: str) -> Path:
    # beta.example drops its SPF sender: high risk (peer + client).
    request(repo, "CR-0001-alpha", ["beta.example"], client_approval=client_approval(**approval))
    plan_path, _ = plan(repo, sender_dns, "beta.example")
    assert approve(repo, plan_path, "CR-0001-alpha", "mhara").exit_code == 0
    return plan_path


def test_9_freeze_without_client_approval_naming_it(
    repo: Path, client_dns: NamedServer, sender_dns: NamedServer
) -> None:
    add_client_approvers(repo, freeze="Board meeting")
    plan_path = _high_beta(repo, sender_dns)
    result = apply(repo, plan_path, sender_dns)
    assert result.exit_code == EXIT_GATE, result.output
    assert "[freeze]" in result.stderr and "Board meeting" in result.stderr
    assert_untouched(repo, client_dns)


def test_9_twin_freeze_exception_named_by_the_client(
    repo: Path, client_dns: NamedServer, sender_dns: NamedServer
) -> None:
    add_client_approvers(repo, freeze="Board meeting")
    plan_path = _high_beta(repo, sender_dns, freeze="Board meeting")
    result = apply(repo, plan_path, sender_dns)
    assert result.exit_code == 0, result.output
    assert records(repo) == ["2026-0001.json"]
    assert "freeze exception" in json.dumps(record(repo, "2026-0001"))
    assert [v for v in served(client_dns, "beta.example.") if v.startswith("v=spf1")] == []


# --- (10) the request edited after approval --------------------------------------------------


def test_10_request_widened_after_approval(
    repo: Path, client_dns: NamedServer, sender_dns: NamedServer
) -> None:
    plan_path, _ = approved_medium(repo, sender_dns)
    path = repo / "changes" / "requests" / "CR-0001-alpha.yaml"
    original = path.read_text()
    sig = repo / "changes" / "requests" / "CR-0001-alpha.sig.json"
    original_sig = sig.read_text()
    # The author widens covers and signs the new content (their own key: they may).
    request(repo, "CR-0001-alpha", ["alpha.example", "beta.example"])
    assert sig.read_text() != original_sig
    result = apply(repo, plan_path, sender_dns)
    assert result.exit_code == EXIT_GATE, result.output
    assert "edited after the review" in result.stderr
    assert_untouched(repo, client_dns)
    # Twin: the request as approved.
    path.write_text(original)
    sig.write_text(original_sig)
    applied(apply(repo, plan_path, sender_dns).exit_code, repo, client_dns)


# --- (11) an unsigned request ---------------------------------------------------------------


def _low_change(repo: Path) -> None:
    # Only add a sender to alpha's SPF: leave DMARC as it is live.
    zone = repo / "zones" / "alpha" / "alpha.example.yaml"
    zone.write_text(zone.read_text().replace("p=quarantine", "p=none"))


def test_11_unsigned_request_is_not_approved_even_at_low_risk(
    repo: Path, client_dns: NamedServer, sender_dns: NamedServer
) -> None:
    _low_change(repo)
    request(repo, "CR-0001-alpha", ["alpha.example"])
    sig = repo / "changes" / "requests" / "CR-0001-alpha.sig.json"
    signature = sig.read_text()
    plan_path, _ = plan(repo, sender_dns)
    assert json.loads(plan_path.read_text())["changes"][0]["risk"] == "low"
    sig.unlink()
    result = apply(repo, plan_path, sender_dns)
    assert result.exit_code == EXIT_GATE, result.output
    assert "author's signature" in result.stderr
    assert_untouched(repo, client_dns)
    # A signature file naming the author but made with another analyst's key is no signature.
    data = json.loads(signature)
    forged = RequestSignature(
        data["request_id"],
        data["request_sha256"],
        "jchen",
        datetime.strptime(data["signed_at"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC),
        "",
    )
    mhara = load_private_key(KEYS / "mhara.pem")
    sig_b64 = base64.b64encode(mhara.sign(forged.payload())).decode()
    sig.write_text(json.dumps(replace(forged, signature=sig_b64).to_json()))
    other = apply(repo, plan_path, sender_dns)
    assert other.exit_code == EXIT_GATE, other.output
    assert "author's signature" in other.stderr
    assert_untouched(repo, client_dns)
    # Twin: signed by its author, a low change needs nothing else.
    sig.write_text(signature)
    result = apply(repo, plan_path, sender_dns)
    assert result.exit_code == 0, result.output
    assert records(repo) == ["2026-0001.json"]
    assert served(client_dns, "_dmarc.alpha.example.") == LIVE_DMARC


# --- (12) a client approval dated after now --------------------------------------------------


@pytest.mark.parametrize("given", ["2026-12-02T08:00:00Z", "2026-11-30T12:00:00Z"])
def test_12_client_approval_dated_after_now(
    repo: Path, client_dns: NamedServer, sender_dns: NamedServer, given: str
) -> None:
    add_client_approvers(repo)
    plan_path = _high_beta(repo, sender_dns, at=given)
    result = apply(repo, plan_path, sender_dns)
    if given == "2026-11-30T12:00:00Z":  # twin: given the day before
        assert result.exit_code == 0, result.output
        assert records(repo) == ["2026-0001.json"]
        return
    assert result.exit_code == EXIT_GATE, result.output
    assert "client approval" in result.stderr
    assert "after now" in result.stderr
    assert_untouched(repo, client_dns)


# --- (13) approve as someone else with one's own key -----------------------------------------


def test_13_approve_as_mhara_with_jchens_key(
    repo: Path, client_dns: NamedServer, sender_dns: NamedServer
) -> None:
    request(repo, "CR-0001-alpha", ["alpha.example"])
    plan_path, _ = plan(repo, sender_dns)
    result = approve(repo, plan_path, "CR-0001-alpha", "mhara", key="jchen")
    assert result.exit_code == EXIT_INPUT, result.output
    assert "this key is not mhara's: it is jchen's" in result.stderr
    assert approvals(repo) == []
    refused = apply(repo, plan_path, sender_dns)
    assert refused.exit_code == EXIT_GATE
    assert "peer review" in refused.stderr
    assert_untouched(repo, client_dns)
    # Twin: mhara's own key.
    assert approve(repo, plan_path, "CR-0001-alpha", "mhara").exit_code == 0
    applied(apply(repo, plan_path, sender_dns).exit_code, repo, client_dns)


def test_monday_is_outside_the_window_for_the_clock_tests(
    repo: Path, client_dns: NamedServer, sender_dns: NamedServer
) -> None:
    """Guard for (1): the machine clock MONDAY really is outside alpha's window."""
    plan_path, _ = approved_medium(repo, sender_dns)
    result = apply(repo, plan_path, sender_dns, MONDAY)
    assert result.exit_code == EXIT_GATE
    assert "outside" in result.stderr
    assert_untouched(repo, client_dns)


# --- beyond the list: the other mutating commands, and the executor's name ------------------


@pytest.mark.parametrize("command", ["review", "close"])
def test_1b_self_set_clock_on_review_and_close(
    repo: Path, client_dns: NamedServer, sender_dns: NamedServer, command: str
) -> None:
    _emergency_applied(repo, client_dns, sender_dns)
    before = record(repo, "2026-0001")
    extra = (
        [*REVIEW_ARGS]
        if command == "review"
        else ["--outcome", "accepted", "--key", str(KEYS / "jchen.pem")]
    )
    for typed in (["--at", "2026-12-05T09:00:00Z"], []):
        env = None if typed else {"DMARCOPS_NOW": "2026-12-05T09:00:00Z"}
        result = raw_cli(repo, command, "2026-0001", *extra, *typed, env=env)
        assert result.exit_code == EXIT_GATE, result.output
        assert "uses the system clock" in result.stderr
        assert record(repo, "2026-0001") == before


def test_apply_as_another_analyst_is_not_signed(
    repo: Path, client_dns: NamedServer, sender_dns: NamedServer
) -> None:
    request(repo, "CR-0001-alpha", ["alpha.example"])
    plan_path, _ = plan(repo, sender_dns, at=SATURDAY)
    # jchen at the keyboard, typing mhara's id, without mhara's key.
    result = cli(
        repo,
        "apply",
        "--plan",
        str(plan_path),
        "--as",
        "mhara",
        "--key",
        str(KEYS / "jchen.pem"),
        "--at",
        SATURDAY,
        "--nameserver",
        f"127.0.0.1:{sender_dns.port}",
        "--emergency",
        "--reason",
        "payroll mail rejected since 02:40 UTC",
        "--incident",
        "INC-2041",
    )
    assert result.exit_code != 0, (
        f"apply --as mhara ran without mhara's key; record executed_by: "
        f"{record(repo, '2026-0001')['executed_by']}"
    )
    assert_untouched(repo, client_dns)


@pytest.mark.parametrize("name", ["mhara", "nobody"])
def test_close_in_another_name_is_not_signed(
    repo: Path, client_dns: NamedServer, sender_dns: NamedServer, name: str
) -> None:
    plan_path, _ = approved_medium(repo, sender_dns)
    applied(apply(repo, plan_path, sender_dns).exit_code, repo, client_dns)
    closed = cli(
        repo,
        "close",
        "2026-0001",
        "--outcome",
        "accepted",
        "--by",
        name,
        "--key",
        str(KEYS / "jchen.pem"),  # jchen at the keyboard
        "--at",
        "2026-12-01T19:00:00Z",
    )
    assert closed.exit_code != 0, f"sealed by {record(repo, '2026-0001').get('closed_by')}"
    assert record(repo, "2026-0001").get("sealed") is not True
