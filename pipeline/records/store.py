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

import hashlib
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime

from pipeline.errors import GateRefused, InputError
from pipeline.gate.identity import Signer
from pipeline.gate.roster import Roster
from pipeline.load.files import exists, make_dir
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
from pipeline.records.index_ledger import LedgerView
from pipeline.records.ledger import (
    LedgerEvent,
)
from pipeline.records.record import (
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
    _check_signer,
    _load_json,
    _parse,
    record_file_bytes,
    verification_file,
    verification_problem,
    write_atomic,
)
from pipeline.records.store_admin import LedgerWrites


class RecordStore(LedgerWrites):
    """The change records under `changes_dir`: numbered, written, sealed and searched (reading
    and the index: RecordStoreBase; policy seals, attestations, purges: LedgerWrites)."""

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
