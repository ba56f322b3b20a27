"""The SPF lookup budget of a record (RFC 7208 4.6.4; rules S2, S3, S4, S9 of docs/rules.md).

Two ways to get a `SpfBudget`:

- `SpfBudgetCounter(resolver).count(record, fqdn)` follows include/redirect through DNS, the way
  a receiver evaluating a message that matches nothing would (the worst case, so every term is
  reached). One counter lives for one plan: DNS answers are cached per (name, type) because many
  client zones include the same senders.
- `estimate_from_catalog(record, costs)` sums per-sender costs from the sender catalog when DNS
  cannot be reached.

Plan-time limits: macros (`%{i}`) cannot be expanded without a message, and `ptr` depends on the
sending IP, so both are counted as one lookup and explained in `notes`.
"""

from __future__ import annotations

import enum
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field

import dns.exception
import dns.name
import dns.resolver

from pipeline.live.dns import txt_values
from pipeline.model import SpfBudget

# RFC 7208 4.6.4: these terms cause DNS queries and count towards the limit of 10.
QUERYING_MECHANISMS = frozenset({"include", "a", "mx", "ptr", "exists"})
OTHER_MECHANISMS = frozenset({"all", "ip4", "ip6"})
MX_NAME_LIMIT = 10  # 4.6.4: an mx term may look up at most 10 MX names
_TERM = re.compile(r"^([+\-~?]?)([a-z][a-z0-9_.\-]*)(?:([:/=])(.*))?$", re.IGNORECASE)


# -- parsing -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SpfTerm:
    """One term of a record: a mechanism (`~include:x`, `a/24`) or a modifier (`redirect=x`)."""

    text: str  # as written, for messages
    name: str  # lower-case mechanism or modifier name
    domain: str = ""  # lower-case domain-spec without trailing dot; "" when absent
    is_modifier: bool = False

    @property
    def has_macro(self) -> bool:
        # RFC 7208 7: '%' starts a macro or escape; neither can be evaluated without a message.
        return "%" in self.domain

    def key(self) -> str:
        """Catalog form without qualifier: `include:sendgrid.net`, `redirect=x`, `mx`."""
        if self.is_modifier:
            return f"{self.name}={self.domain}"
        return f"{self.name}:{self.domain}" if self.domain else self.name


@dataclass(frozen=True)
class ParsedSpf:
    mechanisms: tuple[SpfTerm, ...]  # in order, up to and including the first `all`
    redirect: SpfTerm | None  # the one to follow: None when absent or when `all` is present
    errors: tuple[str, ...]
    notes: tuple[str, ...]


def is_spf(value: str) -> bool:
    """RFC 7208 4.5: version section exactly `v=spf1`, ended by a space or the end of the value."""
    return value[:6].lower() == "v=spf1" and (len(value) == 6 or value[6] == " ")


def parse_spf(record: str, where: str) -> ParsedSpf:
    """Split a record into the terms that an evaluator reaches. `where` names it in messages."""
    errors: list[str] = []
    notes: list[str] = []
    if not is_spf(record):
        return ParsedSpf((), None, (f"permerror: {where}: record does not start with v=spf1",), ())
    mechanisms: list[SpfTerm] = []
    modifiers: dict[str, list[SpfTerm]] = {}
    seen_all = False
    ignored_after_all: list[str] = []
    for text in record.split()[1:]:
        term = _parse_term(text)
        if term is None:
            # 4.6: a syntax error anywhere makes the whole record a permerror.
            errors.append(f"permerror: {where}: cannot parse term {text!r}")
            continue
        if term.is_modifier:
            modifiers.setdefault(term.name, []).append(term)
            continue
        if seen_all:
            # 5.1: mechanisms after "all" will never be tested and MUST be ignored.
            ignored_after_all.append(text)
            continue
        if term.name not in QUERYING_MECHANISMS | OTHER_MECHANISMS:
            errors.append(f"permerror: {where}: unknown mechanism {text!r}")
            continue
        if term.name == "all":
            seen_all = True
        mechanisms.append(term)
    if ignored_after_all:
        notes.append(
            f"{where}: terms after 'all' are never evaluated: {' '.join(ignored_after_all)}"
        )
    for name in ("redirect", "exp"):
        if len(modifiers.get(name, [])) > 1:
            # 6: redirect and exp MUST NOT appear more than once each.
            errors.append(f"permerror: {where}: {name}= appears more than once")
    redirect = next(iter(modifiers.get("redirect", [])), None)
    if redirect is not None and seen_all:
        # 6.1: "redirect" MUST be ignored when there is an "all" mechanism anywhere in the record.
        notes.append(f"{where}: {redirect.text} is ignored because the record has 'all'")
        redirect = None
    if redirect is not None and not redirect.domain:
        errors.append(f"permerror: {where}: {redirect.text} has no domain")
        redirect = None
    return ParsedSpf(tuple(mechanisms), redirect, tuple(errors), tuple(notes))


