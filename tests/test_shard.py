"""A portfolio planned in client shards and merged is the portfolio planned in one run.

Real BIND 9 on loopback serves the clients' zones (octodns-bind, AXFR + TSIG) and the senders'
SPF records; the shards are planned by `dmarcops plan --client ...` exactly as the matrix jobs of
docs/github.md ("Sharded plans") run it, and `dmarcops shard merge` must give back the single
run's JSON byte for byte, or refuse.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from dns_server import NamedServer, ZoneSpec
from portfolio import write
from signing import reseal, sign_all
from test_plan_named import LIVE, make_repo

from pipeline.cli import main
from pipeline.plan.shard import MAX_SHARDS, Shard, shard_count, split

AT = "2026-12-01T10:00:00Z"
MORE_LIVE: dict[str, ZoneSpec] = {
    "delta.example": [("_dmarc", "TXT", "v=DMARC1; p=none; rua=mailto:dmarc@delta.example")],
    "epsilon.example": [("@", "TXT", "v=spf1 include:sendgrid.net -all")],
}


@pytest.fixture
def repo(
    tmp_path: Path,
    named_factory: Callable[[Mapping[str, ZoneSpec]], NamedServer],
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Path]:
    """Three clients (alpha: 2 zones, delta: 2, gamma: 1), changes in every zone, and a policy
    edit not sealed yet (a `policy` item every shard lists, and the merge must list once)."""
    server = named_factory({**LIVE, **MORE_LIVE})
    for name, value in (
        ("TEST_BIND_HOST", server.host),
        ("TEST_BIND_PORT", str(server.port)),
        ("TEST_BIND_KEY_NAME", server.key_name),
        ("TEST_BIND_KEY_SECRET", server.key_secret),
    ):
        monkeypatch.setenv(name, value)
    root = make_repo(tmp_path / "repo")
    write(
        root / "policy/clients/delta.yaml",
        "name: Delta\nprovider: bind\ndomains: [delta.example, epsilon.example]\n",
    )
    write(
        root / "zones/delta/delta.example.yaml",
        "---\n_dmarc:\n  ttl: 300\n  type: TXT\n"
        "  value: v=DMARC1\\; p=quarantine\\; rua=mailto:dmarc@delta.example\n",
    )
    write(
        root / "zones/delta/epsilon.example.yaml",
        "---\n'':\n  ttl: 300\n  type: TXT\n"
        "  value: v=spf1 include:sendgrid.net include:mailgun.org -all\n",
    )
    write(
        root / "changes/requests/CR-0004-delta.yaml",
        "type: other\nclient: delta\ncovers: ['delta.example', 'epsilon.example']\n"
        "author: jchen\nrationale: Aggregate reports show the new senders failing SPF for 14 "
        "days; this aligns the records with the senders the client uses.\n",
    )
    sign_all(root)
    reseal(root)
    senders = root / "policy/senders.yaml"
    senders.write_text(senders.read_text() + "# reviewed 2026-11\n", encoding="utf-8")
    yield root


def run(repo: Path, sender_dns: NamedServer, *args: str) -> Result:
    return CliRunner().invoke(
        main,
        ["--repo", str(repo), *args],
        env={"DMARCOPS_NAMESERVERS": f"127.0.0.1:{sender_dns.port}"},
    )


def plan(repo: Path, sender_dns: NamedServer, *args: str, at: str = AT) -> str:
    result = run(repo, sender_dns, "plan", "--format", "json", "--at", at, *args)
    assert result.exit_code in (0, 2), result.output
    assert result.stdout.startswith("{"), result.output
    return result.stdout


def shard_plans(repo: Path, sender_dns: NamedServer, matrix: dict[str, Any]) -> list[Path]:
    """What the matrix jobs do: plan each shard's clients, save the JSON."""
    paths = []
    for entry in matrix["include"]:
        clients = [arg for c in entry["clients"].split() for arg in ("--client", c)]
        path = repo.parent / f"shard-{entry['shard']}.json"
        path.write_text(plan(repo, sender_dns, *clients), encoding="utf-8")
        paths.append(path)
    return paths


