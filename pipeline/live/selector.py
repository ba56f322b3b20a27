"""Is a DKIM selector published and valid in live DNS? (the dkim-switch gate, issue 13 item 5)

Before a signing provider is switched to another selector, the key it will sign with must be
where receivers look for it: `<selector>._domainkey.<domain>` TXT holding a key record with a
non-empty `p=` that parses (RFC 6376 3.6.1) and has no error finding. The record is read through
the client's own provider, as `plan` reads live DNS. A selector delegated by CNAME to the
provider's key is followed with the configured resolvers (policy/settings.yaml, --nameserver);
without any, it cannot be verified and counts as not verified.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import dns.exception
import dns.resolver
from octodns.zone import Zone

from pipeline.diff import dkim
from pipeline.diff.context import DkimLifecycle, ZoneContext
from pipeline.diff.errors import RecordSyntaxError
from pipeline.live.dns import Nameservers, make_resolver, txt_values
from pipeline.live.hosted import prepare_zone
from pipeline.live.providers import build_provider, check_local_zone
from pipeline.live.scope import raw_values
from pipeline.load.portfolio import Portfolio
from pipeline.model import Severity

VALID = "valid"


@dataclass(frozen=True)
class SelectorCheck:
    domain: str
    selector: str
    status: str  # valid | missing | invalid | unreadable
    detail: str

    @property
    def valid(self) -> bool:
        return self.status == VALID

    @property
    def fqdn(self) -> str:
        return f"{self.selector}._domainkey.{self.domain}"


def key_problem(values: tuple[str, ...], selector: str, lifecycle: DkimLifecycle) -> str | None:
    """Why these TXT values are not one usable DKIM key (None: they are)."""
    if len(values) != 1:
        return f"{len(values)} TXT records where one key record is needed"
    try:
        key = dkim.parse(values[0])
    except RecordSyntaxError as exc:
        return f"not a DKIM key record ({exc.code}: {exc.message})"
    if key.revoked:
        return "its p= is empty: the key is revoked"
    ctx = ZoneContext(zone="", dkim=lifecycle)
    errors = [
        f
        for f in dkim.validate(f"{selector}._domainkey", "TXT", values, ctx)
        if f.severity is Severity.ERROR
    ]
    if errors:
        return f"{errors[0].code}: {errors[0].message}"
    return None


def _live_records(portfolio: Portfolio, client_id: str, domain: str) -> dict[tuple[str, str], Any]:
    client = portfolio.clients[client_id]
    config = portfolio.providers[client.provider]
    check_local_zone(config, portfolio.root, domain)
    target = build_provider(config, portfolio.root, instance=f"[{domain}]")
    prepare_zone(target, domain)
    zone = Zone(f"{domain}.", [])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        target.populate(zone, target=True, lenient=True)
    return {(r.name, r._type): r for r in zone.records}


def check_selector(
    portfolio: Portfolio,
    client_id: str,
    domain: str,
    selector: str,
    nameservers: Nameservers | None = None,
) -> SelectorCheck:
    name = f"{selector}._domainkey"
    lifecycle = portfolio.clients[client_id].dkim.get(domain, DkimLifecycle())

    def result(status: str, detail: str) -> SelectorCheck:
        return SelectorCheck(domain, selector, status, detail)

    try:
        records = _live_records(portfolio, client_id, domain)
    except Exception as exc:  # the provider is down or refuses us: not verified
        return result("unreadable", f"live DNS could not be read: {str(exc).splitlines()[0]}")
    txt = records.get((name, "TXT"))
    if txt is not None:
        problem = key_problem(raw_values(txt), selector, lifecycle)
        if problem is not None:
            return result("invalid", problem)
        return result(VALID, f"{name}.{domain} TXT holds a valid key (read through the provider)")
    cname = records.get((name, "CNAME"))
    if cname is None:
        return result("missing", f"{name}.{domain} is not published (no TXT or CNAME)")
    target_name = str(cname.value)
    settings = portfolio.settings
    ns = nameservers or Nameservers(settings.nameservers, settings.port, settings.timeout)
    if not ns.addresses:
        return result(
            "unreadable",
            f"{name}.{domain} is a CNAME to {target_name}, and no resolver is configured to "
            "follow it (policy/settings.yaml lookups, or --nameserver)",
        )
    try:
        answer = make_resolver(ns).resolve(target_name, "TXT", search=False)
    except dns.exception.DNSException as exc:
        return result(
            "missing", f"{name}.{domain} points to {target_name}, which has no key: {exc}"
        )
    problem = key_problem(tuple(txt_values(answer)), selector, lifecycle)
    if problem is not None:
        return result("invalid", f"{target_name} (the CNAME's target): {problem}")
    return result(VALID, f"{name}.{domain} -> {target_name}: a valid key")
