"""`dmarcops reports ingest s3://bucket/prefix` against moto's S3 in server mode on loopback (the
same standalone server the Route 53 tests use: boto3 talks HTTP as it does to AWS)."""

from __future__ import annotations

from pathlib import Path

import boto3
import pytest
from aws_server import REGION, MotoServer
from click.testing import CliRunner
from hosted_fixtures import aws_environment
from portfolio import copy_example
from reports_fixtures import GOOGLE, MALFORMED, OUTLOOK, YAHOO, gzipped, report_mail, zipped

from pipeline.cli import main
from pipeline.errors import EXIT_INPUT


@pytest.fixture
def bucket(moto_server: MotoServer, monkeypatch: pytest.MonkeyPatch) -> str:
    moto_server.reset()
    aws_environment(monkeypatch, moto_server.url)
    s3 = boto3.client("s3", endpoint_url=moto_server.url, region_name=REGION)
    s3.create_bucket(Bucket="msp-rua")
    objects = {
        "fabrikam/2026/11/20/google.zip": zipped(GOOGLE),
        "fabrikam/2026/11/21/outlook.eml": report_mail(
            "dmarcreport@microsoft.com", "Report", "o.xml.gz", gzipped(OUTLOOK.read_bytes()), "gzip"
        ),
        "fabrikam/2026/11/22/yahoo.xml.gz": gzipped(YAHOO.read_bytes()),
        "fabrikam/2026/11/22/broken.xml": MALFORMED.read_bytes(),
        "contoso/2026/11/22/google.zip": zipped(GOOGLE),  # outside the prefix: not read
    }
    for key, body in objects.items():
        s3.put_object(Bucket="msp-rua", Key=key, Body=body)
    return "msp-rua"


def test_ingest_an_s3_prefix(bucket: str, tmp_path: Path) -> None:
    repo = copy_example(tmp_path / "repo")
    result = CliRunner().invoke(
        main, ["--repo", str(repo), "reports", "ingest", f"s3://{bucket}/fabrikam/"]
    )
    assert result.exit_code == EXIT_INPUT, result.output  # the broken report
    assert "s3://msp-rua/fabrikam/2026/11/22/broken.xml: not well-formed XML" in result.output
    assert (
        "ingested 4 file(s): 3 new report(s) (8 records, 267 messages), 0 duplicate(s), "
        "1 problem(s)" in result.output
    )


def test_a_missing_bucket_is_an_input_error(
    moto_server: MotoServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    moto_server.reset()
    aws_environment(monkeypatch, moto_server.url)
    repo = copy_example(tmp_path / "repo")
    result = CliRunner().invoke(main, ["--repo", str(repo), "reports", "ingest", "s3://nope/x"])
    assert result.exit_code == EXIT_INPUT
    assert "error: s3://nope/x: cannot read s3://nope/x" in result.output
    assert "NoSuchBucket" in result.output
    assert "Traceback" not in result.output
