"""Run the dmarcops CLI and pause it at one named point of an apply (tests only).

`python tests/run_paused.py DIR POINT CLOCK -- --repo R apply ...` freezes pipeline.clock.system_now
at CLOCK (like tests/run_at.py) and wraps, in this process only, the apply journal's writes and the
provider call. When POINT is reached (`records`, `intent:<zone>` (its intent durable, the zone
about to be sent), `ahead:<zone>` (its intent written ahead, the zone before it about to be
sent), `sent:<zone>`, `done:<zone>`, `ledger:created`, `ledger:updated`) it
writes DIR/ready and blocks reading the FIFO DIR/go, so the test can kill it, signal it, fill or
freeze its disk or stop named at exactly that point, then let it go on. The product has no such
hook: nothing a user runs can pause or skip an apply step.
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pipeline.clock


def main() -> None:
    folder, point, clock = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
    frozen = datetime.strptime(clock, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    pipeline.clock.system_now = lambda: frozen

    import pipeline.apply.execute as execute
    from pipeline.apply.journal import Journal
    from pipeline.records.ledger import Ledger

    paused: set[str] = set()

    def pause(reached: str) -> None:
        if reached != point or reached in paused:
            return
        paused.add(reached)
        (folder / "ready").write_text(reached)
        with (folder / "go").open() as go:  # blocks until the test opens the FIFO for writing
            go.read()

    append = Journal.append

    def paused_append(self: Journal, event: str, data: dict[str, Any], **kw: Any) -> None:
        append(self, event, data, **kw)
        if event == "intent" and not kw.get("durable", True):
            # Written ahead (pipeline.apply.execute): durable once the zone comes up, where
            # paused_send pauses at `intent:<zone>`.
            pause(f"ahead:{data['zone']}")
            return
        pause(f"{event}:{data['zone']}" if "zone" in data else event)

    send = execute._send

    def paused_send(zone: Any, *args: Any) -> None:
        pause(f"intent:{zone.zone}")  # (once: the first zone's pauses where it is written)
        try:
            send(zone, *args)
        finally:
            pause(f"sent:{zone.zone}")

    ledger_append = Ledger.append_after

    def paused_ledger_append(self: Ledger, seq: int, prev: str, **kw: Any) -> Any:
        # `ledger:created` / `ledger:updated`: the apply's record files are written, the first
        # of their ledger lines is not (RecordStore.create_many / update_many; every ledger line
        # goes through append_after).
        pause(f"ledger:{kw['event']}")
        return ledger_append(self, seq, prev, **kw)

    Journal.append = paused_append  # type: ignore[method-assign]
    Ledger.append_after = paused_ledger_append  # type: ignore[method-assign]
    execute._send = paused_send

    from pipeline.cli import main as cli

    cli(args=sys.argv[sys.argv.index("--") + 1 :], prog_name="dmarcops")


if __name__ == "__main__":
    main()
