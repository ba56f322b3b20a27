"""The pull request's one plan comment (also the job summary and the check run's text).

Read top down by a reviewer with little time:
1. two lines: the verdict, then what is missing (or that nothing is);
2. the changes as one compact table: domain, record, what changes, risk, the request covering it;
3. the approval checklist per request: what counts, what is still needed and why;
4. folded in `<details>`: the full change-record draft of every change (before, after, rationale,
   findings), which is long and which reviewers open when they need it.

GitHub refuses a comment body over 65,536 characters: the drafts are dropped first, then the table
and the checklist are cut at a line, and the comment says where the whole plan is (the run's
summary and its `plan.json` artifact). The marker and the two verdict lines always stay. Every
string that came from a user or from DNS is escaped (pipeline.text.markdown).
"""

from __future__ import annotations

from pipeline.classify.change_type import change_type
from pipeline.gate import approvals as gate
from pipeline.gate import decide
from pipeline.gate.coverage import Coverage, describe
from pipeline.gate.roster import Roster
from pipeline.github.reviews import short_sha
from pipeline.github.verdict import ROLES, PullRequestGate, RequestGate
from pipeline.load.portfolio import Portfolio
from pipeline.model import RecordKind
from pipeline.plan.items import ItemKey, PlanItem, RequestRef
from pipeline.render.markdown import MARKER, render_markdown
from pipeline.render.text import summary_line
from pipeline.text.markdown import code, escape

COMMENT_LIMIT = 65_536  # GitHub refuses a longer comment body
SUMMARY_LIMIT = 1_048_576  # $GITHUB_STEP_SUMMARY: 1 MiB a step
CHANGE_TEXT = 120  # characters of "what changes" in a table row; the draft has the rest

DRAFTS_SUMMARY = "Change-record drafts: before, after, rationale and findings of every change"


def _login(login: str | None) -> str:
    # "@" as an entity (escape): the comment names reviewers without notifying them on every push.
    return escape(f"@{login}" if login else "@ghost")


# --- 1. the verdict, in two lines ------------------------------------------------------------


def headline(gated: PullRequestGate) -> str:
    """The verdict, then what keeps it red (or what was approved)."""
    verdict = "passing" if gated.green else "failing"
    first = (
        f"### Approval gate: **{verdict}** · {code(gated.verdict_name)} on "
        f"{code(short_sha(gated.head_sha))}"
    )
    problems = gated.problems()
    if problems:
        second = "**Missing:** " + "; ".join(escape(p) for p in problems)
    else:
        second = "**Nothing missing:** " + escape(gated.description())
    return f"{first}\n{second}\n"


# --- 2. the changes, compact -------------------------------------------------------------------


def _what_changes(item: PlanItem) -> str:
    facts = "; ".join(str(f) for f in item.facts)
    kind = change_type(item.kind, item.facts)
    text = f"{item.action}: {kind}" + (f" ({facts})" if facts else "")
    if len(text) > CHANGE_TEXT:
        text = text[: CHANGE_TEXT - 1] + "…"
    return escape(text)


def changes_table(gated: PullRequestGate, requests: dict[ItemKey, RequestRef]) -> str:
    plan = gated.plan
    overall = plan.risk.label if plan.risk else "none"
    lines = [
        f"Plan {code(plan.hash[:16])}: risk **{overall}**; {escape(summary_line(plan))}",
        "",
    ]
    for zone in plan.failed_zones:
        lines.append(f"- **live DNS unreadable** for {escape(zone.zone)}: {escape(zone.error)}")
    if plan.failed_zones:
        lines.append("")
    if not plan.items:
        return "\n".join(lines)
    lines += [
        "| Domain | Record | What changes | Risk | Request |",
        "|---|---|---|---|---|",
    ]
    for item in plan.items:
        request = requests.get((item.zone, item.name, item.type))
        domain = "policy/" if item.kind is RecordKind.POLICY else item.zone
        record = (
            code(item.name)
            if item.kind is RecordKind.POLICY
            else f"{code(item.name or '@')} {escape(item.type)}"
        )
        lines.append(
            f"| {escape(domain)} | {record} | {_what_changes(item)} | **{item.risk.label}** | "
            f"{code(request.id) if request else '**none**'} |"
        )
    lines.append("")
    return "\n".join(lines)


