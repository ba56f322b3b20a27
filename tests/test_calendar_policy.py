"""The calendar as policy data: policy/calendars/<client>.yaml and policy/staffing.yaml read into
the one model the gate's time rules use (pipeline.load.calendar_model, pipeline.gate.windows), the
profile's older keys still read, and every mistake named with its file and line."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from portfolio import copy_example, write

from pipeline.errors import InputError
from pipeline.gate.windows import check_apply_time, next_window
from pipeline.load.calendar_model import recur
from pipeline.load.portfolio import collect_problems, load_portfolio
from pipeline.model import RiskLevel

CAL = "policy/calendars/fabrikam-labs.yaml"
PROFILE = "policy/clients/fabrikam-labs.yaml"


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return copy_example(tmp_path)


def problems(repo: Path) -> list[InputError]:
    return collect_problems(repo)[1]


def test_the_example_calendars_load_into_one_model(repo: Path) -> None:
    portfolio = load_portfolio(repo)
    fabrikam = portfolio.clients["fabrikam-labs"]
    assert [w.label for w in fabrikam.calendar.windows] == ["09:00-12:00", "14:00-16:00"]
    assert fabrikam.weekend_coverage
    # The calendar's DKIM rotation with a selector is the documented rotation schedule.
    scheduled = fabrikam.dkim["fabrikam.example"].scheduled_for("s2026")
    assert scheduled is not None and scheduled.planned == date(2026, 12, 1)
    northwind = portfolio.clients["northwind-health"]
    assert northwind.calendar.rollback_hours == {RiskLevel.LOW: 4}
    assert northwind.calendar.on_call_on(date(2026, 12, 1)) == ("mhara",)
    assert portfolio.clients["contoso-retail"].freeze_on(date(2026, 12, 24)) is not None


def test_the_profiles_older_keys_still_work(repo: Path) -> None:
    (repo / CAL).unlink()
    write(
        repo / PROFILE,
        (repo / PROFILE).read_text()
        + 'change_window:\n  days: [mon]\n  start: "14:00"\n  end: "16:00"\n'
        + "freezes:\n  - {start: '2026-12-01', end: '2026-12-02', reason: 'Audit'}\n"
        + "weekend_coverage: true\n",
    )
    client = load_portfolio(repo).clients["fabrikam-labs"]
    assert [w.label for w in client.calendar.windows] == ["14:00-16:00"]
    assert client.freeze_on(date(2026, 12, 2)) is not None and client.weekend_coverage


def test_one_key_in_both_places_is_refused(repo: Path) -> None:
    write(repo / PROFILE, (repo / PROFILE).read_text() + "weekend_coverage: false\n")
    found = problems(repo)[0]  # (then its zones have no loaded profile)
    assert found.file == repo / CAL
    assert "weekend_coverage is defined here and as `weekend_coverage:` in" in found.message


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (
            lambda t: t.replace('start: "14:00"', 'start: "11:00"'),
            "the windows 09:00-12:00 and 11:00-16:00 overlap on tue, thu",
        ),
        (lambda t: t.replace("recurrence: quarterly", "recurrence: daily"), "is not one of"),
        (
            lambda t: t.replace(
                "domain: fabrikam.example\n    name: news", "domain: nope.example\n    name: news"
            ),
            "nope.example is not one of this client's domains",
        ),
        (
            lambda t: t.replace('"2027-01-12"', '"2026-11-01"'),
            "escalation steps must be planned in order",
        ),
        (lambda t: t + "rollback_hours: {medium: 4}\n", "rollback_hours.medium: 4 h is shorter"),
    ],
)
def test_calendar_mistakes_are_named(repo: Path, edit: object, message: str) -> None:
    path = repo / CAL
    path.write_text(edit(path.read_text()), encoding="utf-8")  # type: ignore[operator]
    found = problems(repo)
    assert found, message
    assert message in found[0].message
    assert found[0].file == path


def test_a_calendar_without_a_profile_is_refused(repo: Path) -> None:
    write(repo / "policy/calendars/tailspin.yaml", "weekend_coverage: true\n")
    (found,) = problems(repo)
    assert "calendar for 'tailspin', which has no client profile" in found.message


def test_staffed_spans_must_be_spans_of_one_day(repo: Path) -> None:
    path = repo / "policy/staffing.yaml"
    path.write_text(path.read_text().replace('fri: ["07:00-13:00"]', 'fri: ["13:00-07:00"]'))
    (found,) = problems(repo)
    assert "13:00-07:00 is not a span of one day" in found.message
    assert found.file == path and found.line is not None


def test_per_risk_windows_blackouts_and_staffed_hours(repo: Path) -> None:
    fabrikam = load_portfolio(repo).clients["fabrikam-labs"]
    afternoon = utc("2026-12-01T13:30")  # Tue 14:30 Berlin: the low-only window
    assert check_apply_time(fabrikam, afternoon, 2, RiskLevel.LOW).ok
    medium = check_apply_time(fabrikam, afternoon, 8, RiskLevel.MEDIUM)
    assert not medium.ok and medium.rule == "outside-window"
    assert "which takes low only: not a medium-risk change" in medium.reason
    # The next window for a medium change is Wednesday morning, not Tuesday afternoon.
    assert next_window(fabrikam, afternoon, 8, RiskLevel.MEDIUM).rollback.start == utc(
        "2026-12-02T08:00"
    )
    northwind = load_portfolio(repo).clients["northwind-health"]
    eve = check_apply_time(northwind, utc("2026-12-24T15:00"), 8)  # Thu 09:00 Chicago
    assert not eve.ok and "blackout 2026-12-24: Christmas Eve" in eve.reason
    # Thursday 10:30 Chicago + 24 h ends Friday 10:30, staffed (Friday 07:00-13:00)...
    assert check_apply_time(northwind, utc("2026-12-03T16:30"), 24).ok
    # ... + 28 h ends Friday 14:30: the Friday rule, coverable by an on-call owner.
    friday = check_apply_time(northwind, utc("2026-12-03T16:30"), 28)
    assert not friday.ok and friday.rule == "unstaffed" and friday.coverable
    assert check_apply_time(northwind, utc("2026-12-03T16:30"), 28, on_call=True).ok
    # So the next window for it is the next Tuesday: 08:00 + 28 h ends Wednesday 12:00, staffed.
    found = next_window(northwind, utc("2026-12-03T16:30"), 28)
    assert found.ok and found.rollback.start == utc("2026-12-08T14:00")


def test_weekend_coverage_counts_as_staffed(repo: Path) -> None:
    fabrikam = load_portfolio(repo).clients["fabrikam-labs"]
    # Thursday 09:00 Berlin + 72 h ends Sunday 09:00: covered, so staffed.
    assert check_apply_time(fabrikam, utc("2026-12-03T08:00"), 72).ok
    # Wednesday 09:00 + 56 h ends Friday 17:00: the Friday afternoon is not covered.
    late = check_apply_time(fabrikam, utc("2026-12-02T08:00"), 56)
    assert not late.ok and late.rule == "unstaffed"


def test_recurrences_keep_the_day_of_the_month() -> None:
    assert recur(date(2026, 1, 31), "monthly", 1) == date(2026, 2, 28)
    assert recur(date(2026, 1, 31), "quarterly", 1) == date(2026, 4, 30)
    assert recur(date(2024, 2, 29), "yearly", 1) == date(2025, 2, 28)
    assert recur(date(2026, 12, 16), "quarterly", 1) == date(2027, 3, 16)
    assert recur(date(2026, 12, 1), "weekly", 2) == date(2026, 12, 15)
