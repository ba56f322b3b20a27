"""What a change record's item is made from (RecordItem.from_plan_item in record_parts.py): a plan
item, a manual change's item or an adopted drift item, each shaped alike. A Protocol, so that the
records layer reads these three without importing the plan, gate and drift types."""

from __future__ import annotations

from typing import Protocol

from pipeline.model import Fact, RiskLevel


class PlannedTransition(Protocol):
    """What a record item is made from: a plan item, a manual change's item, an adopted drift
    item. Only the fields RecordItem.from_plan_item reads."""

    @property
    def zone(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def type(self) -> str: ...
    @property
    def action(self) -> str: ...
    @property
    def before(self) -> tuple[str, ...]: ...
    @property
    def after(self) -> tuple[str, ...]: ...
    @property
    def risk(self) -> RiskLevel: ...
    @property
    def facts(self) -> tuple[Fact, ...]: ...
    @property
    def reasons(self) -> tuple[str, ...]: ...
    @property
    def ttl_before(self) -> int | None: ...
    @property
    def ttl_after(self) -> int | None: ...
