"""检索: the search index kept in step with the archive, Chinese full-text and metadata search trimmed in the query.

- Every record has one `search_docs` row: its fields segmented (search.segment.index_text), its files' text in
  `content`. SQLite keeps an FTS5 table over it (triggers of migration 0005); PostgreSQL a weighted tsvector.
- The index follows the archive: a unit of work that created or changed records hands their ids to the
  `Indexer` after commit (metadata at once, then the text of new files in a background thread); `reindex`
  rebuilds what is missing or stale, resumably, in parallel; `dangan reindex` runs it with a progress bar.
- A search is one SQL query over the index joined to `records`, with the reader's trimming (`visible`) and the
  filters in its WHERE: hits, totals and facets never count a record the reader may not see.
"""

from __future__ import annotations

import base64
import binascii
import collections
import contextlib
import datetime as dt
import json
import logging
import math
import os
import queue
import re
import tempfile
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    Date,
    Float,
    Select,
    cast,
    delete,
    func,
    literal,
    literal_column,
    or_,
    select,
    text,
    true,
    tuple_,
)
from sqlalchemy.orm import Session

from dangan.db.models import (
    Category,
    Department,
    File,
    FileText,
    FileTextPage,
    Fonds,
    Record,
    SearchDoc,
    SearchLog,
    utcnow,
)
from dangan.domain.retention import parse_retention
from dangan.domain.states import STATE_LABELS, RecordState
from dangan.errors import ValidationFailed
from dangan.search import (
    SEGMENTATION_VERSION,
    highlight_terms,
    index_text,
    normalize,
    parse,
    to_fts5,
    to_tsquery,
)
from dangan.search.segment import normalize_archival_code
from dangan.services.access import Trim, require, trim_clause, trim_for, visible
from dangan.services.context import Actor, Dangan
from dangan.services.views import iso

log = logging.getLogger("dangan.search")

NO_DATE = dt.date(1900, 1, 1)  # records without a 日期 sort as the oldest
MAX_CONTENT_CHARS = 400_000   # of a record's extracted text put into the index (PostgreSQL: tsvector ≤ 1 MB)
INDEX_BATCH = 500
PARALLEL_INDEX_MIN = 20_000  # records: below this, worker processes cost more than they save
EXTRACT_AFTER_COMMIT_MAX = 20  # a unit of work touching more records than this is a bulk load
MAX_LIMIT = 100
SNIPPET_CHARS = 120
INDEXED_ACTIONS = frozenset({"record.create", "record.update", "record.file", "record.submit", "record.return",
                             "record.transition", "file.add", "file.remove"})


# ---------------------------------------------------------------- keeping the index in step


def _raw_docs(s: Session, ids: list[int]) -> list[tuple[Any, ...]]:
    """What the index rows of these records are made of, as stored (not yet segmented)."""
    recs = s.execute(select(Record.id, Record.title, Record.doc_number, Record.responsible, Record.archival_code,
                            Record.meta, Record.state).where(Record.id.in_(ids))).all()
    texts: dict[int, list[str]] = {}
    nfiles: dict[int, int] = {}
    rows = s.execute(select(File.record_id, FileTextPage.text).join(FileTextPage, FileTextPage.file_id == File.id)
                     .where(File.record_id.in_(ids), File.is_current).order_by(File.record_id, File.sequence,
                                                                               FileTextPage.page)).all()
    for rid, t in rows:
        texts.setdefault(rid, []).append(t)
    for rid, n in s.execute(select(File.record_id, func.count(FileText.file_id)).join(FileText, FileText.file_id == File.id)
                            .where(File.record_id.in_(ids), File.is_current).group_by(File.record_id)).all():
        nfiles[rid] = n
    out = []
    for rid, title, doc_number, responsible, code, meta, state in recs:
        if state == RecordState.DESTROYED.value:
            continue
        kw = (meta or {}).get("keywords")
        keywords = " ".join(kw) if isinstance(kw, list) else str(kw or "")
        content = "\n".join(texts.get(rid, []))[:MAX_CONTENT_CHARS]
        out.append((rid, title or "", doc_number or "", responsible or "", code or "", keywords, content,
                    nfiles.get(rid, 0)))
    return out


def segment_docs(raw: list[tuple[Any, ...]]) -> list[dict[str, Any]]:
    """Index rows from _raw_docs() (a pure function: reindex runs it in worker processes)."""
    now = utcnow()
    return [{"record_id": rid, "title": index_text(title), "doc_number": index_text(doc_number),
             "responsible": index_text(responsible), "archival_code": index_text(code),
             "keywords": index_text(keywords), "content": index_text(_join_lines(content)),
             "seg_version": SEGMENTATION_VERSION, "content_files": nfiles, "indexed_at": now}
            for rid, title, doc_number, responsible, code, keywords, content, nfiles in raw]


def _docs(s: Session, ids: list[int]) -> list[dict[str, Any]]:
    return segment_docs(_raw_docs(s, ids))


def _join_lines(text_: str) -> str:
    # a Chinese phrase wrapped across two lines of a page is one phrase again
    return re.sub(r"(?<=[\u4e00-\u9fff])\n(?=[\u4e00-\u9fff])", "", text_)


