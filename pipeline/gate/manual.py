"""Changes that are not DNS record edits (issue 13 item 5): platform settings and DKIM switches.

A `platform` request changes a tenant-level setting at a mail platform (DKIM signing turned on in
Microsoft 365, a Google Workspace routing rule); a `dkim-switch` request makes the signing
provider sign with another, already published selector. Neither is a zone-file edit, so neither
has a DNS plan. They go through the same lifecycle all the same:

- the request (signed by its author) says what changes, the manual steps and the checklist;
- its **manual plan** is one item per covered domain, `before` and `after` being the setting's
  (or the selector's) old and new value, classified by the risk rules (platform-setting,
  dkim-switch-on/off-schedule, the freeze and regulated rules); its hash binds the approvals,
  exactly as a DNS plan's hash does, so an edit of the request needs new approvals;
- the one gate (pipeline.gate.decide) judges it at approval and at execution: the approval chain
  by risk, windows and freezes, the client's tier, and for a dkim-switch the new selector in live
  DNS (published, a valid key with p=), checked through the client's provider;
- "apply" records the execution (`dmarcops manual apply`, pipeline.apply.manual): the record
  holds the steps and a checklist, all pending; the executor does the steps and records each check
  (`dmarcops manual verify`); `close` seals it as for any record.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from pipeline.classify.rules import classify
from pipeline.errors import GateRefused, InputError
from pipeline.gate import decide
from pipeline.gate.approvals import Approval, SignedApprovalFiles, sign, write_approval
from pipeline.gate.identity import Signer
from pipeline.gate.requests import ChangeRequest, RequestType
from pipeline.gate.roster import Roster
from pipeline.live.dns import Nameservers
from pipeline.live.selector import check_selector
from pipeline.load.portfolio import Portfolio
from pipeline.model import Fact, RiskLevel, fact
from pipeline.plan.build import client_context

ITEM_TYPES = {RequestType.PLATFORM: "PLATFORM", RequestType.DKIM_SWITCH: "DKIM-SWITCH"}


@dataclass(frozen=True)
class ManualItem:
    """One domain's part of a manual change, shaped like a plan item for the one gate."""

    client: str
    zone: str
    name: str  # "" for a platform setting; "<selector>._domainkey" for a switch
    type: str  # PLATFORM | DKIM-SWITCH
    action: str
    before: tuple[str, ...]
    after: tuple[str, ...]
    facts: tuple[Fact, ...]
    risk: RiskLevel
    reasons: tuple[str, ...]
    rollback_hours: int

    @property
    def fqdn(self) -> str:
        return f"{self.name}.{self.zone}" if self.name else self.zone

    # A manual change writes no DNS record, so it has no TTL to restore (RecordItem reads these).
    @property
    def ttl_before(self) -> int | None:
        return None

    @property
    def ttl_after(self) -> int | None:
        return None


def request_details(request: ChangeRequest) -> dict[str, str]:
    return dict(request.details)


def manual_items(
    portfolio: Portfolio, request: ChangeRequest, now: datetime
) -> tuple[ManualItem, ...]:
    if not request.type.manual:
        raise InputError(f"{request.id} is a {request.type.value} request: it has a DNS plan")
    client = portfolio.clients[request.client]
    details = request_details(request)
    out = []
    for domain in request.domains:
        if request.type is RequestType.DKIM_SWITCH:
            old, new = details["current_selector"].strip(), details["new_selector"].strip()
            lifecycle = client.dkim.get(domain)
            on_schedule = lifecycle is not None and lifecycle.scheduled_for(new) is not None
            facts: tuple[Fact, ...] = (
                fact("dkim.active_selector", old, new, on_schedule=on_schedule),
            )
            name, before, after = f"{new}._domainkey", (old,), (new,)
        else:
            old, new = details["current_value"], details["new_value"]
            facts = (
                fact(
                    "platform.setting",
                    old,
                    new,
                    platform=details["platform"],
                    setting=details["setting"],
                ),
            )
            name, before, after = (
                "",
                (f"{details['setting']}: {old}",),
                (f"{details['setting']}: {new}",),
            )
        classification = classify(facts, client_context(client, now), portfolio.rules)
        out.append(
            ManualItem(
                client=client.id,
                zone=domain,
                name=name,
                type=ITEM_TYPES[request.type],
                action="update",
                before=before,
                after=after,
                facts=facts,
                risk=classification.risk,
                reasons=classification.reasons,
                rollback_hours=classification.rollback_hours,
            )
        )
    return tuple(out)


