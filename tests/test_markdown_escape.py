"""User and DNS strings are shown, never interpreted, in the markdown plan (a PR comment)."""

from __future__ import annotations

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