# --- 3. the approval checklist -----------------------------------------------------------------


def _evidence_line(link: gate.ApprovalEvidence, gated: PullRequestGate, roster: Roster) -> str:
    if link.role == "author":
        return f"- [x] author: {escape(link.who)} ({escape(link.reference)})"
    if link.role == "peer review" and link.reference.startswith("GitHub review"):
        review = gated.reviews.review_of(link.who)
        analyst = roster.get(link.who)
        login = review.login if review else (analyst.github if analyst else link.who)
        rid = review.id if review else "?"
        return (
            f"- [x] peer review: {_login(login)} (review {rid} on "
            f"{code(short_sha(review.commit_id if review else None))})"
        )
    when = f" at {gate.utc_text(link.at)}" if link.at else ""
    # A signed approval's reference is its file; a client approval's, a message-id or ticket.
    reference = code(link.reference) if link.role == "peer review" else escape(link.reference)
    return f"- [x] {escape(link.role)}: {escape(link.who)}{when} ({reference})"


def _peer_review_needed(req: RequestGate, gated: PullRequestGate) -> str:
    return (
        f"- [ ] peer review: an approving review of the head commit "
        f"{code(short_sha(gated.head_sha))} by a roster analyst who is neither the request's "
        f"author ({escape(req.request.author)}) nor the pull request's author "
        f"({_login(gated.reviews.pr_author)}), or a signed `dmarcops approve --request "
        f"{req.request.id}` of plan {code(gated.plan.hash[:16])}"
    )


def _request_section(req: RequestGate, gated: PullRequestGate, roster: Roster) -> list[str]:
    count = len(req.items)
    state = "complete" if req.ok else "incomplete"
    lines = [
        f"#### {code(req.request.id)}: {req.risk.label} risk, {count} change(s), by "
        f"{escape(req.request.author)}: approval chain {state}",
        "",
    ]
    for role in decide.chain_labels(req.decision):
        present = [e for e in req.decision.evidence if e.role == role]
        missing = [m for m in req.decision.missing if m.startswith(f"{role}:")]
        lines += [_evidence_line(e, gated, roster) for e in present]
        if role == "peer review" and missing:
            lines.append(_peer_review_needed(req, gated))
        else:
            lines += [f"- [ ] {escape(m)}" for m in missing]
    other = [
        m for m in req.decision.missing if not m.startswith(" ") and m.split(":", 1)[0] not in ROLES
    ]
    lines += [f"- [ ] {escape(m)}" for m in other]
    if req.refusal:
        lines.append(f"- [ ] requested risk: {escape(req.refusal)}")
    lines += [f"  - does not count: {escape(i)}" for i in req.decision.ignored]
    lines.append("")
    return lines


def render_gate(gated: PullRequestGate, roster: Roster) -> str:
    """The approval checklist: files that judge, each request's chain, uncovered and doubly
    claimed changes, and the reviews that do not count (with why)."""
    lines: list[str] = []
    if gated.rule_changes:
        state = "approved by a lead" if gated.lead_approved else "needs a lead's approving review"
        lines += [
            f"#### Files that judge changes ({state})",
            "",
            "This pull request changes files dmarcops reads to judge. The gate judged it by the "
            "default branch's copies; a policy edit counts only once a lead seals it on main.",
            "",
        ]
        lines += [f"- {code(p)}" for p in gated.rule_changes]
        lines.append("")
    for req in gated.requests:
        lines += _request_section(req, gated, roster)
    if gated.coverage.uncovered:
        lines += ["#### Changes no change request covers", ""]
        lines += [
            f"- [ ] {code(describe(i))} (risk {i.risk.label}): file a request with "
            f"`dmarcops new`, or add the selector to an existing request's `covers:`"
            for i in gated.coverage.uncovered
        ]
        lines.append("")
    if gated.coverage.conflicts:
        lines += ["#### Changes claimed by more than one request", ""]
        lines += [
            f"- [ ] {code(describe(i))}: {', '.join(code(r.id) for r in rs)}"
            for i, rs in gated.coverage.conflicts
        ]
        lines.append("")
    if gated.reviews.discounted:
        lines += ["#### Reviews that do not count", ""]
        lines += [
            f"- {_login(d.review.login)}, review {d.review.id} on "
            f"{code(short_sha(d.review.commit_id))}: {escape(d.reason)}"
            for d in gated.reviews.discounted
        ]
        lines.append("")
    return "\n".join(lines)


