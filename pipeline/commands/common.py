"""What every dmarcops command shares: turning user-facing errors into a message and exit code."""

from __future__ import annotations

import sys
from collections.abc import Callable
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
