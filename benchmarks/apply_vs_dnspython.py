"""`dmarcops apply` of N approved changes against sending the same RFC 2136 updates with dnspython.

    .venv/bin/python benchmarks/apply_vs_dnspython.py                      # 250 changes, 5 rounds
    .venv/bin/python benchmarks/apply_vs_dnspython.py --changes 50 --repeat 5
    .venv/bin/python benchmarks/apply_vs_dnspython.py --profile /tmp/apply.prof --repeat 1

Builds, on loopback:

- one `named` (tests/dns_server.NamedServer) serving `--changes * 4/5` zones `d0001.example`...,
  ten to a client, each with A, MX, an apex SPF and a DMARC record;
- a dmarcops repository whose zone files add `include:sendgrid.net` to every zone's SPF and,
  on every 4th zone, create a TLS-RPT record (`_smtp._tls`): N changes in all (200 zones and
  250 changes for N=250). One signed change request per change (authors jchen and sokafor), a
  peer approval by mhara of each, the ledger begun as `dmarcops init` begins it, a saved plan.

Then, alternating (the order flips every round), with the live zones reset in between:

- dmarcops: `python tests/run_at.py 2026-12-01T10:05:00Z --repo R apply --plan P --key jchen.pem`
  on a fresh copy of the repository (a Tuesday inside the clients' default window; run_at.py
  stands in for a machine whose clock reads that time). Everything the command does is timed:
  interpreter start, imports, gate, re-plan from live DNS, journal, records, updates, checks.
- dnspython: a child process that, per zone, sends one TSIG-signed UPDATE over TCP holding the
  zone's changes, then asks one UDP query per changed record and compares the answer.

Both must leave the same values live (checked after every run) and dmarcops must write one
executed record per request, every item verified. Prints the median and minimum of each and the
ratio of the medians. A benchmark, not a test: exits 1 only when a run fails or its result is wrong.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

PLAN_AT = "2026-12-01T10:00:00Z"  # a Tuesday: inside the default window (Tue-Thu 09-12 local)
APPLY_AT = "2026-12-01T10:05:00Z"
APPROVED_AT = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
TTL = 300
ENV_PREFIX = "BENCH_APPLY_"
KEYS = ROOT / "tests" / "keys"
AUTHORS = ("jchen", "sokafor")
APPROVER = "mhara"


def zone_name(i: int) -> str:
    return f"d{i:04d}.example"


def client_of(i: int) -> str:
    return f"c{i // 10:03d}"


def old_spf() -> str:
    return "v=spf1 include:_spf.google.com ~all"


def new_spf() -> str:
    return "v=spf1 include:_spf.google.com include:sendgrid.net ~all"


def dmarc(zone: str) -> str:
    return f"v=DMARC1; p=reject; rua=mailto:dmarc@{zone}"


def tlsrpt(zone: str) -> str:
    return f"v=TLSRPTv1; rua=mailto:tlsrpt@{zone}"


def layout(changes: int) -> list[dict[str, Any]]:
    """The zones and their changes: every zone's SPF; every 4th zone also a TLS-RPT record,
    so N changes fall on N*4/5 zones."""
    zones = changes * 4 // 5
    out = []
    for i in range(1, zones + 1):
        zone = zone_name(i)
        items = [{"name": "@", "before": [old_spf()], "after": [new_spf()]}]
        if i % 4 == 0:
            items.append({"name": "_smtp._tls", "before": [], "after": [tlsrpt(zone)]})
        out.append({"zone": zone, "client": client_of(i), "items": items})
    total = sum(len(z["items"]) for z in out)
    # Top up or trim the TLS-RPT creates so the total is exactly N.
    for z in reversed(out):
        if total <= changes:
            break
        if len(z["items"]) == 2:
            z["items"].pop()
            total -= 1
    for z in out:
        if total >= changes:
            break
        if len(z["items"]) == 1:
            z["items"].append({"name": "_smtp._tls", "before": [], "after": [tlsrpt(z["zone"])]})
            total += 1
    return out


def live_spec(zone: str) -> list[tuple[str, str, str, int]]:
    return [
        ("@", "A", "192.0.2.1", TTL),
        ("@", "MX", f"10 mx.{zone}.", TTL),
        ("@", "TXT", old_spf(), TTL),
        ("_dmarc", "TXT", dmarc(zone), TTL),
    ]


def zone_file(z: dict[str, Any]) -> str:
    def entry(name: str, value: str) -> str:
        escaped = value.replace(";", "\\;")
        return f"{name}:\n  ttl: {TTL}\n  type: TXT\n  value: {escaped}\n"

    text = "---\n" + entry("''", new_spf()) + entry("_dmarc", dmarc(z["zone"]))
    if len(z["items"]) == 2:
        text += entry("_smtp._tls", tlsrpt(z["zone"]))
    return text


def write_repo(repo: Path, zones: list[dict[str, Any]]) -> int:
    """The repository before the apply; returns the number of change requests."""
    from signing import SIGNED_AT, genesis, signer

    from pipeline.gate.authoring import sign_request

    for part in ("schemas", "risk-rules.yaml", "senders.yaml", "roster.yaml"):
        src = ROOT / "policy" / part
        if src.is_dir():
            shutil.copytree(src, repo / "policy" / part)
        else:
            (repo / "policy").mkdir(parents=True, exist_ok=True)
            shutil.copy(src, repo / "policy" / part)
    (repo / "policy" / "providers.yaml").write_text(
        "providers:\n  bind:\n    class: octodns_bind.Rfc2136Provider\n"
        + "".join(
            f"    {key}: env/{ENV_PREFIX}{key.upper()}\n"
            for key in ("host", "port", "key_name", "key_secret")
        )
        + "    key_algorithm: hmac-sha256\n"
    )
    by_client: dict[str, list[str]] = {}
    for z in zones:
        by_client.setdefault(z["client"], []).append(z["zone"])
    (repo / "policy" / "clients").mkdir()
    for client, names in by_client.items():
        (repo / "policy" / "clients" / f"{client}.yaml").write_text(
            f"name: Benchmark Client {client}\ntimezone: UTC\nprovider: bind\n"
            f"domains: [{', '.join(names)}]\n"
        )
    requests = repo / "changes" / "requests"
    requests.mkdir(parents=True)
    keys = {author: signer(author, repo) for author in AUTHORS}
    number = 0
    for z in zones:
        (repo / "zones" / z["client"]).mkdir(parents=True, exist_ok=True)
        (repo / "zones" / z["client"] / f"{z['zone']}.yaml").write_text(zone_file(z))
        for item in z["items"]:
            number += 1
            rid = f"CR-{number:04d}-{z['client']}"
            what = (
                "adds SendGrid to the SPF record"
                if item["name"] == "@"
                else "publishes a TLS-RPT record"
            )
            request = {
                "type": "other",
                "client": z["client"],
                "covers": [f"{z['zone']} {item['name']} TXT"],
                "author": AUTHORS[number % 2],
                "rationale": f"The client starts sending invoices through SendGrid from "
                f"{z['zone']}; this request {what} so receivers see the new path authorised "
                "and report on it.",
            }
            (requests / f"{rid}.yaml").write_text(json.dumps(request))
            # As its author (tests/signing.py's sign_as_author, without reading every request
            # again to find this one).
            sign_request(repo, rid, keys[request["author"]], SIGNED_AT)
    genesis(repo)
    return number


def add_history(repo: Path, count: int) -> None:
    """`count` earlier change records (sealed, signed ledger lines after the repository's
    genesis, as benchmarks/audit_scale.py builds them), then the record index built, as any
    earlier command leaves it."""
    from audit_scale import append_sealed

    from pipeline.records.store import RecordStore

    store = RecordStore(repo / "changes")
    append_sealed(store, count)
    store.reindex()


def approve_all(repo: Path, plan_file: Path) -> None:
    """mhara's signed peer approval of every request for this plan hash (what `dmarcops approve`
    writes, made in-process: 250 CLI runs would only time the setup)."""
    from signing import signer

    from pipeline.gate.approvals import load_plan_file, sign, write_approval
    from pipeline.gate.request_loader import load_requests

    plan = load_plan_file(plan_file)
    key = signer(APPROVER, repo)
    for request in load_requests(repo):
        write_approval(
            repo, sign(key, plan.plan_hash, request.id, APPROVER, APPROVED_AT, request.sha256)
        )


def bind_env(named: Any) -> dict[str, str]:
    # As installed packages run: with bytecode cached (compile_once writes it), even where the
    # shell sets PYTHONDONTWRITEBYTECODE (dnspython's was compiled by pip; dmarcops is an
    # editable install). With it, every dmarcops run compiled its ~170 modules again: 0.5 s of
    # CPU that an installed dmarcops never spends.
    return {
        **{k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"},
        f"{ENV_PREFIX}HOST": named.host,
        f"{ENV_PREFIX}PORT": str(named.port),
        f"{ENV_PREFIX}KEY_NAME": named.key_name,
        f"{ENV_PREFIX}KEY_SECRET": named.key_secret,
    }


# --- talking to named directly ------------------------------------------------------------------


def _keyring(key_name: str, secret: str) -> Any:
    import dns.tsigkeyring

    return dns.tsigkeyring.from_text({key_name: secret})


def _fqdn(name: str, zone: str) -> str:
    return f"{zone}." if name == "@" else f"{name}.{zone}."


def _txt(value: str) -> str:
    # A TXT rdata in zone-file text: one quoted string per 255 octets.
    chunks = [value[i : i + 255] for i in range(0, len(value), 255)] or [""]
    return " ".join('"' + c.replace("\\", "\\\\").replace('"', '\\"') + '"' for c in chunks)


def send_updates(
    host: str, port: int, key_name: str, secret: str, zones: list[dict[str, Any]], side: str
) -> None:
    """One UPDATE per zone over TCP putting `side` (before|after) of each item live."""
    import dns.query
    import dns.rcode
    import dns.update

    keyring = _keyring(key_name, secret)
    for z in zones:
        update = dns.update.UpdateMessage(
            f"{z['zone']}.", keyring=keyring, keyalgorithm="hmac-sha256"
        )
        for item in z["items"]:
            values = item[side]
            name = _fqdn(item["name"], z["zone"])
            if values:
                update.replace(name, TTL, "TXT", *(_txt(v) for v in values))
            else:
                update.delete(name, "TXT")
        answer = dns.query.tcp(update, host, port=port, timeout=10)
        if answer.rcode() != dns.rcode.NOERROR:
            raise RuntimeError(f"{z['zone']}: {dns.rcode.to_text(answer.rcode())}")


def served(host: str, port: int, fqdn: str) -> list[str]:
    import dns.message
    import dns.query

    answer = dns.query.udp(dns.message.make_query(fqdn, "TXT"), host, port=port, timeout=5)
    return sorted(b"".join(rdata.strings).decode() for rrset in answer.answer for rdata in rrset)


def wrong_values(host: str, port: int, zones: list[dict[str, Any]], side: str) -> list[str]:
    """The items whose served values are not `side`: empty when every one is live."""
    out = []
    for z in zones:
        for item in z["items"]:
            fqdn = _fqdn(item["name"], z["zone"])
            got = served(host, port, fqdn)
            if got != sorted(item[side]):
                out.append(f"{fqdn} serves {got}, expected {sorted(item[side])}")
    return out


def raw_main(spec_file: str) -> int:
    """The dnspython side, in a child process of its own (so it pays its own interpreter start
    and imports, as dmarcops does): update each zone, then check each record."""
    spec = json.loads(Path(spec_file).read_text())
    send_updates(
        spec["host"], spec["port"], spec["key_name"], spec["key_secret"], spec["zones"], "after"
    )
    wrong = wrong_values(spec["host"], spec["port"], spec["zones"], "after")
    if wrong:
        print("\n".join(wrong), file=sys.stderr)
        return 1
    return 0


# --- the runs -----------------------------------------------------------------------------------


def compile_once(code: Path = ROOT) -> None:
    """dmarcops's bytecode, written once before the timed runs, as pip writes it at install."""
    subprocess.run(
        [sys.executable, "-m", "compileall", "-q", str(code / "pipeline")],
        check=True,
        stdout=subprocess.DEVNULL,
    )


