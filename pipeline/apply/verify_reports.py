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

It reads the report store (pipeline.reports) and writes a change record's ReportCheck
(pipeline.records), so it sits above both, beside the apply lifecycle that closes records on its
verdict (pipeline.apply.pending).
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from pipeline.errors import InputError
from pipeline.load.files import exists, replace_text
from pipeline.load.gate_policy import VerificationPolicy
from pipeline.records.record import ChangeRecord, ReportCheck, utc
from pipeline.reports.evidence import canonical
from pipeline.reports.store import open_store
from pipeline.reports.summary import StoredRow, load_rows

KIND = "dmarcops-report-verification"
ACCEPTED = "accepted"
NO_EVIDENCE = "no-evidence"
ANOMALY = "anomaly"
_TIME = "%Y-%m-%dT%H:%M:%SZ"
_ENFORCED = frozenset({"quarantine", "reject"})


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
class Tally:
    messages: int = 0
    dmarc_pass: int = 0
    enforced: int = 0  # disposition quarantine or reject

    def add(self, row: StoredRow) -> None:
        self.messages += row.count
        if row.dkim_aligned or row.spf_aligned:
            self.dmarc_pass += row.count
        if row.disposition in _ENFORCED:
            self.enforced += row.count

    @property
    def rate(self) -> float | None:
        return 100.0 * self.dmarc_pass / self.messages if self.messages else None

    @property
    def enforced_share(self) -> float | None:
        return 100.0 * self.enforced / self.messages if self.messages else None

    def as_dict(self) -> dict[str, int]:
        return {"messages": self.messages, "dmarc_pass": self.dmarc_pass, "enforced": self.enforced}


@dataclass
class Period:
    since: datetime
    until: datetime
    total: Tally = field(default_factory=Tally)
    dkim_aligned: int = 0
    spf_aligned: int = 0
    reports: set[int] = field(default_factory=set)
    days: set[str] = field(default_factory=set)
    sources: dict[str, Tally] = field(default_factory=lambda: defaultdict(Tally))

    def add(self, row: StoredRow) -> None:
        self.total.add(row)
        self.sources[row.source_ip].add(row)
        self.dkim_aligned += row.count if row.dkim_aligned else 0
        self.spf_aligned += row.count if row.spf_aligned else 0
        self.reports.add(row.report)
        self.days.add(row.day)

    @property
    def per_day(self) -> float:
        return self.total.messages / len(self.days) if self.days else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "since": self.since.strftime(_TIME),
            "until": self.until.strftime(_TIME),
            "reports": len(self.reports),
            "days": len(self.days),
            "dkim_aligned": self.dkim_aligned,
            "spf_aligned": self.spf_aligned,
            **self.total.as_dict(),
        }


@dataclass
class DomainCheck:
    domain: str
    settle: timedelta
    baseline: Period
    post: Period
    straddling: set[int] = field(default_factory=set)
    own: Tally = field(default_factory=Tally)  # post-change mail minus new, unauthenticated mail
    new_unauthenticated: Tally = field(default_factory=Tally)
    known_post: Tally = field(default_factory=Tally)  # post-change mail from baseline sources
    anomalies: list[str] = field(default_factory=list)
    waiting: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    majors: list[str] = field(default_factory=list)  # sources shown (major in either period)
    legitimate: set[str] = field(default_factory=set)

    @property
    def verdict(self) -> str:
        if self.anomalies:
            return ANOMALY
        return NO_EVIDENCE if self.waiting else ACCEPTED

    def as_dict(self) -> dict[str, Any]:
        rest_before, rest_after = Tally(), Tally()
        for ip, tally in self.baseline.sources.items():
            if ip not in self.majors:
                _merge(rest_before, tally)
        for ip, tally in self.post.sources.items():
            if ip not in self.majors:
                _merge(rest_after, tally)
        return {
            "domain": self.domain,
            "settle_seconds": int(self.settle.total_seconds()),
            "baseline": self.baseline.as_dict(),
            "post": {
                **self.post.as_dict(),
                "own_messages": self.own.messages,
                "own_dmarc_pass": self.own.dmarc_pass,
                "new_unauthenticated_messages": self.new_unauthenticated.messages,
                "known_sources": self.known_post.as_dict(),
            },
            "straddling_reports": len(self.straddling),
            "sources": [
                {
                    "source_ip": ip,
                    "legitimate": ip in self.legitimate,
                    "baseline": self.baseline.sources.get(ip, Tally()).as_dict(),
                    "post": self.post.sources.get(ip, Tally()).as_dict(),
                }
                for ip in self.majors
            ],
            "other_sources": {"baseline": rest_before.as_dict(), "post": rest_after.as_dict()},
            "verdict": self.verdict,
            "anomalies": self.anomalies,
            "waiting": self.waiting,
            "notes": self.notes,
        }


def _merge(into: Tally, other: Tally) -> None:
    into.messages += other.messages
    into.dmarc_pass += other.dmarc_pass
    into.enforced += other.enforced


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}%"


