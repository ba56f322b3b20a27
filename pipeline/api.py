"""dmarcops as a library: load a portfolio, validate it, plan, classify, render, verify the audit
trail, with typed results and no command line (docs/api.md).

The `dmarcops` commands `plan` and `validate` are thin layers over `plan()` and `validate()` here,
so an ITSM integration or a notebook gets the same results the CLI prints. Nothing here prints or
exits: bad input raises `pipeline.errors.InputError` (file, line, what to do), a gate's refusal is
data in the result (`PlanReport.refusals`), and progress and per-zone problems reach the caller
through optional callbacks.

    >>> from dmarcops import api
    >>> report = api.plan("path/to/repo", at=datetime(2026, 11, 28, tzinfo=UTC))
    >>> [(i.zone, i.name, i.type, i.risk.label) for i in report.items]
    >>> print(api.render(report, "markdown"))
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pipeline.errors import GateRefused, InputError
from pipeline.load.portfolio import Portfolio
from pipeline.model import Finding, RiskLevel, Severity
from pipeline.plan.changes import ChangedZones
from pipeline.plan.items import ItemKey, Plan, PlanItem, RequestRef, ZoneResult

if TYPE_CHECKING:
    from pipeline.records.audit import AuditReport
    from pipeline.records.audit_files import AuditProblem

__all__ = [
    "AuditProblem",
    "AuditReport",
    "ChangedZones",
    "Classification",
    "Finding",
    "InputError",
    "Plan",
    "PlanItem",
    "PlanReport",
    "Portfolio",
    "RiskLevel",
    "Severity",
    "ValidationFinding",
    "ValidationReport",
    "ZoneResult",
    "changed_zones",
    "classify",
    "load_portfolio",
    "plan",
    "render",
    "validate",
    "verify_audit",
]


def __getattr__(name: str) -> Any:
    # The audit's types, imported when asked for: a plan never needs the audit's modules.
    if name == "AuditReport":
        from pipeline.records.audit import AuditReport

        return AuditReport
    if name == "AuditProblem":
        from pipeline.records.audit_files import AuditProblem

        return AuditProblem
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


PathLike = str | os.PathLike[str]
Format = Literal["text", "json", "markdown"]
Progress = Callable[[int, int], None]


def _root(repo: PathLike) -> Path:
    return Path(repo).resolve()


def _utc(at: datetime | None) -> datetime | None:
    """A naive time is UTC (as `--at` reads it); an aware one is converted."""
    if at is None:
        return None
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)


# --- load ---------------------------------------------------------------------------------------


def load_portfolio(repo: PathLike, *, of_record: bool = True) -> Portfolio:
    """The repository's portfolio, every file validated (schemas, scope, octoDNS's record rules).

    `of_record=True` (the default, what `plan` uses) judges by the sealed policy of record;
    `of_record=False` reads policy/ as the working tree has it (what `validate` checks). Raises
    InputError for the first problem; the others are printed to stderr as `dmarcops` prints them.
    """
    from pipeline.commands.loading import load_checked

    return load_checked(_root(repo), of_record=of_record)


def changed_zones(repo: PathLike, ref: str) -> ChangedZones:
    """The zones whose zone file, client profile or change request changed since the git
    revision `ref` (`git diff REF...HEAD` plus uncommitted and untracked files); `everything` when
    portfolio-wide policy changed. Raises InputError for a bad ref or a directory outside git."""
    from pipeline.plan.changes import zones_changed_since

    return zones_changed_since(_root(repo), ref)


# --- validate -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ValidationFinding:
    """A record rule's finding on a zone file, with where it is (`file:line`)."""

    file: Path
    line: int | None
    finding: Finding

    @property
    def severity(self) -> Severity:
        return self.finding.severity


