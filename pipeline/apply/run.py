"""`dmarcops apply`: an approved plan becomes a governed, verified, recorded change.

The order is the seed's: every item covered by a change request; each request's approval chain
complete for this plan hash (unless an emergency, which is logged at once and reviewed within 24 h);
inside the client's window and outside its freezes; then, under the per-client lock, the plan made
again from live DNS and refused if anything moved since approval; then zone-by-zone apply and
verification, written into one numbered change record per request. The gate's part (the options,
the approvals counted, `gate_requests`) is pipeline/apply/gating.py, re-exported here.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from pipeline.apply.execute import ZoneApplication, apply_plan
from pipeline.apply.gating import (
    ApplyOptions,
    Gated,
    approval_evidence,
    gate_requests,
    open_requests,
    read_gate_files,
    restorations,
)
from pipeline.apply.journal import Journal, refuse_if_unrecovered
from pipeline.apply.lock import client_lock
from pipeline.apply.stale import refuse_if_changed
from pipeline.classify.change_type import change_type
from pipeline.errors import EnvironmentProblem, GateRefused, InputError
from pipeline.gate import approvals as gate
from pipeline.gate.requests import ChangeRequest
from pipeline.load.portfolio import Portfolio
from pipeline.plan.build import PlanOptions, make_plan
from pipeline.plan.items import PlanItem
from pipeline.records import (
    ChangeRecord,
    ChangeType,
    Emergency,
    RecordItem,
    RecordStore,
    TimeWindow,
    Verification,
    VerificationStatus,
    ZoneOutcome,
    ZoneStatus,
    format_utc,
)

__all__ = [
    "ApplyOptions",
    "Gated",
    "approval_evidence",
    "gate_requests",
    "open_requests",
    "restorations",
    "run_apply",
]


def _keys(changes: Any) -> list[tuple[str, str, str]]:
    return [(c.zone, c.name, c.type) for c in changes]


def _record_type(request: ChangeRequest, items: list[PlanItem]) -> ChangeType:
    names = {t.value: t for t in ChangeType}
    # The ticket template names its records' change type (policy/templates/); without one, what
    # the change does decides.
    wanted = names.get(request.template.change_type) if request.template is not None else None
    if wanted is not None:
        return wanted
    derived = {change_type(i.kind, i.facts) for i in items}
    return names.get(derived.pop(), ChangeType.OTHER) if len(derived) == 1 else ChangeType.OTHER


def _outcomes(
    apps: dict[str, tuple[int, ZoneApplication]], keys: set[tuple[str, str, str]]
) -> tuple[tuple[ZoneOutcome, ...], tuple[Verification, ...]]:
    """One record's zone results and checks. `apps`: each zone's application and its place in
    the plan (a record is looked up by its own zones, not against every zone of the apply: that
    was records x zones, 800,000 steps for 1,000 changes)."""
    zones: list[ZoneOutcome] = []
    checks: list[Verification] = []
    for _, app in sorted(apps[z] for z in {k[0] for k in keys} if z in apps):
        mine = [i for i in app.items if (i.zone, i.name, i.type) in keys]
        if not mine:
            continue
        verified = {(c.zone, c.name, c.type) for c in app.checks if c.status == "verified"}
        zones.append(
            ZoneOutcome(
                app.zone,
                ZoneStatus(app.status),
                sum(1 for i in mine if (i.zone, i.name, i.type) in verified),
                app.error,
            )
        )
        for c in app.checks:
            if (c.zone, c.name, c.type) in keys:
                checks.append(
                    Verification(
                        c.zone,
                        c.name,
                        c.type,
                        VerificationStatus(c.status),
                        c.checked_at,
                        f"{c.method}: {c.detail}",
                    )
                )
    return tuple(zones), tuple(checks)


def run_apply(portfolio: Portfolio, options: ApplyOptions) -> list[ChangeRecord]:
    """Gate, lock, re-plan, refuse if stale, apply, verify, record. Returns the change records."""
    plan_file = gate.load_plan_file(options.plan_file)
    store = RecordStore(portfolio.root / "changes")
    # An interrupted apply's items may be live with no finished record: recover it first.
    refuse_if_unrecovered(store.changes_dir)
    # From the record index: the plan's executed records, each confirmed in its file (an apply
    # does not read the history).
    executed = store.executed_of_plan(plan_file.plan_hash)
    clients = sorted({c.client for c in plan_file.changes})
    applied_clients = {r.client for r in executed}
    if executed and applied_clients >= set(clients):
        raise GateRefused(
            f"plan {plan_file.plan_hash[:16]} was already applied (change records "
            f"{', '.join(sorted(r.id for r in executed))}); an approved plan is applied once",
            file=options.plan_file,
            hint="Plan again to see what is left to do.",
        )
    # Applied for some of its clients only (the others' provider could not be read then): the
    # rest, once. Each client's records are its own, so no change is applied twice.
    clients = [c for c in clients if c not in applied_clients]
    if not clients:
        raise InputError("the plan has no changes to apply", file=options.plan_file)
    zones = sorted({c.zone for c in plan_file.changes if c.client in clients})
    # The roster of record, the change requests and the plan's approval files do not depend on
    # live DNS: read in a thread while the plan is made again (its AXFRs wait on the network).
    # An error reading them is raised where the gate would have raised it, after the stale
    # check, as before.
    reading = ThreadPoolExecutor(1, thread_name_prefix="gate-files")
    gate_files = reading.submit(read_gate_files, portfolio.root, plan_file.plan_hash)
    reading.shutdown(wait=False)
    with ExitStack() as locks:
        # Every client of the plan, in a fixed order (two applies never deadlock), held until
        # the records are written: the plan is made again and judged under the locks.
        for client_id in clients:
            try:
                locks.enter_context(client_lock(store.changes_dir, client_id, options.wait_seconds))
            except OSError as exc:  # a full or read-only changes/: refuse before anything
                raise EnvironmentProblem(
                    f"cannot take the lock of client {client_id} in changes/ "
                    f"({exc.strerror or exc}); nothing was sent to DNS",
                    file=store.changes_dir,
                    hint="Free space on (or make writable) the file system of changes/, then "
                    "apply again.",
                ) from None
        current = make_plan(
            portfolio,
            PlanOptions(
                now=options.now,
                clients=tuple(clients),
                zones=zones,
                nameservers=options.nameservers,
            ),
        )
        # A client any of whose zones could not be read (its provider down or refusing the
        # credentials) is left out whole, so a request is never applied in part; the clients of
        # the providers that answered go on (docs/providers.md).
        unreadable = current.failed_zones
        left_out = {z.client for z in unreadable}
        if left_out >= set(clients):
            raise GateRefused(
                "live DNS could not be read, nothing was applied: "
                + "; ".join(f"{z.zone}: {z.error}" for z in unreadable)
            )
        if left_out:
            clients = [c for c in clients if c not in left_out]
            current = replace(
                current,
                items=tuple(i for i in current.items if i.client not in left_out),
                zones=tuple(z for z in current.zones if z.client not in left_out),
            )
        kept = [c for c in plan_file.changes if c.client in clients]
        # What the stale check compares: the approved changes of the clients applied now, and
        # their hash (the whole plan's hash when no client was left out).
        approved: dict[str, Any] = {
            # All of them: the plan file's own hash, which load_plan_file checked is theirs.
            "plan_hash": (
                plan_file.plan_hash
                if len(kept) == len(plan_file.changes)
                else gate.hash_of_changes(kept)
            ),
            "changes": [
                {
                    "zone": c.zone,
                    "name": c.name,
                    "type": c.type,
                    "before": list(c.before),
                    "after": list(c.after),
                    "ttl": {"before": c.ttl_before, "after": c.ttl_after},
                }
                for c in kept
            ],
        }
        refuse_if_changed(approved, current)
        gated = gate_requests(
            portfolio,
            options,
            plan_file.plan_hash,
            list(current.items),
            store,
            gate_files.result(),
        )
        items = {(i.zone, i.name, i.type): i for i in current.items}
        records = _execute(portfolio, options, store, plan_file, current, items, gated)
    if left_out:
        raise EnvironmentProblem(
            f"applied for {', '.join(clients)} (change records "
            f"{', '.join(r.id for r in records)}); not for {', '.join(sorted(left_out))}: live DNS "
            "could not be read, nothing was sent to their providers: "
            + "; ".join(f"{z.zone}: {z.error}" for z in unreadable),
            file=options.plan_file,
            hint="When the provider answers again, apply the same plan again: the clients "
            "already applied are skipped (dmarcops records list shows their records).",
        )
    return records


def _execute(
    portfolio: Portfolio,
    options: ApplyOptions,
    store: RecordStore,
    plan_file: gate.PlanFile,
    current: Any,
    items: dict[tuple[str, str, str], PlanItem],
    gated: list[Gated],
) -> list[ChangeRecord]:
    now = options.now
    # The journal first: no record and no provider call before its begin line is on disk.
    journal = Journal.begin(
        store.changes_dir,
        now,
        {
            "plan_hash": plan_file.plan_hash,
            "plan_file": str(options.plan_file),
            "by": options.by,
            "pid": os.getpid(),
            "started_at": format_utc(now),
            "clients": sorted({g.request.client for g in gated}),
        },
    )
    with _TermSignal() as term:
        try:
            records, settled = _journaled(
                portfolio, options, store, plan_file, current, items, gated, journal, term.reason
            )
        except BaseException as exc:
            journal.release()
            _finish_interrupted(portfolio, options, journal, exc)
            raise
    if not settled:
        # A zone's outcome is unknown (the server stopped answering): the journal stays, so the
        # next command cannot start before `dmarcops recover` has checked it again.
        journal.release()
        return records
    try:
        journal.remove()
    except OSError:  # read-only now: the records are complete; recover removes the journal
        journal.release()
    return records


class _TermSignal:
    """SIGTERM (a CI job cancelled, a host shutting down) stops the apply between zones: the zone
    in flight is finished and recorded, the others are recorded as not sent."""

    def __init__(self) -> None:
        self.received = ""
        self._previous: Any = None
        # Python lets only the main thread set signal handlers; elsewhere SIGTERM keeps its default.
        self._active = threading.current_thread() is threading.main_thread()

    def _handle(self, signum: int, frame: Any) -> None:
        self.received = "stopped by SIGTERM"

    def reason(self) -> str:
        return self.received

    def __enter__(self) -> _TermSignal:
        if self._active:
            self._previous = signal.signal(signal.SIGTERM, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._active:
            signal.signal(signal.SIGTERM, self._previous)


def _finish_interrupted(
    portfolio: Portfolio, options: ApplyOptions, journal: Journal, exc: BaseException
) -> None:
    """The apply stopped half-way (a journal or record write failed, Ctrl-C, a bug): finish its
    records from the journal now if the disk allows; else say exactly how to finish them."""
    from pipeline.apply.journal import read_journal
    from pipeline.apply.recover import recover_journal

    cause = f"apply interrupted ({type(exc).__name__}: {exc})".splitlines()[0]
    try:
        recover_journal(
            portfolio,
            read_journal(journal.path),
            by=options.by,
            signer=options.signer,
            now=options.now,
            cause=cause,
            verify_timeout=min(options.verify_timeout, 5.0),
        )
    except Exception as again:
        if isinstance(exc, Exception):
            raise EnvironmentProblem(
                f"{cause}; its change records could not be finished ({again}). The journal "
                f"{journal.path.name} keeps what was sent to DNS",
                file=journal.path,
                hint="Fix the cause (free space, a writable changes/, the DNS server), then "
                "run `dmarcops recover --key YOUR-KEY` before applying anything else.",
            ) from None
        return
    if isinstance(exc, Exception) and not isinstance(exc, GateRefused | InputError):
        raise EnvironmentProblem(
            f"{cause}; what it sent was checked and its change records were finished (marked "
            "recovered)",
            hint="See the records (dmarcops records list); plan again for what is left.",
        ) from None


def _journaled(
    portfolio: Portfolio,
    options: ApplyOptions,
    store: RecordStore,
    plan_file: gate.PlanFile,
    current: Any,
    items: dict[tuple[str, str, str], PlanItem],
    gated: list[Gated],
    journal: Journal,
    stop: Callable[[], str],
) -> tuple[list[ChangeRecord], bool]:
    now = options.now
    signer = options.signer
    assert signer is not None  # _gate refused an unsigned apply before anything started
    builds: list[Callable[[str], ChangeRecord]] = []
    request_keys: list[set[tuple[str, str, str]]] = []
    for g in gated:
        keys = set(_keys(g.items))
        mine = [items[k] for k in sorted(keys)]
        client = portfolio.clients[g.request.client]

        def build(
            record_id: str, g: Gated = g, mine: list[PlanItem] = mine, client: Any = client
        ) -> ChangeRecord:
            return ChangeRecord(
                id=record_id,
                client=client.id,
                client_name=client.name,
                zones=tuple(sorted({i.zone for i in mine})),
                change_type=_record_type(g.request, mine),
                risk=g.risk,
                plan_hash=plan_file.plan_hash,
                request_id=g.request.id,
                request_sha256=g.request.sha256,
                rationale=g.request.rationale,
                items=tuple(RecordItem.from_plan_item(i) for i in mine),
                approvals=g.evidence,
                change_window=g.change_window,
                rollback_window=TimeWindow(now, now + timedelta(hours=g.rollback_hours)),
                created_at=now,
                executed_by=options.by,
                emergency=(
                    Emergency(
                        options.emergency_reason,
                        now + timedelta(hours=portfolio.gate.emergency_review_hours),
                    )
                    if options.emergency_reason
                    else None
                ),
                references=((g.request.rollback_of,) if g.request.rollback_of else ()),
                freeze_exception=g.freeze_exception,
                on_call=g.on_call,
                incident=options.incident if options.emergency_reason else "",
                simulated=options.simulated,
                # The policy of record that judged it (pipeline.records.policy_of_record).
                policy_sha256=portfolio.policy_sha256,
                change_management=client.outside_change_management,
            )

        builds.append(build)
        request_keys.append(keys)
    # One lock, one read of the ledger and of the roster of record for all of them. Their
    # markdown is written once, when they are finished.
    created = store.create_many(builds, now, signer, options.simulated, markdown=False)
    opened = list(zip(created, request_keys, strict=True))
    record_of = {k: record.id for record, keys in opened for k in keys}
    journal.append(
        "records",
        {
            "records": [
                {"id": r.id, "request_id": r.request_id, "items": [list(k) for k in sorted(keys)]}
                for r, keys in opened
            ]
        },
    )
    applications = apply_plan(
        current,
        verify_timeout=options.verify_timeout,
        progress=options.progress,
        clock=options.clock or (lambda: datetime.now(UTC)),
        journal=journal,
        record_of=record_of,
        stop=stop,
        concurrency=portfolio.settings.concurrency,
    )
    by_zone = {app.zone: (n, app) for n, app in enumerate(applications)}
    finished = []
    for record, keys in opened:
        zone_results, checks = _outcomes(by_zone, keys)
        finished.append(
            replace(
                record,
                executed_at=now,
                zone_results=zone_results,
                verification=checks,
            )
        )
    return (
        store.update_many(finished, now, signer, options.simulated),
        all(app.settled for app in applications),
    )