def _replace_docs(s: Session, chunk: list[int], docs: list[dict[str, Any]]) -> None:
    s.execute(delete(SearchDoc).where(SearchDoc.record_id.in_(chunk)))
    if docs:
        s.execute(SearchDoc.__table__.insert(), docs)


def _write_docs(app: Dangan, chunk: list[int], docs: list[dict[str, Any]]) -> None:
    with app.sessions.begin() as s:
        _replace_docs(s, chunk, docs)


def index_records(app: Dangan, record_ids: Iterable[int]) -> int:
    """(Re)write the index rows of these records from what is stored now. Returns how many were written."""
    ids = sorted({int(i) for i in record_ids})
    n = 0
    for i in range(0, len(ids), INDEX_BATCH):
        chunk = ids[i:i + INDEX_BATCH]
        with app.sessions.begin() as s:  # read and rewrite in one transaction
            docs = _docs(s, chunk)
            _replace_docs(s, chunk, docs)
            n += len(docs)
    return n


PARALLEL_CHUNK = 1000   # records per segmentation task
WRITE_BATCH = 4000      # records per write transaction of a bulk reindex (FTS5 flushes once per transaction)


def index_records_parallel(app: Dangan, record_ids: list[int], workers: int,
                           progress: Callable[[int], None] | None = None) -> int:
    """index_records for a large set: the segmentation in worker processes while this process reads the next
    chunks and writes the finished ones, in order, a few thousand records per transaction."""
    if workers <= 1 or len(record_ids) <= INDEX_BATCH:
        n = 0
        for i in range(0, len(record_ids), INDEX_BATCH):
            n += index_records(app, record_ids[i:i + INDEX_BATCH])
            if progress:
                progress(min(i + INDEX_BATCH, len(record_ids)))
        return n
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    chunks = [record_ids[i:i + PARALLEL_CHUNK] for i in range(0, len(record_ids), PARALLEL_CHUNK)]
    n = done = 0
    batch_ids: list[int] = []
    batch_docs: list[dict[str, Any]] = []

    def write(final: bool = False) -> None:
        nonlocal n, done
        if batch_ids and (final or len(batch_ids) >= WRITE_BATCH):
            _write_docs(app, batch_ids, batch_docs)
            n += len(batch_docs)
            done += len(batch_ids)
            batch_ids.clear()
            batch_docs.clear()
            if progress:
                progress(done)

    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(workers, mp_context=ctx) as pool:
        pending: collections.deque[tuple[list[int], Any]] = collections.deque()
        for chunk in chunks:
            with app.read_sessions() as s:
                pending.append((chunk, pool.submit(segment_docs, _raw_docs(s, chunk))))
            while len(pending) > workers * 2 or (pending and pending[0][1].done()):
                c, fut = pending.popleft()
                batch_ids.extend(c)
                batch_docs.extend(fut.result())
                write()
        while pending:
            c, fut = pending.popleft()
            batch_ids.extend(c)
            batch_docs.extend(fut.result())
            write()
        write(final=True)
    return n


def extract_files(app: Dangan, file_ids: Iterable[int], *, workers: int = 1) -> int:
    """Extract the text of these files into file_texts / file_text_pages (replacing what was there)."""
    from dangan.formats.extract import extract_text

    ids = sorted(set(file_ids))
    if not ids:
        return 0
    with app.read_sessions() as s:
        rows = s.execute(select(File.id, File.record_id, File.name, File.storage_key).where(File.id.in_(ids))).all()

    def one(row: Any) -> tuple[Any, Any]:
        fid, rid, name, key = row
        path, tmp = _local_path(app, key)
        try:
            return row, extract_text(path, name) if path else None
        finally:
            if tmp:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)

    with ThreadPoolExecutor(max(1, workers)) as pool:
        results = list(pool.map(one, rows))
    with app.sessions.begin() as s:
        s.execute(delete(FileTextPage).where(FileTextPage.file_id.in_(ids)))
        s.execute(delete(FileText).where(FileText.file_id.in_(ids)))
        for (fid, rid, _name, _key), ex in results:
            if ex is None:
                s.add(FileText(file_id=fid, record_id=rid, status="unreadable", message="存储中找不到该文件的内容",
                               chars=0, pages=0, truncated=False))
                continue
            s.add(FileText(file_id=fid, record_id=rid, status=ex.status, encoding=ex.encoding, message=ex.message[:2000],
                           chars=ex.chars, pages=len(ex.pages), truncated=ex.truncated))
            s.flush()
            if ex.pages:
                s.execute(FileTextPage.__table__.insert(), [{"file_id": fid, "page": p.page, "text": p.text}
                                                          for p in ex.pages])
    return len(results)


def _local_path(app: Dangan, key: str) -> tuple[str | None, str | None]:
    """A path to read the blob from: the blob itself on a local store, a temporary copy otherwise."""
    local = getattr(app.store, "_path", None)
    if local is not None:
        p = local(key)
        return (str(p), None) if p.is_file() else (None, None)
    try:
        fd, tmp = tempfile.mkstemp(prefix="extract-", dir=str(app.settings.data_dir / "tmp")
                                   if (app.settings.data_dir / "tmp").is_dir() else None)
        with os.fdopen(fd, "wb") as out, app.store.open(key) as fh:
            while b := fh.read(1 << 20):
                out.write(b)
        return tmp, tmp
    except Exception:  # noqa: BLE001 - a missing blob: recorded as unreadable
        return None, None


