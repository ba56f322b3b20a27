"""MTA-STS (M1-M3 in docs/rules.md): the exact findings and facts of the TXT record, the policy
file and the policy host, so a mutation of a rule or of the text the operator reads fails a test.
Found by mutation testing (docs/mutation-testing.md)."""

from __future__ import annotations

import re

import pytest

from pipeline.diff import mtasts
from pipeline.diff.context import ZoneContext
from pipeline.diff.errors import RecordSyntaxError
from pipeline.diff.mtasts import MtaStsPolicy
from pipeline.model import Finding, Severity, fact

C = ZoneContext("example.com")
P = "version: STSv1\nmode: enforce\nmx: mx1.example.com\nmx: *.mail.example.com\nmax_age: 604800\n"
T = "version: STSv1\nmode: testing\nmx: mx1.example.com\nmax_age: 86400\n"
N = "version: STSv1\nmode: none\nmax_age: 86400\n"

CASES = [
    ('mtasts.validate("_mta-sts", "TXT", ("v=STSv1; id=20260101T000000",), C)', []),
    (
        'mtasts.validate("_mta-sts", "TXT", ("v=STSv1; id=20260101T000000", "v=STSv1; id=2"), C)',
        [
            Finding(
                "M1",
                Severity.ERROR,
                "2 MTA-STS records at _mta-sts.example.com: senders then assume no policy (RFC 8461 3.1); keep exactly one",
                "_mta-sts",
            )
        ],
    ),
    (
        'mtasts.validate("_mta-sts", "TXT", ("v=STSv1; id=2026-01-01",), C)',
        [
            Finding(
                "M1",
                Severity.ERROR,
                "id=2026-01-01: the policy id must be 1-32 letters and digits (RFC 8461 3.1), e.g. a timestamp like 20260101T000000 written without punctuation",
                "_mta-sts",
            )
        ],
    ),
    (
        'mtasts.validate("_mta-sts", "TXT", ("v=STSv1;",), C)',
        [
            Finding(
                "M1",
                Severity.ERROR,
                "id=: the policy id must be 1-32 letters and digits (RFC 8461 3.1), e.g. a timestamp like 20260101T000000 written without punctuation",
                "_mta-sts",
            )
        ],
    ),
    (
        'mtasts.validate("_mta-sts", "TXT", ("v=STSv1; ID=1",), C)',
        [
            Finding(
                "M1",
                Severity.ERROR,
                "id=: the policy id must be 1-32 letters and digits (RFC 8461 3.1), e.g. a timestamp like 20260101T000000 written without punctuation",
                "_mta-sts",
            )
        ],
    ),
    (
        'mtasts.facts("_mta-sts", "TXT", ("v=STSv1; id=1",), ("v=STSv1; id=2",), C)',
        [fact("mta_sts.id", "1", "2")],
    ),
    (
        'mtasts.facts("_mta-sts", "TXT", ("v=STSv1; id=1",), ("v=STSv1;  id=1",), C)',
        [fact("mta_sts.changed", "v=STSv1; id=1", "v=STSv1;  id=1")],
    ),
    (
        'mtasts.facts("_mta-sts", "TXT", (), ("v=STSv1; id=2",), C)',
        [fact("mta_sts.record", None, "published"), fact("mta_sts.id", None, "2")],
    ),
    ("mtasts.validate_policy(P)", []),
    (
        'mtasts.validate_policy("version: STSv1\\nmode enforce\\n")',
        [
            Finding(
                "M2",
                Severity.ERROR,
                "MTA-STS policy: line 2 'mode enforce' is not 'key: value'",
                "mta-sts",
            ),
            Finding("M2", Severity.ERROR, "MTA-STS policy: the mode field is missing", "mta-sts"),
            Finding(
                "M2", Severity.ERROR, "MTA-STS policy: the max_age field is missing", "mta-sts"
            ),
        ],
    ),
    (
        'mtasts.validate_policy("version: STSv1\\nversion: STSv1\\nmode: enforce\\nmax_age: 1\\nmx: a.example\\n")',
        [
            Finding(
                "M2",
                Severity.ERROR,
                "MTA-STS policy: the version field appears 2 times; keep one",
                "mta-sts",
            )
        ],
    ),
    (
        'mtasts.validate_policy("version: STSv2\\nmode: strict\\nmax_age: 31557601\\n")',
        [
            Finding(
                "M2", Severity.ERROR, "MTA-STS policy: version must be STSv1, not STSv2", "mta-sts"
            ),
            Finding(
                "M2",
                Severity.ERROR,
                "MTA-STS policy: mode must be enforce, testing or none, not strict",
                "mta-sts",
            ),
            Finding(
                "M2",
                Severity.ERROR,
                "MTA-STS policy: max_age must be a whole number of seconds from 0 to 31557600, not 31557601",
                "mta-sts",
            ),
        ],
    ),
    (
        'mtasts.validate_policy("version: STSv1\\nmode: testing\\nmax_age: 31557600\\n")',
        [
            Finding(
                "M2",
                Severity.ERROR,
                "MTA-STS policy: mode testing needs at least one mx line naming the domain's MX hosts",
                "mta-sts",
            )
        ],
    ),
    (
        'mtasts.validate_policy("version: STSv1\\nmode: none\\nmax_age: -1\\nmx: bad_host..x\\n")',
        [
            Finding(
                "M2",
                Severity.ERROR,
                "MTA-STS policy: max_age must be a whole number of seconds from 0 to 31557600, not -1",
                "mta-sts",
            ),
            Finding(
                "M2",
                Severity.ERROR,
                "MTA-STS policy: mx bad_host..x is not a host name or a *.domain wildcard",
                "mta-sts",
            ),
        ],
    ),
    (
        'mtasts.validate_policy("version: STSv1\\nmode: enforce\\nmax_age: 86400\\nmx: mx1.example.com:25\\n")',
        [
            Finding(
                "M2",
                Severity.ERROR,
                "MTA-STS policy: mx mx1.example.com:25 is not a host name or a *.domain wildcard",
                "mta-sts",
            )
        ],
    ),
    (
        'mtasts.validate_policy("")',
        [
            Finding(
                "M2", Severity.ERROR, "MTA-STS policy: the version field is missing", "mta-sts"
            ),
            Finding("M2", Severity.ERROR, "MTA-STS policy: the mode field is missing", "mta-sts"),
            Finding(
                "M2", Severity.ERROR, "MTA-STS policy: the max_age field is missing", "mta-sts"
            ),
        ],
    ),
    (
        'mtasts.validate_policy("mode: NONE\\nversion: STSv1\\nmax_age: 0")',
        [
            Finding(
                "M2",
                Severity.ERROR,
                # Refused, not read as mode none: RFC 8461 3.2 spells the values %s"none" (RFC
                # 7405: case-sensitive), and senders discard such a policy (docs/rules.md, M2).
                "MTA-STS policy: mode must be enforce, testing or none, not NONE: the values are "
                "case-sensitive (RFC 8461 3.2) and senders discard the policy; write mode: none",
                "mta-sts",
            ),
        ],
    ),
    (
        "mtasts.parse_policy(P)",
        MtaStsPolicy(
            version="STSv1",
            mode="enforce",
            max_age=604800,
            mx=("mx1.example.com", "*.mail.example.com"),
        ),
    ),
    ('mtasts.policy_facts(P, P, "1", "1")', ([], [])),
    (
        'mtasts.policy_facts(None, P, None, "1")',
        (
            [
                fact("mta_sts.policy", None, "published"),
                fact("mta_sts.mode", None, "enforce", direction="stricter"),
                fact("mta_sts.mx", None, "mx1.example.com", enforcing=True),
                fact("mta_sts.mx", None, "*.mail.example.com", enforcing=True),
                fact("mta_sts.max_age", None, "604800"),
            ],
            [],
        ),
    ),
    (
        'mtasts.policy_facts(P, None, "1", None)',
        (
            [
                fact("mta_sts.policy", "published", None),
                fact("mta_sts.mode", "enforce", None, direction="looser"),
                fact("mta_sts.mx", "mx1.example.com", None, enforcing=True),
                fact("mta_sts.mx", "*.mail.example.com", None, enforcing=True),
                fact("mta_sts.max_age", "604800", None),
            ],
            [],
        ),
    ),
    (
        'mtasts.policy_facts(P, P.replace("mx: mx1", "mx: mx2"), "1", "1")',
        (
            [
                fact("mta_sts.mx", "mx1.example.com", None, enforcing=True),
                fact("mta_sts.mx", None, "mx2.example.com", enforcing=True),
            ],
            [
                Finding(
                    "M3",
                    Severity.ERROR,
                    "the MTA-STS policy changed but the _mta-sts id is still 1: senders keep the cached policy (RFC 8461 3.1); give the TXT record a new id in the same change",
                    "_mta-sts",
                )
            ],
        ),
    ),
    (
        'mtasts.policy_facts(P, P.replace("mx: mx1", "mx: mx2"), "1", "2")',
        (
            [
                fact("mta_sts.mx", "mx1.example.com", None, enforcing=True),
                fact("mta_sts.mx", None, "mx2.example.com", enforcing=True),
            ],
            [],
        ),
    ),
    (
        'mtasts.policy_facts(T, T.replace("mx1", "mx2"), "1", "2")',
        (
            [
                fact("mta_sts.mx", "mx1.example.com", None, enforcing=False),
                fact("mta_sts.mx", None, "mx2.example.com", enforcing=False),
            ],
            [],
        ),
    ),
    (
        'mtasts.policy_facts(P, T, "1", "2")',
        (
            [
                fact("mta_sts.mode", "enforce", "testing", direction="looser"),
                fact("mta_sts.mx", "*.mail.example.com", None, enforcing=True),
                fact("mta_sts.max_age", "604800", "86400"),
            ],
            [],
        ),
    ),
    (
        'mtasts.policy_facts(T, P, "1", "2")',
        (
            [
                fact("mta_sts.mode", "testing", "enforce", direction="stricter"),
                fact("mta_sts.mx", None, "*.mail.example.com", enforcing=True),
                fact("mta_sts.max_age", "86400", "604800"),
            ],
            [],
        ),
    ),
    (
        'mtasts.policy_facts(N, T, "1", "2")',
        (
            [
                fact("mta_sts.mode", "none", "testing", direction="stricter"),
                fact("mta_sts.mx", None, "mx1.example.com", enforcing=False),
            ],
            [],
        ),
    ),
    (
        'mtasts.policy_facts(P, P.replace("\\n", "\\r\\n").replace("mx: MX1", "mx: mx1"), "1", "1")',
        (
            [
                fact(
                    "mta_sts.changed",
                    "version: STSv1\nmode: enforce\nmx: mx1.example.com\nmx: *.mail.example.com\nmax_age: 604800\n",
                    "version: STSv1\r\nmode: enforce\r\nmx: mx1.example.com\r\nmx: *.mail.example.com\r\nmax_age: 604800\r\n",
                    part="policy",
                )
            ],
            [],
        ),
    ),
    (
        'mtasts.policy_facts(P, "mx: *.mail.example.com\\n" + P.replace("mx: *.mail.example.com\\n", ""), "1", "1")',
        (
            [
                fact(
                    "mta_sts.changed",
                    "version: STSv1\nmode: enforce\nmx: mx1.example.com\nmx: *.mail.example.com\nmax_age: 604800\n",
                    "mx: *.mail.example.com\nversion: STSv1\nmode: enforce\nmx: mx1.example.com\nmax_age: 604800\n",
                    part="policy",
                )
            ],
            [],
        ),
    ),
    (
        'mtasts.policy_facts(P, "garbage", "1", "1")',
        (
            [
                fact(
                    "mta_sts.unparsed",
                    "version: STSv1\nmode: enforce\nmx: mx1.example.com\nmx: *.mail.example.com\nmax_age: 604800\n",
                    "garbage",
                    part="policy",
                )
            ],
            [
                Finding(
                    "M3",
                    Severity.ERROR,
                    "the MTA-STS policy changed but the _mta-sts id is still 1: senders keep the cached policy (RFC 8461 3.1); give the TXT record a new id in the same change",
                    "_mta-sts",
                )
            ],
        ),
    ),
    (
        'mtasts.policy_facts(P, "garbage", "1", "2")',
        (
            [
                fact(
                    "mta_sts.unparsed",
                    "version: STSv1\nmode: enforce\nmx: mx1.example.com\nmx: *.mail.example.com\nmax_age: 604800\n",
                    "garbage",
                    part="policy",
                )
            ],
            [],
        ),
    ),
    (
        'mtasts.policy_facts(None, "garbage", None, "1")',
        ([fact("mta_sts.unparsed", None, "garbage", part="policy")], []),
    ),
    (
        'mtasts.policy_facts("garbage", None, "1", None)',
        ([fact("mta_sts.unparsed", "garbage", None, part="policy")], []),
    ),
    (
        'mtasts.policy_facts(P, P + "extra: 1\\n", "1", "1")',
        (
            [
                fact(
                    "mta_sts.changed",
                    "version: STSv1\nmode: enforce\nmx: mx1.example.com\nmx: *.mail.example.com\nmax_age: 604800\n",
                    "version: STSv1\nmode: enforce\nmx: mx1.example.com\nmx: *.mail.example.com\nmax_age: 604800\nextra: 1\n",
                    part="policy",
                )
            ],
            [],
        ),
    ),
    (
        'mtasts.host_facts("mta-sts", "A", ("192.0.2.2", "192.0.2.1"), ("192.0.2.1",), C)',
        [fact("mta_sts.host", "192.0.2.1 | 192.0.2.2", "192.0.2.1", rtype="A")],
    ),
    ('mtasts.host_facts("mta-sts", "CNAME", ("a.example.",), ("a.example.",), C)', []),
    (
        'mtasts.host_facts("mta-sts", "A", (), ("192.0.2.1",), C)',
        [fact("mta_sts.host", None, "192.0.2.1", rtype="A")],
    ),
    ('mtasts.validate_host("mta-sts", "A", ("x",), C)', []),
]


