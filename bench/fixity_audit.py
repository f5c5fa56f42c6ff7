"""Fixity audit benchmark: one scheduled batch, the due-file query and the status page, beside a plain re-hash.

    .venv/bin/python bench/fixity_audit.py                      # 100,000 files of 4 KB + 4 x 64 MB, SQLite
    .venv/bin/python bench/fixity_audit.py --files 20000 --engine postgresql
    .venv/bin/python bench/fixity_audit.py --tiny               # 500 files + 8 MB

Setup (not measured): one record, N small blobs put through the blob store and their File rows inserted in bulk
(the audit does not care how files were filed), plus a few large blobs.

Measured:
- baseline: read + SHA-256 + SM3 of every blob in one thread, straight from the store folder (what any script
  re-hashing the archive would do), warm page cache, the better of a run before and one after the audit;
- `audit_batch` with a limit of all files: the same reading and hashing plus picking the due files, updating
  last_fixity_at, the run row and its audit event; the ratio to the baseline is the overhead of bookkeeping;
- the scheduled batch size (30 days, hourly) and the time of one such batch;
- `_due` (the most overdue query) and `audit_status` on the full table;
- repair: a number of blobs altered, repaired from a local replica (seeded by `replicate`, also timed).
"""

from __future__ import annotations

import argparse
import hashlib
import io
import os
import resource
import shutil
import sys
import tempfile
import time
import uuid
from pathlib import Path

from sqlalchemy import create_engine, insert, text

from dangan.config import load_settings
from dangan.db.models import File
from dangan.services import fixity_audit as fa
from dangan.services.context import Actor, Dangan
from dangan.services.files import NewFile
from dangan.services.records import RecordInput, create_record
from dangan.services.setup import init

META = {"title": "固化信息巡检基准", "year": 2024, "retention_period": "Y", "responsible": "办公室", "date": "2024-01-02"}
PG = os.environ.get("DANGAN_BENCH_PG", "postgresql+psycopg://postgres@127.0.0.1:5432")


def build(work: Path, engine: str, n_small: int, n_large: int, large_mb: int) -> tuple[Dangan, str | None]:
    db_url, db_name = None, None
    if engine == "postgresql":
        db_name = f"dangan_bench_{uuid.uuid4().hex[:8]}"
        eng = create_engine(f"{PG}/postgres", isolation_level="AUTOCOMMIT")
        with eng.connect() as c:
            c.execute(text(f'CREATE DATABASE "{db_name}"'))
        eng.dispose()
        db_url = f"{PG}/{db_name}"
    settings = load_settings(work / "data", database_url=db_url)
    init(settings, fonds_code="Z109", fonds_name="基准全宗", admin_accounts=False)
    app = Dangan(settings)
    from dangan.services.fonds import create_department

    create_department(app, Actor.system(), "Z109", "BGS", "办公室")
    rec = create_record(app, Actor.system(), RecordInput("Z109", "WS", META, department="BGS", state="filed"),
                        [NewFile("seed.txt", io.BytesIO(b"seed"))])
    rows = []
    block = os.urandom(4096)
    for i in range(n_small + n_large):
        src = io.BytesIO(i.to_bytes(8, "big") + block) if i < n_small else _Big(large_mb * 2**20, i)
        info = app.store.put(src)  # type: ignore[arg-type]
        rows.append({"record_id": rec["id"], "role": "正文", "name": f"f{i}.bin", "size": info.size,
                     "sha256": info.sha256, "sm3": info.sm3, "storage_key": info.key, "sequence": i + 2,
                     "created_by": "bench"})
        if len(rows) == 5000:
            _insert(app, rows)
    _insert(app, rows)
    return app, db_name


