"""The SPF lookup budget against a real BIND 9 on loopback (no DNS mocks).

Every expected count is worked out by hand from SENDER_ZONES in conftest.py, term by term, in the
comment next to it. RFC 7208 4.6.4 counts include, a, mx, ptr, exists and redirect; not ip4, ip6,
all or exp.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping

import dns.resolver
import pytest
from conftest import (
    DEEP,
    DEEP3,
    EMPTY,
    GOOGLE,
    LAB_SPF,
    LOOP_A,
    MAIL_HOST,
    MAILGUN,
    MANY_MX,
    NO_SPF,
    OUTLOOK,
    REDIRECTED,
    SENDER_COSTS,
    SENDGRID,
    TEN_MX,
    TWO_SPF,
    VOID_NAMES,
)
from dns_server import NamedServer, ZoneSpec

from pipeline.live.dns import Nameservers, make_resolver
from pipeline.live.spf_budget import SpfBudgetCounter, estimate_from_catalog, parse_spf

CLIENT = "client.test"  # not served: the record under test is passed in, never looked up


@pytest.fixture
def counter(sender_resolver: dns.resolver.Resolver) -> SpfBudgetCounter:
    return SpfBudgetCounter(sender_resolver)


def test_simple_include_counts_one_and_ip_terms_are_free(counter: SpfBudgetCounter) -> None:
    # include:sendgrid.net = 1; sendgrid's own record is ip4 + ~all only = 0; ip4, ip6, -all = 0.
    budget = counter.count(
        f"v=spf1 ip4:192.0.2.0/24 ip6:2001:db8::/32 include:{SENDGRID} -all", CLIENT
    )
    assert budget.lookups == 1
    assert budget.void_lookups == 0
    assert budget.source == "dns"
    assert budget.errors == ()
    assert budget.headroom == 9


def test_nested_includes_are_counted_recursively(counter: SpfBudgetCounter) -> None:
    # _spf.google.com: 1 + _netblocks 1 + _netblocks2 1 + _netblocks3 1 = 4
    # spf.protection.outlook.com: 1 + spfd 1 = 2                          -> 6
    budget = counter.count(f"v=spf1 include:{GOOGLE} include:{OUTLOOK} ~all", CLIENT)
    assert budget.lookups == 6
    assert budget.errors == ()


def test_qualified_terms_count_like_unqualified(counter: SpfBudgetCounter) -> None:
    # ~include (1) + ?a (1) + -mx (1) + +exists (1) = 4; a counter that only matched bare
    # "include:" / "a" would say 0-2 (a known miscount of octodns-spf).
    budget = counter.count(
        f"v=spf1 ~include:{SENDGRID} ?a:{MAIL_HOST} -mx:{DEEP3} +exists:{MAIL_HOST} -all", CLIENT
    )
    assert budget.lookups == 4
    assert budget.void_lookups == 0


def test_bare_a_and_mx_use_the_domain_being_evaluated(counter: SpfBudgetCounter) -> None:
    # deep3's own a and mx answer; at client.test (not served) they would be temperrors.
    # a (1) + mx (1) = 2, no voids, no errors.
    budget = counter.count("v=spf1 a mx -all", DEEP3)
    assert (budget.lookups, budget.void_lookups, budget.errors) == (2, 0, ())


def test_redirect_is_followed(counter: SpfBudgetCounter) -> None:
    # redirect=_spf.senders.test (1) -> include:sendgrid.net (1) + include:mailgun.org (1)
    # -> mailgun's _spf (1) + _spf.eu (1) = 5
    budget = counter.count(f"v=spf1 redirect={LAB_SPF}", CLIENT)
    assert budget.lookups == 5
    assert budget.errors == ()
    # The same through a published record: include:redirected (1) + its redirect chain (5) = 6.
    assert counter.count(f"v=spf1 include:{REDIRECTED} -all", CLIENT).lookups == 6


@pytest.mark.parametrize(
    "record",
    [
        f"v=spf1 include:{SENDGRID} redirect={LAB_SPF} -all",
        # RFC 7208 6.1: ignored when "all" is anywhere in the record, even after the redirect.
        f"v=spf1 redirect={LAB_SPF} include:{SENDGRID} ?all",
    ],
)
def test_redirect_is_ignored_when_all_is_present(counter: SpfBudgetCounter, record: str) -> None:
    # include:sendgrid.net (1); the redirect would add 5 if followed.
    budget = counter.count(record, CLIENT)
    assert budget.lookups == 1
    assert any("ignored" in note and "redirect" in note for note in budget.notes)


def test_redirect_is_evaluated_after_the_mechanisms(counter: SpfBudgetCounter) -> None:
    # Written first, evaluated last (6.1). include:deep3 (6) + include:google (4) = 10, then the
    # redirect is the 11th lookup: the walk stops there and its chain is never fetched.
    budget = counter.count(f"v=spf1 redirect={LAB_SPF} include:{DEEP3} include:{GOOGLE}", CLIENT)
    assert budget.lookups == 11
    assert any("lookup 11" in note and "redirect=" in note for note in budget.notes)


def test_terms_after_all_are_ignored(counter: SpfBudgetCounter) -> None:
    # include:sendgrid.net (1) then -all; the 4 + 1 + 1 after it are never evaluated (5.1).
    budget = counter.count(f"v=spf1 include:{SENDGRID} -all include:{GOOGLE} a mx", CLIENT)
    assert budget.lookups == 1
    assert any("after 'all'" in note for note in budget.notes)


def test_exp_is_not_counted(counter: SpfBudgetCounter) -> None:
    # exp= is only fetched to explain a fail, and 4.6.4 leaves it out of the limit: 1.
    budget = counter.count(f"v=spf1 include:{SENDGRID} exp=explain.{CLIENT} -all", CLIENT)
    assert budget.lookups == 1
    assert budget.errors == ()


def test_exactly_ten_is_allowed_and_eleven_stops(counter: SpfBudgetCounter) -> None:
    # include:deep3 = 1 + a + mx + include:deep4 (1) + a + mx = 6; google = 4 -> 10: at the limit.
    at_limit = counter.count(f"v=spf1 include:{DEEP3} include:{GOOGLE} -all", CLIENT)
    assert at_limit.lookups == 10
    assert at_limit.headroom == 0
    assert not any("stopped" in note for note in at_limit.notes)
    # One more sender is the 11th lookup.
    over = counter.count(f"v=spf1 include:{DEEP3} include:{GOOGLE} include:{SENDGRID} -all", CLIENT)
    assert over.lookups == 11
    assert any("stopped counting at lookup 11" in note for note in over.notes)


def test_deep_chain_past_ten_reports_at_least_eleven(counter: SpfBudgetCounter) -> None:
    # deep1 (1) a mx (3) deep2 (4) a mx (6) deep3 (7) a mx (9) deep4 (10) a (11) -> stop;
    # deep4's mx is never reached, so the count is 11, not 12.
    budget = counter.count(f"v=spf1 include:{DEEP} -all", CLIENT)
    assert budget.lookups == 11
    assert budget.headroom == -1
    assert any("a in deep4.senders.test" in note for note in budget.notes)


def test_stopping_also_stops_dns_queries(counter: SpfBudgetCounter) -> None:
    # google x3: 4 + 4 = 8, then the third: _spf (9), _netblocks (10), _netblocks2 (11) -> stop.
    record = f"v=spf1 include:{GOOGLE} include:{GOOGLE} include:{GOOGLE} include:{SENDGRID} -all"
    assert counter.count(record, CLIENT).lookups == 11
    # Only the four google TXT records were fetched (cached on reuse); sendgrid never was.
    assert counter.queries == 4


def test_void_lookups_are_counted(counter: SpfBudgetCounter) -> None:
    # a:gone1 NXDOMAIN, mx:gone2 NXDOMAIN, exists:empty NODATA (name exists, no A): 3 voids,
    # 3 lookups. a:mail answers: not void.
    gone1, gone2, _ = VOID_NAMES
    budget = counter.count(f"v=spf1 a:{gone1} mx:{gone2} exists:{EMPTY} a:{MAIL_HOST} -all", CLIENT)
    assert budget.lookups == 4
    assert budget.void_lookups == 3
    assert budget.void_lookups > budget.VOID_LIMIT
    assert sum("void lookup" in note for note in budget.notes) == 3


def test_two_voids_are_within_the_limit(counter: SpfBudgetCounter) -> None:
    # a:empty is NODATA for both A and AAAA: void; mx:empty has no MX: void -> 2 voids.
    budget = counter.count(f"v=spf1 a:{EMPTY} mx:{EMPTY} -all", CLIENT)
    assert (budget.lookups, budget.void_lookups) == (2, 2)


def test_include_of_a_name_that_does_not_exist(counter: SpfBudgetCounter) -> None:
    # The include is 1 lookup, NXDOMAIN is a void, and "none" from an include is a permerror (5.2).
    budget = counter.count(f"v=spf1 include:{VOID_NAMES[2]} -all", CLIENT)
    assert (budget.lookups, budget.void_lookups) == (1, 1)
    assert len(budget.errors) == 1
    assert "permerror" in budget.errors[0] and VOID_NAMES[2] in budget.errors[0]


def test_mx_with_more_than_ten_names(counter: SpfBudgetCounter) -> None:
    # many-mx has 11 MX names: over; ten-mx has 10: allowed. 2 lookups.
    budget = counter.count(f"v=spf1 mx:{MANY_MX} mx:{TEN_MX} -all", CLIENT)
    assert budget.lookups == 2
    assert budget.mx_over_limit == (f"mx:{MANY_MX}",)


def test_bare_mx_inside_an_include_uses_the_included_name(counter: SpfBudgetCounter) -> None:
    # include:many-mx (1) whose record is "v=spf1 mx -all": mx of many-mx itself (1) = 2.
    budget = counter.count(f"v=spf1 include:{MANY_MX} -all", CLIENT)
    assert budget.lookups == 2
    assert budget.mx_over_limit == (f"mx:{MANY_MX}",)


def test_loop_is_a_permerror(counter: SpfBudgetCounter) -> None:
    # include:loop-a (1) -> include:loop-b (2) -> include:loop-a (3, on the path: not followed).
    budget = counter.count(f"v=spf1 include:{LOOP_A} -all", CLIENT)
    assert budget.lookups == 3
    assert len(budget.errors) == 1
    assert "loops back" in budget.errors[0] and LOOP_A in budget.errors[0]


def test_record_including_its_own_domain_is_a_loop(counter: SpfBudgetCounter) -> None:
    budget = counter.count(f"v=spf1 include:{CLIENT} -all", CLIENT)
    assert budget.lookups == 1
    assert any("loops back" in error for error in budget.errors)
    assert counter.queries == 0  # detected from the path, before any query


@pytest.mark.parametrize(("name", "found"), [(NO_SPF, "no SPF record"), (TWO_SPF, "2 SPF records")])
def test_included_name_without_exactly_one_spf_record(
    counter: SpfBudgetCounter, name: str, found: str
) -> None:
    # The include costs 1 either way; the TXT answer has values, so it is not a void.
    budget = counter.count(f"v=spf1 include:{name} include:{SENDGRID} -all", CLIENT)
    assert (budget.lookups, budget.void_lookups) == (2, 0)
    assert budget.errors == (f"permerror: include:{name} in {CLIENT}: {name} has {found}",)


def test_macros_count_one_and_are_not_followed(counter: SpfBudgetCounter) -> None:
    # exists:%{i}... (1) + include:%{d}... (1) = 2, nothing to query at plan time.
    budget = counter.count(
        "v=spf1 exists:%{i}._spf.senders.test include:%{d}.spf.senders.test -all", CLIENT
    )
    assert budget.lookups == 2
    assert sum("macro" in note for note in budget.notes) == 2
    assert counter.queries == 0


def test_ptr_counts_one_and_is_flagged(counter: SpfBudgetCounter) -> None:
    budget = counter.count("v=spf1 ptr -all", CLIENT)
    assert budget.lookups == 1
    assert budget.ptr_over_limit == ()  # unknowable without the sending IP
    assert any("ptr" in note for note in budget.notes)


def test_syntax_problems_are_permerrors(counter: SpfBudgetCounter) -> None:
    budget = counter.count(f"v=spf1 foo:bar.test redirect={LAB_SPF} redirect={SENDGRID}", CLIENT)
    assert any("unknown mechanism 'foo:bar.test'" in e for e in budget.errors)
    assert any("redirect= appears more than once" in e for e in budget.errors)
    # The first redirect is still followed (count as a receiver would reach it): 5.
    assert budget.lookups == 5
    not_spf = counter.count("v=spf10 -all", CLIENT)
    assert not_spf.lookups == 0 and "does not start with v=spf1" in not_spf.errors[0]


def test_unreachable_include_is_a_temperror(counter: SpfBudgetCounter) -> None:
    # unserved.example is not served by the loopback named: REFUSED, which is not "no record".
    budget = counter.count(f"v=spf1 include:spf.unserved.example include:{SENDGRID} -all", CLIENT)
    assert budget.lookups == 2
    assert budget.void_lookups == 0
    assert len(budget.errors) == 1
    assert budget.errors[0].startswith("temperror") and "spf.unserved.example" in budget.errors[0]


def test_timeout_is_a_temperror(
    named_factory: Callable[[Mapping[str, ZoneSpec]], NamedServer],
) -> None:
    server = named_factory({"down.test": [("@", "TXT", "v=spf1 -all")]})
    resolver = make_resolver(Nameservers((server.host,), server.port, timeout=0.3))
    server.kill()
    budget = SpfBudgetCounter(resolver).count("v=spf1 include:down.test -all", CLIENT)
    assert budget.lookups == 1
    assert budget.errors == (
        "temperror: include:down.test in client.test: down.test could not be resolved (timeout)",
    )


def test_cache_reuse_sends_no_new_queries(counter: SpfBudgetCounter) -> None:
    record = f"v=spf1 include:{GOOGLE} -all"
    first = counter.count(record, "a.test")
    # _spf.google.com and its three _netblocks: 4 TXT queries.
    assert counter.queries == 4
    second = counter.count(record, "b.test")
    assert counter.queries == 4
    assert second == first
    # Another client with google and sendgrid: only sendgrid is new.
    counter.count(f"v=spf1 include:{GOOGLE} include:{SENDGRID} -all", "c.test")
    assert counter.queries == 5


def test_concurrent_counts_share_one_query_per_name(
    sender_resolver: dns.resolver.Resolver,
) -> None:
    counter = SpfBudgetCounter(sender_resolver)
    record = f"v=spf1 include:{GOOGLE} include:{MAILGUN} -all"
    results = []
    barrier = threading.Barrier(8)

    def work() -> None:
        barrier.wait()
        results.append(counter.count(record, CLIENT))

    threads = [threading.Thread(target=work) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # 4 (google) + 3 (mailgun) = 7 lookups, and 7 distinct TXT names queried once each.
    assert [r.lookups for r in results] == [7] * 8
    assert counter.queries == 7


def test_cache_lives_as_long_as_the_counter(
    named_factory: Callable[[Mapping[str, ZoneSpec]], NamedServer],
) -> None:
    server = named_factory({"esp.test": [("@", "TXT", "v=spf1 ip4:192.0.2.0/24 -all")]})
    resolver = make_resolver(Nameservers((server.host,), server.port, timeout=2.0))
    old_plan = SpfBudgetCounter(resolver)
    assert old_plan.count("v=spf1 include:esp.test -all", CLIENT).lookups == 1
    # The sender adds two includes behind our back: include (1) + a (1) + mx (1) = 3.
    server.update("esp.test", "@", "TXT", ["v=spf1 a mx -all"])
    server.update("esp.test", "@", "A", ["192.0.2.1"])
    server.update("esp.test", "@", "MX", ["10 mail.esp.test."])
    assert old_plan.count("v=spf1 include:esp.test -all", CLIENT).lookups == 1  # same plan
    assert SpfBudgetCounter(resolver).count("v=spf1 include:esp.test -all", CLIENT).lookups == 3


@pytest.mark.parametrize(("term", "cost"), sorted(SENDER_COSTS.items()))
def test_catalog_costs_match_dns(counter: SpfBudgetCounter, term: str, cost: int) -> None:
    # The hand-counted catalog figures agree with counting through DNS.
    assert counter.count(f"v=spf1 {term} -all", CLIENT).lookups == cost


def test_catalog_estimate() -> None:
    costs = {f"include:{SENDGRID}": 1, f"include:{GOOGLE}": 4, f"include:{LAB_SPF}": 5}
    # ~include:google 4 + sendgrid 1 + a 1 + mx 1 + exists 1 + unknown include 1 = 9;
    # the redirect is ignored (all present) and terms after -all are not counted.
    budget = estimate_from_catalog(
        f"v=spf1 ~include:{GOOGLE} include:{SENDGRID.upper()} a mx exists:{MAIL_HOST}"
        f" include:spf.unknown.example redirect={LAB_SPF} -all include:{GOOGLE}",
        costs,
    )
    assert budget.lookups == 9
    assert budget.source == "catalog"
    assert budget.void_lookups == 0
    assert any("include:spf.unknown.example not in the sender catalog" in n for n in budget.notes)
    # A redirect to a catalogued name costs what including it costs: 5.
    assert estimate_from_catalog(f"v=spf1 redirect={LAB_SPF}", costs).lookups == 5
    # ptr is 1 and flagged; an unknown redirect target is 1 with a note.
    other = estimate_from_catalog("v=spf1 ptr redirect=spf.other.example", costs)
    assert other.lookups == 2
    assert any("redirect=spf.other.example not in the sender catalog" in n for n in other.notes)


def test_parse_keeps_only_the_terms_an_evaluator_reaches() -> None:
    parsed = parse_spf("V=SPF1 IP4:192.0.2.1 Include:X.test -ALL a exp=e.test", "x.test")
    assert [t.key() for t in parsed.mechanisms] == ["ip4", "include:x.test", "all"]
    assert parsed.redirect is None
    assert parsed.errors == ()
