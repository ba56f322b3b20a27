"""Restoring a before-state in the zone files, so a rollback is itself a planned, recorded change.

A rollback edits the desired state (zones/<client>/<domain>.yaml) back to what the change record says
was live before, then goes through plan and apply like any change (as an emergency-rollback). Editing
live DNS alone would be undone by the next plan, which still wants the zone file's values.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml
from octodns.yaml import safe_dump

from pipeline.apply.run import ApplyOptions, run_apply
from pipeline.diff.kinds import is_owned_value, kind_of
from pipeline.errors import GateRefused, InputError
from pipeline.gate.authoring import next_request_id, sign_request
from pipeline.gate.identity import Signer
from pipeline.gate.request_loader import load_requests
from pipeline.gate.requests import request_path
from pipeline.live.dns import Nameservers
from pipeline.load.files import exists, read_text, replace_text
from pipeline.load.portfolio import Portfolio
from pipeline.load.yamlfile import load_yaml
from pipeline.load.zones import ESCAPED_SEMICOLONS
from pipeline.model import RecordKind
from pipeline.plan.build import PlanOptions, make_plan
from pipeline.plan.items import Plan
from pipeline.records import ChangeRecord, RecordItem, RecordStore
from pipeline.records.policy_of_record import portfolio_of_record, roster_of_record
from pipeline.render.json_plan import render_json


def _escaped(rtype: str, value: str) -> str:
    return value.replace(";", "\\;") if rtype == "TXT" and ESCAPED_SEMICOLONS else value


def restore(
    zone_file: Path, restores: Sequence[tuple[str, str, Sequence[str], int | None]]
) -> None:
    """Set each (name, type) to its before values (only the owned ones); no values removes it."""
    doc = load_yaml(zone_file)
    data: dict[str, Any] = dict(doc.data or {})
    for name, rtype, values, ttl in restores:
        kind = kind_of(name, rtype)
        assert kind is not None, f"{name} {rtype} is not owned: a record never holds it"
        owned = [v for v in values if is_owned_value(kind, v)]
        existing = data.get(name)
        records = existing if isinstance(existing, list) else ([existing] if existing else [])
        records = [r for r in records if r.get("type") != rtype]
        if owned:
            record: dict[str, Any] = {"type": rtype}
            if ttl is not None:
                record["ttl"] = ttl
            if len(owned) == 1:
                record["value"] = _escaped(rtype, owned[0])
            else:
                record["values"] = sorted(_escaped(rtype, v) for v in owned)
            records.append(record)
        if not records:
            data.pop(name, None)
        else:
            data[name] = (
                records[0] if len(records) == 1 else sorted(records, key=lambda r: r["type"])
            )
    fd, tmp = tempfile.mkstemp(dir=zone_file.parent, prefix=".rollback-", suffix=".yaml")
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        safe_dump(data, fh)
    os.replace(tmp, zone_file)


@dataclass(frozen=True)
class RollbackOptions:
    record_id: str
    by: str
    reason: str
    notified: str
    now: datetime
    nameservers: Nameservers | None = None
    wait_seconds: float = 0.0
    verify_timeout: float = 10.0
    clock: Callable[[], datetime] | None = None
    force: bool = False  # roll back even though live DNS moved on after the record
    simulated: bool = False  # a sandbox rehearsal under an injected time (pipeline.clock)
    # The executor's key: it signs the emergency-rollback request it files as its author, so the
    # one gate counts it (an unsigned request is anyone's file). None: the request stays unsigned.
    signer: Signer | None = None


def _emergency_request(original: ChangeRecord, options: RollbackOptions) -> dict[str, Any]:
    def state(values: Callable[[RecordItem], tuple[str, ...]]) -> str:
        return "; ".join(
            f"{i.fqdn} {i.type}: {' | '.join(values(i)) or '(none)'}" for i in original.items
        )

    return {
        "type": "emergency-rollback",
        "client": original.client,
        "covers": sorted(f"{i.zone} {i.name or '@'} {i.type}" for i in original.items),
        "author": options.by,
        "rationale": f"Rollback of change record {original.id} ({original.request_id}): "
        f"{options.reason}",
        "rollback_of": original.id,
        "emergency_reason": options.reason,
        "details": {
            "current_state": state(lambda i: i.after),
            "target_state": state(lambda i: i.before),
            "notified": options.notified,
        },
    }


def _check_rollback_plan(original: ChangeRecord, plan: Plan, force: bool) -> None:
    """Only the record's own items may change, and only from the state the record left."""
    mine = {(i.zone, i.name, i.type): i for i in original.items}
    # Pending policy edits ride along in every plan and are never applied: a rollback is not
    # held up by a policy change waiting for a lead's seal.
    dns = [i for i in plan.items if i.kind is not RecordKind.POLICY]
    others = [i for i in dns if (i.zone, i.name, i.type) not in mine]
    if others:
        raise GateRefused(
            f"rolling back {original.id} would also apply changes it did not make: "
            + ", ".join(f"{i.fqdn} {i.type}" for i in others)
            + "; nothing was changed",
            hint="Those zone files hold other pending edits: apply or revert them first.",
        )
    moved = [i for i in dns if sorted(i.before) != sorted(mine[(i.zone, i.name, i.type)].after)]
    if moved and not force:
        raise GateRefused(
            f"live DNS is no longer what {original.id} left: "
            + "; ".join(
                f"{i.fqdn} {i.type} is {list(i.before)!r}, the record set "
                f"{list(mine[(i.zone, i.name, i.type)].after)!r}"
                for i in moved
            )
            + "; a rollback would undo later changes too. Nothing was changed",
            hint="Check which later records touched these names (dmarcops records list --domain "
            "...); pass --force to roll back anyway (recorded).",
        )


