"""`dmarcops audit verify`: the ledger's chain, signatures, histories and numbering, anchors and
the pinned genesis (the record files themselves: pipeline.records.audit_files). It reads every
line and every file, never the record index (pipeline.records.index)."""

from __future__ import annotations

import builtins
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from itertools import pairwise
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from pipeline.errors import InputError
from pipeline.gate.identity import signature_holds
from pipeline.gate.roster import Analyst, Roster, load_roster
from pipeline.records.audit_anchor import _check_anchor
from pipeline.records.audit_files import (
    AuditProblem,
    _check_files,
)
from pipeline.records.audit_pool import Child, Forks
from pipeline.records.fastjson import sha256_is
from pipeline.records.ledger import (
    GENESIS,
    LedgerEntry,
    LedgerEvent,
    record_id_of,
)
from pipeline.records.policy_of_record import seal_problem
from pipeline.records.policy_seal import (
    load_snapshot,
    roster_of_snapshot,
)
from pipeline.records.record import (
    RECORD_ID,
    format_utc,
    plain,
    utc,
)
from pipeline.records.record_files import (
    ATTEST_VERDICTS,
    _sort_key,
)
from pipeline.records.store_base import RecordStoreBase


@dataclass(frozen=True)
class AuditReport:
    problems: tuple[AuditProblem, ...]
    records: int  # distinct records in the ledger
    entries: int  # ledger lines
    head: str  # entry_sha256 of the last line: write it down elsewhere to anchor the chain

    @property
    def ok(self) -> bool:
        return not self.problems


def verify(
    changes_dir: Path, now: datetime, sandbox_clients: frozenset[str] | None = None
) -> builtins.list[AuditProblem]:
    return builtins.list(audit(changes_dir, now, sandbox_clients).problems)


def audit(
    changes_dir: Path,
    now: datetime,
    sandbox_clients: frozenset[str] | None = None,
    anchor: builtins.list[tuple[int, str, str]] | None = None,
    genesis: str | None = None,
) -> AuditReport:
    """Check the audit trail: the chain, every record against its last event, the numbering, and
    overdue emergency reviews. Reads damaged files instead of stopping at the first problem."""
    problems: builtins.list[AuditProblem] = []
    # The base store suffices (the ledger and the directories); store.py re-exports this module.
    store = RecordStoreBase(changes_dir)
    lines = store.ledger.lines()
    line_count = len(lines)
    rosters: dict[str, Roster] = {}
    with Forks(line_count) as forks:
        # Who signed each line is worked out as the lines are read, so the signatures of the
        # first lines are checked (in children) while the last ones are still being read.
        signers = _Signers(store, rosters, forks)
        entries = _check_chain(lines, problems, signers)
        del lines  # the entries hold what is needed: peak memory stays one copy of the ledger
        signers.dispatch()
        last_events = _check_histories(entries, problems)
        _check_numbering(entries, problems)
        if (
            not line_count
            and (store.changes_dir / "policy").is_dir()
            and any((store.changes_dir / "policy").glob("*.json"))
        ):
            problems.append(
                AuditProblem(
                    "",
                    "the ledger is empty, yet changes/policy/ holds sealed policies: a ledger "
                    "that was begun has been emptied",
                )
            )
        in_files: builtins.list[AuditProblem] = []
        _check_files(
            store, last_events, utc(now), in_files, sandbox_clients, signers.actors, rosters
        )
        problems.extend(signers.problems_in_order())
        problems.extend(in_files)
    if anchor is not None:
        _check_anchor(entries, anchor, problems)
    if genesis is not None and (not entries or entries[0][1].entry_sha256 != genesis):
        problems.append(
            AuditProblem(
                "",
                f"the ledger does not begin with the pinned genesis {genesis[:16]}...: it was "
                "replaced, rebuilt or copied from another repository",
            )
        )
    head = entries[-1][1].entry_sha256 if entries else GENESIS
    return AuditReport(tuple(problems), len(last_events), line_count, head)


