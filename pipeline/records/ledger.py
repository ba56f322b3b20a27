"""The append-only, hash-chained, actor-signed ledger of the audit trail: `changes/ledger.jsonl`.

Seed ("Audit trail and compliance"): "Immutable record. Change records cannot be edited after
closure." A record file alone cannot prove that; the ledger can. Each line is one event:

- record events (created, updated, reviewed, sealed) name the record and carry the SHA-256 of its
  canonical bytes after the event; `record_prev` chains the events of one record, so a deleted
  line names the record it belonged to, not only the place where the chain broke;
- `policy` events seal a policy snapshot (pipeline/records/policy_seal.py): the first is written
  by `dmarcops init`, later ones by a lead's `dmarcops policy seal`. Signatures are checked
  against the roster of the snapshot in force when they were made;
- `attested` events hold an auditor's signed spot-check finding about one record (in the payload:
  the record and its hash), written by `dmarcops audit attest`.

Every line chains to the line before (`prev`), is hashed (`entry_sha256`, over every field but the
hash and the signature) and is signed by its actor: an Ed25519 signature (or an sshsig) over the
ledger head it creates, `head_bytes(seq, entry_sha256)`. Re-hashing the chain after an edit
therefore needs the private key of every actor after the edit; an anchor kept outside the
repository (`dmarcops audit anchor`) also catches a truncated suffix.

All writers hold an exclusive flock on `changes/.lock` (see `exclusive_lock`): appends never
interleave and record numbers are allocated without gaps or duplicates.
"""

from __future__ import annotations

import enum
import fcntl
import hashlib
import json
import os
import re
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from pipeline.errors import GateRefused
from pipeline.gate.identity import Signer, signature_holds, signing_bytes
from pipeline.gate.roster import Roster
from pipeline.load.files import exists, make_dir, open_append, open_lock, read_bytes
from pipeline.load.jsonfile import noting_decoder
from pipeline.records.record import (
    RECORD_ID,
    canonical_bytes,
    format_utc,
    parse_wire_time,
    utc,
)

GENESIS = "0" * 64
LEDGER_NAME = "ledger.jsonl"
LOCK_NAME = ".lock"
FORMAT = 2  # 1 was unsigned: such lines are refused by name
_SHA256 = re.compile(r"[0-9a-f]{64}")
_KEYS = frozenset(
    {
        "format",
        "seq",
        "event",
        "record_id",
        "record_sha256",
        "record_prev",
        "payload",
        "actor",
        "simulated",
        "at",
        "prev",
        "entry_sha256",
        "signature",
    }
)


class LedgerEvent(enum.StrEnum):
    CREATED = "created"
    UPDATED = "updated"
    REVIEWED = "reviewed"  # the post-hoc review of an emergency: signed by the reviewer
    SEALED = "sealed"
    POLICY = "policy"  # a policy snapshot sealed (payload: policy_sha256); names no record
    # An auditor's signed spot-check finding about one record (payload: record, its hash,
    # verdict, notes, the sample it came from). It changes no record, so it is not a record
    # event: the record it concerns is in the payload.
    ATTESTED = "attested"
    # A sealed record removed at the end of its client's retention period: the line keeps its
    # id and last hash, so numbering and the chain still verify without the file.
    PURGED = "purged"


_EVENTS: dict[str, LedgerEvent] = {e.value: e for e in LedgerEvent}
RECORD_EVENTS = frozenset(
    {
        LedgerEvent.CREATED,
        LedgerEvent.UPDATED,
        LedgerEvent.REVIEWED,
        LedgerEvent.SEALED,
        LedgerEvent.PURGED,
    }
)


class LedgerCorrupt(GateRefused):
    """A ledger line cannot be read, so nothing can be appended after it. Exit 2."""


def _is_sha256(value: str) -> bool:
    return _SHA256.fullmatch(value) is not None


def _decode(line: str) -> tuple[Any, bool]:
    """The line as JSON, and whether it held a non-integer number (json's C decoder: orjson reads
    a ledger line no faster once its value is searched for floats)."""
    decoder = noting_decoder()
    decoder.floats.clear()
    try:
        data = decoder.decode(line)
    except json.JSONDecodeError as exc:
        raise ValueError(f"not JSON ({exc.msg})") from None
    except RecursionError:  # thousands of nested brackets: no entry looks like that
        raise ValueError("not a ledger entry (nested too deeply)") from None
    except ValueError:  # an integer of thousands of digits (Python's int limit)
        raise ValueError("not a ledger entry (a number too long to read)") from None
    # In an ASCII line (dmarcops writes nothing else) a lone surrogate can only be a \u escape.
    if isinstance(data, dict) and ("\\u" in line or not line.isascii()):
        try:
            # orjson refuses a lone surrogate too, and is cheap; its other refusals (an integer
            # beyond 64 bits) are no reason to refuse the line, so the standard library decides.
            orjson.dumps(data)
        except orjson.JSONEncodeError:
            try:
                canonical_bytes(data)
            except UnicodeEncodeError:  # "\ud800": a lone surrogate no UTF-8 hash can be taken over
                raise ValueError("not a ledger entry (a lone surrogate in a string)") from None
    return data, bool(decoder.floats)


