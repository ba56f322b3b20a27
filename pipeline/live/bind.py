"""Compare-and-set for BIND: RFC 2136 updates that carry the approved before-state as prerequisites.

octodns-bind sends its updates without prerequisites (an octodns-bind behaviour; docs/providers.md), so between our stale-plan
check and the update someone else's change could be overwritten. Here each change requires the live
RRset to be exactly what the plan saw (RFC 2136 2.4.2, "RRset exists (value dependent)"), or absent
for a create; the server then refuses the whole batch (NXRRSET/YXRRSET) instead of writing over a
change made in that gap. The update itself is built as octodns-bind builds it.

An apply sends every zone's updates to a server over one TCP connection (`Connections`), as RFC
7766 allows, instead of one connection per update: 200 zones were 200 handshakes and teardowns.
"""

from __future__ import annotations

import select
import socket
from typing import Any

import dns.query
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
from dns.update import UpdateMessage
from octodns.record import Create, Update

REFUSED_PREREQUISITE = {
    dns.rcode.NXRRSET,
    dns.rcode.YXRRSET,
    dns.rcode.NXDOMAIN,
    dns.rcode.YXDOMAIN,
}


class LiveDnsMoved(Exception):
    """The server refused the update because a record is no longer what the plan saw."""


def _rdatas(rtype: str, texts: list[str]) -> list[dns.rdata.Rdata]:
    kind = dns.rdatatype.from_text(rtype)
    return [dns.rdata.from_text(dns.rdataclass.IN, kind, text) for text in texts]


class Connections:
    """One TCP connection per server, kept open for the updates of every zone of an apply.

    A connection is only reused while the server has not closed it: before each update it is
    polled, and one that is readable (the server's FIN or RST, after a restart or its idle
    timeout; a DNS server sends nothing unasked) is replaced by a new one. So a server that is
    down still refuses the new connection, which proves the update was never sent
    (pipeline.apply.execute `_nothing_sent`), as with a connection per update. A connection an
    update failed on (a timeout, a reset) is closed, never reused: an answer still on its way
    could be read as the next update's. Left: a server that closes a connection right after an
    answer, its FIN still on the way when the next update is sent; that update then fails like a
    timeout (it may have been applied), and its zone's check says which of its items are live."""

    def __init__(self) -> None:
        self._open: dict[tuple[str, int], socket.socket] = {}

    def to(self, host: str, port: int, timeout: float | None) -> socket.socket:
        sock = self._open.get((host, port))
        if sock is not None and _closed_by_peer(sock):
            self.drop(host, port)
            sock = None
        if sock is None:
            sock = socket.create_connection((host, port), timeout=timeout)
            sock.setblocking(False)  # what dns.query.tcp expects of a socket it is given
            self._open[(host, port)] = sock
        return sock

    def drop(self, host: str, port: int) -> None:
        sock = self._open.pop((host, port), None)
        if sock is not None:
            sock.close()

    def close(self) -> None:
        for host, port in list(self._open):
            self.drop(host, port)


def _closed_by_peer(sock: socket.socket) -> bool:
    # poll, not select: select refuses a descriptor above 1023.
    watch = select.poll()
    watch.register(sock, select.POLLIN | select.POLLPRI)
    return bool(watch.poll(0))  # POLLIN (EOF), POLLHUP, POLLERR: all mean "do not reuse"


def guarded_apply(target: Any, plan: Any, connections: Connections | None = None) -> None:
    """Apply `plan` through an octodns_bind.Rfc2136Provider, each change guarded by its
    before-state; over `connections` when given (one per server), else a connection per batch."""
    auth = target._auth_params()
    for batch in target._batch_changes(plan.changes):
        update = UpdateMessage(plan.desired.name, **auth)
        for change in batch:
            name, ttl, rtype, rdatas = change.record.rrs
            if isinstance(change, Create):
                update.absent(name, rtype)
                update.add(name, ttl, rtype, *rdatas)
                continue
            _, _, before_type, before = change.existing.rrs
            update.present(name, *_rdatas(before_type, before))
            if isinstance(change, Update):
                update.replace(name, ttl, rtype, *rdatas)
            else:
                update.delete(name, rtype, *rdatas)
        if connections is None:
            answer = dns.query.tcp(update, target.host, port=target.port, timeout=target.timeout)
        else:
            sock = connections.to(target.host, target.port, target.timeout)
            try:
                answer = dns.query.tcp(update, target.host, timeout=target.timeout, sock=sock)
            except BaseException:
                connections.drop(target.host, target.port)
                raise
        rcode = answer.rcode()
        if rcode in REFUSED_PREREQUISITE:
            raise LiveDnsMoved(
                f"{dns.rcode.to_text(rcode)}: live DNS changed after the plan was checked; the "
                "server refused the update and nothing in this batch was written"
            )
        if rcode != dns.rcode.NOERROR:
            raise RuntimeError(f"the server refused the update: {dns.rcode.to_text(rcode)}")
