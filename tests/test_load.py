"""Bad input gives one clear error naming the file and line, exit 1, never a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner
from portfolio import REPO, copy_example, write

from pipeline.cli import main
from pipeline.errors import InputError
from pipeline.load.portfolio import load_portfolio
from pipeline.load.zones import check_zone_file

FABRIKAM = "zones/fabrikam-labs/fabrikam.example.yaml"


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return copy_example(tmp_path)


def run_validate(repo: Path) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["--repo", str(repo), "validate"])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result.exit_code, result.output


def test_example_portfolio_is_valid(repo: Path) -> None:
    code, out = run_validate(repo)
    assert code == 0, out
    assert "3 clients, 4 zone files" in out
    assert "3 analysts, 6 change requests" in out


def test_yaml_syntax_error_names_file_and_line(repo: Path) -> None:
    write(repo / FABRIKAM, "---\n_dmarc:\n  type: TXT\n  value: [unclosed\n")
    code, out = run_validate(repo)
    assert code == 1
    assert f"{FABRIKAM}:" in out and "YAML syntax error" in out
    assert "Traceback" not in out


def test_unknown_key_in_zone_file_points_at_the_key(repo: Path) -> None:
    write(repo / FABRIKAM, "---\n_dmarc:\n  type: TXT\n  valeu: v=DMARC1\\; p=none\n")
    code, out = run_validate(repo)
    assert code == 1
    assert f"{FABRIKAM}:4:" in out
    assert "valeu" in out


def test_unknown_key_in_client_profile(repo: Path) -> None:
    path = repo / "policy/clients/fabrikam-labs.yaml"
    path.write_text(path.read_text() + "regulatd: true\n")
    code, out = run_validate(repo)
    assert code == 1
    line = path.read_text().splitlines().index("regulatd: true") + 1
    assert f"policy/clients/fabrikam-labs.yaml:{line}:" in out
    assert "regulatd" in out


def test_unescaped_semicolon_is_refused_with_line(repo: Path) -> None:
    write(
        repo / FABRIKAM,
        "---\n'':\n  type: TXT\n  value: v=spf1 -all\n_dmarc:\n  type: TXT\n"
        "  value: v=DMARC1; p=none\n",
    )
    code, out = run_validate(repo)
    assert code == 1
    assert FABRIKAM in out
    assert "unescaped" in out.lower()
    assert f"{FABRIKAM}:7:" in out  # the value that holds the bare ;


def test_zone_file_for_a_domain_no_client_owns(repo: Path) -> None:
    write(
        repo / "zones/fabrikam-labs/stranger.example.yaml",
        "---\n_dmarc:\n  type: TXT\n  value: v=DMARC1\\; p=none\n",
    )
    code, out = run_validate(repo)
    assert code == 1
    assert "zones/fabrikam-labs/stranger.example.yaml" in out
    assert "stranger.example, which no client owns" in out


def test_zone_file_in_another_clients_directory(repo: Path) -> None:
    src = repo / FABRIKAM
    (repo / "zones/contoso-retail/fabrikam.example.yaml").write_text(src.read_text())
    src.unlink()
    code, out = run_validate(repo)
    assert code == 1
    assert "which client 'fabrikam-labs' owns" in out
    assert "Move the file to zones/fabrikam-labs/" in out


def test_duplicate_domain_across_clients(repo: Path) -> None:
    path = repo / "policy/clients/contoso-retail.yaml"
    path.write_text(
        path.read_text().replace(
            "  - contoso-retail.example\n", "  - contoso-retail.example\n  - fabrikam.example\n"
        )
    )
    code, out = run_validate(repo)
    assert code == 1
    assert "policy/clients/fabrikam-labs.yaml" in out or "policy/clients/contoso-retail.yaml" in out
    assert "fabrikam.example is also listed by client" in out


def test_duplicate_key_in_yaml(repo: Path) -> None:
    write(
        repo / FABRIKAM,
        "---\n_dmarc:\n  type: TXT\n  value: v=DMARC1\\; p=none\n"
        "_dmarc:\n  type: TXT\n  value: v=DMARC1\\; p=reject\n",
    )
    code, out = run_validate(repo)
    assert code == 1
    assert f"{FABRIKAM}:5: duplicate key '_dmarc' (first at line 2)" in out


def test_record_outside_scope_is_refused(repo: Path) -> None:
    write(
        repo / FABRIKAM,
        "---\n_dmarc:\n  type: TXT\n  value: v=DMARC1\\; p=none\nwww:\n"
        "  type: A\n  value: 192.0.2.1\n",
    )
    code, out = run_validate(repo)
    assert code == 1
    assert f"{FABRIKAM}:5: record www A is outside the pipeline's scope" in out


def test_non_spf_value_in_spf_set_is_refused(repo: Path) -> None:
    write(
        repo / FABRIKAM,
        "---\n'':\n  type: TXT\n  values:\n  - google-site-verification=x\n  - v=spf1 -all\n",
    )
    code, out = run_validate(repo)
    assert code == 1
    assert "only the v=spf1 value of this set is owned" in out


def test_records_out_of_order_are_refused_by_octodns(repo: Path) -> None:
    write(
        repo / FABRIKAM,
        "---\n_dmarc:\n  type: TXT\n  value: v=DMARC1\\; p=none\n'':\n"
        "  type: TXT\n  value: v=spf1 -all\n",
    )
    code, out = run_validate(repo)
    assert code == 1
    assert FABRIKAM in out
    assert "Traceback" not in out


def test_missing_provider_reference(repo: Path) -> None:
    path = repo / "policy/clients/fabrikam-labs.yaml"
    path.write_text(path.read_text().replace("provider: sandbox", "provider: nowhere"))
    code, out = run_validate(repo)
    assert code == 1
    line = path.read_text().splitlines().index("provider: nowhere") + 1
    assert (
        f"policy/clients/fabrikam-labs.yaml:{line}: client 'fabrikam-labs' names provider "
        "'nowhere'" in out
    )


def test_bad_timezone_and_reversed_freeze(repo: Path) -> None:
    path = repo / "policy/clients/contoso-retail.yaml"
    path.write_text(path.read_text().replace("America/New_York", "Mars/Olympus"))
    with pytest.raises(InputError, match="unknown time zone 'Mars/Olympus'") as info:
        load_portfolio(repo)
    assert info.value.line == 4


def test_check_zone_file_reports_octodns_validation(repo: Path) -> None:
    write(repo / FABRIKAM, "---\ns1._domainkey:\n  type: CNAME\n  value: not-a-fqdn\n")
    portfolio = load_portfolio(repo)
    zone_file = next(z for z in portfolio.zone_files if z.domain == "fabrikam.example")
    problems = check_zone_file(zone_file, portfolio.schema_path("zone"))
    assert len(problems) == 1
    assert problems[0].file == repo / FABRIKAM
    assert problems[0].line == 4  # the value octoDNS refused


def test_the_example_policy_is_as_sealed() -> None:
    # The shipped example judges by its genesis; an edit under its policy/ must be sealed again
    # (`.venv/bin/python tests/signing.py`), or every example plan shows pending policy items.
    from pipeline.records.policy_of_record import policy_of_record

    record = policy_of_record(REPO)
    assert record.sealed is not None
    assert record.pending == []


@pytest.mark.parametrize("anchored", [False, True])
def test_too_deep_yaml_is_refused_at_the_same_node_with_or_without_anchors(
    tmp_path: Path, anchored: bool
) -> None:
    # A file without `&` takes the tree walk (no alias can exist), one with an anchor the graph
    # walk (pipeline/load/yamlfile.py): both must stop at the same node, the first too deep.
    from pipeline.load.yamlfile import MAX_YAML_DEPTH, load_yaml

    (tmp_path / ".git").mkdir()  # the repository root load_yaml reads within
    head = "ok: &x 1\n" if anchored else "ok: 1\n"
    deep = "deep: " + "[" * MAX_YAML_DEPTH + "1" + "]" * MAX_YAML_DEPTH + "\n"
    path = write(tmp_path / "deep.yaml", head + "fine: [[1]]\n" + deep)
    with pytest.raises(InputError) as caught:
        load_yaml(path)
    assert caught.value.message == f"refused: the YAML nests more than {MAX_YAML_DEPTH} levels deep"
    # The 64th "[" opens the 65th level (the top mapping is the first): line 3, column 70.
    assert (caught.value.line, caught.value.column) == (3, 6 + MAX_YAML_DEPTH)
    shallow = write(tmp_path / "shallow.yaml", head + "deep: " + "[" * 62 + "]" * 62 + "\n")
    assert load_yaml(shallow).data["deep"] is not None


def test_a_date_that_is_not_one_names_its_line(tmp_path: Path) -> None:
    # The one date reader of the calendar and the portfolio (YamlDocument.date).
    from datetime import date

    from pipeline.load.yamlfile import load_yaml

    path = tmp_path / "dates.yaml"
    path.write_text("ok: 2026-02-28\nbad:\n  - 2026-02-30\n", encoding="utf-8")
    doc = load_yaml(path)
    assert doc.date(("ok",), doc.data["ok"]) == date(2026, 2, 28)
    with pytest.raises(InputError) as caught:
        doc.date(("bad", 0), doc.data["bad"][0])
    assert (caught.value.message, caught.value.file, caught.value.line) == (
        "'2026-02-30' is not a date",
        path,
        3,
    )
    assert caught.value.hint == "Write dates as YYYY-MM-DD."
