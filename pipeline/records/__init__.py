"""The audit trail: numbered change records, an append-only hash-chained ledger, sealing, audit.

`RecordStore` writes and searches records under `changes/`; `verify`/`audit` check that what is on
disk is what was recorded (docs/audit-trail.md).
"""

from pipeline.records.ledger import Ledger, LedgerCorrupt, LedgerEntry, LedgerEvent
from pipeline.records.record import (
    Adoption,
    ApprovalEvidence,
    ApprovalRole,
    ApprovalSource,
    ChangeRecord,
    ChangeType,
    Check,
    Emergency,
    ManualChange,
    Outcome,
    RecordFormatError,
    RecordItem,
    Recovery,
    TimeWindow,
    Verification,
    VerificationStatus,
    ZoneOutcome,
    ZoneStatus,
    format_utc,
    parse_time,
)
from pipeline.records.store import (
    AuditProblem,
    AuditReport,
    RecordMismatchError,
    RecordStore,
    SealedRecordError,
    UnknownRecordError,
    audit,
    verify,
)

__all__ = [
    "Adoption",
    "ApprovalEvidence",
    "ApprovalRole",
    "ApprovalSource",
    "AuditProblem",
    "AuditReport",
    "ChangeRecord",
    "ChangeType",
    "Check",
    "Emergency",
    "Ledger",
    "LedgerCorrupt",
    "LedgerEntry",
    "LedgerEvent",
    "ManualChange",
    "Outcome",
    "RecordFormatError",
    "RecordItem",
    "RecordMismatchError",
    "RecordStore",
    "Recovery",
    "SealedRecordError",
    "TimeWindow",
    "UnknownRecordError",
    "Verification",
    "VerificationStatus",
    "ZoneOutcome",
    "ZoneStatus",
    "audit",
    "format_utc",
    "parse_time",
    "verify",
]
