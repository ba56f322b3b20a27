"""An SPF record (RFC 7208) as written: its terms parsed into mechanisms and modifiers, and the
syntax a receiver would refuse (permerror) as RecordSyntaxError. The findings of a TXT set are in
spf.py, the facts of a change in spf_facts.py.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field

from pipeline.diff.errors import RecordSyntaxError
from pipeline.diff.taglist import domain_problem

# The `all` qualifiers from loosest to strictest: +all < ?all < ~all < -all. A record without `all`
# (and without redirect) ends in neutral (RFC 7208 4.7), the same as ?all.
QUALIFIERS = ("+", "?", "~", "-")
MECHANISMS = frozenset({"all", "include", "a", "mx", "ptr", "ip4", "ip6", "exists"})
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
    # The term as the record wrote it ("mx", "-Include:x"): what a message quotes, since the
    # implicit "+" of `qualified` is not in the record. Not part of the mechanism's identity.
    written: str = field(default="", compare=False)

    @property
    def as_written(self) -> str:
        return self.written or self.qualified

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
    return SpfMechanism(qualifier, name, argument, cidr, written=term)


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
        # The label the last macro ends in is only partly written ("%{i}x.example.com"), and a
        # label holding an escape (%%, %_, %-) is expanded too: "m" stands in for each of them;
        # the labels written out in full are checked as written.
        written = ["m" if "%" in label else label for label in tail.split(".")[1:]]
        probe = ".".join(["m", *written])
        problem = domain_problem(probe, underscores=True)
        return problem.replace(probe, spec) if problem else None
    # A domain-spec names a TXT or address record, never a host connected to: `_spf` labels are
    # fine (RFC 8552 2), "exa!mple" is not a name any registry or DNS host serves.
    return domain_problem(spec, underscores=True)