def _check_chain(
    lines: builtins.list[str], problems: builtins.list[AuditProblem], signers: _Signers
) -> builtins.list[tuple[int, LedgerEntry]]:
    """Line by line: readable, seq contiguous, prev linking to the line before, entry hash; each
    entry read is handed to `signers` in line order."""
    entries: builtins.list[tuple[int, LedgerEntry]] = []
    expected_seq, prev_hash, prev_record = 1, GENESIS, ""
    last_at: datetime | None = None
    for number, line in enumerate(lines, 1):
        try:
            entry, has_floats = LedgerEntry.parse(line)
        except ValueError as exc:
            problems.append(AuditProblem(record_id_of(line), f"ledger line {number}: {exc}"))
            # The next line's prev cannot be checked against a line that cannot be read.
            prev_hash, prev_record = "", ""
            expected_seq += 1
            continue
        issues = []
        if entry.seq != expected_seq:
            issues.append(
                f"seq {entry.seq} where {expected_seq} was expected (a line was deleted, added "
                "or moved)"
            )
        if prev_hash and entry.prev != prev_hash:
            before = f" (record {prev_record})" if prev_record else ""
            issues.append(
                f"prev does not link to line {number - 1}{before}: the chain is broken there "
                "(a line was deleted, moved or edited)"
                if number > 1
                else "the first line does not start the chain (lines before it were deleted)"
            )
        if not sha256_is(entry.body(), entry.entry_sha256, has_floats=has_floats):
            issues.append("entry_sha256 does not match the entry (the line was edited)")
        if last_at is not None and entry.at < last_at:
            issues.append(
                f"dated {format_utc(entry.at)}, before line {number - 1} "
                f"({format_utc(last_at)}): sequence numbers must increase with time"
            )
        if issues:
            problems.append(
                AuditProblem(
                    entry.record_id,
                    f"ledger line {number} ({entry.event.value}): " + "; ".join(issues),
                )
            )
        entries.append((number, entry))
        signers.step(number, entry)
        expected_seq, prev_hash, prev_record = entry.seq + 1, entry.entry_sha256, entry.record_id
        last_at = entry.at
    return entries


# A signature to check: where its problem goes among the signers' problems, the ledger line, the
# keys it may be signed with, the entry.
_SignatureJob = tuple[int, int, tuple[Ed25519PublicKey, ...], LedgerEntry]

# Signatures per child: ~1.5 s of work each at 60 us a check, so the first child starts a
# quarter of the way through a 100,000-line ledger.
SIGNATURES_PER_CHILD = 25_000


