"""A client's own change records, as a bundle they can verify without the repository (issue 12,
item 3).

`export_client` writes, into a new directory:

- `records/<id>.json` and `records/<id>.md`: the client's records only, with the MSP's internal
  notes kept or removed per the client's MSA (`export_internal_notes` in policy/clients/);
- `ledger.jsonl`: the ledger lines about those records, as signed (and the policy lines they were
  signed under), so each line's hash and its actor's signature can be checked;
- `keys.json`: the public keys of every actor of those lines, as the roster of record held them;
- `manifest.json`: every file's SHA-256, each record's hash in the ledger, whether its notes were
  kept, and the ledger's head at export time (an anchor), signed by whoever exported it
  (`manifest.sig`).

`verify_export` checks all of that offline and returns the problems; it reports which keys signed,
so the client can compare their fingerprints with the ones the MSP published. A record whose notes
were removed cannot be matched to its ledger hash (the notes are part of it): for those the
exporter's signature over the manifest is the evidence, and the manifest says so.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from pipeline.errors import GateRefused, InputError
from pipeline.gate.identity import Signer, signature_holds, signing_bytes
from pipeline.gate.roster import Roster
from pipeline.load.files import read_bytes
from pipeline.records.ledger import LedgerEntry, LedgerEvent, split_lines
from pipeline.records.policy_seal import load_snapshot, roster_of_snapshot
from pipeline.records.record import canonical_bytes, format_utc
from pipeline.records.store import RecordStore, record_file_bytes

EXPORT_FORMAT = "dmarcops-client-export/1"
MANIFEST = "manifest.json"
SIGNATURE = "manifest.sig"


@dataclass(frozen=True)
class Exported:
    directory: Path
    records: tuple[str, ...]
    notes_kept: bool


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _keys_of(roster: Roster, actor: str) -> list[str]:
    member = roster.get(actor)
    return list(member.key_texts()) if member else []


def export_client(
    store: RecordStore,
    client: str,
    out: Path,
    *,
    notes_kept: bool,
    signer: Signer,
    at: datetime,
) -> Exported:
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise InputError(
            "the export directory exists and is not empty",
            file=out,
            hint="Name a new directory: an export is never written over another.",
        )
    entries = store.ledger.read()
    records = sorted((r for r in store.all() if r.client == client), key=lambda r: r.id)
    if not records:
        raise InputError(f"client {client!r} has no change records to export")
    wanted = {r.id for r in records}
    lines: list[LedgerEntry] = []
    keys: dict[str, set[str]] = {}
    roster: Roster | None = None
    for entry in entries:
        if entry.event is LedgerEvent.POLICY:
            roster = roster_of_snapshot(
                load_snapshot(store.changes_dir, str(entry.payload["policy_sha256"]))
            )
            lines.append(entry)  # the seals the other lines' keys come from
        elif entry.record_id in wanted:
            lines.append(entry)
        else:
            continue
        if roster is not None:
            keys.setdefault(entry.actor, set()).update(_keys_of(roster, entry.actor))
    files: dict[str, bytes] = {}
    manifest_records = []
    last_hash = {e.record_id: e.record_sha256 for e in lines if e.record_id}
    for record in records:
        # Only records as the ledger holds them are exported (and signed for): an edited file
        # is refused here, not handed to the client.
        if record.sha256() != last_hash.get(record.id):
            raise GateRefused(
                f"record {record.id} differs from what the ledger recorded; nothing was exported",
                file=store.json_path(record.id),
                hint="Run `dmarcops audit verify`.",
            )
        if notes_kept:
            body = record_file_bytes(record)
            markdown = record.render_markdown()
        else:
            body = (json.dumps(record.client_export(), indent=2, sort_keys=True,
                               ensure_ascii=False) + "\n").encode("utf-8")  # fmt: skip
            markdown = record.render_markdown(include_internal=False)
        files[f"records/{record.id}.json"] = body
        files[f"records/{record.id}.md"] = markdown.encode("utf-8")
        manifest_records.append(
            {
                "id": record.id,
                "ledger_record_sha256": last_hash.get(record.id, ""),
                "notes": "kept" if notes_kept else "removed",
            }
        )
    files["ledger.jsonl"] = "".join(e.to_line() for e in lines).encode("utf-8")
    files["keys.json"] = (
        json.dumps({a: sorted(k) for a, k in sorted(keys.items())}, indent=2) + "\n"
    ).encode("utf-8")
    head = entries[-1]
    manifest = {
        "format": EXPORT_FORMAT,
        "client": client,
        "exported_at": format_utc(at),
        "exported_by": signer.analyst,
        "ledger_head": {"seq": head.seq, "entry_sha256": head.entry_sha256},
        "records": manifest_records,
        "files": {name: _sha(data) for name, data in sorted(files.items())},
    }
    files[MANIFEST] = (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode("utf-8")
    files[SIGNATURE] = (signer.sign(signing_bytes(manifest)) + "\n").encode("utf-8")
    (out / "records").mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        path = out / name
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
    return Exported(out, tuple(sorted(wanted)), notes_kept)


def _read(directory: Path, name: str, problems: list[str]) -> bytes | None:
    try:
        return read_bytes(directory / name, root=directory, outside_ok=True, log=True)
    except InputError as exc:
        problems.append(f"{name}: {exc.message}")
        return None


def verify_export(directory: Path) -> tuple[list[str], dict[str, list[str]]]:
    """(problems, the keys each signer used) for an export written by `export_client`."""
    problems: list[str] = []
    raw_manifest = _read(directory, MANIFEST, problems)
    raw_signature = _read(directory, SIGNATURE, problems)
    if raw_manifest is None or raw_signature is None:
        return problems, {}
    try:
        manifest = json.loads(raw_manifest)
        keys = json.loads(_read(directory, "keys.json", problems) or b"{}")
    except (ValueError, RecursionError) as exc:
        return [*problems, f"manifest or keys: not JSON ({exc})"], {}
    if not isinstance(manifest, dict) or manifest.get("format") != EXPORT_FORMAT:
        return [*problems, f"{MANIFEST}: not a {EXPORT_FORMAT} manifest"], {}
    if not isinstance(keys, dict):
        return [*problems, "keys.json: not a map of actors to keys"], {}

    def holds(actor: str, payload: bytes, signature: str) -> bool:
        texts = keys.get(actor)
        if not isinstance(texts, list):
            return False
        public = []
        for text in texts:
            try:
                public.append(Ed25519PublicKey.from_public_bytes(base64.b64decode(text)))
            except (ValueError, TypeError):
                continue
        return signature_holds(public, payload, signature)

    exporter = str(manifest.get("exported_by", ""))
    if not holds(
        exporter, signing_bytes(manifest), raw_signature.decode("ascii", "replace").strip()
    ):
        problems.append(f"{SIGNATURE}: the manifest is not signed by {exporter}'s key in keys.json")
    listed = manifest.get("files")
    if not isinstance(listed, dict):
        return [*problems, f"{MANIFEST}: no file list"], {}
    present = {
        str(p.relative_to(directory).as_posix())
        for p in directory.rglob("*")
        if p.is_file() or p.is_symlink()
    } - {MANIFEST, SIGNATURE}
    for name in sorted(present - set(listed)):
        problems.append(f"{name}: not in the manifest (added)")
    for name, digest in sorted(listed.items()):
        data = _read(directory, name, problems) if name in present else None
        if data is None:
            if name not in present:
                problems.append(f"{name}: in the manifest but missing")
            continue
        if _sha(data) != digest:
            problems.append(f"{name}: differs from the manifest (edited)")
    client = manifest.get("client")
    ledger_hash: dict[str, str] = {}
    raw_ledger = _read(directory, "ledger.jsonl", problems) or b""
    for number, line in enumerate(split_lines(raw_ledger.decode("utf-8", "replace")), 1):
        try:
            entry = LedgerEntry.from_line(line)
        except ValueError as exc:
            problems.append(f"ledger.jsonl line {number}: {exc}")
            continue
        if entry.computed_sha256() != entry.entry_sha256:
            problems.append(f"ledger.jsonl line {number}: edited (its hash does not match)")
        if not holds(entry.actor, entry.head(), entry.signature):
            problems.append(f"ledger.jsonl line {number}: not signed by {entry.actor}'s key")
        if entry.record_id:
            ledger_hash[entry.record_id] = entry.record_sha256
    listed_records = manifest.get("records", [])
    if not isinstance(listed_records, list):
        return [*problems, f"{MANIFEST}: records is not a list"], {}
    for item in listed_records:
        rid = str(item.get("id", "")) if isinstance(item, dict) else ""
        data = _read(directory, f"records/{rid}.json", problems)
        if data is None:
            continue
        try:
            record = json.loads(data)
        except (ValueError, RecursionError):
            problems.append(f"records/{rid}.json: not JSON")
            continue
        if not isinstance(record, dict) or record.get("client") != client:
            problems.append(f"records/{rid}.json: not a record of client {client}")
            continue
        if item.get("notes") == "kept":
            if _sha(canonical_bytes(record)) != ledger_hash.get(rid):
                problems.append(f"records/{rid}.json: does not match its ledger line")
        elif "internal_notes" in record:
            problems.append(f"records/{rid}.json: says its notes were removed, yet holds them")
    used = {a: v for a, v in keys.items() if isinstance(v, list)}
    return problems, used
