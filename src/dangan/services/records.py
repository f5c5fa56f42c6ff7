"""Records (件, 案卷, 项目, 组): register with validated metadata and files, update, submit, file (档号), list."""

from __future__ import annotations

import base64
import datetime as dt
import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, func, or_, select, tuple_
from sqlalchemy.orm import Session

from dangan.db.models import Category, Department, File, Record, utcnow
from dangan.domain.access import visible_levels, within_ceiling
from dangan.domain.archival_code import CLASSIFIED, CodeTemplate
from dangan.domain.presets import ARRANGEMENTS, STATE_SECRET_LEVELS
from dangan.domain.retention import parse_retention
from dangan.domain.schema import MetadataSchema
from dangan.domain.states import EDITABLE, IN_HOLDINGS, TRANSITIONS, RecordState, parse_state
from dangan.errors import (
    Conflict,
    FieldProblem,
    NotFound,
    PermissionDenied,
    Problems,
    StateError,
    ValidationFailed,
)
from dangan.services.access import get_visible_record, require, security_settings, visible
from dangan.services.categories import get_category
from dangan.services.context import Actor, Dangan, audited
from dangan.services.files import NewFile, add_rows, check_new_files, store_blobs
from dangan.services.fonds import get_department, get_fonds
from dangan.services.numbering import allocate
from dangan.services.schedule import fill_retention
from dangan.services.views import record_view

# parts of a 档号 that come from the record's own metadata: changing them after filing would change the code
CODE_FIELDS = {"year", "retention_period", "class_code", "department_code", "department_name"}


@dataclass
class RecordInput:
    fonds: str
    category: str
    metadata: dict[str, Any]
    level: str = "item"
    department: str | None = None
    parent_id: int | None = None
    state: str = RecordState.PRE_FILING.value
    sender_ref: str | None = None


def _schema(cat: Category, level: str) -> MetadataSchema:
    return MetadataSchema.from_dict(cat.schemas[level])


def _template(cat: Category, level: str, security_level: str | None = None) -> CodeTemplate:
    """The level's 档号 template; state-secret records use the level's classified series when one is defined."""
    if security_level in STATE_SECRET_LEVELS and level + CLASSIFIED in cat.code_templates:
        return CodeTemplate.from_list(cat.code_templates[level + CLASSIFIED])
    return CodeTemplate.from_list(cat.code_templates[level])


def _resolve(session: Session, inp: RecordInput, p: Problems) -> tuple[Any, Category | None, Department | None, Record | None]:
    """Look up fonds, category, department and parent; report what is wrong as field problems."""
    fonds = get_fonds(session, inp.fonds)
    cat = get_category(session, fonds.id, inp.category)
    levels = ARRANGEMENTS[cat.arrangement]["levels"]
    if inp.level not in levels:
        p.add("level", "NOT_IN_DOMAIN", f"门类 {cat.code} 的层级只有：{'、'.join(levels)}", "层级", inp.level)
        return fonds, None, None, None
    dept = None
    if inp.department:
        try:
            dept = get_department(session, fonds.id, inp.department)
        except NotFound as e:
            p.add("department", "NOT_FOUND", e.message, "机构（问题）", inp.department)
    else:
        needs = {pt.source for pt in _template(cat, inp.level).parts} & {"department_code", "department_name"}
        if needs:
            p.add("department", "REQUIRED", "本门类的档号包含机构（问题），必须指定所属机构", "机构（问题）")
    parent = None
    idx = levels.index(inp.level)
    if idx > 0:
        if inp.parent_id is None:
            p.add("parent_id", "REQUIRED", f"{inp.level} 层级必须指定所属的上级（{levels[idx - 1]}）", "上级")
        else:
            parent = session.get(Record, inp.parent_id)
            if parent is None or parent.category_id != cat.id or parent.level != levels[idx - 1]:
                p.add("parent_id", "NOT_FOUND", f"上级档案 {inp.parent_id} 不存在或不是本门类的 {levels[idx - 1]}", "上级")
                parent = None
    elif inp.parent_id is not None:
        p.add("parent_id", "NOT_ALLOWED", "最高层级不能指定上级", "上级")
    return fonds, cat, dept, parent


