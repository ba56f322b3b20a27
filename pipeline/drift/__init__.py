"""Drift (live DNS changed outside the pipeline), its adoption, and self-serve recommendations.

`detect` compares live DNS with the zone files and the last change records; `adopt` turns an
unrecorded change into a sealed record and the zone file's value; `recommend` is the advice a
self-serve client gets instead of a change (docs/drift.md).
"""

from pipeline.drift.detect import (
    PENDING,
    UNRECORDED,
    UNREQUESTED,
    DriftItem,
    DriftReport,
    detect,
    recorded_state,
)

__all__ = [
    "PENDING",
    "UNRECORDED",
    "UNREQUESTED",
    "DriftItem",
    "DriftReport",
    "detect",
    "recorded_state",
]