def head_bytes(seq: int, entry_sha256: str) -> bytes:
    """What an actor's signature vouches for: "the ledger's head is entry `seq` with this hash".

    The entry hash covers every field of the entry (and through `prev` every line before it), so
    signing the head signs the entry and all of its past.
    """
    if type(seq) is int and _is_sha256(entry_sha256):
        # signing_bytes's canonical JSON, written out (audit verify builds 100,000 of them): a
        # plain int and a lowercase hex string need no escaping, the keys are in sorted order.
        return f'{{"entry_sha256":"{entry_sha256}","ledger":"dmarcops","seq":{seq}}}'.encode()
    return signing_bytes({"ledger": "dmarcops", "seq": seq, "entry_sha256": entry_sha256})


@dataclass(frozen=True, slots=True)  # slots: audit verify holds 100,000 of them
class LedgerEntry:
    seq: int  # 1, 2, 3, ... with no gaps
    event: LedgerEvent
    record_id: str  # "" for a policy event
    record_sha256: str  # the record's canonical bytes after this event; "" for a policy event
    record_prev: str  # record_sha256 of this record's previous event; GENESIS for `created`
    payload: Mapping[str, Any]  # what a policy event seals; {} for record events
    actor: str  # roster id of the signer
    simulated: bool  # written under an injected time (a sandbox rehearsal)
    at: datetime  # UTC, from the system clock unless simulated
    prev: str  # entry_sha256 of the line before; GENESIS for the first line
    entry_sha256: str = ""  # over the canonical JSON of all the fields above
    signature: str = field(default="")  # the actor's signature of head_bytes(seq, entry_sha256)

    def __post_init__(self) -> None:
        object.__setattr__(self, "at", utc(self.at))

    @property
    def is_record_event(self) -> bool:
        return self.event in RECORD_EVENTS

    def body(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "seq": self.seq,
            "event": self.event.value,
            "record_id": self.record_id,
            "record_sha256": self.record_sha256,
            "record_prev": self.record_prev,
            "payload": dict(self.payload),
            "actor": self.actor,
            "simulated": self.simulated,
            "at": format_utc(self.at),
            "prev": self.prev,
        }

    def computed_sha256(self) -> str:
        return hashlib.sha256(canonical_bytes(self.body())).hexdigest()

    def head(self) -> bytes:
        return head_bytes(self.seq, self.entry_sha256)

    def to_json(self) -> dict[str, Any]:
        return {**self.body(), "entry_sha256": self.entry_sha256, "signature": self.signature}

    def to_line(self) -> str:
        # ASCII on disk (\uXXXX escapes): a U+2028 in an auditor's note must not split the line
        # for a reader that splits on every line break. The hash is over the body, not this text.
        return (
            json.dumps(self.to_json(), sort_keys=True, separators=(",", ":"), ensure_ascii=True)
            + "\n"
        )

    @classmethod
    def make(
        cls,
        *,
        seq: int,
        event: LedgerEvent,
        signer: Signer,
        at: datetime,
        prev: str,
        record_id: str = "",
        record_sha256: str = "",
        record_prev: str = "",
        payload: Mapping[str, Any] | None = None,
        simulated: bool = False,
    ) -> LedgerEntry:
        """A complete entry: hashed, then signed by `signer` over the head it creates."""
        unsigned = cls(
            seq=seq,
            event=event,
            record_id=record_id,
            record_sha256=record_sha256,
            record_prev=record_prev,
            payload=dict(payload or {}),
            actor=signer.analyst,
            simulated=simulated,
            at=at,
            prev=prev,
        )
        digest = unsigned.computed_sha256()
        return replace(
            unsigned, entry_sha256=digest, signature=signer.sign(head_bytes(seq, digest))
        )

    @classmethod
    def from_line(cls, line: str) -> LedgerEntry:
        """One line as written; raises ValueError saying what is wrong. Hashes and signatures
        are not checked here (`audit` does, against the roster sealed at the time)."""
        return cls.parse(line)[0]

    @classmethod
    def parse(cls, line: str) -> tuple[LedgerEntry, bool]:
        """from_line, and whether the line held a non-integer number (a payload may): the entry's
        hash can then be checked only with the standard library's encoder (records.fastjson)."""
        data, has_floats = _decode(line)
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
        if data.get("format") != FORMAT:
            raise ValueError(
                f"format {data.get('format')!r} is not {FORMAT} (an unsigned line of an earlier "
                "dmarcops, or not a ledger line)"
            )
        if set(data) != _KEYS:
            raise ValueError(f"fields {sorted(data)} are not {sorted(_KEYS)}")
        texts = {k: data[k] for k in _KEYS - {"format", "seq", "payload", "simulated"}}
        for key, value in texts.items():
            if not isinstance(value, str):
                raise ValueError(f"{key} is not a string")
        seq = data["seq"]
        if not isinstance(seq, int) or isinstance(seq, bool) or seq < 1:
            raise ValueError(f"seq {seq!r} is not a positive integer")
        if not isinstance(data["payload"], dict):
            raise ValueError("payload is not a JSON object")
        if not isinstance(data["simulated"], bool):
            raise ValueError("simulated is not true or false")
        try:
            event = _EVENTS.get(texts["event"]) or LedgerEvent(texts["event"])
        except ValueError:
            raise ValueError(
                f"event {texts['event']!r} is not one of {', '.join(e.value for e in LedgerEvent)}"
            ) from None
        if event in RECORD_EVENTS:
            if not RECORD_ID.match(texts["record_id"]):
                raise ValueError(f"record_id {texts['record_id']!r} is not YYYY-NNNN")
            for key in ("record_sha256", "record_prev"):
                if not _is_sha256(texts[key]):
                    raise ValueError(f"{key} is not a SHA-256 in lowercase hex")
        elif any(texts[k] for k in ("record_id", "record_sha256", "record_prev")):
            raise ValueError(f"a {event.value} event names no record")
        for key in ("prev", "entry_sha256"):
            if not _is_sha256(texts[key]):
                raise ValueError(f"{key} is not a SHA-256 in lowercase hex")
        if not texts["actor"]:
            raise ValueError("actor is empty: every entry is signed by someone")
        entry = cls(
            seq=seq,
            event=event,
            record_id=texts["record_id"],
            record_sha256=texts["record_sha256"],
            record_prev=texts["record_prev"],
            payload=data["payload"],
            actor=texts["actor"],
            simulated=data["simulated"],
            at=parse_wire_time(texts["at"]),
            prev=texts["prev"],
            entry_sha256=texts["entry_sha256"],
            signature=texts["signature"],
        )
        return entry, has_floats


