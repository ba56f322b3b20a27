"""What a change record is made of before its parts: its enums, UTC times, canonical bytes, and a
reader of JSON fields whose errors name the field (pipeline.records.record)."""

from __future__ import annotations

import enum
import hashlib
import json
import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

from pipeline.errors import InputError
from pipeline.model import RiskLevel

FORMAT_VERSION = 1
# "2026-1247" in the seed: the UTC year, then a sequence number of at least four digits.
RECORD_ID = re.compile(r"^(\d{4})-(\d{4,})$")
_WIRE_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$", re.ASCII)
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class ChangeType(enum.StrEnum):
    """The seed's ticket templates; "Other" for anything they do not cover."""

    NEW_SENDER = "New sender"
    POLICY_PROGRESSION = "Policy progression"
    DKIM_ROTATION = "DKIM rotation"
    EMERGENCY_ROLLBACK = "Emergency rollback"
    OTHER = "Other"
    # Issue 13: changes that are not (or were not) the pipeline's own record edits.
    NS_DELEGATION = "NS delegation"
    PLATFORM = "Platform change"  # a tenant-level setting at a mail platform (manual)
    DKIM_SWITCH = "DKIM selector switch"  # the provider signs with another selector (manual)
    ADOPTED = "Unrecorded change (adopted)"  # changed outside the pipeline, adopted (drift)
    # Found by `dmarcops drift --open-records` (the scheduled run): open until a person adopts it
    # (superseded by the adoption's record) or reverts it (closed as rolled-back).
    UNRECORDED = "Unrecorded change (open)"


class ApprovalRole(enum.StrEnum):
    ANALYST = "analyst"  # the author, proposing (self-approval for low risk)
    PEER = "peer"
    CLIENT = "client"


class ApprovalSource(enum.StrEnum):
    """Where the evidence of an approval lives, so an auditor knows where to look it up."""

    SIGNED = "signed"
    GITHUB = "github"
    CLIENT_REFERENCE = "client-reference"
    SELF = "self"


class ZoneStatus(enum.StrEnum):
    APPLIED = "applied"
    FAILED = "failed"
    NOT_ATTEMPTED = "not-attempted"


class VerificationStatus(enum.StrEnum):
    VERIFIED = "verified"
    MISMATCH = "mismatch"
    UNVERIFIABLE = "unverifiable"


class Outcome(enum.StrEnum):
    ACCEPTED = "accepted"
    ROLLED_BACK = "rolled-back"
    PARTIALLY_APPLIED = "partially-applied"
    FAILED = "failed"
    SUPERSEDED = "superseded"

    @property
    def sentence(self) -> str:
        return _OUTCOME_SENTENCES[self]


_OUTCOME_SENTENCES = {
    Outcome.ACCEPTED: "Change accepted.",
    Outcome.ROLLED_BACK: "Change rolled back.",
    Outcome.PARTIALLY_APPLIED: "Change partially applied.",
    Outcome.FAILED: "Change failed.",
    Outcome.SUPERSEDED: "Change superseded.",
}

ACTIONS = ("create", "update", "delete")


class RecordFormatError(InputError):
    """A record's JSON does not hold what a change record holds. Exit 1."""


# --- time -------------------------------------------------------------------------------------


def utc(value: datetime) -> datetime:
    """The same instant in UTC, whole seconds. A naive datetime is a bug: its zone is a guess."""
    if value.tzinfo is UTC and not value.microsecond:
        return value  # already so (every time read from a record): a quarter of verify's calls
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"naive datetime {value!r}: change records hold UTC times only")
    return value.astimezone(UTC).replace(microsecond=0)


def format_utc(value: datetime) -> str:
    value = utc(value)
    if value.year >= 1000:
        # isoformat is C and a quarter of strftime's cost (audit verify formats every ledger
        # line's time); for a UTC time in whole seconds it writes "2026-06-09T09:23:00+00:00".
        # Below year 1000 strftime's %Y has fewer than four digits here, so it writes those.
        return value.isoformat()[:19] + "Z"
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")


def show_utc(value: datetime) -> str:
    """The seed's display form, "2026-06-09 09:23 UTC"."""
    value = utc(value)
    if value.year >= 1000:  # as format_utc
        return value.isoformat(" ")[:16] + " UTC"
    return value.strftime("%Y-%m-%d %H:%M UTC")


def parse_time(text: str, *, what: str = "time") -> datetime:
    """A time typed by a user (--at, DMARCOPS_NOW, --since): ISO 8601, UTC unless it says otherwise."""
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError:
        raise InputError(
            f"cannot read {what} {text!r}",
            hint="Write an ISO 8601 UTC time, e.g. 2026-06-09T09:23:00Z or 2026-06-09.",
        ) from None
    return utc(value if value.tzinfo is not None else value.replace(tzinfo=UTC))


