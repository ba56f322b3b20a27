"""The JSON Schemas dmarcops ships (policy/schemas/), known to be valid 2020-12 schemas.

Each schema a run uses is checked against the 2020-12 meta-schema before it judges any file, so that
a broken one is refused by name instead of failing inside jsonschema. That check costs about 10 ms
a schema (12 of them: a fifth of a one-zone `plan --changed-since`), and for the schemas as shipped
its answer never changes. A schema whose content is one of these is therefore not checked again at
run time: tests/test_shipped_schemas.py checks each of them against the meta-schema instead, and
fails when a schema under policy/schemas/ is edited without its digest here. Any other content (an
edited, added or hostile schema) is still checked at run time, so a digest missing here costs time,
never a check.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

# SHA-256 of canonical_schema() of each file under policy/schemas/.
SHIPPED_SCHEMAS: frozenset[str] = frozenset(
    {
        "b45d24fdf2b797bfff7d41512c229a7bddc4820ac9f2d278c75c2af35b328fe2",  # calendar.schema.json
        "2a2fd27cc5c98d21b5ced7ed6e4ff335b0cb23482702930156d7950cb36e446d",  # change-request.schema.json
        "6036331672288e522208a9922e39c1835f1009a343865d89311d4265e89c5424",  # client.schema.json
        "5f2d8fb2d9d812cf93009f5e990e73c5b1312919504cc5bde6714dfefed60efa",  # gate.schema.json
        "a1bb7f069d0de65fdece1fde10c4381ae63875b331936743b7ca965bc498b24e",  # providers.schema.json
        "c8a0705e89a5880e95758b99cc2d3061fd3c979d07823a5ccf0dfacdf11d1e8f",  # risk-rules.schema.json
        "810fedd4c771cdfab44c3f555c500179a5d30eb817de2911eed9a464a42c0ef6",  # roster.schema.json
        "3bf3485613c90d38cd2b8042d48f7ff8042ab729c15eae6241c8c8ed82df24a0",  # senders.schema.json
        "2a27feee1a318fe7f32c5873f2f5293bbcf8524a1902692b352d7e4f2fc7e4c5",  # settings.schema.json
        "c1cb2486d4aa19125f12b0ccf18ab22007bfe10dfd2947b203d26508c65cc82f",  # staffing.schema.json
        "0002a6337264e6014812363947c59b361b652f65cfb803c5ab0b654147685433",  # template.schema.json
        "9556f3d1679ee10556dd27547fbc8c342ece637d57a949fa63a932bb773f5c82",  # zone.schema.json
    }
)


def canonical_schema(schema: Any) -> bytes:
    """The parsed schema in one byte form (keys sorted, no spaces): what its validity depends
    on, whatever the file's layout."""
    return json.dumps(schema, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def is_shipped(schema: Any) -> bool:
    return hashlib.sha256(canonical_schema(schema)).hexdigest() in SHIPPED_SCHEMAS
