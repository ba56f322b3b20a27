"""Invoke the CLI the way a machine whose clock reads `--at` would run it (tests only).

Mutating commands take the system clock (pipeline.clock) and refuse `--at` outside the sandbox,
so lifecycle tests that once typed `--at` now drop it and set `pipeline.clock.system_now` for the
one call instead: the command sees exactly what it would on a machine at that moment.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest
from click.testing import CliRunner, Result

import pipeline.clock
from pipeline.cli import main
from pipeline.records.record import parse_time


def invoke_at(args: Sequence[str], **kwargs: Any) -> Result:
    """Run `dmarcops ARGS`; an `--at T` among them becomes the system clock reading T."""
    args = list(args)
    if "--at" not in args:
        return CliRunner().invoke(main, args, **kwargs)
    i = args.index("--at")
    when = parse_time(args[i + 1], what="--at")
    del args[i : i + 2]
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(pipeline.clock, "system_now", lambda: when)
        return CliRunner().invoke(main, args, **kwargs)
