"""The root group of `dmarcops` with lazily imported commands: LAZY_COMMANDS names each command's
module and the start of its help, so that `dmarcops --help` lists the commands without importing
them. pipeline/cli.py builds `main` on LazyGroup and re-exports these names.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Mapping, MutableMapping
from typing import Any

import click

from pipeline.commands.common import DmarcopsGroup

# The commands other modules define (pipeline/commands/<module>.py, each with a `register`):
# name -> (module, the start of its help: enough for the listing, which shows at most 80
# characters). The module is imported when the command runs; `dmarcops --help` lists the
# commands from this table without importing any of them.
# tests/test_imports.py checks the table against the modules' commands.
LAZY_COMMANDS: dict[str, tuple[str, str]] = {
    "apply": (
        "apply",
        "Apply an approved plan: check requests, approvals and the window; lock the client; plan again and refuse",
    ),
    "approve": (
        "approvals",
        "Sign your approval of one change request as planned in the plan file: it counts for that plan hash and",
    ),
    "audit": ("records", "Check the audit trail (changes/ledger.jsonl and changes/records/)."),
    "calendar": (
        "calendar",
        "Print the change calendar: per client, its change windows, freezes and blackouts in the range, its scheduled",
    ),
    "close": (
        "records",
        "Log the outcome of a change and seal its record: it is never edited again; a follow-up is a new record",
    ),
    "drift": (
        "drift",
        "Compare live DNS with the zone files and the last change records, and report every owned record someone",
    ),
    "evidence": (
        "approvals",
        "Evidence sealed by hash under changes/evidence/: the client's approving e-mail.",
    ),
    "github": (
        "github",
        "Run inside GitHub Actions: the privileged gate (`gate`, on workflow_run), the merge and scheduled runs,",
    ),
    "init": (
        "records",
        "Seal the policy of record: every file under policy/ (roster included) as it is now becomes the first,",
    ),
    "keygen": (
        "approvals",
        "Create an Ed25519 key for signing approvals and print its public key, which goes into your entry in policy/roster.yaml",
    ),
    "manual": (
        "manual",
        "Changes that are not DNS record edits: `platform` (a tenant-level setting at a mail platform) and `dkim-switch`",
    ),
    "new": (
        "approvals",
        "Write a change request from the ticket template TYPE under changes/requests/.",
    ),
    "policy": ("records", "The policy of record: what is sealed, what waits for a lead's seal."),
    "recommend": (
        "drift",
        "The recommendations for self-serve clients: what the MSP would change in their records (the zone file",
    ),
    "records": (
        "records",
        "Show and search change records (changes/records/): by client, domain, analyst, risk, date.",
    ),
    "recover": (
        "apply",
        "Finish the change records of an interrupted apply from its journal (changes/journal/): check live DNS",
    ),
    "reports": ("reports", "DMARC aggregate reports: ingest them, and read pass rates from them."),
    "requests": (
        "approvals",
        "Change requests under changes/requests/: one per change, with a real rationale, signed by its author.",
    ),
    "review": (
        "records",
        "Record the post-hoc review of an emergency change (due within 24 hours of it; a later one is recorded",
    ),
    "reviews": ("records", "Post-hoc reviews of emergency changes."),
    "rollback": (
        "apply",
        "Roll back change record RECORD_ID: restore its before-state in the zone files, file an emergency-rollback",
    ),
    "sign-request": (
        "approvals",
        "Sign a change request as its author: writes changes/requests/<ID>.sig.json, an Ed25519 signature over",
    ),
    "shard": (
        "shard",
        "Plan a large portfolio in client shards over a CI matrix, then merge the shard plans into",
    ),
}


class LazyCommands(MutableMapping[str, click.Command]):
    """A group's commands, with those of LAZY_COMMANDS imported on first use (by name, or all of
    them when a name is unknown, so that a command missing from the table still runs)."""

    def __init__(self, group: click.Group, table: Mapping[str, tuple[str, str]]) -> None:
        self._group = group
        self._loaded: dict[str, click.Command] = {}
        self._lazy = dict(table)

    def _load(self, module: str) -> None:
        for name in [n for n, (m, _) in self._lazy.items() if m == module]:
            del self._lazy[name]
        importlib.import_module(f"pipeline.commands.{module}").register(self._group)

    def load_all(self) -> None:
        for module in sorted({m for m, _ in self._lazy.values()}):
            self._load(module)

    def summary(self, name: str) -> str | None:
        """The table's summary of a command not imported yet; None once it is."""
        entry = self._lazy.get(name)
        return entry[1] if entry is not None else None

    def __getitem__(self, name: str) -> click.Command:
        if name not in self._loaded and name in self._lazy:
            self._load(self._lazy[name][0])
        return self._loaded[name]

    def __setitem__(self, name: str, command: click.Command) -> None:
        self._loaded[name] = command
        self._lazy.pop(name, None)

    def __delitem__(self, name: str) -> None:
        self._lazy.pop(name, None)
        self._loaded.pop(name, None)

    def __contains__(self, name: object) -> bool:
        return name in self._loaded or name in self._lazy

    def __iter__(self) -> Iterator[str]:
        return iter(sorted({*self._loaded, *self._lazy}))

    def __len__(self) -> int:
        return len({*self._loaded, *self._lazy})


class LazyGroup(DmarcopsGroup):
    """The root group, its sub-commands imported when used (LAZY_COMMANDS)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.commands = LazyCommands(self, LAZY_COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        found = super().get_command(ctx, cmd_name)
        if found is None and isinstance(self.commands, LazyCommands):
            self.commands.load_all()  # a command the table does not list yet
            found = super().get_command(ctx, cmd_name)
        return found

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """click's listing, with the table's summary for each command not imported."""
        commands = self.commands
        rows: list[tuple[str, click.Command]] = []
        for name in self.list_commands(ctx):
            summary = commands.summary(name) if isinstance(commands, LazyCommands) else None
            command = click.Command(name, help=summary) if summary is not None else commands[name]
            if not command.hidden:
                rows.append((name, command))
        if rows:
            limit = formatter.width - 6 - max(len(name) for name, _ in rows)
            with formatter.section("Commands"):
                formatter.write_dl([(name, c.get_short_help_str(limit)) for name, c in rows])