class _Signers:
    """Every entry is signed by its actor with a key the roster *of its time* holds: the roster
    of the last policy sealed before it (the genesis seals its own, signed by one of its leads).

    Fed the entries in line order (`step`); keeps, per (record, event), who signed it (line,
    actor, is the automation) so the record files can be checked against their signers, and the
    roster that judged each record's creation (into `rosters`). The signatures themselves are
    checked in children, a range at a time (`dispatch`); `problems_in_order` waits for them."""

    def __init__(self, store: RecordStoreBase, rosters: dict[str, Roster], forks: Forks) -> None:
        self.store = store
        self.rosters = rosters
        self.forks = forks
        self.actors: dict[tuple[str, LedgerEvent], builtins.list[tuple[int, str, bool]]] = (
            defaultdict(builtins.list)
        )
        self.problems: builtins.list[AuditProblem] = []
        self.roster: Roster | None = None
        self.stopped = False  # no roster to check anything against
        self.current_hash: dict[str, str] = {}  # each record's hash as of the line being checked
        self.entries: builtins.list[LedgerEntry] = []  # for seal_problem: the lines so far
        self.jobs: builtins.list[_SignatureJob] = []
        self.children: builtins.list[Child[int]] = []
        self.dispatched = 0

    def step(self, number: int, entry: LedgerEntry) -> None:
        if self.stopped:
            return
        problems = self.problems
        self.entries.append(entry)
        if self.roster is None:
            if entry.event is LedgerEvent.POLICY and number == 1:
                self.roster = _sealed_roster(self.store, entry, number, problems)
                member = self.roster.get(entry.actor) if self.roster else None
                if self.roster is not None and (member is None or not member.is_lead):
                    problems.append(
                        AuditProblem(
                            "",
                            f"ledger line {number} (genesis): signed by {plain(entry.actor)}, "
                            "who is not a lead on the roster it seals",
                        )
                    )
            else:
                problems.append(
                    AuditProblem(
                        "",
                        "the ledger does not begin with a sealed policy (`dmarcops init`): "
                        "signatures are checked against policy/roster.yaml as it is now",
                    )
                )
                try:
                    self.roster = load_roster(self.store.changes_dir.parent)
                except InputError as exc:
                    problems.append(AuditProblem("", f"no roster to check signatures: {exc}"))
                    self.stopped = True
                    return
        roster = self.roster
        if roster is None:
            self.stopped = True
            return
        member = roster.get(entry.actor)
        if member is None:
            problems.append(
                AuditProblem(
                    entry.record_id,
                    f"ledger line {number} ({entry.event.value}): signed as "
                    f"{plain(entry.actor)}, who is not on the roster of record",
                )
            )
        else:
            # Checked in a child, reported here, in line order; the message is written only
            # for a signature that fails.
            self.jobs.append((len(problems), number, member.public_keys(), entry))
            if len(self.jobs) - self.dispatched >= SIGNATURES_PER_CHILD:
                self.dispatch()
        if entry.event is LedgerEvent.POLICY and number > 1:
            problem = seal_problem(
                self.store.changes_dir, self.entries, len(self.entries) - 1, roster
            )
            if problem is not None:
                problems.append(AuditProblem("", problem))
            else:
                self.roster = _sealed_roster(self.store, entry, number, problems) or roster
        if entry.event is LedgerEvent.ATTESTED:
            _check_attestation(entry, number, self.current_hash, member, problems)
        if entry.event is LedgerEvent.PURGED and (member is None or not member.is_lead):
            problems.append(
                AuditProblem(
                    entry.record_id,
                    f"ledger line {number} (purged): purged by {plain(entry.actor)}, who is not "
                    "a lead (only a lead ends a record's retention)",
                )
            )
        if entry.record_id:
            self.current_hash[entry.record_id] = entry.record_sha256
            automation = member is not None and not member.is_person
            self.actors[(entry.record_id, entry.event)].append((number, entry.actor, automation))
            if entry.event is LedgerEvent.CREATED:
                self.rosters[entry.record_id] = roster

    def _forged(self, start: int, stop: int) -> builtins.list[int]:
        # Indexes only cross back from the children: keys do not pickle.
        jobs = self.jobs
        return [
            n
            for n in range(start, stop)
            if not signature_holds(jobs[n][2], jobs[n][3].head(), jobs[n][3].signature)
        ]

    def dispatch(self) -> None:
        """The signatures not yet handed out, to a child forked now (or checked when asked)."""
        if self.dispatched < len(self.jobs):
            self.children.append(self.forks.child(self._forged, self.dispatched, len(self.jobs)))
            self.dispatched = len(self.jobs)

    def problems_in_order(self) -> builtins.list[AuditProblem]:
        problems = builtins.list(self.problems)
        forged = [n for child in self.children for n in child.result()]
        # From the last to the first: each insertion leaves the earlier positions where they were.
        for n in reversed(forged):
            where, number, _, entry = self.jobs[n]
            problems.insert(
                where,
                AuditProblem(
                    entry.record_id,
                    f"ledger line {number} ({entry.event.value}): the signature is not "
                    f"{plain(entry.actor)}'s (forged, replaced, or the line was re-hashed)",
                ),
            )
        return problems


def _check_attestation(
    entry: LedgerEntry,
    number: int,
    current_hash: dict[str, str],
    member: Analyst | None,
    problems: builtins.list[AuditProblem],
) -> None:
    """An attestation names a record that existed, as it was then, and is a person's."""
    payload = entry.payload
    rid = payload.get("record")
    digest = payload.get("record_sha256")
    where = f"ledger line {number} (attested)"
    if not isinstance(rid, str) or not RECORD_ID.match(rid) or not isinstance(digest, str):
        problems.append(AuditProblem("", f"{where}: names no record"))
        return
    if payload.get("verdict") not in ATTEST_VERDICTS:
        problems.append(AuditProblem(rid, f"{where}: verdict is not one of ok | finding"))
    if rid not in current_hash:
        problems.append(AuditProblem(rid, f"{where}: attests a record the ledger had not created"))
    elif current_hash[rid] != digest:
        problems.append(AuditProblem(rid, f"{where}: attests a version of the record it never had"))
    if member is not None and not member.is_person:
        problems.append(AuditProblem(rid, f"{where}: given with the automation's key"))


