"""Fuzzing every input the CLI reads: record values, zone and policy files, change requests,
approval files, plan files and command-line arguments, through the real CLI (CliRunner) on a copy
of the example portfolio (sandbox provider: no DNS, no server).

Each run must end the documented way (docs/exit-codes.md): exit 0, 1 or 2, no crash log written
(the crash handler fires only on a bug, exit 70) and, when a command that writes refused, not one
byte changed in the repository.

In the test suite the examples are few and derandomized (the same every run, within ~60 s in all);
scripts/fuzz-night runs the same strategies with many random examples (DMARCOPS_FUZZ_EXAMPLES).
"""

from __future__ import annotations

import hashlib
import json
import os
import string
import tempfile
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
import pytest
import yaml
from click.testing import CliRunner, Result
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from portfolio import REPO, copy_example

from pipeline.cli import main
from pipeline.commands.common import set_debug
from pipeline.diff import dkim
from pipeline.diff.errors import RecordSyntaxError
from pipeline.errors import EXIT_CRASH, EXIT_GATE, EXIT_INPUT, EXIT_OK

KEYS = REPO / "tests" / "keys"
ZONE = "zones/fabrikam-labs/fabrikam.example.yaml"
REQUEST = "CR-0001-fabrikam-labs"

# The suite: derandomized (a fixed seed: the same examples on every machine) and bounded. The
# night run (scripts/fuzz-night) loads "night": random, as many examples as it is told.
# `scratch` is function-scoped on purpose: each example makes its own directory below it.
SUPPRESSED = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.function_scoped_fixture]
settings.register_profile(
    "ci",
    derandomize=True,
    deadline=None,
    database=None,
    print_blob=True,
    suppress_health_check=SUPPRESSED,
)
settings.register_profile(
    "night",
    derandomize=False,
    deadline=None,
    database=None,
    print_blob=True,
    suppress_health_check=SUPPRESSED,
)
settings.load_profile(os.environ.get("DMARCOPS_FUZZ_PROFILE", "ci"))


def examples(in_suite: int) -> int:
    """Examples per test: a few in the suite, DMARCOPS_FUZZ_EXAMPLES in the night run."""
    return int(os.environ.get("DMARCOPS_FUZZ_EXAMPLES", in_suite))


ALLOWED = {EXIT_OK, EXIT_INPUT, EXIT_GATE}


# --- the harness ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def crash_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """XDG_STATE_HOME of every run: a crash log under it means the crash handler fired."""
    return tmp_path_factory.mktemp("state")


@pytest.fixture(scope="module")
def valid_plan(tmp_path_factory: pytest.TempPathFactory, crash_dir: Path) -> dict[str, Any]:
    """The example portfolio's JSON plan, the seed that plan-file mutations start from."""
    repo = copy_example(tmp_path_factory.mktemp("seed"))
    out = repo / "plan.json"
    result = run(repo, crash_dir, "plan", "--format", "json", "--out", str(out))
    assert result.exit_code in (EXIT_OK, EXIT_GATE), result.output
    plan: dict[str, Any] = json.loads(out.read_text(encoding="utf-8"))
    assert plan["changes"], "the seed plan must have changes for the mutations to reach"
    return plan


@pytest.fixture
def scratch() -> Iterator[Path]:
    """A throw-away directory per example (hypothesis reuses function fixtures across examples,
    so each example makes its own below this one)."""
    with tempfile.TemporaryDirectory(prefix="fuzz-") as directory:
        yield Path(directory)


def fresh_repo(scratch: Path) -> Path:
    return copy_example(Path(tempfile.mkdtemp(dir=scratch)) / "repo")


# Runtime state git ignores (.gitignore): the flock files of apply's per-client lock and of the
# record store's lock, which stay behind empty, and .dmarcops/, where the rebuildable record index
# (a cache a read may build; never the source of truth, docs/audit-trail.md) and the report store
# live; not part of the repository's content.
IGNORED = (  # covers changes/.locks/ too
    "changes/.lock",
    "repo/changes/.lock",
    ".dmarcops",
    "repo/.dmarcops",
)


