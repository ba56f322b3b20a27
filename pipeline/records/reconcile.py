"""Records that reached DNS but not the repository (issue 10, item 5): put them back from the run's
artifact.

An apply on merge writes its change records and ledger lines, then pushes them to main. If that
push cannot land (after its retries and rebases), the workflow uploads the run's changes/ as an
artifact and opens an issue. `dmarcops records reconcile --from DIR` (DIR: that artifact's
changes/) appends what the repository is missing, and only that:

- the repository's ledger must be a prefix of the artifact's (applies run one at a time, in the
  `dns-apply` concurrency group, so nothing else can have been appended meanwhile); when it is
  not, the two have diverged and nothing is written;
- every missing line must parse, chain to the line before and be signed by its actor with a key
  the roster of record holds, exactly as the store would have written it;
- every record those lines name is copied only if its content hashes to the line's record hash,
  and never over a different file.

The lines are the original, signed ones: the records are the apply's own, not reconstructions.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from pipeline.clock import system_now
from pipeline.errors import GateRefused, InputError
from pipeline.gate.identity import signature_holds
from pipeline.load.files import exists, make_dir, open_append, read_bytes
from pipeline.records.ledger import (
    LEDGER_NAME,
    LedgerEntry,
    LedgerEvent,
    exclusive_lock,
    split_lines,
)
from pipeline.records.record import canonical_bytes
from pipeline.records.store import RECORDS_DIR, RecordStore, verification_file, write_atomic


@dataclass(frozen=True)
class Reconciled:
    lines: int
    records: tuple[str, ...]


# What an apply or a scheduled run writes: the only lines reconcile puts back, and only when the
# automation's key signed them. A seal of policy, an attestation or a purge is a person's act
# and never arrives this way.
RECONCILABLE = frozenset({LedgerEvent.CREATED, LedgerEvent.UPDATED, LedgerEvent.SEALED})


def _source_bytes(path: Path) -> bytes:
    return read_bytes(path, root=path.parent, outside_ok=True, log=True)


def _is_known_version(store: RecordStore, rid: str, ours_last: dict[str, str]) -> bool:
    """The repository's file is the version its own ledger last recorded (so the artifact's is
    that record's next version), for the JSON; the markdown follows its JSON."""
    json_path = store.json_path(rid)
    try:
        data = json.loads(read_bytes(json_path, root=store.changes_dir.parent))
    except (InputError, ValueError, RecursionError):
        return False
    return hashlib.sha256(canonical_bytes(data)).hexdigest() == ours_last.get(rid)


def _verification_copy(
    store: RecordStore, source: Path, rid: str, data: object
) -> list[tuple[Path, bytes]]:
    """The report verification a closed record seals (changes/evidence/verification-<sha>.json,
    issue 14 part 5) comes along with it, when the repository lacks it and it hashes to its name."""
    check = data.get("report_verification") if isinstance(data, dict) else None
    digest = check.get("sha256") if isinstance(check, dict) else None
    if not isinstance(digest, str) or len(digest) != 64 or not digest.isalnum():
        return []
    dest = verification_file(store.changes_dir, digest)
    if exists(dest):
        return []
    src = source / dest.parent.name / dest.name
    try:
        body = _source_bytes(src)
    except InputError as exc:
        raise GateRefused(
            f"record {rid}: its report verification: {exc.message}", file=src
        ) from None
    if hashlib.sha256(body).hexdigest() != digest:
        raise GateRefused(
            f"record {rid}: its report verification does not hash to its name; nothing was written",
            file=src,
        )
    return [(dest, body)]


