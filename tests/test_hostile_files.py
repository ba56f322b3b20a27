"""Every kind of file the repository holds, replaced by each hostile variant, through the real CLI.

Issue 11: "Bad input gets a clear error, never a traceback ... for any file a user or an attacker
can put in the repository". For each (file kind, variant) the commands that read that file run on a
copy of the example portfolio; each must end with its documented exit code (1: bad input), name the
file, write no crash log, print no traceback and no raw control or bidi character, and return
within a time limit (a FIFO must never block a run).

The variants: a symbolic link to /etc/passwd, a symbolic link to a file inside the repository, a
FIFO, a directory, a 2 MB file, a YAML "billion laughs", 990 and 10000 levels of nesting, invalid UTF-8,
NUL bytes, ESC/bidi characters in values, the same in a file name (for files found by listing a
directory), and an empty file.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

import pytest
import yaml
from click.testing import CliRunner, Result
from portfolio import REPO, copy_example
from signing import JCHEN
from test_records import T0, make_record

from pipeline.cli import main
from pipeline.errors import EXIT_CRASH, EXIT_GATE, EXIT_INPUT, EXIT_OK, InputError
from pipeline.records import RecordStore

KEYS = REPO / "tests" / "keys"
REQUEST = "CR-0001-fabrikam-labs"
RECORD = "2026-0001"
JOURNAL = "20261201T080000Z-4242-abcdef.jsonl"
# An escape sequence that clears the screen, an OSC 8 hyperlink, a bell and a right-to-left
# override: what a reviewer's terminal or a pull-request comment must never receive raw.
HOSTILE = "\x1b[2J\x1b]8;;https://evil.example\x07click\x1b]8;;\x07\u202eexe.txt"
RAW_CONTROLS = ("\x1b", "\x07", "\u202e")
SECONDS = 30  # per command; the slowest honest run here takes about one second

BILLION_LAUGHS = "\n".join(
    [
        'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]',
        *(
            f"{chr(ord('a') + i)}: &{chr(ord('a') + i)} [{','.join(['*' + chr(ord('a') + i - 1)] * 9)}]"
            for i in range(1, 9)
        ),
        "",
    ]
)


@dataclass(frozen=True)
class Kind:
    """One kind of file: where it lives, its format and the commands that read it."""

    name: str
    path: str  # relative to the repository; "{plan_hash}" is filled in; PLAN_FILE: outside it
    form: str  # "yaml" | "json" | "jsonl" | "text"
    commands: tuple[tuple[str, ...], ...]
    listed: bool = False  # found by listing a directory: a hostile *name* reaches the run too


PLAN_FILE = "<plan file>"
PLAN_ARG = "{plan}"

KINDS = [
    Kind(
        "zone",
        "zones/fabrikam-labs/fabrikam.example.yaml",
        "yaml",
        (("validate",), ("plan", "--zone", "fabrikam.example")),
        listed=True,
    ),
    Kind(
        "mta-sts policy",
        "zones/fabrikam-labs/fabrikam.example.mta-sts.txt",
        "text",
        (("validate",), ("plan", "--zone", "fabrikam.example")),
    ),
    Kind(
        "sandbox live zone",
        "sandbox/live/fabrikam.example.yaml",
        "yaml",
        (("plan", "--zone", "fabrikam.example"),),
    ),
    Kind(
        "sandbox live mta-sts policy",
        "sandbox/live/fabrikam.example.mta-sts.txt",
        "text",
        (("plan", "--zone", "fabrikam.example"),),
    ),
    Kind("client profile", "policy/clients/fabrikam-labs.yaml", "yaml", (("validate",),), True),
    Kind(
        "client calendar",
        "policy/calendars/fabrikam-labs.yaml",
        "yaml",
        (("validate",),),
        True,
    ),
    Kind("staffing", "policy/staffing.yaml", "yaml", (("validate",),)),
    Kind("ticket template", "policy/templates/dkim-rotation.yaml", "yaml", (("validate",),), True),
    Kind("providers", "policy/providers.yaml", "yaml", (("validate",),)),
    Kind("risk rules", "policy/risk-rules.yaml", "yaml", (("validate",),)),
    Kind("senders", "policy/senders.yaml", "yaml", (("validate",),)),
    Kind("roster", "policy/roster.yaml", "yaml", (("validate",),)),
    Kind("settings", "policy/settings.yaml", "yaml", (("validate",),)),
    Kind("zone schema", "policy/schemas/zone.schema.json", "json", (("validate",),)),
    Kind(
        "change request",
        f"changes/requests/{REQUEST}.yaml",
        "yaml",
        (("requests", "check"), ("validate",)),
        listed=True,
    ),
    Kind(
        "approval",
        f"changes/approvals/{{plan_hash}}/{REQUEST}--mhara.json",
        "json",
        (("requests", "check", "--plan", PLAN_ARG),),
        listed=True,
    ),
    Kind("change record", f"changes/records/{RECORD}.json", "json", (("records", "show", RECORD),)),
    Kind(
        "change records (listed)",
        f"changes/records/{RECORD}.json",
        "json",
        (("records", "list"),),
        listed=True,
    ),
    Kind(
        "change records (audited)",
        f"changes/records/{RECORD}.json",
        "json",
        (("audit", "verify"),),
        listed=True,
    ),
    Kind("ledger", "changes/ledger.jsonl", "jsonl", (("audit", "verify"),)),
    Kind(
        "apply journal",
        f"changes/journal/{JOURNAL}",
        "jsonl",
        (
            ("recover", "--key", str(KEYS / "jchen.pem")),
            ("apply", "--plan", PLAN_ARG, "--key", str(KEYS / "jchen.pem")),
        ),
        listed=True,
    ),
    Kind(
        "plan file (--plan)",
        PLAN_FILE,
        "json",
        (
            ("requests", "check", "--plan", PLAN_ARG),
            ("apply", "--plan", PLAN_ARG, "--key", str(KEYS / "jchen.pem")),
            (
                *("approve", "--plan", PLAN_ARG, "--request", REQUEST),
                *("--key", str(KEYS / "mhara.pem")),
            ),
        ),
    ),
]

# --- building the variants ---------------------------------------------------------------------


def with_hostile_values(data: Any) -> Any:
    """Every string value (not key) with HOSTILE appended: the file still parses, the values
    reach messages, plans and tables."""
    if isinstance(data, dict):
        return {k: with_hostile_values(v) for k, v in data.items()}
    if isinstance(data, list):
        return [with_hostile_values(v) for v in data]
    if isinstance(data, str):
        return data + HOSTILE
    return data


def hostile_values(kind: Kind, original: bytes) -> bytes:
    text = original.decode("utf-8")
    if kind.form == "yaml":
        # safe_dump writes ESC as the escape "\e" inside double quotes: valid YAML whose value
        # holds the raw character once loaded.
        return yaml.safe_dump(with_hostile_values(yaml.safe_load(text)), sort_keys=False).encode()
    if kind.form == "json":
        return json.dumps(with_hostile_values(json.loads(text)), indent=2).encode()
    if kind.form == "jsonl":
        lines = [json.dumps(with_hostile_values(json.loads(line))) for line in text.splitlines()]
        return ("\n".join(lines) + "\n").encode()
    return (text.rstrip("\n") + "\n" + HOSTILE + "\n").encode()


def nested(kind: Kind, levels: int) -> bytes:
    if kind.form == "yaml":
        return ("key: " + "[" * levels + "]" * levels + "\n").encode()
    return ("[" * levels + "]" * levels + "\n").encode()


def huge(kind: Kind, original: bytes) -> bytes:
    # Still well-formed where the format allows it, so only the size can be what is refused.
    if kind.form in ("yaml", "text"):
        return original + b"\n#" + b"x" * (2 * 1024 * 1024) + b"\n"
    if kind.form == "jsonl":
        return original + b" " * (2 * 1024 * 1024) + b"\n"
    return original.rstrip() + b" " * (2 * 1024 * 1024) + b"\n"


Variant = Callable[[Kind, Path, bytes, Path], None]


def _replace(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        path.rmdir()
    elif os.path.lexists(path):
        path.unlink()


def link_outside(kind: Kind, path: Path, original: bytes, repo: Path) -> None:
    _replace(path)
    path.symlink_to("/etc/passwd")


def link_inside(kind: Kind, path: Path, original: bytes, repo: Path) -> None:
    # The content is genuine; only the link is wrong (git stores it as a link, not the file).
    elsewhere = repo / "elsewhere" / path.name
    elsewhere.parent.mkdir(exist_ok=True)
    elsewhere.write_bytes(original)
    _replace(path)
    path.symlink_to(elsewhere)


def linked_directory(kind: Kind, path: Path, original: bytes, repo: Path) -> None:
    """The file's directory moved outside the repository and linked back: the file itself is
    regular, but its real path is elsewhere."""
    outside = repo.parent / "outside" / path.parent.name
    outside.parent.mkdir(exist_ok=True)
    shutil.move(path.parent, outside)
    path.parent.symlink_to(outside)


def fifo(kind: Kind, path: Path, original: bytes, repo: Path) -> None:
    _replace(path)
    os.mkfifo(path)


def directory(kind: Kind, path: Path, original: bytes, repo: Path) -> None:
    _replace(path)
    path.mkdir()
    (path / "inside").write_bytes(original)


def content(make: Callable[[Kind, bytes], bytes]) -> Variant:
    def write(kind: Kind, path: Path, original: bytes, repo: Path) -> None:
        path.write_bytes(make(kind, original))

    return write


def hostile_name(kind: Kind, path: Path, original: bytes, repo: Path) -> None:
    """A second file beside the real one whose name holds the hostile characters."""
    stem, dot, suffix = path.name.partition(".")
    (path.parent / f"{stem}{HOSTILE.replace('/', '_')}{dot}{suffix}").write_bytes(original)


VARIANTS: dict[str, Variant] = {
    "symlink to /etc/passwd": link_outside,
    "symlink inside the repository": link_inside,
    "FIFO": fifo,
    "directory linked outside the repository": linked_directory,
    "directory": directory,
    "2 MB": content(huge),
    "billion laughs": content(lambda kind, original: BILLION_LAUGHS.encode()),
    "nested 10000 levels": content(lambda kind, original: nested(kind, 10_000)),
    # Just under libyaml's own limit of 1000: parsed, then walked recursively (a crash before).
    "nested 990 levels": content(lambda kind, original: nested(kind, 990)),
    "invalid UTF-8": content(lambda kind, original: original + b"\n\xff\xfe\xc3(\n"),
    "NUL bytes": content(lambda kind, original: original[:20] + b"\x00\x00" + original[20:]),
    "ESC and bidi in values": content(hostile_values),
    "ESC and bidi in the file name": hostile_name,
    "empty": content(lambda kind, original: b""),
}

# Variants whose content a command may accept or judge on its merits: any documented ending,
# as long as nothing raw reaches the output. Every other variant is refused as bad input.
JUDGED = {"ESC and bidi in values", "ESC and bidi in the file name"}
# Content that parses is judged on its merits, by the documented rules, not refused as unreadable:
# an MTA-STS policy is text whose lines the M2 rule judges (a finding: exit 2 when the change is
# planned, 0 when it is not); a line of the ledger that is not an entry is a problem `audit verify`
# names (exit 2); an empty zone file is a zone without records (plan: deletions without a request,
# exit 2). Everything else in VARIANTS is refused as bad input (exit 1).
POLICY_CONTENT = {
    "billion laughs",
    "nested 10000 levels",
    "nested 990 levels",
    "NUL bytes",
    "empty",
}
EXPECTED: dict[tuple[str, str], set[int]] = {
    **{("mta-sts policy", v): {EXIT_OK, EXIT_GATE} for v in POLICY_CONTENT},
    **{("sandbox live mta-sts policy", v): {EXIT_OK, EXIT_GATE} for v in POLICY_CONTENT},
    **{("ledger", v): {EXIT_OK, EXIT_GATE} for v in POLICY_CONTENT | {"invalid UTF-8"}},
    ("zone", "empty"): {EXIT_OK, EXIT_GATE},
    # A plan named on the command line outside any repository is held to the default
    # max_log_bytes (64 MiB): 2 MB of it is a plan like any other (approve: already approved).
    ("plan file (--plan)", "2 MB"): {EXIT_OK, EXIT_INPUT, EXIT_GATE},
    # Any journal whose content is readable at all stops apply until it is recovered (exit 2);
    # `recover` refuses one it cannot read (exit 1).
    **{
        ("apply journal", v): {EXIT_INPUT, EXIT_GATE}
        for v in POLICY_CONTENT | {"2 MB", "invalid UTF-8"}
    },
    # A journal directory linked elsewhere still holds a journal: apply refuses to start (exit
    # 2), recover refuses to read it (exit 1).
    ("apply journal", "directory linked outside the repository"): {EXIT_INPUT, EXIT_GATE},
    # An empty journal is one whose begin line never made it: nothing was sent, recover removes
    # it (exit 0); apply then judges the plan as usual.
    ("apply journal", "empty"): {EXIT_OK, EXIT_INPUT, EXIT_GATE},
    # audit verify names a record file it cannot use as an audit problem (exit 2).
    **{("change records (audited)", v): {EXIT_INPUT, EXIT_GATE} for v in VARIANTS},
    ("sandbox live zone", "empty"): {EXIT_OK, EXIT_GATE},
}


def cases() -> Iterator[Any]:
    for kind in KINDS:
        for variant in VARIANTS:
            if variant == "ESC and bidi in the file name" and not kind.listed:
                continue  # a fixed name (policy/providers.yaml): nothing else is read there
            if variant == "directory linked outside the repository" and kind.path == PLAN_FILE:
                continue  # a plan file may live anywhere by design
            if kind.name.startswith("change records (") and variant not in (
                "FIFO",
                "symlink to /etc/passwd",
                "directory",
                "ESC and bidi in the file name",
            ):
                continue  # the content variants are the "change record" kind's
            yield pytest.param(kind, variant, id=f"{kind.name}: {variant}")


# --- running -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def crash_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("state")


@pytest.fixture(scope="module")
def seed(tmp_path_factory: pytest.TempPathFactory, crash_dir: Path) -> Path:
    """The example portfolio with what every kind needs: an MTA-STS policy on both sides, a
    saved plan, an approval of it and a change record with its ledger."""
    repo = copy_example(tmp_path_factory.mktemp("seed") / "repo")
    # The ledger's limit (max_log_bytes, 64 MiB by default) lowered so that 2 MB exceeds it.
    with (repo / "policy/settings.yaml").open("a") as settings:
        settings.write("input_limits:\n  max_log_bytes: 1048576\n")
    policy = "version: STSv1\nmode: testing\nmx: mx1.fabrikam.example\nmax_age: 86400\n"
    (repo / "zones/fabrikam-labs/fabrikam.example.mta-sts.txt").write_text(policy)
    (repo / "sandbox/live/fabrikam.example.mta-sts.txt").write_text(policy)
    plan = repo.parent / "plan.json"
    result = invoke(repo, crash_dir, "plan", "--format", "json", "--out", str(plan))
    assert result.exit_code in (EXIT_OK, EXIT_GATE), result.output
    plan_hash = json.loads(plan.read_text())["plan_hash"]
    approval = invoke(
        repo,
        crash_dir,
        *("approve", "--plan", str(plan), "--request", REQUEST),
        *("--key", str(KEYS / "mhara.pem")),
    )
    assert approval.exit_code == EXIT_OK, approval.output
    assert list((repo / "changes/approvals" / plan_hash).glob("*.json"))
    RecordStore(repo / "changes").create(lambda rid: make_record(rid), T0, JCHEN)
    # An interrupted apply's journal: its begin line only (nothing was sent).
    begin = {
        "event": "begin",
        "format_version": 1,
        "apply_id": JOURNAL.removesuffix(".jsonl"),
        "plan_hash": plan_hash,
        "plan_file": str(plan),
        "by": "jchen",
        "pid": 4242,
        "started_at": "2026-12-01T08:00:00Z",
        "clients": ["fabrikam-labs"],
    }
    (repo / "changes/journal").mkdir()
    (repo / "changes/journal" / JOURNAL).write_text(json.dumps(begin) + "\n")
    assert (repo / "changes/records" / f"{RECORD}.json").is_file()
    return repo


class Hung(Exception):
    pass


@contextmanager
def time_limit(seconds: int) -> Iterator[None]:
    """Interrupts a blocked system call (an open() of a FIFO waits for a writer for ever)."""

    def expire(signum: int, frame: FrameType | None) -> None:
        raise Hung(f"no answer within {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def invoke(repo: Path, crash_dir: Path, *args: str) -> Result:
    with time_limit(SECONDS):
        return CliRunner().invoke(
            main,
            ["--repo", str(repo), *args],
            env={"XDG_STATE_HOME": str(crash_dir), "DMARCOPS_DEBUG": None, "DMARCOPS_NOW": None},
            # As on a terminal: without it click strips escape sequences from what it prints,
            # which would hide a raw ESC from the assertions below.
            color=True,
        )


# What click.style itself writes (colours, bold, reset): the only escape sequences allowed out.
OUR_STYLES = re.compile(r"\x1b\[[0-9;]*m")


def prepare(seed: Path, tmp_path: Path, kind: Kind) -> tuple[Path, Path, Path]:
    """A fresh copy of the seed; the path of the kind's file in it; the plan file."""
    repo = tmp_path / "repo"
    # symlinks=True: the copy is the seed as it is (it holds none); the variants add their own.
    shutil.copytree(seed, repo, symlinks=True)
    plan = tmp_path / "plan.json"
    shutil.copyfile(seed.parent / "plan.json", plan)
    plan_hash = json.loads(plan.read_text())["plan_hash"]
    target = plan if kind.path == PLAN_FILE else repo / kind.path.format(plan_hash=plan_hash)
    assert target.is_file(), f"the seed lacks {target}"
    return repo, target, plan


