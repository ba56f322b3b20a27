"""The audit trail's two JSON forms checked fast: the canonical bytes every hash is taken over
(record_base.canonical_bytes) and the indented layout of a record file (record_files._pretty).

`audit verify` re-encodes every record and every ledger line; with the standard library the
indented form goes through its pure-Python encoder, the largest single cost of verifying 50,000
records. orjson writes byte for byte the same forms for JSON without non-integer numbers
(tests/test_fastjson.py checks every code point, key order, nesting and empty containers), so:

- a hash is first taken over orjson's bytes; when it matches, those bytes are the canonical bytes
  the hash was taken over (whatever orjson writes parses back to the value), so the answer is
  exact; a mismatch, or a value orjson refuses (an integer beyond 64 bits, a lone surrogate), is
  decided by the standard library as before;
- the layout is compared with orjson's only when the file held no float, NaN or Infinity (where
  the two encoders write numbers differently, or orjson writes null); otherwise, and on any
  mismatch, with the standard library's.

Either way the verdict is the standard library's; orjson only makes the common case cheap.
"""

from __future__ import annotations

import hashlib

import orjson

from pipeline.records.record_base import sha256_hex
from pipeline.records.record_files import _pretty

_CANONICAL = orjson.OPT_SORT_KEYS
_PRETTY = orjson.OPT_SORT_KEYS | orjson.OPT_INDENT_2


def sha256_is(value: object, expected: str, *, has_floats: bool) -> bool:
    """sha256(canonical_bytes(value)) == expected. `has_floats`: the text `value` was parsed from
    held a non-integer number (pipeline.load.jsonfile.parse_json's `floats`)."""
    if not has_floats:
        try:
            fast = orjson.dumps(value, option=_CANONICAL)
        except (orjson.JSONEncodeError, TypeError):
            pass
        else:
            if hashlib.sha256(fast).hexdigest() == expected:
                return True
    return sha256_hex(value) == expected


def is_pretty(raw: bytes, value: object, *, has_floats: bool) -> bool:
    """`raw` is exactly how dmarcops writes `value` into a record file (record_files._pretty)."""
    if not has_floats:
        try:
            if orjson.dumps(value, option=_PRETTY) + b"\n" == raw:
                return True
        except (orjson.JSONEncodeError, TypeError):
            pass
    return _pretty(value) == raw
