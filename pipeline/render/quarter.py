"""The quarterly review as markdown: what the compliance lead reads (pipeline.records.quarter).

Every string from a record (reasons, notes, client names, follow-up references) is escaped: the
review is pasted into tickets and GitHub issues.
"""

from __future__ import annotations

from pipeline.records.quarter import QuarterReport
from pipeline.records.record import format_utc
from pipeline.text.markdown import code, escape

_BEND_TITLES = {
    "emergency": "Emergency changes",
    "forced close": "Forced closes (before the rollback window ended)",
    "freeze exception": "Freeze exceptions",
    "on-call cover": "On-call covers (rollback windows ending outside staffed hours)",
    "rollback": "Rollbacks",
    "recovered": "Applies finished from a journal",
    "accepted without evidence": "Closed as accepted without report evidence",
    "outside change management": ("Outside standard change management at the client's direction"),
    "unrecorded change": "Changed outside the pipeline, adopted afterwards",
}


def _counts(title: str, counts: dict[str, int]) -> list[str]:
    if not counts:
        return [f"- {title}: none"]
    return [f"- {title}: " + ", ".join(f"{escape(k)} {v}" for k, v in counts.items())]


def render_quarter(report: QuarterReport) -> str:
    q = report.quarter
    out = [
        f"# Quarterly review {q}",
        "",
        f"Changes executed from {format_utc(q.start)} until {format_utc(q.end)}: "
        f"{len(report.records)} record(s); generated {format_utc(report.generated_at)} from the "
        "change records the ledger vouches for.",
        "",
        "## Where the policy was bent",
        "",
    ]
    for kind, title in _BEND_TITLES.items():
        bends = [b for b in report.bends if b.kind == kind]
        out.append(f"### {title}: {len(bends)}")
        out.append("")
        out += [
            f"- {code(b.record_id)} {escape(b.client)}, {escape(b.analyst or '-')}: "
            f"{escape(b.detail)}"
            for b in bends
        ]
        if bends:
            out.append("")
    out += ["Not in the records yet, so not counted here:"]
    out += [f"- {escape(item)}" for item in report.not_recorded]
    out += ["", "## Counts", ""]
    out += _counts("per client", report.by_client)
    out += _counts("per analyst (executor)", report.by_analyst)
    out += _counts("per risk", report.by_risk)
    out += _counts("per change type", report.by_type)
    out += ["", "## Still open", ""]
    out.append(
        "- outcomes not yet logged: " + (", ".join(code(r) for r in report.open_outcomes) or "none")
    )
    out.append(
        "- emergency reviews overdue: "
        + (", ".join(code(r) for r in report.overdue_reviews) or "none")
    )
    out += ["", "## What to change", ""]
    if report.follow_ups:
        out += [
            f"- {escape(ref)} (from the review of {code(record)})"
            for ref, record in report.follow_ups
        ]
    else:
        out.append("- no policy follow-up was referenced by this quarter's reviews")
    return "\n".join(out) + "\n"
