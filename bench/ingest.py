"""Ingest benchmark: many small records and a few large files, each figure beside a baseline from the same run.

    .venv/bin/python bench/ingest.py                      # 100,000 records + 1 GB of large files, SQLite
    .venv/bin/python bench/ingest.py --engine postgresql --records 20000
    .venv/bin/python bench/ingest.py --tiny               # 200 records + 16 MB: the smoke test runs this

What is measured (all files are generated on disk first, so every phase reads the same bytes from the page cache):

- baseline: read + SHA-256 + SM3 + copy to another folder with fsync of the file and of its folder, the
  durability dangan's blob store gives; once in one thread ("a plain script") and once with as many threads
  as dangan's blob writer uses, so the ratio compares like with like;
- dangan `services.ingest.ingest_batch`: validation, blob store put (temp file, fsync, link, folder fsync),
  one transaction per batch with rows, audit events and gapless archival codes;
- dangan `services.records.create_record` one record at a time, on a sample, for comparison;
- large files through `ingest_batch` (one record per file) against the same two baselines.

Memory: RSS is sampled after each batch of the small-record run and printed at 10 %, 50 % and 100 %, with
the process's peak RSS. The run ends with checks (counts, gapless 档号 in every class, the audit chain, a
sample of stored blobs against their source files); the exit status is 1 if any check or item failed, and
with --check-targets also 3 if a target (>= 1,000 records/s; large files >= 50 % of the baseline) is missed.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import hashlib
import io
import os
import platform
import random
import resource
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, func, select, text

from dangan.config import load_settings
from dangan.db.models import AuditEvent, File, NumberCounter, Record
from dangan.demo.documents import make_pdf
from dangan.services import audit
from dangan.services.context import Actor, Dangan
from dangan.services.files import NewFile
from dangan.services.fonds import create_department
from dangan.services.ingest import DEFAULT_BATCH, DEFAULT_WORKERS, IngestReport, ingest_batch
from dangan.services.records import RecordInput, create_record
from dangan.services.setup import init

CHUNK = 1024 * 1024
PG_ADMIN = os.environ.get("DANGAN_BENCH_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
TARGET_RECORDS_PER_S = 1000
TARGET_LARGE_RATIO = 0.5

DEPARTMENTS = [("BGS", "办公室"), ("CWK", "财务科"), ("JJK", "基建科")]
RETENTION = ["Y", "D30", "D10"]
KINDS = ["通知", "报告", "请示", "批复", "函", "纪要", "意见", "通报"]
TOPICS = ["档案归档", "安全生产", "政务公开", "财政预算", "防汛抗旱", "营商环境", "机关党建", "乡村振兴", "数字政府"]


# -- measuring ------------------------------------------------------------------------------------------------

def rss_mb() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6


def settle() -> None:
    """Flush what earlier phases left in the page cache, so that no phase pays for the one before it."""
    os.sync()


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e6  # KiB on Linux


def reset_peak() -> bool:
    """Reset the kernel's peak RSS (VmHWM) so that a phase's own peak can be read (Linux >= 4.0)."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def phase_peak_mb() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024 / 1e6  # KiB
    return 0.0


@dataclass
class Timed:
    seconds: float = 0.0
    count: int = 0
    nbytes: int = 0

    def __add__(self, other: Timed) -> Timed:
        return Timed(self.seconds + other.seconds, self.count + other.count, self.nbytes + other.nbytes)

    @property
    def per_s(self) -> float:
        return self.count / self.seconds if self.seconds else 0.0

    @property
    def mb_s(self) -> float:
        return self.nbytes / 1e6 / self.seconds if self.seconds else 0.0


@dataclass
class Results:
    rows: list[tuple[str, str, str, str]] = field(default_factory=list)
    checks: list[tuple[str, bool, str]] = field(default_factory=list)
    targets: list[tuple[str, bool, str]] = field(default_factory=list)

    def row(self, figure: str, value: str, baseline: str = "", ratio: str = "") -> None:
        self.rows.append((figure, value, baseline, ratio))
        print(f"  {figure:<44} {value:>16} {baseline:>18} {ratio:>8}", flush=True)

    def check(self, name: str, ok: bool, detail: str = "") -> None:
        self.checks.append((name, ok, detail))
        print(f"  check {'OK  ' if ok else 'FAIL'} {name}{': ' + detail if detail else ''}", flush=True)


