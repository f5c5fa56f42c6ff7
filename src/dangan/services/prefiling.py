"""预归档: annual filing plans per department, the review queue, acceptance in order, and arrangement.

Department clerks (兼职档案员) register records for their department and submit them (预归档 → 待归档);
the archivist (专职档案员) returns them with a reason or accepts them. Acceptance files the records in their
arranged order (position, then date, then importance), so that 件号 follow the arrangement: one transaction per
record through `records.transition`, which runs the filing checks first and allocates a gapless 档号.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from sqlalchemy import case, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from dangan.db.models import Category, Department, FilingPlan, Record
from dangan.domain.presets import ARRANGEMENTS
from dangan.domain.states import RecordState
from dangan.errors import Conflict, DanganError, NotFound, Problems, StateError, ValidationFailed
from dangan.services import records
from dangan.services.access import require, visible
from dangan.services.categories import get_category
from dangan.services.context import Actor, Dangan
from dangan.services.fonds import get_department, get_fonds

REMIND_DAYS = 30
MAX_BATCH = 5000


# ---------------------------------------------------------------- plans

def _plan_view(p: FilingPlan, counts: dict[str, int] | None = None, today: dt.date | None = None) -> dict[str, Any]:
    today = today or dt.date.today()
    counts = counts or {}
    done = counts.get(RecordState.FILED.value, 0) + counts.get(RecordState.ON_LOAN.value, 0)
    handed_in = done + counts.get(RecordState.PENDING.value, 0)
    days_left = (p.deadline - today).days
    complete = p.expected_count is not None and done >= p.expected_count
    if complete:
        status, label = "complete", "已完成"
    elif days_left < 0:
        status, label = "overdue", f"已逾期 {-days_left} 天"
    elif days_left <= REMIND_DAYS:
        status, label = "due_soon", f"还剩 {days_left} 天"
    else:
        status, label = "open", f"截止 {p.deadline.isoformat()}"
    return {
        "id": p.id, "fonds_code": p.fonds.code, "department_code": p.department.code,
        "department_name": p.department.name, "category_code": p.category.code, "category_name": p.category.name,
        "year": p.year, "deadline": p.deadline.isoformat(), "expected_count": p.expected_count, "note": p.note,
        "created_by": p.created_by, "counts": {
            "pre_filing": counts.get(RecordState.PRE_FILING.value, 0), "pending": counts.get(RecordState.PENDING.value, 0),
            "filed": done, "handed_in": handed_in},
        "percent": min(100, int(done * 100 / p.expected_count)) if p.expected_count else None,
        "days_left": days_left, "status": status, "status_label": label,
    }


def _parse_deadline(value: Any, p: Problems) -> dt.date | None:
    if isinstance(value, dt.date):
        return value
    try:
        return dt.date.fromisoformat(str(value).strip())
    except ValueError:
        p.add("deadline", "WRONG_TYPE", "截止日期应写作 2025-03-31", "截止日期", value)
        return None


def _check_plan_values(year: Any, expected_count: Any, note: str, p: Problems) -> None:
    if not isinstance(year, int) or not 1900 <= year <= 2999:
        p.add("year", "WRONG_TYPE", "年度应为四位数字，如 2024", "年度", year)
    if expected_count is not None and (not isinstance(expected_count, int) or not 0 <= expected_count <= 10_000_000):
        p.add("expected_count", "WRONG_TYPE", "应归档件数应为 0 或正整数", "应归档件数", expected_count)
    if len(note or "") > 1000:
        p.add("note", "TOO_LONG", "说明不超过 1000 字", "说明")


def create_plan(app: Dangan, actor: Actor, fonds: str, department: str, category: str, year: int,
                deadline: Any, expected_count: int | None = None, note: str = "") -> dict[str, Any]:
    """年度归档计划: a department hands in a category's records of a year by the deadline."""
    p = Problems()
    _check_plan_values(year, expected_count, note, p)
    due = _parse_deadline(deadline, p)
    with app.uow(actor, "plan.create", "filing_plan") as uow:
        require(actor, "plan.manage")
        p.raise_if_any("归档计划有误，未保存，请按提示修改")
        s = uow.session
        f = get_fonds(s, fonds)
        dept = get_department(s, f.id, department)
        cat = get_category(s, f.id, category)
        if s.scalar(select(FilingPlan.id).where(FilingPlan.fonds_id == f.id, FilingPlan.department_id == dept.id,
                                                FilingPlan.category_id == cat.id, FilingPlan.year == year)):
            raise Conflict(f"{dept.name} {year} 年度的{cat.name}已有归档计划，请修改原计划", code="PLAN_EXISTS")
        assert due is not None
        plan = FilingPlan(fonds_id=f.id, department_id=dept.id, category_id=cat.id, year=year, deadline=due,
                          expected_count=expected_count, note=note or "", created_by=actor.username)
        s.add(plan)
        try:
            s.flush()
        except IntegrityError as e:  # a concurrent creation of the same plan
            raise Conflict(f"{dept.name} {year} 年度的{cat.name}已有归档计划", code="PLAN_EXISTS") from e
        s.refresh(plan)
        uow.audit("plan.create", "filing_plan", plan.id, department=dept.code, category=cat.code, year=year,
                  deadline=due.isoformat(), expected_count=expected_count)
        return _plan_view(plan)