class Indexer:
    """After-commit indexing: metadata at once (in the caller's thread), the text of new files in a thread."""

    def __init__(self, app: Dangan) -> None:
        self.app = app
        self._q: queue.Queue[list[int]] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._busy = 0

    def submit(self, record_ids: Iterable[int], *, extract: bool = True) -> None:
        ids = sorted(set(record_ids))
        if not ids:
            return
        try:
            index_records(self.app, ids)
        except Exception:  # the business operation has committed; `reindex` catches up later
            log.exception("search index update failed for %d records", len(ids))
            return
        if not extract or len(ids) > EXTRACT_AFTER_COMMIT_MAX:
            return  # a bulk load: its files' text is left to the periodic reindex (start_reindexer), not raced
        with self._lock:
            self._busy += 1
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="search-indexer", daemon=True)
                self._thread.start()
        self._q.put(ids)

    def _run(self) -> None:
        while True:
            try:
                ids = self._q.get(timeout=5)
            except queue.Empty:
                return
            try:
                with self.app.read_sessions() as s:
                    pending = list(s.scalars(select(File.id).outerjoin(FileText, FileText.file_id == File.id)
                                             .where(File.record_id.in_(ids), File.is_current,
                                                    FileText.file_id.is_(None))))
                if pending:
                    extract_files(self.app, pending)
                    index_records(self.app, ids)
            except Exception:  # noqa: BLE001
                log.exception("text extraction failed for records %s…", ids[:5])
            finally:
                with self._lock:
                    self._busy -= 1

    def flush(self, timeout: float = 60) -> None:
        """Wait until every submitted record has its text indexed (tests, and the CLI before it exits)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if self._busy == 0:
                    return
            time.sleep(0.02)


def after_commit_ids(events: Iterable[Any]) -> set[int]:
    """The records a unit of work's audit events say it created or changed."""
    ids: set[int] = set()
    for ev in events:
        if ev.outcome != "success" or ev.action not in INDEXED_ACTIONS:
            continue
        if ev.object_type == "record" and str(ev.object_id).isdigit():
            ids.add(int(ev.object_id))
        rid = (ev.detail or {}).get("record_id")
        if isinstance(rid, int):
            ids.add(rid)
    return ids


# ---------------------------------------------------------------- reindex (complete, parallel, resumable)


def reindex(app: Dangan, actor: Actor, *, full: bool = False, workers: int | None = None,
            progress: Callable[[str, int, int], None] | None = None) -> dict[str, Any]:
    """Extract the text of every file that has none (all files with full=True), then index every record whose
    index row is missing or older than the record or than its files' text. Interrupted, it resumes: what was
    done is kept."""
    require(actor, "search.reindex")
    workers = workers or max(1, min(4, os.cpu_count() or 1))
    t0 = time.perf_counter()
    with app.read_sessions() as s:
        q = select(File.id).where(File.is_current)
        if not full:
            q = q.outerjoin(FileText, FileText.file_id == File.id).where(FileText.file_id.is_(None))
        file_ids = list(s.scalars(q.order_by(File.id)))
    done = 0
    for i in range(0, len(file_ids), 200):
        done += extract_files(app, file_ids[i:i + 200], workers=workers)
        if progress:
            progress("text", done, len(file_ids))
    with app.read_sessions() as s:
        newest_text = (select(FileText.record_id, func.max(FileText.extracted_at).label("t"))
                       .group_by(FileText.record_id).subquery())
        q = (select(Record.id).outerjoin(SearchDoc, SearchDoc.record_id == Record.id)
             .outerjoin(newest_text, newest_text.c.record_id == Record.id)
             .where(Record.state != RecordState.DESTROYED.value))
        if not full:
            q = q.where(or_(SearchDoc.record_id.is_(None), SearchDoc.seg_version != SEGMENTATION_VERSION,
                            SearchDoc.indexed_at < Record.updated_at, SearchDoc.indexed_at < newest_text.c.t))
        rec_ids = list(s.scalars(q.order_by(Record.id)))
    indexed = index_records_parallel(app, rec_ids, workers if len(rec_ids) >= PARALLEL_INDEX_MIN else 1,
                                     (lambda k: progress("index", k, len(rec_ids))) if progress else None)
    tantivy_docs = None
    idx = app.tantivy
    if idx is not None:
        if full or not idx.built():
            tantivy_docs = idx.rebuild(app.engine, (lambda n, t: progress("tantivy", n, t)) if progress else None)
        else:
            with app.read_sessions() as s:
                idx.sync(s)
        with app.sessions.begin() as s:
            idx.prune_log(s)
    with app.uow(actor) as uow:
        uow.audit("search.reindex", "search", "", full=full, files=len(file_ids), records=indexed)
    return {"files_extracted": len(file_ids), "records_indexed": indexed, "seconds": round(time.perf_counter() - t0, 2),
            "full": full, "tantivy_docs": tantivy_docs}