def timed(argv: list[str], env: dict[str, str], log: Path) -> tuple[float, float]:
    """The child's wall time and its CPU time (user + system, from `os.wait4`): on a shared
    machine the wall time of the same command swings with other work, its CPU time far less."""
    began = time.monotonic()
    with log.open("wb") as out:
        child = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(child.pid, 0)
        child.returncode = os.waitstatus_to_exitcode(status)
    elapsed = time.monotonic() - began
    if child.returncode != 0:
        raise SystemExit(
            f"{argv[1]} exited {child.returncode}; see {log}:\n{log.read_text()[-3000:]}"
        )
    return elapsed, usage.ru_utime + usage.ru_stime


def check_records(repo: Path, requests: int, earlier: int = 0) -> None:
    records = [json.loads(p.read_text()) for p in (repo / "changes" / "records").glob("*.json")]
    if len(records) != requests + earlier:
        raise SystemExit(f"{len(records)} records; expected {earlier} earlier + {requests} new")
    # The apply's own: those of the applied plan (the earlier ones are of another).
    plan = json.loads((repo / "plan.json").read_text())["plan_hash"]
    executed = [r for r in records if r.get("executed_at") and r.get("plan_hash") == plan]
    checks = [c for r in executed for c in r.get("verification", [])]
    if len(executed) != requests or len(checks) != requests:
        raise SystemExit(
            f"dmarcops wrote {len(executed)} executed records with {len(checks)} checks; "
            f"expected {requests} of each"
        )
    bad = [c for c in checks if c.get("status") != "verified"]
    if bad:
        raise SystemExit(f"dmarcops left {len(bad)} item(s) unverified: {bad[:3]}")
    if list((repo / "changes" / "journal").glob("*.jsonl")):
        raise SystemExit("dmarcops left a journal behind")


