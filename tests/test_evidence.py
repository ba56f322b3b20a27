"""Signed requests, approvals bound to the request hash, template checks, and the client's
approving e-mail verified with dkimpy against a real named on loopback."""

from __future__ import annotations

import base64
import hashlib
import shutil
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import UTC, datetime
from email.utils import format_datetime
from pathlib import Path

import dkim
import pytest
from click.testing import CliRunner, Result
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from dns_server import NamedServer, ZoneSpec
from portfolio import copy_example, write
from signing import KEYS, sign_as_author
from test_approvals import evaluate

from pipeline.cli import main
from pipeline.errors import EXIT_GATE, EXIT_INPUT, InputError
from pipeline.gate.approvals import PlannedChange, sign
from pipeline.gate.coverage import cover
from pipeline.gate.evidence import check_client_mail, dns_txt, store_eml
from pipeline.gate.identity import load_private_key
from pipeline.gate.request_loader import load_requests
from pipeline.gate.requests import (
    ChangeRequest,
    ClientApproval,
    RequestType,
    Selector,
    content_sha256,
    signature_problem,
)
from pipeline.gate.roster import load_roster
from pipeline.gate.templates import load_templates
from pipeline.live.dns import Nameservers
from pipeline.load.portfolio import load_portfolio
from pipeline.model import RiskLevel

RID = "CR-0007-fabrikam-labs"
REQ = f"changes/requests/{RID}.yaml"
TEXT = (
    "# a comment\n"
    "type: other\n"
    "client: fabrikam-labs\n"
    "covers: ['fabrikam.example _dmarc TXT']\n"
    "author: jchen\n"
    "rationale: Aggregate reports show 99.4% alignment for 21 days across all known senders.\n"
)
PLAN = "a1" * 32
AT = datetime(2026, 11, 24, 9, 14, tzinfo=UTC)
APPROVER = "dana.whitfield@northwind-health.example"
MAIL_AT = datetime(2026, 11, 26, 16, 42, tzinfo=UTC)
MSGID = "<CAF3x9Lq2mT7@mail.northwind-health.example>"


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = copy_example(tmp_path)
    shutil.rmtree(root / "changes" / "requests")
    write(root / REQ, TEXT)
    return root


def run(repo: Path, *args: str) -> Result:
    result = CliRunner().invoke(main, ["--repo", str(repo), *args])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result


def loaded(repo: Path) -> ChangeRequest:
    (request,) = load_requests(repo)
    return request


# --- the content hash and the author's signature -------------------------------------------


def test_the_content_hash_ignores_layout_and_comments_but_not_fields() -> None:
    a = {"type": "other", "covers": ["x"], "author": "jchen"}
    assert content_sha256(a) == content_sha256(
        {"author": "jchen", "covers": ["x"], "type": "other"}
    )
    assert content_sha256(a) != content_sha256({**a, "covers": ["x", "y"]})


def test_an_unsigned_request_does_not_count_and_check_names_the_file(repo: Path) -> None:
    roster = load_roster(repo)
    assert "is not signed by its author" in (signature_problem(loaded(repo), roster) or "")
    result = run(repo, "requests", "check")
    assert result.exit_code == EXIT_GATE
    assert f"{RID}.yaml is not signed by its author" in result.output
    sign_as_author(repo, RID)
    assert signature_problem(loaded(repo), roster) is None
    assert run(repo, "requests", "check").exit_code == 0


def test_a_comment_edit_keeps_the_signature_a_field_edit_voids_it(repo: Path) -> None:
    sign_as_author(repo, RID)
    roster = load_roster(repo)
    (repo / REQ).write_text("# reviewed\n" + TEXT)
    assert signature_problem(loaded(repo), roster) is None
    (repo / REQ).write_text(TEXT.replace("_dmarc TXT", "_dmarc"))
    assert "changed after jchen signed it" in (signature_problem(loaded(repo), roster) or "")
    result = run(repo, "requests", "check")
    assert result.exit_code == EXIT_GATE and f"{RID}.yaml changed after" in result.output