def split_lines(text: str) -> list[str]:
    """A ledger's lines: only "\n" ends one (what `Ledger.append` writes); str.splitlines()
    would also split at U+2028 or U+0085 inside a note."""
    lines = text.split("\n")
    return lines[:-1] if lines and lines[-1] == "" else lines


def record_id_of(line: str) -> str:
    """The record a damaged line is about, when that much can still be read (for messages)."""
    try:
        data = json.loads(line)
    except (ValueError, RecursionError):  # not JSON, too deep, a number too long
        return ""
    value = data.get("record_id") if isinstance(data, dict) else None
    return value if isinstance(value, str) and RECORD_ID.match(value) else ""


@contextmanager
def exclusive_lock(changes_dir: Path) -> Iterator[None]:
    """Every writer of changes/ holds this, across processes (flock on changes/.lock).

    flock locks belong to an open file description, so a second `exclusive_lock` in the same
    process blocks too: the store's public methods take it once and call unlocked helpers.
    """
    make_dir(changes_dir, root=changes_dir.parent)
    # O_NOFOLLOW, regular files only: a lock committed as a link must not create or lock a file
    # elsewhere, nor a FIFO hang the run (pipeline.load.files.open_lock).
    fd = open_lock(changes_dir / LOCK_NAME, root=changes_dir.parent)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing the last descriptor releases the lock


def parse_entries(lines: list[str], path: Path, first: int = 1) -> list[LedgerEntry]:
    """`lines` (the ledger's, numbered from `first`) as entries; LedgerCorrupt names the first
    line that cannot be read."""
    entries = []
    for number, line in enumerate(lines, first):
        try:
            entries.append(LedgerEntry.from_line(line))
        except ValueError as exc:
            raise LedgerCorrupt(str(exc), file=path, line=number, hint=_AUDIT_HINT) from None
    return entries


