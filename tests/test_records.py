"""Change records: numbering, sealing, the close and review gates, rendering, search, the CLI.

The builders here (`make_record`, `cli`, `T0`) are also used by test_audit.py.
"""

from __future__ import annotations

import json
import multiprocessing
import shutil
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from functools import partial
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner, Result
from portfolio import REPO
from signing import JCHEN, KEYS, genesis, signer

import pipeline.clock
from pipeline.commands.records import register
from pipeline.errors import EXIT_GATE, EXIT_INPUT
from pipeline.model import RiskLevel
from pipeline.records import (
    ApprovalEvidence,
    ApprovalRole,
    ApprovalSource,
    ChangeRecord,
    ChangeType,
    Emergency,
    Outcome,
    RecordItem,
    RecordMismatchError,
    RecordStore,
    SealedRecordError,
    TimeWindow,
    UnknownRecordError,
    Verification,
    VerificationStatus,
    ZoneOutcome,
    ZoneStatus,
    verify,
)
from pipeline.records.index_records import RecordFilter
from pipeline.records.record import parse_time

T0 = datetime(2026, 6, 9, 9, 23, tzinfo=UTC)  # executed; the seed's example
PLAN_HASH = "57979b489b4c363f60ca016f155186768c397e13e1235c8caf1c03be03e0e0be"


def make_record(
    record_id: str,
    *,
    client: str = "northwind-health",
    zone: str = "nwh-patients.example",
    risk: RiskLevel = RiskLevel.MEDIUM,
    author: str = "jchen",
    peer: str = "mhara",
    executed_at: datetime | None = T0,
    rollback_hours: int = 8,
    emergency: Emergency | None = None,
    rationale: str = "Pass rate at pct=50 has been stable at 99.3% for the last 14 days.",
    internal_notes: str = "",
    before: tuple[str, ...] = ("v=DMARC1; p=quarantine; pct=50; rua=mailto:dmarc@nwh.example",),
    after: tuple[str, ...] = ("v=DMARC1; p=quarantine; pct=100; rua=mailto:dmarc@nwh.example",),
) -> ChangeRecord:
    start = executed_at or T0
    approvals = [ApprovalEvidence(ApprovalRole.ANALYST, author, None, "", ApprovalSource.SELF)]
    if peer:
        approvals.append(
            ApprovalEvidence(
                ApprovalRole.PEER,
                peer,
                start - timedelta(days=1),
                "review-4711",
                ApprovalSource.GITHUB,
            )
        )
    return ChangeRecord(
        id=record_id,
        client=client,
        client_name=client.replace("-", " ").title(),
        zones=(zone,),
        change_type=ChangeType.POLICY_PROGRESSION,
        risk=risk,
        plan_hash=PLAN_HASH,
        request_id="req-2026-06-08-nwh",
        rationale=rationale,
        items=(
            RecordItem(
                zone=zone,
                name="_dmarc",
                type="TXT",
                action="update",
                before=before,
                after=after,
                risk=risk,
                facts=("dmarc.pct 50->100",),
                reasons=("medium: pct increase widens enforcement [dmarc-pct-increase]",),
            ),
        ),
        approvals=tuple(approvals),
        change_window=None
        if emergency
        else TimeWindow(start.replace(hour=9, minute=0), start.replace(hour=12, minute=0)),
        rollback_window=TimeWindow(start, start + timedelta(hours=rollback_hours)),
        created_at=start - timedelta(minutes=5),
        executed_at=executed_at,
        executed_by=author if executed_at else "",
        emergency=emergency,
        zone_results=(ZoneOutcome(zone, ZoneStatus.APPLIED, 1),) if executed_at else (),
        verification=(
            Verification(
                zone,
                "_dmarc",
                "TXT",
                VerificationStatus.VERIFIED,
                start + timedelta(minutes=2),
                "ns1 serves the new value",
            ),
        )
        if executed_at
        else (),
        internal_notes=internal_notes,
    )


def cli(root: Path, *args: str, env: dict[str, str] | None = None) -> Result:
    """The commands as `dmarcops` runs them, on a group that sets the repository root like main."""

    @click.group()
    @click.pass_context
    def main(ctx: click.Context) -> None:
        ctx.obj = root

    register(main)
    if not (root / "policy").is_dir():
        # close and review read the client's provider (is this the sandbox?) from the policy.
        shutil.copytree(REPO / "policy", root / "policy")
    command = list(args)
    if command[0] in {"close", "review"} and "--at" in command:
        # They take the machine's clock (pipeline.clock): stand in for it, as it would read.
        i = command.index("--at")
        when = parse_time(command[i + 1], what="--at")
        del command[i : i + 2]
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(pipeline.clock, "system_now", lambda: when)
            return CliRunner().invoke(main, command, env=env)
    return CliRunner().invoke(main, command, env=env)


@pytest.fixture
def store(tmp_path: Path) -> RecordStore:
    return genesis(tmp_path)


def ledger_lines(store: RecordStore) -> list[dict[str, Any]]:
    """The record events (the genesis policy seal of line 1 left out)."""
    return [json.loads(line) for line in store.ledger.lines()][1:]


