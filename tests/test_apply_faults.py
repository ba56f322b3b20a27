"""The fault matrix of a crash-safe apply, against a real named and real processes.

Each case runs `dmarcops apply` in a subprocess (tests/run_paused.py), stops it at one point of
the apply, injects a fault there (SIGKILL, SIGTERM, a full disk, a read-only changes/, named
killed or frozen), and then checks the invariant: every item that reached DNS is in exactly one
change record that says so (directly, or after `dmarcops recover`), every item a record calls live
is live, nothing is recorded twice, no journal is left, and `dmarcops audit verify` passes.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from dns_server import NamedServer
from portfolio import REPO
from signing import KEYS, reseal
from test_apply_named import served
from test_plan_named import make_repo

from pipeline.cli import main
from pipeline.records import RecordStore

# The plan of client alpha: three items in two zones, one request per zone.
ITEMS = {
    ("alpha.example", "", "TXT"),
    ("alpha.example", "_dmarc", "TXT"),
    ("beta.example", "", "TXT"),
}


def cli(repo: Path, *args: str) -> Result:
    return CliRunner().invoke(main, ["--repo", str(repo), *args])


_STARTED: list[subprocess.Popen[str]] = []


@pytest.fixture(autouse=True)
def no_apply_left_running() -> Iterator[None]:
    # A failed assertion must not leave a paused apply behind holding changes/ (a mount busy).
    yield
    while _STARTED:
        proc = _STARTED.pop()
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


class Apply:
    """One apply subprocess paused at `point`; `go()` lets it continue. `command`: another
    command to pause instead (`recover`), in the pause folder `folder`."""

    def __init__(
        self,
        repo: Path,
        plan: Path,
        point: str,
        sender: NamedServer,
        command: list[str] | None = None,
        folder: str = "pause",
    ) -> None:
        self.folder = repo.parent / folder
        self.folder.mkdir()
        os.mkfifo(self.folder / "go")
        clock = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        argv = command or [
            "apply",
            "--plan",
            str(plan),
            "--key",
            str(KEYS / "jchen.pem"),
            "--emergency",
            "--reason",
            "payroll mail rejected since 09:10",
            "--incident",
            "INC-2041",
            "--nameserver",
            f"127.0.0.1:{sender.port}",
            "--verify-timeout",
            "2",
        ]
        self.proc = subprocess.Popen(
            [
                sys.executable,
                str(REPO / "tests" / "run_paused.py"),
                str(self.folder),
                point,
                clock,
                "--",
                "--repo",
                str(repo),
                *argv,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=REPO,
            env={**os.environ, "PYTHONPATH": str(REPO)},
        )
        _STARTED.append(self.proc)
        deadline = time.monotonic() + 60
        while not (self.folder / "ready").exists():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                out, err = self.proc.communicate()
                pytest.fail(f"apply never reached {point}: {out}\n{err}")
            time.sleep(0.05)

    def go(self) -> tuple[int, str]:
        with (self.folder / "go").open("w") as fifo:
            fifo.write("go")
        out, err = self.proc.communicate(timeout=60)
        return self.proc.returncode, out + err

    def kill(self, signum: int) -> None:
        self.proc.send_signal(signum)


@pytest.fixture
def repo(tmp_path: Path, client_dns: NamedServer, sender_dns: NamedServer) -> Path:
    root = make_repo(tmp_path / "repo")
    # The frozen-server case needs the provider to give up quickly.
    providers = root / "policy/providers.yaml"
    providers.write_text(
        providers.read_text().replace(
            "    key_algorithm: hmac-sha256\n  bind-down:",
            "    key_algorithm: hmac-sha256\n    timeout: 2\n  bind-down:",
        )
    )
    reseal(root)  # a lead seals the edit: it judges (and configures) from now on
    out = root / "plan.json"
    result = cli(
        root,
        "plan",
        "--client",
        "alpha",
        "--format",
        "json",
        "--out",
        str(out),
        "--nameserver",
        f"127.0.0.1:{sender_dns.port}",
    )
    assert result.exit_code == 0, result.output
    assert {(c["zone"], c["name"], c["type"]) for c in json.loads(out.read_text())["changes"]} == (
        ITEMS
    )
    return root


def _mount(*args: str) -> None:
    done = subprocess.run(["mount", *args], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.fail(f"mount {' '.join(args)} failed (these tests need root): {done.stderr}")


@pytest.fixture
def small_changes(repo: Path) -> Iterator[Path]:
    """changes/ on a 1 MiB tmpfs, with what it held copied in."""
    changes = repo / "changes"
    saved = repo.parent / "changes-saved"
    changes.rename(saved)
    changes.mkdir()
    _mount("-t", "tmpfs", "-o", "size=1m", "tmpfs", str(changes))
    try:
        subprocess.run(["cp", "-a", f"{saved}/.", str(changes)], check=True)
        yield changes
    finally:
        subprocess.run(["umount", str(changes)], check=False)


@pytest.fixture
def bound_changes(repo: Path) -> Iterator[Path]:
    """changes/ bind-mounted on itself, so a test can remount it read-only (root ignores chmod)."""
    changes = repo / "changes"
    _mount("--bind", str(changes), str(changes))
    try:
        yield changes
    finally:
        subprocess.run(["umount", str(changes)], check=False)


def unaccounted(repo: Path, client_dns: NamedServer) -> list[str]:
    """Items live but in no record as applied, recorded as applied but not live, or recorded
    twice; and any journal left behind."""
    plan = json.loads((repo / "plan.json").read_text())
    problems: list[str] = []
    claimed: dict[tuple[str, str, str], list[str]] = {}
    for path in sorted((repo / "changes" / "records").glob("*.json")):
        record = json.loads(path.read_text())
        for item in record["items"]:
            claimed.setdefault((item["zone"], item["name"], item["type"]), []).append(record["id"])
        assert record["executed_at"], f"{record['id']} never finished"
        live = {
            (v["zone"], v["name"], v["type"])
            for v in record["verification"]
            if v["status"] == "verified"
        }
        for z in record["zone_results"]:
            mine = {(i["zone"], i["name"], i["type"]) for i in record["items"]}
            assert z["applied"] == len({k for k in live if k[0] == z["zone"]} & mine)
        record["_live"] = live
        # The server acknowledged the zone's update (status applied, no error) but did not answer
        # its check, which runs while the next zone is sent (pipeline.apply.execute): the record
        # says applied and, honestly, that the check went unanswered; it claims nothing unseen.
        acknowledged = {
            (v["zone"], v["name"], v["type"])
            for v in record["verification"]
            if v["status"] == "unverifiable"
            and "did not answer" in v["detail"]
            and any(
                z["zone"] == v["zone"] and z["status"] == "applied" and not z["error"]
                for z in record["zone_results"]
            )
        }
        for c in plan["changes"]:
            key = (c["zone"], c["name"], c["type"])
            if key not in {(i["zone"], i["name"], i["type"]) for i in record["items"]}:
                continue
            fqdn = f"{c['name']}.{c['zone']}." if c["name"] else f"{c['zone']}."
            is_live = served(client_dns, fqdn, c["type"]) == sorted(c["after"])
            if is_live and key not in live | acknowledged:
                problems.append(f"{key} is live but record {record['id']} does not say so")
            if key in acknowledged and not is_live:
                problems.append(f"{key}: record {record['id']} says applied, it is not live")
            if key in live and not is_live:
                problems.append(f"{key}: record {record['id']} says live, it is not")
    for key, ids in claimed.items():
        if len(ids) > 1:
            problems.append(f"{key} recorded twice: {ids}")
    for c in plan["changes"]:
        key = (c["zone"], c["name"], c["type"])
        fqdn = f"{c['name']}.{c['zone']}." if c["name"] else f"{c['zone']}."
        if key not in claimed and served(client_dns, fqdn, c["type"]) == sorted(c["after"]):
            problems.append(f"{key} is live with no record at all")
    journal = repo / "changes" / "journal"
    if journal.is_dir():
        problems.extend(f"journal left: {p.name}" for p in journal.glob("*.jsonl"))
    return problems


def audit_ok(repo: Path) -> None:
    at = (datetime.now(UTC) + timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    result = cli(repo, "audit", "verify", "--at", at)
    assert result.exit_code == 0, result.output


def recover(repo: Path) -> Result:
    result = cli(repo, "recover", "--key", str(KEYS / "jchen.pem"))
    assert result.exit_code == 0, result.output
    return result


def records(repo: Path) -> list[dict[str, Any]]:
    return [
        json.loads(p.read_text()) for p in sorted((repo / "changes" / "records").glob("*.json"))
    ]


KILL_POINTS = [
    "records",
    "intent:alpha.example",
    # beta's intent written ahead (pipeline.apply.execute), alpha not yet sent: both in doubt.
    "ahead:beta.example",
    "sent:alpha.example",
    "done:alpha.example",
    "intent:beta.example",
    "sent:beta.example",
    "done:beta.example",
    # Every record file finished, none of their ledger lines written (RecordStore.update_many):
    # recover puts back the logged version and finishes the records again.
    "ledger:updated",
]


def _reads_every_record(self: RecordStore) -> list[Any]:
    raise AssertionError("recover read every record (RecordStore.all): it grows with history")


@pytest.mark.parametrize("point", KILL_POINTS)
def test_sigkill_at_each_point_is_recovered_by_the_next_command(
    repo: Path,
    client_dns: NamedServer,
    sender_dns: NamedServer,
    point: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    run = Apply(repo, repo / "plan.json", point, sender_dns)
    run.kill(signal.SIGKILL)
    assert run.proc.wait(30) == -signal.SIGKILL
    # The next apply refuses and says how to recover.
    again = cli(repo, "apply", "--plan", str(repo / "plan.json"), "--key", str(KEYS / "jchen.pem"))
    assert again.exit_code == 2
    assert "dmarcops recover --key YOUR-KEY" in again.output
    stranger_key = repo.parent / "stranger.pem"
    assert cli(repo, "keygen", "--out", str(stranger_key)).exit_code == 0
    stranger = cli(repo, "recover", "--key", str(stranger_key))
    assert stranger.exit_code == 1 and "not on the analyst roster" in stranger.output
    assert list((repo / "changes" / "journal").glob("*.jsonl"))  # untouched by the refusal
    with monkeypatch.context() as patched:
        # It asks the record index and reads the apply's own records only.
        patched.setattr(RecordStore, "all", _reads_every_record)
        result = recover(repo)
    assert "recovered apply journal" in result.output
    recs = records(repo)
    assert [r["request_id"] for r in recs] == ["CR-0001-alpha", "CR-0002-alpha"]
    assert all(r["recovery"]["by"] == "jchen" for r in recs)
    md = (repo / "changes" / "records" / f"{recs[0]['id']}.md").read_text()
    assert "Recovered:" in md
    # Sent (the provider call returned): live. An intent alone: checked live, found not sent.
    # Before any intent: not attempted.
    expected = {
        "records": ("not-attempted", 0),
        "intent:alpha.example": ("failed", 0),
        "ahead:beta.example": ("failed", 0),
    }
    alpha = recs[0]["zone_results"][0]
    assert (alpha["status"], alpha["applied"]) == expected.get(point, ("applied", 2))
    if point in ("ahead:beta.example", "sent:alpha.example"):
        # beta's intent was written while alpha was (about to be) on the wire: in doubt, checked
        # against live DNS, not live, and the record says why it cannot say "not sent".
        (beta,) = recs[1]["zone_results"]
        assert (beta["zone"], beta["status"], beta["applied"]) == ("beta.example", "failed", 0)
        assert "interrupted after its intent was written" in beta["error"]
    assert unaccounted(repo, client_dns) == []
    audit_ok(repo)
    assert "nothing to recover" in recover(repo).output


def _recover_killed_between_its_files_and_ledger_lines(repo: Path, sender: NamedServer) -> None:
    """`dmarcops recover` paused with every record file finished and none of their ledger lines
    written (RecordStore.update_many), then SIGKILLed there."""
    run = Apply(
        repo,
        repo / "plan.json",
        "ledger:updated",
        sender,
        command=["recover", "--key", str(KEYS / "jchen.pem")],
        folder="pause-recover",
    )
    # Its files hold the recovery the ledger never logged (all of them: recover finishes its
    # records in one batch).
    assert any("recovery" in r for r in records(repo))
    run.kill(signal.SIGKILL)
    assert run.proc.wait(30) == -signal.SIGKILL
    assert list((repo / "changes" / "journal").glob("*.jsonl"))


@pytest.mark.parametrize("point", ["sent:alpha.example", "ledger:updated"])
def test_sigkill_of_recover_between_its_files_and_ledger_lines_is_recovered_again(
    repo: Path, client_dns: NamedServer, sender_dns: NamedServer, point: str
) -> None:
    # The apply killed with its records open (the ledger logs them as created), then the
    # recover killed half-way: the next recover puts the created versions back and finishes.
    run = Apply(repo, repo / "plan.json", point, sender_dns)
    run.kill(signal.SIGKILL)
    assert run.proc.wait(30) == -signal.SIGKILL
    _recover_killed_between_its_files_and_ledger_lines(repo, sender_dns)
    result = recover(repo)
    assert "recovered apply journal" in result.output
    recs = records(repo)
    assert [r["request_id"] for r in recs] == ["CR-0001-alpha", "CR-0002-alpha"]
    assert all(r["recovery"]["by"] == "jchen" for r in recs)
    # Killed once alpha was sent, beta's intent was already written (ahead, while alpha was on
    # the wire): beta is in doubt, checked, and found not live.
    beta = ("applied", 1) if point == "ledger:updated" else ("failed", 0)
    assert [(z["status"], z["applied"]) for r in recs for z in r["zone_results"]] == [
        ("applied", 2),
        beta,
    ]
    assert unaccounted(repo, client_dns) == []
    audit_ok(repo)
    assert "nothing to recover" in recover(repo).output


def test_sigkill_of_recover_over_records_the_apply_finished_is_recovered_again(
    repo: Path, client_dns: NamedServer, sender_dns: NamedServer
) -> None:
    # named frozen during beta's update: the apply finishes its records (logged) but beta's
    # outcome is unknown, so its journal stays. The recover that checks beta again is killed
    # with its files written over the apply's and no ledger line: the ledger's last version of
    # each record is the apply's finished one, which the files no longer hold. The next recover
    # finishes them from the versions the ledger logged at creation.
    run = Apply(repo, repo / "plan.json", "intent:beta.example", sender_dns)
    with client_dns.frozen():
        code, output = run.go()
        assert code == 1, output
    assert [r["executed_at"] != "" for r in records(repo)] == [True, True]
    assert all("recovery" not in r for r in records(repo))
    _recover_killed_between_its_files_and_ledger_lines(repo, sender_dns)
    # A file changed beyond what recover writes is refused: recovery carries forward only what
    # the ledger logged.
    path = repo / "changes" / "records" / f"{records(repo)[0]['id']}.json"
    found = path.read_bytes()
    path.write_bytes(found.replace(b"payroll", b"PAYROLL", 1))
    assert found != path.read_bytes()
    refused = cli(repo, "recover", "--key", str(KEYS / "jchen.pem"))
    assert refused.exit_code == 2 and "differs from what the ledger recorded" in refused.output
    path.write_bytes(found)
    result = recover(repo)
    assert "recovered apply journal" in result.output
    recs = records(repo)
    assert all(r["recovery"]["by"] == "jchen" for r in recs)
    assert [(z["zone"], z["status"]) for r in recs for z in r["zone_results"]] == [
        ("alpha.example", "applied"),
        ("beta.example", "applied"),
    ]
    assert unaccounted(repo, client_dns) == []
    audit_ok(repo)


def test_sigkill_between_the_record_files_and_their_ledger_lines_sends_nothing(
    repo: Path, client_dns: NamedServer, sender_dns: NamedServer
) -> None:
    # RecordStore.create_many writes every record file before any ledger line: killed in between,
    # the files are creations cut short and nothing was sent to DNS.
    run = Apply(repo, repo / "plan.json", "ledger:created", sender_dns)
    assert len(list((repo / "changes" / "records").glob("*.json"))) == 2
    run.kill(signal.SIGKILL)
    assert run.proc.wait(30) == -signal.SIGKILL
    recover(repo)
    assert records(repo) == []  # the unlogged files are gone: numbering stays whole
    assert unaccounted(repo, client_dns) == []
    audit_ok(repo)
    # The plan can be applied now, and its records take the numbers the killed apply did not use.
    again = cli(
        repo,
        "apply",
        "--plan",
        str(repo / "plan.json"),
        "--key",
        str(KEYS / "jchen.pem"),
        "--emergency",
        "--reason",
        "payroll mail rejected since 09:10",
        "--incident",
        "INC-2041",
        "--nameserver",
        f"127.0.0.1:{sender_dns.port}",
    )
    assert again.exit_code == 0, again.output
    year = datetime.now(UTC).year
    assert [r["id"] for r in records(repo)] == [f"{year}-0001", f"{year}-0002"]
    assert unaccounted(repo, client_dns) == []


def test_sigterm_finishes_the_zone_in_flight_and_stops(
    repo: Path, client_dns: NamedServer, sender_dns: NamedServer
) -> None:
    run = Apply(repo, repo / "plan.json", "sent:alpha.example", sender_dns)
    run.kill(signal.SIGTERM)
    code, output = run.go()
    assert code == 1, output
    recs = records(repo)
    assert [(z["zone"], z["status"], z["applied"]) for r in recs for z in r["zone_results"]] == [
        ("alpha.example", "applied", 2),
        ("beta.example", "not-attempted", 0),
    ]
    assert "stopped by SIGTERM" in recs[1]["zone_results"][0]["error"]
    assert "recovery" not in recs[0]  # finished by the apply itself: nothing to recover
    assert unaccounted(repo, client_dns) == []
    audit_ok(repo)


@pytest.mark.parametrize("point", ["records", "sent:alpha.example", "done:alpha.example"])
def test_full_disk_stops_sending_and_recover_finishes(
    repo: Path,
    client_dns: NamedServer,
    sender_dns: NamedServer,
    small_changes: Path,
    point: str,
) -> None:
    run = Apply(repo, repo / "plan.json", point, sender_dns)
    filler = small_changes / "filler"
    subprocess.run(["dd", "if=/dev/zero", f"of={filler}", "bs=64k"], capture_output=True)
    code, output = run.go()
    assert code == 1, output
    assert "Traceback" not in output
    assert "dmarcops recover --key YOUR-KEY" in output
    filler.unlink()
    recover(repo)
    assert unaccounted(repo, client_dns) == []
    audit_ok(repo)


def _apply_now(repo: Path, sender: NamedServer) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            str(REPO / "tests" / "run_at.py"),
            datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "--repo",
            str(repo),
            "apply",
            "--plan",
            str(repo / "plan.json"),
            "--key",
            str(KEYS / "jchen.pem"),
            "--emergency",
            "--reason",
            "payroll mail rejected since 09:10",
            "--incident",
            "INC-2041",
            "--nameserver",
            f"127.0.0.1:{sender.port}",
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        timeout=120,
    )


def test_full_disk_before_the_journal_sends_nothing(
    repo: Path, client_dns: NamedServer, sender_dns: NamedServer, small_changes: Path
) -> None:
    subprocess.run(
        ["dd", "if=/dev/zero", f"of={small_changes / 'filler'}", "bs=4k"], capture_output=True
    )
    before = {k: served(client_dns, f"{k[1]}.{k[0]}." if k[1] else f"{k[0]}.") for k in ITEMS}
    done = _apply_now(repo, sender_dns)
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    assert "nothing was sent to DNS" in done.stderr and "No space left" in done.stderr
    after = {k: served(client_dns, f"{k[1]}.{k[0]}." if k[1] else f"{k[0]}.") for k in ITEMS}
    assert after == before  # no intent on disk: nothing was sent
    (small_changes / "filler").unlink()
    assert unaccounted(repo, client_dns) == []
    audit_ok(repo)


def test_read_only_changes_sends_nothing(
    repo: Path, client_dns: NamedServer, sender_dns: NamedServer, bound_changes: Path
) -> None:
    _mount("-o", "remount,bind,ro", str(bound_changes))
    before = {k: served(client_dns, f"{k[1]}.{k[0]}." if k[1] else f"{k[0]}.") for k in ITEMS}
    done = _apply_now(repo, sender_dns)
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr and "Read-only file system" in done.stderr
    after = {k: served(client_dns, f"{k[1]}.{k[0]}." if k[1] else f"{k[0]}.") for k in ITEMS}
    assert after == before
    _mount("-o", "remount,bind,rw", str(bound_changes))
    assert unaccounted(repo, client_dns) == []
    audit_ok(repo)


def test_named_killed_before_a_zone_is_recorded_as_not_sent(
    repo: Path, client_dns: NamedServer, sender_dns: NamedServer
) -> None:
    run = Apply(repo, repo / "plan.json", "intent:beta.example", sender_dns)
    client_dns.kill()
    code, output = run.go()
    assert code == 1, output
    client_dns.start()
    recs = records(repo)
    assert recs[1]["zone_results"][0]["status"] == "failed"
    assert not (repo / "changes" / "journal").exists() or not list(
        (repo / "changes" / "journal").glob("*.jsonl")
    )  # a refused connection proves nothing was sent: no doubt, no journal
    assert unaccounted(repo, client_dns) == []
    audit_ok(repo)


def test_named_frozen_mid_update_leaves_a_journal_until_it_answers(
    repo: Path, client_dns: NamedServer, sender_dns: NamedServer
) -> None:
    run = Apply(repo, repo / "plan.json", "intent:beta.example", sender_dns)
    with client_dns.frozen():
        code, output = run.go()
        assert code == 1, output
        journal = list((repo / "changes" / "journal").glob("*.jsonl"))
        assert len(journal) == 1  # beta's outcome is unknown: kept for recover
        refused = cli(repo, "recover", "--key", str(KEYS / "jchen.pem"))
        assert refused.exit_code == 2 and "the journal stays" in refused.output
    recover(repo)
    assert unaccounted(repo, client_dns) == []
    audit_ok(repo)


def test_wrong_tsig_key_changes_nothing(
    repo: Path,
    client_dns: NamedServer,
    sender_dns: NamedServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TEST_BIND_KEY_SECRET", "c2VjcmV0LWJ1dC13cm9uZy1rZXktMDEyMzQ1Njc4OWFi")
    result = cli(
        repo,
        "apply",
        "--plan",
        str(repo / "plan.json"),
        "--key",
        str(KEYS / "jchen.pem"),
        "--emergency",
        "--reason",
        "payroll mail rejected since 09:10",
        "--incident",
        "INC-2041",
    )
    assert result.exit_code == 2 and "TSIG" in result.output
    # Refused while re-planning (the AXFR is refused): no record, no journal, nothing sent.
    assert not (repo / "changes" / "records").exists() or records(repo) == []
    assert not (repo / "changes" / "journal").exists()
    assert unaccounted(repo, client_dns) == []
