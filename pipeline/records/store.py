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
looks recorded.
"""

from __future__ import annotations

import builtins
import contextlib
import hashlib
import json
import os
import sqlite3
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from itertools import pairwise
from pathlib import Path

from pipeline.errors import GateRefused, InputError
from pipeline.gate.approvals import signed_payload
from pipeline.gate.identity import Signer, signature_holds, signing_bytes
from pipeline.gate.requests import REQUESTS_DIR, content_sha256
from pipeline.gate.roster import Analyst, Roster, load_roster
from pipeline.load.files import exists, is_regular, make_dir, read_bytes, read_text
from pipeline.load.jsonfile import parse_json
from pipeline.load.yamlfile import load_yaml
from pipeline.model import RiskLevel
from pipeline.records.index import (
    INDEX_PATH,
    IndexTampered,
    LedgerView,
    ListFilter,
    executed_requests,
    index_of,
    ledger_view,
    list_fields,
    listed,
    put_record,
    read_row,
    refresh,
)
from pipeline.records.ledger import (
    GENESIS,
    LEDGER_NAME,
    Ledger,
    LedgerEntry,
    LedgerEvent,
    exclusive_lock,
    record_id_of,
)
from pipeline.records.policy_of_record import seal_problem, sealed_policy
from pipeline.records.policy_seal import (
    PolicySnapshot,
    load_snapshot,
    roster_of_snapshot,
    store_snapshot,
)
from pipeline.records.record import (
    RECORD_ID,
    REVIEW_VERDICTS,
    ApprovalRole,
    ApprovalSource,
    ChangeRecord,
    ChangeType,
    Outcome,
    RecordFormatError,
    ReportCheck,
    canonical_bytes,
    format_utc,
    plain,
    show_utc,
    utc,
)

RECORDS_DIR = "records"


class UnknownRecordError(InputError):
    """No record with that id. Exit 1."""


class SealedRecordError(GateRefused):
    """Sealed records are never edited (seed). Exit 2."""


class RecordMismatchError(GateRefused):
    """A record file no longer matches the ledger: writing over it would bury the difference."""


ATTEST_VERDICTS = ("ok", "finding")


class UntrustedSigner(GateRefused):
    """The key is not on the roster as sealed: its entry would not verify. Exit 2."""


def record_file_bytes(record: ChangeRecord) -> bytes:
    """How a record is written: sorted, indented JSON (readable in a git diff), one per file.

    The ledger hashes the canonical bytes, not these, so the file's layout is checked separately:
    a file must be exactly what dmarcops writes for the JSON it holds.
    """
    return _pretty(record.to_json())


def _pretty(data: object) -> bytes:
    return (json.dumps(data, sort_keys=True, indent=2, ensure_ascii=False) + "\n").encode("utf-8")


def write_atomic(path: Path, data: bytes) -> None:
    # A reader (or a crash) sees the old file or the new one, never half of one.
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    # O_NOFOLLOW: a symbolic link planted at the temporary name must not be written through.
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC
    with os.fdopen(os.open(tmp, flags, 0o644), "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)  # the rename itself survives a crash
    finally:
        os.close(dir_fd)


def _check_id(record_id: str) -> str:
    # Also keeps a typed id from naming a path outside changes/records/.
    if not RECORD_ID.match(record_id):
        raise InputError(
            f"{record_id!r} is not a change record id",
            hint="Record ids look like 2026-0001 (`dmarcops records list` shows them).",
        )
    return record_id


def _sort_key(record_id: str) -> tuple[int, int]:
    year, number = record_id.split("-")
    return int(year), int(number)


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
            entries = self.view()
        if isinstance(entries, LedgerView):
            entries = entries.policy_entries()  # the policy lines are all the walk looks at
        found = sealed_policy(self.changes_dir, entries)
        return found[1] if found else load_roster(self.changes_dir.parent)

    # -- the index (pipeline.records.index): a cache of the ledger and the records, never trusted
    # by `audit verify`

    def view(self) -> LedgerView:
        """The ledger as the index knows it, caught up (a full read without a usable index)."""
        with index_of(self.changes_dir.parent) as conn:
            return ledger_view(self.ledger, conn)

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
        """Records matching every filter given. Dates look at `ChangeRecord.when` (executed, else
        filed): `since` inclusive, `until` exclusive. `analyst` matches the author, any approver,
        the executor, the emergency reviewer or the closer, ignoring case; `approver` only who
        approved (peer, lead or client); `outcome` "open" for a record not yet sealed; `text` a
        case-insensitive substring of the rationale or the internal notes."""
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
                    return [self.get(rid) for rid, fields in rows if wanted.matches(fields)]
        # No usable index (a link or a FIFO in its place, a read-only checkout): every file.
        return [r for r in self.all() if wanted.matches(list_fields(r))]

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


def verification_file(changes_dir: Path, sha256: str) -> Path:
    """Where the report verification a record seals is kept (pipeline.reports.verify)."""
    return changes_dir / "evidence" / f"verification-{sha256}.json"


def verification_problem(changes_dir: Path, check: ReportCheck) -> str:
    """Why the verification file a record cites cannot be used ("" when it can)."""
    path = verification_file(changes_dir, check.sha256)
    try:
        raw = read_bytes(path, limit=16 * 1024 * 1024, root=changes_dir.parent)
    except InputError as exc:
        return f"its report verification {check.file} cannot be read: {exc.message}"
    if hashlib.sha256(raw).hexdigest() != check.sha256:
        return f"its report verification {check.file} does not hash to its name (edited)"
    return ""


def _check_acceptance(
    store: RecordStore,
    record: ChangeRecord,
    outcome: Outcome,
    verification: ReportCheck | None,
    without_evidence: str,
    signer: Signer,
    view: LedgerView,
) -> None:
    """The seal's rule against acceptance by silence (RecordStore.seal).

    Two kinds of record carry their evidence in themselves rather than in aggregate reports:
    an adoption (`dmarcops drift adopt`: the adopter signs that the live value found outside
    the pipeline is accepted, and the record holds what was found) and a manual change
    (platform, DKIM selector switch) whose every checklist line a person signed as verified
    (`dmarcops manual verify`): the checklist is that change's verification, and reports
    cannot see a tenant setting. Neither is silence.
    """
    record_id = record.id
    if without_evidence and outcome is not Outcome.ACCEPTED:
        raise InputError(
            "a reason for closing without report evidence is for --outcome accepted only",
            hint="Other outcomes need no report evidence.",
        )
    if verification is not None:
        problem = verification_problem(store.changes_dir, verification)
        if problem:
            raise GateRefused(f"record {record_id}: {problem}")
    if outcome is not Outcome.ACCEPTED:
        return
    if record.change_type is ChangeType.UNRECORDED:
        raise GateRefused(
            f"record {record_id} holds a change made outside the pipeline that nobody has "
            "adopted: it is never closed as accepted",
            hint="Adopt it (`dmarcops drift adopt`, which supersedes this record) or revert it "
            f"through a request, then `dmarcops close {record_id} --outcome rolled-back`.",
        )
    if record.adopted is not None and verification is None and not without_evidence:
        return
    if record.manual is not None and verification is None and not without_evidence:
        if record.manual.verified:
            return
        raise GateRefused(
            f"record {record_id} is not closed as accepted on silence: its verification "
            "checklist is not verified line by line",
            hint=f"Record each check: dmarcops manual verify {record_id} --pass N --key KEY; or "
            "close as accepted with --without-evidence REASON.",
        )
    if without_evidence:
        member = store.trusted_roster(view).get(signer.analyst)
        if member is not None and not member.is_person:
            raise UntrustedSigner(
                f"{signer.analyst} is the automation's key: it closes as accepted on report "
                "evidence only, never by an override",
                hint="A person closes it: dmarcops close ID --outcome accepted "
                "--without-evidence REASON --key THEIR-KEY.",
            )
        return
    if verification is None or verification.verdict != "accepted":
        said = (
            f"the aggregate reports say {verification.verdict}: {verification.summary}"
            if verification is not None
            else "no report verification was given"
        )
        raise GateRefused(
            f"record {record_id} is not closed as accepted on silence: {said}",
            hint="Wait for post-change reports (`dmarcops reports verify --record "
            f"{record_id}`), close with the real outcome, or close as accepted with "
            "--without-evidence REASON (signed by you; the quarterly review lists it).",
        )


def _check_signer(signer: Signer, roster: Roster) -> None:
    """Before any file is written: the key must be one the sealed roster holds for the name it
    claims (the ledger append checks the real entry again)."""
    member = roster.get(signer.analyst)
    probe = b"dmarcops: may this key sign for " + signer.analyst.encode()
    if member is None or not signature_holds(member.public_keys(), probe, signer.sign(probe)):
        raise UntrustedSigner(
            f"{signer.analyst}'s key is not the one the sealed roster holds for "
            f"{signer.analyst}; nothing was written",
            hint="Sign with your own key as the roster of record lists it (a key added to "
            "policy/roster.yaml counts once that policy change is approved and applied).",
        )


def _load_json(raw: bytes, path: Path) -> object:
    hint = "Change records are written by dmarcops; restore this one from git."
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise InputError(
            "not a JSON change record: not UTF-8 text", file=path, line=line, hint=hint
        ) from None
    return parse_json(text, path, "not a JSON change record", hint)


def _text_or_none(path: Path) -> str | None:
    """A record's markdown for comparison; None (a mismatch) when it is not a readable file."""
    try:
        return read_text(path, root=path.parent.parent.parent)
    except InputError:
        return None


