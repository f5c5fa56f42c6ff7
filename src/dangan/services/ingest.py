"""Bulk loading of records with their files: validate a batch, store its blobs, then insert its rows in one transaction.

`create_record` spends most of its time on per-record overhead: one write transaction (and WAL fsync) per
record, one audit-chain append per record, a dozen lookups of the same fonds/category/department. Here a
batch of items shares all of that, while keeping every rule of `create_record`:

- every item of a batch is validated (the same `_check_input`, `_resolve`, schema validation and
  `check_create_scope` rights check as `create_record`, and the 档号 parts are checked) before anything of the
  batch is written;
- the blobs of the valid items are written first (content-addressed, fsynced, several at a time),
  then the rows of the whole batch are inserted in ONE transaction, with one ``record.create`` audit event per
  record (its detail carries the 档号 and state when it is created as filed, where `create_record` writes a
  second ``record.file`` event) and one ``record.create`` failure (or denied) event per refused item;
- archival codes come from `numbering.allocate_many` inside that transaction: gapless, in item order;
- a record with a `sender_ref` that already exists is not created again (idempotent retry).

Failure policy: an invalid item is reported with its problems, field by field, and nothing of it is
written; the other items go on (``stop_on_error=True`` stops instead: the items before the first failure
are written, nothing after it). A crash at any point leaves at most unreferenced blobs (removed by
``storage sweep``), never a row without its content, and never a half-written batch.

Speed: the blobs of a batch are written by a thread pool while the next batch is validated. Items in
archival-code order (as archives are handed over) touch one or two classes per batch; however many classes
a batch touches, their numbers are reserved with one `numbering.allocate_many` statement.

Memory stays flat: items are pulled from the iterable one batch at a time; the report keeps counts and
only the first `MAX_KEPT_FAILURES` failures (pass `on_item` to see every result).
"""

from __future__ import annotations

import datetime as dt
import os
import unicodedata
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from itertools import islice
from typing import Any

from sqlalchemy import func, insert, select
from sqlalchemy.orm import Session

from dangan.db.models import File, Record, utcnow
from dangan.domain.archival_code import CodeTemplate
from dangan.domain.schedule import ScheduleRule, suggest
from dangan.domain.schema import MetadataSchema
from dangan.domain.states import RecordState
from dangan.errors import (
    Conflict,
    DanganError,
    FieldProblem,
    Problems,
    StateError,
    StorageError,
    ValidationFailed,
)
from dangan.services import audit
from dangan.services.access import require, visible
from dangan.services.context import Actor, Dangan, audited
from dangan.services.files import NewFile, identify_stored
from dangan.services.numbering import allocate_many, give_back
from dangan.services.records import (
    RecordInput,
    _apply_metadata,
    _check_input,
    _code_values,
    _resolve,
    _schema,
    _template,
    check_create_scope,
)
from dangan.services.schedule import rules_of
from dangan.storage import BlobInfo

MAX_KEPT_FAILURES = 1000
DEFAULT_BATCH = 500
# concurrent blob writes: each waits mostly on fsync, and concurrent fsyncs share journal commits; more
# threads than this (on 2 cores) only compete for the GIL
DEFAULT_WORKERS = min(8, 2 * (os.cpu_count() or 1))


@dataclass
class ItemFailure:
    """Why one item was refused: a stable code, a Chinese message and the problems field by field."""

    index: int
    sender_ref: str | None
    code: str
    message: str
    problems: list[FieldProblem] = field(default_factory=list)

    @classmethod
    def from_error(cls, index: int, sender_ref: str | None, err: DanganError) -> ItemFailure:
        return cls(index, sender_ref, err.code, err.message, list(err.problems))

    def as_dict(self) -> dict[str, Any]:
        return {"index": self.index, "sender_ref": self.sender_ref, "code": self.code, "message": self.message,
                "problems": [p.as_dict() for p in self.problems]}


@dataclass
class ItemResult:
    """The outcome of one item, in input order (given to `on_item`)."""

    index: int
    status: str  # created | existing | failed
    record_id: int | None = None
    archival_code: str | None = None
    sender_ref: str | None = None
    failure: ItemFailure | None = None


