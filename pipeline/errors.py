"""Errors that reach users. Each names the file, line and column where there are ones, and what
to do.

Exit codes (docs/exit-codes.md): 0 success, 1 bad input or environment (command-line usage errors
included), 2 a gate refused, 70 a bug (one line on stderr, the traceback in a crash log), 130
interrupted. Nobody sees a traceback unless they asked for one with `--debug`.
"""

from __future__ import annotations

import json
from pathlib import Path

from pipeline.text.safe import clean

EXIT_OK = 0
EXIT_INPUT = 1
EXIT_GATE = 2
# sysexits.h EX_SOFTWARE: "an internal software error has been detected". Distinct from 1 and 2
# so that scripts never mistake a bug for bad input or for a gate's refusal.
EXIT_CRASH = 70
# The shell's own convention for a process ended by SIGINT (128 + 2).
EXIT_INTERRUPTED = 130
DOCUMENTED_EXIT_CODES = frozenset({EXIT_OK, EXIT_INPUT, EXIT_GATE, EXIT_CRASH, EXIT_INTERRUPTED})


class DmarcopsError(Exception):
    exit_code = EXIT_INPUT

    def __init__(
        self,
        message: str,
        *,
        file: Path | str | None = None,
        line: int | None = None,
        hint: str = "",
        column: int | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.file = Path(file) if file is not None else None
        self.line = line
        self.column = column  # 1-based, where the parser knows it (file:line:column)
        self.hint = hint
        # Problems found in the same pass, reported before this one (a portfolio with several
        # broken policy files): the CLI prints them all; a library caller reads them here.
        self.also: tuple[DmarcopsError, ...] = ()

    @property
    def where(self) -> str:
        if self.file is None:
            return ""
        try:
            # The directory resolved, the name not: a refused symbolic link is shown as itself,
            # never as the path it points to.
            shown = (self.file.parent.resolve() / self.file.name).relative_to(Path.cwd().resolve())
        except ValueError:
            shown = self.file
        if not self.line:
            return str(shown)
        return f"{shown}:{self.line}:{self.column}" if self.column else f"{shown}:{self.line}"

    def __str__(self) -> str:
        # Messages quote file content and file names: their control and bidi characters are shown
        # escaped, never sent to the terminal or the pull-request comment (text/safe.py).
        where, message, hint = clean(self.where), clean(self.message), clean(self.hint)
        text = f"{where}: {message}" if where else message
        return f"{text}\n  {hint}" if hint else text


class InputError(DmarcopsError):
    """Bad input: a zone file, a policy file, a command-line value. Exit 1."""


class EnvironmentProblem(DmarcopsError):
    """Something outside the repository is missing or unreachable (a secret, a server). Exit 1."""


class GateRefused(DmarcopsError):
    """A gate said no: validation errors, approvals, window, stale plan. Exit 2."""

    exit_code = EXIT_GATE


def json_syntax_error(exc: json.JSONDecodeError, path: Path, what: str, hint: str) -> InputError:
    """A JSON parse error as an InputError at the parser's line and column (both 1-based)."""
    return InputError(
        f"{what}: JSON syntax error: {exc.msg}",
        file=path,
        line=exc.lineno,
        column=exc.colno,
        hint=hint,
    )
