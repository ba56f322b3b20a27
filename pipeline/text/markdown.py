"""Escaping for markdown: every string that came from a user or from DNS goes through here."""

from __future__ import annotations

import re

from pipeline.text.safe import clean

# Characters that start emphasis, code, links, images, HTML, tables, headings or strike-through.
_SPECIAL = "\\`*_{}[]<>#!|~"
_ESCAPES = {ord(ch): "\\" + ch for ch in _SPECIAL} | {ord("@"): "&#64;"}
_BACKTICKS = re.compile(r"`+")


def escape(text: str) -> str:
    """Plain text shown as-is in markdown (and in a GitHub comment): no links, no HTML, no tables."""
    # Control, bidi and invisible characters first (text/safe.py): their escapes are then
    # markdown-escaped like any other backslash, so GitHub shows them as written.
    # One pass in C (every record's markdown is re-rendered by `audit verify`): each special
    # character backslashed, and "@" as an entity, so "@team" in a user's string never pings
    # anyone in a GitHub comment.
    return (text if text.isprintable() else clean(text)).translate(_ESCAPES)


def code(text: str) -> str:
    """An inline code span that survives backticks and pipes inside the value."""
    if text.isprintable() and text and "`" not in text:  # most values: one span, one backtick
        return "`" + text.replace("|", "\\|") + "`"
    text = clean(text).replace("|", "\\|")
    longest = max((len(m) for m in _BACKTICKS.findall(text)), default=0) if "`" in text else 0
    fence = "`" * (longest + 1)
    pad = " " if text.startswith("`") or text.endswith("`") or not text else ""
    return f"{fence}{pad}{text}{pad}{fence}"
