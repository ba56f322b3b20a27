"""Attacks on the speed shortcuts of issue 16, as the analyst they govern would make them.

Three shortcuts skip work the full path does: `plan --changed-since` printing the empty plan
without loading the portfolio (pipeline/commands/noop_plan.py), zone files passed without
jsonschema (pipeline/load/zone_schema.py), and one TCP connection per server with the next
zone's journal intent written ahead (pipeline/live/bind.py, pipeline/apply/execute.py). Each test
here is an input an analyst could put in the repository, the environment or the command line,
and checks that the shortcut answers what the full path answers. The ones that found a
difference were written first and failed; the others pin what the attack tried.
"""

from __future__ import annotations

import json
import os
from datetime import datetime
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from dns_server import NamedServer
from gitrepo import commit, example_repo, git
from portfolio import copy_example, write
from signing import reseal
from test_apply_faults import (
    Apply,
    audit_ok,
    cli,
    no_apply_left_running,  # noqa: F401 (autouse: no apply left behind)
    records,
    unaccounted,
)
from test_plan_named import make_repo

from pipeline import api
from pipeline.cli import main

AT = "2026-11-28T09:00:00"


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """The example portfolio as a git repository: `main` with one commit, then branch `change`."""
    return example_repo(tmp_path / "repo")


def plan(repo: Path, *args: str) -> Result:
    """`dmarcops plan --changed-since main`: the shortcut when it judges nothing is to plan."""
    return CliRunner().invoke(
        main, ["--repo", str(repo), "plan", "--at", AT, "--changed-since", "main", *args]
    )


def full_plan(repo: Path) -> str:
    """What the full path prints: pipeline.api, which never takes the shortcut."""
    report = api.plan(repo, at=datetime.fromisoformat(AT), changed_since="main")
    return api.render(report, "json")


def docs_change(repo: Path) -> None:
    """What makes a branch a no-op for the plan: a change outside every plan input."""
    write(repo / "README.md", "How we work.\n")


# --- 1. `plan --changed-since` with nothing to plan (pipeline/commands/noop_plan.py) ----------


def test_a_replayed_genesis_seal_does_not_make_a_pending_policy_edit_disappear(
    repo: Path,
) -> None:
    # On main: a lead sealed an edit of gate.yaml (line 2). Then a merged change copied the
    # genesis line (genuinely signed by a lead) to the end of the ledger and put gate.yaml back
    # as the genesis sealed it. The full path takes no policy line with the genesis's seq after
    # it (pipeline/records/index_ledger.py, policy_entries): the lead's seal of line 2 is still
    # the policy of record, and the revert is a pending policy edit, in every plan.
    git(repo, "checkout", "-q", "main")
    gate = repo / "policy" / "gate.yaml"
    sealed_first = gate.read_text(encoding="utf-8")
    gate.write_text(sealed_first + "# sealed by a lead\n", encoding="utf-8")
    reseal(repo)
    ledger = repo / "changes" / "ledger.jsonl"
    genesis_line = ledger.read_bytes().split(b"\n")[0]
    with ledger.open("ab") as f:
        f.write(genesis_line + b"\n")
    gate.write_text(sealed_first, encoding="utf-8")
    commit(repo, "ledger: the genesis again; gate.yaml as it was")
    git(repo, "checkout", "-q", "-B", "change")
    docs_change(repo)

    result = plan(repo, "--format", "json")

    assert result.exit_code == 0, result.output
    changes = json.loads(result.stdout)["changes"]
    assert [(c["zone"], c["name"]) for c in changes] == [("policy", "policy/gate.yaml")]
    assert result.stdout == full_plan(repo)


