"""The facts of an SPF change (RFC 7208): senders added, removed or re-qualified, the `all`
mechanism, modifiers and the DNS lookup count, for the risk rules to score.
"""

from __future__ import annotations

from pipeline.diff.context import ZoneContext
from pipeline.diff.errors import RecordSyntaxError
from pipeline.diff.kinds import is_spf_value
from pipeline.diff.rrset import joined, same_values, single
from pipeline.diff.spf_record import QUALIFIERS, SpfMechanism, SpfRecord, parse
from pipeline.model import Fact, fact


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
