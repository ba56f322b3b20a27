"""The ledger lines that change no record: a policy seal, an auditor's attestation, a purge at the
end of a record's retention (RecordStore, pipeline.records.store)."""

from __future__ import annotations

import builtins
import hashlib
from datetime import datetime

from pipeline.errors import GateRefused, InputError
from pipeline.gate.identity import Signer
from pipeline.records.ledger import (
    LedgerEntry,
    LedgerEvent,
)
from pipeline.records.policy_seal import (
    PolicySnapshot,
    roster_of_snapshot,
    store_snapshot,
)
from pipeline.records.record import (
    canonical_bytes,
    utc,
)
from pipeline.records.record_files import (
    ATTEST_VERDICTS,
    RecordMismatchError,
    UnknownRecordError,
    UntrustedSigner,
    _check_signer,
    _load_json,
)
from pipeline.records.store_base import RecordStoreBase


class LedgerWrites(RecordStoreBase):
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
