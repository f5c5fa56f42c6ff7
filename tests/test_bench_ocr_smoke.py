"""Smoke run of bench/ocr.py at tiny size (1 corpus scan + 1 small rendered page), so that the OCR benchmark
cannot rot. No timing is asserted: speed is the benchmark's business, not the test's."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

from conftest import CORPUS, IN_CI

ROOT = Path(__file__).resolve().parents[1]


def test_bench_ocr_smoke_runs(tmp_path):
    assert (CORPUS / "scans" / "ground-truth.tsv").is_file(), f"corpus missing: {CORPUS}"
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "DANGAN_CORPUS": str(CORPUS)}
    cmd = [sys.executable, str(ROOT / "bench" / "ocr.py"), "--smoke", "--data", str(tmp_path / "b")]
    baseline = bool(shutil.which("ocrmypdf") and shutil.which("tesseract"))
    if not baseline:
        assert not IN_CI, "ocrmypdf and tesseract (Debian packages) are required under CI=true"
        cmd.append("--no-baseline")
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    for figure in ("pages: 2 (1 corpus scans, 1 rendered", "ours CER", "s/page/core", "CPU", "where the CPU goes",
                   "check OK: 2 of 2 PDFs identified as PDF/A-2b (fmt/477)"):
        assert figure in out, figure
    if baseline:
        for figure in ("ocrmypdf:", "time per page per core: ours / ocrmypdf =", "× baseline",
                       "character error rate: ours / ocrmypdf ="):
            assert figure in out, figure
    assert "check FAIL" not in out
