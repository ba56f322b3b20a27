"""How much of a repository file dmarcops reads: policy/settings.yaml `input_limits` as a value.

Its own module because both the file reader (files.py) and the YAML parser (yamltext.py) use it,
and the reader reads policy/settings.yaml through the parser.
"""

from __future__ import annotations

from dataclasses import dataclass

MIB = 1024 * 1024


@dataclass(frozen=True)
class Limits:
    """policy/settings.yaml `input_limits` (settings.schema.json); these are the defaults."""

    # Policy, zone, request, approval, change-record and MTA-STS files: the largest real one is a
    # few KB, so 1 MiB is generous and still far below what would strain memory.
    max_file_bytes: int = MIB
    # The ledger (append-only, grows with every change) and plan files (a whole portfolio's plan).
    max_log_bytes: int = 64 * MIB
    # YAML anchors/aliases: the repository's files use none; a handful of `<<: *defaults` is fine,
    # an alias bomb (1.4 KB expanding to 1.1 GB) is not.
    max_yaml_aliases: int = 64
    # How many nodes aliases may add when expanded, counted before anything is built.
    max_yaml_alias_nodes: int = 10_000


DEFAULT_LIMITS = Limits()
