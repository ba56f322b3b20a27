"""The WORM archive (issue 12, item 5) against moto's S3 server with Object Lock: sealed records and
the ledger archived in COMPLIANCE mode, never overwritten, and every difference named."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
from aws_server import MotoServer
from botocore.exceptions import ClientError
from clockcli import invoke_at
from hosted_fixtures import aws_environment
from signing import JCHEN, MHARA, genesis
from test_records import make_record

from pipeline.errors import EXIT_GATE, EXIT_INPUT
from pipeline.records import Outcome, RecordStore

START = datetime(2026, 7, 7, 9, 30, tzinfo=UTC)
BUCKET = "msp-dmarcops-archive"
URL = f"s3://{BUCKET}/changes"


@pytest.fixture
def s3(moto_server: MotoServer, monkeypatch: pytest.MonkeyPatch) -> Any:
    moto_server.reset()
    aws_environment(monkeypatch, moto_server.url)
    client = boto3.client("s3")
    client.create_bucket(Bucket=BUCKET, ObjectLockEnabledForBucket=True)
    return client


@pytest.fixture
def store(tmp_path: Path) -> RecordStore:
    store = genesis(tmp_path / "repo")
    for n in range(3):
        at = START + timedelta(days=n)
        store.create(lambda rid, a=at: make_record(rid, executed_at=a), at, JCHEN)
    for rid in ("2026-0001", "2026-0002"):
        store.seal(
            rid,
            Outcome.ACCEPTED,
            START + timedelta(days=10),
            MHARA,
            without_evidence="no reports in this test",
        )
    return store


def run(store: RecordStore, *args: str) -> tuple[int, str]:
    result = invoke_at(["--repo", str(store.changes_dir.parent), *args])
    return result.exit_code, result.output


def _verify(store: RecordStore) -> tuple[int, str]:
    return run(store, "audit", "verify", "--archive", URL, "--at", "2026-08-01T00:00:00Z")


def test_sealed_records_and_the_ledger_are_archived_locked(store: RecordStore, s3: Any) -> None:
    code, output = run(store, "records", "archive", "--to", URL, "--at", "2026-07-20T12:00:00Z")
    assert code == 0, output
    assert output == f"archived: 5 object(s) written to {URL}\n"  # 2 records x 2, 1 segment
    keys = sorted(o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET)["Contents"])
    assert keys == [
        "changes/ledger/00000001-00000006.jsonl",
        "changes/records/2026-0001.json",
        "changes/records/2026-0001.md",
        "changes/records/2026-0002.json",
        "changes/records/2026-0002.md",
    ]
    held = s3.head_object(Bucket=BUCKET, Key="changes/records/2026-0001.json")
    assert held["ObjectLockMode"] == "COMPLIANCE"
    assert held["ObjectLockRetainUntilDate"] > datetime(2120, 1, 1, tzinfo=UTC)  # regulated
    assert _verify(store)[0] == 0
    # The archive cannot be rewritten: the locked version cannot be deleted.
    version = s3.head_object(Bucket=BUCKET, Key="changes/records/2026-0001.json")["VersionId"]
    with pytest.raises(ClientError):
        s3.delete_object(Bucket=BUCKET, Key="changes/records/2026-0001.json", VersionId=version)
    # Archiving again writes only what is new: the third record once sealed, the new lines.
    store.seal(
        "2026-0003",
        Outcome.ACCEPTED,
        START + timedelta(days=11),
        MHARA,
        without_evidence="no reports in this test",
    )
    code, output = run(store, "records", "archive", "--to", URL, "--at", "2026-07-21T12:00:00Z")
    assert output == f"archived: 3 object(s) written to {URL}\n", output
    assert _verify(store)[0] == 0


def test_every_difference_with_the_archive_is_named(store: RecordStore, s3: Any) -> None:
    run(store, "records", "archive", "--to", URL, "--at", "2026-07-20T12:00:00Z")
    # Someone with admin rights over the repository rewrites a sealed record and its ledger line.
    path = store.json_path("2026-0001")
    path.write_text(path.read_text().replace("99.3%", "99.9%"))
    store.markdown_path("2026-0002").unlink()
    lines = store.ledger.path.read_text().splitlines()
    store.ledger.path.write_text("\n".join(lines[:-1]) + "\n")
    code, output = _verify(store)
    assert code == EXIT_GATE, output
    assert "archive: 2026-0001: 2026-0001.json differs from the archived copy (edited)" in output
    assert "archive: 2026-0002: 2026-0002.md is in the archive but not in the repository" in output
    assert "archive: ledger: line 6 is archived but gone from the repository" in output
    # Archiving again does not overwrite the genuine copy with the edited one.
    code, output = run(store, "records", "archive", "--to", URL, "--at", "2026-07-21T12:00:00Z")
    assert code == EXIT_GATE
    assert "records/2026-0001.json: differs from what the ledger recorded; not archived" in output
    body = s3.get_object(Bucket=BUCKET, Key="changes/records/2026-0001.json")["Body"].read()
    assert b"99.3%" in body


def test_a_bad_location_or_an_unreachable_archive_is_a_clear_error(
    store: RecordStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    code, output = run(store, "records", "archive", "--to", "https://example.com/x")
    assert code == EXIT_INPUT and "is not an S3 location" in output
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # nothing listens there
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "x")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "y")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    code, output = run(store, "records", "archive", "--to", URL)
    assert code == EXIT_INPUT and "cannot be used" in output and "Traceback" not in output
