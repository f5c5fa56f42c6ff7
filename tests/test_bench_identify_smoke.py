"""Smoke run of bench/identify.py at tiny size, so that the benchmark cannot rot."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_bench_identify_tiny_runs(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "identify.py"), "--n", "30", "--data", str(tmp_path / "b")],
                          capture_output=True, text=True, timeout=300, env=env, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for figure in ("baseline open+read 64 KB files/s", "identify_file files/s", "identify_file+validate files/s",
                   "× baseline"):
        assert figure in proc.stdout, figure
    assert "check OK" in proc.stdout and "check FAIL" not in proc.stdout
