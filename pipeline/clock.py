"""Where a mutating command's time comes from: the system clock, in UTC, never the analyst.

A change that may set its own clock can pass any window, freeze or rollback window it likes
(backdate an approval, "apply" a freeze-day change on the day before). So: commands that write
to DNS or to the audit trail (apply, approve, close, review, rollback, the GitHub merge and
scheduled runs) take `system_now()`. An injected time (`--at`, DMARCOPS_NOW) is accepted only
by read-only commands (plan, window, records list, audit) and, for rehearsals, by mutating
commands whose every client is on the embedded sandbox provider; whatever such a run writes is
marked `simulated`, and `audit verify` refuses simulated entries in a production repository.

Tests replace `system_now` (monkeypatch) to stand in for the machine's clock; nothing a user
can type or export reaches it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pipeline.errors import GateRefused

# The sandbox: octoDNS's YamlProvider on a directory of the repository (policy/providers.yaml).
SANDBOX_CLASSES = frozenset({"octodns.provider.yaml.YamlProvider"})


def system_now() -> datetime:
    """The machine's clock in UTC, to the second (records and signatures carry whole seconds)."""
    return datetime.now(UTC).replace(microsecond=0)


@dataclass(frozen=True)
class CommandTime:
    """The time a command acts at, and whether it was injected (a rehearsal: marked simulated)."""

    now: datetime
    simulated: bool

    @property
    def label(self) -> str:
        return " (simulated time)" if self.simulated else ""


def read_only_time(at: datetime | None) -> CommandTime:
    """Read-only commands may look at any moment: they change nothing."""
    if at is None:
        return CommandTime(system_now(), False)
    return CommandTime(at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC), True)


def is_sandbox(provider_options: Mapping[str, Any]) -> bool:
    return str(provider_options.get("class", "")) in SANDBOX_CLASSES


def mutating_time(
    at: datetime | None, command: str, providers: Iterable[Mapping[str, Any]] = ()
) -> CommandTime:
    """The system clock, unless the time was injected and every provider the command touches
    is the sandbox (then the run is a rehearsal and everything it writes is marked simulated).

    `providers` are the option mappings of the providers the command would write through; an
    empty iterable (approve, close, review: no DNS) counts as production unless the caller
    knows the repository is a sandbox and passes the sandbox's options.
    """
    if at is None:
        return CommandTime(system_now(), False)
    touched = list(providers)
    if touched and all(is_sandbox(p) for p in touched):
        return read_only_time(at)
    raise GateRefused(
        f"`dmarcops {command}` uses the system clock: an injected time (--at, DMARCOPS_NOW) is "
        "accepted only for read-only commands and the sandbox",
        hint="Drop --at and unset DMARCOPS_NOW. Windows, freezes and rollback windows are "
        "judged by the time the change really happens.",
    )
