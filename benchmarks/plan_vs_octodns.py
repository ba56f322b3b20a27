"""Benchmark: `dmarcops plan` against a plain `octodns-sync` dry run, same zones, same BIND 9.

    python benchmarks/plan_vs_octodns.py --domains 1000 --repeat 5 [--keep DIR]
    python benchmarks/plan_vs_octodns.py --domains 1000 --serve   # servers only, to profile

1. Generates N fictional client domains (client0001.example ..., RFC 2606 names), ten to a
   client. Each gets a realistic live zone (SOA/NS, A, MX, www, apex TXT with a verification
   token and SPF, _dmarc, one or two RSA-2048 DKIM selectors, sometimes _smtp._tls), all loaded
   into ONE `named` on loopback, and a dmarcops zone file that matches live DNS except on ~20% of
   the domains (DMARC policy progression, an SPF sender added, a new DKIM selector).
2. Serves the test suite's third-party sender zones (tests/conftest.py SENDER_ZONES) in a second
   `named`, so dmarcops counts SPF lookups through DNS as in production.
3. Times, alternating within one run, K repeats each: `dmarcops plan --format json` and
   `octodns-sync` (a dry run) with octoDNS's default max_workers (1) and with max_workers set to
   dmarcops's concurrency. Wall time per run, and peak RSS per child from GNU time (see timed()).
4. Checks dmarcops's JSON: exactly the generated changes, nothing more, nothing less. Each
   change has the change request the plan gate asks for (changes/requests/), so the plan is the
   one an analyst would get, exit 0.

This is a benchmark, not a test: it prints figures and exits 1 only when a command fails or the
plan does not contain the generated changes. See benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import random
import re
import shutil
import signal
import statistics
import string
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from natsort import natsort_keygen

ROOT = Path(__file__).resolve().parent.parent
# The test helpers are the reference for how BIND is run and what the sender zones hold.
sys.path.insert(0, str(ROOT / "tests"))
from conftest import SENDER_ZONES  # noqa: E402
from dns_server import NamedServer  # noqa: E402
from signing import KEYS, SIGNED_AT, genesis  # noqa: E402

from pipeline.gate.identity import Signer, load_signer  # noqa: E402
from pipeline.gate.request_loader import collect_requests  # noqa: E402
from pipeline.gate.requests import RequestSignature, signature_path  # noqa: E402
from pipeline.gate.roster import load_roster  # noqa: E402

LIVE_TTL = 3600  # owned records: the zone files leave ttl out, and YamlProvider defaults to 3600
OTHER_TTL = 300  # A/MX/www: not owned, their TTL never matters to the plan
DIFFER_SHARE = 0.2
TARGET_RATIO = 1.0  # issue 16: a full plan at or below octodns-sync's dry run
ENV_PREFIX = "BENCH_BIND_"
# One ordering for every record-name list we write: octoDNS's enforce_order uses natsort.
NATSORT = natsort_keygen()

# Apex SPF as clients have it: few enough lookups that one more sender stays within 10.
BASE_SPF = (
    ("include:_spf.google.com",),
    ("include:spf.protection.outlook.com",),
    ("include:_spf.google.com", "include:sendgrid.net"),
    ("include:spf.protection.outlook.com", "include:spf.mandrillapp.com"),
    ("ip4:192.0.2.0/24", "include:_spf.google.com"),
)
# Senders a client adds, with their names in policy/senders.yaml.
EXTRA_SENDERS = {
    "include:sendgrid.net": "SendGrid",
    "include:spf.mandrillapp.com": "Mailchimp Transactional",
    "include:mail.zendesk.com": "Zendesk",
    "include:mailgun.org": "Mailgun",
}
# The usual progression. A changed domain moves one step up inside p=quarantine (pct 25 -> 50 or
# 50 -> 100): a step to another p= needs aggregate-report evidence (policy/gate.yaml
# report_evidence), which a generated portfolio has no reports for.
DMARC_STEPS = ("p=none", "p=quarantine; pct=25", "p=quarantine; pct=50", "p=quarantine", "p=reject")
PCT_STEPS = (1, 2)  # indexes into DMARC_STEPS whose next step only raises pct
LIVE_SELECTORS = ("google", "s2024", "k1", "selector1")
NEW_SELECTOR = "s2026"
# all-reports.test authorises reports for any domain (conftest), so external rua is looked up.
EXTERNAL_RUA = "mailto:agg@all-reports.test"
# Kinds of difference between desired and live; "dmarc+spf" changes two records.
CHANGE_KINDS = ("dmarc", "spf", "dkim", "dmarc+spf")


# --- generated portfolio -------------------------------------------------------------------


@dataclass
class Domain:
    client: str
    name: str
    live: list[tuple[str, str, str, int]] = field(default_factory=list)  # for NamedServer
    desired: dict[str, tuple[str, str]] = field(default_factory=dict)  # name -> (type, text)
    dkim_active: list[str] = field(default_factory=list)
    dkim_scheduled: list[str] = field(default_factory=list)
    expected: dict[tuple[str, str], str] = field(default_factory=dict)  # (name, type) -> action
    # One change request per changed record: (type, `covers:` selector, rationale, details).
    requests: list[tuple[str, str, str, dict[str, str]]] = field(default_factory=list)


def dkim_keys(count: int) -> list[str]:
    """Real RSA-2048 public keys (base64 SubjectPublicKeyInfo); a few, reused across domains,
    because generating one per domain would only time key generation."""
    keys = []
    for _ in range(count):
        public = rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key()
        der = public.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        keys.append(base64.b64encode(der).decode())
    return keys


def token(rng: random.Random, length: int) -> str:
    return "".join(rng.choice(string.ascii_letters + string.digits + "-_") for _ in range(length))


def make_domain(
    index: int, client: str, rng: random.Random, keys: list[str], change: str | None, today: str
) -> Domain:
    name = f"client{index:04d}.example"
    d = Domain(client, name)
    changes = set(change.split("+")) if change else set()

    # Records the pipeline does not own: in live DNS only, never in the zone files.
    d.live += [
        ("@", "A", f"192.0.2.{index % 250 + 1}", OTHER_TTL),
        ("www", "A", f"198.51.100.{index % 250 + 1}", OTHER_TTL),
        ("@", "MX", f"10 mx{index % 3 + 1}.mailhost.example.net.", OTHER_TTL),
        ("@", "TXT", f"google-site-verification={token(rng, 43)}", LIVE_TTL),
    ]

    spf_terms = list(rng.choice(BASE_SPF))
    spf_all = rng.choice(("~all", "-all"))
    live_spf = " ".join(["v=spf1", *spf_terms, spf_all])
    if "spf" in changes:
        added = rng.choice([s for s in EXTRA_SENDERS if s not in spf_terms])
        spf_terms.append(added)
        d.expected[("", "TXT")] = "update"
        d.requests.append(
            (
                "new-sender",
                f"{name} @ TXT",
                f"{name} moves its invoice mail to {EXTRA_SENDERS[added]} on {today}; without "
                "the include those messages fail SPF at receivers.",
                {
                    "sender_name": EXTRA_SENDERS[added],
                    "spf_include": added,
                    "dkim_selector": "none yet (SPF first, DKIM CNAMEs in a later change)",
                    "alignment": f"Return-Path bounces.{name} (relaxed SPF alignment)",
                },
            )
        )
    d.live.append(("@", "TXT", live_spf, LIVE_TTL))
    d.desired[""] = ("TXT", " ".join(["v=spf1", *spf_terms, spf_all]))

    rua = EXTERNAL_RUA if rng.random() < 0.3 else f"mailto:dmarc@{name}"
    step = rng.choice(PCT_STEPS) if "dmarc" in changes else rng.randrange(len(DMARC_STEPS))
    d.live.append(("_dmarc", "TXT", f"v=DMARC1; {DMARC_STEPS[step]}; rua={rua}", LIVE_TTL))
    if "dmarc" in changes:
        d.requests.append(
            (
                "policy-progression",
                f"{name} _dmarc TXT",
                f"Aggregate reports for {name} show 99.4% aligned pass for 30 days across all "
                "known senders, so the next policy step is safe.",
                {
                    "current_policy": DMARC_STEPS[step],
                    "target_policy": DMARC_STEPS[step + 1],
                    "pass_rate_evidence": "99.4% aligned pass over 30 days",
                    "planned_date": today,
                },
            )
        )
        step += 1
        d.expected[("_dmarc", "TXT")] = "update"
    d.desired["_dmarc"] = ("TXT", f"v=DMARC1; {DMARC_STEPS[step]}; rua={rua}")

    d.dkim_active = rng.sample(LIVE_SELECTORS, rng.choice((1, 1, 2)))
    for selector in d.dkim_active:
        key = f"v=DKIM1; k=rsa; p={rng.choice(keys)}"
        d.live.append((f"{selector}._domainkey", "TXT", key, LIVE_TTL))
        d.desired[f"{selector}._domainkey"] = ("TXT", key)
    if "dkim" in changes:
        # A rotation on the documented schedule: the profile lists it for today.
        d.dkim_scheduled.append(NEW_SELECTOR)
        d.desired[f"{NEW_SELECTOR}._domainkey"] = ("TXT", f"v=DKIM1; k=rsa; p={rng.choice(keys)}")
        d.expected[(f"{NEW_SELECTOR}._domainkey", "TXT")] = "create"
        d.requests.append(
            (
                "dkim-rotation",
                f"{name} {NEW_SELECTOR}._domainkey TXT",
                f"The {d.dkim_active[0]} key of {name} is two years old; the yearly rotation "
                f"publishes {NEW_SELECTOR} before signing switches to it.",
                {
                    "current_selector": d.dkim_active[0],
                    "new_selector": NEW_SELECTOR,
                    "planned_date": today,
                },
            )
        )

    if rng.random() < 0.4:
        tlsrpt = f"v=TLSRPTv1; rua=mailto:tls-reports@{name}"
        d.live.append(("_smtp._tls", "TXT", tlsrpt, LIVE_TTL))
        d.desired["_smtp._tls"] = ("TXT", tlsrpt)

    # octoDNS treats a plan touching >30% of a zone of 10+ records as unsafe and a dry run then
    # fails; real email-only changes are not that, so stay under its MIN_EXISTING_RECORDS.
    rrsets = {(n, t) for n, t, _, _ in d.live} | {("@", "NS")}
    assert len(rrsets) < 10, rrsets
    return d


def generate(count: int, seed: int) -> list[Domain]:
    rng = random.Random(seed)
    keys = dkim_keys(3)
    today = datetime.now(UTC).date().isoformat()
    differ = set(rng.sample(range(1, count + 1), round(count * DIFFER_SHARE)))
    domains = []
    differing = 0
    for index in range(1, count + 1):
        change = None
        if index in differ:
            # Each kind of difference in turn, so every N gets the same mix.
            change = CHANGE_KINDS[differing % len(CHANGE_KINDS)]
            differing += 1
        client = f"client-{(index - 1) // 10 + 1:03d}"
        domains.append(make_domain(index, client, rng, keys, change, today))
    return domains


def zone_yaml(domain: Domain) -> str:
    """Written by hand in the layout of the example zone files (PyYAML would write the apex as
    `? ''`); names natsorted and ttl left out, as octoDNS's enforce_order and the examples do."""
    lines = ["---"]
    records = {}
    for name in sorted(domain.desired, key=NATSORT):
        rtype, text = domain.desired[name]
        # escaped_semicolons: true, as in the project's zone files.
        escaped = text.replace(";", "\\;")
        records[name] = {"type": rtype, "value": escaped}
        lines += [(name or "''") + ":", f"  type: {rtype}", f"  value: {escaped}"]
    document = "\n".join(lines) + "\n"
    # None of our values needs YAML quoting; make sure, rather than trust it.
    assert yaml.safe_load(document) == records, document
    return document