def snapshot(root: Path) -> dict[str, str]:
    """Every file under root with the hash of its content (symlinks by their target)."""
    out: dict[str, str] = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        if rel.startswith(IGNORED):
            continue
        if path.is_symlink():
            out[rel] = "-> " + os.readlink(path)
        elif path.is_file():
            out[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
        elif path.is_dir():
            out[rel + "/"] = "dir"
    return out


def run(repo: Path, crash_dir: Path, *args: str) -> Result:
    return CliRunner().invoke(
        main,
        ["--repo", str(repo), *args],
        env={"XDG_STATE_HOME": str(crash_dir), "DMARCOPS_DEBUG": None, "DMARCOPS_NOW": None},
    )


def check_ended_well(result: Result, crash_dir: Path, args: tuple[str, ...]) -> None:
    """A documented exit code, no crash log, no traceback: a bug shows as exit 70 and a log."""
    logs = sorted(crash_dir.glob("dmarcops/crash-*.log"))
    details = logs[-1].read_text(encoding="utf-8", errors="replace") if logs else ""
    for log in logs:  # one bug must not fail every later example too
        log.unlink()
    tally = os.environ.get("DMARCOPS_FUZZ_TALLY")
    unhandled = not (result.exception is None or isinstance(result.exception, SystemExit))
    if tally and (logs or unhandled or result.exit_code not in ALLOWED):
        # Counting mode (scripts/fuzz-night --tally): note the crash site and go on, so that one
        # run counts every traceback of the corpus instead of stopping at the first.
        with open(tally, "a", encoding="utf-8") as out:
            if unhandled and not details:  # a crash the handler did not catch at all
                details = "".join(traceback.format_exception(*result.exc_info))  # type: ignore[misc]
            out.write(json.dumps({"args": args, "exit": result.exit_code, "log": details}) + "\n")
        return
    assert not logs, f"crash handler fired for {args!r}:\n{details}"
    assert result.exit_code in ALLOWED, (
        f"exit {result.exit_code} for {args!r}: {result.output}\n{result.exc_info}"
    )
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exc_info
    assert "Traceback" not in result.output


def run_checked(
    repo: Path, crash_dir: Path, *args: str, writes: bool = False, root: Path | None = None
) -> Result:
    """Run; check the ending; when the command writes and did not succeed, nothing changed."""
    watched = root or repo
    before = snapshot(watched)
    result = run(repo, crash_dir, *args)
    check_ended_well(result, crash_dir, args)
    if writes and result.exit_code != EXIT_OK:
        assert snapshot(watched) == before, f"{args!r} refused (exit {result.exit_code}) but wrote"
    elif not writes:
        assert snapshot(watched) == before, f"read-only {args!r} changed the repository"
    return result


# --- strategies -------------------------------------------------------------------------------

# Characters a parser trips on: controls (NUL, escape, DEL, C1), separators, non-ASCII digits
# that str.isdigit() accepts and int() may too, bidi and zero-width marks, surrogate-free exotics.
HOSTILE_CHARS = st.sampled_from(
    list("\x00\x01\x07\x08\t\n\v\f\r\x1b\x7f\x85\xa0\u2028\u2029\u200b\u202e\ufeff")
    + list(";=:,\"'\\ {}[]#&*!|>%@`-")
    + list("٠١٢٣٤٥٦٧٨٩０５９²³¹߀०๒")  # Arabic-Indic, fullwidth, superscripts, NKo, Devanagari
)
hostile_text = st.text(
    alphabet=st.one_of(HOSTILE_CHARS, st.characters(codec="utf-8", exclude_categories=["Cs"])),
    max_size=40,
)
non_ascii_number = st.text(alphabet=st.characters(categories=["Nd", "No"]), min_size=1, max_size=6)
# Huge values without making hypothesis build them character by character.
huge = st.builds(
    lambda unit, n: unit * n,
    st.sampled_from(["a", "9", "v=spf1 ", "include:a.example ", "\\;", "é", "p=none; "]),
    st.integers(1_000, 70_000),
)
number = st.one_of(
    st.integers(-(10**20), 10**20).map(str),
    non_ascii_number,
    st.sampled_from(["0", "100", "-1", "1e3", "0x10", "NaN", "inf", "50.5", " 50", ""]),
)
domain = st.one_of(
    st.sampled_from(
        ["fabrikam.example", "sendgrid.net", "_spf.google.com", "a..b", ".", "", "xn--", "*"]
    ),
    hostile_text,
    st.from_regex(r"[a-z0-9-]{1,70}(\.[a-z0-9-]{1,70}){0,5}", fullmatch=True),
)
uri = st.one_of(
    st.builds(lambda d: f"mailto:dmarc@{d}", domain),
    st.builds(lambda d, n: f"mailto:r@{d}!{n}m", domain, number),
    st.builds(lambda d: f"https://{d}/logo.svg", domain),
    hostile_text,
)
tag_value = st.one_of(number, uri, domain, hostile_text, huge, st.sampled_from(["none", "reject"]))

KIND_NAMES = {
    "dmarc": (
        "_dmarc",
        "v=DMARC1",
        ["p", "sp", "np", "pct", "rua", "ruf", "adkim", "aspf", "fo", "ri", "rf", "t", "psd"],
    ),
    "dkim": ("s2025._domainkey", "v=DKIM1", ["k", "p", "h", "s", "t", "n", "g"]),
    "bimi": ("default._bimi", "v=BIMI1", ["l", "a", "avp"]),
    "mta-sts": ("_mta-sts", "v=STSv1", ["id"]),
    "tls-rpt": ("_smtp._tls", "v=TLSRPTv1", ["rua"]),
}


@st.composite
def tag_list_value(draw: st.DrawFn, kind: str) -> str:
    _, version, tags = KIND_NAMES[kind]
    first = draw(st.one_of(st.just(version), st.just(version.lower()), hostile_text))
    pairs = draw(
        st.lists(st.tuples(st.one_of(st.sampled_from(tags), hostile_text), tag_value), max_size=8)
    )
    separator = draw(st.sampled_from(["; ", ";", " ; ", ";;", ",", "\\; "]))
    return separator.join([first, *(f"{k}={v}" for k, v in pairs)])


@st.composite
def spf_value(draw: st.DrawFn) -> str:
    mechanism = st.one_of(
        st.builds(
            lambda q, d: f"{q}include:{d}", st.sampled_from(["", "+", "-", "~", "?"]), domain
        ),
        st.builds(
            lambda a, b, c, d, m: f"ip4:{a}.{b}.{c}.{d}/{m}", number, number, number, number, number
        ),
        st.builds(
            lambda h, m: f"ip6:{h}/{m}",
            st.sampled_from(["2001:db8::", "::", ":::", "g::1"]),
            number,
        ),
        st.sampled_from(["a", "mx", "ptr", "-all", "~all", "?all", "+all", "all", "exists:%{i}.x"]),
        st.builds(lambda d: f"redirect={d}", domain),
        st.builds(lambda d: f"exp={d}", domain),
        st.builds(lambda d, m: f"a:{d}/{m}", domain, number),
        hostile_text,
    )
    head = draw(st.sampled_from(["v=spf1", "V=SPF1", "v=spf1 ", "v=spf2", "spf1", ""]))
    return " ".join([head, *draw(st.lists(mechanism, max_size=12))])


record_value = st.one_of(
    *(
        st.tuples(st.just(KIND_NAMES[k][0]), tag_list_value(k))
        for k in ("dmarc", "dkim", "bimi", "mta-sts", "tls-rpt")
    ),
    st.tuples(st.just(""), spf_value()),
    st.tuples(st.sampled_from(["", "_dmarc", "s2025._domainkey", "_smtp._tls"]), huge),
    st.tuples(st.sampled_from(["", "_dmarc", "_mta-sts", "default._bimi"]), hostile_text),
)

json_scalar = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    hostile_text,
)
json_value = st.recursive(
    json_scalar,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(hostile_text, inner, max_size=4)
    ),
    max_leaves=12,
)
RECORD_TYPES = ["TXT", "CNAME", "MX", "A", "AAAA", "NS", "SPF", "CAA", "txt", "ALIAS", "SRV"]


