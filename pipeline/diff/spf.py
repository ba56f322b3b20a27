"""SPF policies (RFC 7208): the `v=spf1` value inside a TXT set the client otherwise owns.

Only the v=spf1 value is the pipeline's; the other values of the set (site verifications and the
like) matter only for the size of the DNS answer (S8).
"""

from __future__ import annotations

import ipaddress
import math
import re
from dataclasses import dataclass

from pipeline.diff.context import ZoneContext
from pipeline.diff.errors import RecordSyntaxError
from pipeline.diff.kinds import is_spf_value
from pipeline.diff.rrset import joined, same_values, single
from pipeline.diff.taglist import domain_problem
from pipeline.model import Fact, Finding, Severity, SpfBudget, fact

# The `all` qualifiers from loosest to strictest: +all < ?all < ~all < -all. A record without `all`
# (and without redirect) ends in neutral (RFC 7208 4.7), the same as ?all.
QUALIFIERS = ("+", "?", "~", "-")
MECHANISMS = frozenset({"all", "include", "a", "mx", "ptr", "ip4", "ip6", "exists"})
MAX_STRING_BYTES = 255  # RFC 7208 3.3, one character-string
MAX_ANSWER_BYTES = 450  # RFC 7208 3.4: keep the answer within a 512-byte UDP datagram
_RR_OVERHEAD_BYTES = 12  # name pointer, type, class, TTL and RDLENGTH of each TXT record
_MODIFIER = re.compile(r"^[A-Za-z][A-Za-z0-9_.\-]*=")
# RFC 7208 5.6 dual-cidr-length: ip4-cidr-length = "/" ("0" / %x31-39 0*1DIGIT), ip6 up to three
# digits; no leading zeros, ASCII digits only.
_V4_LEN = r"0|[1-9][0-9]?"
_V6_LEN = r"0|[1-9][0-9]{0,2}"
_DOMAIN_AND_CIDR = re.compile(
    rf"^(?P<domain>[^/]*)(?P<cidr>(?:/(?P<v4>{_V4_LEN}))?(?://(?P<v6>{_V6_LEN}))?)$"
)
# RFC 7208 7.1 macro-expand; c, r and t are allowed only in explanation text (7.2), never in a
# record's domain-spec.
_MACRO = re.compile(r"%\{[slodiphvSLODIPHV](?P<digits>[0-9]*)[rR]?[.\-+,/_=]*\}")
_MACRO_AT_END = re.compile(r"%\{[^}]*\}\.?$")
# A term with another term glued to its end: TXT strings are joined with no space (RFC 7208 3.3),
# so "...include:a.example" + "include:b.example" reads as one broken term.
_GLUED = re.compile(r".(?:include:|ip4:|ip6:|exists:|redirect=|exp=|[-~?+]all$)", re.IGNORECASE)


@dataclass(frozen=True)
class SpfMechanism:
    qualifier: str  # one of QUALIFIERS; "+" when not written
    name: str  # "include", "a", "ip4", ... lower case
    argument: str  # what follows "name:"; "" for a bare a/mx/ptr/all
    cidr: str = ""  # the "/24" or "//64" suffix of a/mx

    @property
    def term(self) -> str:
        """The mechanism as written without its qualifier, e.g. `include:sendgrid.net`, `a/24`."""
        return self.name + (f":{self.argument}" if self.argument else "") + self.cidr

    @property
    def qualified(self) -> str:
        return self.qualifier + self.term

    def target(self, fqdn: str) -> str:
        """The name or network the mechanism authorises; bare a/mx/ptr mean the record's domain."""
        return (self.argument or fqdn) + self.cidr


@dataclass(frozen=True)
class SpfModifier:
    name: str  # lower case
    value: str

    def __str__(self) -> str:
        return f"{self.name}={self.value}"


@dataclass(frozen=True)
class SpfRecord:
    text: str
    mechanisms: tuple[SpfMechanism, ...]
    modifiers: tuple[SpfModifier, ...]

    @property
    def all(self) -> SpfMechanism | None:
        return next((m for m in self.mechanisms if m.name == "all"), None)

    def modifier(self, name: str) -> str | None:
        return next((m.value for m in self.modifiers if m.name == name), None)

    @property
    def redirect(self) -> str | None:
        return self.modifier("redirect")

    @property
    def exp(self) -> str | None:
        return self.modifier("exp")


