"""Applying through octodns-bind to a real named: verified, scoped, per zone, under a client lock."""

from __future__ import annotations

import json
import multiprocessing
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path

import pytest
from dns_server import NamedServer, ZoneSpec
from test_plan_named import LIVE, TOKEN, make_repo

from pipeline.apply.execute import apply_plan
from pipeline.apply.journal import Journal, journals, read_journal
from pipeline.apply.lock import client_lock
from pipeline.apply.stale import differences, refuse_if_changed
from pipeline.errors import GateRefused
from pipeline.live.bind import Connections, guarded_apply
from pipeline.live.dns import Nameservers
from pipeline.load.portfolio import load_portfolio
from pipeline.plan.build import PlanOptions, make_plan
from pipeline.render.json_plan import plan_to_json

AT = datetime(2026, 12, 1, 15, 0, tzinfo=UTC)


def served(server: NamedServer, fqdn: str, rtype: str = "TXT") -> list[str]:
    answer = server.query(fqdn, rtype)
    out = []
    for rrset in answer.answer:
        for rdata in rrset:
            out.append(b"".join(rdata.strings).decode() if rtype == "TXT" else rdata.to_text())
    return sorted(out)


def plan_for(repo: Path, sender_dns: NamedServer, **kw: object) -> object:
    portfolio = load_portfolio(repo)
    ns = Nameservers(("127.0.0.1",), sender_dns.port, 2.0)
    return make_plan(portfolio, PlanOptions(now=AT, nameservers=ns, **kw))  # type: ignore[arg-type]


def test_apply_verifies_and_touches_only_owned_records(
    tmp_path: Path, client_dns: NamedServer, sender_dns: NamedServer
) -> None:
    repo = make_repo(tmp_path)
    plan = plan_for(repo, sender_dns, clients=("alpha",))
    results = apply_plan(plan)  # type: ignore[arg-type]
    assert [(r.zone, r.status) for r in results] == [
        ("alpha.example", "applied"),
        ("beta.example", "applied"),
    ]
    for r in results:
        assert all(c.status == "verified" and c.method == "dns" for c in r.checks), r.checks
    assert served(client_dns, "alpha.example.") == sorted(
        [TOKEN, "v=spf1 include:_spf.google.com include:sendgrid.net ~all"]
    )
    assert served(client_dns, "beta.example.") == [TOKEN]  # SPF removed, token kept
    assert served(client_dns, "_dmarc.alpha.example.") == [
        "v=DMARC1; p=quarantine; rua=mailto:dmarc@alpha.example"
    ]
    # What the pipeline does not own is exactly as it was.
    assert served(client_dns, "www.alpha.example.", "A") == ["192.0.2.2"]
    assert served(client_dns, "mail.alpha.example.") == ["some-other-verification=abc"]
    assert served(client_dns, "_github-challenge.alpha.example.") == ["deadbeef"]
    assert served(client_dns, "alpha.example.", "MX") == ["10 mx.alpha.example."]
    # A second plan finds nothing left to do for alpha.
    again = plan_for(repo, sender_dns, clients=("alpha",))
    assert again.items == ()  # type: ignore[attr-defined]


def test_named_killed_in_the_middle_of_a_multi_zone_apply(
    tmp_path: Path, client_dns: NamedServer, sender_dns: NamedServer
) -> None:
    repo = make_repo(tmp_path)
    plan = plan_for(repo, sender_dns, clients=("alpha",))

    def kill_before_beta(zone: str) -> None:
        if zone == "beta.example":
            client_dns.kill()

    results = apply_plan(plan, verify_timeout=1.0, progress=kill_before_beta)  # type: ignore[arg-type]
    by_zone = {r.zone: r for r in results}
    assert by_zone["alpha.example"].status == "applied"
    assert by_zone["alpha.example"].error == ""
    # alpha's check runs while beta is sent (a pool, pipeline.apply.execute): named may die
    # before or after it answered. Either way it never claims what it did not see.
    assert len(by_zone["alpha.example"].checks) == 2
    for check in by_zone["alpha.example"].checks:
        assert check.status == "verified" or (
            check.status == "unverifiable" and "did not answer" in check.detail
        ), check
    assert by_zone["beta.example"].status == "failed"
    assert by_zone["beta.example"].error  # exactly what the provider said
    assert all(c.status == "unverifiable" for c in by_zone["beta.example"].checks)
    # named back: alpha's change survived, beta's is still to do, and a new plan says exactly that.
    client_dns.start()
    again = plan_for(repo, sender_dns, clients=("alpha",))
    assert {(i.zone, i.name) for i in again.items} == {("beta.example", "")}  # type: ignore[attr-defined]