@dataclass
class IngestReport:
    created: int = 0
    existing: int = 0  # already present by sender_ref: not created again
    failed: int = 0
    files: int = 0
    bytes: int = 0  # content bytes of the files of created records
    batches: int = 0
    stopped: bool = False  # stop_on_error ended the run early
    failures: list[ItemFailure] = field(default_factory=list)  # the first MAX_KEPT_FAILURES

    @property
    def processed(self) -> int:
        return self.created + self.existing + self.failed

    @property
    def ok(self) -> bool:
        return self.failed == 0

    def as_dict(self) -> dict[str, Any]:
        return {"created": self.created, "existing": self.existing, "failed": self.failed, "files": self.files,
                "bytes": self.bytes, "batches": self.batches, "stopped": self.stopped,
                "failures": [f.as_dict() for f in self.failures]}


@dataclass
class _Item:
    index: int
    inp: RecordInput
    files: list[NewFile]
    failure: DanganError | None = None
    state: RecordState = RecordState.PRE_FILING
    row: dict[str, Any] = field(default_factory=dict)
    code: tuple[CodeTemplate, str, dict[str, Any]] | None = None  # template, class key, values
    category_code: str = ""
    existing: tuple[int, str | None] | None = None  # (record id, archival code) found by sender_ref
    same_as: _Item | None = None  # an earlier item of the batch with the same sender_ref
    blobs: list[_Stored] = field(default_factory=list)
    record_id: int | None = None
    archival_code: str | None = None

    @property
    def to_write(self) -> bool:
        return self.failure is None and self.existing is None and self.same_as is None


@audited("record.create", "record")
def ingest_batch(
    app: Dangan,
    actor: Actor,
    items: Iterable[tuple[RecordInput, list[NewFile]]],
    batch_size: int = DEFAULT_BATCH,
    progress: Callable[[IngestReport], None] | None = None,
    *,
    stop_on_error: bool = False,
    on_item: Callable[[ItemResult], None] | None = None,
    workers: int | None = None,
) -> IngestReport:
    """Create records with their files in batches of `batch_size`, one transaction per batch.

    `items` is consumed lazily (pass a generator for large loads). Parents (`parent_id`) must exist before the
    call. `progress(report)` is called after each batch with the running counts; `on_item(result)` once per
    item, in input order. Up to `workers` blob writes run at the same time (default: 2 per CPU, at most 8), while
    the next batch is read and validated.
    """
    if batch_size < 1:
        raise ValidationFailed("批次大小必须大于 0", code="BAD_BATCH_SIZE")
    require(actor, "record.create")  # each item is then checked as create_record checks it (scope, 密级, token)
    report = IngestReport()
    it: Iterator[tuple[RecordInput, list[NewFile]]] = iter(items)
    index = 0

    def finish(batch: _Batch) -> None:
        _collect_blobs(batch)
        _settle_duplicates(batch.items)
        if stop_on_error:
            batch.items = _until_first_failure(batch.items)
        _write(app, actor, batch.items)
        report.batches += 1
        for item in batch.items:
            _report(report, item, on_item)
        if progress:
            progress(report)

    def read(earlier: list[_Item]) -> list[_Item]:
        nonlocal index
        batch = [_Item(index + i, inp, list(files or [])) for i, (inp, files) in enumerate(islice(it, batch_size))]
        index += len(batch)
        _validate(app, actor, batch, earlier)
        return _until_first_failure(batch) if stop_on_error else batch

    with ThreadPoolExecutor(max_workers=workers or DEFAULT_WORKERS, thread_name_prefix="dangan-ingest") as pool:
        batch = read([])
        while batch:
            current = _Batch(batch, _submit_blobs(app, pool, batch))
            try:
                # the next batch is read and validated while this one's blobs are written; its rows are inserted
                # afterwards, with the pool idle: blob threads holding the GIL would slow every SQLite call down
                stop = stop_on_error and any(item.failure is not None for item in batch)
                nxt = [] if stop else read(batch)
            except Exception:
                finish(current)  # what was read before the error is still stored
                raise
            finish(current)
            if stop_on_error and report.failed:
                break
            batch = nxt
    report.stopped = bool(stop_on_error and report.failed)
    return report