PHASES = (
    ("imports (pipeline.cli)", "pipeline/cli.py", "<module>"),
    ("whole command", "pipeline/commands/apply.py", "apply"),
    ("  re-plan from live DNS", "pipeline/plan/build.py", "make_plan"),
    ("  gate (requests, approvals)", "pipeline/apply/gating.py", "gate_requests"),
    ("  records opened", "pipeline/records/store.py", "create_many"),
    ("  send + verify", "pipeline/apply/execute.py", "apply_plan"),
    ("    provider calls", "pipeline/apply/execute.py", "_send"),
    ("  records finished", "pipeline/records/store.py", "update_many"),
    ("    record files (group commit)", "pipeline/records/record_files.py", "write_all_atomic"),
    ("    ledger lines + index", "pipeline/records/store_base.py", "_append_records"),
    ("fsync (main thread)", "~", "<built-in method posix.fsync>"),
)


def phases(profile: Path) -> None:
    """Where the profiled apply spent its time (cProfile sees the main thread: the checks and the
    record files' writes run in pools and show as waiting in `send + verify` and in the group
    commit). Profiling slows Python code ~1.5x."""
    import pstats

    stats = pstats.Stats(str(profile)).stats  # type: ignore[attr-defined]
    print("| phase (one profiled apply) | calls | cumulative s |")
    print("|---|---:|---:|")
    for label, path, function in PHASES:
        calls, seconds = 0, 0.0
        for (file, _, name), (_, ncalls, _, cumulative, _) in stats.items():
            if file.endswith(path) and name == function:
                calls += ncalls
                seconds += cumulative
        print(f"| {label} | {calls} | {seconds:.2f} |")


