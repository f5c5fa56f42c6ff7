"""利用 pages: 申请利用 (the form shows the record and the approval route before anything is sent), 我的申请
(withdraw, 利用效果), 待我审批 (同意 / 不同意 with reasons, and my decisions), 借阅登记台 (借出, 催还, 归还) and
利用登记 (period filter, Excel export). The service (services/requests.py) checks every right and audits; these
routes only gather, post and redirect (POST → 303 → GET), or show the page again with the error in place."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.datastructures import FormData

from dangan.domain.access import ROLE_LABELS
from dangan.domain.access_rules import APPROVER_ROLES, EFFECTS
from dangan.errors import DanganError, NotFound, PermissionDenied, ValidationFailed
from dangan.services import requests as rq
from dangan.services.context import Actor, Dangan
from dangan.web.deps import current_actor, get_dangan, require_any
from dangan.web.ui.render import csrf_guard, render

router = APIRouter(include_in_schema=False, dependencies=[Depends(csrf_guard)])

# long enough that an over-long text reaches the service, which refuses it (TOO_LONG) instead of it being cut
TEXT_LIMIT = 20_000

NOTICES = {
    "created": "利用申请已提交，正在等待审批。审批进度在下表中随时可查。",
    "granted": "利用申请已准予（无需审批），在利用期限内可以利用该档案。",
    "withdrawn": "利用申请已撤回。",
    "effect": "利用效果已登记，谢谢。",
    "approved": "已同意。",
    "granted_final": "已同意，这是最后一步审批：申请人现在可以利用该档案。",
    "refused": "已不同意，申请人将看到您的理由。",
    "lent": "已办理借出，档案状态为“借出”，到期前请提醒借阅人归还。",
    "returned": "已办理归还，档案状态恢复为“已归档”。",
}


def _see_other(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)


async def form_data(request: Request) -> Any:
    form = await request.form()
    try:
        yield form
    finally:
        await form.close()


def _text(form: FormData, key: str, limit: int = 200) -> str:
    v = form.get(key)
    return v.strip()[:limit] if isinstance(v, str) else ""


def _field_errors(e: DanganError | None) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for p in (e.problems if e else []):
        out.setdefault(p.field, []).append(p.message)
    return out


def _notice(done: str | None) -> str:
    return NOTICES.get(done or "", "")


# ---------------------------------------------------------------- 申请利用


def _form_page(request: Request, dangan: Dangan, actor: Actor, record_id: int, *, values: dict[str, str] | None = None,
               error: DanganError | None = None, status: int = 200) -> Response:
    require_any(request, actor, "request.create")
    ctx = rq.request_form(dangan, actor, record_id)
    v = {"kind": "view", "purpose": "", "purpose_note": "", "period_from": ctx["today"], "period_to": "",
         **(values or {})}
    if v["kind"] not in ctx["kinds"]:
        v["kind"] = "view"
    rec = ctx["record"]
    crumbs = [("首页", "/"), ("我的申请", "/requests"), (rec["archival_code"] or rec["title"][:24], f"/records/{rec['id']}"),
              ("申请利用", None)]
    return render(request, "requests_new.html", {**ctx, "values": v, "error": error, "errors": _field_errors(error),
                                                 "crumbs": crumbs}, status=status, active="my_requests")


@router.get("/requests/new", response_class=HTMLResponse)
def request_new(request: Request, record: int | None = Query(None), kind: str = Query("view", max_length=16),
                dangan: Dangan = Depends(get_dangan), actor: Actor = Depends(current_actor)) -> Response:
    if record is None:
        require_any(request, actor, "request.create")
        raise ValidationFailed("请先在“档案浏览”或“检索”中找到要利用的档案，再在档案页面点“申请利用”",
                               code="RECORD_REQUIRED")
    return _form_page(request, dangan, actor, record, values={"kind": kind})


@router.post("/requests/new", response_class=HTMLResponse)
def request_create(request: Request, form: FormData = Depends(form_data), dangan: Dangan = Depends(get_dangan),
                   actor: Actor = Depends(current_actor)) -> Response:
    require_any(request, actor, "request.create")
    raw_id = _text(form, "record_id", 20)
    if not raw_id.isdigit():
        raise NotFound(f"档案 {raw_id[:20]} 不存在", code="RECORD_NOT_FOUND")
    record_id = int(raw_id)
    values = {k: _text(form, k, 40) for k in ("kind", "purpose", "period_from", "period_to")}
    values["purpose_note"] = _text(form, "purpose_note", TEXT_LIMIT)
    try:
        v = rq.create_request(dangan, actor, record_id, values["kind"], values["purpose"], values["purpose_note"],
                              period_from=values["period_from"] or None, period_to=values["period_to"] or None)
    except ValidationFailed as e:
        return _form_page(request, dangan, actor, record_id, values=values, error=e, status=e.status)
    done = "granted" if v["status"] == "approved" else "created"
    return _see_other(f"/requests?done={done}&id={v['id']}#r{v['id']}")


# ---------------------------------------------------------------- 我的申请


def _mine_page(request: Request, dangan: Dangan, actor: Actor, *, notice: str = "", current: int | None = None,
               error: DanganError | None = None, error_id: int | None = None, values: dict[str, str] | None = None,
               status: int = 200) -> Response:
    require_any(request, actor, "request.create")
    items = rq.my_requests(dangan, actor)
    counts: dict[str, int] = {}
    for v in items:
        counts[v["status"]] = counts.get(v["status"], 0) + 1
    return render(request, "requests_mine.html", {
        "loans_due": rq.my_loans_due(dangan, actor),
        "items": items, "counts": counts, "notice": notice, "current": current, "error": error, "error_id": error_id,
        "values": values or {}, "effects": EFFECTS, "used": rq.USED, "status_labels": rq.STATUS_LABELS,
        "crumbs": [("首页", "/"), ("我的申请", None)],
    }, status=status, active="my_requests")


@router.get("/requests", response_class=HTMLResponse)
def requests_mine(request: Request, done: str | None = Query(None, max_length=20), id: int | None = Query(None),  # noqa: A002
                  dangan: Dangan = Depends(get_dangan), actor: Actor = Depends(current_actor)) -> Response:
    return _mine_page(request, dangan, actor, notice=_notice(done), current=id)


@router.post("/requests/{request_id}/withdraw", response_class=HTMLResponse)
def request_withdraw(request: Request, request_id: int, form: FormData = Depends(form_data),
                     dangan: Dangan = Depends(get_dangan), actor: Actor = Depends(current_actor)) -> Response:
    try:
        rq.withdraw(dangan, actor, request_id)
    except (NotFound, PermissionDenied):
        raise
    except DanganError as e:
        return _mine_page(request, dangan, actor, error=e, error_id=request_id, status=e.status)
    return _see_other(f"/requests?done=withdrawn&id={request_id}#r{request_id}")


@router.post("/requests/{request_id}/effect", response_class=HTMLResponse)
def request_effect(request: Request, request_id: int, form: FormData = Depends(form_data),
                   dangan: Dangan = Depends(get_dangan), actor: Actor = Depends(current_actor)) -> Response:
    effect, note = _text(form, "effect", 8), _text(form, "note", TEXT_LIMIT)
    try:
        rq.record_effect(dangan, actor, request_id, effect, note)
    except (NotFound, PermissionDenied):
        raise
    except DanganError as e:
        return _mine_page(request, dangan, actor, error=e, error_id=request_id, status=e.status,
                          values={"effect": effect, "note": note})
    return _see_other(f"/requests?done=effect&id={request_id}#r{request_id}")


# ---------------------------------------------------------------- 待我审批


def _approvals_page(request: Request, dangan: Dangan, actor: Actor, *, notice: str = "", error: DanganError | None = None,
                    error_id: int | None = None, reason: str = "", status: int = 200) -> Response:
    require_any(request, actor, "request.approve")
    ctx = rq.approvals_page(dangan, actor)
    return render(request, "requests_approvals.html", {
        **ctx, "notice": notice, "error": error, "error_id": error_id, "reason": reason,
        "my_roles": [ROLE_LABELS[r] for r in APPROVER_ROLES if r in actor.roles],
        "crumbs": [("首页", "/"), ("待我审批", None)],
    }, status=status, active="approvals")


@router.get("/approvals", response_class=HTMLResponse)
def approvals(request: Request, done: str | None = Query(None, max_length=20), dangan: Dangan = Depends(get_dangan),
              actor: Actor = Depends(current_actor)) -> Response:
    return _approvals_page(request, dangan, actor, notice=_notice(done))


def _decide(request: Request, form: FormData, dangan: Dangan, actor: Actor, request_id: int, decision: str) -> Response:
    require_any(request, actor, "request.approve")
    reason = _text(form, "reason", TEXT_LIMIT)
    try:
        v = (rq.approve if decision == "approve" else rq.refuse)(dangan, actor, request_id, reason)
    except NotFound:
        raise
    except DanganError as e:
        # NOT_YOUR_STEP, SELF_APPROVAL, REASON_REQUIRED, REQUEST_DECIDED, TOO_LONG: shown at the request, nothing changed
        return _approvals_page(request, dangan, actor, error=e, error_id=request_id, reason=reason, status=e.status)
    done = "refused" if decision == "refuse" else ("granted_final" if v["status"] == "approved" else "approved")
    return _see_other(f"/approvals?done={done}")


@router.post("/approvals/{request_id}/approve", response_class=HTMLResponse)
def approval_approve(request: Request, request_id: int, form: FormData = Depends(form_data),
                     dangan: Dangan = Depends(get_dangan), actor: Actor = Depends(current_actor)) -> Response:
    return _decide(request, form, dangan, actor, request_id, "approve")


@router.post("/approvals/{request_id}/refuse", response_class=HTMLResponse)
def approval_refuse(request: Request, request_id: int, form: FormData = Depends(form_data),
                    dangan: Dangan = Depends(get_dangan), actor: Actor = Depends(current_actor)) -> Response:
    return _decide(request, form, dangan, actor, request_id, "refuse")


# ---------------------------------------------------------------- 借阅登记台


def _lending_page(request: Request, dangan: Dangan, actor: Actor, q: str = "", *, notice: str = "",
                  error: DanganError | None = None, error_id: int | None = None, values: dict[str, str] | None = None,
                  status: int = 200) -> Response:
    require_any(request, actor, "loan.manage")
    desk = rq.lending_desk(dangan, actor, q)
    return render(request, "lending.html", {**desk, "notice": notice, "error": error, "error_id": error_id,
                                            "values": values or {}, "crumbs": [("首页", "/"), ("借阅登记台", None)]},
                  status=status, active="lending")


@router.get("/lending", response_class=HTMLResponse)
def lending(request: Request, q: str = Query("", max_length=100), done: str | None = Query(None, max_length=20),
            dangan: Dangan = Depends(get_dangan), actor: Actor = Depends(current_actor)) -> Response:
    return _lending_page(request, dangan, actor, q, notice=_notice(done))


@router.post("/lending/{request_id}/lend", response_class=HTMLResponse)
def lending_lend(request: Request, request_id: int, form: FormData = Depends(form_data),
                 dangan: Dangan = Depends(get_dangan), actor: Actor = Depends(current_actor)) -> Response:
    require_any(request, actor, "loan.manage")
    due, note, q = _text(form, "due", 40), _text(form, "note", TEXT_LIMIT), _text(form, "q", 100)
    try:
        rq.lend(dangan, actor, request_id, due or None, note)
    except (NotFound, PermissionDenied):
        raise
    except DanganError as e:
        return _lending_page(request, dangan, actor, q, error=e, error_id=request_id, status=e.status,
                             values={"due": due, "note": note})
    return _see_other("/lending?done=lent")


@router.post("/lending/{request_id}/return", response_class=HTMLResponse)
def lending_return(request: Request, request_id: int, form: FormData = Depends(form_data),
                   dangan: Dangan = Depends(get_dangan), actor: Actor = Depends(current_actor)) -> Response:
    require_any(request, actor, "loan.manage")
    note, q = _text(form, "note", TEXT_LIMIT), _text(form, "q", 100)
    try:
        rq.return_loan(dangan, actor, request_id, note)
    except (NotFound, PermissionDenied):
        raise
    except DanganError as e:
        return _lending_page(request, dangan, actor, q, error=e, error_id=request_id, status=e.status,
                             values={"note": note})
    return _see_other("/lending?done=returned")


# ---------------------------------------------------------------- 利用登记


@router.get("/register", response_class=HTMLResponse)
def register_page(request: Request, date_from: str = Query("", max_length=20), date_to: str = Query("", max_length=20),
                  dangan: Dangan = Depends(get_dangan), actor: Actor = Depends(current_actor)) -> Response:
    require_any(request, actor, "request.register")
    error: DanganError | None = None
    reg: dict[str, Any] = {"total": 0, "items": []}
    try:
        reg = rq.register(dangan, actor, date_from.strip() or None, date_to.strip() or None)
    except ValidationFailed as e:
        error = e
    effects = {e: sum(1 for v in reg["items"] if v["effect"] == e) for e in EFFECTS}
    return render(request, "register.html", {
        **reg, "error": error, "errors": _field_errors(error), "date_from": date_from.strip(), "date_to": date_to.strip(),
        "effects": effects, "crumbs": [("首页", "/"), ("利用登记", None)],
    }, status=error.status if error else 200, active="register")
