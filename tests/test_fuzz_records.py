"""Property-based fuzzing of the record parsers themselves (tests/test_fuzz.py drives the same
code through the CLI, a few examples per run): whatever text a zone file holds, each kind's
`validate` and `facts` return findings and facts and raise nothing, a `parse` raises only
RecordSyntaxError, and every finding carries a code that docs/rules.md documents (so
`dmarcops explain CODE` can answer for it).

The strategies build records from the pieces each grammar is made of (tags, `=`, `;`, service
types, macros, labels with the characters the label rules are about), so most examples get past
the first check and reach the rules behind it. Derandomized and bounded in the suite, like
tests/test_fuzz.py; DMARCOPS_FUZZ_PROFILE=night (scripts/fuzz-night) runs random examples.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Callable
from datetime import date

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.diff import dkim, dmarc, mtasts, ns, spf, tlsrpt
from pipeline.diff.context import DkimLifecycle, ZoneContext
from pipeline.diff.errors import RecordSyntaxError
from pipeline.diff.explain import rule_entries
from pipeline.diff.taglist import domain_problem
from pipeline.model import Fact, Finding, Severity

NIGHT = os.environ.get("DMARCOPS_FUZZ_PROFILE") == "night"
DOCUMENTED = frozenset(rule_entries())
CTX = ZoneContext(
    "example.com",
    today=date(2026, 3, 1),
    dkim=DkimLifecycle(active=frozenset({"s1"})),
)
ED25519 = base64.b64encode(bytes(range(32))).decode()


def fuzz(max_examples: int) -> settings:
    return settings(
        max_examples=max_examples * 20 if NIGHT else max_examples,
        derandomize=not NIGHT,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )


def pieces(*fragments: str) -> st.SearchStrategy[str]:
    """Text made of the grammar's own fragments and a little hostile text between them."""
    odd = st.text(
        alphabet=st.sampled_from(list(" \t\r\n;:=,.!@%{}*_-~+/\\\"'ü٣５\x00") + list("aZ09")),
        max_size=4,
    )
    return st.lists(st.one_of(st.sampled_from(fragments), odd), max_size=14).map("".join)


# Labels of the characters the label rules are about, and whole labels a real name has.
labels = st.text(alphabet=st.sampled_from(list("abcxyzAZ0189-_!* %ü\u200b")), max_size=6) | (
    st.sampled_from(["xn--p1ai", "example", "com", "_spf", "a" * 63, "b" * 64, ""])
)
names = st.lists(labels, min_size=1, max_size=6).map(".".join) | st.text(max_size=20)

dkim_records = pieces(
    "v=DKIM1",
    "v=DKIM2",
    "; ",
    "k=ed25519",
    "k=rsa",
    "k=",
    "s=",
    "email",
    "EMAIL",
    "*",
    "tlsrpt",
    ":",
    "h=sha256",
    "h=sha1",
    "t=y:s",
    "p=",
    ED25519,
    "MIIB",
)
dmarc_records = pieces(
    "v=DMARC1",
    "; ",
    "p=none",
    "p=reject",
    "sp=quarantine",
    "pct=50",
    "rua=",
    "ruf=",
    "mailto:",
    "https://",
    "d@",
    "@",
    "exa_mple.com",
    "example.com",
    "r.example.net",
    "!10m",
    ",",
    "fo=1:d",
    "t=y",
)
spf_records = pieces(
    "v=spf1",
    " ",
    "include:",
    "_spf.example.com",
    "exa!mple.com",
    "a",
    "mx",
    "-all",
    "~all",
    "all",
    "ptr",
    "ip4:192.0.2.0/24",
    "ip6:2001:db8::/32",
    "exists:",
    "%{i}",
    "%{ir}.",
    "%%",
    "%_",
    "redirect=",
    "exp=",
    "/24",
    "//64",
    ".com",
)
policies = pieces(
    "version: STSv1",
    "mode: ",
    "enforce",
    "testing",
    "none",
    "NONE",
    "mx: ",
    "*.",
    "mail_1.example.com",
    "mx.example.xn--p1ai",
    "max_age: ",
    "86400",
    "\n",
    "\r\n",
)
sts_records = pieces("v=STSv1", "; ", "id=", "20260101T000000", "ID=", " = ")
tlsrpt_records = pieces(
    "v=TLSRPTv1", "; ", "rua=", "mailto:", "https://", "tls@", "_tls.example.com", ",", "!10m"
)
nameservers = pieces("ns1.example.net.", "ns_1.", "192.0.2.1", "-ns.", "example.", "mail.")


