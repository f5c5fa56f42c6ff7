"""Batch import (批量导入) of an Excel 归档文件目录 with one small file per row, beside the core ingest baseline.

Generates a catalogue of N rows (归档文件目录 columns, dates written as clerks write them: 2024.3.5,
2024年3月5日, 20240305) and a folder with one 2-4 KB PDF per row, then measures in the same run:

- baseline: `ingest_batch` of the same records and files straight from Python (no Excel, no 挂接) into a fresh
  archive — what the core can do;
- dry run: `imports.run_import(dry_run=True)` with its Excel report — rows/s;
- import: `imports.run_import` into another fresh archive — records/s and the ratio to the baseline;
- plain read: openpyxl read-only iteration of the catalogue (the floor of any import);
- RSS at 10 %, 50 %, 100 % of the import and the peak.

Targets: import >= 1,000 records/s, dry run >= 5,000 rows/s, memory flat. Exit 3 with --check-targets when missed.

    .venv/bin/python bench/import_catalogue.py                 # 100,000 rows (several minutes on 2 cores)
    .venv/bin/python bench/import_catalogue.py --rows 300      # the smoke run of the test suite
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import openpyxl

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "bench"))

from dangan.services.context import Actor  # noqa: E402
from dangan.services.files import NewFile  # noqa: E402
from dangan.services.imports import ImportSpec, run_import  # noqa: E402
from dangan.services.ingest import ingest_batch  # noqa: E402
from dangan.services.records import RecordInput  # noqa: E402
from ingest import LazyFile, open_archive, phase_peak_mb, reset_peak, rss_mb, settle  # noqa: E402

HEAD = ["序号", "档号", "文号", "责任者", "题名", "日期", "密级", "页数", "备注", "年度", "保管期限", "机构", "文件名"]
DEPTS = ["BGS", "CWK", "JJK"]
RET = ["永久", "定期30年", "定期10年"]
RET_CODE = {"永久": "Y", "定期30年": "D30", "定期10年": "D10"}
TARGET_IMPORT, TARGET_DRY = 1000, 5000


def row(i: int, n: int) -> list[object]:
    per = max(1, n // 72)
    cls = min(i // per, 71)  # 8 years x 3 retention x 3 departments, in 档号 order
    year, ret, dept = 2017 + cls // 9, RET[(cls // 3) % 3], DEPTS[cls % 3]
    m, d = 1 + i % 12, 1 + i % 28
    date = [f"{year}.{m}.{d}", f"{year}年{m}月{d}日", f"{year}{m:02d}{d:02d}"][i % 3]
    return [i + 1, None, f"示政办〔{year}〕{i}号", "示范市人民政府办公室", f"关于{year}年度第{i}项工作的通知", date, "公开",
            1 + i % 9, None, year, ret, dept, f"{i // 1000:03d}/{i:07d}.pdf"]


def generate(work: Path, n: int) -> tuple[Path, Path]:
    cat = work / "归档文件目录.xlsx"
    files = work / "files"
    wb = openpyxl.Workbook()  # not write-only: like Excel and WPS, it records the sheet's <dimension>
    ws = wb.active
    ws.title = "归档文件目录"
    ws.append(["归档文件目录"])
    ws.append(HEAD)
    for i in range(n):
        ws.append(row(i, n))
        p = files / f"{i // 1000:03d}" / f"{i:07d}.pdf"
        if i % 1000 == 0:
            p.parent.mkdir(parents=True, exist_ok=True)
        body = f"%PDF-1.4\n% 第{i}号\n".encode() + os.urandom(2048 + i % 2048)
        p.write_bytes(body)
    wb.save(cat)
    return cat, files


def direct_items(files: Path, n: int) -> Iterator[tuple[RecordInput, list[NewFile]]]:
    for i in range(n):
        r = row(i, n)
        y, mo, d = 0, 0, 0
        year = int(r[9])  # type: ignore[arg-type]
        y, mo, d = year, 1 + i % 12, 1 + i % 28
        meta = {"title": r[4], "doc_number": r[2], "responsible": r[3], "date": f"{y}-{mo:02d}-{d:02d}",
                "security_level": "公开", "pages": r[7], "year": year, "retention_period": RET_CODE[str(r[10])]}
        p = files / str(r[12])
        yield (RecordInput("Z109", "WS", meta, department=str(r[11]), state="pre_filing", sender_ref=f"direct-{i}"),
               [NewFile(p.name, LazyFile(p))])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--data", type=Path, help="work folder (default: a temporary folder, removed afterwards)")
    ap.add_argument("--check-targets", action="store_true")
    args = ap.parse_args(argv)
    work = args.data or Path(tempfile.mkdtemp(prefix="dangan-bench-import-"))
    work.mkdir(parents=True, exist_ok=True)
    n = args.rows
    try:
        print(f"bench/import_catalogue.py: {n} rows, one 2-4 KB PDF each, SQLite, {os.cpu_count()} CPUs", flush=True)
        t = time.perf_counter()
        cat, files = generate(work / "src", n)
        print(f"  generated catalogue and files in {time.perf_counter() - t:.1f} s", flush=True)
        actor = Actor.admin("bench")

        settle()
        t = time.perf_counter()
        wb = openpyxl.load_workbook(cat, read_only=True)
        plain = sum(1 for _ in wb.active.iter_rows(values_only=True))
        wb.close()
        t_plain = time.perf_counter() - t

        base_app = open_archive(work / "base", None)
        settle()
        t = time.perf_counter()
        rep = ingest_batch(base_app, actor, direct_items(files, n))
        t_base = time.perf_counter() - t
        base_app.close()
        assert rep.created == n, rep.as_dict()

        app = open_archive(work / "imp", None)
        spec = ImportSpec("Z109", "WS", cat, files)
        settle()
        t = time.perf_counter()
        dry = run_import(app, actor, spec, dry_run=True, report=work / "report.xlsx")
        t_dry = time.perf_counter() - t
        assert dry.passed == n, dry.as_dict()

        samples: dict[int, float] = {}

        def progress(v: dict[str, int]) -> None:
            for pct in (10, 50, 100):
                if v["processed"] >= n * pct // 100 and pct not in samples:
                    samples[pct] = rss_mb()

        settle()
        reset_peak()
        t = time.perf_counter()
        res = run_import(app, actor, spec, progress=progress)
        t_imp = time.perf_counter() - t
        peak = phase_peak_mb()
        app.close()
        ok = res.created == n and res.failed == 0

        imp_s, base_s, dry_s, plain_s = n / t_imp, n / t_base, n / t_dry, plain / t_plain
        print(f"  {'figure':<40} {'value':>14} {'baseline':>18} {'ratio':>7}")
        print(f"  {'import records/s':<40} {imp_s:>14,.0f} {base_s:>12,.0f} core {imp_s / base_s:>7.2f}")
        print(f"  {'dry run rows/s (with report)':<40} {dry_s:>14,.0f} {plain_s:>11,.0f} plain {dry_s / plain_s:>7.2f}")
        print(f"  {'plain openpyxl read rows/s':<40} {plain_s:>14,.0f}")
        for pct in (10, 50, 100):
            print(f"  RSS at {pct}% of the import{'':<20} {samples.get(pct, 0):>10.0f} MB")
        print(f"  peak RSS of the import{'':<22} {peak:>10.0f} MB")
        print(f"  check {'OK  ' if ok else 'FAIL'} every row imported once ({res.created} created, {res.failed} failed)")
        missed = [name for name, got, want in (("import", imp_s, TARGET_IMPORT), ("dry run", dry_s, TARGET_DRY))
                  if got < want]
        print(f"  targets: import >= {TARGET_IMPORT}/s, dry run >= {TARGET_DRY}/s: "
              + ("met" if not missed else "missed: " + ", ".join(missed)))
        if not ok:
            return 1
        return 3 if args.check_targets and missed else 0
    finally:
        if args.data is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
