"""Offline Chinese OCR: rapidocr 3.10.0 on onnxruntime with the PP-OCRv6 models that its wheel carries.

Nothing is ever downloaded. The engine is built with explicit paths to the three model files inside the
installed rapidocr package (any other model setting would make rapidocr fetch files from modelscope.cn);
every path is checked to lie inside the package, and rapidocr's downloader is replaced by one that refuses.

- `ocr_image(img)`: one page image -> OcrPage (lines in reading order, boxes in the image's pixels);
- `ocr_file(path)`: every page of an image file or scanned PDF (digitise.images.iter_pages);
- `ocr_many(items, workers, progress)`: pages in parallel in a spawn process pool, one engine per worker,
  onnxruntime threads split between the workers so that the pool never uses more than the machine's cores.

The engine loads lazily, once per process, and reads one page at a time. A page without text is an OcrPage
with text "" (not an error). Two changes to rapidocr's behaviour, both measured (docs/performance.md): the
lines of a page are turned by 180° only together (its line classifier misjudges long lines of small print), and
detection runs on big pages scaled to DET_MAX_SIDE px, on small images scaled up at most to DET_SMALL_MAX_SIDE.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from PIL import Image, ImageOps

from dangan.errors import ValidationFailed

ENGINE_VERSION = "3.10.0"
ENGINE = f"rapidocr {ENGINE_VERSION} PP-OCRv6"
# The default models of rapidocr 3.10.0, as shipped in its wheel (rapidocr/models/).
MODEL_FILES = {
    "Det": "PP-OCRv6_det_small.onnx",
    "Cls": "ch_ppocr_mobile_v2.0_cls_mobile.onnx",
    "Rec": "PP-OCRv6_rec_small.onnx",
}
# Text detection runs on big pages scaled so that their long side is at most this many pixels (an A4 page at
# 300 dpi: 768 x 543; 3号 characters ~14 px, 7.5 pt ones ~7 px high, still found); the lines are then cut for
# recognition from the page at rapidocr's own resolution (long side up to 2,000 px). See docs/performance.md
# "数字化 OCR" for the measurements behind these settings.
DET_MAX_SIDE = 768
# Small images are scaled up for detection as rapidocr does by default (short side to 736 px), but never beyond
# this long side: a 445 x 39 px strip would otherwise become an 8,400 px wide detection input.
DET_SMALL_SHORT_SIDE = 736
DET_SMALL_MAX_SIDE = 1600
# One text line per recognition call: batches are padded to their widest line, which cost ~20 % more CPU.
REC_BATCH = 1
# A small strip (a cut-out text line, like a 档号 label) where detection finds nothing is read as one line.
LINE_STRIP_MAX_HEIGHT = 80
UNAVAILABLE = "OCR 引擎不可用：{why}。请重新安装依赖（rapidocr==3.10.0、onnxruntime==1.32.0）后重试"

log = logging.getLogger(__name__)


@dataclass
class OcrLine:
    text: str
    box: tuple[float, float, float, float]  # x0, y0, x1, y1 in pixels of the image passed in (origin top-left)
    score: float  # recognition confidence 0..1

    @property
    def vertical(self) -> bool:
        """A column of text (vertical typesetting): much taller than wide and more than one character."""
        x0, y0, x1, y1 = self.box
        return len(self.text) > 1 and (y1 - y0) > 1.5 * (x1 - x0)


@dataclass
class OcrPage:
    text: str  # the lines joined with "\n" in reading order
    lines: list[OcrLine]
    width: int  # size of the image that was read
    height: int
    seconds: float  # time spent in the engine for this page
    engine: str = ENGINE
    index: int = 0  # page within its source file (ocr_file / ocr_many with OcrTask)
    error: str | None = None  # Chinese message when the page could not be read (text is "" then)
    error_code: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> OcrPage:
        lines = [OcrLine(str(x["text"]), tuple(float(v) for v in x["box"]), float(x["score"]))  # type: ignore[arg-type]
                 for x in d.get("lines", [])]
        return cls(text=d.get("text", ""), lines=lines, width=int(d.get("width", 0)), height=int(d.get("height", 0)),
                   seconds=float(d.get("seconds", 0.0)), engine=d.get("engine", ENGINE), index=int(d.get("index", 0)),
                   error=d.get("error"), error_code=d.get("error_code"))


@dataclass(frozen=True)
class OcrTask:
    """One page of a file, for ocr_many (picklable: the worker opens the file itself)."""

    path: str
    name: str = ""
    page: int = 0  # 0-based


# ---------------------------------------------------------------- engine

_engine: Any = None
_engine_threads: int | None = None
_lock = threading.Lock()
_call_lock = threading.Lock()  # the engine keeps per-call settings on itself: one page at a time per process


def _package_dir() -> Path:
    import importlib.util

    spec = importlib.util.find_spec("rapidocr")
    if spec is None or not spec.origin:
        raise ValidationFailed(UNAVAILABLE.format(why="未安装 rapidocr"), code="OCR_UNAVAILABLE",
                               message_en="rapidocr is not installed")
    return Path(spec.origin).resolve().parent


def check_model_path(path: str | Path) -> Path:
    """The resolved model file if it lies inside the installed rapidocr package; OCR_UNAVAILABLE otherwise."""
    models = (_package_dir() / "models").resolve()
    p = Path(path).resolve()
    if models not in p.parents:
        raise ValidationFailed(UNAVAILABLE.format(why=f"模型文件 {p} 不在 rapidocr 安装包内，不允许使用或下载外部模型"),
                               code="OCR_UNAVAILABLE", message_en="model outside the rapidocr package refused")
    if not p.is_file():
        raise ValidationFailed(UNAVAILABLE.format(why=f"缺少模型文件 {p.name}"), code="OCR_UNAVAILABLE",
                               message_en=f"model file {p.name} missing")
    return p


def _model_paths() -> dict[str, Path]:
    models = _package_dir() / "models"
    return {task: check_model_path(models / fname) for task, fname in MODEL_FILES.items()}


def _refuse_download(*args: Any, **kwargs: Any) -> Any:
    raise ValidationFailed(UNAVAILABLE.format(why="rapidocr 试图下载模型，本系统禁止联网下载"), code="OCR_UNAVAILABLE",
                           message_en="rapidocr tried to download a model")


def _quiet_rapidocr() -> None:
    logging.getLogger("RapidOCR").setLevel(logging.ERROR)


def _build_engine(threads: int | None) -> Any:
    paths = _model_paths()
    try:
        import onnxruntime  # noqa: F401 - a clear message when it is missing
        import rapidocr
        from rapidocr.utils.download_file import DownloadFile
    except ImportError as e:
        raise ValidationFailed(UNAVAILABLE.format(why=f"无法导入 {e.name or e}"), code="OCR_UNAVAILABLE",
                               message_en=f"import failed: {e}") from e
    _quiet_rapidocr()
    DownloadFile._make_http_request = classmethod(_refuse_download)  # type: ignore[method-assign,assignment]
    version = getattr(rapidocr, "__version__", ENGINE_VERSION)
    if version != ENGINE_VERSION:
        log.warning("rapidocr %s installed, %s expected", version, ENGINE_VERSION)
    params: dict[str, Any] = {
        "Global.log_level": "error",
        "Det.model_path": str(paths["Det"]),
        "Cls.model_path": str(paths["Cls"]),
        "Rec.model_path": str(paths["Rec"]),
        "Rec.rec_batch_num": REC_BATCH,
        # onnxruntime's memory arena: reusing buffers between calls saves ~10 % CPU per page
        "EngineConfig.onnxruntime.enable_cpu_mem_arena": True,
    }
    if threads:
        params["EngineConfig.onnxruntime.intra_op_num_threads"] = threads
        params["EngineConfig.onnxruntime.inter_op_num_threads"] = 1
    try:
        eng = rapidocr.RapidOCR(params=params)
    except ValidationFailed:
        raise
    except Exception as e:  # noqa: BLE001 - any failure of the engine is "unavailable" to the user
        raise ValidationFailed(UNAVAILABLE.format(why=f"{type(e).__name__}: {e}"), code="OCR_UNAVAILABLE",
                               message_en=f"engine failed to load: {e}") from e
    if hasattr(eng, "_load_cls_model"):
        eng.text_cls = _PageOrientation(eng._load_cls_model())
    _quiet_rapidocr()
    return eng


class _PageOrientation:
    """Wraps rapidocr's text-line classifier (0° / 180°) so that a page turns as a whole.

    The classifier sees each line squeezed into 192 x 48 pixels and, on long lines of small print, calls a third
    of them upside down with confidence above 0.9; rapidocr then turns those lines and reads garbage. On a page
    of three lines or more, the lines are turned only when most of them are classified upside down (a page
    scanned upside down), and then all of them; a strip of one or two lines keeps the per-line decision.
    """

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def __call__(self, img_list: Any) -> Any:
        out = self.inner(img_list)
        crops = [img_list] if not isinstance(img_list, list) else list(img_list)
        if len(crops) < 3:
            return out
        thresh = getattr(self.inner, "cls_thresh", 0.9)
        turned = sum(1 for label, score in out.cls_res if "180" in label and score > thresh)
        if turned > len(crops) / 2:
            import cv2

            out.img_list = [cv2.rotate(c, cv2.ROTATE_180) for c in crops]
        else:
            out.img_list = crops
        return out

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def _get_engine() -> Any:
    global _engine
    if _engine is None:
        with _lock:
            if _engine is None:
                _engine = _build_engine(_engine_threads)
    return _engine


def engine_available() -> bool:
    """True when rapidocr, onnxruntime and the packaged models are installed (does not run the engine)."""
    try:
        import importlib.util

        if importlib.util.find_spec("onnxruntime") is None:
            return False
        _model_paths()
        return True
    except (ValidationFailed, ImportError, ValueError):
        return False


# ---------------------------------------------------------------- one image

def _engine_input(img: Image.Image) -> Image.Image:
    """Modes rapidocr reads correctly: L, RGB, or RGBA (it puts transparent text on a contrasting background)."""
    mode = img.mode
    if mode in ("L", "RGB", "RGBA"):
        return img
    if mode in ("1", "I", "I;16", "I;16B", "I;16L", "F"):
        return img.convert("L") if mode == "1" else ImageOps.autocontrast(img.convert("F").convert("L"))
    if mode in ("LA", "PA", "La", "RGBa") or (mode == "P" and "transparency" in img.info):
        return img.convert("RGBA")
    return img.convert("RGB")


def _bounds(quad: Any, w: int, h: int) -> tuple[float, float, float, float]:
    xs = [float(p[0]) for p in quad]
    ys = [float(p[1]) for p in quad]
    return (max(0.0, min(xs)), max(0.0, min(ys)), min(float(w), max(xs)), min(float(h), max(ys)))


def reading_order(lines: Sequence[OcrLine]) -> list[OcrLine]:
    """Lines as a person reads them.

    Horizontal text: rows top to bottom, each row left to right. Lines join a row when they overlap it
    vertically by at least half the smaller height, which tolerates slight skew (a tilted row drifts by far
    less than half a line over its length). A page of mostly vertical columns reads right to left, each
    column top to bottom (traditional vertical typesetting).
    """
    items = [ln for ln in lines if ln.text]
    if not items:
        return []
    vertical = sum(1 for ln in items if ln.vertical)
    if vertical > len(items) / 2:
        return _columns(items)
    rows: list[list[OcrLine]] = []
    extents: list[tuple[float, float]] = []
    for ln in sorted(items, key=lambda ln: ((ln.box[1] + ln.box[3]) / 2, ln.box[0])):
        y0, y1 = ln.box[1], ln.box[3]
        placed = False
        for i in range(len(rows) - 1, max(-1, len(rows) - 4), -1):  # the last few rows: skew moves little
            r0, r1 = extents[i]
            overlap = min(y1, r1) - max(y0, r0)
            if overlap >= 0.5 * min(y1 - y0, r1 - r0) and overlap > 0:
                rows[i].append(ln)
                placed = True
                break
        if not placed:
            rows.append([ln])
            extents.append((y0, y1))
    out: list[OcrLine] = []
    for row in rows:
        out.extend(sorted(row, key=lambda ln: ln.box[0]))
    return out


def _columns(items: list[OcrLine]) -> list[OcrLine]:
    cols: list[list[OcrLine]] = []
    extents: list[tuple[float, float]] = []
    for ln in sorted(items, key=lambda ln: -(ln.box[0] + ln.box[2]) / 2):
        x0, x1 = ln.box[0], ln.box[2]
        for i, (c0, c1) in enumerate(extents):
            overlap = min(x1, c1) - max(x0, c0)
            if overlap > 0 and overlap >= 0.5 * min(x1 - x0, c1 - c0):
                cols[i].append(ln)
                break
        else:
            cols.append([ln])
            extents.append((x0, x1))
    return [ln for col in cols for ln in sorted(col, key=lambda ln: ln.box[1])]


def _limit_detection(eng: Any, w: int, h: int) -> None:
    """Detection size for this image: capped for big pages, rapidocr's default for small images."""
    det = eng._load_det_model() if hasattr(eng, "_load_det_model") else None
    if det is None or not hasattr(det, "limit_type"):
        return
    if max(w, h) > DET_MAX_SIDE:
        det.limit_type, det.limit_side_len = "max", DET_MAX_SIDE
    else:  # short side up to 736 px ("min" scales up only), long side at most DET_SMALL_MAX_SIDE
        short, long_ = min(w, h), max(w, h)
        det.limit_type = "min"
        det.limit_side_len = max(1, int(min(DET_SMALL_SHORT_SIDE, short * DET_SMALL_MAX_SIDE / long_)))


