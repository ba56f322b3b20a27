"""pipeline.records.fastjson: orjson answers `audit verify`'s hash and layout checks only where
its bytes are provably the standard library's; everywhere else the standard library decides.

Each test compares the fast answer with the exact one (json's encoder), over values hypothesis
builds: a difference in escaping, key order, nesting, empty containers or numbers would make
`audit verify` accept an edited file or refuse an untouched one.
"""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.errors import InputError
from pipeline.records.fastjson import is_pretty, sha256_is
from pipeline.records.ledger import LedgerEntry
from pipeline.records.record_base import canonical_bytes
from pipeline.records.record_files import _pretty

# Every code point but the lone surrogates (no UTF-8 file can hold one).
TEXT = st.text(st.characters(exclude_categories=("Cs",)), max_size=12)
INTEGERS = st.integers(min_value=-(2**70), max_value=2**70)  # beyond orjson's 64 bits too
SCALARS = st.none() | st.booleans() | INTEGERS | TEXT
FLOATS = st.floats(allow_nan=True, allow_infinity=True)


def json_values(leaves: st.SearchStrategy[object]) -> st.SearchStrategy[object]:
    return st.recursive(
        leaves,
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(TEXT, inner, max_size=4),
        max_leaves=20,
    )


def exact_sha(value: object) -> str:
    return hashlib.sha256(canonical_bytes(value)).hexdigest()


def has_float(value: object) -> bool:
    if isinstance(value, float):
        return True
    if isinstance(value, dict):
        return any(has_float(v) for v in value.values())
    if isinstance(value, list):
        return any(has_float(v) for v in value)
    return False


@settings(max_examples=400, deadline=None)
@given(json_values(SCALARS))
def test_without_floats_orjson_writes_the_standard_librarys_bytes(value: object) -> None:
    raw = _pretty(value)
    assert is_pretty(raw, value, has_floats=False)
    assert sha256_is(value, exact_sha(value), has_floats=False)
    # One byte of layout more, or another value's hash, is refused by the fast path too.
    assert not is_pretty(raw.replace(b"\n", b"\n ", 1), value, has_floats=False)
    assert not sha256_is(value, exact_sha([value]), has_floats=False)


@settings(max_examples=300, deadline=None)
@given(json_values(SCALARS | FLOATS), json_values(SCALARS | FLOATS))
def test_every_answer_is_the_standard_librarys(value: object, other: object) -> None:
    floats = has_float(value)
    for expected in (exact_sha(value), exact_sha(other)):
        assert sha256_is(value, expected, has_floats=floats) == (exact_sha(value) == expected)
    for raw in (_pretty(value), _pretty(other)):
        assert is_pretty(raw, value, has_floats=floats) == (_pretty(value) == raw)


def test_a_null_edited_into_nan_is_not_taken_for_the_recorded_null() -> None:
    """orjson writes NaN as null: the fast path alone would hash an edited NaN as the recorded
    null. The reader notes the NaN, and the standard library (which writes NaN) decides."""
    recorded = {"value": None}
    floats: list[str] = []
    edited = json.loads('{"value": NaN}', parse_constant=lambda s: floats.append(s) or math.nan)
    assert floats == ["NaN"]
    assert not sha256_is(edited, exact_sha(recorded), has_floats=bool(floats))
    # Told wrongly that there were no floats, the fast path would have been fooled: the note is
    # what keeps the answer exact.
    assert sha256_is(edited, exact_sha(recorded), has_floats=False)


def test_a_float_written_in_orjsons_form_is_not_dmarcops_layout() -> None:
    value = {"n": 1e16}
    written = _pretty(value)  # the standard library writes 1e+16
    assert b"1e+16" in written
    edited = written.replace(b"1e+16", b"1e16")
    assert json.loads(edited) == value  # the same content, another layout
    assert not is_pretty(edited, value, has_floats=True)
    assert is_pretty(written, value, has_floats=True)


def test_ledger_lines_note_their_floats() -> None:
    line = (
        '{"actor":"a","at":"2026-06-09T09:23:00Z","entry_sha256":"' + "0" * 64 + '","event":'
        '"policy","format":2,"payload":{"x":PAYLOAD},"prev":"' + "0" * 64 + '",'
        '"record_id":"","record_prev":"","record_sha256":"","seq":1,"signature":"s",'
        '"simulated":false}'
    )
    for payload, floats in (("1", False), ("1.5", True), ("NaN", True), ("-Infinity", True)):
        entry, noted = LedgerEntry.parse(line.replace("PAYLOAD", payload))
        assert noted is floats, payload
        assert repr(entry.payload["x"]) == repr(json.loads(payload)), payload


def stdlib_decode(line: str, *, ledger: bool = True) -> tuple[str, object, bool]:
    """What the ledger reader (or, `ledger` false, pipeline.load.jsonfile.parse_json noting
    floats) answered before orjson: ("ok", value, floats) or ("error", None, False)."""
    floats: list[str] = []

    def noted(text: str) -> float:
        floats.append(text)
        return float(text)

    try:
        value = json.loads(line, parse_float=noted, parse_constant=noted)
    except (ValueError, RecursionError):
        return ("error", None, False)
    if ledger and isinstance(value, dict):
        try:
            canonical_bytes(value)  # a ledger line with a lone surrogate is refused
        except UnicodeEncodeError:
            return ("error", None, False)
    return ("ok", value, bool(floats))


def same_value(a: object, b: object) -> bool:
    """Equal and of the same types all the way down (1 == 1.0 == True would hide a change)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        assert isinstance(b, dict)
        return list(a) == list(b) and all(same_value(a[k], b[k]) for k in a)
    if isinstance(a, list):
        assert isinstance(b, list)
        return len(a) == len(b) and all(same_value(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float):
        return repr(a) == repr(b)
    return a == b


# JSON texts the way a ledger line holds them, and the same texts broken: numbers of every
# form (huge integers, exponents, NaN), escapes (lone surrogates), duplicate keys, stray bytes.
EDITS = st.sampled_from(
    [
        "",
        "1e5",
        "-0",
        "1E400",
        "NaN",
        "18446744073709551616",
        "-9223372036854775809",
        '"\\ud800"',
        '"\ud800"',  # the character itself, not its escape
        '"\\udc00\\ud800"',
        "[",
        "}",
        '{"a":1,"a":2.5}',
        "\x00",
        "\t",
        " 01",
    ]
)


@settings(max_examples=500, deadline=None)
@given(json_values(SCALARS | FLOATS), EDITS, st.integers(min_value=0, max_value=200))
def test_ledger_decoding_is_the_standard_librarys(value: object, edit: str, at: int) -> None:
    """The ledger's and the record files' readers give json's value, float note and refusal for
    every text (a faster decoder put in front of them must keep this: orjson, tried, did not pay
    once its value had to be searched for floats)."""
    from pipeline.load.jsonfile import parse_json
    from pipeline.records.ledger import _decode

    def record_reader(line: str) -> tuple[object, bool]:
        floats: list[str] = []
        value = parse_json(line, Path("r.json"), "record", "hint", floats)
        return value, bool(floats)

    text = json.dumps(value, ensure_ascii=bool(at % 2))
    for line in (text, text[:at] + edit + text[at:], '{"x":' + edit + "}"):
        for reader, ledger in ((_decode, True), (record_reader, False)):
            expected = stdlib_decode(line, ledger=ledger)
            try:
                got = ("ok", *reader(line))
            except (ValueError, InputError):
                got = ("error", None, False)
            assert got[0] == expected[0], line
            assert got[2] == expected[2], line
            assert same_value(got[1], expected[1]), line
