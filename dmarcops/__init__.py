"""dmarcops as a library: `import dmarcops` gives pipeline.api's functions and types (docs/api.md).

import dmarcops

report = dmarcops.plan("path/to/repo")
for item in dmarcops.classify(report):
    print(item.zone, item.name, item.type, item.change_type, item.risk.label)
print(dmarcops.render(report, "markdown"))
"""

from pipeline import api
from pipeline.api import (
    AuditProblem,
    AuditReport,
    ChangedZones,
    Classification,
    Finding,
    InputError,
    Plan,
    PlanItem,
    PlanReport,
    Portfolio,
    RiskLevel,
    Severity,
    ValidationFinding,
    ValidationReport,
    ZoneResult,
    changed_zones,
    classify,
    load_portfolio,
    plan,
    render,
    validate,
    verify_audit,
)

__all__ = [
    "AuditProblem",
    "AuditReport",
    "ChangedZones",
    "Classification",
    "Finding",
    "InputError",
    "Plan",
    "PlanItem",
    "PlanReport",
    "Portfolio",
    "RiskLevel",
    "Severity",
    "ValidationFinding",
    "ValidationReport",
    "ZoneResult",
    "api",
    "changed_zones",
    "classify",
    "load_portfolio",
    "plan",
    "render",
    "validate",
    "verify_audit",
]