def _apply_metadata(rec: Record, meta: dict[str, Any], parent: Record | None) -> None:
    rec.meta = meta
    rec.title = meta.get("title", "")
    rec.year = meta.get("year") or (parent.year if parent else None)
    rec.date = dt.date.fromisoformat(meta["date"]) if meta.get("date") else None
    if rec.year is None and rec.date is not None:
        rec.year = rec.date.year
    rec.retention_period = meta.get("retention_period") or (parent.retention_period if parent else None)
    rec.security_level = meta.get("security_level") or (parent.security_level if parent else "公开")
    rec.doc_number = meta.get("doc_number")
    rec.responsible = meta.get("responsible")
    rec.expiry_date = None
    if rec.retention_period and rec.year:
        rec.expiry_date = parse_retention(rec.retention_period).expiry_date(rec.year)


def _code_values(rec: Record, cat: Category, parent: Record | None) -> dict[str, Any]:
    return {
        **rec.meta,
        "fonds_code": rec.fonds.code,
        "category_code": cat.code,
        "year": rec.year,
        "retention_period": rec.retention_period,
        "department_code": rec.department.code if rec.department else None,
        "department_name": rec.department.name if rec.department else None,
        "parent_code": parent.archival_code if parent else None,
    }


def _assign_code(session: Session, rec: Record, actor: Actor) -> None:
    cat = rec.category
    parent = session.get(Record, rec.parent_id) if rec.parent_id else None
    if parent is not None and not parent.archival_code:
        raise StateError("上级（案卷/项目/组）尚未归档、没有档号，请先将上级归档", code="PARENT_NOT_FILED")
    tpl = _template(cat, rec.level, rec.security_level)
    try:
        key = tpl.class_key(_code_values(rec, cat, parent))
    except ValueError as e:
        raise ValidationFailed(f"无法生成档号：{e}", code="ARCHIVAL_CODE_INCOMPLETE") from e
    seq = allocate(session, cat.id, rec.level, key)
    rec.class_key, rec.seq = key, seq
    try:
        rec.archival_code = tpl.format(_code_values(rec, cat, parent), seq)
    except ValueError as e:  # the class is full (e.g. 件号 past 9999): the transaction rolls back, no number used
        raise ValidationFailed(f"无法生成档号：{e}。请调整档号规则（加宽顺序号）或分类", code="ARCHIVAL_CODE_FULL") from e
    rec.state = RecordState.FILED.value
    rec.filed_at = utcnow()
    rec.filed_by = actor.username


def _check_input(inp: RecordInput, files: list[NewFile], p: Problems) -> RecordState:
    """The checks that need no database (initial state, sender_ref, file names); shared with services.ingest."""
    try:
        state = parse_state(inp.state)
    except ValueError as e:
        raise ValidationFailed(str(e), code="BAD_STATE") from e
    if state not in (RecordState.PRE_FILING, RecordState.PENDING, RecordState.FILED):
        raise ValidationFailed(f"新建档案的状态只能是预归档、待归档或已归档，不能是“{state.label}”", code="BAD_STATE")
    if inp.sender_ref is not None and (not inp.sender_ref.strip() or len(inp.sender_ref) > 200):
        p.add("sender_ref", "TOO_LONG", "来源系统标识不能为空且不超过 200 个字符", "来源标识")
    check_new_files(files, p)
    return state


def check_create_scope(session: Session, actor: Actor, cat: Category, dept: Department | None, state: RecordState,
                       meta: dict[str, Any], p: Problems) -> None:
    """May this actor register this record? Department scope, token limits, filing right, 密级 and ceiling."""
    scope = require(actor, "record.create")
    if state == RecordState.FILED:
        require(actor, "record.file")
    if scope in ("department", "department_prefiling") and (dept is None or dept.id not in actor.department_ids):
        raise _denied("只能为本部门著录档案，请选择本部门")
    cats, depts = actor.token_limits("categories"), actor.token_limits("departments")
    if cats is not None and cat.code not in cats:
        raise _denied(f"该接口令牌不能向门类 {cat.code} 提交档案")
    if depts is not None and (dept is None or dept.code not in depts):
        raise _denied("该接口令牌不能为此机构提交档案")
    _check_level(session, actor, meta.get("security_level"), p)


