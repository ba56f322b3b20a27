"""`dmarcops drift adopt`: an unrecorded change becomes the recorded state, signed by who adopts it.

Adopting says "this change was made outside the pipeline; we keep it". It writes one change record
per zone ("changed outside the pipeline, adopted by ..."), signed by the adopter's key and sealed at
once (there is nothing to roll back: the pipeline changed nothing), and sets the zone file to the
live values so that the next plan does not undo the change and the next drift is clean. Nothing is
sent to DNS. To undo the change instead, file a normal request: the zone file still holds the
recorded value, so the plan of that request puts it back (docs/drift.md, "Revert").
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from functools import partial
from pathlib import Path

import yaml

from pipeline.apply.rollback import restore
from pipeline.drift.detect import DriftItem, DriftReport
from pipeline.errors import GateRefused, InputError
from pipeline.gate.identity import Signer
from pipeline.load.files import exists, read_text
from pipeline.load.portfolio import Portfolio
from pipeline.load.request_files import Selector
from pipeline.load.zones import ESCAPED_SEMICOLONS
from pipeline.records import (
    Adoption,
    ChangeRecord,
    ChangeType,
    Outcome,
    RecordItem,
    RecordStore,
    TimeWindow,
    Verification,
    VerificationStatus,
)
from pipeline.records.record import show_utc

ADOPTED_NOTE = "changed outside the pipeline, adopted by {who}"
OPENED_NOTE = (
    "changed outside the pipeline; nobody has adopted or reverted it yet "
    "(`dmarcops drift adopt`, or a request that puts the recorded value back)"
)


@dataclass(frozen=True)
class Adopted:
    record: ChangeRecord
    zone_file: Path
    written: bool  # False: the zone file already matched live, or --no-write
    snippet: str  # the zone-file YAML for the adopted RRsets


def select(report: DriftReport, selectors: Sequence[Selector]) -> list[DriftItem]:
    """The unrecorded changes the selectors name (all of them when none is given)."""
    chosen = [
        i
        for i in report.unrecorded
        if not selectors
        or any(
            s.zone == i.zone
            and (s.name is None or s.name == i.name.lower())
            and (s.type is None or s.type == i.type)
            for s in selectors
        )
    ]
    return chosen


def drift_hash(items: Sequence[DriftItem]) -> str:
    """What the record's `plan_hash` holds: SHA-256 over the adopted transitions, normalised as a
    plan's items are (zone, name, type, sorted before, sorted after, TTLs)."""
    normalised = sorted(
        [i.zone, i.name, i.type, sorted(i.before), sorted(i.after), i.ttl_before, i.ttl_after]
        for i in items
    )
    canonical = json.dumps(normalised, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(canonical.encode()).hexdigest()


def snippet(items: Sequence[DriftItem]) -> str:
    """The zone-file YAML that makes the zone file match live for these RRsets (what `adopt`
    writes, or what to write by hand with --no-write). An RRset gone from live is removed."""
    data: dict[str, list[dict[str, object]]] = {}
    removed: list[str] = []
    for item in sorted(items, key=lambda i: (i.name, i.type)):
        if not item.after:
            shown_name = item.name or "(apex)"
            removed.append(f"# remove {shown_name} {item.type}: it is gone from live DNS")
            continue
        values = [
            v.replace(";", "\\;") if item.type == "TXT" and ESCAPED_SEMICOLONS else v
            for v in sorted(item.after)
        ]
        record: dict[str, object] = {"type": item.type}
        if item.ttl_after is not None:
            record["ttl"] = item.ttl_after
        if len(values) == 1:
            record["value"] = values[0]
        else:
            record["values"] = values
        data.setdefault(item.name, []).append(record)
    flat = {k: (v[0] if len(v) == 1 else v) for k, v in data.items()}
    text = yaml.safe_dump(flat, sort_keys=True, allow_unicode=True) if flat else ""
    return "\n".join([*removed, text.rstrip()]).strip() + "\n"


def adopt(
    portfolio: Portfolio,
    items: Sequence[DriftItem],
    signer: Signer,
    now: datetime,
    *,
    note: str = "",
    write: bool = True,
    simulated: bool = False,
) -> list[Adopted]:
    """One sealed record per zone for the given unrecorded changes, and the zone files set to
    the live values (unless `write` is False). A failure leaves the zone files as they were."""
    if not items:
        raise InputError("no unrecorded change to adopt", hint="`dmarcops drift` lists them.")
    if any(i.status != "unrecorded" for i in items):
        raise GateRefused(
            "only unrecorded changes are adopted; pending changes go through their request"
        )
    repo = portfolio.root
    store = RecordStore(repo / "changes")
    member = store.trusted_roster(store.ledger.read()).get(signer.analyst)
    if member is None or not member.is_person:
        raise GateRefused(
            f"{signer.analyst} is not an analyst: a person adopts a change nobody approved, "
            "and the record names them",
            hint="Run `dmarcops drift adopt` with your own key (--key).",
        )
    by_zone: dict[tuple[str, str], list[DriftItem]] = {}
    for item in items:
        by_zone.setdefault((item.client, item.zone), []).append(item)
    files = {key: repo / "zones" / key[0] / f"{key[1]}.yaml" for key in by_zone}
    saved = {path: read_text(path, root=repo) for path in files.values() if exists(path)}
    out: list[Adopted] = []
    already_open = _open_drift_records(store.all())
    try:
        for key, mine in sorted(by_zone.items()):
            client = portfolio.clients[key[0]]
            path = files[key]
            to_write = [i for i in mine if not i.zone_file_matches]
            if write and to_write:
                if not exists(path):
                    path.parent.mkdir(parents=True, exist_ok=True)
                    path.write_text("---\n", encoding="utf-8")
                restore(path, [(i.name, i.type, i.after, i.ttl_after) for i in to_write])
            record = _record(portfolio, client.id, client.name, key[1], mine, signer, now, note)
            created = store.create(partial(_with_id, record), now, signer, simulated)
            sealed = store.seal(created.id, Outcome.ACCEPTED, now, signer, simulated=simulated)
            # The records the scheduled run opened for this zone's drift end here: the
            # adoption's record carries the change from now on.
            for opened in already_open.get(key[1], []):
                store.seal(opened.id, Outcome.SUPERSEDED, now, signer, simulated=simulated)
            out.append(Adopted(sealed, path, bool(write and to_write), snippet(to_write)))
    except BaseException:
        for path, text in saved.items():
            path.write_text(text, encoding="utf-8")
        raise
    return out


def _open_drift_records(records: Iterable[ChangeRecord]) -> dict[str, list[ChangeRecord]]:
    """By zone: the records `drift --open-records` opened that nobody closed yet."""
    by_zone: dict[str, list[ChangeRecord]] = {}
    for r in records:
        if r.change_type is ChangeType.UNRECORDED and not r.sealed:
            for zone in r.zones:
                by_zone.setdefault(zone, []).append(r)
    return by_zone


def open_records(
    portfolio: Portfolio,
    report: DriftReport,
    signer: Signer,
    now: datetime,
    *,
    simulated: bool = False,
) -> tuple[list[ChangeRecord], list[ChangeRecord]]:
    """One open change record per zone with unrecorded changes, so a change made by hand at the
    provider is in the audit trail from the first scheduled run that sees it, before anybody
    decides. Idempotent: a zone whose open record already holds the same transitions gets no
    second one (returned as the second list). The record is open, never executed by the
    pipeline (it sent nothing); only a person ends it: `drift adopt` supersedes it, a revert
    closes it as rolled-back. The automation's key may open it (it signs what it observed)."""
    store = RecordStore(portfolio.root / "changes")
    already_open = _open_drift_records(store.all())
    by_zone: dict[tuple[str, str], list[DriftItem]] = {}
    for item in report.unrecorded:
        by_zone.setdefault((item.client, item.zone), []).append(item)
    opened: list[ChangeRecord] = []
    known: list[ChangeRecord] = []
    for (client_id, zone), mine in sorted(by_zone.items()):
        digest = drift_hash(mine)
        already = [r for r in already_open.get(zone, []) if r.plan_hash == digest]
        if already:
            known.extend(already)
            continue
        client = portfolio.clients[client_id]
        found = _record(portfolio, client_id, client.name, zone, mine, signer, now, "")
        record = replace(
            found,
            change_type=ChangeType.UNRECORDED,
            rationale=(
                f"Found by dmarcops drift on {show_utc(now)}: live DNS differs from "
                + ", ".join(sorted({i.baseline for i in mine}))
                + f"; {OPENED_NOTE}."
            ),
            executed_at=None,
            adopted=None,
        )
        opened.append(store.create(partial(_with_id, record), now, signer, simulated))
    return opened, known


def _with_id(record: ChangeRecord, record_id: str) -> ChangeRecord:
    return replace(record, id=record_id)


def _record(
    portfolio: Portfolio,
    client_id: str,
    client_name: str,
    zone: str,
    items: Sequence[DriftItem],
    signer: Signer,
    now: datetime,
    note: str,
) -> ChangeRecord:
    who = signer.analyst
    said = ADOPTED_NOTE.format(who=who) + (f": {note.strip()}" if note.strip() else "")
    risk = max(i.risk for i in items)
    client = portfolio.clients[client_id]
    return ChangeRecord(
        id="0000-0000",
        client=client_id,
        client_name=client_name,
        zones=(zone,),
        change_type=ChangeType.ADOPTED,
        risk=risk,
        plan_hash=drift_hash(items),
        request_id="",
        rationale=(
            f"Found by dmarcops drift on {show_utc(now)}: live DNS differed from "
            + ", ".join(sorted({i.baseline for i in items}))
            + f"; {said}."
        ),
        items=tuple(RecordItem.from_plan_item(i) for i in items),
        approvals=(),
        change_window=None,
        # Nothing to roll back: the pipeline sent nothing. A revert is a new request.
        rollback_window=TimeWindow(now, now),
        created_at=now,
        executed_at=now,
        executed_by="",
        verification=tuple(
            Verification(
                i.zone,
                i.name,
                i.type,
                VerificationStatus.VERIFIED,
                now,
                "live DNS serves these values (observed by dmarcops drift)",
            )
            for i in items
        ),
        policy_sha256=portfolio.policy_sha256,
        change_management=client.outside_change_management,
        adopted=Adoption(now, who, said),
    )
