"""Smoke run of bench/check_package.py at tiny size, so that the benchmark cannot rot."""

import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_bench_check_package_tiny_runs(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    t = time.monotonic()
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "check_package.py"), "--files", "30", "--mb", "2",
                           "--workdir", str(tmp_path / "b")], capture_output=True, text=True, timeout=120, env=env,
                          cwd=ROOT)
    elapsed = time.monotonic() - t
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    assert "ratio: check " in out and "of the one-thread SHA-256 + SM3 baseline" in out
    for figure in ("check, payload MB/s", "vs. the 2-thread baseline", "check, content files/s", "content pass",
                   "slowest items", "peak RSS during the check", "identify_file, 27 small files, files/s",
                   "verdict 通过"):
        assert figure in out, figure
    assert "check FAIL" not in out
    print(f"smoke run: {elapsed:.1f} s")  # speed is the benchmark's business, not the test's


def test_bench_fixity_audit_tiny_runs(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "fixity_audit.py"), "--files", "40", "--large", "1",
                           "--large-mb", "1", "--repairs", "3"],
                          capture_output=True, text=True, timeout=300, env=env, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "MB/s" in proc.stdout