def write_repo(repo: Path, domains: list[Domain], concurrency: int) -> None:
    # Policy shared with the example portfolio (schemas, risk rules, sender catalog, analyst
    # roster...): all of it but what we generate, so new policy files the plan needs come along.
    shutil.copytree(
        ROOT / "policy",
        repo / "policy",
        ignore=lambda d, names: (
            {"clients", "calendars", "providers.yaml", "settings.yaml"}
            if Path(d) == ROOT / "policy"
            else set()
        ),
    )
    settings = {
        "lookups": {"nameservers": [], "port": 53, "timeout": 3},
        "concurrency": concurrency,
    }
    (repo / "policy" / "settings.yaml").write_text(yaml.safe_dump(settings, sort_keys=False))
    provider = {"class": "octodns_bind.Rfc2136Provider", **bind_options()}
    (repo / "policy" / "providers.yaml").write_text(
        yaml.safe_dump({"providers": {"bind": provider}}, sort_keys=False)
    )

    today = datetime.now(UTC).date().isoformat()
    by_client: dict[str, list[Domain]] = {}
    for d in domains:
        by_client.setdefault(d.client, []).append(d)
    (repo / "policy" / "clients").mkdir(parents=True)
    for number, (client, owned) in enumerate(by_client.items()):
        profile: dict[str, Any] = {
            "name": f"Benchmark Client {client[-3:]}",
            "industry": "healthcare" if number % 5 == 0 else "retail",
            "regulated": number % 5 == 0,
            "timezone": "UTC",
            "provider": "bind",
            "domains": [d.name for d in owned],
            "dkim": {
                d.name: {
                    "active": d.dkim_active,
                    **(
                        {"scheduled": [{"selector": s, "planned": today} for s in d.dkim_scheduled]}
                        if d.dkim_scheduled
                        else {}
                    ),
                }
                for d in owned
            },
        }
        (repo / "policy" / "clients" / f"{client}.yaml").write_text(
            yaml.safe_dump(profile, sort_keys=False)
        )
        (repo / "zones" / client).mkdir(parents=True)
        for d in owned:
            (repo / "zones" / client / f"{d.name}.yaml").write_text(zone_yaml(d))
    write_requests(repo, domains)
    # The plan is judged by the sealed policy and counts only signed requests: without a
    # genesis (sealed by the example's lead) and the authors' signatures it refuses every run.
    genesis(repo)
    sign_requests(repo)