def parse_wire_time(text: str) -> datetime:
    """A time as the audit trail writes it; anything else is refused, never guessed."""
    if not _WIRE_TIME.match(text):
        raise ValueError(f"{text!r} is not YYYY-MM-DDTHH:MM:SSZ")
    # The shape is checked above; fromisoformat is ~10x faster than strptime, which counts at
    # tens of thousands of records (benchmarks/audit_scale.py). It still refuses month 13, and
    # reads the "Z" as datetime.UTC itself (Python 3.11), so the time needs no replace().
    return datetime.fromisoformat(text)


def canonical_bytes(value: object) -> bytes:
    """The one serialisation every hash in the audit trail is taken over."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode(
        "utf-8"
    )


def sha256_hex(value: object) -> str:
    return hashlib.sha256(canonical_bytes(value)).hexdigest()


def _normalise_times(obj: object, *names: str) -> None:
    # Frozen dataclasses: normalising in __post_init__ is the one place it can happen.
    for name in names:
        value = getattr(obj, name)
        if value is not None and (normal := utc(value)) is not value:
            object.__setattr__(obj, name, normal)


def _time_or_none(value: datetime | None) -> str | None:
    return format_utc(value) if value is not None else None


# --- reading JSON with errors that say which field ----------------------------------------------

E = TypeVar("E", bound=enum.Enum)
T = TypeVar("T")


_STR = frozenset({str})


class _Fields:
    """One JSON object being read into a record: every error names the field it is about."""

    def __init__(self, data: object, where: str) -> None:
        if not isinstance(data, dict):
            raise RecordFormatError(f"{where}: expected an object")
        self.data: dict[str, Any] = data
        self.where = where

    def _get(self, key: str) -> Any:
        if key not in self.data:
            raise RecordFormatError(f"{self.where}.{key}: missing")
        return self.data[key]

    def _fail(self, key: str, expected: str) -> RecordFormatError:
        return RecordFormatError(f"{self.where}.{key}: expected {expected}")

    def text(self, key: str) -> str:
        value = self.data.get(key)
        if type(value) is str:  # the common case first: audit verify reads every record
            return value
        value = self._get(key)
        if not isinstance(value, str):
            raise self._fail(key, "a string")
        return value

    def number(self, key: str) -> int:
        value = self._get(key)
        if not isinstance(value, int) or isinstance(value, bool):
            raise self._fail(key, "an integer")
        return value

    def optional_number(self, key: str) -> int | None:
        # Absent in records written before the field existed: those stay readable.
        return None if self.data.get(key) is None else self.number(key)

    def flag(self, key: str) -> bool:
        value = self._get(key)
        if not isinstance(value, bool):
            raise self._fail(key, "true or false")
        return value

    def texts(self, key: str) -> tuple[str, ...]:
        value = self._get(key)
        if type(value) is list and set(map(type, value)) <= _STR:  # JSON's own types: in C
            return tuple(value)
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise self._fail(key, "a list of strings")
        return tuple(value)

    def time(self, key: str) -> datetime:
        value = self.text(key)
        try:
            return parse_wire_time(value)
        except ValueError:
            raise self._fail(key, "a UTC time YYYY-MM-DDTHH:MM:SSZ") from None

    def optional_time(self, key: str) -> datetime | None:
        return None if self._get(key) is None else self.time(key)

    def choice(self, key: str, kind: type[E]) -> E:
        value = self._get(key)
        # The member by its value without Enum.__call__'s Python-level machinery; anything not
        # found there (a wrong value, an unhashable one) goes through kind(value) as before.
        if type(value) is str and (member := kind._value2member_map_.get(value)) is not None:
            return member  # type: ignore[return-value]
        try:
            return kind(value)
        except ValueError:
            allowed = " | ".join(str(m.value) for m in kind)
            raise self._fail(key, allowed) from None

    def optional_choice(self, key: str, kind: type[E]) -> E | None:
        return None if self._get(key) is None else self.choice(key, kind)

    def risk(self, key: str) -> RiskLevel:
        value = self.text(key)
        try:
            return RiskLevel.parse(value)
        except KeyError:
            raise self._fail(key, "low | medium | high") from None

    def objects(self, key: str) -> list[_Fields]:
        value = self._get(key)
        if not isinstance(value, list):
            raise self._fail(key, "a list")
        return [_Fields(v, f"{self.where}.{key}[{i}]") for i, v in enumerate(value)]

    def optional_object(self, key: str) -> _Fields | None:
        value = self._get(key)
        return None if value is None else _Fields(value, f"{self.where}.{key}")


def _read(build: Callable[[], T]) -> T:
    # A dataclass that refuses a value (a naive time, an unknown action) is bad input here.
    try:
        return build()
    except ValueError as exc:
        raise RecordFormatError(str(exc)) from None
