"""四性检测 benchmark: the 移交与接收 checks of a BagIt package, beside a plain SHA-256 + SM3 pass over the same files.

    .venv/bin/python bench/check_package.py                    # 10,000 files, 2 GiB (≈ 3 min on 2 cores)
    .venv/bin/python bench/check_package.py --files 30 --mb 2  # the smoke test runs this
    .venv/bin/python bench/check_package.py --profile /tmp/check.pstats   # also cProfile every thread

The package is built first (not measured): small PDFs of 2-4 KB with Chinese text (dangan.demo.documents.make_pdf),
JPEG and PNG images (Pillow), UTF-8 text and XML, one record per ~3 files (正文 + 附件), and a few large files
that bring the total to --mb: scanned PDFs (one JPEG per page), MP4 video and WAV audio. It is written as a
BagIt bag by dangan.packages.bagit_pkg.export_bag (SHA-256 + SM3 manifests, one metadata.json per record, METS).

Then every payload file is read once (warm page cache) and, on the same files in the same run:

1. baseline: streamed read (1 MiB chunks) + SHA-256 + SM3 of every payload file (the files under data/, the
   metadata.json of each record included), in one thread, and in --threads threads (hashlib releases the GIL).
   The one-thread baseline runs before and after dangan and the two are averaged; the ratio for the target
   uses it, as the issue words it ("the raw SHA-256 + SM3 rate"); the ratio to the threaded one is printed too;
2. dangan: dangan.packages.reader.open_package + dangan.services.checks.check_target with the preset
   移交与接收 scheme (every item of the stage), stored=False, on a real archive (SQLite, fonds Z109, the preset
   categories), as `dangan check <bag>` runs it without storing the run. Files/s, payload MB/s, the ratio to
   the baselines, the time of the content pass (digests + identification + validation of every file), the
   slowest items (ItemReport.seconds) and the peak RSS of the check;
3. identification alone: dangan.formats.identify.identify_file over the small files, files/s.

Exit status: 0; 1 when the package does not read as built (file count, digests); with --check-targets 3 when
a target is missed (check >= 70 % of the one-thread baseline, identification >= 1,000 files/s).
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import datetime as dt
import gc
import hashlib
import io
import os
import platform
import pstats
import random
import resource
import shutil
import struct
import sys
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dangan.checks.model import CheckTarget, FileUnderCheck, RecordUnderCheck, Stage
from dangan.checks.schemes import preset_items
from dangan.config import load_settings
from dangan.demo.documents import make_pdf
from dangan.formats.identify import identify_file
from dangan.packages.bagit_pkg import export_bag
from dangan.packages.reader import open_package
from dangan.services.checks import check_target
from dangan.services.context import Actor, Dangan
from dangan.services.fonds import create_department
from dangan.services.setup import init

CHUNK = 1024 * 1024
TARGET_RATIO = 0.70
TARGET_IDENT_PER_S = 1000
LARGE_FILES = 8            # at the default size; fewer for a small --mb
DEPARTMENTS = [("BGS", "办公室"), ("CWK", "财务科"), ("JJK", "基建科")]
RETENTION = ["Y", "D30"]  # the preset 保管期限表 asks at least D30 of these titles: no 归档范围 failure
KINDS = ["通知", "报告", "请示", "批复", "函", "纪要", "意见", "通报"]
TOPICS = ["档案归档", "安全生产", "政务公开", "财政预算", "防汛抗旱", "营商环境", "机关党建", "乡村振兴", "数字政府"]
ORG = "示范市人民政府办公室"


# -- measuring ------------------------------------------------------------------------------------------------

def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e6  # KiB on Linux


def reset_peak() -> bool:
    """Reset the kernel's peak RSS (VmHWM) so that one phase's own peak can be read (Linux >= 4.0)."""
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
                return int(line.split()[1]) * 1024 / 1e6
    return 0.0


def rss_mb() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as fh:
        for line in fh:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return (f"{os.cpu_count()} CPUs ({cpu}), {mem:.0f} GiB RAM, Python {platform.python_version()}, "
            f"{platform.system()} {platform.release()}")


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


@dataclass
class Timed:
    seconds: float
    files: int
    nbytes: int

    @property
    def files_s(self) -> float:
        return self.files / self.seconds if self.seconds else 0.0

    @property
    def mb_s(self) -> float:
        return self.nbytes / 1e6 / self.seconds if self.seconds else 0.0


def row(figure: str, value: str, baseline: str = "", ratio: str = "") -> None:
    print(f"  {figure:<46} {value:>14} {baseline:>22} {ratio:>8}", flush=True)


# -- the package ----------------------------------------------------------------------------------------------

def _image(kind: str, rnd: random.Random) -> bytes:
    """A photo-like image (noise under shapes, so it compresses like a photo or a scan): 10-120 KB."""
    from PIL import Image, ImageDraw, ImageFilter

    w, h = rnd.randint(240, 640), rnd.randint(180, 480)
    im = Image.effect_noise((w, h), rnd.randint(20, 60)).convert("RGB")
    d = ImageDraw.Draw(im)
    for _ in range(6):
        x, y = rnd.randrange(w), rnd.randrange(h)
        d.ellipse((x, y, x + rnd.randint(20, 200), y + rnd.randint(20, 200)),
                  fill=(rnd.randrange(256), rnd.randrange(256), rnd.randrange(256)))
    im = im.filter(ImageFilter.GaussianBlur(0.6))
    buf = io.BytesIO()
    if kind == "png":
        im.quantize(64).save(buf, "PNG", optimize=False)
    else:
        im.save(buf, "JPEG", quality=rnd.choice((75, 85, 92)))
    return buf.getvalue()


def _text(i: int, rnd: random.Random) -> bytes:
    topic = rnd.choice(TOPICS)
    lines = [f"{topic}工作情况说明（第{i}号）"]
    lines += [f"{k}. 按照{topic}工作部署，现将第{k}项有关情况说明如下，请各单位结合实际认真落实。" for k in range(1, rnd.randint(5, 80))]
    return ("\n".join(lines) + "\n").encode()


def _xml(i: int, rnd: random.Random) -> bytes:
    items = "".join(f"<条目 序号=\"{k}\"><名称>{rnd.choice(TOPICS)}</名称><数量>{rnd.randint(1, 999)}</数量></条目>"
                    for k in range(rnd.randint(5, 120)))
    return (f'<?xml version="1.0" encoding="UTF-8"?>\n<统计表 编号="{i}"><标题>附表{i}</标题>{items}</统计表>\n'
            ).encode()


def _scanned_pdf(path: Path, nbytes: int, pages: list[bytes], sizes: list[tuple[int, int]]) -> None:
    """A scanned document: one JPEG (DCTDecode) per A4 page until the file is about `nbytes` long."""
    with path.open("wb") as fh:
        offsets: dict[int, int] = {}

        def obj(n: int, body: bytes, stream: bytes | None = None) -> None:
            offsets[n] = fh.tell()
            fh.write(b"%d 0 obj\n" % n + body)
            if stream is not None:
                fh.write(b"\nstream\n" + stream + b"\nendstream")
            fh.write(b"\nendobj\n")

        fh.write(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
        n_pages = max(1, nbytes // (sum(len(p) for p in pages) // len(pages)))
        kids = " ".join(f"{3 + 3 * k} 0 R" for k in range(n_pages)).encode()
        obj(1, b"<< /Type /Catalog /Pages 2 0 R >>")
        obj(2, b"<< /Type /Pages /Kids [" + kids + b"] /Count %d >>" % n_pages)
        for k in range(n_pages):
            page, content, image = 3 + 3 * k, 4 + 3 * k, 5 + 3 * k
            jpeg = pages[k % len(pages)]
            w, h = sizes[k % len(pages)]
            obj(page, b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Resources << /XObject << /Im0 %d 0 R >> >> "
                      b"/Contents %d 0 R >>" % (image, content))
            draw = b"q 595 0 0 842 0 0 cm /Im0 Do Q"
            obj(content, b"<< /Length %d >>" % len(draw), draw)
            obj(image, b"<< /Type /XObject /Subtype /Image /Width %d /Height %d /ColorSpace /DeviceGray "
                       b"/BitsPerComponent 8 /Filter /DCTDecode /Length %d >>" % (w, h, len(jpeg)), jpeg)
        info = 3 + 3 * n_pages
        obj(info, b"<< /Producer (dangan bench scan) /CreationDate (D:20240618093000+08'00') >>")
        xref = fh.tell()
        fh.write(b"xref\n0 %d\n0000000000 65535 f \n" % (info + 1))
        for n in range(1, info + 1):
            fh.write(b"%010d 00000 n \n" % offsets[n])
        fh.write(b"trailer\n<< /Size %d /Root 1 0 R /Info %d 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (info + 1, info, xref))


def _write_random(fh: Any, n: int, rnd: random.Random) -> None:
    while n > 0:
        b = rnd.randbytes(min(4 * CHUNK, n))
        fh.write(b)
        n -= len(b)


def _mp4(path: Path, nbytes: int, rnd: random.Random) -> None:
    """ISO BMFF: ftyp, a minimal moov (mvhd), then mdat of random bytes (what a video's payload looks like)."""
    ftyp = struct.pack(">I4s4sI", 24, b"ftyp", b"isom", 512) + b"isommp41"
    mvhd_body = struct.pack(">B3xIIII", 0, 0, 0, 1000, 60_000) + struct.pack(">I", 0x00010000) + b"\x01\x00" + b"\0" * 10
    mvhd_body += struct.pack(">9I", 0x10000, 0, 0, 0, 0x10000, 0, 0, 0, 0x40000000) + b"\0" * 24 + struct.pack(">I", 2)
    mvhd = struct.pack(">I4s", 8 + len(mvhd_body), b"mvhd") + mvhd_body
    moov = struct.pack(">I4s", 8 + len(mvhd), b"moov") + mvhd
    payload = max(0, nbytes - len(ftyp) - len(moov) - 16)
    with path.open("wb") as fh:
        fh.write(ftyp + moov + struct.pack(">I4sQ", 1, b"mdat", 16 + payload))
        _write_random(fh, payload, rnd)


def _wav(path: Path, nbytes: int, rnd: random.Random) -> None:
    """RIFF/WAVE PCM 16-bit stereo 44.1 kHz, random samples."""
    data = max(4, (nbytes - 44) // 4 * 4)
    fmt = struct.pack("<HHIIHH", 1, 2, 44100, 44100 * 4, 4, 16)
    with path.open("wb") as fh:
        fh.write(b"RIFF" + struct.pack("<I", 36 + data) + b"WAVE" + b"fmt " + struct.pack("<I", 16) + fmt
                 + b"data" + struct.pack("<I", data))
        _write_random(fh, data, rnd)


@dataclass
class Built:
    records: list[RecordUnderCheck]
    small: int          # content files that are small
    large: int
    content_bytes: int
    kinds: Counter[str]


def build_sources(src: Path, n_files: int, total_bytes: int, seed: int = 70) -> Built:
    """The content files on disk and the records that own them (openers on the local paths)."""
    rnd = random.Random(seed)
    src.mkdir(parents=True)
    files: list[tuple[str, Path, str, str, int]] = []  # (name, path, role, mime, size)
    kinds: Counter[str] = Counter()
    n_large = min(LARGE_FILES, max(3, n_files // 1000)) if n_files >= 10 else 0
    n_small = n_files - n_large
    # small files: 72 % PDF, 10 % JPEG, 6 % PNG, 7 % text, 5 % XML
    used = 0
    for i in range(n_small):
        r = i * 37 % 100  # every kind early on, even in a tiny package
        if r < 72:
            kind, mime = "pdf", "application/pdf"
            title = f"关于{2024}年度{rnd.choice(TOPICS)}工作的{rnd.choice(KINDS)}（第{i}号）"
            lines = [f"第{k}条 为做好年度档案归档工作，现将有关事项通知如下，请认真贯彻落实。编号{i}-{k}"
                     for k in range(3 + i % 8)]
            data = make_pdf(title, lines, author=ORG, created=f"2024{1 + i % 12:02d}{1 + i % 28:02d}093000")
        elif r < 82:
            kind, mime, data = "jpg", "image/jpeg", _image("jpg", rnd)
        elif r < 88:
            kind, mime, data = "png", "image/png", _image("png", rnd)
        elif r < 95:
            kind, mime, data = "txt", "text/plain", _text(i, rnd)
        else:
            kind, mime, data = "xml", "application/xml", _xml(i, rnd)
        p = src / f"{i // 1000:03d}" / f"{i:06d}.{kind}"
        if i % 1000 == 0:
            p.parent.mkdir(exist_ok=True)
        p.write_bytes(data)
        used += len(data)
        kinds[kind] += 1
        files.append((p.name, p, "", mime, len(data)))
    left = total_bytes - used
    if n_large and left < n_large * 64 * 1024:
        print(f"note: the small files already take {used / 2**20:.1f} MiB of the {total_bytes / 2**20:.0f} MiB asked; "
              f"the {n_large} large files are 64 KiB each")
        left = n_large * 64 * 1024
    if n_large:
        from PIL import Image

        lrnd = random.Random(seed + 1)
        scans, sizes = [], []
        for k in range(4):  # a few A4 grey scans at 150 dpi; the pages of a big scan cycle through them
            im = Image.effect_noise((1240, 1754), 40 + 10 * k).convert("L")
            buf = io.BytesIO()
            im.save(buf, "JPEG", quality=80)
            scans.append(buf.getvalue())
            sizes.append(im.size)
        each = left // n_large
        for k in range(n_large):
            kind = ("pdf", "mp4", "wav")[k % 3]
            p = src / "large" / f"large-{k:02d}.{kind}"
            p.parent.mkdir(exist_ok=True)
            if kind == "pdf":
                _scanned_pdf(p, each, scans, sizes)
            elif kind == "mp4":
                _mp4(p, each, lrnd)
            else:
                _wav(p, each, lrnd)
            kinds[f"large {kind}"] += 1
            mime = {"pdf": "application/pdf", "mp4": "video/mp4", "wav": "audio/wav"}[kind]
            files.append((p.name, p, "", mime, p.stat().st_size))
    # records of 1-5 files (3 on average; the first is the 正文); each large file is a record of its own,
    # placed at even intervals among the others
    groups: list[list[int]] = []
    pos = 0
    while pos < n_small:
        take = min(rnd.choice((1, 2, 3, 4, 5)), n_small - pos)
        groups.append(list(range(pos, pos + take)))
        pos += take
    step = max(1, len(groups) // (n_large + 1))
    for k in range(n_large):
        groups.insert(min(len(groups), (k + 1) * step + k), [n_small + k])
    records: list[RecordUnderCheck] = []
    seqs: Counter[tuple[str, str]] = Counter()
    for i, group in enumerate(groups):
        ret = RETENTION[i % len(RETENTION)]
        dept, dept_name = DEPARTMENTS[(i // 3) % len(DEPARTMENTS)]
        cls = f"Z109-WS·2024-{ret}-{dept}"
        seqs[(ret, dept)] += 1
        seq = seqs[(ret, dept)]
        kind = KINDS[i % len(KINDS)]
        topic = TOPICS[i % len(TOPICS)]
        date = dt.date(2024, 1 + i % 12, 1 + i % 28)
        meta = {"title": f"关于{topic}工作的{kind}（第{i}号）", "year": 2024, "retention_period": ret, "responsible": ORG,
                "date": date.isoformat(), "doc_number": f"示政办〔2024〕{i + 1}号", "doc_type": kind,
                "pages": 1 + i % 9, "keywords": [topic, kind]}
        rec = RecordUnderCheck(ref=f"bench-{i}", title=meta["title"], archival_code=f"{cls}-{seq:04d}", level="item",
                               state="filed", category_code="WS", fonds_code="Z109", metadata=meta, class_key=cls,
                               seq=seq, department=(dept, dept_name))
        for j, idx in enumerate(group):
            name, p, _, mime, size = files[idx]
            rec.files.append(FileUnderCheck(
                ref=f"bench-{i}-{j + 1}", name=name, role="main" if j == 0 else "attachment", size=size,
                media_type=mime, created_at=dt.datetime(2024, date.month, date.day, 9, 30),
                location=str(p), opener=(lambda p=p: open(p, "rb")), local_path=str(p)))  # noqa: SIM115
        records.append(rec)
    content = sum(f[4] for f in files)
    return Built(records, n_small, n_large, content, kinds)


def payload_files(bag: Path) -> list[str]:
    """Every payload file of the bag, as its manifest lists it (content files and each record's metadata.json)."""
    out = []
    with (bag / "manifest-sha256.txt").open(encoding="utf-8") as fh:
        for line in fh:
            _, rel = line.rstrip("\n").split("  ", 1)
            out.append(str(bag / rel))
    return out


# -- baseline -------------------------------------------------------------------------------------------------

def hash_file(path: str) -> int:
    """Streamed read in 1 MiB chunks, SHA-256 and SM3 of every chunk (hashlib, both release the GIL)."""
    sha, sm3 = hashlib.sha256(), hashlib.new("sm3")
    n = 0
    with open(path, "rb", buffering=0) as fh:
        while True:
            b = fh.read(CHUNK)
            if not b:
                break
            sha.update(b)
            sm3.update(b)
            n += len(b)
    sha.hexdigest(), sm3.hexdigest()
    return n


def baseline(paths: list[str], threads: int) -> Timed:
    t = time.perf_counter()
    if threads <= 1:
        nbytes = sum(hash_file(p) for p in paths)
    else:
        # largest first, so that one big file started last does not leave the other threads idle
        ordered = sorted(paths, key=os.path.getsize, reverse=True)
        with ThreadPoolExecutor(threads) as pool:
            nbytes = sum(pool.map(hash_file, ordered, chunksize=16))
    return Timed(time.perf_counter() - t, len(paths), nbytes)


def warm(paths: list[str]) -> int:
    n = 0
    for p in paths:
        with open(p, "rb", buffering=0) as fh:
            while b := fh.read(4 * CHUNK):
                n += len(b)
    return n


# -- dangan ---------------------------------------------------------------------------------------------------

def open_archive(data: Path) -> Dangan:
    settings = load_settings(data)
    init(settings, fonds_code="Z109", fonds_name=ORG, admin_accounts=False)
    app = Dangan(settings)
    for i, (code, name) in enumerate(DEPARTMENTS):
        create_department(app, Actor.system(), "Z109", code, name, sort_order=i)
    return app


class Instrument:
    """Wraps the check's Profiler.compute: the thread-seconds of every file's content profile (digests, identify,
    validate) by kind, and with `profile` a cProfile of the calling thread and of every pool thread, merged."""

    def __init__(self, profile: bool = False) -> None:
        self.profile = profile
        self.profiles: list[cProfile.Profile] = []
        self.by_kind: dict[str, list[float]] = {}  # kind -> [files, thread-seconds, bytes]
        self._local = threading.local()
        self._lock = threading.Lock()
        self._orig: Any = None

    def __enter__(self) -> Instrument:
        from dangan.checks import profile as profile_mod

        self._orig = orig = profile_mod.Profiler.compute
        outer = self

        def compute(prof_self: Any, f: FileUnderCheck) -> Any:
            p = getattr(outer._local, "p", None)
            if outer.profile and p is None:
                p = outer._local.p = cProfile.Profile()
                with outer._lock:
                    outer.profiles.append(p)
            if p is not None:
                p.enable()
            try:
                res = orig(prof_self, f)
            finally:
                if p is not None:
                    p.disable()
            kind = ("large " if f.name.startswith("large-") else "") + Path(f.name).suffix.lstrip(".")
            with outer._lock:
                e = outer.by_kind.setdefault(kind, [0, 0.0, 0])
                e[0] += 1
                e[1] += res.seconds
                e[2] += res.size or 0
            return res

        profile_mod.Profiler.compute = compute  # type: ignore[method-assign]
        if self.profile:
            self.main = cProfile.Profile()
            self.profiles.append(self.main)
            self.main.enable()
        return self

    def __exit__(self, *exc: Any) -> None:
        from dangan.checks import profile as profile_mod

        if self.profile:
            self.main.disable()
        profile_mod.Profiler.compute = self._orig  # type: ignore[method-assign]

    def dump(self, path: Path) -> None:
        st = pstats.Stats(self.profiles[0])
        for p in self.profiles[1:]:
            st.add(p)
        st.dump_stats(str(path))
        print(f"\nprofile of the check (main thread + {len(self.profiles) - 1} pool threads; times are summed over "
              f"threads) written to {path}; top 25 by own time:")
        st.sort_stats("tottime").print_stats(25)


def dangan_check(app: Dangan, bag: Path, scheme: dict[str, Any]) -> tuple[float, float, float, Any]:
    """(seconds of open_package, of the content pass, of the whole check_target, the RunReport)."""
    marks: dict[str, float] = {}

    def progress(phase: str, n: int, total: int) -> None:
        if phase == "files" and n >= total and "files" not in marks:
            marks["files"] = time.perf_counter()

    t0 = time.perf_counter()
    pkg, recs = open_package(bag)
    t1 = time.perf_counter()
    target = CheckTarget(stage=Stage.TRANSFER, kind="package", label=pkg.label, records=recs, package=pkg)
    report = check_target(app, target, scheme, stored=False, progress=progress)
    t2 = time.perf_counter()
    return t1 - t0, marks.get("files", t2) - t1, t2 - t1, report


# -- main -----------------------------------------------------------------------------------------------------

def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--files", type=int, default=10_000, help="content files in the package (10000)")
    ap.add_argument("--mb", type=int, default=2048, help="total size of the content files in MiB (2048)")
    ap.add_argument("--threads", type=int, default=2, help="threads of the second baseline (2)")
    ap.add_argument("--workdir", type=Path, help="work folder (default: a new temporary folder, removed afterwards)")
    ap.add_argument("--keep", action="store_true", help="keep the work folder")
    ap.add_argument("--profile", type=Path, help="cProfile the check (every thread) and write the stats here")
    ap.add_argument("--check-targets", action="store_true", help="exit 3 when a target is missed")
    a = ap.parse_args(argv)
    if a.files < 1 or a.mb < 1 or a.threads < 1:
        ap.error("--files, --mb and --threads must be at least 1")
    return a


def main(argv: list[str] | None = None) -> int:
    a = parse_args(argv)
    own_dir = a.workdir is None
    work = Path(tempfile.mkdtemp(prefix="dangan-bench-check-")) if own_dir else a.workdir.resolve()
    for sub in ("source", "bag", "archive"):
        if (work / sub).exists():
            print(f"{work / sub} exists: give an empty or new folder with --workdir", file=sys.stderr)
            return 2
    print(f"dangan 四性检测 benchmark: a BagIt package of {a.files:,} files, {a.mb:,} MiB, preset 移交与接收 scheme")
    print(f"machine: {machine()}")
    print(f"work folder: {work}")
    print(f"load average at the start: {load()}")
    failed: list[str] = []
    try:
        t = time.perf_counter()
        built = build_sources(work / "source", a.files, a.mb * 2**20)
        export_bag(built.records, work / "bag", info={"Source-Organization": ORG}, verify=False)
        shutil.rmtree(work / "source")
        bag = work / "bag"
        paths = payload_files(bag)
        small_paths = sorted(str(p) for p in (bag / "data").rglob("*")
                             if p.is_file() and p.name != "metadata.json" and not p.name.startswith("large-"))
        print(f"built {len(built.records):,} records, {built.small + built.large:,} content files "
              f"({built.content_bytes / 2**20:,.1f} MiB; {', '.join(f'{k} {v}' for k, v in sorted(built.kinds.items()))}) "
              f"as a BagIt bag in {time.perf_counter() - t:.1f} s\n")

        app = open_archive(work / "archive")
        scheme = preset_items(Stage.TRANSFER)
        # warm: every payload file and tag file read once, the check's modules and signatures loaded
        tag_files = [str(p) for p in bag.iterdir() if p.is_file()]
        warm_bytes = warm(paths + tag_files)
        for p in small_paths[:20]:
            identify_file(p)
        print(f"page cache warmed ({warm_bytes / 2**20:,.0f} MiB read); payload: {len(paths):,} files "
              f"({sum(os.path.getsize(p) for p in paths) / 2**20:,.1f} MiB, the metadata.json of each record included)\n")

        print(f"  {'figure':<46} {'dangan':>14} {'baseline':>22} {'ratio':>8}")
        base1a = baseline(paths, 1)
        baseN = baseline(paths, a.threads)
        gc.collect()
        rss_before = rss_mb()
        can_reset = reset_peak()
        inst = Instrument(profile=a.profile is not None)
        cpu0 = time.process_time()
        with inst:
            open_s, files_s, check_s, report = dangan_check(app, bag, scheme)
        cpu_check = time.process_time() - cpu0
        peak = phase_peak_mb() if can_reset else peak_rss_mb()
        cpu0 = time.process_time()
        base1b = baseline(paths, 1)
        cpu_base = time.process_time() - cpu0
        base1 = Timed((base1a.seconds + base1b.seconds) / 2, base1a.files, base1a.nbytes)
        total_s = open_s + check_s
        n_content = report.files
        nbytes = base1.nbytes
        eng = Timed(total_s, n_content, nbytes)
        ratio1 = eng.mb_s / base1.mb_s
        ratioN = eng.mb_s / baseN.mb_s
        row("check, payload MB/s", f"{eng.mb_s:,.1f}", f"{base1.mb_s:,.1f} (1 thread)", f"{ratio1:.0%}")
        row(f"  vs. the {a.threads}-thread baseline", "", f"{baseN.mb_s:,.1f} ({a.threads} threads)", f"{ratioN:.0%}")
        row("  (1-thread baseline: before / after)", "", f"{base1a.mb_s:,.1f} / {base1b.mb_s:,.1f}")
        row("check, content files/s", f"{eng.files_s:,.0f}", f"{n_content / base1.seconds:,.0f} (1 thread)",
            f"{ratio1:.0%}")
        row("check, seconds (open_package + check_target)", f"{total_s:,.2f}", f"{base1.seconds:,.2f} (1 thread)")
        row("  open_package (manifests, metadata.json)", f"{open_s:,.2f}")
        row("  content pass (digests, identify, validate)", f"{files_s:,.2f}")
        row("  the items after the content pass", f"{check_s - files_s:,.2f}")
        row("  bytes read by the content pass (MB)", f"{report.bytes_read / 1e6:,.1f}")
        row("CPU seconds (all threads)", f"{cpu_check:,.2f}", f"{cpu_base:,.2f} (1 thread)",
            f"{cpu_base / cpu_check:.0%}")
        row("  parallelism (CPU seconds / wall seconds)", f"{cpu_check / total_s:,.2f}",
            f"{base1.seconds / baseN.seconds:,.2f} ({a.threads}-thread speed-up)")
        print("  content pass, thread-seconds by kind of file (digests + identify + validate of each file):")
        for kind, (n, secs, nb) in sorted(inst.by_kind.items(), key=lambda kv: -kv[1][1]):
            row(f"    {kind} ({int(n):,} files, {nb / 1e6:,.0f} MB)", f"{secs:,.2f} s",
                f"{nb / 1e6 / base1.mb_s:,.2f} s hashing alone")
        print(f"ratio: check {ratio1:.0%} of the one-thread SHA-256 + SM3 baseline (target >= {TARGET_RATIO:.0%}); "
              f"{ratioN:.0%} of the {a.threads}-thread baseline")
        print()
        print("  slowest items (ItemReport.seconds, after the content pass: the profiles are cached by then)")
        for it in sorted(report.items, key=lambda i: i.seconds, reverse=True)[:6]:
            row(f"    {it.code} {it.title}"[:46], f"{it.seconds:,.3f} s", f"{it.outcome.value} ({it.checked} checked)")
        summary = report.summary()
        counts = summary["counts"]
        print(f"  verdict {summary['verdict']}; items: {', '.join(f'{k} {v}' for k, v in counts.items() if v)}"
              + (f"; failed: {', '.join(f'{i.code} {i.title}' for i in report.items if i.outcome.value == '不通过')}"
                 if counts.get("不通过") else ""))
        for it in report.items:
            if it.outcome.value == "不通过" and it.evidence:
                ev = it.evidence[0]
                print(f"    {it.code}: {it.evidence_count} findings, e.g. {ev.subject}: {ev.message}")
            if it.note:
                print(f"    note {it.code}: {it.note}")
        print()
        row("RSS before the check (MB)", f"{rss_before:,.0f}")
        row("peak RSS during the check (MB)", f"{peak:,.0f}")
        row("peak RSS, whole process (getrusage, MB)", f"{peak_rss_mb():,.0f}")

        # identification alone, on the small files
        t = time.perf_counter()
        for p in small_paths:
            identify_file(p)
        ident_s = time.perf_counter() - t
        ident_rate = len(small_paths) / ident_s if ident_s else 0.0
        row(f"identify_file, {len(small_paths):,} small files, files/s", f"{ident_rate:,.0f}",
            f"{len(small_paths) / base1.seconds:,.0f} (hash, all files)")
        print(f"  load average at the end: {load()} (other work on the machine slows every figure)")

        # the package reads as built
        if n_content != built.small + built.large:
            failed.append(f"the check saw {n_content} content files, {built.small + built.large} were built")
        bad = [i for i in report.items if i.key in ("content_digest", "package_consistency", "content_complete")
               and i.outcome.value == "不通过"]
        if bad:
            failed.append("the package failed " + ", ".join(f"{i.code} ({i.evidence[:1]})" for i in bad))
        if a.profile:
            inst.dump(a.profile)
        app.close()
    finally:
        if own_dir and not a.keep:
            shutil.rmtree(work, ignore_errors=True)
    print()
    targets = [(f"check >= {TARGET_RATIO:.0%} of the one-thread SHA-256 + SM3 rate", ratio1 >= TARGET_RATIO, f"{ratio1:.0%}"),
               (f"identification >= {TARGET_IDENT_PER_S:,} files/s on small files", ident_rate >= TARGET_IDENT_PER_S,
                f"{ident_rate:,.0f} files/s")]
    for name, ok, detail in targets:
        print(f"target {'met   ' if ok else 'MISSED'} {name}: {detail}")
    for f in failed:
        print(f"check FAIL: {f}")
    if failed:
        return 1
    if a.check_targets and not all(ok for _, ok, _ in targets):
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main())
