"""Change windows, freezes and rollback windows, with injected time (no sleeping, no wall clock)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, time
from pathlib import Path

from click.testing import CliRunner
from portfolio import copy_example

from pipeline.cli import main
from pipeline.gate.windows import check_apply_time, next_window
from pipeline.load.calendar_model import ChangeWindow, Freeze
from pipeline.load.portfolio import ClientProfile

NY = ClientProfile(
    id="acme",
    name="Acme",
    provider="sandbox",
    domains=("acme.example",),
    timezone="America/New_York",
)


def with_calendar(client: ClientProfile, **changes: object) -> ClientProfile:
    return replace(client, calendar=replace(client.calendar, **changes))


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def test_default_window_is_tuesday_to_thursday_morning_in_client_time() -> None:
    # 2026-12-01 is a Tuesday; 10:00 in New York is 15:00 UTC (EST, UTC-5).
    assert check_apply_time(NY, utc("2026-12-01T15:00"), 8).ok
    assert not check_apply_time(NY, utc("2026-12-01T13:59"), 8).ok  # 08:59 local
    assert not check_apply_time(NY, utc("2026-12-01T17:00"), 8).ok  # 12:00 local: end excluded
    monday = check_apply_time(NY, utc("2026-11-30T15:00"), 8)
    assert not monday.ok
    assert "outside Acme's change window" in monday.reason
    assert "Mon 10:00 America/New_York" in monday.reason


def test_daylight_saving_moves_the_window_in_utc() -> None:
    berlin = replace(NY, timezone="Europe/Berlin")
    # 09:30 Berlin is 07:30 UTC in summer time (CEST) and 08:30 UTC in winter (CET).
    assert check_apply_time(berlin, utc("2026-10-20T07:30"), 2).ok
    assert not check_apply_time(berlin, utc("2026-10-27T07:30"), 2).ok
    assert check_apply_time(berlin, utc("2026-10-27T08:30"), 2).ok


def test_inside_a_freeze_is_refused_with_its_reason() -> None:
    frozen = with_calendar(
        NY, freezes=(Freeze(date(2026, 12, 1), date(2026, 12, 3), "Year-end close"),)
    )
    decision = check_apply_time(frozen, utc("2026-12-01T15:00"), 8)
    assert not decision.ok
    assert "Year-end close" in decision.reason


def test_rollback_window_may_not_run_into_a_freeze() -> None:
    frozen = with_calendar(NY, freezes=(Freeze(date(2026, 12, 4), date(2026, 12, 10), "Peak"),))
    # Thursday 11:00 local + 24 h ends Friday 2026-12-04: inside the freeze.
    decision = check_apply_time(frozen, utc("2026-12-03T16:00"), 24)
    assert not decision.ok
    assert "rollback window would run into the change freeze" in decision.reason
    assert check_apply_time(frozen, utc("2026-12-03T16:00"), 4).ok


def test_rollback_window_may_not_run_into_an_unstaffed_weekend() -> None:
    # Thursday + 72 h (p=reject) reaches Sunday.
    decision = check_apply_time(NY, utc("2026-12-03T15:00"), 72)
    assert not decision.ok
    assert "weekend" in decision.reason
    covered = with_calendar(NY, weekend_coverage=True)
    assert check_apply_time(covered, utc("2026-12-03T15:00"), 72).ok
    assert check_apply_time(NY, utc("2026-12-01T15:00"), 72).ok  # Tuesday + 72 h = Friday


def test_next_window_skips_days_freezes_and_weekend_rollbacks() -> None:
    friday = utc("2026-12-04T12:00")
    decision = next_window(NY, friday, 8)
    assert decision.ok and decision.window is not None
    assert decision.window.start == utc("2026-12-08T14:00")  # Tuesday 09:00 EST
    # Thursday afternoon with a 72 h rollback: Thursday is past, and Thursday would reach Sunday.
    decision = next_window(NY, utc("2026-12-03T14:00"), 72)
    assert decision.rollback.start == utc("2026-12-08T14:00")
    frozen = with_calendar(NY, freezes=(Freeze(date(2026, 12, 8), date(2026, 12, 10), "Audit"),))
    decision = next_window(frozen, friday, 8)
    assert decision.rollback.start == utc("2026-12-15T14:00")


def test_inside_an_open_window_the_next_window_is_now() -> None:
    now = utc("2026-12-01T15:30")
    decision = next_window(NY, now, 8)
    assert decision.rollback.start == now


def test_custom_window_days_and_hours() -> None:
    custom = with_calendar(NY, windows=(ChangeWindow(frozenset({0}), time(14, 0), time(16, 0)),))
    assert check_apply_time(custom, utc("2026-11-30T19:30"), 2).ok  # Monday 14:30 local
    assert not check_apply_time(custom, utc("2026-12-01T19:30"), 2).ok  # Tuesday


def test_window_command(tmp_path: Path) -> None:
    repo = copy_example(tmp_path)
    result = CliRunner().invoke(
        main, ["--repo", str(repo), "window", "contoso-retail", "--at", "2026-11-28T10:00:00Z"]
    )
    assert result.exit_code == 0, result.output
    # The holiday freeze runs to 2027-01-04: the next window is the first Tuesday after it.
    assert (
        "2027-01-05 14:00-17:00 UTC (Tue 2027-01-05 09:00-12:00 America/New_York)" in result.output
    )
    reject = CliRunner().invoke(
        main,
        [
            "--repo",
            str(repo),
            "window",
            "northwind-health",
            "--risk",
            "reject",
            "--at",
            "2026-12-03T10:00:00Z",
        ],
    )
    assert "72 h" in reject.output
    assert "Tue 2026-12-08 08:00-11:00 America/Chicago" in reject.output
    unknown = CliRunner().invoke(main, ["--repo", str(repo), "window", "nobody"])
    assert unknown.exit_code == 1
