"""Reading change request files (changes/requests/<id>.yaml) into checked `ChangeRequest`s.

Each file is schema-checked, refused while it holds a template's <<...>> prompt, its rationale
must carry facts, its template's detail fields and a manual change's steps are checked, and its
author's signature is read beside it. Every problem names the file and line; `collect_requests`
returns them all (`requests check`), `load_requests` raises the first.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pipeline.errors import InputError
from pipeline.gate.requests import (
    PROMPT,
    REQUEST_ID,
    SCHEMA,
    SIGNATURE_SUFFIX,
    TIMESTAMP_FORMATS,
    ChangeRequest,
    ClientApproval,
    RequestType,
    content_sha256,
    read_signature,
    request_path,
    signature_path,
)
from pipeline.gate.roster import Roster, load_roster
from pipeline.gate.templates import (
    DetailField,
    TemplateSet,
    TicketTemplate,
    collect_templates,
)
from pipeline.load.request_files import REQUESTS_DIR, Selector, client_domains
from pipeline.load.yamlfile import JsonPath, YamlDocument, iter_schema_errors, load_yaml
from pipeline.model import RiskLevel


def load_one(
    root: Path, request_id: str, roster: Roster | None = None
) -> tuple[ChangeRequest | None, list[InputError]]:
    path = request_path(root, request_id)
    if not path.exists():
        known = sorted(
            p.stem for p in (root / REQUESTS_DIR).glob("*.yaml") if REQUEST_ID.match(p.stem)
        )
        return None, [
            InputError(
                f"no change request {request_id!r}",
                hint=f"Requests in {REQUESTS_DIR}/: {', '.join(known) or 'none'}.",
            )
        ]
    roster = roster if roster is not None else load_roster(root)
    templates, problems = templates_for(root, roster)
    request = _check_file(path, root, roster, templates, problems)
    return request, problems


def templates_for(root: Path, roster: Roster) -> tuple[TemplateSet, list[InputError]]:
    """The ticket templates requests are judged by, with every problem found in them: those of
    the policy tree `roster` was read from, so that a request and its approvals answer to one
    policy. The gating commands pass the roster of record (pipeline.records.policy_of_record):
    an edited template counts once a lead seals it, like any policy."""
    return collect_templates(roster.policy_root(root))


# Phrases that say who agreed or where to look, not why the change is right (seed: "Because we
# agreed in the SOW" isn't a rationale). Longer phrases first: the alternation tries them in order.
BOILERPLATE = (
    r"because (we|the client|they) (agreed|asked|requested)( to)?( it| this| so)?"
    r"( in| with| per| on)?( the)?( sow| contract| msa| statement of work| call| meeting)?",
    r"(as |we |it was )(agreed|discussed|requested|planned|instructed|promised)"
    r"( in| with| on| by| per)?"
    r"( the)?( sow| contract| msa| statement of work| client| customer| call| meeting| email| ticket)?",
    r"agreed( in| with| on| by| per)( the)?( sow| contract| msa| statement of work| client| call)",
    r"per (the )?(sow|msa|contract|statement of work|client|customer|request|ticket|email|"
    r"agreement|plan|policy|runbook|call|meeting)",
    r"(the )?(client|customer) (asked|requested|wants|wanted|approved|said)( for)?"
    r"( it| this| that| us| so)?( to)?",
    r"see (the )?(ticket|email|e-mail|jira|psa|thread|above|below|attached|attachment|description|pr)"
    r"( #?[\w-]+)?",
    r"(a )?routine( change| maintenance| update| work| request)?",
    r"(a )?standard (change|procedure|request)",
    r"business as usual|bau|as usual|same as (before|last time|always)",
    r"n/a|na|tbd|tba|todo|none|nothing|no reason|just because|because|self[- ]explanatory",
)
_BOILERPLATE = re.compile(r"(?<![\w/])(?:" + "|".join(BOILERPLATE) + r")(?![\w/])", re.IGNORECASE)
_TOKEN = re.compile(r"[^\W_][\w.=%/:@+-]*")
MIN_RATIONALE_CHARS = 30
MIN_RATIONALE_WORDS = 5
RATIONALE_HINT = (
    'Say why this change, now, with facts: e.g. "Pass rate at pct=50 has been stable at 99.3% '
    'for 14 days across all known senders" (seed: "Because we agreed in the SOW" isn\'t a '
    "rationale)."
)


def rationale_problem(text: str | None, what: str = "rationale") -> str | None:
    """Why `text` is not a rationale, or None when it is one."""
    if text is None or not text.strip():
        return f"{what} is empty"
    found = [m.group(0).strip() for m in _BOILERPLATE.finditer(text) if m.group(0).strip()]
    rest = _BOILERPLATE.sub(" ", text)
    content = " ".join(_TOKEN.findall(rest))
    if len(content) >= MIN_RATIONALE_CHARS and len(_TOKEN.findall(rest)) >= MIN_RATIONALE_WORDS:
        return None
    if found:
        return (
            f"{what} is boilerplate: {found[0]!r} says who agreed or where to look, not why this "
            "change is right"
        )
    return (
        f"{what} is too short to be a reason ({len(content)} characters of content; at least "
        f"{MIN_RATIONALE_CHARS} and {MIN_RATIONALE_WORDS} words)"
    )


def _strings(data: Any, here: JsonPath = ()) -> Iterator[tuple[JsonPath, str]]:
    if isinstance(data, str):
        yield here, data
    elif isinstance(data, dict):
        for key, value in data.items():
            yield from _strings(value, (*here, str(key)))
    elif isinstance(data, list):
        for i, value in enumerate(data):
            yield from _strings(value, (*here, i))


def _timestamp(text: str) -> datetime | None:
    for fmt in TIMESTAMP_FORMATS:
        try:
            return datetime.strptime(text, fmt).replace(tzinfo=UTC)
        except ValueError:
            continue
    return None


# policy-progression's pass_rate_evidence: "99.3% aligned pass over 14 days[ ...]" (the schema's
# pattern); the seed's template asks for the pass rate over the last 14 days.
PASS_RATE = re.compile(r"^(?P<percent>[0-9]{1,3}(\.[0-9]+)?)% (.* )?over (?P<days>[0-9]+) days")
MIN_PASS_RATE_DAYS = 14


def _check_value(doc: YamlDocument, detail: DetailField, value: str) -> None:
    where = ("details", detail.name)
    if detail.format == "date":
        try:
            datetime.strptime(value, "%Y-%m-%d")
        except ValueError:
            raise doc.error(
                where,
                f"{detail.name} {value!r} is not a calendar date",
                hint="Write it as YYYY-MM-DD, e.g. 2026-12-01.",
            ) from None
    if detail.format == "pass-rate":
        match = PASS_RATE.match(value)
        if match is None:
            raise doc.error(
                where,
                f"{detail.name} {value!r} does not give a pass rate and its period",
                hint='Write the aligned pass rate, then the period: "99.3% aligned pass over 14 '
                'days at pct=50".',
            )
        percent, days = float(match.group("percent")), int(match.group("days"))
        if percent > 100:
            raise doc.error(
                where,
                f"a pass rate of {match.group('percent')}% is over 100%",
                hint="Copy the aligned pass rate from the aggregate-report export.",
            )
        if days < detail.min_days:
            raise doc.error(
                where,
                f"a pass rate over {days} days is too short a period to progress a policy "
                f"(at least {detail.min_days} days)",
                hint=f"Wait until the reports cover at least {detail.min_days} days at the current "
                "policy (seed: policy progression template, aggregate reports of the last 14 days).",
            )
    if detail.pattern and not re.match(detail.pattern, value):
        raise doc.error(
            where,
            f"{detail.name} {value!r} is not in the form the template asks for",
            hint=f"{detail.prompt} (pattern {detail.pattern})",
        )


def _check_template(doc: YamlDocument, template: TicketTemplate, data: Mapping[str, Any]) -> None:
    """The fields and details the request's ticket template requires, in the forms it gives."""
    for name, prompt in template.fields:
        if name not in data:
            raise doc.error(
                (),
                f"a {template.id} request needs `{name}:` ({prompt})",
                hint=f"{template.file.name} lists what a {template.title} request holds.",
            )
    if "rollback_of" in data and "rollback_of" not in dict(template.fields):
        raise doc.error(
            ("rollback_of",),
            f"rollback_of belongs to emergency-rollback requests, not {template.id}",
            hint="Set `type: emergency-rollback` or remove rollback_of.",
        )
    details: Mapping[str, Any] = data.get("details") or {}
    for detail in template.details:
        if detail.name not in details:
            if detail.required:
                raise doc.error(
                    ("details",) if "details" in data else (),
                    f"a {template.id} request needs details.{detail.name} ({detail.prompt})",
                    hint=f"{template.file.name} lists the pre-built fields of a {template.title} "
                    "request.",
                )
            continue
        _check_value(doc, detail, str(details[detail.name]))