def test_a_seal_and_policy_edit_git_is_told_not_to_see_take_the_full_path(repo: Path) -> None:
    # `git update-index --assume-unchanged` (or --skip-worktree) makes `git diff` skip a file:
    # the edit of gate.yaml and a line appended to the ledger then change no path git reports.
    # The appended line claims to seal the edited policy; it is signed by no one, so the full
    # path refuses it (exit 2). The shortcut must not take it at its word.
    git(repo, "update-index", "--assume-unchanged", "policy/gate.yaml", "changes/ledger.jsonl")
    gate = repo / "policy" / "gate.yaml"
    gate.write_text(gate.read_text(encoding="utf-8") + "# not sealed\n", encoding="utf-8")
    from pipeline.records.policy_seal import current_snapshot

    ledger = repo / "changes" / "ledger.jsonl"
    seal = json.loads(ledger.read_bytes().split(b"\n")[0])
    seal.update(seq=2, prev=seal["entry_sha256"])
    seal["payload"] = {"policy_sha256": current_snapshot(repo).sha256}
    with ledger.open("a", encoding="utf-8") as f:
        f.write(json.dumps(seal, separators=(",", ":")) + "\n")
    docs_change(repo)
    assert git(repo, "diff", "--name-only", "HEAD") == ""  # git indeed reports nothing

    result = plan(repo)

    assert result.exit_code == 2, result.output
    assert "ledger line 2" in result.stderr and "Traceback" not in result.output


def test_a_seal_line_out_of_place_is_no_seal_for_the_shortcut(tmp_path: Path) -> None:
    # The ledger writes line N with seq N; any other seq (a copied or moved line) leaves the
    # choice of the policy of record to the full path, which orders seals by seq.
    from pipeline.commands import noop_plan

    changes = tmp_path / "changes"
    seal = {"event": "policy", "seq": 1, "payload": {"policy_sha256": "a" * 64}}
    write(changes / "ledger.jsonl", json.dumps(seal) + "\n")
    assert noop_plan.last_policy_seal(changes) == "a" * 64
    for seq in (1, 3, True, "2", None):
        moved = {**seal, "seq": seq}
        write(changes / "ledger.jsonl", json.dumps(seal) + "\n" + json.dumps(moved) + "\n")
        assert noop_plan.last_policy_seal(changes) is None, seq


def test_a_policy_file_linked_to_a_file_outside_policy_is_refused_on_both_paths(
    repo: Path,
) -> None:
    # Committed on main as a link to a copy of gate.yaml under docs/: an edit of docs/ changes no policy/ path,
    # but the hash is of what policy/ holds, read as the full path reads it (links refused).
    git(repo, "checkout", "-q", "main")
    gate = repo / "policy" / "gate.yaml"
    write(repo / "docs" / "gate.yaml", gate.read_text(encoding="utf-8"))
    gate.unlink()
    gate.symlink_to(Path("..") / "docs" / "gate.yaml")
    commit(repo, "gate.yaml kept in docs/")
    git(repo, "checkout", "-q", "-B", "change")
    with (repo / "docs" / "gate.yaml").open("a", encoding="utf-8") as f:
        f.write("# edited where git sees no policy file\n")

    result = plan(repo)

    assert result.exit_code == 1
    assert "policy/gate.yaml: refused: the file is a symbolic link" in result.stderr
    with pytest.raises(Exception, match="symbolic link"):
        full_plan(repo)


def test_an_ignored_file_added_under_policy_is_a_pending_edit_on_both_paths(repo: Path) -> None:
    # git never reports an ignored file, but the policy hash covers every file under policy/.
    write(repo / ".gitignore", "*.local.yaml\n")
    write(repo / "policy" / "notes.local.yaml", "# a lead's notes\n")
    assert git(repo, "status", "--short", "--", "policy") == ""

    result = plan(repo, "--format", "json")

    names = [c["name"] for c in json.loads(result.stdout)["changes"]]
    assert names == ["policy/notes.local.yaml"], result.output
    assert result.stdout == full_plan(repo)


