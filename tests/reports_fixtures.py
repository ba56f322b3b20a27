"""Aggregate-report fixtures as receivers deliver them, built from the hand-written XML in
tests/fixtures/reports/: Google's report zipped, Yahoo's gzipped, Microsoft's gzipped inside a
mail (.eml), and an mbox export holding Google's zip again (a duplicate) and the RFC 9990 report.

Hand-checked counts (fabrikam.example, the three reporters together; see each XML file):

| source             | google | outlook | yahoo | all | DKIM-al. | SPF-al. | DMARC pass |
| 209.85.220.41      |   120  |         |   50  | 170 |   170    |   170   |    170     |
| 167.89.55.10       |    40  |         |       |  40 |    40    |     0   |     40     |
| 2a01:111:f400:...  |        |    30   |       |  30 |    30    |    30   |     30     |
| 198.51.100.23      |     5  |         |    7  |  12 |     0    |     0   |      0     |
| 192.0.2.200 (fwd)  |        |    12   |       |  12 |     0    |     0   |      0     |
| 203.0.113.77       |     3  |         |       |   3 |     0    |     0   |      0     |
| total              |   168  |    42   |   57  | 267 |   240    |   200   |    240     |
"""

from __future__ import annotations

import gzip
import io
import zipfile
from datetime import datetime, timedelta
from email.message import EmailMessage
from pathlib import Path

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "reports"
GOOGLE = FIXTURES / "google.com!fabrikam.example!1795132800!1795219199.xml"
OUTLOOK = FIXTURES / "enterprise.protection.outlook.com!fabrikam.example!1795219200!1795305599.xml"
YAHOO = FIXTURES / "yahoo.com!fabrikam.example!1795305600!1795391999.xml"
RFC9990 = FIXTURES / "rfc9990-northwind-health.example.xml"
MALFORMED = FIXTURES / "malformed-truncated.xml"
INVALID_UTF8 = FIXTURES / "invalid-utf8-contoso-retail.example.xml"

BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE feedback [
 <!ENTITY a "lollollollollollollollollollol">
 <!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">
 <!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;">
 <!ENTITY d "&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;">
 <!ENTITY e "&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;">
 <!ENTITY f "&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;">
 <!ENTITY g "&f;&f;&f;&f;&f;&f;&f;&f;&f;&f;">
 <!ENTITY h "&g;&g;&g;&g;&g;&g;&g;&g;&g;&g;">
]>
<feedback><report_metadata><org_name>&h;</org_name></report_metadata></feedback>
"""
XXE = b"""<?xml version="1.0"?>
<!DOCTYPE feedback [<!ENTITY secret SYSTEM "file:///etc/passwd">]>
<feedback><report_metadata><org_name>&secret;</org_name></report_metadata></feedback>
"""


def zipped(path: Path) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(path.name, path.read_bytes())
    return out.getvalue()


def gzipped(data: bytes) -> bytes:
    return gzip.compress(data, mtime=0)


def report_mail(sender: str, subject: str, filename: str, payload: bytes, subtype: str) -> bytes:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = "dmarc@fabrikam.example"
    message["Subject"] = subject
    message["Date"] = "Mon, 23 Nov 2026 04:12:31 +0000"
    message["Message-ID"] = f"<{filename}@reports.example>"
    message.set_content("This is a DMARC aggregate report. See the attachment.\n")
    message.add_attachment(payload, maintype="application", subtype=subtype, filename=filename)
    return message.as_bytes()


def mbox(*messages: bytes) -> bytes:
    return b"".join(
        b"From MAILER-DAEMON Mon Nov 23 04:12:31 2026\n" + m.replace(b"\r\n", b"\n") + b"\n"
        for m in messages
    )


def build_drop(directory: Path) -> Path:
    """A month's report drop as an analyst gets it: every container, one duplicate, one broken
    report, one with invalid UTF-8 (in a subdirectory: directories are read recursively)."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "google.com!fabrikam.example!1795132800!1795219199.zip").write_bytes(
        zipped(GOOGLE)
    )
    (directory / "yahoo.com!fabrikam.example!1795305600!1795391999.xml.gz").write_bytes(
        gzipped(YAHOO.read_bytes())
    )
    (directory / "outlook.eml").write_bytes(
        report_mail(
            "dmarcreport@microsoft.com",
            "Report Domain: fabrikam.example Submitter: enterprise.protection.outlook.com",
            "enterprise.protection.outlook.com!fabrikam.example!1795219200!1795305599.xml.gz",
            gzipped(OUTLOOK.read_bytes()),
            "gzip",
        )
    )
    nested = directory / "export"
    nested.mkdir(exist_ok=True)
    (nested / "rua.mbox").write_bytes(
        mbox(
            report_mail(
                "noreply-dmarc-support@google.com",
                "Report domain: fabrikam.example Submitter: google.com",
                "google.com!fabrikam.example!1795132800!1795219199.zip",
                zipped(GOOGLE),
                "zip",
            ),
            report_mail(
                "report_sender@example-reporter.com",
                "Report Domain: northwind-health.example",
                RFC9990.name,
                RFC9990.read_bytes(),
                "xml",
            ),
        )
    )
    (nested / INVALID_UTF8.name).write_bytes(INVALID_UTF8.read_bytes())
    (directory / MALFORMED.name).write_bytes(MALFORMED.read_bytes())
    return directory