@dataclass
class _Batch:
    items: list[_Item]
    futures: list[list[Future[_Stored]]]


def _settle_duplicates(batch: list[_Item]) -> None:
    for item in batch:
        if item.same_as is not None and item.failure is None and item.same_as.failure is not None:
            item.failure = Conflict("同一批中有相同来源标识的条目，且先出现的条目未能保存", code="SENDER_REF_DUPLICATE")


def _until_first_failure(batch: list[_Item]) -> list[_Item]:
    for i, item in enumerate(batch):
        if item.failure is not None:
            return batch[: i + 1]
    return batch


# -- validation: every item of the batch, before any write --------------------------------------------------

def _validate(app: Dangan, actor: Actor, batch: list[_Item], earlier: list[_Item], check_only: bool = False) -> None:
    resolved: dict[tuple[Any, ...], tuple[Any, list[FieldProblem], DanganError | None]] = {}
    schemas: dict[tuple[int, str], MetadataSchema] = {}
    templates: dict[tuple[int, str, str], CodeTemplate] = {}
    schedules: dict[int, list[ScheduleRule]] = {}
    with app.read_sessions() as s:
        for item in batch:
            inp = item.inp
            p = Problems()
            try:
                item.state = _check_input(inp, item.files, p)
            except DanganError as e:
                item.failure = e
                continue
            # the same fonds/category/level/department/parent resolve to the same rows: look them up once a batch
            key = (inp.fonds, inp.category, inp.level, inp.department, inp.parent_id)
            if key not in resolved:
                rp = Problems()
                try:
                    found = _resolve(s, inp, rp)
                    parent = found[3]
                    if parent is not None and s.scalar(select(Record.id).where(Record.id == parent.id,
                                                                               visible(s, actor))) is None:
                        rp.add("parent_id", "NOT_FOUND", f"上级档案 {parent.id} 不存在", "上级")
                    resolved[key] = (found, rp.items, None)
                except DanganError as e:
                    resolved[key] = (None, [], e)
            found, problems, err = resolved[key]
            if err is not None:
                item.failure = err
                continue
            p.items.extend(problems)
            fonds, cat, dept, parent = found
            meta: dict[str, Any] = {}
            if cat is not None:
                sk = (cat.id, inp.level)
                if sk not in schemas:
                    schemas[sk] = _schema(cat, inp.level)
                given = inp.metadata
                if cat.retention_table and not given.get("retention_period"):
                    given = {**given, "retention_period": None}
                    if cat.id not in schedules:
                        schedules[cat.id] = rules_of(cat)
                    sug = suggest(schedules[cat.id], given, (dept.code, dept.name) if dept else None)
                    if sug is not None:
                        given["retention_period"] = sug.retention_period
                meta, mp = schemas[sk].validate(given)
                p.items.extend(mp.items)
                try:
                    check_create_scope(s, actor, cat, dept, item.state, meta, p)
                except DanganError as e:
                    item.failure = e
                    continue
            if p:
                item.failure = ValidationFailed("著录数据有误，未保存任何内容，请按提示逐项修改",
                                                message_en="validation failed", problems=p.items)
                continue
            item.category_code = cat.code
            if check_only and item.state != RecordState.FILED:
                continue  # a dry run needs no row to insert (and no 档号 check: nothing is filed)
            rec = Record(fonds=fonds, category=cat, department=dept, level=inp.level)  # transient, never added
            _apply_metadata(rec, meta, parent)
            if item.state == RecordState.FILED:
                # the checks of records._assign_code, made here so that a code problem refuses the item before any write
                if parent is not None and not parent.archival_code:
                    item.failure = StateError("上级（案卷/项目/组）尚未归档、没有档号，请先将上级归档",
                                              code="PARENT_NOT_FILED")
                    continue
                tk = (cat.id, inp.level, rec.security_level)
                if tk not in templates:
                    templates[tk] = _template(cat, inp.level, rec.security_level)
                values = _code_values(rec, cat, parent)
                try:
                    item.code = (templates[tk], templates[tk].class_key(values), values)
                except ValueError as e:
                    item.failure = ValidationFailed(f"无法生成档号：{e}", code="ARCHIVAL_CODE_INCOMPLETE")
                    continue
            item.row = {
                "fonds_id": fonds.id, "category_id": cat.id, "level": inp.level,
                "parent_id": parent.id if parent else None, "department_id": dept.id if dept else None,
                "title": rec.title, "year": rec.year, "date": rec.date, "retention_period": rec.retention_period,
                "expiry_date": rec.expiry_date, "security_level": rec.security_level, "doc_number": rec.doc_number,
                "responsible": rec.responsible, "meta": rec.meta, "sender_ref": inp.sender_ref,
            }
        _find_existing(s, actor, batch, earlier)