def _parse_term(text: str) -> SpfTerm | None:
    match = _TERM.match(text)
    if match is None:
        return None
    qualifier, name, separator, rest = match.groups()
    name = name.lower()
    if separator == "=":
        if qualifier:
            return None
        return SpfTerm(text, name, _domain(rest or ""), is_modifier=True)
    if separator == ":":
        # a:host/24 and mx:host//64 carry a CIDR length after the domain; drop it.
        domain = (rest or "").split("/", 1)[0]
        if not domain:
            return None
        if name in ("ip4", "ip6"):
            return SpfTerm(text, name)
        return SpfTerm(text, name, _domain(domain))
    if name in ("include", "exists", "ip4", "ip6"):
        return None  # 5.2, 5.6, 5.7: these need a value
    return SpfTerm(text, name)


def _domain(spec: str) -> str:
    return spec.strip().rstrip(".").lower()


def _valid_domain(domain: str) -> bool:
    # 4.8 domain-end: a domain-spec needs a top label, i.e. at least one dot.
    if "." not in domain:
        return False
    try:
        dns.name.from_text(domain)
    except dns.exception.DNSException:
        return False
    return True


# -- DNS with a per-plan cache -------------------------------------------------------------------


class LookupStatus(enum.Enum):
    ANSWER = "answer"
    NXDOMAIN = "NXDOMAIN"
    NODATA = "no data"
    FAILED = "temperror"


@dataclass(frozen=True)
class Lookup:
    status: LookupStatus
    values: tuple[str, ...] = ()
    problem: str = ""  # why FAILED: timeout, REFUSED/SERVFAIL, ...

    @property
    def void(self) -> bool:
        # 4.6.4: a void lookup is an answer with RCODE 0 and no records, or RCODE 3 (NXDOMAIN).
        return self.status in (LookupStatus.NXDOMAIN, LookupStatus.NODATA)


@dataclass
class _Tally:
    """What one `count()` accumulates while walking the include/redirect tree."""

    lookups: int = 0
    voids: int = 0
    stopped: bool = False
    mx_over_limit: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def spend(self, term: SpfTerm, where: str) -> bool:
        """Count one DNS-querying term; False once the budget is blown and the walk must stop."""
        self.lookups += 1
        if self.lookups > SpfBudget.LIMIT:
            # 4.6.4: the 11th lookup is a permerror; receivers stop here, and so do we.
            self.stopped = True
            self.notes.append(
                f"stopped counting at lookup {self.lookups} ({term.text} in {where}): "
                f"more than {SpfBudget.LIMIT} DNS-querying terms is a permerror"
            )
            return False
        return True

    def void(self, term: SpfTerm, where: str, lookup: Lookup) -> None:
        self.voids += 1
        self.notes.append(f"void lookup: {term.text} in {where} ({lookup.status.value})")

    def budget(self) -> SpfBudget:
        return SpfBudget(
            lookups=self.lookups,
            void_lookups=self.voids,
            source="dns",
            mx_over_limit=tuple(dict.fromkeys(self.mx_over_limit)),
            errors=tuple(dict.fromkeys(self.errors)),
            notes=tuple(dict.fromkeys(self.notes)),
        )