@st.composite
def zone_shape(draw: st.DrawFn) -> object:
    """A zone file's shape (name -> record or list of records) with hostile content."""
    record = st.fixed_dictionaries(
        {"type": st.one_of(st.sampled_from(RECORD_TYPES), json_value)},
        optional={
            "value": st.one_of(json_value, record_value.map(lambda r: r[1])),
            "values": st.lists(st.one_of(json_value, record_value.map(lambda r: r[1])), max_size=3),
            "ttl": st.one_of(st.integers(-5, 2**40), json_value),
            "octodns": json_value,
        },
    )
    names = st.one_of(
        st.sampled_from(["", "_dmarc", "s2025._domainkey", "_mta-sts", "_smtp._tls", "www", "*"]),
        hostile_text,
    )
    return draw(
        st.one_of(
            st.dictionaries(names, st.one_of(record, st.lists(record, max_size=2)), max_size=4),
            json_value,
        )
    )


def dump_yaml(data: object) -> str:
    try:
        return yaml.safe_dump(data, allow_unicode=True, sort_keys=False)
    except yaml.YAMLError:  # e.g. a float key: not a shape YAML can write; write it as JSON
        return json.dumps(data)


@st.composite
def mutated_text(draw: st.DrawFn, original: str) -> str:
    """The original file with a slice replaced by hostile text: mostly valid, locally broken."""
    start = draw(st.integers(0, len(original)))
    end = draw(st.integers(start, min(len(original), start + 40)))
    return original[:start] + draw(st.one_of(hostile_text, huge)) + original[end:]


