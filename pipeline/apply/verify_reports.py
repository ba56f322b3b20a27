"""Verification in the rollback window (issue 14 part 5): the aggregate reports received since a
change, compared with the baseline before it, per domain and per major source.

The verdict for a record is one of:
- `accepted`: post-change reports cover enough days and mail, the volume did not collapse, the
  domain's own mail passes DMARC about as well as before, no legitimate source fails;
- `no-evidence`: not enough post-change data to say (no reports yet, too few days or messages,
  the volume collapsed, no thresholds in the policy, no report store): the record stays open;
- `anomaly`: a legitimate major source newly failing, the domain's pass rate falling, or
  receivers quarantining/rejecting more of the mail from sources seen before: rollback is
  recommended.

A record is closed as accepted only on `accepted` (RecordStore.seal enforces it); the comparison is
written to changes/evidence/verification-<sha256>.json and the record seals its hash and totals.
The thresholds are policy/gate.yaml `report_verification` (pipeline.load.gate_policy).

Which reports count: the baseline is the reports that ended at or before the change and began at
most `baseline_days` before it (from that day's UTC midnight); the post-change period is the
reports that began at or after the change plus the before-state's TTL (resolvers may serve the
old record until then) and before now. A report spanning the change (a daily report of the day it was applied) belongs to neither
and is counted as straddling. Sources are source IPs, as in the progression evidence.

The comparison of one domain is pipeline.apply.verify_domain, the text and JSON of
`dmarcops reports verify` pipeline.apply.verify_text.

It reads the report store (pipeline.reports) and writes a change record's ReportCheck
(pipeline.records), so it sits above both, beside the apply lifecycle that closes records on its
verdict (pipeline.apply.pending).
"""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from pipeline.apply.verify_domain import (
    ACCEPTED,
    ANOMALY,
    NO_EVIDENCE,
    TIME_FORMAT,
    DomainCheck,
    baseline_since,
    check_domain,
    pct,
)
from pipeline.errors import InputError
from pipeline.load.files import exists, replace_text
from pipeline.load.gate_policy import VerificationPolicy
from pipeline.records.record import ChangeRecord, ReportCheck, utc
from pipeline.reports.evidence import canonical
from pipeline.reports.store import open_store
from pipeline.reports.summary import StoredRow, load_rows

KIND = "dmarcops-report-verification"


class ReportSource:
    """The report store as verification reads it: a read-only connection, or why there is none.
    A missing or unusable store is "no evidence", never an error that stops a scheduled run."""

    def __init__(self, connection: sqlite3.Connection | None, problem: str = "") -> None:
        self.connection = connection
        self.problem = problem

    @classmethod
    def open(cls, path: Path) -> ReportSource:
        if not exists(path):
            return cls(None, "no report store (run `dmarcops reports ingest` first)")
        try:
            return cls(open_store(path, readonly=True))
        except InputError as exc:
            return cls(None, f"the report store cannot be used: {exc.message}")

    def rows(self, domain: str, since: datetime, until: datetime) -> list[StoredRow]:
        if self.connection is None:
            return []
        return load_rows(self.connection, (domain,), since, until)

    def close(self) -> None:
        if self.connection is not None:
            self.connection.close()
            self.connection = None

    def __enter__(self) -> ReportSource:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


@dataclass
class RecordCheck:
    record: ChangeRecord
    as_of: datetime
    policy: VerificationPolicy | None
    domains: list[DomainCheck]
    problem: str = ""  # why nothing could be compared (no policy, no store)

    @property
    def verdict(self) -> str:
        verdicts = {d.verdict for d in self.domains}
        if ANOMALY in verdicts:
            return ANOMALY
        if self.problem or not self.domains or NO_EVIDENCE in verdicts:
            return NO_EVIDENCE
        return ACCEPTED

    @property
    def summary(self) -> str:
        if self.problem:
            return f"no evidence yet: {self.problem}"
        verdict = self.verdict
        for d in self.domains:
            if verdict == ANOMALY and d.anomalies:
                return f"{d.domain}: {d.anomalies[0]}"
            if verdict == NO_EVIDENCE and d.waiting:
                return f"{d.domain}: {d.waiting[0]}"
        if not self.domains:
            return "no evidence yet: the record names no domain"
        parts = []
        for d in self.domains:
            parts.append(
                f"{d.domain}: {d.post.total.messages} messages over {len(d.post.days)} day(s), "
                f"{pct(d.own.rate)} DMARC pass (before {pct(d.baseline.total.rate)})"
            )
        return "; ".join(parts)

    def document(self) -> dict[str, Any]:
        record = self.record
        assert record.executed_at is not None
        return {
            "format_version": 1,
            "kind": KIND,
            "record": record.id,
            "client": record.client,
            "executed_at": record.executed_at.strftime(TIME_FORMAT),
            "rollback_window_end": record.rollback_window.end.strftime(TIME_FORMAT),
            "as_of": self.as_of.strftime(TIME_FORMAT),
            "policy": self.policy.to_json() if self.policy else None,
            "problem": self.problem,
            "verdict": self.verdict,
            "summary": self.summary,
            "domains": [d.as_dict() for d in self.domains],
        }

    def reference(self, sha256: str) -> ReportCheck:
        return ReportCheck(
            sha256=sha256,
            verdict=self.verdict,
            as_of=self.as_of,
            baseline_messages=sum(d.baseline.total.messages for d in self.domains),
            baseline_dmarc_pass=sum(d.baseline.total.dmarc_pass for d in self.domains),
            post_messages=sum(d.post.total.messages for d in self.domains),
            post_dmarc_pass=sum(d.post.total.dmarc_pass for d in self.domains),
            post_days=min((len(d.post.days) for d in self.domains), default=0),
            summary=self.summary,
        )


def check_record(
    record: ChangeRecord,
    source: ReportSource,
    policy: VerificationPolicy | None,
    now: datetime,
) -> RecordCheck:
    """The verification of one executed record as of `now`, per domain (its zones)."""
    if record.executed_at is None:
        raise ValueError(f"record {record.id} was never applied: nothing to verify")
    now = utc(now)
    if policy is None:
        return RecordCheck(
            record,
            now,
            None,
            [],
            "policy/gate.yaml has no report_verification thresholds",
        )
    if source.connection is None:
        return RecordCheck(record, now, policy, [], source.problem)
    since = baseline_since(record.executed_at, policy)
    domains = [
        check_domain(record, zone, source.rows(zone, since, now), policy, now)
        for zone in record.zones
    ]
    return RecordCheck(record, now, policy, domains)


def seal_evidence(root: Path, check: RecordCheck) -> ReportCheck:
    """Write the comparison to changes/evidence/verification-<sha256>.json (canonical JSON: the
    same numbers give the same file) and return what the record seals of it."""
    data = canonical(check.document())
    digest = hashlib.sha256(data).hexdigest()
    path = root / "changes" / "evidence" / f"verification-{digest}.json"
    replace_text(path, data.decode("ascii"), root=root)
    return check.reference(digest)


def to_verify(records: Iterable[ChangeRecord]) -> list[ChangeRecord]:
    """Records the verification watches: applied, not sealed (in their rollback window, or past
    it and still waiting for evidence)."""
    return sorted(
        (r for r in records if r.executed_at is not None and not r.sealed),
        key=lambda r: r.id,
    )


__all__ = [
    "ACCEPTED",
    "ANOMALY",
    "NO_EVIDENCE",
    "DomainCheck",
    "RecordCheck",
    "ReportSource",
    "check_record",
    "seal_evidence",
    "to_verify",
]