# --- numbering --------------------------------------------------------------------------------


def test_numbers_are_sequential_and_each_creation_is_logged(store: RecordStore) -> None:
    ids = [store.create(lambda rid: make_record(rid), at=T0, signer=JCHEN).id for _ in range(3)]
    assert ids == ["2026-0001", "2026-0002", "2026-0003"]
    for rid in ids:
        assert (store.records_dir / f"{rid}.json").is_file()
        assert (store.records_dir / f"{rid}.md").read_text().startswith(f"## CHANGE RECORD #{rid}")
    lines = ledger_lines(store)
    assert [(e["seq"], e["record_id"], e["event"]) for e in lines] == [
        (2, "2026-0001", "created"),  # line 1 is the genesis (the sealed policy)
        (3, "2026-0002", "created"),
        (4, "2026-0003", "created"),
    ]
    assert lines[0]["prev"] == store.ledger.read()[0].entry_sha256  # the genesis
    assert lines[1]["prev"] == lines[0]["entry_sha256"]
    assert lines[2]["record_sha256"] == store.get("2026-0003").sha256()
    assert store.allocate(2026) == "2026-0004"
    assert verify(store.changes_dir, T0) == []


def test_year_rollover_starts_at_0001(store: RecordStore) -> None:
    new_year_eve = datetime(2026, 12, 31, 23, 0, tzinfo=UTC)
    assert store.create(make_record, at=new_year_eve, signer=JCHEN).id == "2026-0001"
    assert store.create(make_record, at=new_year_eve, signer=JCHEN).id == "2026-0002"
    # 00:30 on 1 January in UTC+1 is still 2026 in UTC: the year is the UTC year.
    plus_one = datetime(2027, 1, 1, 0, 30, tzinfo=timezone(timedelta(hours=1)))
    assert store.create(make_record, at=plus_one, signer=JCHEN).id == "2026-0003"
    assert (
        store.create(make_record, at=datetime(2027, 1, 1, tzinfo=UTC), signer=JCHEN).id
        == "2027-0001"
    )
    assert (
        store.create(make_record, at=datetime(2027, 1, 2, tzinfo=UTC), signer=JCHEN).id
        == "2027-0002"
    )
    assert store.allocate(2026) == "2026-0004"
    assert store.allocate(2027) == "2027-0003"
    assert store.allocate(2028) == "2028-0001"
    assert verify(store.changes_dir, T0) == []


def test_a_failing_build_leaves_no_gap(store: RecordStore) -> None:
    store.create(make_record, at=T0, signer=JCHEN)

    def broken(rid: str) -> ChangeRecord:
        raise RuntimeError("planning failed")

    with pytest.raises(RuntimeError):
        store.create(broken, at=T0, signer=JCHEN)
    assert store.create(make_record, at=T0, signer=JCHEN).id == "2026-0002"
    assert len(ledger_lines(store)) == 2


def test_a_batch_of_records_is_numbered_in_order_and_a_failing_build_writes_none(
    store: RecordStore,
) -> None:
    # RecordStore.create_many (an apply's records): every record is built before any is written.
    store.create(make_record, at=T0, signer=JCHEN)

    def broken(rid: str) -> ChangeRecord:
        raise RuntimeError("planning failed")

    with pytest.raises(RuntimeError):
        store.create_many([make_record, broken, make_record], at=T0, signer=JCHEN)
    assert sorted(p.name for p in store.records_dir.iterdir()) == ["2026-0001.json", "2026-0001.md"]
    made = store.create_many([make_record] * 3, at=T0, signer=JCHEN)
    assert [r.id for r in made] == ["2026-0002", "2026-0003", "2026-0004"]
    lines = ledger_lines(store)
    assert [(e["record_id"], e["event"]) for e in lines] == [
        (f"2026-000{n}", "created") for n in range(1, 5)
    ]
    assert all(store.get(r.id) == r for r in made)
    assert verify(store.changes_dir, T0) == []


def test_a_batch_update_checks_every_record_before_writing_any(store: RecordStore) -> None:
    made = store.create_many([partial(make_record, executed_at=None)] * 2, at=T0, signer=JCHEN)
    done = [replace(r, executed_at=T0) for r in made]
    # Someone edited the second record's file: the batch is refused and the first is not written.
    path = store.json_path(made[1].id)
    path.write_text(path.read_text().replace("14 days", "41 days"))
    with pytest.raises(RecordMismatchError):
        store.update_many(done, at=T0, signer=JCHEN)
    assert store.get(made[0].id).executed_at is None
    assert len(ledger_lines(store)) == 2
    path.write_text(path.read_text().replace("41 days", "14 days"))
    store.update_many(done, at=T0, signer=JCHEN)
    assert [store.get(r.id).executed_at for r in made] == [T0, T0]
    assert [e["event"] for e in ledger_lines(store)] == ["created"] * 2 + ["updated"] * 2
    assert verify(store.changes_dir, T0) == []


