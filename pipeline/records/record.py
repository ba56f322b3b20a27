"""The change record: the seed's CHANGE RECORD template as a typed, immutable value.

A record is what the audit trail keeps of one change-controlled change: the before/after state, the
rationale, the approval chain, the timing and the outcome (seed: "The change-record template").
It is hashed over canonical JSON, so the ledger can prove that what is on disk is what was written,
and rendered as the seed's template in markdown (every user string escaped) and plain text.

All times are UTC with whole seconds (seed: "Timestamp accuracy. UTC, not local time"): anything
finer would not survive the "YYYY-MM-DDTHH:MM:SSZ" serialisation, and a record must hash the same
after a round trip through its file.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pipeline.model import RiskLevel
from pipeline.records.record_base import (
    ACTIONS,
    FORMAT_VERSION,
    RECORD_ID,
    ApprovalRole,
    ApprovalSource,
    ChangeType,
    Outcome,
    RecordFormatError,
    VerificationStatus,
    ZoneStatus,
    _Fields,
    _normalise_times,
    _read,
    _time_or_none,
    canonical_bytes,
    format_utc,
    parse_time,
    parse_wire_time,
    sha256_hex,
    show_utc,
    utc,
)
from pipeline.records.record_outcome import (
    CHECK_STATUSES,
    REPORT_VERDICTS,
    Adoption,
    Check,
    ManualChange,
    Recovery,
    ReportCheck,
    Verification,
    ZoneOutcome,
)
from pipeline.records.record_parts import (
    REVIEW_VERDICTS,
    ApprovalEvidence,
    Emergency,
    RecordItem,
    TimeWindow,
)
from pipeline.records.record_render import (
    _render,
    plain,
)

# --- the record -------------------------------------------------------------------------------


@dataclass(frozen=True)
class ChangeRecord:
    id: str  # "2026-0001"
    client: str  # the client's id in policy/clients/
    client_name: str
    zones: tuple[str, ...]
    change_type: ChangeType
    risk: RiskLevel
    plan_hash: str  # the plan the approvals were bound to
    request_id: str
    rationale: str
    items: tuple[RecordItem, ...]
    approvals: tuple[ApprovalEvidence, ...]
    change_window: TimeWindow | None  # None for an emergency change (it skips the window)
    rollback_window: TimeWindow
    created_at: datetime
    executed_at: datetime | None = None
    executed_by: str = ""
    emergency: Emergency | None = None
    zone_results: tuple[ZoneOutcome, ...] = ()
    verification: tuple[Verification, ...] = ()
    outcome: Outcome | None = None
    closed_at: datetime | None = None
    closed_by: str = ""
    closed_forced: bool = False  # closed before its rollback window ended (--force)
    sealed: bool = False
    references: tuple[
        str, ...
    ] = ()  # ids of related records: rollback-of, rolled-back-by, follow-ups
    internal_notes: str = ""  # MSP-side only: left out of client exports (seed FAQ)
    # What the one gate allowed by exception, and under which policy (pipeline.gate.decide).
    # Written only when set, so records made before these fields keep their hashes.
    freeze_exception: str = ""  # the freeze a client approval knowingly overrode, and who
    incident: str = ""  # the declared incident an emergency answered
    # The on-call owner who covered a rollback window ending outside staffed hours (the Friday
    # rule); written only when set.
    on_call: str = ""
    policy_sha256: str = ""  # the sealed policy the decision used
    recovery: Recovery | None = None  # finished from an interrupted apply's journal
    # Written under an injected time (a sandbox rehearsal, pipeline.clock): `audit verify` refuses
    # such a record for a client that is not on the sandbox.
    simulated: bool = False
    # SHA-256 of the change request's content as signed and approved (pipeline.gate.requests).
    request_sha256: str = ""
    # Issue 14 part 5: what the aggregate reports said at the close, and the reason a person
    # gave for closing as accepted without that evidence (the quarterly review lists it).
    report_verification: ReportCheck | None = None
    closed_without_evidence: str = ""
    # Issue 13. Written only when set, so records made before these fields keep their hashes.
    # The client's change management is outside the MSP's standard (label and direction).
    change_management: str = ""
    adopted: Adoption | None = None  # a drift adopted as the recorded state (`drift adopt`)
    manual: ManualChange | None = None  # a platform change or a DKIM selector switch

    def __post_init__(self) -> None:
        if not RECORD_ID.match(self.id):
            raise ValueError(f"record id {self.id!r} is not YYYY-NNNN")
        for ref in self.references:
            if not RECORD_ID.match(ref):
                raise ValueError(f"reference {ref!r} is not a record id (YYYY-NNNN)")
        _normalise_times(self, "created_at", "executed_at", "closed_at")
        if self.sealed and (self.outcome is None or self.closed_at is None or not self.closed_by):
            # Seed: the outcome is logged, then the record is sealed; never one without the other.
            raise ValueError(f"record {self.id} is sealed without an outcome, time and closer")

    # -- derived values

    @property
    def year(self) -> int:
        return int(self.id.split("-")[0])

    @property
    def number(self) -> int:
        return int(self.id.split("-")[1])

    @property
    def author(self) -> str:
        """The analyst who proposed the change (the seed's "Analyst: J. Chen (proposing)")."""
        return next((a.who for a in self.approvals if a.role is ApprovalRole.ANALYST), "")

    @property
    def analysts(self) -> frozenset[str]:
        """Everyone who touched the record: author, approvers, executor, reviewer, closer."""
        names = {a.who for a in self.approvals} | {self.executed_by, self.closed_by}
        if self.emergency is not None:
            names.add(self.emergency.reviewed_by)
        if self.adopted is not None:
            names.add(self.adopted.adopted_by)
        return frozenset(n for n in names if n)

    @property
    def when(self) -> datetime:
        """The date a search by date looks at: when it was executed, else when it was filed."""
        return self.executed_at or self.created_at

    def review_overdue(self, now: datetime) -> bool:
        return self.emergency is not None and self.emergency.overdue(now)

    # -- serialisation

    def to_json(self) -> dict[str, Any]:
        return {
            "format_version": FORMAT_VERSION,
            "id": self.id,
            "client": self.client,
            "client_name": self.client_name,
            "zones": list(self.zones),
            "change_type": self.change_type.value,
            "risk": self.risk.label,
            "plan_hash": self.plan_hash,
            "request_id": self.request_id,
            "request_sha256": self.request_sha256,
            "rationale": self.rationale,
            "items": [i.to_json() for i in self.items],
            "approvals": [a.to_json() for a in self.approvals],
            "change_window": self.change_window.to_json() if self.change_window else None,
            "rollback_window": self.rollback_window.to_json(),
            "created_at": format_utc(self.created_at),
            "executed_at": _time_or_none(self.executed_at),
            "executed_by": self.executed_by,
            "emergency": self.emergency.to_json() if self.emergency else None,
            "zone_results": [z.to_json() for z in self.zone_results],
            "verification": [v.to_json() for v in self.verification],
            "outcome": self.outcome.value if self.outcome else None,
            "closed_at": _time_or_none(self.closed_at),
            "closed_by": self.closed_by,
            "closed_forced": self.closed_forced,
            "sealed": self.sealed,
            "references": list(self.references),
            "internal_notes": self.internal_notes,
            **{
                key: value
                for key, value in (
                    ("freeze_exception", self.freeze_exception),
                    ("incident", self.incident),
                    ("on_call", self.on_call),
                    ("policy_sha256", self.policy_sha256),
                )
                if value
            },
            # Only when set: records written before the field existed keep their hashes.
            **({"recovery": self.recovery.to_json()} if self.recovery else {}),
            **({"simulated": True} if self.simulated else {}),
            **(
                {"report_verification": self.report_verification.to_json()}
                if self.report_verification
                else {}
            ),
            **(
                {"closed_without_evidence": self.closed_without_evidence}
                if self.closed_without_evidence
                else {}
            ),
            **({"change_management": self.change_management} if self.change_management else {}),
            **({"adopted": self.adopted.to_json()} if self.adopted else {}),
            **({"manual": self.manual.to_json()} if self.manual else {}),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | object) -> ChangeRecord:
        f = _Fields(data, "record")
        if f.number("format_version") != FORMAT_VERSION:
            raise RecordFormatError(
                f"record.format_version: {f.data['format_version']} is not {FORMAT_VERSION}",
                hint="This record was written by another version of dmarcops.",
            )
        change_window = f.optional_object("change_window")
        emergency = f.optional_object("emergency")
        rollback_window = f.optional_object("rollback_window")
        recovery = f.optional_object("recovery") if "recovery" in f.data else None
        checked = (
            f.optional_object("report_verification") if "report_verification" in f.data else None
        )
        adopted = f.optional_object("adopted") if "adopted" in f.data else None
        manual = f.optional_object("manual") if "manual" in f.data else None
        if rollback_window is None:
            raise RecordFormatError("record.rollback_window: missing")
        return _read(
            lambda: cls(
                id=f.text("id"),
                client=f.text("client"),
                client_name=f.text("client_name"),
                zones=f.texts("zones"),
                change_type=f.choice("change_type", ChangeType),
                risk=f.risk("risk"),
                plan_hash=f.text("plan_hash"),
                request_id=f.text("request_id"),
                # Absent in records written before the field existed: those stay readable.
                request_sha256=f.text("request_sha256") if "request_sha256" in f.data else "",
                rationale=f.text("rationale"),
                items=tuple(RecordItem.from_fields(i) for i in f.objects("items")),
                approvals=tuple(ApprovalEvidence.from_fields(a) for a in f.objects("approvals")),
                change_window=TimeWindow.from_fields(change_window) if change_window else None,
                rollback_window=TimeWindow.from_fields(rollback_window),
                created_at=f.time("created_at"),
                executed_at=f.optional_time("executed_at"),
                executed_by=f.text("executed_by"),
                emergency=Emergency.from_fields(emergency) if emergency else None,
                zone_results=tuple(ZoneOutcome.from_fields(z) for z in f.objects("zone_results")),
                verification=tuple(Verification.from_fields(v) for v in f.objects("verification")),
                outcome=f.optional_choice("outcome", Outcome),
                closed_at=f.optional_time("closed_at"),
                closed_by=f.text("closed_by"),
                closed_forced=f.flag("closed_forced"),
                sealed=f.flag("sealed"),
                references=f.texts("references"),
                internal_notes=f.text("internal_notes"),
                freeze_exception=f.text("freeze_exception") if "freeze_exception" in f.data else "",
                incident=f.text("incident") if "incident" in f.data else "",
                on_call=f.text("on_call") if "on_call" in f.data else "",
                policy_sha256=f.text("policy_sha256") if "policy_sha256" in f.data else "",
                recovery=Recovery.from_fields(recovery) if recovery else None,
                simulated=f.data.get("simulated") is True,
                report_verification=ReportCheck.from_fields(checked) if checked else None,
                closed_without_evidence=(
                    f.text("closed_without_evidence") if "closed_without_evidence" in f.data else ""
                ),
                change_management=f.text("change_management")
                if "change_management" in f.data
                else "",
                adopted=Adoption.from_fields(adopted) if adopted else None,
                manual=ManualChange.from_fields(manual) if manual else None,
            )
        )

    def canonical_bytes(self) -> bytes:
        return canonical_bytes(self.to_json())

    def sha256(self) -> str:
        return hashlib.sha256(self.canonical_bytes()).hexdigest()

    def client_export(self) -> dict[str, Any]:
        """What the client sees on request: everything but the MSP's internal notes (seed FAQ)."""
        data = self.to_json()
        del data["internal_notes"]
        return data

    # -- rendering

    def render_markdown(self, *, include_internal: bool = True) -> str:
        return _render(self, markdown=True, include_internal=include_internal)

    def render_text(self, *, include_internal: bool = True) -> str:
        return _render(self, markdown=False, include_internal=include_internal)


# The parts live in record_base, record_parts, record_outcome and record_render (issue 16 item 5); importable
# from here as before.
__all__ = [
    "ACTIONS",
    "CHECK_STATUSES",
    "FORMAT_VERSION",
    "RECORD_ID",
    "REPORT_VERDICTS",
    "REVIEW_VERDICTS",
    "Adoption",
    "ApprovalEvidence",
    "ApprovalRole",
    "ApprovalSource",
    "ChangeRecord",
    "ChangeType",
    "Check",
    "Emergency",
    "ManualChange",
    "Outcome",
    "RecordFormatError",
    "RecordItem",
    "Recovery",
    "ReportCheck",
    "TimeWindow",
    "Verification",
    "VerificationStatus",
    "ZoneOutcome",
    "ZoneStatus",
    "canonical_bytes",
    "format_utc",
    "parse_time",
    "parse_wire_time",
    "plain",
    "sha256_hex",
    "show_utc",
    "utc",
]
