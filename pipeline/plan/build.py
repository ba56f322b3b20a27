"""`make_plan`: desired zone files -> live DNS through octoDNS -> semantic diff -> risk -> Plan.

`dmarcops plan` is a thin wrapper over this function. Zones are planned concurrently (bounded); a zone
whose provider fails is reported on the plan and the others are still planned.
"""

from __future__ import annotations

import threading
import warnings
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from octodns.record import Create, Delete, Update
from octodns.zone import Zone

from pipeline import diff
from pipeline.classify.rules import ClientContext, classify
from pipeline.diff import mtasts
from pipeline.diff.context import DkimLifecycle, RRsetKey, ZoneContext
from pipeline.diff.errors import RecordSyntaxError
from pipeline.diff.kinds import is_owned_value, kind_of
from pipeline.errors import GateRefused, InputError
from pipeline.live.dns import Nameservers, make_resolver, report_authorised
from pipeline.live.hosted import check_plan, prepare_zone
from pipeline.live.mta_sts_policy import live_policy
from pipeline.live.providers import build_provider, check_local_zone
from pipeline.live.scope import OwnedRecordsOnly, raw_values
from pipeline.live.spf_budget import SpfBudgetCounter, estimate_from_catalog
from pipeline.load.mta_sts import desired_policy
from pipeline.load.portfolio import ClientProfile, Portfolio, ProviderConfig, ZoneFile
from pipeline.load.zones import load_desired
from pipeline.model import Fact, Finding, RecordKind, Severity, SpfBudget, fact
from pipeline.plan.changes import ChangedZones
from pipeline.plan.items import Plan, PlanItem, ZoneResult

Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class PlanOptions:
    now: datetime | None = None  # injected for tests; UTC
    clients: Sequence[str] = ()
    zones: Sequence[str] = ()
    nameservers: Nameservers | None = None  # overrides policy/settings.yaml
    concurrency: int | None = None
    # `zones_changed_since(root, ref)`, resolved by the caller (git stays at the edge): only these
    # zones are planned, and none when nothing changed (unlike `zones`, where empty means all).
    changed_since: ChangedZones | None = None
    # Zone files that failed validation (domain -> the problem, with file and line): reported as
    # failed zones instead of planned, so one bad file never stops the plan of the others.
    broken_zones: Mapping[str, str] = field(default_factory=dict)


class _Lookups:
    """Shared per plan: DNS look-ups (SPF budget, report authorisation) or the catalog fallback."""

    def __init__(self, portfolio: Portfolio, nameservers: Nameservers | None) -> None:
        self.costs = portfolio.senders.lookup_costs()
        self.counter: SpfBudgetCounter | None = None
        self.resolver: Any = None
        self._authorised: dict[tuple[str, str], bool | None] = {}
        # The validation and the zone's budget source count the same SPF record: once.
        self._budgets: dict[tuple[str, str], SpfBudget] = {}
        self._lock = threading.Lock()
        if nameservers and nameservers.addresses:
            self.resolver = make_resolver(nameservers)
            self.counter = SpfBudgetCounter(self.resolver)

    def budget(self, record: str, fqdn: str) -> SpfBudget:
        if self.counter is None:
            return estimate_from_catalog(record, self.costs)
        key = (record, fqdn)
        found = self._budgets.get(key)
        if found is None:
            found = self._budgets.setdefault(key, self.counter.count(record, fqdn))
        return found

    def report_authorised(self, zone: str, dest: str) -> bool | None:
        """Cached per plan: the same (zone, destination) is asked once however many records and
        threads need it (RFC 7489 7.1 lookups go to third parties' servers)."""
        if self.resolver is None:
            return None
        key = (zone.lower(), dest.lower())
        with self._lock:
            if key in self._authorised:
                return self._authorised[key]
        answer = report_authorised(self.resolver, zone, dest)
        with self._lock:
            return self._authorised.setdefault(key, answer)


def _rrsets(zone: Zone) -> dict[RRsetKey, tuple[str, ...]]:
    return {(r.name, r._type): raw_values(r) for r in zone.records}


def client_context(client: ClientProfile, now: datetime) -> ClientContext:
    today = now.astimezone(ZoneInfo(client.timezone)).date()
    freeze = client.freeze_on(today)
    return ClientContext(
        regulated=client.regulated,
        in_freeze=freeze is not None,
        freeze_reason=(f"freeze {freeze.start}..{freeze.end}: {freeze.reason}" if freeze else ""),
    )


