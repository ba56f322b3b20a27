"""The one way a string from a user, a file or DNS reaches a terminal, a log or a comment.

A TXT value, a record name, a client's display name or a change request's rationale can carry an
escape sequence (ESC [2J clears the reviewer's screen, ESC ]8 makes a link), a carriage return that
overwrites the line it is on, a bell, a C1 control (U+009B is CSI on some terminals), a bidi override
(U+202E shows "lave" for "eval") or a zero-width character that makes two names look the same.
`clean` shows every such character as a visible escape instead; `shown` also quotes a value whose
edges or content could mislead. The markdown escaper (text/markdown.py), the terminal plan
(render/text.py), the JSON plan (render/json_plan.py) and every error message
(errors.DmarcopsError) go through here.
"""

from __future__ import annotations

import json


def _escape_char(ch: str) -> str:
    point = ord(ch)
    if point < 0x100:
        return f"\\x{point:02x}"
    if point < 0x10000:
        return f"\\u{point:04x}"
    return f"\\U{point:08x}"


def clean(text: str) -> str:
    """`text` with every character that is not printable shown as \\xNN, \\uNNNN or \\UNNNNNNNN.

    "Not printable" is Python's str.isprintable: the categories Cc (C0, DEL, C1 controls), Cf
    (format: bidi overrides and isolates, zero-width space/joiners, BOM, soft hyphen), Cs
    (surrogates), Co (private use), Cn (unassigned), Zl and Zp (line and paragraph separators) and
    every space other than the ASCII one (no-break space looks like a space and is not one).
    """
    if text.isprintable():  # the common case, checked in C
        return text
    return "".join(ch if ch.isprintable() else _escape_char(ch) for ch in text)


def misleads(text: str) -> bool:
    """True when the value needs quotes to be read right: empty, spaces at an edge, or escapes."""
    return not text or text != text.strip(" ") or not text.isprintable()


def shown(text: str) -> str:
    """A name or value for prose: clean, and in double quotes when it could mislead."""
    escaped = clean(text)
    if misleads(text):
        return '"' + escaped.replace('"', '\\"') + '"'
    return escaped


class _JsonEscapes(dict[int, str]):
    """str.translate's table for json_text: each character to itself, or to its \\uXXXX escape
    when it is not printable. Filled as characters are first seen (Unicode has 1.1 million code
    points), so every later lookup is a dict hit inside str.translate's C loop."""

    def __missing__(self, point: int) -> str:
        ch = chr(point)
        # ensure_ascii gives the \\uXXXX form (a surrogate pair above the BMP).
        self[point] = ch if ch.isprintable() or ch == "\n" else json.dumps(ch)[1:-1]
        return self[point]


_JSON_ESCAPES = _JsonEscapes()


def json_text(text: str) -> str:
    """JSON text (from json.dumps) with every non-printable character as a \\uXXXX escape.

    json.dumps escapes only C0 controls; with ensure_ascii=False it writes C1 controls, bidi
    overrides and line separators as they are. Outside strings JSON holds only spaces and newlines,
    so the escapes land inside strings, where they are valid JSON for the same character.
    """
    if text.isprintable():
        return text
    # Line by line: a plan's JSON is thousands of lines and the odd character is in few of them;
    # isprintable keeps the others whole, in C, and only the rest go through the table.
    return "\n".join(
        line if line.isprintable() else line.translate(_JSON_ESCAPES) for line in text.split("\n")
    )
