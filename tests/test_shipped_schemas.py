"""The schemas under policy/schemas/ are valid 2020-12 JSON Schemas, and the run-time check that
pipeline/load/shipped_schemas.py lets them skip still catches any other content."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import jsonschema
import pytest

from pipeline.errors import InputError
from pipeline.load import yamlfile
from pipeline.load.shipped_schemas import SHIPPED_SCHEMAS, canonical_schema, is_shipped
from pipeline.load.yamlfile import iter_schema_errors, load_yaml

ROOT = Path(__file__).resolve().parent.parent
SCHEMAS = sorted((ROOT / "policy" / "schemas").glob("*.schema.json"))


def test_every_shipped_schema_is_listed_and_valid() -> None:
    digests = {}
    for path in SCHEMAS:
        schema = json.loads(path.read_text(encoding="utf-8"))
        # What the run no longer checks for these: the 2020-12 meta-schema.
        jsonschema.Draft202012Validator.check_schema(schema)
        digests[path.name] = hashlib.sha256(canonical_schema(schema)).hexdigest()
    assert len(SCHEMAS) == 12
    missing = {name: digest for name, digest in digests.items() if digest not in SHIPPED_SCHEMAS}
    assert not missing, (
        f"policy/schemas/ changed: put these digests in pipeline/load/shipped_schemas.py "
        f"(and drop the old ones): {missing}"
    )
    assert set(digests.values()) == SHIPPED_SCHEMAS, "a digest no schema has any more"


def test_layout_does_not_matter_content_does() -> None:
    schema = json.loads((ROOT / "policy" / "schemas" / "zone.schema.json").read_text())
    assert is_shipped(json.loads(json.dumps(schema, indent=7)))
    schema["additionalProperties"] = True
    assert not is_shipped(schema)


@pytest.mark.parametrize("shipped", [True, False])
def test_edited_schema_is_still_checked_at_run_time(tmp_path: Path, shipped: bool) -> None:
    """A schema that is not one of the shipped ones is refused by name when it is no JSON Schema;
    a shipped one is used without the meta-schema check and judges as before."""
    (tmp_path / ".git").mkdir()
    schema = json.loads((ROOT / "policy" / "schemas" / "roster.schema.json").read_text())
    if not shipped:
        schema["type"] = "no-such-type"  # not a valid 2020-12 schema
    schema_path = tmp_path / "roster.schema.json"
    schema_path.write_text(json.dumps(schema))
    doc_path = tmp_path / "doc.yaml"
    doc_path.write_text("unexpected: 1\n")
    doc = load_yaml(doc_path, root=tmp_path)
    yamlfile._validator.cache_clear()
    yamlfile.load_schema.cache_clear()
    if shipped:
        assert [e.message for e in iter_schema_errors(doc, schema_path)]
        return
    with pytest.raises(InputError) as caught:
        list(iter_schema_errors(doc, schema_path))
    assert "not a valid JSON Schema" in str(caught.value)
    assert caught.value.file == schema_path
