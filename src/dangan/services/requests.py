"""利用: requests to view, borrow, copy or certify a record; approval along the route the rules give; grants that
expire; lending and return of paper; the effect of use; the register of use (利用登记) as xlsx.

A request is made for a record the requester can see (a record above their clearance does not exist for them).
Its route (domain.access_rules.route_for) is fixed when it is made: each step names a role, and only someone
holding that role and "request.approve" — never the requester — decides it. Every state change runs in a unit
of work with its audit event; refusals are audited too.
"""

from __future__ import annotations

import datetime as dt
import io
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from dangan.db.models import (
    AccessRequest,
    ApprovalStep,
    Department,
    Loan,
    Record,
    SystemSetting,
    User,
    UserDepartment,
    utcnow,
)
from dangan.domain.access import ROLE_LABELS
from dangan.domain.access_rules import (
    EFFECTS,
    KINDS,
    OPEN_STATUSES,
    PRESET_RULES,
    PURPOSES,
    AccessRules,
    RequestFacts,
    RulesError,
    parse_rules,
    route_for,
)
from dangan.domain.states import LOAN_TRANSITIONS, RecordState
from dangan.errors import NotFound, PermissionDenied, Problems, StateError, ValidationFailed
from dangan.services.access import get_visible_record, require, security_settings, visible
from dangan.services.context import Actor, Dangan, record_failure

RULES_KEY = "access_rules"
CST = dt.timezone(dt.timedelta(hours=8), "CST")  # periods are calendar days in China
MAX_PERIOD_DAYS = 365
MAX_NOTE = 1000

STATUS_LABELS = {"pending": "待审批", "approved": "已准予", "refused": "未准予", "withdrawn": "已撤回",
                 "expired": "已过期", "lent": "已借出", "returned": "已归还"}
DECISION_LABELS = {"approve": "同意", "refuse": "不同意"}
USED = ("approved", "expired", "lent", "returned")  # the effect of use may be recorded


def _now() -> dt.datetime:
    return utcnow()


def _aware(v: dt.datetime | None) -> dt.datetime | None:
    if v is not None and v.tzinfo is None:  # SQLite hands back naive UTC
        return v.replace(tzinfo=dt.UTC)
    return v


def _today(now: dt.datetime | None = None) -> dt.date:
    return (now or _now()).astimezone(CST).date()


def _end_of(day: dt.date) -> dt.datetime:
    """The last moment of a calendar day in China (a grant for 2025-03-31 runs to 23:59:59 that day)."""
    end = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(0), tzinfo=CST) - dt.timedelta(seconds=1)
    return end.astimezone(dt.UTC)  # stored in UTC: SQLite keeps no offset


def starts_at(r: AccessRequest) -> dt.datetime:
    """The first moment of the request's period (00:00 China time of period_from)."""
    return _end_of(r.period_from - dt.timedelta(days=1))


def in_force(r: AccessRequest, now: dt.datetime) -> bool:
    """A grant that may be used now: approved (or the paper lent), its period begun and not yet ended."""
    exp = _aware(r.expires_at)
    return r.status in ("approved", "lent") and starts_at(r) < now and (exp is None or exp > now)


def _denied(message: str, code: str) -> PermissionDenied:
    err = PermissionDenied(message, code=code)
    err.audit_outcome = "denied"  # type: ignore[attr-defined]
    return err


def _role_label(role: str) -> str:
    return ROLE_LABELS.get(role, role)


# ---------------------------------------------------------------- rules


def load_rules(session: Session) -> AccessRules:
    row = session.get(SystemSetting, RULES_KEY)
    if row is None:
        return PRESET_RULES
    try:
        return parse_rules(row.value, tuple(security_settings(session)["levels"]))
    except RulesError:  # stored rules are checked when saved; never fall open
        return PRESET_RULES


def get_rules(app: Dangan, actor: Actor) -> dict[str, Any]:
    """The approval rules in force, with the labels a form needs."""
    with app.read_sessions() as s:
        rules = load_rules(s)
        custom = s.get(SystemSetting, RULES_KEY) is not None
    return {**rules.as_dict(), "custom": custom, "kinds": KINDS, "purposes": list(PURPOSES),
            "open_statuses": list(OPEN_STATUSES), "effects": list(EFFECTS),
            "roles": {r: _role_label(r) for r in ("archivist", "records_head", "leader")}}


def set_rules(app: Dangan, actor: Actor, data: dict[str, Any]) -> dict[str, Any]:
    """Replace the approval rules (档案部门负责人). Every problem is reported at once; nothing is saved then."""
    with app.uow(actor, "request.rules", "setting", RULES_KEY) as uow:
        require(actor, "request.rules")
        s = uow.session
        try:
            rules = parse_rules(data, tuple(security_settings(s)["levels"]))
        except RulesError as e:
            p = Problems()
            for f, m in e.problems:
                p.add(f, "BAD_RULE", m, "审批规则")
            p.raise_if_any("审批规则有误，未保存，请按提示修改")
            raise
        before = load_rules(s).as_dict()
        s.merge(SystemSetting(key=RULES_KEY, value=rules.as_dict()))
        uow.audit("request.rules", "setting", RULES_KEY, before=before, after=rules.as_dict())
    return get_rules(app, actor)


