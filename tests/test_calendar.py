"""`dmarcops calendar` on a fixed portfolio and fixed dates, against output written by hand.

Two clients: Acme in New York, whose range spans the end of US daylight saving time (Sunday
2026-11-01: a 09:00 window is 13:00 UTC before it and 14:00 UTC after), with one change of each
conflict kind, an overdue DKIM rotation, an overdue escalation step, a frozen step and a rotation
done by a change record; and Beta in Berlin, with a blackout day. The system clock is set the way
the other tests set it (tests/clockcli.py): Monday 2026-10-26 12:00 UTC.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from datetime import UTC, date, datetime
from pathlib import Path

import icalendar
import pytest
from clockcli import invoke_at
from portfolio import copy_example, write
from signing import JCHEN, reseal
from test_records import make_record

from pipeline.model import RiskLevel
from pipeline.records.record import ChangeType
from pipeline.records.store import RecordStore

NOW = "2026-10-26T12:00:00Z"

ACME = """\
name: Acme Corp
timezone: America/New_York
provider: sandbox
domains: [acme.example, acme-mail.example]
"""
ACME_CALENDAR = """\
windows:
  - {days: [tue, wed, thu], start: "09:00", end: "12:00"}
  # Friday afternoons take low-risk changes, but nobody is staffed then: a conflict.
  - {days: [fri], start: "14:00", end: "16:00", risks: [low]}
freezes:
  - {start: "2026-11-02", end: "2026-11-02", reason: "Board meeting"}
on_call:
  - {analyst: jchen, until: "2026-11-01"}
  - {analyst: sokafor, from: "2026-11-02"}
scheduled:
  # This year's occurrence was done early, by record 2026-0001 on 2026-10-21.
  - {type: dkim-rotation, domain: acme.example, selector: a2026, planned: "2025-10-27", recurrence: yearly}
  # Past its anniversary (2026-09-01) with no record: overdue.
  - {type: dkim-rotation, domain: acme-mail.example, planned: "2025-09-01", recurrence: yearly}
  - type: policy-progression
    domain: acme.example
    steps:
      - {planned: "2026-10-13", target: "p=quarantine; pct=25"}
      - {planned: "2026-10-27", target: "p=quarantine; pct=50"}
      - {planned: "2026-11-02", target: "p=quarantine; pct=100"}
  # Same day, same domain as the second step: one window for two changes.
  - {type: new-sender, domain: acme.example, planned: "2026-10-27", note: "Mailchimp for marketing"}
  # 96 h from Wednesday 09:00 reaches Sunday.
  - {id: spf-flattening, type: other, domain: acme-mail.example, planned: "2026-10-28", risk: high, rollback_hours: 96}
  # 96 h from Thursday 09:00 reaches Monday 2026-11-02, the board meeting freeze.
  - {type: delegation, domain: acme-mail.example, name: bounce, planned: "2026-10-29", risk: high, rollback_hours: 96}
  # 12 h from Tuesday 09:00 ends at 21:00, after the desk closes at 20:00.
  - {type: delegation, domain: acme.example, name: news, planned: "2026-11-03", rollback_hours: 12}
  # 54 h from Wednesday 09:00 ends on Friday at 15:00: the Friday rule.
  - {id: tls-rpt-mailbox, type: other, domain: acme-mail.example, planned: "2026-11-04", rollback_hours: 54}
  # A Saturday: no window.
  - {id: bimi-logo, type: other, domain: acme.example, planned: "2026-11-07", risk: low}
"""
BETA = """\
name: Beta GmbH
timezone: Europe/Berlin
provider: sandbox
domains: [beta.example]
"""
BETA_CALENDAR = """\
blackouts:
  - {date: "2026-10-28", reason: "Works council meeting"}