def update_plan(app: Dangan, actor: Actor, plan_id: int, *, deadline: Any = None, expected_count: Any = ...,
                note: str | None = None) -> dict[str, Any]:
    p = Problems()
    due = _parse_deadline(deadline, p) if deadline is not None else None
    with app.uow(actor, "plan.update", "filing_plan", str(plan_id)) as uow:
        require(actor, "plan.manage")
        plan = _get_plan(uow.session, plan_id)
        _check_plan_values(plan.year, None if expected_count is ... else expected_count, note or "", p)
        p.raise_if_any("归档计划有误，未保存，请按提示修改")
        before = _plan_view(plan)
        if due is not None:
            plan.deadline = due
        if expected_count is not ...:
            plan.expected_count = expected_count
        if note is not None:
            plan.note = note
        uow.audit("plan.update", "filing_plan", plan.id, before={k: before[k] for k in ("deadline", "expected_count", "note")},
                  after={"deadline": plan.deadline.isoformat(), "expected_count": plan.expected_count, "note": plan.note})
        return _plan_view(plan)


def delete_plan(app: Dangan, actor: Actor, plan_id: int) -> None:
    with app.uow(actor, "plan.delete", "filing_plan", str(plan_id)) as uow:
        require(actor, "plan.manage")
        plan = _get_plan(uow.session, plan_id)
        uow.audit("plan.delete", "filing_plan", plan.id, department=plan.department.code, category=plan.category.code,
                  year=plan.year)
        uow.session.delete(plan)


def _get_plan(s: Session, plan_id: int) -> FilingPlan:
    plan = s.get(FilingPlan, plan_id)
    if plan is None:
        raise NotFound(f"归档计划 {plan_id} 不存在", code="PLAN_NOT_FOUND")
    return plan


def _plans_query(s: Session, actor: Actor) -> Any:
    """Archivists see every plan; a department clerk sees the plans of their departments; others none."""
    q = select(FilingPlan)
    if actor.superuser or actor.scope_for("plan.manage"):
        return q
    if actor.scope_for("record.create") is None or not actor.department_ids:
        return None
    return q.where(FilingPlan.department_id.in_(list(actor.department_ids)))


