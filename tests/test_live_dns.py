"""DNS robustness of the live stage, against the session's real BIND behind a lossy UDP relay:
a lost datagram is retried within the lifetime, and report authorisations are asked once a run."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import REPORT_DEST
from dns_server import HOST, NamedServer
from portfolio import copy_example

from pipeline.live.dns import Nameservers, make_resolver, report_authorised
from pipeline.load.portfolio import load_portfolio
from pipeline.plan.build import _Lookups


class LossyRelay:
    """A UDP relay on loopback to a real server that drops the first `drop` queries it receives
    (a lost datagram, as on a congested link) and counts every query."""

    def __init__(self, upstream: tuple[str, int], drop: int) -> None:
        self.upstream = upstream
        self.drop = drop
        self.queries = 0
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((HOST, 0))
        self.sock.settimeout(0.2)
        self.port: int = self.sock.getsockname()[1]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                query, client = self.sock.recvfrom(65535)
            except TimeoutError:
                continue
            self.queries += 1
            if self.queries <= self.drop:
                continue
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as out:
                out.settimeout(2.0)
                out.sendto(query, self.upstream)
                answer, _ = out.recvfrom(65535)
            self.sock.sendto(answer, client)

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.sock.close()


@pytest.fixture
def relay(sender_dns: NamedServer, request: pytest.FixtureRequest) -> Iterator[LossyRelay]:
    lossy = LossyRelay((sender_dns.host, sender_dns.port), drop=getattr(request, "param", 0))
    yield lossy
    lossy.close()


@pytest.mark.parametrize("relay", [1], indirect=True)
def test_a_lost_datagram_is_retried_within_the_lifetime(relay: LossyRelay) -> None:
    # Before: timeout == lifetime, so the first lost datagram ended the question (None: unknown).
    resolver = make_resolver(Nameservers((HOST,), relay.port, timeout=3.0))
    assert resolver.timeout < resolver.lifetime
    assert report_authorised(resolver, "client.example", REPORT_DEST) is True
    assert relay.queries == 2  # the dropped one and its retry


def test_report_authorisations_are_asked_once_per_run(relay: LossyRelay, tmp_path: Path) -> None:
    portfolio = load_portfolio(copy_example(tmp_path))
    lookups = _Lookups(portfolio, Nameservers((HOST,), relay.port, timeout=3.0))
    answers = [lookups.report_authorised("client.example", REPORT_DEST) for _ in range(3)]
    answers.append(lookups.report_authorised("CLIENT.example", REPORT_DEST.upper()))
    assert answers == [True] * 4
    assert relay.queries == 1
    assert lookups.report_authorised("stranger.example", REPORT_DEST) is False
    assert relay.queries == 2
