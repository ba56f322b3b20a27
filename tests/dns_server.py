"""A real BIND 9 `named` on loopback for tests: authoritative zones, TSIG, RFC 2136 updates.

Facts this relies on about BIND 9 on loopback: `named -f -n 1`
with a config in a temp dir answers in about 0.2 s and stops on SIGTERM in a few ms. Tests that
need DNS must FAIL when `named` is missing (never skip), so a missing binary raises
`NamedNotFoundError` instead of returning something a test could skip on.
"""

from __future__ import annotations

import base64
import os
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import NamedTuple

import dns.exception
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdatatype
import dns.tsig
import dns.tsigkeyring
import dns.update

NAMED_FALLBACKS = ("/usr/sbin/named",)
HOST = "127.0.0.1"
DEFAULT_TTL = 300
# An NS target outside every test zone: BIND refuses updates that leave an in-zone NS host
# without an address ("post update name server sanity check failed").
OUTSIDE_NS = ("ns1.example.net.", "ns1.example.org.")


class NamedServerError(RuntimeError):
    """`named` could not be started or did not answer; the message carries the log tail."""


class NamedNotFoundError(NamedServerError):
    pass


class DynamicUpdateRefusedError(NamedServerError):
    """The server did not apply an RFC 2136 update (wrong/missing TSIG key, bad data)."""

    def __init__(self, message: str, rcode: str) -> None:
        super().__init__(message)
        self.rcode = rcode


class ZoneRecord(NamedTuple):
    """One resource record of a test zone. `value` is plain text for TXT (quoted here)."""

    name: str  # relative to the zone, "@" for the apex, or absolute with a trailing dot
    rtype: str
    value: str
    ttl: int = DEFAULT_TTL


RecordSpec = ZoneRecord | tuple[str, str, str] | tuple[str, str, str, int]
ZoneSpec = str | Sequence[RecordSpec]


def find_named(path_env: str | None = None, fallbacks: Sequence[str] = NAMED_FALLBACKS) -> str:
    """Path of the `named` binary: PATH first, then /usr/sbin (root's PATH may lack sbin)."""
    found = shutil.which("named", path=path_env)
    if found:
        return found
    for candidate in fallbacks:
        if os.access(candidate, os.X_OK):
            return candidate
    raise NamedNotFoundError(
        "BIND 9 `named` was not found on PATH nor at "
        + ", ".join(fallbacks)
        + ": install it (`apt-get install bind9`) - DNS tests need a real server and do not skip."
    )


def txt_rdata(text: str) -> str:
    """Zone-file form of one TXT value: quoted 255-byte strings (RFC 7208 3.3 joins them)."""
    raw = text.encode()
    chunks = [raw[i : i + 255] for i in range(0, len(raw), 255)] or [b""]
    out = []
    for chunk in chunks:
        escaped = chunk.decode(errors="replace").replace("\\", "\\\\").replace('"', '\\"')
        out.append(f'"{escaped}"')
    return " ".join(out)


def _record_line(spec: RecordSpec) -> str:
    record = ZoneRecord(*spec)
    rtype = record.rtype.upper()
    value = record.value
    if rtype == "TXT" and not value.startswith('"'):
        value = txt_rdata(value)
    return f"{record.name} {record.ttl} IN {rtype} {value}"