def merge(repo: Path, sender_dns: NamedServer, *plans: Path) -> Result:
    shards = repo.parent / "shards.json"
    return run(repo, sender_dns, "shard", "merge", "--shards", str(shards), *map(str, plans))


def test_merged_shard_plans_are_the_full_plan_byte_for_byte(
    repo: Path, sender_dns: NamedServer
) -> None:
    full = plan(repo, sender_dns)
    whole = json.loads(full)
    # The portfolio is worth merging: changes in every client, findings, a pending policy edit.
    assert {c["client"] for c in whole["changes"]} == {"alpha", "delta", "gamma", ""}
    assert [c["zone"] for c in whole["changes"] if c["kind"] == "policy"] == ["policy"]
    assert whole["summary"]["zones"] == 5
    for count, expected in ((3, ["alpha", "delta", "gamma"]), (2, ["alpha", "delta gamma"])):
        split = run(
            repo, sender_dns, "shard", "split", "--shards", str(count),
            "--out", str(repo.parent / "shards.json"),
        )  # fmt: skip
        assert split.exit_code == 0, split.output
        matrix = json.loads(split.stdout)
        assert [e["clients"] for e in matrix["include"]] == expected
        assert [e["shard"] for e in matrix["include"]] == list(range(1, count + 1))
        plans = shard_plans(repo, sender_dns, matrix)
        # Each shard plans only its clients' zones, and lists the policy edit too.
        first = json.loads(plans[0].read_text())
        assert {z["client"] for z in first["zones"]} == {"alpha"}
        merged = merge(repo, sender_dns, *reversed(plans))  # any order on the command line
        assert merged.exit_code == 0, merged.output
        assert merged.stdout == full
    # --out writes the same bytes and says what it merged.
    out = repo.parent / "plan.json"
    saved = run(
        repo, sender_dns, "shard", "merge", "--shards", str(repo.parent / "shards.json"),
        *map(str, plans), "--out", str(out),
    )  # fmt: skip
    assert saved.exit_code == 0, saved.output
    assert out.read_text(encoding="utf-8") == full
    assert saved.stdout == f"plan {whole['plan_hash'][:16]}: 2 shard(s), 5 zone(s), 7 change(s)\n"
    assert len(whole["changes"]) == 7


def test_merge_refuses_what_is_not_the_whole_portfolio(repo: Path, sender_dns: NamedServer) -> None:
    shards = str(repo.parent / "shards.json")
    split = run(repo, sender_dns, "shard", "split", "--shards", "3", "--out", shards)
    plans = shard_plans(repo, sender_dns, json.loads(split.stdout))

    missing = merge(repo, sender_dns, plans[0], plans[2])
    assert missing.exit_code == 2
    assert "no plan for shard 2 (shard 2: clients delta)" in missing.output

    twice = merge(repo, sender_dns, *plans, plans[1])
    assert twice.exit_code == 2 and "both plan shard 2: overlapping shards" in twice.output

    # A plan of alpha and delta together straddles shards 1 and 2 of this partition.
    both = repo.parent / "alpha-delta.json"
    both.write_text(plan(repo, sender_dns, "--client", "alpha", "--client", "delta"))
    straddling = merge(repo, sender_dns, both, plans[2])
    assert straddling.exit_code == 2 and "plans zones of shards 1, 2" in straddling.output

    # One zone of a shard missing (planned with --zone): not the shard.
    part = repo.parent / "part.json"
    part.write_text(plan(repo, sender_dns, "--zone", "delta.example"))
    partial = merge(repo, sender_dns, plans[0], part, plans[2])
    assert partial.exit_code == 2
    assert "shard 2 plans 1 of its 2 zones (missing epsilon.example)" in partial.output

    later = repo.parent / "later.json"
    later.write_text(plan(repo, sender_dns, "--client", "gamma", at="2026-12-01T11:00:00Z"))
    skewed = merge(repo, sender_dns, plans[0], plans[1], later)
    assert skewed.exit_code == 2
    assert "planned as of different times (2026-12-01T10:00:00Z, 2026-12-01T11:00:00Z)" in (
        skewed.output
    )

    # A shard planned after another policy edit (another commit).
    rules = repo / "policy/risk-rules.yaml"
    rules.write_text(rules.read_text() + "# next year's review pending\n")
    other = repo.parent / "other-commit.json"
    other.write_text(plan(repo, sender_dns, "--client", "gamma"))
    commits = merge(repo, sender_dns, plans[0], plans[1], other)
    assert commits.exit_code == 2 and "different pending policy edits" in commits.output

    # A plan edited after planning (a change dropped) no longer has its own hash: bad input.
    edited = json.loads(plans[1].read_text())
    edited["changes"] = edited["changes"][1:]
    tampered = repo.parent / "tampered.json"
    tampered.write_text(json.dumps(edited))
    refused = merge(repo, sender_dns, plans[0], tampered, plans[2])
    assert refused.exit_code == 1
    assert "its plan_hash is not the hash of the changes it lists" in refused.output


