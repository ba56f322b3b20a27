"""Aggregate reports (issue 14): parsing every reporter's shape to hand-checked counts, every
container, duplicates, broken and hostile inputs, and `dmarcops reports ingest|summary` through
the real CLI. The counts are worked out by hand in tests/reports_fixtures.py."""

from __future__ import annotations

import csv
import io
import json
import os
import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from portfolio import copy_example
from reports_fixtures import (
    BILLION_LAUGHS,
    GOOGLE,
    INVALID_UTF8,
    MALFORMED,
    OUTLOOK,
    RFC9990,
    XXE,
    YAHOO,
    build_drop,
    gzipped,
    mbox,
    report_mail,
    zipped,
)

from pipeline.cli import main
from pipeline.errors import EXIT_CRASH, EXIT_INPUT, EXIT_OK
from pipeline.reports.ingest import IngestResult, ingest_bytes
from pipeline.reports.parse import ReportError, parse_report
from pipeline.reports.store import open_store
from pipeline.reports.unpack import Payload, Problem, UnpackLimits, kind_of, unpack

AT = "2026-11-30T00:00:00Z"


# ---- parsing: one reporter at a time -----------------------------------------------------------


def test_google_report_hand_counts() -> None:
    report = parse_report(GOOGLE.read_bytes())
    assert (report.org_name, report.report_id) == ("google.com", "13620148735420563714")
    assert report.domain == "fabrikam.example" and report.policy == "none" and report.pct == 100
    assert report.schema == "rfc7489" and report.namespace == ""
    assert report.begin.isoformat() == "2026-11-20T00:00:00+00:00"
    assert [r.count for r in report.rows] == [120, 40, 5, 3]
    assert report.messages == 168
    assert sum(r.count for r in report.rows if r.dkim_aligned) == 160
    assert sum(r.count for r in report.rows if r.spf_aligned) == 120
    assert sum(r.count for r in report.rows if r.dmarc_pass) == 160
    sendgrid = report.rows[1]
    assert [(a.method, a.domain, a.result) for a in sendgrid.auth] == [
        ("dkim", "fabrikam.example", "pass"),
        ("dkim", "sendgrid.net", "pass"),
        ("spf", "bounces.sendgrid.net", "pass"),
    ]
    assert report.warnings == ()


def test_microsoft_report_is_rfc7489_despite_its_version_element() -> None:
    report = parse_report(OUTLOOK.read_bytes())
    assert report.org_name == "Enterprise Outlook" and report.version == "1.0"
    assert report.schema == "rfc7489"
    first, forwarded = report.rows
    assert first.source_ip == "2a01:111:f400:7e1b::200"
    assert (first.envelope_from, first.envelope_to) == ("fabrikam.example", "outlook.com")
    assert forwarded.reasons == ("forwarded",) and not forwarded.dmarc_pass
    assert report.messages == 42


def test_yahoo_report_hand_counts() -> None:
    report = parse_report(YAHOO.read_bytes())
    assert report.report_id == "1795305600.284617" and report.messages == 57
    assert sum(r.count for r in report.rows if r.dmarc_pass) == 50


def test_rfc9990_report_reads_its_new_elements() -> None:
    report = parse_report(RFC9990.read_bytes())
    assert report.namespace == "urn:ietf:params:xml:ns:dmarc-2.0" and report.schema == "rfc9990"
    assert (report.np, report.testing, report.discovery_method) == ("reject", "n", "treewalk")
    assert report.generator == "Example DMARC Aggregate Reporter v1.2"
    assert report.pct is None and report.adkim == "s"
    good, spoof = report.rows
    assert good.disposition == "pass" and good.count == 200 and good.dmarc_pass
    assert [(a.selector, a.scope) for a in good.auth] == [("nwh2026", ""), ("", "mfrom")]
    assert spoof.disposition == "quarantine" and spoof.count == 2 and not spoof.dmarc_pass


