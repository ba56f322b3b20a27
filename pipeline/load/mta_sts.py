"""The desired MTA-STS policy: the file beside the zone file, part of the zone (validated by M2, diffed
by the plan). The live one is read by pipeline.live.mta_sts_policy."""

from __future__ import annotations

from pathlib import Path

from pipeline.load.files import exists, read_text
from pipeline.load.portfolio import ZoneFile

MAX_POLICY_BYTES = 64 * 1024  # RFC 8461 3.3: senders should not accept larger policies


def desired_policy_path(zone_file: ZoneFile) -> Path:
    return zone_file.path.with_name(f"{zone_file.domain}.mta-sts.txt")


def desired_policy(zone_file: ZoneFile) -> str | None:
    """The policy file beside the zone file, None when there is none. Read like every repository
    file (pipeline.load.files): a link, FIFO, directory or oversized file there is refused with an
    InputError naming it, not skipped, so a policy is never silently left out of the plan."""
    path = desired_policy_path(zone_file)
    return read_text(path, limit=MAX_POLICY_BYTES) if exists(path) else None
