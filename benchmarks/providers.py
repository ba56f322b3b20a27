"""Measure what each live-DNS provider does with the records dmarcops writes (docs/providers.md).

    .venv/bin/python benchmarks/providers.py [--repeat 5]

Starts the test servers on loopback (tests/dns_server.py: BIND 9; tests/aws_server.py: moto's
server for Route 53; tests/pdns_server.py: PowerDNS with sqlite3) and, through the octoDNS provider
classes dmarcops uses, measures per provider:

- the longest single TXT value written and read back unchanged (lengths tried in LENGTHS), and
  how a 600-character value is stored and served (its character-strings);
- whether a root NS change is offered by the provider class (SUPPORTS_ROOT_NS);
- the wall time of dmarcops's apply + verify of one zone with two TXT changes (median of N), and
  how verification was done;
- Route 53 only: the time to deliver one change batch through two injected throttling answers
  (botocore's backoff).

A benchmark, not a test: it prints a Markdown table and exits 1 only when a server cannot start.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from aws_server import MotoServer, Route53Zones, ThrottlingProxy  # noqa: E402
from dns_server import NamedServer  # noqa: E402
from octodns.record import Record  # noqa: E402
from octodns.zone import Zone  # noqa: E402
from pdns_server import PdnsServer  # noqa: E402

LENGTHS = (255, 256, 1024, 2048, 4000, 4001, 8000, 16000, 32000, 65000, 65300, 70000)
ZONE = "bench.example"


def _value(length: int) -> str:
    text = "v=DKIM1; k=rsa; p="
    return (text + "A" * length)[:length]


def _read(provider: Any, name: str) -> tuple[str, ...]:
    from pipeline.live.scope import raw_values

    if hasattr(provider, "_r53_rrsets"):
        provider._r53_rrsets = {}
    live = Zone(f"{ZONE}.", [])
    provider.populate(live, target=True, lenient=True)
    for record in live.records:
        if record.name == name and record._type == "TXT":
            return raw_values(record)
    return ()


def _write(provider: Any, name: str, value: str) -> str:
    """'' when written and read back equal; else what happened."""
    existing = Zone(f"{ZONE}.", [])
    provider.populate(existing, target=True, lenient=True)
    desired = Zone(f"{ZONE}.", [])
    for record in existing.records:
        desired.add_record(record.copy(zone=desired), lenient=True)
    desired.add_record(
        Record.new(
            desired,
            name,
            {"type": "TXT", "ttl": 300, "value": value.replace(";", "\\;")},
            lenient=True,
        ),
        replace=True,
        lenient=True,
    )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            plan = provider.plan(desired)
            if plan is not None:
                provider.apply(plan)
    except Exception as exc:
        return f"refused: {type(exc).__name__}: {str(exc).splitlines()[0][:120]}"
    back = _read(provider, name)
    return "" if back == (value,) else f"read back {len(back[0]) if back else 0} chars"


def longest_txt(provider: Any) -> tuple[int, str]:
    best, note = 0, ""
    for length in LENGTHS:
        problem = _write(provider, f"len{length}", _value(length))
        if problem:
            note = f"{length}: {problem}"
            break
        best = length
    return best, note


def timed_apply(make_target: Any, served: Any, repeat: int) -> tuple[float, str]:
    """dmarcops's apply_plan on one zone, two TXT changes, median wall time of `repeat` runs."""
    from types import SimpleNamespace

    from pipeline.apply.execute import apply_plan
    from pipeline.plan.items import ZoneResult

    times = []
    method = ""
    for i in range(repeat):
        target = make_target()
        existing = Zone(f"{ZONE}.", [])
        target.populate(existing, target=True, lenient=True)
        desired = Zone(f"{ZONE}.", [])
        for record in existing.records:
            desired.add_record(record.copy(zone=desired), lenient=True)
        values = {"_dmarc": f"v=DMARC1; p=quarantine; pct={10 + i}", "": f"v=spf1 a{i} -all"}
        for name, value in values.items():
            desired.add_record(
                Record.new(
                    desired,
                    name,
                    {"type": "TXT", "ttl": 300, "value": value.replace(";", "\\;")},
                    lenient=True,
                ),
                replace=True,
                lenient=True,
            )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            octo = target.plan(desired)
        # Only what apply and verification read of a plan item.
        items = tuple(
            SimpleNamespace(
                zone=ZONE,
                name=name,
                type="TXT",
                after=(value,),
                fqdn=f"{name}.{ZONE}" if name else ZONE,
            )
            for name, value in values.items()
        )
        zone = ZoneResult("bench", ZONE, "bench", octodns_plan=octo, octodns_target=target)
        began = time.monotonic()
        plan = SimpleNamespace(zones=(zone,), items=items)
        (result,) = apply_plan(plan, verify_timeout=10.0)
        times.append(time.monotonic() - began)
        assert result.status == "applied" and result.verified == 2, result
        method = f"{result.checks[0].method}: {result.checks[0].detail}"
    return statistics.median(times), method


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    from octodns_bind import Rfc2136Provider
    from octodns_powerdns import PowerDnsProvider
    from octodns_route53 import Route53Provider

    from pipeline.load.portfolio import ProviderConfig

    rows: dict[str, dict[str, str]] = {}
    skeleton = [("@", "TXT", "v=spf1 -all"), ("_dmarc", "TXT", "v=DMARC1; p=none")]

    # BIND 9
    named = NamedServer({ZONE: skeleton})
    named.start()
    try:

        def bind() -> Any:
            target = Rfc2136Provider("bind", **named.provider_config())
            target.dmarcops_dns_server = None
            target.dmarcops_provider = ProviderConfig(
                "bind", {"class": "octodns_bind.Rfc2136Provider"}, Path("x"), None
            )
            return target

        best, note = longest_txt(bind())
        import dns.message
        import dns.query

        answer = dns.query.tcp(
            dns.message.make_query(f"len1024.{ZONE}.", "TXT"), named.host, port=named.port
        )
        strings = [len(s) for rrset in answer.answer for d in rrset for s in d.strings]
        median, method = timed_apply(bind, None, args.repeat)
        rows["BIND 9 (octodns-bind, RFC 2136)"] = {
            "longest": f"{best}" + (f" (next: {note})" if note else ""),
            "stored": f"1024 chars served as strings {strings}",
            "root_ns": str(Rfc2136Provider.SUPPORTS_ROOT_NS),
            "apply": f"{median * 1000:.0f} ms",
            "verify": method,
        }
    finally:
        named.stop()

    # Route 53 (moto)
    moto = MotoServer()
    moto.start(Path(tempfile.mkdtemp()) / "moto.log")
    os.environ.update(
        AWS_ENDPOINT_URL=moto.url,
        AWS_ACCESS_KEY_ID="AKIABENCH",
        AWS_SECRET_ACCESS_KEY="bench-secret",  # noqa: S106 (moto accepts any)
        AWS_DEFAULT_REGION="us-east-1",
        AWS_CONFIG_FILE="/nonexistent",
        AWS_SHARED_CREDENTIALS_FILE="/nonexistent",
    )
    try:
        zones = Route53Zones(moto.url)
        zones.create(ZONE, skeleton)
        config = ProviderConfig(
            "r53", {"class": "octodns_route53.Route53Provider"}, Path("x"), None
        )

        def r53() -> Any:
            target = Route53Provider("r53", client_max_attempts=5)
            target.dmarcops_dns_server = None
            target.dmarcops_provider = config
            return target

        best, note = longest_txt(r53())
        stored = zones.raw(ZONE, "len1024")[0]
        median, method = timed_apply(r53, None, args.repeat)
        with ThrottlingProxy(moto.port) as proxy:
            os.environ["AWS_ENDPOINT_URL"] = proxy.url
            proxy.throttle(["Throttling", "PriorRequestNotComplete"])
            began = time.monotonic()
            _write(r53(), "throttled", "v=spf1 throttled -all")
            throttled = time.monotonic() - began
            os.environ["AWS_ENDPOINT_URL"] = moto.url
        rows["Route 53 (octodns-route53; moto server)"] = {
            "longest": f"{best}" + (f" (next: {note})" if note else ""),
            "stored": f"1024 chars stored as {stored.count(chr(34)) // 2} quoted strings",
            "root_ns": str(Route53Provider.SUPPORTS_ROOT_NS),
            "apply": f"{median * 1000:.0f} ms",
            "verify": method,
            "throttle": f"2 throttling answers then delivered: {throttled:.1f} s "
            f"({proxy.throttled})",
        }
    finally:
        moto.stop()

    # PowerDNS
    pdns = PdnsServer()
    pdns.start()
    try:
        pdns.create(ZONE, skeleton)
        config = ProviderConfig(
            "pdns", {"class": "octodns_powerdns.PowerDnsProvider"}, Path("x"), None
        )

        def pd() -> Any:
            target = PowerDnsProvider(
                "pdns", host="127.0.0.1", port=pdns.api_port, api_key=pdns.api_key
            )
            target.dmarcops_dns_server = ("127.0.0.1", pdns.port)
            target.dmarcops_provider = config
            return target

        best, note = longest_txt(pd())
        strings = pdns.strings(ZONE, "len1024")
        median, method = timed_apply(pd, None, args.repeat)
        rows["PowerDNS 4.7 (octodns-powerdns, sqlite3)"] = {
            "longest": f"{best}" + (f" (next: {note})" if note else ""),
            "stored": f"1024 chars stored as one string, served as strings {strings[0]}",
            "root_ns": str(PowerDnsProvider.SUPPORTS_ROOT_NS),
            "apply": f"{median * 1000:.0f} ms",
            "verify": method,
        }
    finally:
        pdns.stop()

    print(f"lengths tried: {', '.join(map(str, LENGTHS))}; apply median of {args.repeat}\n")
    for name, row in rows.items():
        print(f"## {name}")
        for key, value in row.items():
            print(f"- {key}: {value}")
        print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