def _lines(res: Any, w: int, h: int) -> list[OcrLine]:
    lines: list[OcrLine] = []
    boxes, txts, scores = getattr(res, "boxes", None), getattr(res, "txts", None), getattr(res, "scores", None)
    if boxes is not None and txts is not None:
        for quad, txt, score in zip(boxes, txts, scores or [1.0] * len(txts), strict=False):
            text = " ".join(str(txt).split())
            if text:
                lines.append(OcrLine(text, _bounds(quad, w, h), round(float(score), 4)))
    return lines


def ocr_image(img: Image.Image) -> OcrPage:
    """OCR one page image (as loaded: orientation already applied). Boxes are in this image's pixels."""
    if not isinstance(img, Image.Image):
        raise ValidationFailed("OCR 的输入必须是图像", code="OCR_BAD_INPUT", message_en="not a PIL image")
    w, h = img.size
    if w < 1 or h < 1:
        return OcrPage(text="", lines=[], width=w, height=h, seconds=0.0)
    eng = _get_engine()
    src = _engine_input(img)
    t = time.perf_counter()
    try:
        with _call_lock:
            _limit_detection(eng, w, h)
            res = eng(src, use_det=True, use_cls=True, use_rec=True)
            lines = _lines(res, w, h)
            if not lines and 8 <= h <= LINE_STRIP_MAX_HEIGHT and w >= 3 * h:
                res = eng(src, use_det=False, use_cls=True, use_rec=True)  # the strip itself as one line
                txts, scores = getattr(res, "txts", None) or (), getattr(res, "scores", None) or ()
                lines = [OcrLine(" ".join(str(tx).split()), (0.0, 0.0, float(w), float(h)), round(float(sc), 4))
                         for tx, sc in zip(txts, scores, strict=False) if str(tx).strip() and float(sc) >= 0.5]
    except ValidationFailed:
        raise
    except Exception as e:  # noqa: BLE001 - a page the engine cannot process is a page error, not a crash
        raise ValidationFailed(f"OCR 识别失败：{type(e).__name__}: {e}", code="OCR_FAILED",
                               message_en=f"OCR failed: {e}") from e
    seconds = time.perf_counter() - t
    lines = reading_order(lines)
    return OcrPage(text="\n".join(ln.text for ln in lines), lines=lines, width=w, height=h,
                   seconds=round(seconds, 3))


