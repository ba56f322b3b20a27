"""NS delegations (N1-N4 in docs/rules.md): the exact findings and facts, so a mutation of the rule
or of the text the operator reads (the RFC cited, the fix) fails a test. Found by mutation testing
(docs/mutation-testing.md)."""

from __future__ import annotations

from pipeline.diff import ns
from pipeline.diff.context import ZoneContext
from pipeline.model import Finding, Severity, fact

ONE_ONLY = (
    "reports.example.com is delegated to one nameserver only: RFC 1034 4.1 asks for at least two, "
    "so one outage does not take the sub-domain (and its mail or reports) down"
)
OCCLUDED = (
    "_dmarc.reports.example.com is below the delegation of reports.example.com: once delegated, "
    "the parent zone no longer answers for it (RFC 1034 4.2.1); publish it in the delegated zone "
    "instead, or drop the delegation"
)


def context(**desired: tuple[str, ...]) -> ZoneContext:
    records = {("reports", "NS"): ("ns1.vendor.example.", "ns2.vendor.example.")}
    records |= {(name.replace("__", "."), rtype): v for name, (rtype, *v) in desired.items()}
    return ZoneContext("example.com", desired=records, delegations={"reports": "reporting"})


def test_two_outside_nameservers_and_nothing_below_has_no_finding() -> None:
    # The delegation itself, the apex _dmarc and an unowned A below the cut are not occluded.
    ctx = context(_dmarc=("TXT", "v=DMARC1; p=none"), www__reports=("A", "192.0.2.1"))
    values = ("ns1.vendor.example.", "NS2.Vendor.Example")
    assert ns.validate("reports", "NS", values, ctx) == []


def test_an_address_is_not_a_nameserver_and_one_is_not_enough() -> None:
    assert ns.validate("Reports", "NS", ("192.0.2.1",), context()) == [
        Finding(
            "N1",
            Severity.ERROR,
            "NS 192.0.2.1: 192.0.2.1 is an address: NS names a host (RFC 1035 3.3.11); "
            "resolvers cannot follow it",
            "Reports",
        ),
        Finding("N2", Severity.WARNING, ONE_ONLY, "Reports"),
    ]


def test_a_malformed_host_is_n1() -> None:
    values = ("bad_host..example.", "ns2.vendor.example.")
    assert ns.validate("reports", "NS", values, context()) == [
        Finding(
            "N1",
            Severity.ERROR,
            "NS bad_host..example.: bad_host..example has an empty label; resolvers cannot follow it",
            "reports",
        )
    ]


def test_a_nameserver_inside_the_delegation_needs_glue() -> None:
    values = ("ns1.Reports.example.com.", "ns2.vendor.example")
    assert ns.validate("reports", "NS", values, context()) == [
        Finding(
            "N4",
            Severity.WARNING,
            "NS ns1.Reports.example.com. is inside the delegated reports.example.com: resolvers "
            "need glue (its A/AAAA in this zone), which the pipeline does not manage; the "
            "client's DNS team publishes it (RFC 1034 4.2.1)",
            "reports",
        )
    ]


def test_an_owned_record_below_the_cut_is_occluded() -> None:
    ctx = context(_dmarc__reports=("TXT", "v=DMARC1; p=none"))
    values = ("ns1.vendor.example.", "ns2.vendor.example.")
    assert ns.validate("Reports", "NS", values, ctx) == [
        Finding("N3", Severity.ERROR, OCCLUDED, "Reports")
    ]


def test_an_owned_alias_below_the_cut_is_occluded() -> None:
    ctx = context(s1___domainkey__reports=("CNAME", "s1.esp.example."))
    values = ("ns1.vendor.example.", "ns2.vendor.example.")
    findings = ns.validate("reports", "NS", values, ctx)
    assert [f.code for f in findings] == ["N3"]
    assert findings[0].message.startswith("s1._domainkey.reports.example.com is below")


def test_facts_name_the_purpose_from_the_profile() -> None:
    ctx = context()
    added = ns.facts("Reports", "NS", (), ("NS2.v.example.", "ns1.v.example"), ctx)
    assert added == [
        fact("ns.delegation", None, "ns1.v.example | ns2.v.example", purpose="reporting")
    ]
    removed = ns.facts("reports", "NS", ("ns1.v.example.",), (), ctx)
    assert removed == [fact("ns.delegation", "ns1.v.example", None, purpose="reporting")]
    moved = ns.facts("mail", "NS", ("ns1.v.example.",), ("ns1.w.example.",), ctx)
    assert moved == [fact("ns.nameservers", "ns1.v.example", "ns1.w.example", purpose="unknown")]
    assert ns.facts("mail", "NS", ("ns1.v.example.",), ("NS1.V.example",), ctx) == []