# ---- generated daily reports (verification in the rollback window, issue 14 part 5) ----------

# (source IP, messages, passes DMARC, disposition): one <record> of a daily report.
Row = tuple[str, int, bool, str]


def daily_report(org: str, report_id: str, domain: str, day: datetime, rows: list[Row]) -> str:
    """One receiver's report for one UTC day, in RFC 7489 appendix C form. A passing row passes
    DKIM and SPF aligned (auth_results for the domain); a failing one authenticates nothing."""
    begin = int(day.timestamp())
    records = "".join(
        f"<record><row><source_ip>{ip}</source_ip><count>{count}</count><policy_evaluated>"
        f"<disposition>{disposition}</disposition><dkim>{'pass' if ok else 'fail'}</dkim>"
        f"<spf>{'pass' if ok else 'fail'}</spf></policy_evaluated></row>"
        f"<identifiers><header_from>{domain}</header_from></identifiers><auth_results>"
        + (
            f"<dkim><domain>{domain}</domain><result>pass</result><selector>s1</selector></dkim>"
            f"<spf><domain>{domain}</domain><result>pass</result></spf>"
            if ok
            else f"<spf><domain>{domain}</domain><result>fail</result></spf>"
        )
        + "</auth_results></record>"
        for ip, count, ok, disposition in rows
    )
    return (
        f"<feedback><report_metadata><org_name>{org}</org_name><email>dmarc@{org}</email>"
        f"<report_id>{report_id}</report_id><date_range><begin>{begin}</begin>"
        f"<end>{begin + 86399}</end></date_range></report_metadata><policy_published>"
        f"<domain>{domain}</domain><p>none</p></policy_published>{records}</feedback>"
    )


def write_days(
    directory: Path,
    domain: str,
    first: datetime,
    days: int,
    rows: list[Row],
    org: str = "google.com",
) -> Path:
    """`days` daily reports from `first` (a UTC midnight), the same rows each day, gzipped as
    Google sends them."""
    directory.mkdir(parents=True, exist_ok=True)
    for n in range(days):
        day = first + timedelta(days=n)
        name = f"{org}!{domain}!{int(day.timestamp())}!{int(day.timestamp()) + 86399}.xml.gz"
        xml = daily_report(org, f"{org}-{domain}-{day:%Y%m%d}", domain, day, rows)
        (directory / name).write_bytes(gzipped(xml.encode()))
    return directory


# A domain's usual day: the mail platform, the CRM (a legitimate source) and a little spoofing.
HEALTHY: list[Row] = [
    ("209.85.220.41", 1000, True, "none"),
    ("167.89.55.10", 100, True, "none"),
    ("203.0.113.77", 10, False, "none"),
]
