"""`dmarcops github check-setup`: is the default branch protected the way the gate needs?

The gate's verdict is only as strong as what GitHub requires before a merge. This reads what is in
force on the default branch through the REST API, from both places GitHub keeps it (rulesets,
repository and organisation, and classic branch protection), takes the strongest setting of each,
and names every setting that is missing or weaker than docs/github.md asks:

- the check `dmarcops/gate` is required, from the GitHub Actions app only (integration id 15368,
  or `--app-id`), so a status or check posted with another token does not satisfy it;
- a pull request is required, with at least one approving review, review from code owners,
  stale approvals dismissed on push and the last push approved by someone else;
- force pushes blocked, deletion blocked, linear history required;
- nobody bypasses: no ruleset bypass actor (deploy keys excepted, for the records push), classic
  protection enforced for administrators, no pull-request bypass allowances;
- the deployment environments that hold the secrets: `production` (apply and records-push
  credentials) and `gate` (the GitHub App's key, the read-only transfer key) each deploy from the
  default branch only, so a workflow on another branch cannot read them. (Required reviewers on
  `production` are the team's choice, not checked: they would hold every apply, whatever its
  risk; the approval chain the gate re-verifies at apply is the control. docs/github.md.)
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from pipeline.github.api import GitHubClient
from pipeline.github.verdict import CHECK_NAME

# The environments the workflows name (.github/workflows): production for apply.yml and
# scheduled.yml's credentials, gate for gate.yml's.
PRODUCTION = "production"
GATE_ENVIRONMENT = "gate"
GITHUB_ACTIONS_APP_ID = 15368  # GitHub's own app id for check runs made with GITHUB_TOKEN
# The records push after an apply goes through a deploy key on the bypass list
# (docs/github.md, "How change records reach main"); any other bypass actor is a way around the gate.
ALLOWED_BYPASS = frozenset({"DeployKey"})


@dataclass(frozen=True)
class Finding:
    setting: str
    ok: bool
    detail: str


@dataclass
class _Effective:
    """The strongest value of each setting over every rule in force."""

    checks: dict[str, set[int | None]] = field(default_factory=dict)  # context -> source apps
    strict: bool = False
    reviews: int = 0
    code_owners: bool = False
    dismiss_stale: bool = False
    last_push: bool = False
    no_force_push: bool = False
    no_deletion: bool = False
    linear: bool = False
    bypass: list[str] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _add_ruleset_rules(found: _Effective, rules: Iterable[dict[str, Any]]) -> None:
    for rule in rules:
        kind = rule.get("type")
        raw = rule.get("parameters")
        params: dict[str, Any] = raw if isinstance(raw, dict) else {}
        if kind == "required_status_checks":
            for check in params.get("required_status_checks") or []:
                if isinstance(check, dict) and isinstance(check.get("context"), str):
                    apps = found.checks.setdefault(check["context"], set())
                    apps.add(_int(check.get("integration_id")))
            found.strict |= bool(params.get("strict_required_status_checks_policy"))
        elif kind == "pull_request":
            found.reviews = max(
                found.reviews, _int(params.get("required_approving_review_count")) or 0
            )
            found.code_owners |= bool(params.get("require_code_owner_review"))
            found.dismiss_stale |= bool(params.get("dismiss_stale_reviews_on_push"))
            found.last_push |= bool(params.get("require_last_push_approval"))
        elif kind == "non_fast_forward":
            found.no_force_push = True
        elif kind == "deletion":
            found.no_deletion = True
        elif kind == "required_linear_history":
            found.linear = True


def _enabled(protection: dict[str, Any], key: str) -> bool:
    value = protection.get(key)
    return isinstance(value, dict) and bool(value.get("enabled"))


def _add_classic(found: _Effective, protection: dict[str, Any]) -> None:
    found.sources.append("classic branch protection")
    checks = protection.get("required_status_checks")
    if isinstance(checks, dict):
        found.strict |= bool(checks.get("strict"))
        listed = checks.get("checks")
        if isinstance(listed, list):
            for check in listed:
                if isinstance(check, dict) and isinstance(check.get("context"), str):
                    found.checks.setdefault(check["context"], set()).add(_int(check.get("app_id")))
        for context in checks.get("contexts") or []:
            if isinstance(context, str) and not isinstance(listed, list):
                found.checks.setdefault(context, set()).add(None)  # contexts alone: any source
    reviews = protection.get("required_pull_request_reviews")
    if isinstance(reviews, dict):
        found.reviews = max(
            found.reviews, _int(reviews.get("required_approving_review_count")) or 0
        )
        found.code_owners |= bool(reviews.get("require_code_owner_reviews"))
        found.dismiss_stale |= bool(reviews.get("dismiss_stale_reviews"))
        found.last_push |= bool(reviews.get("require_last_push_approval"))
        allowances = reviews.get("bypass_pull_request_allowances")
        if isinstance(allowances, dict):
            for kind in ("users", "teams", "apps"):
                for who in allowances.get(kind) or []:
                    name = who.get("login") or who.get("slug") if isinstance(who, dict) else None
                    found.bypass.append(f"classic protection lets {kind[:-1]} {name} skip reviews")
    # allow_force_pushes / allow_deletions enabled means allowed: absent or disabled blocks them.
    found.no_force_push |= not _enabled(protection, "allow_force_pushes")
    found.no_deletion |= not _enabled(protection, "allow_deletions")
    found.linear |= _enabled(protection, "required_linear_history")
    if not _enabled(protection, "enforce_admins"):
        found.bypass.append("classic protection is not enforced for administrators")


def effective_settings(api: GitHubClient, branch: str) -> _Effective:
    found = _Effective()
    rules = api.branch_rules(branch)
    _add_ruleset_rules(found, rules)
    in_force = sorted({i for r in rules if (i := _int(r.get("ruleset_id"))) is not None})
    for ruleset_id in in_force:
        ruleset = api.ruleset(ruleset_id)
        found.sources.append(f"ruleset {ruleset.get('name', ruleset_id)!s} ({ruleset_id})")
        if ruleset.get("enforcement") != "active":
            continue  # GET rules/branches lists active rules only; belt and braces
        if not isinstance(ruleset.get("bypass_actors"), list):
            # GitHub leaves the list out for a token that may not edit the ruleset: unknown is
            # not "nobody".
            found.bypass.append(
                f"ruleset {ruleset_id}: its bypass list is not visible to this token (read it "
                "with an administrator's token)"
            )
            continue
        for actor in ruleset["bypass_actors"]:
            if not isinstance(actor, dict):
                continue
            kind = str(actor.get("actor_type") or "?")
            if kind in ALLOWED_BYPASS:
                continue
            found.bypass.append(
                f"ruleset {ruleset_id} lets {kind} {actor.get('actor_id')} bypass "
                f"({actor.get('bypass_mode', 'always')})"
            )
    protection = api.branch_protection(branch)
    if protection is not None:
        _add_classic(found, protection)
    return found


def _branch_only(api: GitHubClient, name: str, env: dict[str, Any], branch: str) -> Finding:
    """Deployments (and so the environment's secrets) from `branch` only."""
    setting = f"environment {name}: deploys from {branch} only"
    policy = env.get("deployment_branch_policy")
    if not isinstance(policy, dict):
        return Finding(setting, False, "any branch may deploy: set a deployment branch policy")
    if policy.get("protected_branches") is True:
        return Finding(
            setting,
            False,
            "any protected branch may deploy: use a custom policy naming the default branch",
        )
    if policy.get("custom_branch_policies") is not True:
        return Finding(setting, False, "no deployment branch policy in force")
    names = sorted(
        f"{p.get('type', 'branch')} {p.get('name')}" for p in api.deployment_branch_policies(name)
    )
    if names == [f"branch {branch}"]:
        return Finding(setting, True, f"branch policy: {branch}")
    shown = ", ".join(names) or "nothing"
    return Finding(setting, False, f"deploys from {shown}: allow the branch {branch} only")


def check_environments(api: GitHubClient, branch: str) -> list[Finding]:
    findings: list[Finding] = []
    for name in (PRODUCTION, GATE_ENVIRONMENT):
        env = api.environment(name)
        if env is None:
            findings.append(
                Finding(
                    f"environment {name}", False, "missing: create it (Settings > Environments)"
                )
            )
            continue
        findings.append(_branch_only(api, name, env, branch))
    return findings


def check_setup(
    api: GitHubClient,
    branch: str,
    check: str = CHECK_NAME,
    app_id: int = GITHUB_ACTIONS_APP_ID,
    default_branch: str | None = None,
) -> tuple[list[Finding], list[str]]:
    """Every setting the gate depends on, judged; and where the settings were read from."""
    found = effective_settings(api, branch)
    apps = found.checks.get(check)
    if apps is None:
        required = Finding(f"required check {check}", False, "not required on " + branch)
    elif apps == {app_id}:
        required = Finding(f"required check {check}", True, f"from app {app_id} only")
    else:
        shown = ", ".join("any source" if a is None else f"app {a}" for a in sorted(apps, key=str))
        required = Finding(
            f"required check {check}",
            False,
            f"accepted from {shown}: pin it to app {app_id} so a status or check posted with "
            "another token does not count",
        )
    findings = [
        required,
        Finding("required reviews", found.reviews >= 1, f"{found.reviews} approving review(s)"),
        Finding(
            "review from code owners",
            found.code_owners,
            "required" if found.code_owners else "not required",
        ),
        Finding(
            "dismiss stale approvals on push",
            found.dismiss_stale,
            "on" if found.dismiss_stale else "off",
        ),
        Finding(
            "approval of the last push",
            found.last_push,
            "required" if found.last_push else "not required",
        ),
        Finding(
            "no force pushes", found.no_force_push, "blocked" if found.no_force_push else "allowed"
        ),
        Finding(
            "no branch deletion", found.no_deletion, "blocked" if found.no_deletion else "allowed"
        ),
        Finding("linear history", found.linear, "required" if found.linear else "not required"),
        Finding(
            "no bypass",
            not found.bypass,
            "; ".join(found.bypass) if found.bypass else "nobody bypasses (deploy keys aside)",
        ),
        # The workflows that use the environments run on the default branch, whichever branch
        # --branch names.
        *check_environments(api, default_branch or branch),
    ]
    return findings, found.sources
