"""`dmarcops audit verify`, the record files: each against its last ledger event, its own
chronology, its signers, the signatures it cites and the change request it names."""

from __future__ import annotations

import builtins
import os
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from pipeline.errors import InputError
from pipeline.gate.approvals import signed_payload
from pipeline.gate.identity import signature_holds, signing_bytes
from pipeline.gate.requests import REQUESTS_DIR, content_sha256
from pipeline.gate.roster import Roster
from pipeline.load.dirfiles import ABSENT, DirectoryFiles
from pipeline.load.files import exists
from pipeline.load.yamlfile import load_yaml
from pipeline.records.audit_pool import in_ranges
from pipeline.records.fastjson import is_pretty, sha256_is
from pipeline.records.ledger import (
    LedgerEntry,
    LedgerEvent,
)
from pipeline.records.record import (
    RECORD_ID,
    ApprovalRole,
    ApprovalSource,
    ChangeRecord,
    ChangeType,
    RecordFormatError,
    format_utc,
    plain,
    sha256_hex,
    show_utc,
)
from pipeline.records.record_files import (
    _load_json,
    _sort_key,
    verification_problem,
)

if TYPE_CHECKING:
    from pipeline.records.store_base import RecordStoreBase as RecordStore


@dataclass(frozen=True)
class AuditProblem:
    record_id: str  # "" for a problem of the ledger as a whole
    message: str

    def __str__(self) -> str:
        return f"{self.record_id}: {self.message}" if self.record_id else f"ledger: {self.message}"


INTERRUPTED_AFTER = timedelta(hours=1)


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


def _check_request(
    root: Path,
    record: ChangeRecord,
    problems: builtins.list[AuditProblem],
    seen: dict[str, str | InputError | None] | None = None,
) -> None:
    """The change request a record cites, when still in the repository, is the one it recorded:
    a request is evidence, and editing it after the change would rewrite why it was made.
    `seen`: each request's hash (or why it cannot be read) once per run, however many records
    cite it."""
    if not record.request_sha256 or not record.request_id:
        return
    seen = {} if seen is None else seen
    name = f"{record.request_id}.yaml"
    if record.request_id not in seen:
        path = root / REQUESTS_DIR / name
        try:
            seen[record.request_id] = (
                content_sha256(load_yaml(path, root=root).data) if exists(path) else None
            )
        except InputError as exc:
            seen[record.request_id] = exc
    digest = seen[record.request_id]
    if digest is None:
        return  # archived or removed: the record keeps its hash and the author's signature
    if isinstance(digest, InputError):
        problems.append(AuditProblem(record.id, f"its change request: {digest.message}"))
        return
    if digest != record.request_sha256:
        problems.append(
            AuditProblem(
                record.id,
                f"its change request {name} was edited after the change was recorded "
                f"(content {digest[:16]}, recorded {record.request_sha256[:16]})",
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
    files: set[str] = set()  # stems: 50,000 Path objects would be a tenth of verify's memory
    if store.records_dir.is_dir():
        with os.scandir(store.records_dir) as found:
            for item in found:
                # A dot file is a temp file of an interrupted write; the real file is checked.
                if item.name.endswith(".json") and not item.name.startswith("."):
                    files.add(item.name[: -len(".json")])
    owner_of_hash = {entry.record_sha256: rid for rid, (_, entry) in last_events.items()}
    requests: dict[str, str | InputError | None] = {}
    known = set(last_events)  # once: building it per file made verify quadratic in the records
    purged = {rid for rid, (_, e) in last_events.items() if e.event is LedgerEvent.PURGED}
    for rid in sorted(set(last_events) - set(files) - purged, key=_sort_key):
        problems.append(
            AuditProblem(rid, "the ledger records it but its record file is missing (deleted?)")
        )
    stems = sorted(files)
    root = store.changes_dir.parent

    def check(start: int, stop: int) -> builtins.list[AuditProblem]:
        # Each file's checks depend on no other file's: pipeline.records.audit_pool runs ranges
        # of them on every core and joins the problems in this order.
        found: builtins.list[AuditProblem] = []
        with DirectoryFiles(store.records_dir, store.changes_dir.parent) as directory:
            for stem in stems[start:stop]:
                check_one(stem, directory, found)
        return found

    def check_one(stem: str, directory: DirectoryFiles, found: builtins.list[AuditProblem]) -> None:
        path = store.records_dir / f"{stem}.json"
        if stem in purged:
            found.append(
                AuditProblem(stem, f"{path.name}: the ledger purged this record; its file is back")
            )
            return
        if not RECORD_ID.match(stem) or stem not in last_events:
            found.append(
                AuditProblem(
                    stem if RECORD_ID.match(stem) else "",
                    f"{path.name}: a record file the ledger never recorded (added by hand?)",
                )
            )
            return
        number, last = last_events[stem]
        record = _check_file(path, directory, stem, number, last, owner_of_hash, known, now, found)
        if record is not None and actors is not None:
            _check_signers(record, actors, found)
        if record is not None and rosters is not None and stem in rosters:
            _check_cited(record, rosters[stem], found)
        if record is not None:
            _check_request(root, record, found, requests)
        if (
            record is not None
            and record.simulated
            and sandbox_clients is not None
            and record.client not in sandbox_clients
        ):
            found.append(
                AuditProblem(
                    stem,
                    f"written under an injected time (simulated), but client {plain(record.client)}"
                    " is not on the sandbox: a rehearsal cannot stand in a real audit trail",
                )
            )

    problems.extend(in_ranges(len(stems), check))


def _check_file(
    path: Path,
    directory: DirectoryFiles,
    rid: str,
    number: int,
    last: LedgerEntry,
    owner_of_hash: dict[str, str],
    known: set[str],
    now: datetime,
    problems: builtins.list[AuditProblem],
) -> ChangeRecord | None:
    try:
        raw = directory.read(path.name)
        floats: builtins.list[str] = []
        data = _load_json(raw, path, floats)
    except InputError as exc:
        problems.append(AuditProblem(rid, f"{path.name}: {exc.message}"))
        return None
    if not sha256_is(data, last.record_sha256, has_floats=bool(floats)):
        digest = sha256_hex(data)
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
    if not is_pretty(raw, data, has_floats=bool(floats)):
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
    markdown = f"{rid}.md"
    shown = directory.text_if_present(markdown)
    if shown is not ABSENT and shown != record.render_markdown():
        # The rendering is what people read on GitHub: it must say what the sealed JSON says.
        problems.append(AuditProblem(rid, f"{markdown} does not match the record (edited)"))
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