def test_only_the_author_signs(repo: Path) -> None:
    result = run(repo, "sign-request", RID, "--key", str(KEYS / "mhara.pem"))
    assert result.exit_code == EXIT_INPUT
    assert "the key is mhara's, but" in result.output
    assert not (repo / f"changes/requests/{RID}.sig.json").exists()
    # A signature file written with another key for the author's name does not verify.
    sign_as_author(repo, RID)
    sig = repo / f"changes/requests/{RID}.sig.json"
    sig.write_text(sig.read_text().replace('"jchen"', '"sokafor"'))
    assert "does not verify with sokafor's key" in (
        signature_problem(loaded(repo), load_roster(repo)) or ""
    )


# --- approvals bind the request hash ------------------------------------------------------------


def test_an_approval_of_other_content_or_another_request_does_not_count(repo: Path) -> None:
    sign_as_author(repo, RID)
    request = loaded(repo)
    roster = load_roster(repo)
    client = load_portfolio(repo).clients["fabrikam-labs"]
    mhara = load_private_key(KEYS / "mhara.pem")
    good = sign(mhara, PLAN, RID, "mhara", AT, request.sha256)
    assert evaluate(RiskLevel.MEDIUM, request, PLAN, [good], roster, client).ok
    old = sign(mhara, PLAN, RID, "mhara", AT, "d4" * 32)
    decision = evaluate(RiskLevel.MEDIUM, request, PLAN, [old], roster, client)
    assert not decision.ok
    assert any("the request was edited after the review" in m for m in decision.missing)
    # The same plan hash, another request's approval: it does not count for this one.
    other = sign(mhara, PLAN, "CR-0008-fabrikam-labs", "mhara", AT, request.sha256)
    decision = evaluate(RiskLevel.MEDIUM, request, PLAN, [other], roster, client)
    assert any("approves request CR-0008-fabrikam-labs" in m for m in decision.missing)


def test_an_unsigned_request_is_not_approved_even_at_low_risk(repo: Path) -> None:
    request = loaded(repo)
    client = load_portfolio(repo).clients["fabrikam-labs"]
    decision = evaluate(RiskLevel.LOW, request, PLAN, [], load_roster(repo), client)
    assert not decision.ok and decision.missing[0].startswith("author: author's signature")


def test_approve_as_someone_else_with_the_authors_key_is_refused(repo: Path) -> None:
    sign_as_author(repo, RID)
    zone = repo / "zones/fabrikam-labs/fabrikam.example.yaml"
    assert zone.exists()
    out = repo / "plan.json"
    run(repo, "plan", "--zone", "fabrikam.example", "--at", "2026-11-28", "--out", str(out))
    result = run(
        repo,
        "approve",
        "--plan",
        str(out),
        "--request",
        RID,
        "--as",
        "mhara",
        "--key",
        str(KEYS / "jchen.pem"),
    )
    assert result.exit_code == EXIT_INPUT
    assert "this key is not mhara's: it is jchen's" in result.output
    assert not (repo / "changes/approvals").exists()


# --- ticket templates ---------------------------------------------------------------------------


def test_a_dkim_rotation_covering_a_dmarc_change_is_refused(repo: Path) -> None:
    request = replace(
        loaded(repo),
        type=RequestType.DKIM_ROTATION,
        details=(("current_selector", "s2025"), ("new_selector", "s2026")),
        # What the template in policy/templates/ says it may change, as a loaded request has it.
        template=load_templates(repo).get("dkim-rotation"),
    )
    dmarc = PlannedChange(
        "fabrikam-labs", "fabrikam.example", "_dmarc", "TXT", "update", RiskLevel.LOW, (), (), 1, 1
    )
    coverage = cover([dmarc], [request])
    assert not coverage.complete
    assert "may change only dkim records" in coverage.misfits[0][2]
    other_selector = replace(dmarc, name="s1999._domainkey")
    request = replace(request, covers=(Selector("fabrikam.example"),))
    assert "is selector 's1999'" in cover([other_selector], [request]).misfits[0][2]
    assert cover([replace(dmarc, name="s2026._domainkey")], [request]).complete