weekend_coverage: true
on_call: mhara
"""


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = copy_example(tmp_path)
    for part in ("zones", "sandbox", "changes/requests"):
        shutil.rmtree(root / part)
    for directory in ("clients", "calendars"):
        for path in (root / "policy" / directory).glob("*.yaml"):
            path.unlink()
    write(root / "policy/clients/acme.yaml", ACME)
    write(root / "policy/calendars/acme.yaml", ACME_CALENDAR)
    write(root / "policy/clients/beta.yaml", BETA)
    write(root / "policy/calendars/beta.yaml", BETA_CALENDAR)
    reseal(root)
    store = RecordStore(root / "changes")
    done = datetime(2026, 10, 21, 14, 5, tzinfo=UTC)
    store.create(
        lambda rid: replace(
            make_record(
                rid, client="acme", zone="acme.example", risk=RiskLevel.LOW, executed_at=done
            ),
            change_type=ChangeType.DKIM_ROTATION,
            client_name="Acme Corp",
        ),
        done,
        JCHEN,
    )
    return root


def calendar(repo: Path, *args: str) -> str:
    result = invoke_at(["--repo", str(repo), "calendar", *args, "--at", NOW])
    assert result.exit_code == 0, result.output
    return result.output


# Written by hand: New York is UTC-4 until Sunday 2026-11-01 02:00, then UTC-5; Berlin is UTC+1
# (its summer time ended on 2026-10-25). Acme's staffed hours are the example's
# (policy/staffing.yaml: Mon-Thu 07:00-20:00, Fri 07:00-13:00, the client's own time).
EXPECTED_TEXT = """\
Change calendar 2026-10-26..2026-11-08 (as of 2026-10-26 12:00 UTC)

Acme Corp (acme, America/New_York), today 2026-10-26, on call: jchen
  windows:
    Tue 2026-10-27 09:00-12:00 EDT (13:00-16:00 UTC), all risks
    Wed 2026-10-28 09:00-12:00 EDT (13:00-16:00 UTC), all risks
    Thu 2026-10-29 09:00-12:00 EDT (13:00-16:00 UTC), all risks
    Fri 2026-10-30 14:00-16:00 EDT (18:00-20:00 UTC), low only
    Tue 2026-11-03 09:00-12:00 EST (14:00-17:00 UTC), all risks
    Wed 2026-11-04 09:00-12:00 EST (14:00-17:00 UTC), all risks
    Thu 2026-11-05 09:00-12:00 EST (14:00-17:00 UTC), all risks
    Fri 2026-11-06 14:00-16:00 EST (19:00-21:00 UTC), low only
  frozen: 2026-11-02..2026-11-02 Board meeting
  changes:
    OVERDUE 2026-09-01  dkim-rotation acme-mail.example  [low risk, 2 h rollback; yearly, occurrence 2]
    OVERDUE 2026-10-13  policy-progression acme.example -> p=quarantine; pct=25  [medium risk, 8 h rollback; step 1 of 3]
    DONE    2026-10-27  dkim-rotation acme.example (a2026)  [low risk, 2 h rollback; yearly, occurrence 2; record 2026-0001]
    DUE     2026-10-27  new-sender acme.example  [low risk, 2 h rollback; Mailchimp for marketing]
    DUE     2026-10-27  policy-progression acme.example -> p=quarantine; pct=50  [medium risk, 8 h rollback; step 2 of 3]
    DUE     2026-10-28  other acme-mail.example  [high risk, 96 h rollback]
    DUE     2026-10-29  delegation bounce.acme-mail.example  [high risk, 96 h rollback]
    FROZEN  2026-11-02  policy-progression acme.example -> p=quarantine; pct=100  [medium risk, 8 h rollback; step 3 of 3]
    PLANNED 2026-11-03  delegation news.acme.example  [medium risk, 12 h rollback]
    PLANNED 2026-11-04  other acme-mail.example  [medium risk, 54 h rollback]
    PLANNED 2026-11-07  other acme.example  [low risk, 2 h rollback]
  conflicts:
    2026-10-27 same-window: new-sender acme.example and policy-progression acme.example -> p=quarantine; pct=50 are planned in the same change window (Tue 2026-10-27 09:00 America/New_York): two changes on acme.example in one window
    2026-10-28 rollback-into-weekend: other acme-mail.example (high risk, 96 h) on Wed 2026-10-28: the 96 h rollback window would run into the weekend (2026-10-31) and the client profile does not say weekends are covered (an on-call owner named in the request can cover it)
    2026-10-29 rollback-into-freeze: delegation bounce.acme-mail.example (high risk, 96 h) on Thu 2026-10-29: the 96 h rollback window would run into the change freeze 2026-11-02..2026-11-02 (Board meeting)
    2026-10-30 window-unstaffed: the 14:00-16:00 window on Fri 2026-10-30 is outside staffed hours (Fri: 07:00-13:00 America/New_York)
    2026-11-03 rollback-unstaffed: delegation news.acme.example (medium risk, 12 h) on Tue 2026-11-03: the 12 h rollback window would end outside staffed hours (Tue 2026-11-03 21:00 America/New_York; staffed that day: 07:00-20:00): nobody would be watching when it closes (an on-call owner named in the request can cover it)
    2026-11-04 rollback-unstaffed: other acme-mail.example (medium risk, 54 h) on Wed 2026-11-04: the 54 h rollback window would end outside staffed hours (Fri 2026-11-06 15:00 America/New_York; staffed that day: 07:00-13:00): nobody would be watching when it closes (an on-call owner named in the request can cover it)
    2026-11-06 window-unstaffed: the 14:00-16:00 window on Fri 2026-11-06 is outside staffed hours (Fri: 07:00-13:00 America/New_York)
    2026-11-07 no-window: other acme.example is planned on Sat 2026-11-07, when no change window takes a low-risk change
  changed in the last 60 days:
    2026-10-21 14:05 UTC  #2026-0001  acme.example  DKIM rotation, low, open, by jchen

