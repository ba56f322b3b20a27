"""`dmarcops audit quarter`: a seeded history holding each kind of bend, against a report written
by hand (issue 12, item 1)."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from signing import JCHEN, MHARA, SOKAFOR, genesis
from test_records import cli, make_record

from pipeline.errors import EXIT_INPUT
from pipeline.records import Emergency, Outcome, RecordStore
from pipeline.records.record import ChangeType

JULY = datetime(2026, 7, 7, 9, 30, tzinfo=UTC)  # a Tuesday in 2026Q3
NOW = datetime(2026, 10, 2, 12, 0, tzinfo=UTC)


@pytest.fixture
def history(tmp_path: Path) -> RecordStore:
    store = genesis(tmp_path)
    june = store.create(lambda rid: make_record(rid), datetime(2026, 6, 9, tzinfo=UTC), JCHEN)
    store.seal(
        june.id,
        Outcome.ACCEPTED,
        datetime(2026, 6, 10, tzinfo=UTC),
        JCHEN,
        without_evidence="no reports in this test",
    )  # 2026Q2

    due = JULY + timedelta(hours=24)
    late = store.create(
        lambda rid: replace(
            make_record(rid, executed_at=JULY, peer="", emergency=Emergency("p=reject bouncing payroll", due)),
            incident="INC-2041",
        ),
        JULY,
        JCHEN,
    )  # fmt: skip
    store.review(late.id, MHARA, "Could have waited for the window.", due + timedelta(hours=3),
                 verdict="not-justified", follow_up="POL-12")  # fmt: skip
    forced = store.create(lambda rid: make_record(rid, executed_at=JULY), JULY, JCHEN)
    store.seal(forced.id, Outcome.ROLLED_BACK, JULY + timedelta(hours=1), MHARA, forced=True)
    freeze = store.create(
        lambda rid: replace(
            make_record(rid, executed_at=JULY, client="contoso-retail", zone="contoso-retail.example"),
            freeze_exception="Holiday freeze: approved by ops@contoso-retail.example",
        ),
        JULY,
        JCHEN,
    )  # fmt: skip
    store.create(
        lambda rid: replace(
            make_record(rid, executed_at=JULY + timedelta(days=1)),
            change_type=ChangeType.EMERGENCY_ROLLBACK,
            references=(forced.id,),
        ),
        JULY + timedelta(days=1),
        JCHEN,
    )
    store.create(
        lambda rid: make_record(
            rid,
            executed_at=JULY + timedelta(days=2),
            emergency=Emergency("DKIM broke", JULY + timedelta(days=3)),
            author="sokafor",
        ),
        JULY + timedelta(days=2),
        SOKAFOR,
    )
    del freeze
    return store


EXPECTED = {
    "quarter": "2026Q3",
    "from": "2026-07-01T00:00:00Z",
    "until": "2026-10-01T00:00:00Z",
    "generated_at": "2026-10-02T12:00:00Z",
    "records": ["2026-0002", "2026-0003", "2026-0004", "2026-0005", "2026-0006"],
    "bends": [
        {
            "kind": "emergency",
            "record": "2026-0002",
            "client": "northwind-health",
            "analyst": "jchen",
            "detail": "reason: p=reject bouncing payroll; incident INC-2041; not-justified by "
            "mhara; review late; follow-up POL-12",
        },
        {
            "kind": "forced close",
            "record": "2026-0003",
            "client": "northwind-health",
            "analyst": "jchen",
            "detail": "closed 2026-07-07T10:30:00Z by mhara, before its rollback window ended "
            "2026-07-07T17:30:00Z",
        },
        {
            "kind": "rollback",
            "record": "2026-0003",
            "client": "northwind-health",
            "analyst": "jchen",
            "detail": "rolled back",
        },
        {
            "kind": "freeze exception",
            "record": "2026-0004",
            "client": "contoso-retail",
            "analyst": "jchen",
            "detail": "Holiday freeze: approved by ops@contoso-retail.example",
        },
        {
            "kind": "rollback",
            "record": "2026-0005",
            "client": "northwind-health",
            "analyst": "jchen",
            "detail": "an emergency rollback (linked: 2026-0003)",
        },
        {
            "kind": "emergency",
            "record": "2026-0006",
            "client": "northwind-health",
            "analyst": "sokafor",
            "detail": "reason: DKIM broke; review overdue since 2026-07-10T09:30:00Z",
        },
    ],
    "counts": {
        "client": {"contoso-retail": 1, "northwind-health": 4},
        "analyst": {"jchen": 4, "sokafor": 1},
        "risk": {"medium": 5},
        "type": {"Emergency rollback": 1, "Policy progression": 4},
    },
    "open_outcomes": ["2026-0002", "2026-0004", "2026-0005", "2026-0006"],
    "overdue_reviews": ["2026-0006"],
    "what_to_change": [{"follow_up": "POL-12", "record": "2026-0002"}],
}


def test_the_quarter_matches_the_hand_written_report(history: RecordStore) -> None:
    result = cli(history.changes_dir.parent, "audit", "quarter", "2026Q3", "--format", "json",
                 "--at", "2026-10-02T12:00:00Z")  # fmt: skip
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report.pop("not_recorded")  # said, not guessed
    assert report == EXPECTED


def test_the_markdown_review_lists_each_bend_and_what_to_change(history: RecordStore) -> None:
    result = cli(history.changes_dir.parent, "audit", "quarter", "2026Q3",
                 "--at", "2026-10-02T12:00:00Z")  # fmt: skip
    assert result.exit_code == 0, result.output
    md = result.stdout
    assert "### Emergency changes: 2" in md
    assert "### Forced closes (before the rollback window ended): 1" in md
    assert "### Freeze exceptions: 1" in md and "### Rollbacks: 2" in md
    assert "- POL-12 (from the review of `2026-0002`)" in md
    assert "emergency reviews overdue: `2026-0006`" in md
    assert "&#64;" in md and "ops@contoso" not in md  # a user's string never pings anyone


def test_an_earlier_quarter_holds_only_its_own_records(history: RecordStore) -> None:
    result = cli(history.changes_dir.parent, "audit", "quarter", "2026q2", "--format", "json",
                 "--at", "2026-10-02T12:00:00Z")  # fmt: skip
    report = json.loads(result.stdout)
    assert report["records"] == ["2026-0001"]
    # Its only bend: it was closed as accepted by a person's override, without report evidence.
    assert report["bends"] == [
        {
            "kind": "accepted without evidence",
            "record": "2026-0001",
            "client": "northwind-health",
            "analyst": "jchen",
            "detail": "closed as accepted 2026-06-10T00:00:00Z by jchen without report "
            "evidence: no reports in this test",
        }
    ]


@pytest.mark.parametrize("text", ["2026Q5", "Q3", "2026-Q3", "２０２６Q3", ""])
def test_a_bad_quarter_is_bad_input(history: RecordStore, text: str) -> None:
    result = cli(history.changes_dir.parent, "audit", "quarter", text)
    assert result.exit_code == EXIT_INPUT, result.output
    assert "is not a quarter" in result.output and "Traceback" not in result.output
