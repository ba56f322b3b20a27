"""Pass rates from the report store: per domain, per source and per day, and the failing
sources that nobody has authorised yet (unknown senders).

"DKIM-aligned" and "SPF-aligned" are the receivers' policy_evaluated results (passed *and*
aligned with the From: domain), so "DMARC pass" is either of them (RFC 7489 3.1). The raw
auth_results are used only to suggest what to do about a failing source.
"""

from __future__ import annotations

import csv
import io
import json
import sqlite3
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

from pipeline.load.portfolio import Sender, SenderCatalog
from pipeline.reports.asn import AsnTable
from pipeline.text.safe import clean


@dataclass
class Stats:
    messages: int = 0
    dkim_aligned: int = 0
    spf_aligned: int = 0
    dmarc_pass: int = 0

    def add(self, count: int, dkim: bool, spf: bool) -> None:
        self.messages += count
        self.dkim_aligned += count if dkim else 0
        self.spf_aligned += count if spf else 0
        self.dmarc_pass += count if dkim or spf else 0

    @property
    def pass_rate(self) -> float | None:
        """DMARC pass rate in percent; None with no messages (never a made-up 100%)."""
        return 100.0 * self.dmarc_pass / self.messages if self.messages else None

    def as_dict(self) -> dict[str, object]:
        rate = self.pass_rate
        return {
            "messages": self.messages,
            "dkim_aligned": self.dkim_aligned,
            "spf_aligned": self.spf_aligned,
            "dmarc_pass": self.dmarc_pass,
            "pass_rate": None if rate is None else round(rate, 2),
        }


@dataclass(frozen=True)
class StoredRow:
    org_name: str
    day: str  # YYYY-MM-DD of the report's begin, UTC
    source_ip: str
    count: int
    disposition: str
    dkim_aligned: bool
    spf_aligned: bool
    header_from: str
    envelope_from: str
    dkim_domains: tuple[str, ...]
    spf_domains: tuple[str, ...]
    reasons: tuple[str, ...]
    report: int = 0  # the store's key of the report the record came from
    begin: int = 0  # the report's period, POSIX seconds (verification splits on the change)
    end: int = 0


def _covers(domains: Iterable[str], name: str) -> bool:
    return any(name == d or name.endswith("." + d) for d in domains)


def load_rows(
    connection: sqlite3.Connection, domains: Iterable[str], since: datetime, until: datetime
) -> list[StoredRow]:
    """Records of reports that began in [since, until) for mail whose From: domain is one of
    `domains` or below one."""
    wanted = [d.lower().rstrip(".") for d in domains]
    rows: list[StoredRow] = []
    query = (
        "SELECT r.id, r.org_name, r.begin_ts, r.end_ts, c.source_ip, c.count, c.disposition, c.dkim_aligned, "
        "c.spf_aligned, c.header_from, c.envelope_from, c.dkim_domains, c.spf_domains, c.reasons "
        "FROM records c JOIN reports r ON c.report = r.id "
        "WHERE r.begin_ts >= ? AND r.begin_ts < ? ORDER BY r.begin_ts, r.org_name, r.report_id"
    )
    for (
        key,
        org,
        begin,
        end,
        ip,
        count,
        disp,
        dkim,
        spf,
        hfrom,
        efrom,
        dkd,
        spd,
        reasons,
    ) in connection.execute(query, (int(since.timestamp()), int(until.timestamp()))):
        if not _covers(wanted, hfrom):
            continue
        rows.append(
            StoredRow(
                org,
                datetime.fromtimestamp(begin, UTC).strftime("%Y-%m-%d"),
                ip,
                int(count),
                disp,
                bool(dkim),
                bool(spf),
                hfrom,
                efrom,
                tuple(dkd.split()),
                tuple(spd.split()),
                tuple(reasons.split()),
                int(key),
                int(begin),
                int(end),
            )
        )
    return rows


GROUPS: tuple[tuple[str, Callable[[StoredRow], str]], ...] = (
    ("domain", lambda r: r.header_from),
    ("reporter", lambda r: r.org_name),
    ("source_ip", lambda r: r.source_ip),
    ("envelope_from", lambda r: r.envelope_from or "(none)"),
    ("day", lambda r: r.day),
)


@dataclass
class Summary:
    client: str
    domains: tuple[str, ...]
    since: datetime
    until: datetime
    total: Stats = field(default_factory=Stats)
    groups: dict[str, dict[str, Stats]] = field(default_factory=dict)
    reports: int = 0