@dataclass(frozen=True)
class ValidationReport:
    """What `dmarcops validate` checks: the files load, and every record rule run offline."""

    portfolio: Portfolio
    findings: tuple[ValidationFinding, ...]  # warnings and errors, in zone-file order
    analysts: int  # people on the roster (the automation's entry not counted)
    requests: int  # change requests that load

    @property
    def errors(self) -> tuple[ValidationFinding, ...]:
        return tuple(f for f in self.findings if f.severity is Severity.ERROR)

    @property
    def ok(self) -> bool:
        """No record has an error finding (`validate` exits 2 otherwise; `plan` refuses)."""
        return not self.errors


def validate(repo: PathLike, *, at: datetime | None = None) -> ValidationReport:
    """Check every zone file and policy file as the working tree has them (schemas, scope,
    octoDNS's validation; InputError for bad files), then run every record rule offline (SPF
    lookups estimated from the sender catalog, report authorisations not looked up)."""
    from pipeline.commands.loading import templates_of_record
    from pipeline.gate.request_loader import collect_requests
    from pipeline.gate.roster import load_roster
    from pipeline.load.yamlfile import load_yaml
    from pipeline.plan.build import offline_findings

    root = _root(repo)
    portfolio = load_portfolio(root, of_record=False)
    now = _utc(at) or datetime.now(UTC)
    found: list[ValidationFinding] = []
    for zone_file in portfolio.zone_files:
        findings = [
            f
            for f in offline_findings(portfolio, zone_file, now)
            if f.severity is not Severity.INFO
        ]
        if not findings:
            continue
        doc = load_yaml(zone_file.path)
        found += [ValidationFinding(zone_file.path, doc.line_of((f.name,)), f) for f in findings]
    return ValidationReport(
        portfolio=portfolio,
        findings=tuple(found),
        analysts=sum(a.is_person for a in load_roster(root).analysts),
        requests=len(collect_requests(root, templates=templates_of_record(root))[0]),
    )


# --- plan ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PlanReport:
    """A plan with what the gate says about it: which change request covers each item, and why
    `dmarcops plan` would refuse it (exit 2) if it would."""

    plan: Plan
    portfolio: Portfolio
    requests: Mapping[ItemKey, RequestRef]  # (zone, name, type) -> the request covering it
    refusals: tuple[str, ...]  # empty when the plan may go on to approval
    # Zone files that failed validation (domain -> the problem): planned as failed zones.
    broken_zones: Mapping[str, InputError] = field(default_factory=dict)
    changed: ChangedZones | None = None  # what --changed-since selected, when given
    # Every problem of the zone files left out, in the order found (broken_zones keeps the first
    # of each zone): a library returns them, the CLI prints them as they are found.
    zone_problems: tuple[InputError, ...] = ()

    @property
    def items(self) -> tuple[PlanItem, ...]:
        return self.plan.items

    @property
    def hash(self) -> str:
        """The plan hash approvals bind to (over the normalised items, never rendered text)."""
        return self.plan.hash

    @property
    def failed_zones(self) -> tuple[ZoneResult, ...]:
        return self.plan.failed_zones

    @property
    def ok(self) -> bool:
        """Every zone planned and nothing refused: `dmarcops plan` exits 0."""
        return not self.failed_zones and not self.refusals