def parse(text: str) -> SpfRecord:
    # RFC 7208 4.6.1 and 12: terms are separated by spaces (1*SP) and made of visible ASCII; a tab
    # is not a separator, so receivers read "v=spf1\tinclude:..." as one unknown term.
    odd = next((c for c in text if c != " " and not "\x21" <= c <= "\x7e"), None)
    if odd is not None:
        shown = "a tab" if odd == "\t" else f"the character {odd!r}"
        raise RecordSyntaxError(
            f"the record holds {shown}: SPF terms are separated by spaces only and use visible "
            "ASCII (RFC 7208 4.6.1); receivers return permerror",
            "S1",
        )
    terms = text.split(" ")
    terms = [t for t in terms if t]
    if not terms or terms[0].lower() != "v=spf1":
        raise RecordSyntaxError("an SPF record must start with v=spf1", "S1")
    mechanisms: list[SpfMechanism] = []
    modifiers: list[SpfModifier] = []
    for term in terms[1:]:
        if _GLUED.search(term.lstrip("".join(QUALIFIERS))):
            raise RecordSyntaxError(
                f"'{term}' looks like two terms run together: TXT strings are joined with no "
                "space (RFC 7208 3.3), so put the separating space inside one of the strings",
                "S7",
            )
        if _MODIFIER.match(term):
            name, _, value = term.partition("=")
            name = name.lower()
            # redirect and exp take a domain-spec (6.1, 6.2); unknown modifiers a macro-string.
            problem = (
                _domain_spec_problem(value)
                if name in ("redirect", "exp")
                else _macro_string_problem(value)
            )
            if problem:
                raise RecordSyntaxError(
                    f"'{term}': {problem}; receivers return permerror (RFC 7208 6)", "S1"
                )
            modifiers.append(SpfModifier(name, value))
        else:
            mechanisms.append(_mechanism(term))
    for once in ("redirect", "exp"):
        if sum(m.name == once for m in modifiers) > 1:
            raise RecordSyntaxError(
                f"{once}= appears more than once, which is a permerror (RFC 7208 6); keep one", "S9"
            )
    return SpfRecord(text, tuple(mechanisms), tuple(modifiers))


def _mechanism(term: str) -> SpfMechanism:
    qualifier = term[0] if term[0] in QUALIFIERS else "+"
    body = term[1:] if term[0] in QUALIFIERS else term
    name, colon, argument = body.partition(":")
    name = name.lower()
    cidr = ""
    if name not in MECHANISMS and "/" in name and name.split("/", 1)[0].lower() in ("a", "mx"):
        # "a/24", "mx//64": a bare a/mx with a prefix length and no domain
        name, cidr = name.split("/", 1)[0].lower(), "/" + body.split("/", 1)[1]
        argument = ""
    problem = _mechanism_problem(name, bool(colon), argument, cidr)
    if problem:
        raise RecordSyntaxError(
            f"'{term}': {problem}; receivers return permerror (RFC 7208 5)", "S1"
        )
    if name in ("a", "mx") and argument:
        match = _DOMAIN_AND_CIDR.match(argument)
        if match and match.group("cidr"):
            argument, cidr = match.group("domain"), match.group("cidr")
    return SpfMechanism(qualifier, name, argument, cidr)


def _mechanism_problem(name: str, colon: bool, argument: str, cidr: str) -> str | None:
    if name not in MECHANISMS:
        return "unknown mechanism"
    if name == "all":
        return "all takes no argument" if colon or cidr else None
    if name in ("include", "exists", "ip4", "ip6") and not argument:
        return f"{name} needs an argument ({name}:...)"
    if colon and not argument:
        return f"empty argument after {name}:"
    if name == "ip4":
        return None if _is_network(argument, 4) else "not an IPv4 address or network"
    if name == "ip6":
        return None if _is_network(argument, 6) else "not an IPv6 address or network"
    if name in ("a", "mx"):
        match = _DOMAIN_AND_CIDR.match(argument + cidr)
        if not match:
            return "bad domain or prefix length (no leading zeros, ASCII digits)"
        if match.group("v4") and int(match.group("v4")) > 32:
            return "IPv4 prefix length above 32"
        if match.group("v6") and int(match.group("v6")) > 128:
            return "IPv6 prefix length above 128"
        if match.group("domain"):
            return _domain_spec_problem(match.group("domain"))
    if name in ("include", "exists", "ptr") and argument:
        return _domain_spec_problem(argument)
    return None


