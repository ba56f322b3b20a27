"""The one exception the record-kind parsers raise."""

from __future__ import annotations


class RecordSyntaxError(ValueError):
    """A record value that receivers would not understand.

    `code` is the rule from docs/rules.md the value breaks (D1, S1, K2, ...), so a validator
    can turn the exception into a Finding without guessing.
    """

    def __init__(self, message: str, code: str = "") -> None:
        super().__init__(message)
        self.code = code

    @property
    def message(self) -> str:
        return str(self.args[0])
