"""Writing change requests: a new one from a ticket template, its next id, and its author's signature."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from pipeline.errors import InputError
from pipeline.gate.identity import Signer
from pipeline.gate.request_loader import load_one
from pipeline.gate.requests import RequestSignature, signature_path
from pipeline.gate.roster import Roster
from pipeline.gate.templates import (
    TEMPLATES_DIR,
    TicketTemplate,
)
from pipeline.load.files import replace_text
from pipeline.load.request_files import REQUESTS_DIR


def sign_request(
    root: Path, request_id: str, signer: Signer, at: datetime, roster: Roster | None = None
) -> RequestSignature:
    """Sign the request's current content as its author and write <id>.sig.json.

    InputError when the request is not valid yet (judged by `roster` and its policy's ticket
    templates: the commands pass the roster of record) or the key's owner is not its author.
    """
    request, problems = load_one(root, request_id, roster)
    if request is None:
        raise problems[0] if problems else InputError(f"no change request {request_id!r}")
    if signer.analyst != request.author:
        raise InputError(
            f"the key is {signer.analyst}'s, but {request.id}'s author: is {request.author}",
            file=request.file,
            line=request.line_of("author"),
            hint="A request is signed by its author. To take it over, set author: to your own "
            "roster id first (the author is who is accountable for it).",
        )
    unsigned = RequestSignature(
        request.id, request.sha256, signer.analyst, at.astimezone(UTC).replace(microsecond=0), ""
    )
    signed = RequestSignature(
        unsigned.request_id,
        unsigned.request_sha256,
        unsigned.signer,
        unsigned.signed_at,
        signer.sign(unsigned.payload()),
        signature_path(root, request.id),
    )
    # By rename inside the repository: a link planted at that name is replaced, not written through.
    replace_text(
        signed.file, json.dumps(signed.to_json(), indent=2, sort_keys=True) + "\n", root=root
    )
    return signed


def next_request_id(root: Path, client: str) -> str:
    """CR-<next number>-<client>: numbers count across all clients, like the seed's record numbers."""
    numbers = [
        int(m.group(1))
        for p in (root / REQUESTS_DIR).glob("CR-*")
        if (m := re.match(r"CR-([0-9]+)", p.name))
    ]
    return f"CR-{max(numbers, default=0) + 1:04d}-{client}"


def _prompt(text: str) -> str:
    return json.dumps(f"<<{text}>>")


def new_request(
    template: TicketTemplate,
    client: str,
    covers: Sequence[str],
    author: str,
    *,
    rollback_of: str | None = None,
) -> str:
    """The YAML text of a new request from a ticket template (policy/templates/<type>.yaml).

    Every field the analyst must supply is a <<...>> prompt; a request still holding one is refused.
    """
    lines = [
        f'# Change request from the "{template.title}" ticket template '
        f"({TEMPLATES_DIR.as_posix()}/{template.id}.yaml).",
        f"# Routes through: {template.routing}.",
        "# Schema: policy/schemas/change-request.schema.json",
        "# Replace every <<...>> prompt; a request that still holds one is refused.",
        f"type: {template.id}",
        f"client: {json.dumps(client)}",
        "covers:",
        *(f"  - {json.dumps(c)}" for c in covers),
        f"author: {json.dumps(author)}",
        f"rationale: {_prompt(template.rationale)}",
        "evidence:",
        f"  - {_prompt(template.evidence)}",
    ]
    for name, prompt in template.fields:
        given = rollback_of if name == "rollback_of" else None
        lines.append(f"{name}: " + (json.dumps(given) if given else _prompt(prompt)))
    if template.details:
        lines.append("details:")
        lines += [f"  {d.name}: {_prompt(d.prompt)}" for d in template.details]
    if template.manual is not None:
        step, check = template.manual
        lines += ["steps:", f"  - {_prompt(step)}", "checklist:", f"  - {_prompt(check)}"]
    lines += [
        "# requested_risk: low          # optional; a level below the computed one is refused",
        "# client_approval:             # required for high-risk changes (p=reject, removing a",
        "#                              # sender, a regulated client's SPF/RUA, a freeze)",
        "#   approver: name@client.example            # one of the client's authorised_approvers",
        "#   at: 2026-06-08T09:14:00Z                 # UTC",
        '#   reference: "<message-id@mail.client.example>"   # or a ticket id such as CHG-2291',
        "# on_call: ROSTER-ID           # the client's on-call owner, who covers a rollback window",
        "#                              # ending outside staffed hours (the Friday rule)",
    ]
    return "\n".join(lines) + "\n"