def case_ids(cases: list[tuple[str, object]]) -> list[str]:
    """Readable test ids made only of characters a pytest node id can carry on a command line."""
    return [
        f"{i}-{re.sub(r'[^A-Za-z0-9_.]+', '-', call)[:60].strip('-')}"
        for i, (call, _) in enumerate(cases)
    ]


@pytest.mark.parametrize(("call", "expected"), CASES, ids=case_ids(CASES))
def test_mta_sts_findings_and_facts(call: str, expected: object) -> None:
    assert eval(call) == expected  # noqa: S307 - the call is one of the literal cases above


def test_every_line_is_read_past_a_blank_or_a_broken_one() -> None:
    spaced = "version: STSv1\n\nmode: enforce\n\nmx: mx1.example.com\nmax_age: 86400\n"
    assert mtasts.validate_policy(spaced) == []
    broken_first = "garbage\nversion: STSv1\nmode: none\nmax_age: 86400\n"
    assert mtasts.validate_policy(broken_first) == [
        Finding(
            "M2", Severity.ERROR, "MTA-STS policy: line 1 'garbage' is not 'key: value'", "mta-sts"
        )
    ]


def test_m3_needs_a_policy_before_and_after() -> None:
    # A first policy (or a first unreadable one) under an id that already existed is not M3:
    # no sender cached a policy under that id.
    assert mtasts.policy_facts(None, P, "1", "1")[1] == []
    assert mtasts.policy_facts(None, "garbage", "1", "1")[1] == []
    assert mtasts.policy_facts(P, None, "1", "1")[1] == []


def test_a_broken_policy_is_refused_with_its_first_problem() -> None:
    with pytest.raises(RecordSyntaxError) as err:
        mtasts.parse_policy(
            "version: STSv1\nmode: enforce\nmax_age: x\nmax_age: y\nmx: a.example\n"
        )
    assert (err.value.code, err.value.message) == (
        "M2",
        "MTA-STS policy: the max_age field appears 2 times; keep one",
    )


def test_the_record_keeps_its_tags_and_id() -> None:
    record = mtasts.parse("v=STSv1; id=20260101T000000")
    assert record.id == "20260101T000000"
    assert [(t.name, t.value) for t in record.tags] == [("v", "STSv1"), ("id", "20260101T000000")]
    with pytest.raises(RecordSyntaxError) as err:
        mtasts.parse("v=STSv1; id=a-b")
    assert err.value.code == "M1"
