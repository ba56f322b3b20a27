"""YAML text parsed safely into a YamlDocument: duplicate keys refused, aliases and nesting
within budget, every node's line kept so that an error can name it.

The parse of text already read; yamlfile.py reads the file (through files.py) and checks schemas.
Its own module because files.py parses policy/settings.yaml's input limits with it, below the
reader that yamlfile.py is built on.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import yaml

from pipeline.errors import InputError
from pipeline.load.limits import Limits

JsonPath = tuple[str | int, ...]

# No zone, policy or request file nests more than a handful of levels; the same bound as JSON
# (pipeline.load.jsonfile.MAX_JSON_DEPTH).
MAX_YAML_DEPTH = 64


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

    def date(self, where: JsonPath, text: Any) -> date:
        """The date `text` written at `where` (YYYY-MM-DD), or an InputError naming its line."""
        try:
            return date.fromisoformat(str(text))
        except ValueError:
            raise self.error(
                where, f"{text!r} is not a date", hint="Write dates as YYYY-MM-DD."
            ) from None


# libyaml's parser when present (about ten times faster on a large portfolio); same safe constructors.
_Base: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _Loader(_Base):  # type: ignore[valid-type,misc]
    """A safe loader that keeps dates as text: the JSON Schemas check them as strings."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def _walk(node: yaml.Node, here: JsonPath, lines: dict[JsonPath, int], path: Path) -> None:
    # The graph is acyclic here: _alias_problem refused a cycle (`a: &x [*x]`) at its anchor.
    lines[here] = node.start_mark.line + 1
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
            _walk(value_node, (*here, key), lines, path)
            lines[(*here, key)] = line
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _walk(item, (*here, i), lines, path)


def _alias_problem(node: yaml.Node, limits: Limits) -> tuple[str, yaml.Node | None] | None:
    """Too many aliases, aliases that would expand too far, or nesting deeper than
    MAX_YAML_DEPTH, found without expanding anything.

    libyaml's composer gives an alias the very node of its anchor, so the document is a graph in
    which a node reached by n edges was aliased n - 1 times. Each node's expanded size (what the
    line walk, the schema check and every consumer would traverse) is computed once, from its
    children's: a 1.4 KB "billion laughs" file is judged in microseconds instead of growing to
    gigabytes.
    """
    sizes: dict[int, int] = {}
    open_nodes: set[int] = set()
    edges = 0
    # Iterative post-order: a deeply nested file must not hit Python's recursion limit here.
    stack: list[tuple[yaml.Node, bool, int]] = [(node, False, 1)]
    while stack:
        current, children_done, depth = stack.pop()
        if depth > MAX_YAML_DEPTH:
            # Everything after this (the line walk, the constructor, jsonschema, octoDNS) walks
            # the tree recursively: ~990 levels were a RecursionError (a crash) before.
            return (f"the YAML nests more than {MAX_YAML_DEPTH} levels deep", current)
        key = id(current)
        children = _children(current)
        if children_done:
            sizes[key] = 1 + sum(sizes[id(c)] for c in children)
            open_nodes.discard(key)
            continue
        if key in sizes:
            continue  # a second path to a finished node: counted through `edges`
        if key in open_nodes:
            # `a: &x [*x]`: a cycle, which no zone or policy value can be; named at its anchor.
            return (
                "the value anchored here holds an alias to itself (a recursive structure)",
                current,
            )
        open_nodes.add(key)
        edges += len(children)
        stack.append((current, True, depth))
        stack.extend((c, False, depth + 1) for c in reversed(children) if id(c) not in sizes)
    aliases = edges - (len(sizes) - 1)
    if aliases > limits.max_yaml_aliases:
        return (
            f"the file uses {aliases} YAML aliases (*name), over the limit of "
            f"{limits.max_yaml_aliases}",
            None,
        )
    added = sizes[id(node)] - len(sizes)
    if added > limits.max_yaml_alias_nodes:
        return (
            f"YAML aliases expand the document by {added} nodes, over the limit of "
            f"{limits.max_yaml_alias_nodes}",
            None,
        )
    return None


def _depth_problem(node: yaml.Node) -> tuple[str, yaml.Node] | None:
    """_alias_problem for a document without anchors (no `&` in its text), the usual case: no
    alias can exist, so the nodes form a tree and only the depth is left to check. The same
    walk in the same order (the first node too deep, in document order), without the sizes and
    the cycle bookkeeping that a graph needs."""
    stack: list[tuple[yaml.Node, int]] = [(node, 1)]
    while stack:
        current, depth = stack.pop()
        if depth > MAX_YAML_DEPTH:
            return (f"the YAML nests more than {MAX_YAML_DEPTH} levels deep", current)
        if isinstance(current, yaml.MappingNode | yaml.SequenceNode):
            stack.extend((c, depth + 1) for c in reversed(_children(current)))
    return None


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


def parse_yaml(text: str, path: Path, limits: Limits) -> YamlDocument:
    """`text`, the content of `path`, parsed safely with its aliases within `limits`; every
    problem an InputError naming the file and line."""
    try:
        # One parse: the node tree gives the lines, the same tree gives the data.
        loader = _Loader(text)
        try:
            node = loader.get_single_node()
            if node is not None:
                # An alias needs an anchor, and an anchor is written with `&`.
                problem = _alias_problem(node, limits) if "&" in text else _depth_problem(node)
                if problem is not None and problem[1] is not None:
                    mark = problem[1].start_mark
                    deep = problem[0].startswith("the YAML nests")
                    raise InputError(
                        f"refused: {problem[0]}" if deep else problem[0],
                        file=path,
                        line=mark.line + 1,
                        column=mark.column + 1,
                        hint="Flatten the structure: no dmarcops file nests more than a few levels."
                        if deep
                        else "Remove the alias (*name) or move it out of its own anchor's value.",
                    )
                if problem is not None:
                    raise InputError(
                        f"refused: {problem[0]}",
                        file=path,
                        hint="Write the values out instead of aliasing them, or raise "
                        "input_limits.max_yaml_aliases / max_yaml_alias_nodes in "
                        "policy/settings.yaml if the file is genuine.",
                    )
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
    except RecursionError:
        # Constructing thousands of nested flow collections recurses in PyYAML's constructor.
        raise InputError(
            "refused: the YAML nests too deeply", file=path, hint="Flatten the structure."
        ) from None
    except ValueError as exc:
        # PyYAML's int() of a number with thousands of digits (Python's int limit), and the like.
        raise InputError(
            f"refused: a value cannot be read ({exc})".split("; use")[0],
            file=path,
            hint="No dmarcops file holds numbers that long: remove it or quote it as text.",
        ) from None
    lines: dict[JsonPath, int] = {}
    if node is not None:
        _walk(node, (), lines, path)
    return YamlDocument(path=path, data=data, lines=lines)
