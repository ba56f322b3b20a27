"""The seed's change types (its ticket templates), derived from a change's facts for the record draft."""

from __future__ import annotations

from collections.abc import Sequence

from pipeline.model import Fact, RecordKind

NEW_SENDER = "New sender"
POLICY_PROGRESSION = "Policy progression"
DKIM_ROTATION = "DKIM rotation"
OTHER = "Other"
NS_DELEGATION = "NS delegation"


def change_type(kind: RecordKind, facts: Sequence[Fact]) -> str:
    codes = {f.code for f in facts}
    if kind is RecordKind.DMARC and codes & {"dmarc.p", "dmarc.sp", "dmarc.np", "dmarc.pct"}:
        return POLICY_PROGRESSION
    if kind is RecordKind.SPF and any(f.attrs.get("sender") and f.change == "added" for f in facts):
        return NEW_SENDER
    if kind is RecordKind.DKIM:
        return DKIM_ROTATION
    if kind is RecordKind.NS_DELEGATION:
        return NS_DELEGATION
    return OTHER
