"""Pass-rate evidence for a policy progression, computed from the report store and sealed by
hash: `dmarcops reports evidence` writes changes/evidence/reports-<sha256>.json, the request
names it (`details.report_evidence: <sha256>`, covered by the author's signature), and the one
gate (pipeline/gate/decide.py, rule `report-evidence`) reads it back and judges it against the
thresholds in policy/gate.yaml (`report_evidence`).

The gate recomputes every rate from the counts in the file, never trusts a rate written in it.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pipeline.errors import InputError
from pipeline.load.files import read_bytes
from pipeline.reports.summary import StoredRow, summarise

EVIDENCE_DIR = Path("changes") / "evidence"
EVIDENCE_NAME = re.compile(r"^reports-(?P<sha>[0-9a-f]{64})\.json$")
SHA256 = re.compile(r"^[0-9a-f]{64}$")
KIND = "dmarcops-report-evidence"
_TIME = "%Y-%m-%dT%H:%M:%SZ"
# An evidence file holds a few hundred sources at most.
MAX_EVIDENCE_BYTES = 4 * 1024 * 1024


@dataclass(frozen=True)
class SourceCount:
    source_ip: str
    messages: int
    dmarc_pass: int


@dataclass(frozen=True)
class Evidence:
    sha256: str
    client: str
    domain: str
    since: datetime
    until: datetime
    reports: int
    messages: int
    dmarc_pass: int
    sources: tuple[SourceCount, ...]

    @property
    def days(self) -> float:
        return (self.until - self.since).total_seconds() / 86400


def evidence_document(
    rows: list[StoredRow], reports: int, client: str, domain: str, since: datetime, until: datetime
) -> dict[str, Any]:
    summary = summarise(rows, client, (domain,), since, until)
    total = summary.total
    return {
        "format_version": 1,
        "kind": KIND,
        "client": client,
        "domain": domain,
        "since": since.strftime(_TIME),
        "until": until.strftime(_TIME),
        "reports": reports,
        **total.as_dict(),
        "sources": [
            {"source_ip": key, **stats.as_dict()}
            for key, stats in summary.groups["source_ip"].items()
        ],
        "reporters": [
            {"org_name": key, **stats.as_dict()}
            for key, stats in summary.groups["reporter"].items()
        ],
        "days": [{"day": key, **stats.as_dict()} for key, stats in summary.groups["day"].items()],
    }


def canonical(document: Mapping[str, Any]) -> bytes:
    return (json.dumps(document, indent=2, sort_keys=True, ensure_ascii=True) + "\n").encode()


def write_evidence(root: Path, document: Mapping[str, Any]) -> tuple[str, Path]:
    """Write the document under its own hash; the same numbers always give the same file."""
    from pipeline.load.files import replace_text

    data = canonical(document)
    digest = hashlib.sha256(data).hexdigest()
    path = root / EVIDENCE_DIR / f"reports-{digest}.json"
    replace_text(path, data.decode("ascii"), root=root)
    return digest, path


def _int(data: Mapping[str, Any], key: str, where: str) -> int:
    value = data.get(key)
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ValueError(f"{where}{key} is not a count")
    return value


def load_evidence(root: Path, digest: str) -> Evidence:
    """The evidence file named by `digest`, checked: it must hash to its name and hold counts
    that add up. An InputError says why not."""
    if not SHA256.match(digest):
        raise InputError(f"report_evidence {digest[:80]!r} is not a SHA-256 (64 hex digits)")
    path = root / EVIDENCE_DIR / f"reports-{digest}.json"
    raw = read_bytes(path, limit=MAX_EVIDENCE_BYTES, root=root)
    if hashlib.sha256(raw).hexdigest() != digest:
        raise InputError(
            "the evidence file does not hash to its name: it was edited after it was computed",
            file=path,
        )
    try:
        data = json.loads(raw)
        if not isinstance(data, dict) or data.get("kind") != KIND:
            raise ValueError("not a dmarcops report-evidence file")
        sources = []
        for number, source in enumerate(data.get("sources", []), start=1):
            if not isinstance(source, dict):
                raise ValueError(f"source {number} is not an object")
            sources.append(
                SourceCount(
                    str(source.get("key", source.get("source_ip", ""))),
                    _int(source, "messages", f"source {number}: "),
                    _int(source, "dmarc_pass", f"source {number}: "),
                )
            )
        evidence = Evidence(
            sha256=digest,
            client=str(data["client"]),
            domain=str(data["domain"]),
            since=datetime.strptime(str(data["since"]), _TIME).replace(tzinfo=UTC),
            until=datetime.strptime(str(data["until"]), _TIME).replace(tzinfo=UTC),
            reports=_int(data, "reports", ""),
            messages=_int(data, "messages", ""),
            dmarc_pass=_int(data, "dmarc_pass", ""),
            sources=tuple(sources),
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise InputError(f"not a usable evidence file: {exc}", file=path) from None
    if evidence.dmarc_pass > evidence.messages or any(
        s.dmarc_pass > s.messages for s in evidence.sources
    ):
        raise InputError("not a usable evidence file: more passes than messages", file=path)
    if sum(s.messages for s in evidence.sources) != evidence.messages:
        raise InputError(
            "not a usable evidence file: the sources do not add up to the total", file=path
        )
    return evidence