def _refuse_foreign_removal(
    item_kind: RecordKind, before: tuple[str, ...], after: tuple[str, ...], where: str
) -> None:
    # Defence in depth behind OwnedRecordsOnly: never drop a value the pipeline does not own.
    lost = [v for v in before if not is_owned_value(item_kind, v) and v not in after]
    if lost:
        raise GateRefused(
            f"{where}: the plan would remove {lost[0]!r}, which the pipeline does not own",
            hint="This is a bug in scope handling; nothing was changed. Report it with the zone.",
        )


def explain(exc: Exception) -> str:
    """One line a user can act on, for an exception from a provider."""
    message = str(exc).split("\n")[0] or type(exc).__name__
    lowered = message.lower()
    kind = type(exc).__name__
    aws_refused = ("invalidclienttokenid", "signaturedoesnotmatch", "accessdenied")
    if kind == "NoCredentialsError" or any(code in lowered for code in aws_refused):
        message += (
            " (Route 53 credentials come from the standard AWS chain: AWS_ACCESS_KEY_ID and "
            "AWS_SECRET_ACCESS_KEY, AWS_PROFILE, or a role; check them)"
        )
    elif "signature" in lowered or "badkey" in lowered or "peerbad" in kind.lower():
        message += " (the server rejected the TSIG key: check key_name and key_secret)"
    elif "unauthorized" in lowered:
        message += " (the provider refused the API key: check it)"
    elif kind in ("EndpointConnectionError", "ConnectionError") or "connection refused" in lowered:
        message = message.split(" (Caused by")[0]
        message += " (the provider's API did not answer: is it running, and is the address right?)"
    elif "timed out" in lowered or isinstance(exc, TimeoutError):
        message += " (no answer from the server: is it running, and are host and port right?)"
    return message


def plan_zone(
    portfolio: Portfolio,
    zone_file: ZoneFile,
    now: datetime,
    lookups: _Lookups,
    broken: str | None = None,
) -> tuple[ZoneResult, list[PlanItem]]:
    client = portfolio.clients[zone_file.client]
    provider_config = portfolio.providers[client.provider]
    if broken is not None:
        return (
            ZoneResult(
                client.id, zone_file.domain, client.provider, error=broken, tier=client.tier
            ),
            [],
        )
    try:
        desired = load_desired(zone_file)
    except InputError as exc:
        return ZoneResult(client.id, zone_file.domain, client.provider, error=str(exc)), []
    try:
        check_local_zone(provider_config, portfolio.root, zone_file.domain)
        target = build_provider(provider_config, portfolio.root, instance=f"[{zone_file.domain}]")
        prepare_zone(target, zone_file.domain)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            # Without this processor octoDNS would plan deletes of everything we do not own.
            scope = OwnedRecordsOnly()
            octodns_plan = target.plan(desired, processors=[scope])
            check_plan(target, octodns_plan)
    except Exception as exc:  # any provider failure: report this zone, plan the others
        return ZoneResult(client.id, zone_file.domain, client.provider, error=explain(exc)), []

    today = now.astimezone(ZoneInfo(client.timezone)).date()
    ctx = ZoneContext(
        zone=zone_file.domain,
        desired=_rrsets(scope.desired),
        live=_rrsets(scope.existing),
        today=today,
        spf_budget=lookups.budget,
        report_authorised=lookups.report_authorised,
        pre_approved_sender=portfolio.senders.pre_approved_sender,
        dkim=client.dkim.get(zone_file.domain, DkimLifecycle()),
        regulated=client.regulated,
        delegations=client.ns_delegations.get(zone_file.domain, {}),
    )

    findings = record_findings(ctx)
    budget_source = next(
        (
            lookups.budget(spf[0], ctx.fqdn(name)).source
            for (name, rtype), values in sorted(ctx.desired.items())
            if kind_of(name, rtype) is RecordKind.SPF
            and (spf := [v for v in values if is_owned_value(RecordKind.SPF, v)])
        ),
        "",
    )

    try:
        policy_facts = _mta_sts_policy(portfolio, provider_config, zone_file, ctx, findings)
    except InputError as exc:  # a policy file refused (a link, a FIFO): this zone only
        return ZoneResult(client.id, zone_file.domain, client.provider, error=str(exc)), []
    client_ctx = client_context(client, now)
    items: list[PlanItem] = []
    for change in octodns_plan.changes if octodns_plan else []:
        extra = policy_facts if (change.record.name, change.record._type) == STS_KEY else []
        items.append(_item(portfolio, client, zone_file, change, ctx, client_ctx, findings, extra))
    items.sort(key=lambda i: (i.name, i.type))
    return (
        ZoneResult(
            client.id,
            zone_file.domain,
            client.provider,
            findings=tuple(findings),
            budget_source=budget_source,
            octodns_plan=octodns_plan,
            octodns_target=target,
            tier=client.tier,
            owned_live=owned_rrsets(scope.existing),
            owned_desired=owned_rrsets(scope.desired),
            context=ctx,
        ),
        items,
    )


