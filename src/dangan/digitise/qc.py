"""Image quality control of scanned pages (DA/T 31-2017 图像处理/质量检查).

`measure` looks at one `PageImage` and reports: resolution against the required minimum (200 dpi, 300 dpi for
pages of small or dense text), blank page (ink share after binarisation, speckle and borders ignored), skew angle
(projection-profile search over ±10°), dark scanner borders and the crop box that removes them, and a perceptual
hash; `mark_duplicates` compares the hashes of a batch; `access_image` makes the deskewed, cropped access copy
(利用副本). Nothing here touches the preservation master file; everything works on the reduced page image.

Flag codes and severities: LOW_DPI, UNREADABLE, BLANK, DUPLICATE, TINY fail; SKEW, DARK_BORDER warn (skew and
borders are corrected on the access copy). A page whose resolution is not recorded gets LOW_DPI as a warning.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PIL import Image

from dangan.digitise.images import PageImage

#: long side (px) of the image the measurements are made on
ANALYSIS_SIDE = 1600
#: pages smaller than this (px, either side) are not pages: TINY
TINY_SIDE = 64
#: the access copy is rotated only for skew at least this large (degrees)
DESKEW_MIN = 0.1
#: text lines shorter than this (mm) make a page "dense" (about 8 pt characters)
DENSE_LINE_MM = 2.8
#: ink share above which a page is "dense" whatever its text size
DENSE_INK = 0.16

FAIL = "fail"
WARN = "warn"


@dataclass
class QcSettings:
    """Thresholds; the defaults follow DA/T 31-2017 (≥200 dpi, ≥300 dpi for small/dense text)."""

    min_dpi: int = 200
    dense_min_dpi: int = 300
    blank_ink_ratio: float = 0.002  # ink share of the content area below which a page is blank
    max_skew: float = 0.5  # degrees; above this the page is flagged SKEW (and deskewed on the access copy)
    border_ratio: float = 0.03  # a dark band at least this share of the side is flagged DARK_BORDER
    duplicate_distance: int = 4  # Hamming distance of the 64-bit hashes at or below which pages are duplicates


@dataclass
class PageQc:
    """What QC found on one page. `border` is in pixels of the original page (PageImage.width/height)."""

    dpi: float | None
    skew: float  # degrees, + = content turned clockwise; 0.0 when it could not be measured
    ink_ratio: float
    blank: bool
    dense: bool
    border: tuple[int, int, int, int] | None  # crop box (l, t, r, b) when dark borders were found
    phash: str  # 64-bit perceptual hash, 16 hex digits ("" for an unreadable page)
    flags: list[dict[str, str]] = field(default_factory=list)
    skew_confidence: float = 0.0  # 0..1, how clearly the text lines stand out at the measured angle
    line_height_mm: float | None = None  # median height of the text lines found
    fingerprint: str = ""  # 256-bit perceptual hash (64×64 DCT), confirms phash matches in mark_duplicates
    duplicate_of: int | None = None  # index in the list given to mark_duplicates
    seconds: float = 0.0

    @property
    def failed(self) -> bool:
        return any(f["severity"] == FAIL for f in self.flags)

    def flag_codes(self) -> list[str]:
        return [f["code"] for f in self.flags]

    def as_dict(self) -> dict[str, Any]:
        return {
            "dpi": self.dpi,
            "skew": self.skew,
            "ink_ratio": self.ink_ratio,
            "blank": self.blank,
            "dense": self.dense,
            "border": list(self.border) if self.border else None,
            "phash": self.phash,
            "flags": [dict(f) for f in self.flags],
            "skew_confidence": self.skew_confidence,
            "line_height_mm": self.line_height_mm,
            "duplicate_of": self.duplicate_of,
        }


def _flag(code: str, severity: str, message: str) -> dict[str, str]:
    return {"code": code, "severity": severity, "message": message}


# ---------------------------------------------------------------------------------------------- measure


def measure(page: PageImage, settings: QcSettings | None = None) -> PageQc:
    """Quality-control one page (see the module docstring). Never raises for a bad page: an unreadable page,
    or one the measurements fail on, comes back with an UNREADABLE flag."""
    t0 = time.perf_counter()
    s = settings or QcSettings()
    dpi = min(page.dpi) if page.dpi else None
    if page.image is None or page.error:
        qc = PageQc(dpi, 0.0, 0.0, False, False, None, "")
        qc.flags.append(_flag("UNREADABLE", FAIL, f"第 {page.index + 1} 页无法读取：{page.error or '没有图像'}"))
        return qc
    try:
        qc = _measure(page, s, dpi)
    except Exception as e:  # a defect here must not stop the QC of a whole batch
        qc = PageQc(dpi, 0.0, 0.0, False, False, None, "")
        qc.flags.append(_flag("UNREADABLE", FAIL, f"第 {page.index + 1} 页无法完成图像质量检查（{type(e).__name__}: {e}）"))
    qc.seconds = round(time.perf_counter() - t0, 4)
    return qc


def _measure(page: PageImage, s: QcSettings, dpi: float | None) -> PageQc:
    assert page.image is not None
    grey = page.image if page.image.mode == "L" else page.image.convert("L")
    k = max(1, math.ceil(max(grey.size) / ANALYSIS_SIDE))
    small = grey.reduce(k) if k > 1 else grey
    a = np.asarray(small)
    to_page = page.width / small.width if small.width else 1.0  # analysis px -> original page px

    tiny = min(page.width, page.height) < TINY_SIDE
    threshold = _ink_threshold(a)
    ink = a < threshold

    # dark scanner borders (before anything else: they would dominate ink and skew)
    bands = (0, 0, 0, 0) if tiny else _dark_bands(a)
    x0, y0, x1, y1 = bands[0], bands[1], a.shape[1] - bands[2], a.shape[0] - bands[3]
    border: tuple[int, int, int, int] | None = None
    if any(bands) and x1 - x0 > a.shape[1] // 4 and y1 - y0 > a.shape[0] // 4:
        border = (
            int(round(x0 * to_page)),
            int(round(y0 * to_page)),
            min(page.width, int(round(x1 * to_page))),
            min(page.height, int(round(y1 * to_page))),
        )
    else:
        x0, y0, x1, y1 = 0, 0, a.shape[1], a.shape[0]

    # content area: inside the borders, less a thin margin where edge shadows live
    mx, my = (0, 0) if tiny else (max(1, (x1 - x0) // 50), max(1, (y1 - y0) // 50))
    content = ink[y0 + my : y1 - my, x0 + mx : x1 - mx]
    clean = _despeckle(content) if content.size else content
    ink_ratio = float(clean.mean()) if clean.size else 0.0
    blank = ink_ratio < s.blank_ink_ratio and _content_cells(clean) < 4

    # skew and text size on the cleaned content
    skew, confidence, line_px = (0.0, 0.0, None) if (blank or tiny) else _skew(clean)
    line_mm: float | None = None
    mm_per_px = _mm_per_page_px(page)
    if line_px and mm_per_px:
        line_mm = round(line_px * to_page * mm_per_px, 2)
    small_text = line_mm is not None and line_mm < DENSE_LINE_MM and confidence > 0.15
    heavy = ink_ratio > DENSE_INK and (line_mm is None or line_mm < 2 * DENSE_LINE_MM)
    dense = not blank and (small_text or heavy)

    ph, dh = _hashes(_hash_view(small, (x0, y0, x1, y1), skew, threshold, blank or tiny))
    qc = PageQc(
        dpi=dpi,
        skew=round(skew, 2),
        ink_ratio=round(ink_ratio, 5),
        blank=blank,
        dense=dense,
        border=border,
        phash=ph,
        flags=[],
        skew_confidence=round(confidence, 3),
        line_height_mm=line_mm,
        fingerprint=dh,
    )

    # flags
    need = s.dense_min_dpi if dense else s.min_dpi
    if dpi is None:
        qc.flags.append(
            _flag("LOW_DPI", WARN, f"图像未记录扫描分辨率，无法核对是否达到 {need} dpi（DA/T 31-2017），请核对扫描设置")
        )
    elif dpi + 0.5 < need:
        why = "该页文字细小或密集，" if dense else ""
        qc.flags.append(
            _flag(
                "LOW_DPI",
                FAIL,
                f"{why}扫描分辨率 {dpi:g} dpi 低于要求的 {need} dpi（DA/T 31-2017），请按不低于 {need} dpi 重新扫描",
            )
        )
    if tiny:
        qc.flags.append(_flag("TINY", FAIL, f"图像只有 {page.width}×{page.height} 像素，不是一页完整的扫描件，请重新扫描"))
    if blank:
        qc.flags.append(
            _flag("BLANK", FAIL, f"疑似空白页（墨迹占比 {ink_ratio:.2%}）；若原件确为空白页请标记为空白页，否则请重新扫描")
        )
    if abs(qc.skew) > s.max_skew:
        way = "顺时针" if qc.skew > 0 else "逆时针"
        qc.flags.append(
            _flag("SKEW", WARN, f"页面{way}倾斜 {abs(qc.skew):.1f}°（超过 {s.max_skew:g}°），利用副本已纠偏")
        )
    if border is not None:
        w_share = max(bands[0] + bands[2], 0) / a.shape[1]
        h_share = max(bands[1] + bands[3], 0) / a.shape[0]
        if max(bands[0], bands[2]) / a.shape[1] >= s.border_ratio or max(bands[1], bands[3]) / a.shape[0] >= s.border_ratio:
            qc.flags.append(
                _flag(
                    "DARK_BORDER",
                    WARN,
                    f"页面边缘有黑边（左右共 {w_share:.0%}、上下共 {h_share:.0%}），利用副本已裁边",
                )
            )
    return qc


def _scale_box(box: tuple[int, int, int, int], scale: float) -> tuple[int, int, int, int]:
    return tuple(int(round(v * scale)) for v in box)  # type: ignore[return-value]


def _mm_per_page_px(page: PageImage) -> float | None:
    if page.dpi:
        return 25.4 / min(page.dpi)
    # unknown resolution: assume the page is A4/A3 when its shape says so
    short, long_ = sorted((page.width, page.height))
    if short and abs(long_ / short - math.sqrt(2)) < 0.05:
        return 210.0 / short
    return None


# ---------------------------------------------------------------------------------------------- binarisation


def _otsu(a: np.ndarray) -> int:
    hist = np.bincount(a.ravel(), minlength=256).astype(np.float64)
    total = hist.sum()
    if total == 0:
        return 128
    levels = np.arange(256, dtype=np.float64)
    w0 = np.cumsum(hist)
    m0 = np.cumsum(hist * levels)
    w1 = total - w0
    mt = m0[-1]
    with np.errstate(divide="ignore", invalid="ignore"):
        between = (mt * w0 - m0 * total) ** 2 / (w0 * w1)
    between[~np.isfinite(between)] = 0
    return int(np.argmax(between)) + 1


def _ink_threshold(a: np.ndarray) -> int:
    """Ink is darker than both Otsu's split and the paper tone less 50 grey levels (so that paper texture,
    noise and show-through on a blank page are not ink)."""
    h, w = a.shape
    centre = a[h // 4 : max(h // 4 + 1, 3 * h // 4), w // 4 : max(w // 4 + 1, 3 * w // 4)]
    paper = float(np.percentile(centre, 90)) if centre.size else 255.0
    return int(max(1, min(_otsu(a), paper - 50)))


def _despeckle(ink: np.ndarray) -> np.ndarray:
    """Drop ink pixels with fewer than two ink neighbours (dust, scanner noise); strokes keep theirs."""
    if ink.shape[0] < 3 or ink.shape[1] < 3:
        return ink
    p = np.pad(ink, 1).astype(np.uint8)
    n = (
        p[:-2, :-2] + p[:-2, 1:-1] + p[:-2, 2:]
        + p[1:-1, :-2] + p[1:-1, 2:]
        + p[2:, :-2] + p[2:, 1:-1] + p[2:, 2:]
    )  # fmt: skip
    return ink & (n >= 2)


def _content_cells(ink: np.ndarray, grid: int = 32) -> int:
    """How many cells of a grid×grid division hold at least 2% ink (a short line of text spans several)."""
    h, w = ink.shape
    if h < grid or w < grid:
        return int(ink.any())
    hs, ws = h // grid * grid, w // grid * grid
    cells = ink[:hs, :ws].reshape(grid, hs // grid, grid, ws // grid).mean(axis=(1, 3))
    return int((cells > 0.02).sum())


def _dark_bands(a: np.ndarray) -> tuple[int, int, int, int]:
    """Width (analysis px) of the dark band along the left, top, right and bottom edge."""
    dark = a < 80
    col = dark.mean(axis=0)
    row = dark.mean(axis=1)

    def run(profile: np.ndarray) -> int:
        n = len(profile)
        limit = n // 3
        start = 0
        while start < min(limit, max(2, n // 100)) and profile[start] <= 0.6:  # a light scanner edge line
            start += 1
        i = start
        while i < limit and profile[i] > 0.6:
            i += 1
        width = i if i > start else 0
        return width if width >= max(2, n // 200) else 0

    return run(col), run(row), run(col[::-1]), run(row[::-1])


# ---------------------------------------------------------------------------------------------- skew


def _profile_score(coord: np.ndarray, n: int) -> float:
    h = np.bincount(coord, minlength=n).astype(np.float64)
    return float(np.square(np.diff(h)).sum())


def _skew(ink: np.ndarray) -> tuple[float, float, float | None]:
    """(angle in degrees, + = clockwise; confidence 0..1; median text-line height in px) by projection-profile
    search: the ink pixels are sheared by tan(angle) and the sharpness of the row (horizontal text) or column
    (vertical text) histogram is maximised, coarse over ±10° then fine, with a parabolic peak fit."""
    ys, xs = np.nonzero(ink)
    if len(ys) < 200:
        return 0.0, 0.0, None
    if len(ys) > 400_000:  # plenty: sample evenly
        step = len(ys) // 400_000 + 1
        ys, xs = ys[::step], xs[::step]
    h, w = ink.shape
    y = ys.astype(np.float64)
    x = xs.astype(np.float64)
    xc, yc = x - w / 2, y - h / 2

    def scores(angles: np.ndarray, vertical: bool) -> np.ndarray:
        out = np.empty(len(angles))
        if vertical:
            base, other, size = xc + w, yc, 2 * w + 2 * h
        else:
            base, other, size = yc + h, xc, 2 * h + 2 * w
        for i, ang in enumerate(angles):
            tan = math.tan(math.radians(ang))
            coord = base + other * tan if vertical else base - other * tan
            out[i] = _profile_score(np.clip(coord, 0, size - 1).astype(np.int64), size)
        return out

    coarse = np.arange(-10.0, 10.01, 0.5)
    found: list[tuple[float, float, bool]] = []
    for vertical in (False, True):
        sc = scores(coarse, vertical)
        base = float(np.median(sc)) or 1.0
        found.append((float(coarse[int(np.argmax(sc))]), float(sc.max()) / base, vertical))
    # CJK type sits on a grid, so columns line up too: take vertical text only when clearly sharper
    a0, sharp, vertical = found[1] if found[1][1] > 1.3 * found[0][1] else found[0]
    along = xs if not vertical else ys  # how far the lines run sets how finely an angle can be told
    extent = float(np.percentile(along, 98) - np.percentile(along, 2))
    if extent < 1 or math.degrees(math.atan(1.5 / extent)) > 0.3:
        return 0.0, 0.0, None
    fine = np.arange(a0 - 0.6, a0 + 0.601, 0.05)
    sc = scores(fine, vertical)
    i = int(np.argmax(sc))
    angle = float(fine[i])
    if 0 < i < len(fine) - 1:
        y0, y1, y2 = sc[i - 1], sc[i], sc[i + 1]
        denom = y0 - 2 * y1 + y2
        if denom < 0:
            angle += 0.05 * 0.5 * (y0 - y2) / denom
    confidence = max(0.0, min(1.0, (sharp - 1.0) / 4.0))
    if confidence < 0.5:  # no clear text lines (a photograph, a drawing): the angle means nothing
        return 0.0, confidence, None
    # text line height from the aligned profile
    tan = math.tan(math.radians(angle))
    if vertical:
        coord = np.clip(xc + w + yc * tan, 0, 2 * w + 2 * h - 1).astype(np.int64)
    else:
        coord = np.clip(yc + h - xc * tan, 0, 2 * h + 2 * w - 1).astype(np.int64)
    prof = np.bincount(coord)
    line_px = _median_run(prof > max(1.0, 0.08 * float(prof.max())))
    return angle, confidence, line_px


def _median_run(on: np.ndarray) -> float | None:
    if not on.any():
        return None
    d = np.diff(np.concatenate([[0], on.astype(np.int8), [0]]))
    starts, ends = np.nonzero(d == 1)[0], np.nonzero(d == -1)[0]
    runs = ends - starts
    runs = runs[runs >= 2]
    return float(np.median(runs)) if len(runs) else None


# ---------------------------------------------------------------------------------------------- hashes


def _dct_matrix(n: int) -> np.ndarray:
    k = np.arange(n)[:, None]
    i = np.arange(n)[None, :]
    m = np.cos(np.pi * (2 * i + 1) * k / (2 * n)) * math.sqrt(2 / n)
    m[0] /= math.sqrt(2)
    return m


_DCT32 = _dct_matrix(32)


def _hash_view(small: Image.Image, box: tuple[int, int, int, int], skew: float, threshold: int, plain: bool) -> Image.Image:
    """The page as hashed: inside the dark borders, deskewed, cut to the ink's extent, so that a rescan of the
    same sheet placed a little differently on the glass hashes the same."""
    g = small.crop(box) if box != (0, 0, small.width, small.height) else small
    if plain:
        return g
    if abs(skew) >= 0.3:
        g = g.rotate(skew, resample=Image.Resampling.BILINEAR, expand=True, fillcolor=255)
    ys, xs = np.nonzero(np.asarray(g) < threshold)
    if len(ys) < 50:
        return g
    x0, x1 = np.percentile(xs, [0.5, 99.5])
    y0, y1 = np.percentile(ys, [0.5, 99.5])
    if x1 - x0 < 8 or y1 - y0 < 8:
        return g
    return g.crop((int(x0), int(y0), int(x1) + 1, int(y1) + 1))


_DCT64 = _dct_matrix(64)


def _hashes(grey: Image.Image) -> tuple[str, str]:
    """pHash: 64 bits = the 8×8 lowest DCT frequencies of the page at 32×32 against their median (DC left out);
    and a 256-bit one from the 16×16 lowest frequencies at 64×64 that tells apart pages of the same layout."""
    out = []
    for n, k, dct in ((32, 8, _DCT32), (64, 16, _DCT64)):
        a = np.asarray(grey.resize((n, n), Image.Resampling.BOX), dtype=np.float64)
        low = (dct @ a @ dct.T)[:k, :k].ravel()
        bits = low > float(np.median(low[1:]))
        bits[0] = False
        out.append(_bits_hex(bits))
    return out[0], out[1]


def _bits_hex(bits: np.ndarray) -> str:
    v = 0
    for b in bits.ravel():
        v = (v << 1) | int(bool(b))
    return f"{v:0{len(bits.ravel()) // 4}x}"


def hamming(a: str, b: str) -> int:
    """Bits that differ between two hex hashes of the same length."""
    return (int(a, 16) ^ int(b, 16)).bit_count()


def mark_duplicates(results: list[PageQc], settings: QcSettings | None = None, labels: list[str] | None = None) -> None:
    """Flag DUPLICATE on every page that repeats an earlier one of `results` (phash within
    `duplicate_distance` bits, confirmed by the 256-bit fingerprint). Unreadable and blank pages are left out (they
    have their own flags). `labels[i]` names page i in the message (default 第 i+1 页)."""
    s = settings or QcSettings()
    idx = [
        i
        for i, q in enumerate(results)
        if q.phash and int(q.phash, 16) and not q.blank and q.duplicate_of is None  # 0 = no structure at all
    ]
    if len(idx) < 2:
        return
    ph = np.array([int(results[i].phash, 16) for i in idx], dtype=np.uint64)
    fp = [int(results[i].fingerprint, 16) if results[i].fingerprint else None for i in idx]
    fp_limit = 48 + 4 * max(0, s.duplicate_distance - 4)  # of 256 bits; other pages of one layout differ by >80
    taken: set[int] = set()
    for a in range(len(idx)):
        if a in taken:
            continue
        dist = np.bitwise_count(ph[a + 1 :] ^ ph[a])
        for off in np.nonzero(dist <= s.duplicate_distance)[0]:
            bpos = a + 1 + int(off)
            if bpos in taken:
                continue
            fa, fb = fp[a], fp[bpos]
            if fa is not None and fb is not None and (fa ^ fb).bit_count() > fp_limit:
                continue
            taken.add(bpos)
            i, j = idx[a], idx[bpos]
            q = results[j]
            q.duplicate_of = i
            name = labels[i] if labels and i < len(labels) else f"第 {i + 1} 页"
            q.flags.append(_flag("DUPLICATE", FAIL, f"与{name}重复（图像几乎相同），请核对是否重复扫描"))


# ---------------------------------------------------------------------------------------------- access copy


def access_image(page: PageImage, qc: PageQc) -> Image.Image:
    """The access copy (利用副本) of a page: dark borders cropped, skew corrected (white fill, canvas expanded),
    orientation already honoured by iter_pages. A new image; page.image and the file are left as they are."""
    if page.image is None:
        raise ValueError("page has no image")
    img = page.image
    if qc.border is not None:
        box = _scale_box(qc.border, page.scale)
        box = (max(0, box[0]), max(0, box[1]), min(img.width, box[2]), min(img.height, box[3]))
        if box[2] - box[0] > 1 and box[3] - box[1] > 1:
            img = img.crop(box)
    if abs(qc.skew) >= DESKEW_MIN:
        white: Any = 255 if img.mode == "L" else (255, 255, 255)
        img = img.rotate(qc.skew, resample=Image.Resampling.BICUBIC, expand=True, fillcolor=white)
    return img.copy() if img is page.image else img
