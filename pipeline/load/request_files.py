"""Where change requests live, and what the planner reads of one without judging it.

`plan --changed-since` asks which clients a changed request file touches (its `covers:` zones and
its client's domains) before any gate runs; the gate (pipeline.gate.requests) loads, checks and
judges requests and uses the same selector. Both read these from here, below plan and gate, so
that plan need not import the gate (docs/architecture.md).
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from pipeline.errors import InputError
from pipeline.model import RiskLevel

REQUESTS_DIR = Path("changes") / "requests"

# The `covers:` item pattern of change-request.schema.json, for checking selectors given on the CLI.
SELECTOR = re.compile(
    r"^[a-z0-9]([a-z0-9.-]*[a-z0-9])?( (@|[A-Za-z0-9_*][A-Za-z0-9_.-]*)( [A-Z][A-Z0-9]*)?)?$"
)


class CoverableItem(Protocol):
    """What coverage needs of a plan item: a `PlanItem`, or a change read back from plan JSON."""

    @property
    def client(self) -> str: ...
    @property
    def zone(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def type(self) -> str: ...
    @property
    def risk(self) -> RiskLevel: ...


@dataclass(frozen=True)
class Selector:
    """`zone`, `zone name` or `zone name TYPE`; name "@" is the apex (plan items use "")."""

    zone: str
    name: str | None = None
    type: str | None = None

    @classmethod
    def parse(cls, text: str) -> Selector | None:
        if not SELECTOR.match(text):
            return None
        parts = text.split()
        zone = parts[0].lower().rstrip(".")
        name = parts[1].lower() if len(parts) > 1 else None
        if name is not None:
            name = "" if name == "@" else name.removesuffix("." + zone)
        rtype = parts[2].upper() if len(parts) > 2 else None
        return cls(zone, name, rtype)

    def matches(self, item: CoverableItem) -> bool:
        return (
            item.zone.lower() == self.zone
            and (self.name is None or item.name.lower() == self.name)
            and (self.type is None or item.type.upper() == self.type)
        )

    def __str__(self) -> str:
        parts = [self.zone]
        if self.name is not None:
            parts.append(self.name or "@")
        if self.type is not None:
            parts.append(self.type)
        return " ".join(parts)


def client_domains(root: Path, client: str) -> list[str] | None:
    """The client's domains, or None when its profile is unreadable (`validate` reports that)."""
    path = root / "policy" / "clients" / f"{client}.yaml"
    try:
        stamp = path.stat().st_mtime_ns
    except OSError:
        return None
    key = (path, stamp)
    domains = _READ[key] if key in _READ else _client_domains(path, stamp)
    return list(domains) if domains is not None else None


# Profiles the portfolio's loader has read already, by (path, modification time taken before the
# read): 2,500 requests of 1,000 clients read every profile a second time (pipeline.load.portfolio
# calls remember_client_domains).
_READ: dict[tuple[Path, int], tuple[str, ...] | None] = {}
_MAX_READ = 100_000


def remember_client_domains(path: Path, stamp: int, data: object) -> None:
    if len(_READ) >= _MAX_READ:
        _READ.clear()
    _READ[(path, stamp)] = _domains_of(data)


def _domains_of(data: object) -> tuple[str, ...] | None:
    domains = data.get("domains") if isinstance(data, dict) else None
    return tuple(str(d).lower() for d in domains) if isinstance(domains, list) else None


@functools.lru_cache(maxsize=1024)
def _client_domains(path: Path, stamp: int) -> tuple[str, ...] | None:
    # Many requests name the same client: read its profile once per version of the file.
    # Imported here: `plan --changed-since` reads this module for REQUESTS_DIR even when no
    # request changed, and the YAML loader brings jsonschema (tests/test_startup.py).
    from pipeline.load.yamlfile import load_yaml

    try:
        data = load_yaml(path).data
    except InputError:
        return None
    return _domains_of(data)
