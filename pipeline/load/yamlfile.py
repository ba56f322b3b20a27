"""YAML with line numbers: safe loading, duplicate keys refused, JSON Schema errors mapped to lines.

Every YAML file the pipeline reads goes through `load_yaml`, so every input error can name the file
and the line (docs/exit-codes.md, "Where an error points").
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema

from pipeline.errors import InputError
from pipeline.load.files import configured_limits, find_root, read_text
from pipeline.load.limits import Limits
from pipeline.load.shipped_schemas import is_shipped
from pipeline.load.yamltext import MAX_YAML_DEPTH, JsonPath, YamlDocument, parse_yaml

__all__ = [
    "MAX_YAML_DEPTH",
    "JsonPath",
    "YamlDocument",
    "check_schema",
    "iter_schema_errors",
    "load_schema",
    "load_yaml",
]


def load_yaml(
    path: Path, *, root: Path | None = None, limits: Limits | None = None
) -> YamlDocument:
    """A YAML file read through pipeline.load.files (regular file, inside the repository, within
    the size limit), parsed safely, with its aliases within budget and every node's line."""
    root = root if root is not None else find_root(path)
    limits = limits if limits is not None else configured_limits(root)
    text = read_text(path, root=root, limit=limits.max_file_bytes)
    return parse_yaml(text, path, limits)


@cache
def load_schema(path: Path) -> dict[str, Any]:
    from pipeline.load.jsonfile import parse_json  # imports this module's neighbour, not us

    loaded = parse_json(read_text(path), path, "not a JSON Schema", _SCHEMA_HINT)
    if not isinstance(loaded, dict):
        raise InputError("not a JSON Schema: not a JSON object", file=path, hint=_SCHEMA_HINT)
    return loaded


def _describe(error: jsonschema.ValidationError) -> str:
    where = "/".join(str(p) for p in error.absolute_path) or "the top level"
    if error.validator == "additionalProperties":
        return f"{error.message} (at {where})"
    if error.validator == "required":
        return f"{error.message} (at {where})"
    return f"{where}: {error.message}"


_SCHEMA_HINT = "The schemas under policy/schemas/ ship with dmarcops: restore this one from git."


@cache
def _validator(schema_path: Path) -> Any:
    # Built once per schema: a portfolio checks a thousand zone files against the same one.
    schema = load_schema(schema_path)
    if is_shipped(schema):
        # Checked by tests/test_shipped_schemas.py instead (pipeline/load/shipped_schemas.py).
        return jsonschema.Draft202012Validator(schema)
    try:
        # A schema is a repository file too: one that is not a valid JSON Schema (an unknown
        # type name, a bad pattern) would otherwise fail inside jsonschema mid-validation.
        jsonschema.Draft202012Validator.check_schema(schema)
    except jsonschema.exceptions.SchemaError as exc:
        where = "/".join(str(p) for p in exc.absolute_path) or "the top level"
        raise InputError(
            f"not a valid JSON Schema: {where}: {exc.message}", file=schema_path, hint=_SCHEMA_HINT
        ) from None
    return jsonschema.Draft202012Validator(schema)


def iter_schema_errors(doc: YamlDocument, schema_path: Path) -> Iterator[InputError]:
    validator = _validator(schema_path)
    try:
        found = list(validator.iter_errors(doc.data))
    except (jsonschema.exceptions.UnknownType, re.error, RecursionError) as exc:
        # What check_schema lets through but validation trips on (a pattern Python's re cannot
        # compile): the schema's fault, named as such.
        message = str(exc).split("\n")[0]
        raise InputError(
            f"the JSON Schema cannot be used: {message}", file=schema_path, hint=_SCHEMA_HINT
        ) from None
    errors = sorted(found, key=lambda e: doc.line_of(tuple(e.path)) or 0)
    for error in errors:
        if error.validator in ("oneOf", "anyOf") and error.context:
            # "not valid under any of the given schemas" helps nobody: show the closest branch.
            error = jsonschema.exceptions.best_match(error.context)
        where: JsonPath = tuple(error.absolute_path)
        if error.validator == "additionalProperties" and isinstance(error.instance, dict):
            # Point at the unknown key itself, not the mapping that holds it.
            allowed = set(error.schema.get("properties", {}))
            unknown = [k for k in error.instance if k not in allowed]
            if unknown:
                where = (*where, unknown[0])
        yield doc.error(
            where,
            _describe(error),
            hint=f"{schema_path.name} describes what this file may hold.",
        )


def check_schema(doc: YamlDocument, schema_path: Path) -> None:
    for error in iter_schema_errors(doc, schema_path):
        raise error