def _check_manual(
    doc: YamlDocument, rtype: RequestType, covers: Sequence[Selector], data: Mapping[str, Any]
) -> None:
    """A manual request names domains, not records; only a manual request has steps."""
    if not rtype.manual:
        for key in ("steps", "checklist"):
            if key in data:
                raise doc.error(
                    (key,),
                    f"{key} belong to platform and dkim-switch requests, not {rtype.value}",
                    hint="A DNS change is verified against the authoritative servers; remove it.",
                )
        return
    for key in ("steps", "checklist"):
        if not data.get(key):
            raise doc.error(
                (),
                f"a {rtype.value} request needs `{key}:` (a list: "
                + ("what is done by hand, in order" if key == "steps" else "what proves it worked")
                + ")",
                hint="`dmarcops new " + rtype.value + "` writes the skeleton with both.",
            )
    for i, selector in enumerate(covers):
        if selector.name is not None:
            raise doc.error(
                ("covers", i),
                f"a {rtype.value} request covers domains, not records: write {selector.zone!r}",
                hint="It changes no DNS record; `covers:` says which domains it affects.",
            )
    if rtype is RequestType.DKIM_SWITCH and len({s.zone for s in covers}) != 1:
        raise doc.error(
            ("covers",),
            "a dkim-switch request covers exactly one domain",
            hint="File one request per domain: each switches to its own selector.",
        )