def documented(findings: list[Finding]) -> None:
    for finding in findings:
        assert finding.code in DOCUMENTED, finding
        assert isinstance(finding.severity, Severity)
        assert finding.message.strip(), finding


def parses_or_refuses(parse: Callable[[str], object], text: str) -> None:
    try:
        parse(text)
    except RecordSyntaxError as err:
        assert err.code in DOCUMENTED, (text, err.code)
        assert err.message.strip()


Validate = Callable[[str, str, tuple[str, ...], ZoneContext], list[Finding]]
Facts = Callable[[str, str, tuple[str, ...], tuple[str, ...], ZoneContext], list[Fact]]

KINDS: list[tuple[str, str, str, Validate, Facts, Callable[[str], object] | None, object]] = [
    ("dkim", "s1._domainkey", "TXT", dkim.validate, dkim.facts, dkim.parse, dkim_records),
    ("dmarc", "_dmarc", "TXT", dmarc.validate, dmarc.facts, dmarc.parse, dmarc_records),
    ("spf", "", "TXT", spf.validate, spf.facts, spf.parse, spf_records),
    ("mta-sts", "_mta-sts", "TXT", mtasts.validate, mtasts.facts, mtasts.parse, sts_records),
    ("tls-rpt", "_smtp._tls", "TXT", tlsrpt.validate, tlsrpt.facts, tlsrpt.parse, tlsrpt_records),
    ("ns", "mail", "NS", ns.validate, ns.facts, None, nameservers),
]


@pytest.mark.parametrize(
    ("name", "rtype", "validate", "facts", "parse", "records"),
    [pytest.param(*kind[1:], id=kind[0]) for kind in KINDS],
)
def test_no_record_text_makes_a_validator_raise(
    name: str,
    rtype: str,
    validate: Validate,
    facts: Facts,
    parse: Callable[[str], object] | None,
    records: st.SearchStrategy[str],
) -> None:
    @fuzz(150)
    @given(before=st.lists(records, max_size=2), after=st.lists(records, max_size=2))
    def run(before: list[str], after: list[str]) -> None:
        documented(validate(name, rtype, tuple(after), CTX))
        found = facts(name, rtype, tuple(before), tuple(after), CTX)
        assert all(isinstance(f, Fact) for f in found)
        if parse is not None:
            for text in after:
                parses_or_refuses(parse, text)

    run()


@fuzz(300)
@given(text=policies, other=policies)
def test_no_policy_file_makes_the_mta_sts_rules_raise(text: str, other: str) -> None:
    documented(mtasts.validate_policy(text))
    parses_or_refuses(mtasts.parse_policy, text)
    found, findings = mtasts.policy_facts(other, text, "1", "1")
    assert all(isinstance(f, Fact) for f in found)
    documented(findings)


@fuzz(500)
@given(name=names)
def test_a_domain_is_judged_label_by_label_and_named_in_the_answer(name: str) -> None:
    host = domain_problem(name)
    looked_up = domain_problem(name, underscores=True)
    # Every answer names the domain it is about, so the message says where the problem is.
    for problem in (host, looked_up):
        assert problem is None or problem.startswith(name), problem
    # A host name is always a name that can be looked up; the reverse is not true (`_spf`).
    if host is None:
        assert looked_up is None
    if looked_up is None and "_" not in name:
        assert host is None
    # What passes is what DNS and RFC 1123 allow: ASCII letters, digits, hyphens (and, for looked-up
    # names, underscores) in labels of 1-63 bytes, at least two of them.
    if looked_up is None:
        labels = name.removesuffix(".").split(".")
        assert len(labels) >= 2
        assert all(1 <= len(label) <= 63 for label in labels)
        assert all(c.isascii() and (c.isalnum() or c in "-_") for c in "".join(labels))
        assert not any(label.startswith("-") or label.endswith("-") for label in labels)
