"""Retention (issue 12, item 4): which sealed records have outlived their client's retention.

Seed: records are kept indefinitely for compliance-sensitive clients and for a number of years
otherwise. Per client, in the sealed policy: `retention_years` (absent: indefinitely); a
regulated client's records are kept indefinitely whatever it says. A record's retention runs
from when it was sealed (closed_at). Purging removes the record's files and leaves a tombstone
line in the ledger, signed by a lead (RecordStore.purge), so the numbering and the chain still
verify.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime

from pipeline.load.portfolio import ClientProfile
from pipeline.records.record import ChangeRecord


@dataclass(frozen=True)
class Expired:
    record: ChangeRecord
    kept_until: datetime


def kept_until(record: ChangeRecord, client: ClientProfile | None) -> datetime | None:
    """When `record` may be purged; None while it must be kept (indefinitely, or not sealed)."""
    if client is None or client.regulated or client.retention_years is None:
        return None
    if not record.sealed or record.closed_at is None:
        return None
    closed = record.closed_at
    try:
        return closed.replace(year=closed.year + client.retention_years)
    except ValueError:  # sealed on 29 February
        return closed.replace(year=closed.year + client.retention_years, day=28)


def expired(
    records: Iterable[ChangeRecord], clients: Mapping[str, ClientProfile], now: datetime
) -> list[Expired]:
    out = []
    for record in records:
        until = kept_until(record, clients.get(record.client))
        if until is not None and until <= now:
            out.append(Expired(record, until))
    return sorted(out, key=lambda e: e.record.id)
