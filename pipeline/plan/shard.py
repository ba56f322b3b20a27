"""Planning a portfolio that outgrows one runner: client shards for an Actions matrix, and the
merge of the shard plans back into the one plan a single run would have made.

GitHub Actions runs the shards (a matrix job, docs/github.md "Sharded plans"); dmarcops only
cuts the portfolio and puts the pieces back together:

- `split` cuts the clients, in the portfolio's own order (zones/<client>/ sorted by name, each
  client's zone files sorted by name: the order `dmarcops plan` plans them in), into contiguous
  runs of about the same number of zones. Contiguous, so that the shard plans concatenated in
  shard order list their zones and changes exactly as the full plan does.
- `merge` takes the partition and one JSON plan per shard (`dmarcops plan --client ... --at T
  --format json`), refuses a missing, repeated, overlapping or foreign shard, shards planned at
  different times or under different pending policy edits, and writes the plan JSON a single
  `dmarcops plan --at T --format json` would have written, byte for byte: same changes, zones,
  summary and plan hash. The one gate then judges that one plan once
  (`dmarcops requests check --plan plan.json`).
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.errors import GateRefused, InputError
from pipeline.load.files import is_real_dir
from pipeline.load.jsonfile import load_json
from pipeline.model import RiskLevel
from pipeline.text.safe import json_text

SHARDS_FORMAT = "dmarcops-shards/1"
PLAN_FORMAT_VERSION = 1  # pipeline/render/json_plan.py FORMAT_VERSION: the plan JSON merged
# GitHub runs at most 256 jobs from one matrix.
MAX_SHARDS = 256
POLICY_ZONE = "policy"  # the `zone` of a pending policy edit's item (pipeline/plan/build.py)
_CLIENT_ID = re.compile(r"^[a-z0-9][a-z0-9-]*$")  # client.schema.json / change requests


@dataclass(frozen=True)
class Shard:
    number: int  # 1-based, the matrix's `shard`
    clients: tuple[str, ...]
    zones: tuple[tuple[str, str], ...]  # (client, domain), in plan order


def zone_listing(root: Path) -> list[tuple[str, str]]:
    """(client, domain) of every zone file, in the order `dmarcops plan` plans them
    (pipeline/load/portfolio.py walks zones/ the same way). Names only: no file is parsed."""
    zones_dir = root / "zones"
    if not is_real_dir(zones_dir):
        raise InputError(
            "no zones/ directory: nothing to shard",
            file=zones_dir,
            hint="Run from the repository's root, or give --repo.",
        )
    listing: list[tuple[str, str]] = []
    for client_dir in sorted(p for p in zones_dir.iterdir() if p.is_dir()):
        client = client_dir.name
        files = sorted(p for p in client_dir.iterdir() if p.suffix in (".yaml", ".yml"))
        if files and not _CLIENT_ID.match(client):
            raise InputError(
                f"zones/{client}/ is not a client id (lower-case letters, digits and hyphens)",
                file=client_dir,
                hint="Name the directory after its client profile policy/clients/<client>.yaml.",
            )
        listing += [(client, p.name.removesuffix(".yaml").removesuffix(".yml")) for p in files]
    return listing


def shard_count(zones: int, zones_per_shard: int) -> int:
    """How many shards a portfolio of `zones` gets when one runner plans `zones_per_shard`:
    one below the cut-over, never more than a matrix may run."""
    if zones_per_shard < 1:
        raise InputError(
            f"--zones-per-shard {zones_per_shard}: must be at least 1",
            hint="docs/github.md, 'Sharded plans', says how the cut-over was measured.",
        )
    return max(1, min(MAX_SHARDS, math.ceil(zones / zones_per_shard)))


def split(listing: Sequence[tuple[str, str]], shards: int) -> list[Shard]:
    """Contiguous runs of whole clients, the largest as small as it can be, at most `shards`.

    A client is never split: its zones share a provider, a lock and a change window, and
    `dmarcops plan --client` plans all of them.
    """
    if not 1 <= shards <= MAX_SHARDS:
        raise InputError(
            f"{shards} shards: a matrix runs between 1 and {MAX_SHARDS} jobs",
            hint="Give --shards N with N in that range, or --zones-per-shard.",
        )
    clients: list[tuple[str, list[tuple[str, str]]]] = []
    for client, domain in listing:
        if not clients or clients[-1][0] != client:
            clients.append((client, []))
        clients[-1][1].append((client, domain))
    if not clients:
        return []
    sizes = [len(zones) for _, zones in clients]

    def parts(capacity: int) -> list[list[int]]:
        runs: list[list[int]] = [[]]
        load = 0
        for index, size in enumerate(sizes):
            if runs[-1] and load + size > capacity:
                runs.append([])
                load = 0
            runs[-1].append(index)
            load += size
        return runs

    # The smallest capacity that needs no more than `shards` runs (binary search: the number of
    # runs only falls as the capacity grows).
    low, high = max(sizes), sum(sizes)
    while low < high:
        middle = (low + high) // 2
        if len(parts(middle)) <= shards:
            high = middle
        else:
            low = middle + 1
    return [
        Shard(
            number,
            tuple(clients[i][0] for i in run),
            tuple(zone for i in run for zone in clients[i][1]),
        )
        for number, run in enumerate(parts(low), start=1)
    ]


def shards_json(shards: Sequence[Shard]) -> dict[str, Any]:
    """The partition, kept as an artifact for `merge`: which zones each shard must plan."""
    return {
        "format": SHARDS_FORMAT,
        "zones": sum(len(s.zones) for s in shards),
        "shards": [
            {
                "shard": s.number,
                "clients": list(s.clients),
                "zones": [{"client": c, "zone": z} for c, z in s.zones],
            }
            for s in shards
        ],
    }


def matrix_json(shards: Sequence[Shard]) -> dict[str, Any]:
    """The Actions matrix (`strategy.matrix: ${{ fromJSON(...) }}`): small, one line per shard;
    the zones stay in the partition file."""
    return {
        "include": [
            {"shard": s.number, "clients": " ".join(s.clients), "zones": len(s.zones)}
            for s in shards
        ]
    }


def load_shards(path: Path) -> list[Shard]:
    hint = "Write it with `dmarcops shard split --out shards.json`."
    data = load_json(path, what="not a shard partition", hint=hint, outside_ok=True, log=True)
    try:
        if data["format"] != SHARDS_FORMAT:
            raise InputError(
                f"shard partition of format {data['format']!r}, expected {SHARDS_FORMAT!r}",
                file=path,
                hint=hint,
            )
        shards = [
            Shard(
                int(entry["shard"]),
                tuple(str(c) for c in entry["clients"]),
                tuple((str(z["client"]), str(z["zone"])) for z in entry["zones"]),
            )
            for entry in data["shards"]
        ]
    except (KeyError, TypeError, ValueError) as exc:
        raise InputError(
            f"not a shard partition: {type(exc).__name__} {exc}", file=path, hint=hint
        ) from None
    numbers = [s.number for s in shards]
    if numbers != list(range(1, len(shards) + 1)):
        raise InputError(f"shards numbered {numbers}, expected 1..{len(shards)}", file=path)
    return shards


# --- merge --------------------------------------------------------------------------------------


def plan_hash(changes: Sequence[Mapping[str, Any]]) -> str:
    """pipeline.plan.items.plan_hash over the JSON changes (what approvals bind)."""
    normalised = sorted(
        [
            c["zone"],
            c["name"],
            c["type"],
            sorted(c["before"]),
            sorted(c["after"]),
            c["ttl"]["before"],
            c["ttl"]["after"],
        ]
        for c in changes
    )
    canonical = json.dumps(normalised, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(canonical.encode()).hexdigest()


@dataclass(frozen=True)
class ShardPlan:
    path: Path
    data: dict[str, Any]

    @property
    def zones(self) -> tuple[tuple[str, str], ...]:
        return tuple((z["client"], z["zone"]) for z in self.data["zones"])

    @property
    def dns_changes(self) -> list[dict[str, Any]]:
        return [c for c in self.data["changes"] if c["zone"] != POLICY_ZONE]

    @property
    def policy_changes(self) -> list[dict[str, Any]]:
        return [c for c in self.data["changes"] if c["zone"] == POLICY_ZONE]


def load_shard_plan(path: Path) -> ShardPlan:
    hint = "Write it with `dmarcops plan --client ... --at TIME --format json --out FILE`."
    data = load_json(path, what="not a JSON plan", hint=hint, outside_ok=True, log=True)
    try:
        if data["format_version"] != PLAN_FORMAT_VERSION:
            raise InputError(
                f"plan format {data['format_version']!r}, expected {PLAN_FORMAT_VERSION}",
                file=path,
                hint="Plan every shard with the same dmarcops as the merge.",
            )
        shard = ShardPlan(path, data)
        if plan_hash(data["changes"]) != data["plan_hash"]:
            raise InputError(
                "its plan_hash is not the hash of the changes it lists (edited after planning?)",
                file=path,
                hint="Plan the shard again.",
            )
        _ = shard.zones, data["generated_at"]
    except (KeyError, TypeError, AttributeError) as exc:
        raise InputError(
            f"not a JSON plan: {type(exc).__name__} {exc}", file=path, hint=hint
        ) from None
    return shard


def _zones_text(zones: Sequence[tuple[str, str]], limit: int = 3) -> str:
    names = [z for _, z in zones]
    more = f" and {len(names) - limit} more" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more


def merge(shards: Sequence[Shard], plans: Sequence[ShardPlan]) -> dict[str, Any]:
    """The one plan of the whole partition from one plan per shard, as `dmarcops plan` makes it.

    Refused (exit 2: a merge that is not the full plan must not be judged as if it were):
    a plan whose zones are not exactly one shard's, two plans of one shard, a shard without a
    plan, plans made as of different times, or with different pending policy edits.
    """
    by_zone = {zone: s for s in shards for zone in s.zones}
    owner: dict[int, ShardPlan] = {}
    for plan in plans:
        planned = plan.zones
        hit = sorted({by_zone[z].number for z in planned if z in by_zone})
        foreign = [z for z in planned if z not in by_zone]
        if foreign or len(hit) != 1:
            where = (
                f"zones no shard holds ({_zones_text(foreign)})"
                if foreign
                else f"zones of shards {', '.join(map(str, hit))}"
                if hit
                else "no zones"
            )
            raise GateRefused(
                f"{plan.path}: plans {where}: shards overlap or the plan is not of this partition",
                hint="Plan each shard with exactly its matrix entry's clients "
                "(`dmarcops plan --client A --client B ...`).",
            )
        shard = shards[hit[0] - 1]
        if planned != shard.zones:
            missing = [z for z in shard.zones if z not in planned]
            raise GateRefused(
                f"{plan.path}: shard {shard.number} plans {len(planned)} of its "
                f"{len(shard.zones)} zones"
                + (f" (missing {_zones_text(missing)})" if missing else " (in another order)"),
                hint="Plan the shard again with all its clients, from the same commit.",
            )
        if shard.number in owner:
            raise GateRefused(
                f"{plan.path} and {owner[shard.number].path} both plan shard {shard.number}: "
                "overlapping shards",
                hint="Give each shard's plan once.",
            )
        owner[shard.number] = plan
    missing_shards = [s for s in shards if s.number not in owner]
    if missing_shards:
        first = missing_shards[0]
        raise GateRefused(
            f"no plan for shard {', '.join(str(s.number) for s in missing_shards)} "
            f"(shard {first.number}: clients {', '.join(first.clients)}): "
            "the merge would not be the whole portfolio",
            hint="Its matrix job failed or its artifact is missing: re-run the failed jobs.",
        )
    ordered = [owner[s.number] for s in shards]
    times = sorted({p.data["generated_at"] for p in ordered})
    if len(times) > 1:
        raise GateRefused(
            f"the shards were planned as of different times ({', '.join(times)}): windows, "
            "freezes and schedules would be judged differently in each",
            hint="Plan every shard with the same --at (the prepare job's time).",
        )
    policy = [p.policy_changes for p in ordered]
    if any(changes != policy[0] for changes in policy):
        raise GateRefused(
            "the shards list different pending policy edits: they were planned from different "
            "commits",
            hint="Plan every shard from the same commit.",
        )
    changes = [c for p in ordered for c in p.dns_changes] + (policy[0] if ordered else [])
    zones = [z for p in ordered for z in p.data["zones"]]
    actions = Counter(c["action"] for c in changes)
    risks = Counter(RiskLevel.parse(c["risk"]) for c in changes)
    highest = max(risks, default=None)
    return {
        "format_version": PLAN_FORMAT_VERSION,
        "plan_hash": plan_hash(changes),
        "risk": highest.label if highest is not None else None,
        "generated_at": times[0] if times else None,
        "summary": {
            "create": actions["create"],
            "update": actions["update"],
            "delete": actions["delete"],
            "risk": {level.label: risks[level] for level in RiskLevel},
            "zones": len(zones),
            "failed_zones": sum(z["status"] == "failed" for z in zones),
        },
        "changes": changes,
        "zones": zones,
    }


def render(plan: Mapping[str, Any]) -> str:
    """As pipeline/render/json_plan.py renders a plan."""
    return json_text(json.dumps(plan, indent=2, ensure_ascii=False)) + "\n"
