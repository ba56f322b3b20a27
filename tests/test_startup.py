"""The start of a command pays only for what it uses (issue 16 item 1).

`dmarcops plan --changed-since REF` with nothing to plan prints the empty plan without loading
the portfolio (pipeline/commands/noop_plan.py): these tests check, in a fresh interpreter, that
it imports none of the plan machinery, that what it prints is what the full path prints, and
that every case the shortcut cannot vouch for still goes the full path (a pending policy edit, a
changed request, no policy of record, a pinned genesis). The modules a one-zone plan reads first
(the changed-zone mapping, the policy hash) are checked to stay light too.

Not timing tests: an import that creeps back fails here by name; benchmarks/README.md has the
times.
"""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from gitrepo import commit, example_repo, git
from portfolio import write

from pipeline import api
from pipeline.cli import main
from pipeline.commands import noop_plan
from pipeline.records import ledger, policy_of_record
from pipeline.records.policy_seal import current_snapshot

Format = api.Format

AT = "2026-11-28T09:00:00"
# Imported by the full plan path, never by a no-op plan: the libraries, and ours that load and
# judge the portfolio (a module of this list in a no-op plan undoes the shortcut).
HEAVY_LIBRARIES = ("octodns", "dns", "jsonschema", "cryptography", "yaml", "boto3", "logging")
PLAN_MACHINERY = (
    "pipeline.api",
    "pipeline.commands.loading",
    "pipeline.load.portfolio",
    "pipeline.load.yamlfile",
    "pipeline.gate.roster",
    "pipeline.gate.decide",
    "pipeline.records.ledger",
    "pipeline.records.store",
    "pipeline.records.policy_of_record",
    "pipeline.plan.build",
)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """The example portfolio as a git repository: `main` with one commit, then branch `change`."""
    return example_repo(tmp_path / "repo")