def test_invalid_utf8_is_read_with_a_warning() -> None:
    report = parse_report(INVALID_UTF8.read_bytes())
    assert report.org_name == "Mail R\ufffdseau"
    assert report.messages == 11 and sum(r.count for r in report.rows if r.dmarc_pass) == 10
    assert report.warnings == ("invalid UTF-8 at byte 90: read with U+FFFD in its place",)


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (MALFORMED.read_bytes(), "not well-formed XML: unclosed token: line 33, column 4"),
        (BILLION_LAUGHS, "refused: the XML uses DTDForbidden features"),
        (XXE, "refused: the XML uses DTDForbidden features"),
        (b"<html><body>phish</body></html>", "root element is <html>"),
        (b"<feedback/>", "<report_metadata> is missing"),
        (
            GOOGLE.read_bytes().replace(b"<count>120</count>", b"<count>-1</count>"),
            "record 1: count '-1' is not a whole number",
        ),
        (
            GOOGLE.read_bytes().replace(b"209.85.220.41", b"not-an-ip"),
            "record 1: source_ip 'not-an-ip' is not an IP address",
        ),
        (
            GOOGLE.read_bytes().replace(b"<begin>1795132800", b"<begin>99999999999999999999"),
            "date_range/begin: 99999999999999999999 is not a plausible report time",
        ),
        (
            GOOGLE.read_bytes().replace(b"<end>1795219199", b"<end>1795000000"),
            "date_range: end is before begin",
        ),
    ],
)
def test_broken_reports_say_why(data: bytes, reason: str) -> None:
    with pytest.raises(ReportError) as caught:
        parse_report(data)
    assert reason in caught.value.reason


# ---- containers --------------------------------------------------------------------------------


def _names(items: list[Payload | Problem]) -> list[tuple[str, str]]:
    return [
        (type(i).__name__, i.name if isinstance(i, Payload) else f"{i.name}: {i.reason}")
        for i in items
    ]


def test_containers_are_recognised_by_content() -> None:
    xml = GOOGLE.read_bytes()
    assert kind_of(xml) == "xml"
    assert kind_of(b"\xef\xbb\xbf\n" + xml) == "xml"
    assert kind_of(gzipped(xml)) == "gzip"
    assert kind_of(zipped(GOOGLE)) == "zip"
    mail = report_mail("a@b.example", "r", "r.xml", xml, "xml")
    assert kind_of(mail) == "mail"
    assert kind_of(mbox(mail)) == "mbox"
    assert kind_of(b"\x00\x01binary") == "unknown"
    assert kind_of(b"Return-Path:<bounce@b.example>\nFrom: a@b.example\n\nhi") == "mail"
    # A gzip named .zip is still read as gzip.
    items = list(unpack("report.zip", gzipped(xml)))
    assert [type(i) for i in items] == [Payload] and items[0].data == xml


def test_mail_inside_zip_inside_mbox() -> None:
    inner = report_mail("a@b.example", "r", "r.xml.gz", gzipped(YAHOO.read_bytes()), "gzip")
    archive = io.BytesIO()
    import zipfile

    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("forwarded.eml", inner)
    outer = report_mail("fwd@b.example", "fwd", "bundle.zip", archive.getvalue(), "zip")
    items = list(unpack("inbox.mbox", mbox(outer)))
    assert _names(items) == [("Payload", "inbox.mbox!message1!bundle.zip!forwarded.eml!r.xml.gz")]


