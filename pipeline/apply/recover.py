"""`dmarcops recover`: finish the change records of an apply that was interrupted.

An interrupted apply leaves its journal (pipeline.apply.journal). For each journal whose apply is
gone, under the locks of its clients: the zones it had sent without a settled outcome are checked
against live DNS (the authoritative server, or the provider), and every record of the apply is
finished from what the journal and the check say, zone by zone:

- `done` and settled in the journal: the provider's result and the checks made at the time;
- `intent` without a settled `done`: what the server serves now (applied when every item is live,
  failed otherwise), marked as checked at recovery;
- no `intent`: not attempted (nothing of it was sent).

Each record gets a visible `recovery` entry (when, by whom, which journal, what was found), then
the journal is removed. If a sent zone cannot be checked (its server does not answer) nothing is
written and the journal stays: a record must say what reached DNS, not guess it.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, replace
from datetime import datetime

from pipeline.apply.journal import (
    JournalState,
    _fsync_dir,
    journals,
    orphan_lock,
    read_journal,
)
from pipeline.apply.lock import client_lock
from pipeline.apply.verify import ItemCheck, authoritative_server, verify_by_dns, verify_by_provider
from pipeline.errors import GateRefused, InputError
from pipeline.gate.identity import Signer
from pipeline.live.hosted import prepare_zone
from pipeline.live.providers import build_provider
from pipeline.load.files import exists
from pipeline.load.portfolio import Portfolio
from pipeline.records import (
    ChangeRecord,
    RecordItem,
    RecordStore,
    Recovery,
    Verification,
    VerificationStatus,
    ZoneOutcome,
    ZoneStatus,
)
from pipeline.records.store import record_file_bytes, write_atomic

Key = tuple[str, str, str]


@dataclass(frozen=True)
class Recovered:
    journal: str  # the apply id
    records: tuple[ChangeRecord, ...]
    detail: str


def _key(item: RecordItem | ItemCheck | Verification) -> Key:
    return item.zone, item.name, item.type


def _live_checks(
    portfolio: Portfolio,
    record: ChangeRecord,
    zone: str,
    items: Sequence[RecordItem],
    timeout: float,
) -> list[ItemCheck]:
    client = portfolio.clients[record.client]
    target = build_provider(
        portfolio.providers[client.provider], portfolio.root, instance=f"[{zone}]"
    )
    server = authoritative_server(target)
    if server is not None:
        return verify_by_dns(server[0], server[1], items, timeout=timeout, interval=0.2)
    try:
        prepare_zone(target, zone)  # Route 53: this zone's id, never a private namesake
        return verify_by_provider(target, zone, items)
    except Exception as exc:  # the provider cannot be read: the items cannot be judged
        raise GateRefused(
            f"cannot read {zone} through its provider to see what the interrupted apply sent "
            f"({exc}); nothing was written and the journal stays",
            hint="Run `dmarcops recover` again when the provider answers.",
        ) from None


def _apply_records(
    store: RecordStore, state: JournalState
) -> tuple[list[ChangeRecord], dict[str, str]]:
    """The apply's records: those its journal names, and any it created before it could say so
    (same plan, never executed). A record file the ledger never logged is a creation cut short
    by the crash (nothing was sent for it): it is removed so the numbering stays whole.

    With them, the record files recover may write over though the ledger's last line for them
    hashes another version (id -> the hash of the file found; `_unlogged_finish_undone`).

    Found through the record index and the ledger as the index knows it (each record then read
    from its file): a recovery does not read the history."""

    def mine(record: ChangeRecord) -> bool:
        return record.id in state.record_ids or (
            record.plan_hash == state.plan_hash and record.executed_at is None
        )

    found = {r.id: r for r in store.unexecuted_of_plan(state.plan_hash)}
    for record_id in {*state.record_ids, *store.unlogged_files()} - found.keys():
        if exists(store.json_path(record_id)):
            found[record_id] = store.get(record_id)
    found = {i: r for i, r in found.items() if mine(r)}
    logged = store.last_logged(found)
    out: dict[str, ChangeRecord] = {}
    replacing: dict[str, str] = {}
    for record_id in sorted(found, key=lambda i: (int(i[:4]), int(i[5:]))):
        record = found[record_id]
        if record_id not in logged:
            for path in (store.json_path(record_id), store.markdown_path(record_id)):
                path.unlink(missing_ok=True)
            continue
        if record.sha256() != logged[record_id]:
            record, seen = _unlogged_finish_undone(store, record, store.logged_versions(record_id))
            if seen:
                replacing[record_id] = seen
        out[record_id] = record
    return list(out.values()), replacing


def _unlogged_finish_undone(
    store: RecordStore, record: ChangeRecord, logged: list[str]
) -> tuple[ChangeRecord, str]:
    """Records are finished in two steps (RecordStore.update_many: every file, then every ledger
    line), by the apply and by recover itself. Killed in between, a record file holds results
    (and a `recovery` entry) that the ledger never logged. Without those, the record must be, to
    the hash, a version the ledger logged (`logged`: its versions, in order):

    - the last one (the apply had only opened the record): it is put back, and the record is
      finished again from the journal;
    - an earlier one (the apply, or an earlier recover, had finished it, and a recover killed
      half-way overwrote that with its own results): the last logged version's results are not
      in the file any more, but recover makes every result again from the journal and live DNS,
      so it finishes the record from the logged version it holds, writing over the file found.
      The hash of that file comes back beside it: the write goes ahead only if the file is still
      that one (RecordStore.update_many, `replacing`).

    Anything else stays as found (empty hash), and the update that follows refuses it as a record
    that differs from the ledger: recovery never carries forward content the ledger did not log.
    """
    unfinished = replace(record, executed_at=None, zone_results=(), verification=(), recovery=None)
    version = unfinished.sha256()
    if version == logged[-1]:
        write_atomic(store.json_path(record.id), record_file_bytes(unfinished))
        write_atomic(store.markdown_path(record.id), unfinished.render_markdown().encode("utf-8"))
        return unfinished, ""
    if version in logged:
        return unfinished, store.file_sha256(record.id)
    return record, ""


def recover_journal(
    portfolio: Portfolio,
    state: JournalState,
    *,
    by: str,
    signer: Signer | None,
    now: datetime,
    cause: str,
    verify_timeout: float = 5.0,
) -> Recovered:
    """Finish the records of one journal and remove it. The caller holds the clients' locks."""
    store = RecordStore(portfolio.root / "changes")
    if signer is None:
        raise InputError(
            "finishing change records is signed into the ledger: no signing key was given",
            file=state.path,
            hint="Run `dmarcops recover --key YOUR-KEY`.",
        )
    records, replacing = _apply_records(store, state) if state.plan_hash else ([], {})
    # First every check, then every write: a check that fails leaves everything as it was.
    live: dict[Key, ItemCheck] = {}
    for record in records:
        for zone in record.zones:
            if zone not in state.unsettled:
                continue
            items = [i for i in record.items if i.zone == zone and _key(i) not in live]
            for check in _live_checks(portfolio, record, zone, items, verify_timeout):
                if check.status == "unverifiable":
                    raise GateRefused(
                        f"{check.name or '@'}.{zone} {check.type}: the interrupted apply sent it "
                        f"(or was about to) and the server cannot be asked now ({check.detail}); "
                        "nothing was written and the journal stays",
                        file=state.path,
                        hint="Run `dmarcops recover` again when the server answers.",
                    )
                live[_key(check)] = check
    finished: list[ChangeRecord] = []
    found: list[str] = []
    for record in records:
        if record.sealed:
            continue
        zones: list[ZoneOutcome] = []
        checks: list[Verification] = []
        for zone in record.zones:
            mine = [i for i in record.items if i.zone == zone]
            done = state.done.get(zone)
            if zone in state.unsettled:
                observed = [live[_key(i)] for i in mine]
                served = sum(1 for c in observed if c.status == "verified")
                status = ZoneStatus.APPLIED if served == len(mine) else ZoneStatus.FAILED
                error = (
                    f"interrupted after its intent was written, the update sent or about to be "
                    f"({cause}); checked at recovery: "
                    f"{served} of {len(mine)} item(s) live"
                )
                found.append(f"{zone}: {served}/{len(mine)} live")
            elif done is not None:
                keys = {_key(i) for i in mine}
                observed = [c for c in done.checks if _key(c) in keys]
                served = sum(1 for c in observed if c.status == "verified")
                status, error = ZoneStatus(done.status), done.error
            else:
                observed, served = [], 0  # nothing of it was sent
                status = ZoneStatus.NOT_ATTEMPTED
                error = f"not sent: the apply stopped before this zone ({state.stopped or cause})"
            zones.append(ZoneOutcome(zone, status, served, error))
            checks.extend(
                Verification(
                    c.zone,
                    c.name,
                    c.type,
                    VerificationStatus(c.status),
                    c.checked_at,
                    f"{c.method}: {c.detail}",
                )
                for c in observed
            )
        detail = f"{cause}; " + ("; ".join(found) if found else "no zone was in doubt")
        recovered = replace(
            record,
            executed_at=record.executed_at or state.started_at,
            zone_results=tuple(zones),
            verification=tuple(checks),
            recovery=Recovery(now, by, state.apply_id, detail),
        )
        finished.append(recovered)
    # One batch: every record file durable, then their ledger lines (one fsync). Killed in
    # between, the next recover finds files ahead of the ledger and finishes them again
    # (`_unlogged_finish_undone`).
    finished = store.update_many(finished, now, signer, replacing=replacing)
    state.path.unlink(missing_ok=True)
    _fsync_dir(state.path.parent)
    return Recovered(
        state.apply_id,
        tuple(finished),
        "; ".join(found) if found else "nothing was in doubt",
    )


def _cause(state: JournalState) -> str:
    if state.stopped:
        return state.stopped
    return f"apply by {state.by or 'unknown'} (pid {state.pid}) ended without finishing its records"


def recover_all(
    portfolio: Portfolio, *, signer: Signer, now: datetime, wait_seconds: float = 0.0
) -> Iterator[Recovered]:
    """Every journal whose apply is gone, one by one, under its clients' locks."""
    changes = portfolio.root / "changes"
    for path in journals(changes):
        with orphan_lock(path) as orphan:
            if not orphan:
                continue  # its apply is still running, or it finished meanwhile
            state = read_journal(path)
            with ExitStack() as locks:
                for client in sorted(state.clients):
                    locks.enter_context(client_lock(changes, client, wait_seconds))
                yield recover_journal(
                    portfolio,
                    state,
                    by=signer.analyst,
                    signer=signer,
                    now=now,
                    cause=_cause(state),
                )