def file_content(original: str) -> st.SearchStrategy[bytes]:
    return st.one_of(
        zone_shape().map(lambda d: dump_yaml(d).encode("utf-8", "surrogatepass")),
        mutated_text(original).map(lambda t: t.encode("utf-8", "surrogatepass")),
        st.binary(max_size=200),
        st.sampled_from(
            [
                b"",
                b"\xff\xfe",
                b"a: &a [*a]",
                b"!!python/object:os.system {}",
                b"--- |\n  x\n--- y\n",
                b"\t- x",
                b"a: 1\na: 2\n",
                b"? [a]\n: b\n",
            ]
        ),
    )


POLICY_FILES = [
    ZONE,
    "sandbox/live/fabrikam.example.yaml",
    "policy/providers.yaml",
    "policy/clients/fabrikam-labs.yaml",
    "policy/roster.yaml",
    "policy/settings.yaml",
    "policy/risk-rules.yaml",
    "policy/senders.yaml",
    f"changes/requests/{REQUEST}.yaml",
]


# --- record values ----------------------------------------------------------------------------


@settings(max_examples=examples(120))
@given(name_and_value=record_value, escape=st.booleans(), many=st.booleans())
@example(name_and_value=("_dmarc", "v=DMARC1; p=reject; pct=١٠٠"), escape=True, many=False)
@example(name_and_value=("", "v=spf1 ip4:1.2.3.4/٣٢ -all"), escape=True, many=False)
@example(name_and_value=("_dmarc", "v=DMARC1; p=none; rua=mailto:a@b!１m"), escape=True, many=False)
# Crashed with "ValueError: string argument should contain only ASCII characters" in dkim._decode.
@example(name_and_value=("s2025._domainkey", "v=DKIM1; k=rsa; p=MIIB٣"), escape=True, many=False)
def test_record_values(
    scratch: Path, crash_dir: Path, name_and_value: tuple[str, str], escape: bool, many: bool
) -> None:
    name, value = name_and_value
    repo = fresh_repo(scratch)
    zone = yaml.safe_load((repo / ZONE).read_text(encoding="utf-8"))
    written = value.replace(";", "\\;") if escape else value
    zone[name] = {"type": "TXT", **({"values": [written, "v=x"]} if many else {"value": written})}
    (repo / ZONE).write_text(dump_yaml(zone), encoding="utf-8", errors="surrogatepass")
    run_checked(repo, crash_dir, "validate")
    run_checked(repo, crash_dir, "plan", "--format", "json", "--zone", "fabrikam.example")


# --- zone and policy files --------------------------------------------------------------------


@settings(max_examples=examples(150))
@given(data=st.data(), target=st.sampled_from(POLICY_FILES))
@example(data=None, target="policy/providers.yaml").via("a provider config that is a list")
def test_zone_and_policy_files(
    scratch: Path, crash_dir: Path, data: st.DataObject | None, target: str
) -> None:
    repo = fresh_repo(scratch)
    path = repo / target
    original = path.read_text(encoding="utf-8")
    content = b"- 1\n" if data is None else data.draw(file_content(original), label="content")
    path.write_bytes(content)
    run_checked(repo, crash_dir, "validate")
    run_checked(repo, crash_dir, "plan", "--format", "text")
    run_checked(repo, crash_dir, "requests", "check")
    run_checked(repo, crash_dir, "window", "fabrikam-labs")


# --- change requests --------------------------------------------------------------------------

request_fields = st.fixed_dictionaries(
    {},
    optional={
        "type": st.one_of(
            st.sampled_from(["new-sender", "policy-progression", "other", "emergency-rollback"]),
            json_value,
        ),
        "client": st.one_of(st.sampled_from(["fabrikam-labs", "nobody"]), json_value),
        "covers": st.one_of(
            st.lists(
                st.one_of(
                    st.sampled_from(
                        ["fabrikam.example", "fabrikam.example @ TXT", "fabrikam.example _dmarc"]
                    ),
                    hostile_text,
                ),
                max_size=3,
            ),
            json_value,
        ),
        "author": st.one_of(st.sampled_from(["jchen", "mhara", "ghost"]), json_value),
        "rationale": st.one_of(
            st.just("DMARC aggregate reports show 99.4% alignment for 21 days across senders."),
            hostile_text,
            huge,
            json_value,
        ),
        "requested_risk": st.one_of(st.sampled_from(["low", "high"]), json_value),
        "rollback_of": st.one_of(st.just("2026-0001"), json_value),
        "evidence": json_value,
        "client_approval": json_value,
        "details": json_value,
    },
)
request_id = st.one_of(
    st.just(REQUEST),
    st.just("CR-0099-fabrikam-labs"),
    st.text(alphabet=string.ascii_letters + string.digits + "-_.é ", min_size=1, max_size=30),
)


