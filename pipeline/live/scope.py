"""The octoDNS processor that keeps the pipeline to the records it owns (README: "Zone files hold only what the pipeline owns").

Records the pipeline does not own are copied, as they are live, into the desired zone before octoDNS
computes changes: they can never appear as creates, updates or deletes, and a provider that writes
whole zones (the sandbox's YamlProvider) writes them back unchanged instead of dropping them. A TXT set that holds SPF beside other values is the
one shared RRset: the desired set becomes the live non-SPF values plus the desired v=spf1 value, with
the live TTL (the client's), so a change to SPF keeps the verification tokens.
"""

from __future__ import annotations

from typing import Any

from octodns.processor.base import BaseProcessor

from pipeline.diff import dmarc
from pipeline.diff.kinds import is_owned_value, kind_of
from pipeline.live.records import copy_record, new_record
from pipeline.model import RecordKind


def raw_values(record: Any) -> tuple[str, ...]:
    """Values as served: TXT unescaped (octoDNS stores `\\;`), others in their text form."""
    values = record.values if hasattr(record, "values") else [record.value]
    out = []
    for value in values:
        to_raw = getattr(value, "to_raw_text", None)
        out.append(to_raw() if to_raw else str(value))
    return tuple(out)


def _same_dmarc(live: Any, desired_zone: Any) -> bool:
    wanted = next(
        (r for r in desired_zone.records if (r.name, r._type) == (live.name, live._type)), None
    )
    return (
        wanted is not None
        and wanted.ttl == live.ttl
        and dmarc.equivalent(raw_values(live), raw_values(wanted))
    )


class ForeignRecordConflict(Exception):
    """A record the pipeline does not own stands where an owned one must go."""


class OwnedRecordsOnly(BaseProcessor):  # type: ignore[misc]
    def __init__(self, name: str = "dmarcops-scope") -> None:
        super().__init__(name)
        # The scoped zones as octoDNS diffed them, kept for validation and facts (one instance
        # per zone plan), so live DNS is read once per zone.
        self.desired: Any = None
        self.existing: Any = None

    def process_source_and_target_zones(
        self, desired: Any, existing: Any, target: Any, lenient: bool = False
    ) -> Any:
        desired_keys = {(r.name, r._type) for r in desired.records}
        desired_names = {r.name for r in desired.records}
        shared_sets = []
        for record in list(existing.records):
            kind = kind_of(record.name, record._type)
            if kind is None:
                if record.name in desired_names and (
                    record._type == "CNAME"
                    or any(r._type == "CNAME" for r in desired.records if r.name == record.name)
                ):
                    # A CNAME cannot share its name (RFC 1034 3.6.2): the server would drop one.
                    raise ForeignRecordConflict(
                        f"{record.fqdn} has a {record._type} record dmarcops does not manage, "
                        "which cannot coexist with the desired one there; the client's DNS team "
                        "must remove it first"
                    )
                desired.add_record(copy_record(record, desired), replace=True, lenient=True)
            elif kind is RecordKind.DMARC and _same_dmarc(record, desired):
                # Only whitespace or tag order differs: receivers see the same policy, so the
                # live record stays as it is and the change is a no-op (never planned, never
                # applied; docs/rules.md "No-op changes").
                desired.add_record(copy_record(record, desired), replace=True, lenient=True)
            elif kind is RecordKind.SPF:
                ours = [v for v in raw_values(record) if is_owned_value(kind, v)]
                if not ours and (record.name, record._type) not in desired_keys:
                    # A TXT set without SPF that we are not adding SPF to: nothing in it is ours.
                    desired.add_record(copy_record(record, desired), replace=True, lenient=True)
                else:
                    shared_sets.append(record)
        for live in shared_sets:
            wanted = next(
                (r for r in desired.records if (r.name, r._type) == (live.name, live._type)), None
            )
            kept = [v for v in live.values if not is_owned_value(RecordKind.SPF, v.to_raw_text())]
            ours = (
                [v for v in wanted.values if is_owned_value(RecordKind.SPF, v.to_raw_text())]
                if wanted is not None
                else []  # SPF left out of the zone file: remove it, keep the rest
            )
            if not kept:
                continue  # the set is all SPF: octoDNS's own diff is right as it is
            merged = new_record(
                desired,
                live.name,
                {"type": "TXT", "ttl": live.ttl, "values": [*kept, *ours]},
                source=wanted.source if wanted is not None else None,
                lenient=True,
            )
            desired.add_record(merged, replace=True, lenient=True)
        self.desired, self.existing = desired, existing
        return desired, existing