class _Big(io.RawIOBase):
    def __init__(self, size: int, salt: int) -> None:
        self.left, self.block = size, hashlib.sha512(str(salt).encode()).digest() * (2**20 // 64)

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        n = min(self.left, len(self.block) if n < 0 else n)
        self.left -= n
        return self.block[:n]


def _insert(app: Dangan, rows: list[dict]) -> None:
    if rows:
        with app.sessions.begin() as s:
            s.execute(insert(File), rows)
        rows.clear()


def baseline(app: Dangan) -> tuple[float, int]:
    t, n = time.perf_counter(), 0
    for o in app.store.iter_objects():
        sha, sm3 = hashlib.sha256(), hashlib.new("sm3")
        with app.store.open(o.key) as fh:
            while b := fh.read(2**20):
                sha.update(b)
                sm3.update(b)
                n += len(b)
    return time.perf_counter() - t, n


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--files", type=int, default=100_000)
    ap.add_argument("--large", type=int, default=4)
    ap.add_argument("--large-mb", type=int, default=64)
    ap.add_argument("--repairs", type=int, default=50)
    ap.add_argument("--engine", choices=["sqlite", "postgresql"], default="sqlite")
    ap.add_argument("--tiny", action="store_true")
    args = ap.parse_args()
    if args.tiny:
        args.files, args.large, args.large_mb, args.repairs = 500, 1, 8, 5
    work = Path(tempfile.mkdtemp(prefix="dangan-bench-audit-"))
    db_name = None
    try:
        t = time.perf_counter()
        app, db_name = build(work, args.engine, args.files, args.large, args.large_mb)
        total_files = args.files + args.large + 1
        print(f"setup: {total_files} files on {args.engine} in {time.perf_counter() - t:.1f} s (not measured)")
        admin = Actor.admin()

        baseline(app)  # warm the page cache: every measured pass reads from memory, not the first one only
        b_s, b_bytes = baseline(app)
        a = time.perf_counter()
        rep = fa.audit_batch(app, admin, limit=total_files)
        a_s = time.perf_counter() - a
        b_s = min(b_s, baseline(app)[0])  # the better of the baselines before and after
        assert rep["ok"] and rep["checked"] == total_files, rep
        print(f"baseline re-hash    : {total_files / b_s:10,.0f} files/s  {b_bytes / b_s / 1e6:8.1f} MB/s  ({b_s:.2f} s)")
        print(f"audit, all files    : {total_files / a_s:10,.0f} files/s  {rep['bytes_read'] / a_s / 1e6:8.1f} MB/s  "
              f"({a_s:.2f} s, {a_s / b_s:.2f}x baseline)")

        size = fa.batch_size(total_files, app.settings)
        a = time.perf_counter()
        one = fa.audit_batch(app, admin)
        print(f"scheduled batch     : {one['checked']} files (30 days, hourly: batch {size}) in "
              f"{time.perf_counter() - a:.3f} s")
        a = time.perf_counter()
        due = fa._due(app, size)
        print(f"due-file query      : {len(due)} of {total_files} in {(time.perf_counter() - a) * 1000:.1f} ms")
        a = time.perf_counter()
        st = fa.audit_status(app)
        print(f"audit_status        : {(time.perf_counter() - a) * 1000:.1f} ms "
              f"(within cycle {st['verified_within_cycle']}, drift {st['drift_outstanding']})")

        app.settings.replica_storage_url = (work / "replica").as_uri()
        a = time.perf_counter()
        r = fa.replicate(app, admin)
        r_s = time.perf_counter() - a
        print(f"replicate (seed)    : {r['copied']} blobs, {r['bytes_copied'] / r_s / 1e6:.1f} MB/s ({r_s:.2f} s)")
        damaged = []
        for o in app.store.iter_objects():
            if len(damaged) == args.repairs:
                break
            p = app.store.root / o.key
            os.chmod(p, 0o644)
            with p.open("r+b") as fh:
                fh.write(b"\xff")
            damaged.append(o.key)
        a = time.perf_counter()
        rep = fa.audit_batch(app, admin, limit=total_files)
        print(f"audit with repairs  : {rep['drift']} altered, {rep['repaired']} repaired in "
              f"{time.perf_counter() - a:.2f} s")
        ok = rep["repaired"] == len(damaged) and rep["ok"]
        print(f"peak RSS            : {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")
        app.close()
        return 0 if ok else 1
    finally:
        shutil.rmtree(work, ignore_errors=True)
        if db_name:
            eng = create_engine(f"{PG}/postgres", isolation_level="AUTOCOMMIT")
            with eng.connect() as c:
                c.execute(text(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{db_name}'"))
                c.execute(text(f'DROP DATABASE IF EXISTS "{db_name}"'))
            eng.dispose()


if __name__ == "__main__":
    sys.exit(main())
