"""DMARC policy records at `_dmarc[.sub]` (RFC 7489, and its successor RFC 9989).

Receivers built on either RFC are in the field, so a record is checked against both: RFC 9989 drops
`pct`, `rf` and `ri` and adds `t` and `np`; what one generation ignores the other may apply.
The record's syntax and its tag checks are in dmarc_record.py.
"""

from __future__ import annotations

from collections.abc import Mapping

from pipeline.diff.context import RRsetKey, ZoneContext
from pipeline.diff.dmarc_record import (
    ALIGNMENT_MODES,
    POLICIES,
    DmarcRecord,
    destination_domain,
    parse,
    record_tags,
    report_uri_problem,
    tag_findings,
    uris_of,
)
from pipeline.diff.errors import RecordSyntaxError
from pipeline.diff.kinds import kind_of
from pipeline.diff.rrset import diff_single_record, single
from pipeline.diff.taglist import Tag, parse_tag_list, tag_value
from pipeline.model import Fact, Finding, RecordKind, Severity, fact

__all__ = [
    "DmarcRecord",
    "bimi_domain",
    "bimi_problem_of",
    "destination_domain",
    "dmarc_name_for",
    "equivalent",
    "facts",
    "is_external",
    "parse",
    "validate",
]

# Tags with their own facts; every other tag change is a `dmarc.tag` fact.
_DIFFED_TAGS = frozenset({"v", "p", "sp", "np", "pct", "rua", "ruf", "adkim", "aspf"})


def validate(name: str, rtype: str, values: tuple[str, ...], ctx: ZoneContext) -> list[Finding]:
    findings: list[Finding] = []
    records = [v for v in values if _looks_like_dmarc(v)]
    for other in values:
        if not _looks_like_dmarc(other):
            findings.append(
                Finding(
                    "D1",
                    Severity.ERROR,
                    f"'{_short(other)}' does not start with v=DMARC1, so receivers discard it "
                    "(RFC 7489 6.6.3); remove it or fix its version tag",
                    name,
                )
            )
    if len(records) > 1:
        findings.append(
            Finding(
                "D6",
                Severity.ERROR,
                f"{len(records)} DMARC records at {ctx.fqdn(name)}: receivers then apply no policy "
                "at all (RFC 7489 6.6.3); keep exactly one",
                name,
            )
        )
    for text in records:
        try:
            tags = record_tags(text)
        except RecordSyntaxError as err:
            findings.append(Finding(err.code, Severity.ERROR, err.message, name))
            continue
        findings.extend(tag_findings(tags, name))
        try:
            uris = uris_of(tags, "rua") + uris_of(tags, "ruf")
        except RecordSyntaxError:
            continue  # reported by _tag_findings
        for uri in uris:
            if report_uri_problem(uri) is None:
                findings.extend(_authorisation_findings(uri, name, ctx))
    return findings


def facts(
    name: str, rtype: str, before: tuple[str, ...], after: tuple[str, ...], ctx: ZoneContext
) -> list[Fact]:
    def diff(old: DmarcRecord | None, new: DmarcRecord | None) -> list[Fact]:
        return _diff(old, new, ctx)

    found = diff_single_record("dmarc", before, after, parse, diff)
    if found:
        found.extend(_bimi_facts(name, before, after, ctx))
    return found


def equivalent(before: tuple[str, ...], after: tuple[str, ...]) -> bool:
    """Whether two DMARC RRsets say the same to every receiver: one valid record each, with the
    same tags and values, differing only in whitespace, tag order or the case of tag names
    (RFC 7489 6.4 allows *WSP around "=" and ";"; receivers read tags by name, not position).
    The plan treats such a change as a no-op (docs/rules.md "No-op changes")."""
    try:
        old, new = single(before, parse), single(after, parse)
    except RecordSyntaxError:
        return False
    if old is None or new is None:
        return False
    return frozenset((t.name, t.value) for t in old.tags) == frozenset(
        (t.name, t.value) for t in new.tags
    )


def is_external(domain: str, zone: str) -> bool:
    zone = zone.lower()
    return domain != zone and not domain.endswith("." + zone)


def dmarc_name_for(domain_name: str, desired: Mapping[RRsetKey, tuple[str, ...]]) -> str:
    """The DMARC record name governing `domain_name` ("" = apex): its own, else the apex one."""
    own = f"_dmarc.{domain_name}" if domain_name else "_dmarc"
    return own if (own, "TXT") in desired else "_dmarc"


# --- checks ---------------------------------------------------------------------------------------


def _looks_like_dmarc(value: str) -> bool:
    return value.strip().lower().replace(" ", "").startswith("v=dmarc")


def _short(text: str) -> str:
    return text if len(text) <= 60 else text[:57] + "..."


def _authorisation_findings(uri: str, name: str, ctx: ZoneContext) -> list[Finding]:
    dest = destination_domain(uri)
    if dest is None or not is_external(dest, ctx.zone):
        return []
    authorised = ctx.report_authorised(ctx.zone, dest)
    record = f"{ctx.zone}._report._dmarc.{dest}"
    if authorised is False:
        return [
            Finding(
                "D7",
                Severity.WARNING,
                f"reports to {uri} go to another domain that does not authorise them (no TXT "
                f"v=DMARC1 at {record}), so receivers silently drop them (RFC 7489 7.1); ask "
                f"{dest} to publish it",
                name,
            )
        ]
    if authorised is None:
        return [
            Finding(
                "D7",
                Severity.INFO,
                f"could not check that {dest} authorises reports for {ctx.zone} (TXT at {record})",
                name,
            )
        ]
    return []


# --- facts -------------------------------------------------------------------------------------