@pytest.mark.parametrize(("kind", "variant"), list(cases()))
def test_hostile_file(
    seed: Path, tmp_path: Path, crash_dir: Path, kind: Kind, variant: str
) -> None:
    repo, target, plan = prepare(seed, tmp_path, kind)
    original = target.read_bytes()
    VARIANTS[variant](kind, target, original, repo)
    if variant == "ESC and bidi in the file name":
        shown = target.name.partition(".")[0]  # the escaped name starts as the real one does
    elif variant == "directory linked outside the repository":
        shown = f"{target.parent.name}/"  # the first file read from it is named (a sibling, say)
    else:
        shown = target.name
    allowed = EXPECTED.get((kind.name, variant), {EXIT_INPUT})
    if variant in JUDGED:
        allowed = allowed | {EXIT_OK, EXIT_INPUT, EXIT_GATE}
    for command in kind.commands:
        args = tuple(str(plan) if a == PLAN_ARG else a for a in command)
        try:
            result = invoke(repo, crash_dir, *args)
        except Hung as exc:
            pytest.fail(f"{' '.join(args)} hung on the {variant}: {exc}")
        logs = sorted(crash_dir.glob("dmarcops/crash-*.log"))
        details = logs[-1].read_text(errors="replace") if logs else ""
        for log in logs:
            log.unlink()
        output = OUR_STYLES.sub("", result.output)
        assert not logs, f"{' '.join(args)}: crash (exit {result.exit_code}):\n{details}"
        assert isinstance(result.exception, SystemExit | None), result.exc_info
        assert result.exit_code != EXIT_CRASH
        assert result.exit_code in allowed, f"{' '.join(args)}: exit {result.exit_code}\n{output}"
        assert "Traceback" not in output
        for raw in RAW_CONTROLS:
            assert raw not in output, f"{' '.join(args)} printed {raw!r} raw:\n{output!r}"
        if result.exit_code == EXIT_INPUT and (kind.name, variant) not in EXPECTED:
            # A refusal says which file: the reader can act on it.
            assert shown in output, f"{' '.join(args)} does not name {shown}:\n{output}"
        # Nothing outside the repository was shown: /etc/passwd's first line never appears.
        assert "root:x:0:0" not in output