# ---------------------------------------------------------------- files

def _iter_images(path: str | Path, name: str = "") -> Iterator[tuple[int, Image.Image | None, str | None, str | None]]:
    """(index, image, error, error_code) per page; digitise.images when present, else Pillow alone."""
    try:
        from dangan.digitise.images import iter_pages
    except ImportError:  # pragma: no cover - the imaging module is part of the package
        iter_pages = None
    if iter_pages is not None:
        for p in iter_pages(path, name):
            yield p.index, p.image, p.error, getattr(p, "error_code", None) or ("IMAGE_UNREADABLE" if p.error else None)
        return
    label = name or Path(path).name  # pragma: no cover
    try:  # pragma: no cover
        im = Image.open(path)
    except Exception as e:  # noqa: BLE001
        raise ValidationFailed(f"无法读取图像“{label}”：{e}", code="IMAGE_UNREADABLE") from e
    with im:  # pragma: no cover
        for i in range(int(getattr(im, "n_frames", 1) or 1)):
            try:
                im.seek(i)
                yield i, ImageOps.exif_transpose(im.copy()), None, None
            except Exception as e:  # noqa: BLE001
                yield i, None, f"第 {i + 1} 页无法读取：{e}", "IMAGE_UNREADABLE"


def _error_page(index: int, error: str, code: str | None) -> OcrPage:
    return OcrPage(text="", lines=[], width=0, height=0, seconds=0.0, index=index, error=error,
                   error_code=code or "IMAGE_UNREADABLE")