class Reindexer:
    """`dangan serve` runs an incremental reindex every few minutes: the text of bulk-loaded files, anything an
    after-commit update missed. One at a time; errors are logged and the next round tries again."""

    def __init__(self, app: Dangan, interval_s: float) -> None:
        self.app, self.interval = app, interval_s
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="search-reindexer", daemon=True)
        self.runs = 0

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                reindex(self.app, Actor.system("scheduler"))
                self.runs += 1
            except Exception:  # noqa: BLE001 - keep the server up; the next round retries
                log.exception("scheduled reindex failed")

    def stop(self, timeout: float = 10) -> None:
        self._stop.set()
        self.thread.join(timeout)


def start_reindexer(app: Dangan) -> Reindexer | None:
    minutes = app.settings.search_reindex_interval_minutes
    if minutes <= 0 or not app.settings.search_index:
        return None
    r = Reindexer(app, minutes * 60)
    r.thread.start()
    return r


# ---------------------------------------------------------------- search


@dataclass
class SearchFilter:
    fonds: str | None = None
    category: str | None = None
    year: int | None = None
    year_from: int | None = None
    year_to: int | None = None
    retention_period: str | None = None
    department: str | None = None
    security_level: str | None = None
    state: str | None = None
    date_from: str | None = None
    date_to: str | None = None


SORTS = ("relevance", "date", "date_asc")


def _filters(q: Select[Any], f: SearchFilter) -> Select[Any]:
    if f.fonds:
        q = q.where(Record.fonds_id.in_(select(Fonds.id).where(Fonds.code == f.fonds)))
    if f.category:
        cats = select(Category.id).where(Category.code == f.category)
        if f.fonds:
            cats = cats.where(Category.fonds_id.in_(select(Fonds.id).where(Fonds.code == f.fonds)))
        q = q.where(Record.category_id.in_(cats))
    if f.year is not None:
        q = q.where(Record.year == f.year)
    if f.year_from is not None:
        q = q.where(Record.year >= f.year_from)
    if f.year_to is not None:
        q = q.where(Record.year <= f.year_to)
    if f.retention_period:
        try:
            q = q.where(Record.retention_period == parse_retention(f.retention_period).code)
        except ValueError as e:
            raise ValidationFailed(str(e), code="NOT_IN_DOMAIN") from None
    if f.department:
        q = q.where(Record.department_id.in_(select(Department.id).where(
            or_(Department.code == f.department, Department.name == f.department))))
    if f.security_level:
        q = q.where(Record.security_level == f.security_level)
    if f.state:
        state = {v: k.value for k, v in STATE_LABELS.items()}.get(f.state, f.state)
        q = q.where(Record.state == state)
    for value, op in ((f.date_from, ">="), (f.date_to, "<=")):
        if value:
            from dangan.domain.schema import parse_date

            try:
                d = parse_date(value)
            except ValueError:
                raise ValidationFailed(f"日期“{value[:20]}”无法识别，请写成 2024-03-05", code="WRONG_TYPE") from None
            q = q.where(Record.date >= d if op == ">=" else Record.date <= d)
    return q