# ---------------------------------------------------------------- views


def _status(r: AccessRequest, now: dt.datetime) -> str:
    exp = _aware(r.expires_at)
    if r.status == "approved" and exp is not None and exp < now:
        return "expired"
    return r.status


def request_view(r: AccessRequest, now: dt.datetime | None = None) -> dict[str, Any]:
    now = now or _now()
    status = _status(r, now)
    decisions = {st.step: st for st in r.steps}
    route = []
    for i, role in enumerate(r.route):
        st = decisions.get(i)
        route.append({"step": i + 1, "role": role, "role_label": _role_label(role),
                      "decision": st.decision if st else None,
                      "decision_label": DECISION_LABELS.get(st.decision, "") if st else
                      ("待审批" if r.status == "pending" and i == r.current_step else ""),
                      "decided_by": st.decided_by if st else None, "decided_by_name": st.decided_by_name if st else None,
                      "reason": st.reason if st else "", "at": st.at.isoformat() if st else None})
    loan = r.loan
    loan_v = None
    if loan is not None:
        due = _aware(loan.due_at)
        assert due is not None
        loan_v = {"id": loan.id, "lent_at": loan.lent_at.isoformat(), "lent_by": loan.lent_by,
                  "due_at": due.isoformat(), "due_date": due.astimezone(CST).date().isoformat(),
                  "returned_at": loan.returned_at.isoformat() if loan.returned_at else None,
                  "received_by": loan.received_by, "overdue": loan.returned_at is None and due < now,
                  "note": loan.note}
    rec = r.record
    return {
        "id": r.id, "requester": r.requester, "requester_name": r.requester_name, "record_id": r.record_id,
        "archival_code": rec.archival_code, "title": rec.title, "security_level": rec.security_level,
        "kind": r.kind, "kind_label": KINDS.get(r.kind, r.kind), "purpose": r.purpose, "purpose_note": r.purpose_note,
        "period_from": r.period_from.isoformat(), "period_to": r.period_to.isoformat(),
        "status": status, "status_label": STATUS_LABELS.get(status, status),
        "route": route, "current_step": r.current_step if r.status == "pending" else None,
        "current_role": r.route[r.current_step] if r.status == "pending" and r.route else None,
        "created_at": r.created_at.isoformat(), "decided_at": r.decided_at.isoformat() if r.decided_at else None,
        "expires_at": _aware(r.expires_at).isoformat() if r.expires_at else None,  # type: ignore[union-attr]
        "effect": r.effect, "effect_note": r.effect_note, "effect_by": r.effect_by, "loan": loan_v,
    }


def _not_found(request_id: int) -> NotFound:
    return NotFound(f"利用申请 {request_id} 不存在", code="REQUEST_NOT_FOUND")


def _get(s: Session, actor: Actor, request_id: int, *, lock: bool = False) -> AccessRequest:
    """The request if its record is visible to the actor; otherwise exactly the error of a missing request."""
    q = select(AccessRequest).where(AccessRequest.id == request_id)
    r = s.scalar(q.with_for_update() if lock else q)
    if r is None:
        raise _not_found(request_id)
    if not actor.superuser and s.scalar(select(Record.id).where(Record.id == r.record_id,
                                                                visible(s, actor, "record.read"))) is None:
        err = _not_found(request_id)
        err.audit_outcome = "denied"  # type: ignore[attr-defined]
        raise err
    return r


# ---------------------------------------------------------------- requests


def _check_usable(rec: Record) -> None:
    if rec.state == RecordState.DESTROYED.value:
        raise StateError(f"档案 {rec.archival_code or rec.id} 已销毁，不能再提供利用", code="RECORD_DESTROYED")
    if rec.state == RecordState.TRANSFERRED.value:
        raise StateError(f"档案 {rec.archival_code or rec.id} 已移交档案馆，请向档案馆申请利用", code="RECORD_TRANSFERRED")
    if rec.state in (RecordState.PRE_FILING.value, RecordState.PENDING.value):
        raise StateError(f"档案 {rec.id} 尚未归档，归档后才能申请利用", code="RECORD_NOT_FILED")


def _parse_day(value: Any, field: str, label: str, p: Problems) -> dt.date | None:
    if value is None or value == "":
        return None
    if isinstance(value, dt.date):
        return value
    try:
        return dt.date.fromisoformat(str(value).strip())
    except ValueError:
        p.add(field, "WRONG_TYPE", f"{label}应写作 2025-03-31", label, value)
        return None


def facts_for(rec: Record, actor: Actor, kind: str) -> RequestFacts:
    open_status = (rec.meta or {}).get("open_status")
    same = None if rec.department_id is None else rec.department_id in actor.department_ids
    return RequestFacts(kind=kind, security_level=rec.security_level,
                        open_status=open_status if open_status in OPEN_STATUSES else "未开放", same_department=same)