def ocr_file(path: str | Path, name: str = "") -> list[OcrPage]:
    """OCR every page of an image file (TIFF, JPEG, JPEG 2000, PNG) or scanned PDF, in one process.

    A page that cannot be read comes back with `error` set and empty text; a file that cannot be opened
    at all raises ValidationFailed IMAGE_UNREADABLE.
    """
    pages: list[OcrPage] = []
    for index, img, error, code in _iter_images(path, name):
        if img is None:
            pages.append(_error_page(index, error or "该页无法读取", code))
            continue
        page = ocr_image(img)
        page.index = index
        pages.append(page)
    return pages


# ---------------------------------------------------------------- many pages in parallel

_file_cursor: dict[str, Any] = {}  # per worker: the open page iterator of the file read last


def _page_of(task: OcrTask) -> tuple[Image.Image | None, str | None, str | None]:
    """Page `task.page` of its file, reusing the iterator when this worker reads the file's pages in order."""
    key = (task.path, task.name)
    cur = _file_cursor.get("key") == key and _file_cursor.get("next", 0) <= task.page
    if not cur:
        _file_cursor.clear()
        _file_cursor.update(key=key, it=_iter_images(task.path, task.name), next=0)
    it = _file_cursor["it"]
    for index, img, error, code in it:
        _file_cursor["next"] = index + 1
        if index == task.page:
            return img, error, code
    _file_cursor.clear()
    return None, f"文件中没有第 {task.page + 1} 页", "PAGE_NOT_FOUND"