def test_container_limits() -> None:
    small = UnpackLimits(max_xml_bytes=10_000, max_depth=2)
    bomb = gzipped(b"<feedback>" + b" " * 50_000_000 + b"</feedback>")
    assert len(bomb) < 100_000
    assert _names(list(unpack("bomb.gz", bomb, small))) == [
        ("Problem", "bomb.gz: refused: decompresses to more than 10000 bytes")
    ]
    nested = gzipped(gzipped(gzipped(GOOGLE.read_bytes())))
    assert "nested more than 2 containers deep" in _names(list(unpack("n.gz", nested, small)))[0][1]
    assert (
        _names(list(unpack("bad.gz", b"\x1f\x8b\x08garbage")))
        == [
            (
                "Problem",
                "bad.gz: not a readable gzip: Compressed file ended before the end-of-stream marker was reached",
            )
        ]
        or "not a readable gzip" in _names(list(unpack("bad.gz", b"\x1f\x8b\x08garbage")))[0][1]
    )
    assert "not a readable zip" in _names(list(unpack("bad.zip", b"PK\x03\x04garbage")))[0][1]
    text_only = b"From: a@b.example\nSubject: hello\n\nno attachment here\n"
    assert _names(list(unpack("m.eml", text_only)))[0][1].endswith(
        "no report attachment (XML, gzip or zip) in the mail"
    )


def test_duplicates_are_stored_once(tmp_path: Path) -> None:
    connection = open_store(tmp_path / "r.sqlite")
    result = IngestResult()
    ingest_bytes(connection, "a.xml", GOOGLE.read_bytes(), result)
    ingest_bytes(connection, "a.zip", zipped(GOOGLE), result)
    ingest_bytes(
        connection,
        "a.eml",
        report_mail("x@y.example", "r", "a.xml", GOOGLE.read_bytes(), "xml"),
        result,
    )
    connection.commit()
    assert (result.stored, result.duplicates, result.records, result.messages) == (1, 2, 4, 168)
    assert connection.execute("SELECT count(*) FROM records").fetchone()[0] == 4


# ---- the CLI -----------------------------------------------------------------------------------


def run(repo: Path, *args: str) -> Result:
    result = CliRunner().invoke(
        main, ["--repo", str(repo), *args], env={"XDG_STATE_HOME": str(repo / ".state")}
    )
    assert result.exit_code != EXIT_CRASH, result.output
    assert "Traceback" not in result.output
    return result


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return copy_example(tmp_path / "repo")