def test_a_policy_progression_needs_a_readable_pass_rate_of_14_days(repo: Path) -> None:
    text = TEXT.replace("type: other", "type: policy-progression") + (
        "details:\n  current_policy: p=none\n  target_policy: p=quarantine\n"
        "  pass_rate_evidence: 99.1% aligned pass over 7 days\n  planned_date: 2026-12-01\n"
    )
    (repo / REQ).write_text(text)
    with pytest.raises(InputError, match="over 7 days is too short"):
        load_requests(repo)
    (repo / REQ).write_text(text.replace("99.1% aligned pass over 7 days", "mostly fine"))
    with pytest.raises(InputError, match="does not give a pass rate and its period"):
        load_requests(repo)


# --- the client's e-mail, DKIM-verified against a real named -------------------------------------


def _dkim_key() -> tuple[bytes, str]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    der = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return private, "v=DKIM1; k=rsa; p=" + base64.b64encode(der).decode()


def _mail(sender: str = APPROVER, body: str = "Approved: p=reject from 1 December.\r\n") -> bytes:
    return (
        f"From: Dana Whitfield <{sender}>\r\n"
        "To: mika.hara@msp.example\r\n"
        "Subject: Re: DMARC p=reject for northwind-health.example\r\n"
        f"Date: {format_datetime(MAIL_AT)}\r\n"
        f"Message-ID: {MSGID}\r\n"
        "\r\n" + body
    ).encode()


@pytest.fixture
def signed_mail(
    named_factory: Callable[[Mapping[str, ZoneSpec]], NamedServer],
) -> tuple[bytes, Nameservers]:
    private, record = _dkim_key()
    server = named_factory({"northwind-health.example": [("sel1._domainkey", "TXT", record)]})
    message = _mail()
    header = dkim.sign(message, b"sel1", b"northwind-health.example", private)
    return header + message, Nameservers((server.host,), port=server.port, timeout=2.0)


def _approval(eml: Path) -> ClientApproval:
    return ClientApproval(APPROVER, MAIL_AT, MSGID, eml=str(eml))


def test_a_dkim_signed_approval_verifies_against_dns(
    repo: Path, tmp_path: Path, signed_mail: tuple[bytes, Nameservers]
) -> None:
    raw, nameservers = signed_mail
    stored = store_eml(repo, write(tmp_path / "in.eml", raw.decode()))
    assert stored.name.removesuffix(".eml") == hashlib.sha256(raw).hexdigest()
    verdict = check_client_mail(repo, _approval(stored), dns_txt(nameservers))
    assert verdict.ok, verdict.problems
    assert verdict.dkim == "verified d=northwind-health.example"


def test_a_tampered_body_or_a_wrong_sender_fails(
    repo: Path, tmp_path: Path, signed_mail: tuple[bytes, Nameservers]
) -> None:
    raw, nameservers = signed_mail
    tampered = raw.replace(b"p=reject from 1 December", b"p=reject from 1 November")
    stored = store_eml(repo, write(tmp_path / "t.eml", tampered.decode()))
    verdict = check_client_mail(repo, _approval(stored), dns_txt(nameservers))
    assert not verdict.ok and "DKIM: signature 1: body hash mismatch" in verdict.problems[0]
    # The stored file edited after storing: its name is no longer its hash.
    good = store_eml(repo, write(tmp_path / "g.eml", raw.decode()))
    (repo / good).write_bytes(tampered)
    verdict = check_client_mail(repo, _approval(good), dns_txt(nameservers))
    assert "changed after it was stored" in verdict.problems[0]
    # Signed, but From is not the approver the request names.
    other = replace(_approval(good), approver="priya.raman@contoso-retail.example")
    (repo / good).write_bytes(raw)
    verdict = check_client_mail(repo, other, dns_txt(nameservers))
    assert any("not the approver priya.raman" in p for p in verdict.problems)