# -- the generated files ---------------------------------------------------------------------------------------

def small_path(root: Path, i: int) -> Path:
    return root / f"{i // 1000:04d}" / f"{i:07d}.pdf"


# the lowest classes (年度-保管期限-机构) the records are spread over, in 档号 order: 24 x 3 x 3 = 216
CLASSES = [(year, ret, dept) for year in range(2001, 2025) for ret in RETENTION for dept, _ in DEPARTMENTS]


@dataclass(frozen=True)
class Plan:
    """Which class record i belongs to. "arranged": in 档号 order, as an archive is usually handed over
    (a batch of 500 touches one or two classes); "mixed": round-robin, every batch touches all 216 classes."""

    n: int
    order: str = "arranged"

    def class_of(self, i: int) -> tuple[int, str, str]:
        if self.order == "mixed":
            return CLASSES[i % len(CLASSES)]
        per = -(-self.n // len(CLASSES))
        return CLASSES[min(i // per, len(CLASSES) - 1)]


def small_meta(plan: Plan, i: int) -> tuple[dict[str, Any], str]:
    """Deterministic metadata for record i."""
    year, ret, dept = plan.class_of(i)
    kind = KINDS[i % len(KINDS)]
    topic = TOPICS[i % len(TOPICS)]
    meta = {"title": f"关于{year}年度{topic}工作的{kind}（第{i}号）", "year": year, "retention_period": ret,
            "responsible": "示范市人民政府办公室", "date": f"{year}-{1 + i % 12:02d}-{1 + i % 28:02d}",
            "doc_number": f"示政办〔{year}〕{i}号", "doc_type": kind, "pages": 1 + i % 9, "keywords": [topic, kind]}
    return meta, dept


def generate(src: Path, plan: Plan, n: int, large_mb: int, large_files: int) -> tuple[int, list[Path]]:
    """Small PDFs of 2-4 KB, all different, and `large_files` files of random bytes adding up to `large_mb` MB."""
    small = src / "small"
    total = 0
    for i in range(n):
        p = small_path(small, i)
        if i % 1000 == 0:
            p.parent.mkdir(parents=True, exist_ok=True)
        meta, _ = small_meta(plan, i)
        lines = [f"第{k}条 为做好年度档案归档工作，现将有关事项通知如下，请认真贯彻落实。编号{i}-{k}" for k in range(3 + i % 8)]
        data = make_pdf(meta["title"], lines, author="示范市人民政府办公室")
        p.write_bytes(data)
        total += len(data)
    large = []
    (src / "large").mkdir(parents=True, exist_ok=True)
    each = large_mb * 1024 * 1024 // large_files if large_files else 0
    rnd = random.Random(109)
    for k in range(large_files):
        p = src / "large" / f"large-{k:02d}.bin"
        with p.open("wb") as fh:
            left = each
            while left:
                b = rnd.randbytes(min(4 * CHUNK, left))
                fh.write(b)
                left -= len(b)
        large.append(p)
    return total, large


class LazyFile(io.RawIOBase):
    """Opens its file on the first read and closes it at the end: a batch in flight holds no descriptors."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fh: Any = None

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        if self.closed:
            return b""
        if self._fh is None:
            self._fh = self.path.open("rb", buffering=0)
        b = self._fh.read(size)
        if not b or size < 0:
            self.close()
        return b

    def readinto(self, buf: Any) -> int:
        b = self.read(len(buf))
        buf[: len(b)] = b
        return len(b)

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None
        super().close()


# -- baseline: a plain copy with the same hashing and durability ------------------------------------------------

def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def baseline_copy(src: Path, dst: Path) -> int:
    """Read in 1 MiB chunks, SHA-256 and SM3 of every chunk, write the copy, fsync the file and its folder."""
    sha, sm3 = hashlib.sha256(), hashlib.new("sm3")
    n = 0
    with src.open("rb") as fin, dst.open("wb") as fout:
        while True:
            b = fin.read(CHUNK)
            if not b:
                break
            sha.update(b)
            sm3.update(b)
            fout.write(b)
            n += len(b)
        fout.flush()
        os.fsync(fout.fileno())
    _fsync_dir(dst.parent)
    sha.hexdigest(), sm3.hexdigest()
    return n


def run_bounded(threads: int, jobs: Iterator[Callable[[], int]], window: int = 2000) -> int:
    """Run jobs on `threads` threads, never more than `window` queued (flat memory for 100,000 jobs)."""
    total = 0
    if threads <= 1:
        for job in jobs:
            total += job()
        return total
    with ThreadPoolExecutor(threads) as pool:
        pending: list[Any] = []
        for job in jobs:
            pending.append(pool.submit(job))
            if len(pending) >= window:
                total += sum(f.result() for f in pending)
                pending.clear()
        total += sum(f.result() for f in pending)
    return total


def baseline_small(src: Path, dst: Path, n: int, threads: int) -> Timed:
    for d in range(0, n, 1000):
        small_path(dst, d).parent.mkdir(parents=True, exist_ok=True)
    t = time.perf_counter()
    nbytes = run_bounded(threads, ((lambda i=i: baseline_copy(small_path(src, i), small_path(dst, i))) for i in range(n)))
    return Timed(time.perf_counter() - t, n, nbytes)


def baseline_large(files: list[Path], dst: Path, threads: int) -> Timed:
    dst.mkdir(parents=True, exist_ok=True)
    t = time.perf_counter()
    nbytes = run_bounded(threads, ((lambda p=p: baseline_copy(p, dst / p.name)) for p in files))
    return Timed(time.perf_counter() - t, len(files), nbytes)


# -- dangan ----------------------------------------------------------------------------------------------------

def open_archive(data: Path, database_url: str | None) -> Dangan:
    settings = load_settings(data, database_url=database_url)
    init(settings, fonds_code="Z109", fonds_name="示范市人民政府办公室")
    app = Dangan(settings)
    for i, (code, name) in enumerate(DEPARTMENTS):
        create_department(app, Actor.system(), "Z109", code, name, sort_order=i)
    return app


def small_items(src: Path, plan: Plan, start: int, n: int) -> Iterator[tuple[RecordInput, list[NewFile]]]:
    for i in range(start, start + n):
        meta, dept = small_meta(plan, i)
        p = small_path(src, i)
        yield (RecordInput("Z109", "WS", meta, department=dept, state="filed", sender_ref=f"bench-{i}"),
               [NewFile(p.name, LazyFile(p))])


def dangan_small(app: Dangan, src: Path, plan: Plan, n: int, batch_size: int, workers: int) -> tuple[Timed, IngestReport, dict[int, float]]:
    samples: dict[int, float] = {}

    def progress(rep: IngestReport) -> None:
        for pct in range(10, 101, 10):
            if rep.processed >= max(1, n * pct // 100) and pct not in samples:
                samples[pct] = rss_mb()

    t = time.perf_counter()
    rep = ingest_batch(app, Actor.admin("bench"), small_items(src, plan, 0, n), batch_size=batch_size, progress=progress,
                       workers=workers)
    return Timed(time.perf_counter() - t, rep.created, rep.bytes), rep, samples


def dangan_per_record(app: Dangan, src: Path, plan: Plan, start: int, n: int) -> Timed:
    actor = Actor.admin("bench")
    t = time.perf_counter()
    nbytes = 0
    for inp, files in small_items(src, plan, start, n):
        r = create_record(app, actor, inp, files)
        nbytes += sum(f["size"] for f in r["files"])
    return Timed(time.perf_counter() - t, n, nbytes)


def dangan_large(app: Dangan, files: list[Path], workers: int) -> tuple[Timed, IngestReport]:
    items = ((RecordInput("Z109", "WS", {"title": f"大文件测试 {p.name}", "year": 2024, "retention_period": "Y",
                                         "responsible": "示范市人民政府办公室", "date": "2024-06-18"},
                          department="BGS", state="filed", sender_ref=f"bench-large-{p.name}"),
              [NewFile(p.name, LazyFile(p), expected_size=p.stat().st_size)]) for p in files)
    t = time.perf_counter()
    rep = ingest_batch(app, Actor.admin("bench"), items, workers=workers)
    return Timed(time.perf_counter() - t, rep.created, rep.bytes), rep


# -- checks ----------------------------------------------------------------------------------------------------

def run_checks(res: Results, app: Dangan, src: Path, n: int, n_large: int, reports: list[IngestReport]) -> None:
    for rep in reports:
        res.check("no item refused", rep.failed == 0, f"{rep.failed} refused: {rep.failures[:3]}" if rep.failed else "")
    with app.read_sessions() as s:
        records = s.scalar(select(func.count()).select_from(Record))
        files = s.scalar(select(func.count()).select_from(File))
        res.check("one record and one file per item", records == files == n + n_large,
                  f"{records} records, {files} files, expected {n + n_large}")
        # gapless: in every class the highest number equals the count and the counter
        bad = s.execute(
            select(Record.class_key, func.count(), func.max(Record.seq), func.min(Record.seq))
            .where(Record.class_key.is_not(None)).group_by(Record.category_id, Record.level, Record.class_key)
            .having((func.count() != func.max(Record.seq)) | (func.min(Record.seq) != 1))).all()
        counters = s.execute(select(func.sum(NumberCounter.last_value))).scalar() or 0
        res.check("archival codes gapless in every class", not bad and counters == n + n_large,
                  f"{len(bad)} classes with gaps, counters sum {counters}" if bad or counters != n + n_large else "")
        created = s.scalar(select(func.count()).select_from(AuditEvent).where(AuditEvent.action == "record.create",
                                                                               AuditEvent.outcome == "success"))
        res.check("one audit event per record", created == n + n_large, f"{created} record.create events")
        t = time.perf_counter()
        chain = audit.verify_chain(s)
        res.check("audit chain verifies", chain.ok, f"{chain.checked} events in {time.perf_counter() - t:.1f} s")
        # a sample of stored contents against the source files
        rnd = random.Random(7)
        picks = sorted({rnd.randrange(n) for _ in range(min(n, 200))}) if n else []
        ok = 0
        for i in picks:
            f = s.execute(select(File.storage_key, File.sha256).join(Record).where(Record.sender_ref == f"bench-{i}")).one()
            data = small_path(src, i).read_bytes()
            with app.store.open(f.storage_key) as fh:
                ok += fh.read() == data and hashlib.sha256(data).hexdigest() == f.sha256
        res.check("stored content equals the source (sample)", ok == len(picks), f"{ok}/{len(picks)} files")


# -- main ------------------------------------------------------------------------------------------------------

def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--records", type=int, default=100_000, help="small records, one 2-4 KB PDF each (100000)")
    ap.add_argument("--large-mb", type=int, default=1024, help="total size of the large files in MB (1024)")
    ap.add_argument("--large-files", type=int, default=8, help="how many files the large MB are split into (8)")
    ap.add_argument("--per-record", type=int, default=2000, help="records for the one-at-a-time comparison (2000)")
    ap.add_argument("--batch-size", type=int, default=DEFAULT_BATCH)
    ap.add_argument("--workers", type=int, default=DEFAULT_WORKERS, help="concurrent blob writes")
    ap.add_argument("--data", type=Path, help="work folder (default: a new temporary folder, removed afterwards)")
    ap.add_argument("--engine", choices=["sqlite", "postgresql"], default="sqlite")
    ap.add_argument("--order", choices=["arranged", "mixed"], default="arranged",
                    help="records in 档号 order (arranged) or round-robin over the 216 classes (mixed)")
    ap.add_argument("--tiny", action="store_true", help="200 records, 16 MB, 50 one at a time: a quick smoke run")
    ap.add_argument("--keep", action="store_true", help="keep the work folder (and the PostgreSQL database)")
    ap.add_argument("--check-targets", action="store_true", help="exit 3 when a target is missed")
    a = ap.parse_args(argv)
    if a.tiny:
        a.records, a.large_mb, a.per_record = 200, 16, 50
    if a.records < 1 or a.large_mb < 0 or a.large_files < 1 or a.per_record < 0:
        ap.error("--records must be at least 1; sizes cannot be negative")
    return a


@contextlib.contextmanager
def postgres_database(keep: bool) -> Iterator[str]:
    name = f"dangan_bench_{uuid.uuid4().hex[:8]}"
    admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield PG_ADMIN.rsplit("/", 1)[0] + f"/{name}"
    finally:
        if not keep:
            with admin.connect() as c:
                c.execute(text(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'"))
                c.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
        admin.dispose()


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as fh:
        for line in fh:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{os.cpu_count()} CPUs ({cpu}), {mem:.0f} GiB RAM, Python {platform.python_version()}, {platform.system()} {platform.release()}"


def main(argv: list[str] | None = None) -> int:
    a = parse_args(argv)
    own_dir = a.data is None
    work = Path(tempfile.mkdtemp(prefix="dangan-bench-")) if own_dir else a.data.resolve()
    for sub in ("source", "baseline", "archive", "archive-per-record"):
        if (work / sub).exists():
            print(f"{work / sub} exists: give an empty or new folder with --data", file=sys.stderr)
            return 2
    res = Results()
    large_desc = f"{a.large_mb} MB in {a.large_files} large files" if a.large_mb else "no large files"
    print(f"dangan ingest benchmark: {a.records} records ({a.order}), {large_desc}, {a.engine}")
    print(f"machine: {machine()}")
    print(f"work folder: {work}  (batch {a.batch_size}, {a.workers} blob writers)")
    print(f"load average at the start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    try:
        with contextlib.ExitStack() as stack:
            db_url = db_url2 = None
            if a.engine == "postgresql":
                db_url = stack.enter_context(postgres_database(a.keep))
                db_url2 = stack.enter_context(postgres_database(a.keep))
            t = time.perf_counter()
            plan = Plan(a.records, a.order)
            small_bytes, large = generate(work / "source", plan, a.records + a.per_record, a.large_mb, a.large_files)
            print(f"generated {a.records + a.per_record} small files ({small_bytes / 1e6:.0f} MB) and {len(large)} "
                  f"large files in {time.perf_counter() - t:.1f} s\n")
            src = work / "source" / "small"
            print(f"  {'figure':<44} {'dangan':>16} {'baseline':>18} {'ratio':>8}")

            # (a) baseline and (b) dangan on the same small files; the threaded baseline runs before and after
            # dangan and the two are averaged, because a shared disk drifts by tens of percent over minutes
            settle()
            base1 = baseline_small(src, work / "baseline" / "small-1", a.records, 1)
            settle()
            before = baseline_small(src, work / "baseline" / "small-n1", a.records, a.workers)
            app = stack.enter_context(contextlib.closing(open_archive(work / "archive", db_url)))
            settle()
            gc.collect()
            rss_before = rss_mb()
            can_reset = reset_peak()
            ing, rep_small, samples = dangan_small(app, src, plan, a.records, a.batch_size, a.workers)
            peak_small = phase_peak_mb() if can_reset else peak_rss_mb()
            settle()
            after = baseline_small(src, work / "baseline" / "small-n2", a.records, a.workers)
            baseN = before + after
            res.row("small records: ingest_batch records/s", f"{ing.per_s:,.0f}", f"{baseN.per_s:,.0f} files/s",
                    f"{ing.per_s / baseN.per_s:.0%}")
            res.row(f"  (baseline {a.workers} threads: before / after)", "",
                    f"{before.per_s:,.0f} / {after.per_s:,.0f}")
            res.row("  vs. a one-thread copy", "", f"{base1.per_s:,.0f} files/s", f"{ing.per_s / base1.per_s:.0%}")
            res.row("small records: MB/s", f"{ing.mb_s:,.1f}", f"{baseN.mb_s:,.1f}", f"{ing.mb_s / baseN.mb_s:.0%}")
            res.targets.append((f"small records >= {TARGET_RECORDS_PER_S} records/s",
                                ing.per_s >= TARGET_RECORDS_PER_S, f"{ing.per_s:,.0f} records/s"))

            # (d) the one-at-a-time path, for comparison
            if a.per_record:
                app1 = stack.enter_context(contextlib.closing(open_archive(work / "archive-per-record", db_url2)))
                settle()
                one = dangan_per_record(app1, src, plan, a.records, a.per_record)
                res.row(f"create_record one at a time ({a.per_record}) rec/s", f"{one.per_s:,.0f}",
                        f"{ing.per_s:,.0f} batch", f"{one.per_s / ing.per_s:.0%}")

            # (c) large files, the same way
            rep_large = IngestReport()
            if a.large_mb:
                threads = min(a.workers, len(large))
                settle()
                lb1 = baseline_large(large, work / "baseline" / "large-1", 1)
                settle()
                lbefore = baseline_large(large, work / "baseline" / "large-n1", threads)
                settle()
                lg, rep_large = dangan_large(app, large, a.workers)
                settle()
                lafter = baseline_large(large, work / "baseline" / "large-n2", threads)
                lbN = lbefore + lafter
                res.row("large files: ingest_batch MB/s", f"{lg.mb_s:,.0f}", f"{lbN.mb_s:,.0f}",
                        f"{lg.mb_s / lbN.mb_s:.0%}")
                res.row(f"  (baseline {threads} threads: before / after)", "", f"{lbefore.mb_s:,.0f} / {lafter.mb_s:,.0f}")
                res.row("  vs. a one-thread copy", "", f"{lb1.mb_s:,.0f}", f"{lg.mb_s / lb1.mb_s:.0%}")
                res.targets.append((f"large files >= {TARGET_LARGE_RATIO:.0%} of the baseline",
                                    lg.mb_s >= TARGET_LARGE_RATIO * lbN.mb_s, f"{lg.mb_s / lbN.mb_s:.0%}"))

            print()
            res.row("RSS before the small-record run (MB)", f"{rss_before:,.0f}")
            for pct in (10, 50, 100):
                res.row(f"RSS at {pct}% of the small records (MB)", f"{samples.get(pct, 0):,.0f}")
            print("  RSS every 10% (MB): " + " ".join(f"{samples.get(pct, 0):.0f}" for pct in range(10, 101, 10)))
            growth = samples.get(100, 0) - samples.get(10, 0)
            res.row("RSS growth from 10% to 100% (MB)", f"{growth:+,.0f}")
            res.row("peak RSS during the small-record run (MB)", f"{peak_small:,.0f}")
            res.row("peak RSS, whole process (getrusage, MB)", f"{peak_rss_mb():,.0f}")
            print("  (the whole-process peak also covers generating the files, the baselines and `init` with its migrations)")
            print(f"  load average at the end: {' '.join(f'{x:.2f}' for x in os.getloadavg())} "
                  f"(other work on the machine slows every figure)")
            print()
            run_checks(res, app, src, a.records, len(large) if a.large_mb else 0, [rep_small, rep_large])
            res.check("memory flat: RSS growth 10%->100% under 64 MB", growth < 64, f"{growth:+.0f} MB")
    finally:
        if own_dir and not a.keep:
            shutil.rmtree(work, ignore_errors=True)
    print()
    for name, ok, detail in res.targets:
        print(f"target {'met   ' if ok else 'MISSED'} {name}: {detail}")
    if not all(ok for _, ok, _ in res.checks):
        return 1
    if a.check_targets and not all(ok for _, ok, _ in res.targets):
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main())