def _find_existing(s: Session, actor: Actor, batch: list[_Item], earlier: Iterable[_Item] = ()) -> None:
    """Idempotent retries: a valid item whose sender_ref is already stored (or earlier in this call) is not created."""
    first: dict[str, _Item] = {i.inp.sender_ref: i for i in earlier if i.to_write and i.inp.sender_ref}
    lookup: dict[str, _Item] = {}
    for item in batch:
        ref = item.inp.sender_ref
        if item.failure is None and ref:
            if ref in first:
                item.same_as = first[ref]
            else:
                first[ref] = lookup[ref] = item
    if not lookup:
        return
    rows = s.execute(select(Record.sender_ref, Record.id, Record.archival_code)
                     .where(Record.sender_ref.in_(list(lookup)))).all()
    if not rows:
        return
    seen = set(s.scalars(select(Record.sender_ref).where(Record.sender_ref.in_([r[0] for r in rows]),
                                                           visible(s, actor))))
    for ref, rid, code in rows:
        if ref in seen:
            lookup[ref].existing = (rid, code)
        else:  # someone else's record the actor may not see: answer as create_record does
            lookup[ref].failure = Conflict("来源系统标识已被使用，请换用新的标识", code="SENDER_REF_USED")


# -- blobs: before any row ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class _Stored:
    blob: BlobInfo
    ident: dict[str, Any]


def _put(app: Dangan, nf: NewFile) -> _Stored:
    """Store one file and identify its format (as files.add_rows does), in a worker thread."""
    try:
        b = app.store.put(nf.stream, expected_size=nf.expected_size)
    except OSError as e:
        raise StorageError(f"写入文件“{nf.name}”的内容失败：{e}", code="STORAGE_WRITE_FAILED") from e
    return _Stored(b, identify_stored(app.store, b.key, nf.name, b.head, nf.media_type))


def _submit_blobs(app: Dangan, pool: ThreadPoolExecutor, batch: list[_Item]) -> list[list[Future[_Stored]]]:
    return [[pool.submit(_put, app, nf) for nf in item.files] if item.to_write else [] for item in batch]


def _collect_blobs(batch: _Batch) -> None:
    for item, futs in zip(batch.items, batch.futures, strict=False):
        for nf, fut in zip(item.files, futs, strict=False):
            try:
                item.blobs.append(fut.result())
            except DanganError as e:
                if item.failure is None:  # the blobs already written stay unreferenced until `storage sweep`
                    item.failure = ValidationFailed(f"文件“{nf.name}”未能保存：{e.message}", code=e.code,
                                                    problems=e.problems, detail=e.detail)
        if item.failure is None and futs:
            seen: dict[str, str] = {}
            for nf, st in zip(item.files, item.blobs, strict=True):
                b = st.blob
                if b.sha256 in seen:
                    item.failure = Conflict(
                        f"文件“{nf.name}”与本件已有文件“{seen[b.sha256]}”内容相同（SHA-256 {b.sha256[:12]}…），不能重复添加",
                        code="DUPLICATE_FILE", detail={"sha256": b.sha256})
                    break
                seen[b.sha256] = nf.name


# -- rows: one transaction for the whole batch --------------------------------------------------------------

def _write(app: Dangan, actor: Actor, batch: list[_Item]) -> None:
    try:
        _insert(app, actor, batch)
    except Conflict as e:
        if e.code != "CONCURRENT_CONFLICT":
            raise
        # another writer got in between (e.g. the same sender_ref, concurrently): redo the batch item by item
        for item in batch:
            item.record_id = item.archival_code = None
        with app.read_sessions() as s:
            _find_existing(s, actor, [i for i in batch if i.to_write])
        for item in batch:
            if item.to_write:
                try:
                    _insert(app, actor, [item])
                except Conflict as e1:
                    if e1.code != "CONCURRENT_CONFLICT":
                        raise
                    item.failure = e1
                    item.record_id = item.archival_code = None
        _settle_duplicates(batch)
        failed_only = [i for i in batch if i.failure is not None]
        if failed_only:
            _insert(app, actor, failed_only)  # their failure events