def _parse(raw: bytes, path: Path) -> ChangeRecord:
    try:
        return ChangeRecord.from_json(_load_json(raw, path))
    except RecordFormatError as exc:
        raise InputError(exc.message, file=path, hint=exc.hint) from None


# --- audit verify -------------------------------------------------------------------------------


@dataclass(frozen=True)
class AuditProblem:
    record_id: str  # "" for a problem of the ledger as a whole
    message: str

    def __str__(self) -> str:
        return f"{self.record_id}: {self.message}" if self.record_id else f"ledger: {self.message}"


@dataclass(frozen=True)
class AuditReport:
    problems: tuple[AuditProblem, ...]
    records: int  # distinct records in the ledger
    entries: int  # ledger lines
    head: str  # entry_sha256 of the last line: write it down elsewhere to anchor the chain

    @property
    def ok(self) -> bool:
        return not self.problems


INTERRUPTED_AFTER = timedelta(hours=1)


def verify(
    changes_dir: Path, now: datetime, sandbox_clients: frozenset[str] | None = None
) -> builtins.list[AuditProblem]:
    return builtins.list(audit(changes_dir, now, sandbox_clients).problems)


ANCHOR_FORMAT = "dmarcops-ledger-anchor/1"


def make_anchor(changes_dir: Path) -> dict[str, object]:
    """The ledger as it stands, line by line (seq, record, entry hash): kept outside the
    repository (a file, the audit issue's archive), it lets `audit verify --anchor` prove that no
    line up to it was removed or rewritten since, even with the whole chain re-hashed."""
    entries = Ledger(changes_dir / LEDGER_NAME).read()  # a damaged ledger is not anchored
    return {
        "format": ANCHOR_FORMAT,
        "seq": entries[-1].seq if entries else 0,
        "head": entries[-1].entry_sha256 if entries else GENESIS,
        "lines": [[e.seq, e.record_id, e.entry_sha256] for e in entries],
    }