def summarise(
    rows: list[StoredRow],
    client: str,
    domains: tuple[str, ...],
    since: datetime,
    until: datetime,
    *,
    asn: AsnTable | None = None,
) -> Summary:
    """The counts in total and per group; with an offline AS table (pipeline.reports.asn), also
    per autonomous system of the source IP (`asn`)."""
    summary = Summary(client, domains, since, until)
    groups_wanted = list(GROUPS)
    if asn is not None:
        cache: dict[str, str] = {}

        def by_asn(row: StoredRow) -> str:
            if row.source_ip not in cache:
                cache[row.source_ip] = asn.lookup(row.source_ip)
            return cache[row.source_ip]

        groups_wanted.insert(3, ("asn", by_asn))
    for name, key in groups_wanted:
        groups: dict[str, Stats] = defaultdict(Stats)
        for row in rows:
            groups[key(row)].add(row.count, row.dkim_aligned, row.spf_aligned)
        # Biggest first, except days, which read best in date order.
        order = (
            sorted(groups.items())
            if name == "day"
            else sorted(groups.items(), key=lambda kv: (-kv[1].messages, kv[0]))
        )
        summary.groups[name] = dict(order)
    for row in rows:
        summary.total.add(row.count, row.dkim_aligned, row.spf_aligned)
    return summary


# ---- unknown senders ---------------------------------------------------------------------------


def _base(domain: str) -> str:
    """The last two labels of a domain: the organisation a catalog SPF include belongs to
    (include:_spf.google.com -> google.com). A heuristic without a public-suffix list; good for
    the catalog's .com/.net/.org senders, and said so in docs/reports.md."""
    labels = domain.strip(".").lower().split(".")
    return ".".join(labels[-2:])


def catalog_match(catalog: SenderCatalog, domains: Iterable[str]) -> Sender | None:
    seen = {_base(d) for d in domains if d}
    for sender in catalog.senders:
        for term in sender.spf:
            if term.lower().startswith(("include:", "redirect=")):
                target = term.split(":", 1)[-1].split("=", 1)[-1]
                if _base(target) in seen:
                    return sender
    return None


@dataclass
class FailingSource:
    source_ip: str
    header_from: str
    failing: int = 0
    total: int = 0
    dkim_domains: set[str] = field(default_factory=set)
    spf_domains: set[str] = field(default_factory=set)
    envelope_from: set[str] = field(default_factory=set)
    reasons: set[str] = field(default_factory=set)
    reporters: set[str] = field(default_factory=set)
    sender: Sender | None = None
    action: str = ""

    def as_dict(self) -> dict[str, object]:
        return {
            "source_ip": self.source_ip,
            "header_from": self.header_from,
            "failing_messages": self.failing,
            "messages": self.total,
            "dkim_pass_domains": sorted(self.dkim_domains),
            "spf_pass_domains": sorted(self.spf_domains),
            "envelope_from": sorted(self.envelope_from),
            "override_reasons": sorted(self.reasons),
            "reporters": sorted(self.reporters),
            "catalog_sender": self.sender.name if self.sender else None,
            "catalog_pre_approved": self.sender.pre_approved if self.sender else None,
            "suggested_action": self.action,
        }


def _suggest(source: FailingSource) -> str:
    domain = source.header_from
    if source.reasons & {"forwarded", "mailing_list", "trusted_forwarder"}:
        return "ignore: forwarded or list mail (the receiver says so); no DNS change helps"
    if source.sender is not None:
        include = next((t for t in source.sender.spf if t.startswith("include:")), "")
        if source.dkim_domains:
            return (
                f"publish a DKIM selector for {domain} at {source.sender.name} (it signs as "
                f"{', '.join(sorted(source.dkim_domains))}, which does not align)"
            )
        return (
            f"add {include or 'its SPF terms'} to {domain}'s SPF and use a return-path under "
            f"{domain}, or sign with a DKIM selector for {domain} at {source.sender.name}"
        )
    if source.dkim_domains or source.spf_domains:
        signed_as = ", ".join(sorted(source.dkim_domains | source.spf_domains))
        return (
            f"identify the service authenticating as {signed_as}: when it is yours, publish a "
            f"DKIM selector for {domain} or add its SPF include (and add it to policy/senders.yaml)"
        )
    if source.failing < source.total:
        return "check this server: part of its mail passes, so it is probably yours, misconfigured"
    return "ignore as abuse unless you recognise the IP: nothing authenticates for any domain"


