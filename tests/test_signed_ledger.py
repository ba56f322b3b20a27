"""The signed ledger (format 2): every line signed by its actor with a key the *sealed* roster holds.

The attacker is an analyst (jchen) with write access to the repository and their own key. Each
attack sits beside the legitimate act it imitates, which succeeds.
"""

from __future__ import annotations

import json
import shutil
from datetime import timedelta
from pathlib import Path

import pytest
from clockcli import invoke_at
from portfolio import copy_example
from signing import JCHEN, KEYS, MHARA, SOKAFOR, genesis
from test_records import T0, cli, make_record

from pipeline.errors import EXIT_GATE, GateRefused
from pipeline.gate.identity import Signer
from pipeline.records import Outcome, RecordStore, verify
from pipeline.records.policy_seal import current_snapshot, snapshot_path

LATER = T0 + timedelta(days=2)


@pytest.fixture
def store(tmp_path: Path) -> RecordStore:
    store = genesis(tmp_path)
    store.create(make_record, at=T0, signer=JCHEN)
    return store


def test_a_close_signed_by_the_closer_verifies(store: RecordStore) -> None:
    store.seal(
        "2026-0001", Outcome.ACCEPTED, LATER, MHARA, without_evidence="no reports in this test"
    )
    assert verify(store.changes_dir, LATER) == []
    entry = store.ledger.read()[-1]
    assert (entry.actor, entry.event.value) == ("mhara", "sealed")


def test_a_signer_claiming_another_name_is_refused_before_anything_is_written(
    store: RecordStore,
) -> None:
    # jchen's key presented as mhara's (what a hand-made Signer, or a roster file edited to list
    # jchen's key under mhara, would give): the store checks the signature against the roster as
    # sealed and writes nothing.
    forged = Signer("mhara", JCHEN.key)
    before = store.ledger.lines(), store.json_path("2026-0001").read_bytes()
    with pytest.raises(GateRefused, match="sealed roster"):
        store.seal(
            "2026-0001", Outcome.ACCEPTED, LATER, forged, without_evidence="no reports in this test"
        )
    assert (store.ledger.lines(), store.json_path("2026-0001").read_bytes()) == before


def test_a_hand_written_line_signed_with_another_key_is_named(store: RecordStore) -> None:
    # Bypassing the store: jchen appends mhara's close, signed with jchen's own key.
    forged_signer = Signer("mhara", JCHEN.key)
    entries = store.ledger.read()
    sealed = store.get("2026-0001")
    from dataclasses import replace

    from pipeline.records.ledger import LedgerEntry, LedgerEvent
    from pipeline.records.store import record_file_bytes

    closed = replace(sealed, outcome=Outcome.ACCEPTED, closed_at=LATER, closed_by="mhara",
                     sealed=True)  # fmt: skip
    store.json_path("2026-0001").write_bytes(record_file_bytes(closed))
    store.markdown_path("2026-0001").write_text(closed.render_markdown(), encoding="utf-8")
    line = LedgerEntry.make(
        seq=entries[-1].seq + 1,
        event=LedgerEvent.SEALED,
        signer=forged_signer,
        at=LATER,
        prev=entries[-1].entry_sha256,
        record_id="2026-0001",
        record_sha256=closed.sha256(),
        record_prev=entries[-1].record_sha256,
    )
    with store.ledger.path.open("a", encoding="utf-8") as handle:
        handle.write(line.to_line())
    problems = [str(p) for p in verify(store.changes_dir, LATER)]
    assert any("the signature is not mhara's" in p for p in problems), problems


def test_the_genesis_is_sealed_once_and_by_a_lead(tmp_path: Path) -> None:
    store = genesis(tmp_path)
    with pytest.raises(GateRefused, match="already begun"):
        store.seal_policy(current_snapshot(tmp_path), LATER, MHARA, genesis=True)
    other = tmp_path / "other"
    other.mkdir()
    shutil.copytree(tmp_path / "policy", other / "policy")
    with pytest.raises(GateRefused, match="not a lead"):
        RecordStore(other / "changes").seal_policy(
            current_snapshot(other), LATER, SOKAFOR, genesis=True
        )
    assert not (other / "changes" / "ledger.jsonl").exists()


def test_init_command_seals_and_refuses_a_second_time(tmp_path: Path) -> None:
    from signing import REPO

    shutil.copytree(REPO / "policy", tmp_path / "policy")
    (tmp_path / "zones").mkdir()
    first = cli(tmp_path, "init", "--key", str(KEYS / "mhara.pem"))
    assert first.exit_code == 0, first.output
    assert "as the genesis of the ledger, signed by mhara" in first.output
    again = cli(tmp_path, "init", "--key", str(KEYS / "mhara.pem"))
    assert again.exit_code == EXIT_GATE and "already begun" in again.output


def test_an_edited_sealed_policy_is_named(store: RecordStore) -> None:
    digest = store.ledger.read()[0].payload["policy_sha256"]
    path = snapshot_path(store.changes_dir, digest)
    data = json.loads(path.read_text(encoding="utf-8"))
    data["files"]["policy/gate.yaml"] += "\n# lowered\n"
    path.write_text(json.dumps(data), encoding="utf-8")
    problems = [str(p) for p in verify(store.changes_dir, LATER)]
    assert any("was edited (its hash is not its name)" in p for p in problems), problems


def test_a_ledger_without_genesis_is_a_problem(tmp_path: Path) -> None:
    from signing import REPO

    shutil.copytree(REPO / "policy", tmp_path / "policy")
    store = RecordStore(tmp_path / "changes")
    store.create(make_record, at=T0, signer=JCHEN)  # before init: the roster file's keys
    problems = [str(p) for p in verify(store.changes_dir, T0)]
    assert any("does not begin with a sealed policy" in p for p in problems), problems


