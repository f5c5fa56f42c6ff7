"""The embedded tantivy index: the search engine of the SQLite default, kept in step with the database.

SQLite FTS5 answers selective queries in milliseconds, but a frequent word (a sixth of a million records)
costs it hundreds of milliseconds to rank and a second or more to count into facets. tantivy, embedded as a
library (no server), answers the same query with exact totals and facets in about 20 ms.

The database stays the source of truth:
- The index holds, per record, the segmented fields of `search_docs` and the record's trimming and filter
  columns (全宗, 门类, 机构, 年度, 日期, 保管期限, 密级, state).
- SQLite triggers (migration 0008) append the id of every record whose index row or trimming columns change
  to `search_log`, in commit order. The index remembers the last sequence it applied (in `dangan-state.json`
  beside its segments) and, before it answers, applies what came after it — in the same read transaction
  the search runs in, so a search never sees a record the database no longer lets the reader see.
- When it cannot catch up at once (another process holds the index's writer, or too much changed, or the
  index is being built), `ready_for()` says no and the caller answers from FTS5 instead: slower, never wrong.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from dangan.db.models import Record, SearchDoc, SearchLog
from dangan.search.query import And, Not, Or, Term
from dangan.search.segment import SEGMENTATION_VERSION

try:  # an optional engine: without it (or on PostgreSQL) the SQL engines answer
    import tantivy
except ImportError:  # pragma: no cover - tantivy is a pinned dependency
    tantivy = None  # type: ignore[assignment]

log = logging.getLogger("dangan.search")

SCHEMA_VERSION = 2  # 2: the "all" field
WEIGHTS = {"title": 10.0, "doc_number": 5.0, "responsible": 3.0, "archival_code": 5.0, "keywords": 3.0,
           "content": 1.0}  # the bm25 column weights of the SQL engines
INT_FIELDS = ("fonds", "cat", "dept", "year", "date", "dkey")
STR_FIELDS = ("ret", "sec", "state")
SYNC_MAX = 20_000      # records to apply before answering; more than that is a rebuild's job
WRITER_HEAP = 64_000_000
WRITER_RETRY_S = 5.0   # after LockBusy, how long before trying to take the writer again
NO_DATE = 0  # a record without a 日期 sorts as the oldest; range filters on 日期 never match it
STATE_FILE = "dangan-state.json"


def available() -> bool:
    return tantivy is not None


def _ordinal(value: Any) -> int:
    if value is None:
        return NO_DATE
    if isinstance(value, dt.datetime):
        return value.date().toordinal()
    if isinstance(value, dt.date):
        return value.toordinal()
    try:
        return dt.date.fromisoformat(str(value)[:10]).toordinal()
    except ValueError:
        return NO_DATE


def date_key(ordinal: int, record_id: int) -> int:
    """One sortable integer for (日期, id): date order with the id breaking ties, as the SQL engines sort."""
    return (ordinal << 32) | (record_id & 0xFFFFFFFF)


def _schema() -> Any:
    sb = tantivy.SchemaBuilder()
    for f in WEIGHTS:
        sb.add_text_field(f, tokenizer_name="whitespace", stored=False)
    # every field's tokens in one posting list of document ids only: counts and facets of a word walk one list
    # instead of the union of six
    sb.add_text_field("all", tokenizer_name="whitespace", stored=False, index_option="basic")
    sb.add_integer_field("id", stored=True, indexed=True, fast=True)
    for f in INT_FIELDS:
        sb.add_integer_field(f, indexed=True, fast=True)
    for f in STR_FIELDS:
        sb.add_text_field(f, tokenizer_name="raw", fast=True)
    return sb.build()


_COLUMNS = (SearchDoc.record_id, *(getattr(SearchDoc, f) for f in WEIGHTS), Record.fonds_id, Record.category_id,
            Record.department_id, Record.year, Record.date, Record.retention_period, Record.security_level,
            Record.state)


def _document(row: Any) -> Any:
    rid, *rest = row
    texts = dict(zip(WEIGHTS, rest[:len(WEIGHTS)], strict=True))
    fonds, cat, dept, year, date, ret, sec, state = rest[len(WEIGHTS):]
    day = _ordinal(date)
    texts = {k: v or "" for k, v in texts.items()}
    return tantivy.Document(id=int(rid), **texts, all=" ".join(texts.values()), fonds=int(fonds or 0),
                            cat=int(cat or 0), dept=int(dept or 0), year=int(year or 0), date=day,
                            dkey=date_key(day, int(rid)), ret=ret or "", sec=sec or "", state=state or "")


class TantivyIndex:
    """One index directory, shared by every process of the deployment; one of them writes at a time."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._lock = threading.RLock()
        self._index: Any = None
        self._writer: Any = None
        self._writer_refused_at = 0.0
        self._searcher: Any = None
        self._searcher_applied = -1
        self.schema = _schema() if available() else None
        self.building = False

    # ---------------------------------------------------------------- state

    def _state(self) -> dict[str, Any] | None:
        try:
            st = json.loads((self.path / STATE_FILE).read_text("utf-8"))
        except (OSError, ValueError):
            return None
        if st.get("schema") != SCHEMA_VERSION or st.get("segmentation") != SEGMENTATION_VERSION:
            return None
        return st

    def _write_state(self, applied: int, docs: int | None = None) -> None:
        st = self._state() or {}
        st.update({"schema": SCHEMA_VERSION, "segmentation": SEGMENTATION_VERSION, "applied": applied,
                   "updated_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds")})
        if docs is not None:
            st["built_docs"] = docs
        tmp = self.path / (STATE_FILE + f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(st), "utf-8")
        os.replace(tmp, self.path / STATE_FILE)

    def built(self) -> bool:
        return self._state() is not None

    def applied(self) -> int:
        st = self._state()
        return int(st["applied"]) if st else -1

    # ---------------------------------------------------------------- opening

    def _open(self) -> Any:
        if self._index is None:
            self.path.mkdir(parents=True, exist_ok=True)
            try:
                self._index = tantivy.Index(self.schema, path=str(self.path), reuse=True)
            except ValueError:  # segments of an older schema: start again (a rebuild fills it)
                for p in self.path.iterdir():
                    if p.is_file():
                        p.unlink()
                self._index = tantivy.Index(self.schema, path=str(self.path), reuse=False)
        return self._index

    def _take_writer(self) -> Any | None:
        if self._writer is not None:
            return self._writer
        if time.monotonic() - self._writer_refused_at < WRITER_RETRY_S:
            return None
        try:
            self._writer = self._open().writer(WRITER_HEAP, 1)
        except ValueError as e:  # LockBusy: another process writes the index
            log.debug("tantivy writer busy: %s", e)
            self._writer_refused_at = time.monotonic()
            return None
        return self._writer

    def close(self) -> None:
        with self._lock:
            w, self._writer = self._writer, None
            if w is not None:
                with contextlib.suppress(Exception):
                    w.wait_merging_threads()
            self._searcher = None
            self._index = None

    def searcher(self) -> Any:
        applied = self.applied()
        if self._searcher is None or applied != self._searcher_applied:
            idx = self._open()
            idx.reload()
            self._searcher, self._searcher_applied = idx.searcher(), applied
        return self._searcher

    # ---------------------------------------------------------------- keeping in step

    def rebuild(self, engine: Engine, progress: Callable[[int, int], None] | None = None) -> int:
        """Index every record from search_docs (streaming); returns the number of documents."""
        with self._lock:
            w = self._take_writer()
            if w is None:
                from dangan.errors import StateError

                raise StateError("检索索引正由另一个进程写入，请稍后再重建", code="INDEX_BUSY")
            self.building = True
            try:
                with engine.connect() as c:
                    top = c.scalar(select(func.max(SearchLog.seq))) or 0
                    total = c.scalar(select(func.count()).select_from(SearchDoc)) or 0
                    w.delete_all_documents()
                    n = 0
                    res = c.execution_options(stream_results=True, yield_per=2000).execute(
                        select(*_COLUMNS).join(Record, Record.id == SearchDoc.record_id))
                    for row in res:
                        w.add_document(_document(row))
                        n += 1
                        if progress and n % 5000 == 0:
                            progress(n, total)
                w.commit()
                self._write_state(top, docs=n)
                if progress:
                    progress(n, total)
                return n
            finally:
                self.building = False

    def sync(self, session: Session) -> bool:
        """Apply what the database changed since the index's last sequence, reading it in *session* (the
        search's own read transaction). True when the index now agrees with what the session sees."""
        if not available() or self.building:
            return False
        st = self._state()
        if st is None:
            return False
        top = session.scalar(select(func.max(SearchLog.seq))) or 0
        applied = int(st["applied"])
        if top <= applied:
            return True
        with self._lock:
            applied = self.applied()
            if top <= applied:
                return True
            ids = list(session.scalars(select(SearchLog.record_id).where(SearchLog.seq > applied,
                                                                         SearchLog.seq <= top)
                                       .distinct().limit(SYNC_MAX + 1)))
            if len(ids) > SYNC_MAX:
                return False
            w = self._take_writer()
            if w is None:
                return False
            try:
                for rid in ids:
                    w.delete_documents_by_term("id", int(rid))
                for i in range(0, len(ids), 900):
                    for row in session.execute(select(*_COLUMNS).join(Record, Record.id == SearchDoc.record_id)
                                               .where(SearchDoc.record_id.in_(ids[i:i + 900]))):
                        w.add_document(_document(row))
                w.commit()
            except Exception:
                with contextlib.suppress(Exception):
                    w.rollback()
                raise
            self._write_state(top)
            return True

    def prune_log(self, session: Session) -> int:
        """Forget log entries the index has applied (the caller commits)."""
        applied = self.applied()
        if applied <= 0:
            return 0
        res = session.execute(SearchLog.__table__.delete().where(SearchLog.seq <= applied))
        return res.rowcount or 0

    # ---------------------------------------------------------------- querying

    def _seg(self, seg: str, fld: str | None, scoring: bool = True) -> Any:
        if not scoring:
            return tantivy.Query.term_query(self.schema, fld or "all", seg)
        fields = [fld] if fld else list(WEIGHTS)
        qs = [tantivy.Query.boost_query(tantivy.Query.term_query(self.schema, f, seg), WEIGHTS[f]) for f in fields]
        return qs[0] if len(qs) == 1 else tantivy.Query.boolean_query([(tantivy.Occur.Should, q) for q in qs])

    def _node(self, node: Any, scoring: bool = True) -> Any:
        Q, O = tantivy.Query, tantivy.Occur  # noqa: E741, N806
        if isinstance(node, Term):
            # which documents match is decided on the "all" list of each segment (one list per word, intersected
            # cheaply); the per-field weighted queries only score those documents (optional clauses)
            gate = ([] if node.field else
                    [(O.Must, Q.const_score_query(Q.term_query(self.schema, "all", sg), 0.0)) for sg in node.segments])
            if node.phrase and len(node.segments) > 1:
                fields = [node.field] if node.field else list(WEIGHTS)
                qs = [Q.boost_query(Q.phrase_query(self.schema, f, list(node.segments)), WEIGHTS[f]) for f in fields]
                phrase = qs[0] if len(qs) == 1 else Q.boolean_query([(O.Should, q) for q in qs])
                return Q.boolean_query([*gate, (O.Must, phrase)]) if gate else phrase
            if not scoring or node.field:
                parts = [self._seg(sg, node.field, scoring) for sg in node.segments]
                return parts[0] if len(parts) == 1 else Q.boolean_query([(O.Must, p) for p in parts])
            weighted = [(O.Should, Q.boost_query(Q.term_query(self.schema, f, sg), WEIGHTS[f]))
                        for sg in node.segments for f in WEIGHTS]
            return Q.boolean_query([*gate, *weighted])
        if isinstance(node, Or):
            return Q.boolean_query([(O.Should, self._node(c, scoring)) for c in node.children])
        if isinstance(node, And):
            return Q.boolean_query([(O.MustNot, self._node(c.child, scoring)) if isinstance(c, Not)
                                    else (O.Must, self._node(c, scoring)) for c in node.children])
        raise TypeError(f"unexpected node {node!r}")

    def _in(self, field: str, values: Iterable[Any]) -> Any:
        vals = sorted(set(values))
        if not vals:
            return tantivy.Query.empty_query()
        if len(vals) == 1:
            return tantivy.Query.term_query(self.schema, field, vals[0])
        return tantivy.Query.term_set_query(self.schema, field, vals)

    def compile(self, root: Any, conditions: dict[str, Any], *, scoring: bool = True) -> Any:
        """The text query AND every condition: {field: [values]} (any of) or {field: (lo, hi)} (inclusive).
        Without scoring (counts and facets) the text query matches without computing BM25."""
        text_q = self._node(root, scoring)
        must = [text_q if scoring else tantivy.Query.const_score_query(text_q, 1.0)]
        for name, cond in conditions.items():
            if isinstance(cond, tuple):
                lo, hi = cond
                must.append(tantivy.Query.range_query(self.schema, name, tantivy.FieldType.Integer,
                                                      int(lo), int(hi)))
            else:
                must.append(self._in(name, cond))
        return tantivy.Query.boolean_query([(tantivy.Occur.Must, m) for m in must])

    def run(self, query: Any, *, sort: str, offset: int, limit: int, facets: bool = False,
            count: bool = False) -> dict[str, Any]:
        """A page of hits (limit 0: none); with count, their total (a full pass: the page alone may skip most
        of the postings); with facets, the counts per value of each facet field and the total (one pass)."""
        s = self.searcher()
        hits: list[tuple[int, Any]] = []
        total = None
        if limit > 0 or (count and not facets):
            if sort == "relevance":
                res = s.search(query, max(limit, 1), count=count and not facets, offset=offset)
            else:
                order = tantivy.Order.Desc if sort == "date" else tantivy.Order.Asc
                res = s.search(query, max(limit, 1), count=count and not facets, order_by_field="dkey",
                               offset=offset, order=order)
            hits = [(s.doc(addr)["id"][0], key) for key, addr in res.hits][:limit]
            total = res.count if count and not facets else None
        out: dict[str, Any] = {"hits": hits, "total": total, "facets": None}
        if facets:
            aggs = {f: {"terms": {"field": f, "size": 100_000}} for f in ("cat", "dept", "year", "ret", "sec", "state")}
            raw = s.aggregate(query, aggs)
            out["facets"] = {f: {b["key"]: int(b["doc_count"]) for b in raw.get(f, {}).get("buckets", [])}
                             for f in aggs}
            out["total"] = sum(out["facets"]["state"].values())
        return out
