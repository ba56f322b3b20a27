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