def sign_requests(repo: Path) -> None:
    """Every request signed by its author with the test keys, as `dmarcops sign-request` signs
    (pipeline.gate.requests.sign_request: the request's content hash, the author, the time, an
    Ed25519 signature). The requests are loaded once: sign_request loads the one it signs with
    the templates of the policy of record, which reads every client profile, so 2,500 requests
    at 10,000 domains took 20 minutes that way."""
    roster = load_roster(repo)
    signers: dict[str, Signer] = {}
    requests, problems = collect_requests(repo, roster)
    assert not problems, problems[0]
    for request in requests:
        if request.author not in signers:
            signers[request.author] = load_signer(KEYS / f"{request.author}.pem", roster)
        signer = signers[request.author]
        unsigned = RequestSignature(request.id, request.sha256, signer.analyst, SIGNED_AT, "")
        signed = {**unsigned.to_json(), "signature": signer.sign(unsigned.payload())}
        signature_path(repo, request.id).write_text(
            json.dumps(signed, indent=2, sort_keys=True) + "\n"
        )


def write_requests(repo: Path, domains: list[Domain]) -> None:
    """Every plan item needs exactly one change request (changes/requests/<id>.yaml) once the
    product has them; without them the plan is refused (exit 2) and proves nothing."""
    if not (repo / "policy" / "schemas" / "change-request.schema.json").exists():
        return
    roster = yaml.safe_load((repo / "policy" / "roster.yaml").read_text())
    # People only: the automation's key signs ledger entries, never requests.
    authors = [a["id"] for a in roster["analysts"] if a.get("role") != "automation"]
    directory = repo / "changes" / "requests"
    directory.mkdir(parents=True)
    number = 0
    for d in domains:
        for rtype, selector, rationale, details in d.requests:
            number += 1
            request = {
                "type": rtype,
                "client": d.client,
                "covers": [selector],
                "author": authors[number % len(authors)],
                "rationale": rationale,
                "details": details,
            }
            (directory / f"CR-{number:04d}-{d.client}.yaml").write_text(
                yaml.safe_dump(request, sort_keys=False, width=100)
            )