def test_ingest_a_drop_and_summarise(repo: Path, tmp_path: Path) -> None:
    drop = build_drop(tmp_path / "drop")
    result = run(repo, "reports", "ingest", str(drop))
    assert result.exit_code == EXIT_INPUT  # the malformed report is an input problem ...
    out = result.output
    assert "malformed-truncated.xml: not well-formed XML: unclosed token: line 33, column 4" in out
    assert "invalid-utf8-contoso-retail.example.xml: invalid UTF-8 at byte 90" in out
    # ... and everything else is stored: 6 files, 5 reports, the mbox's Google zip a duplicate.
    assert (
        "ingested 6 file(s): 5 new report(s) (12 records, 480 messages), 1 duplicate(s), 1 problem(s)"
        in out
    )
    assert "reports.sqlite: 5 reports, 12 records" in out
    assert (repo / ".dmarcops" / "reports.sqlite").is_file()

    again = run(repo, "reports", "ingest", str(drop))
    assert "0 new report(s) (0 records, 0 messages), 6 duplicate(s)" in again.output

    text = run(
        repo, "reports", "summary", "--client", "fabrikam-labs", "--since", "30d", "--at", AT
    )
    assert text.exit_code == EXIT_OK, text.output
    assert "267 messages, 240 DKIM-aligned, 200 SPF-aligned, 240 DMARC pass (89.9%)" in text.output
    assert "catalog: Mailgun" in text.output

    doc = json.loads(
        run(
            repo, "reports", "summary", "--client", "fabrikam-labs", "--at", AT, "--format", "json"
        ).output
    )
    assert doc["total"] == {
        "messages": 267,
        "dkim_aligned": 240,
        "spf_aligned": 200,
        "dmarc_pass": 240,
        "pass_rate": 89.89,
    }
    by_ip = {row["key"]: (row["messages"], row["dmarc_pass"]) for row in doc["by_source_ip"]}
    assert by_ip == {
        "209.85.220.41": (170, 170),
        "167.89.55.10": (40, 40),
        "2a01:111:f400:7e1b::200": (30, 30),
        "192.0.2.200": (12, 0),
        "198.51.100.23": (12, 0),
        "203.0.113.77": (3, 0),
    }
    assert [(r["key"], r["messages"], r["dmarc_pass"]) for r in doc["by_day"]] == [
        ("2026-11-20", 168, 160),
        ("2026-11-21", 42, 30),
        ("2026-11-22", 57, 50),
    ]
    assert {r["key"]: r["messages"] for r in doc["by_reporter"]} == {
        "google.com": 168,
        "Enterprise Outlook": 42,
        "Yahoo": 57,
    }
    assert {r["key"]: r["messages"] for r in doc["by_envelope_from"]} == {
        "(none)": 225,
        "fabrikam.example": 30,
        "lists.forwarder.example": 12,
    }
    failing = [
        (
            s["source_ip"],
            s["failing_messages"],
            s["catalog_sender"],
            s["suggested_action"].split(":")[0],
        )
        for s in doc["failing_sources"]
    ]
    assert failing == [
        ("192.0.2.200", 12, None, "ignore"),
        (
            "198.51.100.23",
            12,
            "Mailgun",
            "publish a DKIM selector for fabrikam.example at Mailgun (it signs as mailgun.org, which does not align)",
        ),
        ("203.0.113.77", 3, None, "ignore as abuse unless you recognise the IP"),
    ]

    rows = list(
        csv.reader(
            io.StringIO(
                run(
                    repo,
                    "reports",
                    "summary",
                    "--client",
                    "fabrikam-labs",
                    "--at",
                    AT,
                    "--format",
                    "csv",
                ).output
            )
        )
    )
    assert rows[0] == [
        "group",
        "key",
        "messages",
        "dkim_aligned",
        "spf_aligned",
        "dmarc_pass",
        "pass_rate",
    ]
    assert rows[1] == ["total", "all", "267", "240", "200", "240", "89.89"]

    nwh = json.loads(
        run(
            repo,
            "reports",
            "summary",
            "--client",
            "northwind-health",
            "--domain",
            "northwind-health.example",
            "--at",
            AT,
            "--format",
            "json",
        ).output
    )
    assert (nwh["total"]["messages"], nwh["total"]["dmarc_pass"]) == (202, 200)
    contoso = json.loads(
        run(
            repo, "reports", "summary", "--client", "contoso-retail", "--at", AT, "--format", "json"
        ).output
    )
    assert (contoso["total"]["messages"], contoso["total"]["dmarc_pass"]) == (11, 10)

    # A period with no reports is "no evidence", never a 100% pass rate.
    empty = run(
        repo, "reports", "summary", "--client", "fabrikam-labs", "--since", "2d", "--at", AT
    )
    assert "0 messages" in empty.output and "no evidence either way" in empty.output
    since = run(
        repo,
        "reports",
        "summary",
        "--client",
        "fabrikam-labs",
        "--since",
        "2026-11-21",
        "--at",
        AT,
        "--format",
        "json",
    )
    assert json.loads(since.output)["total"]["messages"] == 99


def test_the_store_is_rebuildable(repo: Path, tmp_path: Path) -> None:
    drop = build_drop(tmp_path / "drop")
    run(repo, "reports", "ingest", str(drop))
    store = repo / ".dmarcops" / "reports.sqlite"
    before = (
        sqlite3.connect(store)
        .execute(
            "SELECT org_name, report_id, count(*), sum(count) FROM reports JOIN records ON records.report = reports.id GROUP BY reports.id ORDER BY org_name"
        )
        .fetchall()
    )
    store.unlink()
    run(repo, "reports", "ingest", str(drop))
    after = (
        sqlite3.connect(store)
        .execute(
            "SELECT org_name, report_id, count(*), sum(count) FROM reports JOIN records ON records.report = reports.id GROUP BY reports.id ORDER BY org_name"
        )
        .fetchall()
    )
    assert before == after and len(after) == 5


