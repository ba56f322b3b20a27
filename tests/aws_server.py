"""moto's standalone server on loopback, standing in for Route 53 (never moto's in-process mock).

boto3 reaches it over HTTP exactly as it reaches AWS: the endpoint comes from AWS_ENDPOINT_URL and
the credentials from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, the standard chain dmarcops uses.
A missing moto fails the test (MotoNotFoundError), never skips it.

`ThrottlingProxy` sits between boto3 and moto and answers the first N ChangeResourceRecordSets
calls with Route 53's throttling errors (moto never throttles), so botocore's retries are tested
against real HTTP answers.
"""

from __future__ import annotations

import http.client
import http.server
import importlib.util
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import boto3
import dns.rdata
import dns.rdataclass
import dns.rdatatype

HOST = "127.0.0.1"
REGION = "us-east-1"


class MotoNotFoundError(RuntimeError):
    pass


def _free_tcp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


class MotoServer:
    """`python -m moto.server` on a free loopback port; `reset()` empties every backend."""

    def __init__(self, start_timeout: float = 20.0) -> None:
        if (
            importlib.util.find_spec("moto.server") is None
            or importlib.util.find_spec("flask") is None
        ):
            raise MotoNotFoundError(
                "moto's server mode is not installed (pip install 'moto[server]'): the Route 53 "
                "tests need it and do not skip"
            )
        self.port = 0
        self.start_timeout = start_timeout
        self.start_seconds = 0.0
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: Path | None = None

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def start(self, log: Path) -> None:
        self.port = _free_tcp_port()
        self._log = log
        began = time.monotonic()
        with log.open("wb") as out:
            self._proc = subprocess.Popen(
                [sys.executable, "-m", "moto.server", "-H", HOST, "-p", str(self.port)],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=out,
            )
        while time.monotonic() - began < self.start_timeout:
            if self._proc.poll() is not None:
                raise MotoNotFoundError(f"moto_server exited: {log.read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(f"{self.url}/moto-api/data.json", timeout=0.5):
                    self.start_seconds = time.monotonic() - began
                    return
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise MotoNotFoundError(f"moto_server did not answer in {self.start_timeout:g} s")

    def reset(self) -> None:
        request = urllib.request.Request(f"{self.url}/moto-api/reset", method="POST")
        with urllib.request.urlopen(request, timeout=5):
            pass

    def stop(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(5)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(5)
        self._proc = None


def route53(endpoint: str) -> Any:
    """A boto3 client for the test's own seeding and reading (the credentials from the env)."""
    return boto3.client("route53", endpoint_url=endpoint, region_name=REGION)


def txt_value(text: str) -> str:
    """Route 53's form of one TXT value: quoted 255-character strings."""
    chunks = [text[i : i + 255] for i in range(0, len(text), 255)] or [""]
    return " ".join('"' + c.replace("\\", "\\\\").replace('"', '\\"') + '"' for c in chunks)


class Route53Zones:
    """Hosted zones in moto, seeded and read the way the client's DNS team would."""

    def __init__(self, endpoint: str) -> None:
        self.endpoint = endpoint
        self.client = route53(endpoint)
        self.ids: dict[str, str] = {}

    def create(
        self, zone: str, records: Sequence[tuple[str, str, str]], private: bool = False
    ) -> str:
        extra: dict[str, Any] = {}
        if private:
            extra = {
                "HostedZoneConfig": {"PrivateZone": True, "Comment": "VPC only"},
                "VPC": {"VPCRegion": REGION, "VPCId": "vpc-0123456789abcdef0"},
            }
        zone_id: str = self.client.create_hosted_zone(
            Name=f"{zone}.", CallerReference=f"{zone}-{time.monotonic_ns()}", **extra
        )["HostedZone"]["Id"]
        if not private:
            self.ids[zone] = zone_id
        grouped: dict[tuple[str, str], list[str]] = {}
        for name, rtype, value in records:
            grouped.setdefault((name, rtype), []).append(value)
        for (name, rtype), values in grouped.items():
            self.update(zone, name, rtype, values, zone_id=zone_id)
        return zone_id

    def fqdn(self, zone: str, name: str) -> str:
        return f"{zone}." if name in ("", "@") else f"{name}.{zone}."

    def update(
        self,
        zone: str,
        name: str,
        rtype: str,
        values: Sequence[str],
        ttl: int = 300,
        zone_id: str | None = None,
    ) -> None:
        """UPSERT the RRset behind dmarcops's back (a console edit)."""
        rendered = [txt_value(v) if rtype == "TXT" else v for v in values]
        self.client.change_resource_record_sets(
            HostedZoneId=zone_id or self.ids[zone],
            ChangeBatch={
                "Changes": [
                    {
                        "Action": "UPSERT",
                        "ResourceRecordSet": {
                            "Name": self.fqdn(zone, name),
                            "Type": rtype,
                            "TTL": ttl,
                            "ResourceRecords": [{"Value": v} for v in rendered],
                        },
                    }
                ]
            },
        )

    def raw(self, zone: str, name: str, rtype: str = "TXT") -> list[str]:
        """The values as Route 53 stores them (TXT quoted and split)."""
        want = self.fqdn(zone, name)
        resp = self.client.list_resource_record_sets(
            HostedZoneId=self.ids[zone], StartRecordName=want, StartRecordType=rtype
        )
        for rrset in resp["ResourceRecordSets"]:
            if rrset["Name"] == want and rrset["Type"] == rtype:
                return [r["Value"] for r in rrset["ResourceRecords"]]
        return []

    def served(self, zone: str, name: str, rtype: str = "TXT") -> list[str]:
        """Values as a resolver would see them: TXT strings joined (RFC 7208 3.3)."""
        # Route 53 keeps each value in zone-file presentation form and serves it decoded
        # (`\;` is `;`, strings are joined by the resolver): decode it the same way.
        out = []
        for value in self.raw(zone, name, rtype):
            if rtype == "TXT":
                rdata = dns.rdata.from_text(dns.rdataclass.IN, dns.rdatatype.TXT, value)
                value = b"".join(rdata.strings).decode()  # type: ignore[attr-defined]
            out.append(value)
        return sorted(out)


class _ProxyHandler(http.server.BaseHTTPRequestHandler):
    server: _ProxyServer

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def _forward(self) -> None:
        length = int(self.headers.get("Content-Length", "0") or 0)
        body = self.rfile.read(length) if length else b""
        proxy = self.server
        is_change = self.command == "POST" and "/rrset" in self.path
        if is_change and proxy.throttle_left:
            code = proxy.throttle_left.pop(0)
            proxy.throttled.append(code)
            # Refused credentials are 403 (botocore never retries them); throttling is 400.
            refused = code in ("InvalidClientTokenId", "SignatureDoesNotMatch", "AccessDenied")
            message = (
                "The security token included in the request is invalid."
                if refused
                else "Rate exceeded"
            )
            payload = (
                '<?xml version="1.0"?>\n<ErrorResponse xmlns="https://route53.amazonaws.com/'
                f'doc/2013-04-01/"><Error><Type>Sender</Type><Code>{code}</Code>'
                f"<Message>{message}</Message></Error><RequestId>throttled</RequestId>"
                "</ErrorResponse>"
            ).encode()
            self.send_response(403 if refused else 400)
            self.send_header("Content-Type", "text/xml")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
            return
        if is_change:
            proxy.passed += 1
        conn = http.client.HTTPConnection(HOST, proxy.upstream_port, timeout=30)
        headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
        conn.request(self.command, self.path, body=body, headers=headers)
        resp = conn.getresponse()
        data = resp.read()
        self.send_response(resp.status)
        for key, value in resp.getheaders():
            if key.lower() not in ("content-length", "transfer-encoding", "connection"):
                self.send_header(key, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
        conn.close()

    do_GET = _forward
    do_POST = _forward
    do_DELETE = _forward


class _ProxyServer(http.server.ThreadingHTTPServer):
    daemon_threads = True
    upstream_port: int
    throttle_left: list[str]
    throttled: list[str]
    passed: int


class ThrottlingProxy:
    """Answers the next ChangeResourceRecordSets calls with `codes` (Throttling,
    PriorRequestNotComplete), one each, then forwards to moto."""

    def __init__(self, upstream_port: int) -> None:
        self._server = _ProxyServer((HOST, 0), _ProxyHandler)
        self._server.upstream_port = upstream_port
        self._server.throttle_left = []
        self._server.throttled = []
        self._server.passed = 0
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self._server.server_address[1]}"

    def throttle(self, codes: Sequence[str]) -> None:
        self._server.throttle_left = list(codes)

    @property
    def throttled(self) -> list[str]:
        return list(self._server.throttled)

    @property
    def passed(self) -> int:
        return self._server.passed

    def __enter__(self) -> ThrottlingProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