@settings(max_examples=examples(100))
@given(fields=request_fields, rid=request_id, raw=st.booleans())
def test_change_requests(
    scratch: Path, crash_dir: Path, fields: dict[str, Any], rid: str, raw: bool
) -> None:
    repo = fresh_repo(scratch)
    text = json.dumps(fields) if raw else dump_yaml(fields)  # JSON is YAML too
    target = repo / "changes" / "requests" / f"{rid}.yaml"
    if target.name.startswith("."):
        target = target.with_name("x" + target.name)
    target.write_text(text, encoding="utf-8", errors="surrogatepass")
    run_checked(repo, crash_dir, "requests", "check")
    run_checked(repo, crash_dir, "plan", "--format", "markdown")


# --- plan files (approve, apply, requests check --plan) ---------------------------------------


def rehash(plan: Any) -> Any:
    """Give a mutated plan the hash of its changes, as pipeline.gate.approvals computes it, so
    the mutation reaches past the hash check. Left as it is when the changes cannot be hashed
    (then the loader must refuse them itself)."""
    try:
        normalised = sorted(
            [
                str(c["zone"]),
                str(c["name"]),
                str(c["type"]),
                sorted(str(v) for v in c["before"]),
                sorted(str(v) for v in c["after"]),
                c["ttl"]["before"],
                c["ttl"]["after"],
            ]
            for c in plan["changes"]
        )
        canonical = json.dumps(normalised, separators=(",", ":"), ensure_ascii=True)
        plan["plan_hash"] = hashlib.sha256(canonical.encode()).hexdigest()
    except (KeyError, TypeError, ValueError, AttributeError, IndexError):
        pass
    return plan


@st.composite
def mutated_plan(draw: st.DrawFn, plan: dict[str, Any]) -> bytes:
    choice = draw(st.sampled_from(["field", "change-field", "drop", "json", "bytes", "cut"]))
    data = json.loads(json.dumps(plan))
    if choice == "field":
        data[draw(st.sampled_from([*data, "extra"]))] = draw(json_value)
    elif choice == "change-field":
        change = data["changes"][draw(st.integers(0, len(data["changes"]) - 1))]
        key = draw(
            st.sampled_from(
                [
                    "zone",
                    "name",
                    "type",
                    "before",
                    "after",
                    "ttl",
                    "risk",
                    "client",
                    "action",
                    "kind",
                ]
            )
        )
        change[key] = draw(
            st.one_of(json_value, st.just({"before": [1], "after": "x"}), st.just(["a", 1]))
        )
    elif choice == "drop":
        change = data["changes"][0]
        change.pop(draw(st.sampled_from(sorted(change))))
    elif choice == "json":
        data = draw(json_value)
    if choice in ("field", "change-field", "drop") and draw(st.booleans()):
        data = rehash(data)
    if choice == "bytes":
        return draw(st.binary(max_size=300))
    text = json.dumps(data, ensure_ascii=draw(st.booleans()))
    if choice == "cut":
        text = text[: draw(st.integers(0, len(text)))]
    return text.encode("utf-8", "surrogatepass")


@settings(max_examples=examples(120))
@given(data=st.data())
def test_plan_files(
    scratch: Path, crash_dir: Path, valid_plan: dict[str, Any], data: st.DataObject
) -> None:
    repo = fresh_repo(scratch)
    plan_file = scratch / f"plan-{os.urandom(4).hex()}.json"
    plan_file.write_bytes(data.draw(mutated_plan(valid_plan), label="plan"))
    run_checked(repo, crash_dir, "requests", "check", "--plan", str(plan_file))
    approve = (
        *("approve", "--plan", str(plan_file), "--request", REQUEST),
        *("--key", str(KEYS / "mhara.pem")),
    )
    run_checked(repo, crash_dir, *approve, writes=True)
    run_checked(
        repo,
        crash_dir,
        "apply",
        "--plan",
        str(plan_file),
        "--key",
        str(KEYS / "jchen.pem"),
        writes=True,
    )