def _create_many(changes_dir: str, count: int, start: Any, results: Any) -> None:
    store = RecordStore(Path(changes_dir))

    def slow_build(rid: str) -> ChangeRecord:
        # Widens the window between reading the highest number and writing the new one: without
        # the lock, two processes would read the same number here and write duplicates.
        time.sleep(0.005)
        return make_record(rid)

    start.wait()
    try:
        results.put([store.create(slow_build, at=T0, signer=JCHEN).id for _ in range(count)])
    except Exception as exc:  # reported to the test instead of dying silently in the child
        results.put(f"worker failed: {exc!r}")


def test_concurrent_processes_get_unique_contiguous_numbers(store: RecordStore) -> None:
    ctx = multiprocessing.get_context("spawn")
    start, results = ctx.Event(), ctx.Queue()
    workers = [
        ctx.Process(target=_create_many, args=(str(store.changes_dir), 20, start, results))
        for _ in range(2)
    ]
    for worker in workers:
        worker.start()
    start.set()
    got = [results.get(timeout=60) for _ in workers]
    for worker in workers:
        worker.join(timeout=60)
    assert all(isinstance(ids, list) for ids in got), got
    ids = got[0] + got[1]
    assert len(ids) == 40
    assert sorted(ids) == [f"2026-{n:04d}" for n in range(1, 41)]
    lines = ledger_lines(store)
    assert [e["seq"] for e in lines] == list(range(2, 42))
    assert sorted(e["record_id"] for e in lines) == sorted(ids)
    assert verify(store.changes_dir, T0) == []


# --- the record value ---------------------------------------------------------------------------


def test_json_round_trip_and_canonical_hash() -> None:
    record = make_record(
        "2026-0042",
        emergency=Emergency("bounces at Outlook", T0 + timedelta(hours=24)),
        internal_notes="client was nervous",
    )
    again = ChangeRecord.from_json(json.loads(json.dumps(record.to_json())))
    assert again == record
    assert again.sha256() == record.sha256()
    assert record.to_json()["executed_at"] == "2026-06-09T09:23:00Z"
    assert record.canonical_bytes().startswith(b'{"approvals":[')  # sorted keys, no spaces
    assert replace(record, rationale="other").sha256() != record.sha256()


def test_times_are_utc_and_naive_times_are_refused() -> None:
    plus_two = datetime(2026, 6, 9, 13, 23, 45, 999, tzinfo=timezone(timedelta(hours=2)))
    window = TimeWindow(plus_two, plus_two + timedelta(hours=1))
    assert window.start.tzinfo is UTC
    assert window.start == datetime(2026, 6, 9, 11, 23, 45, tzinfo=UTC)  # whole seconds
    with pytest.raises(ValueError, match="naive"):
        TimeWindow(datetime(2026, 6, 9), datetime(2026, 6, 10))


def test_client_export_leaves_internal_notes_out() -> None:
    record = make_record("2026-0001", internal_notes="peer thinks the client's IT is slow")
    assert "internal_notes" not in record.client_export()
    assert record.client_export()["rationale"] == record.rationale
    assert "client's IT is slow" in record.render_markdown()
    assert "client's IT is slow" not in record.render_markdown(include_internal=False)
    assert "client's IT is slow" not in record.render_text(include_internal=False)


def test_markdown_follows_the_seed_template() -> None:
    md = make_record("2026-0001", author="J. Chen", peer="M. Hara").render_markdown()
    labels = [
        "## CHANGE RECORD #2026-0001",
        "- Client: Northwind Health (`northwind-health`)",
        "- Domain affected: nwh-patients.example",
        "- Record affected: `_dmarc.nwh-patients.example` TXT (update, risk medium)",
        "- Change type: Policy progression",
        "- Risk level: Medium",
        "- Before: `v=DMARC1; p=quarantine; pct=50;",
        "- After: `v=DMARC1; p=quarantine; pct=100;",
        "- Rationale: Pass rate at pct=50",
        "- Approval:",
        "  - Analyst: J. Chen (proposing)",
        "  - Peer review: M. Hara (approved 2026-06-08 09:23 UTC, github `review-4711`)",
        "  - Client approval: not required (medium-risk)",
        "- Change window: 2026-06-09 09:00-12:00 UTC",
        "- Rollback window: 2026-06-09 09:23-17:23 UTC",
        "- Executed: 2026-06-09 09:23 UTC by J. Chen",
        "- Verification: `_dmarc.nwh-patients.example` TXT verified 2026-06-09 09:25 UTC",
        "- Outcome: open",
    ]
    positions = [md.index(label) for label in labels]
    assert positions == sorted(positions), "fields are in the seed's order"