def create_request(app: Dangan, actor: Actor, record_id: int, kind: str, purpose: str, purpose_note: str = "", *,
                   period_from: Any = None, period_to: Any = None, now: dt.datetime | None = None) -> dict[str, Any]:
    """利用申请. Granted at once when the route has no steps (e.g. 查阅 of a 公开 record)."""
    now = now or _now()
    today = _today(now)
    p = Problems()
    if kind not in KINDS:
        p.add("kind", "NOT_IN_DOMAIN", "利用方式应为：" + "、".join(f"{k}（{v}）" for k, v in KINDS.items()), "利用方式", kind)
    if purpose not in PURPOSES:
        p.add("purpose", "NOT_IN_DOMAIN", "利用目的应为：" + "、".join(PURPOSES), "利用目的", purpose)
    note = (purpose_note or "").strip()
    if purpose == "其他" and not note:
        p.add("purpose_note", "REQUIRED", "利用目的为“其他”时，请写明具体目的", "目的说明")
    if len(note) > MAX_NOTE:
        p.add("purpose_note", "TOO_LONG", f"目的说明不超过 {MAX_NOTE} 字", "目的说明")
    start = _parse_day(period_from, "period_from", "利用期限起", p)
    end = _parse_day(period_to, "period_to", "利用期限止", p)
    with app.uow(actor, "request.create", "record", str(record_id)) as uow:
        require(actor, "request.create")
        s = uow.session
        rec = get_visible_record(s, actor, record_id, "record.read")
        _check_usable(rec)
        rules = load_rules(s)
        start = start or today
        if end is None:
            end = start + dt.timedelta(days=(rules.loan_days if kind == "borrow" else rules.grant_days) - 1)
        if start < today:
            p.add("period_from", "IN_THE_PAST", "利用期限不能从今天之前开始", "利用期限起", start.isoformat())
        if end < start:
            p.add("period_to", "BEFORE_START", "利用期限止不能早于起始日期", "利用期限止", end.isoformat())
        elif (end - start).days + 1 > MAX_PERIOD_DAYS:
            p.add("period_to", "TOO_LONG", f"利用期限最长 {MAX_PERIOD_DAYS} 天", "利用期限止", end.isoformat())
        p.raise_if_any("利用申请有误，未提交，请按提示修改")
        route = route_for(facts_for(rec, actor, kind), rules)
        r = AccessRequest(requester=actor.username, requester_name=actor.display_name or actor.username,
                          record_id=rec.id, kind=kind, purpose=purpose, purpose_note=note, period_from=start,
                          period_to=end, status="pending", route=route, current_step=0, created_at=now)
        if not route:
            r.status, r.decided_at, r.expires_at = "approved", now, _end_of(end)
        s.add(r)
        s.flush()
        uow.audit("request.create", "access_request", r.id, record_id=rec.id, archival_code=rec.archival_code,
                  kind=kind, purpose=purpose, period=[start.isoformat(), end.isoformat()], route=route)
        if not route:
            uow.audit("request.grant", "access_request", r.id, record_id=rec.id, kind=kind, automatic=True,
                      expires_at=r.expires_at.isoformat())  # type: ignore[union-attr]
        s.refresh(r)
        return request_view(r, now)


def _decide(app: Dangan, actor: Actor, request_id: int, decision: str, reason: str,
            now: dt.datetime | None) -> dict[str, Any]:
    now = now or _now()
    action = "request.approve" if decision == "approve" else "request.refuse"
    with app.uow(actor, action, "access_request", str(request_id)) as uow:
        require(actor, "request.approve")
        s = uow.session
        r = _get(s, actor, request_id, lock=True)
        if r.requester == actor.username:
            raise _denied("不能审批本人提出的利用申请", "SELF_APPROVAL")
        if r.status != "pending":
            if not set(r.route) & actor.roles:
                raise _denied("本申请的审批步骤不由您的角色办理", "NOT_YOUR_STEP")
            raise StateError(f"该申请已{STATUS_LABELS.get(_status(r, now), r.status)}，不能再审批", code="REQUEST_DECIDED")
        role = r.route[r.current_step]
        if role not in actor.roles:
            raise _denied(f"当前审批步骤由“{_role_label(role)}”办理，您没有这一角色", "NOT_YOUR_STEP")
        if decision == "approve" and any(st.decided_by == actor.username for st in r.steps):
            raise _denied("同一申请的各审批步骤须由不同人员办理：您已审批过本申请的前一步骤", "ALREADY_DECIDED_BY_YOU")
        if decision == "approve":  # a record destroyed or transferred since the request was made
            rec = s.get(Record, r.record_id)
            if rec is not None:
                _check_usable(rec)
        reason = (reason or "").strip()
        if decision == "refuse" and not reason:
            raise ValidationFailed("不同意利用时必须写明理由，申请人将看到这一理由", code="REASON_REQUIRED")
        if len(reason) > MAX_NOTE:
            raise ValidationFailed(f"审批意见不超过 {MAX_NOTE} 字", code="TOO_LONG")
        s.add(ApprovalStep(request_id=r.id, step=r.current_step, role=role, decided_by=actor.username,
                           decided_by_name=actor.display_name or actor.username, decision=decision, reason=reason,
                           at=now))
        uow.audit(action, "access_request", r.id, record_id=r.record_id, step=r.current_step + 1, role=role,
                  reason=reason)
        if decision == "refuse":
            r.status, r.decided_at = "refused", now
        elif r.current_step + 1 < len(r.route):
            r.current_step += 1
        else:
            r.status, r.decided_at, r.expires_at = "approved", now, _end_of(r.period_to)
            uow.audit("request.grant", "access_request", r.id, record_id=r.record_id, kind=r.kind,
                      expires_at=r.expires_at.isoformat())
        s.flush()
        s.refresh(r)
        return request_view(r, now)


