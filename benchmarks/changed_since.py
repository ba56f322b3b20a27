"""Benchmark: `dmarcops plan --changed-since HEAD~1` against a full plan, on a generated repository.

    python benchmarks/changed_since.py --domains 1000 --repeat 3 [--keep DIR]

1. Generates a sandbox portfolio of N fictional domains (client0001.example ..., RFC 2606 names),
   ten to a client: client profiles, zone files, and the embedded sandbox's live state
   (sandbox/live/, octoDNS YamlProvider) matching them, with records the pipeline does not own
   beside them. Policy (risk rules, senders, providers, settings, roster, schemas) is the example
   portfolio's. It is committed to a new git repository.
2. A second commit adds a sender (SendGrid) to one domain's SPF record, with the signed change
   request that covers it: the shape of a typical pull request.
3. Times, alternating, K runs each: `dmarcops plan --format json --changed-since HEAD~1`,
   `dmarcops plan --format json` (every zone) and the no-op `--changed-since HEAD` (nothing
   changed: the empty plan, pipeline/commands/noop_plan.py). Wall and CPU time per run.
4. Checks the first two plans hold exactly that one change, and the no-op none.

No DNS server and no credentials: the sandbox provider reads YAML files. This is a benchmark, not
a test; it exits 1 only when a command fails or a plan is not what was generated.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
# The tests' signing helpers: the ledger's genesis sealed by the example's lead, requests signed
# by their authors with the test keys (tests/keys/), as a real repository has them.
sys.path.insert(0, str(ROOT / "tests"))
from signing import genesis, sign_all  # noqa: E402

PER_CLIENT = 10
TARGET_FRACTION = 50  # issue 16: a one-client changed-since plan at most 1/50 of a full plan
NOOP_TARGET = 0.1  # issue 16: a no-op plan starts and finishes in under 0.1 s
NOOP = "no-op changed-since HEAD"
AT = "2026-12-01T09:00:00Z"  # a Tuesday: no example freeze, inside the default window
# A real RSA-2048 DKIM public key (the example portfolio's s2025 selector), so validation is
# judged on a realistic record; reused across domains because it never changes between runs.
DKIM = (
    "v=DKIM1\\; k=rsa\\; p=MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAxrc5n4ts9Etkt/ubilju+5XsgksC"
    "U4LsmiOJ3QTukNGB0XeRVo9ZJdjA9Zacl33k6foXhEWMkPQ5RFVYM2mxNR0Z0b97OU3QjnSHiYtlQu9pVzNcWf51TMNbm"
    "L3PXgrXQZds5CPjlaMabdB9mXVaPTJYyctMbXK9fAHtOeROGL71lnjIoqtPa2XA/gP0wtwH3A7TwSdQg3AKcn1agn77lZ"
    "QPLs6HPc8M6+Okhzd7e7OaAtLG/Ht8K/gjeS1sPFpT+cZLOswPlFDbqP6uTYb1fQiCsacNgOIQnf+/Ztu6xo6kr0H0jdV"
    "EK6X0rLjuj1fThUyrqWr7/JXcr04ZbW9rbQIDAQAB"
)
SPF = "v=spf1 include:_spf.google.com ~all"
SPF_ADDED = "v=spf1 include:_spf.google.com include:sendgrid.net ~all"
GIT_ENV = {
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_AUTHOR_NAME": "Benchmark",
    "GIT_AUTHOR_EMAIL": "bench@msp.example",
    "GIT_COMMITTER_NAME": "Benchmark",
    "GIT_COMMITTER_EMAIL": "bench@msp.example",
}


# As an installed package runs: with its bytecode cached. PYTHONDONTWRITEBYTECODE (set in some
# CI and agent shells) would make every run compile dmarcops's modules again (about 0.3 s).
CHILD_ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def git(repo: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-C", str(repo), *args], check=True, env={**os.environ, **GIT_ENV}, text=True
    )


def dmarc(domain: str, policy: str) -> str:
    return f"v=DMARC1\\; p={policy}\\; rua=mailto:dmarc@{domain}"


def zone_text(domain: str, spf: str = SPF) -> str:
    # Written by hand, not yaml.dump: octoDNS wants the escaped semicolons exactly as shown.
    return (
        "---\n"
        "'':\n"
        "  type: TXT\n"
        f"  value: {spf}\n"
        "_dmarc:\n"
        "  type: TXT\n"
        f"  value: {dmarc(domain, 'none')}\n"
        "s2025._domainkey:\n"
        "  type: TXT\n"
        f"  value: {DKIM}\n"
    )


def live_text(domain: str, index: int) -> str:
    # The same owned records as the zone file, plus what the client owns (A, MX, a token).
    return (
        "---\n"
        "'':\n"
        "  - type: A\n"
        f"    value: 192.0.2.{index % 250 + 1}\n"
        "  - type: MX\n"
        "    value:\n"
        "      exchange: mx1.mailhost.example.net.\n"
        "      preference: 10\n"
        "  - type: TXT\n"
        "    values:\n"
        f"      - google-site-verification=bench-{index:06d}\n"
        "      - v=spf1 include:_spf.google.com ~all\n"
        "_dmarc:\n"
        "  type: TXT\n"
        f"  value: {dmarc(domain, 'none')}\n"
        "s2025._domainkey:\n"
        "  type: TXT\n"
        f"  value: {DKIM}\n"
    )


def generate(dest: Path, domains: int) -> str:
    """Write and commit the portfolio, then the one-zone change. Returns the changed domain."""
    shutil.copytree(
        ROOT / "policy", dest / "policy", ignore=shutil.ignore_patterns("clients", "calendars")
    )
    (dest / "policy" / "clients").mkdir()
    (dest / "sandbox" / "live").mkdir(parents=True)
    (dest / "changes" / "requests").mkdir(parents=True)
    for first in range(1, domains + 1, PER_CLIENT):
        client = f"bench{(first - 1) // PER_CLIENT + 1:03d}"
        names = [
            f"client{i:04d}.example" for i in range(first, min(first + PER_CLIENT, domains + 1))
        ]
        profile = {
            "name": f"Benchmark client {client}",
            "provider": "sandbox",
            "timezone": "UTC",
            "domains": names,
            "team": f"@msp-example/{client}",
        }
        (dest / "policy" / "clients" / f"{client}.yaml").write_text(
            yaml.safe_dump(profile, sort_keys=False), encoding="utf-8"
        )
        (dest / "zones" / client).mkdir(parents=True)
        for offset, name in enumerate(names):
            (dest / "zones" / client / f"{name}.yaml").write_text(zone_text(name))
            (dest / "sandbox" / "live" / f"{name}.yaml").write_text(live_text(name, first + offset))
    # The plan is judged by the sealed policy: without a genesis it refuses every run.
    genesis(dest)
    git(dest, "init", "-q", "-b", "main")
    git(dest, "add", "-A")
    git(dest, "commit", "-q", "-m", f"{domains} zones, matching live DNS")

    changed = f"client{domains // 2:04d}.example"
    client = f"bench{(domains // 2 - 1) // PER_CLIENT + 1:03d}"
    (dest / "zones" / client / f"{changed}.yaml").write_text(zone_text(changed, SPF_ADDED))
    # A new SPF sender: a typical pull request, and one the gate lets through at plan time
    # without aggregate-report evidence (a DMARC p= step up needs it: policy/gate.yaml).
    request = {
        "type": "new-sender",
        "client": client,
        "covers": [f"{changed} @ TXT"],
        "author": "jchen",
        "rationale": "The client's billing team moves invoice mail to SendGrid next week; without "
        "the include its invoices fail SPF and land in spam once p=quarantine is in force.",
        "details": {
            "sender_name": "SendGrid",
            "spf_include": "include:sendgrid.net",
            "dkim_selector": "s1._domainkey and s2._domainkey CNAMEs (next change)",
            "alignment": "From: billing@ the domain, relaxed SPF alignment",
        },
    }
    (dest / "changes" / "requests" / f"CR-0001-{client}.yaml").write_text(
        yaml.safe_dump(request, sort_keys=False), encoding="utf-8"
    )
    sign_all(dest)  # an unsigned request covers nothing: the plan would be refused
    git(dest, "add", "-A")
    git(dest, "commit", "-q", "-m", f"{changed}: SendGrid added to SPF")
    return changed


def run_plan(dmarcops: Path, repo: Path, *extra: str) -> tuple[float, float, dict[str, object]]:
    """Wall seconds, CPU seconds (user + system: less sensitive to other work on the machine)
    and the JSON plan of one `dmarcops plan` run."""
    argv = [str(dmarcops), "--repo", str(repo), "plan", "--format", "json", "--at", AT, *extra]
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        proc = subprocess.Popen(argv, stdout=out, stderr=err, env=CHILD_ENV)
        _, status, usage = os.wait4(proc.pid, 0)
        elapsed = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)  # reaped by us: tell Popen
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(), err.read().decode()
    if proc.returncode != 0:
        sys.exit(f"dmarcops plan {' '.join(extra)} exited {proc.returncode}:\n{stderr}")
    result: dict[str, object] = json.loads(stdout)
    return elapsed, usage.ru_utime + usage.ru_stime, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--domains", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--keep", type=Path, help="Generate here and keep it (must not exist).")
    parser.add_argument(
        "--baseline",
        type=Path,
        help="another `dmarcops` executable (e.g. the venv of the code before a change), run in "
        "the same rounds: before and after alternate under the same load",
    )
    args = parser.parse_args()
    codes = {"": Path(sys.executable).with_name("dmarcops")}
    if args.baseline:
        codes[" (baseline)"] = args.baseline

    work = args.keep or Path(tempfile.mkdtemp(prefix="dmarcops-changed-since-"))
    try:
        started = time.perf_counter()
        changed = generate(work, args.domains)
        print(
            f"generated {args.domains} zones in {work} ({time.perf_counter() - started:.1f} s); "
            f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}"
        )
        runs = [
            (f"{label}{code}", dmarcops, extra)
            for code, dmarcops in codes.items()
            for label, extra in (
                ("changed-since HEAD~1", ("--changed-since", "HEAD~1")),
                ("full", ()),
                (NOOP, ("--changed-since", "HEAD")),
            )
        ]
        times: dict[str, list[float]] = {label: [] for label, _, _ in runs}
        cpu: dict[str, list[float]] = {label: [] for label, _, _ in runs}
        for dmarcops in codes.values():
            run_plan(dmarcops, work, "--changed-since", "HEAD~1")  # warm-up: bytecode caches
        for _ in range(args.repeat):
            for label, dmarcops, extra in runs:
                elapsed, cpu_seconds, plan = run_plan(dmarcops, work, *extra)
                changes = plan["changes"]
                assert isinstance(changes, list)
                found = sorted((c["zone"], c["name"], c["action"]) for c in changes)
                if found != ([] if label.startswith(NOOP) else [(changed, "", "update")]):
                    sys.exit(f"{label}: expected one SPF update in {changed}, got {found}")
                times[label].append(elapsed)
                cpu[label].append(cpu_seconds)
        for label, values in times.items():
            print(
                f"{label:>35}: median {statistics.median(values):6.3f} s  "
                f"(runs: {', '.join(f'{v:.3f}' for v in values)}); "
                f"CPU median {statistics.median(cpu[label]):.3f} s"
            )
        for code in codes:
            full, narrow = f"full{code}", f"changed-since HEAD~1{code}"
            cpu_ratio = statistics.median(cpu[full]) / statistics.median(cpu[narrow])
            ratio = statistics.median(times[full]) / statistics.median(times[narrow])
            verdict = "ok" if ratio >= TARGET_FRACTION else "MISSED"
            print(
                f"changed-since{code} is 1/{ratio:.1f} of the full plan (target "
                f"1/{TARGET_FRACTION} or less: {verdict}); by CPU 1/{cpu_ratio:.1f}"
            )
            noop = statistics.median(times[f"{NOOP}{code}"])
            print(
                f"no-op plan{code}: {noop:.3f} s (target under {NOOP_TARGET} s: "
                f"{'ok' if noop < NOOP_TARGET else 'MISSED'})"
            )
        print(f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
