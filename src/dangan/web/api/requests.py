"""利用 API: requests to view, borrow, copy or certify; approval queue and decisions; lending and return of paper;
effect of use; the register of use (JSON and xlsx); the approval rules."""

from __future__ import annotations

import datetime as dt
from typing import Any

from fastapi import APIRouter, Depends, Query, Response
from pydantic import Field

from dangan.services import requests as rq
from dangan.services.context import Actor, Dangan
from dangan.web.api.bodies import Body
from dangan.web.deps import current_actor, get_dangan

router = APIRouter(tags=["利用"])

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


class RequestCreate(Body):
    record_id: int = Field(description="档案编号")
    kind: str = Field(max_length=16, description="view 查阅 / borrow 借阅（纸质） / copy 复制 / certify 出具档案证明")
    purpose: str = Field(max_length=16, description="利用目的：工作查考、编史修志、学术研究、经济建设、落实政策、个人取证、其他")
    purpose_note: str = Field("", max_length=1000, description="目的说明（利用目的为“其他”时必填）")
    period_from: dt.date | None = Field(None, description="利用期限起（默认今天）")
    period_to: dt.date | None = Field(None, description="利用期限止（默认按审批规则的天数）")


class Decision(Body):
    request_id: int = Field(description="利用申请编号")
    reason: str = Field("", max_length=2000, description="审批意见（不同意时必填）")


class RequestRef(Body):
    request_id: int = Field(description="利用申请编号")
    note: str = Field("", max_length=2000, description="备注")


class LendBody(Body):
    request_id: int = Field(description="借阅申请编号（已准予）")
    due: dt.date | None = Field(None, description="应还日期（默认为利用期限止）")
    note: str = Field("", max_length=2000, description="备注")


class EffectBody(Body):
    request_id: int = Field(description="利用申请编号")
    effect: str = Field(max_length=8, description="利用效果：有效、一般、无效")
    note: str = Field("", max_length=2000, description="效果说明")


class RulesBody(Body):
    rules: list[dict[str, Any]] = Field(max_length=100, description="审批规则：kind、security_levels、open_status、"
                                                                    "requester_department、steps、note")
    default_steps: list[str] = Field(["records_head"], max_length=10, description="没有规则适用时的审批步骤")
    grant_days: int = Field(30, description="准予利用的默认天数")
    loan_days: int = Field(30, description="借阅的默认天数")


@router.post("/requests", status_code=201, summary="提出利用申请（公开档案的查阅即时准予；其他按审批规则逐级审批）")
def create(body: RequestCreate, dangan: Dangan = Depends(get_dangan), actor: Actor = Depends(current_actor)) -> dict[str, Any]:
    return rq.create_request(dangan, actor, body.record_id, body.kind, body.purpose, body.purpose_note,
                             period_from=body.period_from, period_to=body.period_to)


@router.get("/requests", summary="我的利用申请（新在前）")
def mine(limit: int = Query(200, ge=1, le=1000), dangan: Dangan = Depends(get_dangan),
         actor: Actor = Depends(current_actor)) -> list[dict[str, Any]]:
    return rq.my_requests(dangan, actor, limit=limit)


@router.get("/requests/queue", summary="待我审批：当前步骤由我的角色办理的申请（不含本人的申请）")
def queue(dangan: Dangan = Depends(get_dangan), actor: Actor = Depends(current_actor)) -> list[dict[str, Any]]:
    return rq.approval_queue(dangan, actor)


@router.post("/requests/approve", summary="同意当前审批步骤（最后一步同意后即准予利用）")
def approve(body: Decision, dangan: Dangan = Depends(get_dangan), actor: Actor = Depends(current_actor)) -> dict[str, Any]:
    return rq.approve(dangan, actor, body.request_id, body.reason)


@router.post("/requests/refuse", summary="不同意（须写明理由）")
def refuse(body: Decision, dangan: Dangan = Depends(get_dangan), actor: Actor = Depends(current_actor)) -> dict[str, Any]:
    return rq.refuse(dangan, actor, body.request_id, body.reason)


@router.post("/requests/withdraw", summary="撤回本人待审批的申请")
def withdraw(body: RequestRef, dangan: Dangan = Depends(get_dangan), actor: Actor = Depends(current_actor)) -> dict[str, Any]:
    return rq.withdraw(dangan, actor, body.request_id)


@router.get("/requests/grant", summary="本人对某档案某种利用的有效准予（使用即记入审计；已过期返回 403 GRANT_EXPIRED）")
def grant(record_id: int = Query(...), kind: str = Query("view", max_length=16), dangan: Dangan = Depends(get_dangan),
          actor: Actor = Depends(current_actor)) -> dict[str, Any]:
    return rq.check_grant(dangan, actor, record_id, kind)


@router.post("/requests/lend", summary="借出纸质档案（已准予的借阅申请）")
def lend(body: LendBody, dangan: Dangan = Depends(get_dangan), actor: Actor = Depends(current_actor)) -> dict[str, Any]:
    return rq.lend(dangan, actor, body.request_id, body.due, body.note)


@router.post("/requests/return", summary="归还纸质档案")
def return_(body: RequestRef, dangan: Dangan = Depends(get_dangan), actor: Actor = Depends(current_actor)) -> dict[str, Any]:
    return rq.return_loan(dangan, actor, body.request_id, body.note)


@router.get("/requests/overdue", summary="逾期未还（催还）；soon_days 天内到期的一并列出")
def overdue(soon_days: int = Query(0, ge=0, le=365), dangan: Dangan = Depends(get_dangan),
            actor: Actor = Depends(current_actor)) -> list[dict[str, Any]]:
    return rq.overdue(dangan, actor, soon_days=soon_days)


@router.post("/requests/effect", summary="登记利用效果（申请人或档案人员）")
def effect(body: EffectBody, dangan: Dangan = Depends(get_dangan), actor: Actor = Depends(current_actor)) -> dict[str, Any]:
    return rq.record_effect(dangan, actor, body.request_id, body.effect, body.note)


@router.get("/requests/register", summary="利用登记：每次利用的目的、期限、审批人与效果")
def register(date_from: dt.date | None = Query(None), date_to: dt.date | None = Query(None),
             dangan: Dangan = Depends(get_dangan), actor: Actor = Depends(current_actor)) -> dict[str, Any]:
    return rq.register(dangan, actor, date_from, date_to)


@router.get("/requests/register.xlsx", summary="导出利用登记表（Excel）", response_class=Response)
def register_xlsx(date_from: dt.date | None = Query(None), date_to: dt.date | None = Query(None),
                  dangan: Dangan = Depends(get_dangan), actor: Actor = Depends(current_actor)) -> Response:
    data = rq.register_xlsx(dangan, actor, date_from, date_to)
    return Response(data, media_type=XLSX,
                    headers={"Content-Disposition": "attachment; filename=\"register.xlsx\"; "
                                                    "filename*=UTF-8''%E5%88%A9%E7%94%A8%E7%99%BB%E8%AE%B0.xlsx"})


@router.get("/request-rules", summary="利用审批规则（现行）")
def rules(dangan: Dangan = Depends(get_dangan), actor: Actor = Depends(current_actor)) -> dict[str, Any]:
    return rq.get_rules(dangan, actor)


@router.put("/request-rules", summary="修改利用审批规则（档案部门负责人）")
def set_rules(body: RulesBody, dangan: Dangan = Depends(get_dangan), actor: Actor = Depends(current_actor)) -> dict[str, Any]:
    return rq.set_rules(dangan, actor, body.model_dump())
