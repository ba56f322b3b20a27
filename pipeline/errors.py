"""Errors that reach users. Each names the file and line where there is one, and what to do.

Exit codes are the contract in product.md: 1 for bad input or environment, 2 when a gate refused.
A traceback is reserved for bugs.
"""

from __future__ import annotations

from pathlib import Path

from pipeline.render.safe import clean

EXIT_OK = 0
EXIT_INPUT = 1
EXIT_GATE = 2


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
        # escaped, never sent to the terminal or the pull-request comment (render/safe.py).
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
