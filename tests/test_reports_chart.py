"""`reports summary --chart out.svg` (the pass rate per day, hand-written SVG) and `--asn-table`
(source IPs grouped by AS from an offline iptoasn table): issue 14 part 2."""

from __future__ import annotations

import gzip
import json
from datetime import UTC, datetime
from pathlib import Path

import defusedxml.ElementTree as SafeET
import pytest
from click.testing import CliRunner, Result
from portfolio import copy_example
from reports_fixtures import HEALTHY, write_days

from pipeline.cli import main
from pipeline.errors import EXIT_CRASH, EXIT_INPUT, EXIT_OK
from pipeline.reports.asn import UNKNOWN, parse_asn_table
from pipeline.reports.chart import svg_chart
from pipeline.reports.summary import Stats, Summary

SVG = "{http://www.w3.org/2000/svg}"


def cli(repo: Path, *args: str) -> Result:
    result = CliRunner().invoke(main, ["--repo", str(repo), *args])
    assert result.exit_code != EXIT_CRASH, result.output
    return result


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """fabrikam.example: 5 healthy days, 2 without reports, 3 days with the CRM failing."""
    root = copy_example(tmp_path / "repo")
    drop = tmp_path / "rua"
    write_days(drop, "fabrikam.example", datetime(2026, 11, 20, tzinfo=UTC), 5, HEALTHY)
    failing = [("209.85.220.41", 900, True, "none"), ("167.89.55.10", 100, False, "none")]
    write_days(drop, "fabrikam.example", datetime(2026, 11, 27, tzinfo=UTC), 3, failing)
    assert cli(root, "reports", "ingest", str(drop)).exit_code == EXIT_OK
    return root


def summary_args(*extra: str) -> list[str]:
    return [
        "reports", "summary", "--client", "fabrikam-labs", "--since", "2026-11-19",
        "--at", "2026-12-01", *extra,
    ]  # fmt: skip


def test_the_charts_points_are_the_summarys_days(repo: Path, tmp_path: Path) -> None:
    out = tmp_path / "pass-rate.svg"
    result = cli(repo, *summary_args("--format", "json", "--chart", str(out)))
    assert result.exit_code == EXIT_OK, result.output
    by_day = {d["key"]: d for d in json.loads(result.stdout)["by_day"]}
    root = SafeET.fromstring(out.read_bytes())
    points = root.findall(f".//{SVG}circle[@class='day']")
    assert [p.get("data-day") for p in points] == sorted(by_day)  # 8 days: none for the gap
    assert len(points) == 8
    for point in points:
        day = by_day[point.get("data-day")]
        assert int(point.get("data-messages")) == day["messages"]
        assert int(point.get("data-dmarc-pass")) == day["dmarc_pass"]
        assert float(point.get("data-rate")) == pytest.approx(day["pass_rate"], abs=0.005)
    # The line is broken where no report came (2026-11-25, -26): two segments, not one.
    assert len(root.findall(f"{SVG}polyline")) == 2
    # Plotted where the rate says: y grows downwards from 100% at the top of the plot.
    top, bottom = 56.0, 420 - 64.0
    for point in points:
        rate = float(point.get("data-rate"))
        assert float(point.get("cy")) == pytest.approx(
            bottom - (bottom - top) * rate / 100, abs=0.06
        )


def test_user_strings_are_escaped_in_the_svg() -> None:
    hostile = 'evil"><script>alert(1)</script>&\x1b[2J.example'
    summary = Summary(
        client="acme</title><g onload='x'>",
        domains=(hostile,),
        since=datetime(2026, 11, 1, tzinfo=UTC),
        until=datetime(2026, 11, 3, tzinfo=UTC),
        total=Stats(10, 10, 10, 10),
        groups={"day": {"2026-11-01": Stats(10, 10, 10, 10)}},
    )
    svg = svg_chart(summary)
    root = SafeET.fromstring(svg.encode())  # well-formed: nothing broke out
    assert root.find(f".//{SVG}script") is None
    assert root.find(f".//{SVG}g") is None
    assert root.get("data-client") == "acme</title><g onload='x'>"
    title = root.find(f"{SVG}title").text
    assert 'evil"><script>alert(1)</script>&\\x1b[2J.example' in title  # ESC shown, not sent
    assert "\x1b" not in svg


