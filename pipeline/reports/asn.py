"""Source IPs grouped by autonomous system, from an offline table the user points at.

Aggregate reports carry the source IP only: no PTR name, no AS. dmarcops makes no lookup while it
summarises (a summary must not depend on, or leak to, the network), so grouping by AS uses a table
on disk: iptoasn.com's `ip2asn-v4.tsv`, `ip2asn-v6.tsv` or `ip2asn-combined.tsv` (public domain,
PDDL; plain or gzipped), one range a line:

    range_start <TAB> range_end <TAB> AS_number <TAB> country_code <TAB> AS_description

An AS number of 0 is iptoasn's "not routed". An IP outside every range, or in a table that does not
cover its family, is "unknown". Malformed lines are skipped and counted, never guessed.
"""

from __future__ import annotations

import bisect
import gzip
import io
import ipaddress
import zlib
from dataclasses import dataclass, field
from pathlib import Path

from pipeline.errors import InputError
from pipeline.load.files import read_bytes

# The combined table is ~30 MB uncompressed.
MAX_TABLE_BYTES = 256 * 1024 * 1024
UNKNOWN = "unknown (not in the AS table)"


@dataclass
class _Ranges:
    starts: list[int] = field(default_factory=list)
    ends: list[int] = field(default_factory=list)
    names: list[str] = field(default_factory=list)


@dataclass
class AsnTable:
    v4: _Ranges = field(default_factory=_Ranges)
    v6: _Ranges = field(default_factory=_Ranges)
    skipped: int = 0  # malformed lines

    def lookup(self, ip: str) -> str:
        """ "AS15169 GOOGLE" for the range holding `ip`; UNKNOWN when none does."""
        try:
            address = ipaddress.ip_address(ip)
        except ValueError:
            return UNKNOWN
        ranges = self.v4 if address.version == 4 else self.v6
        value = int(address)
        index = bisect.bisect_right(ranges.starts, value) - 1
        if index < 0 or value > ranges.ends[index]:
            return UNKNOWN
        return ranges.names[index]


def parse_asn_table(text: str) -> AsnTable:
    table = AsnTable()
    rows: dict[int, list[tuple[int, int, str]]] = {4: [], 6: []}
    for line in text.splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        parts = line.split("\t")
        try:
            start, end = (
                ipaddress.ip_address(parts[0].strip()),
                ipaddress.ip_address(parts[1].strip()),
            )
            number = int(parts[2])
        except (ValueError, IndexError):
            table.skipped += 1
            continue
        if start.version != end.version or int(end) < int(start) or number < 0:
            table.skipped += 1
            continue
        description = parts[4].strip() if len(parts) > 4 else ""
        name = "not routed" if number == 0 else f"AS{number} {description}".strip()
        rows[start.version].append((int(start), int(end), name))
    for version, ranges in ((4, table.v4), (6, table.v6)):
        for start_i, end_i, name in sorted(rows[version]):
            ranges.starts.append(start_i)
            ranges.ends.append(end_i)
            ranges.names.append(name)
    return table


def load_asn_table(path: Path) -> AsnTable:
    """The table at `path` (read like every input: no links, no devices, size-limited)."""
    raw = read_bytes(path, limit=MAX_TABLE_BYTES, outside_ok=True)
    if raw[:2] == b"\x1f\x8b":
        try:
            stream = gzip.GzipFile(fileobj=io.BytesIO(raw))
            raw = stream.read(MAX_TABLE_BYTES + 1)
        except (OSError, EOFError, zlib.error) as exc:
            raise InputError(f"not a readable gzip: {exc}", file=path) from None
        if len(raw) > MAX_TABLE_BYTES:
            raise InputError(
                f"the AS table decompresses to more than {MAX_TABLE_BYTES} bytes", file=path
            )
    table = parse_asn_table(raw.decode("utf-8", "replace"))
    if not table.v4.starts and not table.v6.starts:
        raise InputError(
            "no IP range in the AS table",
            file=path,
            hint="Use iptoasn.com's ip2asn-combined.tsv (or -v4/-v6), plain or .gz: "
            "range_start, range_end, AS number, country, description, tab-separated.",
        )
    return table