def unknown_senders(rows: list[StoredRow], catalog: SenderCatalog) -> list[FailingSource]:
    """Sources (IP and From: domain) with mail failing DMARC, biggest failing volume first."""
    found: dict[tuple[str, str], FailingSource] = {}
    for row in rows:
        key = (row.source_ip, row.header_from)
        source = found.get(key)
        if source is None:
            source = found[key] = FailingSource(row.source_ip, row.header_from)
        source.total += row.count
        if row.dkim_aligned or row.spf_aligned:
            continue
        source.failing += row.count
        source.dkim_domains.update(row.dkim_domains)
        source.spf_domains.update(row.spf_domains)
        if row.envelope_from:
            source.envelope_from.add(row.envelope_from)
        source.reasons.update(row.reasons)
        source.reporters.add(row.org_name)
    failing = [s for s in found.values() if s.failing]
    for source in failing:
        source.sender = catalog_match(
            catalog, source.dkim_domains | source.spf_domains | source.envelope_from
        )
        source.action = _suggest(source)
    return sorted(failing, key=lambda s: (-s.failing, s.source_ip, s.header_from))


# ---- rendering ---------------------------------------------------------------------------------

_TITLES = {
    "domain": "per domain (From:)",
    "reporter": "per reporting org",
    "source_ip": "per source IP",
    "asn": "per source AS (offline table)",
    "envelope_from": "per envelope domain (MAIL FROM)",
    "day": "per day (UTC, by report start)",
}


def _rate(stats: Stats) -> str:
    rate = stats.pass_rate
    return "-" if rate is None else f"{rate:.1f}%"


def _table(title: str, rows: Mapping[str, Stats], limit: int) -> list[str]:
    keys = list(rows)[:limit]
    width = max([len(title), *(len(clean(k)) for k in keys)])
    lines = [
        f"{title:<{width}}  {'messages':>9}  {'dkim':>9}  {'spf':>9}  {'pass':>9}  {'rate':>7}"
    ]
    for key in keys:
        s = rows[key]
        lines.append(
            f"{clean(key):<{width}}  {s.messages:>9}  {s.dkim_aligned:>9}  {s.spf_aligned:>9}  "
            f"{s.dmarc_pass:>9}  {_rate(s):>7}"
        )
    if len(rows) > limit:
        lines.append(f"... and {len(rows) - limit} more (--format json or csv lists all)")
    return lines


def render_text(summary: Summary, unknown: list[FailingSource], limit: int = 20) -> str:
    t = summary.total
    lines = [
        f"{clean(summary.client)}: {', '.join(clean(d) for d in summary.domains)}  "
        f"{summary.since:%Y-%m-%d %H:%M} .. {summary.until:%Y-%m-%d %H:%M} UTC",
        f"{t.messages} messages, {t.dkim_aligned} DKIM-aligned, {t.spf_aligned} SPF-aligned, "
        f"{t.dmarc_pass} DMARC pass ({_rate(t)})",
    ]
    if not t.messages:
        lines.append("no report data in this period: no evidence either way")
        return "\n".join(lines) + "\n"
    for name, rows in summary.groups.items():
        lines += ["", *_table(_TITLES[name], rows, limit)]
    if unknown:
        lines += ["", "failing sources, most failing mail first:"]
        for source in unknown[:limit]:
            sender = (
                f"catalog: {clean(source.sender.name)}"
                + (" (pre-approved)" if source.sender.pre_approved else "")
                if source.sender
                else "not in policy/senders.yaml"
            )
            lines.append(
                f"  {clean(source.source_ip)} for {clean(source.header_from)}: "
                f"{source.failing} of {source.total} failing; {sender}"
            )
            lines.append(f"    -> {clean(source.action)}")
        if len(unknown) > limit:
            lines.append(f"  ... and {len(unknown) - limit} more")
    return "\n".join(lines) + "\n"


def render_json(summary: Summary, unknown: list[FailingSource]) -> str:
    document = {
        "format_version": 1,
        "client": summary.client,
        "domains": list(summary.domains),
        "since": summary.since.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "until": summary.until.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "total": summary.total.as_dict(),
        **{
            f"by_{name}": [{"key": key, **stats.as_dict()} for key, stats in rows.items()]
            for name, rows in summary.groups.items()
        },
        "failing_sources": [source.as_dict() for source in unknown],
    }
    return json.dumps(document, indent=2, ensure_ascii=True) + "\n"


def render_csv(summary: Summary) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(
        ["group", "key", "messages", "dkim_aligned", "spf_aligned", "dmarc_pass", "pass_rate"]
    )
    for name, rows in [("total", {"all": summary.total}), *summary.groups.items()]:
        for key, s in rows.items():
            rate = s.pass_rate
            # A key from a report could start with = or +: a spreadsheet would run it as a formula.
            safe_key = "'" + key if key[:1] in ("=", "+", "-", "@") else key
            writer.writerow(
                [
                    name,
                    safe_key,
                    s.messages,
                    s.dkim_aligned,
                    s.spf_aligned,
                    s.dmarc_pass,
                    "" if rate is None else f"{rate:.2f}",
                ]
            )
    return out.getvalue()
