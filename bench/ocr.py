"""OCR benchmark (数字化 OCR): our searchable PDF/A pipeline beside OCRmyPDF on the same pages, in the same run.

    .venv/bin/python bench/ocr.py                      # corpus scans with ground truth + 20 rendered A4 pages
    .venv/bin/python bench/ocr.py --rendered 8 --repeat 2
    .venv/bin/python bench/ocr.py --smoke              # 2 small pages: the smoke test runs this
    .venv/bin/python bench/ocr.py --check-targets      # exit 3 when a target is missed

Pages:

- the scans in ../shared/corpus/scans listed in ground-truth.tsv (each with its expected text and scope; where
  the truth covers only part of the image — "first of 2 lines", "one column" — the error is counted against the
  best-matching stretch of the output, for both systems alike);
- A4 pages at 300 dpi rendered here with Noto Serif CJK SC in the layout of GB/T 9704 (3号 body, 28 characters
  × 22 lines) from the Chinese government texts in ../shared/corpus/text, in five variants: clean, noisy (60k
  specks, 0.8 px blur, 1.5° skew), skewed (3°), hard (half resolution and back, 250k specks, 1.4 px blur,
  3° skew, JPEG quality 25) and small print (5号, 10.5 pt, 42 characters × 33 lines, 0.6 px blur).

Systems, each run as one batch over all pages using every core, in a subprocess whose wall time and CPU time
(its own and its children's) are measured:

- ours: digitise.images.iter_pages → digitise.qc (skew and borders measured, access copy deskewed; a simple
  projection-profile deskew when qc is absent) → digitise.ocr.ocr_image → digitise.pdfa.searchable_pdf, one
  PDF/A per page, pages spread over a spawn process pool (workers = cores, onnxruntime threads split);
- OCRmyPDF (Debian 14, tesseract chi_sim): `ocrmypdf -l chi_sim --deskew --output-type pdfa -j <cores>` on one
  PDF holding the same page images losslessly at the same dpi.

Figures: character error rate (Levenshtein distance / length of the truth, after NFKC with all whitespace
removed, on the text pdftotext extracts from each system's PDF) and seconds per page per core (wall time ×
cores ÷ pages, and CPU seconds ÷ pages). Targets: ours ≤ 0.6 × OCRmyPDF's time per page and ≤ 1/3 of its CER.
Exit status 0 (1 when a check fails: a PDF that is not PDF/A-2b, a page without text), 3 with --check-targets
when a target is missed.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import unicodedata
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont, ImageOps

ROOT = Path(__file__).resolve().parents[1]
CORPUS = Path(os.environ.get("DANGAN_CORPUS", ROOT.parent / "shared" / "corpus"))
TARGET_TIME_RATIO = 0.6
TARGET_CER_RATIO = 1 / 3
A4 = (2480, 3508)  # 300 dpi
VARIANTS = ("clean", "noisy", "skewed", "hard", "small")
SERIF = "Noto Serif CJK SC"


# ---------------------------------------------------------------- scoring

def norm(s: str) -> str:
    return "".join(unicodedata.normalize("NFKC", s).split())


def edit_distance(hyp: str, truth: str, *, partial: bool = False) -> int:
    """Levenshtein distance; with partial=True, of the truth to the best-matching substring of hyp."""
    if not truth:
        return 0 if partial else len(hyp)
    if not hyp:
        return len(truth)
    h = np.frombuffer(hyp.encode("utf-32-le"), dtype=np.uint32)
    j = np.arange(len(h) + 1)
    row = np.zeros(len(h) + 1, dtype=np.int64) if partial else j.astype(np.int64)
    for i, ch in enumerate(np.frombuffer(truth.encode("utf-32-le"), dtype=np.uint32), 1):
        sub = row[:-1] + (h != ch)
        new = np.empty_like(row)
        new[0] = i
        new[1:] = np.minimum(row[1:] + 1, sub)
        # insertions along the row: new[j] = min_k<=j (new[k] + j - k)
        new = np.minimum.accumulate(new - j) + j
        row = new
    return int(row.min() if partial else row[-1])


# ---------------------------------------------------------------- pages

def font_file(family: str) -> tuple[str, int]:
    out = subprocess.run(["fc-list", f"{family}:style=Regular", "--format", "%{file}\t%{index}\n"],
                         capture_output=True, text=True, check=False).stdout
    for line in out.splitlines():
        path, _, index = line.partition("\t")
        if path:
            return path, int(index or 0)
    raise SystemExit(f"font {family} not installed (apt-get install fonts-noto-cjk)")


def read_text(path: Path) -> tuple[str, list[str]]:
    raw = path.read_text(encoding="utf-8")
    title = ""
    for line in raw.splitlines():
        if line.startswith("# "):
            title = line[2:].strip()
            break
    body = raw.split("<!-- INFO END -->", 1)[-1]
    paras = []
    for line in body.splitlines():
        line = re.sub(r"^#+\s*", "", line.strip())
        line = re.sub(r"[*_`>]|\[([^\]]*)\]\([^)]*\)", r"\1", line).strip()
        line = re.sub(r"<!--.*?-->", "", line).strip()
        if line:
            paras.append(line)
    return title, paras


def _wrap(text: str, font: ImageFont.FreeTypeFont, width: float, indent: float = 0.0) -> list[str]:
    lines, cur, avail = [], "", width - indent
    for ch in text:
        # closing punctuation never starts a line (it hangs in the margin, as typesetters do)
        if cur and ch not in "，。、；：？！）》」』”’" and font.getlength(cur + ch) > avail:
            lines.append(cur)
            cur, avail = "", width
        cur += ch
    if cur:
        lines.append(cur)
    return lines


def render_page(title: str, paras: list[str], start: int, size: tuple[int, int] = A4,
                max_lines: int | None = None, body_pt: float = 16.0) -> tuple[Image.Image, str, int]:
    """A 公文-like page (GB/T 9704 margins, 3号 body, 2号 title, 22 lines): (image, the text drawn, next paragraph).

    body_pt=10.5 gives small print (5号, ~33 lines of 42 characters)."""
    path, index = font_file(SERIF)
    mm = size[0] / 210.0
    left, top, width = 28 * mm, 37 * mm, 156 * mm
    body = ImageFont.truetype(path, round(body_pt / 72 * 25.4 * mm), index=index)
    head = ImageFont.truetype(path, round(22 / 72 * 25.4 * mm), index=index)
    pitch = 225 * mm / 22 * body_pt / 16
    img = Image.new("L", size, 255)
    d = ImageDraw.Draw(img)
    drawn: list[str] = []
    y = top
    if title and start == 0:
        for line in _wrap(title, head, width):
            w = head.getlength(line)
            d.text((left + (width - w) / 2, y), line, font=head, fill=0)
            drawn.append(line)
            y += pitch * 1.3
        y += pitch * 0.5
    i = start
    limit = min(top + 225 * mm, size[1] - 35 * mm) - pitch
    while i < len(paras) and y <= limit and (max_lines is None or len(drawn) < max_lines):
        lines = _wrap(paras[i], body, width, indent=2 * body.size)
        for k, line in enumerate(lines):
            if y > limit or (max_lines is not None and len(drawn) >= max_lines):
                break
            d.text((left + (2 * body.size if k == 0 else 0), y), line, font=body, fill=0)
            drawn.append(line)
            y += pitch
        i += 1
    return img, "".join(drawn), i


def degrade(img: Image.Image, variant: str, rnd: np.random.Generator) -> Image.Image:
    def specks(im: Image.Image, n: int) -> Image.Image:
        a = np.array(im)
        ys, xs = rnd.integers(0, a.shape[0], n), rnd.integers(0, a.shape[1], n)
        a[ys, xs] = np.where(rnd.random(n) < 0.5, 0, 255).astype(np.uint8)
        return Image.fromarray(a)

    def turn(im: Image.Image, deg: float) -> Image.Image:
        return im.rotate(deg, resample=Image.Resampling.BICUBIC, fillcolor=255)

    if variant == "noisy":
        return turn(specks(img, 60_000).filter(ImageFilter.GaussianBlur(0.8)), -1.5)
    if variant == "skewed":
        return turn(img, 3.0)
    if variant == "small":
        return img.filter(ImageFilter.GaussianBlur(0.6))
    if variant == "hard":
        half = img.resize((img.width // 2, img.height // 2), Image.Resampling.BILINEAR).resize(img.size)
        return turn(specks(half, 250_000).filter(ImageFilter.GaussianBlur(1.4)), 3.0)
    return img


def corpus_pages(work: Path, limit: int | None) -> list[dict[str, Any]]:
    tsv = CORPUS / "scans" / "ground-truth.tsv"
    pages = []
    for line in tsv.read_text(encoding="utf-8").splitlines()[1:]:
        parts = line.split("\t")
        if len(parts) < 3 or not parts[0]:
            continue
        name, truth, scope = parts[0], parts[1], parts[2]
        src = CORPUS / "scans" / name
        dst = work / f"{len(pages):03d}-{name}"
        shutil.copyfile(src, dst)
        pages.append({"name": name, "path": str(dst), "truth": truth.replace(" | ", ""), "kind": "scan",
                      "partial": not scope.startswith("whole"), "scope": scope})
        if limit is not None and len(pages) >= limit:
            break
    return pages


def rendered_pages(work: Path, n: int, size: tuple[int, int] = A4, dpi: int = 300, max_lines: int | None = None,
                   start_no: int = 0) -> list[dict[str, Any]]:
    texts = sorted(p for p in (CORPUS / "text").glob("*.md"))
    rnd = np.random.default_rng(20240601)
    pages = []
    cursor: dict[Path, int] = {}
    k = 0
    while len(pages) < n and texts:
        src = texts[k % len(texts)]
        title, paras = read_text(src)
        start = cursor.get(src, 0)
        if start >= len(paras):
            texts.remove(src)
            continue
        variant = VARIANTS[len(pages) % len(VARIANTS)]
        img, truth, cursor[src] = render_page(title, paras, start, size, max_lines,
                                              body_pt=10.5 if variant == "small" else 16.0)
        img = degrade(img, variant, rnd)
        stem = f"{start_no + len(pages):03d}-{src.stem}-p{start}-{variant}"
        if variant == "hard":
            path = work / f"{stem}.jpg"
            img.save(path, "JPEG", quality=25, dpi=(dpi, dpi))
        else:
            path = work / f"{stem}.png"
            img.save(path, "PNG", dpi=(dpi, dpi), compress_level=1)
        pages.append({"name": path.name, "path": str(path), "truth": truth, "kind": variant, "partial": False,
                      "scope": "whole page"})
        k += 1
    return pages


def baseline_input(pages: list[dict[str, Any]], out: Path) -> None:
    """One PDF with every page image, lossless (Flate), sized by its dpi (300 when the file states none)."""
    import zlib

    import pikepdf

    pdf = pikepdf.new()
    for p in pages:
        with Image.open(p["path"]) as im:
            dpi = float((im.info.get("dpi") or (300, 300))[0]) or 300.0
            img = ImageOps.exif_transpose(im)
            if img.mode in ("RGBA", "LA", "P", "PA"):
                rgba = img.convert("RGBA")
                flat = Image.new("RGB", rgba.size, (255, 255, 255))
                flat.paste(rgba, mask=rgba.getchannel("A"))
                img = flat
            elif img.mode not in ("L", "RGB"):
                img = img.convert("RGB")
            if dpi < 50:
                dpi = 300.0
            p["dpi"] = dpi
            stream = pikepdf.Stream(pdf, zlib.compress(img.tobytes(), 6))
            stream.Filter = pikepdf.Name.FlateDecode
            stream.Type, stream.Subtype = pikepdf.Name.XObject, pikepdf.Name.Image
            stream.Width, stream.Height, stream.BitsPerComponent = img.width, img.height, 8
            stream.ColorSpace = pikepdf.Name.DeviceGray if img.mode == "L" else pikepdf.Name.DeviceRGB
            w, h = img.width * 72 / dpi, img.height * 72 / dpi
            content = pikepdf.Stream(pdf, f"q {w:.3f} 0 0 {h:.3f} 0 0 cm /Im0 Do Q".encode())
            pdf.pages.append(pikepdf.Page(pikepdf.Dictionary(
                Type=pikepdf.Name.Page, MediaBox=[0, 0, w, h], Contents=content,
                Resources=pikepdf.Dictionary(XObject=pikepdf.Dictionary(Im0=stream)))))
    pdf.save(out)


# ---------------------------------------------------------------- our pipeline (runs in a subprocess)

def simple_deskew(img: Image.Image) -> tuple[Image.Image, float]:
    """Projection-profile deskew (used only when digitise.qc is absent): the angle whose rows of ink are sharpest."""
    small = img.convert("L")
    small.thumbnail((800, 800))
    ink = ImageOps.invert(small).point(lambda v: 255 if v > 96 else 0)

    def score(deg: float) -> float:
        rows = np.asarray(ink.rotate(deg, resample=Image.Resampling.NEAREST), dtype=np.float64).sum(axis=1)
        return float(np.var(rows))

    best = max(np.arange(-5, 5.01, 0.5), key=score)
    best = max(np.arange(best - 0.5, best + 0.51, 0.1), key=score)
    if abs(best) < 0.1:
        return img, 0.0
    white: Any = 255 if img.mode == "L" else (255, 255, 255)
    return img.rotate(best, resample=Image.Resampling.BICUBIC, expand=True, fillcolor=white), float(best)


def _init_ours(threads: int, det_side: int | None) -> None:
    from dangan.digitise import ocr

    ocr.set_threads(threads)
    if det_side:
        ocr.DET_MAX_SIDE = det_side


def pipeline_page(task: tuple[str, str, str]) -> dict[str, Any]:
    """One page through our pipeline: image -> QC/deskew -> OCR -> PDF/A. Returns the seconds of each stage."""
    from dangan.digitise.images import iter_pages
    from dangan.digitise.ocr import ocr_image
    from dangan.digitise.pdfa import searchable_pdf

    path, name, out = task
    clock = time.process_time  # CPU seconds of this worker (one onnxruntime thread per core in use)
    t0 = clock()
    page = next(iter(iter_pages(path, name)))
    if page.image is None:
        return {"name": name, "error": page.error}
    t1 = clock()
    try:
        from dangan.digitise import qc

        q = qc.measure(page)
        img, skew = qc.access_image(page, q), q.skew
    except ImportError:
        img, skew = simple_deskew(page.image)
    t2 = clock()
    res = ocr_image(img)
    t3 = clock()
    dpi = (page.dpi[0] if page.dpi else 300.0) * page.scale
    searchable_pdf([(img, res, dpi)], out, title=Path(name).stem)
    t4 = clock()
    return {"name": name, "out": out, "load": t1 - t0, "qc": t2 - t1, "ocr": t3 - t2, "pdf": t4 - t3, "skew": skew,
            "lines": len(res.lines), "pid": os.getpid(), "ocr_wall": res.seconds}


def run_ours(manifest: Path, outdir: Path, workers: int, det_side: int | None, threads: int | None) -> None:
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    pages = json.loads(manifest.read_text(encoding="utf-8"))
    tasks = [(p["path"], p["name"], str(outdir / f"{i:03d}.pdf")) for i, p in enumerate(pages)]
    cpus = os.cpu_count() or 1
    workers = max(1, min(workers, cpus, len(tasks)))
    per = threads or max(1, cpus // workers)
    if workers == 1:
        _init_ours(per, det_side)
        results = [pipeline_page(t) for t in tasks]
    else:
        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"), initializer=_init_ours,
                                 initargs=(per, det_side)) as pool:
            results = list(pool.map(pipeline_page, tasks))
    (outdir / "results.json").write_text(json.dumps(results, ensure_ascii=False), encoding="utf-8")


# ---------------------------------------------------------------- measuring

def timed(cmd: list[str], env: dict[str, str] | None = None) -> tuple[float, float, subprocess.CompletedProcess]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, proc


def pdftotext(path: Path, page: int | None = None) -> str:
    args = ["pdftotext", "-enc", "UTF-8"] + (["-f", str(page), "-l", str(page)] if page else []) + [str(path), "-"]
    return subprocess.run(args, capture_output=True, text=True, check=False).stdout


def score_texts(pages: list[dict[str, Any]], texts: list[str]) -> list[int]:
    """Edit distance per page (against the part of the output the truth covers, for partial truths)."""
    return [edit_distance(norm(text), norm(p["truth"]), partial=p["partial"])
            for p, text in zip(pages, texts, strict=True)]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rendered", type=int, default=20, help="rendered A4 pages (default 20: 4 per variant)")
    ap.add_argument("--scans", type=int, default=None, help="corpus scans to use (default: all with ground truth)")
    ap.add_argument("--smoke", action="store_true", help="1 corpus scan + 1 small rendered page")
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="our worker processes (default: cores)")
    ap.add_argument("--threads", type=int, default=None, help="onnxruntime threads per worker (default cores/workers)")
    ap.add_argument("--det-side", type=int, default=None, help="override ocr.DET_MAX_SIDE (experiments)")
    ap.add_argument("--repeat", type=int, default=1, help="run both systems this many times, keep the fastest")
    ap.add_argument("--no-baseline", action="store_true", help="skip OCRmyPDF (when it is not installed)")
    ap.add_argument("--data", type=Path, default=None, help="work folder (default: a temporary folder, removed)")
    ap.add_argument("--check-targets", action="store_true", help="exit 3 when a target is missed")
    ap.add_argument("--run-ours", nargs=2, metavar=("MANIFEST", "OUTDIR"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.run_ours:
        run_ours(Path(args.run_ours[0]), Path(args.run_ours[1]), args.workers, args.det_side, args.threads)
        return 0

    work = args.data or Path(tempfile.mkdtemp(prefix="dangan-ocr-"))
    work.mkdir(parents=True, exist_ok=True)
    cores = os.cpu_count() or 1
    try:
        t0 = time.perf_counter()
        src = work / "pages"
        src.mkdir(exist_ok=True)
        if args.smoke:
            pages = corpus_pages(src, 1)
            pages += rendered_pages(src, 1, size=(1240, 1754), dpi=150, max_lines=5, start_no=len(pages))
        else:
            pages = corpus_pages(src, args.scans) if args.scans != 0 else []
            pages += rendered_pages(src, args.rendered, start_no=len(pages))
        manifest = work / "pages.json"
        manifest.write_text(json.dumps(pages, ensure_ascii=False), encoding="utf-8")
        base_in = work / "ocrmypdf-in.pdf"
        baseline_input(pages, base_in)
        n = len(pages)
        truth_chars = sum(len(norm(p["truth"])) for p in pages)
        print(f"pages: {n} ({sum(p['kind'] == 'scan' for p in pages)} corpus scans, "
              f"{sum(p['kind'] != 'scan' for p in pages)} rendered {'A4 150 dpi' if args.smoke else 'A4 300 dpi'}), "
              f"{truth_chars:,} characters of truth; "
              f"prepared in {time.perf_counter() - t0:.1f} s; {cores} cores")
        use_baseline = not args.no_baseline
        if use_baseline and not (shutil.which("ocrmypdf") and shutil.which("tesseract")):
            print("ocrmypdf: not installed (apt-get install ocrmypdf tesseract-ocr-chi-sim) — baseline skipped")
            use_baseline = False

        env = {**os.environ, "PYTHONPATH": str(ROOT / "src") + os.pathsep + os.environ.get("PYTHONPATH", "")}
        ours_cmd = [sys.executable, str(Path(__file__).resolve()), "--run-ours", str(manifest), "", "--workers",
                    str(args.workers)]
        if args.det_side:
            ours_cmd += ["--det-side", str(args.det_side)]
        if args.threads:
            ours_cmd += ["--threads", str(args.threads)]
        best: dict[str, tuple[float, float]] = {}
        for r in range(max(1, args.repeat)):
            out = work / f"ours-{r}"
            out.mkdir(exist_ok=True)
            cmd = list(ours_cmd)
            cmd[cmd.index("")] = str(out)
            wall, cpu, proc = timed(cmd, env)
            if proc.returncode != 0:
                print(proc.stdout + proc.stderr)
                print("check FAIL: our pipeline failed")
                return 1
            if "ours" not in best or wall < best["ours"][0]:
                best["ours"] = (wall, cpu)
                ours_dir = out
            if use_baseline:
                bout = work / f"ocrmypdf-{r}.pdf"
                wall, cpu, proc = timed(["ocrmypdf", "-q", "-l", "chi_sim", "--deskew", "--output-type", "pdfa",
                                         "-j", str(cores), str(base_in), str(bout)])
                if proc.returncode != 0:
                    print(proc.stdout + proc.stderr)
                    print("check FAIL: ocrmypdf failed")
                    return 1
                if "ocrmypdf" not in best or wall < best["ocrmypdf"][0]:
                    best["ocrmypdf"] = (wall, cpu)
                    base_out = bout

        results = json.loads((ours_dir / "results.json").read_text(encoding="utf-8"))
        ours_texts = [pdftotext(Path(r["out"])) if "out" in r else "" for r in results]
        lens = [max(1, len(norm(p["truth"]))) for p in pages]
        o_per = score_texts(pages, ours_texts)
        b_per = score_texts(pages, [pdftotext(base_out, i + 1) for i in range(n)]) if use_baseline else []
        print(f"\n{'page':<58} {'chars':>6} {'ours CER':>9} {'ocrmypdf CER':>13}")
        for i, p in enumerate(pages):
            b = f"{b_per[i] / lens[i]:13.3f}" if use_baseline else f"{'–':>13}"
            print(f"{p['name'][:58]:<58} {lens[i]:>6} {o_per[i] / lens[i]:9.3f} {b}")
        groups = [("corpus scans", [i for i, p in enumerate(pages) if p["kind"] == "scan"])]
        groups += [(f"rendered {v}", [i for i, p in enumerate(pages) if p["kind"] == v]) for v in VARIANTS]
        for label, idx in groups:
            if not idx:
                continue
            t = sum(lens[i] for i in idx)
            line = f"CER {label:<17} ({len(idx):>2} pages): ours {sum(o_per[i] for i in idx) / t:.4f}"
            if use_baseline:
                line += f"; ocrmypdf {sum(b_per[i] for i in idx) / t:.4f}"
            print(line)
        o_edits, total = sum(o_per), sum(lens)
        ours_cer = o_edits / total
        wall, cpu = best["ours"]
        ours_core = wall * cores / n
        print(f"\nours: {wall:.1f} s wall for {n} pages on {cores} cores = {ours_core:.2f} s/page/core; "
              f"CPU {cpu / n:.2f} s/page; CER {ours_cer:.4f} ({o_edits} edits / {total} chars)")
        stages = {k: sum(r.get(k, 0.0) for r in results) / n for k in ("load", "qc", "ocr", "pdf")}
        print("ours, where the CPU goes (s/page): " + ", ".join(f"{k} {v:.2f}" for k, v in stages.items())
              + f", process start, imports and engine load {max(0.0, cpu / n - sum(stages.values())):.2f}")
        missed = []
        if use_baseline:
            bwall, bcpu = best["ocrmypdf"]
            base_core = bwall * cores / n
            b_edits = sum(b_per)
            base_cer = b_edits / total
            print(f"ocrmypdf: {bwall:.1f} s wall = {base_core:.2f} s/page/core; CPU {bcpu / n:.2f} s/page; "
                  f"CER {base_cer:.4f} ({b_edits} edits)")
            t_ratio, c_ratio = ours_core / base_core, cpu / bcpu
            cer_ratio = ours_cer / base_cer if base_cer else (0.0 if ours_cer == 0 else float("inf"))
            print(f"time per page per core: ours / ocrmypdf = {t_ratio:.2f} × baseline (CPU {c_ratio:.2f} ×), "
                  f"target ≤ {TARGET_TIME_RATIO}: {'met' if t_ratio <= TARGET_TIME_RATIO else 'MISSED'}")
            print(f"character error rate: ours / ocrmypdf = {cer_ratio:.2f} × baseline, "
                  f"target ≤ {TARGET_CER_RATIO:.2f}: {'met' if cer_ratio <= TARGET_CER_RATIO else 'MISSED'}")
            if t_ratio > TARGET_TIME_RATIO:
                missed.append("time")
            if cer_ratio > TARGET_CER_RATIO:
                missed.append("cer")
        from dangan.formats.identify import identify_file

        pdfa = sum(1 for r in results if "out" in r and identify_file(r["out"]).puid == "fmt/477")
        empty = [p["name"] for p, t in zip(pages, ours_texts, strict=True) if not norm(t)]
        if pdfa != n or any(p["kind"] != "scan" for p in pages if p["name"] in empty):
            print(f"check FAIL: PDF/A-2b (fmt/477) {pdfa} of {n}; pages without text: {empty}")
            return 1
        print(f"check OK: {pdfa} of {n} PDFs identified as PDF/A-2b (fmt/477), every rendered page has text"
              + (f" (corpus scans without text: {', '.join(empty)})" if empty else ""))
        if args.check_targets and missed:
            return 3
        return 0
    finally:
        if args.data is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
