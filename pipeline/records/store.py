"""The change records on disk (`changes/records/<id>.json` and `.md`), their ledger, and its audit.

Seed rules this module enforces:
- "never modify a change record after the outcome is logged": a sealed record is never written
  again (`SealedRecordError`); a follow-up is a new record that references it.
- "Emergency changes that aren't followed by post-hoc review create the gap where loose discipline
  regrows": an emergency record cannot be sealed before its review is recorded, and an overdue
  review is an audit problem.
- "Rollback window. The time after a change during which the analyst stays available": a record is
  not closed before its rollback window ends unless forced, and a forced close is recorded.
- "Searchable by client, domain, date, analyst": `RecordStore.list`.

Every write happens under `exclusive_lock`, writes the JSON then the markdown atomically (temp file,
fsync, rename), then appends its ledger event. A crash between the two leaves a record file that
no longer matches the ledger, which `verify` reports; it never leaves an unrecorded change that
looks recorded. In the same step, under the same lock, a write brings the record index up to date
(pipeline.records.index: a cache that spares writers, `records list` and `plan` the history;
`audit verify` never reads it).
"""

from __future__ import annotations

import builtins
import contextlib
import hashlib
import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any

from pipeline.errors import GateRefused, InputError
from pipeline.gate.identity import Signer
from pipeline.gate.roster import Roster, load_roster
from pipeline.load.files import exists, is_regular, make_dir, read_bytes
from pipeline.model import RiskLevel
from pipeline.records.acceptance import _check_acceptance
from pipeline.records.audit import (
    ANCHOR_FORMAT,
    AuditReport,
    audit,
    make_anchor,
    parse_anchor,
    verify,
)
from pipeline.records.audit_files import INTERRUPTED_AFTER, AuditProblem, chronology
from pipeline.records.index import INDEX_PATH, index_of
from pipeline.records.index_ledger import LedgerView, ledger_view
from pipeline.records.index_records import (
    IndexTampered,
    ListFilter,
    executed_requests,
    list_fields,
    list_row,
    listed,
    put_record,
    read_row,
    refresh,
)
from pipeline.records.ledger import (
    LEDGER_NAME,
    Ledger,
    LedgerEntry,
    LedgerEvent,
    exclusive_lock,
)
from pipeline.records.policy_of_record import sealed_policy
from pipeline.records.policy_seal import (
    PolicySnapshot,
    roster_of_snapshot,
    store_snapshot,
)
from pipeline.records.record import (
    RECORD_ID,
    REVIEW_VERDICTS,
    ChangeRecord,
    Outcome,
    ReportCheck,
    canonical_bytes,
    show_utc,
    utc,
)
from pipeline.records.record_files import (
    ATTEST_VERDICTS,
    RECORDS_DIR,
    RecordMismatchError,
    SealedRecordError,
    UnknownRecordError,
    UntrustedSigner,
    _check_id,
    _check_signer,
    _load_json,
    _parse,
    _sort_key,
    record_file_bytes,
    verification_file,
    verification_problem,
    write_atomic,
)


