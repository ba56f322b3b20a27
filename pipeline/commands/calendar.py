"""`dmarcops calendar`: a thin click function over pipeline.calendar.build_calendar.

Register it on the main group with `register(main)`. Read-only: exit 0 with the calendar, 1 on
bad input (an unknown client, a range that ends before it starts).
"""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path

import click

from pipeline.calendar import build_calendar, this_week
from pipeline.clock import read_only_time
from pipeline.commands.common import AT_FORMATS, echo_warning, reports_errors
from pipeline.errors import InputError
from pipeline.gate.request_loader import collect_requests
from pipeline.load.files import write_output
from pipeline.records.policy_of_record import portfolio_of_record, roster_of_record
from pipeline.records.store import RecordStore
from pipeline.render.calendar import render_json, render_markdown, render_text
from pipeline.render.calendar_ics import render_ics
from pipeline.text.safe import clean

MAX_DAYS = 400  # a calendar longer than a year is a typo in --to


@click.command("calendar")
@click.option("--client", "clients", multiple=True, help="Only this client (repeatable).")
@click.option(
    "--from",
    "start",
    type=click.DateTime(formats=["%Y-%m-%d"]),
    help="First day (YYYY-MM-DD, each client's local date). Default: this week's Monday.",
)
@click.option(
    "--to",
    "end",
    type=click.DateTime(formats=["%Y-%m-%d"]),
    help="Last day, inclusive. Default: the Sunday after --from.",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "markdown", "json", "ics"]),
    default="text",
    show_default=True,
    help="text for people, markdown for a pull request or wiki, json for machines, ics "
    "(iCalendar) to import into a calendar app.",
)
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the calendar to FILE instead of standard output.",
)
@click.option(
    "--at",
    "at",
    type=click.DateTime(formats=AT_FORMATS),
    help="Judge due and overdue as at this UTC time (read-only). Default: the system clock.",
)
@click.pass_obj
@reports_errors
def calendar(
    repo: Path,
    clients: tuple[str, ...],
    start: datetime | None,
    end: datetime | None,
    fmt: str,
    out: Path | None,
    at: datetime | None,
) -> None:
    """Print the change calendar: per client, its change windows, freezes and blackouts in the
    range, its scheduled changes and the open requests with a planned date, each planned, due
    (within a week), overdue (past its planned date and not done: a DKIM rotation past its
    anniversary, an escalation step past its date), frozen (planned inside a freeze) or done
    (with its change record); the conflicts (two changes on one domain in one window, a rollback
    window that would run into a freeze or a weekend or end outside staffed hours, a change on a
    day without a window, a window outside staffed hours); and the change records of the last 60
    days. docs/calendar.md explains each part.

    \b
    Examples:
      dmarcops calendar
      dmarcops calendar --client northwind-health --from 2026-12-01 --to 2026-12-31
      dmarcops calendar --format ics --out change-calendar.ics
      dmarcops calendar --format markdown
    """
    when = read_only_time(at)
    portfolio = portfolio_of_record(repo)
    for client in clients:
        if client not in portfolio.clients:
            raise InputError(
                f"no client {client!r}", hint=f"Clients: {', '.join(sorted(portfolio.clients))}."
            )
    first: date = start.date() if start else this_week(when.now.date())[0]
    last: date = end.date() if end else this_week(first)[1]
    if last < first:
        raise InputError(f"--to {last} is before --from {first}")
    if (last - first).days > MAX_DAYS:
        raise InputError(
            f"{first}..{last} is longer than {MAX_DAYS} days", hint="Ask for a shorter range."
        )
    store = RecordStore(repo / "changes")
    records = store.all()
    executed = {r.request_id for r in records if r.executed_at is not None}
    requests, problems = collect_requests(repo, roster_of_record(repo))
    for problem in problems:
        # A broken request is `requests check`'s to refuse; the calendar shows the rest.
        echo_warning(f"left out: {problem}")
    view = build_calendar(
        portfolio,
        records,
        [r for r in requests if r.id not in executed],
        when.now,
        first,
        last,
        clients,
    )
    if fmt == "ics":
        data = render_ics(view)
        if out is not None:
            _write(out, data.decode("utf-8"))
        else:
            click.echo(data.decode("utf-8"), nl=False)
        return
    text = {"json": render_json, "markdown": render_markdown}.get(fmt, render_text)(view)
    if out is not None:
        _write(out, text)
    else:
        click.echo(text, nl=False)


def _write(path: Path, text: str) -> None:
    write_output(path, text, what="calendar")
    click.echo(f"wrote {clean(str(path))}", err=True)


def register(group: click.Group) -> None:
    group.add_command(calendar)