def plan(repo: Path, *args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(
        main,
        ["--repo", str(repo), "plan", "--at", AT, "--changed-since", "main", *args],
        env=env,
    )


def plan_in_new_interpreter(repo: Path, *args: str) -> tuple[str, list[str]]:
    """`dmarcops plan --changed-since main` run in a fresh Python: its stdout, and every module
    it imported."""
    code = (
        "import json, sys\n"
        "from pipeline.cli import main\n"
        "try:\n"
        f"    main({['--repo', str(repo), 'plan', '--at', AT, '--changed-since', 'main', *args]!r})\n"
        "except SystemExit as exc:\n"
        "    assert not exc.code, exc.code\n"
        "print('\\nMODULES ' + json.dumps(sorted(sys.modules)))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    out, _, modules = done.stdout.rpartition("\nMODULES ")
    return out, json.loads(modules)


def heavy(modules: list[str]) -> list[str]:
    top = {m.split(".")[0] for m in modules}
    return [m for m in HEAVY_LIBRARIES if m in top] + [m for m in PLAN_MACHINERY if m in modules]


def full_plan(repo: Path, fmt: Format) -> str:
    """What the full path prints: pipeline.api, which never takes the shortcut."""
    report = api.plan(repo, at=datetime.fromisoformat(AT), changed_since="main")
    return api.render(report, fmt)


def test_a_docs_only_change_plans_nothing_without_the_plan_machinery(repo: Path) -> None:
    write(repo / "docs" / "notes.md", "Notes on the next DKIM rotation.\n")
    commit(repo, "docs")

    out, modules = plan_in_new_interpreter(repo, "--format", "json")

    assert json.loads(out)["changes"] == [] and json.loads(out)["zones"] == []
    assert "pipeline.commands.noop_plan" in modules  # the probe saw the shortcut run
    assert heavy(modules) == []


def test_nothing_changed_at_all_takes_the_shortcut_too(repo: Path) -> None:
    out, modules = plan_in_new_interpreter(repo, "--format", "text")

    assert out.startswith("Plan 4f53cda18c2baa0c  overall risk: none")
    assert heavy(modules) == []


@pytest.mark.parametrize("fmt", ["json", "text", "markdown"])
def test_the_empty_plan_is_printed_as_the_full_path_prints_it(repo: Path, fmt: Format) -> None:
    result = plan(repo, "--format", fmt)

    assert result.exit_code == 0, result.output
    assert result.stdout == full_plan(repo, fmt)
    assert result.stderr == "no zone changed since main: nothing to plan\n"


def test_out_file_holds_the_full_paths_json(repo: Path, tmp_path: Path) -> None:
    saved = tmp_path / "plan.json"

    result = plan(repo, "--format", "text", "--out", str(saved))

    assert result.exit_code == 0, result.output
    assert saved.read_text(encoding="utf-8") == full_plan(repo, "json")


def test_out_file_that_cannot_be_written_is_exit_1(repo: Path, tmp_path: Path) -> None:
    result = plan(repo, "--out", str(tmp_path / "missing" / "plan.json"))

    assert result.exit_code == 1
    assert "cannot write the plan" in result.stderr and "Traceback" not in result.output


def test_a_bad_nameserver_is_refused_on_the_shortcut_as_on_the_full_path(repo: Path) -> None:
    result = plan(repo, "--nameserver", "127.0.0.1:53,127.0.0.2:5353")

    assert result.exit_code == 1
    assert "all --nameserver values must use the same port" in result.stderr


def test_a_pending_policy_edit_is_planned_even_when_nothing_changed_since(repo: Path) -> None:
    # Committed on main, not sealed: the policy of record is still the genesis, so every plan
    # lists the edit as a policy item, including one of a branch that changed nothing since.
    git(repo, "checkout", "-q", "main")
    with (repo / "policy" / "gate.yaml").open("a", encoding="utf-8") as f:
        f.write("# an edit waiting for a lead's seal\n")
    commit(repo, "gate: comment")
    git(repo, "checkout", "-q", "-B", "change")

    result = plan(repo, "--format", "json")

    changes = json.loads(result.stdout)["changes"]
    assert [(c["zone"], c["name"]) for c in changes] == [("policy", "policy/gate.yaml")]
    assert result.stdout == full_plan(repo, "json")


def test_a_changed_request_that_cannot_be_read_is_refused_by_name(repo: Path) -> None:
    # It maps to no zone (pipeline/plan/changes.py), but the full path checks every request.
    write(repo / "changes" / "requests" / "CR-0999-broken.yaml", "type: [unclosed\n")

    result = plan(repo)

    assert result.exit_code == 1
    assert "CR-0999-broken.yaml" in result.stderr and "Traceback" not in result.output


def test_without_a_policy_of_record_the_plan_is_refused(repo: Path) -> None:
    git(repo, "checkout", "-q", "main")
    git(repo, "rm", "-q", "changes/ledger.jsonl")
    commit(repo, "no ledger")
    git(repo, "checkout", "-q", "-B", "change")

    result = plan(repo)

    assert result.exit_code == 2
    assert "no policy of record" in result.stderr


def test_a_pinned_genesis_is_checked_by_the_full_path(repo: Path) -> None:
    result = plan(repo, env={policy_of_record.GENESIS_PIN: "0" * 64})

    assert result.exit_code == 2
    assert "pinned genesis" in result.stderr


def test_the_shortcuts_names_agree_with_the_modules_it_does_not_import() -> None:
    assert noop_plan.LEDGER_NAME == ledger.LEDGER_NAME
    assert noop_plan.GENESIS_PIN == policy_of_record.GENESIS_PIN


def test_the_policy_hash_and_seal_are_the_full_paths(repo: Path) -> None:
    record = policy_of_record.policy_of_record(repo)

    assert noop_plan.working_policy_sha256(repo) == current_snapshot(repo).sha256
    assert noop_plan.last_policy_seal(repo / "changes") == record.sha256 != ""


def policy_line(digest: str, seq: int, **extra: object) -> str:
    # `seq`: the line's number, as the ledger writes it (a seal out of place takes the full path).
    return json.dumps(
        {"event": "policy", "seq": seq, "payload": {"policy_sha256": digest}, **extra}
    )


def test_the_last_seal_is_the_last_policy_line(tmp_path: Path) -> None:
    changes = tmp_path / "changes"
    lines = [
        policy_line("a" * 64, 1),
        json.dumps({"event": "created", "payload": {"note": "DMARC policy to quarantine"}}),
        policy_line("b" * 64, 3),
        # A record event whose payload holds what a seal looks like is not a seal.
        json.dumps({"event": "created", "payload": {"event": "policy", "policy_sha256": "c"}}),
        # An escaped event name is the same name to the ledger's reader.
        '{"event": "\\u0070olicy", "seq": 5, "payload": {"policy_sha256": "' + "d" * 64 + '"}}',
        json.dumps({"event": "sealed", "payload": {}}),
    ]
    write(tmp_path / "policy" / "settings.yaml", "{}\n")
    write(changes / "ledger.jsonl", "\n".join(lines) + "\n")

    assert noop_plan.last_policy_seal(changes) == "d" * 64


def test_a_damaged_line_that_could_be_a_seal_gives_no_seal(tmp_path: Path) -> None:
    changes = tmp_path / "changes"
    write(tmp_path / "policy" / "settings.yaml", "{}\n")
    write(changes / "ledger.jsonl", policy_line("a" * 64, 1) + '\n{"event": "policy", \n')

    assert noop_plan.last_policy_seal(changes) is None


@pytest.mark.parametrize(
    "module",
    [
        # What `plan --changed-since` reads before it knows there is a zone to plan.
        "pipeline.plan.changes",
        "pipeline.records.policy_seal",
        "pipeline.commands.noop_plan",
        # The package of the audit trail, which every module of it imports first.
        "pipeline.records",
    ],
)
def test_the_modules_read_before_planning_import_nothing_heavy(module: str) -> None:
    code = f"import json, sys, {module}\nprint(json.dumps(sorted(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    modules = json.loads(done.stdout)

    assert module in modules  # the probe imported what it names
    assert heavy(modules) == []


@pytest.mark.parametrize(("flags", "level"), [((), "ERROR"), (("--verbose",), "INFO")])
def test_a_plan_that_plans_configures_octodns_logging_first(
    repo: Path, flags: tuple[str, ...], level: str
) -> None:
    # `plan` configures logging itself, after the shortcut is ruled out: octoDNS's warnings
    # stay hidden without --verbose, as for every other command.
    write(repo / "zones" / "fabrikam-labs" / "fabrikam.example.yaml", "--- {}\n")
    argv = ["--repo", str(repo), *flags, "plan", "--at", AT, "--changed-since", "main"]
    code = (
        "import logging\nfrom pipeline.cli import main\n"
        f"try:\n    main({argv!r})\nexcept SystemExit:\n    pass\n"
        "print('LEVEL', logging.getLevelName(logging.getLogger().level))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)

    assert "planning 1 zone(s) changed since main" in done.stderr
    assert done.stdout.strip().endswith(f"LEVEL {level}")
