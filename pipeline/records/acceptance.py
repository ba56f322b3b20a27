"""The seal's rule against acceptance by silence (issue 14 part 5): what `RecordStore.seal` checks
before a record is closed as accepted."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pipeline.errors import GateRefused, InputError
from pipeline.gate.identity import Signer
from pipeline.records.index_ledger import LedgerView
from pipeline.records.record import (
    ChangeRecord,
    ChangeType,
    Outcome,
    ReportCheck,
)
from pipeline.records.record_files import (
    UntrustedSigner,
    verification_problem,
)

if TYPE_CHECKING:
    from pipeline.records.store_base import RecordStoreBase as RecordStore


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