def approve(app: Dangan, actor: Actor, request_id: int, reason: str = "", *,
            now: dt.datetime | None = None) -> dict[str, Any]:
    """同意 the current step; after the last step the use is granted until the end of the period."""
    return _decide(app, actor, request_id, "approve", reason, now)


def refuse(app: Dangan, actor: Actor, request_id: int, reason: str, *, now: dt.datetime | None = None) -> dict[str, Any]:
    """不同意, with the reason (required): the request ends here."""
    return _decide(app, actor, request_id, "refuse", reason, now)


def withdraw(app: Dangan, actor: Actor, request_id: int) -> dict[str, Any]:
    """撤回: the requester ends their own request while it waits for approval."""
    with app.uow(actor, "request.withdraw", "access_request", str(request_id)) as uow:
        s = uow.session
        r = _get(s, actor, request_id, lock=True)
        if r.requester != actor.username:
            raise _denied("只能撤回本人提出的利用申请", "NOT_YOUR_REQUEST")
        if r.status != "pending":
            raise StateError(f"该申请已{STATUS_LABELS.get(r.status, r.status)}，不能撤回", code="REQUEST_DECIDED")
        r.status, r.decided_at = "withdrawn", _now()
        uow.audit("request.withdraw", "access_request", r.id, record_id=r.record_id)
        s.flush()
        return request_view(r)


def check_grant(app: Dangan, actor: Actor, record_id: int, kind: str = "view", *,
                now: dt.datetime | None = None) -> dict[str, Any]:
    """The actor's active grant for this use of the record (audited as a use), or PermissionDenied.

    A grant past its end is refused (GRANT_EXPIRED) and marked 已过期; none at all is NO_GRANT."""
    now = now or _now()
    with app.uow(actor, "request.use", "record", str(record_id)) as uow:
        s = uow.session
        rec = get_visible_record(s, actor, record_id, "record.read")
        _check_usable(rec)
        rows = s.scalars(select(AccessRequest).where(
            AccessRequest.requester == actor.username, AccessRequest.record_id == record_id,
            AccessRequest.kind == kind, AccessRequest.status.in_(("approved", "lent", "expired")))
            .order_by(AccessRequest.expires_at.desc())).all()
        active = [r for r in rows if in_force(r, now)]
        if active:
            g = active[0]
            uow.audit("request.use", "access_request", g.id, record_id=record_id, kind=kind)
            return request_view(g, now)
        early = sorted((r for r in rows if r.status in ("approved", "lent") and starts_at(r) >= now),
                       key=lambda r: r.period_from)
        lapsed = [r for r in rows if r.status == "approved" and (_aware(r.expires_at) or now) <= now]
        for r in lapsed:
            r.status = "expired"
            uow.audit("request.expire", "access_request", r.id, record_id=record_id,
                      expires_at=_aware(r.expires_at).isoformat())  # type: ignore[union-attr]
        had = bool(rows)
        early_from = early[0].period_from if early else None
    label = KINDS.get(kind, kind)
    if early_from is not None:
        err = _denied(f"您的{label}申请自 {early_from.isoformat()} 起生效，请在利用期限内使用",
                      "GRANT_NOT_YET")
        record_failure(app, actor, "request.use", "record", str(record_id), err)
        raise err
    if had:
        err = _denied(f"您对该档案的{label}期限已届满，请重新提出利用申请", "GRANT_EXPIRED")
    else:
        err = _denied(f"您没有经准予的{label}申请，请先提出利用申请", "NO_GRANT")
    record_failure(app, actor, "request.use", "record", str(record_id), err)
    raise err


def record_effect(app: Dangan, actor: Actor, request_id: int, effect: str, note: str = "") -> dict[str, Any]:
    """利用效果 after use: 有效 / 一般 / 无效 with a note, by the requester or whoever keeps the register."""
    with app.uow(actor, "request.effect", "access_request", str(request_id)) as uow:
        s = uow.session
        r = _get(s, actor, request_id, lock=True)
        if r.requester != actor.username and actor.scope_for("request.register") is None:
            raise _denied("利用效果由申请人或档案人员登记", "NOT_YOUR_REQUEST")
        if r.status not in USED:
            raise StateError("该申请未经准予利用，不能登记利用效果", code="NOT_USED")
        if effect not in EFFECTS:
            raise ValidationFailed("利用效果应为：" + "、".join(EFFECTS), code="BAD_EFFECT")
        note = (note or "").strip()
        if len(note) > MAX_NOTE:
            raise ValidationFailed(f"效果说明不超过 {MAX_NOTE} 字", code="TOO_LONG")
        before = {"effect": r.effect, "note": r.effect_note}
        r.effect, r.effect_note, r.effect_by, r.effect_at = effect, note, actor.username, _now()
        uow.audit("request.effect", "access_request", r.id, record_id=r.record_id, effect=effect, note=note,
                  before=before)
        s.flush()
        return request_view(r)


