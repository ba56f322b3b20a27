"""Approved changes waiting for their window, and records waiting for their rollback window to end.

A merge outside the client's window does not apply; the approved plan is queued under
changes/pending/ with a note of the approvals it was merged with. The note is not evidence: the
scheduled run reads the pull request's reviews again before applying. The scheduled run applies a queued plan once its
window opens, and closes records whose rollback window has ended with nothing wrong in them.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from pipeline.apply.verify_reports import (
    ACCEPTED,
    ANOMALY,
    ReportSource,
    check_record,
    seal_evidence,
)
from pipeline.errors import InputError
from pipeline.gate.approvals import Approval
from pipeline.gate.identity import Signer
from pipeline.load.files import make_dir
from pipeline.load.jsonfile import load_json
from pipeline.records import ChangeRecord, Outcome, RecordStore, VerificationStatus, ZoneStatus
from pipeline.records.policy_of_record import portfolio_of_record
from pipeline.reports.store import DEFAULT_STORE

PENDING_DIR = Path("changes") / "pending"


@dataclass(frozen=True)
class PendingChange:
    plan_hash: str
    plan: dict[str, Any]  # the approved JSON plan
    approvals: tuple[Approval, ...]  # what counted at merge time: a note, read again before use
    queued_at: str
    pull_request: int | None
    reason: str  # why it waits (the window decision)
    executor: str = ""  # roster id of who merged it: the record's "executed by"

    def to_json(self) -> dict[str, Any]:
        return {
            "plan_hash": self.plan_hash,
            "plan": self.plan,
            "approvals": [{**a.to_json(), "reference": a.reference} for a in self.approvals],
            "queued_at": self.queued_at,
            "pull_request": self.pull_request,
            "reason": self.reason,
            "executor": self.executor,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> PendingChange:
        return cls(
            plan_hash=data["plan_hash"],
            plan=data["plan"],
            approvals=tuple(
                Approval.from_json(a, reference=a.get("reference", "")) for a in data["approvals"]
            ),
            queued_at=data["queued_at"],
            pull_request=data.get("pull_request"),
            reason=data.get("reason", ""),
            executor=data.get("executor", ""),
        )


def pending_path(root: Path, plan_hash: str) -> Path:
    return root / PENDING_DIR / f"{plan_hash}.json"


def queue(root: Path, change: PendingChange) -> Path:
    path = pending_path(root, change.plan_hash)
    make_dir(path.parent, root=root)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".pending-")
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(change.to_json(), fh, indent=2, sort_keys=True)
        fh.write("\n")
    os.replace(tmp, path)
    return path


def queued(root: Path) -> list[tuple[Path, PendingChange]]:
    directory = root / PENDING_DIR
    hint = "Pending changes are written by dmarcops when a merge waits for a window; restore it."
    out: list[tuple[Path, PendingChange]] = []
    for p in sorted(directory.glob("*.json")):
        data = load_json(p, what="not a pending change", hint=hint, root=root)
        try:
            out.append((p, PendingChange.from_json(data)))
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise InputError(f"not a pending change: {exc}", file=p, hint=hint) from None
    return out


def ready_to_close(record: ChangeRecord, now: datetime) -> bool:
    """Closed as accepted by the scheduler only when nothing needs a person: fully applied and
    verified, rollback window over, not an emergency still waiting for its review."""
    if record.sealed or record.executed_at is None or now < record.rollback_window.end:
        return False
    if record.emergency is not None and not record.emergency.reviewed:
        return False
    if record.manual is not None and not record.manual.verified:
        return False  # a manual change: every checklist line verified (dmarcops manual verify)
    if not record.zone_results or any(
        z.status is not ZoneStatus.APPLIED for z in record.zone_results
    ):
        return False
    return all(v.status is VerificationStatus.VERIFIED for v in record.verification)


@dataclass
class CloseRun:
    """What the scheduled run's pass over the open records did (issue 14 part 5)."""

    closed: list[tuple[str, str]] = field(default_factory=list)  # (record, the evidence)
    waiting: list[tuple[str, str]] = field(default_factory=list)  # past the window, no evidence
    anomalies: list[tuple[str, str]] = field(default_factory=list)  # rollback recommended
    attention: list[tuple[str, str]] = field(default_factory=list)  # a person must close it


def close_finished(
    store: RecordStore,
    now: datetime,
    signer: Signer | None,
    reports: Path | None = None,
) -> CloseRun:
    """Verify every applied, open record against the aggregate reports (`reports`: the report
    store, .dmarcops/reports.sqlite under the repository by default) and seal, as accepted, each
    whose rollback window ended cleanly *and* whose post-change reports say so. Never on silence:
    without that evidence the record stays open; an anomaly is reported, in the window or after.
    """
    root = store.changes_dir.parent
    policy = portfolio_of_record(root).gate.report_verification
    run = CloseRun()
    with ReportSource.open(reports or root / DEFAULT_STORE) as source:
        # The open records only (from the record index, each read from its file): the pass
        # does not read the sealed history.
        for record in store.open_executed():
            if record.sealed or record.executed_at is None:
                continue
            check = check_record(record, source, policy, now)
            if check.verdict == ANOMALY:
                run.anomalies.append((record.id, check.summary))
                continue
            if now < record.rollback_window.end:
                continue
            if not ready_to_close(record, now):
                run.attention.append((record.id, "not clean enough to close"))
            elif check.verdict != ACCEPTED:
                run.waiting.append((record.id, check.summary))
            elif signer is None:  # nobody to sign the close: a person closes it instead
                run.attention.append((record.id, "no automation key to sign the close"))
            else:
                reference = seal_evidence(root, check)
                store.seal(record.id, Outcome.ACCEPTED, now, signer, verification=reference)
                run.closed.append((record.id, check.summary))
    return run
