"""YAML with line numbers: safe loading, duplicate keys refused, JSON Schema errors mapped to lines.

Every YAML file the pipeline reads goes through `load_yaml`, so every input error can name the file
and the line (product.md: "the message names the file and line").
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from pipeline.errors import InputError

JsonPath = tuple[str | int, ...]


@dataclass(frozen=True)
class YamlDocument:
    path: Path
    data: Any
    lines: dict[JsonPath, int] = field(default_factory=dict)

    def line_of(self, where: JsonPath) -> int | None:
        """The line of the deepest node of `where` that exists (1-based)."""
        for cut in range(len(where), -1, -1):
            line = self.lines.get(where[:cut])
            if line is not None:
                return line
        return None

    def error(self, where: JsonPath, message: str, hint: str = "") -> InputError:
        return InputError(message, file=self.path, line=self.line_of(where), hint=hint)


# libyaml's parser when present (about ten times faster on a large portfolio); same safe constructors.
_Base: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _Loader(_Base):  # type: ignore[valid-type,misc]
    """A safe loader that keeps dates as text: the JSON Schemas check them as strings."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def _walk(
    node: yaml.Node,
    here: JsonPath,
    lines: dict[JsonPath, int],
    path: Path,
    inside: frozenset[int] = frozenset(),
) -> None:
    lines[here] = node.start_mark.line + 1
    if id(node) in inside:
        # `a: &x [*x]`: an alias inside its own anchor makes the node graph a cycle, which no
        # zone or policy value can be (and which walked for ever, a RecursionError, before).
        raise InputError(
            "the value anchored here holds an alias to itself (a recursive structure)",
            file=path,
            line=node.start_mark.line + 1,
            column=node.start_mark.column + 1,
            hint="Remove the alias (*name) or move it out of its own anchor's value.",
        )
    inside = inside | {id(node)}
    if isinstance(node, yaml.MappingNode):
        seen: dict[str, int] = {}
        for key_node, value_node in node.value:
            key = str(key_node.value)
            line = key_node.start_mark.line + 1
            if key in seen:
                raise InputError(
                    f"duplicate key {key!r} (first at line {seen[key]})",
                    file=path,
                    line=line,
                    hint="Merge the two entries into one: YAML keeps only the last silently.",
                )
            seen[key] = line
            _walk(value_node, (*here, key), lines, path, inside)
            lines[(*here, key)] = line
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _walk(item, (*here, i), lines, path, inside)


def load_yaml(path: Path) -> YamlDocument:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise InputError(f"cannot read the file: {exc.strerror}", file=path) from None
    except UnicodeDecodeError:
        raise InputError("the file is not UTF-8 text", file=path) from None
    try:
        # One parse: the node tree gives the lines, the same tree gives the data.
        loader = _Loader(text)
        try:
            node = loader.get_single_node()
            data = loader.construct_document(node) if node is not None else None
        finally:
            loader.dispose()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        raise InputError(
            f"YAML syntax error: {exc.problem or exc.context}",
            file=path,
            line=mark.line + 1 if mark else None,
            column=mark.column + 1 if mark else None,
            hint="Check indentation and quoting on that line.",
        ) from None
    except yaml.YAMLError as exc:
        raise InputError(f"YAML syntax error: {exc}", file=path) from None
    lines: dict[JsonPath, int] = {}
    if node is not None:
        _walk(node, (), lines, path)
    return YamlDocument(path=path, data=data, lines=lines)


@cache
def load_schema(path: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return loaded


def _describe(error: jsonschema.ValidationError) -> str:
    where = "/".join(str(p) for p in error.absolute_path) or "the top level"
    if error.validator == "additionalProperties":
        return f"{error.message} (at {where})"
    if error.validator == "required":
        return f"{error.message} (at {where})"
    return f"{where}: {error.message}"


@cache
def _validator(schema_path: Path) -> Any:
    # Built once per schema: a portfolio checks a thousand zone files against the same one.
    return jsonschema.Draft202012Validator(load_schema(schema_path))


def iter_schema_errors(doc: YamlDocument, schema_path: Path) -> Iterator[InputError]:
    validator = _validator(schema_path)
    errors = sorted(validator.iter_errors(doc.data), key=lambda e: doc.line_of(tuple(e.path)) or 0)
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
