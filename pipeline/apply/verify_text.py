"""`dmarcops reports verify` as text and JSON: per record, the baseline and post-change periods of
each domain, its major sources before and after, and the verdict (pipeline.apply.verify_reports)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime

from pipeline.apply.verify_domain import ACCEPTED, ANOMALY, Period, Tally, pct
from pipeline.apply.verify_reports import RecordCheck
from pipeline.text.safe import clean


def _line(name: str, period: Period) -> str:
    if not period.total.messages:
        return f"    {name:<7} {period.since:%Y-%m-%d %H:%M}..{period.until:%Y-%m-%d %H:%M}: no reports"
    return (
        f"    {name:<7} {period.since:%Y-%m-%d %H:%M}..{period.until:%Y-%m-%d %H:%M}: "
        f"{len(period.reports)} report(s) on {len(period.days)} day(s), "
        f"{period.total.messages} messages ({period.per_day:.0f}/day), "
        f"{pct(period.total.rate)} DMARC pass, {pct(period.total.enforced_share)} "
        "quarantined/rejected"
    )


def render_text(checks: Sequence[RecordCheck], now: datetime) -> str:
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
                    f"    own mail after: {d.own.messages} messages, {pct(d.own.rate)} DMARC "
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
                        f"    {clean(ip):<{width}}  {pct(b.rate) + ' of ' + str(b.messages):>22}"
                        f"  {pct(a.rate) + ' of ' + str(a.messages):>22}{tag}"
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
