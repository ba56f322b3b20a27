"""Ingest speed of `dmarcops reports ingest` on a generated corpus (issue 14, part 6).

    .venv/bin/python benchmarks/reports_ingest.py                    # 10,000 reports, 10 rows each
    .venv/bin/python benchmarks/reports_ingest.py --reports 2000 --rows 20 --keep /tmp/corpus

The corpus is mixed as receivers send it: 40% gzip, 30% zip, 20% bare XML, 10% .eml with a gzip
attachment; the rows mix passing, DKIM-only and failing sources. It prints files, reports,
records, seconds, reports/s and the process's peak RSS (ru_maxrss). parsedmarc is not compared
here (it is not a dependency of this project).
"""

from __future__ import annotations

import argparse
import gzip
import io
import random
import resource
import shutil
import sys
import tempfile
import time
import zipfile
from email.message import EmailMessage
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pipeline.reports.ingest import ingest_paths
from pipeline.reports.store import open_store

DAY0 = 1795132800  # 2026-11-20T00:00:00Z


def report_xml(n: int, rows: int, rng: random.Random) -> bytes:
    begin = DAY0 + 86400 * (n % 30)
    records = []
    for r in range(rows):
        ok = rng.random() < 0.9
        dkim = "pass" if ok or rng.random() < 0.3 else "fail"
        records.append(
            f"<record><row><source_ip>198.51.{r % 256}.{n % 256}</source_ip>"
            f"<count>{rng.randint(1, 500)}</count><policy_evaluated><disposition>none"
            f"</disposition><dkim>{dkim}</dkim><spf>{'pass' if ok else 'fail'}</spf>"
            "</policy_evaluated></row><identifiers><header_from>client0001.example"
            "</header_from></identifiers><auth_results><dkim><domain>client0001.example</domain>"
            f"<result>{dkim}</result><selector>s1</selector></dkim><spf><domain>"
            f"client0001.example</domain><result>{'pass' if ok else 'fail'}</result></spf>"
            "</auth_results></record>"
        )
    return (
        '<?xml version="1.0" encoding="UTF-8"?><feedback><report_metadata>'
        f"<org_name>receiver{n % 7}.example</org_name><email>dmarc@receiver.example</email>"
        f"<report_id>bench-{n}</report_id><date_range><begin>{begin}</begin>"
        f"<end>{begin + 86399}</end></date_range></report_metadata><policy_published>"
        "<domain>client0001.example</domain><p>none</p></policy_published>"
        + "".join(records)
        + "</feedback>"
    ).encode()


def write_corpus(directory: Path, reports: int, rows: int) -> None:
    rng = random.Random(14)
    for n in range(reports):
        xml = report_xml(n, rows, rng)
        kind = n % 10
        if kind < 4:
            (directory / f"r{n}.xml.gz").write_bytes(gzip.compress(xml, mtime=0))
        elif kind < 7:
            out = io.BytesIO()
            with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
                archive.writestr(f"r{n}.xml", xml)
            (directory / f"r{n}.zip").write_bytes(out.getvalue())
        elif kind < 9:
            (directory / f"r{n}.xml").write_bytes(xml)
        else:
            mail = EmailMessage()
            mail["From"] = "dmarc@receiver.example"
            mail["Subject"] = f"Report {n}"
            mail.set_content("aggregate report attached\n")
            mail.add_attachment(
                gzip.compress(xml, mtime=0),
                maintype="application",
                subtype="gzip",
                filename=f"r{n}.xml.gz",
            )
            (directory / f"r{n}.eml").write_bytes(mail.as_bytes())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reports", type=int, default=10_000)
    parser.add_argument("--rows", type=int, default=10)
    parser.add_argument("--keep", type=Path, help="Write the corpus here and keep it.")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="dmarcops-reports-bench-"))
    corpus = args.keep or work / "corpus"
    corpus.mkdir(parents=True, exist_ok=True)
    began = time.perf_counter()
    write_corpus(corpus, args.reports, args.rows)
    print(
        f"corpus: {args.reports} reports x {args.rows} rows in {time.perf_counter() - began:.1f} s"
    )
    connection = open_store(work / "reports.sqlite")
    result = ingest_paths(connection, [str(corpus)])
    records = connection.execute("SELECT count(*) FROM records").fetchone()[0]
    connection.close()
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"ingest: {result.files} files, {result.stored} reports, {records} records, "
        f"{len(result.problems)} problems in {result.seconds:.2f} s: "
        f"{result.stored / result.seconds:.0f} reports/s, {records / result.seconds:.0f} records/s; "
        f"peak RSS {peak_mib:.0f} MiB"
    )
    shutil.rmtree(work)
    ok = result.stored == args.reports and records == args.reports * args.rows
    return 0 if ok and not result.problems else 1


if __name__ == "__main__":
    sys.exit(main())
