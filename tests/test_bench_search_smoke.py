"""Smoke run of bench/search.py at tiny size (2,000 records), so that the search benchmark cannot rot.

No timing is asserted: speed is the benchmark's business, not the test's."""

import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_bench_search_tiny_runs(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    t = time.monotonic()
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "search.py"), "--tiny", "--data", str(tmp_path / "b")],
                          capture_output=True, text=True, timeout=300, env=env, cwd=ROOT)
    elapsed = time.monotonic() - t
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    for figure in ("index build (reindex path), records/s", "as archivist (clearance 秘密)",
                   "as reader (clearance 公开)", "search with facets:    p50", "search without facets: p50",
                   "LIKE scan baseline:", "where the time goes:", "check OK   every record indexed: 2,000 of 2,000"):
        assert figure in out, figure
    assert " p95 " in out.split("search with facets:", 1)[1].splitlines()[0]
    # dangan answered from its tantivy index, FTS5 answered the same queries beside it, with the same totals
    assert "FTS5 (facets on):" in out and "check OK   tantivy totals agree with FTS5: 52/52" in out
    assert "check FAIL" not in out
    print(f"smoke run: {elapsed:.1f} s")