def test_hostile_rationale_is_shown_not_interpreted() -> None:
    hostile = (
        "<script>alert(1)</script> [click](https://evil.example) ![x](y) @msp/dns-team "
        "| table | *bold* `tick`\n## Outcome: Change accepted.\n- Sealed: yes"
    )
    md = make_record(
        "2026-0001",
        rationale=hostile,
        author="<b>J. Chen</b>",
        before=("v=spf1 `rm -rf` | x ~all",),
    ).render_markdown()
    assert "<script>" not in md and "\\<script\\>" in md
    assert "[click](" not in md and "\\[click\\]" in md
    assert "![x]" not in md
    assert "@msp" not in md and "&#64;msp/dns-team" in md
    assert "\\| table \\|" in md and "\\*bold\\*" in md
    assert "<b>" not in md and "\\<b\\>J. Chen\\</b\\>" in md
    assert "``v=spf1 `rm -rf` \\| x ~all``" in md
    # The newline in the rationale cannot start a heading or a fake field of its own.
    lines = md.splitlines()
    assert "## Outcome: Change accepted." not in lines
    assert sum(line.startswith("- Sealed:") for line in lines) == 1
    assert sum(line.startswith("## ") for line in lines) == 1
    text = make_record("2026-0001", rationale="a\x1b[31mred\nb").render_text()
    assert "\x1b" not in text and "Rationale: a [31mred b" in text


# --- update and seal ----------------------------------------------------------------------------


def test_update_rewrites_and_logs(store: RecordStore) -> None:
    created = store.create(lambda rid: make_record(rid, executed_at=None), at=T0, signer=JCHEN)
    executed = replace(created, executed_at=T0, executed_by="jchen", references=("2026-0001",))
    store.update(executed, at=T0 + timedelta(minutes=1), signer=JCHEN)
    assert store.get(created.id) == executed
    last = ledger_lines(store)[-1]
    assert (last["event"], last["at"]) == ("updated", "2026-06-09T09:24:00Z")
    assert last["record_sha256"] == executed.sha256()
    assert last["record_prev"] == created.sha256()
    assert "Executed: 2026-06-09 09:23 UTC by jchen" in (
        store.records_dir / f"{created.id}.md"
    ).read_text(encoding="utf-8")


def test_update_refuses_a_record_file_edited_behind_its_back(store: RecordStore) -> None:
    record = store.create(make_record, at=T0, signer=JCHEN)
    path = store.records_dir / f"{record.id}.json"
    data = json.loads(path.read_text())
    data["rationale"] = "rewritten later"
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    with pytest.raises(RecordMismatchError, match="differs from what the ledger recorded"):
        store.update(replace(record, executed_by="jchen"), at=T0, signer=JCHEN)
    # Writing over it would have made the edit look recorded; the ledger is untouched.
    assert len(ledger_lines(store)) == 1


def test_a_sealed_record_is_never_written_again(store: RecordStore) -> None:
    record = store.create(make_record, at=T0, signer=JCHEN)
    end = record.rollback_window.end
    sealed = store.seal(
        record.id, Outcome.ACCEPTED, end, JCHEN, without_evidence="no reports in this test"
    )
    assert (sealed.sealed, sealed.outcome, sealed.closed_forced) == (True, Outcome.ACCEPTED, False)
    before = (store.records_dir / f"{record.id}.json").read_bytes(), store.ledger.lines()
    with pytest.raises(SealedRecordError) as refused:
        store.update(replace(record, rationale="edited after closure"), at=end, signer=JCHEN)
    assert refused.value.exit_code == EXIT_GATE
    assert "sealed" in str(refused.value)
    with pytest.raises(SealedRecordError):
        store.seal(record.id, Outcome.ROLLED_BACK, end, JCHEN, forced=True)
    assert ((store.records_dir / f"{record.id}.json").read_bytes(), store.ledger.lines()) == before
    assert [e["event"] for e in ledger_lines(store)] == ["created", "sealed"]