def bind_options() -> dict[str, str]:
    # Secrets through env/ in both tools' configs, as policy/providers.yaml requires.
    return {
        "host": f"env/{ENV_PREFIX}HOST",
        "port": f"env/{ENV_PREFIX}PORT",
        "key_name": f"env/{ENV_PREFIX}KEY_NAME",
        "key_secret": f"env/{ENV_PREFIX}KEY_SECRET",
        "key_algorithm": "hmac-sha256",
    }


def write_octodns_config(
    path: Path, repo: Path, domains: list[Domain], max_workers: int | None
) -> None:
    """octoDNS's view of the same portfolio: one YamlProvider per zones/<client>/ directory with
    the settings dmarcops gives its own (pipeline/load/zones.py), one `zones:` entry per zone."""
    config: dict[str, Any] = {}
    if max_workers is not None:
        config["manager"] = {"max_workers": max_workers}
    providers: dict[str, Any] = {}
    for client in sorted({d.client for d in domains}):
        providers[f"zones-{client}"] = {
            "class": "octodns.provider.yaml.YamlProvider",
            "directory": str(repo / "zones" / client),
            "default_ttl": LIVE_TTL,
            "enforce_order": True,
            "escaped_semicolons": True,
            "supports_root_ns": False,
        }
    providers["bind"] = {"class": "octodns_bind.Rfc2136Provider", **bind_options()}
    config["providers"] = providers
    config["zones"] = {
        f"{d.name}.": {"sources": [f"zones-{d.client}"], "targets": ["bind"]} for d in domains
    }
    path.write_text(yaml.safe_dump(config, sort_keys=False))


