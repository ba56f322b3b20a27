"""Property-based fuzzing of the aggregate-report parser and unpacker: whatever bytes arrive in a
rua mailbox, `unpack` and `parse_report` either return typed values or say why not (Problem,
ReportError); nothing else escapes, and what they return is consistent.

Derandomized and bounded in the suite, like tests/test_fuzz.py; DMARCOPS_FUZZ_PROFILE=night
(scripts/fuzz-night) runs random examples.
"""

from __future__ import annotations

import ipaddress
import os

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from reports_fixtures import GOOGLE, OUTLOOK, RFC9990, YAHOO, gzipped, mbox, report_mail, zipped

from pipeline.reports.model import Report
from pipeline.reports.parse import ReportError, parse_report
from pipeline.reports.unpack import Payload, Problem, UnpackLimits, unpack

NIGHT = os.environ.get("DMARCOPS_FUZZ_PROFILE") == "night"
SEEDS = [p.read_bytes() for p in (GOOGLE, OUTLOOK, YAHOO, RFC9990)]
LIMITS = UnpackLimits(max_xml_bytes=1_000_000, max_depth=4)


def examples(n: int) -> int:
    return n * 20 if NIGHT else n


def fuzz(max_examples: int) -> settings:
    return settings(
        max_examples=examples(max_examples),
        derandomize=not NIGHT,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )


def check(report: Report) -> None:
    """What a returned report promises the store and the summaries."""
    assert report.org_name and report.report_id and report.domain
    assert report.begin <= report.end
    for row in report.rows:
        assert row.count >= 0
        ipaddress.ip_address(row.source_ip)
        assert row.dmarc_pass == (row.dkim_aligned or row.spf_aligned)


def parse_or_reason(data: bytes) -> None:
    try:
        check(parse_report(data))
    except ReportError as exc:
        assert exc.reason


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    """A real report with bytes flipped, cut, repeated or inserted."""
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 6))):
        op = draw(st.sampled_from(["flip", "cut", "insert", "dup"]))
        at = draw(st.integers(0, len(data)))
        if op == "flip" and at < len(data):
            data[at] = draw(st.integers(0, 255))
        elif op == "cut":
            del data[at : at + draw(st.integers(1, 200))]
        elif op == "insert":
            data[at:at] = draw(
                st.sampled_from(
                    [
                        b"<",
                        b"&",
                        b"]]>",
                        b"\x00",
                        b"\xff\xfe",
                        b"<!DOCTYPE x>",
                        b"&lol;",
                        b"<record>",
                        b"</row>",
                        b"-1",
                        b"99999999999999999999",
                        b"\xe9",
                        b"::",
                    ]
                )
            )
        else:
            start = draw(st.integers(0, len(data)))
            data[at:at] = data[start : start + draw(st.integers(1, 400))]
    return bytes(data)


TEXT = st.text(st.characters(blacklist_categories=["Cs"]), max_size=30)


@st.composite
def structured(draw: st.DrawFn) -> bytes:
    """Well-formed reports with hostile values where the parser expects numbers, IPs, domains."""
    from xml.sax.saxutils import escape

    def value(strategy: st.SearchStrategy[str]) -> str:
        return escape(draw(strategy))

    ip = st.one_of(st.ip_addresses().map(str), TEXT)
    number = st.one_of(st.integers(-5, 10**13).map(str), TEXT)
    records = "".join(
        f"<record><row><source_ip>{value(ip)}</source_ip><count>{value(number)}</count>"
        f"<policy_evaluated><disposition>{value(TEXT)}</disposition><dkim>{value(st.sampled_from(['pass', 'fail', 'PASS', '']))}</dkim>"
        f"<spf>{value(st.sampled_from(['pass', 'fail', ' pass ']))}</spf></policy_evaluated></row>"
        f"<identifiers><header_from>{value(TEXT)}</header_from></identifiers>"
        f"<auth_results><dkim><domain>{value(TEXT)}</domain><result>{value(TEXT)}</result></dkim></auth_results></record>"
        for _ in range(draw(st.integers(0, 4)))
    )
    ns = draw(st.sampled_from(["", ' xmlns="urn:ietf:params:xml:ns:dmarc-2.0"']))
    doc = (
        f"<feedback{ns}><report_metadata><org_name>{value(TEXT)}</org_name>"
        f"<report_id>{value(TEXT)}</report_id><date_range><begin>{value(number)}</begin>"
        f"<end>{value(number)}</end></date_range></report_metadata>"
        f"<policy_published><domain>{value(TEXT)}</domain><p>{value(TEXT)}</p></policy_published>"
        f"{records}</feedback>"
    )
    return doc.encode("utf-8")


@fuzz(150)
@given(st.one_of(mutated(), structured(), st.binary(max_size=2000)))
def test_parser_returns_a_report_or_a_reason(data: bytes) -> None:
    parse_or_reason(data)


@fuzz(80)
@given(
    mutated(),
    st.lists(st.sampled_from(["gzip", "zip", "mail", "mbox"]), max_size=3),
    st.integers(0, 64),
)
def test_unpack_any_wrapping_of_any_bytes(data: bytes, wrappers: list[str], cut: int) -> None:
    for wrapper in wrappers:
        if wrapper == "gzip":
            data = gzipped(data)
        elif wrapper == "zip":
            import io
            import zipfile

            out = io.BytesIO()
            with zipfile.ZipFile(out, "w") as archive:
                archive.writestr("r.xml", data)
            data = out.getvalue()
        elif wrapper == "mail":
            data = report_mail("a@b.example", "r", "r.bin", data, "octet-stream")
        else:
            data = mbox(data)
    if cut:
        data = data[:-cut]  # a truncated download or attachment
    for item in unpack("fuzz", data, LIMITS):
        assert isinstance(item, Payload | Problem)
        if isinstance(item, Payload):
            parse_or_reason(item.data)
        else:
            assert item.reason


def test_zipped_seed_round_trips() -> None:
    # The fuzzers' seeds are themselves good reports: a sanity check of the strategies' base.
    items = list(unpack("g.zip", zipped(GOOGLE)))
    assert isinstance(items[0], Payload)
    assert parse_report(items[0].data).messages == 168
