"""A zone file that plainly meets zone.schema.json as shipped is passed without jsonschema.

`dmarcops plan` checks every zone file against policy/schemas/zone.schema.json; with jsonschema
that is about 0.2 ms a file, 0.2 s of a 1,000-zone plan (benchmarks/README.md). The schema is
small and fixed: a mapping of record names to a record or a list of records, each with a `type`
from a short list and a `value` or `values` of strings. `plainly_valid` answers True only for a
document it can see meets every keyword of that schema, with exact Python types (a `str`, an
`int` that is not a `bool`, a `list`, a `dict`); anything else (an edited schema, a float TTL,
any doubt) gets False, and the caller asks jsonschema, which also writes the messages. So True
always means jsonschema finds nothing; tests/test_zone_schema.py checks that on generated
documents, and that the shipped schema is the one this module knows.
"""

from __future__ import annotations

import hashlib
import re
from functools import cache
from pathlib import Path
from typing import Any

from pipeline.errors import InputError
from pipeline.load.shipped_schemas import canonical_schema
from pipeline.load.yamlfile import load_schema

# canonical_schema() digest of policy/schemas/zone.schema.json as shipped: the schema whose
# keywords `_Shape` reads and `plainly_valid` checks. Any other content is checked by jsonschema.
ZONE_SCHEMA_SHA256 = "9556f3d1679ee10556dd27547fbc8c342ece637d57a949fa63a932bb773f5c82"


class _Shape:
    """The shipped schema's constants, read from the schema itself (not copied by hand)."""

    def __init__(self, schema: dict[str, Any]) -> None:
        record = schema["$defs"]["record"]
        properties = record["properties"]
        self.name = re.compile(schema["propertyNames"]["pattern"])
        self.keys = frozenset(properties)
        self.types = frozenset(properties["type"]["enum"])
        self.ttl_min = int(properties["ttl"]["minimum"])
        self.ttl_max = int(properties["ttl"]["maximum"])

    def record(self, item: object) -> bool:
        if type(item) is not dict or "type" not in item or not item.keys() <= self.keys:
            return False
        if ("value" in item) == ("values" in item):  # oneOf: exactly one of them
            return False
        kind = item["type"]
        if type(kind) is not str or kind not in self.types:
            return False
        if "ttl" in item:
            ttl = item["ttl"]
            if type(ttl) is not int or not self.ttl_min <= ttl <= self.ttl_max:
                return False
        if "octodns" in item and type(item["octodns"]) is not dict:
            return False
        if "value" in item:
            return type(item["value"]) is str
        values = item["values"]
        return type(values) is list and len(values) >= 1 and all(type(v) is str for v in values)

    def document(self, data: object) -> bool:
        if data is None:
            return True
        if type(data) is not dict:
            return False
        for name, value in data.items():
            # jsonschema's `pattern` is re.search, as here.
            if type(name) is not str or self.name.search(name) is None:
                return False
            if type(value) is list:
                if not value or not all(self.record(item) for item in value):
                    return False
            elif not self.record(value):
                return False
        return True


@cache
def _shape(schema_path: Path) -> _Shape | None:
    try:
        schema = load_schema(schema_path)
    except InputError:
        return None  # jsonschema's path names the problem
    digest = hashlib.sha256(canonical_schema(schema)).hexdigest()
    return _Shape(schema) if digest == ZONE_SCHEMA_SHA256 else None


def plainly_valid(data: object, schema_path: Path) -> bool:
    """True only when `schema_path` is the shipped zone schema and `data` meets it as plainly
    as described above; False means "ask jsonschema", not "invalid"."""
    shape = _shape(schema_path)
    return shape is not None and shape.document(data)
