"""Zone files (zones/<client>/<domain>.yaml) into octoDNS zones, checked for scope first.

A zone file is octoDNS YAML read by octoDNS's own YamlProvider (so octodns-validate agrees with us),
with `escaped_semicolons` set explicitly: octoDNS 1.x defaults it to True with a deprecation warning
and 2.0 flips it. Before octoDNS sees the file we check it against zone.schema.json and against the
pipeline's scope, so that a record we would never own is refused with its line instead of silently
ignored.
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path
from typing import Any

from natsort import natsort_keygen
from octodns.context import ContextDict
from octodns.provider.yaml import YamlProvider
from octodns.record import Record
from octodns.record.exception import ValidationError
from octodns.zone import Zone

from pipeline.diff.kinds import is_spf_value, kind_of
from pipeline.errors import InputError
from pipeline.load.mta_sts import desired_policy
from pipeline.load.portfolio import ZoneFile
from pipeline.load.yamlfile import JsonPath, YamlDocument, iter_schema_errors, load_yaml
from pipeline.load.zone_schema import plainly_valid
from pipeline.model import RecordKind

ESCAPED_SEMICOLONS = True
DEFAULT_TTL = 3600

_CONTEXT_LINE = re.compile(r"line (\d+)")


def desired_source(directory: Path, source_id: str) -> YamlProvider:
    return YamlProvider(
        source_id,
        str(directory),
        default_ttl=DEFAULT_TTL,
        enforce_order=True,
        escaped_semicolons=ESCAPED_SEMICOLONS,
        supports_root_ns=False,
    )


def _records(doc: YamlDocument) -> list[tuple[str, int | None, dict[str, object]]]:
    out: list[tuple[str, int | None, dict[str, object]]] = []
    for name, data in (doc.data or {}).items():
        items = data if isinstance(data, list) else [data]
        for i, record in enumerate(items):
            where = (name, i) if isinstance(data, list) else (name,)
            out.append((str(name), doc.line_of(where), record))
    return out


def scope_problems(doc: YamlDocument) -> list[InputError]:
    """Records in a zone file that the pipeline does not own (README: "Zone files hold only what the pipeline owns")."""
    problems = []
    for name, line, record in _records(doc):
        rtype = str(record.get("type", ""))
        kind = kind_of(name, rtype)
        shown = name or "(apex)"
        if kind is None:
            problems.append(
                InputError(
                    f"record {shown} {rtype} is outside the pipeline's scope",
                    file=doc.path,
                    line=line,
                    hint="Zone files hold only _dmarc, SPF, DKIM, BIMI, MTA-STS, TLS-RPT, "
                    "report-authorisation records and NS delegations of sub-domains (never the "
                    "apex NS); other records belong to the client's DNS team.",
                )
            )
        elif kind is RecordKind.SPF:
            values = record.get("values", [record.get("value")])
            assert isinstance(values, list)
            others = [v for v in values if isinstance(v, str) and not is_spf_value(v)]
            if others:
                problems.append(
                    InputError(
                        f"TXT {shown} holds {others[0][:40]!r}; only the v=spf1 value of this set "
                        "is owned by the pipeline",
                        file=doc.path,
                        line=line,
                        hint="Leave verification tokens and other TXT values out: the plan keeps "
                        "the live ones as they are.",
                    )
                )
    return problems


def check_zone_file(
    zone_file: ZoneFile, schema_path: Path, root: Path | None = None
) -> list[InputError]:
    """Every problem of one zone file. `root`: the repository it is in, when the caller knows it
    (10,000 files need not each look for it)."""
    stamp = _stamp(zone_file.path)  # before reading: a later edit is then read again
    try:
        doc = load_yaml(zone_file.path, root=root)
    except InputError as exc:
        return [exc]
    # jsonschema only for a file that does not plainly meet the shipped schema (it then names
    # the problems): a fifth of the checking time of a large plan (pipeline/load/zone_schema.py).
    problems = (
        [] if plainly_valid(doc.data, schema_path) else list(iter_schema_errors(doc, schema_path))
    )
    if problems:
        return problems
    problems = scope_problems(doc)
    if problems:
        return problems
    try:
        # The same parse becomes the octoDNS zone, which `plan` then finds in the cache.
        _desired(zone_file, stamp, doc)
        # The desired MTA-STS policy beside the zone file is part of the zone: a hostile one
        # (a link, a FIFO, too large, not UTF-8) takes this zone out of the plan, by name.
        desired_policy(zone_file)
    except InputError as exc:
        return [exc]
    return []


def load_desired(zone_file: ZoneFile) -> Zone:
    """The desired zone as octoDNS reads it; octoDNS's validation errors become InputErrors.

    `dmarcops plan` validates every zone file and then plans it: the file is parsed once per
    version (check_zone_file's parse makes the zone; octoDNS copies the desired zone before
    planning, so sharing it is safe).
    """
    return _desired(zone_file, _stamp(zone_file.path))


def _stamp(path: Path) -> int:
    try:
        return path.stat().st_mtime_ns
    except OSError:
        return 0


# (zone file, mtime) -> its zone. Not an LRU of 4096 as before: a 10,000-zone plan checks every
# file before planning any, and would find none of the first 6,000 left. Emptied when it holds
# more zones than any portfolio (a long-lived process, such as the test suite, keeps no garbage).
_ZONES: dict[tuple[ZoneFile, int], Zone] = {}
_MAX_ZONES = 100_000


def _desired(zone_file: ZoneFile, stamp: int, doc: YamlDocument | None = None) -> Zone:
    key = (zone_file, stamp)
    zone = _ZONES.get(key)
    if zone is None:
        zone = _zone_of(zone_file, doc if doc is not None else load_yaml(zone_file.path))
        if len(_ZONES) >= _MAX_ZONES:
            _ZONES.clear()
        _ZONES[key] = zone
    return zone


# octoDNS's YamlProvider with enforce_order checks every mapping's keys in this order.
_NATURAL = natsort_keygen()


def order_problem(doc: YamlDocument) -> InputError | None:
    """The first mapping whose keys are not in octoDNS's natural order (enforce_order: true)."""

    def walk(node: Any, where: JsonPath) -> InputError | None:
        if isinstance(node, dict):
            keys = [str(k) for k in node]
            for key, expected in zip(keys, sorted(keys, key=_NATURAL), strict=True):
                if key != expected:
                    return doc.error(
                        (*where, key),
                        f"keys out of order: expected {expected!r} got {key!r}",
                        hint="octoDNS requires record names and keys in sorted order "
                        "(ttl before type before value).",
                    )
            children = [((*where, str(k)), v) for k, v in node.items()]
        elif isinstance(node, list):
            children = [((*where, i), v) for i, v in enumerate(node)]
        else:
            return None
        for child_where, child in children:
            found = walk(child, child_where)
            if found is not None:
                return found
        return None

    return walk(doc.data, ())


