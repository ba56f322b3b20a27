"""The audit trail: numbered change records, an append-only hash-chained ledger, sealing, audit.

`RecordStore` writes and searches records under `changes/`; `verify`/`audit` check that what is on
disk is what was recorded (docs/audit-trail.md).

The names below are imported when first asked for (module `__getattr__`): importing any module
of this package runs this file first, and a `plan --changed-since` that only reads the ledger's
last policy seal must not pay for the record store, the audit and their imports (about 0.15 s;
benchmarks/README.md, tests/test_startup.py).

`pipeline.records.audit` is the module `audit verify` runs (its function is
`pipeline.records.store.audit`): with the names imported on first use, a package-level `audit`
function would be the function or the module depending on what had been imported before.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
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
        verify,
    )

# name -> the module that defines (or re-exports) it.
_HOME = {
    **dict.fromkeys(("Ledger", "LedgerCorrupt", "LedgerEntry", "LedgerEvent"), "ledger"),
    **dict.fromkeys(
        (
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
            "TimeWindow",
            "Verification",
            "VerificationStatus",
            "ZoneOutcome",
            "ZoneStatus",
            "format_utc",
            "parse_time",
        ),
        "record",
    ),
    **dict.fromkeys(
        (
            "AuditProblem",
            "AuditReport",
            "RecordMismatchError",
            "RecordStore",
            "SealedRecordError",
            "UnknownRecordError",
            "verify",
        ),
        "store",
    ),
}


def __getattr__(name: str) -> Any:
    home = _HOME.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{home}"), name)
    globals()[name] = value  # asked once
    return value


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
    "format_utc",
    "parse_time",
    "verify",
]
