"""A real PowerDNS Authoritative server on loopback: the sqlite3 backend and the HTTP API.

Debian's pdns-server and pdns-backend-sqlite3 (scripts/test installs them). The database is made
from the schema the backend package ships; zones are created and seeded through the API, the way
a client's DNS team would. A missing pdns_server (or backend) fails the test, never skips it.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import sqlite3
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import dns.exception
import dns.message
import dns.query
import dns.rdatatype
from dns_server import free_port

HOST = "127.0.0.1"
PDNS_FALLBACKS = ("/usr/sbin/pdns_server",)
SCHEMA = Path("/usr/share/pdns-backend-sqlite3/schema/schema.sqlite3.sql")
OUTSIDE_NS = "ns1.example.net."


class PdnsNotFoundError(RuntimeError):
    pass


def find_pdns() -> str:
    found = shutil.which("pdns_server")
    if found:
        return found
    for candidate in PDNS_FALLBACKS:
        if os.access(candidate, os.X_OK):
            return candidate
    raise PdnsNotFoundError(
        "PowerDNS `pdns_server` was not found: install it (`apt-get install pdns-server "
        "pdns-backend-sqlite3`) - the PowerDNS tests need a real server and do not skip."
    )


def quoted(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


class PdnsServer:
    """pdns_server with gsqlite3: DNS on `port`, the HTTP API on `api_port` (key `api_key`)."""

    def __init__(self, start_timeout: float = 15.0) -> None:
        self.binary = find_pdns()
        if not SCHEMA.exists():
            raise PdnsNotFoundError(
                f"{SCHEMA} is missing: install pdns-backend-sqlite3 (the tests do not skip)"
            )
        self.api_key = secrets.token_hex(16)
        self.port = 0
        self.api_port = 0
        self.start_timeout = start_timeout
        self.start_seconds = 0.0
        self.directory = Path(tempfile.mkdtemp(prefix="dmarcops-pdns-"))
        self._proc: subprocess.Popen[bytes] | None = None
        db = sqlite3.connect(self.directory / "pdns.sqlite3")
        db.executescript(SCHEMA.read_text())
        db.commit()
        db.close()

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def api(self) -> str:
        return f"http://{HOST}:{self.api_port}/api/v1/servers/localhost"

    def provider_entry(self, name: str, **env: str) -> str:
        """The policy/providers.yaml entry (secrets by env/NAME, as the repository requires)."""
        return (
            f"  {name}:\n    class: octodns_powerdns.PowerDnsProvider\n"
            f"    host: {HOST}\n    port: env/{env.get('port', 'TEST_PDNS_API_PORT')}\n"
            f"    api_key: env/{env.get('api_key', 'TEST_PDNS_API_KEY')}\n"
            f"    dns_server: env/{env.get('dns', 'TEST_PDNS_DNS')}\n    timeout: 2\n"
        )

    def _write_config(self) -> None:
        d = self.directory
        (d / "pdns.conf").write_text(
            "\n".join(
                [
                    "launch=gsqlite3",
                    f"gsqlite3-database={d / 'pdns.sqlite3'}",
                    f"local-address={HOST}",
                    f"local-port={self.port}",
                    "api=yes",
                    f"api-key={self.api_key}",
                    "webserver=yes",
                    f"webserver-address={HOST}",
                    f"webserver-port={self.api_port}",
                    "webserver-allow-from=127.0.0.0/8",
                    f"socket-dir={d}",
                    "guardian=no",
                    "daemon=no",
                    "disable-syslog=yes",
                    "loglevel=4",
                    "",
                ]
            )
        )

    def start(self, attempts: int = 3) -> None:
        """Start (again, on the same ports when it ran before); when pdns_server exits at once
        (a port taken meanwhile), try again on fresh ports."""
        if self.running:
            return
        if not self.port:
            self.port, self.api_port = free_port(), free_port()
        for attempt in range(attempts):
            if self._launch():
                return
            if attempt + 1 < attempts:
                self.port, self.api_port = free_port(), free_port()
        raise PdnsNotFoundError(f"pdns_server exited {attempts} times: {self.log_tail()}")

    def _launch(self) -> bool:
        self._write_config()
        began = time.monotonic()
        with (self.directory / "pdns.log").open("ab") as log:
            self._proc = subprocess.Popen(
                [self.binary, f"--config-dir={self.directory}"],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
            )
        while time.monotonic() - began < self.start_timeout:
            if self._proc.poll() is not None:
                return False
            try:
                self.request("GET", "")
                probe = dns.message.make_query("version.test.", "SOA")
                dns.query.udp(probe, HOST, port=self.port, timeout=0.2)
            except (OSError, dns.exception.DNSException):
                time.sleep(0.05)
                continue
            self.start_seconds = time.monotonic() - began
            return True
        self.stop(keep=True)
        raise PdnsNotFoundError(f"pdns_server did not answer in time: {self.log_tail()}")

    def stop(self, keep: bool = False) -> None:
        """SIGTERM; `keep` leaves the database (a restart serves the same zones)."""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.send_signal(signal.SIGTERM)
            try:
                self._proc.wait(5)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(5)
        self._proc = None
        if not keep:
            shutil.rmtree(self.directory, ignore_errors=True)

    def log_tail(self, lines: int = 20) -> str:
        path = self.directory / "pdns.log"
        text = path.read_text(errors="replace") if path.exists() else ""
        return "\n".join(text.splitlines()[-lines:]) or "(no log)"

    # -- the API and DNS, as the client's DNS team and a resolver use them -------------------

    def request(self, method: str, path: str, body: Any = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(
            f"{self.api}/{path}".rstrip("/"),
            data=data,
            method=method,
            headers={"X-API-Key": self.api_key, "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(req, timeout=5) as resp:
            raw = resp.read()
        return json.loads(raw) if raw else None

    def create(self, zone: str, records: Sequence[tuple[str, str, str]]) -> None:
        self.request(
            "POST",
            "zones",
            {"name": f"{zone}.", "kind": "Native", "nameservers": [OUTSIDE_NS]},
        )
        grouped: dict[tuple[str, str], list[str]] = {}
        for name, rtype, value in records:
            grouped.setdefault((name, rtype), []).append(value)
        for (name, rtype), values in grouped.items():
            self.update(zone, name, rtype, values)

    @staticmethod
    def fqdn(zone: str, name: str) -> str:
        return f"{zone}." if name in ("", "@") else f"{name}.{zone}."

    def update(
        self, zone: str, name: str, rtype: str, values: Sequence[str], ttl: int = 300
    ) -> None:
        """REPLACE the RRset through the API, behind dmarcops's back."""
        self.request(
            "PATCH",
            f"zones/{zone}.",
            {
                "rrsets": [
                    {
                        "name": self.fqdn(zone, name),
                        "type": rtype,
                        "ttl": ttl,
                        "changetype": "REPLACE",
                        "records": [
                            {"content": quoted(v) if rtype == "TXT" else v, "disabled": False}
                            for v in values
                        ],
                    }
                ]
            },
        )

    def served(self, zone: str, name: str, rtype: str = "TXT") -> list[str]:
        """What pdns answers over DNS (TCP: long TXT sets do not fit UDP)."""
        query = dns.message.make_query(self.fqdn(zone, name), rtype)
        answer = dns.query.tcp(query, HOST, port=self.port, timeout=2)
        out = []
        for rrset in answer.answer:
            if rrset.rdtype != dns.rdatatype.from_text(rtype):
                continue
            for rdata in rrset:
                out.append(b"".join(rdata.strings).decode() if rtype == "TXT" else rdata.to_text())
        return sorted(out)

    def strings(self, zone: str, name: str) -> list[list[int]]:
        """The lengths of each TXT value's character-strings on the wire."""
        query = dns.message.make_query(self.fqdn(zone, name), "TXT")
        answer = dns.query.tcp(query, HOST, port=self.port, timeout=2)
        return sorted([len(s) for s in rdata.strings] for rrset in answer.answer for rdata in rrset)