def code_version() -> str:
    def git(*argv: str) -> str:
        done = subprocess.run(["git", "-C", str(ROOT), *argv], capture_output=True, text=True)
        return done.stdout.strip()

    return git("rev-parse", "--short", "HEAD") + (
        " (dirty)" if git("status", "--porcelain") else ""
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--changes", type=int, default=250)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--keep", type=Path, help="keep the repository and the logs here")
    parser.add_argument(
        "--profile", type=Path, help="also run one apply under cProfile, writing this file"
    )
    parser.add_argument(
        "--spy",
        type=Path,
        help="also run one apply under `py-spy record --idle --threads --format raw`, writing "
        "its collapsed stacks (wall time, every thread) to this file",
    )
    parser.add_argument(
        "--history",
        type=int,
        default=0,
        help="also apply in a copy holding this many earlier change records (0: not)",
    )
    parser.add_argument(
        "--cold-index",
        action="store_true",
        help="with --history: also apply there with the record index removed first, as in a "
        "fresh clone (.dmarcops/ is not committed): the first command builds it",
    )
    parser.add_argument(
        "--baseline",
        type=Path,
        help="also apply with the dmarcops of this directory (another commit's checkout, "
        "e.g. `git archive COMMIT | tar -x -C DIR`), in the same rounds",
    )
    parser.add_argument(
        "--stages",
        action="store_true",
        help="run every apply through benchmarks/apply_stages.py and print, per command, the "
        "median wall and CPU time of each stage of it",
    )
    parser.add_argument("--raw", help=argparse.SUPPRESS)  # the dnspython child
    args = parser.parse_args()
    if args.raw:
        return raw_main(args.raw)

    from dns_server import NamedServer

    zones = layout(args.changes)
    work = args.keep or Path(tempfile.mkdtemp(prefix="apply-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    named = NamedServer({z["zone"]: live_spec(z["zone"]) for z in zones})
    # SIGTERM (a timeout, a cancelled job) ends the run through `finally`, so named is stopped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    named.start()
    try:
        env = bind_env(named)
        os.environ.update({k: v for k, v in env.items() if k.startswith(ENV_PREFIX)})
        base = work / "base"
        shutil.rmtree(base, ignore_errors=True)
        began = time.monotonic()
        requests = write_repo(base, zones)
        plan_file = base / "plan.json"
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pipeline.cli",
                "--repo",
                str(base),
                "plan",
                "--format",
                "json",
                "--out",
                str(plan_file),
                "--at",
                PLAN_AT,
            ],
            env=env,
            check=True,
            stdout=subprocess.DEVNULL,
        )
        planned = json.loads(plan_file.read_text())["changes"]
        if len(planned) != args.changes:
            raise SystemExit(f"the plan holds {len(planned)} changes, expected {args.changes}")
        approve_all(base, plan_file)
        bases = {"": base}
        if args.history:
            bases["history"] = work / "base-history"
            shutil.rmtree(bases["history"], ignore_errors=True)
            shutil.copytree(base, bases["history"])
            add_history(bases["history"], args.history)
        print(
            f"setup: {len(zones)} zones, {args.changes} changes, {requests} requests "
            f"({time.monotonic() - began:.1f} s)",
            flush=True,
        )
        spec = work / "raw.json"
        spec.write_text(
            json.dumps(
                {
                    "host": named.host,
                    "port": named.port,
                    "key_name": named.key_name,
                    "key_secret": named.key_secret,
                    "zones": zones,
                }
            )
        )
        logs = work / "runs"
        logs.mkdir(exist_ok=True)
        compile_once()

        def reset() -> None:
            send_updates(named.host, named.port, named.key_name, named.key_secret, zones, "before")
            wrong = wrong_values(named.host, named.port, zones, "before")
            if wrong:
                raise SystemExit("reset failed: " + "; ".join(wrong[:3]))

        staged: dict[str, list[dict[str, list[float]]]] = {}

        def run_dmarcops(
            round_: int,
            profile: Path | None = None,
            history: str = "",
            code: Path = ROOT,
            variant: str = "",
        ) -> tuple[float, float]:
            repo = work / f"repo-{round_}"
            shutil.rmtree(repo, ignore_errors=True)
            shutil.copytree(bases["history" if history == "cold" else history], repo)
            if history == "cold":
                shutil.rmtree(repo / ".dmarcops")
            if history:
                # The copy's ledger was just written (its ctime): the index trusts a ledger file
                # changed more than 2 s ago only (pipeline/records/index_ledger.py), as a
                # repository's ledger between two commands is. Untimed.
                time.sleep(2.1)
            python = [sys.executable]
            if profile is not None and profile.suffix != ".spy":
                python += ["-m", "cProfile", "-o", str(profile)]
            elif profile is not None:
                spy = Path(sys.executable).with_name("py-spy")
                python = [str(spy), "record", "--idle", "--threads", "--format", "raw"]
                python += ["--rate", "250", "-o", str(profile), "--", sys.executable]
            stages = work / "stages.json"
            launcher = [str(code / "tests" / "run_at.py")]
            if args.stages and variant:
                # This checkout's launcher, the variant's dmarcops (PYTHONPATH below).
                launcher = [str(ROOT / "benchmarks" / "apply_stages.py"), str(stages)]
            measured = timed(
                [
                    *python,
                    *launcher,
                    APPLY_AT,
                    "--repo",
                    str(repo),
                    "apply",
                    "--plan",
                    str(repo / "plan.json"),
                    "--key",
                    str(KEYS / "jchen.pem"),
                ],
                # Another checkout's package first on the path (ahead of this one's install).
                {**env, "PYTHONPATH": str(code)} if code != ROOT else env,
                logs / f"dmarcops-{round_}.log",
            )
            wrong = wrong_values(named.host, named.port, zones, "after")
            if wrong:
                raise SystemExit("dmarcops left wrong values: " + "; ".join(wrong[:3]))
            check_records(repo, requests, args.history if history else 0)
            if args.stages and variant:
                staged.setdefault(variant, []).append(json.loads(stages.read_text()))
            if not args.keep:
                shutil.rmtree(repo)
            return measured

        def run_raw(round_: int) -> tuple[float, float]:
            return timed(
                [sys.executable, __file__, "--raw", str(spec)], env, logs / f"raw-{round_}.log"
            )

        # Each variant: (the base repository, the code that applies).
        variants: dict[str, tuple[str, Path]] = {"dmarcops apply": ("", ROOT)}
        if args.history:
            variants[f"dmarcops apply, {args.history} earlier records"] = ("history", ROOT)
            if args.cold_index:
                variants[f"dmarcops apply, {args.history} earlier records, no index"] = (
                    "cold",
                    ROOT,
                )
        if args.baseline:
            compile_once(args.baseline.resolve())
            variants["baseline apply"] = ("", args.baseline.resolve())
            if args.history:
                variants[f"baseline apply, {args.history} earlier records"] = (
                    "history",
                    args.baseline.resolve(),
                )
        names = [*variants, "dnspython"]
        times: dict[str, list[float]] = {k: [] for k in names}
        cpu: dict[str, list[float]] = {k: [] for k in names}
        for round_ in range(args.repeat):
            # The order rotates each round: no variant always runs first (a cold cache) or last.
            order = names[round_ % len(names) :] + names[: round_ % len(names)]
            for which in order:
                reset()
                if which == "dnspython":
                    wall, used = run_raw(round_)
                else:
                    history, code = variants[which]
                    wall, used = run_dmarcops(round_, history=history, code=code, variant=which)
                times[which].append(wall)
                cpu[which].append(used)
            print(
                f"round {round_ + 1}: "
                + ", ".join(f"{k} {v[-1]:.2f} s (CPU {cpu[k][-1]:.2f} s)" for k, v in times.items())
                + f"; load {os.getloadavg()[0]:.2f}",
                flush=True,
            )
        if args.profile is not None:
            reset()
            run_dmarcops(args.repeat, args.profile)
            print(f"profile of one apply: {args.profile}")
            phases(args.profile)
        if args.spy is not None:
            reset()
            run_dmarcops(args.repeat + 1, args.spy.with_suffix(".spy"))
            args.spy.with_suffix(".spy").replace(args.spy)
            print(f"py-spy stacks of one apply: {args.spy}")
    finally:
        named.stop()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)

    print(
        f"\ncommit {code_version()}; {os.cpu_count()} CPUs; load average "
        f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}; {args.repeat} rounds\n"
    )
    for variant, runs in staged.items():
        print(
            f"\nStages of `{variant}` (median of {len(runs)} runs; benchmarks/apply_stages.py):\n"
        )
        print("| stage | calls | wall s | CPU s |")
        print("|---|---:|---:|---:|")
        for stage in runs[0]:
            got = [run.get(stage, [0, 0.0, 0.0]) for run in runs]
            print(
                f"| {stage} | {int(statistics.median(g[0] for g in got))} "
                f"| {statistics.median(g[1] for g in got):.3f} "
                f"| {statistics.median(g[2] for g in got):.3f} |"
            )
    print()
    print("| command | median s | min s | median CPU s | wall / dnspython | CPU / dnspython |")
    print("|---|---:|---:|---:|---:|---:|")
    raw_wall, raw_cpu = statistics.median(times["dnspython"]), statistics.median(cpu["dnspython"])
    for name, values in times.items():
        wall, used = statistics.median(values), statistics.median(cpu[name])
        print(
            f"| {name} | {wall:.2f} | {min(values):.2f} | {used:.2f} "
            f"| {wall / raw_wall:.2f} | {used / raw_cpu:.2f} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