def parse_anchor(data: object) -> builtins.list[tuple[int, str, str]]:
    """The anchor's lines; ValueError saying what is wrong."""
    if not isinstance(data, dict) or data.get("format") != ANCHOR_FORMAT:
        raise ValueError(f"not a ledger anchor (format {ANCHOR_FORMAT})")
    lines = data.get("lines")
    if not isinstance(lines, builtins.list):
        raise ValueError("lines is not a list")
    out: builtins.list[tuple[int, str, str]] = []
    for number, item in enumerate(lines, 1):
        if (
            not isinstance(item, builtins.list)
            or len(item) != 3
            or item[0] != number
            or not isinstance(item[1], str)
            or not isinstance(item[2], str)
        ):
            raise ValueError(f"line {number} of the anchor is not [seq, record, entry_sha256]")
        out.append((item[0], item[1], item[2]))
    return out


def _check_anchor(
    entries: builtins.list[tuple[int, LedgerEntry]],
    anchor: builtins.list[tuple[int, str, str]],
    problems: builtins.list[AuditProblem],
) -> None:
    """Every anchored line is still there, unchanged; lines after the anchor are new."""
    by_seq = {entry.seq: entry for _, entry in entries}
    for seq, record_id, digest in anchor:
        entry = by_seq.get(seq)
        if entry is None:
            problems.append(
                AuditProblem(
                    record_id,
                    f"ledger line {seq} is in the anchor but no longer in the ledger "
                    "(truncated or deleted since the anchor)",
                )
            )
        elif entry.entry_sha256 != digest:
            problems.append(
                AuditProblem(
                    record_id,
                    f"ledger line {seq} differs from the anchor (rewritten since the anchor"
                    + (f"; it now names {entry.record_id}" if entry.record_id != record_id else "")
                    + ")",
                )
            )


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
    store = RecordStore(changes_dir)
    lines = store.ledger.lines()
    entries = _check_chain(lines, problems)
    last_events = _check_histories(entries, problems)
    _check_numbering(entries, problems)
    rosters: dict[str, Roster] = {}
    if (
        not lines
        and (store.changes_dir / "policy").is_dir()
        and any((store.changes_dir / "policy").glob("*.json"))
    ):
        problems.append(
            AuditProblem(
                "",
                "the ledger is empty, yet changes/policy/ holds sealed policies: a ledger that "
                "was begun has been emptied",
            )
        )
    actors = _check_signatures(store, entries, problems, rosters)
    _check_files(store, last_events, utc(now), problems, sandbox_clients, actors, rosters)
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
    return AuditReport(tuple(problems), len(last_events), len(lines), head)