class SpfBudgetCounter:
    """Counts SPF lookups through DNS. Safe to share between threads planning different zones;
    each (name, type) is queried at most once for the counter's lifetime."""

    def __init__(self, resolver: dns.resolver.Resolver) -> None:
        self._resolver = resolver
        self._cache: dict[tuple[str, str], Lookup] = {}
        self._key_locks: dict[tuple[str, str], threading.Lock] = {}
        self._lock = threading.Lock()
        self._queries = 0

    @property
    def queries(self) -> int:
        """DNS queries actually sent (cache misses), for tests and plan statistics."""
        with self._lock:
            return self._queries

    def count(self, record: str, fqdn: str) -> SpfBudget:
        """The budget of `record` as published at `fqdn` (which `a`/`mx` without a domain use)."""
        domain = _domain(fqdn)
        tally = _Tally()
        self._walk(record, domain, (domain,), tally)
        return tally.budget()

    # -- the walk ---------------------------------------------------------------------------

    def _walk(self, record: str, domain: str, path: tuple[str, ...], tally: _Tally) -> None:
        where = _where(path)
        parsed = parse_spf(record, where)
        tally.errors.extend(parsed.errors)
        tally.notes.extend(parsed.notes)
        for term in parsed.mechanisms:
            if tally.stopped:
                return
            if term.name in QUERYING_MECHANISMS:
                self._mechanism(term, domain, path, tally)
        # 6.1: redirect is evaluated after all mechanisms, wherever it is written.
        if parsed.redirect is not None and not tally.stopped:
            self._follow(parsed.redirect, path, tally)

    def _mechanism(self, term: SpfTerm, domain: str, path: tuple[str, ...], tally: _Tally) -> None:
        where = _where(path)
        if not tally.spend(term, where):
            return
        if term.name == "include":
            self._follow(term, path, tally, counted=True)
            return
        if term.name == "ptr":
            # 5.5: the names come from the sending IP's PTR records, unknown at plan time.
            tally.notes.append(
                f"{term.text} in {where}: ptr depends on the sending IP, so its 10-name limit "
                "cannot be checked at plan time; RFC 7208 5.5 says ptr should not be used"
            )
            return
        target = term.domain or domain
        if not self._checkable(term, target, where, tally):
            return
        if term.name == "a":
            # 5.3: A or AAAA depending on the connecting IP; void only if the name has neither.
            lookups = [self._lookup(target, "A"), self._lookup(target, "AAAA")]
            failed = [lk for lk in lookups if lk.status is LookupStatus.FAILED]
            if failed:
                self._temperror(term, target, where, failed[0], tally)
            elif all(lk.void for lk in lookups):
                tally.void(term, where, lookups[0])
        elif term.name == "exists":
            # 5.7: exists always queries A, whatever the connecting IP's family.
            lookup = self._lookup(target, "A")
            self._account(term, target, where, lookup, tally)
        elif term.name == "mx":
            lookup = self._lookup(target, "MX")
            if self._account(term, target, where, lookup, tally) and (
                len(lookup.values) > MX_NAME_LIMIT
            ):
                # 4.6.4: more than 10 MX names makes the mx mechanism a permerror (S3).
                tally.mx_over_limit.append(f"mx:{target}")

    def _follow(
        self, term: SpfTerm, path: tuple[str, ...], tally: _Tally, *, counted: bool = False
    ) -> None:
        """Evaluate the record of an include target or redirect target."""
        where = _where(path)
        if not counted and not tally.spend(term, where):
            return
        target = term.domain
        if not self._checkable(term, target, where, tally):
            return
        if target in path:
            # A name already on the current path would recurse until the limit: permerror.
            tally.errors.append(f"permerror: {term.text} in {where} loops back to {target}")
            return
        lookup = self._lookup(target, "TXT")
        if not self._account(term, target, where, lookup, tally):
            if lookup.void:
                tally.errors.append(
                    f"permerror: {term.text} in {where}: {target} has no SPF record"
                )
            return
        records = [value for value in lookup.values if is_spf(value)]
        if len(records) != 1:
            # 5.2 / 6.1: a target without an SPF record is a permerror for include and
            # redirect alike; 4.5: more than one v=spf1 record is a permerror.
            found = "no SPF record" if not records else f"{len(records)} SPF records"
            tally.errors.append(f"permerror: {term.text} in {where}: {target} has {found}")
            return
        self._walk(records[0], target, (*path, target), tally)

    def _checkable(self, term: SpfTerm, target: str, where: str, tally: _Tally) -> bool:
        if term.has_macro:
            tally.notes.append(
                f"{term.text} in {where}: macros are expanded per message, "
                "so this term is counted as 1 lookup and not followed"
            )
            return False
        if not _valid_domain(target):
            tally.errors.append(f"permerror: {term.text} in {where}: {target!r} is not a domain")
            return False
        return True

    def _account(
        self, term: SpfTerm, target: str, where: str, lookup: Lookup, tally: _Tally
    ) -> bool:
        """Record a void or a temperror; True when the lookup has records to look at."""
        if lookup.status is LookupStatus.FAILED:
            self._temperror(term, target, where, lookup, tally)
            return False
        if lookup.void:
            tally.void(term, where, lookup)
            return False
        return True

    @staticmethod
    def _temperror(term: SpfTerm, target: str, where: str, lookup: Lookup, tally: _Tally) -> None:
        # The count below this term is unknown, so the figure is a lower bound: say so as an error.
        tally.errors.append(
            f"temperror: {term.text} in {where}: {target} could not be resolved ({lookup.problem})"
        )

    # -- DNS -------------------------------------------------------------------------------

    def _lookup(self, name: str, rtype: str) -> Lookup:
        key = (name, rtype)
        with self._lock:
            cached = self._cache.get(key)
            if cached is not None:
                return cached
            key_lock = self._key_locks.setdefault(key, threading.Lock())
        # One lock per (name, type): threads asking for the same sender wait for one query
        # instead of each sending their own; different names proceed in parallel.
        with key_lock:
            with self._lock:
                cached = self._cache.get(key)
                if cached is not None:
                    return cached
                self._queries += 1
            lookup = self._query(name, rtype)
            with self._lock:
                self._cache[key] = lookup
            return lookup

    def _query(self, name: str, rtype: str) -> Lookup:
        try:
            answer = self._resolver.resolve(name + ".", rtype, search=False)
        except dns.resolver.NXDOMAIN:
            return Lookup(LookupStatus.NXDOMAIN)
        except dns.resolver.NoAnswer:
            return Lookup(LookupStatus.NODATA)
        except dns.resolver.NoNameservers:
            return Lookup(LookupStatus.FAILED, problem="REFUSED or SERVFAIL from every nameserver")
        except dns.exception.Timeout:
            return Lookup(LookupStatus.FAILED, problem="timeout")
        except dns.exception.DNSException as exc:
            return Lookup(LookupStatus.FAILED, problem=type(exc).__name__)
        if rtype == "TXT":
            values = tuple(txt_values(answer))
        elif rtype == "MX":
            values = tuple(
                sorted({rdata.exchange.to_text(omit_final_dot=True).lower() for rdata in answer})
            )
        else:
            values = tuple(rdata.to_text() for rdata in answer)
        return Lookup(LookupStatus.ANSWER, values)