def free_port() -> int:
    """A port free for both UDP and TCP on loopback right now (named needs both)."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
            tcp.bind((HOST, 0))
            port: int = tcp.getsockname()[1]
        if port_free(port):
            return port
    raise NamedServerError("no loopback port free for both UDP and TCP after 50 tries")


def port_free(port: int) -> bool:
    for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
        with socket.socket(socket.AF_INET, kind) as sock:
            try:
                sock.bind((HOST, port))
            except OSError:
                return False
    return True


class NamedServer:
    """One `named` process serving the given zones, primary for all, TSIG-guarded for updates.

    `zones` maps a zone name to zone-file text (the SOA/NS skeleton is added when the text has
    no SOA) or to records (`ZoneRecord` or `(name, type, value[, ttl])` tuples).
    """

    key_algorithm = "hmac-sha256"
    host = HOST

    def __init__(
        self,
        zones: Mapping[str, ZoneSpec] | None = None,
        *,
        named_path: str | None = None,
        key_name: str = "dmarcops-test-key",
        start_timeout: float = 10.0,
    ) -> None:
        # Resolve the binary first so a missing `named` fails at construction, loudly.
        self.named_path = named_path if named_path is not None else find_named()
        if not os.access(self.named_path, os.X_OK):
            raise NamedNotFoundError(
                f"`named` binary {self.named_path!r} is missing or not executable"
            )
        self.key_name = key_name
        self.key_secret = base64.b64encode(secrets.token_bytes(32)).decode()
        self.start_timeout = start_timeout
        self.port = 0
        self.start_seconds = 0.0  # wall time of the last successful start, for reports
        self._zones: dict[str, str] = {}
        self._dir: Path | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        for zone, spec in (zones or {}).items():
            self._zones[self._origin(zone)] = self._zone_text(self._origin(zone), spec)

    # -- lifecycle -----------------------------------------------------------------------

    def __enter__(self) -> NamedServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @contextmanager
    def frozen(self) -> Iterator[None]:
        """named stopped (SIGSTOP) for the block: its sockets stay open and nothing answers, as
        a server that hangs mid-update; continued (SIGCONT) however the block ends."""
        assert self._proc is not None, "named is not running"
        self._proc.send_signal(signal.SIGSTOP)
        try:
            yield
        finally:
            self._proc.send_signal(signal.SIGCONT)

    @property
    def directory(self) -> Path:
        if self._dir is None:
            self._dir = Path(tempfile.mkdtemp(prefix="dmarcops-named-"))
        return self._dir

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def zones(self) -> tuple[str, ...]:
        return tuple(self._zones)

    def start(self, attempts: int = 5) -> None:
        """Start on a free port; retry on another port when something took ours meanwhile."""
        if self.running:
            return
        keep_port = self.port != 0  # a restart keeps the port clients were given
        last_error: NamedServerError | None = None
        for _ in range(attempts):
            if not keep_port:
                self.port = free_port()
            try:
                self._launch()
                return
            except _PortInUseError as exc:
                last_error = exc
                if keep_port:
                    time.sleep(0.2)  # the old socket may linger briefly after a restart
        raise NamedServerError(f"named could not bind a port after {attempts} tries: {last_error}")

    def stop(self) -> None:
        """SIGTERM and wait (named exits in a few ms); the temp dir is removed."""
        self._terminate(signal.SIGTERM)
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    def kill(self) -> None:
        """SIGKILL, keeping the zone files: for tests of an unreachable server.
        `start()` brings the same zones (with their dynamic updates) back on the same port."""
        self._terminate(signal.SIGKILL)

    def add_zone(self, name: str, records: ZoneSpec) -> None:
        """Serve one more zone; a running server restarts on the same port (no rndc needed)."""
        origin = self._origin(name)
        self._zones[origin] = self._zone_text(origin, records)
        if self.running:
            self._terminate(signal.SIGTERM)
            self.start()

    # -- talking to it ----------------------------------------------------------------------

    def provider_config(self) -> dict[str, object]:
        """Keyword arguments for octodns_bind.Rfc2136Provider (besides its id)."""
        return {
            "host": self.host,
            "port": self.port,
            "key_name": self.key_name,
            "key_secret": self.key_secret,
            "key_algorithm": self.key_algorithm,
        }

    def client_env(self) -> dict[str, str]:
        """The TEST_BIND_* variables a test repository's policy/providers.yaml reads, so that
        its clients' zones are served by this server."""
        return {
            "TEST_BIND_HOST": self.host,
            "TEST_BIND_PORT": str(self.port),
            "TEST_BIND_KEY_NAME": self.key_name,
            "TEST_BIND_KEY_SECRET": self.key_secret,
        }

    def update(
        self,
        zone: str,
        name: str,
        rtype: str,
        values: Sequence[str],
        ttl: int = DEFAULT_TTL,
        *,
        key_name: str | None = None,
        key_secret: str | None = None,
        signed: bool = True,
    ) -> None:
        """Replace the RRset `name`/`rtype` with `values` (empty: delete it) by a TSIG-signed
        RFC 2136 update, the way someone changing live DNS behind the pipeline's back would.

        `key_name`/`key_secret` override the server's key (to test a wrong key); `signed=False`
        sends no TSIG at all. Raises DynamicUpdateRefusedError unless the server says NOERROR.
        """
        origin = dns.name.from_text(zone)
        if signed:
            keyring = dns.tsigkeyring.from_text(
                {key_name or self.key_name: key_secret or self.key_secret}
            )
            message = dns.update.UpdateMessage(
                origin, keyring=keyring, keyalgorithm=self.key_algorithm
            )
        else:
            message = dns.update.UpdateMessage(origin)
        owner = dns.name.from_text(name, origin=origin) if name not in ("", "@") else origin
        rdtype = dns.rdatatype.from_text(rtype)
        if values:
            texts = [
                txt_rdata(v) if rdtype == dns.rdatatype.TXT and not v.startswith('"') else v
                for v in values
            ]
            message.replace(owner, ttl, rtype, *texts)
        else:
            message.delete(owner, rdtype)
        try:
            response = dns.query.tcp(message, self.host, port=self.port, timeout=3.0)
        except dns.tsig.PeerError as exc:
            # The server answered with a TSIG error (BADSIG/BADKEY): it refused our signature.
            raise DynamicUpdateRefusedError(
                f"update of {owner} {rtype} refused: TSIG {type(exc).__name__}", "NOTAUTH"
            ) from exc
        rcode = dns.rcode.to_text(response.rcode())
        if response.rcode() != dns.rcode.NOERROR:
            raise DynamicUpdateRefusedError(f"update of {owner} {rtype} refused: {rcode}", rcode)

    def query(self, name: str, rtype: str = "TXT", timeout: float = 1.0) -> dns.message.Message:
        """One UDP query straight to this server (for readiness checks and assertions)."""
        request = dns.message.make_query(name, rtype)
        return dns.query.udp(request, self.host, port=self.port, timeout=timeout)

    def log_tail(self, lines: int = 30) -> str:
        parts = []
        for file_name in ("named.stderr", "named.log"):
            path = self.directory / file_name
            if path.exists() and path.stat().st_size:
                text = path.read_text(errors="replace").splitlines()[-lines:]
                parts.append(f"--- {file_name} ---\n" + "\n".join(text))
        return "\n".join(parts) or "(named wrote no log)"

    # -- internals ---------------------------------------------------------------------------

    @staticmethod
    def _origin(zone: str) -> str:
        return zone.rstrip(".").lower() + "."

    @staticmethod
    def _zone_text(origin: str, spec: ZoneSpec) -> str:
        body = spec if isinstance(spec, str) else "\n".join(_record_line(r) for r in spec)
        if " SOA " in body.upper() or "\tSOA\t" in body.upper():
            return f"$ORIGIN {origin}\n$TTL {DEFAULT_TTL}\n{body}\n"
        ns = next(n for n in OUTSIDE_NS if not (n == origin or n.endswith("." + origin)))
        skeleton = (
            f"$ORIGIN {origin}\n$TTL {DEFAULT_TTL}\n"
            f"@ {DEFAULT_TTL} IN SOA {ns} hostmaster.{origin} 1 3600 600 604800 300\n"
            f"@ {DEFAULT_TTL} IN NS {ns}\n"
        )
        return skeleton + body + "\n"

    def _write_config(self) -> Path:
        d = self.directory
        zone_blocks = []
        for origin, text in self._zones.items():
            zone_file = d / f"{origin}db"
            # Written once: after a restart (add_zone, kill + start) named replays its journal
            # over this file, so dynamic updates made by a test survive the restart.
            if not zone_file.exists():
                zone_file.write_text(text)
            zone_blocks.append(
                f'zone "{origin}" {{ type primary; file "{zone_file}";'
                f" allow-update {{ key {self.key_name}; }};"
                f" allow-transfer {{ key {self.key_name}; }}; }};"
            )
        conf = f"""
key {self.key_name} {{ algorithm {self.key_algorithm}; secret "{self.key_secret}"; }};
options {{
    directory "{d}";
    pid-file "{d}/named.pid";
    session-keyfile "{d}/session.key";
    managed-keys-directory "{d}";
    listen-on port {self.port} {{ {self.host}; }};
    listen-on-v6 {{ none; }};
    recursion no;
    dnssec-validation no;
    notify no;
    // Permissive like hosted DNS APIs: tests publish MX/NS targets without addresses on purpose.
    check-integrity no;
    check-mx ignore;
    check-names primary ignore;
    allow-transfer {{ key {self.key_name}; }};
}};
controls {{ }};
logging {{
    channel to_file {{ file "{d}/named.log"; print-time yes; print-severity yes;
                       print-category yes; severity info; }};
    category default {{ to_file; }};
}};
{chr(10).join(zone_blocks)}
"""
        path = d / "named.conf"
        path.write_text(conf)
        return path

    def _launch(self) -> None:
        conf = self._write_config()
        for stale in ("named.log", "named.stderr"):
            (self.directory / stale).unlink(missing_ok=True)
        stderr = (self.directory / "named.stderr").open("wb")
        began = time.monotonic()
        with stderr:
            self._proc = subprocess.Popen(
                [self.named_path, "-f", "-n", "1", "-c", str(conf)],
                stdin=subprocess.DEVNULL,
                stdout=stderr,
                stderr=stderr,
            )
        probe = next(iter(self._zones), "version.bind.")
        deadline = began + self.start_timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                # named exits before its logging is set up when it cannot listen ("unable to
                # listen on any configured interfaces"), so ask the port rather than the log.
                if not port_free(self.port):
                    self._proc = None
                    raise _PortInUseError(f"port {self.port} in use")
                self._fail_start(f"named exited with status {self._proc.returncode}")
            try:
                response = self.query(probe, "SOA", timeout=0.1)
            except (dns.exception.Timeout, OSError):
                if "address in use" in self.log_tail(200):
                    self._terminate(signal.SIGKILL)
                    raise _PortInUseError(f"port {self.port} in use") from None
                time.sleep(0.02)
                continue
            # An answer for the first zone means every zone in the config has loaded or failed;
            # a zone that failed to load answers SERVFAIL, which we want to hear about now.
            if self._zones and response.rcode() != dns.rcode.NOERROR:
                self._fail_start(f"zone {probe} answers {dns.rcode.to_text(response.rcode())}")
            for origin in self._zones:
                if self.query(origin, "SOA").rcode() != dns.rcode.NOERROR:
                    self._fail_start(f"zone {origin} did not load")
            self.start_seconds = time.monotonic() - began
            return
        self._fail_start(f"named did not answer SOA {probe} within {self.start_timeout} s")

    def _fail_start(self, reason: str) -> None:
        tail = self.log_tail()
        self._terminate(signal.SIGKILL)
        raise NamedServerError(f"{reason} (port {self.port}, dir {self._dir})\n{tail}")

    def _terminate(self, sig: signal.Signals) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(sig)
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


class _PortInUseError(NamedServerError):
    pass