def _encode_cursor(values: list[Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(values).encode()).decode().rstrip("=")


def _decode_cursor(cursor: str, sort: str) -> tuple[Any, int]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        v = json.loads(raw)
        if not isinstance(v, list) or len(v) != 2 or not isinstance(v[1], int) or isinstance(v[1], bool):
            raise ValueError
        if sort == "relevance":
            score = float(v[0])
            if not math.isfinite(score):
                raise ValueError
            return score, v[1]
        return dt.date.fromisoformat(str(v[0])[:10]), v[1]
    except (ValueError, TypeError, json.JSONDecodeError, binascii.Error):
        raise ValidationFailed("翻页参数无效，请从第一页重新检索", code="BAD_CURSOR") from None


def _conditions(s: Session, trim: Trim, f: SearchFilter) -> dict[str, Any] | None:
    """The trimming and the filters as tantivy conditions (the same rules as visible() and _filters());
    None when nothing can match."""
    c: dict[str, Any] = {}
    if trim.nothing:
        return None
    if trim.levels is not None:
        c["sec"] = list(trim.levels)
    if trim.department_ids is not None:
        c["dept"] = list(trim.department_ids)
    if trim.states is not None:
        c["state"] = list(trim.states)
    if trim.category_ids is not None:
        c["cat"] = list(trim.category_ids)

    def both(name: str, values: list[Any]) -> None:  # a filter on a field the trimming limits too
        c[name] = [v for v in values if v in set(c[name])] if name in c else values

    if f.fonds:
        c["fonds"] = list(s.scalars(select(Fonds.id).where(Fonds.code == f.fonds)))
    if f.category:
        cats = select(Category.id).where(Category.code == f.category)
        if f.fonds:
            cats = cats.where(Category.fonds_id.in_(select(Fonds.id).where(Fonds.code == f.fonds)))
        both("cat", list(s.scalars(cats)))
    # a record without a 年度 is indexed as year 0: like NULL in SQL, no year condition matches it
    lo, hi = 1, 2**62
    if f.year is not None:
        lo, hi = f.year, f.year
    if f.year_from is not None:
        lo = max(lo, f.year_from)
    if f.year_to is not None:
        hi = min(hi, f.year_to)
    if (lo, hi) != (1, 2**62) or f.year is not None:
        c["year"] = (max(lo, 1), hi)
    if f.retention_period:
        try:
            c["ret"] = [parse_retention(f.retention_period).code]
        except ValueError as e:
            raise ValidationFailed(str(e), code="NOT_IN_DOMAIN") from None
    if f.department:
        both("dept", list(s.scalars(select(Department.id).where(
            or_(Department.code == f.department, Department.name == f.department)))))
    if f.security_level:
        both("sec", [f.security_level])
    if f.state:
        both("state", [{v: k.value for k, v in STATE_LABELS.items()}.get(f.state, f.state)])
    dlo, dhi = 1, 2**31
    for value, op in ((f.date_from, ">="), (f.date_to, "<=")):
        if value:
            d = _parse_filter_date(value)
            if op == ">=":
                dlo = max(dlo, d.toordinal())
            else:
                dhi = min(dhi, d.toordinal())
    if (dlo, dhi) != (1, 2**31):
        c["date"] = (dlo, dhi)
    return c


def _parse_filter_date(value: str) -> dt.date:
    from dangan.domain.schema import parse_date

    try:
        return parse_date(value)
    except ValueError:
        raise ValidationFailed(f"日期“{value[:20]}”无法识别，请写成 2024-03-05", code="WRONG_TYPE") from None


_TV_POOL = ThreadPoolExecutor(max(2, min(4, os.cpu_count() or 2)), thread_name_prefix="tantivy-query")
INLINE_BUILD_MAX = 50_000  # records: a first search builds a missing tantivy index this small on the spot


def _tantivy_for(app: Dangan, s: Session) -> Any | None:
    """The tantivy index, brought up to date in this read transaction; None when the SQL engine must answer."""
    idx = app.tantivy
    if idx is None:
        return None
    try:
        if not idx.built():
            if idx.building:
                return None
            if (s.scalar(select(func.count()).select_from(SearchDoc)) or 0) > INLINE_BUILD_MAX:
                start_tantivy_build(app)
                return None
            idx.rebuild(app.engine)
        return idx if idx.sync(s) else None
    except Exception:  # noqa: BLE001 - the SQL engine answers while the index is repaired
        log.exception("tantivy index unavailable; answering from SQL")
        return None


def start_tantivy_build(app: Dangan) -> threading.Thread | None:
    idx = app.tantivy
    if idx is None or idx.building:
        return None

    def run() -> None:
        try:
            n = idx.rebuild(app.engine)
            log.info("tantivy index built: %d records", n)
        except Exception:  # noqa: BLE001
            log.exception("tantivy index build failed")

    t = threading.Thread(target=run, name="tantivy-build", daemon=True)
    idx.building = True  # before the thread starts: a second caller must not start another
    t.start()
    return t


def _tantivy_page(idx: Any, s: Session, query: Any, trim: Trim, flt: SearchFilter, sort: str, cursor: str | None,
                  limit: int, facets: bool) -> tuple[list[tuple[int, Any]], int, dict[str, Any] | None, str | None]:
    conds = _conditions(s, trim, flt)
    if conds is None or query.root is None:
        return [], 0, ({} if facets else None), None
    offset = 0
    page_conds = dict(conds)
    if cursor:
        kind, value = _decode_tv_cursor(cursor, sort)
        if kind == "@":
            offset = value
        elif sort == "date":
            page_conds["dkey"] = (-(2**62), value - 1)
        else:
            page_conds["dkey"] = (value + 1, 2**62)
    # the page never counts (tantivy may then skip most postings); the total comes with the facets, or alone.
    # Both passes run at once: tantivy releases the GIL, so they take the time of the slower one.
    page_q = idx.compile(query.root, page_conds)
    all_q = idx.compile(query.root, conds, scoring=False)
    page_f = _TV_POOL.submit(idx.run, page_q, sort=sort, offset=offset, limit=limit + 1)
    agg = idx.run(all_q, sort="relevance", offset=0, limit=0, facets=facets, count=not facets)
    res = page_f.result()
    total, counts = agg["total"], agg["facets"]
    hits = res["hits"]
    nxt = None
    if len(hits) > limit:
        hits = hits[:limit]
        nxt = _encode_cursor(["@", offset + limit] if sort == "relevance" else ["k", int(hits[-1][1])])
    return hits, total, counts, nxt


def _decode_tv_cursor(cursor: str, sort: str) -> tuple[str, int]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        v = json.loads(raw)
        if (isinstance(v, list) and len(v) == 2 and v[0] in ("@", "k") and isinstance(v[1], int)
                and not isinstance(v[1], bool) and 0 <= v[1] < 2**62 and (v[0] == "@") == (sort == "relevance")):
            if v[0] == "@" and v[1] > MAX_OFFSET:
                raise ValidationFailed(f"相关度排序最多翻到第 {MAX_OFFSET:,} 条，请加上筛选条件缩小范围",
                                       code="PAGE_TOO_DEEP")
            return v[0], v[1]
    except (ValueError, TypeError, binascii.Error) as e:
        if isinstance(e, ValidationFailed):
            raise
    raise ValidationFailed("翻页参数无效，请从第一页重新检索", code="BAD_CURSOR")


def _is_tv_cursor(cursor: str | None) -> bool:
    if not cursor:
        return False
    with contextlib.suppress(ValueError, TypeError, binascii.Error):
        v = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        return isinstance(v, list) and len(v) == 2 and v[0] in ("@", "k")
    return False


MAX_OFFSET = 10_000


def search(app: Dangan, actor: Actor, q: str, flt: SearchFilter | None = None, *, sort: str = "relevance",
           cursor: str | None = None, limit: int = 20, facets: bool = True, audit: bool = True) -> dict[str, Any]:
    """Search the records the actor may read: hits (with highlighted snippets and the page of the hit), the
    total and the facets, all over the same trimmed set."""
    require(actor, "record.read")
    flt = flt or SearchFilter()
    if sort not in SORTS:
        raise ValidationFailed(f"排序方式“{sort[:20]}”无效，可选：relevance（相关度）、date（日期新在前）、date_asc",
                               code="NOT_IN_DOMAIN")
    limit = max(1, min(limit, MAX_LIMIT))
    query = parse(q or "")
    out: dict[str, Any] = {"q": q, "notices": list(query.notices), "sort": sort, "items": [], "total": 0,
                           "facets": {}, "next_cursor": None, "exact": None, "took_ms": 0.0, "engine": None}
    if query.empty:
        return out
    t0 = time.perf_counter()
    with app.read_sessions() as s:
        trim = trim_for(s, actor, "record.read")
        base = _filters(select(Record.id).where(trim_clause(trim)), flt)
        if query.exact and query.exact.field == "archival_code":
            norm = query.exact.value
            exact_ids = [rid for rid, code in s.execute(base.add_columns(Record.archival_code)
                         .where(Record.archival_code == norm).limit(5)).all()  # the unique index
                         if normalize_archival_code(code or "") == norm]
            if exact_ids:
                out["exact"] = exact_ids[0]
        idx = _tantivy_for(app, s) if (not cursor or _is_tv_cursor(cursor)) else None
        if idx is not None:
            out["engine"] = "tantivy"
            rows, out["total"], counts, out["next_cursor"] = _tantivy_page(idx, s, query, trim, flt, sort, cursor,
                                                                          limit, facets)
            if counts is not None:
                out["facets"] = _facet_output(s, [collections.Counter({(k or None): n for k, n in counts[f].items()})
                                                  for f in ("cat", "dept", "year", "ret", "sec", "state")])
            ids = [r[0] for r in rows]
            # defence in depth: the page's records are read through the trimming again
            seen = set(s.scalars(base.where(Record.id.in_(ids)))) if ids else set()
            rows = [r for r in rows if r[0] in seen]
        else:
            out["engine"] = "postgresql" if s.bind.dialect.name == "postgresql" else "fts5"  # type: ignore[union-attr]
            rows, out["total"], out["facets"], out["next_cursor"] = _sql_page(s, base, query, sort, cursor, limit,
                                                                              facets)
        ids = [r[0] for r in rows]
        recs = {r.id: r for r in s.scalars(select(Record).where(Record.id.in_(ids)))} if ids else {}
        cats = dict(s.execute(select(Category.id, Category.name)).all())
        depts = dict(s.execute(select(Department.id, Department.name)).all())
        terms = highlight_terms(query)
        snippets = _snippets(s, ids, terms)
        for rid, _score in rows:
            r = recs[rid]
            out["items"].append({
                "id": r.id, "archival_code": r.archival_code, "title": r.title, "title_html": _mark(r.title, terms),
                "doc_number": r.doc_number, "responsible": r.responsible, "date": iso(r.date), "year": r.year,
                "retention_period": r.retention_period, "security_level": r.security_level, "state": r.state,
                "state_label": STATE_LABELS.get(RecordState(r.state), r.state) if r.state in
                {x.value for x in RecordState} else r.state,
                "category_name": cats.get(r.category_id, ""), "department_name": depts.get(r.department_id, ""),
                "snippet": snippets.get(rid),
            })
    out["took_ms"] = round((time.perf_counter() - t0) * 1000, 1)
    if audit:
        with app.uow(actor) as uow:
            uow.audit("record.search", "search", "", q=q[:200], total=out["total"],
                      filter={k: v for k, v in vars(flt).items() if v})
    return out


def _sql_page(s: Session, base: Select[Any], query: Any, sort: str, cursor: str | None, limit: int,
              facets: bool) -> tuple[list[Any], int, dict[str, Any], str | None]:
    pg = s.bind.dialect.name == "postgresql"  # type: ignore[union-attr]
    if query.root is None:
        return [], 0, {}, None
    if pg:
        tsq = func.to_tsquery("simple", to_tsquery(query))
        match = literal_column("search_docs.tsv").op("@@")(tsq)
        # lower is better, like bm25; double precision so that a cursor's value compares exactly
        score = -cast(func.ts_rank_cd(literal_column("search_docs.tsv"), tsq), Float(53))
        hits = base.join(SearchDoc, SearchDoc.record_id == Record.id).where(match)
    else:
        expr = to_fts5(query)
        fts = text("(SELECT rowid AS rid, bm25(search_fts, 10.0, 5.0, 3.0, 5.0, 3.0, 1.0) AS score "
                   "FROM search_fts WHERE search_fts MATCH :match)").bindparams(match=expr).columns(
            literal_column("rid"), literal_column("score")).subquery("fts")
        score = fts.c.score
        hits = base.join(fts, fts.c.rid == Record.id)
    facet_out: dict[str, Any] = {}
    if facets:  # one grouped pass gives every facet and the total (not one MATCH per facet)
        facet_out, total = _facets_and_total(s, hits)
    else:
        total = s.scalar(select(func.count()).select_from(hits.subquery())) or 0
    if sort == "relevance":
        keys = (score, Record.id)
        page_q = hits.add_columns(score.label("score")).order_by(*keys)
    else:
        d = func.coalesce(Record.date, literal(NO_DATE, Date))
        keys = (d, Record.id)
        page_q = hits.add_columns(d.label("score")).order_by(d.desc(), Record.id.desc()) if sort == "date" else \
            hits.add_columns(d.label("score")).order_by(d, Record.id)
    if cursor and _is_tv_cursor(cursor):  # a page of the tantivy engine, continued here: by position
        kind, value = _decode_tv_cursor(cursor, sort)
        page_q = page_q.offset(value) if kind == "@" else page_q
    elif cursor:
        last_score, last_id = _decode_cursor(cursor, sort)
        after = tuple_(literal(last_score) if sort == "relevance" else literal(last_score, Date), literal(last_id))
        page_q = page_q.where(tuple_(*keys) < after if sort == "date" else tuple_(*keys) > after)
    rows = s.execute(page_q.limit(limit + 1)).all()
    more = len(rows) > limit
    rows = rows[:limit]
    nxt = None
    if more and rows:
        last = rows[-1]
        val = last[1]
        nxt = _encode_cursor([float(val) if sort == "relevance" else str(val)[:10], last[0]])
    return rows, total, facet_out, nxt


def _facets_and_total(s: Session, hits: Select[Any]) -> tuple[dict[str, list[dict[str, Any]]], int]:
    cols = (Record.category_id, Record.department_id, Record.year, Record.retention_period, Record.security_level,
            Record.state)
    counters: list[collections.Counter[Any]] = [collections.Counter() for _ in cols]
    total = 0
    for *vals, n in s.execute(hits.with_only_columns(*cols, func.count()).group_by(*cols)).all():
        total += n
        for c, v in zip(counters, vals, strict=True):
            c[v] += n
    return _facet_output(s, counters), total


def _facet_output(s: Session, counters: list[collections.Counter[Any]]) -> dict[str, list[dict[str, Any]]]:
    """Facets from counts per 门类, 机构, 年度, 保管期限, 密级, state (in that order)."""
    cats = {i: (c, nm) for i, c, nm in s.execute(select(Category.id, Category.code, Category.name))}
    depts = {i: (c, nm) for i, c, nm in s.execute(select(Department.id, Department.code, Department.name))}

    def top(c: collections.Counter[Any], k: int) -> list[tuple[Any, int]]:
        return sorted(((v, n) for v, n in c.items() if v is not None), key=lambda x: (-x[1], str(x[0])))[:k]

    out: dict[str, list[dict[str, Any]]] = {
        "category": [{"value": cats[v][0], "label": cats[v][1], "count": n} for v, n in top(counters[0], 30) if v in cats],
        "department": [{"value": depts[v][0], "label": depts[v][1], "count": n} for v, n in top(counters[1], 30)
                       if v in depts],
        "year": [{"value": v, "label": str(v), "count": n}
                 for v, n in sorted(((v, n) for v, n in counters[2].items() if v is not None), reverse=True)[:40]],
    }
    for name, c in (("retention_period", counters[3]), ("security_level", counters[4]), ("state", counters[5])):
        out[name] = [{"value": v, "label": _facet_label(name, v), "count": n} for v, n in top(c, 40)]
    return out


def _facet_label(name: str, v: Any) -> str:
    if name == "retention_period":
        with contextlib.suppress(ValueError):
            return parse_retention(str(v)).label
    if name == "state":
        with contextlib.suppress(ValueError):
            return RecordState(v).label
    return str(v)


def _mark(text_: str | None, terms: list[str]) -> str:
    """HTML with the terms wrapped in <mark> (everything else escaped)."""
    from markupsafe import escape

    t = text_ or ""
    if not terms:
        return str(escape(t))
    norm = normalize(t)
    if len(norm) != len(t):  # positions would not line up: mark nothing rather than the wrong characters
        return str(escape(t))
    spans: list[tuple[int, int]] = []
    for term in terms:
        for m in re.finditer(re.escape(term), norm, flags=re.IGNORECASE):
            spans.append((m.start(), m.end()))
    spans.sort()
    merged: list[list[int]] = []
    for a, b in spans:
        if merged and a <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], b)
        else:
            merged.append([a, b])
    out, pos = [], 0
    for a, b in merged:
        out.append(str(escape(t[pos:a])) + "<mark>" + str(escape(t[a:b])) + "</mark>")
        pos = b
    out.append(str(escape(t[pos:])))
    return "".join(out)


