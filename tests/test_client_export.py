"""`dmarcops records export` and `audit verify --export` (issue 12, item 3): one client's records,
nothing of any other client's, no internal note unless the MSA allows it, verifiable offline."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from signing import JCHEN, KEYS, MHARA, genesis, reseal
from test_records import cli, make_record

from pipeline.errors import EXIT_GATE, EXIT_INPUT
from pipeline.records import Outcome, RecordStore

START = datetime(2026, 7, 7, 9, 30, tzinfo=UTC)
NWH_NOTE = "NWH-ONLY internal: the CISO asked for a call"
CONTOSO_NOTE = "CONTOSO-ONLY internal: account under review"


@pytest.fixture
def store(tmp_path: Path) -> RecordStore:
    store = genesis(tmp_path / "repo")
    for n, (client, zone, note) in enumerate(
        [
            ("northwind-health", "nwh-patients.example", NWH_NOTE),
            ("contoso-retail", "contoso-retail.example", CONTOSO_NOTE),
            ("northwind-health", "nwh-patients.example", ""),
        ]
    ):
        at = START + timedelta(days=n)
        store.create(
            lambda rid, c=client, z=zone, i=note, a=at: make_record(
                rid, client=c, zone=z, internal_notes=i, executed_at=a
            ),
            at,
            JCHEN,
        )
    store.seal(
        "2026-0001",
        Outcome.ACCEPTED,
        START + timedelta(days=10),
        MHARA,
        without_evidence="no reports in this test",
    )
    return store


def _export(store: RecordStore, out: Path) -> str:
    result = cli(store.changes_dir.parent, "records", "export", "--client", "northwind-health",
                 "--out", str(out), "--key", str(KEYS / "mhara.pem"))  # fmt: skip
    assert result.exit_code == 0, result.output
    return result.stdout


def _verify(store: RecordStore, out: Path) -> tuple[int, str]:
    result = cli(store.changes_dir.parent, "audit", "verify", "--export", str(out))
    return result.exit_code, result.output


def test_the_export_holds_only_the_clients_records_and_no_notes(
    store: RecordStore, tmp_path: Path
) -> None:
    out = tmp_path / "nwh"
    said = _export(store, out)
    assert said.startswith("exported: 2 record(s) of northwind-health to ")
    assert "internal notes removed" in said
    assert sorted(p.name for p in (out / "records").iterdir()) == [
        "2026-0001.json", "2026-0001.md", "2026-0003.json", "2026-0003.md",
    ]  # fmt: skip
    everything = b"".join(p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file())
    for needle in (b"contoso", b"CONTOSO", NWH_NOTE.encode(), b"2026-0002"):
        assert needle not in everything, needle
    code, output = _verify(store, out)
    assert code == 0, output
    assert "ok: export" in output and "mhara: " in output and "jchen: " in output


@pytest.mark.parametrize(
    "tamper",
    ["edit a record", "edit a ledger line", "add a file", "remove a file", "forge the manifest"],
)
def test_a_tampered_export_is_named(store: RecordStore, tmp_path: Path, tamper: str) -> None:
    out = tmp_path / "nwh"
    _export(store, out)
    record = out / "records" / "2026-0001.json"
    if tamper == "edit a record":
        record.write_text(record.read_text().replace("99.3%", "99.9%"))
    elif tamper == "edit a ledger line":
        ledger = out / "ledger.jsonl"
        lines = ledger.read_text().splitlines()
        data = json.loads(lines[1])
        data["at"] = "2026-07-07T09:00:00Z"
        lines[1] = json.dumps(data, sort_keys=True, separators=(",", ":"))
        ledger.write_text("\n".join(lines) + "\n")
    elif tamper == "add a file":
        (out / "records" / "2026-0099.json").write_text("{}")
    elif tamper == "remove a file":
        (out / "records" / "2026-0003.md").unlink()
    else:
        manifest = out / "manifest.json"
        data = json.loads(manifest.read_text())
        data["client"] = "contoso-retail"
        manifest.write_text(json.dumps(data))
    code, output = _verify(store, out)
    assert code == EXIT_GATE, output
    assert "problem: " in output and "Traceback" not in output


def test_notes_are_exported_when_the_msa_says_so(store: RecordStore, tmp_path: Path) -> None:
    root = store.changes_dir.parent
    profile = root / "policy" / "clients" / "northwind-health.yaml"
    profile.write_text(profile.read_text() + "export_internal_notes: true\n")
    # An unsealed edit of the MSA setting changes nothing ...
    assert "internal notes removed" in _export(store, tmp_path / "before")
    reseal(root)  # ... a lead's seal does.
    out = tmp_path / "nwh"
    assert "internal notes kept" in _export(store, out)
    assert NWH_NOTE in (out / "records" / "2026-0001.json").read_text()
    code, output = _verify(store, out)
    assert code == 0, output  # kept notes: each record matches its signed ledger line


def test_bad_exports_are_refused_by_name(store: RecordStore, tmp_path: Path) -> None:
    root = store.changes_dir.parent
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "x").write_text("x")
    result = cli(root, "records", "export", "--client", "northwind-health", "--out", str(taken),
                 "--key", str(KEYS / "mhara.pem"))  # fmt: skip
    assert result.exit_code == EXIT_INPUT and "not empty" in result.output
    unknown = cli(root, "records", "export", "--client", "nobody", "--out", str(tmp_path / "n"),
                  "--key", str(KEYS / "mhara.pem"))  # fmt: skip
    assert unknown.exit_code == EXIT_INPUT and "no client 'nobody'" in unknown.output
    empty = tmp_path / "empty"
    empty.mkdir()
    code, output = _verify(store, empty)
    assert code == EXIT_GATE and "manifest.json" in output and "Traceback" not in output