# ---------------------------------------------------------------- lending of paper


def lend(app: Dangan, actor: Actor, request_id: int, due: Any = None, note: str = "", *,
         now: dt.datetime | None = None) -> dict[str, Any]:
    """借出 the paper record of an approved borrow request; due by the end of the period unless given."""
    now = now or _now()
    p = Problems()
    due_day = _parse_day(due, "due", "应还日期", p)
    with app.uow(actor, "loan.lend", "access_request", str(request_id)) as uow:
        require(actor, "loan.manage")
        s = uow.session
        r = _get(s, actor, request_id, lock=True)
        if r.kind != "borrow":
            raise StateError(f"该申请是{KINDS.get(r.kind, r.kind)}，不是借阅，不能办理借出", code="NOT_A_BORROW")
        status = _status(r, now)
        if status == "expired":
            raise StateError("该借阅申请的利用期限已届满，请申请人重新申请", code="GRANT_EXPIRED")
        if status == "lent":
            raise StateError("该申请的档案已借出", code="ALREADY_LENT")
        if status != "approved":
            raise StateError(f"该申请{STATUS_LABELS.get(status, status)}，未经准予不能借出", code="NOT_APPROVED")
        if starts_at(r) >= now:
            raise StateError(f"该借阅申请的利用期限自 {r.period_from.isoformat()} 起，届时方可办理借出",
                             code="GRANT_NOT_YET")
        rec = get_visible_record(s, actor, r.record_id, "record.read", lock=True)
        _check_usable(rec)
        current = RecordState(rec.state)
        if current == RecordState.ON_LOAN or s.scalar(select(Loan.id).where(Loan.record_id == rec.id,
                                                                             Loan.returned_at.is_(None))):
            raise StateError(f"档案 {rec.archival_code or rec.id} 已借出尚未归还", code="ALREADY_LENT")
        if (current, RecordState.ON_LOAN) not in LOAN_TRANSITIONS:
            raise StateError(f"档案当前为“{current.label}”，不能借出", code="INVALID_TRANSITION")
        p.raise_if_any("借出信息有误，请按提示修改")
        due_day = due_day or r.period_to
        if due_day < _today(now):
            raise ValidationFailed("应还日期不能早于今天", code="DUE_IN_THE_PAST")
        if len(note or "") > MAX_NOTE:
            raise ValidationFailed(f"备注不超过 {MAX_NOTE} 字", code="TOO_LONG")
        loan = Loan(request_id=r.id, record_id=rec.id, lent_at=now, due_at=_end_of(due_day), lent_by=actor.username,
                    note=note or "")
        s.add(loan)
        r.status = "lent"
        rec.state = RecordState.ON_LOAN.value  # the paper original is out: the record shows 借出 until returned
        s.flush()
        uow.audit("loan.lend", "access_request", r.id, record_id=rec.id, archival_code=rec.archival_code,
                  borrower=r.requester, due=due_day.isoformat())
        uow.audit("record.transition", "record", rec.id, from_state=current.value, to_state=rec.state,
                  archival_code=rec.archival_code, reason=f"借出（利用申请 #{r.id}，借阅人 {r.requester}）",
                  request_id=r.id)
        s.refresh(r)
        return request_view(r, now)


def return_loan(app: Dangan, actor: Actor, request_id: int, note: str = "", *,
                now: dt.datetime | None = None) -> dict[str, Any]:
    """归还: the paper record is back; the loan is closed and the request 已归还."""
    now = now or _now()
    with app.uow(actor, "loan.return", "access_request", str(request_id)) as uow:
        require(actor, "loan.manage")
        s = uow.session
        r = _get(s, actor, request_id, lock=True)
        loan = s.scalar(select(Loan).where(Loan.request_id == r.id).with_for_update())
        if loan is None or loan.returned_at is not None:
            raise StateError("该申请没有未归还的借出", code="NOT_LENT")
        if len(note or "") > MAX_NOTE:
            raise ValidationFailed(f"备注不超过 {MAX_NOTE} 字", code="TOO_LONG")
        due = _aware(loan.due_at)
        assert due is not None
        loan.returned_at, loan.received_by = now, actor.username
        if note:
            loan.note = (loan.note + "\n" + note).strip()
        r.status = "returned"
        late = max(0, (_today(now) - due.astimezone(CST).date()).days)
        uow.audit("loan.return", "access_request", r.id, record_id=r.record_id, borrower=r.requester, days_late=late)
        rec = s.scalar(select(Record).where(Record.id == r.record_id).with_for_update())
        if rec is not None and rec.state == RecordState.ON_LOAN.value:
            # back to the state it was lent from: the one LOAN_TRANSITIONS allows out of 借出 (已归档). A loan made
            # before records showed 借出 left the state alone, and its return does too.
            back = next(to for (frm, to) in LOAN_TRANSITIONS if frm == RecordState.ON_LOAN)
            rec.state = back.value
            uow.audit("record.transition", "record", rec.id, from_state=RecordState.ON_LOAN.value, to_state=back.value,
                      archival_code=rec.archival_code, reason=f"归还（利用申请 #{r.id}）", request_id=r.id)
        s.flush()
        s.refresh(r)
        return request_view(r, now)


