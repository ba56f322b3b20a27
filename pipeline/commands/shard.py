"""`dmarcops shard split` and `dmarcops shard merge`: a portfolio planned over an Actions matrix.

Thin click functions over pipeline.plan.shard; register them on the main group with
`register(main)`. Neither reads live DNS nor the policy: `split` lists the zone files,
`merge` puts the shards' JSON plans back together (docs/github.md, "Sharded plans").
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from pipeline.commands.common import reports_errors
from pipeline.errors import InputError
from pipeline.load.files import replace_text
from pipeline.plan import shard as sharding


@click.group("shard")
def shard_group() -> None:
    """Plan a large portfolio in client shards over a CI matrix, then merge the shard plans into
    the one plan a single run makes (docs/github.md, "Sharded plans")."""


@shard_group.command("split")
@click.option(
    "--shards",
    "count",
    type=click.IntRange(1, sharding.MAX_SHARDS),
    help="Cut into at most N shards of about the same number of zones.",
)
@click.option(
    "--zones-per-shard",
    type=int,
    envvar="DMARCOPS_SHARD_ZONES",
    help="Or: one shard per this many zones (env DMARCOPS_SHARD_ZONES); a portfolio this size "
    "or smaller is one shard.",
)
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the partition (each shard's clients and zones) to FILE: `shard merge` needs it.",
)
@click.pass_obj
@reports_errors
def split_command(
    repo: Path, count: int | None, zones_per_shard: int | None, out: Path | None
) -> None:
    """Cut the clients, in plan order, into shards balanced by their number of zones, and print
    the Actions matrix as one line of JSON: {"include": [{"shard": 1, "clients": "a b", "zones":
    120}, ...]}. A client is never split across shards.

    \b
    Examples:
      dmarcops shard split --shards 4 --out shards.json
      DMARCOPS_SHARD_ZONES=1500 dmarcops shard split --out shards.json
    """
    if (count is None) == (zones_per_shard is None):
        raise InputError(
            "give --shards N or --zones-per-shard Z (or DMARCOPS_SHARD_ZONES), not both",
            hint="docs/github.md, 'Sharded plans', gives the measured cut-over.",
        )
    listing = sharding.zone_listing(repo)
    if count is None:
        assert zones_per_shard is not None
        count = sharding.shard_count(len(listing), zones_per_shard)
    shards = sharding.split(listing, count)
    if out is not None:
        replace_text(out, json.dumps(sharding.shards_json(shards), indent=2) + "\n")
    click.echo(json.dumps(sharding.matrix_json(shards), separators=(",", ":")))


@shard_group.command("merge")
@click.option(
    "--shards",
    "partition",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="The partition `shard split --out` wrote.",
)
@click.argument("plans", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the merged JSON plan to FILE (otherwise it is printed).",
)
@reports_errors
def merge_command(partition: Path, plans: tuple[Path, ...], out: Path | None) -> None:
    """Merge one JSON plan per shard into the plan of the whole portfolio, exactly as
    `dmarcops plan --at TIME --format json` prints it. Exit 2 when a shard is missing, repeated
    or overlaps another, or the shards were planned at different times or from different
    commits; 1 on a file that is not a partition or a plan.

    \b
    Example:
      dmarcops shard merge --shards shards.json shard-*.json --out plan.json
      dmarcops requests check --plan plan.json      # the one gate, once
    """
    shards = sharding.load_shards(partition)
    merged = sharding.merge(shards, [sharding.load_shard_plan(p) for p in plans])
    text = sharding.render(merged)
    if out is None:
        click.echo(text, nl=False)
        return
    replace_text(out, text)
    click.echo(
        f"plan {merged['plan_hash'][:16]}: {len(shards)} shard(s), "
        f"{merged['summary']['zones']} zone(s), {len(merged['changes'])} change(s)"
    )


def register(group: click.Group) -> None:
    group.add_command(shard_group)