def _authenticates(row: StoredRow) -> bool:
    return row.dkim_aligned or row.spf_aligned or bool(row.dkim_domains or row.spf_domains)


def _settle(record: ChangeRecord, zone: str) -> timedelta:
    """How long resolvers may still serve the before-state: its largest TTL in this zone."""
    ttls = [i.ttl_before or 0 for i in record.items if i.zone == zone and i.action != "create"]
    return timedelta(seconds=max(ttls, default=0))


def baseline_since(executed: datetime, policy: VerificationPolicy) -> datetime:
    """The baseline's start: `baseline_days` before the change, from that UTC day's midnight, so
    daily reports count whole (14 days before a change at 10:05 are 14 daily reports)."""
    start = executed - timedelta(days=policy.baseline_days)
    return start.replace(hour=0, minute=0, second=0, microsecond=0)


def check_domain(
    record: ChangeRecord,
    domain: str,
    rows: Iterable[StoredRow],
    policy: VerificationPolicy,
    now: datetime,
) -> DomainCheck:
    """Compare the domain's reports after the change with those before it. `rows`: the records
    of reports that began in [executed - baseline_days, now)."""
    assert record.executed_at is not None
    executed = record.executed_at
    settle = _settle(record, domain)
    baseline_start = baseline_since(executed, policy)
    check = DomainCheck(
        domain,
        settle,
        Period(baseline_start, executed),
        Period(executed + settle, max(now, executed + settle)),
    )
    changed, settled = int(executed.timestamp()), int((executed + settle).timestamp())
    post_rows: list[StoredRow] = []
    for row in rows:
        if row.end <= changed and row.begin >= int(baseline_start.timestamp()):
            check.baseline.add(row)
        elif row.begin >= settled:
            check.post.add(row)
            post_rows.append(row)
        elif row.end > changed:
            check.straddling.add(row.report)
    known = set(check.baseline.sources)
    for row in post_rows:
        if row.source_ip in known:
            check.known_post.add(row)
            check.own.add(row)
        elif _authenticates(row):
            check.own.add(row)
        else:
            check.new_unauthenticated.add(row)
    _judge(check, policy)
    return check


def _judge(check: DomainCheck, policy: VerificationPolicy) -> None:
    base, post = check.baseline, check.post
    days = len(post.days)
    if not post.total.messages:
        check.waiting.append("no evidence yet: no post-change reports")
    elif days < policy.min_post_days or post.total.messages < policy.min_post_messages:
        check.waiting.append(
            f"no evidence yet: {post.total.messages} messages over {days} day(s) after the "
            f"change (needs at least {policy.min_post_messages} over {policy.min_post_days})"
        )
    # Major sources: by share of the baseline (who the domain's mail came from), or of the
    # post-change mail (who sends now); biggest first.
    shares: dict[str, float] = {}
    for period in (base, post):
        for ip, tally in period.sources.items():
            if period.total.messages:
                share = 100.0 * tally.messages / period.total.messages
                if share >= policy.major_source_share:
                    shares[ip] = max(shares.get(ip, 0.0), share)
    check.majors = sorted(shares, key=lambda ip: (-shares[ip], ip))
    if check.new_unauthenticated.messages:
        check.notes.append(
            f"{check.new_unauthenticated.messages} post-change message(s) from sources not seen "
            "before the change authenticate for no domain at all (spoofing, most likely): left "
            "out of the domain's own pass rate"
        )
    if not base.total.messages:
        check.notes.append(
            f"no baseline: no reports in the {policy.baseline_days} days before the change; "
            "judged on the post-change volume alone"
        )
        return
    if post.total.messages and days:
        ratio = 100.0 * post.per_day / base.per_day if base.per_day else 100.0
        if ratio < policy.min_volume_ratio:
            check.waiting.append(
                f"the volume fell to {ratio:.0f}% of the baseline's messages per day "
                f"({post.per_day:.0f} against {base.per_day:.0f}; needs {policy.min_volume_ratio:g}%)"
            )
    for ip, tally in sorted(base.sources.items(), key=lambda kv: (-kv[1].messages, kv[0])):
        if 100.0 * tally.messages / base.total.messages < policy.major_source_share:
            continue
        rate = tally.rate
        if rate is None or rate < policy.legitimate_pass_rate:
            continue
        check.legitimate.add(ip)
        now_tally = post.sources.get(ip)
        if now_tally is None or now_tally.messages < policy.min_source_messages:
            continue
        now_rate = now_tally.rate
        assert now_rate is not None
        if rate - now_rate > policy.max_source_pass_rate_drop:
            check.anomalies.append(
                f"legitimate source {ip} newly failing: it passed {_pct(rate)} of "
                f"{tally.messages} before the change, {_pct(now_rate)} of {now_tally.messages} "
                "after"
            )
    before, after = base.total.rate, check.own.rate
    if before is not None and after is not None and before - after > policy.max_pass_rate_drop:
        check.anomalies.append(
            f"the domain's DMARC pass rate fell from {_pct(before)} to {_pct(after)} "
            f"({before - after:.2f} points; at most {policy.max_pass_rate_drop:g})"
        )
    known = check.known_post
    enforced_after = known.enforced_share
    if enforced_after is not None:
        enforced_before = base.total.enforced_share or 0.0
        failing_before = 100.0 - (base.total.rate or 0.0)
        allowed = max(enforced_before, failing_before)
        if enforced_after - allowed > policy.max_enforced_increase:
            check.anomalies.append(
                f"receivers quarantined or rejected {_pct(enforced_after)} of the mail from "
                f"sources seen before the change ({known.enforced} of {known.messages}); before "
                f"it {_pct(enforced_before)} was, and {_pct(failing_before)} failed"
            )


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
                f"{_pct(d.own.rate)} DMARC pass (before {_pct(d.baseline.total.rate)})"
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
            "executed_at": record.executed_at.strftime(_TIME),
            "rollback_window_end": record.rollback_window.end.strftime(_TIME),
            "as_of": self.as_of.strftime(_TIME),
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