Beta GmbH (beta, Europe/Berlin), today 2026-10-26, on call: mhara
  windows:
    Tue 2026-10-27 09:00-12:00 CET (08:00-11:00 UTC), all risks
    Thu 2026-10-29 09:00-12:00 CET (08:00-11:00 UTC), all risks
    Tue 2026-11-03 09:00-12:00 CET (08:00-11:00 UTC), all risks
    Wed 2026-11-04 09:00-12:00 CET (08:00-11:00 UTC), all risks
    Thu 2026-11-05 09:00-12:00 CET (08:00-11:00 UTC), all risks
  blackout: 2026-10-28 Works council meeting
  changes: none planned
  conflicts: none
  changed in the last 60 days: nothing

1 done, 2 overdue, 1 frozen, 4 due, 3 planned; 8 conflict(s)
"""


def test_the_calendar_as_text_matches_the_hand_written_one(repo: Path) -> None:
    assert calendar(repo, "--from", "2026-10-26", "--to", "2026-11-08") == EXPECTED_TEXT


def test_one_conflict_of_each_kind(repo: Path) -> None:
    data = json.loads(
        calendar(repo, "--from", "2026-10-26", "--to", "2026-11-08", "--format", "json")
    )
    kinds = [c["kind"] for c in data["clients"][0]["conflicts"]]
    assert sorted(set(kinds)) == sorted(data["conflict_kinds"])
    acme = data["clients"][0]
    statuses = {c["uid"]: c["status"] for c in acme["changes"]}
    assert statuses["change.acme.dkim-rotation-a2026-acme.example.2@dmarcops"] == "done"
    assert acme["changes"][2]["record"] == "2026-0001"
    assert acme["changes"][2]["planned"] == "2026-10-27"
    assert acme["recent"][0]["record"] == "2026-0001"
    # DST: the same 09:00 window is 13:00 UTC before Sunday 2026-11-01 and 14:00 UTC after.
    assert acme["windows"][0]["start"] == "2026-10-27T13:00:00Z"
    assert acme["windows"][0]["start_local"] == "2026-10-27T09:00:00-04:00"
    assert acme["windows"][4]["start"] == "2026-11-03T14:00:00Z"
    assert acme["windows"][4]["start_local"] == "2026-11-03T09:00:00-05:00"


def test_the_default_range_is_this_week_and_one_client_can_be_asked_for(repo: Path) -> None:
    text = calendar(repo, "--client", "beta")
    assert text.startswith("Change calendar 2026-10-26..2026-11-01 (as of 2026-10-26 12:00 UTC)")
    assert "Acme" not in text
    assert "Thu 2026-10-29 09:00-12:00 CET (08:00-11:00 UTC)" in text
    assert "Tue 2026-11-03" not in text


def ics_events(repo: Path, *args: str) -> dict[str, icalendar.Event]:
    result = invoke_at(
        [
            "--repo",
            str(repo),
            "calendar",
            "--from",
            "2026-10-26",
            "--to",
            "2026-11-08",
            "--format",
            "ics",
            *args,
        ]
    )
    assert result.exit_code == 0, result.output
    parsed = icalendar.Calendar.from_ical(result.output)
    return {str(e["UID"]): e for e in parsed.walk("VEVENT")}


def test_the_icalendar_has_one_event_per_window_freeze_and_change(repo: Path) -> None:
    events = ics_events(repo, "--at", NOW)
    # Acme 8 windows + Beta 5; 1 freeze; 1 blackout; 11 changes.
    assert len(events) == 8 + 5 + 1 + 1 + 11
    before = events["window.acme.20261027.1@dmarcops"]
    after = events["window.acme.20261103.1@dmarcops"]
    assert before.decoded("dtstart") == datetime(2026, 10, 27, 13, 0, tzinfo=UTC)
    assert after.decoded("dtstart") == datetime(2026, 11, 3, 14, 0, tzinfo=UTC)
    assert str(after.decoded("dtstart").tzinfo) == "America/New_York"
    assert after["DTSTART"].params["TZID"] == "America/New_York"
    assert str(events["window.acme.20261106.1@dmarcops"]["SUMMARY"]) == (
        "Acme Corp: change window (low only)"
    )
    freeze = events["freeze.acme.20261102@dmarcops"]
    assert freeze.decoded("dtstart") == date(2026, 11, 2)
    assert freeze.decoded("dtend") == date(2026, 11, 3)  # exclusive
    assert str(freeze["SUMMARY"]) == "Acme Corp: change freeze"
    step = events["change.acme.policy-progression-acme.example.step2@dmarcops"]
    assert str(step["SUMMARY"]) == (
        "Acme Corp: policy-progression acme.example -> p=quarantine; pct=50 [due]"
    )
    assert step.decoded("dtstart") == date(2026, 10, 27)
    assert "two changes on one domain in one change window" in str(step["DESCRIPTION"])
    overdue = events["change.acme.dkim-rotation-acme-mail.example.2@dmarcops"]
    assert "overdue" in str(overdue["SUMMARY"]) and int(overdue["PRIORITY"]) == 1
    assert events["blackout.beta.20261028@dmarcops"].decoded("dtstart") == date(2026, 10, 28)
    assert all(
        e.decoded("dtstamp") == datetime(2026, 10, 26, 12, 0, tzinfo=UTC) for e in events.values()
    )
    timezones = {
        str(tz["TZID"])
        for tz in icalendar.Calendar.from_ical(
            invoke_at(["--repo", str(repo), "calendar", "--format", "ics", "--at", NOW]).output
        ).walk("VTIMEZONE")
    }
    assert timezones == {"America/New_York", "Europe/Berlin"}


def test_uids_are_stable_so_a_reimport_updates_the_events(repo: Path) -> None:
    first = ics_events(repo, "--at", NOW)
    later = ics_events(repo, "--at", "2026-10-29T12:00:00Z")
    assert set(first) == set(later)
    uid = "change.acme.policy-progression-acme.example.step2@dmarcops"
    assert "[due]" in str(first[uid]["SUMMARY"]) and "[overdue]" in str(later[uid]["SUMMARY"])


def test_markdown_escapes_what_the_policy_files_say(repo: Path) -> None:
    calendar_file = repo / "policy/calendars/beta.yaml"
    calendar_file.write_text(
        BETA_CALENDAR.replace("Works council meeting", "Works *council* <b>| @team"),
        encoding="utf-8",
    )
    reseal(repo)
    text = calendar(repo, "--client", "beta", "--format", "markdown")
    assert "Works \\*council\\* \\<b\\>\\| &#64;team" in text
    assert "<b>" not in text
    assert "### Beta GmbH (`beta`, Europe/Berlin)" in text


def test_an_unknown_client_and_a_backwards_range_are_refused(repo: Path) -> None:
    unknown = invoke_at(["--repo", str(repo), "calendar", "--client", "nope", "--at", NOW])
    assert unknown.exit_code == 1 and "no client 'nope'" in unknown.output
    backwards = invoke_at(
        ["--repo", str(repo), "calendar", "--from", "2026-11-02", "--to", "2026-11-01"]
    )
    assert backwards.exit_code == 1 and "is before --from" in backwards.output
