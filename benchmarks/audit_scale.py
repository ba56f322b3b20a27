"""`dmarcops audit verify` and record writing against a long history (issue 12, item 7).

Builds a repository holding N synthetic change records (sealed, signed ledger lines, the example's
policy sealed as the genesis) without going through N applies, then measures:

- `audit verify` (the library call the command makes): wall time and peak RSS;
- writing one more record (`RecordStore.create`) at that size, which should not grow with N.

Run it by hand with the project's venv (it imports the test helpers for keys and records):

    .venv/bin/python benchmarks/audit_scale.py --records 10000
    .venv/bin/python benchmarks/audit_scale.py --records 50000

Targets (issue 12): 50k records verified in 10 s or less and 300 MB or less.
"""

from __future__ import annotations

import argparse
import resource
import shutil
import sys
import tempfile
import time
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from signing import JCHEN, MHARA, genesis  # noqa: E402
from test_records import T0, make_record  # noqa: E402

from pipeline.records.ledger import GENESIS, LedgerEntry, LedgerEvent  # noqa: E402
from pipeline.records.record import Outcome  # noqa: E402
from pipeline.records.store import RecordStore, audit, record_file_bytes  # noqa: E402


def build(root: Path, count: int) -> RecordStore:
    """N sealed records: created by jchen, sealed by mhara, ledger lines signed as they would be."""
    store = genesis(root)
    store.records_dir.mkdir(parents=True, exist_ok=True)
    entries = store.ledger.read()
    prev = entries[-1].entry_sha256
    seq = entries[-1].seq
    lines: list[str] = []
    per_year: dict[int, int] = {}
    first = T0.replace(hour=9, minute=30)
    for n in range(count):
        # 30 changes a day inside the 09:00-12:00 window the synthetic records claim.
        at = first + timedelta(days=n // 30, minutes=5 * (n % 30))
        per_year[at.year] = per_year.get(at.year, 0) + 1
        rid = f"{at.year:04d}-{per_year[at.year]:04d}"
        record = make_record(rid, executed_at=at)
        created_hash = record.sha256()
        sealed = replace(
            record,
            outcome=Outcome.ACCEPTED,
            closed_at=record.rollback_window.end,
            closed_by="mhara",
            sealed=True,
        )
        for event, signer, body, when, record_prev in (
            (LedgerEvent.CREATED, JCHEN, created_hash, at, GENESIS),
            (LedgerEvent.SEALED, MHARA, sealed.sha256(), at, created_hash),
        ):
            seq += 1
            entry = LedgerEntry.make(
                seq=seq,
                event=event,
                signer=signer,
                at=when,
                prev=prev,
                record_id=rid,
                record_sha256=body,
                record_prev=record_prev,
            )
            prev = entry.entry_sha256
            lines.append(entry.to_line())
        (store.records_dir / f"{rid}.json").write_bytes(record_file_bytes(sealed))
        (store.records_dir / f"{rid}.md").write_text(sealed.render_markdown(), encoding="utf-8")
    with store.ledger.path.open("a", encoding="utf-8") as handle:
        handle.writelines(lines)
    return store


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=10_000)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="dmarcops-audit-bench-"))
    try:
        started = time.perf_counter()
        store = build(root, args.records)
        built = time.perf_counter() - started
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        started = time.perf_counter()
        report = audit(store.changes_dir, T0 + timedelta(days=4000))
        verify_s = time.perf_counter() - started
        peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        started = time.perf_counter()
        store.create(lambda rid: make_record(rid), T0 + timedelta(days=4000), JCHEN)
        create_s = time.perf_counter() - started
        print(f"records: {args.records}, ledger lines: {report.entries}, built in {built:.1f} s")
        print(f"audit verify: {verify_s:.2f} s, problems {len(report.problems)}, "
              f"peak RSS {peak_mb:.0f} MB (before verify {before / 1024:.0f} MB)")  # fmt: skip
        print(f"one more record written: {create_s * 1000:.0f} ms")
        for problem in report.problems[:5]:
            print("  problem:", problem)
        return 0 if report.ok else 1
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