def test_split_needs_one_way_to_count_and_reads_the_cut_over_from_the_environment(
    repo: Path, sender_dns: NamedServer
) -> None:
    neither = run(repo, sender_dns, "shard", "split")
    assert neither.exit_code == 1 and "give --shards N or --zones-per-shard Z" in neither.output
    # Below the cut-over the portfolio is one shard: the matrix runs one job.
    one = CliRunner().invoke(
        main, ["--repo", str(repo), "shard", "split"], env={"DMARCOPS_SHARD_ZONES": "5"}
    )
    assert one.exit_code == 0, one.output
    assert json.loads(one.stdout) == {
        "include": [{"shard": 1, "clients": "alpha delta gamma", "zones": 5}]
    }
    two = CliRunner().invoke(
        main, ["--repo", str(repo), "shard", "split"], env={"DMARCOPS_SHARD_ZONES": "4"}
    )
    assert [e["zones"] for e in json.loads(two.stdout)["include"]] == [2, 3]
    zero = run(repo, sender_dns, "shard", "split", "--zones-per-shard", "0")
    assert zero.exit_code == 1 and "--zones-per-shard 0: must be at least 1" in zero.output


def _listing(sizes: list[int]) -> list[tuple[str, str]]:
    return [(f"c{i:03d}", f"z{j}.c{i:03d}.example") for i, n in enumerate(sizes) for j in range(n)]


@pytest.mark.parametrize(
    ("sizes", "shards", "loads"),
    [
        ([10, 10, 10, 10], 2, [20, 20]),
        ([30, 1, 1, 1, 1], 2, [30, 4]),  # a big client is a shard of its own, never split
        ([1, 1, 1], 5, [1, 1, 1]),  # fewer clients than shards: one client each
        ([5, 4, 3, 2, 1], 3, [5, 4, 6]),
        ([], 3, []),
    ],
)
def test_split_balances_whole_clients_in_plan_order(
    sizes: list[int], shards: int, loads: list[int]
) -> None:
    listing = _listing(sizes)
    parts: list[Shard] = split(listing, shards)
    assert [len(p.zones) for p in parts] == loads
    # Concatenated in shard order, the shards are the portfolio in plan order: what makes the
    # merged plan the full plan.
    assert [z for p in parts for z in p.zones] == listing
    assert [p.number for p in parts] == list(range(1, len(parts) + 1))
    assert all(len({c for c, _ in p.zones}) == len(p.clients) for p in parts)


def test_shard_count_follows_the_cut_over_and_the_matrix_limit() -> None:
    assert shard_count(1000, 1500) == 1
    assert shard_count(1500, 1500) == 1
    assert shard_count(1501, 1500) == 2
    assert shard_count(10_000, 1500) == 7
    assert shard_count(10**6, 10) == MAX_SHARDS