# --- timing --------------------------------------------------------------------------------


@dataclass
class Run:
    seconds: float
    max_rss_kb: int
    exit_code: int
    # User + system CPU of the child (and GNU time's, a few ms): what the command itself costs,
    # far less sensitive than wall time to other work on a shared machine.
    cpu_seconds: float = 0.0


@dataclass
class Command:
    label: str
    argv: list[str]
    runs: list[Run] = field(default_factory=list)


GNU_TIME = Path("/usr/bin/time")


def timed(argv: list[str], env: dict[str, str], out: Path, err: Path) -> Run:
    """Wall time and peak RSS of one child. Output goes to files: a pipe could fill and stall the
    child while we wait for it.

    Peak RSS comes from GNU time (apt package `time`), not from our own os.wait4: Linux folds the
    forking process's RSS into the child's ru_maxrss at exec, so wait4 from this script reports
    at least this script's RSS (60+ MB here, more than octodns-sync itself). GNU time forks from a
    ~2 MB process. Without it we fall back to wait4 and say the figure is an upper bound."""
    rss_file = out.with_suffix(".rss")
    wrapped = [str(GNU_TIME), "-f", "%M", "-o", str(rss_file), *argv] if GNU_TIME.exists() else argv
    with out.open("wb") as stdout, err.open("wb") as stderr:
        began = time.perf_counter()
        proc = subprocess.Popen(
            wrapped, stdin=subprocess.DEVNULL, stdout=stdout, stderr=stderr, env=env
        )
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - began
    proc.returncode = os.waitstatus_to_exitcode(status)  # reaped by us: tell Popen
    max_rss_kb = usage.ru_maxrss
    if GNU_TIME.exists():
        # GNU time writes "Command exited with non-zero status N" first when the child fails.
        max_rss_kb = int(rss_file.read_text().split()[-1])
    return Run(seconds, max_rss_kb, proc.returncode, usage.ru_utime + usage.ru_stime)


# --- proof of work -------------------------------------------------------------------------


def check_dmarcops(stdout: Path, domains: list[Domain]) -> tuple[list[str], dict[str, Any]]:
    """Problems (empty when the plan is exactly the generated changes) and the plan summary."""
    try:
        plan = json.loads(stdout.read_text())
    except json.JSONDecodeError as exc:
        return [f"dmarcops printed no JSON plan ({exc})"], {}
    expected = {(d.name, n, t): a for d in domains for (n, t), a in d.expected.items()}
    got = {(c["zone"], c["name"], c["type"]): c["action"] for c in plan["changes"]}
    problems = []
    if len(plan["changes"]) != len(got):
        problems.append("duplicate (zone, name, type) entries in changes")
    for key in sorted(expected.keys() - got.keys())[:5]:
        problems.append(f"missing change {key}")
    for key in sorted(got.keys() - expected.keys())[:5]:
        problems.append(f"unexpected change {key} {got[key]}")
    for key in sorted(k for k in expected.keys() & got.keys() if expected[k] != got[k])[:5]:
        problems.append(f"{key}: {got[key]}, expected {expected[key]}")
    planned = sum(z["status"] == "planned" for z in plan["zones"])
    if planned != len(domains):
        problems.append(f"{planned} of {len(domains)} zones planned")
    not_dns = [z["zone"] for z in plan["zones"] if z["spf_budget_source"] not in ("dns", "")]
    if not_dns:
        problems.append(f"SPF budgets not counted through DNS for {not_dns[:3]}")
    return problems, plan["summary"]


