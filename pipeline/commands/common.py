"""What every dmarcops command shares: turning user-facing errors into a message and exit code."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from functools import wraps
from typing import ParamSpec, TypeVar

import click

from pipeline.clock import CommandTime, mutating_time
from pipeline.errors import DmarcopsError, GateRefused, InputError
from pipeline.live.dns import Nameservers
from pipeline.load.portfolio import Portfolio

P = ParamSpec("P")
R = TypeVar("R")
F = TypeVar("F", bound=Callable[..., object])


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


def command_time(
    at: datetime | None, command: str, portfolio: Portfolio, clients: Iterable[str] | None = None
) -> CommandTime:
    """The time a mutating command acts at: the system clock, or an injected one only when every
    client it touches (default: all) is on the sandbox, marked simulated (pipeline.clock)."""
    ids = portfolio.clients if clients is None else clients
    providers = [
        portfolio.providers[portfolio.clients[c].provider].options
        for c in ids
        if c in portfolio.clients and portfolio.clients[c].provider in portfolio.providers
    ]
    return mutating_time(at, command, providers)


def now_from(at: datetime | None) -> datetime:
    """--at (or DMARCOPS_NOW, through the option's envvar) as UTC; else the current time."""
    return at.replace(tzinfo=UTC) if at is not None else datetime.now(UTC)


def injected_clock(at: datetime | None) -> Callable[[], datetime] | None:
    """A fixed clock when the time was injected, so every timestamp of the run agrees with it."""
    if at is None:
        return None
    fixed = now_from(at)
    return lambda: fixed


def parse_nameserver(text: str) -> tuple[str, int | None]:
    """HOST, HOST:PORT or [IPv6]:PORT."""
    text = text.strip()
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port = rest.removeprefix(":")
    elif text.count(":") == 1:
        host, _, port = text.partition(":")
    else:
        host, port = text, ""
    if not host or (port and not port.isdigit()):
        raise InputError(
            f"cannot read nameserver {text!r}", hint="Write HOST, HOST:PORT or [IPv6]:PORT."
        )
    return host, int(port) if port else None


def nameservers_from(values: tuple[str, ...], timeout: float) -> Nameservers | None:
    if not values:
        return None
    parsed = [parse_nameserver(v) for part in values for v in part.split(",") if v.strip()]
    ports = {p for _, p in parsed if p is not None}
    if len(ports) > 1:
        raise InputError("all --nameserver values must use the same port")
    return Nameservers(tuple(h for h, _ in parsed), ports.pop() if ports else 53, timeout)


def at_option(help_text: str = "Act as if it were this UTC time.") -> Callable[[F], F]:
    return click.option(
        "--at",
        type=click.DateTime(formats=AT_FORMATS),
        envvar="DMARCOPS_NOW",
        help=f"{help_text} (env DMARCOPS_NOW)",
    )


def nameserver_option(
    help_text: str = "Resolver for SPF lookup budgets, HOST[:PORT] (repeatable).",
) -> Callable[[F], F]:
    return click.option(
        "--nameserver",
        "nameservers",
        multiple=True,
        envvar="DMARCOPS_NAMESERVERS",
        help=f"{help_text} (env DMARCOPS_NAMESERVERS, comma-separated)",
    )