def decode_ledger(raw: bytes, path: Path, offset: int = 0, first: int = 1) -> list[str]:
    """The lines of ledger bytes `raw` (which start at byte `offset`, line `first`, of the file);
    LedgerCorrupt when they are not UTF-8."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise LedgerCorrupt(
            f"not UTF-8 at byte {offset + exc.start}",
            file=path,
            line=first + raw.count(b"\n", 0, exc.start),
            hint=_AUDIT_HINT,
        ) from None
    return split_lines(text)


# (analyst, the signing key's public half, the roster's keys for the analyst) whose signature
# was checked once in this process: Ed25519 is deterministic and always verifies under the public
# half of the key that made it, so the next line that key signs for that analyst is checked by
# comparing keys, not by verifying again (an apply appends 500 lines).
_proven: set[tuple[str, bytes, tuple[str, ...]]] = set()


def _holds(
    signer: Signer,
    key_texts: tuple[str, ...],
    keys: Sequence[Ed25519PublicKey],
    entry: LedgerEntry,
) -> bool:
    """The entry's signature verifies with the analyst's roster keys (append_after's check)."""
    if signer.key is None:  # an OpenSSH key or agent (sshsig): verified each time
        return signature_holds(keys, entry.head(), entry.signature)
    proof = (entry.actor, signer.key.public_key().public_bytes_raw(), key_texts)
    if proof in _proven:
        return True
    if not signature_holds(keys, entry.head(), entry.signature):
        return False
    _proven.add(proof)
    return True


class Ledger:
    def __init__(self, path: Path) -> None:
        self.path = path

    def lines(self) -> list[str]:
        """The raw lines, without their newline; [] when there is no ledger yet."""
        if not exists(self.path):
            return []
        # A regular file inside the repository within max_log_bytes (pipeline.load.files): a
        # ledger committed as a symbolic link or a FIFO is refused by name.
        raw = read_bytes(self.path, root=self.path.parent.parent, log=True)
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            return decode_ledger(raw, self.path)  # raises LedgerCorrupt naming the line
        del raw  # a long ledger is held once as text and once as lines, not three times
        return split_lines(text)

    def read(self) -> list[LedgerEntry]:
        """Every entry, for writers: a line that cannot be read stops them (nothing is appended
        after a damaged line, which would bury it). `audit.verify` reads damaged ledgers."""
        return parse_entries(self.lines(), self.path)

    def append(
        self,
        entries: list[LedgerEntry],
        *,
        event: LedgerEvent,
        signer: Signer,
        at: datetime,
        roster: Roster,
        simulated: bool = False,
        record_id: str = "",
        record_sha256: str = "",
        payload: Mapping[str, Any] | None = None,
        durable: bool = True,
    ) -> LedgerEntry:
        """Append one signed event after `entries` (what `read()` returned under the same lock).

        The caller holds `exclusive_lock`. The signature is checked against `roster` (the one
        the last sealed policy trusts) before the line is written: a line `audit verify` would
        reject is never appended. The line is fsync'd before this returns: an event the
        pipeline reported as recorded survives a crash. `durable=False` leaves that to a
        `sync()` the caller makes before it reports the batch as recorded.
        """
        last = entries[-1] if entries else None
        record_prev = ""
        if record_id:
            record_prev = next(
                (e.record_sha256 for e in reversed(entries) if e.record_id == record_id), GENESIS
            )
        entry = self.append_after(
            last.seq if last else 0,
            last.entry_sha256 if last else GENESIS,
            event=event,
            signer=signer,
            at=at,
            roster=roster,
            simulated=simulated,
            record_id=record_id,
            record_sha256=record_sha256,
            record_prev=record_prev,
            payload=payload,
            durable=durable,
        )
        entries.append(entry)
        return entry

    def append_after(
        self,
        seq: int,
        prev: str,
        *,
        event: LedgerEvent,
        signer: Signer,
        at: datetime,
        roster: Roster,
        simulated: bool = False,
        record_id: str = "",
        record_sha256: str = "",
        record_prev: str = "",
        payload: Mapping[str, Any] | None = None,
        durable: bool = True,
    ) -> LedgerEntry:
        """Append one signed event after the line `seq` whose hash is `prev` (0 and GENESIS for
        the first line); `record_prev` is the record's last hash (GENESIS for a new record).
        What `append` does, for a writer that knows the ledger's head without holding every
        entry (pipeline.records.index)."""
        entry = LedgerEntry.make(
            seq=seq + 1,
            event=event,
            signer=signer,
            at=at,
            prev=prev,
            record_id=record_id,
            record_sha256=record_sha256,
            record_prev=record_prev,
            payload=payload,
            simulated=simulated,
        )
        member = roster.get(entry.actor)
        if member is None or not _holds(signer, member.key_texts(), member.public_keys(), entry):
            raise GateRefused(
                f"{entry.actor}'s key is not the one the sealed roster holds for {entry.actor}; "
                "nothing was written",
                hint="Sign with your own key as the roster of record lists it (a key added to "
                "policy/roster.yaml counts once that policy change is applied).",
            )
        # Never through a symbolic link: the audit trail is appended to the ledger itself.
        fd = open_append(self.path, root=self.path.parent.parent)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(entry.to_line())
            handle.flush()
            if durable:
                os.fsync(handle.fileno())
        return entry

    def sync(self) -> None:
        """Make the lines appended with durable=False survive a crash."""
        fd = open_append(self.path, root=self.path.parent.parent)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


_AUDIT_HINT = "Run `dmarcops audit verify` to see what is wrong with the audit trail."
