"""`dmarcops audit verify|anchor|attest|sample|quarter`: the audit trail's commands (exit codes:
docs/exit-codes.md)."""

from __future__ import annotations

import json
import sys
from dataclasses import replace
from pathlib import Path

import click

from pipeline.commands.common import key_option, reports_errors, signer_for
from pipeline.commands.record_common import (
    _at_option,
    _now,
    _sandbox_clients,
    _store,
)
from pipeline.errors import EXIT_GATE, InputError
from pipeline.load.files import write_output
from pipeline.records.policy_of_record import GENESIS_PIN
from pipeline.records.record import (
    plain,
)
from pipeline.records.store import audit, make_anchor, parse_anchor

# --- audit verify -------------------------------------------------------------------------------


@click.group("audit")
def audit_group() -> None:
    """Check the audit trail (changes/ledger.jsonl and changes/records/)."""


@audit_group.command("quarter")
@click.argument("quarter", metavar="YYYYQN")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["markdown", "json"]),
    default="markdown",
    show_default=True,
)
@_at_option
@reports_errors
def quarter_command(quarter: str, fmt: str, at: str | None) -> None:
    """The quarterly review: every place the policy was bent in QUARTER (emergencies and their
    verdicts, forced closes, freeze exceptions, rollbacks, recovered applies), counts per client,
    analyst, risk and type, open outcomes, overdue reviews, and the policy follow-ups the reviews
    named. Read from the change records; run `dmarcops audit verify` first.

    \b
    Examples:
      dmarcops audit quarter 2026Q3
      dmarcops audit quarter 2026Q3 --format json > review-2026Q3.json
    """
    from pipeline.records.quarter import Quarter, quarter_report
    from pipeline.render.quarter import render_quarter

    report = quarter_report(_store().all(), Quarter.parse(quarter), _now(at))
    if fmt == "json":
        click.echo(json.dumps(report.to_json(), indent=2, ensure_ascii=False))
    else:
        click.echo(render_quarter(report), nl=False)


@audit_group.command("sample")
@click.option("--n", "count", type=click.IntRange(min=1), default=10, show_default=True)
@click.option("--seed", required=True, help="Any text; the same seed picks the same records.")
@click.option("--quarter", metavar="YYYYQN", help="Only records executed in this quarter.")
@reports_errors
def sample_command(count: int, seed: str, quarter: str | None) -> None:
    """Pick records for a spot check, reproducibly: sealed records, weighted towards high risk
    (4) over medium (2) and low (1), an emergency three times its risk's weight. The same seed and
    the same records give the same picks (pipeline/records/sample.py documents the draw).

    \b
    Example:
      dmarcops audit sample --n 10 --seed 2026Q3-audit --quarter 2026Q3
    """
    from pipeline.records.quarter import Quarter
    from pipeline.records.sample import pick

    records = [r for r in _store().all() if r.sealed]
    if quarter is not None:
        period = Quarter.parse(quarter)
        records = [r for r in records if period.holds(r)]
    picked = pick(records, count, seed)
    click.echo(f"sample {plain(seed)!r}: {len(picked)} of {len(records)} sealed record(s)")
    for p in picked:
        r = p.record
        emergency = ", emergency" if r.emergency else ""
        click.echo(
            f"  {r.id}  {plain(r.client)}  {r.risk.label}{emergency}  weight {p.weight}  "
            f"executed by {plain(r.executed_by) or '-'}"
        )


@audit_group.command("attest")
@click.argument("record_id", metavar="ID")
@key_option("Your private key: the finding is yours because you sign it.")
@click.option("--verdict", required=True, type=click.Choice(["ok", "finding"]))
@click.option("--notes", required=True, metavar="TEXT", help="What was checked and found.")
@click.option("--sample", "sample_seed", default="", metavar="SEED", help="The sample's seed.")
@reports_errors
def attest_command(
    record_id: str, key_file: Path, verdict: str, notes: str, sample_seed: str
) -> None:
    """Record your signed spot-check finding about a record into the ledger. It binds the
    record's current content: `audit verify` names the record if it differs later.

    \b
    Example:
      dmarcops audit attest 2026-0007 --key ~/.config/dmarcops/auditor.pem --verdict ok \\
          --notes "Approvals, window and verification match the plan" --sample 2026Q3-audit
    """
    from pipeline.clock import system_now

    store = _store()
    signer = signer_for(store.changes_dir.parent, key_file)
    entry = store.attest(record_id, verdict, notes, system_now(), signer, sample=sample_seed)
    click.echo(
        f"attested: {record_id} {verdict} by {signer.analyst} "
        f"(ledger line {entry.seq}, record {str(entry.payload['record_sha256'])[:16]})"
    )