def _check_chain(
    lines: builtins.list[str], problems: builtins.list[AuditProblem]
) -> builtins.list[tuple[int, LedgerEntry]]:
    """Line by line: readable, seq contiguous, prev linking to the line before, entry hash."""
    entries: builtins.list[tuple[int, LedgerEntry]] = []
    expected_seq, prev_hash, prev_record = 1, GENESIS, ""
    last_at: datetime | None = None
    for number, line in enumerate(lines, 1):
        try:
            entry = LedgerEntry.from_line(line)
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
        if entry.computed_sha256() != entry.entry_sha256:
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
        expected_seq, prev_hash, prev_record = entry.seq + 1, entry.entry_sha256, entry.record_id
        last_at = entry.at
    return entries


def _check_signatures(
    store: RecordStore,
    entries: builtins.list[tuple[int, LedgerEntry]],
    problems: builtins.list[AuditProblem],
    rosters: dict[str, Roster] | None = None,
) -> dict[tuple[str, LedgerEvent], builtins.list[tuple[int, str, bool]]]:
    """Every entry is signed by its actor with a key the roster *of its time* holds: the roster
    of the last policy sealed before it (the genesis seals its own, signed by one of its leads).
    Returns, per (record, event), who signed it (line, actor, is the automation) so the record
    files can be checked against their signers."""
    actors: dict[tuple[str, LedgerEvent], builtins.list[tuple[int, str, bool]]] = defaultdict(
        builtins.list
    )
    roster: Roster | None = None
    current_hash: dict[str, str] = {}  # each record's hash as of the line being checked
    # Built once, for the few policy lines: per line it made verify quadratic in the ledger.
    plain_entries = [e for _, e in entries]
    position = {n: i for i, (n, _) in enumerate(entries)}
    for number, entry in entries:
        if roster is None:
            if entry.event is LedgerEvent.POLICY and number == 1:
                roster = _sealed_roster(store, entry, number, problems)
                member = roster.get(entry.actor) if roster else None
                if roster is not None and (member is None or not member.is_lead):
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
                    roster = load_roster(store.changes_dir.parent)
                except InputError as exc:
                    problems.append(AuditProblem("", f"no roster to check signatures: {exc}"))
                    return actors
        if roster is None:
            return actors
        member = roster.get(entry.actor)
        if member is None:
            problems.append(
                AuditProblem(
                    entry.record_id,
                    f"ledger line {number} ({entry.event.value}): signed as "
                    f"{plain(entry.actor)}, who is not on the roster of record",
                )
            )
        elif not signature_holds(member.public_keys(), entry.head(), entry.signature):
            problems.append(
                AuditProblem(
                    entry.record_id,
                    f"ledger line {number} ({entry.event.value}): the signature is not "
                    f"{plain(entry.actor)}'s (forged, replaced, or the line was re-hashed)",
                )
            )
        if entry.event is LedgerEvent.POLICY and number > 1:
            problem = seal_problem(store.changes_dir, plain_entries, position[number], roster)
            if problem is not None:
                problems.append(AuditProblem("", problem))
            else:
                roster = _sealed_roster(store, entry, number, problems) or roster
        if entry.event is LedgerEvent.ATTESTED:
            _check_attestation(entry, number, current_hash, member, problems)
        if entry.event is LedgerEvent.PURGED and (member is None or not member.is_lead):
            problems.append(
                AuditProblem(
                    entry.record_id,
                    f"ledger line {number} (purged): purged by {plain(entry.actor)}, who is not "
                    "a lead (only a lead ends a record's retention)",
                )
            )
        if entry.record_id:
            current_hash[entry.record_id] = entry.record_sha256
            automation = member is not None and not member.is_person
            actors[(entry.record_id, entry.event)].append((number, entry.actor, automation))
            if entry.event is LedgerEvent.CREATED and rosters is not None:
                rosters[entry.record_id] = roster
    return actors


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
    store: RecordStore, entry: LedgerEntry, number: int, problems: builtins.list[AuditProblem]
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


