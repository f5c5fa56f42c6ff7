"""档案（件、案卷、项目、组）: list, register (JSON or multipart with files), read, change, submit, return, file."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Form, Query, UploadFile
from pydantic import AliasChoices, BaseModel, Field

from dangan.errors import FieldProblem, ValidationFailed
from dangan.services import records
from dangan.services.context import Actor, Dangan
from dangan.services.files import NewFile
from dangan.web.api.bodies import Body
from dangan.web.deps import current_actor, get_dangan

router = APIRouter(tags=["档案"])


class RecordCreate(Body):
    fonds: str = Field(max_length=16, description="全宗号，如 Z109")
    category: str = Field(max_length=16, description="门类代码，如 WS")
    level: str = Field("item", max_length=16, description="层级：item 件 / volume 案卷 / project 项目 / group 组")
    department: str | None = Field(None, max_length=100, description="机构（问题）代码或名称")
    parent_id: int | None = Field(None, description="上级（案卷/项目/组）的编号")
    state: str = Field("pre_filing", max_length=16, description="pre_filing 预归档 / pending 待归档 / filed 直接归档")
    sender_ref: str | None = Field(None, max_length=200, description="来源系统的唯一标识（重复提交时返回同一件）")
    metadata: dict[str, Any] = Field(description="著录项：字段代码 → 值，见门类的元数据方案")


class RecordUpdate(Body):
    metadata: dict[str, Any] = Field(description="要修改的著录项（字段代码 → 新值；空值表示删除）")
    reason: str = Field("", max_length=1000, description="修改原因（已归档档案必填）")
    row_version: int | None = Field(None, validation_alias=AliasChoices("row_version", "expected_row_version"),
                                    description="读取时的 row_version（也可写作 expected_row_version）；他人已修改时返回 409 STALE_VERSION")


class TransitionBody(Body):
    reason: str = Field("", max_length=1000, description="原因（退回时必填）")


def uploads_to_new_files(files: list[UploadFile], roles: list[str] | None, role: str = "main") -> list[NewFile]:
    """Each upload's spooled file object goes to the blob store as a stream; nothing is read here."""
    roles = roles or []
    return [NewFile(name=u.filename or "", stream=u.file, role=roles[i] if i < len(roles) else role,
                    media_type=u.content_type, expected_size=u.size) for i, u in enumerate(files)]


class RecordQuery(BaseModel):
    """The filters of the record list and its facets (query parameters)."""

    fonds: str | None = Field(None, max_length=16, description="全宗号")
    category: str | None = Field(None, max_length=16, description="门类代码（需同时给出全宗）")
    level: str | None = Field(None, max_length=16)
    year: int | None = Field(None, ge=1900, le=2999, description="年度")
    retention_period: str | None = Field(None, max_length=16, description="保管期限：Y、D30、D10 或 永久、定期30年")
    department: str | None = Field(None, max_length=100, description="机构代码（需同时给出全宗）")
    state: str | None = Field(None, max_length=16, description="pre_filing、pending、filed 或中文状态名")
    parent_id: int | None = Field(None, description="只列出此上级之下的档案")
    q: str | None = Field(None, max_length=200, description="题名、档号、文号中包含的文字")
    security_level: str | None = Field(None, max_length=16, description="密级（只在您有权查看的档案中筛选）")

    def to_filter(self) -> records.RecordFilter:
        return records.RecordFilter(**self.model_dump())


@router.get("/records", summary="档案列表（筛选、游标分页；只含您有权查看的档案）")
def list_records(
    flt: Annotated[RecordQuery, Query()],
    cursor: str | None = Query(None, max_length=2000, description="上一页返回的 next_cursor"),
    limit: int = Query(50, ge=1, le=500),
    sort: str = Query("code", max_length=16, description="code 按档号，newest 最新在前"),
    dangan: Dangan = Depends(get_dangan), actor: Actor = Depends(current_actor),
) -> dict[str, Any]:
    return records.list_records(dangan, actor, flt.to_filter(), limit=limit, cursor=cursor, sort=sort)