def test_close_before_the_rollback_window_ends_is_refused_unless_forced(
    store: RecordStore, tmp_path: Path
) -> None:
    first = store.create(make_record, at=T0, signer=JCHEN)  # rollback window until 17:23
    second = store.create(make_record, at=T0, signer=JCHEN)
    result = cli(
        tmp_path, "close", first.id, "--outcome", "accepted", "--key", str(KEYS / "jchen.pem"),
        "--at", "2026-06-09T17:22:59Z",
    )  # fmt: skip
    assert result.exit_code == EXIT_GATE, result.output
    assert "rollback window ends 2026-06-09 17:23 UTC" in result.stderr
    assert "Traceback" not in result.output
    assert not store.get(first.id).sealed
    assert len(ledger_lines(store)) == 2

    result = cli(
        tmp_path, "close", first.id, "--outcome", "rolled-back", "--key", str(KEYS / "jchen.pem"), "--force",
        env={"DMARCOPS_NOW": "2026-06-09T10:00:00Z"},
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "forced" in result.stdout
    closed = store.get(first.id)
    assert (closed.sealed, closed.closed_forced, closed.outcome) == (
        True,
        True,
        Outcome.ROLLED_BACK,
    )
    assert closed.closed_at == datetime(2026, 6, 9, 10, tzinfo=UTC)
    assert "before the rollback window ended (forced)" in closed.render_markdown()

    # At the window's end no force is needed, and none is recorded.
    result = cli(
        tmp_path, "close", second.id, "--outcome", "accepted", "--key", str(KEYS / "mhara.pem"),
        "--at", "2026-06-09T17:23:00Z", "--force", "--without-evidence", "no reports in this test",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert store.get(second.id).closed_forced is False
    assert verify(store.changes_dir, T0 + timedelta(days=1)) == []


def test_a_sealed_record_cannot_be_changed_through_the_cli(
    store: RecordStore, tmp_path: Path
) -> None:
    emergency = Emergency("mail bouncing at Outlook", T0 + timedelta(hours=24))
    record = store.create(
        lambda rid: make_record(rid, emergency=emergency, peer=""), at=T0, signer=JCHEN
    )
    assert cli(tmp_path, "review", record.id, "--key", str(KEYS / "mhara.pem"), "--verdict", "justified", "--notes", "ok",
               "--at", "2026-06-09T12:00:00Z").exit_code == 0  # fmt: skip
    assert cli(tmp_path, "close", record.id, "--outcome", "accepted", "--key", str(KEYS / "jchen.pem"),
               "--at", "2026-06-10T00:00:00Z", "--without-evidence", "no reports in this test",
               ).exit_code == 0  # fmt: skip
    sealed_bytes = (store.records_dir / f"{record.id}.json").read_bytes()
    for args in (
        ("close", record.id, "--outcome", "failed", "--key", str(KEYS / "jchen.pem"), "--force"),
        (
            "review",
            record.id,
            "--key",
            str(KEYS / "sokafor.pem"),
            "--verdict",
            "justified",
            "--notes",
            "rewriting history",
        ),
    ):
        result = cli(tmp_path, *args, "--at", "2026-06-11T00:00:00Z")
        assert result.exit_code == EXIT_GATE, result.output
        assert f"record {record.id} is sealed" in result.stderr
        assert "Traceback" not in result.output
    assert (store.records_dir / f"{record.id}.json").read_bytes() == sealed_bytes


# --- emergency reviews --------------------------------------------------------------------------


def test_overdue_emergency_review_is_listed_fails_audit_and_clears_after_review(
    store: RecordStore, tmp_path: Path
) -> None:
    due = T0 + timedelta(hours=24)
    late = store.create(
        lambda rid: make_record(rid, emergency=Emergency("DKIM broke", due), peer=""),
        at=T0,
        signer=JCHEN,
    )
    not_yet_due = store.create(
        lambda rid: make_record(rid, emergency=Emergency("SPF broke", due + timedelta(days=2))),
        at=T0,
        signer=JCHEN,
    )
    planned = store.create(make_record, at=T0, signer=JCHEN)
    now = "2026-06-10T12:00:00Z"  # 3 h after the first review was due

    result = cli(tmp_path, "reviews", "overdue", "--at", now)
    assert result.exit_code == 1  # an overdue review is a finding a monitor alerts on
    assert late.id in result.stdout and "3 h overdue" in result.stdout
    assert not_yet_due.id not in result.stdout and planned.id not in result.stdout

    result = cli(tmp_path, "audit", "verify", "--at", now)
    assert result.exit_code == EXIT_GATE
    assert f"{late.id}: emergency change: post-hoc review overdue" in result.stdout
    assert not_yet_due.id not in result.stdout

    # Cannot be sealed before the review, not even with --force.
    result = cli(tmp_path, "close", late.id, "--outcome", "accepted", "--key", str(KEYS / "mhara.pem"),
                 "--force", "--at", now)  # fmt: skip
    assert result.exit_code == EXIT_GATE and "post-hoc review" in result.stderr
    # The executor cannot review their own change (seed: no self-review).
    result = cli(tmp_path, "review", late.id, "--key", str(KEYS / "jchen.pem"), "--verdict", "justified", "--notes", "fine",
                 "--at", now)  # fmt: skip
    assert result.exit_code == EXIT_GATE and "cannot review it" in result.stderr

    result = cli(tmp_path, "review", late.id, "--key", str(KEYS / "mhara.pem"), "--verdict", "justified", "--notes",
                 "Justified: DKIM failures at Gmail.", "--at", now)  # fmt: skip
    assert result.exit_code == 0, result.output
    reviewed = store.get(late.id)
    assert reviewed.emergency is not None
    assert reviewed.emergency.reviewed_by == "mhara"
    assert reviewed.emergency.reviewed_at == datetime(2026, 6, 10, 12, tzinfo=UTC)
    assert not reviewed.sealed  # a review is an update before sealing

    assert cli(tmp_path, "reviews", "overdue", "--at", now).stdout == (
        "no overdue emergency reviews\n"
    )
    result = cli(tmp_path, "audit", "verify", "--at", now)
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("ok: 3 records, 5 ledger entries, chain intact\n")

    result = cli(tmp_path, "review", late.id, "--key", str(KEYS / "sokafor.pem"), "--verdict", "justified", "--notes", "again",
                 "--at", now)  # fmt: skip
    assert result.exit_code == EXIT_GATE and "already recorded" in result.stderr
    assert cli(
        tmp_path,
        "review",
        planned.id,
        "--key",
        str(KEYS / "sokafor.pem"),
        "--verdict",
        "justified",
        "--notes",
        "x",
    ).exit_code == (EXIT_INPUT)


# --- search -------------------------------------------------------------------------------------


@pytest.fixture
def portfolio(store: RecordStore) -> RecordStore:
    """Four records: two clients, three domains, three analysts, three risks, three dates."""
    specs: list[dict[str, Any]] = [
        dict(client="contoso-retail", zone="contoso-retail.example", risk=RiskLevel.HIGH,
             author="jchen", peer="mhara", executed_at=datetime(2026, 3, 1, 9, tzinfo=UTC)),
        dict(client="fabrikam-labs", zone="fabrikam.example", risk=RiskLevel.LOW,
             author="sokafor", peer="", executed_at=datetime(2026, 6, 9, 23, 59, tzinfo=UTC)),
        dict(client="fabrikam-labs", zone="fabrikam.example", risk=RiskLevel.MEDIUM,
             author="sokafor", peer="mhara", executed_at=datetime(2026, 6, 10, 9, tzinfo=UTC)),
        dict(client="contoso-retail", zone="contoso-shop.example", risk=RiskLevel.MEDIUM,
             author="jchen", peer="sokafor", executed_at=None),
    ]  # fmt: skip
    for spec in specs:
        store.create(partial(make_record, **spec), at=T0, signer=signer(str(spec["author"])))
    return store


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        ({}, ["2026-0001", "2026-0002", "2026-0003", "2026-0004"]),
        ({"client": "fabrikam-labs"}, ["2026-0002", "2026-0003"]),
        ({"domain": "Contoso-Shop.example."}, ["2026-0004"]),
        ({"analyst": "MHARA"}, ["2026-0001", "2026-0003"]),  # a peer reviewer counts; any case
        ({"analyst": "sokafor"}, ["2026-0002", "2026-0003", "2026-0004"]),
        ({"risk": RiskLevel.MEDIUM}, ["2026-0003", "2026-0004"]),
        # not executed: filed at T0 - 5 min = 2026-06-09 09:18
        ({"since": datetime(2026, 6, 9, tzinfo=UTC)}, ["2026-0002", "2026-0003", "2026-0004"]),
        ({"until": datetime(2026, 6, 10, tzinfo=UTC)}, ["2026-0001", "2026-0002", "2026-0004"]),
        ({"client": "contoso-retail", "risk": RiskLevel.HIGH}, ["2026-0001"]),
        ({"client": "nobody"}, []),
    ],
)
def test_list_filters(portfolio: RecordStore, filters: dict[str, Any], expected: list[str]) -> None:
    assert [r.id for r in portfolio.list(RecordFilter(**filters))] == expected


