"""What every dmarcops command shares: turning every way a run can end into one message and a
documented exit code (docs/exit-codes.md).

- bad input, a missing secret or server (DmarcopsError): `error: FILE:LINE:COL: what` plus what to
  do, exit 1; a gate's refusal: `refused: ...`, exit 2;
- a command-line usage error (unknown option, bad value): click's message, exit 1, not click's 2,
  which would read as "a gate refused";
- Ctrl-C: one line, exit 130;
- anything else is a bug: one line naming a crash log that holds the traceback (secrets
  redacted), exit 70. `--debug` (or DMARCOPS_DEBUG=1) shows the traceback instead.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextvars import ContextVar
from datetime import UTC, datetime
from functools import wraps
from pathlib import Path
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

import click

from pipeline.errors import (
    EXIT_CRASH,
    EXIT_INPUT,
    EXIT_INTERRUPTED,
    EXIT_OK,
    DmarcopsError,
    EnvironmentProblem,
    GateRefused,
    InputError,
)

if TYPE_CHECKING:
    # Imported where used: `dmarcops --help` and every command's start must not pay for the
    # records, signing and DNS modules (tests/test_imports.py).
    from pipeline.clock import CommandTime
    from pipeline.gate.identity import Signer
    from pipeline.live.dns import Nameservers
    from pipeline.load.portfolio import Portfolio
    from pipeline.load.request_files import Selector

P = ParamSpec("P")
R = TypeVar("R")
F = TypeVar("F", bound=Callable[..., object])


def echo_error(text: str, label: str = "error: ") -> None:
    """One labelled line on stderr; `text` is already escaped where it quotes input
    (pipeline/text/safe.py)."""
    click.echo(click.style(label, fg="red", bold=True) + text, err=True)


def echo_warning(text: str) -> None:
    """A `warning:` line on stderr: the run goes on (exit 0 unless something else fails)."""
    click.echo(click.style("warning: ", fg="yellow", bold=True) + text, err=True)


def report_error(exc: DmarcopsError) -> None:
    for problem in (*exc.also, exc):
        echo_error(str(problem), "refused: " if isinstance(problem, GateRefused) else "error: ")


def parse_selector(text: str, option: str) -> Selector:
    """A selector given on the command line (`--cover`, `--record`), or InputError naming the
    option and the forms it takes."""
    from pipeline.load.request_files import Selector

    selector = Selector.parse(text)
    if selector is None:
        raise InputError(
            f"cannot read {option} {text!r}",
            hint="Write 'ZONE', 'ZONE NAME' or 'ZONE NAME TYPE', e.g. "
            "'fabrikam.example _dmarc TXT' (@ for the apex).",
        )
    return selector


def reports_errors(func: Callable[P, R]) -> Callable[P, R]:
    """Bad input and refused gates print one message (file, line, what to do) and exit with the
    documented code. Bugs go on up to DmarcopsGroup.main, which writes the crash log."""

    @wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return func(*args, **kwargs)
        except DmarcopsError as exc:
            report_error(exc)
            sys.exit(exc.exit_code)

    return wrapper


# Set per run by DmarcopsGroup.main and the root's --debug option. A ContextVar, not a global, so
# that runs in threads (tests) do not see each other's flag.
_DEBUG: ContextVar[bool] = ContextVar("dmarcops_debug", default=False)


def set_debug(ctx: click.Context, param: click.Parameter, value: bool) -> None:
    """Callback of the root's eager --debug option: read before any other option is converted,
    so that a crash while converting one is shown with its traceback too."""
    if value:
        _DEBUG.set(True)


# An environment variable is withheld from a crash log when its name says it holds a secret or
# its value looks like key material (base64 or hex blobs, PEM blocks, GitHub tokens).
_SECRET_NAME = re.compile(
    r"SECRET|TOKEN|PASSW|KEY|TSIG|AUTH|CREDENTIAL|PRIVATE|COOKIE|SESSION|SIGNATURE|CERT",
    re.IGNORECASE,
)
_SECRET_VALUE = re.compile(
    r"-----BEGIN|^(gh[pousr]_|github_pat_)|^[A-Za-z0-9+/_-]{20,}={0,2}$|^[0-9a-fA-F]{32,}$"
)
# Key material written inline in a message or an argument (a TSIG secret in a provider's
# options, a PEM block): scrubbed from the traceback text whatever variable it came from.
_INLINE_SECRET = re.compile(
    # A PEM block to its END line, or to the end of the line when it was cut short.
    r"-----BEGIN[^\n]*?-----(?:.*?-----END[^\n]*?-----|[^\n]*)"
    r"|(?i:(?:secret|token|password|key)['\"]?\s*[:=]\s*['\"]?)[A-Za-z0-9+/_=-]{8,}",
    re.DOTALL,
)
REDACTED = "<redacted>"


def _looks_secret(name: str, value: str) -> bool:
    if _SECRET_NAME.search(name):
        return True
    # A path (PATH, VIRTUAL_ENV, HOME) has the shape of base64 but is what a crash log is for.
    return not value.startswith(("/", "~", ".")) and bool(_SECRET_VALUE.search(value.strip()))


def _shown_argument(arg: str) -> str:
    """An argument as a shell would take it back; repr() when it holds control characters,
    so the log stays one readable text file."""
    import shlex  # crash reports only, like platform, tempfile and traceback below

    return shlex.quote(arg) if arg.isprintable() else repr(arg)


def redacted_environment(environ: Mapping[str, str]) -> tuple[dict[str, str], list[str]]:
    """The environment with secret-looking values replaced, and the values withheld (to scrub
    from the rest of the log)."""
    shown: dict[str, str] = {}
    withheld: list[str] = []
    for name in sorted(environ):
        value = environ[name]
        if _looks_secret(name, value):
            shown[name] = REDACTED
            if len(value) >= 6:  # shorter values would scrub ordinary words out of the log
                withheld.append(value)
        else:
            shown[name] = value
    return shown, withheld


def scrub(text: str, withheld: Sequence[str]) -> str:
    for value in sorted(withheld, key=len, reverse=True):
        text = text.replace(value, REDACTED)
    return _INLINE_SECRET.sub(_redact_match, text)


def _redact_match(match: re.Match[str]) -> str:
    found = match.group(0)
    if found.startswith("-----"):
        return REDACTED
    # Keep the "secret: " that says what was there; drop the value itself.
    label = re.match(r"(?i)(?:secret|token|password|key)['\"]?\s*[:=]\s*['\"]?", found)
    return (label.group(0) if label else "") + REDACTED


def crash_directories() -> list[Path]:
    """Where crash logs go, in order of preference: $XDG_STATE_HOME/dmarcops,
    ~/.local/state/dmarcops, then the temporary directory when neither can be written."""
    candidates: list[Path] = []
    state = os.environ.get("XDG_STATE_HOME", "")
    if state and Path(state).is_absolute():  # the XDG spec: relative values are ignored
        candidates.append(Path(state) / "dmarcops")
    else:
        with contextlib.suppress(RuntimeError):  # no HOME and no passwd entry: skip it
            candidates.append(Path.home() / ".local" / "state" / "dmarcops")
    import tempfile

    candidates.append(Path(tempfile.gettempdir()) / "dmarcops")
    return candidates


def _version() -> str:
    from importlib import metadata  # only a crash report needs it

    try:
        return metadata.version("dmarcops")
    except metadata.PackageNotFoundError:
        return "unknown"


def crash_report(exc: BaseException, argv: Sequence[str], environ: Mapping[str, str]) -> str:
    # Imported here: every command imports this module, and only a crash writes a report.
    import platform
    import traceback

    env, withheld = redacted_environment(environ)
    lines = [
        f"dmarcops {_version()} crashed at {datetime.now(UTC):%Y-%m-%dT%H:%M:%S.%fZ}",
        f"python {platform.python_version()} on {platform.platform()}",
        f"command: dmarcops {' '.join(_shown_argument(a) for a in argv)}",
        f"working directory: {os.getcwd()}",
        "",
        "".join(traceback.format_exception(exc)).rstrip(),
        "",
        "environment (secret-looking values redacted):",
        *(f"  {name}={value}" for name, value in env.items()),
    ]
    return scrub("\n".join(lines) + "\n", withheld)


def write_crash_log(
    exc: BaseException, argv: Sequence[str], environ: Mapping[str, str] | None = None
) -> Path | None:
    """Write the crash report to the first writable crash directory (mode 0600: it names paths
    and arguments). None when nothing could be written anywhere."""
    text = crash_report(exc, argv, os.environ if environ is None else environ)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%fZ")
    for directory in crash_directories():
        try:
            directory.mkdir(parents=True, exist_ok=True, mode=0o700)
            path = directory / f"crash-{stamp}.log"
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                out.write(text)
            return path
        except OSError:
            continue
    return None


def report_crash(exc: BaseException, argv: Sequence[str]) -> int:
    """One line on stderr, the details in the crash log; the exit code for a bug."""
    path = write_crash_log(exc, argv)
    where = f"details in {path}" if path else "no crash log could be written"
    click.echo(
        click.style("crash: ", fg="red", bold=True)
        + f"dmarcops hit a bug ({type(exc).__name__}); {where}. Please report it with that file; "
        "run again with --debug to see the traceback.",
        err=True,
    )
    return EXIT_CRASH


def _refuse_nul(argv: Sequence[str]) -> int | None:
    """No shell can pass a NUL byte in an argument (execve takes C strings), and every path call
    refuses one with a ValueError: say so once here instead of in each option's converter."""
    for number, arg in enumerate(argv, start=1):
        if "\x00" in arg:
            echo_error(
                f"command-line argument {number} ({arg!r}) contains a NUL byte\n"
                "  Remove it: no file name, id or value can hold one."
            )
            return EXIT_INPUT
    return None


