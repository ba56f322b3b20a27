"""Hosted providers (Route 53, PowerDNS): checks before a zone is planned, and what an apply sent.

dmarcops changes records in zones that exist; it never creates a zone. Both octoDNS providers would
create a missing zone on apply (octodns-route53 `_get_zone_id(name, create=True)`, octodns-powerdns
POSTs the zone after a 404), so a zone that is not there is refused before it is planned. Route 53
private hosted zones answer only inside a VPC: e-mail receivers never see them, so one is refused
by name rather than planned as if it were the client's public DNS.

Route 53 accepts a change batch before it is live everywhere: ChangeInfo starts PENDING and becomes
INSYNC when all its authoritative servers have it. The ids of the batches an apply sent are kept on
the target so verification can wait for INSYNC before reading the records back.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from pipeline.live.providers import POWERDNS, ROUTE53
from pipeline.load.portfolio import HOSTED_ZONES


class ProviderRefusal(Exception):
    """The provider cannot hold this zone the way dmarcops needs (missing, private, ambiguous)."""


def class_of(target: Any) -> str:
    config = getattr(target, "dmarcops_provider", None)
    return str(config.options.get("class", "")) if config is not None else ""


def prepare_zone(target: Any, domain: str) -> None:
    """Refuse a zone the provider does not hold as a public zone; pin Route 53's zone id."""
    kind = class_of(target)
    if kind == ROUTE53:
        _route53_zone(target, domain)
    elif kind == POWERDNS:
        _powerdns_zone(target, domain)


def _route53_zone(target: Any, domain: str) -> None:
    name = f"{domain}."
    config = target.dmarcops_provider
    pinned = (config.options.get(HOSTED_ZONES) or {}).get(domain)
    conn = target._conn
    if pinned:
        zone = conn.get_hosted_zone(Id=str(pinned))["HostedZone"]
        if zone["Name"].lower() != name.lower():
            raise ProviderRefusal(
                f"Route 53 hosted zone {pinned} is {zone['Name']}, not {name} "
                f"(hosted_zones in {config.file.name})"
            )
        zones = [zone]
    else:
        listed = conn.list_hosted_zones_by_name(DNSName=name, MaxItems="100")["HostedZones"]
        zones = [z for z in listed if z["Name"].lower() == name.lower()]
    private = [z["Id"] for z in zones if z.get("Config", {}).get("PrivateZone", False)]
    public = [z for z in zones if z["Id"] not in private]
    if private and (pinned or not public):
        raise ProviderRefusal(
            f"Route 53 hosted zone {private[0]} for {name} is a private hosted zone: receivers "
            "never see its records, so dmarcops refuses to plan or change it (a public zone of "
            "that name is the one to manage)"
        )
    if not public:
        raise ProviderRefusal(
            f"Route 53 has no hosted zone {name}; dmarcops never creates zones "
            "(create it, or fix the client's provider)"
        )
    if len(public) > 1:
        raise ProviderRefusal(
            f"Route 53 has {len(public)} public hosted zones named {name} "
            f"({', '.join(z['Id'] for z in public)}): name the right one under hosted_zones"
        )
    zones = public
    # octodns-route53 then reads and writes exactly this zone and never lists (or creates) any.
    target._r53_zones = {name: zones[0]["Id"]}


def _powerdns_zone(target: Any, domain: str) -> None:
    from requests import HTTPError

    try:
        target._get(f"zones/{domain}.")
    except HTTPError as exc:
        status = exc.response.status_code if exc.response is not None else 0
        if status == 401 or status == 403:
            raise ProviderRefusal(
                f"PowerDNS at {target.host}:{target.port} refused the API key (HTTP {status})"
            ) from None
        if status in (404, 422):
            raise ProviderRefusal(
                f"PowerDNS at {target.host}:{target.port} has no zone {domain}.; dmarcops never "
                "creates zones (create it, or fix the client's provider)"
            ) from None
        raise


# ResourceRecord.Value "not to exceed 4,000 characters" (Route 53 API reference): the value as
# Route 53 holds it, quoted 255-character strings with `;` escaped. moto does not enforce it.
ROUTE53_VALUE_LIMIT = 4000


def check_plan(target: Any, plan: Any) -> None:
    """Refuse at plan time what the provider would refuse at apply time (Route 53's limit)."""
    if class_of(target) != ROUTE53 or plan is None:
        return
    for change in plan.changes:
        record = getattr(change, "new", None)
        if record is None or record._type not in ("TXT", "SPF"):
            continue
        for value in record.chunked_values:
            if len(value) > ROUTE53_VALUE_LIMIT:
                raise ProviderRefusal(
                    f"{record.fqdn} TXT: a value of {len(value)} characters as Route 53 holds it "
                    f"(quoted 255-character strings), over Route 53's limit of "
                    f"{ROUTE53_VALUE_LIMIT}; shorten it (a 4096-bit DKIM key is about 740)"
                )


def route53_apply(target: Any, plan: Any) -> list[str]:
    """Apply through octodns-route53, keeping each change batch's id (ChangeInfo.Id)."""
    from octodns_route53.provider import _mod_keyer

    changes: list[str] = []
    target.dmarcops_changes = changes

    def really_apply(batch: list[dict[str, Any]], zone_id: str) -> None:
        # As octodns-route53's own _really_apply, which drops the response we need.
        batch.sort(key=_mod_keyer)
        resp = target._conn.change_resource_record_sets(
            HostedZoneId=zone_id, ChangeBatch={"Comment": "dmarcops apply", "Changes": batch}
        )
        changes.append(str(resp["ChangeInfo"]["Id"]))

    target._really_apply = really_apply
    target.apply(plan)
    return changes


def wait_insync(target: Any, changes: Sequence[str], timeout: float) -> str:
    """'' when every change is INSYNC; else what is still pending when the time is up."""
    deadline = time.monotonic() + timeout
    pending = list(changes)
    while True:
        pending = [
            c for c in pending if target._conn.get_change(Id=c)["ChangeInfo"]["Status"] != "INSYNC"
        ]
        if not pending or time.monotonic() >= deadline:
            break
        time.sleep(min(2.0, max(0.1, deadline - time.monotonic())))
    return f"change {', '.join(pending)} still PENDING after {timeout:g} s" if pending else ""