def _request(
    doc: YamlDocument, request_id: str, root: Path, roster: Roster, templates: TemplateSet
) -> ChangeRequest:
    data: Mapping[str, Any] = doc.data
    problem = rationale_problem(data.get("rationale"))
    if problem:
        raise doc.error(("rationale",), problem, hint=RATIONALE_HINT)
    template = next((t for t in templates if t.id == data["type"]), None)
    if template is None:
        raise doc.error(
            ("type",),
            f"no ticket template {data['type']!r}",
            hint=f"Templates (policy/templates/): {', '.join(t.id for t in templates) or 'none'}.",
        )
    rtype = RequestType(template.id)
    if "emergency_reason" in data:
        problem = rationale_problem(data["emergency_reason"], "emergency_reason")
        if problem:
            raise doc.error(
                ("emergency_reason",),
                problem,
                hint="Say what is breaking now and why it cannot wait for the standard approval "
                'cycle (seed: "the emergency that wasn\'t actually an emergency" erodes the policy).',
            )
    _check_template(doc, template, data)

    client = data["client"]
    clients_dir = root / "policy" / "clients"
    if not (clients_dir / f"{client}.yaml").exists():
        known = sorted(p.stem for p in clients_dir.glob("*.yaml"))
        raise doc.error(
            ("client",),
            f"no client {client!r}",
            hint=f"Clients (policy/clients/): {', '.join(known) or 'none'}.",
        )
    domains = client_domains(root, client)
    covers: list[Selector] = []
    for i, text in enumerate(data["covers"]):
        selector = Selector.parse(text)
        if selector is None:  # the schema's pattern keeps this from happening
            raise doc.error(("covers", i), f"cannot read selector {text!r}")
        if domains is not None and selector.zone not in domains:
            raise doc.error(
                ("covers", i),
                f"{selector.zone} is not a domain of client {client!r}",
                hint=f"{client}'s domains: {', '.join(domains)}. A request covers one client's "
                "changes; file one request per client.",
            )
        covers.append(selector)

    _check_manual(doc, rtype, covers, data)

    author = data["author"]
    if author not in roster:
        raise doc.error(
            ("author",),
            f"author {author!r} is not on the analyst roster",
            hint=f"Roster ids (policy/roster.yaml): {', '.join(roster.ids)}.",
        )

    approval: ClientApproval | None = None
    if "client_approval" in data:
        given = data["client_approval"]
        at = _timestamp(given["at"])
        if at is None:
            raise doc.error(
                ("client_approval", "at"),
                f"{given['at']!r} is not a UTC time",
                hint="Write it as 2026-06-08T09:14:00Z.",
            )
        approval = ClientApproval(
            given["approver"].lower(),
            at,
            given["reference"],
            freeze=str(given.get("freeze", "")),
            eml=given.get("eml"),
        )

    signature, unreadable = read_signature(signature_path(root, request_id))
    return ChangeRequest(
        id=request_id,
        type=rtype,
        client=client,
        covers=tuple(covers),
        rationale=data["rationale"].strip(),
        author=author,
        evidence=tuple(data.get("evidence", ())),
        details=tuple((str(k), str(v)) for k, v in data.get("details", {}).items()),
        client_approval=approval,
        requested_risk=RiskLevel.parse(data["requested_risk"])
        if "requested_risk" in data
        else None,
        rollback_of=data.get("rollback_of"),
        emergency_reason=data.get("emergency_reason"),
        incident=str(data.get("incident", "")),
        on_call=str(data.get("on_call", "")),
        file=doc.path,
        lines=tuple((str(key), doc.line_of((str(key),)) or 0) for key in data),
        sha256=content_sha256(data),
        signature=signature,
        signature_error=unreadable,
        template=template,
        steps=tuple(str(x) for x in data.get("steps", ())),
        checklist=tuple(str(x) for x in data.get("checklist", ())),
    )