def owned_rrsets(zone: Zone) -> dict[RRsetKey, tuple[int, tuple[str, ...]]]:
    """(name, type) -> (ttl, the values the pipeline owns) of every owned RRset in `zone`; a TXT
    set holding no v=spf1 value is the client's and is left out."""
    out: dict[RRsetKey, tuple[int, tuple[str, ...]]] = {}
    for record in zone.records:
        kind = kind_of(record.name, record._type)
        if kind is None:
            continue
        values = tuple(v for v in raw_values(record) if is_owned_value(kind, v))
        if values:
            out[(record.name, record._type)] = (int(record.ttl), values)
    return out


def record_findings(ctx: ZoneContext) -> list[Finding]:
    """Every record rule over the desired owned RRsets of one zone: what `plan` reports and what
    `dmarcops validate` runs offline (with a context that asks no DNS)."""
    findings: list[Finding] = []
    for (name, rtype), values in sorted(ctx.desired.items()):
        kind = kind_of(name, rtype)
        if kind is None:
            continue
        if kind is RecordKind.SPF and not any(is_owned_value(kind, v) for v in values):
            continue  # a TXT set of the client's (tokens) that holds no SPF: not ours
        findings.extend(diff.validate(kind, name, rtype, values, ctx))
    return findings


def offline_findings(portfolio: Portfolio, zone_file: ZoneFile, now: datetime) -> list[Finding]:
    """The record findings of one zone file without DNS: SPF budgets from the sender catalog, no
    report-authorisation lookups (D7 says "could not check"), the MTA-STS policy file if any."""
    client = portfolio.clients[zone_file.client]
    costs = portfolio.senders.lookup_costs()
    ctx = ZoneContext(
        zone=zone_file.domain,
        desired=_rrsets(load_desired(zone_file)),
        today=now.astimezone(ZoneInfo(client.timezone)).date(),
        spf_budget=lambda record, fqdn: estimate_from_catalog(record, costs),
        pre_approved_sender=portfolio.senders.pre_approved_sender,
        dkim=client.dkim.get(zone_file.domain, DkimLifecycle()),
        regulated=client.regulated,
        delegations=client.ns_delegations.get(zone_file.domain, {}),
    )
    findings = record_findings(ctx)
    policy = desired_policy(zone_file)
    if policy is not None:
        findings.extend(mtasts.validate_policy(policy))
    return findings


STS_KEY = ("_mta-sts", "TXT")


def _sts_id(values: tuple[str, ...] | None) -> str | None:
    for value in values or ():
        try:
            return mtasts.parse(value).id
        except RecordSyntaxError:
            return None
    return None


def _mta_sts_policy(
    portfolio: Portfolio,
    provider: ProviderConfig,
    zone_file: ZoneFile,
    ctx: ZoneContext,
    findings: list[Finding],
) -> list[Fact]:
    """Facts of the MTA-STS policy file's change, carried by the `_mta-sts` TXT item.

    Only when the repository holds the desired policy (zones/<client>/<domain>.mta-sts.txt): a policy
    the client hosts without telling us is theirs.
    """
    desired = desired_policy(zone_file)
    if desired is None:
        return []
    findings.extend(mtasts.validate_policy(desired))
    live = live_policy(provider, portfolio.root, zone_file.domain)
    if live.error:
        findings.append(
            Finding(
                "M2",
                Severity.WARNING,
                f"the live MTA-STS policy at {live.source} could not be read ({live.error}); "
                "its change cannot be classified",
                "_mta-sts",
            )
        )
        return [fact("mta_sts.policy_unknown", None, live.source)]
    facts, policy_findings = mtasts.policy_facts(
        live.text, desired, _sts_id(ctx.live.get(STS_KEY)), _sts_id(ctx.desired.get(STS_KEY))
    )
    findings.extend(policy_findings)
    return facts


