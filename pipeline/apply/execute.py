"""Apply a plan zone by zone through the octoDNS targets that planned it, then verify each zone.

octoDNS's Manager would stop at the first failing zone; the seed wants "one failing zone does not stop
the others; it is recorded as failed". So each zone is applied on its own, its exception caught and
recorded with exactly what it was, and verification (not the absence of an exception) says which
records are live: an RFC 2136 provider sends its changes in batches, so a zone can fail half-way.

With a journal (pipeline.apply.journal), each zone's `intent` line is on disk before the zone is
sent and its `done` line after: if the intent cannot be written, the zone is not sent and the
exception stops the apply. A zone whose update failed in a way that may or may not have reached
the server (a timeout) and whose check could not reach it either is "unsettled": only a later check
(`dmarcops recover`) can say which of its items are live.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from octodns_bind import Rfc2136Provider

from pipeline.apply.journal import Journal, JournalWriteError
from pipeline.apply.verify import (
    ItemCheck,
    authoritative_server,
    verify_by_dns,
    verify_by_provider,
    verify_route53,
)
from pipeline.live.bind import Connections, guarded_apply
from pipeline.live.hosted import class_of, route53_apply
from pipeline.live.providers import POWERDNS, ROUTE53
from pipeline.plan.build import explain
from pipeline.plan.items import Plan, PlanItem, ZoneResult

Clock = Callable[[], datetime]
Key = tuple[str, str, str]  # zone, name, type


@dataclass(frozen=True)
class ZoneApplication:
    zone: str
    status: str  # applied | failed | not-attempted
    error: str
    items: tuple[PlanItem, ...]
    checks: tuple[ItemCheck, ...]
    # False when the update may have reached the server but no check could say: the journal is
    # kept and `dmarcops recover` checks again.
    settled: bool = True

    @property
    def verified(self) -> int:
        return sum(1 for c in self.checks if c.status == "verified")


def _verify(
    zone: ZoneResult, items: Sequence[PlanItem], timeout: float, clock: Clock
) -> list[ItemCheck]:
    if class_of(zone.octodns_target) == ROUTE53:
        return verify_route53(zone.octodns_target, zone.zone, items, timeout, clock)
    server = authoritative_server(zone.octodns_target)
    if server is not None:
        return verify_by_dns(server[0], server[1], items, timeout=timeout, clock=clock)
    try:
        return verify_by_provider(zone.octodns_target, zone.zone, items, clock)
    except Exception as exc:  # the provider cannot even be read: say so, per item
        return [
            ItemCheck(i.zone, i.name, i.type, "unverifiable", clock(), "provider", str(exc))
            for i in items
        ]


def _send(zone: ZoneResult, connections: Connections) -> None:
    """The provider call: the one step that changes DNS."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        if isinstance(zone.octodns_target, Rfc2136Provider):
            guarded_apply(zone.octodns_target, zone.octodns_plan, connections)
        elif class_of(zone.octodns_target) == ROUTE53:
            route53_apply(zone.octodns_target, zone.octodns_plan)
        else:
            zone.octodns_target.apply(zone.octodns_plan)


def _nothing_sent(zone: ZoneResult, exc: Exception) -> bool:
    """A refused connection on a one-batch RFC 2136 update: the update never left this machine.
    (A timeout proves nothing: the server may have applied it and lost the answer.)"""
    target = zone.octodns_target
    changes = getattr(zone.octodns_plan, "changes", ())
    kind = class_of(target)
    if kind == POWERDNS:
        # One PATCH per zone; a connection never made carried nothing.
        return _connection_never_made(exc)
    if kind == ROUTE53:
        # botocore says EndpointConnectionError only when it could not connect at all; a zone
        # of fewer than max_changes records is one change batch.
        return type(exc).__name__ == "EndpointConnectionError" and len(changes) < getattr(
            target, "max_changes", 0
        )
    batch = getattr(target, "update_batch_size", 0)
    return isinstance(exc, ConnectionRefusedError) and 0 < len(changes) <= batch


