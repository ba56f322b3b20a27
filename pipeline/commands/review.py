"""`dmarcops review|reviews|close|init|policy`: the commands that sign a record's review or close,
and seal the policy of record (exit codes: docs/exit-codes.md)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from pipeline.commands.common import key_option, reports_errors, signer_for
from pipeline.commands.record_common import (
    _at_option,
    _mutating_now,
    _now,
    _store,
)
from pipeline.errors import EXIT_GATE, EXIT_INPUT, GateRefused, InputError
from pipeline.gate.roster import load_roster
from pipeline.load.portfolio import load_portfolio
from pipeline.records.policy_of_record import GENESIS_PIN, policy_of_record, portfolio_of_record
from pipeline.records.record import (
    REVIEW_VERDICTS,
    Outcome,
    plain,
    show_utc,
)

# --- emergency reviews --------------------------------------------------------------------------


@click.command("review")
@click.argument("record_id", metavar="ID")
@key_option("Your private key: the review is yours because you sign it.")
@click.option(
    "--by",
    "by",
    metavar="ANALYST",
    help="Your roster id (optional: the reviewer is the owner of --key; if given, it must match).",
)
@click.option(
    "--verdict",
    required=True,
    type=click.Choice(REVIEW_VERDICTS),
    help="Was the emergency justified? not-justified needs --follow-up.",
)
@click.option(
    "--follow-up",
    "follow_up",
    default="",
    metavar="REF",
    help="The policy follow-up (ticket, policy change) a not-justified emergency leads to.",
)
@click.option("--notes", required=True, metavar="TEXT", help="What the review found.")
@_at_option
@reports_errors
def review_command(
    record_id: str,
    key_file: Path,
    by: str | None,
    verdict: str,
    follow_up: str,
    notes: str,
    at: str | None,
) -> None:
    """Record the post-hoc review of an emergency change (due within 24 hours of it; a later one
    is recorded as late) with its verdict. The reviewer cannot be the analyst who proposed or
    executed it.

    \b
    Examples:
      dmarcops review 2026-0007 --key ~/.config/dmarcops/mhara.pem --verdict justified \\
          --notes "Rollback justified: bounces at Outlook."
      dmarcops review 2026-0008 --key ~/.config/dmarcops/mhara.pem --verdict not-justified \\
          --follow-up POL-12 --notes "Could have waited for the window."
    """
    when = _mutating_now(at, "review", record_id)
    store = _store()
    signer = signer_for(store.changes_dir.parent, key_file, by)
    record = store.review(
        record_id,
        signer,
        notes,
        when.now,
        simulated=when.simulated,
        verdict=verdict,
        follow_up=follow_up,
    )
    emergency = record.emergency
    assert emergency is not None and emergency.reviewed_at is not None
    late = " (late: after the review was due)" if emergency.late else ""
    click.echo(
        f"reviewed: {record.id} {verdict} by {signer.analyst} "
        f"{show_utc(emergency.reviewed_at)}{late}"
    )


@click.group("reviews")
def reviews_group() -> None:
    """Post-hoc reviews of emergency changes."""


@reviews_group.command("overdue")
@_at_option
@reports_errors
def overdue_command(at: str | None) -> None:
    """List emergency changes whose post-hoc review is past due and not recorded. Exit 1 when
    any is (a scheduled job or a monitor can alert on it), 0 when none.

    \b
    Example:
      dmarcops reviews overdue
    """
    now = _now(at)
    records = _store().overdue_reviews(now)
    if not records:
        click.echo("no overdue emergency reviews")
        return
    for record in records:
        assert record.emergency is not None
        hours = (now - record.emergency.review_due).total_seconds() / 3600
        click.echo(
            f"{record.id}  {plain(record.client)}  {plain(','.join(record.zones))}  "
            f"review due {show_utc(record.emergency.review_due)} ({hours:.0f} h overdue)  "
            f"executed by {plain(record.executed_by) or '-'}"
        )
    sys.exit(EXIT_INPUT)  # issue 9: an overdue review is a finding, not a listing


# --- close and seal -----------------------------------------------------------------------------


@click.command("close")
@click.argument("record_id", metavar="ID")
@click.option(
    "--outcome",
    required=True,
    type=click.Choice([o.value for o in Outcome]),
    help="What happened to the change.",
)
@key_option("Your private key: who closes the record is its owner.")
@click.option(
    "--by",
    "by",
    metavar="ANALYST",
    help="Your roster id (optional: checked against the owner of --key).",
)
@click.option(
    "--force",
    is_flag=True,
    help="Close before the rollback window has ended; the record says it was forced.",
)
@click.option(
    "--without-evidence",
    "without_evidence",
    metavar="REASON",
    default="",
    help="Close as accepted although the aggregate reports do not show it (no post-change "
    "reports, an anomaly): why. Signed by you; the quarterly review lists it.",
)
@click.option(
    "--store",
    "report_store",
    type=click.Path(dir_okay=False, path_type=Path),
    help="The report store the verification reads (default: .dmarcops/reports.sqlite).",
)
@_at_option
@reports_errors
def close_command(
    record_id: str,
    outcome: str,
    key_file: Path,
    by: str | None,
    force: bool,
    without_evidence: str,
    report_store: Path | None,
    at: str | None,
) -> None:
    """Log the outcome of a change and seal its record: it is never edited again; a follow-up is
    a new record that references it. Refused (exit 2) before the rollback window has ended unless
    --force, and for an emergency change whose post-hoc review is not recorded.

    Never accepted on silence: the reports received since the change are compared with the
    baseline before it (`dmarcops reports verify`) and the comparison is sealed into the record
    by hash. `--outcome accepted` is refused (exit 2) unless it says accepted, or you give
    --without-evidence REASON.

    \b
    Example:
      dmarcops close 2026-0001 --outcome accepted --key ~/.config/dmarcops/jchen.pem
      dmarcops close 2026-0002 --outcome accepted --without-evidence "client's rua mailbox \
        was down all week; checked delivery with the client" --key ~/.config/dmarcops/jchen.pem
    """
    from pipeline.apply.verify_reports import ReportSource, check_record, seal_evidence
    from pipeline.reports.store import DEFAULT_STORE

    when = _mutating_now(at, "close", record_id)
    store = _store()
    repo = store.changes_dir.parent
    signer = signer_for(repo, key_file, by)
    current = store.get(record_id)
    verification = None
    written: Path | None = None
    # A manual change is verified by its signed checklist, not by reports (RecordStore.seal).
    if current.executed_at is not None and not current.sealed and current.manual is None:
        policy = portfolio_of_record(repo).gate.report_verification
        with ReportSource.open(report_store or repo / DEFAULT_STORE) as source:
            check = check_record(current, source, policy, when.now)
        evidence_dir = repo / "changes" / "evidence"
        had_dir = evidence_dir.is_dir()
        existed = set(evidence_dir.glob("verification-*.json"))
        verification = seal_evidence(repo, check)
        path = repo / verification.file
        written = None if path in existed else path
    try:
        record = store.seal(
            record_id,
            Outcome(outcome),
            when.now,
            signer,
            forced=force,
            simulated=when.simulated,
            verification=verification,
            without_evidence=without_evidence,
        )
    except BaseException:
        if written is not None:  # a refused close leaves nothing behind
            written.unlink(missing_ok=True)
            if not had_dir:
                written.parent.rmdir()
        raise
    assert record.closed_at is not None
    forced = " (forced: before the rollback window ended)" if record.closed_forced else ""
    click.echo(
        f"sealed: {record.id} {outcome} {show_utc(record.closed_at)} by {signer.analyst}{forced}"
    )
    if record.report_verification is not None:
        click.echo(f"  report evidence: {plain(record.report_verification.show())}")
        click.echo(f"    {plain(record.report_verification.summary)}")
        click.echo(f"    sealed: {record.report_verification.file}")
    if record.closed_without_evidence:
        click.echo(
            f"  closed without report evidence: {plain(record.closed_without_evidence)} "
            "(listed by `dmarcops audit quarter`)"
        )


@click.command("init")
@key_option("A lead's private key: the genesis is signed by a lead of the roster it seals.")
@reports_errors
def init_command(key_file: Path) -> None:
    """Seal the policy of record: every file under policy/ (roster included) as it is now becomes
    the first, signed line of the ledger. From then on, a change is judged by the sealed policy,
    signatures are checked against the sealed roster, and an edit under policy/ is a change of
    its own (planned, approved by a lead, applied). Run once, by a lead, in a new repository.

    \b
    Example:
      dmarcops init --key ~/.config/dmarcops/mhara.pem
    """
    from pipeline.clock import system_now
    from pipeline.gate.identity import load_signer
    from pipeline.records.policy_seal import current_snapshot

    store = _store()
    repo = store.changes_dir.parent
    pin = os.environ.get(GENESIS_PIN, "").strip()
    if pin:
        raise GateRefused(
            f"this repository's genesis is pinned ({GENESIS_PIN}={pin[:16]}...): it already had "
            "a ledger, and a new one would not be it",
            hint="Restore changes/ledger.jsonl and changes/policy/ from the repository's history.",
        )
    snapshot = current_snapshot(repo)
    load_portfolio(repo)  # a policy that does not load is not sealed
    signer = load_signer(key_file, load_roster(repo))
    entry = store.seal_policy(snapshot, system_now(), signer, genesis=True)
    click.echo(
        f"sealed: policy {entry.payload['policy_sha256'][:16]} ({len(snapshot.files)} files) as "
        f"the genesis of the ledger, signed by {signer.analyst}"
    )
    click.echo(
        f"genesis: {entry.entry_sha256}\n  Pin it where analysts cannot edit it: "
        f"{GENESIS_PIN} in the protected CI environment, and in your auditor's notes "
        f"(`dmarcops audit verify --genesis ...`)."
    )


@click.group("policy")
def policy_group() -> None:
    """The policy of record: what is sealed, what waits for a lead's seal."""