def _check_signers(
    record: ChangeRecord,
    actors: dict[tuple[str, LedgerEvent], builtins.list[tuple[int, str, bool]]],
    problems: builtins.list[AuditProblem],
) -> None:
    """The names in the record are the people who signed: executor, reviewer, closer."""
    rid = record.id
    for number, actor, automation in actors.get((rid, LedgerEvent.CREATED), []):
        if record.executed_by and actor != record.executed_by and not automation:
            problems.append(
                AuditProblem(
                    rid,
                    f"names {plain(record.executed_by)} as executor, but {plain(actor)} signed "
                    f"its creation (ledger line {number})",
                )
            )
    reviewed_by = record.emergency.reviewed_by if record.emergency else ""
    reviews = actors.get((rid, LedgerEvent.REVIEWED), [])
    if reviewed_by and not reviews:
        problems.append(
            AuditProblem(rid, f"names {plain(reviewed_by)} as reviewer, but no review is signed")
        )
    for number, actor, _ in reviews:
        if actor != reviewed_by:
            problems.append(
                AuditProblem(
                    rid,
                    f"names {plain(reviewed_by or 'nobody')} as reviewer, but {plain(actor)} "
                    f"signed the review (ledger line {number})",
                )
            )
    for number, actor, _ in actors.get((rid, LedgerEvent.SEALED), []):
        if actor != record.closed_by:
            problems.append(
                AuditProblem(
                    rid,
                    f"names {plain(record.closed_by or 'nobody')} as closing it, but "
                    f"{plain(actor)} signed the close (ledger line {number})",
                )
            )


def _check_cited(
    record: ChangeRecord, roster: Roster, problems: builtins.list[AuditProblem]
) -> None:
    """Every signature the record cites (the author's over the request, each approver's over plan
    and request) still verifies, over what the record says, with the key the roster of record held
    when the record was created. A record re-written and re-signed by its own executor cannot
    backdate an approval, swap an approver or change the request it cites: the approver's
    signature covers those. Records written before the policy of record (no `policy_sha256`)
    carry no signatures to check."""
    for link in record.approvals:
        if link.source not in {ApprovalSource.SELF, ApprovalSource.SIGNED}:
            continue  # a GitHub review or a client's e-mail: checked where it lives
        if not link.signature:
            if record.policy_sha256:
                problems.append(
                    AuditProblem(
                        record.id,
                        f"cites the {link.role.value} approval of {plain(link.who)} without its "
                        "signature (removed after it was recorded?)",
                    )
                )
            continue
        member = roster.get(link.who)
        if member is None or link.at is None:
            holds = False
        elif link.source is ApprovalSource.SELF:
            payload = signing_bytes(
                {
                    "purpose": "change-request",
                    "request_id": record.request_id,
                    "request_sha256": record.request_sha256,
                    "signed_at": format_utc(link.at),
                    "signer": link.who,
                }
            )
            holds = signature_holds(member.public_keys(), payload, link.signature)
        else:
            payload = signed_payload(
                record.plan_hash,
                record.request_id,
                link.who,
                link.at,
                record.request_sha256,
                link.simulated,
            )
            holds = signature_holds(member.public_keys(), payload, link.signature)
        if not holds:
            problems.append(
                AuditProblem(
                    record.id,
                    f"the {link.role.value} approval of {plain(link.who)} it cites does not "
                    "verify over what the record says (plan, request, time) with their key in "
                    "the roster of record: edited after it was signed",
                )
            )


