"""The dkim-switch gate's live check against a real named: a selector is usable only when live
DNS serves a valid key at it, read through the client's provider (a CNAME'd selector followed
with the configured resolver)."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from pathlib import Path

import pytest
from dns_server import NamedServer, ZoneSpec
from portfolio import REPO
from test_ns_delegation import HEAD, ZONE, make_repo

from pipeline.live.dns import Nameservers
from pipeline.live.selector import check_selector
from pipeline.load.portfolio import load_portfolio

KEY = (
    re.search(
        r"s2026\._domainkey:\n(?:  .*\n)*?  value: (.*)\n",
        (REPO / "zones/fabrikam-labs/fabrikam.example.yaml").read_text(),
    )
    .group(1)
    .replace("\\;", ";")
)  # type: ignore[union-attr]


def test_selectors_in_live_dns(
    tmp_path: Path,
    named_factory: Callable[[Mapping[str, ZoneSpec]], NamedServer],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    server = named_factory(
        {
            ZONE: [
                ("s1._domainkey", "TXT", KEY),
                ("s2._domainkey", "CNAME", "s2.dkim.vendor.example."),
                ("s4._domainkey", "TXT", "v=DKIM1; k=rsa; p="),
                ("s5._domainkey", "CNAME", "gone.dkim.vendor.example."),
            ],
            "vendor.example": [("s2.dkim", "TXT", KEY)],
        }
    )
    for name, value in (
        ("TEST_BIND_HOST", server.host),
        ("TEST_BIND_PORT", str(server.port)),
        ("TEST_BIND_KEY_NAME", server.key_name),
        ("TEST_BIND_KEY_SECRET", server.key_secret),
    ):
        monkeypatch.setenv(name, value)
    portfolio = load_portfolio(make_repo(tmp_path, HEAD))
    resolver = Nameservers((server.host,), server.port, 2.0)

    def status(selector: str, ns: Nameservers | None = resolver) -> str:
        return check_selector(portfolio, "deleg", ZONE, selector, ns).status

    assert status("s1") == "valid"
    assert status("s2") == "valid"  # followed through the CNAME to the vendor's key
    assert status("s3") == "missing"
    assert status("s4") == "invalid"  # p= empty: revoked
    assert status("s5") == "missing"
    assert status("s2", None) == "unreadable"  # no resolver to follow the CNAME: not verified
    server.kill()
    assert status("s1") == "unreadable"