# ---- rendering ---------------------------------------------------------------------------------


def _line(name: str, period: Period) -> str:
    if not period.total.messages:
        return f"    {name:<7} {period.since:%Y-%m-%d %H:%M}..{period.until:%Y-%m-%d %H:%M}: no reports"
    return (
        f"    {name:<7} {period.since:%Y-%m-%d %H:%M}..{period.until:%Y-%m-%d %H:%M}: "
        f"{len(period.reports)} report(s) on {len(period.days)} day(s), "
        f"{period.total.messages} messages ({period.per_day:.0f}/day), "
        f"{_pct(period.total.rate)} DMARC pass, {_pct(period.total.enforced_share)} "
        "quarantined/rejected"
    )


def render_text(checks: Sequence[RecordCheck], now: datetime) -> str:
    from pipeline.text.safe import clean

    if not checks:
        return "no applied record is open: nothing to verify\n"
    out: list[str] = []
    for check in checks:
        record = check.record
        assert record.executed_at is not None
        window = record.rollback_window.end
        where = (
            f"rollback window ends {window:%Y-%m-%d %H:%M} UTC"
            if now < window
            else f"rollback window ended {window:%Y-%m-%d %H:%M} UTC"
        )
        out.append(
            f"{record.id}  {clean(record.client)}  {clean(', '.join(record.zones))}  applied "
            f"{record.executed_at:%Y-%m-%d %H:%M} UTC, {where}"
        )
        if check.problem:
            out.append(f"  {clean(check.problem)}")
        for d in check.domains:
            out.append(f"  {clean(d.domain)}")
            out.append(_line("before", d.baseline))
            out.append(_line("after", d.post))
            if d.post.total.messages and d.new_unauthenticated.messages:
                out.append(
                    f"    own mail after: {d.own.messages} messages, {_pct(d.own.rate)} DMARC "
                    f"pass ({d.new_unauthenticated.messages} unauthenticated from new sources "
                    "left out)"
                )
            if d.straddling:
                out.append(f"    ({len(d.straddling)} report(s) spanning the change left out)")
            if d.majors:
                width = max(len("major source"), *(len(clean(ip)) for ip in d.majors))
                out.append(f"    {'major source':<{width}}  {'before':>22}  {'after':>22}")
                for ip in d.majors:
                    b = d.baseline.sources.get(ip, Tally())
                    a = d.post.sources.get(ip, Tally())
                    tag = "  (legitimate)" if ip in d.legitimate else ""
                    out.append(
                        f"    {clean(ip):<{width}}  {_pct(b.rate) + ' of ' + str(b.messages):>22}"
                        f"  {_pct(a.rate) + ' of ' + str(a.messages):>22}{tag}"
                    )
            for note in d.notes:
                out.append(f"    note: {clean(note)}")
        verdict = check.verdict
        if verdict == ACCEPTED:
            out.append(f"  verdict: accepted proposed: {clean(check.summary)}")
        elif verdict == ANOMALY:
            out.append("  verdict: ANOMALY, rollback recommended:")
            for d in check.domains:
                for anomaly in d.anomalies:
                    out.append(f"    - {clean(d.domain)}: {clean(anomaly)}")
            out.append(
                f"    dmarcops rollback {record.id} --key YOUR-KEY --reason TEXT "
                "(after checking `dmarcops reports summary`)"
            )
        else:
            out.append(f"  verdict: stays open, {clean(check.summary)}")
        out.append("")
    return "\n".join(out)


def render_json(checks: Sequence[RecordCheck]) -> str:
    return json.dumps([c.document() for c in checks], indent=2, ensure_ascii=True) + "\n"


__all__ = [
    "ACCEPTED",
    "ANOMALY",
    "NO_EVIDENCE",
    "DomainCheck",
    "RecordCheck",
    "ReportSource",
    "check_record",
    "render_json",
    "render_text",
    "seal_evidence",
    "to_verify",
]
