"""Run the dmarcops CLI in a subprocess whose system clock reads a fixed UTC time (tests only).

`python tests/run_at.py 2026-12-01T09:30:00Z --repo R apply ...` stands in for a machine whose
clock says that time: it replaces pipeline.clock.system_now before the CLI starts. The product
itself never reads a time a user typed for a mutating command; this launcher lives in tests/ so
that subprocess tests (kill -9, SIGTERM) stay deterministic.
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime

import pipeline.clock


def main() -> None:
    frozen = datetime.strptime(sys.argv[1], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    pipeline.clock.system_now = lambda: frozen
    from pipeline.cli import main as cli

    cli(args=sys.argv[2:], prog_name="dmarcops")


if __name__ == "__main__":
    main()
