"""The repository as typed values: client profiles, zone files, providers, sender catalog, risk rules.

Layout (README, "Repository layout"): zones/<client>/<domain>.yaml, policy/clients/<client>.yaml, policy/providers.yaml,
policy/senders.yaml, policy/risk-rules.yaml, policy/settings.yaml, JSON Schemas in policy/schemas/.
Every problem is an InputError naming the file and line; `collect_problems` gathers them all for
`dmarcops validate`, `load_portfolio` stops at the first. The typed values are in
pipeline/load/portfolio_model.py, re-exported here.
"""

from __future__ import annotations

import os
import re
import zoneinfo
from collections.abc import Collection, Iterator, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from pipeline.classify.rules import RiskRules, rules_from_data
from pipeline.diff.context import DkimLifecycle, RetiredSelector, ScheduledSelector
from pipeline.errors import InputError
from pipeline.load.calendar import calendar_from, check_rollback_overrides, staffed_hours_from
from pipeline.load.calendar_model import StaffedHours
from pipeline.load.gate_policy import DEFAULT_CHAINS, GatePolicy, gate_policy_from_data
from pipeline.load.portfolio_model import (
    DEFAULT_POLICY_URL,
    DMARCOPS_KEYS,
    DNS_SERVER,
    HOSTED_ZONES,
    MTA_STS_POLICIES,
    OUTSIDE,
    OUTSIDE_LABEL,
    SELF_SERVE,
    AuthorisedApprover,
    ClientProfile,
    Portfolio,
    ProviderConfig,
    Sender,
    SenderCatalog,
    Settings,
    ZoneFile,
    schema_file,
)
from pipeline.load.provider_classes import provider_class_problem, provider_secret_problem
from pipeline.load.request_files import remember_client_domains
from pipeline.load.yamlfile import YamlDocument, iter_schema_errors, load_yaml

__all__ = [
    "DEFAULT_POLICY_URL",
    "DMARCOPS_KEYS",
    "DNS_SERVER",
    "HOSTED_ZONES",
    "MTA_STS_POLICIES",
    "OUTSIDE",
    "OUTSIDE_LABEL",
    "SELF_SERVE",
    "AuthorisedApprover",
    "ClientProfile",
    "Portfolio",
    "ProviderConfig",
    "Sender",
    "SenderCatalog",
    "Settings",
    "ZoneFile",
    "collect_problems",
    "load_portfolio",
]


def _client(
    doc: YamlDocument,
    client_id: str,
    calendar_doc: YamlDocument | None = None,
    staffing: StaffedHours | None = None,
) -> ClientProfile:
    data = doc.data
    tz = data.get("timezone", "UTC")
    try:
        zoneinfo.ZoneInfo(tz)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise doc.error(
            ("timezone",),
            f"unknown time zone {tz!r}",
            hint="Use an IANA name such as Europe/Berlin or America/Chicago.",
        ) from None
    domains = tuple(str(d) for d in data["domains"])
    calendar = calendar_from(doc, calendar_doc, domains, staffing)
    dkim: dict[str, DkimLifecycle] = {}
    for domain, d in data.get("dkim", {}).items():
        if domain not in data["domains"]:
            raise doc.error(
                ("dkim", domain),
                f"DKIM lifecycle for {domain!r}, which is not one of this client's domains",
                hint="List the domain under `domains:` or fix the name.",
            )
        dkim[domain] = DkimLifecycle(
            active=frozenset(d.get("active", [])),
            retired=tuple(
                RetiredSelector(s["selector"], doc.date(("dkim", domain, "retired", i), s["since"]))
                for i, s in enumerate(d.get("retired", []))
            ),
        )
    # The documented rotation schedule (seed: routine rotation is low risk) is the calendar's
    # DKIM rotations that name their new selector.
    for change in calendar.scheduled:
        if change.type != "dkim-rotation" or not change.selector:
            continue
        lifecycle = dkim.get(change.domain, DkimLifecycle())
        dkim[change.domain] = replace(
            lifecycle,
            scheduled=(
                *lifecycle.scheduled,
                ScheduledSelector(change.selector, change.steps[0].planned),
            ),
        )
    return ClientProfile(
        id=client_id,
        name=data["name"],
        provider=data["provider"],
        domains=domains,
        regulated=bool(data.get("regulated", False)),
        industry=data.get("industry", ""),
        timezone=tz,
        dkim=dkim,
        calendar=calendar,
        authorised_approvers=tuple(
            AuthorisedApprover(a["name"], a["email"]) for a in data.get("authorised_approvers", [])
        ),
        team=data.get("team", ""),
        file=doc.path,
        export_internal_notes=bool(data.get("export_internal_notes", False)),
        retention_years=data.get("retention_years"),
        tier=str(data.get("tier", "managed")),
        change_management=str(data.get("change_management", "standard")),
        change_management_direction=str(data.get("change_management_direction", "")).strip(),
        ns_delegations=_delegations(doc, data),
    )