def _is_network(text: str, version: int) -> bool:
    address, slash, length = text.partition("/")
    # 5.6: a prefix length, never a netmask (ipaddress would take "/255.255.255.0").
    if slash and not re.fullmatch(_V4_LEN if version == 4 else _V6_LEN, length):
        return False
    if not re.fullmatch(r"[0-9.]+" if version == 4 else r"[0-9A-Fa-f:.]+", address):
        return False  # ipaddress also takes IPv6 zone ids ("fe80::1%eth0"), SPF does not
    try:
        network = ipaddress.ip_network(text, strict=False)
    except ValueError:
        return False
    return network.version == version


def _macro_string_problem(text: str) -> str | None:
    """RFC 7208 7.1 macro-string: literals are visible ASCII except %, which starts %{...},
    %%, %_ or %-."""
    i = 0
    while i < len(text):
        if text[i] != "%":
            i += 1
            continue
        if text[i + 1 : i + 2] in ("%", "_", "-"):
            i += 2
            continue
        match = _MACRO.match(text, i)
        if match is None:
            return (
                f"bad macro at '{text[i : i + 8]}' (RFC 7208 7.1: %{{letter}} with letters "
                "s l o d i p h v, or %%, %_, %-)"
            )
        if match.group("digits") and int(match.group("digits")) == 0:
            return f"macro {match.group()} keeps zero labels; the digit must be nonzero (7.3)"
        i = match.end()
    return None


def _domain_spec_problem(spec: str) -> str | None:
    """RFC 7208 7.1: domain-spec = macro-string domain-end, where domain-end is "." toplabel
    ["."] or a macro; without macros it must be a real domain name."""
    if not spec:
        return "empty domain"
    problem = _macro_string_problem(spec)
    if problem:
        return problem
    if _MACRO_AT_END.search(spec):
        return None  # domain-end is a macro: the name is known only at evaluation time
    if "%" in spec:
        # Macros before a literal domain-end ("%{i}._spf.example.com", "%{i}.example"): what
        # follows the last macro must hold "." toplabel; one label after the macro is enough,
        # the macro's expansion supplies the rest of the name.
        tail = spec.rsplit("}", 1)[-1]
        if "." not in tail.rstrip("."):
            return "after the last macro the domain must end in '.' and a top label"
        problem = domain_problem("m" + tail)  # "m" stands in for the expansion
        return problem.replace("m" + tail, spec) if problem else None
    return domain_problem(spec)


def validate(name: str, rtype: str, values: tuple[str, ...], ctx: ZoneContext) -> list[Finding]:
    findings: list[Finding] = []
    records = [v for v in values if is_spf_value(v)]
    if len(records) > 1:
        findings.append(
            Finding(
                "S1",
                Severity.ERROR,
                f"{len(records)} TXT values at {ctx.fqdn(name)} start with v=spf1: receivers "
                "return permerror (RFC 7208 4.5); merge them into one",
                name,
            )
        )
    if records:
        findings.extend(_size_findings(name, values))
    for text in records:
        try:
            record = parse(text)
        except RecordSyntaxError as err:
            findings.append(Finding(err.code or "S1", Severity.ERROR, err.message, name))
            continue
        findings.extend(_record_findings(record, name))
        findings.extend(_budget_findings(ctx.spf_budget(text, ctx.fqdn(name)), name))
    return findings


def validate_txt_strings(name: str, strings: tuple[str, ...]) -> list[Finding]:
    """S7 for a caller that still sees the character-strings of one TXT value before joining."""
    return [
        Finding(
            "S7",
            Severity.ERROR,
            f"a TXT string of {len(s.encode())} bytes exceeds {MAX_STRING_BYTES} (RFC 7208 3.3); "
            "split it into several strings",
            name,
        )
        for s in strings
        if len(s.encode()) > MAX_STRING_BYTES
    ]


def answer_size(values: tuple[str, ...]) -> int:
    """Bytes of the TXT answer: each value split into 255-byte strings, each with a length byte."""
    size = 0
    for value in values:
        length = len(value.encode())
        size += _RR_OVERHEAD_BYTES + length + max(1, math.ceil(length / MAX_STRING_BYTES))
    return size


def _size_findings(name: str, values: tuple[str, ...]) -> list[Finding]:
    size = answer_size(values)
    if size <= MAX_ANSWER_BYTES:
        return []
    return [
        Finding(
            "S8",
            Severity.WARNING,
            f"the TXT answer at this name is about {size} bytes (all {len(values)} values), above "
            f"~{MAX_ANSWER_BYTES}: it may not fit a UDP response (RFC 7208 3.4) and some receivers "
            "then fail SPF; remove stale values or move senders to an included name",
            name,
        )
    ]