def _insert(app: Dangan, actor: Actor, batch: list[_Item]) -> None:
    todo = [item for item in batch if item.to_write]
    now = utcnow()
    with app.uow(actor) as uow:
        s = uow.session
        codes = _allocate(s, [item for item in todo if item.code is not None])
        todo = [item for item in todo if item.failure is None]  # minus those whose class has no number left
        rows = []
        for item in todo:
            row = {**item.row, "state": item.state.value, "created_by": actor.username, "created_at": now,
                   "updated_at": now, "archival_code": None, "class_key": None, "seq": None, "filed_at": None,
                   "filed_by": None, "submitted_at": None, "submitted_by": None}
            if item.state != RecordState.PRE_FILING:  # handed in on creation: submitted by its sender
                row.update(submitted_at=now, submitted_by=actor.username)
            if item.code is not None:
                seq, code = codes[item.index]
                row.update(archival_code=code, class_key=item.code[1], seq=seq, filed_at=now, filed_by=actor.username)
            rows.append(row)
        if rows:
            ids = _insert_records(s, rows)
            files = []
            for item, row, rid in zip(todo, rows, ids, strict=True):
                item.record_id, item.archival_code = rid, row["archival_code"]
                files.extend(_file_row(rid, seq, nf, b, actor, now)
                             for seq, (nf, b) in enumerate(zip(item.files, item.blobs, strict=True), start=1))
            if files:
                s.execute(insert(File), files)
        # one event per item, in input order: the created record (with its 档号 when created as filed) or the refusal
        for item in batch:
            if item.failure is not None:
                e = item.failure
                uow.events.append(audit.PendingEvent(
                    "record.create", "record", "", getattr(e, "audit_outcome", "failure"),
                    {"code": e.code, "message": e.message[:500], "problems": [p.as_dict() for p in e.problems[:50]],
                     "item": item.index, "sender_ref": item.inp.sender_ref}))
            elif item.record_id is not None and item.to_write:
                detail: dict[str, Any] = {
                    "title": item.row["title"], "category": item.category_code, "level": item.inp.level,
                    "state": item.state.value,
                    "files": [{"name": _name(nf), "sha256": st.blob.sha256, "sm3": st.blob.sm3, "size": st.blob.size}
                              for nf, st in zip(item.files, item.blobs, strict=True)]}
                if item.archival_code:
                    detail["archival_code"] = item.archival_code
                if item.inp.sender_ref:
                    detail["sender_ref"] = item.inp.sender_ref
                uow.audit("record.create", "record", item.record_id, **detail)


def _insert_records(s: Session, rows: list[dict[str, Any]]) -> list[int]:
    """Insert the rows in one statement batch and return their ids in the order of `rows`."""
    if s.get_bind().dialect.name != "sqlite":
        return list(s.scalars(insert(Record).returning(Record.id, sort_by_parameter_order=True), rows))
    # SQLite cannot return ids of a batched insert in parameter order (SQLAlchemy falls back to one INSERT per
    # row). This transaction holds the only write lock (BEGIN IMMEDIATE), and SQLite gives each new row the
    # largest id plus one, so the rows of one executemany take the ids after the current largest, in order.
    before = s.scalar(select(func.max(Record.id))) or 0
    s.execute(insert(Record), rows)
    got = s.execute(select(Record.id, Record.title).where(Record.id > before).order_by(Record.id)).all()
    if len(got) != len(rows) or any(title != row["title"] for (_, title), row in zip(got, rows, strict=True)):
        raise RuntimeError("records inserted by the batch do not match their ids")  # rolls the batch back
    return [rid for rid, _ in got]


