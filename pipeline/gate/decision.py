"""What the one gate (pipeline.gate.decide) is asked and what it answers, as typed values.

The question: a `GateContext` (stage, time, plan hash, roster, the client and its policy) and
the `GateItem`s of a request. The answer: `Allowed`, or `Denied` with its problems, each
`Missing` (a sign-off not given yet) or `Refused` (a rule that waiting will not satisfy).
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Protocol

from pipeline.gate.approvals import ApprovalEvidence
from pipeline.gate.evidence import DnsFunc
from pipeline.gate.requests import ChangeRequest
from pipeline.gate.roster import Roster
from pipeline.gate.windows import Window
from pipeline.load.gate_policy import GatePolicy, Role
from pipeline.load.portfolio import ClientProfile, Portfolio
from pipeline.load.request_files import CoverableItem
from pipeline.model import RiskLevel

# The rule codes of time refusals: the merge path queues a change refused only for these.
TIME_RULES = frozenset({"outside-window", "freeze", "freeze-rollback", "weekend", "unstaffed"})
POLICY_KIND = "policy"
DKIM_SWITCH = "dkim-switch"


class Stage(enum.Enum):
    """What is being asked. Each stage judges what it can know at that point."""

    PLAN = "plan"  # is the change requested, at a risk no lower than computed?
    APPROVE = "approve"  # may this person approve it; what is still missing?
    REVIEW = "review"  # the pull-request gate: the whole approval chain, not the clock
    APPLY = "apply"  # everything, at the system clock's now


@dataclass(frozen=True)
class Missing:
    role: str  # author | peer | lead | client
    reason: str

    def __str__(self) -> str:
        return f"{self.role}: {self.reason}"


@dataclass(frozen=True)
class Refused:
    rule: str  # a stable code, documented in docs/threat-model.md
    reason: str

    def __str__(self) -> str:
        return f"{self.reason} [{self.rule}]"


Problem = Missing | Refused

# How each link of the chain is named to people (PR checklist, refusals, records).
ROLE_LABELS = ("author", "peer review", "lead", "client approval")
_LABEL = {
    Role.AUTHOR: "author",
    Role.PEER: "peer review",
    Role.LEAD: "lead",
    Role.CLIENT: "client approval",
}


class GateItem(CoverableItem, Protocol):
    """What the gate needs of a change: what coverage needs, plus its before and after values."""

    @property
    def before(self) -> tuple[str, ...]: ...
    @property
    def after(self) -> tuple[str, ...]: ...


@dataclass(frozen=True)
class Emergency:
    """An emergency as declared: what is breaking now, and the incident, when one is declared."""

    reason: str
    incident: str = ""


@dataclass(frozen=True)
class GateContext:
    stage: Stage
    now: datetime  # UTC, from pipeline.clock: the system clock unless a sandbox rehearsal
    plan_hash: str
    roster: Roster
    client: ClientProfile
    policy: GatePolicy
    rollback_by_risk: Mapping[RiskLevel, int]
    executor: str | None = None  # the roster id whose key signs the apply
    approver: str | None = None  # APPROVE: the roster id whose key signs the approval
    emergency: Emergency | None = None
    # Does this item put back a before-state an earlier change record holds? (emergency restore)
    restores: Callable[[GateItem], bool] = lambda item: False
    # Answers the DKIM key lookups of a client approval's stored e-mail (None: system resolvers).
    dnsfunc: DnsFunc | None = None
    # A dkim-switch request's new selector as checked in live DNS by the caller
    # (pipeline.live.selector): (domain, selector) -> (published and valid?, what was found).
    selector_checks: Mapping[tuple[str, str], tuple[bool, str]] = field(default_factory=dict)


@dataclass(frozen=True)
class Judgement:
    request: ChangeRequest
    risk: RiskLevel
    items: tuple[GateItem, ...]
    chain: tuple[Role, ...]  # the sign-offs this change needs
    evidence: tuple[ApprovalEvidence, ...]  # the links that count
    ignored: tuple[str, ...]  # each offered approval that does not count, with why
    rollback_hours: int
    change_window: Window | None
    freeze_exception: str  # "" unless a freeze was passed by exception, then what and why
    # The on-call owner whose cover passed the staffed-hours and weekend rules (the Friday
    # rule), "" when none was needed: the record names them.
    on_call: str
    emergency: Emergency | None

    @property
    def allowed(self) -> bool:
        return not self.problems

    @property
    def problems(self) -> tuple[Problem, ...]:
        return ()

    # The shapes the renderers print: "role: reason" per missing link, then refusals.
    @property
    def ok(self) -> bool:
        return self.allowed

    @property
    def missing(self) -> tuple[str, ...]:
        return tuple(str(p) for p in self.problems)


@dataclass(frozen=True)
class Allowed(Judgement):
    pass


@dataclass(frozen=True)
class Denied(Judgement):
    reasons: tuple[Problem, ...]

    @property
    def problems(self) -> tuple[Problem, ...]:
        return self.reasons


Decision = Allowed | Denied


def missing(decision: Decision) -> list[Missing]:
    return [p for p in decision.problems if isinstance(p, Missing)]


def refused(decision: Decision) -> list[Refused]:
    return [p for p in decision.problems if isinstance(p, Refused)]


def chain_labels(decision: Decision) -> tuple[str, ...]:
    """The sign-offs the decision's change needs, in chain order, as people call them."""
    return tuple(_LABEL[r] for r in decision.chain)


def only_waiting_for_time(decision: Decision) -> bool:
    """Denied only by the clock (window, freeze, weekend): the merge path may queue it."""
    return not decision.allowed and all(
        isinstance(p, Refused) and p.rule in TIME_RULES for p in decision.problems
    )


def is_policy_item(item: GateItem) -> bool:
    return str(getattr(getattr(item, "kind", None), "value", "")) == POLICY_KIND


def rollback_hours(
    rollback_by_risk: Mapping[RiskLevel, int], risk: RiskLevel, items: Sequence[GateItem]
) -> int:
    """The longest rollback window any item asks for (p=reject: 72 h), never below its risk's."""
    return max(
        [rollback_by_risk[risk], *(int(getattr(i, "rollback_hours", 0) or 0) for i in items)]
    )


def repo_root(request: ChangeRequest) -> Path:
    # changes/requests/<id>.yaml: the repository is three levels up.
    return request.file.parent.parent.parent


def rollback_by_risk(portfolio: Portfolio, client_id: str) -> Mapping[RiskLevel, int]:
    """The rollback window per risk for this client: the portfolio's (policy/risk-rules.yaml),
    lengthened where the client's calendar says so."""
    return {
        **portfolio.rules.rollback_hours,
        **portfolio.clients[client_id].calendar.rollback_hours,
    }


def explain(decision: Decision) -> str:
    """One line per problem, for refusals."""
    head = f"{decision.request.id} ({decision.risk.label} risk)"
    return head + ": " + "; ".join(str(p) for p in decision.problems)