# --- lock files --------------------------------------------------------------------------------


def test_a_linked_lock_file_is_refused_and_its_target_untouched(tmp_path: Path) -> None:
    """changes/.lock and changes/.locks/<client>.lock are opened with O_NOFOLLOW: a lock file
    committed as a link to another file must not create, truncate or write that file."""
    from pipeline.apply.lock import client_lock
    from pipeline.records.ledger import exclusive_lock

    repo = copy_example(tmp_path / "repo")
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    changes = repo / "changes"
    (changes / ".lock").symlink_to(victim)
    with pytest.raises(InputError, match="lock file is a symbolic link"), exclusive_lock(changes):
        pass
    (changes / ".locks").mkdir()
    (changes / ".locks" / "fabrikam-labs.lock").symlink_to(victim)
    with (
        pytest.raises(InputError, match="lock file is a symbolic link"),
        client_lock(changes, "fabrikam-labs"),
    ):
        pass
    dangling = tmp_path / "would-be-created"
    (changes / ".locks" / "contoso-retail.lock").symlink_to(dangling)
    with (
        pytest.raises(InputError, match="lock file is a symbolic link"),
        client_lock(changes, "contoso-retail"),
    ):
        pass
    assert victim.read_text() == "precious\n"
    assert not dangling.exists()