def _rank(order: tuple[str, ...], value: str | None) -> int:
    return order.index(value or order[0])


def _direction(order: tuple[str, ...], old: str | None, new: str | None) -> str:
    return "stricter" if _rank(order, new) > _rank(order, old) else "looser"


def _diff(old: DmarcRecord | None, new: DmarcRecord | None, ctx: ZoneContext) -> list[Fact]:
    facts = _policy_facts(old, new)
    if old is not None and new is not None and old.effective_pct != new.effective_pct:
        facts.append(
            fact(
                "dmarc.pct",
                str(old.effective_pct),
                str(new.effective_pct),
                direction="increase" if new.effective_pct > old.effective_pct else "decrease",
                policy=new.effective_p,
            )
        )
    facts.extend(_destination_facts("dmarc.rua", _uris(old, "rua"), _uris(new, "rua"), ctx))
    facts.extend(_destination_facts("dmarc.ruf", _uris(old, "ruf"), _uris(new, "ruf"), ctx))
    for tag in ("adkim", "aspf"):
        before = None if old is None else getattr(old, f"effective_{tag}")
        after = None if new is None else getattr(new, f"effective_{tag}")
        if _rank(ALIGNMENT_MODES, before) != _rank(ALIGNMENT_MODES, after):
            facts.append(
                fact(
                    f"dmarc.{tag}",
                    before,
                    after,
                    direction=_direction(ALIGNMENT_MODES, before, after),
                )
            )
    facts.extend(_other_tag_facts(old, new))
    return facts


def _policy_facts(old: DmarcRecord | None, new: DmarcRecord | None) -> list[Fact]:
    """p, sp, np: compared as effective values; no record at all counts as none."""
    facts: list[Fact] = []
    for tag in ("p", "sp", "np"):
        explicit = any(r is not None and getattr(r, tag) is not None for r in (old, new))
        if tag != "p" and not explicit:
            continue
        before = None if old is None else getattr(old, f"effective_{tag}")
        after = None if new is None else getattr(new, f"effective_{tag}")
        if _rank(POLICIES, before) == _rank(POLICIES, after):
            continue
        attrs: dict[str, str | int | bool] = {"direction": _direction(POLICIES, before, after)}
        if new is not None:
            attrs["pct"] = new.effective_pct
        facts.append(fact(f"dmarc.{tag}", before, after, **attrs))
    return facts


def _uris(record: DmarcRecord | None, tag: str) -> tuple[str, ...]:
    if record is None:
        return ()
    uris: tuple[str, ...] = getattr(record, tag)
    return uris


def _destination_facts(
    code: str, old: tuple[str, ...], new: tuple[str, ...], ctx: ZoneContext
) -> list[Fact]:
    def external(uri: str) -> bool:
        dest = destination_domain(uri)
        return dest is not None and is_external(dest, ctx.zone)

    removed = [fact(code, old=u, external=external(u)) for u in old if u not in new]
    added = [fact(code, new=u, external=external(u)) for u in new if u not in old]
    return removed + added


def _other_tag_facts(old: DmarcRecord | None, new: DmarcRecord | None) -> list[Fact]:
    before = {t.name: t for t in (old.tags if old else ()) if t.name not in _DIFFED_TAGS}
    after = {t.name: t for t in (new.tags if new else ()) if t.name not in _DIFFED_TAGS}
    facts: list[Fact] = []
    for tag in [*before, *(n for n in after if n not in before)]:
        b, a = before.get(tag), after.get(tag)
        if b != a:
            facts.append(fact("dmarc.tag", _text(b), _text(a), tag=tag))
    return facts


def _text(tag: Tag | None) -> str | None:
    return None if tag is None else str(tag)


def _bimi_facts(
    name: str, before: tuple[str, ...], after: tuple[str, ...], ctx: ZoneContext
) -> list[Fact]:
    """`dmarc.breaks_bimi`: this change makes a published BIMI record fail B2."""
    governed = _governed_bimi(name, ctx)
    if not governed:
        return []
    old_problem = bimi_problem_of(before)
    new_problem = bimi_problem_of(after)
    if old_problem is not None or new_problem is None:
        return []
    return [fact("dmarc.breaks_bimi", new=new_problem, bimi=", ".join(governed))]


def bimi_problem_of(values: tuple[str, ...]) -> str | None:
    """Why the DMARC RRset `values` does not qualify for BIMI (rule B2), or None when it does."""
    try:
        record = single(values, parse)
    except RecordSyntaxError as err:
        return f"the DMARC record cannot be parsed: {err.message}"
    if record is None:
        return "no DMARC record"
    return record.bimi_problem()


def _governed_bimi(dmarc_name: str, ctx: ZoneContext) -> list[str]:
    names = []
    for (name, rtype), values in ctx.desired.items():
        if (
            values
            and kind_of(name, rtype) is RecordKind.BIMI
            and dmarc_name_for(bimi_domain(name), ctx.desired) == dmarc_name
            and _enforces_logo(values)
        ):
            names.append(ctx.fqdn(name))
    return sorted(names)


def bimi_domain(bimi_name: str) -> str:
    """`sel._bimi.sub` -> `sub` ("" for the apex): the domain whose mail shows the logo."""
    return bimi_name.partition("._bimi")[2].lstrip(".")


def _enforces_logo(values: tuple[str, ...]) -> bool:
    # A BIMI declination record (empty l= and a=) asks for no logo, so no DMARC change can break it.
    for value in values:
        try:
            tags = parse_tag_list(value, "B1", lower_names=True)
        except RecordSyntaxError:
            return True
        if tag_value(tags, "l") or tag_value(tags, "a"):
            return True
    return False
