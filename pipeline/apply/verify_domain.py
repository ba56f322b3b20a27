"""One domain's side of report verification (pipeline.apply.verify_reports): its aggregate reports
split into the baseline before a change and the post-change period after the before-state's TTL,
tallied in total and per source IP, and judged against policy/gate.yaml `report_verification`
(accepted, no evidence yet, or an anomaly). Pure: stored report rows in, a `DomainCheck` out.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from pipeline.load.gate_policy import VerificationPolicy
from pipeline.records.record import ChangeRecord
from pipeline.reports.summary import StoredRow

ACCEPTED = "accepted"
NO_EVIDENCE = "no-evidence"
ANOMALY = "anomaly"
TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"  # times in the verification document, UTC
_ENFORCED = frozenset({"quarantine", "reject"})


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
            "since": self.since.strftime(TIME_FORMAT),
            "until": self.until.strftime(TIME_FORMAT),
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


def pct(value: float | None) -> str:
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
                f"legitimate source {ip} newly failing: it passed {pct(rate)} of "
                f"{tally.messages} before the change, {pct(now_rate)} of {now_tally.messages} "
                "after"
            )
    before, after = base.total.rate, check.own.rate
    if before is not None and after is not None and before - after > policy.max_pass_rate_drop:
        check.anomalies.append(
            f"the domain's DMARC pass rate fell from {pct(before)} to {pct(after)} "
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
                f"receivers quarantined or rejected {pct(enforced_after)} of the mail from "
                f"sources seen before the change ({known.enforced} of {known.messages}); before "
                f"it {pct(enforced_before)} was, and {pct(failing_before)} failed"
            )