def test_a_portfolio_in_a_subdirectory_of_the_clone_still_takes_the_shortcut(
    tmp_path: Path,
) -> None:
    # git's paths are then relative to the portfolio (`--relative`, and ls-tree run in it): the
    # blob check must name the same files, or every no-op plan there would take the full path.
    from pipeline.commands import noop_plan
    from pipeline.plan.changes import changed_paths, zones_for_paths

    clone = tmp_path / "clone"
    root = copy_example(clone / "dns" / "portfolio")
    git(clone, "init", "-q", "-b", "main")
    commit(clone, "example portfolio, one level down")
    git(clone, "checkout", "-q", "-b", "change")
    docs_change(clone)

    paths = changed_paths(root, "main")
    assert noop_plan.nothing_to_plan(root, paths, zones_for_paths(root, paths))
    # And the same file changed behind git's back is seen there too.
    git(clone, "update-index", "--assume-unchanged", "dns/portfolio/policy/gate.yaml")
    with (root / "policy" / "gate.yaml").open("a", encoding="utf-8") as f:
        f.write("# hidden\n")
    assert not noop_plan.nothing_to_plan(root, paths, zones_for_paths(root, paths))


def test_ignored_junk_under_changes_and_zones_gives_the_full_paths_answer(repo: Path) -> None:
    # What the project's .gitignore hides (lock files, record temp files, build/ directories):
    # the full path does not read them either, so both print the empty plan.
    git(repo, "checkout", "-q", "main")
    write(repo / ".gitignore", "changes/.lock\nchanges/.locks/\nchanges/records/.*.tmp-*\nbuild/\n")
    commit(repo, "gitignore")
    git(repo, "checkout", "-q", "-B", "change")
    write(repo / "changes" / "records" / ".2026-0001.json.tmp-1", "{half a record")
    write(repo / "changes" / ".locks" / "x", "")
    write(repo / "zones" / "build" / "evil.example.yaml", "_dmarc: {type: TXT, value: x}\n")
    assert git(repo, "status", "--short") == ""

    result = plan(repo, "--format", "json")

    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["changes"] == []
    assert result.stdout == full_plan(repo)


# --- 2. zone files passed without jsonschema (pipeline/load/zone_schema.py) -------------------


@pytest.mark.parametrize(
    "text",
    [
        # Anchors and merge keys: the record jsonschema sees is the merged mapping.
        "base: &r {type: TXT, value: x}\n_dmarc: {<<: *r, ttl: 60}\n",
        "_dmarc: &r {type: TXT, value: x}\nx: *r\n",
        "_dmarc: {<<: {type: TXT}, values: [a]}\n",
        # Tags that make a string something else, or a number something else.
        "_dmarc: {type: TXT, value: !!binary aGk=}\n",
        "_dmarc: {type: TXT, value: 2026-01-01}\n",
        "_dmarc: {type: TXT, value: !!str 2026-01-01}\n",
        "_dmarc: {type: TXT, values: !!set {a, b}}\n",
        "_dmarc: !!omap [{type: TXT}, {value: x}]\n",
        "_dmarc: {type: TXT, value: x, ttl: 1e3}\n",
        "_dmarc: {type: TXT, value: x, ttl: 0x10}\n",
        "_dmarc: {type: TXT, value: x, ttl: 1_000}\n",
        "_dmarc: {type: TXT, value: x, ttl: !!int '5'}\n",
        "_dmarc: {type: TXT, value: x, ttl: 2147483648}\n",
        "_dmarc: {type: TXT, value: x, ttl: -1}\n",
        "_dmarc: {type: TXT, value: x, ttl: yes}\n",
        "_dmarc: {type: !!str TXT, value: x}\n",
        "_dmarc: {type: txt, value: x}\n",
        # Keys that are not names: bools, nulls, numbers, a name ending in a newline.
        "yes: {type: TXT, value: x}\n",
        "~: {type: TXT, value: x}\n",
        "1: {type: TXT, value: x}\n",
        '"_dmarc\\n": {type: TXT, value: x}\n',
        '"_dmarc\\n\\n": {type: TXT, value: x}\n',
        "_dmarc: {type: TXT, value: x, octodns: ~}\n",
        "_dmarc: {type: TXT, value: x, octodns: []}\n",
        "_dmarc: []\n",
        "_dmarc: [[{type: TXT, value: x}]]\n",
        "_dmarc: {type: TXT, value: x, values: [x]}\n",
        "[]\n",
        "x\n",
        "",
    ],
)
def test_what_plainly_valid_passes_jsonschema_passes_too(tmp_path: Path, text: str) -> None:
    import jsonschema

    from pipeline.load.yamlfile import load_yaml
    from pipeline.load.zone_schema import plainly_valid

    schema_path = Path(__file__).resolve().parent.parent / "policy" / "schemas" / "zone.schema.json"
    validator = jsonschema.Draft202012Validator(json.loads(schema_path.read_text("utf-8")))
    path = write(tmp_path / "zone.yaml", text)
    try:
        data = load_yaml(path, root=tmp_path).data
    except Exception as exc:  # the loader refuses it: no schema check happens on either path
        assert "Traceback" not in str(exc)
        return
    errors = list(validator.iter_errors(data))
    assert not (plainly_valid(data, schema_path) and errors), [e.message for e in errors]