def list_plans(app: Dangan, actor: Actor, fonds: str | None = None, year: int | None = None,
               today: dt.date | None = None) -> list[dict[str, Any]]:
    """Plans with their progress: the department's records of that category and year, by state (trimmed)."""
    with app.read_sessions() as s:
        q = _plans_query(s, actor)
        if q is None:
            return []
        if fonds:
            q = q.where(FilingPlan.fonds_id == get_fonds(s, fonds).id)
        if year is not None:
            q = q.where(FilingPlan.year == year)
        plans = s.scalars(q.order_by(FilingPlan.deadline, FilingPlan.id)).all()
        return [_plan_view(p, _plan_counts(s, actor, p), today) for p in plans]


def _plan_counts(s: Session, actor: Actor, plan: FilingPlan) -> dict[str, int]:
    top = ARRANGEMENTS[plan.category.arrangement]["levels"][0]
    rows = s.execute(select(Record.state, func.count()).where(
        Record.category_id == plan.category_id, Record.department_id == plan.department_id, Record.year == plan.year,
        Record.level == top, visible(s, actor)).group_by(Record.state)).all()
    return {st: n for st, n in rows}


def reminders(app: Dangan, actor: Actor, today: dt.date | None = None) -> list[dict[str, Any]]:
    """Plans that are overdue or due within REMIND_DAYS days and not complete: shown on the dashboard."""
    return [p for p in list_plans(app, actor, today=today) if p["status"] in ("overdue", "due_soon")]


# ---------------------------------------------------------------- review: return and accept

def return_record(app: Dangan, actor: Actor, record_id: int, reason: str) -> dict[str, Any]:
    """退回: back to the department (待归档 → 预归档) with the reason, which the clerk sees on the record."""
    if not (reason or "").strip():
        raise ValidationFailed("退回必须写明原因，部门档案员将看到这一原因", code="REASON_REQUIRED")
    if len(reason) > 1000:
        raise ValidationFailed("退回原因不超过 1000 字", code="TOO_LONG")
    return records.transition(app, actor, record_id, RecordState.PRE_FILING.value, reason=reason.strip())


def _filing_order(s: Session, ids: list[int]) -> list[int]:
    """The arranged order: explicit position first, then 日期, then importance (longer retention first), then id."""
    importance = case((Record.retention_period == "Y", 0), else_=1)
    rows = s.execute(select(Record.id).where(Record.id.in_(ids)).order_by(
        Record.category_id, Record.level, Record.year, Record.department_id,
        case((Record.position.is_(None), 1), else_=0), Record.position, Record.date, importance, Record.id)).all()
    return [r[0] for r in rows]


def accept(app: Dangan, actor: Actor, record_ids: list[int],
           progress: Callable[[int, int], None] | None = None) -> dict[str, Any]:
    """接收归档: file each record (assigning its 档号) in the arranged order; report each refusal with its reason.

    Each record is filed in its own transaction, so one refused record (a failed check, a missing field of the
    档号) does not hold back the others; the numbers stay gapless because a refused record takes none."""
    require(actor, "record.file")
    ids = list(dict.fromkeys(int(i) for i in record_ids))
    if not ids:
        raise ValidationFailed("请选择要接收的档案", code="NOTHING_SELECTED")
    if len(ids) > MAX_BATCH:
        raise ValidationFailed(f"一次最多接收 {MAX_BATCH} 件，请分批接收", code="TOO_MANY")
    with app.read_sessions() as s:
        ordered = _filing_order(s, ids)
    missing = [i for i in ids if i not in set(ordered)]
    accepted: list[dict[str, Any]] = []
    refused: list[dict[str, Any]] = [{"id": i, "code": "RECORD_NOT_FOUND", "message": f"档案 {i} 不存在"} for i in missing]
    for n, rid in enumerate(ordered, 1):
        try:
            v = records.transition(app, actor, rid, RecordState.FILED.value)
            accepted.append({"id": rid, "archival_code": v["archival_code"], "title": v["title"]})
        except DanganError as e:
            refused.append({"id": rid, **e.as_dict()})
        if progress:
            progress(n, len(ordered))
    return {"accepted": accepted, "refused": refused}