def _check_request(root: Path, record: ChangeRecord, problems: builtins.list[AuditProblem]) -> None:
    """The change request a record cites, when still in the repository, is the one it recorded:
    a request is evidence, and editing it after the change would rewrite why it was made."""
    if not record.request_sha256 or not record.request_id:
        return
    path = root / REQUESTS_DIR / f"{record.request_id}.yaml"
    if not exists(path):
        return  # archived or removed: the record keeps its hash and the author's signature
    try:
        digest = content_sha256(load_yaml(path).data)
    except InputError as exc:
        problems.append(AuditProblem(record.id, f"its change request: {exc.message}"))
        return
    if digest != record.request_sha256:
        problems.append(
            AuditProblem(
                record.id,
                f"its change request {path.name} was edited after the change was recorded "
                f"(content {digest[:16]}, recorded {record.request_sha256[:16]})",
            )
        )


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


def _check_files(
    store: RecordStore,
    last_events: dict[str, tuple[int, LedgerEntry]],
    now: datetime,
    problems: builtins.list[AuditProblem],
    sandbox_clients: frozenset[str] | None = None,
    actors: dict[tuple[str, LedgerEvent], builtins.list[tuple[int, str, bool]]] | None = None,
    rosters: dict[str, Roster] | None = None,
) -> None:
    """`sandbox_clients`: the clients on the sandbox provider; a simulated record for any other
    is refused. None (a library caller that does not know the portfolio) skips that check."""
    files: dict[str, Path] = {}
    if store.records_dir.is_dir():
        for path in store.records_dir.glob("*.json"):
            if path.name.startswith("."):
                continue  # a temp file of an interrupted write; the real file is checked
            files[path.stem] = path
    owner_of_hash = {entry.record_sha256: rid for rid, (_, entry) in last_events.items()}
    known = set(last_events)  # once: building it per file made verify quadratic in the records
    purged = {rid for rid, (_, e) in last_events.items() if e.event is LedgerEvent.PURGED}
    for rid in sorted(set(last_events) - set(files) - purged, key=_sort_key):
        problems.append(
            AuditProblem(rid, "the ledger records it but its record file is missing (deleted?)")
        )
    for stem in sorted(files):
        path = files[stem]
        if stem in purged:
            problems.append(
                AuditProblem(stem, f"{path.name}: the ledger purged this record; its file is back")
            )
            continue
        if not RECORD_ID.match(stem) or stem not in last_events:
            problems.append(
                AuditProblem(
                    stem if RECORD_ID.match(stem) else "",
                    f"{path.name}: a record file the ledger never recorded (added by hand?)",
                )
            )
            continue
        number, last = last_events[stem]
        record = _check_file(path, stem, number, last, owner_of_hash, known, now, problems)
        if record is not None and actors is not None:
            _check_signers(record, actors, problems)
        if record is not None and rosters is not None and stem in rosters:
            _check_cited(record, rosters[stem], problems)
        if record is not None:
            _check_request(store.changes_dir.parent, record, problems)
        if (
            record is not None
            and record.simulated
            and sandbox_clients is not None
            and record.client not in sandbox_clients
        ):
            problems.append(
                AuditProblem(
                    stem,
                    f"written under an injected time (simulated), but client {plain(record.client)}"
                    " is not on the sandbox: a rehearsal cannot stand in a real audit trail",
                )
            )