def _check_level(session: Session, actor: Actor, level: str | None, p: Problems) -> None:
    """A record's 密级 must be within the deployment ceiling and the actor's own clearance."""
    if level and not actor.superuser:
        sec = security_settings(session)
        levels = tuple(sec["levels"])
        if not within_ceiling(level, sec["ceiling"], levels):
            p.add("security_level", "ABOVE_CEILING", f"本系统最高只能存储“{sec['ceiling']}”级档案，不能接收“{level}”级档案", "密级", level)
        elif level not in visible_levels(actor.clearance, levels, sec["ceiling"]):
            p.add("security_level", "ABOVE_CLEARANCE", f"不能著录高于本人密级（{actor.clearance}）的档案", "密级", level)


def _denied(message: str) -> PermissionDenied:
    err = PermissionDenied(message, code="PERMISSION_DENIED")
    err.audit_outcome = "denied"  # type: ignore[attr-defined]
    return err


@audited("record.create", "record")
def create_record(app: Dangan, actor: Actor, inp: RecordInput, files: list[NewFile] | None = None) -> dict[str, Any]:
    """Register a record with its files. Everything is validated before any write; blobs go first, then rows."""
    files = files or []
    p = Problems()
    state = _check_input(inp, files, p)
    with app.read_sessions() as s:
        _fonds, cat, dept, parent = _resolve(s, inp, p)
        suggested = None
        if cat is not None:
            given, suggested = fill_retention(cat, inp.metadata, dept)
            meta, mp = _schema(cat, inp.level).validate(given)
            p.items.extend(mp.items)
            check_create_scope(s, actor, cat, dept, state, meta, p)
        if parent is not None and s.scalar(select(Record.id).where(Record.id == parent.id, visible(s, actor))) is None:
            p.add("parent_id", "NOT_FOUND", f"上级档案 {parent.id} 不存在", "上级")
        if inp.sender_ref:
            existing = s.scalar(select(Record).where(Record.sender_ref == inp.sender_ref))
            if existing is not None and not p:
                if s.scalar(select(Record.id).where(Record.id == existing.id, visible(s, actor))) is None:
                    raise Conflict("来源系统标识已被使用，请换用新的标识", code="SENDER_REF_USED")
                return record_view(existing, files=True)  # idempotent retry by the sender's identifier
    p.raise_if_any("著录数据有误，未保存任何内容，请按提示逐项修改")
    blobs = store_blobs(app, files)
    try:
        return _insert_record(app, actor, inp, files, blobs, meta, state, suggested)
    except Conflict as e:
        if e.code != "CONCURRENT_CONFLICT" or not inp.sender_ref:
            raise
        # the same sender_ref was stored by a concurrent request between our check and our insert: a retry
        with app.read_sessions() as s:
            existing = s.scalar(select(Record).where(Record.sender_ref == inp.sender_ref, visible(s, actor)))
            if existing is None:
                raise
            return record_view(existing, files=True)


def _insert_record(app: Dangan, actor: Actor, inp: RecordInput, files: list[NewFile], blobs: list[Any],
                   meta: dict[str, Any], state: RecordState, suggested: Any) -> dict[str, Any]:
    p = Problems()
    with app.uow(actor, "record.create", "record") as uow:
        s = uow.session
        _fonds, cat, dept, parent = _resolve(s, inp, p)
        p.raise_if_any()
        assert cat is not None
        rec = Record(fonds_id=cat.fonds_id, category_id=cat.id, level=inp.level, parent_id=parent.id if parent else None,
                     department_id=dept.id if dept else None, state=RecordState.PRE_FILING.value,
                     created_by=actor.username, sender_ref=inp.sender_ref)
        _apply_metadata(rec, meta, parent)
        s.add(rec)
        s.flush()
        s.refresh(rec)
        rows = add_rows(s, app.store, rec, files, blobs, actor)
        uow.audit("record.create", "record", rec.id, title=rec.title, category=cat.code, level=rec.level,
                  files=[{"name": f.name, "sha256": f.sha256, "sm3": f.sm3, "size": f.size} for f in rows],
                  **({"retention_suggested": suggested.as_dict()["explanation"]} if suggested else {}))
        if state != RecordState.PRE_FILING:  # handed in on creation: submitted by its sender
            rec.submitted_at, rec.submitted_by = utcnow(), actor.username
        if state == RecordState.PENDING:
            rec.state = state.value
        elif state == RecordState.FILED:
            _assign_code(s, rec, actor)
            uow.audit("record.file", "record", rec.id, archival_code=rec.archival_code)
        s.flush()
        return record_view(rec, files=True)