OCTODNS_SUMMARY = re.compile(r"Summary: Creates=(\d+), Updates=(\d+), Deletes=(\d+)")


def octodns_totals(stderr: Path) -> tuple[int, int, int, int]:
    """(zones with a plan, creates, updates, deletes) from octoDNS's PlanLogger output."""
    found = [tuple(map(int, m)) for m in OCTODNS_SUMMARY.findall(stderr.read_text())]
    return (len(found), *(sum(f[i] for f in found) for i in range(3)))  # type: ignore[return-value]


# --- main ----------------------------------------------------------------------------------


def tool(name: str) -> str:
    # The interpreter running us is normally the project's venv; fall back to /work/main/.venv.
    for directory in (Path(sys.executable).parent, ROOT / ".venv" / "bin"):
        if (directory / name).exists():
            return str(directory / name)
    sys.exit(f"{name} not found next to {sys.executable} nor in {ROOT / '.venv/bin'}")


def code_version() -> str:
    """The commit measured, and whether pipeline/ had uncommitted changes: figures from a tree
    others are editing are only comparable with that noted."""

    def git(*argv: str) -> str:
        done = subprocess.run(["git", *argv], cwd=ROOT, capture_output=True, text=True)
        return done.stdout.strip()

    dirty = git("status", "--porcelain", "--", "pipeline")
    return (git("rev-parse", "--short", "HEAD") or "unknown") + (
        " + uncommitted changes in pipeline/" if dirty else ""
    )


def loadavg() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def default_concurrency() -> int:
    settings = yaml.safe_load((ROOT / "policy" / "settings.yaml").read_text()) or {}
    return int(settings.get("concurrency", 8))


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--domains", type=int, default=1000, help="client domains (default 1000)")
    parser.add_argument("--repeat", type=int, default=5, help="timed runs of each command")
    parser.add_argument("--warmup", type=int, default=1, help="untimed runs of each first")
    parser.add_argument(
        "--concurrency",
        type=int,
        default=default_concurrency(),
        help="dmarcops --concurrency and octoDNS max_workers for the matched config "
        "(default: policy/settings.yaml)",
    )
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument(
        "--baseline",
        type=Path,
        help="another `dmarcops` executable (e.g. the venv of the code before a change): its plan "
        "runs in the same rounds, so before and after alternate under the same load",
    )
    parser.add_argument("--keep", type=Path, help="keep the repository, configs and outputs here")
    parser.add_argument(
        "--serve",
        action="store_true",
        help="no timing: generate, start both named, print the commands, wait for Ctrl-C "
        "(to profile one command by hand)",
    )
    return parser.parse_args()


def mb(kb: int) -> float:
    return kb / 1024


