"""Errors that reach users. Each names the file and line where there is one, and what to do.

Exit codes are the contract in product.md: 1 for bad input or environment, 2 when a gate refused.
A traceback is reserved for bugs.
"""

from __future__ import annotations

from pathlib import Path

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
    ) -> None:
        super().__init__(message)
        self.message = message
        self.file = Path(file) if file is not None else None
        self.line = line
        self.hint = hint

    @property
    def where(self) -> str:
        if self.file is None:
            return ""
        try:
            shown = self.file.resolve().relative_to(Path.cwd().resolve())
        except ValueError:
            shown = self.file
        return f"{shown}:{self.line}" if self.line else str(shown)

    def __str__(self) -> str:
        text = f"{self.where}: {self.message}" if self.where else self.message
        return f"{text}\n  {self.hint}" if self.hint else text


class InputError(DmarcopsError):
    """Bad input: a zone file, a policy file, a command-line value. Exit 1."""


class EnvironmentProblem(DmarcopsError):
    """Something outside the repository is missing or unreachable (a secret, a server). Exit 1."""


class GateRefused(DmarcopsError):
    """A gate said no: validation errors, approvals, window, stale plan. Exit 2."""

    exit_code = EXIT_GATE