def get_record(app: Dangan, actor: Actor, record_id: int) -> dict[str, Any]:
    with app.uow(actor, "record.view", "record", str(record_id)) as uow:
        rec = get_visible_record(uow.session, actor, record_id, "record.read")
        uow.audit("record.view", "record", rec.id, archival_code=rec.archival_code)
        view = record_view(rec, files=True)
        view["children_count"] = uow.session.scalar(select(func.count()).where(Record.parent_id == rec.id,
                                                                                visible(uow.session, actor)))
        return view


def find_by_code(app: Dangan, actor: Actor, archival_code: str) -> dict[str, Any]:
    with app.read_sessions() as s:
        rid = s.scalar(select(Record.id).where(Record.archival_code == archival_code.strip(), visible(s, actor)))
    if rid is None:
        raise NotFound(f"档号 {archival_code} 不存在", code="RECORD_NOT_FOUND")
    return get_record(app, actor, rid)


def update_record(app: Dangan, actor: Actor, record_id: int, changes: dict[str, Any], reason: str = "",
                  expected_version: int | None = None) -> dict[str, Any]:
    """Change metadata. Before filing: free. After filing: a reason is required and 档号 parts are locked."""
    with app.uow(actor, "record.update", "record", str(record_id)) as uow:
        s = uow.session
        rec = get_visible_record(s, actor, record_id, "record.update", lock=True)
        if expected_version is not None and rec.row_version != expected_version:
            raise StateError("该档案已被他人修改，请刷新后重新编辑", code="STALE_VERSION")
        state = RecordState(rec.state)
        if state not in EDITABLE and state not in IN_HOLDINGS:
            raise StateError(f"档案处于“{state.label}”状态，不能修改", code="RECORD_NOT_EDITABLE")
        schema = _schema(rec.category, rec.level)
        p = Problems()
        if state in IN_HOLDINGS:
            if not reason.strip():
                p.add("reason", "REQUIRED", "修改已归档档案的著录必须写明原因", "修改原因")
            locked = sorted(set(changes) & CODE_FIELDS)
            for k in locked:
                if changes[k] != rec.meta.get(k):
                    spec = schema.get(k)
                    p.add(k, "ARCHIVAL_CODE_FIELD_LOCKED", "该项是档号的组成部分，归档后不能直接修改", spec.label if spec else k)
        merged = {**rec.meta, **changes}
        merged = {k: v for k, v in merged.items() if v is not None and v != ""}
        meta, mp = schema.validate(merged)
        p.items.extend(mp.items)
        _check_level(s, actor, meta.get("security_level"), p)
        p.raise_if_any("修改内容有误，未保存，请按提示逐项修改")
        before = {k: rec.meta.get(k) for k in set(changes) | set(meta) if rec.meta.get(k) != meta.get(k)}
        after = {k: meta.get(k) for k in before}
        parent = s.get(Record, rec.parent_id) if rec.parent_id else None
        _apply_metadata(rec, meta, parent)
        rec.updated_at = utcnow()
        rec.row_version += 1
        uow.audit("record.update", "record", rec.id, before=before, after=after, reason=reason)
        return record_view(rec, files=True)