def main() -> int:
    args = parse_args()
    if args.keep:
        if args.keep.exists() and any(args.keep.iterdir()):
            sys.exit(f"--keep {args.keep}: directory is not empty")
        work = args.keep.resolve()
        work.mkdir(parents=True, exist_ok=True)
    else:
        work = Path(tempfile.mkdtemp(prefix="dmarcops-bench-"))
    repo, outputs = work / "repo", work / "runs"
    outputs.mkdir()

    began = time.perf_counter()
    domains = generate(args.domains, args.seed)
    write_repo(repo, domains, args.concurrency)
    default_config, matched_config = work / "octodns-default.yaml", work / "octodns-matched.yaml"
    write_octodns_config(default_config, repo, domains, None)
    write_octodns_config(matched_config, repo, domains, args.concurrency)
    expected = sum(len(d.expected) for d in domains)
    differing = sum(bool(d.expected) for d in domains)
    # Other work on the machine skews the figures: say how busy it was, before and after.
    print(f"code: {code_version()}; {os.cpu_count()} CPUs; load average {loadavg()}")
    if not GNU_TIME.exists():
        print(f"no {GNU_TIME} (apt-get install time): peak RSS includes this script's own RSS")
    print(
        f"generated {len(domains)} domains for {len({d.client for d in domains})} clients in "
        f"{time.perf_counter() - began:.1f} s: {differing} differ from live, "
        f"{expected} record changes expected"
    )

    failures: list[str] = []
    client_dns = NamedServer({d.name: d.live for d in domains}, start_timeout=300)
    sender_dns = NamedServer(SENDER_ZONES)
    try:
        client_dns.start()
        sender_dns.start()
        print(
            f"named: {len(domains)} client zones answering in {client_dns.start_seconds:.2f} s "
            f"(port {client_dns.port}); {len(SENDER_ZONES)} sender zones in "
            f"{sender_dns.start_seconds:.2f} s (port {sender_dns.port})"
        )
        secrets = {
            f"{ENV_PREFIX}HOST": client_dns.host,
            f"{ENV_PREFIX}PORT": str(client_dns.port),
            f"{ENV_PREFIX}KEY_NAME": client_dns.key_name,
            f"{ENV_PREFIX}KEY_SECRET": client_dns.key_secret,
        }
        commands = [
            Command(
                "dmarcops plan",
                [
                    tool("dmarcops"),
                    "--repo",
                    str(repo),
                    "plan",
                    "--format",
                    "json",
                    "--nameserver",
                    f"{sender_dns.host}:{sender_dns.port}",
                    "--concurrency",
                    str(args.concurrency),
                ],
            ),
            Command(
                "octodns-sync (max_workers 1)",
                [tool("octodns-sync"), "--config-file", str(default_config)],
            ),
            Command(
                # Named apart from the default config's row when both are max_workers 1
                # (results.json keys commands by label).
                f"octodns-sync (max_workers {args.concurrency}"
                + (", matched)" if args.concurrency == 1 else ")"),
                [tool("octodns-sync"), "--config-file", str(matched_config)],
            ),
        ]
        if args.baseline:
            # Last, so the indexes of the three above (and their output files) stay as they were.
            baseline = [str(args.baseline), *commands[0].argv[1:]]
            commands.append(Command("dmarcops plan (baseline)", baseline))
        if args.serve:
            serve(commands, secrets)
        else:
            # As installed packages run: with bytecode cached (the warm-up writes it), even where
            # the shell sets PYTHONDONTWRITEBYTECODE (octoDNS's was compiled by pip; ours is
            # an editable install, compiled on first import).
            env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
            failures += run_all(commands, {**env, **secrets}, outputs, args)
            results = report(commands, outputs, domains, args.concurrency, failures)
            results["named_start_seconds"] = client_dns.start_seconds
            (work / "results.json").write_text(json.dumps(results, indent=2) + "\n")
            if not (client_dns.running and sender_dns.running):
                failures.append("a named server died during the benchmark")
    finally:
        client_dns.stop()
        sender_dns.stop()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    print(f"load average at the end: {loadavg()}")
    if args.keep:
        print(f"kept in {work}")
    for failure in failures:
        print(f"FAILED: {failure}", file=sys.stderr)
    return 1 if failures else 0


def serve(commands: list[Command], secrets: dict[str, str]) -> None:
    print("\nIn another shell:")
    for name, value in secrets.items():
        print(f"  export {name}={value}")
    for command in commands:
        print("  " + " ".join(command.argv))
    print("Ctrl-C (or SIGTERM) stops both named.", flush=True)
    # Started in the background, SIGINT may be ignored; either signal must reach main()'s
    # `finally`, or the two named would outlive us.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        print()


def run_all(
    commands: list[Command], env: dict[str, str], outputs: Path, args: argparse.Namespace
) -> list[str]:
    failures = []
    for round_no in range(-args.warmup, args.repeat):
        # Rotate who goes first each round so no command always runs on a cold (or warm) cache.
        shift = round_no % len(commands)
        for index in [*range(shift, len(commands)), *range(shift)]:
            command = commands[index]
            stem = f"{index}-{'warmup' if round_no < 0 else round_no}"
            run = timed(command.argv, env, outputs / f"{stem}.out", outputs / f"{stem}.err")
            phase = "warm-up" if round_no < 0 else f"run {round_no + 1}/{args.repeat}"
            print(
                f"  {phase:10} {command.label:30} {run.seconds:7.2f} s {mb(run.max_rss_kb):7.1f} MB"
                f" {run.cpu_seconds:7.2f} s CPU"
            )
            if run.exit_code != 0:
                failures.append(
                    f"{command.label} exited {run.exit_code}; see {outputs / (stem + '.err')}"
                )
            if round_no >= 0:
                command.runs.append(run)
    return failures