def _check_file(
    path: Path,
    rid: str,
    number: int,
    last: LedgerEntry,
    owner_of_hash: dict[str, str],
    known: set[str],
    now: datetime,
    problems: builtins.list[AuditProblem],
) -> ChangeRecord | None:
    try:
        raw = read_bytes(path, root=path.parent.parent.parent)
        data = _load_json(raw, path)
    except InputError as exc:
        problems.append(AuditProblem(rid, f"{path.name}: {exc.message}"))
        return None
    digest = hashlib.sha256(canonical_bytes(data)).hexdigest()
    if digest != last.record_sha256:
        owner = owner_of_hash.get(digest)
        held = data.get("id") if isinstance(data, dict) else None
        if owner is not None and owner != rid:
            why = f"it holds the content of record {owner} (files swapped or copied)"
        elif isinstance(held, str) and held != rid:
            why = f"it holds record {held} (files swapped or renamed)"
        else:
            why = "the file was edited or replaced after it was recorded"
        problems.append(
            AuditProblem(
                rid,
                f"{path.name} does not match its last ledger event ({last.event.value}, line "
                f"{number}): {why}",
            )
        )
        return None
    # From here the content is what dmarcops recorded; what remains is the file's form and what
    # the record itself says (an overdue review, references to records that do not exist).
    if raw != _pretty(data):
        problems.append(
            AuditProblem(rid, f"{path.name}: same content, but not as dmarcops writes it (edited)")
        )
    try:
        record = ChangeRecord.from_json(data)
    except RecordFormatError as exc:
        problems.append(AuditProblem(rid, f"{path.name}: not a change record: {exc.message}"))
        return None
    if record.id != rid:
        problems.append(AuditProblem(rid, f"{path.name} holds record {record.id}"))
    if record.sealed != (last.event is LedgerEvent.SEALED):
        problems.append(
            AuditProblem(rid, "the record's sealed flag disagrees with its ledger events")
        )
    for ref in record.references:
        if ref not in known:
            problems.append(AuditProblem(rid, f"references record {ref}, which does not exist"))
    if (
        record.executed_at is None
        and record.change_type is not ChangeType.UNRECORDED  # drift found it; nobody executed it
        and now - record.created_at > INTERRUPTED_AFTER
    ):
        # apply writes the record before it touches DNS and completes it afterwards: a record
        # left half-way is an apply that was killed; what it changed must be checked live.
        problems.append(
            AuditProblem(
                rid,
                f"created {show_utc(record.created_at)} but never marked executed: an interrupted "
                "apply? Compare live DNS with its items, then close it with the real outcome",
            )
        )
    problems.extend(AuditProblem(rid, why) for why in chronology(record))
    if record.report_verification is not None:
        problem = verification_problem(path.parent.parent, record.report_verification)
        if problem:
            problems.append(AuditProblem(rid, problem))
    markdown = path.with_suffix(".md")
    if exists(markdown) and _text_or_none(markdown) != record.render_markdown():
        # The rendering is what people read on GitHub: it must say what the sealed JSON says.
        problems.append(AuditProblem(rid, f"{markdown.name} does not match the record (edited)"))
    emergency = record.emergency
    if emergency is not None and not emergency.reviewed:
        if record.sealed:
            problems.append(
                AuditProblem(rid, "emergency change sealed without its post-hoc review")
            )
        elif emergency.overdue(now):
            problems.append(
                AuditProblem(
                    rid,
                    f"emergency change: post-hoc review overdue since "
                    f"{show_utc(emergency.review_due)}",
                )
            )
    return record


def chronology(record: ChangeRecord) -> builtins.list[str]:
    """What the record's own times say happened out of order (issue 9 item 2).

    A record that matches its ledger can still tell an impossible story: an approval dated before
    the request it approves or after the apply, an apply outside the window it claims, a close
    inside the rollback window without --force, a review before the change it reviews.
    """
    out: builtins.list[str] = []
    author = next(
        (a for a in record.approvals if a.role is ApprovalRole.ANALYST and a.at is not None), None
    )
    executed = record.executed_at
    for approval in record.approvals:
        if approval.at is None or approval is author:
            continue
        what = f"{approval.role.value} approval by {plain(approval.who)}"
        if author is not None and author.at is not None and approval.at < author.at:
            out.append(
                f"{what} is dated {show_utc(approval.at)}, before the request was signed "
                f"({show_utc(author.at)}): backdated"
            )
        if executed is not None and approval.at > executed:
            out.append(
                f"{what} is dated {show_utc(approval.at)}, after the change was applied "
                f"({show_utc(executed)})"
            )
    if executed is not None:
        if executed < record.created_at:
            out.append(
                f"applied {show_utc(executed)}, before the record was created "
                f"({show_utc(record.created_at)})"
            )
        window = record.change_window
        if (
            record.emergency is None
            and window is not None
            and not window.start <= executed <= window.end
        ):
            out.append(
                f"applied {show_utc(executed)}, outside the change window it claims "
                f"({show_utc(window.start)} to {show_utc(window.end)})"
            )
    if record.closed_at is not None:
        if executed is not None and record.closed_at < executed:
            out.append(
                f"closed {show_utc(record.closed_at)}, before it was applied ({show_utc(executed)})"
            )
        if not record.closed_forced and record.closed_at < record.rollback_window.end:
            out.append(
                f"closed {show_utc(record.closed_at)}, inside its rollback window (ends "
                f"{show_utc(record.rollback_window.end)}) without --force"
            )
    emergency = record.emergency
    if (
        emergency is not None
        and emergency.reviewed_at is not None
        and (executed is None or emergency.reviewed_at < executed)
    ):
        out.append(
            f"post-hoc review dated {show_utc(emergency.reviewed_at)}, before the change was "
            "applied"
        )
    return out