def transition(app: Dangan, actor: Actor, record_id: int, to: str, reason: str = "") -> dict[str, Any]:
    """submit (预归档→待归档), return (待归档→预归档, reason required), file (→已归档, assigns the 档号)."""
    target = parse_state(to)
    checks = None
    if target == RecordState.FILED and app.filing_checks:
        with app.read_sessions() as s:
            get_visible_record(s, actor, record_id, "record.file")  # no check runs on what the actor may not file
        checks = run_filing_checks(app, actor, record_id)
    action = {RecordState.PENDING: "record.submit", RecordState.PRE_FILING: "record.return",
              RecordState.FILED: "record.file"}.get(target, "record.transition")
    with app.uow(actor, action, "record", str(record_id)) as uow:
        s = uow.session
        needed = "record.submit" if target == RecordState.PENDING else "record.file"
        rec = get_visible_record(s, actor, record_id, needed, lock=True)
        current = RecordState(rec.state)
        if (current, target) not in TRANSITIONS:
            raise StateError(f"档案当前为“{current.label}”，不能变为“{target.label}”", code="INVALID_TRANSITION")
        if target == RecordState.PRE_FILING and not reason.strip():
            raise ValidationFailed("退回必须写明原因", code="REASON_REQUIRED")
        if target == RecordState.FILED:
            _assign_code(s, rec, actor)
        else:
            rec.state = target.value
        if target == RecordState.PENDING:
            rec.submitted_at, rec.submitted_by, rec.return_reason = utcnow(), actor.username, None
        elif target == RecordState.PRE_FILING:
            rec.return_reason = reason.strip()
        rec.updated_at = utcnow()
        rec.row_version += 1
        uow.audit(action, "record", rec.id, from_state=current.value, to_state=target.value,
                  archival_code=rec.archival_code, reason=reason, **({"filing_checks": checks} if checks else {}))
        return record_view(rec)


def run_filing_checks(app: Dangan, actor: Actor, record_id: int) -> list[dict[str, Any]]:
    """The checks registered for acceptance (归档环节的四性检测 when that engine is installed).

    Each check is `check(app, actor, record_id) -> dict` with at least "name", "passed" (bool) and "problems"
    (a list of FieldProblem-like dicts with field, code, message). Checks run before the filing transaction
    (they may read every file; no write lock is held meanwhile). A failed check refuses the filing with every
    problem of every check, and the record stays where it was."""
    results = [check(app, actor, record_id) for check in app.filing_checks]
    failed = [r for r in results if not r.get("passed")]
    if failed:
        problems = [FieldProblem(pr.get("field", r.get("name", "")), pr.get("code", "CHECK_FAILED"), pr.get("message", ""),
                                 pr.get("label", r.get("label", r.get("name", ""))))
                    for r in failed for pr in r.get("problems", [])]
        raise ValidationFailed("归档前检测未通过，未归档。请按提示处理后重新接收：" + "、".join(r.get("label", r.get("name", "")) for r in failed),
                               code="FILING_CHECK_FAILED", problems=problems)
    return [{"name": r.get("name"), "passed": True} for r in results]


@dataclass
class RecordFilter:
    fonds: str | None = None
    category: str | None = None
    level: str | None = None
    year: int | None = None
    retention_period: str | None = None
    department: str | None = None
    state: str | None = None
    parent_id: int | None = None
    q: str | None = None
    security_level: str | None = None