def test_records_list_command(portfolio: RecordStore, tmp_path: Path) -> None:
    result = cli(tmp_path, "records", "list", "--client", "fabrikam-labs", "--until", "2026-06-09")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].split() == [
        "ID", "CLIENT", "ZONES", "RISK", "TYPE", "EXECUTED", "OUTCOME", "SEALED"
    ]  # fmt: skip
    # --until DATE includes that whole day: 23:59 on the 9th is in, the 10th is out.
    assert [line.split()[0] for line in lines[1:]] == ["2026-0002"]
    assert lines[1].split() == [
        "2026-0002", "fabrikam-labs", "fabrikam.example", "low", "Policy", "progression",
        "2026-06-09", "23:59", "open", "no",
    ]  # fmt: skip
    result = cli(tmp_path, "records", "list", "--analyst", "nobody")
    assert (result.exit_code, result.stdout) == (0, "no change records match\n")
    result = cli(tmp_path, "records", "list", "--since", "last tuesday")
    assert result.exit_code == EXIT_INPUT and "cannot read --since" in result.stderr


# --- show ---------------------------------------------------------------------------------------


def test_records_show_formats_and_client_export(store: RecordStore, tmp_path: Path) -> None:
    record = store.create(
        lambda rid: make_record(rid, internal_notes="INTERNAL-ONLY"), at=T0, signer=JCHEN
    )
    result = cli(tmp_path, "records", "show", record.id, "--format", "json")
    assert result.exit_code == 0
    assert ChangeRecord.from_json(json.loads(result.stdout)) == record
    result = cli(tmp_path, "records", "show", record.id, "--format", "json", "--client-export")
    assert "internal_notes" not in json.loads(result.stdout)
    for fmt in ("text", "markdown"):
        shown = cli(tmp_path, "records", "show", record.id, "--format", fmt).stdout
        exported = cli(
            tmp_path, "records", "show", record.id, "--format", fmt, "--client-export"
        ).stdout
        assert "INTERNAL-ONLY" in shown and "INTERNAL-ONLY" not in exported
        assert "CHANGE RECORD #2026-0001" in exported


@pytest.mark.parametrize("record_id", ["2026-0099", "../../etc/passwd", "latest"])
def test_unknown_or_malformed_id_is_input_error(
    store: RecordStore, tmp_path: Path, record_id: str
) -> None:
    store.create(make_record, at=T0, signer=JCHEN)
    for args in (
        ("records", "show", record_id),
        ("close", record_id, "--outcome", "accepted", "--key", str(KEYS / "jchen.pem")),
        (
            "review",
            record_id,
            "--key",
            str(KEYS / "jchen.pem"),
            "--verdict",
            "justified",
            "--notes",
            "x",
        ),
    ):
        result = cli(tmp_path, *args)
        assert result.exit_code == EXIT_INPUT, (args, result.output)
        assert repr(record_id) in result.stderr or record_id in result.stderr
        assert "Traceback" not in result.output
    with pytest.raises(UnknownRecordError):
        store.get("2026-0099")