def manual_plan_hash(request: ChangeRequest, items: Sequence[ManualItem]) -> str:
    """What approvals of a manual change sign as their plan hash: the request's content and its
    items, normalised as a DNS plan's items are."""
    normalised = {
        "manual": request.type.value,
        "request_id": request.id,
        "request_sha256": request.sha256,
        "items": sorted([i.zone, i.name, i.type, sorted(i.before), sorted(i.after)] for i in items),
    }
    canonical = json.dumps(normalised, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(canonical.encode()).hexdigest()


def selector_checks(
    portfolio: Portfolio, request: ChangeRequest, nameservers: Nameservers | None
) -> dict[tuple[str, str], tuple[bool, str]]:
    """For a dkim-switch: the new selector of each domain, looked up in live DNS now."""
    if request.type is not RequestType.DKIM_SWITCH:
        return {}
    selector = request_details(request)["new_selector"].strip()
    out = {}
    for domain in request.domains:
        found = check_selector(portfolio, request.client, domain, selector, nameservers)
        out[(domain, selector)] = (found.valid, found.detail)
    return out


@dataclass(frozen=True)
class ManualPlan:
    request: ChangeRequest
    items: tuple[ManualItem, ...]
    plan_hash: str
    checks: dict[tuple[str, str], tuple[bool, str]]


def manual_plan(
    portfolio: Portfolio, request: ChangeRequest, now: datetime, nameservers: Nameservers | None
) -> ManualPlan:
    items = manual_items(portfolio, request, now)
    return ManualPlan(
        request,
        items,
        manual_plan_hash(request, items),
        selector_checks(portfolio, request, nameservers),
    )


def judge(
    portfolio: Portfolio,
    plan: ManualPlan,
    stage: decide.Stage,
    now: datetime,
    roster: Roster,
    approvals: Sequence[Approval],
    **extra: object,
) -> decide.Decision:
    """The one gate, for a manual change."""
    return decide.decide(
        plan.request,
        plan.items,
        approvals,
        decide.context(
            portfolio,
            plan.request.client,
            stage,
            now,
            plan.plan_hash,
            roster,
            selector_checks=plan.checks,
            **extra,
        ),
    )


def approve(
    portfolio: Portfolio,
    plan: ManualPlan,
    signer: Signer,
    now: datetime,
    roster: Roster,
    simulated: bool = False,
) -> tuple[Approval, decide.Decision]:
    """Sign `signer`'s approval of the manual plan, if the one gate lets them; then the decision
    with it (what is still missing)."""
    request = plan.request
    history = SignedApprovalFiles(portfolio.root).history(request.id)
    asked = judge(
        portfolio, plan, decide.Stage.APPROVE, now, roster, history, approver=signer.analyst
    )
    refusals = decide.refused(asked)
    if refusals:
        raise GateRefused(
            f"{signer.analyst} may not approve {request.id} ({asked.risk.label} risk): "
            + "; ".join(str(p) for p in refusals),
            file=request.file,
        )
    approval = sign(
        signer, plan.plan_hash, request.id, signer.analyst, now, request.sha256, simulated=simulated
    )
    write_approval(portfolio.root, approval)
    after = judge(portfolio, plan, decide.Stage.REVIEW, now, roster, [*history, approval])
    return approval, after