def _filtered(s: Session, flt: RecordFilter, actor: Actor) -> Select[Any]:
    """The filter as SQL, always with the actor's security trimming inside the same WHERE."""
    q = select(Record).where(visible(s, actor))
    if flt.fonds:
        f = get_fonds(s, flt.fonds)
        q = q.where(Record.fonds_id == f.id)
        if flt.category:
            q = q.where(Record.category_id == get_category(s, f.id, flt.category).id)
        if flt.department:
            q = q.where(Record.department_id == get_department(s, f.id, flt.department).id)
    elif flt.category or flt.department:
        raise ValidationFailed("按门类或机构筛选时必须同时指定全宗", code="FONDS_REQUIRED")
    if flt.level:
        q = q.where(Record.level == flt.level)
    if flt.year is not None:
        q = q.where(Record.year == flt.year)
    if flt.retention_period:
        try:
            q = q.where(Record.retention_period == parse_retention(flt.retention_period).code)
        except ValueError as e:
            raise ValidationFailed(str(e), code="BAD_FILTER") from e
    if flt.state:
        try:
            q = q.where(Record.state == parse_state(flt.state).value)
        except ValueError as e:
            raise ValidationFailed(str(e), code="BAD_FILTER") from e
    if flt.parent_id is not None:
        q = q.where(Record.parent_id == flt.parent_id)
    if flt.security_level:
        q = q.where(Record.security_level == flt.security_level)
    if flt.q:
        term = flt.q.replace("\x00", "").strip()[:200].replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        like = f"%{term}%"
        q = q.where(or_(Record.title.like(like, escape="\\"), Record.archival_code.like(like, escape="\\"),
                        Record.doc_number.like(like, escape="\\")))
    return q


SORTS = {"code": "按档号", "newest": "最新在前"}


def _encode_cursor(values: list[Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(values, ensure_ascii=False).encode()).decode()


def _decode_cursor(cursor: str) -> list[Any]:
    try:
        v = json.loads(base64.urlsafe_b64decode(cursor.encode()).decode())
        if not isinstance(v, list) or len(v) != 2:
            raise ValueError
        return v
    except (ValueError, UnicodeDecodeError) as e:
        raise ValidationFailed("分页游标无效，请从第一页重新浏览", code="BAD_CURSOR") from e


def list_records(app: Dangan, actor: Actor, flt: RecordFilter, *, limit: int = 50, cursor: str | None = None,
                 sort: str = "code", audit: bool = True) -> dict[str, Any]:
    """One page of records, keyset-paginated (no deep OFFSET), with the total for the same filter."""
    if sort not in SORTS:
        raise ValidationFailed(f"排序方式“{sort}”无效，可选：{'、'.join(SORTS)}", code="BAD_SORT")
    limit = max(1, min(int(limit), 500))
    with app.read_sessions() as s:
        base = _filtered(s, flt, actor)
        total = s.scalar(select(func.count()).select_from(base.subquery()))
        if sort == "code":
            k1 = func.coalesce(Record.archival_code, "\uffff")
            q = base.order_by(k1, Record.id)
            if cursor:
                c = _decode_cursor(cursor)
                q = q.where(tuple_(k1, Record.id) > tuple_(c[0], c[1]))
        else:
            q = base.order_by(Record.id.desc())
            if cursor:
                c = _decode_cursor(cursor)
                q = q.where(Record.id < c[1])
        rows = s.scalars(q.limit(limit + 1)).all()
        more = len(rows) > limit
        rows = rows[:limit]
        items = [record_view(r) for r in rows]
        counts = dict(s.execute(select(File.record_id, func.count()).where(File.record_id.in_([r.id for r in rows]))
                                .group_by(File.record_id)).all()) if rows else {}
        for it in items:
            it["file_count"] = counts.get(it["id"], 0)
        next_cursor = None
        if more and rows:
            last = rows[-1]
            next_cursor = _encode_cursor([last.archival_code or "\uffff", last.id])
    if audit:
        with app.uow(actor) as uow:
            uow.audit("record.list", "record", "", filter={k: v for k, v in vars(flt).items() if v}, returned=len(items))
    return {"total": total, "items": items, "next_cursor": next_cursor}


def facets(app: Dangan, actor: Actor, flt: RecordFilter) -> dict[str, list[dict[str, Any]]]:
    """Counts for the browse tree: by category, year, retention period, department and state."""
    out: dict[str, list[dict[str, Any]]] = {}
    with app.read_sessions() as s:
        sub = _filtered(s, flt, actor).subquery()
        for name, col in (("category_id", sub.c.category_id), ("year", sub.c.year),
                          ("retention_period", sub.c.retention_period), ("department_id", sub.c.department_id),
                          ("state", sub.c.state)):
            rows = s.execute(select(col, func.count()).group_by(col).order_by(col)).all()
            out[name] = [{"value": v, "count": n} for v, n in rows]
    return out