class RecordStore:
    def __init__(self, changes_dir: Path) -> None:
        self.changes_dir = changes_dir
        self.records_dir = changes_dir / RECORDS_DIR
        self.ledger = Ledger(changes_dir / LEDGER_NAME)

    def json_path(self, record_id: str) -> Path:
        return self.records_dir / f"{_check_id(record_id)}.json"

    def markdown_path(self, record_id: str) -> Path:
        return self.records_dir / f"{_check_id(record_id)}.md"

    # -- who may write

    def trusted_roster(
        self, entries: builtins.list[LedgerEntry] | LedgerView | None = None
    ) -> Roster:
        """The roster whose keys the next entry must verify with: the last sealed policy's (each
        seal checked to be a lead's), or, before `dmarcops init`, policy/roster.yaml as it is.
        `entries`: the ledger as read (a list, or the index's view); None: the view, now."""
        if entries is None:
            entries = self._policy_entries()
        if isinstance(entries, LedgerView):
            entries = entries.policy_entries()  # the policy lines are all the walk looks at
        found = sealed_policy(self.changes_dir, entries)
        return found[1] if found else load_roster(self.changes_dir.parent)

    # -- the index (pipeline.records.index): a cache of the ledger and the records, never trusted
    # by `audit verify`

    def _policy_entries(self) -> builtins.list[LedgerEntry]:
        """The ledger's first line and policy lines, as the index knows them, caught up (a full
        read without a usable index)."""
        with index_of(self.changes_dir.parent) as conn:
            return ledger_view(self.ledger, conn).policy_entries()

    @contextlib.contextmanager
    def _writing(self) -> Iterator[LedgerView]:
        """The lock every writer holds, and the ledger as it stands under it."""
        with exclusive_lock(self.changes_dir), index_of(self.changes_dir.parent) as conn:
            yield ledger_view(self.ledger, conn)

    def _append(
        self,
        view: LedgerView,
        *,
        event: LedgerEvent,
        signer: Signer,
        at: datetime,
        roster: Roster,
        simulated: bool = False,
        record_id: str = "",
        record_sha256: str = "",
        payload: dict[str, object] | None = None,
    ) -> LedgerEntry:
        """Append one signed event after the view's head, then bring the index up to date in one
        transaction (ledger part, and the record's row read back from its file). A failure of the
        index leaves it behind the ledger: the next run catches up."""
        entry = self.ledger.append_after(
            view.seq,
            view.head,
            event=event,
            signer=signer,
            at=at,
            roster=roster,
            simulated=simulated,
            record_id=record_id,
            record_sha256=record_sha256,
            record_prev=view.record_prev(record_id) if record_id else "",
            payload=payload,
        )
        line = entry.to_line().encode("utf-8")
        conn = view.conn
        if conn is None:
            view.add(entry, line)
            return entry
        try:
            conn.execute("BEGIN IMMEDIATE")
            view.add(entry, line)
            row = None
            if record_id and event is not LedgerEvent.PURGED:
                row = read_row(record_id, self.records_dir, self.get)
            if row is not None:
                put_record(conn, row)
            elif record_id:  # purged (its file is removed next), or not a regular file
                conn.execute("DELETE FROM records WHERE record_id = ?", (record_id,))
                conn.execute("DELETE FROM dirty WHERE record_id = ?", (record_id,))
            view.save()
            conn.execute("COMMIT")
        except (sqlite3.Error, InputError):
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
        return entry

    def seal_policy(
        self, snapshot: PolicySnapshot, at: datetime, signer: Signer, *, genesis: bool = False
    ) -> LedgerEntry:
        """Seal `snapshot` as the policy of record, signed by `signer`.

        The genesis (`dmarcops init`) is the first line of a ledger and is signed by a lead of
        the roster it seals; later seals are signed by someone the previous seal trusts (the
        apply of an approved policy change).
        """
        at = utc(at)
        with self._writing() as view:
            if genesis:
                if view.lines:
                    raise GateRefused(
                        "this repository's ledger has already begun: `dmarcops init` seals the "
                        "first policy only",
                        file=self.ledger.path,
                        hint="A policy change is a change: edit policy/, plan, approve, apply.",
                    )
                roster = roster_of_snapshot(snapshot)
                member = roster.get(signer.analyst)
                if member is None or not member.is_lead:
                    raise UntrustedSigner(
                        f"{signer.analyst} is not a lead on the roster being sealed; the genesis "
                        "is signed by a lead",
                        hint="A lead runs `dmarcops init --key THEIR-KEY`.",
                    )
                digest = store_snapshot(self.changes_dir, snapshot)
            else:
                roster = self.trusted_roster(view)
                member = roster.get(signer.analyst)
                if member is None or not member.is_lead:
                    raise UntrustedSigner(
                        f"{signer.analyst} is not a lead on the roster of record; only a lead "
                        "seals a policy change",
                        hint="A lead reviews the pending policy edits (`dmarcops plan` lists "
                        "them) and runs `dmarcops policy seal --key THEIR-KEY`.",
                    )
                digest = store_snapshot(self.changes_dir, snapshot)
            return self._append(
                view,
                event=LedgerEvent.POLICY,
                signer=signer,
                at=at,
                roster=roster,
                payload={"policy_sha256": digest},
            )

    def attest(
        self,
        record_id: str,
        verdict: str,
        notes: str,
        at: datetime,
        signer: Signer,
        sample: str = "",
    ) -> LedgerEntry:
        """Record an auditor's signed spot-check finding about a record (issue 12, item 2).

        The finding binds the record's current hash: the auditor vouches for the record as it
        is, and `audit verify` names it if the record differs later. An attestation is a
        person's judgement: the automation's key cannot give one.
        """
        if verdict not in ATTEST_VERDICTS:
            raise InputError(
                f"verdict {verdict!r} is not one of {', '.join(ATTEST_VERDICTS)}",
                hint="ok: the record holds up; finding: something is wrong (say what in --notes).",
            )
        if not notes.strip():
            raise InputError("an attestation needs notes (--notes): what was checked and found")
        try:
            (notes + sample).encode("utf-8")
        except UnicodeEncodeError:
            raise InputError("--notes or --sample holds bytes that are not UTF-8 text") from None
        at = utc(at)
        with self._writing() as view:
            last = view.last_event(record_id)
            if last is None:
                raise UnknownRecordError(
                    f"no change record {record_id}",
                    hint="`dmarcops audit sample` picks the records to check.",
                )
            last_sha256 = last[1]
            raw = self._raw(record_id)
            digest = hashlib.sha256(canonical_bytes(_load_json(raw, self.json_path(record_id))))
            if digest.hexdigest() != last_sha256:
                raise RecordMismatchError(
                    f"record {record_id} differs from what the ledger recorded; nothing attested",
                    file=self.json_path(record_id),
                    hint="Run `dmarcops audit verify`.",
                )
            roster = self.trusted_roster(view)
            member = roster.get(signer.analyst)
            if member is not None and not member.is_person:
                raise UntrustedSigner(
                    f"{signer.analyst} is the automation's key; an attestation is a person's",
                    hint="The auditor attests with their own key.",
                )
            _check_signer(signer, roster)
            return self._append(
                view,
                event=LedgerEvent.ATTESTED,
                signer=signer,
                at=at,
                roster=roster,
                payload={
                    "record": record_id,
                    "record_sha256": last_sha256,
                    "verdict": verdict,
                    "notes": notes.strip(),
                    "sample": sample,
                },
            )

    def purge(self, record_id: str, at: datetime, signer: Signer) -> LedgerEntry:
        """Remove a sealed record at the end of its retention, leaving a signed tombstone.

        The caller decides that the retention has ended (`pipeline.records.retention`); this
        refuses anything but a sealed record, and anyone but a lead.
        """
        at = utc(at)
        with self._writing() as view:
            last = view.last_event(record_id)
            if last is None or last[0] is LedgerEvent.PURGED:
                raise UnknownRecordError(f"no change record {record_id} to purge")
            last_event, last_sha256 = last
            if last_event is not LedgerEvent.SEALED:
                raise GateRefused(
                    f"record {record_id} is not sealed: only a sealed record's retention ends",
                    hint=f"Close it first: dmarcops close {record_id} ...",
                )
            raw = self._raw(record_id)
            if (
                hashlib.sha256(
                    canonical_bytes(_load_json(raw, self.json_path(record_id)))
                ).hexdigest()
                != last_sha256
            ):
                raise RecordMismatchError(
                    f"record {record_id} differs from what the ledger recorded; not purged",
                    file=self.json_path(record_id),
                    hint="Run `dmarcops audit verify`.",
                )
            roster = self.trusted_roster(view)
            member = roster.get(signer.analyst)
            if member is None or not member.is_lead:
                raise UntrustedSigner(
                    f"{signer.analyst} is not a lead: only a lead ends a record's retention",
                    hint="A lead runs `dmarcops records retention --purge --key THEIR-KEY`.",
                )
            entry = self._append(
                view,
                event=LedgerEvent.PURGED,
                signer=signer,
                at=at,
                roster=roster,
                record_id=record_id,
                record_sha256=last_sha256,
            )
            # The tombstone is on disk first: a crash here leaves a purged record whose file
            # remains, which audit names, never a missing file the ledger cannot explain.
            for path in (self.json_path(record_id), self.markdown_path(record_id)):
                path.unlink(missing_ok=True)
            return entry

    def attestations(self) -> builtins.list[LedgerEntry]:
        return [e for e in self.ledger.read() if e.event is LedgerEvent.ATTESTED]

    # -- numbering and writing

    def allocate(self, year: int) -> str:
        """The id `create` would give the next record of `year` now.

        Reserves nothing: only `create` holds the lock from reading the highest number to writing
        the new record's `created` event, which is what keeps numbers free of gaps and duplicates.
        """
        with self._writing() as view:
            return view.next_id(year)

    def create(
        self,
        build: Callable[[str], ChangeRecord],
        at: datetime,
        signer: Signer,
        simulated: bool = False,
    ) -> ChangeRecord:
        """Number, write and log a new record in one step under the lock.

        `build(id)` returns the record for the allocated id; the year is `at`'s UTC year (seed:
        "2026-1247"), so the first record of a new year is YYYY-0001. If `build` raises, nothing
        is written and the number is not used.
        """
        at = utc(at)
        with self._writing() as view:
            record_id = view.next_id(at.year)
            if exists(self.json_path(record_id)):
                raise RecordMismatchError(
                    f"record file for {record_id} exists but the ledger never created it",
                    file=self.json_path(record_id),
                    hint="Run `dmarcops audit verify`; a record file is only written by dmarcops.",
                )
            record = build(record_id)
            if record.id != record_id:
                raise ValueError(f"build returned record {record.id} for id {record_id}")
            if record.sealed:
                raise ValueError("a record is created open and sealed later (RecordStore.seal)")
            roster = self.trusted_roster(view)
            member = roster.get(signer.analyst)
            if record.executed_by not in ("", signer.analyst) and (
                member is None or member.is_person
            ):
                # Only the automation (apply on merge) records someone else as the executor:
                # GitHub said who merged; the automation's signature vouches for what it saw.
                raise UntrustedSigner(
                    f"the record names {record.executed_by or 'nobody'} as executor but "
                    f"{signer.analyst}'s key signs it",
                    hint="Who executes is the owner of the key that signs (--key).",
                )
            self._write(record, view, LedgerEvent.CREATED, at, signer, roster, simulated)
            return record

    def update(
        self, record: ChangeRecord, at: datetime, signer: Signer, simulated: bool = False
    ) -> ChangeRecord:
        """Write a changed record (apply results, verification, a review, references) and log it.

        Refused when the stored record is sealed, and when the stored file no longer matches the
        ledger (writing over it would make the tampered state look legitimate).
        """
        if record.sealed:
            raise ValueError("sealing goes through RecordStore.seal, which checks its gates")
        with self._writing() as view:
            self._current(record.id, view)
            roster = self.trusted_roster(view)
            self._write(record, view, LedgerEvent.UPDATED, utc(at), signer, roster, simulated)
            return record

    def seal(
        self,
        record_id: str,
        outcome: Outcome,
        at: datetime,
        signer: Signer,
        forced: bool = False,
        simulated: bool = False,
        *,
        verification: ReportCheck | None = None,
        without_evidence: str = "",
    ) -> ChangeRecord:
        """Log the outcome and seal the record: it is never written again.

        Refused before the rollback window has ended unless `forced` (recorded as closed_forced,
        so the early close shows in the record); refused for an emergency change whose post-hoc
        review is not recorded, forced or not: that review is the price of skipping approval.

        Never accepted on silence (issue 14 part 5): `accepted` needs the aggregate-report
        `verification` (pipeline.reports.verify, its file under changes/evidence/) saying
        accepted, or a person's `without_evidence` reason, which the record keeps and the
        quarterly review lists. The automation's key cannot give that reason.
        """
        at = utc(at)
        without_evidence = without_evidence.strip()
        with self._writing() as view:
            current = self._current(record_id, view)
            if current.emergency is not None and not current.emergency.reviewed:
                raise GateRefused(
                    f"record {record_id} is an emergency change whose post-hoc review is not "
                    "recorded; it cannot be sealed before that",
                    hint=f"Record it first: dmarcops review {record_id} --key REVIEWER-KEY "
                    "--verdict justified|not-justified --notes TEXT",
                )
            early = at < current.rollback_window.end
            if early and not forced:
                raise GateRefused(
                    f"record {record_id}: its rollback window ends "
                    f"{show_utc(current.rollback_window.end)}; the outcome is logged after it",
                    hint="Use --force to close it earlier; the record will say it was forced.",
                )
            _check_acceptance(
                self, current, Outcome(outcome), verification, without_evidence, signer, view
            )
            sealed = replace(
                current,
                outcome=Outcome(outcome),
                closed_at=at,
                closed_by=signer.analyst,
                closed_forced=early,
                sealed=True,
                simulated=current.simulated or simulated,
                report_verification=verification,
                closed_without_evidence=without_evidence,
            )
            roster = self.trusted_roster(view)
            self._write(sealed, view, LedgerEvent.SEALED, at, signer, roster, simulated)
            return sealed

    def review(
        self,
        record_id: str,
        signer: Signer,
        notes: str,
        at: datetime,
        simulated: bool = False,
        verdict: str = "justified",
        follow_up: str = "",
    ) -> ChangeRecord:
        """Record the post-hoc review of an emergency change (seed: "within 24 hours").

        The reviewer is not the analyst who executed or proposed it (seed FAQ: "Can the analyst
        peer-review their own change? No."), and a review is recorded once: it is evidence.
        """
        at = utc(at)
        by = signer.analyst
        if not notes.strip():
            raise InputError("a review needs notes (--notes): what was checked and found")
        if verdict not in REVIEW_VERDICTS:
            raise InputError(
                f"verdict {verdict!r} is not one of {', '.join(REVIEW_VERDICTS)}",
                hint="Say whether the emergency was justified: --verdict justified|not-justified",
            )
        if verdict == "not-justified" and not follow_up.strip():
            raise InputError(
                "a not-justified emergency needs a policy follow-up reference (--follow-up)",
                hint="Name the ticket or policy change that keeps it from happening again.",
            )
        with self._writing() as view:
            current = self._current(record_id, view)
            emergency = current.emergency
            if emergency is None:
                raise InputError(
                    f"record {record_id} is not an emergency change: only emergency changes "
                    "have a post-hoc review"
                )
            if emergency.reviewed:
                raise GateRefused(
                    f"record {record_id}: its review was already recorded by "
                    f"{emergency.reviewed_by} {show_utc(emergency.reviewed_at or at)}"
                )
            if by in {current.executed_by, current.author}:
                raise GateRefused(
                    f"record {record_id}: {by} executed or proposed this change and cannot "
                    "review it (seed: no self-review)",
                    hint="Ask another analyst on the roster to review it.",
                )
            roster = self.trusted_roster(view)
            member = roster.get(by)
            if member is not None and not member.is_person:
                raise UntrustedSigner(
                    f"{by} is the automation's key; a post-hoc review is a person's judgement",
                    hint="Another analyst reviews it with their own key.",
                )
            reviewed = replace(
                current,
                emergency=replace(
                    emergency,
                    reviewed_by=by,
                    reviewed_at=at,
                    review_notes=notes,
                    verdict=verdict,
                    follow_up=follow_up.strip(),
                    late=at > emergency.review_due,
                ),
                simulated=current.simulated or simulated,
            )
            self._write(reviewed, view, LedgerEvent.REVIEWED, at, signer, roster, simulated)
            return reviewed

    def _current(self, record_id: str, view: LedgerView) -> ChangeRecord:
        """The stored record, checked against its last ledger event and not sealed."""
        last = view.last_event(record_id)
        if last is None:
            raise UnknownRecordError(
                f"no change record {record_id}",
                hint="`dmarcops records list` shows the records.",
            )
        path = self.json_path(record_id)
        raw = self._raw(record_id)
        if hashlib.sha256(canonical_bytes(_load_json(raw, path))).hexdigest() != last[1]:
            raise RecordMismatchError(
                f"record {record_id} differs from what the ledger recorded; it was not written",
                file=path,
                hint="Run `dmarcops audit verify`.",
            )
        current = _parse(raw, path)
        if current.sealed or last[0] is LedgerEvent.SEALED:
            raise SealedRecordError(
                f"record {record_id} is sealed ({current.outcome or 'closed'}); sealed records "
                "are never edited",
                hint="File a follow-up change record that references it.",
            )
        return current

    def _write(
        self,
        record: ChangeRecord,
        view: LedgerView,
        event: LedgerEvent,
        at: datetime,
        signer: Signer,
        roster: Roster,
        simulated: bool,
    ) -> None:
        # Checked before anything is written: an entry whose signature would not verify must
        # not leave a record file behind either.
        _check_signer(signer, roster)
        make_dir(self.records_dir, root=self.changes_dir.parent)
        write_atomic(self.json_path(record.id), record_file_bytes(record))
        write_atomic(self.markdown_path(record.id), record.render_markdown().encode("utf-8"))
        self._append(
            view,
            record_id=record.id,
            event=event,
            record_sha256=record.sha256(),
            at=at,
            signer=signer,
            roster=roster,
            simulated=simulated or record.simulated,
        )

    # -- reading

    def _raw(self, record_id: str) -> bytes:
        path = self.json_path(record_id)
        if not exists(path):
            raise UnknownRecordError(
                f"no change record {record_id}",
                hint="`dmarcops records list` shows the records.",
            )
        # Regular files inside the repository only: a record committed as a symbolic link to a
        # file elsewhere (or as a FIFO) is refused by name, never followed or waited on.
        return read_bytes(path, root=self.changes_dir.parent)

    def get(self, record_id: str) -> ChangeRecord:
        return _parse(self._raw(record_id), self.json_path(record_id))

    def all(self) -> builtins.list[ChangeRecord]:
        if not self.records_dir.is_dir():
            return []
        ids = [
            p.stem
            for p in self.records_dir.glob("*.json")
            if not p.name.startswith(".") and RECORD_ID.match(p.stem)
        ]
        return [self.get(i) for i in sorted(ids, key=_sort_key)]

    def overdue_reviews(self, now: datetime) -> builtins.list[ChangeRecord]:
        return [r for r in self.all() if r.review_overdue(utc(now))]

    def list(
        self,
        *,
        client: str | None = None,
        domain: str | None = None,
        analyst: str | None = None,
        risk: RiskLevel | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        approver: str | None = None,
        change_type: str | None = None,
        outcome: str | None = None,
        text: str | None = None,
    ) -> builtins.list[ChangeRecord]:
        """Records matching every filter given (see `list_rows`). Dates look at `ChangeRecord.when` (executed, else
        filed): `since` inclusive, `until` exclusive. `analyst` matches the author, any approver,
        the executor, the emergency reviewer or the closer, ignoring case; `approver` only who
        approved (peer, lead or client); `outcome` "open" for a record not yet sealed; `text` a
        case-insensitive substring of the rationale or the internal notes."""
        return [self.get(str(row["id"])) for row in self.list_rows(
            client=client, domain=domain, analyst=analyst, risk=risk, since=since, until=until,
            approver=approver, change_type=change_type, outcome=outcome, text=text,
        )]  # fmt: skip

    def list_rows(
        self,
        *,
        client: str | None = None,
        domain: str | None = None,
        analyst: str | None = None,
        risk: RiskLevel | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        approver: str | None = None,
        change_type: str | None = None,
        outcome: str | None = None,
        text: str | None = None,
    ) -> builtins.list[dict[str, Any]]:
        """What `records list` prints of each record matching every filter (`list_row`), in id
        order: from the index, each file read only when it changed since it was indexed; from
        every file when there is no usable index."""
        wanted = ListFilter(
            client=client,
            domain=domain,
            analyst=analyst,
            risk=risk.label if risk is not None else None,
            since=since,
            until=until,
            approver=approver,
            change_type=change_type,
            outcome=outcome,
            text=text,
        )
        with index_of(self.changes_dir.parent) as conn:
            if conn is not None:
                try:
                    rows = listed(conn, self.records_dir, self.get)
                except sqlite3.Error:
                    pass
                else:
                    return [dict(f["row"]) for _, f in rows if wanted.matches(f)]
        # No usable index (a link or a FIFO in its place, a read-only checkout): every file.
        return [list_row(r) for r in self.all() if wanted.matches(list_fields(r))]

    def executed_requests(self, request_ids: builtins.list[str]) -> set[str]:
        """Which of `request_ids` an executed record names: from the index (caught up with the
        ledger), so `plan` does not read every record; a full read without a usable index."""
        with index_of(self.changes_dir.parent) as conn:
            if conn is not None:
                try:
                    ledger_view(self.ledger, conn)  # lines appended since: their records marked
                    refresh(conn, self.records_dir, self.get)
                    return executed_requests(conn, request_ids)
                except (sqlite3.Error, IndexTampered):
                    pass
        wanted = set(request_ids)
        return {r.request_id for r in self.all() if r.executed_at is not None} & wanted

    def reindex(self) -> int:
        """Rebuild the index from the ledger and the record files (`dmarcops records reindex`);
        the number of records indexed. InputError when there is no usable place for it."""
        index = self.changes_dir.parent / INDEX_PATH
        with exclusive_lock(self.changes_dir):
            for name in [index, *(index.with_name(index.name + s) for s in ("-journal",))]:
                if is_regular(name):
                    name.unlink()
            with index_of(self.changes_dir.parent) as conn:
                if conn is None:
                    raise InputError(
                        "the record index cannot be written (is .dmarcops/records.sqlite a link "
                        "or a FIFO, or .dmarcops linked outside the repository?)",
                        file=index,
                        hint="Remove what is in its place; dmarcops works without it, reading "
                        "every record.",
                    )
                ledger_view(self.ledger, conn)
                refresh(conn, self.records_dir, self.get)
                return int(conn.execute("SELECT count(*) FROM records").fetchone()[0])


# Moved to modules of their own (issue 16 item 5); still importable from here.
__all__ = [
    "ANCHOR_FORMAT",
    "ATTEST_VERDICTS",
    "INTERRUPTED_AFTER",
    "RECORDS_DIR",
    "AuditProblem",
    "AuditReport",
    "RecordMismatchError",
    "RecordStore",
    "SealedRecordError",
    "UnknownRecordError",
    "UntrustedSigner",
    "audit",
    "chronology",
    "make_anchor",
    "parse_anchor",
    "record_file_bytes",
    "verification_file",
    "verification_problem",
    "verify",
    "write_atomic",
]