# --- signatures a record cites (issue 11: re-verified by audit verify) ----------------------------


def _applied_example(tmp_path: Path) -> RecordStore:
    """The README's session on the example: mhara approves CR-0002, jchen applies (sandbox)."""
    repo = copy_example(tmp_path / "repo")
    plan_file = tmp_path / "plan.json"
    base = ["--repo", str(repo)]
    assert invoke_at([*base, "plan", "--client", "fabrikam-labs", "--format", "json",
                      "--out", str(plan_file), "--at", "2026-12-01T08:30"]).exit_code == 0  # fmt: skip
    assert invoke_at([*base, "approve", "--plan", str(plan_file), "--request",
                      "CR-0002-fabrikam-labs", "--key", str(KEYS / "mhara.pem"),
                      "--at", "2026-12-01T08:40"]).exit_code == 0  # fmt: skip
    applied = invoke_at([*base, "apply", "--plan", str(plan_file), "--key",
                         str(KEYS / "jchen.pem"), "--at", "2026-12-01T08:45"])  # fmt: skip
    assert applied.exit_code == 0, applied.output
    return RecordStore(repo / "changes")


def test_a_record_carries_the_signatures_it_rests_on(tmp_path: Path) -> None:
    store = _applied_example(tmp_path)
    record = store.get("2026-0002")
    assert [(a.role.value, a.who, bool(a.signature)) for a in record.approvals] == [
        ("analyst", "jchen", True),
        ("peer", "mhara", True),
    ]
    assert verify(store.changes_dir, LATER.replace(year=2026, month=12, day=1)) == []


@pytest.mark.parametrize(
    "edit",
    [
        "backdate the peer approval by a minute",
        "name sokafor as the approver",
        "cite another request hash",
        "strip the approver's signature",
    ],
)
def test_a_re_signed_record_cannot_change_what_its_approvals_say(tmp_path: Path, edit: str) -> None:
    # jchen rewrites their own record and re-signs every line of it (all theirs after the
    # genesis): the chain and the line signatures then hold; the approver's signature does not.
    from dataclasses import replace

    from test_tamper import rehash, write_record

    from pipeline.records.ledger import LedgerEntry

    store = _applied_example(tmp_path)
    record = store.get("2026-0002")
    author, peer = record.approvals
    if edit == "backdate the peer approval by a minute":
        peer = replace(peer, at=peer.at - timedelta(minutes=1))  # type: ignore[operator]
    elif edit == "name sokafor as the approver":
        peer = replace(peer, who="sokafor")
    elif edit == "strip the approver's signature":
        peer = replace(peer, signature="")
    else:
        record = replace(record, request_sha256="0" * 64)
    digest = write_record(store, replace(record, approvals=(author, peer)))
    entries = [LedgerEntry.from_line(line) for line in store.ledger.lines()[1:]]
    last = max(i for i, e in enumerate(entries) if e.record_id == "2026-0002")
    entries[last] = replace(entries[last], record_sha256=digest)
    lines = rehash(store, entries)
    store.ledger.path.write_text(
        "".join(f"{line}\n" for line in [store.ledger.lines()[0], *lines]), encoding="utf-8"
    )
    problems = [str(p) for p in verify(store.changes_dir, LATER.replace(month=12, day=1))]
    assert any(p.startswith("2026-0002: ") and "approval" in p for p in problems), problems


def test_a_request_edited_after_its_change_is_named(tmp_path: Path) -> None:
    store = _applied_example(tmp_path)
    request = store.changes_dir / "requests" / "CR-0002-fabrikam-labs.yaml"
    request.write_text(request.read_text().replace("rationale:", "rationale: (revised)", 1))
    problems = [str(p) for p in verify(store.changes_dir, LATER.replace(month=12, day=1))]
    assert any(
        p.startswith("2026-0002: its change request CR-0002-fabrikam-labs.yaml was edited")
        for p in problems
    ), problems


def test_an_emptied_ledger_is_named(tmp_path: Path) -> None:
    store = _applied_example(tmp_path)
    store.ledger.path.write_text("", encoding="utf-8")
    shutil.rmtree(store.records_dir)
    problems = [str(p) for p in verify(store.changes_dir, LATER.replace(month=12, day=1))]
    assert any("a ledger that was begun has been emptied" in p for p in problems), problems
    result = cli(store.changes_dir.parent, "audit", "verify")
    assert result.exit_code == EXIT_GATE and "chain intact" not in result.output


def test_a_line_break_inside_a_note_does_not_split_the_ledger(tmp_path: Path) -> None:
    store = genesis(tmp_path)
    store.create(make_record, at=T0, signer=JCHEN)
    store.seal(
        "2026-0001", Outcome.ACCEPTED, LATER, MHARA, without_evidence="no reports in this test"
    )
    # U+2028 and U+0085 are line breaks to str.splitlines(): one line must stay one line.
    store.attest("2026-0001", "ok", "fine\u2028really\x85yes", LATER, SOKAFOR)
    assert len(store.ledger.read()) == 4
    assert verify(store.changes_dir, LATER) == []


def test_a_lone_surrogate_in_a_ledger_line_is_a_finding_not_a_crash(store: RecordStore) -> None:
    lines = store.ledger.path.read_text().splitlines()
    data = json.loads(lines[-1])
    data["actor"] = "\ud800"
    lines[-1] = json.dumps(data)
    store.ledger.path.write_text("\n".join(lines) + "\n")
    problems = [str(p) for p in verify(store.changes_dir, LATER)]
    assert any("lone surrogate" in p for p in problems), problems