def reconcile(store: RecordStore, source: Path) -> Reconciled:
    ledger_path = source / LEDGER_NAME
    if not exists(ledger_path):
        raise InputError(
            "no ledger.jsonl here: not a changes/ directory from an apply's artifact",
            file=source,
            hint="Download the run's artifact (gh run download RUN -n apply-records-...) and pass "
            "its changes/ directory.",
        )
    theirs = split_lines(_source_bytes(ledger_path).decode("utf-8", "replace"))
    with exclusive_lock(store.changes_dir):
        ours = store.ledger.lines()
        if theirs[: len(ours)] != ours:
            if ours[: len(theirs)] == theirs:
                return Reconciled(0, ())  # the repository already holds all of it
            first = next(
                (i for i, (a, b) in enumerate(zip(ours, theirs, strict=False), 1) if a != b),
                min(len(ours), len(theirs)) + 1,
            )
            raise GateRefused(
                f"the artifact's ledger and the repository's differ from line {first}: they have "
                "diverged, and nothing was written",
                file=ledger_path,
                hint="Run `dmarcops audit verify` on both; reconcile only a run whose ledger "
                "continues the repository's.",
            )
        missing = theirs[len(ours) :]
        if not missing:
            return Reconciled(0, ())
        entries = store.ledger.read()
        # Each record's version as the repository's ledger last recorded it: its files may be
        # replaced by the artifact's later version (an update or a seal), nothing else may.
        ours_last = {e.record_id: e.record_sha256 for e in entries if e.record_id}
        roster = store.trusted_roster(entries)
        prev = entries[-1].entry_sha256 if entries else "0" * 64
        seq = entries[-1].seq if entries else 0
        last_at = entries[-1].at if entries else datetime.min.replace(tzinfo=UTC)
        now = system_now()
        last_hash: dict[str, str] = {}
        for number, line in enumerate(missing, len(ours) + 1):
            try:
                entry = LedgerEntry.from_line(line)
            except ValueError as exc:
                raise GateRefused(f"line {number}: {exc}", file=ledger_path) from None
            member = roster.get(entry.actor)
            if entry.event not in RECONCILABLE or member is None or member.is_person:
                raise GateRefused(
                    f"line {number} of the artifact's ledger is a {entry.event.value} line signed "
                    f"by {entry.actor}: only what the automation recorded (created, updated, "
                    "sealed) is put back this way; nothing was written",
                    file=ledger_path,
                )
            if entry.at < last_at or entry.at > now:
                raise GateRefused(
                    f"line {number} of the artifact's ledger is dated {entry.at:%Y-%m-%d %H:%M} "
                    "UTC, before the line above it or in the future; nothing was written",
                    file=ledger_path,
                )
            last_at = entry.at
            if (
                entry.seq != seq + 1
                or entry.prev != prev
                or entry.computed_sha256() != entry.entry_sha256
                or member is None
                or not signature_holds(member.public_keys(), entry.head(), entry.signature)
            ):
                raise GateRefused(
                    f"line {number} of the artifact's ledger does not continue the repository's "
                    "as dmarcops writes it (sequence, chain, hash or signature); nothing was "
                    "written",
                    file=ledger_path,
                )
            seq, prev = entry.seq, entry.entry_sha256
            if entry.record_id:
                last_hash[entry.record_id] = entry.record_sha256
        copies: list[tuple[Path, bytes]] = []
        for rid, digest in sorted(last_hash.items()):
            for suffix in ("json", "md"):
                src = source / RECORDS_DIR / f"{rid}.{suffix}"
                try:
                    body = _source_bytes(src)
                except InputError as exc:
                    raise GateRefused(f"record {rid}: {exc.message}", file=src) from None
                if suffix == "json":
                    try:
                        data = json.loads(body)
                    except (ValueError, RecursionError):
                        raise GateRefused(f"record {rid}: not JSON", file=src) from None
                    if hashlib.sha256(canonical_bytes(data)).hexdigest() != digest:
                        raise GateRefused(
                            f"record {rid} is not the one its ledger line recorded; nothing was "
                            "written",
                            file=src,
                        )
                    copies += _verification_copy(store, source, rid, data)
                dest = store.records_dir / src.name
                if (
                    exists(dest)
                    and read_bytes(dest, root=store.changes_dir.parent) != body
                    and not _is_known_version(store, rid, ours_last)
                ):
                    raise GateRefused(
                        f"record {rid}: the repository holds a different {src.name}; nothing "
                        "was written",
                        file=dest,
                    )
                copies.append((dest, body))
        make_dir(store.records_dir, root=store.changes_dir.parent)
        for dest, body in copies:
            make_dir(dest.parent, root=store.changes_dir.parent)
            write_atomic(dest, body)
        fd = open_append(store.ledger.path, root=store.changes_dir.parent)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write("".join(f"{line}\n" for line in missing))
            handle.flush()
            os.fsync(handle.fileno())
        return Reconciled(len(missing), tuple(sorted(last_hash)))
