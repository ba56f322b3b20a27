"""A change record as the seed's template, in markdown and in plain text
(`ChangeRecord.render_markdown`, `render_text`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from pipeline.model import RiskLevel
from pipeline.records.record_base import (
    _CONTROL,
    ApprovalRole,
    show_utc,
)
from pipeline.records.record_parts import (
    ApprovalEvidence,
)
from pipeline.text.markdown import code, escape
from pipeline.text.safe import clean

if TYPE_CHECKING:
    from pipeline.records.record import ChangeRecord


# --- the seed's template, in markdown and in plain text ----------------------------------------


def plain(text: str) -> str:
    """A user string for a terminal: no control characters (no escape sequences, no fake lines);
    C0 controls become spaces, and the rest (C1, bidi overrides, zero-width) visible escapes."""
    return clean(_CONTROL.sub(" ", text))


def _render(record: ChangeRecord, *, markdown: bool, include_internal: bool) -> str:
    # One layout for both outputs: `t` shows a user string as text, `c` as a value (a code span
    # in markdown), so the two renderings cannot drift apart field by field.
    t: Callable[[str], str] = escape if markdown else plain
    c: Callable[[str], str] = code if markdown else plain
    bullet = "- " if markdown else ""
    separator = "<br>" if markdown else "\n        "

    def values(vals: tuple[str, ...]) -> str:
        return separator.join(c(v) for v in vals) if vals else "(none)"

    # Each block is an optional heading ("Approval:") and its lines, a blank line between blocks.
    blocks: list[tuple[str, list[tuple[str, str]]]] = []
    blocks.append(
        (
            "",
            [
                ("Client", f"{t(record.client_name)} ({c(record.client)})"),
                ("Domain affected", ", ".join(t(z) for z in record.zones) or "(none)"),
                (
                    "Record affected",
                    separator.join(
                        f"{c(i.fqdn)} {t(i.type)} ({t(i.action)}, risk {i.risk.label})"
                        for i in record.items
                    )
                    or "(none)",
                ),
                ("Change type", t(record.change_type.value)),
                ("Risk level", record.risk.label.capitalize()),
                ("Plan", c(record.plan_hash)),
                (
                    "Change request",
                    c(record.request_id)
                    if record.request_id
                    else "none (changed outside the pipeline)",
                ),
            ],
        )
    )
    for item in record.items:
        # The seed's record has one record affected; with several, each before/after says which.
        which = f" ({c(item.fqdn)} {t(item.type)})" if len(record.items) > 1 else ""
        blocks.append(
            (
                "",
                [
                    (f"Before{which}", values(item.before)),
                    (f"After{which}", values(item.after)),
                    ("What changes", ", ".join(c(x) for x in item.facts) or "(nothing)"),
                    ("Why this risk", "; ".join(t(r) for r in item.reasons) or "(no rule)"),
                ],
            )
        )
    blocks.append(("", [("Rationale", t(record.rationale) or "(none)")]))
    blocks.append(("Approval", _approval_lines(record, t, c)))
    emergency = record.emergency
    blocks.append(
        (
            "",
            [
                (
                    "Change window",
                    record.change_window.show()
                    if record.change_window
                    else "none (changed outside the pipeline)"
                    if record.adopted is not None
                    else "none (emergency change: the window was skipped)",
                ),
                (
                    "Rollback window",
                    "none: the pipeline sent nothing to roll back (a revert is a new request)"
                    if record.adopted is not None
                    else record.rollback_window.show(),
                ),
                *(
                    [("Freeze exception", t(record.freeze_exception))]
                    if record.freeze_exception
                    else []
                ),
                *([("Incident", t(record.incident))] if record.incident else []),
                *(
                    [
                        (
                            "On call",
                            f"{t(record.on_call)} (covers the rollback window outside staffed hours)",
                        )
                    ]
                    if record.on_call
                    else []
                ),
                *([("Policy", c(record.policy_sha256[:16]))] if record.policy_sha256 else []),
                *(
                    [("Change management", t(record.change_management))]
                    if record.change_management
                    else []
                ),
            ],
        )
    )
    if record.adopted is not None:
        executed = (
            f"outside the pipeline (seen live {show_utc(record.adopted.observed_at)}); "
            f"{t(record.adopted.note)}"
        )
    elif record.executed_at:
        executed = f"{show_utc(record.executed_at)} by {t(record.executed_by)}"
    else:
        executed = "not yet"
    execution = [("Executed", executed)]
    if record.manual is not None:
        manual = record.manual
        execution.append(
            ("Manual change", f"{t(manual.platform)}: {t(manual.setting)} ({t(manual.kind)})")
        )
        execution.append(
            (
                "Steps",
                separator.join(f"{n}. {t(step)}" for n, step in enumerate(manual.steps, 1))
                or "(none)",
            )
        )
        execution.append(
            (
                "Checklist",
                separator.join(
                    f"{n}. [{check.status}] {t(check.item)}"
                    + (f" ({t(check.by)} {show_utc(check.at)})" if check.at else "")
                    + (f": {t(check.note)}" if check.note else "")
                    for n, check in enumerate(manual.checklist, 1)
                )
                or "(none)",
            )
        )
    execution.extend(
        (
            f"Zone {t(z.zone)}",
            f"{z.status.value}, {z.applied} item(s) applied"
            + (f": {t(z.error)}" if z.error else ""),
        )
        for z in record.zone_results
    )
    execution.append(
        (
            "Verification",
            separator.join(
                f"{c(v.fqdn)} {t(v.type)} {v.status.value} {show_utc(v.checked_at)}"
                + (f" ({t(v.detail)})" if v.detail else "")
                for v in record.verification
            )
            or "pending",
        )
    )
    if record.recovery is not None:
        rec = record.recovery
        execution.append(
            (
                "Recovered",
                f"{show_utc(rec.at)} by {t(rec.by)} from apply journal {c(rec.journal)}: "
                f"{t(rec.detail)}",
            )
        )
    blocks.append(("", execution))
    if emergency is not None:
        verdict = f"{emergency.verdict}, " if emergency.verdict else ""
        follow = f" (follow-up: {t(emergency.follow_up)})" if emergency.follow_up else ""
        late = " (late)" if emergency.late else ""
        review = (
            f"{verdict}by {t(emergency.reviewed_by)} {show_utc(emergency.reviewed_at)}{late}: "
            f"{t(emergency.review_notes)}{follow}"
            if emergency.reviewed_at
            else f"not yet recorded (due {show_utc(emergency.review_due)})"
        )
        blocks.append(("", [("Emergency", t(emergency.reason)), ("Post-hoc review", review)]))
    outcome = "open"
    if record.outcome is not None:
        outcome = record.outcome.sentence
        if record.closed_at is not None:
            outcome += f" Closed {show_utc(record.closed_at)} by {t(record.closed_by)}"
            outcome += (
                " before the rollback window ended (forced)." if record.closed_forced else "."
            )
    closing = [("Outcome", outcome)]
    if record.report_verification is not None:
        check = record.report_verification
        closing.append(
            (
                "Report evidence",
                f"{t(check.show())} ({t(check.summary)}); {c(check.file)}",
            )
        )
    if record.closed_without_evidence:
        closing.append(("Closed without report evidence", t(record.closed_without_evidence)))
    if record.references:
        closing.append(("References", ", ".join(f"#{r}" for r in record.references)))
    closing.append(("Sealed", "yes: never edited again" if record.sealed else "no"))
    blocks.append(("", closing))
    if include_internal and record.internal_notes:
        blocks.append(("", [("Internal notes", t(record.internal_notes))]))

    title = f"CHANGE RECORD #{record.id}"  # the id matched RECORD_ID: digits and a dash only
    out = [f"## {title}" if markdown else title, ""]
    for heading, lines in blocks:
        indent = ""
        if heading:
            out.append(f"{bullet}{heading}:")
            indent = "  "
        out.extend(f"{indent}{bullet}{label}: {value}" for label, value in lines)
        out.append("")
    return "\n".join(out)


def _approval_lines(
    record: ChangeRecord, t: Callable[[str], str], c: Callable[[str], str]
) -> list[tuple[str, str]]:
    def evidence(a: ApprovalEvidence, verb: str) -> str:
        when = f" {show_utc(a.at)}" if a.at else ""
        ref = f", {a.source.value} {c(a.reference)}" if a.reference else f", {a.source.value}"
        return f"{t(a.who)} ({verb}{when}{ref})"

    def of(role: ApprovalRole) -> list[ApprovalEvidence]:
        return [a for a in record.approvals if a.role is role]

    # Not obtained is "missing" unless the risk did not need it or the change was an emergency,
    # whose approval is the post-hoc review (seed: "post-hoc approval, log immediately").
    missing = (
        "not obtained before execution (emergency change: post-hoc review)"
        if record.emergency is not None
        else "none: changed outside the pipeline (adopted, not approved)"
        if record.adopted is not None
        else "missing"
    )
    peers = "; ".join(evidence(a, "approved") for a in of(ApprovalRole.PEER))
    clients = "; ".join(evidence(a, "approved") for a in of(ApprovalRole.CLIENT))
    lines = [
        (
            "Analyst",
            "; ".join(f"{t(a.who)} (proposing)" for a in of(ApprovalRole.ANALYST)) or "(none)",
        ),
        (
            "Peer review",
            peers
            or (
                "not required (low-risk: self-approved)"
                if record.risk is RiskLevel.LOW and record.adopted is None
                else missing
            ),
        ),
        (
            "Client approval",
            clients
            or (
                f"not required ({record.risk.label}-risk)"
                if record.risk < RiskLevel.HIGH
                else missing
            ),
        ),
    ]
    return lines