def _connection_never_made(exc: Exception) -> bool:
    from requests.exceptions import ConnectionError as RequestsConnectionError
    from urllib3.exceptions import NewConnectionError

    if not isinstance(exc, RequestsConnectionError):
        return False
    reason = getattr(exc.args[0] if exc.args else None, "reason", None)
    return isinstance(reason, NewConnectionError)


def _item_json(item: PlanItem, record_of: dict[tuple[str, str, str], str]) -> dict[str, Any]:
    return {
        "zone": item.zone,
        "name": item.name,
        "type": item.type,
        "action": item.action,
        "before": list(item.before),
        "after": list(item.after),
        "record": record_of.get((item.zone, item.name, item.type), ""),
    }


def _check_json(c: ItemCheck) -> dict[str, str]:
    return {
        "zone": c.zone,
        "name": c.name,
        "type": c.type,
        "status": c.status,
        "checked_at": c.checked_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "method": c.method,
        "detail": c.detail,
    }


@dataclass
class _Sent:
    """A zone sent (or whose send failed), its verification running in the pool."""

    zone: ZoneResult
    items: tuple[PlanItem, ...]
    error: str
    nothing_sent: bool
    checks: Future[list[ItemCheck]]


def _finish(sent: _Sent, journal: Journal | None) -> ZoneApplication:
    """The zone's outcome once its verification is back, and its `done` line. The line is not
    fsynced on its own: only `intent` must be durable before a provider call. A `done` lost in a
    power cut leaves the zone in doubt, and `dmarcops recover` checks it again; the next `intent`
    (or the end of the apply) makes it durable along with everything before it."""
    checks = sent.checks.result()
    error = sent.error
    settled = not error or sent.nothing_sent or all(c.status != "unverifiable" for c in checks)
    if not settled:
        error += (
            "; the server did not answer the check, so whether the update reached DNS is "
            "unknown until `dmarcops recover` checks again"
        )
    if journal is not None:
        journal.append(
            "done",
            {
                "zone": sent.zone.zone,
                "status": "failed" if error else "applied",
                "error": error,
                "settled": settled,
                "checks": [_check_json(c) for c in checks],
            },
            durable=False,
        )
    return ZoneApplication(
        sent.zone.zone,
        "failed" if error else "applied",
        error,
        sent.items,
        tuple(checks),
        settled,
    )


def _intent(
    zone: ZoneResult, items: Sequence[PlanItem], record_of: dict[Key, str], clock: Clock
) -> dict[str, Any]:
    return {
        "zone": zone.zone,
        "at": clock().astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "items": [_item_json(i, record_of) for i in items],
    }


def _write_ahead(
    journal: Journal, syncer: ThreadPoolExecutor, intent: dict[str, Any]
) -> Future[None]:
    """The next zone's `intent`, written now and fsynced in `syncer` while the zone before it is
    on the wire: its fsync no longer waits in line between two updates. The zone is not sent
    before the future says the line is durable. A write that fails here is raised when that zone
    comes up, not before the zone already due is sent (as when intents were written in turn)."""
    try:
        journal.append("intent", intent, durable=False)
    except JournalWriteError as exc:
        failed: Future[None] = Future()
        failed.set_exception(exc)
        return failed
    return syncer.submit(journal.sync)