def _zone_of(zone_file: ZoneFile, doc: YamlDocument) -> Zone:
    # What octoDNS's YamlProvider.populate does, on our libyaml parse of the file instead of
    # octoDNS's pure-Python one (the slowest step of a large plan): the same order rule, the same
    # default TTL, and every record through octoDNS's own Record.new and its validators.
    path = zone_file.path
    problem = order_problem(doc)
    if problem is not None:
        raise problem
    zone = Zone(f"{zone_file.domain}.", [])
    source = desired_source(path.parent, f"zones/{zone_file.client}")
    for name, data in (doc.data or {}).items():
        items = data if isinstance(data, list) else [data]
        for i, item in enumerate(items):
            where: JsonPath = (name, i) if isinstance(data, list) else (name,)
            # Point at the values when the record has them: octoDNS's reasons are mostly about them.
            at = next(((*where, k) for k in ("values", "value") if k in item), where)
            record_data = ContextDict(
                {"ttl": DEFAULT_TTL, **item},
                context=f"{path}, line {doc.line_of(at)}, column 1",
            )
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", DeprecationWarning)
                    record = Record.new(zone, str(name), record_data, source=source)
                    zone.add_record(record)
            except ValidationError as exc:
                raise _from_octodns(path, exc.context, "; ".join(map(str, exc.reasons))) from None
            except Exception as exc:  # octoDNS's other refusals (duplicates, CNAME coexistence)
                raise InputError(
                    str(exc).split("\n")[0], file=path, line=doc.line_of(where)
                ) from None
    return zone


def _from_octodns(path: Path, context: str | None, message: str) -> InputError:
    match = _CONTEXT_LINE.search(context or "")
    hint = "octoDNS rejected this record; see its message above."
    if "unescaped ;" in message or "unescaped" in message:
        hint = r"Escape semicolons in TXT values as \; (the zone files set escaped_semicolons)."
    elif "order" in message.lower():
        hint = (
            "octoDNS requires record names and keys in sorted order (ttl before type before value)."
        )
    return InputError(message, file=path, line=int(match.group(1)) if match else None, hint=hint)