def plan(
    repo: PathLike,
    *,
    clients: Sequence[str] = (),
    zones: Sequence[str] = (),
    nameservers: Sequence[str] = (),
    at: datetime | None = None,
    concurrency: int | None = None,
    changed_since: str | ChangedZones | None = None,
    progress: Progress | None = None,
    on_zone_problem: Callable[[InputError], None] | None = None,
    on_selected: Callable[[ChangedZones], None] | None = None,
) -> PlanReport:
    """Diff the zone files against live DNS and classify every change to an owned record.

    - `clients`, `zones`: plan only these (InputError naming the known ones for an unknown one).
    - `nameservers`: resolvers for SPF budgets and report authorisations, "HOST[:PORT]"
      (default: policy/settings.yaml).
    - `at`: plan as if it were then (UTC; freezes and schedules are judged then).
    - `changed_since`: a git revision, or `changed_zones()`'s result: only the zones changed
      since (no zone when nothing changed; every zone when portfolio-wide policy changed).
    - `progress(done, total)`: called as zones finish.
    - `on_zone_problem(error)`: each problem of a zone file that is left out of the plan (the
      zone then appears in `failed_zones`), as it is found; the report's `zone_problems` holds
      them all either way (nothing is printed: `dmarcops plan` prints them through this).
    - `on_selected(changed)`: with what `changed_since` selected, before any zone is planned.

    Raises InputError for bad input in policy/ or the requests (zone-file problems only take
    their zone out); live DNS that cannot be read is a failed zone, never an exception.
    """
    from pipeline.commands.common import nameservers_from
    from pipeline.commands.loading import load_for_plan
    from pipeline.gate import decide
    from pipeline.gate.coverage import cover
    from pipeline.gate.request_loader import load_requests
    from pipeline.gate.requests import signature_refusal
    from pipeline.plan.build import PlanOptions, make_plan
    from pipeline.records.store_base import RecordStoreBase

    root = _root(repo)
    changed = (
        changed_zones(root, changed_since) if isinstance(changed_since, str) else changed_since
    )
    only = None if changed is None or changed.everything else list(changed.zones)
    # Zone files nobody touched were validated when they last changed (and `dmarcops validate`
    # still checks them all); a portfolio-wide change validates everything.
    zone_problems: list[InputError] = []

    def zone_problem(problem: InputError) -> None:
        zone_problems.append(problem)
        if on_zone_problem is not None:
            on_zone_problem(problem)

    # With neither `clients` nor `zones` to check against the whole portfolio, a plan of the
    # changed zones loads only their clients in full (collect_problems, `zones_only`).
    portfolio, broken, roster = load_for_plan(
        root,
        zones_only=only,
        on_zone_problem=zone_problem,
        narrow=only is not None and not clients and not zones,
    )
    for client in clients:
        if client not in portfolio.clients:
            raise InputError(
                f"no client {client!r}",
                hint=f"Clients: {', '.join(sorted(portfolio.clients))}.",
            )
    for zone in zones:
        if zone.rstrip(".").lower() not in {z.domain for z in portfolio.zone_files}:
            raise InputError(f"no zone file for {zone!r}", hint="See zones/<client>/<domain>.yaml.")
    options = PlanOptions(
        now=_utc(at),
        clients=tuple(clients),
        zones=tuple(zones),
        nameservers=nameservers_from(tuple(nameservers), portfolio.settings.timeout),
        concurrency=concurrency,
        changed_since=changed,
        broken_zones={domain: str(problem) for domain, problem in broken.items()},
    )
    if changed is not None and on_selected is not None:
        on_selected(changed)
    # The requests not yet executed (pipeline.apply.gating.open_requests, without importing the
    # apply machinery): an executed request's `covers:` must not claim later changes. Asked of
    # the record index for these requests only: a plan does not read the history.
    requests = load_requests(root, roster)
    # The store's reading half: the writers (pipeline.records.store) are not a plan's to import.
    executed = RecordStoreBase(root / "changes").executed_requests([r.id for r in requests])
    requests = [r for r in requests if r.id not in executed]
    result = make_plan(portfolio, options, progress=progress)
    # A self-serve client's changes are recommendations (docs/drift.md): no request covers them,
    # and the one gate refuses to approve or apply them [self-serve-tier].
    advised = {z.client for z in result.zones if z.recommend_only}
    coverage = cover([i for i in result.items if i.client not in advised], requests)
    refs = {
        (item.zone, item.name, item.type): RequestRef(
            request.id, request.type.value, request.author, request.rationale
        )
        for item, request in coverage.covered
    }
    refusals: list[str] = []
    if result.has_errors:
        refusals.append("the desired state has validation errors (see ERROR findings above)")
    try:
        coverage.check()
    except GateRefused as exc:
        refusals.append(str(exc))
    items_of: dict[str, list[PlanItem]] = {}  # coverage.items_of for every request at once
    for item, request in coverage.covered:
        items_of.setdefault(request.id, []).append(item)
    for request in coverage.requests:
        decision = decide.decide(
            request,
            tuple(items_of[request.id]),
            (),
            decide.context(
                portfolio,
                request.client,
                decide.Stage.PLAN,
                result.generated_at,
                result.hash,
                roster,
            ),
        )
        refusals += [f"{request.id}: {problem}" for problem in decide.refused(decision)]
    # A request its author has not signed (or edited since) covers nothing that can be approved.
    refusals += [
        str(refusal)
        for refusal in (signature_refusal(r, roster) for r in coverage.requests)
        if refusal is not None
    ]
    return PlanReport(
        plan=result,
        portfolio=portfolio,
        requests=refs,
        refusals=tuple(refusals),
        broken_zones=dict(broken),
        changed=changed,
        zone_problems=tuple(zone_problems),
    )