def _record_findings(record: SpfRecord, name: str) -> list[Finding]:
    findings: list[Finding] = []
    all_ = record.all
    if all_ is not None and all_.qualifier == "+":
        findings.append(
            Finding(
                "S5",
                Severity.ERROR,
                "+all lets every host on the internet send as this domain; use ~all or -all",
                name,
            )
        )
    elif all_ is not None and all_.qualifier == "?":
        findings.append(
            Finding(
                "S5",
                Severity.WARNING,
                "?all (neutral) gives receivers no policy for unlisted senders; use ~all or -all",
                name,
            )
        )
    if any(m.name == "ptr" for m in record.mechanisms):
        findings.append(
            Finding(
                "S6",
                Severity.WARNING,
                "ptr is slow and unreliable and SHOULD NOT be used (RFC 7208 5.5); list the "
                "sender's addresses with ip4/ip6 or an include instead",
                name,
            )
        )
    if all_ is not None:
        if record.redirect is not None:
            findings.append(
                Finding(
                    "S9",
                    Severity.WARNING,
                    f"redirect={record.redirect} is ignored because the record has an all "
                    "mechanism (RFC 7208 6.1); remove one of them",
                    name,
                )
            )
        after_all = record.mechanisms[record.mechanisms.index(all_) + 1 :]
        if after_all:
            ignored = " ".join(m.qualified for m in after_all)
            findings.append(
                Finding(
                    "S9",
                    Severity.WARNING,
                    f"terms after {all_.qualified} are never evaluated (RFC 7208 5.1): {ignored}; "
                    "move them before it",
                    name,
                )
            )
    return findings


def _budget_findings(budget: SpfBudget, name: str) -> list[Finding]:
    estimated = (
        " (estimated from the sender catalog: DNS was not queried)"
        if budget.source == "catalog"
        else ""
    )
    findings: list[Finding] = []
    if budget.lookups > budget.LIMIT:
        findings.append(
            Finding(
                "S2",
                Severity.ERROR,
                f"{budget.lookups} DNS-querying terms counted recursively{estimated}, above the "
                f"limit of {budget.LIMIT}: receivers return permerror (RFC 7208 4.6.4); remove "
                "senders or replace includes by ip4/ip6 terms",
                name,
            )
        )
    for term in budget.mx_over_limit:
        findings.append(
            Finding(
                "S3",
                Severity.ERROR,
                f"{term} resolves to more than 10 MX names{estimated}: receivers return "
                "permerror (RFC 7208 4.6.4); use ip4/ip6 or an include for those hosts",
                name,
            )
        )
    for term in budget.ptr_over_limit:
        findings.append(
            Finding(
                "S6",
                Severity.WARNING,
                f"{term} returns more than 10 names; receivers use only the first 10 "
                "(RFC 7208 4.6.4)",
                name,
            )
        )
    if budget.void_lookups > budget.VOID_LIMIT:
        findings.append(
            Finding(
                "S4",
                Severity.ERROR,
                f"{budget.void_lookups} lookups return no answer{estimated}, above the limit of "
                f"{budget.VOID_LIMIT}: receivers return permerror (RFC 7208 4.6.4); remove terms "
                "that point at names without records",
                name,
            )
        )
    for error in budget.errors:
        # A temperror is our lookup failing, not the record: the count is then a lower bound.
        temporary = error.startswith("temperror")
        findings.append(
            Finding(
                "S2",
                Severity.WARNING if temporary else Severity.ERROR,
                f"following includes and redirects: {error}"
                + ("; the lookup count is a lower bound" if temporary else ""),
                name,
            )
        )
    for note in budget.notes:
        findings.append(Finding("S2", Severity.INFO, f"lookup count: {note}", name))
    return findings


# --- facts -------------------------------------------------------------------------------------


def facts(
    name: str, rtype: str, before: tuple[str, ...], after: tuple[str, ...], ctx: ZoneContext
) -> list[Fact]:
    old_values = tuple(v for v in before if is_spf_value(v))
    new_values = tuple(v for v in after if is_spf_value(v))
    if same_values(old_values, new_values):
        return []
    found: list[Fact] = []
    if not old_values:
        found.append(fact("spf.record", new="published"))
    elif not new_values:
        found.append(fact("spf.record", old="published"))
    try:
        old = single(old_values, parse)
        new = single(new_values, parse)
    except RecordSyntaxError:
        found.append(fact("spf.unparsed", joined(old_values), joined(new_values)))
        return found
    fqdn = ctx.fqdn(name)
    found.extend(_mechanism_facts(old, new, fqdn, ctx))
    found.extend(_all_facts(old, new))
    found.extend(_modifier_facts(old, new))
    found.extend(_lookup_facts(old, new, fqdn, ctx))
    if not found:
        found.append(fact("spf.changed", joined(old_values), joined(new_values)))
    return found