def overdue(app: Dangan, actor: Actor, *, soon_days: int = 0, now: dt.datetime | None = None) -> list[dict[str, Any]]:
    """Loans not returned by their due date (催还), and with soon_days those due within that many days."""
    now = now or _now()
    require(actor, "loan.manage")
    limit = now + dt.timedelta(days=max(0, soon_days))
    with app.read_sessions() as s:
        rows = s.scalars(select(AccessRequest).join(Loan, Loan.request_id == AccessRequest.id)
                         .join(Record, Record.id == AccessRequest.record_id)
                         .where(Loan.returned_at.is_(None), Loan.due_at < limit, visible(s, actor, "record.read"))
                         .order_by(Loan.due_at, AccessRequest.id)).all()
        out = []
        for r in rows:
            v = request_view(r, now)
            due = _aware(r.loan.due_at)  # type: ignore[union-attr]
            assert due is not None
            days = (_today(now) - due.astimezone(CST).date()).days
            v["days_overdue"] = max(0, days) if due < now else 0
            v["reminder"] = (f"已逾期 {max(1, days)} 天，请催还" if due < now else
                             f"将于 {due.astimezone(CST).date().isoformat()} 到期")
            out.append(v)
        return out


RETURN_SOON_DAYS = 3  # a borrower is reminded this many days before the due date


def my_loans_due(app: Dangan, actor: Actor, *, soon_days: int = RETURN_SOON_DAYS,
                 now: dt.datetime | None = None) -> list[dict[str, Any]]:
    """催还 for the borrower: the paper records the actor has out that are overdue or due within soon_days,
    each with the reminder to show (on the home page and 我的申请)."""
    now = now or _now()
    limit = now + dt.timedelta(days=max(0, soon_days))
    with app.read_sessions() as s:
        rows = s.execute(select(AccessRequest.id, Loan.due_at, Record.archival_code, Record.title)
                         .join(Loan, Loan.request_id == AccessRequest.id)
                         .join(Record, Record.id == AccessRequest.record_id)
                         .where(AccessRequest.requester == actor.username, Loan.returned_at.is_(None),
                                Loan.due_at < limit)
                         .order_by(Loan.due_at, AccessRequest.id)).all()
    out = []
    for rid, due_at, code, title in rows:
        due = _aware(due_at)
        assert due is not None
        day = due.astimezone(CST).date()
        late = (_today(now) - day).days
        overdue = due < now
        text = (f"已逾期 {max(1, late)} 天，请尽快归还档案室" if overdue else
                ("今天到期，请按时归还" if late == 0 else f"将于 {day.isoformat()} 到期，请按时归还"))
        out.append({"request_id": rid, "archival_code": code, "title": title, "due": day.isoformat(),
                    "overdue": overdue, "days_overdue": max(0, late) if overdue else 0, "reminder": text})
    return out


# ---------------------------------------------------------------- lists


def my_requests(app: Dangan, actor: Actor, limit: int = 200) -> list[dict[str, Any]]:
    """The actor's own requests, newest first (those for records they can no longer see are left out)."""
    with app.read_sessions() as s:
        rows = s.scalars(select(AccessRequest).join(Record, Record.id == AccessRequest.record_id)
                         .where(AccessRequest.requester == actor.username, visible(s, actor, "record.read"))
                         .order_by(AccessRequest.created_at.desc(), AccessRequest.id.desc()).limit(limit)).all()
        return [request_view(r) for r in rows]


def approval_queue(app: Dangan, actor: Actor, limit: int = 500) -> list[dict[str, Any]]:
    """待我审批: pending requests whose current step names a role the actor holds, for records they may see,
    never their own."""
    require(actor, "request.approve")
    with app.read_sessions() as s:
        rows = s.scalars(select(AccessRequest).join(Record, Record.id == AccessRequest.record_id)
                         .where(AccessRequest.status == "pending", AccessRequest.requester != actor.username,
                                visible(s, actor, "record.read"))
                         .order_by(AccessRequest.created_at, AccessRequest.id)).all()
        return [request_view(r) for r in rows if r.route and r.route[r.current_step] in actor.roles][:limit]


REGISTER_COLUMNS = [("序号", 6), ("申请编号", 9), ("申请日期", 12), ("利用者", 16), ("档号", 26), ("题名", 40),
                    ("密级", 7), ("利用方式", 12), ("利用目的", 10), ("目的说明", 24), ("利用期限", 24),
                    ("审批", 40), ("状态", 9), ("借出", 12), ("应还", 12), ("归还", 12), ("利用效果", 9),
                    ("效果说明", 30)]