def _delegations(doc: YamlDocument, data: Mapping[str, Any]) -> dict[str, dict[str, str]]:
    out: dict[str, dict[str, str]] = {}
    for domain, subs in data.get("ns_delegations", {}).items():
        if domain not in data["domains"]:
            raise doc.error(
                ("ns_delegations", domain),
                f"NS delegations for {domain!r}, which is not one of this client's domains",
                hint="List the domain under `domains:` or fix the name.",
            )
        out[domain] = {
            str(sub).lower().removesuffix("." + domain): str(p) for sub, p in subs.items()
        }
    return out


def _checked(
    root: Path, path: Path, schema: str, problems: list[InputError]
) -> YamlDocument | None:
    try:
        doc = load_yaml(path)
    except InputError as exc:
        problems.append(exc)
        return None
    errors = list(iter_schema_errors(doc, schema_file(root, schema)))
    problems.extend(errors)
    return None if errors else doc


def _claimed_twice(
    doc: YamlDocument, index: int, domain: str, owner: tuple[str, Path]
) -> InputError:
    return doc.error(
        ("domains", index),
        f"domain {domain} is also listed by client {owner[0]!r} ({owner[1].name})",
        hint="A domain belongs to exactly one client: remove one of the entries.",
    )


def _mtime(path: Path) -> int:
    try:
        return path.stat().st_mtime_ns
    except OSError:
        return 0


def _zone_domain(name: str) -> str:
    return name.removesuffix(".yaml").removesuffix(".yml")


def _refuse_linked_directory(path: Path) -> None:
    """zones/ and each zones/<client>/ must be directories of the repository itself, not links:
    `plan --changed-since` and the gate map git's changed paths under zones/ to zones, so an edit
    made through a link (to zones-real/, say) would change what is applied while every
    incremental plan saw nothing."""
    if os.path.islink(path):
        raise InputError(
            f"{path.name}/ is a symbolic link, not a directory of the repository",
            file=path,
            hint="Keep the zone files in zones/<client>/ itself (git mv the target there and "
            "remove the link): changes made through a link are invisible to `plan "
            "--changed-since`.",
        )


def _zone_paths(root: Path, only: Collection[str] | None = None) -> Iterator[tuple[str, Path]]:
    """(client directory, path) of each zone file, or of those of the domains in `only`."""
    zones = root / "zones"
    if not zones.is_dir():
        return
    _refuse_linked_directory(zones)
    # scandir's is_dir (following links, as Path.is_dir) reads the entry's type: no stat for
    # each of 1,000 directories.
    entries = list(os.scandir(zones))
    for entry in entries:
        if entry.is_symlink() and entry.is_dir():
            _refuse_linked_directory(zones / entry.name)
    for client in sorted(entry.name for entry in entries if entry.is_dir()):
        client_dir = zones / client
        # Names first, a Path only for the files wanted: 10,000 zone files in 1,000 directories.
        for name in sorted(os.listdir(client_dir)):
            if os.path.splitext(name)[1] in (".yaml", ".yml") and (
                only is None or _zone_domain(name) in only
            ):
                yield client_dir.name, client_dir / name


