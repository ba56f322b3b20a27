"""Ingest speed of `dmarcops reports ingest` on a generated corpus, beside parsedmarc's parser on
the same files in the same run (issue 14, part 6).

    .venv/bin/pip install -e '.[benchmarks]'                         # parsedmarc, once
    .venv/bin/python benchmarks/reports_ingest.py                    # 10,000 reports, 10 rows each
    .venv/bin/python benchmarks/reports_ingest.py --reports 2000 --rows 20 --keep /tmp/corpus
    .venv/bin/python benchmarks/reports_ingest.py --no-parsedmarc    # dmarcops only

The corpus is mixed as receivers send it: 40% gzip, 30% zip, 20% bare XML, 10% .eml with a gzip
attachment; the rows mix passing, DKIM-only and failing sources. Each parser runs in a process of
its own, so each peak RSS (ru_maxrss: interpreter, imports and work) is its own:

- dmarcops: `ingest_paths` over the directory: read, unpack, parse (defusedxml) and store every
  record in SQLite;
- parsedmarc: `parsedmarc.parse_report_file(bytes, offline=True)` on every file, in the same order,
  results kept in a list and nothing stored. offline=True makes no DNS query; parsedmarc still
  looks each source IP up in the IP database it bundles (country, AS), which is part of its parse.

Both count reports and messages, and the two counts must agree. It prints, per parser, files,
reports, seconds, reports/s and peak RSS, then the ratio; it exits 1 when a count disagrees or a
report is lost.
"""

from __future__ import annotations

import argparse
import gzip
import io
import json
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from email.message import EmailMessage
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

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


def peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_dmarcops(corpus: Path, work: Path) -> dict[str, float]:
    from pipeline.reports.ingest import ingest_paths
    from pipeline.reports.store import open_store

    connection = open_store(work / "reports.sqlite")
    result = ingest_paths(connection, [str(corpus)])
    records = connection.execute("SELECT count(*) FROM records").fetchone()[0]
    connection.close()
    return {
        "files": result.files,
        "reports": result.stored,
        "records": records,
        "messages": result.messages,
        "problems": len(result.problems),
        "seconds": result.seconds,
    }


def run_parsedmarc(corpus: Path, work: Path) -> dict[str, float]:
    import logging

    import parsedmarc

    logging.getLogger("parsedmarc").setLevel(logging.CRITICAL)
    parsed = []
    problems = files = 0
    began = time.perf_counter()
    for path in sorted(corpus.iterdir(), key=lambda p: p.name):
        files += 1
        try:
            parsed.append(parsedmarc.parse_report_file(path.read_bytes(), offline=True))
        except Exception:  # one broken report is counted, as dmarcops counts it
            problems += 1
    seconds = time.perf_counter() - began
    reports = [p["report"] for p in parsed if p.get("report_type") == "aggregate"]
    return {
        "files": files,
        "reports": len(reports),
        "records": sum(len(r["records"]) for r in reports),
        "messages": sum(rec["count"] for r in reports for rec in r["records"]),
        "problems": problems,
        "seconds": seconds,
    }


def child(which: str, corpus: Path, work: Path) -> int:
    runner = run_dmarcops if which == "dmarcops" else run_parsedmarc
    result = runner(corpus, work)
    result["peak_mib"] = peak_mib()
    print(json.dumps(result))
    return 0


def measure(which: str, corpus: Path, work: Path) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, __file__, "--child", which, "--corpus", str(corpus), "--work", str(work)],
        check=True,
        capture_output=True,
        text=True,
    )
    result: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def show(name: str, r: dict[str, float]) -> None:
    print(
        f"{name:<10} {int(r['files'])} files, {int(r['reports'])} reports, {int(r['records'])} "
        f"records, {int(r['messages'])} messages, {int(r['problems'])} problems in "
        f"{r['seconds']:.2f} s: {r['reports'] / r['seconds']:.0f} reports/s; "
        f"peak RSS {r['peak_mib']:.0f} MiB"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reports", type=int, default=10_000)
    parser.add_argument("--rows", type=int, default=10)
    parser.add_argument("--keep", type=Path, help="Write the corpus here and keep it.")
    parser.add_argument("--no-parsedmarc", action="store_true", help="Measure dmarcops only.")
    parser.add_argument("--child", choices=["dmarcops", "parsedmarc"], help=argparse.SUPPRESS)
    parser.add_argument("--corpus", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args.child, args.corpus, args.work)
    work = Path(tempfile.mkdtemp(prefix="dmarcops-reports-bench-"))
    corpus = args.keep or work / "corpus"
    corpus.mkdir(parents=True, exist_ok=True)
    began = time.perf_counter()
    write_corpus(corpus, args.reports, args.rows)
    print(
        f"corpus: {args.reports} reports x {args.rows} rows in {time.perf_counter() - began:.1f} s"
    )
    ours = measure("dmarcops", corpus, work)
    show("dmarcops", ours)
    ok = (
        ours["reports"] == args.reports
        and ours["records"] == args.reports * args.rows
        and not ours["problems"]
    )
    if not args.no_parsedmarc:
        try:
            import parsedmarc  # noqa: F401
        except ImportError:
            print("parsedmarc: not installed (pip install -e '.[benchmarks]'); not compared")
        else:
            theirs = measure("parsedmarc", corpus, work)
            show("parsedmarc", theirs)
            speed = (ours["reports"] / ours["seconds"]) / (theirs["reports"] / theirs["seconds"])
            print(
                f"ratio      dmarcops {speed:.1f}x parsedmarc's reports/s, "
                f"{ours['peak_mib'] / theirs['peak_mib']:.2f}x its peak RSS"
            )
            if (theirs["reports"], theirs["messages"]) != (ours["reports"], ours["messages"]):
                print("the parsers disagree on the reports or messages read")
                ok = False
    shutil.rmtree(work)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