# --- 3. one TCP connection per server, intents written ahead (pipeline/live/bind.py, ----------
# pipeline/apply/execute.py)


@pytest.fixture
def applying(tmp_path: Path, client_dns: NamedServer, sender_dns: NamedServer) -> Path:
    """The repository of tests/test_apply_faults.py: client alpha's plan (alpha.example, then
    beta.example, both on `client_dns`) in plan.json, ready for an emergency apply."""
    root = make_repo(tmp_path / "repo")
    providers = root / "policy/providers.yaml"
    providers.write_text(
        providers.read_text().replace(
            "    key_algorithm: hmac-sha256\n  bind-down:",
            "    key_algorithm: hmac-sha256\n    timeout: 2\n  bind-down:",
        )
    )
    reseal(root)
    out = root / "plan.json"
    result = cli(
        root,
        *("plan", "--client", "alpha", "--format", "json", "--out", str(out)),
        *("--nameserver", f"127.0.0.1:{sender_dns.port}"),
    )
    assert result.exit_code == 0, result.output
    return root


@pytest.mark.parametrize("point", ["sent:alpha.example", "intent:beta.example"])
def test_named_restarted_between_two_zones_gets_the_next_update_on_a_new_connection(
    applying: Path, client_dns: NamedServer, sender_dns: NamedServer, point: str
) -> None:
    # alpha's update went over the apply's one connection to the server; named is then killed
    # and started again on the same port before beta's update. The connection kept open is
    # dead: beta must go over a new one, and both zones be applied and recorded as live.
    run = Apply(applying, applying / "plan.json", point, sender_dns)
    client_dns.kill()
    client_dns.start()

    code, output = run.go()

    assert code == 0, output
    results = [z for r in records(applying) for z in r["zone_results"]]
    assert [(z["zone"], z["status"], z["applied"]) for z in results] == [
        ("alpha.example", "applied", 2),
        ("beta.example", "applied", 1),
    ]
    assert unaccounted(applying, client_dns) == []
    audit_ok(applying)


def test_named_killed_between_two_zones_records_the_next_as_not_sent(
    applying: Path, client_dns: NamedServer, sender_dns: NamedServer
) -> None:
    # The connection kept open is closed by the kernel when named dies; the next update's new
    # connection is refused, which proves beta was never sent: recorded failed, no doubt left.
    run = Apply(applying, applying / "plan.json", "sent:alpha.example", sender_dns)
    client_dns.kill()

    code, output = run.go()
    client_dns.start()

    assert code == 1, output
    results = [z for r in records(applying) for z in r["zone_results"]]
    assert [(z["zone"], z["status"]) for z in results] == [
        ("alpha.example", "applied"),
        ("beta.example", "failed"),
    ]
    assert "ConnectionRefusedError" in results[1]["error"]
    assert unaccounted(applying, client_dns) == []


# --- the full path: a genuine seal replayed after a later one ---------------------------------