@policy_group.command("status")
@reports_errors
def policy_status_command() -> None:
    """Show the sealed policy and the files under policy/ edited since (pending: they judge
    nothing until a lead seals them). Exit 0 when nothing is pending, 2 when edits wait.

    \b
    Example:
      dmarcops policy status
    """
    record = policy_of_record(_store().changes_dir.parent, required=False)
    if record.sealed is None:
        click.echo("no policy of record: a lead runs `dmarcops init --key KEY` to seal policy/")
        sys.exit(EXIT_GATE)
    click.echo(f"policy of record: {record.sha256[:16]} ({len(record.sealed.files)} files)")
    pending = record.pending
    for path in pending:
        click.echo(f"  pending: {plain(path)}")
    if pending:
        click.echo(f"{len(pending)} file(s) edited since the seal; a lead seals them with "
                   "`dmarcops policy seal --key KEY`")  # fmt: skip
        sys.exit(EXIT_GATE)
    click.echo("policy/ is as sealed")


@policy_group.command("seal")
@key_option("A lead's private key: only a lead seals a policy change.")
@reports_errors
def policy_seal_command(key_file: Path) -> None:
    """Seal the edits under policy/ as the new policy of record, after reviewing them (`dmarcops
    plan` lists them as high-risk items of kind policy). Signed by a lead of the roster of record;
    from then on every change is judged by it. Refused when nothing is pending or the edited
    policy does not load.

    \b
    Example:
      dmarcops policy seal --key ~/.config/dmarcops/mhara.pem
    """
    from pipeline.clock import system_now

    store = _store()
    repo = store.changes_dir.parent
    record = policy_of_record(repo, required=False)
    if record.sealed is None:
        raise GateRefused(
            "no policy of record yet", hint="A lead runs `dmarcops init --key KEY` first."
        )
    if not record.pending:
        raise InputError("nothing to seal: policy/ is as sealed")
    load_portfolio(repo)  # the edited policy must load before it can judge anything
    load_roster(repo)  # pipeline.gate.roster
    signer = signer_for(repo, key_file)
    entry = store.seal_policy(record.working, system_now(), signer)
    click.echo(
        f"sealed: policy {entry.payload['policy_sha256'][:16]} by {signer.analyst}; "
        f"{len(record.pending)} file(s) changed: {', '.join(plain(p) for p in record.pending)}"
    )