# --- approval files ---------------------------------------------------------------------------


@st.composite
def approval_content(draw: st.DrawFn, plan_hash: str) -> bytes:
    valid: dict[str, Any] = {
        "format_version": 1,
        "plan_hash": plan_hash,
        "request_id": REQUEST,
        "analyst": "mhara",
        "approved_at": "2026-12-01T08:40:00Z",
        "source": "signed",
        "signature": "A" * 86 + "==",
    }
    choice = draw(st.sampled_from(["field", "drop", "json", "bytes"]))
    if choice == "field":
        valid[draw(st.sampled_from(sorted(valid)))] = draw(
            st.one_of(json_value, st.sampled_from(["2026-02-30T00:00:00Z", "github", "sokafor"]))
        )
    elif choice == "drop":
        valid.pop(draw(st.sampled_from(sorted(valid))))
    elif choice == "json":
        return json.dumps(draw(json_value)).encode("utf-8", "surrogatepass")
    else:
        return draw(st.binary(max_size=200))
    return json.dumps(valid).encode("utf-8", "surrogatepass")


@settings(max_examples=examples(80))
@given(data=st.data(), analyst=st.sampled_from(["mhara", "sokafor", "ghost", "MHARA"]))
def test_approval_files(
    scratch: Path,
    crash_dir: Path,
    valid_plan: dict[str, Any],
    data: st.DataObject,
    analyst: str,
) -> None:
    repo = fresh_repo(scratch)
    plan_file = scratch / f"plan-{os.urandom(4).hex()}.json"
    plan_file.write_text(json.dumps(valid_plan), encoding="utf-8")
    plan_hash = valid_plan["plan_hash"]
    directory = repo / "changes" / "approvals" / plan_hash
    directory.mkdir(parents=True)
    content = data.draw(approval_content(plan_hash), label="approval")
    (directory / f"{REQUEST}--{analyst}.json").write_bytes(content)
    run_checked(repo, crash_dir, "requests", "check", "--plan", str(plan_file))
    run_checked(
        repo,
        crash_dir,
        "apply",
        "--plan",
        str(plan_file),
        "--key",
        str(KEYS / "jchen.pem"),
        writes=True,
    )


# --- command-line arguments -------------------------------------------------------------------

# Commands that talk to GitHub are left out (they need its API); so is --nameserver, whose random
# hosts would make each example wait for DNS timeouts. Path values never hold "/" so that a
# random --out cannot write outside the example's directory.
SKIPPED_COMMANDS = {"github"}
SKIPPED_OPTIONS = {"--nameserver", "--repo", "--wait", "--verify-timeout"}
WRITING_COMMANDS = {
    "approve",
    "apply",
    "rollback",
    "close",
    "review",
    "new",
    "keygen",
    "codeowners",
}
# `reports ingest` writes the report store, `reports evidence` an evidence file; `reports
# summary` is read-only. A refused (or entirely failed) run of either still writes nothing.
WRITING_SUBCOMMANDS = {("audit", "anchor"), ("reports", "ingest"), ("reports", "evidence")}


