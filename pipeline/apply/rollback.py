"""Restoring a before-state in the zone files, so a rollback is itself a planned, recorded change.

A rollback edits the desired state (zones/<client>/<domain>.yaml) back to what the change record says
was live before, then goes through plan and apply like any change (as an emergency-rollback). Editing
live DNS alone would be undone by the next plan, which still wants the zone file's values.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from octodns.yaml import safe_dump

from pipeline.diff.kinds import is_owned_value, kind_of
from pipeline.load.yamlfile import load_yaml
from pipeline.load.zones import ESCAPED_SEMICOLONS


def _escaped(rtype: str, value: str) -> str:
    return value.replace(";", "\\;") if rtype == "TXT" and ESCAPED_SEMICOLONS else value


def restore(
    zone_file: Path, restores: Sequence[tuple[str, str, Sequence[str], int | None]]
) -> None:
    """Set each (name, type) to its before values (only the owned ones); no values removes it."""
    doc = load_yaml(zone_file)
    data: dict[str, Any] = dict(doc.data or {})
    for name, rtype, values, ttl in restores:
        kind = kind_of(name, rtype)
        assert kind is not None, f"{name} {rtype} is not owned: a record never holds it"
        owned = [v for v in values if is_owned_value(kind, v)]
        existing = data.get(name)
        records = existing if isinstance(existing, list) else ([existing] if existing else [])
        records = [r for r in records if r.get("type") != rtype]
        if owned:
            record: dict[str, Any] = {"type": rtype}
            if ttl is not None:
                record["ttl"] = ttl
            if len(owned) == 1:
                record["value"] = _escaped(rtype, owned[0])
            else:
                record["values"] = sorted(_escaped(rtype, v) for v in owned)
            records.append(record)
        if not records:
            data.pop(name, None)
        else:
            data[name] = (
                records[0] if len(records) == 1 else sorted(records, key=lambda r: r["type"])
            )
    fd, tmp = tempfile.mkstemp(dir=zone_file.parent, prefix=".rollback-", suffix=".yaml")
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        safe_dump(data, fh)
    os.replace(tmp, zone_file)