def roll_back(portfolio: Portfolio, options: RollbackOptions) -> list[ChangeRecord]:
    """Restore a record's before-state in the zone files, file the emergency-rollback request,
    plan it, check it changes only that record's items from the state it left, apply it as an
    emergency and link both records. Any refusal leaves the repository as it was."""
    repo = portfolio.root
    store = RecordStore(repo / "changes")
    original = store.get(options.record_id)
    if original.executed_at is None:
        raise GateRefused(f"record {original.id} was never executed: nothing to roll back")
    roster = roster_of_record(repo)
    if options.by not in roster:
        raise InputError(
            f"{options.by!r} is not on the analyst roster",
            file=roster.file,
            hint="Pass --as with your roster id.",
        )
    load_requests(repo, roster)  # a broken request elsewhere is reported before anything is written

    files = {
        zone: repo / "zones" / original.client / f"{zone}.yaml"
        for zone in sorted({i.zone for i in original.items})
    }
    saved = {path: read_text(path, root=repo) for path in files.values() if exists(path)}
    request_file = request_path(repo, next_request_id(repo, original.client))
    written: list[Path] = []
    try:
        for zone, path in files.items():
            restore(
                path,
                [
                    (i.name, i.type, i.before, i.ttl_before)
                    for i in original.items
                    if i.zone == zone
                ],
            )
        replace_text(
            request_file,
            yaml.safe_dump(_emergency_request(original, options), sort_keys=False),
            root=repo,
        )
        written.append(request_file)
        if options.signer is not None:
            signed = sign_request(repo, request_file.stem, options.signer, options.now, roster)
            written.append(signed.file)
        plan = make_plan(
            portfolio_of_record(repo),
            PlanOptions(now=options.now, zones=tuple(files), nameservers=options.nameservers),
        )
        _check_rollback_plan(original, plan, options.force)
        plan_file = repo / "changes" / "plans" / f"rollback-{original.id}-{plan.hash[:12]}.json"
        replace_text(plan_file, render_json(plan), root=repo)
        written.append(plan_file)
        records = run_apply(
            portfolio_of_record(repo),
            ApplyOptions(
                plan_file=plan_file,
                by=options.by,
                now=options.now,
                emergency_reason=f"rollback of {original.id}: {options.reason}",
                wait_seconds=options.wait_seconds,
                nameservers=options.nameservers,
                verify_timeout=options.verify_timeout,
                clock=options.clock,
                simulated=options.simulated,
                signer=options.signer,
            ),
        )
    except BaseException:
        # Nothing was applied (run_apply records before it changes DNS, and refuses before
        # recording): put the zone files back and take the request away.
        for path, text in saved.items():
            path.write_text(text, encoding="utf-8")
        for path in written:
            path.unlink(missing_ok=True)
        raise
    current = store.get(original.id)
    if not current.sealed:
        links = tuple(sorted({*current.references, *(r.id for r in records)}))
        assert options.signer is not None  # the emergency request above was signed with it
        store.update(
            replace(current, references=links), options.now, options.signer, options.simulated
        )
    return records