# --- classify -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Classification:
    """How the pipeline classified one plan item: its change type, its risk with the rules that
    set it, its rollback window, and the change request that covers it."""

    zone: str
    name: str
    type: str
    change_type: str  # as the plan shows it: "Policy progression", "New sender", "Other"...
    risk: RiskLevel
    reasons: tuple[str, ...]  # the risk rules that matched, as the plan shows them
    rollback_hours: int
    request: RequestRef | None


def classify(report: PlanReport) -> tuple[Classification, ...]:
    """Every item of the plan as the classifier judged it, in plan order."""
    from pipeline.classify.change_type import change_type

    return tuple(
        Classification(
            zone=item.zone,
            name=item.name,
            type=item.type,
            change_type=change_type(item.kind, item.facts),
            risk=item.risk,
            reasons=item.reasons,
            rollback_hours=item.rollback_hours,
            request=report.requests.get((item.zone, item.name, item.type)),
        )
        for item in report.items
    )


# --- render -------------------------------------------------------------------------------------


def render(report: PlanReport, fmt: Format = "text", *, color: bool = False) -> str:
    """The plan as `dmarcops plan --format FMT` prints it: "text" for people, "json" for
    machines (the contract in README.md), "markdown" for pull requests. `color`: keep the text
    format's terminal colours (ANSI), as the command shows them on a terminal."""
    if fmt == "json":
        from pipeline.render.json_plan import render_json

        return render_json(report.plan, report.requests)
    if fmt == "markdown":
        from pipeline.render.markdown import render_markdown

        names = {c.id: c.name for c in report.portfolio.clients.values()}
        return render_markdown(report.plan, names, report.requests)
    if fmt == "text":
        import click

        from pipeline.render.text import render_text

        text = render_text(report.plan, report.requests)
        return text if color else click.unstyle(text)
    raise InputError(f"unknown plan format {fmt!r}", hint="Use text, json or markdown.")


# --- audit --------------------------------------------------------------------------------------


def verify_audit(
    repo: PathLike, *, at: datetime | None = None, genesis: str | None = None
) -> AuditReport:
    """Verify the audit trail as `dmarcops audit verify` does: the ledger's hash chain and
    signatures, every record against its last ledger event, gap-free numbering and overdue
    emergency reviews. `genesis`: the SHA-256 `dmarcops init` printed, which the ledger must
    begin with. The report's `ok` is False with one AuditProblem per finding."""
    from pipeline.clock import is_sandbox
    from pipeline.errors import DmarcopsError
    from pipeline.records.policy_of_record import portfolio_of_record
    from pipeline.records.store import audit

    root = _root(repo)
    try:
        portfolio = portfolio_of_record(root)
        sandbox = frozenset(
            cid
            for cid, client in portfolio.clients.items()
            if client.provider in portfolio.providers
            and is_sandbox(portfolio.providers[client.provider].options)
        )
    except DmarcopsError:  # a portfolio that cannot be read has no sandbox clients
        sandbox = frozenset()
    now = _utc(at) or datetime.now(UTC)
    return audit(root / "changes", now, sandbox_clients=sandbox, genesis=genesis)