@audit_group.command("anchor")
@click.option(
    "--out",
    "out",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    metavar="FILE",
    help="Where to write the anchor: keep it outside the repository.",
)
@reports_errors
def anchor_command(out: Path) -> None:
    """Write the ledger's anchor (every line's seq, record and hash) to FILE. Kept outside the
    repository, it lets `dmarcops audit verify --anchor FILE` prove later that no line was removed
    or rewritten since (a truncated ledger, a re-hashed chain).

    \b
    Example:
      dmarcops audit anchor --out ~/dmarcops-anchors/2026-12-01.json
    """
    anchor = make_anchor(_store().changes_dir)
    write_output(out, json.dumps(anchor, indent=1) + "\n", what="anchor")
    click.echo(f"anchored: ledger line {anchor['seq']}, head {anchor['head']} -> {out}")


def _read_anchor(path: Path) -> list[tuple[int, str, str]]:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read the anchor: {exc.strerror}", file=path) from None
    try:
        return parse_anchor(json.loads(raw.decode("utf-8")))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError, ValueError) as exc:
        raise InputError(
            f"not a ledger anchor: {exc}",
            file=path,
            hint="Pass a file `dmarcops audit anchor --out FILE` wrote.",
        ) from None


@audit_group.command("verify")
@_at_option
@click.option(
    "--anchor",
    "anchor_file",
    type=click.Path(dir_okay=False, path_type=Path),
    metavar="FILE",
    help="An anchor from `dmarcops audit anchor`: no anchored line may be gone or rewritten.",
)
@click.option(
    "--genesis",
    envvar=GENESIS_PIN,
    metavar="SHA256",
    help="The genesis `dmarcops init` printed: the ledger must begin with exactly it "
    f"(env {GENESIS_PIN}).",
)
@click.option(
    "--archive",
    "archive_url",
    metavar="s3://BUCKET/PREFIX",
    help="Also compare the repository with the WORM archive and name every difference.",
)
@click.option(
    "--export",
    "export_dir",
    type=click.Path(file_okay=False, path_type=Path),
    metavar="DIR",
    help="Verify a client export (`dmarcops records export`) instead of the repository.",
)
@reports_errors
def verify_command(
    at: str | None,
    anchor_file: Path | None,
    genesis: str | None,
    archive_url: str | None,
    export_dir: Path | None,
) -> None:
    """Verify the hash chain, every record against its last ledger event, gap-free numbering and
    overdue emergency reviews. Prints each problem with the record it concerns; exit 2 if any.

    \b
    Example:
      dmarcops audit verify
    """
    if export_dir is not None:
        _verify_export(export_dir)
        return
    store = _store()
    anchor = _read_anchor(anchor_file) if anchor_file is not None else None
    report = audit(
        store.changes_dir,
        _now(at),
        sandbox_clients=_sandbox_clients(store),
        anchor=anchor,
        genesis=(genesis or "").strip() or None,
    )
    if archive_url is not None:
        from pipeline.records.archive import ArchiveUrl, verify_archive
        from pipeline.records.store import AuditProblem

        differences = verify_archive(store, ArchiveUrl.parse(archive_url))
        report = replace(
            report,
            problems=(
                *report.problems,
                *(AuditProblem("", f"archive: {d}") for d in differences),
            ),
        )
    if report.ok:
        click.echo(
            f"ok: {report.records} records, {report.entries} ledger entries, chain intact\n"
            f"chain head: {report.head}"
        )
        return
    for problem in report.problems:
        click.echo(click.style("problem: ", fg="red", bold=True) + plain(str(problem)))
    click.echo(
        click.style("refused: ", fg="red", bold=True)
        + f"{len(report.problems)} problem(s) in the audit trail",
        err=True,
    )
    sys.exit(EXIT_GATE)


def _verify_export(directory: Path) -> None:
    from pipeline.records.export import verify_export

    if not directory.is_dir():
        raise InputError("not a directory", file=directory, hint="Pass the export's directory.")
    problems, keys = verify_export(directory)
    if not problems:
        click.echo(f"ok: export {directory} verifies; signed with these keys (compare them with "
                   "the ones your MSP published):")  # fmt: skip
        for actor, texts in sorted(keys.items()):
            click.echo(f"  {plain(actor)}: {', '.join(plain(t) for t in texts)}")
        return
    for problem in problems:
        click.echo(click.style("problem: ", fg="red", bold=True) + plain(problem))
    click.echo(
        click.style("refused: ", fg="red", bold=True) + f"{len(problems)} problem(s) in the export",
        err=True,
    )
    sys.exit(EXIT_GATE)