def test_bad_time_is_input_error(store: RecordStore, tmp_path: Path) -> None:
    record = store.create(make_record, at=T0, signer=JCHEN)
    result = cli(tmp_path, "close", record.id, "--outcome", "accepted", "--key", str(KEYS / "jchen.pem"),
                 env={"DMARCOPS_NOW": "tomorrow"})  # fmt: skip
    assert result.exit_code == EXIT_INPUT and "cannot read --at / DMARCOPS_NOW" in result.stderr
    assert not store.get(record.id).sealed


def test_review_verdict_follow_up_and_late_marking(store: RecordStore, tmp_path: Path) -> None:
    emergency = Emergency("mail bouncing at Outlook", T0 + timedelta(hours=24))
    on_time = store.create(
        lambda rid: make_record(rid, emergency=emergency, peer=""), at=T0, signer=JCHEN
    )
    late = store.create(
        lambda rid: make_record(rid, emergency=emergency, peer=""), at=T0, signer=JCHEN
    )
    # not-justified needs the policy follow-up it leads to; an unknown verdict is bad input.
    for extra in (("--verdict", "not-justified"), ("--verdict", "maybe"), ()):
        result = cli(tmp_path, "review", on_time.id, "--key", str(KEYS / "mhara.pem"), *extra, "--notes", "x",
                     "--at", "2026-06-09T12:00:00Z")  # fmt: skip
        assert result.exit_code in {EXIT_INPUT, 2}, (extra, result.output)
        assert not store.get(on_time.id).emergency.reviewed  # type: ignore[union-attr]
    result = cli(tmp_path, "review", on_time.id, "--key", str(KEYS / "mhara.pem"), "--verdict", "not-justified",
                 "--follow-up", "POL-12", "--notes", "could have waited",
                 "--at", "2026-06-09T12:00:00Z")  # fmt: skip
    assert result.exit_code == 0, result.output
    reviewed = store.get(on_time.id).emergency
    assert reviewed is not None
    assert (reviewed.verdict, reviewed.follow_up, reviewed.late) == (
        "not-justified",
        "POL-12",
        False,
    )
    assert "not-justified" in store.get(on_time.id).render_markdown()
    result = cli(tmp_path, "review", late.id, "--key", str(KEYS / "mhara.pem"), "--verdict", "justified",
                 "--notes", "bounces confirmed", "--at", "2026-06-11T12:00:00Z")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "(late" in result.stdout
    marked = store.get(late.id).emergency
    assert marked is not None and marked.late and marked.verdict == "justified"
    assert verify(store.changes_dir, T0 + timedelta(days=3)) == []


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        ({"approver": "MHARA"}, ["2026-0001", "2026-0003"]),  # jchen only proposed: not counted
        ({"approver": "jchen"}, []),
        ({"change_type": "policy progression"}, ["2026-0001", "2026-0002", "2026-0003", "2026-0004"]),
        ({"change_type": "DKIM rotation"}, []),
        ({"outcome": "open"}, ["2026-0001", "2026-0002", "2026-0003", "2026-0004"]),
        ({"outcome": "accepted"}, []),
        ({"text": "STABLE AT 99.3%"}, ["2026-0001", "2026-0002", "2026-0003", "2026-0004"]),
        ({"text": "no such words"}, []),
    ],
)  # fmt: skip
def test_list_filters_auditors_use(
    portfolio: RecordStore, filters: dict[str, Any], expected: list[str]
) -> None:
    assert [r.id for r in portfolio.list(RecordFilter(**filters))] == expected


def test_records_list_as_json_and_csv(portfolio: RecordStore, tmp_path: Path) -> None:
    as_json = cli(tmp_path, "records", "list", "--approver", "mhara", "--format", "json")
    assert as_json.exit_code == 0, as_json.output
    rows = json.loads(as_json.stdout)
    assert [(r["id"], r["approvers"], r["outcome"]) for r in rows] == [
        ("2026-0001", "mhara", "open"),
        ("2026-0003", "mhara", "open"),
    ]
    as_csv = cli(tmp_path, "records", "list", "--client", "fabrikam-labs", "--format", "csv")
    assert as_csv.exit_code == 0, as_csv.output
    lines = as_csv.stdout.splitlines()
    assert lines[0] == "id,client,zones,risk,type,executed_at,executed_by,approvers,outcome,sealed"
    assert lines[1].startswith("2026-0002,fabrikam-labs,fabrikam.example,low,Policy progression,")
    from pipeline.cli import main

    bad = CliRunner().invoke(main, ["--repo", str(tmp_path), "records", "list", "--type", "x"])
    assert bad.exit_code == EXIT_INPUT and "Traceback" not in bad.output  # a usage error: 1


# --- an apply's batch of record files ------------------------------------------------------------


