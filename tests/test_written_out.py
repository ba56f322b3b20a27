"""Values audit verify writes out by hand for speed (a ledger head, a UTC time, a window) are
byte for byte what the general form writes: every signature, every record hash and every
markdown comparison of the audit trail was made over the general form's text."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st


@settings(max_examples=300, deadline=None)
@given(
    st.integers(min_value=-(2**70), max_value=2**70) | st.booleans(),
    st.text(alphabet='0123456789abcdefABCDEF\u00e9"\\', min_size=0, max_size=70)
    | st.text(alphabet="0123456789abcdef", min_size=64, max_size=64),
)
def test_a_ledger_head_is_the_canonical_json_of_its_fields(seq: int, digest: str) -> None:
    """The head every ledger signature is made over, written out for speed, is byte for byte
    the canonical JSON signing_bytes writes (else every signature of the ledger fails)."""
    from pipeline.gate.identity import signing_bytes
    from pipeline.records.ledger import head_bytes

    fields = {"ledger": "dmarcops", "seq": seq, "entry_sha256": digest}
    assert head_bytes(seq, digest) == signing_bytes(fields)


@settings(max_examples=300, deadline=None)
@given(st.datetimes(timezones=st.just(UTC)))
def test_utc_times_are_written_as_strftime_writes_them(when: datetime) -> None:
    """format_utc and show_utc take isoformat's path for four-digit years: the same text as
    strftime's, which every record hash was taken over."""
    from pipeline.records.record_base import format_utc, show_utc

    whole = when.replace(microsecond=0)
    assert format_utc(when) == whole.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert show_utc(when) == whole.strftime("%Y-%m-%d %H:%M UTC")


@settings(max_examples=300, deadline=None)
@given(
    st.datetimes(timezones=st.just(UTC)),
    st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=3)),
)
def test_a_window_is_shown_as_strftime_shows_it(start: datetime, length: timedelta) -> None:
    """The seed's window form ("2026-06-09 09:00-12:00 UTC") built from show_utc: the text every
    record's markdown (and so audit verify's comparison) holds."""
    from pipeline.records.record_parts import TimeWindow

    try:
        window = TimeWindow(start, start + length)
    except OverflowError:
        return  # past year 9999
    s, e = window.start, window.end
    if s.date() == e.date():
        assert window.show() == f"{s:%Y-%m-%d %H:%M}-{e:%H:%M} UTC"
    else:
        assert window.show() == f"{s:%Y-%m-%d %H:%M} — {e:%Y-%m-%d %H:%M} UTC"