# --- 4. the drafts, folded; and fitting it all in one comment ---------------------------------


def folded(title: str, markdown: str) -> str:
    """`markdown` inside a closed <details> block (blank lines around it, or GitHub shows the
    markdown as text)."""
    return f"<details>\n<summary>{title}</summary>\n\n{markdown.rstrip()}\n\n</details>\n"


def _size(text: str) -> int:
    return len(text.encode("utf-8"))


def _cut(text: str, budget: int) -> tuple[str, int]:
    """The whole lines of `text` that fit in `budget` UTF-8 bytes, and their size."""
    kept: list[str] = []
    used = 0
    for line in text.splitlines(keepends=True):
        size = _size(line)
        if used + size > budget:
            break
        kept.append(line)
        used += size
    return "".join(kept), used


def where_the_plan_is(details_url: str | None) -> str:
    place = (
        f"[the workflow run]({details_url})'s summary"
        if details_url
        else "the workflow run's summary"
    )
    return (
        f"_The whole plan is longer than one comment may be: its change-record drafts are in "
        f"{place} and its `plan.json` artifact._\n"
    )


def fit(
    head: str,
    table: str,
    checklist: str,
    drafts: str,
    limit: int,
    details_url: str | None = None,
) -> str:
    """The comment within `limit` UTF-8 bytes. The marker and `head` always stay; the folded drafts
    go first, then the checklist and the table are cut at a line (the checklist keeps its budget
    first: it says what is missing), and the comment says where the whole plan is."""
    top = f"{MARKER}\n{head}\n"
    whole = top + table + "\n" + checklist + "\n" + drafts
    if _size(whole) <= limit:
        return whole
    note = "\n" + where_the_plan_is(details_url) + "\n"
    without_drafts = top + table + "\n" + checklist + note
    if _size(without_drafts) <= limit:
        return without_drafts
    budget = limit - _size(top + note) - 1
    checklist_part, used = _cut(checklist, max(budget, 0))
    table_part, _ = _cut(table, max(budget - used, 0))
    return top + table_part + note + checklist_part


def request_refs(coverage: Coverage[PlanItem]) -> dict[ItemKey, RequestRef]:
    return {
        (item.zone, item.name, item.type): RequestRef(
            request.id, request.type.value, request.author, request.rationale
        )
        for item, request in coverage.covered
    }


def render_comment(
    gated: PullRequestGate,
    portfolio: Portfolio,
    roster: Roster,
    limit: int = COMMENT_LIMIT,
    details_url: str | None = None,
) -> str:
    names = {c.id: c.name for c in portfolio.clients.values()}
    refs = request_refs(gated.coverage)
    drafts = ""
    if gated.plan.items or gated.plan.failed_zones or any(z.findings for z in gated.plan.zones):
        markdown = render_markdown(gated.plan, names, refs).removeprefix(MARKER + "\n")
        drafts = folded(DRAFTS_SUMMARY, markdown)
    return fit(
        headline(gated),
        changes_table(gated, refs),
        render_gate(gated, roster),
        drafts,
        limit,
        details_url,
    )
