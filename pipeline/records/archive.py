"""The WORM archive (issue 12, item 5): sealed records and the ledger, also where nobody can
rewrite them.

A repository's history can be rewritten by whoever administers it. So `dmarcops records archive
--to s3://bucket/prefix` also writes every sealed record (JSON and markdown) and the ledger, in
segments, to an S3 bucket with Object Lock, each object in COMPLIANCE mode (not even the bucket's
owner can shorten or remove it) until the record's retention ends (pipeline.records.retention;
indefinitely kept records and the ledger: 100 years). An object already in the archive is never
overwritten: if it differs, that is reported and left alone.

`verify_archive` compares the repository with the archive and names every difference: a record
edited, removed or never archived, a ledger line that is not what was archived.

Layout under the prefix: `records/<id>.json`, `records/<id>.md`,
`ledger/<first seq:08d>-<last seq:08d>.jsonl` (consecutive segments, each appended once).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from pipeline.errors import EnvironmentProblem, InputError
from pipeline.load.files import read_bytes
from pipeline.load.portfolio import ClientProfile
from pipeline.records.ledger import LedgerEvent, split_lines
from pipeline.records.retention import kept_until
from pipeline.records.store import RecordStore

_URL = re.compile(r"^s3://([a-z0-9][a-z0-9.-]{1,61}[a-z0-9])(?:/(.*))?$")
_SEGMENT = re.compile(r"^ledger/(\d{8})-(\d{8})\.jsonl$")
FOREVER = timedelta(days=365 * 100)


@dataclass(frozen=True)
class ArchiveUrl:
    bucket: str
    prefix: str  # "" or "a/b/" (always ending in "/")

    @classmethod
    def parse(cls, text: str) -> ArchiveUrl:
        match = _URL.match(text.strip())
        if match is None:
            raise InputError(
                f"{text!r} is not an S3 location",
                hint="Write s3://BUCKET/PREFIX (the bucket must have Object Lock enabled).",
            )
        prefix = (match.group(2) or "").strip("/")
        return cls(match.group(1), f"{prefix}/" if prefix else "")

    def key(self, name: str) -> str:
        return self.prefix + name


def _client() -> Any:
    import boto3

    return boto3.client("s3")


def _fail(exc: Exception, url: ArchiveUrl) -> EnvironmentProblem:
    return EnvironmentProblem(
        f"the archive s3://{url.bucket}/{url.prefix} cannot be used: {type(exc).__name__}: {exc}",
        hint="Check the bucket (Object Lock enabled), the credentials (the standard AWS chain) "
        "and AWS_ENDPOINT_URL.",
    )


def _listing(s3: Any, url: ArchiveUrl) -> dict[str, str]:
    """Every key under the prefix (relative to it) and its ETag."""
    out: dict[str, str] = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=url.bucket, Prefix=url.prefix):
        for item in page.get("Contents", []):
            out[item["Key"][len(url.prefix) :]] = item["ETag"]
    return out


def _get(s3: Any, url: ArchiveUrl, name: str) -> bytes:
    body: bytes = s3.get_object(Bucket=url.bucket, Key=url.key(name))["Body"].read()
    return body


@dataclass(frozen=True)
class ArchiveRun:
    written: tuple[str, ...]
    # What was not archived, and why: an object already archived with other content (left
    # alone), a record file that cannot be read.
    refused: tuple[str, ...]


def archive(
    store: RecordStore, clients: Mapping[str, ClientProfile], url: ArchiveUrl, now: datetime
) -> ArchiveRun:
    import botocore.exceptions

    s3 = _client()
    written: list[str] = []
    refused: list[str] = []
    try:
        existing = _listing(s3, url)
        recorded = {e.record_id: e.record_sha256 for e in store.ledger.read() if e.record_id}
        for record in store.all():
            if not record.sealed:
                continue
            if record.sha256() != recorded.get(record.id):
                # Never lock an edited file into the archive: the genuine one could not follow.
                refused.append(
                    f"records/{record.id}.json: differs from what the ledger recorded; not archived"
                )
                continue
            until = kept_until(record, clients.get(record.client)) or now + FOREVER
            for name, path in (
                (f"records/{record.id}.json", store.json_path(record.id)),
                (f"records/{record.id}.md", store.markdown_path(record.id)),
            ):
                try:
                    body = read_bytes(path, root=store.changes_dir.parent, log=True)
                except InputError as exc:
                    refused.append(f"{name}: {exc.message}; not archived")
                    continue
                if name in existing:
                    if _get(s3, url, name) != body:
                        refused.append(
                            f"{name}: the archive holds different content; not overwritten"
                        )
                    continue
                _put(s3, url, name, body, max(until, now + timedelta(days=1)))
                written.append(name)
        lines = store.ledger.lines()
        archived = max((int(m.group(2)) for k in existing if (m := _SEGMENT.match(k))), default=0)
        if archived < len(lines):
            name = f"ledger/{archived + 1:08d}-{len(lines):08d}.jsonl"
            body = "".join(f"{line}\n" for line in lines[archived:]).encode("utf-8")
            _put(s3, url, name, body, now + FOREVER)
            written.append(name)
    except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:
        raise _fail(exc, url) from None
    return ArchiveRun(tuple(written), tuple(refused))


def _put(s3: Any, url: ArchiveUrl, name: str, body: bytes, until: datetime) -> None:
    s3.put_object(
        Bucket=url.bucket,
        Key=url.key(name),
        Body=body,
        ObjectLockMode="COMPLIANCE",
        ObjectLockRetainUntilDate=until,
    )


def verify_archive(store: RecordStore, url: ArchiveUrl) -> list[str]:
    """Every difference between the repository and the archive, by record or ledger line."""
    import botocore.exceptions

    s3 = _client()
    problems: list[str] = []
    try:
        existing = _listing(s3, url)
        purged = {e.record_id for e in store.ledger.read() if e.event is LedgerEvent.PURGED}
        archived_ids = set()
        for name in sorted(existing):
            match = re.match(r"^records/(\d{4}-\d{4,})\.(json|md)$", name)
            if match is None:
                continue
            rid = match.group(1)
            archived_ids.add(rid)
            path = (store.json_path if match.group(2) == "json" else store.markdown_path)(rid)
            if not path.exists():
                if rid not in purged:
                    problems.append(
                        f"{rid}: {path.name} is in the archive but not in the repository"
                    )
            else:
                try:
                    here = read_bytes(path, root=store.changes_dir.parent, log=True)
                except InputError as exc:
                    problems.append(f"{rid}: {path.name}: {exc.message}")
                    continue
                if here != _get(s3, url, name):
                    problems.append(f"{rid}: {path.name} differs from the archived copy (edited)")
        for record in store.all():
            if record.sealed and record.id not in archived_ids:
                problems.append(f"{record.id}: sealed, but not in the archive yet")
        segments = sorted(
            (int(m.group(1)), int(m.group(2)), k) for k in existing if (m := _SEGMENT.match(k))
        )
        expected_first = 1
        archived_lines: list[str] = []
        for first, last, name in segments:
            if first != expected_first:
                problems.append(
                    f"ledger: archived segments skip lines {expected_first}-{first - 1}"
                )
            archived_lines += split_lines(_get(s3, url, name).decode("utf-8", "replace"))
            expected_first = last + 1
        lines = store.ledger.lines()
        for number, archived_line in enumerate(archived_lines, 1):
            if number > len(lines):
                problems.append(f"ledger: line {number} is archived but gone from the repository")
                break
            if lines[number - 1] != archived_line:
                problems.append(f"ledger: line {number} differs from the archived one")
    except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:
        raise _fail(exc, url) from None
    return problems