def _allocate(s: Session, filed: list[_Item]) -> dict[int, tuple[int, str]]:
    """Sequence number and 档号 of each item created as filed, in input order.

    One `numbering.allocate_many` call reserves the block of every class of the batch (one statement, counters
    locked in sorted order), so the numbers stay gapless. When the template's width runs out (件号 10000 in a
    4-digit class), the items from there on are refused and their numbers are given back in the same
    transaction (`numbering.give_back`), so they are not taken.
    """
    classes: dict[tuple[int, str, str], list[_Item]] = {}
    for item in filed:
        assert item.code is not None
        classes.setdefault((item.row["category_id"], item.row["level"], item.code[1]), []).append(item)
    out: dict[int, tuple[int, str]] = {}
    if not classes:
        return out
    firsts = allocate_many(s, {key: len(members) for key, members in classes.items()})
    unused: dict[tuple[int, str, str], int] = {}
    for key, members in classes.items():
        first, used = firsts[key], 0
        for item in members:
            tpl, _key, values = item.code  # type: ignore[misc]
            try:
                out[item.index] = (first + used, tpl.format(values, first + used))
            except ValueError as e:
                item.failure = ValidationFailed(f"无法生成档号：{e}", code="ARCHIVAL_CODE_OVERFLOW")
                continue
            used += 1
        if used != len(members):
            unused[key] = len(members) - used
    give_back(s, unused)
    return out


def _name(nf: NewFile) -> str:
    return unicodedata.normalize("NFC", nf.name.strip())


def _file_row(record_id: int, seq: int, nf: NewFile, st: _Stored, actor: Actor, now: dt.datetime) -> dict[str, Any]:
    # the same values as files.add_rows gives a new record's files
    b = st.blob
    return {"record_id": record_id, "role": nf.role, "name": _name(nf), "size": b.size, **st.ident,
            "sha256": b.sha256, "sm3": b.sm3,
            "storage_key": b.key, "sequence": seq, "reason": "", "source_created_at": nf.source_created_at,
            "created_by": actor.username, "created_at": now}


def _report(report: IngestReport, item: _Item, on_item: Callable[[ItemResult], None] | None) -> None:
    ref = item.inp.sender_ref
    if item.failure is not None:
        f = ItemFailure.from_error(item.index, ref, item.failure)
        report.failed += 1
        if len(report.failures) < MAX_KEPT_FAILURES:
            report.failures.append(f)
        result = ItemResult(item.index, "failed", sender_ref=ref, failure=f)
    elif item.existing is not None:
        report.existing += 1
        result = ItemResult(item.index, "existing", item.existing[0], item.existing[1], ref)
    elif item.same_as is not None:
        first = item.same_as
        rid, code = first.existing or (first.record_id, first.archival_code)
        report.existing += 1
        result = ItemResult(item.index, "existing", rid, code, ref)
    else:
        report.created += 1
        report.files += len(item.blobs)
        report.bytes += sum(st.blob.size for st in item.blobs)
        result = ItemResult(item.index, "created", item.record_id, item.archival_code, ref)
    if on_item:
        on_item(result)


def validate_only(
    app: Dangan,
    actor: Actor,
    items: Iterable[tuple[RecordInput, list[NewFile]]],
    batch_size: int = DEFAULT_BATCH,
    on_item: Callable[[ItemResult], None] | None = None,
    progress: Callable[[IngestReport], None] | None = None,
) -> IngestReport:
    """Check items exactly as `ingest_batch` would (rights, schema, 档号 parts, sender_ref), writing nothing.

    Used by dry runs and by the submission gate, which refuses a whole package when one item is wrong. File
    contents are not read (streams are left untouched); an item "created" here is one that would be created.
    """
    if batch_size < 1:
        raise ValidationFailed("批次大小必须大于 0", code="BAD_BATCH_SIZE")
    require(actor, "record.create")
    report = IngestReport()
    it = iter(items)
    index = 0
    earlier: list[_Item] = []
    while True:
        batch = [_Item(index + i, inp, list(files or [])) for i, (inp, files) in enumerate(islice(it, batch_size))]
        if not batch:
            break
        index += len(batch)
        _validate(app, actor, batch, earlier, check_only=True)
        _settle_duplicates(batch)
        report.batches += 1
        for item in batch:
            _report(report, item, on_item)
        earlier = batch
        if progress:
            progress(report)
    return report
