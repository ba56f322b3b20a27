"""What every dmarcops command shares: turning user-facing errors into a message and exit code."""

from __future__ import annotations

import sys
from collections.abc import Callable
from datetime import UTC, datetime
from functools import wraps
from typing import ParamSpec, TypeVar

import click

from pipeline.errors import DmarcopsError, GateRefused

P = ParamSpec("P")
R = TypeVar("R")


def reports_errors(func: Callable[P, R]) -> Callable[P, R]:
    """Bad input and refused gates print one message (file, line, what to do) and exit with the
    product.md code; only bugs show a traceback."""

    @wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return func(*args, **kwargs)
        except DmarcopsError as exc:
            label = "refused: " if isinstance(exc, GateRefused) else "error: "
            click.echo(click.style(label, fg="red", bold=True) + str(exc), err=True)
            sys.exit(exc.exit_code)

    return wrapper


# --at everywhere: time is injectable (tests, rehearsals) and read as UTC.
AT_FORMATS = ["%Y-%m-%dT%H:%M:%SZ", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M", "%Y-%m-%d"]


def now_from(at: datetime | None) -> datetime:
    """--at (or DMARCOPS_NOW, through the option's envvar) as UTC; else the current time."""
    return at.replace(tzinfo=UTC) if at is not None else datetime.now(UTC)


def injected_clock(at: datetime | None) -> Callable[[], datetime] | None:
    """A fixed clock when the time was injected, so every timestamp of the run agrees with it."""
    if at is None:
        return None
    fixed = now_from(at)
    return lambda: fixed
