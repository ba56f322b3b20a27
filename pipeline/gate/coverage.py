"""Which change request covers each plan item: exactly one, of a kind its ticket template allows.

Every plan item must be covered by exactly one request (`cover`); a template routes a change
through its risk path, so an item of another kind under it is a misfit (`template_problem`); a
request may ask for a higher risk than computed, never a lower one (`check_requested_risk`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from pipeline.diff.kinds import kind_of
from pipeline.errors import GateRefused
from pipeline.gate.requests import ChangeRequest
from pipeline.load.request_files import CoverableItem
from pipeline.model import RiskLevel

ItemT = TypeVar("ItemT", bound=CoverableItem)


def describe(item: CoverableItem) -> str:
    """The item as the selector that covers exactly it, ready to paste into `covers:`."""
    return f"{item.zone} {item.name or '@'} {item.type}"


def _selector(text: str) -> str:
    # "s2026", "s2026._domainkey" or "s2026 (RSA 2048)": the first label of the first word.
    words = text.strip().lower().split()
    return words[0].split(".")[0] if words else ""


def template_problem(request: ChangeRequest, item: CoverableItem) -> str | None:
    """Why `item` does not belong under `request`'s ticket template (None: it does). A template
    routes a change through its risk path, so a change of another kind under it would borrow that
    path: a DMARC change filed as a "routine" DKIM rotation."""
    template = request.template
    if template is None or template.may_change is None:
        return None
    allowed = template.may_change
    kind = kind_of(item.name, item.type)
    if kind not in allowed:
        names = ", ".join(sorted(k.value for k in allowed))
        return (
            f"a {request.type.value} request may change only {names} records, and "
            f"{describe(item)} is {kind.value if kind else 'not an owned record'}"
        )
    if template.selectors_from:
        details = dict(request.details)
        selectors = {_selector(details.get(k, "")) for k in template.selectors_from}
        selector = item.name.lower().split(".")[0]
        if selector not in selectors:
            named = " to ".join(repr(details.get(k)) for k in template.selectors_from)
            return f"{describe(item)} is selector {selector!r}, but the rotation is from {named}"
    return None


@dataclass(frozen=True)
class Coverage(Generic[ItemT]):
    covered: tuple[tuple[ItemT, ChangeRequest], ...]
    uncovered: tuple[ItemT, ...]
    conflicts: tuple[tuple[ItemT, tuple[ChangeRequest, ...]], ...]
    # Covered items their request's ticket template does not allow, with the reason.
    misfits: tuple[tuple[ItemT, ChangeRequest, str], ...] = ()

    @property
    def complete(self) -> bool:
        return not self.uncovered and not self.conflicts and not self.misfits

    @property
    def requests(self) -> tuple[ChangeRequest, ...]:
        """The requests that cover at least one item, in plan order."""
        seen: dict[str, ChangeRequest] = {}
        for _, request in self.covered:
            seen.setdefault(request.id, request)
        return tuple(seen.values())

    def items_of(self, request_id: str) -> tuple[ItemT, ...]:
        return tuple(item for item, request in self.covered if request.id == request_id)

    def risk_of(self, request_id: str) -> RiskLevel | None:
        return max((item.risk for item in self.items_of(request_id)), default=None)

    def check(self) -> None:
        """GateRefused (exit 2) unless every item has exactly one request."""
        if self.complete:
            return
        lines: list[str] = []
        hints: list[str] = []
        if self.uncovered:
            lines.append(
                'every change needs a change request (seed: the "I\'ll just push it" change); '
                f"{len(self.uncovered)} plan item(s) covered by none:"
            )
            lines += [
                f"  {describe(i)}  (client {i.client}, risk {i.risk.label})" for i in self.uncovered
            ]
            example = self.uncovered[0]
            hints.append(
                f"File one: dmarcops new TYPE --client {example.client} "
                f"--cover '{describe(example)}' --author YOUR-ID, replace its <<...>> prompts and "
                "commit it under changes/requests/ (or add the selector to the `covers:` of an "
                "existing request for the same change)."
            )
        if self.conflicts:
            lines.append(
                f"{len(self.conflicts)} plan item(s) claimed by more than one change request:"
            )
            for item, requests in self.conflicts:
                where = ", ".join(f"{r.id} ({_shown(r)})" for r in requests)
                lines.append(f"  {describe(item)}: {where}")
            hints.append(
                "A change has exactly one request: narrow the `covers:` selectors "
                "(ZONE NAME TYPE) so that only one request matches each item."
            )
        if self.misfits:
            lines.append(
                f"{len(self.misfits)} plan item(s) outside their request's ticket template:"
            )
            lines += [f"  {r.id} ({_shown(r)}): {reason}" for _, r, reason in self.misfits]
            hints.append(
                "File the change under a request of the right type (`dmarcops new TYPE`), or "
                "`type: other` when no template fits; docs/evidence.md lists what each allows."
            )
        raise GateRefused("\n".join(lines), hint="\n  ".join(hints))


def _shown(request: ChangeRequest) -> str:
    line = request.line_of("covers")
    return f"{request.file.name}:{line}" if line else request.file.name


def cover(items: Sequence[ItemT], requests: Sequence[ChangeRequest]) -> Coverage[ItemT]:
    """Map each plan item to the one request whose `covers:` matches it."""
    covered: list[tuple[ItemT, ChangeRequest]] = []
    uncovered: list[ItemT] = []
    conflicts: list[tuple[ItemT, tuple[ChangeRequest, ...]]] = []
    misfits: list[tuple[ItemT, ChangeRequest, str]] = []
    # A request covers only its own client's items (covers_item): matching each item against
    # its client's requests alone is the same result, without items x requests (2,500 x 2,500
    # at 10,000 domains).
    by_client: dict[str, list[ChangeRequest]] = {}
    for request in requests:
        by_client.setdefault(request.client, []).append(request)
    for item in items:
        if str(getattr(getattr(item, "kind", None), "value", getattr(item, "kind", ""))) == (
            "policy"
        ):
            # A pending policy edit is not a client's change: no request covers it, a lead's
            # seal does (pipeline.records.policy_of_record); it is never applied to DNS.
            continue
        claims = tuple(r for r in by_client.get(item.client, ()) if r.covers_item(item))
        if not claims:
            uncovered.append(item)
        elif len(claims) > 1:
            conflicts.append((item, claims))
        else:
            covered.append((item, claims[0]))
            problem = template_problem(claims[0], item)
            if problem is not None:
                misfits.append((item, claims[0], problem))
    return Coverage(tuple(covered), tuple(uncovered), tuple(conflicts), tuple(misfits))


def check_requested_risk(request: ChangeRequest, computed: RiskLevel) -> RiskLevel:
    """The risk the request goes through: the computed level, or the requested one when higher.

    A requested level below the computed one is refused (seed: the "this is routine"
    misclassification, "Confidence isn't a substitute for peer review").
    """
    requested = request.requested_risk
    if requested is None:
        return computed
    if requested < computed:
        raise GateRefused(
            f"{request.id} asks for {requested.label} risk, but the risk rules classify its "
            f"changes {computed.label}",
            file=request.file,
            line=request.line_of("requested_risk"),
            hint='Confidence isn\'t a substitute for peer review (seed: the "this is routine" '
            f"misclassification). Set requested_risk: {computed.label} or remove it; if a rule is "
            "wrong, change it in policy/risk-rules.yaml in its own reviewed change.",
        )
    return max(requested, computed)