class DmarcopsGroup(click.Group):
    """The root command: every way a run ends becomes a documented exit code (module docstring).

    click's standalone mode would print usage errors with exit 2 (our "a gate refused") and let
    any other exception out as a traceback; so click runs in non-standalone mode and this method
    decides what the user sees. CliRunner calls main() too, so tests see what users see.
    """

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        windows_expand_args: bool = True,
        **extra: Any,
    ) -> Any:
        if not standalone_mode:  # a caller embedding the group handles exceptions itself
            return super().main(
                args,
                prog_name,
                complete_var,
                standalone_mode=False,
                windows_expand_args=windows_expand_args,
                **extra,
            )
        token = _DEBUG.set(os.environ.get("DMARCOPS_DEBUG", "") not in ("", "0"))
        argv = list(sys.argv[1:] if args is None else args)
        try:
            code = _refuse_nul(argv)
            if code is None:
                code = self._run(argv, prog_name, complete_var, windows_expand_args, extra)
        finally:
            _DEBUG.reset(token)
        sys.exit(code)

    def _run(
        self,
        argv: list[str],
        prog_name: str | None,
        complete_var: str | None,
        windows_expand_args: bool,
        extra: dict[str, Any],
    ) -> int:
        try:
            rv = super().main(
                argv,
                prog_name,
                complete_var,
                standalone_mode=False,
                windows_expand_args=windows_expand_args,
                **extra,
            )
        except click.UsageError as exc:
            exc.show()  # names the option and what is wrong; says `Try 'dmarcops -h'`
            return EXIT_INPUT
        except click.ClickException as exc:  # e.g. click.FileError: an input problem
            exc.show()
            return EXIT_INPUT
        except click.Abort as exc:
            if isinstance(exc.__cause__, EOFError):
                click.echo("error: standard input ended before the answer was given", err=True)
                return EXIT_INPUT
            click.echo("interrupted: stopped by Ctrl-C (nothing further was done)", err=True)
            return EXIT_INTERRUPTED
        except KeyboardInterrupt:
            click.echo("interrupted: stopped by Ctrl-C (nothing further was done)", err=True)
            return EXIT_INTERRUPTED
        except DmarcopsError as exc:  # raised outside a command's reports_errors
            report_error(exc)
            return exc.exit_code
        except OSError as exc:
            if exc.errno == errno.EPIPE:  # `dmarcops plan | head`: the reader left; not a bug
                return EXIT_INPUT
            if exc.filename is not None and not _DEBUG.get():
                # A file the system would not let us read or write (no such directory, no
                # permission, disk full): the environment, not a bug, so exit 1 naming it.
                report_error(
                    EnvironmentProblem(
                        f"cannot use this file: {exc.strerror or exc}",
                        file=os.fsdecode(exc.filename),
                        hint="Check that the path exists, is the kind of file expected and that "
                        "you may read (or write) it, then run the command again.",
                    )
                )
                return EXIT_INPUT
            if _DEBUG.get():
                raise
            return report_crash(exc, argv)
        except Exception as exc:
            if _DEBUG.get():
                raise
            return report_crash(exc, argv)
        # click returns ctx.exit()'s code here; a command's own return value (ours return None)
        # is not an exit code.
        return rv if isinstance(rv, int) else EXIT_OK


