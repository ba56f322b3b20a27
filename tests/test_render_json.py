"""The plan's JSON is written by orjson where orjson writes what the standard library writes.

render/json_plan.indented must give `json.dumps(value, indent=2, ensure_ascii=False)` byte for
byte for every value a plan holds: the plan JSON is a contract (workflows and tools read it;
saved plans are compared), so a faster encoder may not change one character of it.
"""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.render.json_plan import indented

# Every code point, lone surrogates included (orjson refuses those: the standard library writes them).
TEXT = st.text(st.characters(), max_size=12)
INTEGERS = st.integers(min_value=-(2**70), max_value=2**70)  # beyond orjson's 64 bits too
SCALARS = st.none() | st.booleans() | INTEGERS | TEXT


def plan_values() -> st.SearchStrategy[object]:
    return st.recursive(
        SCALARS,
        lambda inner: (
            st.lists(inner, max_size=4)
            | st.lists(inner, max_size=3).map(tuple)
            | st.dictionaries(TEXT, inner, max_size=4)
        ),
        max_leaves=25,
    )


@settings(max_examples=500, deadline=None)
@given(plan_values())
def test_indented_is_the_standard_librarys_text(value: object) -> None:
    assert indented(value) == json.dumps(value, indent=2, ensure_ascii=False)


def test_every_code_point_is_written_as_the_standard_library_writes_it() -> None:
    # One string per block of code points, so an escape orjson wrote differently for any one
    # character (C0 controls, DEL, C1, U+2028, a surrogate) would show here.
    for start in range(0, 0x110000, 0x400):
        text = "".join(map(chr, range(start, min(start + 0x400, 0x110000))))
        value = {"k" + text[:3]: [text, {"v": text}]}
        assert indented(value) == json.dumps(value, indent=2, ensure_ascii=False), hex(start)


def test_what_orjson_refuses_still_gets_the_standard_librarys_text() -> None:
    big = {"serial": 2**64, "text": "a\ud800b", "empty": [], "none": {}}
    assert indented(big) == json.dumps(big, indent=2, ensure_ascii=False)
    assert '"serial": 18446744073709551616' in indented(big)