def report(
    commands: list[Command],
    outputs: Path,
    domains: list[Domain],
    concurrency: int,
    failures: list[str],
) -> dict[str, Any]:
    """Prints the table, the ratios and the proof of work; returns them for results.json."""
    results: dict[str, Any] = {"domains": len(domains), "concurrency": concurrency, "commands": {}}
    print()
    print(f"{'command':32} {'median s':>9} {'min s':>8} {'CPU s':>8} {'peak RSS MB':>12}  runs")
    for command in commands:
        seconds = [r.seconds for r in command.runs]
        cpu = statistics.median(r.cpu_seconds for r in command.runs)
        rss = mb(max(r.max_rss_kb for r in command.runs))
        print(
            f"{command.label:32} {statistics.median(seconds):9.2f} {min(seconds):8.2f} "
            f"{cpu:8.2f} {rss:12.1f}  {len(seconds)}"
        )
        results["commands"][command.label] = {
            "argv": command.argv,
            "seconds": seconds,
            "median_seconds": statistics.median(seconds),
            "min_seconds": min(seconds),
            "peak_rss_mb": rss,
            "cpu_seconds": [r.cpu_seconds for r in command.runs],
        }
    dmarcops, octo_default, octo_matched = commands[:3]
    baseline = commands[3:]
    print()
    for octo in (octo_default, octo_matched, *baseline):
        # By command, not label: with --concurrency 1 both octoDNS rows are "max_workers 1".
        ratio = statistics.median(r.seconds for r in dmarcops.runs) / statistics.median(
            r.seconds for r in octo.runs
        )
        verdict = "ok" if ratio <= TARGET_RATIO else "MISSED"
        cpu = statistics.median(r.cpu_seconds for r in dmarcops.runs) / statistics.median(
            r.cpu_seconds for r in octo.runs
        )
        print(
            f"ratio dmarcops / {octo.label}: {ratio:.2f} (target <= {TARGET_RATIO}: {verdict}); "
            f"CPU {cpu:.2f}"
        )
        results[f"ratio vs {octo.label}"] = ratio
        results[f"cpu ratio vs {octo.label}"] = cpu
    peak = mb(max(r.max_rss_kb for r in dmarcops.runs))
    print(
        f"dmarcops peak RSS: {peak:.1f} MB (target <= 300 MB: {'ok' if peak <= 300 else 'MISSED'})"
    )

    # The last timed run of each; all runs read the same unchanged DNS, so any one will do.
    last = len(dmarcops.runs) - 1
    problems, summary = check_dmarcops(outputs / f"0-{last}.out", domains)
    if baseline:
        # The baseline's plan must be the same: the change made it faster, not different.
        base_problems, _ = check_dmarcops(outputs / f"3-{last}.out", domains)
        problems += [f"baseline: {p}" for p in base_problems]
    expected = sum(len(d.expected) for d in domains)
    differing = sum(bool(d.expected) for d in domains)
    changes = sum(summary.get(action, 0) for action in ("create", "update", "delete"))
    print()
    print(
        f"dmarcops plan: {changes} changes (create {summary.get('create')}, update "
        f"{summary.get('update')}, delete {summary.get('delete')}; risk {summary.get('risk')}) "
        f"in {summary.get('zones')} zones, {summary.get('failed_zones')} failed; expected "
        f"{expected} changes on {differing} differing domains: "
        + ("exact match" if not problems else "MISMATCH")
    )
    results["dmarcops_plan"] = {"summary": summary, "expected": expected, "problems": problems}
    failures += [f"dmarcops plan: {p}" for p in problems]
    for index, octo in enumerate((octo_default, octo_matched), start=1):
        zones, creates, updates, deletes = octodns_totals(outputs / f"{index}-{last}.err")
        print(
            f"{octo.label}: plans for {zones} zones, {creates} creates, {updates} updates, "
            f"{deletes} deletes"
        )
        results[f"{octo.label} plan"] = [zones, creates, updates, deletes]
    print(
        "  (octoDNS sees only the zone files: it deletes every record they leave out - A, MX,\n"
        "   www - and drops the verification token from the apex TXT set, on every zone. That is\n"
        "   its plain dry run; dmarcops scopes the diff to the records the pipeline owns.)"
    )
    print(f"concurrency: dmarcops --concurrency {concurrency}, matched octoDNS max_workers")
    return results


if __name__ == "__main__":
    sys.exit(main())