def _run_item(item: Image.Image | OcrTask) -> OcrPage:
    try:
        return _run_item_raw(item)
    except ValidationFailed as e:
        if e.code == "OCR_UNAVAILABLE":
            raise
        return _error_page(item.page if isinstance(item, OcrTask) else 0, e.message, e.code)


def _run_item_raw(item: Image.Image | OcrTask) -> OcrPage:
    if isinstance(item, OcrTask):
        try:
            img, error, code = _page_of(item)
        except ValidationFailed as e:
            return _error_page(item.page, e.message, e.code)
        if img is None:
            return _error_page(item.page, error or "该页无法读取", code)
        page = ocr_image(img)
        page.index = item.page
        return page
    return ocr_image(item)


def set_threads(threads: int | None) -> None:
    """CPU threads for the engine of this process (None: onnxruntime's default, all cores).

    Takes effect when the engine loads, so call it first thing in a worker process (ocr_many does).
    """
    global _engine_threads
    _engine_threads = threads
    if threads:
        try:
            import cv2

            cv2.setNumThreads(threads)
        except Exception:  # noqa: BLE001 - only a tuning knob
            pass


def _init_worker(threads: int) -> None:
    set_threads(threads)
    _quiet_rapidocr()


def _worker(item: Image.Image | OcrTask) -> OcrPage:
    return _run_item(item)


def file_tasks(path: str | Path, name: str = "") -> list[OcrTask]:
    """One OcrTask per page of a file, for ocr_many."""
    from dangan.digitise.images import page_count

    return [OcrTask(str(path), name, i) for i in range(page_count(path, name))]


def ocr_many(items: Sequence[Image.Image | OcrTask], workers: int | None = None,
             progress: Callable[[int, int], None] | None = None) -> list[OcrPage]:
    """OCR many pages in parallel; the result list matches `items` in order.

    Items are PIL images or OcrTask (a page of a file, opened by the worker). Up to `workers` processes
    (default and maximum: os.cpu_count()), started with "spawn" and each loading the engine once; the
    onnxruntime threads are split between them. `progress(done, total)` is called after every page.
    """
    items = list(items)
    total = len(items)
    cpus = os.cpu_count() or 1
    n = max(1, min(workers or cpus, cpus, total or 1))
    results: list[OcrPage | None] = [None] * total
    if progress:
        progress(0, total)
    if n == 1 or total <= 1:
        for i, item in enumerate(items):
            results[i] = _run_item(item)
            if progress:
                progress(i + 1, total)
        return [r for r in results if r is not None]
    import multiprocessing

    threads = max(1, cpus // n)
    done = 0
    with ProcessPoolExecutor(max_workers=n, mp_context=multiprocessing.get_context("spawn"),
                             initializer=_init_worker, initargs=(threads,)) as pool:
        # Tasks of one file go to the pool in order, at most 2 per worker ahead, so a worker mostly reads
        # consecutive pages and memory holds only a few decoded pages at a time.
        pending: dict[Future[OcrPage], int] = {}
        queue = iter(enumerate(items))
        for i, item in queue:
            pending[pool.submit(_worker, item)] = i
            if len(pending) >= 2 * n:
                break
        while pending:
            finished, _ = wait(pending, return_when=FIRST_COMPLETED)
            for fut in finished:
                i = pending.pop(fut)
                results[i] = fut.result()
                done += 1
                if progress:
                    progress(done, total)
                nxt = next(queue, None)
                if nxt is not None:
                    pending[pool.submit(_worker, nxt[1])] = nxt[0]
    return [r for r in results if r is not None]


__all__ = ["ENGINE", "OcrLine", "OcrPage", "OcrTask", "engine_available", "file_tasks", "ocr_file", "ocr_image",
           "ocr_many", "reading_order", "check_model_path", "set_threads"]