def test_a_fifo_lock_file_does_not_hang(tmp_path: Path) -> None:
    from pipeline.records.ledger import exclusive_lock

    repo = copy_example(tmp_path / "repo")
    os.mkfifo(repo / "changes" / ".lock")
    with (
        time_limit(SECONDS),
        pytest.raises(InputError, match="lock file is a FIFO"),
        exclusive_lock(repo / "changes"),
    ):
        pass


def test_a_linked_locks_directory_is_refused(tmp_path: Path) -> None:
    from pipeline.apply.lock import client_lock

    repo = copy_example(tmp_path / "repo")
    outside = tmp_path / "outside"
    outside.mkdir()
    (repo / "changes" / ".locks").symlink_to(outside)
    with (
        pytest.raises(InputError, match="resolves outside the repository"),
        client_lock(repo / "changes", "fabrikam-labs"),
    ):
        pass
    assert list(outside.iterdir()) == []


def test_a_linked_ledger_is_not_appended_through(tmp_path: Path) -> None:
    """A ledger committed as a link to another file: the audit trail must not be appended to
    that file (and reading it is refused by name)."""
    repo = copy_example(tmp_path / "repo")
    victim = tmp_path / "victim.jsonl"
    victim.write_text("")
    (repo / "changes" / "ledger.jsonl").unlink()  # the example's genesis: replaced by a link
    (repo / "changes" / "ledger.jsonl").symlink_to(victim)
    store = RecordStore(repo / "changes")
    with pytest.raises(InputError, match="symbolic link"):
        store.create(lambda rid: make_record(rid), T0, JCHEN)
    assert victim.read_text() == ""


