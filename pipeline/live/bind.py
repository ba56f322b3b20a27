"""Compare-and-set for BIND: RFC 2136 updates that carry the approved before-state as prerequisites.

octodns-bind sends its updates without prerequisites (an octodns-bind behaviour; docs/providers.md), so between our stale-plan
check and the update someone else's change could be overwritten. Here each change requires the live
RRset to be exactly what the plan saw (RFC 2136 2.4.2, "RRset exists (value dependent)"), or absent
for a create; the server then refuses the whole batch (NXRRSET/YXRRSET) instead of writing over a
change made in that gap. The update itself is built as octodns-bind builds it.
"""

from __future__ import annotations

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


def guarded_apply(target: Any, plan: Any) -> None:
    """Apply `plan` through an octodns_bind.Rfc2136Provider, each change guarded by its before-state."""
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
        answer = dns.query.tcp(update, target.host, port=target.port, timeout=target.timeout)
        rcode = answer.rcode()
        if rcode in REFUSED_PREREQUISITE:
            raise LiveDnsMoved(
                f"{dns.rcode.to_text(rcode)}: live DNS changed after the plan was checked; the "
                "server refused the update and nothing in this batch was written"
            )
        if rcode != dns.rcode.NOERROR:
            raise RuntimeError(f"the server refused the update: {dns.rcode.to_text(rcode)}")
