"""The policy that judges a change: the one sealed in the ledger, never the one the change edits.

Seed: policy changes are changes (high risk, approved by a lead). So every gating command (plan,
approve, requests check, apply, rollback, the GitHub runs) loads the portfolio and the roster
through this module: policy/ as the last `policy` event of the ledger sealed it. Edits under
policy/ that are not sealed yet are *pending*: `plan` lists them as items of kind "policy" (high
risk, needing a lead) and they change nothing until a lead seals them (`dmarcops policy seal`).

Who may seal: the genesis (`dmarcops init`) is signed by a lead of the roster it seals; every
later seal by a lead of the roster sealed before it. A `policy` line that does not meet that is not
policy of record: the commands refuse (exit 2) and `audit verify` names the line. A line appended by
hand, signed with an analyst's own key, therefore cannot swap the rules.

Before `dmarcops init` there is no policy of record: the working tree's policy/ is used, and the
plan says so (a repository in that state has no trustworthy audit trail; `audit verify` fails).
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, replace
from pathlib import Path

from pipeline.errors import GateRefused, InputError
from pipeline.gate.identity import signature_holds
from pipeline.gate.roster import Roster, load_roster
from pipeline.load.files import exists
from pipeline.load.portfolio import Portfolio, load_portfolio
from pipeline.records.index import index_of
from pipeline.records.index_ledger import ledger_view
from pipeline.records.ledger import LEDGER_NAME, Ledger, LedgerEntry, LedgerEvent
from pipeline.records.policy_seal import (
    PolicySnapshot,
    current_snapshot,
    load_snapshot,
    materialize,
    roster_of_snapshot,
)


def _sha(text: str | None) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest() if text is not None else ""


# The genesis's entry_sha256, pinned where the analyst cannot edit it (a protected CI
# environment variable, the auditor's notes): a ledger rebuilt from scratch, or a genesis copied
# from another repository, is then refused. `dmarcops init` prints the value to pin.
GENESIS_PIN = "DMARCOPS_GENESIS"


class PolicyNotOfRecord(GateRefused):
    """A `policy` line of the ledger is not signed by a lead the roster before it trusts. Exit 2."""


@dataclass(frozen=True)
class PolicyOfRecord:
    sealed: PolicySnapshot | None  # None before `dmarcops init`
    working: PolicySnapshot

    @property
    def sha256(self) -> str:
        return self.sealed.sha256 if self.sealed is not None else ""

    @property
    def pending(self) -> list[str]:
        """Files under policy/ edited since the seal (added, changed, removed)."""
        return self.sealed.changed_files(self.working) if self.sealed is not None else []

    def pending_files(self) -> tuple[tuple[str, str, str], ...]:
        """(path, sealed SHA-256, working SHA-256) of each pending file; "" for absent."""
        if self.sealed is None:
            return ()
        return tuple(
            (path, _sha(self.sealed.files.get(path)), _sha(self.working.files.get(path)))
            for path in self.pending
        )

    def stamp(self, portfolio: Portfolio) -> Portfolio:
        """The portfolio marked with the seal that judges it and the edits still pending."""
        return replace(portfolio, policy_sha256=self.sha256, pending_policy=self.pending_files())

    def root(self, repo: Path) -> Path:
        """Where to read policy/ from: the sealed copy when the working tree differs."""
        return materialize(self.sealed) if self.sealed is not None and self.pending else repo


def seal_problem(
    changes_dir: Path, entries: list[LedgerEntry], index: int, roster: Roster | None
) -> str | None:
    """Why the policy line `entries[index]` is not policy of record (None: it is).

    `roster` is the one sealed before it (None for the genesis, which must be the first line and
    signed by a lead of the roster it seals).
    """
    entry = entries[index]
    digest = entry.payload.get("policy_sha256")
    if not isinstance(digest, str):
        return f"ledger line {entry.seq}: a policy seal without its hash"
    try:
        snapshot = load_snapshot(changes_dir, digest)
    except ValueError as exc:
        return f"ledger line {entry.seq}: {exc}"
    if roster is None:
        if index != 0:
            return f"ledger line {entry.seq}: the genesis policy seal must be the first line"
        try:
            roster = roster_of_snapshot(snapshot)
        except InputError as exc:
            return f"ledger line {entry.seq}: the roster it seals: {exc.message}"
    member = roster.get(entry.actor)
    if member is None or not member.is_lead:
        return (
            f"ledger line {entry.seq}: policy sealed by {entry.actor}, who is not a lead on the "
            "roster of record (only a lead seals policy)"
        )
    if not signature_holds(member.public_keys(), entry.head(), entry.signature):
        return f"ledger line {entry.seq}: the policy seal is not signed by {entry.actor}'s key"
    return None


def sealed_policy(
    changes_dir: Path, entries: list[LedgerEntry]
) -> tuple[PolicySnapshot, Roster] | None:
    """The last policy sealed in `entries` and its roster, each seal checked to be a lead's of
    the roster before it (the one walk every reader of the sealed policy goes through: the
    commands, the store's writers). None before `dmarcops init`."""
    pin = os.environ.get(GENESIS_PIN, "").strip()
    if pin and (not entries or entries[0].entry_sha256 != pin):
        raise PolicyNotOfRecord(
            "the ledger does not begin with this repository's pinned genesis "
            f"({GENESIS_PIN}={pin[:16]}...): it was removed, replaced or copied from elsewhere",
            file=changes_dir / LEDGER_NAME,
            hint="Restore changes/ledger.jsonl and changes/policy/ from the repository's history; "
            "nothing is judged by a policy of record that is not the pinned one.",
        )
    found: tuple[PolicySnapshot, Roster] | None = None
    previous = -1
    for index, entry in enumerate(entries):
        if entry.event is not LedgerEvent.POLICY:
            continue
        # The ledger numbers its lines in order: a seal numbered at or below one before it is a
        # genuine earlier seal copied to the end, which would make an older policy (a looser
        # gate, a revoked lead) the policy of record again without any lead sealing it.
        if entry.seq <= previous:
            raise PolicyNotOfRecord(
                f"a policy seal numbered {entry.seq} stands after the seal numbered {previous}: "
                "a copy of an earlier seal, which cannot make that policy the policy of record "
                "again",
                file=changes_dir / LEDGER_NAME,
                hint="Run `dmarcops audit verify` (it names the line) and restore "
                "changes/ledger.jsonl from the repository's history; a lead seals the policy to "
                "go back to with `dmarcops policy seal`.",
            )
        problem = seal_problem(changes_dir, entries, index, found[1] if found else None)
        previous = entry.seq
        if problem is not None:
            raise PolicyNotOfRecord(
                problem,
                file=changes_dir / LEDGER_NAME,
                line=entry.seq,
                hint="Run `dmarcops audit verify`. Policy is sealed only by a lead "
                "(`dmarcops init`, `dmarcops policy seal`).",
            )
        snapshot = load_snapshot(changes_dir, str(entry.payload["policy_sha256"]))
        found = (snapshot, roster_of_snapshot(snapshot))
    return found


def policy_of_record(repo: Path, *, required: bool = True) -> PolicyOfRecord:
    """The sealed policy and the working tree's; refused when a seal is not a lead's, and, when
    `required` (every gating command), when there is none: a repository without a ledger is
    either new (a lead runs `dmarcops init`) or one whose audit trail was removed, and in neither
    may the working tree's policy/ judge a change."""
    changes = repo / "changes"
    ledger = Ledger(changes / LEDGER_NAME)
    entries: list[LedgerEntry] = []
    if exists(ledger.path):
        # The first line and the policy lines, from the index (pipeline.records.index): the
        # ledger's bytes are hashed, not every line parsed, so a plan does not read the history.
        with index_of(repo) as conn:
            entries = ledger_view(ledger, conn).policy_entries()
    found = sealed_policy(changes, entries)
    if found is None and required:
        raise PolicyNotOfRecord(
            "no policy of record: changes/ledger.jsonl has no genesis (missing or empty)",
            file=ledger.path,
            hint="In a new repository a lead runs `dmarcops init --key KEY`. In one that had a "
            "ledger, restore it from the repository's history: the audit trail was removed.",
        )
    return PolicyOfRecord(found[0] if found else None, current_snapshot(repo))


def portfolio_of_record(repo: Path) -> Portfolio:
    """The portfolio every gate decision uses: zones as they are, policy as sealed."""
    record = policy_of_record(repo)
    # The working tree's policy/ must load too: an edit that does not is refused by name now,
    # not when a lead comes to seal it (and a hostile one is never imported: load checks first).
    portfolio = load_portfolio(repo)
    if record.pending:
        portfolio = load_portfolio(repo, policy_root=record.root(repo))
    return record.stamp(portfolio)


def roster_of_record(repo: Path, record: PolicyOfRecord | None = None) -> Roster:
    """The roster every signature is checked against: as sealed (the working file before init).
    `record`: the policy of record already read (it reads and hashes every file under policy/)."""
    record = record if record is not None else policy_of_record(repo)
    roster = load_roster(repo)  # the working file must load too (two people, one key: refused)
    return load_roster(record.root(repo)) if record.pending else roster