def _register_rows(s: Session, actor: Actor, date_from: dt.date | None, date_to: dt.date | None) -> list[AccessRequest]:
    q = (select(AccessRequest).join(Record, Record.id == AccessRequest.record_id)
         .where(visible(s, actor, "record.read")))
    if date_from:
        q = q.where(AccessRequest.created_at >= dt.datetime.combine(date_from, dt.time(0), tzinfo=CST).astimezone(dt.UTC))
    if date_to:
        q = q.where(AccessRequest.created_at <= _end_of(date_to))
    return list(s.scalars(q.order_by(AccessRequest.created_at, AccessRequest.id)).all())


def _period_args(date_from: Any, date_to: Any) -> tuple[dt.date | None, dt.date | None]:
    p = Problems()
    a, b = _parse_day(date_from, "date_from", "起始日期", p), _parse_day(date_to, "date_to", "截止日期", p)
    p.raise_if_any("日期有误")
    return a, b


def register(app: Dangan, actor: Actor, date_from: Any = None, date_to: Any = None) -> dict[str, Any]:
    """利用登记: every request with purpose, period, approvers, outcome and effect (trimmed to visible records)."""
    a, b = _period_args(date_from, date_to)
    with app.uow(actor, "request.register", "register") as uow:
        require(actor, "request.register")
        now = _now()
        items = [request_view(r, now) for r in _register_rows(uow.session, actor, a, b)]
        uow.audit("request.register", "register", "", count=len(items),
                  date_from=a.isoformat() if a else None, date_to=b.isoformat() if b else None)
    return {"total": len(items), "items": items}


def _approvals_text(v: dict[str, Any]) -> str:
    parts = []
    for st in v["route"]:
        if st["decision"]:
            reason = f"（{st['reason']}）" if st["reason"] else ""
            parts.append(f"{st['role_label']} {st['decided_by_name']} {st['decision_label']}{reason} {st['at'][:10]}")
        elif st["decision_label"]:
            parts.append(f"{st['role_label']} 待审批")
    return "；".join(parts) or "无需审批"


def register_row(n: int, v: dict[str, Any]) -> list[Any]:
    loan = v["loan"] or {}
    return [n, v["id"], v["created_at"][:10], f"{v['requester_name']}（{v['requester']}）", v["archival_code"] or "",
            v["title"], v["security_level"], v["kind_label"], v["purpose"], v["purpose_note"],
            f"{v['period_from']} 至 {v['period_to']}", _approvals_text(v), v["status_label"],
            (loan.get("lent_at") or "")[:10], loan.get("due_date") or "", (loan.get("returned_at") or "")[:10],
            v["effect"] or "", v["effect_note"]]


def register_xlsx(app: Dangan, actor: Actor, date_from: Any = None, date_to: Any = None) -> bytes:
    """The register of use as an Excel workbook with Chinese headers (audited as an export)."""
    from openpyxl import Workbook
    from openpyxl.styles import Alignment, Font
    from openpyxl.utils import get_column_letter

    a, b = _period_args(date_from, date_to)
    with app.uow(actor, "request.export", "register") as uow:
        require(actor, "request.register")
        now = _now()
        views = [request_view(r, now) for r in _register_rows(uow.session, actor, a, b)]
        uow.audit("request.export", "register", "", count=len(views), format="xlsx",
                  date_from=a.isoformat() if a else None, date_to=b.isoformat() if b else None)
    wb = Workbook()
    ws = wb.active
    ws.title = "利用登记"
    span = f"{a.isoformat() if a else '最早'} 至 {b.isoformat() if b else _today(now).isoformat()}"
    ws.append([f"档案利用登记表（{span}）"])
    ws.merge_cells(start_row=1, start_column=1, end_row=1, end_column=len(REGISTER_COLUMNS))
    ws["A1"].font = Font(bold=True, size=14)
    ws.append([c for c, _ in REGISTER_COLUMNS])
    for i, (_, width) in enumerate(REGISTER_COLUMNS, 1):
        ws.cell(row=2, column=i).font = Font(bold=True)
        ws.column_dimensions[get_column_letter(i)].width = width
    for n, v in enumerate(views, 1):
        ws.append(register_row(n, v))
    for row in ws.iter_rows(min_row=3):
        for c in row:
            c.alignment = Alignment(wrap_text=True, vertical="top")
    ws.freeze_panes = "A3"
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


# ---------------------------------------------------------------- for the pages (web/ui/access.py)