def _check_file(
    path: Path, root: Path, roster: Roster, templates: TemplateSet, problems: list[InputError]
) -> ChangeRequest | None:
    request_id = path.stem
    if path.suffix != ".yaml":
        problems.append(
            InputError(
                "change requests are .yaml files", file=path, hint=f"Rename it {request_id}.yaml."
            )
        )
        return None
    if not REQUEST_ID.match(request_id):
        problems.append(
            InputError(
                f"{request_id!r} is not a change request id",
                file=path,
                hint="Name the file CR-<number>-<words>.yaml, e.g. CR-0007-fabrikam-sendgrid.yaml "
                "(lower case words, single hyphens); `dmarcops new` picks the next number.",
            )
        )
        return None
    try:
        doc = load_yaml(path)
    except InputError as exc:
        problems.append(exc)
        return None
    prompts = [
        doc.error(
            where,
            f"template prompt left in: {PROMPT.search(text).group(0)}",  # type: ignore[union-attr]
            hint="Replace each <<...>> prompt of the ticket template with the real value.",
        )
        for where, text in _strings(doc.data)
        if PROMPT.search(text)
    ]
    if prompts:
        problems.extend(prompts)
        return None
    errors = list(iter_schema_errors(doc, root / SCHEMA))
    if errors:
        problems.extend(errors)
        return None
    try:
        return _request(doc, request_id, root, roster, templates)
    except InputError as exc:
        problems.append(exc)
        return None


def collect_requests(
    root: Path,
    roster: Roster | None = None,
    templates: tuple[TemplateSet, list[InputError]] | None = None,
) -> tuple[list[ChangeRequest], list[InputError]]:
    """Every request under changes/requests/, with every problem found (for `requests check`).

    Judged by `roster` (the working tree's when None) and the ticket templates of the same
    policy tree, unless `templates` are given (`validate`: the working roster, the sealed
    templates)."""
    directory = root / REQUESTS_DIR
    if not directory.is_dir():
        return [], []
    roster = roster if roster is not None else load_roster(root)
    # `plan` validates the requests, then covers the plan with them: read them once per version
    # of the files (names, sizes and modification times) and of the roster.
    # lstat, and nothing skipped for its kind: a directory, link or FIFO named like a request is
    # read (and refused by name) like any request file, never silently left out or followed.
    stamp = tuple(
        (p.name, st.st_mtime_ns, st.st_size)
        for p in sorted(directory.iterdir())
        # The signature files too: signing a request changes whether it counts.
        if p.suffix in (".yaml", ".yml") or p.name.endswith(SIGNATURE_SUFFIX)
        for st in [p.lstat()]
    )
    template_set, problems = templates if templates is not None else templates_for(root, roster)
    requests, found = _collect(root, roster, template_set, stamp)
    return list(requests), [*problems, *found]


@functools.lru_cache(maxsize=8)
def _collect(
    root: Path, roster: Roster, templates: TemplateSet, stamp: tuple[tuple[str, int, int], ...]
) -> tuple[tuple[ChangeRequest, ...], tuple[InputError, ...]]:
    requests: list[ChangeRequest] = []
    problems: list[InputError] = []
    for name, _, _ in stamp:
        if name.endswith(SIGNATURE_SUFFIX):
            continue  # read with its request
        request = _check_file(root / REQUESTS_DIR / name, root, roster, templates, problems)
        if request is not None:
            requests.append(request)
    return tuple(requests), tuple(problems)


def load_requests(root: Path, roster: Roster | None = None) -> list[ChangeRequest]:
    """Every change request, or InputError (exit 1) naming the file and line of the first problem."""
    requests, problems = collect_requests(root, roster)
    if problems:
        raise problems[0]
    return requests