def collect_problems(
    root: Path, policy_root: Path | None = None, *, zones_only: Collection[str] | None = None
) -> tuple[Portfolio | None, list[InputError]]:
    """Load everything, gathering every problem instead of stopping at the first.

    Zones come from `root`; policy/ from `policy_root` when given (the policy of record).
    `zones_only` (a plan of the zones changed since a revision): only these zone files and the
    profiles of the clients whose directories hold them are read. What a profile's checks find
    depends on policy/ alone, and policy/ as sealed was checked in full when a lead sealed it, so
    the caller passes `zones_only` only when policy/ is the sealed one or is checked in full
    besides (pipeline.commands.loading.load_for_plan). Any problem found makes it check
    everything, so a refusal says what a full check says.
    """
    problems: list[InputError] = []
    zones_root, root = root, policy_root or root
    policy = root / "policy"
    if not policy.is_dir():
        return None, [
            InputError(
                "no policy/ directory here",
                file=root,
                hint="Run dmarcops from the repository root, or pass --repo PATH.",
            )
        ]

    staffing: StaffedHours | None = None
    staffing_path = policy / "staffing.yaml"
    if staffing_path.exists():
        doc = _checked(root, staffing_path, "staffing", problems)
        if doc is not None:
            try:
                staffing = staffed_hours_from(doc)
            except InputError as exc:
                problems.append(exc)

    clients: dict[str, ClientProfile] = {}
    owner_of: dict[str, tuple[str, Path]] = {}  # domain -> (client, profile file)
    calendars = policy / "calendars"
    if calendars.is_dir():
        profiles = {p.stem for p in (policy / "clients").glob("*.yaml")}
        problems.extend(
            InputError(
                f"calendar for {path.stem!r}, which has no client profile",
                file=path,
                hint=f"Create policy/clients/{path.stem}.yaml, or rename the file.",
            )
            for path in sorted(calendars.glob("*.yaml"))
            if path.stem not in profiles
        )
    zone_paths = list(_zone_paths(zones_root, None if zones_only is None else set(zones_only)))
    wanted = None if zones_only is None else {client_id for client_id, _ in zone_paths}
    for path in sorted((policy / "clients").glob("*.yaml")):
        if wanted is not None and path.stem not in wanted:
            continue
        stamp = _mtime(path)  # before reading: a later edit is then read again
        doc = _checked(root, path, "client", problems)
        if doc is None:
            continue
        remember_client_domains(path, stamp, doc.data)
        calendar_doc: YamlDocument | None = None
        calendar_path = calendars / path.name
        if calendar_path.exists():
            calendar_doc = _checked(root, calendar_path, "calendar", problems)
            if calendar_doc is None:
                continue
        try:
            client = _client(doc, path.stem, calendar_doc, staffing)
        except InputError as exc:
            problems.append(exc)
            continue
        clients[client.id] = client
        for i, domain in enumerate(client.domains):
            if domain in owner_of:
                problems.append(_claimed_twice(doc, i, domain, owner_of[domain]))
            else:
                owner_of[domain] = (client.id, client.file)

    providers: dict[str, ProviderConfig] = {}
    doc = _checked(root, policy / "providers.yaml", "providers", problems)
    if doc is not None:
        for name, options in doc.data["providers"].items():
            line = doc.line_of(("providers", name, "class"))
            problem = provider_class_problem(name, options.get("class"), doc.path, line)
            if problem is not None:
                # Kept by name below (so its clients are not also told it is undefined); with a
                # problem the portfolio is never used, so the class is never imported.
                problems.append(problem)
            for key, value in options.items():
                secret = provider_secret_problem(
                    name, key, value, doc.path, doc.line_of(("providers", name, key))
                )
                if secret is not None:  # reported, never echoed: the message names the key only
                    problems.append(secret)
            providers[name] = ProviderConfig(
                name, options, doc.path, doc.line_of(("providers", name))
            )
    for client in clients.values():
        if doc is not None and client.provider not in providers:
            problems.append(
                InputError(
                    f"client {client.id!r} names provider {client.provider!r}, "
                    "which policy/providers.yaml does not define",
                    file=client.file,
                    line=load_yaml(client.file).line_of(("provider",)),
                    hint=f"Defined providers: {', '.join(sorted(providers)) or 'none'}.",
                )
            )

    senders = SenderCatalog()
    doc = _checked(root, policy / "senders.yaml", "senders", problems)
    if doc is not None:
        senders = SenderCatalog(
            tuple(
                Sender(s["name"], tuple(s["spf"]), int(s["lookups"]), bool(s["pre_approved"]))
                for s in doc.data["senders"]
            )
        )

    rules: RiskRules | None = None
    doc = _checked(root, policy / "risk-rules.yaml", "risk-rules", problems)
    if doc is not None:
        rules = rules_from_data(doc.data)
        for client in clients.values():
            problem = check_rollback_overrides(client.calendar, rules.rollback_hours)
            if problem is not None:
                problems.append(problem)

    gate = GatePolicy(DEFAULT_CHAINS)
    gate_path = policy / "gate.yaml"
    if gate_path.exists():
        doc = _checked(root, gate_path, "gate", problems)
        if doc is not None:
            try:
                gate = gate_policy_from_data(doc.data)
            except re.error as exc:
                problems.append(
                    doc.error(
                        ("emergency", "incident_reference"),
                        f"not a regular expression: {exc}",
                        hint="Write a Python regular expression, e.g. ^INC-[0-9]+$.",
                    )
                )

    settings = Settings()
    settings_path = policy / "settings.yaml"
    if settings_path.exists():
        doc = _checked(root, settings_path, "settings", problems)
        if doc is not None and doc.data:
            lookups = doc.data.get("lookups", {})
            settings = Settings(
                nameservers=tuple(lookups.get("nameservers", ())),
                port=int(lookups.get("port", 53)),
                timeout=float(lookups.get("timeout", 3.0)),
                concurrency=int(doc.data.get("concurrency", 8)),
            )

    zone_files: list[ZoneFile] = []
    seen: dict[str, ZoneFile] = {}
    for client_id, path in zone_paths:
        domain = _zone_domain(path.name)
        if client_id not in clients:
            problems.append(
                InputError(
                    f"zones/{client_id}/ has no client profile",
                    file=path,
                    hint=f"Create policy/clients/{client_id}.yaml, or move the file.",
                )
            )
            continue
        owner = owner_of.get(domain)
        if owner is None or owner[0] != client_id:
            whose = f"client {owner[0]!r}" if owner else "no client"
            problems.append(
                InputError(
                    f"zone file for {domain}, which {whose} owns"
                    + ("" if owner else " (no client profile lists it)"),
                    file=path,
                    hint=(
                        f"Add {domain} to `domains:` in policy/clients/{client_id}.yaml."
                        if owner is None
                        else f"Move the file to zones/{owner[0]}/."
                    ),
                )
            )
            continue
        if domain in seen:
            problems.append(
                InputError(
                    f"duplicate zone file for {domain} (also {seen[domain].path.name})",
                    file=path,
                    hint="Keep one file per domain.",
                )
            )
            continue
        zone_file = ZoneFile(client_id, domain, path)
        seen[domain] = zone_file
        zone_files.append(zone_file)

    if zones_only is not None and problems:
        return collect_problems(zones_root, policy_root)
    if rules is None:
        return None, problems
    portfolio = Portfolio(
        root=zones_root,
        clients=clients,
        zone_files=tuple(zone_files),
        providers=providers,
        senders=senders,
        rules=rules,
        settings=settings,
        gate=gate,
        policy_root=policy_root,
    )
    return portfolio, problems


def load_portfolio(root: Path, policy_root: Path | None = None) -> Portfolio:
    """The portfolio with policy/ as the working tree has it, or, given `policy_root`, as sealed
    there. Gating commands use pipeline.records.policy_of_record.portfolio_of_record."""
    portfolio, problems = collect_problems(root, policy_root)
    if problems:
        raise problems[0]
    assert portfolio is not None
    return portfolio
