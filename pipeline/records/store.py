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
import hashlib
import importlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

from pipeline.errors import GateRefused, InputError
from pipeline.gate.identity import Signer
from pipeline.gate.roster import Roster
from pipeline.load.files import exists, make_dir
from pipeline.records.acceptance import _check_acceptance
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
    write_all_atomic,
    write_atomic,
)
from pipeline.records.store_admin import LedgerWrites

if TYPE_CHECKING:
    from pipeline.records.audit import AuditReport, audit, verify
    from pipeline.records.audit_anchor import ANCHOR_FORMAT, make_anchor, parse_anchor
    from pipeline.records.audit_files import INTERRUPTED_AFTER, AuditProblem, chronology


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
        return self.create_many([build], at, signer, simulated)[0]

    def create_many(
        self,
        builds: Sequence[Callable[[str], ChangeRecord]],
        at: datetime,
        signer: Signer,
        simulated: bool = False,
        *,
        markdown: bool = True,
    ) -> builtins.list[ChangeRecord]:
        """`create` for several records under one lock: an apply opens a record per request.

        The ledger's head and the roster of record are read once, every record is built and
        checked before anything is written (a `build` that raises leaves nothing), then written
        in two steps: every record file durable (each file, then the directory once), then their
        ledger lines, fsynced once. A crash between the two leaves record files the ledger never
        logged: a creation cut short, which `audit verify` names and `dmarcops recover` removes
        (an apply writes its journal's begin line before it creates records), exactly as for a
        single record.
        """
        at = utc(at)
        with self._writing() as view:
            roster = self.trusted_roster(view)
            first = int(view.next_id(at.year).split("-")[1])
            records = [
                self._built(build, f"{at.year:04d}-{first + n:04d}", signer, roster)
                for n, build in enumerate(builds)
            ]
            if not records:
                return []
            self._write_batch(
                records, view, LedgerEvent.CREATED, at, signer, roster, simulated, markdown
            )
            return records

    def _built(
        self,
        build: Callable[[str], ChangeRecord],
        record_id: str,
        signer: Signer,
        roster: Roster,
    ) -> ChangeRecord:
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
        member = roster.get(signer.analyst)
        if record.executed_by not in ("", signer.analyst) and (member is None or member.is_person):
            # Only the automation (apply on merge) records someone else as the executor:
            # GitHub said who merged; the automation's signature vouches for what it saw.
            raise UntrustedSigner(
                f"the record names {record.executed_by or 'nobody'} as executor but "
                f"{signer.analyst}'s key signs it",
                hint="Who executes is the owner of the key that signs (--key).",
            )
        return record

    def update(
        self, record: ChangeRecord, at: datetime, signer: Signer, simulated: bool = False
    ) -> ChangeRecord:
        """Write a changed record (apply results, verification, a review, references) and log it.

        Refused when the stored record is sealed, and when the stored file no longer matches the
        ledger (writing over it would make the tampered state look legitimate).
        """
        return self.update_many([record], at, signer, simulated)[0]

    def update_many(
        self,
        records: Sequence[ChangeRecord],
        at: datetime,
        signer: Signer,
        simulated: bool = False,
        *,
        replacing: Mapping[str, str] | None = None,
    ) -> builtins.list[ChangeRecord]:
        """`update` for several records under one lock (an apply finishes all its records at the
        end): every stored record checked against the ledger before anything is written, then,
        as `create_many`, every file durable before any of their ledger lines, which are fsynced
        once. A crash between the two leaves files ahead of the ledger; `dmarcops recover` puts
        back the version the ledger logged when that is all that differs (pipeline.apply.recover),
        and finishes the records again.

        `replacing` (recover only): record id -> the hash of a file the caller examined and
        writes over although the ledger's last line for it hashes another version (a recover
        killed half-way; pipeline.apply.recover says why that is safe). The write goes ahead
        only while the file is still exactly that one, and never over a sealed record."""
        if any(record.sealed for record in records):
            raise ValueError("sealing goes through RecordStore.seal, which checks its gates")
        if not records:
            return []
        at = utc(at)
        with self._writing() as view:
            for record in records:
                self._current(record.id, view, (replacing or {}).get(record.id, ""))
            roster = self.trusted_roster(view)
            self._write_batch(
                list(records), view, LedgerEvent.UPDATED, at, signer, roster, simulated
            )
            return list(records)

    def _write_batch(
        self,
        records: builtins.list[ChangeRecord],
        view: LedgerView,
        event: LedgerEvent,
        at: datetime,
        signer: Signer,
        roster: Roster,
        simulated: bool,
        markdown: bool = True,
    ) -> None:
        # Every write of a record goes through here (create, update, seal, review; one record or
        # an apply's batch). The signer is checked before anything is written: an entry whose
        # signature would not verify must not leave a record file behind either.
        _check_signer(signer, roster)
        if len({r.id for r in records}) != len(records):
            # Each record once a batch: its ledger line chains to the record's line before it.
            raise ValueError("a batch names a record twice")
        make_dir(self.records_dir, root=self.changes_dir.parent)
        files = []
        for record in records:
            files.append((self.json_path(record.id), record_file_bytes(record)))
            if markdown:
                files.append(
                    (self.markdown_path(record.id), record.render_markdown().encode("utf-8"))
                )
            else:
                # A markdown left by an earlier record of this number (a creation cut short)
                # must not pass for this one's: `audit verify` compares any markdown present.
                self.markdown_path(record.id).unlink(missing_ok=True)
        # Every file durable (one group commit, the directory once) before the ledger names any
        # of them.
        write_all_atomic(files, self.records_dir)
        self._append_records(
            view, records, event=event, signer=signer, at=at, roster=roster, simulated=simulated
        )

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
        `verification` (pipeline.apply.verify_reports, its file under changes/evidence/) saying
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
            self._write_batch([sealed], view, LedgerEvent.SEALED, at, signer, roster, simulated)
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
            self._write_batch([reviewed], view, LedgerEvent.REVIEWED, at, signer, roster, simulated)
            return reviewed

    def file_sha256(self, record_id: str) -> str:
        """The hash of the record file as it is on disk, as the ledger would log it."""
        path = self.json_path(record_id)
        return hashlib.sha256(canonical_bytes(_load_json(self._raw(record_id), path))).hexdigest()

    def _current(self, record_id: str, view: LedgerView, found: str = "") -> ChangeRecord:
        """The stored record, checked against its last ledger event (or, from recover, against
        `found`: the hash of the file it examined) and not sealed."""
        last = view.last_event(record_id)
        if last is None:
            raise UnknownRecordError(
                f"no change record {record_id}",
                hint="`dmarcops records list` shows the records.",
            )
        path = self.json_path(record_id)
        raw = self._raw(record_id)
        if hashlib.sha256(canonical_bytes(_load_json(raw, path))).hexdigest() not in (
            last[1],
            found or last[1],
        ):
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


# Moved to modules of their own (issue 16 item 5); still importable from here, imported when
# first asked for: the store's writers (apply, close, a plan's executed requests) never run the
# audit, whose imports cost more than the store's own.
_AUDIT_NAMES = {
    **dict.fromkeys(("AuditReport", "audit", "verify"), "audit"),
    **dict.fromkeys(("ANCHOR_FORMAT", "make_anchor", "parse_anchor"), "audit_anchor"),
    **dict.fromkeys(("INTERRUPTED_AFTER", "AuditProblem", "chronology"), "audit_files"),
}


def __getattr__(name: str) -> Any:
    home = _AUDIT_NAMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"pipeline.records.{home}"), name)
    globals()[name] = value
    return value


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
