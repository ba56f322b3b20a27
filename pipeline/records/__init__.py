"""The audit trail: numbered change records, an append-only hash-chained ledger, sealing, audit.

`RecordStore` writes and searches records under `changes/`; `verify`/`audit` check that what is on
disk is what was recorded (docs/audit-trail.md).
"""

from pipeline.records.ledger import Ledger, LedgerCorrupt, LedgerEntry, LedgerEvent
from pipeline.records.record import (
    ApprovalEvidence,
    ApprovalRole,
    ApprovalSource,
    ChangeRecord,
    ChangeType,
    Emergency,
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
    "ApprovalEvidence",
    "ApprovalRole",
    "ApprovalSource",
    "AuditProblem",
    "AuditReport",
    "ChangeRecord",
    "ChangeType",
    "Emergency",
    "Ledger",
    "LedgerCorrupt",
    "LedgerEntry",
    "LedgerEvent",
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
