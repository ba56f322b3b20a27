"""Ticket templates as data (policy/templates/): a new template is a file, not code."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from portfolio import REPO, copy_example, write
from signing import KEYS, reseal, sign_as_author

from pipeline.cli import main
from pipeline.errors import EXIT_INPUT
from pipeline.gate.request_loader import load_requests
from pipeline.gate.templates import SEED_TEMPLATES, load_templates

BIMI = """\
# Schema: policy/schemas/template.schema.json
title: BIMI publication
routing: "the risk the rules compute; the logo shows only under an enforced DMARC policy"
may_change: [bimi]
rationale: "why the client publishes its logo now: enforcement reached, VMC obtained"
evidence: "the VMC order and the logo's SVG Tiny PS check"
details:
  logo_url:
    prompt: "the https URL of the SVG logo"
    pattern: "^https://"
  vmc:
    prompt: "the Verified Mark Certificate's order number, or none"
    required: false
"""
FILLED = """\
type: bimi-publication
client: fabrikam-labs
covers: ["fabrikam.example default._bimi TXT"]
author: jchen
rationale: "Fabrikam reached p=quarantine at pct=100 for 30 days; marketing wants the logo in Gmail."
evidence: ["VMC order FAB-VMC-7"]
details:
  logo_url: "{url}"
"""
NEW = "changes/requests/CR-0007-fabrikam-labs.yaml"


def run(repo: Path, *args: str) -> Result:
    return CliRunner().invoke(main, ["--repo", str(repo), *args])


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = copy_example(tmp_path)
    write(root / "policy/templates/bimi-publication.yaml", BIMI)
    return root


def test_a_template_added_as_a_file_appears_in_new(repo: Path) -> None:
    # Until a lead seals it, the new template is a pending policy edit and judges nothing.
    assert "bimi-publication" not in run(repo, "new", "--list").output
    reseal(repo)
    listed = run(repo, "new", "--list")
    assert listed.exit_code == 0, listed.output
    assert "bimi-publication: BIMI publication" in listed.output
    assert "requires: rationale, evidence, details.logo_url\n  may change: bimi" in listed.output
    made = run(
        repo,
        "new",
        "bimi-publication",
        "--client",
        "fabrikam-labs",
        "--cover",
        "fabrikam.example default._bimi TXT",
        "--author",
        "jchen",
    )
    assert made.exit_code == 0, made.output
    text = (repo / NEW).read_text()
    assert "type: bimi-publication" in text
    assert '  logo_url: "<<the https URL of the SVG logo>>"' in text
    assert 'vmc: "<<the Verified Mark Certificate' in text
    assert "Routes through: the risk the rules compute" in text


def test_a_request_of_the_new_type_is_held_to_its_fields(repo: Path) -> None:
    reseal(repo)
    write(repo / NEW, FILLED.format(url="https://fabrikam.example/logo.svg"))
    sign_as_author(repo, "CR-0007-fabrikam-labs")
    (request,) = [r for r in load_requests(repo) if r.id == "CR-0007-fabrikam-labs"]
    assert request.type == "bimi-publication" and request.template is not None
    assert run(repo, "requests", "check").exit_code == 0

    write(repo / NEW, FILLED.format(url="http://fabrikam.example/logo.svg"))
    refused = run(repo, "requests", "check")
    assert refused.exit_code == EXIT_INPUT
    assert "logo_url 'http://fabrikam.example/logo.svg' is not in the form" in refused.output

    write(repo / NEW, FILLED.replace('  logo_url: "{url}"\n', "  vmc: none\n"))
    missing = run(repo, "requests", "check")
    assert "a bimi-publication request needs details.logo_url" in missing.output


def test_an_edited_template_judges_no_request_until_a_lead_seals_it(repo: Path) -> None:
    # The request and its approvals answer to one policy: the templates are read from the tree
    # the roster of record came from, never from the edit waiting for its seal.
    reseal(repo)
    write(repo / NEW, FILLED.format(url="https://fabrikam.example/logo.svg"))
    sign_as_author(repo, "CR-0007-fabrikam-labs")
    template = repo / "policy/templates/bimi-publication.yaml"
    write(template, BIMI.replace('pattern: "^https://"', 'pattern: "^ftp://"'))

    checked = run(repo, "requests", "check")
    assert checked.exit_code == 0, checked.output
    validated = run(repo, "validate")
    assert validated.exit_code == 0, validated.output
    assert "is not in the form" not in validated.output
    signed = run(repo, "sign-request", "CR-0007-fabrikam-labs", "--key", str(KEYS / "jchen.pem"))
    assert signed.exit_code == 0, signed.output

    reseal(repo)
    refused = run(repo, "requests", "check")
    assert refused.exit_code == EXIT_INPUT
    assert "logo_url 'https://fabrikam.example/logo.svg' is not in the form" in refused.output


def test_an_unknown_type_names_the_templates(repo: Path) -> None:
    reseal(repo)
    result = run(
        repo,
        "new",
        "bimi",
        "--client",
        "fabrikam-labs",
        "--cover",
        "fabrikam.example",
        "--author",
        "jchen",
    )
    assert result.exit_code == EXIT_INPUT
    assert "no ticket template 'bimi'" in result.output
    assert "bimi-publication" in result.output
    write(repo / NEW, FILLED.format(url="x").replace("bimi-publication", "bimi"))
    assert "no ticket template 'bimi'" in run(repo, "requests", "check").output


def test_the_seed_templates_are_the_examples(tmp_path: Path) -> None:
    # A repository without policy/templates/ gets the package's copies of the seed's four (and
    # "other"): they must say what the example's files say.
    shipped = {p.name: p.read_text() for p in SEED_TEMPLATES.glob("*.yaml")}
    example = {p.name: p.read_text() for p in (REPO / "policy/templates").glob("*.yaml")}
    assert shipped == example
    root = copy_example(tmp_path)
    shutil.rmtree(root / "policy/templates")
    assert [t.id for t in load_templates(root)] == [t.id for t in load_templates(REPO)]