# --- provider classes --------------------------------------------------------------------------


@pytest.mark.parametrize("callable_path", ["subprocess.getoutput", "os.system"])
def test_a_provider_class_off_the_allow_list_is_refused_before_import(
    tmp_path: Path, crash_dir: Path, callable_path: str
) -> None:
    """`class: subprocess.getoutput` would run the provider's name as a shell command when the
    provider is built (cls(name, **options)); it must be refused before anything is imported."""
    repo = copy_example(tmp_path / "repo")
    marker = tmp_path / "pwned"
    name = f"touch {marker}"
    providers = repo / "policy/providers.yaml"
    data = yaml.safe_load(providers.read_text())
    data["providers"][name] = {"class": callable_path}
    providers.write_text(yaml.safe_dump(data, sort_keys=False))
    line = providers.read_text().splitlines().index(f"    class: {callable_path}") + 1
    client = repo / "policy/clients/fabrikam-labs.yaml"
    profile = yaml.safe_load(client.read_text())
    profile["provider"] = name
    client.write_text(yaml.safe_dump(profile, sort_keys=False))
    for args in (("validate",), ("plan",), ("octodns-config",), ("window", "fabrikam-labs")):
        result = invoke(repo, crash_dir, *args)
        assert result.exit_code == EXIT_INPUT, (args, result.output)
        assert f"class '{callable_path}' is not an octoDNS provider dmarcops supports" in (
            result.output
        )
        assert f"providers.yaml:{line}: provider" in result.output  # file and line of `class:`
        assert not marker.exists(), f"{' '.join(args)} ran the provider's name as a command"


def test_building_a_provider_checks_the_allow_list_itself(tmp_path: Path) -> None:
    """Defence in depth: a ProviderConfig that did not come through the portfolio loader."""
    from pipeline.live.providers import build_provider
    from pipeline.load.portfolio import ProviderConfig

    marker = tmp_path / "pwned"
    config = ProviderConfig(
        f"touch {marker}", {"class": "subprocess.getoutput"}, tmp_path / "providers.yaml", 3
    )
    with pytest.raises(InputError, match="is not an octoDNS provider dmarcops supports"):
        build_provider(config, tmp_path)
    assert not marker.exists()
