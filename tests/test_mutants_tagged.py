"""The shared parts of the record rules: tag lists (RFC 6376 3.2), the version tag, URI lists and
domain names, RRset helpers, the owned-kind map (README: zone files hold only what the pipeline
owns), TLS-RPT (T1 in docs/rules.md), the default SPF budget, and the rules document behind
`dmarcops explain`. Exact results, so a mutation of any of them fails a test. Found by mutation
testing (docs/mutation-testing.md)."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest

# The modules are named in the case strings below, which the test evaluates.
from pipeline.diff import dmarc, kinds, rrset, tlsrpt  # noqa: F401
from pipeline.diff import taglist as tl  # noqa: F401
from pipeline.diff.context import ZoneContext
from pipeline.diff.errors import RecordSyntaxError
from pipeline.diff.explain import RuleEntry, render_entry, rule_entries
from pipeline.diff.taglist import Tag
from pipeline.diff.tlsrpt import TlsRptRecord
from pipeline.model import Finding, RecordKind, Severity, fact

C = ZoneContext("example.com")
R = "v=TLSRPTv1; rua=mailto:tls@example.com"


def err(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> tuple[Any, ...]:
    """("ok", result) or ("error", code, message): what a validator turns into a finding."""
    try:
        return ("ok", fn(*args, **kwargs))
    except RecordSyntaxError as e:
        return ("error", e.code, e.message)


CASES = [
    (
        'tl.parse_tag_list(" a = 1 ; B=2;; c= ;", "X1")',
        (Tag(name="a", value="1"), Tag(name="B", value="2"), Tag(name="c", value="")),
    ),
    (
        'tl.parse_tag_list("A=1; b=2", "X1", lower_names=True)',
        (Tag(name="a", value="1"), Tag(name="b", value="2")),
    ),
    (
        'err(tl.parse_tag_list, "a=1; a=2", "X1")',
        ("error", "X1", "tag 'a' appears twice; receivers reject the record"),
    ),
    (
        'err(tl.parse_tag_list, "A=1; a=2", "X1", lower_names=True)',
        ("error", "X1", "tag 'a' appears twice; receivers reject the record"),
    ),
    (
        'err(tl.parse_tag_list, "a=1; junk ;", "X2")',
        ("error", "X2", "'junk' is not a tag=value pair"),
    ),
    ('err(tl.parse_tag_list, "a=1; =2", "X2")', ("error", "X2", "'=2' is not a tag=value pair")),
    (
        'err(tl.parse_tag_list, "v=STSv1; id =1", "M1", strict=True)',
        ("error", "M1", "'id =1': no spaces are allowed around '=' in this record; write id=1"),
    ),
    (
        'err(tl.parse_tag_list, "v=STSv1; id= 1", "M1", strict=True)',
        ("error", "M1", "'id= 1': no spaces are allowed around '=' in this record; write id=1"),
    ),
    (
        'tl.parse_tag_list("v=STSv1 ;  id=1 ", "M1", strict=True)',
        (Tag(name="v", value="STSv1"), Tag(name="id", value="1")),
    ),
    ('str(tl.Tag("p", "reject"))', "p=reject"),
    ('tl.tag_value(tl.parse_tag_list("a=1; b=2; b2=3", "X"), "b")', "2"),
    ('tl.tag_value(tl.parse_tag_list("a=1", "X"), "b")', None),
    (
        'err(tl.require_version, " v=DMARC1", tl.parse_tag_list("v=DMARC1", "D1"), "DMARC1", "D1")',
        (
            "error",
            "D1",
            "the record starts with whitespace before v=DMARC1; receivers ignore it otherwise: remove the leading whitespace",
        ),
    ),
    (
        'err(tl.require_version, "\\tv=DMARC1", tl.parse_tag_list("v=DMARC1", "D1"), "DMARC1", "D1")',
        (
            "error",
            "D1",
            "the record starts with whitespace before v=DMARC1; receivers ignore it otherwise: remove the leading whitespace",
        ),
    ),
    (
        'err(tl.require_version, "p=none", tl.parse_tag_list("p=none", "D1"), "DMARC1", "D1")',
        (
            "error",
            "D1",
            "the record must start with v=DMARC1 (found p=none); receivers ignore it otherwise",
        ),
    ),
    (
        'err(tl.require_version, "", (), "DMARC1", "D1")',
        (
            "error",
            "D1",
            "the record must start with v=DMARC1 (found nothing); receivers ignore it otherwise",
        ),
    ),
    (
        'err(tl.require_version, "v=dmarc1", tl.parse_tag_list("v=dmarc1", "D1"), "DMARC1", "D1")',
        (
            "error",
            "D1",
            "the record must start with v=DMARC1 (found v=dmarc1); receivers ignore it otherwise",
        ),
    ),
    (
        'err(tl.require_version, "v=DMARC1", tl.parse_tag_list("v=DMARC1", "D1"), "DMARC1", "D1")',
        ("ok", None),
    ),
    (
        'err(tl.uri_list, "mailto:a@x.example, \\tmailto:b@x.example", "D4")',
        ("ok", ("mailto:a@x.example", "mailto:b@x.example")),
    ),
    (
        'err(tl.uri_list, "mailto:a@x.example,", "D4", "ruf")',
        (
            "error",
            "D4",
            "ruf=mailto:a@x.example,: an empty entry in the URI list (empty value, or a leading, trailing or doubled comma); list URIs separated by single commas",
        ),
    ),
    (
        'err(tl.uri_list, " ", "D4")',
        (
            "error",
            "D4",
            "rua= : an empty entry in the URI list (empty value, or a leading, trailing or doubled comma); list URIs separated by single commas",
        ),
    ),
    (
        'err(tl.uri_list, "mailto:a@x.example mailto:b@x.example", "D4")',
        (
            "error",
            "D4",
            "rua=mailto:a@x.example mailto:b@x.example: URIs are separated by commas, not spaces",
        ),
    ),
    (
        'err(tl.uri_list, "mailto:a@x.example,,mailto:b@x.example", "D4")',
        (
            "error",
            "D4",
            "rua=mailto:a@x.example,,mailto:b@x.example: an empty entry in the URI list (empty value, or a leading, trailing or doubled comma); list URIs separated by single commas",
        ),
    ),
    (
        '[tl.ascii_number(v) for v in ("0", "100", "", "1a", "５", " 1")]',
        [True, True, False, False, False, False],
    ),
    (
        '[tl.domain_problem(n) for n in ("example.com", "example.com.", "localhost", "a..example", "x" * 64 + ".example", ("a" * 60 + ".") * 4 + "example", "host.123", "host.x1", "host.1-x", "host.-x", "xn--p1ai.xn--80a")]',
        [
            None,
            None,
            "localhost is a single label, not a domain",
            "a..example has an empty label",
            "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx.example has a label longer than 63 bytes",
            None,
            "host.123: the top label 123 is not a top-level domain",
            None,
            None,
            "host.-x: the top label -x is not a top-level domain",
            None,
        ],
    ),
    (
        '[tl.uri_host(u) for u in ("mailto:Reports@X.Example.!10m", "mailto:@x.example", "mailto:a@", "MAILTO:a@b.example", "https://Reports.Example:443/x!10m", "https://[x", "https:///path", "mailto:a@b@c.example")]',
        ["x.example", None, None, "b.example", "reports.example", None, None, "c.example"],
    ),
    ('rrset.same_values(("b", "a"), ("a", "b"))', True),
    ('rrset.same_values(("a",), ("a", "a"))', False),
    ("rrset.joined(())", None),
    ('rrset.joined(("a", "b"))', "a | b"),
    (
        'err(rrset.single, ("x", "y"), str)',
        ("error", "", "2 records where receivers expect exactly one"),
    ),
    ("rrset.single((), str)", None),
    ('rrset.single(("x",), str.upper)', "X"),
    (
        'rrset.one_record_findings((R, "v=TLSRPTv1; rua=ftp://x"), tlsrpt.parse, "T1", "TLS-RPT records here", "_smtp._tls")',
        [
            Finding("T1", Severity.ERROR, "2 TLS-RPT records here", "_smtp._tls"),
            Finding(
                "T1",
                Severity.ERROR,
                "rua entry 'ftp://x' must be a mailto: or https: URI",
                "_smtp._tls",
            ),
        ],
    ),
    (
        'tlsrpt.validate("_smtp._tls", "TXT", (R, R), C)',
        [
            Finding(
                "T1",
                Severity.ERROR,
                "2 TLS-RPT records at _smtp._tls.example.com: senders then use none of them (RFC 8460 3); keep exactly one",
                "_smtp._tls",
            )
        ],
    ),
    (
        '[err(tlsrpt.parse, t)[0:2] + (err(tlsrpt.parse, t)[-1] if err(tlsrpt.parse, t)[0] == "error" else "",) for t in ("v=TLSRPTv1", "v=TLSRPTv1; rua=ftp://x.example", "v=TLSRPTv1; rua=mailto", "v=TLSRPTv1; rua=https:", "v=TLSRPTv1; rua=mailto:a@localhost", "v=TLSRPTv1; rua=https://tls.example.com/r, MAILTO:a@example.com", "v=TLSRPTv1; RUA=mailto:a@example.com", "v=TLSRPTv1;rua=mailto:a@example.com")]',
        [
            (
                "error",
                "T1",
                "rua= is required: the list of mailto: or https: addresses that receive the reports (RFC 8460 3)",
            ),
            ("error", "T1", "rua entry 'ftp://x.example' must be a mailto: or https: URI"),
            ("error", "T1", "rua entry 'mailto' must be a mailto: or https: URI"),
            (
                "error",
                "T1",
                "rua entry 'https:' has no address after https:; write e.g. "
                "mailto:tls-reports@example.com",
            ),
            (
                "error",
                "T1",
                "rua entry 'mailto:a@localhost': localhost is a single label, not a domain",
            ),
            (
                "ok",
                TlsRptRecord(
                    tags=(
                        Tag(name="v", value="TLSRPTv1"),
                        Tag(name="rua", value="https://tls.example.com/r, MAILTO:a@example.com"),
                    ),
                    rua=("https://tls.example.com/r", "MAILTO:a@example.com"),
                ),
                "",
            ),
            (
                "error",
                "T1",
                "rua= is required: the list of mailto: or https: addresses that receive the reports (RFC 8460 3)",
            ),
            (
                "ok",
                TlsRptRecord(
                    tags=(
                        Tag(name="v", value="TLSRPTv1"),
                        Tag(name="rua", value="mailto:a@example.com"),
                    ),
                    rua=("mailto:a@example.com",),
                ),
                "",
            ),
        ],
    ),
    (
        'tlsrpt.facts("_smtp._tls", "TXT", (R,), ("v=TLSRPTv1; rua=mailto:tls@example.com,https://r.example/x",), C)',
        [fact("tls_rpt.rua", None, "https://r.example/x")],
    ),
    (
        'tlsrpt.facts("_smtp._tls", "TXT", ("v=TLSRPTv1; rua=mailto:a@example.com,mailto:b@example.com",), ("v=TLSRPTv1; rua=mailto:b@example.com",), C)',
        [fact("tls_rpt.rua", "mailto:a@example.com", None)],
    ),
    (
        'tlsrpt.facts("_smtp._tls", "TXT", (), (R,), C)',
        [
            fact("tls_rpt.record", None, "published"),
            fact("tls_rpt.rua", None, "mailto:tls@example.com"),
        ],
    ),
    (
        'tlsrpt.facts("_smtp._tls", "TXT", (R,), (), C)',
        [
            fact("tls_rpt.record", "published", None),
            fact("tls_rpt.rua", "mailto:tls@example.com", None),
        ],
    ),
    (
        'tlsrpt.facts("_smtp._tls", "TXT", (R,), (R + ";",), C)',
        [
            fact(
                "tls_rpt.changed",
                "v=TLSRPTv1; rua=mailto:tls@example.com",
                "v=TLSRPTv1; rua=mailto:tls@example.com;",
            )
        ],
    ),
    (
        'tlsrpt.facts("_smtp._tls", "TXT", (R,), ("v=TLSRPTv1; rua=bad",), C)',
        [fact("tls_rpt.unparsed", "v=TLSRPTv1; rua=mailto:tls@example.com", "v=TLSRPTv1; rua=bad")],
    ),
    ('tlsrpt.facts("_smtp._tls", "TXT", (R,), (R,), C)', []),
    (
        '[(n, t, kinds.kind_of(n, t)) for n, t in [("", "NS"), ("mail", "ns"), ("a._report._dmarc", "TXT"), ("a._report._dmarc.sub", "txt"), ("_report._dmarc", "TXT"), ("a._report._dmarc", "CNAME"), ("a._report", "TXT"), ("a._report.x", "TXT"), ("_DMARC", "TXT"), ("_dmarc.sub", "CNAME"), ("s1._domainkey", "CNAME"), ("s1._domainkey.sub", "TXT"), ("._domainkey", "TXT"), ("s1._domainkey", "A"), ("default._bimi", "TXT"), ("default._bimi", "CNAME"), ("._bimi", "TXT"), ("_mta-sts", "TXT"), ("_mta-sts", "A"), ("mta-sts", "AAAA"), ("mta-sts.sub", "CNAME"), ("mta-sts", "TXT"), ("_smtp._tls", "TXT"), ("_smtp._tls.sub", "TXT"), ("_smtp._tls", "MX"), ("_smtp", "TXT"), ("", "TXT"), ("_spf", "TXT"), ("www", "A"), ("", "MX")]]',
        [
            ("", "NS", None),
            ("mail", "ns", RecordKind.NS_DELEGATION),
            ("a._report._dmarc", "TXT", RecordKind.REPORT_AUTH),
            ("a._report._dmarc.sub", "txt", RecordKind.REPORT_AUTH),
            ("_report._dmarc", "TXT", None),
            ("a._report._dmarc", "CNAME", None),
            ("a._report", "TXT", RecordKind.SPF),
            ("a._report.x", "TXT", None),
            ("_DMARC", "TXT", RecordKind.DMARC),
            ("_dmarc.sub", "CNAME", None),
            ("s1._domainkey", "CNAME", RecordKind.DKIM),
            ("s1._domainkey.sub", "TXT", RecordKind.DKIM),
            ("._domainkey", "TXT", RecordKind.SPF),
            ("s1._domainkey", "A", None),
            ("default._bimi", "TXT", RecordKind.BIMI),
            ("default._bimi", "CNAME", None),
            ("._bimi", "TXT", RecordKind.SPF),
            ("_mta-sts", "TXT", RecordKind.MTA_STS),
            ("_mta-sts", "A", None),
            ("mta-sts", "AAAA", RecordKind.MTA_STS_HOST),
            ("mta-sts.sub", "CNAME", RecordKind.MTA_STS_HOST),
            ("mta-sts", "TXT", None),
            ("_smtp._tls", "TXT", RecordKind.TLS_RPT),
            ("_smtp._tls.sub", "TXT", RecordKind.TLS_RPT),
            ("_smtp._tls", "MX", None),
            ("_smtp", "TXT", RecordKind.SPF),
            ("", "TXT", RecordKind.SPF),
            ("_spf", "TXT", RecordKind.SPF),
            ("www", "A", None),
            ("", "MX", None),
        ],
    ),
    (
        '[kinds.is_spf_value(v) for v in ("v=spf1", "V=SPF1 -all", "v=spf1 -all", "v=spf10 -all", "v=spf1-all", " v=spf1 -all")]',
        [True, True, True, False, False, False],
    ),
    (
        '[kinds.is_owned_value(k, v) for k, v in [(RecordKind.SPF, "google-site-verification=x"), (RecordKind.SPF, "v=spf1 -all"), (RecordKind.DMARC, "anything")]]',
        [False, True, True],
    ),
]


def case_ids(cases: list[tuple[str, object]]) -> list[str]:
    """Readable test ids made only of characters a pytest node id can carry on a command line."""
    return [
        f"{i}-{re.sub(r'[^A-Za-z0-9_.]+', '-', call)[:60].strip('-')}"
        for i, (call, _) in enumerate(cases)
    ]


@pytest.mark.parametrize(("call", "expected"), CASES, ids=case_ids(CASES))
def test_shared_rule_parts(call: str, expected: object) -> None:
    assert eval(call) == expected  # noqa: S307 - the call is one of the literal cases above


def test_a_syntax_error_carries_its_text_and_rule() -> None:
    error = RecordSyntaxError("p= is not valid base64", "K2")
    assert (str(error), error.message, error.code) == (
        "p= is not valid base64",
        "p= is not valid base64",
        "K2",
    )


def test_without_a_budget_counter_spf_counts_nothing_and_says_so() -> None:
    budget = C.spf_budget("v=spf1 include:a.example -all", "example.com")
    assert (budget.lookups, budget.void_lookups, budget.source, budget.notes) == (
        0,
        0,
        "catalog",
        ("no budget counter",),
    )


def test_explain_reads_every_rule_row_of_the_rules_document() -> None:
    entries = rule_entries()
    d1 = entries["D1"]
    assert d1.code == "D1"
    assert d1.kind == "DMARC (`_dmarc` TXT; RFC 7489, RFC 9989)"
    assert d1.rule.startswith("the record starts with exactly `v=DMARC1`")
    assert d1.rule.endswith("other values at `_dmarc` are discarded")
    assert (d1.severity, d1.clause) == ("error", "RFC 7489 6.4 `dmarc-record`, 6.6.3")
    # A "|" inside the rule text is the rule's own, printed as written.
    assert "an optional `!size[k|m|g|t]`; no duplicate tag" in entries["D4"].rule
    assert entries["D4"].severity == "error"
    # Every kind's codes are there, each under its own section, none from a header row.
    assert {"D1", "S1", "K1", "B1", "M1", "T1", "N1"} <= set(entries)
    assert all(code[0] in "DSKBMTN" and code[1:].isdigit() for code in entries)
    assert entries["S1"].kind.startswith("SPF")
    assert entries["N1"].kind != entries["S1"].kind


def test_explain_renders_an_entry() -> None:
    entry = RuleEntry(
        "X1",
        "Kind (RFC 1)",
        "the rule",
        "warning",
        "RFC 1 2.3",
        "`a` TXT `b`",
        "none",
        "`a` TXT `c`",
    )
    assert render_entry(entry) == (
        "X1  Kind (RFC 1)\n"
        "  rule:     the rule\n"
        "  severity: warning (an error makes `dmarcops plan` and `dmarcops validate` refuse the "
        "change, exit 2; a warning or info is printed and does not block)\n"
        "  clause:   RFC 1 2.3\n"
        "  example:  `a` TXT `b`\n"
        "  risk:     none\n"
        "  fix:      `a` TXT `c`\n"
        "  (`dmarcops validate` shows the zone file and line of every finding)\n"
    )


# The second mutation run (docs/mutation-testing.md): the limits of a domain name and the report
# URIs of TLS-RPT and DMARC, through the record parsers a zone file reaches.


def tls_rua(uri: str) -> tuple[Any, ...]:
    """What TLS-RPT makes of a record with this one `rua=` entry: its URIs, or the T1 message."""
    outcome = err(tlsrpt.parse, f"v=TLSRPTv1; rua={uri}")
    return ("ok", outcome[1].rua) if outcome[0] == "ok" else outcome


def test_a_domain_may_have_63_byte_labels_and_253_bytes_in_all() -> None:
    label63 = "a" * 63
    longest = f"{label63}.{label63}.{label63}.{'b' * 57}.com"  # 253 bytes
    assert len(longest) == 253
    assert tls_rua(f"mailto:tls@{label63}.example.com") == (
        "ok",
        (f"mailto:tls@{label63}.example.com",),
    )
    assert tls_rua(f"mailto:tls@{longest}") == ("ok", (f"mailto:tls@{longest}",))
    # With the trailing dot of a fully-qualified name it is still 253.
    assert tls_rua(f"mailto:tls@{longest}.")[0] == "ok"
    too_long = longest.replace(".b", ".bb")  # 254 bytes
    assert tls_rua(f"mailto:tls@{too_long}") == (
        "error",
        "T1",
        f"rua entry 'mailto:tls@{too_long}': {too_long} is longer than 253 bytes",
    )


def test_a_numeric_top_label_is_named_in_the_refusal() -> None:
    assert tls_rua("mailto:tls@mail.example.123") == (
        "error",
        "T1",
        "rua entry 'mailto:tls@mail.example.123': mail.example.123: the top label 123 is not a "
        "top-level domain",
    )


def test_uri_lists_allow_only_spaces_and_tabs_around_commas() -> None:
    # RFC 7489 6.4 / RFC 8460 3: *WSP "," *WSP, and WSP is a space or a tab; a line break inside
    # the value is not a separator, and an uppercase X is part of the URI.
    assert tls_rua("mailto:a@example.com,\t mailto:b@example.com") == (
        "ok",
        ("mailto:a@example.com", "mailto:b@example.com"),
    )
    assert tls_rua("mailto:a@example.com,\nmailto:b@example.com") == (
        "error",
        "T1",
        "rua=mailto:a@example.com,\nmailto:b@example.com: URIs are separated by commas, not spaces",
    )
    assert tls_rua("https://r.example.com/X,Xmailto:a@example.com") == (
        "error",
        "T1",
        "rua entry 'Xmailto:a@example.com' must be a mailto: or https: URI",
    )
    assert tls_rua("https://r.example.com/TLS-X") == ("ok", ("https://r.example.com/TLS-X",))


def test_tls_rpt_reads_an_https_uri_with_a_port_and_no_dmarc_size_limit() -> None:
    assert tls_rua("https://tls.example.com:8443/report") == (
        "ok",
        ("https://tls.example.com:8443/report",),
    )
    # A bug found by mutation testing: TLS-RPT took DMARC's `!10m` size limit off the address and
    # accepted it, but TLS-RPT has no size limit and no report reaches `example.com!10m`.
    assert tls_rua("mailto:tls@example.com!10m") == (
        "error",
        "T1",
        "rua entry 'mailto:tls@example.com!10m': example.com!10m: the top label com!10m is not a "
        "top-level domain",
    )
    assert tls_rua("https://tls.example.com!10m/r") == (
        "error",
        "T1",
        "rua entry 'https://tls.example.com!10m/r': tls.example.com!10m: the top label com!10m "
        "is not a top-level domain",
    )
    # ... and a `!` in the mailbox is the mailbox's (RFC 5322 atext), not the end of the URI.
    assert tls_rua("mailto:tls!ops@example.com") == ("ok", ("mailto:tls!ops@example.com",))


def test_dmarc_report_uris_end_at_the_size_limit() -> None:
    ctx = ZoneContext("example.com")

    def findings(rua: str) -> list[tuple[str, str]]:
        record = f"v=DMARC1; p=none; rua={rua}"
        return [(f.code, f.message) for f in dmarc.validate("_dmarc", "TXT", (record,), ctx)]

    assert findings("mailto:dmarc@example.com!10m, https://r.example.com:8443/d!5k") == []
    # The authorisation a receiver looks up is named after the host before the size limit.
    assert findings("https://r.example.net:8443/d!5k") == [
        (
            "D7",
            "could not check that r.example.net authorises reports for example.com (TXT at "
            "example.com._report._dmarc.r.example.net)",
        )
    ]


def test_the_policy_records_of_a_sub_domain_are_owned_as_their_kind() -> None:
    # `_dmarc.sub` and `_mta-sts.sub` TXT are the DMARC and MTA-STS records of sub.example.com
    # and get those rules, not SPF's.
    assert kinds.kind_of("_dmarc.sub", "TXT") is RecordKind.DMARC
    assert kinds.kind_of("_mta-sts.mail", "TXT") is RecordKind.MTA_STS
    # A TXT set whose last label is `_report` is no report authorisation (that is
    # <domain>._report._dmarc), whatever stands before it: only its v=spf1 value is owned.
    assert kinds.kind_of("x.a._report", "TXT") is RecordKind.SPF