def test_wrong_tsig_key_is_a_clear_failure(
    tmp_path: Path,
    client_dns: NamedServer,
    sender_dns: NamedServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    repo = make_repo(tmp_path)
    monkeypatch.setenv("TEST_BIND_KEY_SECRET", "c2VjcmV0LWJ1dC13cm9uZy1rZXktMDEyMzQ1Njc4OWFi")
    plan = plan_for(repo, sender_dns, clients=("gamma",))
    failed = plan.failed_zones  # type: ignore[attr-defined]
    assert [z.zone for z in failed] == ["gamma.example"]
    assert "the server rejected the TSIG key" in failed[0].error


def test_stale_plan_is_refused_item_by_item(
    tmp_path: Path, client_dns: NamedServer, sender_dns: NamedServer
) -> None:
    repo = make_repo(tmp_path)
    approved = plan_to_json(plan_for(repo, sender_dns, clients=("alpha",)))  # type: ignore[arg-type]
    client_dns.update("alpha.example", "_dmarc", "TXT", ["v=DMARC1; p=none; pct=10"])
    current = plan_for(repo, sender_dns, clients=("alpha",))
    problems = differences(approved, current)  # type: ignore[arg-type]
    assert len(problems) == 1
    assert problems[0].startswith(
        "_dmarc.alpha.example TXT: stale: live DNS changed since approval"
    )
    with pytest.raises(GateRefused, match="the plan changed after approval; nothing was applied"):
        refuse_if_changed(approved, current)  # type: ignore[arg-type]
    same = plan_for(repo, sender_dns, clients=("alpha",))
    refuse_if_changed(plan_to_json(same), same)  # type: ignore[arg-type]
    assert json.dumps(plan_to_json(same))  # serialisable as the approved file


def _hold_lock(changes: str, ready: object, release: object) -> None:
    with client_lock(Path(changes), "alpha"):
        ready.set()  # type: ignore[attr-defined]
        release.wait(10)  # type: ignore[attr-defined]


def test_client_lock_is_exclusive_across_processes(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("spawn")
    ready, release = ctx.Event(), ctx.Event()
    holder = ctx.Process(target=_hold_lock, args=(str(tmp_path), ready, release))
    holder.start()
    try:
        assert ready.wait(10)
        with (
            pytest.raises(GateRefused, match="another apply for client 'alpha' is running \\(pid"),
            client_lock(tmp_path, "alpha"),
        ):
            pass
        with client_lock(tmp_path, "beta"):  # other clients are not blocked
            pass
    finally:
        release.set()
        holder.join(10)
    with client_lock(tmp_path, "alpha", wait_seconds=2):  # free again once the holder is gone
        pass


def test_a_change_made_between_the_check_and_the_update_is_not_overwritten(
    tmp_path: Path, client_dns: NamedServer, sender_dns: NamedServer
) -> None:
    # The stale check passed (the plan is current), then someone edits live DNS before our update
    # reaches the server: the RFC 2136 prerequisites make the server refuse, and the edit stays.
    repo = make_repo(tmp_path)
    plan = plan_for(repo, sender_dns, zones=("alpha.example",))

    def someone_edits(zone: str) -> None:
        client_dns.update("alpha.example", "_dmarc", "TXT", ["v=DMARC1; p=none; pct=3"])

    (result,) = apply_plan(plan, verify_timeout=0.5, progress=someone_edits)  # type: ignore[arg-type]
    assert result.status == "failed"
    assert "LiveDnsMoved" in result.error and "NXRRSET" in result.error
    assert served(client_dns, "_dmarc.alpha.example.") == ["v=DMARC1; p=none; pct=3"]
    # Nothing of the batch was written: the SPF change in the same zone is not live either.
    assert served(client_dns, "alpha.example.") == sorted(
        [TOKEN, "v=spf1 include:_spf.google.com ~all"]
    )


def test_a_create_is_refused_when_the_name_appeared_meanwhile(
    tmp_path: Path, client_dns: NamedServer, sender_dns: NamedServer
) -> None:
    repo = make_repo(tmp_path)
    zone = repo / "zones/alpha/alpha.example.yaml"
    zone.write_text(
        zone.read_text().replace(
            "old._domainkey:",
            "_smtp._tls:\n  ttl: 300\n  type: TXT\n"
            "  value: v=TLSRPTv1\\; rua=mailto:tls@alpha.example\nold._domainkey:",
        )
    )
    plan = plan_for(repo, sender_dns, zones=("alpha.example",))
    assert ("_smtp._tls", "create") in {(i.name, i.action) for i in plan.items}  # type: ignore[attr-defined]

    def someone_creates(zone: str) -> None:
        client_dns.update(
            "alpha.example", "_smtp._tls", "TXT", ["v=TLSRPTv1; rua=mailto:x@other.example"]
        )

    (result,) = apply_plan(plan, verify_timeout=0.5, progress=someone_creates)  # type: ignore[arg-type]
    assert result.status == "failed"
    assert "YXRRSET" in result.error
    assert served(client_dns, "_smtp._tls.alpha.example.") == [
        "v=TLSRPTv1; rua=mailto:x@other.example"
    ]


def test_a_batch_refused_half_way_is_recorded_and_journalled_item_by_item(
    tmp_path: Path, client_dns: NamedServer, sender_dns: NamedServer
) -> None:
    # octodns-bind sends a zone's changes in batches of update_batch_size: with batches of one,
    # the first change is written, then someone edits the second's record and its prerequisite
    # makes the server refuse that batch. The zone failed, one item is live, one is not, and the
    # journal's done line says exactly that.
    repo = make_repo(tmp_path)
    plan = plan_for(repo, sender_dns, zones=("alpha.example",))
    (zone,) = plan.zones  # type: ignore[attr-defined]
    zone.octodns_target.update_batch_size = 1
    first, second = (c.record for c in zone.octodns_plan.changes)
    edited = "v=DMARC1; p=none; pct=3" if second.name == "_dmarc" else "v=spf1 -all"

    def someone_edits(zone_name: str) -> None:
        client_dns.update("alpha.example", second.name or "@", "TXT", [edited])

    changes = tmp_path / "changes"
    journal = Journal.begin(changes, AT, {"plan_hash": "0" * 64})
    (result,) = apply_plan(plan, verify_timeout=0.5, progress=someone_edits, journal=journal)  # type: ignore[arg-type]
    journal.release()
    assert result.status == "failed"
    assert "LiveDnsMoved" in result.error
    status = {c.name: c.status for c in result.checks}
    assert status == {first.name: "verified", second.name: "mismatch"}
    assert result.verified == 1 and result.settled
    fqdn = f"{second.name}.alpha.example." if second.name else "alpha.example."
    assert edited in served(client_dns, fqdn)  # the edit was not written over
    (path,) = journals(changes)
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert [line["event"] for line in lines] == ["begin", "intent", "done"]
    done = lines[-1]
    assert (done["zone"], done["status"], done["settled"]) == ("alpha.example", "failed", True)
    assert {c["name"]: c["status"] for c in done["checks"]} == status


def test_zones_are_verified_in_parallel_and_each_failed_check_is_reported(
    tmp_path: Path,
    client_dns: NamedServer,
    sender_dns: NamedServer,
    named_factory: Callable[[Mapping[str, ZoneSpec]], NamedServer],
) -> None:
    # alpha's and beta's checks ask a server that still serves the old records (a secondary
    # that never got the update, say): each waits out its timeout and reports a mismatch per
    # item. Checked one zone after the other that takes two timeouts; in the pool, about one.
    repo = make_repo(tmp_path)
    plan = plan_for(repo, sender_dns)
    stale = named_factory(LIVE)
    by_zone = {z.zone: z for z in plan.zones}  # type: ignore[attr-defined]
    assert len({id(z.octodns_target) for z in by_zone.values()}) == 3  # one target per zone
    for name in ("alpha.example", "beta.example"):
        by_zone[name].octodns_target.dmarcops_dns_server = (stale.host, stale.port)
    timeout = 4.0
    began = time.monotonic()
    results = {r.zone: r for r in apply_plan(plan, verify_timeout=timeout, concurrency=4)}  # type: ignore[arg-type]
    elapsed = time.monotonic() - began
    assert timeout <= elapsed < 2 * timeout - 0.5, elapsed
    for name in ("alpha.example", "beta.example"):
        assert results[name].status == "applied"  # the update itself was accepted
        assert results[name].checks and all(
            c.status == "mismatch" and f"{stale.host}:{stale.port} serves" in c.detail
            for c in results[name].checks
        ), results[name].checks
    assert [c.status for c in results["gamma.example"].checks] == ["verified"] * len(
        results["gamma.example"].checks
    )
    # The primary serves the new values: the updates were sent, only the checks disagreed.
    assert served(client_dns, "_dmarc.alpha.example.") == [
        "v=DMARC1; p=quarantine; rua=mailto:dmarc@alpha.example"
    ]
    # In plan order, whatever order the checks came back in.
    assert list(results) == [z.zone for z in plan.zones]  # type: ignore[attr-defined]


@pytest.mark.filterwarnings("ignore:`Record.rrs` is DEPRECATED:DeprecationWarning")
def test_every_zone_goes_over_one_connection_until_the_server_closes_it(
    tmp_path: Path, client_dns: NamedServer, sender_dns: NamedServer
) -> None:
    # pipeline.live.bind.Connections: the zones' updates share one TCP connection (the same
    # local port each time); a named restarted in between closed it, and the next update opens a
    # new one instead of failing on the dead one; a named that is down refuses the connection
    # (ConnectionRefusedError: execute.py counts that as nothing sent).
    repo = make_repo(tmp_path)
    plan = plan_for(repo, sender_dns)
    zones = {z.zone: z for z in plan.zones}  # type: ignore[attr-defined]
    assert set(zones) == {"alpha.example", "beta.example", "gamma.example"}
    connections = Connections()
    server = (client_dns.host, client_dns.port)
    try:
        ports = []
        for name in ("alpha.example", "beta.example"):
            guarded_apply(zones[name].octodns_target, zones[name].octodns_plan, connections)
            ports.append(connections.to(*server, 2.0).getsockname()[1])
        assert ports[0] == ports[1]
        assert served(client_dns, "_dmarc.alpha.example.") == [
            "v=DMARC1; p=quarantine; rua=mailto:dmarc@alpha.example"
        ]
        assert served(client_dns, "beta.example.") == [TOKEN]
        client_dns.kill()
        client_dns.start()
        gamma = zones["gamma.example"]
        guarded_apply(gamma.octodns_target, gamma.octodns_plan, connections)
        assert connections.to(*server, 2.0).getsockname()[1] != ports[0]
        again = plan_for(repo, sender_dns)
        assert again.items == ()  # type: ignore[attr-defined]
        client_dns.kill()
        with pytest.raises(ConnectionRefusedError):
            guarded_apply(gamma.octodns_target, gamma.octodns_plan, connections)
    finally:
        connections.close()


def test_a_zone_whose_intent_was_written_ahead_but_not_sent_is_journalled_as_not_sent(
    tmp_path: Path, client_dns: NamedServer, sender_dns: NamedServer
) -> None:
    # pipeline.apply.execute writes beta's intent while alpha is on the wire; SIGTERM (stop())
    # then stops the apply before beta. beta's done line says it was not sent, so a recovery
    # reading this journal does not take beta for a zone in doubt.
    repo = make_repo(tmp_path)
    plan = plan_for(repo, sender_dns, clients=("alpha",))
    reached: list[str] = []

    def stop() -> str:
        return "stopped by SIGTERM" if "beta.example" in reached else ""

    changes = tmp_path / "changes"
    header = {"plan_hash": "0" * 64, "by": "jchen", "pid": 1, "clients": ["alpha"]}
    journal = Journal.begin(changes, AT, {**header, "started_at": "2026-12-01T15:00:00Z"})
    results = apply_plan(plan, progress=reached.append, stop=stop, journal=journal)  # type: ignore[arg-type]
    journal.release()
    assert [(r.zone, r.status, r.error) for r in results] == [
        ("alpha.example", "applied", ""),
        ("beta.example", "not-attempted", "not sent: stopped by SIGTERM"),
    ]
    (path,) = journals(changes)
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert [(line["event"], line.get("zone")) for line in lines[:3]] == [
        ("begin", None),
        ("intent", "alpha.example"),
        ("intent", "beta.example"),
    ]
    done = {line["zone"]: line for line in lines[3:]}
    assert [line["event"] for line in lines[3:]] == ["done", "done"]
    assert (done["beta.example"]["status"], done["beta.example"]["settled"]) == (
        "not-attempted",
        True,
    )
    state = read_journal(path)
    assert state.unsettled == []
    assert state.done["beta.example"].error == "not sent: stopped by SIGTERM"
    # Nothing of beta was sent: a new plan still has its change to make.
    again = plan_for(repo, sender_dns, clients=("alpha",))
    assert {(i.zone, i.name) for i in again.items} == {("beta.example", "")}  # type: ignore[attr-defined]


def _connections_to(port: int) -> list[int]:
    """The local ports of this machine's established TCP connections to `port` (IPv4), as the
    kernel lists them: what a client holds open, seen from outside the code under test."""
    found = []
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        local, remote, state = line.split()[1:4]
        if state == "01" and int(remote.split(":")[1], 16) == port:
            found.append(int(local.split(":")[1], 16))
    return found


def test_an_apply_sends_every_zone_over_the_same_connection(
    tmp_path: Path, client_dns: NamedServer, sender_dns: NamedServer
) -> None:
    # Before each zone is sent (progress), the connection the zones before it used is still
    # open, and it is the same one: with a connection per update there would be none.
    repo = make_repo(tmp_path)
    plan = plan_for(repo, sender_dns)
    seen: list[list[int]] = []
    results = apply_plan(plan, progress=lambda zone: seen.append(_connections_to(client_dns.port)))  # type: ignore[arg-type]
    assert [r.status for r in results] == ["applied"] * 3
    assert seen[0] == []  # nothing open before the first zone
    assert len(seen[1]) == 1 and seen[2] == seen[1], seen
    assert _connections_to(client_dns.port) == []  # closed when the apply is done
