"""pipeline/load/zone_schema.py passes a zone file without jsonschema only when jsonschema would
find nothing: checked on generated documents near the schema's edges (wrong types, bools for
integers, float TTLs, both or neither of value/values, names the pattern refuses, empty lists),
and on the shipped schema being the one the module knows. An edited schema always goes to
jsonschema.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from portfolio import REPO, copy_example, write

from pipeline.load.portfolio import ZoneFile
from pipeline.load.shipped_schemas import canonical_schema
from pipeline.load.yamlfile import load_yaml
from pipeline.load.zone_schema import ZONE_SCHEMA_SHA256, plainly_valid
from pipeline.load.zones import check_zone_file

SCHEMA = REPO / "policy" / "schemas" / "zone.schema.json"
NIGHT = bool(os.environ.get("DMARCOPS_FUZZ_NIGHT"))
VALIDATOR = jsonschema.Draft202012Validator(json.loads(SCHEMA.read_text(encoding="utf-8")))

names = st.one_of(
    st.sampled_from(
        ["", "*", "_dmarc", "s1._domainkey", "mta-sts", "_smtp._tls", "a.b", "x_", "*.a", "a."]
    ),
    st.sampled_from([".a", "a b", "-x", "x\n", "é", 0, 1]),
    st.text(alphabet="ab_.-*\n ", max_size=4),
)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-2, 2**31 + 1),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=4),
    st.sampled_from(["TXT", "CNAME", "A", "AAAA", "NS", "MX", "txt"]),
)
records = st.dictionaries(
    st.sampled_from(["type", "value", "values", "ttl", "octodns", "extra"]),
    st.one_of(
        scalars,
        st.lists(st.one_of(st.text(max_size=3), st.integers(0, 3)), max_size=2),
        st.dictionaries(st.text(max_size=2), scalars, max_size=1),
    ),
    max_size=5,
)
# Mostly well-formed records (so that True answers are common), with the edges above mixed in.
good_records = st.fixed_dictionaries(
    {"type": st.sampled_from(["TXT", "CNAME", "A", "AAAA", "NS"])},
    optional={"ttl": st.integers(0, 2**31 - 1), "octodns": st.just({})},
).flatmap(
    lambda r: st.one_of(
        st.builds(lambda v: {**r, "value": v}, st.text(max_size=5)),
        st.builds(
            lambda v: {**r, "values": v}, st.lists(st.text(max_size=3), min_size=1, max_size=2)
        ),
    )
)
# A good record with one thing wrong, or one that looks wrong and is not: the edges themselves.
DEFECTS = [
    {"ttl": True},
    {"ttl": 3600.0},
    {"ttl": -1},
    {"ttl": 2**31},
    {"ttl": "3600"},
    {"value": "x", "values": ["x"]},
    {"values": []},
    {"values": ["x", 1]},
    {"values": "x"},
    {"value": None},
    {"type": "MX"},
    {"type": None},
    {"octodns": []},
    {"octodns": {"healthcheck": {}}},
    {"extra": 1},
]
edged = st.builds(lambda r, d: {**r, **d}, good_records, st.sampled_from(DEFECTS))
any_record = st.one_of(good_records, edged, records)


def weighted(*choices: tuple[int, st.SearchStrategy[Any]]) -> st.SearchStrategy[Any]:
    """One of the strategies, each as often as its weight (st.one_of merges repeated ones)."""
    return st.sampled_from([s for weight, s in choices for _ in range(weight)]).flatmap(lambda s: s)


# Mostly good records (a document is plainly valid only when all of them are), one edge at a time.
values = weighted(
    (6, good_records),
    (2, st.lists(weighted((3, good_records), (1, edged)), max_size=2)),
    (2, edged),
    (1, records),
    (1, scalars),
)
# Mostly mappings of names to records: the documents whose answer is worth checking.
documents = weighted((8, st.dictionaries(names, values, max_size=2)), (1, st.none()), (1, scalars))


@settings(
    max_examples=4000 if NIGHT else 400,
    derandomize=not NIGHT,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(data=documents)
def test_plainly_valid_means_jsonschema_finds_nothing(data: Any) -> None:
    if plainly_valid(data, SCHEMA):
        assert list(VALIDATOR.iter_errors(data)) == []


def test_the_shipped_schema_is_the_one_the_module_knows() -> None:
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))

    assert hashlib.sha256(canonical_schema(schema)).hexdigest() == ZONE_SCHEMA_SHA256


def test_every_example_zone_file_is_plainly_valid() -> None:
    # Otherwise the fast path would serve nobody: a real zone file must not need jsonschema.
    files = sorted((REPO / "zones").glob("*/*.yaml"))

    assert files
    assert [f.name for f in files if not plainly_valid(load_yaml(f).data, SCHEMA)] == []


@pytest.mark.parametrize("defect", DEFECTS)
def test_each_edge_alone_is_judged_as_jsonschema_does(defect: dict[str, Any]) -> None:
    for record in ({"type": "TXT", "value": "x"}, {"type": "TXT", "values": ["x"]}):
        document = {"_dmarc": {**record, **defect}}
        # Plainly valid exactly when valid (the shortcut serves every plain record, and nothing
        # invalid), except a float TTL: 2020-12 counts 3600.0 as an integer, jsonschema judges.
        plain = VALIDATOR.is_valid(document) and type(defect.get("ttl")) is not float
        assert plainly_valid(document, SCHEMA) == plain, document


def test_the_edges_go_to_jsonschema() -> None:
    txt = {"type": "TXT", "value": "v=spf1 -all"}
    assert plainly_valid({"": txt}, SCHEMA)
    assert plainly_valid(None, SCHEMA)
    assert not plainly_valid({"": {**txt, "ttl": True}}, SCHEMA)  # a bool is no TTL here
    assert not plainly_valid({"": {**txt, "ttl": 3600.0}}, SCHEMA)  # jsonschema's to judge
    assert not plainly_valid({"": {**txt, "values": ["x"]}}, SCHEMA)  # both: oneOf fails
    assert not plainly_valid({"": []}, SCHEMA)
    assert not plainly_valid({"a b": txt}, SCHEMA)
    assert not plainly_valid({1: txt}, SCHEMA)


def test_an_edited_schema_is_checked_by_jsonschema(tmp_path: Path) -> None:
    root = copy_example(tmp_path / "repo")
    schema_path = root / "policy" / "schemas" / "zone.schema.json"
    schema = json.loads(schema_path.read_text(encoding="utf-8"))
    schema["$defs"]["record"]["properties"]["type"]["enum"] = ["TXT"]  # CNAME no longer allowed
    schema_path.write_text(json.dumps(schema), encoding="utf-8")
    zone = write(
        root / "zones" / "fabrikam-labs" / "fabrikam.example.yaml",
        "---\ns1._domainkey:\n  type: CNAME\n  value: s1.dkim.mailhost.example.net.\n",
    )

    assert not plainly_valid(load_yaml(zone).data, schema_path)
    problems = check_zone_file(ZoneFile("fabrikam-labs", "fabrikam.example", zone), schema_path)
    assert [p.line for p in problems] == [3]
    assert "'CNAME' is not one of ['TXT']" in problems[0].message
