"""Ticket templates as data (policy/templates/<type>.yaml): the seed's "Ticket templates for
routine changes" (new sender, policy progression, DKIM rotation, emergency rollback) and any
other the MSP adds. A new template is a file, not code.

A template names its pre-built fields (the request's `details:`, each with the prompt
`dmarcops new` writes and the form its value must take), the request fields it requires besides
them (an emergency rollback's `rollback_of:` and `emergency_reason:`), which record kinds a request
under it may change (a change of another kind would borrow the template's risk path), and what
its change records are called. The value forms (`date`, `pass-rate`, a regular expression) are
the only thing code knows about.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.errors import InputError
from pipeline.load.yamlfile import YamlDocument, iter_schema_errors, load_yaml
from pipeline.model import RecordKind

TEMPLATES_DIR = Path("policy") / "templates"
SCHEMA = Path("policy") / "schemas" / "template.schema.json"
# The seed's templates, for repositories that have no policy/templates/ of their own.
SEED_TEMPLATES = Path(__file__).resolve().parent / "seed_templates"
# The request fields a template may require besides its details, with what each is for.
REQUEST_FIELDS = ("rollback_of", "emergency_reason", "incident", "on_call")


@dataclass(frozen=True)
class DetailField:
    """One pre-built field of a template: what `dmarcops new` asks for, and the value's form."""

    name: str
    prompt: str
    format: str = "text"  # text | date | pass-rate
    pattern: str = ""  # a regular expression the value must match (from its start)
    min_days: int = 0  # pass-rate: the shortest period that counts
    required: bool = True


@dataclass(frozen=True)
class TicketTemplate:
    id: str  # the request's `type:`, the file's name
    title: str
    routing: str  # how its changes route, in words (the risk path)
    rationale: str  # the prompt for the rationale
    evidence: str  # the prompt for the evidence
    details: tuple[DetailField, ...] = ()
    fields: tuple[tuple[str, str], ...] = ()  # required request fields and their prompts
    may_change: frozenset[RecordKind] | None = None  # None: any kind
    selectors_from: tuple[str, ...] = ()  # details naming the only DKIM selectors it may change
    emergency: bool = False  # skips the approval wait; post-hoc review
    change_type: str = ""  # the change record's "Change type"; "": derived from the facts
    aliases: tuple[str, ...] = ()
    # A change that is not a DNS record edit (platform, dkim-switch: pipeline.gate.manual): the
    # prompts for its manual steps and its verification checklist.
    manual: tuple[str, str] | None = None
    file: Path = Path()

    def detail(self, name: str) -> DetailField | None:
        return next((d for d in self.details if d.name == name), None)


@dataclass(frozen=True)
class TemplateSet:
    templates: tuple[TicketTemplate, ...] = ()

    def __iter__(self) -> Iterator[TicketTemplate]:
        return iter(self.templates)

    @property
    def names(self) -> tuple[str, ...]:
        """Every name `dmarcops new` accepts: ids, then aliases."""
        return tuple(t.id for t in self.templates) + tuple(
            a for t in self.templates for a in t.aliases
        )

    def find(self, name: str) -> TicketTemplate | None:
        return next((t for t in self.templates if name == t.id or name in t.aliases), None)

    def get(self, name: str) -> TicketTemplate:
        found = self.find(name)
        if found is None:
            raise InputError(
                f"no ticket template {name!r}",
                hint=f"Templates ({TEMPLATES_DIR.as_posix()}/): "
                f"{', '.join(self.names) or 'none'}. A new template is a file there.",
            )
        return found


def _template(doc: YamlDocument, template_id: str) -> TicketTemplate:
    data: Mapping[str, Any] = doc.data
    details = []
    for name, spec in (data.get("details") or {}).items():
        pattern = str(spec.get("pattern", ""))
        if pattern:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise doc.error(
                    ("details", name, "pattern"),
                    f"not a regular expression: {exc}",
                    hint="Write a Python regular expression.",
                ) from None
        details.append(
            DetailField(
                name=str(name),
                prompt=str(spec["prompt"]),
                format=str(spec.get("format", "text")),
                pattern=pattern,
                min_days=int(spec.get("min_days", 0)),
                required=bool(spec.get("required", True)),
            )
        )
    selectors_from = tuple(str(s) for s in data.get("selectors_from", ()))
    for i, name in enumerate(selectors_from):
        if name not in {d.name for d in details}:
            raise doc.error(
                ("selectors_from", i),
                f"{name!r} is not one of this template's details",
                hint="List the details that name the DKIM selectors (current_selector, ...).",
            )
    kinds = data.get("may_change")
    return TicketTemplate(
        id=template_id,
        title=str(data["title"]),
        routing=str(data["routing"]),
        rationale=str(data["rationale"]),
        evidence=str(data["evidence"]),
        details=tuple(details),
        fields=tuple((str(k), str(v["prompt"])) for k, v in (data.get("fields") or {}).items()),
        may_change=frozenset(RecordKind(k) for k in kinds) if kinds is not None else None,
        selectors_from=selectors_from,
        emergency=bool(data.get("emergency", False)),
        change_type=str(data.get("change_type", "")),
        aliases=tuple(str(a) for a in data.get("aliases", ())),
        manual=(
            (str(data["manual"]["steps"]), str(data["manual"]["checklist"]))
            if "manual" in data
            else None
        ),
        file=doc.path,
    )


def collect_templates(root: Path) -> tuple[TemplateSet, list[InputError]]:
    """Every template under `root`/policy/templates/, with every problem found. A repository
    without that directory (or a policy sealed before templates were data) has the seed's
    templates: the package's copies of the example's files (tests keep them the same)."""
    directory = root / TEMPLATES_DIR
    problems: list[InputError] = []
    found: list[TicketTemplate] = []
    shipped = not directory.is_dir()
    if shipped:
        directory = SEED_TEMPLATES
    for path in sorted(directory.glob("*.yaml")):
        try:
            doc = load_yaml(path)
        except InputError as exc:
            problems.append(exc)
            continue
        errors = [] if shipped else list(iter_schema_errors(doc, root / SCHEMA))
        if errors:
            problems.extend(errors)
            continue
        try:
            template = _template(doc, path.stem)
        except InputError as exc:
            problems.append(exc)
            continue
        taken = {n: t for t in found for n in (t.id, *t.aliases)}
        clash = next((n for n in (template.id, *template.aliases) if n in taken), None)
        if clash is not None:
            problems.append(
                doc.error(
                    ("aliases",),
                    f"{clash!r} also names the template in {taken[clash].file.name}",
                    hint="Each template name and alias is used once.",
                )
            )
            continue
        found.append(template)
    return TemplateSet(tuple(found)), problems


def load_templates(root: Path) -> TemplateSet:
    """The templates, or InputError naming the file and line of the first problem."""
    templates, problems = collect_templates(root)
    if problems:
        raise problems[0]
    return templates