def _where(path: tuple[str, ...]) -> str:
    return path[-1] if len(path) == 1 else f"{path[-1]} (via {' -> '.join(path[:-1])})"


# -- catalog estimate -------------------------------------------------------------------------


def estimate_from_catalog(record: str, costs: Mapping[str, int]) -> SpfBudget:
    """Estimate the budget without DNS from per-sender costs.

    `costs` maps a term such as `include:sendgrid.net` to what that sender costs in total,
    including the include itself. A redirect to a catalogued name costs the same as including
    it (`redirect=x` or `include:x` keys). Other querying terms cost 1; so does an unknown
    include, with a note. Void lookups and MX counts are unknown here (0 / empty).
    """
    catalog = {_catalog_key(key): cost for key, cost in costs.items()}
    parsed = parse_spf(record, "record")
    notes = list(parsed.notes)
    lookups = 0
    terms = [t for t in parsed.mechanisms if t.name in QUERYING_MECHANISMS]
    if parsed.redirect is not None:
        terms.append(parsed.redirect)
    for term in terms:
        if term.name == "ptr":
            notes.append(f"{term.text}: ptr counted as 1; RFC 7208 5.5 says ptr should not be used")
        if term.name not in ("include", "redirect"):
            lookups += 1
            continue
        cost = catalog.get(term.key())
        if cost is None and term.name == "redirect":
            cost = catalog.get(f"include:{term.domain}")
        if cost is None:
            lookups += 1
            notes.append(f"{term.key()} not in the sender catalog: counted as 1")
        else:
            lookups += cost
    return SpfBudget(
        lookups=lookups,
        void_lookups=0,
        source="catalog",
        errors=parsed.errors,
        notes=tuple(dict.fromkeys(notes)),
    )


def _catalog_key(key: str) -> str:
    term = _parse_term(key.strip().lstrip("+-~?"))
    return term.key() if term is not None else key.strip().lower()