def test_nothing_to_store_writes_nothing(repo: Path, tmp_path: Path) -> None:
    result = run(repo, "reports", "ingest", str(tmp_path / "no-such-file"), str(MALFORMED))
    assert result.exit_code == EXIT_INPUT
    assert "no-such-file: cannot read: No such file or directory" in result.output
    assert "store .dmarcops/reports.sqlite: not written (nothing to store)" in result.output or (
        "not written (nothing to store)" in result.output
    )
    assert not (repo / ".dmarcops").exists()


def test_summary_input_errors(repo: Path) -> None:
    missing = run(repo, "reports", "summary", "--client", "fabrikam-labs")
    assert missing.exit_code == EXIT_INPUT and "no report store yet" in missing.output
    unknown = run(repo, "reports", "summary", "--client", "nobody")
    assert unknown.exit_code == EXIT_INPUT and "no client 'nobody'" in unknown.output
    other = run(
        repo,
        "reports",
        "summary",
        "--client",
        "fabrikam-labs",
        "--domain",
        "contoso-retail.example",
    )
    assert other.exit_code == EXIT_INPUT and "is not a domain of fabrikam-labs" in other.output
    bad = run(repo, "reports", "summary", "--client", "fabrikam-labs", "--since", "last week")
    assert bad.exit_code == EXIT_INPUT and "neither a duration nor a date" in bad.output


# ---- hostile inputs through the CLI ------------------------------------------------------------


def test_hostile_inputs_are_named_and_the_rest_go_on(repo: Path, tmp_path: Path) -> None:
    drop = tmp_path / "hostile"
    drop.mkdir()
    (drop / "bomb.xml").write_bytes(BILLION_LAUGHS)
    (drop / "xxe.xml").write_bytes(XXE)
    (drop / "passwd.xml").symlink_to("/etc/passwd")
    os.mkfifo(drop / "fifo.xml")
    # A sparse 300 MiB file: refused by its size before a byte is read.
    with open(drop / "huge.xml", "wb") as huge:
        huge.truncate(300 * 1024 * 1024)
    (drop / "zipbomb.gz").write_bytes(gzipped(b"<feedback>" + b" " * 40_000_000))
    (drop / "random.bin").write_bytes(bytes(range(256)) * 4)
    (drop / "good.xml.gz").write_bytes(gzipped(YAHOO.read_bytes()))
    result = run(repo, "reports", "ingest", str(drop))
    assert result.exit_code == EXIT_INPUT
    out = result.output
    assert "bomb.xml: refused: the XML uses DTDForbidden features" in out
    assert "xxe.xml: refused: the XML uses DTDForbidden features" in out
    assert "root:" not in out  # /etc/passwd's content never shows
    assert "passwd.xml: refused: the file is a symbolic link" in out
    assert "fifo.xml: refused: the file is a FIFO (named pipe)" in out
    assert (
        "huge.xml: refused: the file is 314572800 bytes, over the limit of 268435456 bytes" in out
    )
    assert "zipbomb.gz: refused: decompresses to more than 33554432 bytes" in out
    assert "random.bin: not a report: neither XML, gzip, zip nor a mail" in out
    assert "1 new report(s) (2 records, 57 messages), 0 duplicate(s), 7 problem(s)" in out


def test_a_linked_store_directory_is_refused(repo: Path, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (repo / ".dmarcops").symlink_to(elsewhere)
    result = run(repo, "reports", "ingest", str(GOOGLE))
    assert result.exit_code == EXIT_INPUT
    assert "resolves outside the repository" in result.output
    assert not list(elsewhere.iterdir())