def request_form(app: Dangan, actor: Actor, record_id: int) -> dict[str, Any]:
    """What the request form shows before anything is submitted: the record (档号, 题名, 密级, 状态), whether its
    paper original is out, and the approval route each kind of use would take under the rules in force."""
    require(actor, "request.create")
    with app.read_sessions() as s:
        rec = get_visible_record(s, actor, record_id, "record.read")
        _check_usable(rec)
        rules = load_rules(s)
        routes = {}
        for kind, label in KINDS.items():
            steps = route_for(facts_for(rec, actor, kind), rules)
            routes[kind] = {"kind": kind, "label": label, "days": rules.loan_days if kind == "borrow" else rules.grant_days,
                            "steps": [{"role": role, "role_label": _role_label(role)} for role in steps]}
        due = _aware(s.scalar(select(Loan.due_at).where(Loan.record_id == rec.id, Loan.returned_at.is_(None))))
        state = RecordState(rec.state)
        return {"record": {"id": rec.id, "archival_code": rec.archival_code, "title": rec.title,
                           "security_level": rec.security_level, "state": state.value, "state_label": state.label,
                           "department": rec.department.name if rec.department else "",
                           "open_status": facts_for(rec, actor, "view").open_status},
                "routes": routes, "kinds": dict(KINDS), "purposes": list(PURPOSES), "today": _today().isoformat(),
                "max_days": MAX_PERIOD_DAYS, "max_note": MAX_NOTE,
                "out_until": due.astimezone(CST).date().isoformat() if due else None}


def _departments_of(s: Session, usernames: set[str]) -> dict[str, str]:
    if not usernames:
        return {}
    rows = s.execute(select(User.username, Department.name).join(UserDepartment, UserDepartment.user_id == User.id)
                     .join(Department, Department.id == UserDepartment.department_id)
                     .where(User.username.in_(sorted(usernames))).order_by(Department.sort_order, Department.id)).all()
    out: dict[str, list[str]] = {}
    for username, name in rows:
        out.setdefault(username, []).append(name)
    return {u: "、".join(names) for u, names in out.items()}


def approvals_page(app: Dangan, actor: Actor, history_limit: int = 50) -> dict[str, Any]:
    """待我审批 with each requester's departments, and the decisions the actor made (newest first, trimmed to the
    records they may still see)."""
    queue = approval_queue(app, actor)
    now = _now()
    with app.read_sessions() as s:
        depts = _departments_of(s, {v["requester"] for v in queue})
        rows = s.execute(select(ApprovalStep, AccessRequest).join(AccessRequest, AccessRequest.id == ApprovalStep.request_id)
                         .join(Record, Record.id == AccessRequest.record_id)
                         .where(ApprovalStep.decided_by == actor.username, visible(s, actor, "record.read"))
                         .order_by(ApprovalStep.at.desc(), ApprovalStep.id.desc()).limit(history_limit)).all()
        history = [{**request_view(r, now), "my_step": st.step + 1, "my_role_label": _role_label(st.role),
                    "my_decision": st.decision, "my_decision_label": DECISION_LABELS.get(st.decision, st.decision),
                    "my_reason": st.reason, "my_at": st.at.isoformat()} for st, r in rows]
    for v in queue:
        v["requester_departments"] = depts.get(v["requester"], "")
    return {"queue": queue, "history": history}


def lending_desk(app: Dangan, actor: Actor, q: str = "", *, now: dt.datetime | None = None) -> dict[str, Any]:
    """借阅登记台: approved borrow requests waiting to be lent, the loans out (earliest due first, overdue marked for
    催还) and the latest returns; q narrows all three to a 档号, 题名 or borrower."""
    require(actor, "loan.manage")
    now = now or _now()
    term = (q or "").replace("\x00", "").strip()[:100]
    with app.read_sessions() as s:
        base = (select(AccessRequest).join(Record, Record.id == AccessRequest.record_id)
                .where(AccessRequest.kind == "borrow", visible(s, actor, "record.read")))
        if term:
            base = base.where(Record.archival_code.icontains(term, autoescape=True)
                              | Record.title.icontains(term, autoescape=True)
                              | AccessRequest.requester.icontains(term, autoescape=True)
                              | AccessRequest.requester_name.icontains(term, autoescape=True))
        waiting = [request_view(r, now) for r in s.scalars(
            base.where(AccessRequest.status == "approved").order_by(AccessRequest.decided_at, AccessRequest.id)
            .limit(500)).all()]
        waiting = [v for v in waiting if v["status"] == "approved"]  # a lapsed grant cannot be lent
        busy = set(s.scalars(select(Loan.record_id).where(Loan.returned_at.is_(None),
                                                          Loan.record_id.in_([v["record_id"] for v in waiting]))).all())
        for v in waiting:
            v["record_out"] = v["record_id"] in busy
        out = []
        for r in s.scalars(base.join(Loan, Loan.request_id == AccessRequest.id).where(Loan.returned_at.is_(None))
                           .order_by(Loan.due_at, AccessRequest.id).limit(1000)).all():
            v = request_view(r, now)
            due = _aware(r.loan.due_at)  # type: ignore[union-attr]
            assert due is not None
            days = (_today(now) - due.astimezone(CST).date()).days
            v["days_overdue"] = max(1, days) if due < now else 0
            v["days_left"] = max(0, -days)
            out.append(v)
        returned = [request_view(r, now) for r in s.scalars(
            base.join(Loan, Loan.request_id == AccessRequest.id).where(Loan.returned_at.is_not(None))
            .order_by(Loan.returned_at.desc(), AccessRequest.id.desc()).limit(20)).all()]
    return {"waiting": waiting, "out": out, "returned": returned, "q": term,
            "overdue": sum(1 for v in out if v["days_overdue"]), "today": _today(now).isoformat()}