def _snippets(s: Session, ids: list[int], terms: list[str]) -> dict[int, dict[str, Any]]:
    """For each hit, the first page of its files whose text holds a term: file, page number and marked text."""
    if not ids or not terms:
        return {}
    out: dict[int, dict[str, Any]] = {}
    rows = s.execute(select(File.record_id, File.id, File.name, FileTextPage.page, FileTextPage.text)
                     .join(FileTextPage, FileTextPage.file_id == File.id)
                     .where(File.record_id.in_(ids), File.is_current)
                     .order_by(File.record_id, File.sequence, FileTextPage.page)).all()
    best: dict[int, tuple[tuple[int, int], Any]] = {}
    for rid, fid, name, page, t in rows:
        norm = normalize(t)
        found = [(term, norm.find(term)) for term in terms]
        found = [(term, i) for term, i in found if i >= 0]
        if not found:
            continue
        # the page holding the most of the query's terms (then the longer ones); the first such page wins
        rank = (len(found), sum(len(term) for term, _ in found))
        if rid in best and best[rid][0] >= rank:
            continue
        first = min(i for _, i in found)
        start = max(0, first - SNIPPET_CHARS // 3)
        piece = t[start:start + SNIPPET_CHARS].replace("\n", " ") if len(norm) == len(t) else t[:SNIPPET_CHARS]
        best[rid] = (rank, {"file_id": fid, "file_name": name, "page": page,
                            "html": ("…" if start else "") + _mark(piece, terms)
                            + ("…" if start + SNIPPET_CHARS < len(t) else "")})
    out.update({rid: v for rid, (_, v) in best.items()})
    return out


def index_status(app: Dangan, actor: Actor) -> dict[str, Any]:
    """How complete the index is: records indexed, files with text, by extraction status (counts only). Those who
    maintain the index (search.reindex) see the whole archive's counts; everyone else counts only what they may
    read, like every other count."""
    operator = actor.scope_for("search.reindex") is not None
    if not operator:
        require(actor, "record.read")
    with app.read_sessions() as s:
        seen = true() if operator else visible(s, actor, "record.read")
        records = s.scalar(select(func.count()).select_from(Record)
                           .where(Record.state != "destroyed", seen)) or 0
        indexed = s.scalar(select(func.count()).select_from(SearchDoc).join(Record, Record.id == SearchDoc.record_id)
                           .where(seen)) or 0
        stale = s.scalar(select(func.count()).select_from(SearchDoc).join(Record, Record.id == SearchDoc.record_id)
                         .where(seen, or_(SearchDoc.seg_version != SEGMENTATION_VERSION,
                                          SearchDoc.indexed_at < Record.updated_at))) or 0
        files = s.scalar(select(func.count()).select_from(File).join(Record, Record.id == File.record_id)
                         .where(File.is_current, seen)) or 0
        by_status = dict(s.execute(select(FileText.status, func.count()).join(Record, Record.id == FileText.record_id)
                                   .where(seen).group_by(FileText.status)).all())
        engine = _engine_status(app, s)
    return {"records": records, "indexed": indexed, "stale": stale, "files": files,
            "files_with_text_status": by_status, "files_pending": max(0, files - sum(by_status.values())),
            "seg_version": SEGMENTATION_VERSION, "engine": engine}


TEXT_PROBLEMS = ("unreadable", "unsupported")


def text_problems(app: Dangan, actor: Actor, limit: int = 200) -> list[dict[str, Any]]:
    """Files whose text could not be extracted (unreadable, unsupported), newest first, among the records the
    actor may read: what the operator must look at (a damaged file is recorded, never silently skipped)."""
    require(actor, "search.reindex")
    with app.read_sessions() as s:
        rows = s.execute(select(File.id, File.name, File.record_id, Record.archival_code, Record.title, FileText.status,
                                FileText.message, FileText.extracted_at)
                         .join(FileText, FileText.file_id == File.id).join(Record, Record.id == File.record_id)
                         .where(FileText.status.in_(TEXT_PROBLEMS), File.is_current, visible(s, actor, "record.read"))
                         .order_by(FileText.extracted_at.desc(), File.id.desc()).limit(max(1, min(limit, 1000)))).all()
    return [{"file_id": fid, "file_name": name, "record_id": rid, "archival_code": code, "title": title,
             "status": st, "status_label": TEXT_STATUS_LABELS.get(st, st), "message": msg, "extracted_at": iso(at)}
            for fid, name, rid, code, title, st, msg, at in rows]


TEXT_STATUS_LABELS = {"ok": "已提取", "empty": "无文字", "unreadable": "无法读取", "unsupported": "格式不支持"}


def _engine_status(app: Dangan, s: Session) -> dict[str, Any]:
    idx = app.tantivy
    if idx is None:
        name = "postgresql" if s.bind.dialect.name == "postgresql" else "fts5"  # type: ignore[union-attr]
        return {"name": name, "label": "PostgreSQL 全文检索" if name == "postgresql" else "SQLite FTS5"}
    top = s.scalar(select(func.max(SearchLog.seq))) or 0
    applied = idx.applied()
    return {"name": "tantivy", "label": "内嵌 tantivy 索引", "built": idx.built(), "building": idx.building,
            "behind": max(0, top - applied) if applied >= 0 else None}


__all__ = ["Indexer", "SearchFilter", "after_commit_ids", "extract_files", "index_records", "index_status",
           "reindex", "search"]