def _by_term(record: SpfRecord | None) -> dict[str, SpfMechanism]:
    # The first occurrence wins: RFC 7208 4.6.2 evaluates left to right and stops at a match.
    terms: dict[str, SpfMechanism] = {}
    for m in record.mechanisms if record else ():
        if m.name != "all":
            terms.setdefault(m.term.lower(), m)
    return terms


def _sender_attrs(m: SpfMechanism, ctx: ZoneContext) -> dict[str, str | int | bool]:
    sender_name = ctx.pre_approved_sender(m.term)
    return {
        "sender": True,
        "qualifier": m.qualifier,
        "pre_approved": sender_name is not None,
        "sender_name": sender_name or "",
    }


def _mechanism_facts(
    old: SpfRecord | None, new: SpfRecord | None, fqdn: str, ctx: ZoneContext
) -> list[Fact]:
    before, after = _by_term(old), _by_term(new)
    removed = [m for key, m in before.items() if key not in after]
    added = [m for key, m in after.items() if key not in before]
    found: list[Fact] = []
    removed_includes = [m for m in removed if m.name == "include"]
    added_ips = [m for m in added if m.name in ("ip4", "ip6")]
    if removed_includes and added_ips:
        # Flattening replaces includes by the addresses they resolved to; the per-term
        # "sender removed" facts would misstate it as losing senders.
        found.append(
            fact(
                "spf.flattened",
                " ".join(m.term for m in removed_includes),
                " ".join(m.term for m in added_ips),
                includes_removed=len(removed_includes),
                ip_terms_added=len(added_ips),
            )
        )
        removed = [m for m in removed if m not in removed_includes]
        added = [m for m in added if m not in added_ips]
    for m in removed:
        found.append(fact(f"spf.{m.name}", m.target(fqdn), None, **_sender_attrs(m, ctx)))
    for m in added:
        found.append(fact(f"spf.{m.name}", None, m.target(fqdn), **_sender_attrs(m, ctx)))
    for key, m in after.items():
        kept = before.get(key)
        if kept is not None and kept.qualifier != m.qualifier:
            found.append(
                fact(
                    f"spf.{m.name}",
                    kept.qualified,
                    m.qualified,
                    direction=_direction(kept.qualifier, m.qualifier),
                    **_sender_attrs(m, ctx),
                )
            )
    return found


def _direction(old: str, new: str) -> str:
    rank_old, rank_new = QUALIFIERS.index(old), QUALIFIERS.index(new)
    if rank_new == rank_old:
        return "same"
    return "stricter" if rank_new > rank_old else "looser"


def _all_facts(old: SpfRecord | None, new: SpfRecord | None) -> list[Fact]:
    before = old.all if old else None
    after = new.all if new else None
    old_text = before.qualified if before else None
    new_text = after.qualified if after else None
    if old_text == new_text:
        return []
    return [
        fact(
            "spf.all",
            old_text,
            new_text,
            direction=_direction(
                before.qualifier if before else "?", after.qualifier if after else "?"
            ),
            to=after.qualifier if after else "",
        )
    ]


def _modifier_facts(old: SpfRecord | None, new: SpfRecord | None) -> list[Fact]:
    before = {m.name: m for m in old.modifiers} if old else {}
    after = {m.name: m for m in new.modifiers} if new else {}
    found: list[Fact] = []
    for name in [*before, *(n for n in after if n not in before)]:
        b, a = before.get(name), after.get(name)
        if b == a:
            continue
        if name in ("redirect", "exp"):
            found.append(fact(f"spf.{name}", b.value if b else None, a.value if a else None))
        else:
            found.append(
                fact("spf.modifier", str(b) if b else None, str(a) if a else None, modifier=name)
            )
    return found


def _lookup_facts(
    old: SpfRecord | None, new: SpfRecord | None, fqdn: str, ctx: ZoneContext
) -> list[Fact]:
    if new is None:
        return []
    after = ctx.spf_budget(new.text, fqdn)
    before = ctx.spf_budget(old.text, fqdn) if old else None
    if before is not None and before.lookups == after.lookups:
        return []
    return [
        fact(
            "spf.lookups",
            str(before.lookups) if before else None,
            str(after.lookups),
            headroom=after.headroom,
            source=after.source,
            void_lookups=after.void_lookups,
        )
    ]