def _item(
    portfolio: Portfolio,
    client: ClientProfile,
    zone_file: ZoneFile,
    change: Any,
    ctx: ZoneContext,
    client_ctx: ClientContext,
    findings: list[Finding],
    extra_facts: list[Fact],
) -> PlanItem:
    record = change.record
    name, rtype = record.name, record._type
    kind = kind_of(name, rtype)
    assert kind is not None, "OwnedRecordsOnly lets only owned records through"
    existing = change.existing if isinstance(change, Update | Delete) else None
    new = change.new if isinstance(change, Update | Create) else None
    before = raw_values(existing) if existing is not None else ()
    after = raw_values(new) if new is not None else ()
    action = {Create: "create", Update: "update", Delete: "delete"}[type(change)]
    _refuse_foreign_removal(kind, before, after, f"{ctx.fqdn(name)} {rtype}")
    facts: list[Fact] = [*diff.facts(kind, name, rtype, before, after, ctx), *extra_facts]
    ttl_before = existing.ttl if existing is not None else None
    ttl_after = new.ttl if new is not None else None
    if ttl_before is not None and ttl_after is not None and ttl_before != ttl_after:
        facts.append(fact("ttl", str(ttl_before), str(ttl_after)))
    classification = classify(facts, client_ctx, portfolio.rules)
    return PlanItem(
        client=client.id,
        zone=zone_file.domain,
        name=name,
        type=rtype,
        action=action,
        kind=kind,
        before=before,
        after=after,
        ttl_before=ttl_before,
        ttl_after=ttl_after,
        facts=tuple(facts),
        findings=tuple(f for f in findings if f.name == name),
        risk=classification.risk,
        reasons=classification.reasons,
        rollback_hours=classification.rollback_hours,
    )


def select_zones(portfolio: Portfolio, options: PlanOptions) -> list[ZoneFile]:
    selected = list(portfolio.zone_files)
    if options.clients:
        selected = [z for z in selected if z.client in options.clients]
    if options.zones:
        wanted = {z.rstrip(".").lower() for z in options.zones}
        selected = [z for z in selected if z.domain in wanted]
    if options.changed_since is not None and not options.changed_since.everything:
        changed = set(options.changed_since.zones)
        selected = [z for z in selected if z.domain in changed]
    return selected


def make_plan(
    portfolio: Portfolio, options: PlanOptions | None = None, progress: Progress | None = None
) -> Plan:
    options = options or PlanOptions()
    now = (options.now or datetime.now(UTC)).astimezone(UTC)
    settings = portfolio.settings
    nameservers = options.nameservers or Nameservers(
        settings.nameservers, settings.port, settings.timeout
    )
    lookups = _Lookups(portfolio, nameservers)
    zone_files = select_zones(portfolio, options)
    workers = max(1, min(options.concurrency or settings.concurrency, len(zone_files) or 1))
    results: list[tuple[ZoneResult, list[PlanItem]]] = []
    if workers == 1:
        # One worker: plan in this thread. A pool of one only adds a hand-over per zone.
        for done, z in enumerate(zone_files, start=1):
            results.append(
                plan_zone(portfolio, z, now, lookups, options.broken_zones.get(z.domain))
            )
            if progress:
                progress(done, len(zone_files))
    else:
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="plan") as pool:
            futures = [
                pool.submit(
                    plan_zone, portfolio, z, now, lookups, options.broken_zones.get(z.domain)
                )
                for z in zone_files
            ]
            for done, future in enumerate(futures, start=1):
                results.append(future.result())
                if progress:
                    progress(done, len(futures))
    items = tuple(item for _, zone_items in results for item in zone_items)
    items += policy_items(portfolio)
    zones = tuple(zone for zone, _ in results)
    return Plan(generated_at=now, items=items, zones=zones)


POLICY_ZONE = "policy"  # the `zone` of a policy item: the policy/ tree, not a DNS zone


def policy_items(portfolio: Portfolio) -> tuple[PlanItem, ...]:
    """One item per file under policy/ edited since the seal (portfolio.pending_policy).

    Before and after are the file's SHA-256 (the content is in the repository), so the plan hash
    binds the exact edit; the risk is the policy's own `policy_change.risk` (high by default).
    Nothing in it is applied: a lead seals it (`dmarcops policy seal`), and until then the sealed
    policy judges every other item of the plan.
    """
    risk = portfolio.gate.policy_change_risk
    out = []
    for path, before, after in portfolio.pending_policy:
        action = "create" if not before else "delete" if not after else "update"
        out.append(
            PlanItem(
                client="",
                zone=POLICY_ZONE,
                name=path,
                type="FILE",
                action=action,
                kind=RecordKind.POLICY,
                before=(f"sha256:{before}",) if before else (),
                after=(f"sha256:{after}",) if after else (),
                ttl_before=None,
                ttl_after=None,
                facts=(),
                findings=(),
                risk=risk,
                reasons=(
                    f"{risk.label}: edits {path}, which judges changes: it counts once a lead "
                    "seals it (`dmarcops policy seal`); until then the sealed policy judges this "
                    "plan [policy-change]",
                ),
                rollback_hours=0,
            )
        )
    return tuple(out)