# ---------------------------------------------------------------- arrangement before acceptance

def _movable(s: Session, actor: Actor, ids: list[int]) -> list[Record]:
    recs = s.scalars(select(Record).where(Record.id.in_(ids), visible(s, actor, "record.file"))).all()
    found = {r.id for r in recs}
    lost = [i for i in ids if i not in found]
    if lost:
        raise NotFound(f"档案 {'、'.join(map(str, lost[:10]))} 不存在", code="RECORD_NOT_FOUND")
    filed = [r for r in recs if r.state not in (RecordState.PRE_FILING.value, RecordState.PENDING.value)]
    if filed:
        raise StateError("已归档的档案不能再调整顺序（件号已确定）：" + "、".join(r.archival_code or str(r.id) for r in filed[:5]),
                         code="RECORD_NOT_EDITABLE")
    return list(recs)


def set_order(app: Dangan, actor: Actor, record_ids: list[int]) -> list[dict[str, Any]]:
    """Put the given records (not yet filed) in this order: positions 1..n, used when they are accepted."""
    ids = list(dict.fromkeys(int(i) for i in record_ids))
    if not ids or len(ids) > MAX_BATCH:
        raise ValidationFailed(f"请给出 1 至 {MAX_BATCH} 件档案的顺序", code="BAD_ORDER")
    with app.uow(actor, "record.arrange", "record") as uow:
        require(actor, "record.file")
        recs = {r.id: r for r in _movable(uow.session, actor, ids)}
        for pos, rid in enumerate(ids, 1):
            recs[rid].position = pos
            recs[rid].row_version += 1
        uow.audit("record.arrange", "record", "", order=ids)
        return [{"id": rid, "position": recs[rid].position, "title": recs[rid].title} for rid in ids]


def auto_order(app: Dangan, actor: Actor, record_ids: list[int]) -> list[dict[str, Any]]:
    """Order by 日期, then importance (永久 before 定期), as DA/T 22-2015 arranges items within the lowest class."""
    require(actor, "record.file")  # before looking at the records: a refusal, not "档案不存在"
    with app.read_sessions() as s:
        _movable(s, actor, list(record_ids))
        importance = case((Record.retention_period == "Y", 0), else_=1)
        ordered = [r[0] for r in s.execute(select(Record.id).where(Record.id.in_(list(record_ids)))
                                           .order_by(Record.date, importance, Record.id)).all()]
    return set_order(app, actor, ordered)


def queue(app: Dangan, actor: Actor, fonds: str | None = None, category: str | None = None,
          department: str | None = None, limit: int = 500) -> dict[str, Any]:
    """待接收: records handed in (待归档) in the arranged order, grouped by the class they will be numbered in."""
    require(actor, "record.file")
    with app.read_sessions() as s:
        q = select(Record).where(Record.state == RecordState.PENDING.value, visible(s, actor, "record.file"))
        if fonds:
            f = get_fonds(s, fonds)
            q = q.where(Record.fonds_id == f.id)
            if category:
                q = q.where(Record.category_id == get_category(s, f.id, category).id)
            if department:
                q = q.where(Record.department_id == get_department(s, f.id, department).id)
        total = s.scalar(select(func.count()).select_from(q.subquery()))
        importance = case((Record.retention_period == "Y", 0), else_=1)
        recs = s.scalars(q.join(Category, Category.id == Record.category_id)
                         .outerjoin(Department, Department.id == Record.department_id)
                         .order_by(Category.code, Record.year, case((Record.retention_period == "Y", 0), else_=1),
                                   func.length(Record.retention_period).desc(), Record.retention_period.desc(),
                                   Department.sort_order,
                                   case((Record.position.is_(None), 1), else_=0), Record.position, Record.date,
                                   importance, Record.id).limit(limit)).all()
        from dangan.services.views import record_view

        return {"total": total, "items": [record_view(r) for r in recs]}
