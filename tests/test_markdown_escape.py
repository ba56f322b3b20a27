"""User and DNS strings are shown, never interpreted, in the markdown plan (a PR comment)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.text.markdown import code, escape


def test_links_images_and_html_are_neutralised() -> None:
    out = escape("[click](https://evil.example) ![img](x) <script>alert(1)</script>")
    assert "[click]" not in out and "\\[click\\]" in out
    assert "<script>" not in out and "\\<script\\>" in out
    assert "\\!\\[img\\]" in out


def test_table_breaking_characters_and_newlines() -> None:
    out = escape("a | b\nc")
    assert "\n" not in out
    # The newline is shown as its escape (text/safe.py), so the table row stays one row.
    assert out == "a \\| b\\\\x0ac"


def test_mentions_do_not_ping() -> None:
    assert "@" not in escape("ask @msp/dns-team")
    assert "&#64;msp/dns\\-team" not in escape("ask @msp/dns-team")  # '-' is left alone
    assert escape("ask @msp/dns-team") == "ask &#64;msp/dns-team"


def test_code_span_survives_backticks_and_pipes() -> None:
    assert code("v=spf1 -all") == "`v=spf1 -all`"
    assert code("a`b") == "``a`b``"
    assert code("`x`") == "`` `x` ``"
    assert code("p=1|2") == "`p=1\\|2`"


def test_terminal_output_never_carries_control_characters() -> None:
    from pipeline.render.text import _short
    from pipeline.text.safe import clean

    hostile = "v=spf1 \x1b[2J\x1b[32mall good\x07 -all"
    assert "\x1b" not in clean(hostile) and "\x07" not in _short(hostile)
    assert clean(hostile) == "v=spf1 \\x1b[2J\\x1b[32mall good\\x07 -all"


def reference_code(text: str) -> str:
    """code() as it was before its fast path: the general form, for every input."""
    import re

    from pipeline.text.safe import clean

    text = clean(text).replace("|", "\\|")
    longest = max((len(m) for m in re.findall(r"`+", text)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if text.startswith("`") or text.endswith("`") or not text else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def reference_escape(text: str) -> str:
    from pipeline.text.safe import clean

    special = "\\`*_{}[]<>#!|~"
    table = {ord(ch): "\\" + ch for ch in special} | {ord("@"): "&#64;"}
    return clean(text).translate(table)


@settings(max_examples=2000, deadline=None)
@given(st.text(st.sampled_from("ab|`@\\*_ \n\x1b\u202e\u00a0é") | st.characters(), max_size=12))
def test_fast_paths_write_what_the_general_form_writes(text: str) -> None:
    """code() and escape() skip work for printable text (audit verify renders every record):
    what they write is the general form's, character for character."""
    assert code(text) == reference_code(text)
    assert escape(text) == reference_escape(text)
