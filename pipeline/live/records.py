"""octoDNS records made leniently, without the validation nobody would see.

octoDNS makes live records (a provider's populate) and the copies of records it keeps unchanged
(`Record.copy`) with `lenient=True`: its validators still run, but what they find is only logged as
a warning on octoDNS's `Record` logger, never raised. dmarcops logs octoDNS's warnings only with
`--verbose` (pipeline/cli.py). So when that logger would drop warnings, `new_record` builds the
record as `Record.new` does on its way out, without running the validators: about a tenth of the
time a zone's plan spent. With warnings on (`--verbose`, a library caller's logging, the tests'
log capture), it is `Record.new` itself, so every warning is logged as before.

Strict records (the desired zone files: `lenient=False`, where a validator's reason is an error
the user must see) always go through `Record.new`.
"""

from __future__ import annotations

import logging
from typing import Any

from octodns.idna import IdnaError, idna_encode
from octodns.record import Record


def warnings_logged() -> bool:
    """Whether octoDNS's `Record` logger would log a warning now."""
    return bool(Record.log.isEnabledFor(logging.WARNING))


def new_record(zone: Any, name: str, data: Any, source: Any = None, lenient: bool = False) -> Any:
    """`Record.new(zone, name, data, source=source, lenient=lenient)`, the same record."""
    if not lenient or warnings_logged():
        return Record.new(zone, name, data, source=source, lenient=lenient)
    # What Record.new does besides collecting reasons: the IDNA form of the name (a name that
    # has none is a reason, so kept as it is), the class of the type, the record.
    try:
        name = idna_encode(str(name))
    except IdnaError:
        name = str(name)
    record_class = Record._CLASSES.get(data.get("type"))
    if record_class is None:  # Record.new raises for these, lenient or not
        return Record.new(zone, name, data, source=source, lenient=lenient)
    return record_class(zone, name, data, source=source, context=getattr(data, "context", None))


def copy_record(record: Any, zone: Any) -> Any:
    """`record.copy(zone=zone)` (octoDNS copies leniently), through new_record."""
    data = record.data
    data["type"] = record._type
    return new_record(zone, record.name, data, record.source, lenient=True)
