"""JSON files dmarcops reads (approvals, change records, plan files, pending changes, events):
through pipeline.load.files (regular file, inside the repository unless named on the command line,
within the size limit), parsed with line and column on a syntax error, nesting bounded.

Nesting is bounded: json.loads itself stops at Python's recursion limit (a RecursionError, a
crash), and code that walks a parsed value recursively (hashing, canonical JSON, from_json) may
stop earlier than that. No file dmarcops writes nests more
than a handful of levels.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

from pipeline.errors import InputError, json_syntax_error
from pipeline.load.files import read_text

MAX_JSON_DEPTH = 64


def _depth(value: Any) -> int:
    """How deeply lists and objects nest in a parsed value (iterative: no recursion limit)."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        current, level = stack.pop()
        if isinstance(current, dict):
            children: Any = current.values()
        elif isinstance(current, list):
            children = current
        else:
            continue
        deepest = max(deepest, level)
        if deepest > MAX_JSON_DEPTH:
            break
        stack.extend((child, level + 1) for child in children)
    return deepest


class NotingDecoder(json.JSONDecoder):
    """json.loads, noting the numbers that are not integers (NaN and Infinity too): the hooks run
    only for those, so a line without any costs nothing more."""

    def __init__(self) -> None:
        self.floats: list[str] = []
        super().__init__(parse_float=self._noted, parse_constant=self._noted)

    def _noted(self, number: str) -> float:
        self.floats.append(number)
        return float(number)


_decoders = threading.local()  # apply verifies on threads: each its own list of numbers


def noting_decoder() -> NotingDecoder:
    """This thread's NotingDecoder (its list of numbers emptied by the caller before use)."""
    decoder: NotingDecoder | None = getattr(_decoders, "decoder", None)
    if decoder is None:
        decoder = _decoders.decoder = NotingDecoder()
    return decoder


def _too_deep(path: Path, what: str, hint: str) -> InputError:
    return InputError(
        f"{what}: refused: the JSON nests more than {MAX_JSON_DEPTH} levels deep",
        file=path,
        hint=hint,
    )


def parse_json(text: str, path: Path, what: str, hint: str, floats: list[str] | None = None) -> Any:
    """`text` as JSON, or an InputError naming the file, line and column, `what` it should be and
    `hint` (what to do). `floats`, when given, receives the text of every number that is not an
    integer (NaN and Infinity included): a caller that re-encodes the value knows whether the
    encoders it compares can differ (they agree on everything else)."""
    try:
        if floats is None:
            value = json.loads(text)
        else:
            decoder = noting_decoder()
            decoder.floats.clear()
            value = decoder.decode(text)
            floats.extend(decoder.floats)
    except json.JSONDecodeError as exc:
        raise json_syntax_error(exc, path, what, hint) from None
    except RecursionError:  # thousands of levels: the parser itself gives up
        raise _too_deep(path, what, hint) from None
    except ValueError as exc:  # an integer of thousands of digits (Python's int limit)
        raise InputError(
            f"{what}: refused: a value cannot be read ({exc})".split("; use")[0],
            file=path,
            hint=hint,
        ) from None
    # No value nests deeper than the text has brackets: most files need no walk at all.
    if text.count("[") + text.count("{") > MAX_JSON_DEPTH and _depth(value) > MAX_JSON_DEPTH:
        raise _too_deep(path, what, hint)
    return value


def load_json(
    path: Path,
    *,
    what: str,
    hint: str,
    root: Path | None = None,
    outside_ok: bool = False,
    log: bool = False,
) -> Any:
    """A JSON file read safely (pipeline.load.files.read_text) and parsed by parse_json."""
    text = read_text(path, root=root, outside_ok=outside_ok, log=log)
    return parse_json(text, path, what, hint)