def test_a_replayed_earlier_seal_does_not_roll_the_policy_of_record_back(repo: Path) -> None:
    # A lead seals B, then C. A change appends a byte-for-byte copy of B's line (genuinely
    # signed by a lead) and puts policy/ back as B sealed it: were the last policy line taken
    # as it stands, the policy of record would be B again, and the rollback no pending edit.
    gate = repo / "policy" / "gate.yaml"
    original = gate.read_text(encoding="utf-8")
    gate.write_text(original + "# B\n", encoding="utf-8")
    reseal(repo)
    ledger = repo / "changes" / "ledger.jsonl"
    b_line = ledger.read_bytes().rstrip(b"\n").split(b"\n")[-1]
    gate.write_text(original + "# B\n# C\n", encoding="utf-8")
    reseal(repo)
    with ledger.open("ab") as f:
        f.write(b_line + b"\n")
    gate.write_text(original + "# B\n", encoding="utf-8")

    for args in ((), ("--changed-since", "main")):
        result = CliRunner().invoke(main, ["--repo", str(repo), "plan", "--at", AT, *args])
        assert result.exit_code != 0, result.output
        assert "a policy seal numbered 2 stands after the seal numbered 3" in result.output
        assert "ledger.jsonl" in result.output and "Traceback" not in result.output


@pytest.mark.parametrize("linked", ["zones", "zones/fabrikam-labs"])
def test_zone_files_reached_through_a_link_are_refused_on_both_paths(
    repo: Path, linked: str
) -> None:
    # zones/ (or a client's directory) moved to zones-real/ and linked back: a later edit of
    # zones-real/... is a changed path outside zones/, which no incremental plan would map to a
    # zone. Both paths refuse the link instead of planning (or not planning) through it.
    target = repo / linked
    real = target.with_name(target.name + "-real")
    target.rename(real)
    target.symlink_to(real.name)
    commit(repo, "zone files through a link")
    git(repo, "checkout", "-q", "-B", "main")
    git(repo, "checkout", "-q", "-B", "change")
    dmarc = next(real.rglob("*.yaml"))
    dmarc.write_text(dmarc.read_text(encoding="utf-8") + "# edited through the link\n")
    for args in (("--changed-since", "main"), ("--client", "fabrikam-labs")):
        result = CliRunner().invoke(main, ["--repo", str(repo), "plan", "--at", AT, *args])
        assert result.exit_code == 1, result.output
        assert "is a symbolic link, not a directory of the repository" in result.output
        assert "Traceback" not in result.output


@pytest.mark.parametrize("where", ["docs", "zones/fabrikam-labs"])
def test_an_untracked_file_whose_name_is_not_utf8_is_no_crash(repo: Path, where: str) -> None:
    # git prints the name's bytes; read as UTF-8 text they crashed the command (exit 70).
    directory = os.fsencode(repo / where)
    os.makedirs(directory, exist_ok=True)
    with open(os.path.join(directory, b"notes-\xff.yaml"), "wb") as f:
        f.write(b"# not a zone\n")
    result = plan(repo)
    assert result.exit_code in (0, 1, 2), result.output
    assert "Traceback" not in result.output and "crash" not in result.output.lower()
    if where == "docs":
        assert result.exit_code == 0, result.output  # nothing a plan reads changed


def test_a_policy_directory_nested_past_the_recursion_limit_is_no_crash(repo: Path) -> None:
    # One os.mkdir a level: os.makedirs and pathlib's mkdir(parents=True) recurse themselves
    # (and so does shutil.rmtree: the tree is taken down level by level at the end).
    levels = [os.path.join(repo, "policy")]
    for _ in range(1100):
        levels.append(os.path.join(levels[-1], "d"))
        os.mkdir(levels[-1])
    leaf = os.path.join(levels[-1], "x.yaml")
    with open(leaf, "w", encoding="utf-8") as f:
        f.write("a: 1\n")
    try:
        for args in (("--changed-since", "main"), ()):
            result = CliRunner().invoke(main, ["--repo", str(repo), "plan", "--at", AT, *args])
            assert "Traceback" not in result.output, result.output[-2000:]
            assert result.exit_code == 0, result.output[-2000:]
            # A pending policy edit like any other file added to policy/.
            assert "/d/d/d/x.yaml, which judges changes" in result.output, result.output[-2000:]
    finally:
        os.remove(leaf)
        for level in reversed(levels[1:]):
            os.rmdir(level)
