"""NS delegations of sub-domains (`reports NS ns1.vendor.example.`): RFC 1034 4.2, RFC 1035 3.3.11.

A reporting sub-domain (the mailbox that receives aggregate reports) or a sending sub-domain (a
marketing platform's `mail.` domain) is often delegated to the vendor's nameservers. The
delegation is one NS RRset in the parent zone at the sub-domain's name; the apex NS set is the
zone's own and never owned (pipeline.diff.kinds).

What a delegation is for comes from the client profile (`ns_delegations:`); a delegation the
profile does not name is `unknown`, which the risk rules treat like a sending one (when in doubt,
classify higher).
"""

from __future__ import annotations

import ipaddress

from pipeline.diff.context import ZoneContext
from pipeline.diff.kinds import kind_of
from pipeline.diff.rrset import joined, same_values
from pipeline.diff.taglist import domain_problem
from pipeline.model import Fact, Finding, Severity, fact

PURPOSES = ("sending", "reporting")
UNKNOWN = "unknown"


def purpose(name: str, ctx: ZoneContext) -> str:
    return ctx.delegations.get(name.lower(), UNKNOWN)


def _host(value: str) -> str:
    return value.strip().lower().rstrip(".")


def _below(name: str, cut: str) -> bool:
    """`name` is `cut` or a name under it (both relative to the zone)."""
    return name == cut or name.endswith("." + cut)


def validate(name: str, rtype: str, values: tuple[str, ...], ctx: ZoneContext) -> list[Finding]:
    findings: list[Finding] = []
    fqdn = ctx.fqdn(name).lower()
    for value in values:
        host = _host(value)
        try:
            ipaddress.ip_address(host)
        except ValueError:
            problem = domain_problem(host)
        else:
            problem = f"{value} is an address: NS names a host (RFC 1035 3.3.11)"
        if problem is not None:
            findings.append(
                Finding(
                    "N1", Severity.ERROR, f"NS {value}: {problem}; resolvers cannot follow it", name
                )
            )
        elif host == fqdn or host.endswith("." + fqdn):
            findings.append(
                Finding(
                    "N4",
                    Severity.WARNING,
                    f"NS {value} is inside the delegated {fqdn}: resolvers need glue (its A/AAAA "
                    "in this zone), which the pipeline does not manage; the client's DNS team "
                    "publishes it (RFC 1034 4.2.1)",
                    name,
                )
            )
    if len(values) == 1:
        findings.append(
            Finding(
                "N2",
                Severity.WARNING,
                f"{fqdn} is delegated to one nameserver only: RFC 1034 4.1 asks for at least two, "
                "so one outage does not take the sub-domain (and its mail or reports) down",
                name,
            )
        )
    cut = name.lower()
    occluded = sorted(
        other
        for (other, other_type) in ctx.desired
        if other.lower() != cut
        and _below(other.lower(), cut)
        and kind_of(other, other_type) is not None
    )
    if occluded:
        findings.append(
            Finding(
                "N3",
                Severity.ERROR,
                f"{ctx.fqdn(occluded[0])} is below the delegation of {fqdn}: once delegated, the "
                "parent zone no longer answers for it (RFC 1034 4.2.1); publish it in the "
                "delegated zone instead, or drop the delegation",
                name,
            )
        )
    return findings


def facts(
    name: str, rtype: str, before: tuple[str, ...], after: tuple[str, ...], ctx: ZoneContext
) -> list[Fact]:
    old = tuple(sorted(_host(v) for v in before))
    new = tuple(sorted(_host(v) for v in after))
    if same_values(old, new):
        return []
    what = purpose(name, ctx)
    if not old:
        return [fact("ns.delegation", None, joined(new), purpose=what)]
    if not new:
        return [fact("ns.delegation", joined(old), None, purpose=what)]
    return [fact("ns.nameservers", joined(old), joined(new), purpose=what)]
