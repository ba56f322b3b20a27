"""`dmarcops records reconcile` (issue 10, item 5): the records of an apply whose push to main
never landed, put back from the run's artifact, checked line by line and record by record."""

from __future__ import annotations

import hashlib
import json
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from signing import BOT, JCHEN, MHARA, genesis
from test_records import cli, make_record

from pipeline.errors import EXIT_GATE, EXIT_INPUT
from pipeline.records import Outcome, RecordStore, verify
from pipeline.records.record import ReportCheck

START = datetime(2026, 7, 7, 9, 30, tzinfo=UTC)


@pytest.fixture
def main_and_run(tmp_path: Path) -> tuple[RecordStore, Path]:
    """main holds one record; the apply run's artifact (its changes/) holds main's plus two more
    that its push never landed."""
    main = genesis(tmp_path / "main")
    main.create(lambda rid: make_record(rid, executed_at=START), START, JCHEN)
    run_root = tmp_path / "run"
    shutil.copytree(main.changes_dir.parent, run_root)
    run = RecordStore(run_root / "changes")
    # What an apply on merge and a scheduled close write: lines the automation's key signs.
    for n in (1, 2):
        at = START + timedelta(days=n)
        run.create(lambda rid, a=at: make_record(rid, executed_at=a), at, BOT)
    # A scheduled close seals the report verification it was accepted on (issue 14 part 5).
    evidence = b'{"kind": "dmarcops-report-verification", "verdict": "accepted"}\n'
    digest = hashlib.sha256(evidence).hexdigest()
    (run.changes_dir / "evidence").mkdir()
    (run.changes_dir / "evidence" / f"verification-{digest}.json").write_bytes(evidence)
    check = ReportCheck(digest, "accepted", START + timedelta(days=3), 1000, 990, 300, 297, 2, "ok")
    run.seal("2026-0001", Outcome.ACCEPTED, START + timedelta(days=3), BOT, verification=check)
    return main, run.changes_dir


def test_the_missing_records_come_back_and_the_trail_verifies(
    main_and_run: tuple[RecordStore, Path],
) -> None:
    main, artifact = main_and_run
    result = cli(main.changes_dir.parent, "records", "reconcile", "--from", str(artifact))
    assert result.exit_code == 0, result.output
    assert (
        result.stdout == "reconciled: 3 ledger line(s), record(s) 2026-0001, 2026-0002, 2026-0003\n"
    )
    assert main.ledger.lines() == RecordStore(artifact).ledger.lines()
    assert main.get("2026-0003").executed_at == START + timedelta(days=2)
    assert main.get("2026-0001").sealed
    # The verification the close sealed came along: audit verify finds its file.
    assert (main.changes_dir / "evidence").is_dir()
    assert verify(main.changes_dir, START + timedelta(days=10)) == []
    again = cli(main.changes_dir.parent, "records", "reconcile", "--from", str(artifact))
    assert again.stdout.startswith("nothing to reconcile")


@pytest.mark.parametrize(
    "damage", ["edited record", "forged line", "diverged main", "a person's line", "policy line"]
)
def test_an_artifact_that_does_not_continue_main_writes_nothing(
    main_and_run: tuple[RecordStore, Path], damage: str
) -> None:
    main, artifact = main_and_run
    if damage == "edited record":
        path = artifact / "records" / "2026-0003.json"
        path.write_text(path.read_text().replace("99.3%", "99.9%"))
    elif damage == "forged line":
        ledger = artifact / "ledger.jsonl"
        lines = ledger.read_text().splitlines()
        data = json.loads(lines[-1])
        data["actor"] = "jchen"  # the bot's seal claimed by jchen: not the automation's, and forged
        lines[-1] = json.dumps(data, sort_keys=True, separators=(",", ":"))
        ledger.write_text("\n".join(lines) + "\n")
    elif damage == "diverged main":
        main.create(lambda rid: make_record(rid, executed_at=START + timedelta(days=5)),
                    START + timedelta(days=5), JCHEN)  # fmt: skip
    else:
        # An analyst appends, in the artifact, a line of their own (a genuine signature): a
        # close that skipped the store's gates, or a policy seal. Not the automation's: refused.
        run = RecordStore(artifact)
        if damage == "a person's line":
            run.update(run.get("2026-0003"), START + timedelta(days=4), JCHEN)
        else:
            from pipeline.records.ledger import LedgerEvent

            entries = run.ledger.read()
            run.ledger.append(entries, event=LedgerEvent.POLICY, signer=MHARA,
                              at=START + timedelta(days=4), roster=run.trusted_roster(entries),
                              payload={"policy_sha256": entries[0].payload["policy_sha256"]})  # fmt: skip
    before = main.ledger.lines(), sorted(p.name for p in main.records_dir.iterdir())
    result = cli(main.changes_dir.parent, "records", "reconcile", "--from", str(artifact))
    assert result.exit_code == EXIT_GATE, result.output
    assert "nothing was written" in result.output and "Traceback" not in result.output
    assert (main.ledger.lines(), sorted(p.name for p in main.records_dir.iterdir())) == before


def test_a_directory_without_a_ledger_is_bad_input(
    main_and_run: tuple[RecordStore, Path], tmp_path: Path
) -> None:
    main, _ = main_and_run
    empty = tmp_path / "empty"
    empty.mkdir()
    result = cli(main.changes_dir.parent, "records", "reconcile", "--from", str(empty))
    assert result.exit_code == EXIT_INPUT and "no ledger.jsonl here" in result.output