def test_an_empty_period_says_so_and_png_is_refused(repo: Path, tmp_path: Path) -> None:
    out = tmp_path / "empty.svg"
    args = ["reports", "summary", "--client", "fabrikam-labs", "--since", "2026-10-01",
            "--at", "2026-10-15", "--chart", str(out)]  # fmt: skip
    assert cli(repo, *args).exit_code == EXIT_OK
    root = SafeET.fromstring(out.read_bytes())
    assert root.findall(f".//{SVG}circle") == []
    assert "no report data in this period" in out.read_text()
    png = cli(repo, *summary_args("--chart", str(tmp_path / "chart.png")))
    assert png.exit_code == EXIT_INPUT
    assert "the chart is written as SVG only" in png.output and "rsvg-convert" in png.output
    assert not (tmp_path / "chart.png").exists()


# ---- AS grouping from an offline table ------------------------------------------------------------

TABLE = (
    "209.85.128.0\t209.85.255.255\t15169\tUS\tGOOGLE\n"
    "167.89.0.0\t167.89.127.255\t11377\tUS\tSENDGRID\n"
    "2a01:111::\t2a01:111:ffff:ffff:ffff:ffff:ffff:ffff\t8075\tUS\tMICROSOFT-CORP-MSN-AS-BLOCK\n"
    "192.0.2.0\t192.0.2.255\t0\tNone\tNot routed\n"
    "not an ip\t10.0.0.1\t1\tUS\tBROKEN\n"
    "10.0.0.9\t10.0.0.1\t1\tUS\tBACKWARDS\n"
)


def test_the_table_is_parsed_offline_and_looked_up_by_range() -> None:
    table = parse_asn_table(TABLE)
    assert table.skipped == 2  # malformed lines are counted, never guessed
    assert table.lookup("209.85.220.41") == "AS15169 GOOGLE"
    assert table.lookup("167.89.55.10") == "AS11377 SENDGRID"
    assert table.lookup("167.89.128.1") == UNKNOWN  # just past the range
    assert table.lookup("2a01:111:f400:7e1b::1") == "AS8075 MICROSOFT-CORP-MSN-AS-BLOCK"
    assert table.lookup("192.0.2.200") == "not routed"
    assert table.lookup("203.0.113.77") == UNKNOWN
    assert table.lookup("not-an-ip") == UNKNOWN


def test_the_summary_groups_sources_by_as(repo: Path, tmp_path: Path) -> None:
    table = tmp_path / "ip2asn-combined.tsv.gz"
    table.write_bytes(gzip.compress(TABLE.encode()))
    result = cli(repo, *summary_args("--format", "json", "--asn-table", str(table)))
    assert result.exit_code == EXIT_OK, result.output
    by_asn = {g["key"]: g["messages"] for g in json.loads(result.stdout)["by_asn"]}
    assert by_asn == {"AS15169 GOOGLE": 7700, "AS11377 SENDGRID": 800, UNKNOWN: 50}
    text = cli(repo, *summary_args("--asn-table", str(table))).stdout
    assert "per source AS (offline table)" in text
    # Without a table there is no AS group, and nothing is looked up.
    plain = json.loads(cli(repo, *summary_args("--format", "json")).stdout)
    assert "by_asn" not in plain
    empty = tmp_path / "empty.tsv"
    empty.write_text("# nothing\n")
    refused = cli(repo, *summary_args("--asn-table", str(empty)))
    assert refused.exit_code == EXIT_INPUT and "no IP range in the AS table" in refused.output
