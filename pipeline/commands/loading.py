"""The commands' one "load and validate everything": every problem reported together, exit 1.

`plan`, `validate`, the GitHub gate and drift all load the repository through here, so they agree on
what is plannable and what policy judges it.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from pipeline.commands.common import echo_error
from pipeline.errors import GateRefused, InputError
from pipeline.gate.request_loader import collect_requests
from pipeline.gate.roster import Roster, load_roster
from pipeline.gate.templates import TemplateSet, collect_templates
from pipeline.load.portfolio import Portfolio, collect_problems
from pipeline.load.zones import check_zone_file
from pipeline.records.policy_of_record import PolicyOfRecord, policy_of_record, roster_of_record


def load_checked(
    repo: Path, zones_only: list[str] | None = None, *, of_record: bool = True
) -> Portfolio:
    """Everything the plan reads, validated; all problems reported together, exit 1."""
    return load_plannable(repo, zones_only, isolate_zone_files=False, of_record=of_record)[0]


def load_plannable(
    repo: Path,
    zones_only: list[str] | None = None,
    *,
    isolate_zone_files: bool = True,
    of_record: bool = True,
    on_zone_problem: Callable[[InputError], None] | None = None,
) -> tuple[Portfolio, dict[str, InputError]]:
    """Like load_checked, but a zone file with problems only takes its own zone out of the plan
    (its problems are printed and returned by domain); the policy files must all be right.

    `of_record`: judge by the policy of record (plan, the GitHub gate). The working tree's
    policy/ must load either way (an edit that does not is refused by name); `validate` checks
    the working tree's files and nothing else (of_record=False). `on_zone_problem` gets each
    problem of a zone file left out (default: printed to stderr).
    """
    portfolio, broken, _ = load_for_plan(
        repo,
        zones_only,
        isolate_zone_files=isolate_zone_files,
        of_record=of_record,
        on_zone_problem=on_zone_problem,
    )
    return portfolio, broken


def load_for_plan(
    repo: Path,
    zones_only: list[str] | None = None,
    *,
    isolate_zone_files: bool = True,
    of_record: bool = True,
    on_zone_problem: Callable[[InputError], None] | None = None,
    narrow: bool = False,
) -> tuple[Portfolio, dict[str, InputError], Roster]:
    """load_plannable, with the roster the requests were judged by (the plan's gate uses it).

    `narrow` (a plan of the zones changed since a revision, `zones_only`): only the clients of
    those zones are loaded and checked in full (pipeline.load.portfolio.collect_problems).
    """
    only = zones_only if narrow else None
    portfolio, problems = collect_problems(repo, zones_only=only)
    roster = None
    record: PolicyOfRecord | None = None
    if of_record and not problems:
        # The plan is judged by the sealed policy, which differs from the working tree's only
        # while a policy edit waits for a lead's seal (its files then appear as policy items).
        # Read once per plan: it reads and hashes every file under policy/.
        record = policy_of_record(repo)
        if record.pending and only is not None:
            # An edit waiting for its seal must load, whichever client's file it is.
            problems = collect_problems(repo)[1]
        if record.pending and not problems:
            portfolio, problems = collect_problems(repo, record.root(repo), zones_only=only)
        if portfolio is not None:
            portfolio = record.stamp(portfolio)
    try:
        # `validate` judges by the working roster; a plan by the one of record, read above.
        roster = roster_of_record(repo, record) if of_record else load_roster(repo)
    except InputError as exc:
        problems.append(exc)
    # `validate` judges the requests by the working roster but the sealed ticket templates.
    templates = None if of_record else templates_of_record(repo)
    problems.extend(collect_requests(repo, roster, templates)[1])
    if not of_record:
        # `validate`: the working tree's ticket templates too (requests are judged by the sealed).
        problems.extend(collect_templates(repo)[1])
    broken: dict[str, InputError] = {}
    checked = None if zones_only is None else set(zones_only)
    if portfolio is not None:
        for zone_file in portfolio.zone_files:
            if checked is None or zone_file.domain in checked:
                found = check_zone_file(zone_file, portfolio.schema_path("zone"), portfolio.root)
                if found and isolate_zone_files and not problems:
                    broken[zone_file.domain] = found[0]
                    for problem in found:
                        (on_zone_problem or _print_problem)(problem)
                else:
                    problems.extend(found)
    if problems:
        # All of them, none printed here (pipeline.api's callers get them on the exception).
        problems[0].also = tuple(problems[1:])
        raise problems[0]
    assert portfolio is not None and roster is not None
    return portfolio, broken, roster


def templates_of_record(repo: Path) -> tuple[TemplateSet, list[InputError]]:
    """The ticket templates of the policy of record, with every problem found in them: an
    edited template counts once a lead seals it, like any policy. Before `dmarcops init`, or
    where the ledger or policy/ cannot be read, the working tree's: the gating commands refuse
    those by name themselves (and `validate` names the file)."""
    try:
        where = policy_of_record(repo, required=False).root(repo)
    except (GateRefused, InputError):
        where = repo
    return collect_templates(where)


def _print_problem(problem: InputError) -> None:
    echo_error(str(problem))
