"""Which owned record kind a (name, type) is: the pipeline's scope (README: "Zone files hold only what the pipeline owns").

Names are relative to the zone ("" is the apex). Everything for which `kind_of` answers None belongs
to the client and is never created, changed or deleted by the pipeline.
"""

from __future__ import annotations

from pipeline.model import RecordKind

# The host that serves the MTA-STS policy file (RFC 8461 3.3) may be an address or an alias.
MTA_STS_HOST_TYPES = frozenset({"A", "AAAA", "CNAME"})


def _labels(name: str) -> list[str]:
    return name.lower().split(".") if name else []


def kind_of(name: str, rtype: str) -> RecordKind | None:
    labels = _labels(name)
    rtype = rtype.upper()
    if rtype == "NS":
        # A delegation of a sub-domain (a zone cut below the apex). The apex NS set is the zone's
        # own and is never owned: it is copied from live DNS untouched (pipeline.live.scope).
        return RecordKind.NS_DELEGATION if labels else None
    if "_report" in labels and labels[-1:] != ["_report"]:
        # <domain>._report._dmarc[.sub]: a DMARC report-destination authorisation (RFC 7489 7.1)
        i = labels.index("_report")
        if i > 0 and labels[i + 1 : i + 2] == ["_dmarc"] and rtype == "TXT":
            return RecordKind.REPORT_AUTH
        return None
    if labels[:1] == ["_dmarc"]:
        return RecordKind.DMARC if rtype == "TXT" else None
    if len(labels) >= 2 and labels[1] == "_domainkey" and labels[0]:
        return RecordKind.DKIM if rtype in ("TXT", "CNAME") else None
    if len(labels) >= 2 and labels[1] == "_bimi" and labels[0]:
        return RecordKind.BIMI if rtype == "TXT" else None
    if labels[:1] == ["_mta-sts"]:
        return RecordKind.MTA_STS if rtype == "TXT" else None
    if labels[:1] == ["mta-sts"]:
        return RecordKind.MTA_STS_HOST if rtype in MTA_STS_HOST_TYPES else None
    if labels[:2] == ["_smtp", "_tls"]:
        return RecordKind.TLS_RPT if rtype == "TXT" else None
    if rtype == "TXT":
        # Any other TXT set (the apex, "_spf", a sub-domain): only its v=spf1 value is owned;
        # see is_owned_value.
        return RecordKind.SPF
    return None


def is_spf_value(value: str) -> bool:
    # RFC 7208 4.5: the version section is "v=spf1" followed by a space or the end of the record.
    lowered = value.lower()
    return lowered == "v=spf1" or lowered.startswith("v=spf1 ")


def is_owned_value(kind: RecordKind, value: str) -> bool:
    """Inside an owned RRset, which values the pipeline owns. Only SPF shares its RRset."""
    if kind is RecordKind.SPF:
        return is_spf_value(value)
    return True