def test_a_batch_of_files_is_written_whole_or_not_at_all(tmp_path: Path) -> None:
    """write_all_atomic (the group commit of an apply's records): every file replaced and no
    temporary file left; when one cannot be written, none is replaced, the temporary files are
    removed, and a link planted at a temporary name is never written through."""
    import os

    from pipeline.records.record_files import write_all_atomic

    folder = tmp_path / "records"
    folder.mkdir()
    names = [f"2026-{n:04d}.json" for n in range(1, 6)]
    for name in names:
        (folder / name).write_bytes(b"old\n")
    write_all_atomic([(folder / n, f"new {n}\n".encode()) for n in names], folder)
    assert [(folder / n).read_text() for n in names] == [f"new {n}\n" for n in names]
    assert sorted(p.name for p in folder.iterdir()) == names

    elsewhere = tmp_path / "elsewhere.txt"
    (folder / f".{names[3]}.tmp-{os.getpid()}").symlink_to(elsewhere)
    with pytest.raises(OSError):
        write_all_atomic([(folder / n, b"newer\n") for n in names], folder)
    assert [(folder / n).read_text() for n in names] == [f"new {n}\n" for n in names]
    assert sorted(p.name for p in folder.iterdir()) == names
    assert not elsewhere.exists()


def test_records_opened_without_markdown_get_it_when_finished(tmp_path: Path) -> None:
    """An apply opens its records without markdown (RecordStore.create_many(markdown=False)):
    the markdown is rendered once, when they are finished. A markdown left at the number by a
    creation cut short is removed, not passed off as the new record's; `audit verify` passes
    with and without it."""
    store = genesis(tmp_path)
    stale = store.markdown_path("2026-0002")
    store.records_dir.mkdir(parents=True, exist_ok=True)
    stale.write_text("# 2026-0002: a creation cut short\n")
    opened = store.create_many(
        [partial(make_record, executed_at=None)] * 2, at=T0, signer=JCHEN, markdown=False
    )
    assert [r.id for r in opened] == ["2026-0001", "2026-0002"]
    assert all(store.json_path(r.id).exists() for r in opened)
    assert not any(store.markdown_path(r.id).exists() for r in opened)
    assert verify(store.changes_dir, T0 + timedelta(minutes=1)) == []
    finished = store.update_many([replace(r, executed_at=T0) for r in opened], T0, JCHEN)
    for record in finished:
        assert store.markdown_path(record.id).read_text() == record.render_markdown()
    assert verify(store.changes_dir, T0 + timedelta(minutes=1)) == []


def test_a_batch_naming_a_record_twice_is_refused_before_any_file(tmp_path: Path) -> None:
    """Each ledger line of a batch chains to its record's line before it: a record twice in one
    batch is a caller's bug, refused before anything is written."""
    store = genesis(tmp_path)
    record = store.create(partial(make_record, executed_at=None), at=T0, signer=JCHEN)
    before = store.json_path(record.id).read_bytes()
    lines = store.ledger.lines()
    finished = replace(record, executed_at=T0)
    with pytest.raises(ValueError, match="twice"):
        store.update_many([finished, finished], T0, JCHEN)
    assert store.json_path(record.id).read_bytes() == before
    assert store.ledger.lines() == lines


@pytest.mark.parametrize(
    "rationale",
    ["plain", 'Zürich → 東京, \u2028 line sep, \x7f, tab\t, quote " and \\\\', "emoji 😀"],
)
def test_a_record_file_is_the_standard_librarys_layout(rationale: str) -> None:
    # record_file_bytes takes orjson's fast path for JSON without floats; the layout must stay
    # the standard library's byte for byte (audit verify compares a file's layout).
    from pipeline.records import record_files
    from pipeline.records.record_files import _pretty, record_file_bytes

    record = make_record("2026-0001", rationale=rationale)
    assert record_file_bytes(record) == _pretty(record.to_json())
    data = record.to_json()
    data["rate"] = 0.5  # a float: the standard library's encoder writes it
    assert record_files._holds_float(data) and not record_files._holds_float(record.to_json())


def test_a_key_that_is_not_the_rosters_is_refused_after_the_right_key_signed(
    tmp_path: Path,
) -> None:
    # Ledger.append_after checks a signing key once per process against the roster, then compares
    # keys: another key in the same analyst's name must still be refused, and write nothing.
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from pipeline.errors import GateRefused
    from pipeline.gate.identity import Signer
    from pipeline.records.ledger import LedgerEvent

    store = genesis(tmp_path)
    store.create(make_record, at=T0, signer=JCHEN)
    store.create(make_record, at=T0, signer=JCHEN)  # the second line: jchen's key known
    lines = store.ledger.path.read_bytes()
    last = store.ledger.read()[-1]
    impostor = Signer("jchen", Ed25519PrivateKey.generate())
    with pytest.raises(GateRefused, match="nothing was written"):
        store.ledger.append_after(
            last.seq,
            last.entry_sha256,
            event=LedgerEvent.UPDATED,
            signer=impostor,
            at=T0,
            roster=store.trusted_roster(),
            record_id="2026-0001",
            record_sha256="0" * 64,
            record_prev=last.record_sha256,
        )
    assert store.ledger.path.read_bytes() == lines
