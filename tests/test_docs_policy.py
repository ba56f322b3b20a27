"""docs/policy.md describes every policy file and every field its schema allows (issue 16 item 3).

The field tables are checked against policy/schemas/*.json, both ways: a schema property (at any
depth, through $ref, list items, oneOf branches and keys of your choosing) that the page does not
list fails, and so does a listed field no schema has, or a field marked required that is not (or
the other way round). Every file under policy/ has the section of its kind.
"""

from __future__ import annotations

import fnmatch
import json
import re
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "policy.md"
SCHEMAS = ROOT / "policy" / "schemas"
_HEADING = re.compile(r"^#{2,3} (?P<title>.+)$")
_SCHEMA = re.compile(r"^Schema: (?P<path>policy/schemas/[\w.-]+\.json)$")
_ROW = re.compile(r"^\| `(?P<field>[^`]+)` \| (?P<type>.+?) \| (?P<meaning>.+) \|$")


def _wild(path: str) -> str:
    """`dkim.<domain>.active` and `dkim.<name>.active` are the same field: keys you choose."""
    return re.sub(r"<[^>]*>", "<>", path)


def schema_fields(schema: dict[str, Any]) -> dict[str, bool]:
    """Every property path of a schema, `a.b[].c`, and whether its parent requires it."""
    fields: dict[str, bool] = {}

    def walk(node: Any, prefix: str, seen: frozenset[str]) -> None:
        if not isinstance(node, dict):
            return
        ref = node.get("$ref")
        if isinstance(ref, str) and ref not in seen:
            target: Any = schema
            for part in ref.removeprefix("#/").split("/"):
                target = target[part]
            walk(target, prefix, seen | {ref})
        required = set(node.get("required", []))
        for name, sub in node.get("properties", {}).items():
            path = f"{prefix}.{name}" if prefix else name
            fields[path] = fields.get(path, False) or name in required
            walk(sub, path, seen)
        chosen = list(node.get("patternProperties", {}).values())
        if isinstance(node.get("additionalProperties"), dict):
            chosen.append(node["additionalProperties"])
        for sub in chosen:
            path = f"{prefix}.<>" if prefix else "<>"
            fields.setdefault(path, False)
            walk(sub, path, seen)
        if isinstance(node.get("items"), dict):
            walk(node["items"], prefix + "[]", seen)
        for key in ("oneOf", "anyOf", "allOf"):
            for sub in node.get(key, []):
                walk(sub, prefix, seen)

    walk(schema, "", frozenset())
    return fields


def documented() -> dict[str, tuple[str, dict[str, bool]]]:
    """Schema path -> (the section's title, its fields and whether the page says required)."""
    sections: dict[str, tuple[str, dict[str, bool]]] = {}
    title, schema = "", ""
    for line in DOC.read_text(encoding="utf-8").splitlines():
        if (heading := _HEADING.match(line)) is not None:
            title, schema = heading.group("title").replace("\\", ""), ""
            continue
        if (named := _SCHEMA.match(line)) is not None:
            schema = named.group("path")
            assert schema not in sections, f"two sections for {schema}"
            sections[schema] = (title, {})
            continue
        row = _ROW.match(line)
        if row is not None and schema:
            field = _wild(row.group("field"))
            fields = sections[schema][1]
            assert field not in fields, f"{schema}: {field} listed twice"
            assert row.group("meaning").strip(" .|"), f"{schema}: {field} has no meaning"
            fields[field] = row.group("type").endswith(", required")
    return sections


def test_every_schema_field_is_documented_and_every_documented_field_exists() -> None:
    sections = documented()
    schemas = sorted(p.relative_to(ROOT).as_posix() for p in SCHEMAS.glob("*.schema.json"))
    assert len(schemas) >= 12
    assert sorted(sections) == schemas, "a schema without its section, or a section without one"
    total = 0
    for path in schemas:
        fields = {
            _wild(k): v
            for k, v in schema_fields(json.loads((ROOT / path).read_text(encoding="utf-8"))).items()
        }
        listed = sections[path][1]
        assert set(fields) - set(listed) == set(), f"{path}: fields docs/policy.md does not list"
        assert set(listed) - set(fields) == set(), f"{path}: listed fields the schema does not have"
        wrong = sorted(f for f in fields if fields[f] != listed[f])
        assert wrong == [], f"{path}: 'required' on the page differs from the schema for {wrong}"
        total += len(fields)
    assert total >= 240  # the walk reached nested, referenced and chosen keys


def test_every_policy_file_has_the_section_of_its_kind() -> None:
    titles = [title for title, _ in documented().values()]
    for path in sorted((ROOT / "policy").rglob("*")):
        if path.is_dir() or path.parent == SCHEMAS:
            continue
        name = path.relative_to(ROOT).as_posix()
        # "policy/clients/<client>.yaml" is the pattern of every client profile.
        kinds = [t for t in titles if fnmatch.fnmatch(name, re.sub(r"<[^>]*>", "*", t))]
        assert len(kinds) == 1, f"{name}: sections {kinds}"
    text = DOC.read_text(encoding="utf-8")
    assert "## policy/schemas/*.json" in text


def test_the_page_says_who_may_change_each_file_and_how_an_edit_counts() -> None:
    text = DOC.read_text(encoding="utf-8")
    table = text.split("## Who may change a policy file", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in table.splitlines() if line.startswith("| `policy/")]
    named = {line.split("`")[1] for line in rows}
    kinds = {t for t, _ in documented().values() if t.startswith("policy/")}
    assert named == kinds | {"policy/schemas/*.json"}
    assert all(line.rstrip(" |").endswith("seals it") for line in rows)
    # The mechanism the page describes is the one the code has.
    assert "dmarcops policy seal --key" in text
    gate = (ROOT / "policy" / "gate.yaml").read_text(encoding="utf-8")
    assert re.search(r"policy_change:\n  risk: high\n  needs: \[author, lead\]", gate)