# --at everywhere: time is injectable (tests, rehearsals) and read as UTC.
AT_FORMATS = ["%Y-%m-%dT%H:%M:%SZ", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M", "%Y-%m-%d"]


def command_time(
    at: datetime | None, command: str, portfolio: Portfolio, clients: Iterable[str] | None = None
) -> CommandTime:
    """The time a mutating command acts at: the system clock, or an injected one only when every
    client it touches (default: all) is on the sandbox, marked simulated (pipeline.clock)."""
    from pipeline.clock import mutating_time  # the mutating commands' own, not every start's

    ids = list(portfolio.clients if clients is None else clients)
    providers = [
        portfolio.providers[portfolio.clients[c].provider].options
        if c in portfolio.clients and portfolio.clients[c].provider in portfolio.providers
        else {}  # unknown: counts as production, so it never lets a typed time through
        for c in ids
    ]
    return mutating_time(at, command, providers)


def now_from(at: datetime | None) -> datetime:
    """--at (or DMARCOPS_NOW, through the option's envvar) as UTC; else the current time."""
    return at.replace(tzinfo=UTC) if at is not None else datetime.now(UTC)


def injected_clock(at: datetime | None) -> Callable[[], datetime] | None:
    """A fixed clock when the time was injected, so every timestamp of the run agrees with it."""
    if at is None:
        return None
    fixed = now_from(at)
    return lambda: fixed


def parse_nameserver(text: str) -> tuple[str, int | None]:
    """HOST, HOST:PORT or [IPv6]:PORT."""
    text = text.strip()
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port = rest.removeprefix(":")
    elif text.count(":") == 1:
        host, _, port = text.partition(":")
    else:
        host, port = text, ""
    if not host or (port and not port.isdigit()):
        raise InputError(
            f"cannot read nameserver {text!r}", hint="Write HOST, HOST:PORT or [IPv6]:PORT."
        )
    return host, int(port) if port else None


def read_nameservers(values: tuple[str, ...]) -> tuple[tuple[str, ...], int]:
    """The hosts and the one port of `--nameserver` values (each may be comma-separated);
    InputError for one that cannot be read. Without dnspython: a no-op plan checks them too."""
    parsed = [parse_nameserver(v) for part in values for v in part.split(",") if v.strip()]
    ports = {p for _, p in parsed if p is not None}
    if len(ports) > 1:
        raise InputError("all --nameserver values must use the same port")
    return tuple(h for h, _ in parsed), ports.pop() if ports else 53


def nameservers_from(values: tuple[str, ...], timeout: float) -> Nameservers | None:
    from pipeline.live.dns import Nameservers

    if not values:
        return None
    hosts, port = read_nameservers(values)
    return Nameservers(hosts, port, timeout)


def at_option(help_text: str = "Act as if it were this UTC time.") -> Callable[[F], F]:
    return click.option(
        "--at",
        type=click.DateTime(formats=AT_FORMATS),
        envvar="DMARCOPS_NOW",
        help=f"{help_text} (env DMARCOPS_NOW)",
    )


def nameserver_option(
    help_text: str = "Resolver for SPF lookup budgets, HOST[:PORT] (repeatable).",
) -> Callable[[F], F]:
    return click.option(
        "--nameserver",
        "nameservers",
        multiple=True,
        envvar="DMARCOPS_NAMESERVERS",
        help=f"{help_text} (env DMARCOPS_NAMESERVERS, comma-separated)",
    )


def key_option(help_text: str = "Your private key: it signs the ledger entry.") -> Callable[[F], F]:
    return click.option(
        "--key",
        "key_file",
        required=True,
        envvar="DMARCOPS_KEY",
        type=click.Path(dir_okay=False, path_type=Path),
        metavar="FILE",
        help=f"{help_text} (env DMARCOPS_KEY)",
    )


def signer_for(repo: Path, key_file: Path, claimed: str | None = None) -> Signer:
    """Who acts: the owner of `key_file` on the roster of record (the last sealed policy's, or
    policy/roster.yaml before `dmarcops init`). A typed name (`--as`, `--by`) only has to agree."""
    from pipeline.gate.identity import load_signer
    from pipeline.records.store import RecordStore

    store = RecordStore(repo / "changes")
    return load_signer(key_file, store.trusted_roster(), claimed=claimed)