@router.get("/records/facets", summary="分面计数：按门类、年度、保管期限、机构、状态（只计您有权查看的档案）")
def record_facets(flt: Annotated[RecordQuery, Query()], dangan: Dangan = Depends(get_dangan),
                  actor: Actor = Depends(current_actor)) -> dict[str, list[dict[str, Any]]]:
    return records.facets(dangan, actor, flt.to_filter())


@router.post("/records", status_code=201, summary="著录新档案（JSON）")
def create_record(body: RecordCreate, dangan: Dangan = Depends(get_dangan),
                  actor: Actor = Depends(current_actor)) -> dict[str, Any]:
    return records.create_record(dangan, actor, records.RecordInput(**body.model_dump()))


@router.post("/records/multipart", status_code=201, summary="著录新档案并上传电子文件（multipart）")
def create_record_with_files(
    fonds: str = Form(max_length=16), category: str = Form(max_length=16), level: str = Form("item", max_length=16),
    department: str | None = Form(None, max_length=100), parent_id: int | None = Form(None),
    state: str = Form("pre_filing", max_length=16), sender_ref: str | None = Form(None, max_length=200),
    metadata: str = Form(description='著录项 JSON，如 {"title": "…", "year": 2024}'),
    files: list[UploadFile] = File(default=[], description="电子文件，可多个"),
    roles: list[str] = Form(default=[], description="与 files 一一对应的文件类型：main 正文、attachment 附件…"),
    dangan: Dangan = Depends(get_dangan), actor: Actor = Depends(current_actor),
) -> dict[str, Any]:
    try:
        meta = json.loads(metadata)
    except json.JSONDecodeError as e:
        raise ValidationFailed("metadata 不是有效的 JSON", problems=[
            FieldProblem("metadata", "JSON_INVALID", f"JSON 格式错误：{e.msg}（第 {e.pos} 个字符）", "著录项")]) from e
    if not isinstance(meta, dict):
        raise ValidationFailed("metadata 应为 JSON 对象", problems=[
            FieldProblem("metadata", "DICT_TYPE", "应为 JSON 对象（{…}）", "著录项")])
    inp = records.RecordInput(fonds=fonds, category=category, metadata=meta, level=level, department=department or None,
                              parent_id=parent_id, state=state, sender_ref=sender_ref or None)
    return records.create_record(dangan, actor, inp, uploads_to_new_files(files, roles))


@router.get("/records/{record_id}", summary="档案详情（含电子文件）")
def get_record(record_id: int, dangan: Dangan = Depends(get_dangan),
               actor: Actor = Depends(current_actor)) -> dict[str, Any]:
    return records.get_record(dangan, actor, record_id)


@router.patch("/records/{record_id}", summary="修改著录")
def update_record(record_id: int, body: RecordUpdate, dangan: Dangan = Depends(get_dangan),
                  actor: Actor = Depends(current_actor)) -> dict[str, Any]:
    return records.update_record(dangan, actor, record_id, body.metadata, body.reason, body.row_version)


@router.post("/records/{record_id}/submit", summary="提交归档（预归档 → 待归档）")
def submit(record_id: int, body: TransitionBody | None = None, dangan: Dangan = Depends(get_dangan),
           actor: Actor = Depends(current_actor)) -> dict[str, Any]:
    return records.transition(dangan, actor, record_id, "pending", body.reason if body else "")


@router.post("/records/{record_id}/return", summary="退回（待归档 → 预归档，须写明原因）")
def return_(record_id: int, body: TransitionBody | None = None, dangan: Dangan = Depends(get_dangan),
            actor: Actor = Depends(current_actor)) -> dict[str, Any]:
    return records.transition(dangan, actor, record_id, "pre_filing", body.reason if body else "")


@router.post("/records/{record_id}/file", summary="归档（赋予档号）")
def file_(record_id: int, body: TransitionBody | None = None, dangan: Dangan = Depends(get_dangan),
          actor: Actor = Depends(current_actor)) -> dict[str, Any]:
    return records.transition(dangan, actor, record_id, "filed", body.reason if body else "")