def _sealed_roster(
    store: RecordStoreBase, entry: LedgerEntry, number: int, problems: builtins.list[AuditProblem]
) -> Roster | None:
    digest = entry.payload.get("policy_sha256")
    if not isinstance(digest, str):
        problems.append(AuditProblem("", f"ledger line {number}: a policy seal without its hash"))
        return None
    try:
        return roster_of_snapshot(load_snapshot(store.changes_dir, digest))
    except ValueError as exc:
        problems.append(AuditProblem("", f"ledger line {number}: {exc}"))
    except InputError as exc:
        problems.append(AuditProblem("", f"ledger line {number}: its roster: {exc.message}"))
    return None


def _check_histories(
    entries: builtins.list[tuple[int, LedgerEntry]], problems: builtins.list[AuditProblem]
) -> dict[str, tuple[int, LedgerEntry]]:
    """Per record: created first and once, nothing after sealed, each event following the last."""
    last: dict[str, tuple[int, LedgerEntry]] = {}
    first_line: dict[str, int] = {}
    for number, entry in entries:
        if not entry.is_record_event:
            continue  # a policy seal: checked by _check_signatures
        rid = entry.record_id
        seen = last.get(rid)
        if seen is None:
            if entry.event is not LedgerEvent.CREATED:
                problems.append(
                    AuditProblem(
                        rid,
                        f"ledger line {number}: first event is {entry.event.value}, not created "
                        "(its earlier lines were deleted or moved)",
                    )
                )
            elif entry.record_prev != GENESIS:
                problems.append(
                    AuditProblem(
                        rid,
                        f"ledger line {number}: created, yet it links to an earlier event of "
                        "this record (that event's line was deleted)",
                    )
                )
        else:
            seen_number, seen_entry = seen
            if entry.event is LedgerEvent.CREATED:
                problems.append(
                    AuditProblem(
                        rid,
                        f"ledger line {number}: created again (first at line "
                        f"{first_line[rid]}): "
                        "duplicate record id",
                    )
                )
            if seen_entry.event is LedgerEvent.PURGED:
                problems.append(
                    AuditProblem(
                        rid,
                        f"ledger line {number}: {entry.event.value} after the record was purged "
                        f"at line {seen_number}",
                    )
                )
            elif entry.event is LedgerEvent.PURGED:
                if seen_entry.event is not LedgerEvent.SEALED:
                    problems.append(
                        AuditProblem(
                            rid,
                            f"ledger line {number}: purged, but the record was never sealed "
                            "(only sealed records reach the end of their retention)",
                        )
                    )
            elif seen_entry.event is LedgerEvent.SEALED:
                problems.append(
                    AuditProblem(
                        rid,
                        f"ledger line {number}: {entry.event.value} after the record was sealed "
                        f"at line {seen_number} (sealed records are never edited)",
                    )
                )
            if entry.record_prev != seen_entry.record_sha256:
                problems.append(
                    AuditProblem(
                        rid,
                        f"ledger line {number}: does not follow the record's previous event "
                        f"(line {seen_number}): an event of this record is missing or out of "
                        "order",
                    )
                )
        first_line.setdefault(rid, number)
        last[rid] = (number, entry)
    return last


def _check_numbering(
    entries: builtins.list[tuple[int, LedgerEntry]], problems: builtins.list[AuditProblem]
) -> None:
    """Per year, created ids run 1, 2, 3, ... in ledger order (duplicates are reported above)."""
    created: dict[int, builtins.list[tuple[int, int]]] = defaultdict(builtins.list)
    for number, entry in entries:
        if entry.event is LedgerEvent.CREATED:
            year, seq = _sort_key(entry.record_id)
            created[year].append((number, seq))
    for year, numbers in sorted(created.items()):
        seqs = [seq for _, seq in numbers]
        for missing in sorted(set(range(1, max(seqs) + 1)) - set(seqs)):
            problems.append(
                AuditProblem(
                    f"{year:04d}-{missing:04d}",
                    "no record with this number in the ledger, though later numbers of "
                    f"{year} exist (numbers must have no gaps)",
                )
            )
        for (line_a, a), (line_b, b) in pairwise(numbers):
            if b < a:
                problems.append(
                    AuditProblem(
                        f"{year:04d}-{b:04d}",
                        f"created at ledger line {line_b}, after {year:04d}-{a:04d} (line "
                        f"{line_a}): numbers were not allocated in order",
                    )
                )
