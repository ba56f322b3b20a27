"""The long fuzz run: tests/test_fuzz.py's strategies with many random examples.

    python benchmarks/fuzz_long.py [--examples N] [--tally FILE] [-k PATTERN] [--seed S]

--examples N      examples per fuzz test; default 2000 (the suite runs 80-200).
--derandomize     the suite's own fixed examples (and counts, unless --examples): to count
                  the tracebacks of exactly the corpus the test command runs.
--tally FILE      counting mode: go on past crashes and write one JSON line per crash to FILE,
                  then print how many tracebacks and how many distinct crash sites it found.
                  Without it, the run stops at the first crash with hypothesis's minimal example.
--seed S          hypothesis seed (default: random; printed so a finding can be replayed).
-k PATTERN        only the tests whose names match (pytest -k), e.g. -k plan_files.

Exit status: pytest's (0 when no test failed); with --tally, 1 when any crash was counted.
scripts/fuzz-night runs it with the night defaults.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def crash_site(log: str) -> str:
    """The innermost frame in dmarcops's own code plus the exception type: one bug, one site."""
    frames = re.findall(r'File "([^"]+)", line (\d+), in (\S+)', log)
    ours = [f for f in frames if "/pipeline/" in f[0]] or frames
    lines = [line for line in log.splitlines() if line and not line.startswith(" ")]
    errors = [line for line in lines if re.match(r"^[A-Za-z_.]+(Error|Exception)\b", line)]
    kind = errors[-1].split(":")[0] if errors else "?"
    if not ours:
        return kind
    path, line, func = ours[-1]
    short = path.split("/pipeline/")[-1] if "/pipeline/" in path else Path(path).name
    return f"{short}:{line} in {func}: {kind}"


def summarise(tally: Path) -> int:
    entries = [json.loads(x) for x in tally.read_text(encoding="utf-8").splitlines() if x]
    sites = Counter(crash_site(e["log"]) if e["log"] else f"exit {e['exit']}" for e in entries)
    print(f"tracebacks (crash handler fired or undocumented exit): {len(entries)}")
    print(f"distinct crash sites: {len(sites)}")
    for site, count in sites.most_common():
        print(f"  {count:5d}  {site}")
    return 1 if entries else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--examples", type=int, default=None)
    parser.add_argument("--tally", type=Path)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("-k", dest="pattern", default="")
    parser.add_argument(
        "--derandomize", action="store_true", help="the suite's fixed examples (for counting)"
    )
    args = parser.parse_args()
    seed = args.seed if args.seed is not None else random.randrange(2**32)
    env = dict(os.environ)
    if args.examples is not None or not args.derandomize:
        env["DMARCOPS_FUZZ_EXAMPLES"] = str(args.examples or 2000)
    env["DMARCOPS_FUZZ_PROFILE"] = "ci" if args.derandomize else "night"
    if args.tally:
        args.tally.unlink(missing_ok=True)
        env["DMARCOPS_FUZZ_TALLY"] = str(args.tally.resolve())
    command = [sys.executable, "-m", "pytest", "tests/test_fuzz.py", "-q", "-p", "no:cacheprovider"]
    if not args.derandomize:
        command += [f"--hypothesis-seed={seed}"]
        print(f"hypothesis seed {seed} (replay: --seed {seed})", flush=True)
    if args.pattern:
        command += ["-k", args.pattern]
    status = subprocess.run(command, cwd=REPO, env=env, check=False).returncode
    if args.tally:
        if not args.tally.exists():
            args.tally.write_text("", encoding="utf-8")
        return summarise(args.tally) or status
    return status


if __name__ == "__main__":
    sys.exit(main())