def apply_plan(
    plan: Plan,
    *,
    verify_timeout: float = 10.0,
    clock: Clock = lambda: datetime.now(UTC),
    progress: Callable[[str], None] | None = None,
    journal: Journal | None = None,
    record_of: dict[tuple[str, str, str], str] | None = None,
    stop: Callable[[], str] | None = None,
    concurrency: int = 8,
) -> list[ZoneApplication]:
    """Apply zone by zone. `stop()` returns a reason to send no further zone (SIGTERM): the zones
    in flight are finished and recorded, the rest are not attempted.

    The provider calls are made one after the other from this thread, each after its `intent`
    line is durable; each zone's verification then runs in a pool of `concurrency` threads
    (policy/settings.yaml) while the next zone is sent, so waiting for a server to serve an update
    no longer holds up the others. `done` lines are written from this thread as checks come back;
    the results are in plan order.

    The `intent` of the next zone is written, and fsynced in a thread, while the zone before it
    is sent (`_write_ahead`). So at most one zone that was not sent has an intent and no `done`
    (the next one), beside the zones sent whose checks have not come back; after a crash
    recovery checks them all against live DNS. A zone whose intent was written ahead and that
    is then not sent (SIGTERM came first) gets a `done` line saying so."""
    outcome: dict[str, ZoneApplication] = {}
    order: list[str] = []
    in_flight: list[_Sent] = []
    owners = record_of or {}

    def collect(wait: bool) -> None:
        for sent in list(in_flight):
            if wait or sent.checks.done():
                in_flight.remove(sent)
                outcome[sent.zone.zone] = _finish(sent, journal)

    by_zone: dict[str, list[PlanItem]] = {}
    for item in plan.items:
        by_zone.setdefault(item.zone, []).append(item)
    zones = [z for z in plan.zones if by_zone.get(z.zone)]
    sendable = [z for z in zones if not z.failed and z.octodns_plan is not None]
    following = {z.zone: n for n, z in zip(sendable[1:], sendable, strict=False)}
    ahead: dict[str, Future[None]] = {}  # zone -> its intent's fsync, written ahead
    # The RFC 2136 updates of every zone go to their server over one TCP connection.
    connections = Connections()
    syncer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="journal")
    with ThreadPoolExecutor(max_workers=max(1, concurrency), thread_name_prefix="verify") as pool:
        try:
            for zone in zones:
                items = tuple(by_zone[zone.zone])
                order.append(zone.zone)
                if progress is not None:
                    progress(zone.zone)
                written = ahead.pop(zone.zone, None)
                reason = stop() if stop is not None else ""
                if reason:
                    outcome[zone.zone] = ZoneApplication(
                        zone.zone, "not-attempted", f"not sent: {reason}", items, ()
                    )
                    if written is not None and journal is not None:
                        # Its intent is in the journal: say that it was not sent after all.
                        _wait_quietly(written)
                        journal.append(
                            "done",
                            {
                                "zone": zone.zone,
                                "status": "not-attempted",
                                "error": f"not sent: {reason}",
                                "settled": True,
                                "checks": [],
                            },
                            durable=False,
                        )
                    continue
                if zone.failed or zone.octodns_plan is None:
                    outcome[zone.zone] = ZoneApplication(
                        zone.zone, "not-attempted", zone.error, items, ()
                    )
                    continue
                if journal is not None:
                    # Durable before the provider call; if it cannot be written the zone is not
                    # sent.
                    if written is None:
                        journal.append("intent", _intent(zone, items, owners, clock))
                    else:
                        written.result()
                    upcoming = following.get(zone.zone)
                    if upcoming is not None and not (stop is not None and stop()):
                        ahead[upcoming.zone] = _write_ahead(
                            journal,
                            syncer,
                            _intent(upcoming, by_zone[upcoming.zone], owners, clock),
                        )
                error = ""
                nothing_sent = False
                try:
                    _send(zone, connections)
                except Exception as exc:  # recorded exactly; the other zones go on
                    # Named by provider: in a mixed portfolio the record says which one failed,
                    # and how.
                    shown = explain(exc) if str(exc) else ""
                    error = f"provider {zone.provider}: {type(exc).__name__}: {shown}".rstrip(": ")
                    nothing_sent = _nothing_sent(zone, exc)
                timeout = 0.5 if error else verify_timeout
                in_flight.append(
                    _Sent(
                        zone,
                        items,
                        error,
                        nothing_sent,
                        pool.submit(_verify, zone, items, timeout, clock),
                    )
                )
                collect(wait=False)
            collect(wait=True)
        finally:
            connections.close()
            syncer.shutdown(wait=True)
            # Interrupted (a journal write failed, Ctrl-C): the checks still running are not
            # waited for; their zones have an intent and no done, so recovery checks them.
            for sent in in_flight:
                sent.checks.cancel()
        if journal is not None:
            journal.sync()
    return [outcome[z] for z in order]


def _wait_quietly(written: Future[None]) -> None:
    """An intent written ahead whose zone is not sent: its fsync is waited for (the `done` line
    that follows must not race it), and a failure of it is the next line's to report."""
    with suppress(JournalWriteError):
        written.result()