def command_paths(group: click.Group, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    paths: list[tuple[str, ...]] = []
    for name, command in sorted(group.commands.items()):
        if name in SKIPPED_COMMANDS:
            continue
        if isinstance(command, click.Group):
            paths.extend(command_paths(command, (*prefix, name)))
        else:
            paths.append((*prefix, name))
    return paths


def options_of(path: tuple[str, ...]) -> list[str]:
    command: click.Command = main
    for name in path:
        assert isinstance(command, click.Group)
        command = command.commands[name]
    return sorted(
        {
            opt
            for param in command.params
            if isinstance(param, click.Option)
            for opt in param.opts
            if opt not in SKIPPED_OPTIONS
        }
    )


COMMAND_PATHS = command_paths(main)
argument_text = st.one_of(
    st.sampled_from(
        [
            "fabrikam-labs",
            "fabrikam.example",
            REQUEST,
            "jchen",
            "mhara",
            "2026-0001",
            "2026-12-01",
            "2026-12-01T10:00:00Z",
            "json",
            "markdown",
            "low",
            "reject",
            "fabrikam.example _dmarc TXT",
            "new-sender",
            "-",
            "--",
            "-h",
            "plan.json",
            "0",
            "-1",
            "1e309",
            "nan",
            "success",
            "\x00",
            "é",
            "\udcff",
        ]
    ),
    hostile_text.filter(lambda t: "/" not in t),
    non_ascii_number,
)


@st.composite
def command_line(draw: st.DrawFn) -> tuple[str, ...]:
    path = draw(st.sampled_from(COMMAND_PATHS))
    options = options_of(path)
    tokens: list[str] = []
    for _ in range(draw(st.integers(0, 6))):
        if options and draw(st.booleans()):
            tokens.append(draw(st.sampled_from(options)))
        tokens.append(draw(argument_text))
    return (*path, *tokens)


@settings(max_examples=examples(200))
@given(argv=command_line())
@example(argv=("window", "fabrikam-labs", "--at", "\x00"))
@example(argv=("plan", "--concurrency", "٣"))
@example(argv=("records", "show", "\udcff"))
def test_command_line(scratch: Path, crash_dir: Path, argv: tuple[str, ...]) -> None:
    workdir = Path(tempfile.mkdtemp(dir=scratch))
    repo = copy_example(workdir / "repo")
    cwd = Path.cwd()
    os.chdir(workdir)  # a relative --out or --key lands in the example's own directory
    try:
        run_checked(
            repo,
            crash_dir,
            *argv,
            writes=argv[0] in WRITING_COMMANDS or tuple(argv[:2]) in WRITING_SUBCOMMANDS,
            root=workdir,
        )
    finally:
        os.chdir(cwd)


# --- the ending itself ------------------------------------------------------------------------


def test_usage_errors_exit_1_not_2(tmp_path: Path, crash_dir: Path) -> None:
    """click's own exit 2 would read as "a gate refused"."""
    for args in (("plan", "--bogus"), ("nosuch",), ("plan", "--at", "tomorrow"), ("approve",)):
        result = run(copy_example(tmp_path / "-".join(args).strip("-")), crash_dir, *args)
        assert result.exit_code == EXIT_INPUT, result.output
        assert "--help' for help" in result.output  # says what to do


def test_nul_byte_in_an_argument_is_an_input_error(tmp_path: Path, crash_dir: Path) -> None:
    """A NUL reached os.stat through click.Path and raised ValueError: a crash before the fix."""
    result = CliRunner().invoke(
        main, ["--repo", "x\x00y", "validate"], env={"XDG_STATE_HOME": str(crash_dir)}
    )
    assert result.exit_code == EXIT_INPUT
    assert "argument 2" in result.output and "NUL byte" in result.output
    assert not list(
        crash_dir.glob("dmarcops/crash-*.log")
    )  # (the record index key lives there too)


def crashing_root() -> click.Group:
    """A root command of the same class and --debug option as dmarcops's, with a command that
    has a bug (the real commands' bugs are what the fuzz tests above look for)."""

    @click.group(cls=type(main), name="dmarcops")
    @click.option("--debug", is_flag=True, is_eager=True, expose_value=False, callback=set_debug)
    def root() -> None:
        pass

    @root.command()
    def boom() -> None:
        raise RuntimeError(f"provider said key_secret: {SECRET} and -----BEGIN PRIVATE KEY-----x")

    @root.command()
    def interrupted() -> None:
        raise KeyboardInterrupt

    return root


SECRET = "c2VjcmV0LXRzaWcta2V5LW1hdGVyaWFsLTEyMzQ1Njc4"


def test_interrupted_run_is_one_line_and_130(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        crashing_root(), ["interrupted"], env={"XDG_STATE_HOME": str(tmp_path)}
    )
    assert result.exit_code == 130
    assert result.output.strip() == "interrupted: stopped by Ctrl-C (nothing further was done)"
    assert not list(tmp_path.rglob("crash-*"))


def test_a_bug_writes_a_redacted_crash_log(tmp_path: Path) -> None:
    env = {
        "XDG_STATE_HOME": str(tmp_path),
        "DMARCOPS_BIND_KEY_SECRET": SECRET,
        "SOME_BLOB": "Zm9vYmFyYmF6cXV4cXV1eGNvcmdlZ3JhdWx0",
        "HARMLESS": "plain words",
        "DMARCOPS_DEBUG": None,
    }
    result = CliRunner().invoke(crashing_root(), ["boom"], env=env)
    assert result.exit_code == EXIT_CRASH
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "RuntimeError" in lines[0] and "crash-" in lines[0]
    assert "Traceback" not in result.output
    (log,) = (tmp_path / "dmarcops").glob("crash-*.log")
    assert str(log) in lines[0]
    text = log.read_text(encoding="utf-8")
    assert "Traceback" in text and "RuntimeError" in text and "in boom" in text
    assert SECRET not in text and "Zm9vYmFyYmF6cXV4cXV1eGNvcmdlZ3JhdWx0" not in text
    assert "HARMLESS=plain words" in text and "DMARCOPS_BIND_KEY_SECRET=<redacted>" in text
    assert "key_secret: <redacted>" in text and "-----BEGIN" not in text
    assert log.stat().st_mode & 0o777 == 0o600


def test_crash_log_falls_back_to_the_temp_dir(tmp_path: Path) -> None:
    blocked = tmp_path / "blocked"
    blocked.write_text("a file where the state directory should be")
    result = CliRunner().invoke(
        crashing_root(), ["boom"], env={"XDG_STATE_HOME": str(blocked), "DMARCOPS_DEBUG": None}
    )
    assert result.exit_code == EXIT_CRASH
    shown = Path(result.output.split("details in ")[1].split(". Please")[0])
    try:
        assert shown.parent == Path(tempfile.gettempdir()) / "dmarcops"
        assert "RuntimeError" in shown.read_text(encoding="utf-8")
    finally:
        shown.unlink()


def test_debug_shows_the_traceback_instead(tmp_path: Path) -> None:
    for args, env in ((["--debug", "boom"], None), (["boom"], "1")):
        result = CliRunner().invoke(
            crashing_root(), args, env={"XDG_STATE_HOME": str(tmp_path), "DMARCOPS_DEBUG": env}
        )
        # The exception goes on up (CliRunner catches it; Python would print the traceback).
        assert isinstance(result.exception, RuntimeError), result.output
        assert not list(tmp_path.rglob("crash-*"))


# --- regressions found by the fuzzing (plain tests, so each names what it fixed) --------------


def test_recursive_yaml_alias_is_an_input_error(tmp_path: Path, crash_dir: Path) -> None:
    """`a: &a [*a]` walked for ever in pipeline.load.yamlfile (RecursionError, a crash)."""
    repo = copy_example(tmp_path)
    (repo / ZONE).write_text("_dmarc: &a\n  - *a\n", encoding="utf-8")
    result = run_checked(repo, crash_dir, "validate")
    assert result.exit_code == EXIT_INPUT
    assert "fabrikam.example.yaml:1:9: the value anchored here holds an alias to itself" in (
        result.output
    )


def test_non_ascii_dkim_key_is_a_finding(tmp_path: Path, crash_dir: Path) -> None:
    """A fullwidth or Arabic-Indic digit in a live key's p= crashed base64 decoding (ValueError).
    (octoDNS refuses non-ASCII in a zone file first; the live side reaches the parser.)"""
    repo = copy_example(tmp_path)
    live = repo / "sandbox/live/fabrikam.example.yaml"
    zone = yaml.safe_load(live.read_text(encoding="utf-8"))
    zone["s2025._domainkey"] = {"type": "TXT", "value": "v=DKIM1\\; k=rsa\\; p=MIIB٣"}
    live.write_text(dump_yaml(zone), encoding="utf-8")
    result = run_checked(repo, crash_dir, "plan", "--zone", "fabrikam.example")
    assert result.exit_code == EXIT_GATE, result.output  # the update has no change request
    assert "dkim.unparsed v=DKIM1; k=rsa; p=MIIB٣->" in result.output
    with pytest.raises(RecordSyntaxError, match="outside ASCII") as caught:
        dkim.parse("v=DKIM1; k=rsa; p=MIIB٣")
    assert caught.value.code == "K2"


def test_plan_out_into_a_missing_directory_is_an_input_error(
    tmp_path: Path, crash_dir: Path
) -> None:
    """--out in a directory that does not exist was a FileNotFoundError crash."""
    repo = copy_example(tmp_path / "repo")
    out = tmp_path / "missing" / "plan.json"
    result = run_checked(repo, crash_dir, "plan", "--out", str(out))
    assert result.exit_code == EXIT_INPUT
    assert "plan.json: cannot write the plan: No such file or directory" in result.output
    assert "a directory that exists" in result.output


def test_json_errors_name_line_and_column(tmp_path: Path, crash_dir: Path) -> None:
    repo = copy_example(tmp_path / "repo")
    plan_file = tmp_path / "plan.json"
    plan_file.write_text('{"plan_hash": "x",\n  "changes": [1,, 2]}', encoding="utf-8")
    result = run_checked(repo, crash_dir, "requests", "check", "--plan", str(plan_file))
    assert result.exit_code == EXIT_INPUT
    assert "plan.json:2:17: not a JSON plan: JSON syntax error: Expecting value" in result.output
    assert "dmarcops plan --out plan.json" in result.output
