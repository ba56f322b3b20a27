"""What the record commands share (pipeline.commands.records, .audit, .review): the store of
the repository the command runs in, the time it acts at, and the `--at` option."""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path
from typing import ParamSpec, TypeVar

import click

from pipeline.clock import CommandTime, is_sandbox, read_only_time
from pipeline.commands.common import command_time
from pipeline.errors import DmarcopsError
from pipeline.records.policy_of_record import portfolio_of_record
from pipeline.records.record import (
    parse_time,
)
from pipeline.records.store import RecordStore

P = ParamSpec("P")
R = TypeVar("R")
_BARE_DATE = re.compile(r"^\s*\d{4}-\d{2}-\d{2}\s*$")


def _store() -> RecordStore:
    root = click.get_current_context().obj
    return RecordStore((root if isinstance(root, Path) else Path.cwd()) / "changes")


def _now(at: str | None) -> datetime:
    return read_only_time(parse_time(at, what="--at / DMARCOPS_NOW") if at else None).now


def _mutating_now(at: str | None, command: str, record_id: str) -> CommandTime:
    """The system clock; a typed time only when the record's client is on the sandbox."""
    store = _store()
    client = store.get(record_id).client  # an unknown id is reported first, as itself
    repo = store.changes_dir.parent
    typed = parse_time(at, what="--at / DMARCOPS_NOW") if at else None
    return command_time(typed, command, portfolio_of_record(repo), {client})


def _sandbox_clients(store: RecordStore) -> frozenset[str]:
    """The clients whose provider is the sandbox: the only ones a simulated record may be for.
    A portfolio that cannot be read has none (a simulated record is then refused)."""
    try:
        portfolio = portfolio_of_record(store.changes_dir.parent)
    except DmarcopsError:
        return frozenset()
    return frozenset(
        cid
        for cid, client in portfolio.clients.items()
        if client.provider in portfolio.providers
        and is_sandbox(portfolio.providers[client.provider].options)
    )


_at_option = click.option(
    "--at",
    "at",
    envvar="DMARCOPS_NOW",
    metavar="TIME",
    help="Act as if it were this UTC time (ISO 8601, e.g. 2026-06-09T17:30:00Z; env DMARCOPS_NOW).",
)
