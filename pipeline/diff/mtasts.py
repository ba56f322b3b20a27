"""MTA-STS (RFC 8461): the `_mta-sts` TXT record, its policy file, and the `mta-sts` host.

The TXT record only says "a policy exists, version <id>"; senders refetch the policy file when the
id changes, so a policy edit without a new id reaches no one that cached the old one (M3).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from pipeline.diff.context import ZoneContext
from pipeline.diff.errors import RecordSyntaxError
from pipeline.diff.rrset import diff_single_record, joined, one_record_findings, same_values
from pipeline.diff.taglist import (
    Tag,
    ascii_number,
    domain_problem,
    parse_tag_list,
    require_version,
    tag_value,
)
from pipeline.model import Fact, Finding, Severity, fact

MODES = ("none", "testing", "enforce")  # from loosest to strictest
MAX_AGE_LIMIT = 31_557_600  # RFC 8461 3.2: one year
_ID = re.compile(r"^[A-Za-z0-9]{1,32}$")  # RFC 8461 3.1 sts-id
_SINGLE_FIELDS = ("version", "mode", "max_age")
WSP = " \t"  # RFC 5234 B.1: a space or a horizontal tab


@dataclass(frozen=True)
class MtaStsRecord:
    tags: tuple[Tag, ...]
    id: str


@dataclass(frozen=True)
class MtaStsPolicy:
    version: str
    mode: str
    max_age: int
    mx: tuple[str, ...]  # lower case, in file order

    def same_policy(self, other: MtaStsPolicy) -> bool:
        # RFC 8461 4.1: mx patterns are a set; their order means nothing.
        return (self.version, self.mode, self.max_age, frozenset(self.mx)) == (
            other.version,
            other.mode,
            other.max_age,
            frozenset(other.mx),
        )


def parse(text: str) -> MtaStsRecord:
    # RFC 8461 3.1: %s"v=STSv1" and %s"id=": case-sensitive names, no spaces around "=".
    tags = parse_tag_list(text, "M1", strict=True)
    require_version(text, tags, "STSv1", "M1")
    sts_id = tag_value(tags, "id")
    if sts_id is None or not _ID.match(sts_id):
        raise RecordSyntaxError(
            f"id={sts_id or ''}: the policy id must be 1-32 letters and digits (RFC 8461 3.1), "
            "e.g. a timestamp like 20260101T000000 written without punctuation",
            "M1",
        )
    return MtaStsRecord(tags, sts_id)


def validate(name: str, rtype: str, values: tuple[str, ...], ctx: ZoneContext) -> list[Finding]:
    return one_record_findings(
        values,
        parse,
        "M1",
        f"MTA-STS records at {ctx.fqdn(name)}: senders then assume no policy (RFC 8461 3.1); "
        "keep exactly one",
        name,
    )


def facts(
    name: str, rtype: str, before: tuple[str, ...], after: tuple[str, ...], ctx: ZoneContext
) -> list[Fact]:
    return diff_single_record("mta_sts", before, after, parse, _diff)


def _diff(old: MtaStsRecord | None, new: MtaStsRecord | None) -> list[Fact]:
    before = old.id if old else None
    after = new.id if new else None
    return [fact("mta_sts.id", before, after)] if before != after else []


# --- the policy file (https://mta-sts.<domain>/.well-known/mta-sts.txt) ----------------------


def parse_policy(text: str) -> MtaStsPolicy:
    fields, findings = _read_policy(text)
    if findings:
        raise RecordSyntaxError(findings[0].message, "M2")
    return MtaStsPolicy(
        version=fields["version"][0],
        mode=fields["mode"][0],
        max_age=int(fields["max_age"][0]),
        mx=tuple(mx.lower() for mx in fields.get("mx", [])),
    )


def validate_policy(text: str) -> list[Finding]:
    return _read_policy(text)[1]


def _read_policy(text: str) -> tuple[dict[str, list[str]], list[Finding]]:
    fields: dict[str, list[str]] = {}
    findings: list[Finding] = []

    def error(message: str) -> None:
        findings.append(Finding("M2", Severity.ERROR, f"MTA-STS policy: {message}", "mta-sts"))

    # RFC 8461 3.2: lines of "key: value" ending in LF or CRLF (sts-policy-term), the field name
    # first on the line and ":" right after it, then *WSP, the value, *WSP. Senders split lines
    # there and nowhere else (str.splitlines would also split at a lone CR, \v or \u2028), and
    # read " mode: enforce" or "mode : enforce" as an unknown field: mox and
    # postfix-mta-sts-resolver then find no mode and discard the policy.
    for number, line in enumerate(text.split("\n"), start=1):
        line = line.removesuffix("\r")
        odd = next((c for c in line if (c < " " and c != "\t") or c == "\x7f"), None)
        if odd is not None:
            error(
                f"line {number} holds the control character {odd!r}; a policy line is text "
                "ending in LF or CRLF (RFC 8461 3.2)"
            )
            continue
        if not line.strip(WSP):
            continue
        key, colon, value = line.partition(":")
        if not colon:
            error(f"line {number} '{line}' is not 'key: value'")
            continue
        value = value.strip(WSP)
        if key != key.strip(WSP):
            error(
                f"line {number} '{line}': no spaces are allowed before the field name or "
                f"between it and ':' (RFC 8461 3.2); write {key.strip(WSP)}: {value}"
            )
            continue
        fields.setdefault(key, []).append(value)
    for key in _SINGLE_FIELDS:
        if key not in fields:
            error(f"the {key} field is missing")
        elif len(fields[key]) > 1:
            error(f"the {key} field appears {len(fields[key])} times; keep one")
    if fields.get("version", ["STSv1"])[0] != "STSv1":
        error(f"version must be STSv1, not {fields['version'][0]}")
    mode = fields.get("mode", ["none"])[0]
    if mode not in MODES and mode.lower() in MODES:
        # RFC 8461 3.2 writes the values as %s"none" / %s"testing" / %s"enforce": its ABNF is
        # "defined using [RFC7405]", whose %s strings match case-sensitively (RFC 7405 2.1). The
        # case-insensitive quoted strings of RFC 5234 2.3 are "..." without %s, so they do not
        # apply. Senders agree: mox and postfix-mta-sts-resolver discard a policy with
        # `mode: NONE` as invalid, which is no policy at all (RFC 8461 5), not mode none.
        error(
            f"mode must be enforce, testing or none, not {mode}: the values are case-sensitive "
            f"(RFC 8461 3.2) and senders discard the policy; write mode: {mode.lower()}"
        )
    elif mode not in MODES:
        error(f"mode must be enforce, testing or none, not {mode}")
    max_age = fields.get("max_age", ["0"])[0]
    if not ascii_number(max_age) or int(max_age) > MAX_AGE_LIMIT:
        error(f"max_age must be a whole number of seconds from 0 to {MAX_AGE_LIMIT}, not {max_age}")
    # Only for a mode senders accept: a policy with another mode is discarded whatever its mx
    # lines (said once, above).
    if mode in MODES and mode != "none" and not fields.get("mx"):
        error(f"mode {mode} needs at least one mx line naming the domain's MX hosts")
    for mx in fields.get("mx", []):
        # RFC 8461 3.2 sts-policy-mx-value = ["*."] Domain, RFC 5321 4.1.2's Domain: host-name
        # labels (letters, digits, hyphens; no underscore), xn-- for an internationalised name.
        if domain_problem(mx.removeprefix("*.")) is not None:
            error(f"mx {mx} is not a host name or a *.domain wildcard")
    return fields, findings


def policy_facts(
    before_text: str | None,
    after_text: str | None,
    before_id: str | None,
    after_id: str | None,
) -> tuple[list[Fact], list[Finding]]:
    """Facts of a policy-file change, and M3 when the policy changed under the same id."""
    if before_text == after_text:
        return [], []
    try:
        old = parse_policy(before_text) if before_text is not None else None
        new = parse_policy(after_text) if after_text is not None else None
    except RecordSyntaxError:
        unparsed = fact("mta_sts.unparsed", before_text, after_text, part="policy")
        both = before_text is not None and after_text is not None
        return [unparsed], _id_findings(before_id, after_id) if both else []
    if old is not None and new is not None and old.same_policy(new):
        # Only the layout changed (spacing, line ends, order of lines): senders see the same policy.
        return [fact("mta_sts.changed", before_text, after_text, part="policy")], []
    found: list[Fact] = []
    if old is None:
        found.append(fact("mta_sts.policy", new="published"))
    elif new is None:
        found.append(fact("mta_sts.policy", old="published"))
    found.extend(_mode_facts(old, new))
    enforcing = any(p is not None and p.mode == "enforce" for p in (old, new))
    before_mx = old.mx if old else ()
    after_mx = new.mx if new else ()
    found.extend(
        fact("mta_sts.mx", mx, None, enforcing=enforcing) for mx in before_mx if mx not in after_mx
    )
    found.extend(
        fact("mta_sts.mx", None, mx, enforcing=enforcing) for mx in after_mx if mx not in before_mx
    )
    before_age = str(old.max_age) if old else None
    after_age = str(new.max_age) if new else None
    if before_age != after_age:
        found.append(fact("mta_sts.max_age", before_age, after_age))
    if not found:
        found.append(fact("mta_sts.changed", before_text, after_text, part="policy"))
    findings = _id_findings(before_id, after_id) if old is not None and new is not None else []
    return found, findings


def _mode_facts(old: MtaStsPolicy | None, new: MtaStsPolicy | None) -> list[Fact]:
    before = old.mode if old else None
    after = new.mode if new else None
    # No policy at all behaves like mode none (RFC 8461 5).
    rank_before, rank_after = MODES.index(before or "none"), MODES.index(after or "none")
    if rank_before == rank_after:
        return []
    direction = "stricter" if rank_after > rank_before else "looser"
    return [fact("mta_sts.mode", before, after, direction=direction)]


def _id_findings(before_id: str | None, after_id: str | None) -> list[Finding]:
    if before_id is None or before_id != after_id:
        return []
    return [
        Finding(
            "M3",
            Severity.ERROR,
            f"the MTA-STS policy changed but the _mta-sts id is still {after_id}: senders keep "
            "the cached policy (RFC 8461 3.1); give the TXT record a new id in the same change",
            "_mta-sts",
        )
    ]


# --- the policy host ------------------------------------------------------------------------


def validate_host(
    name: str, rtype: str, values: tuple[str, ...], ctx: ZoneContext
) -> list[Finding]:
    # The host is an ordinary address or alias; whether it serves the policy is checked live.
    return []


def host_facts(
    name: str, rtype: str, before: tuple[str, ...], after: tuple[str, ...], ctx: ZoneContext
) -> list[Fact]:
    if same_values(before, after):
        return []
    return [
        fact(
            "mta_sts.host", joined(tuple(sorted(before))), joined(tuple(sorted(after))), rtype=rtype
        )
    ]
