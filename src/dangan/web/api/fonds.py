"""全宗、机构、门类."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends
from pydantic import Field

from dangan.domain.presets import CATEGORY_PRESETS
from dangan.errors import NotFound
from dangan.services import categories, fonds
from dangan.services.context import Actor, Dangan
from dangan.web.api.bodies import Body
from dangan.web.deps import current_actor, get_dangan

router = APIRouter(tags=["全宗与门类"])


class FondsCreate(Body):
    code: str = Field(max_length=16, description="全宗号，4 位字母或数字，如 Z109")
    name: str = Field(max_length=200, description="全宗名称")
    unit: str = Field("", max_length=200, description="立档单位名称（默认同全宗名称）")
    description: str = Field("", max_length=2000)


class DepartmentCreate(Body):
    code: str = Field(max_length=16, description="机构代码，如 BGS")
    name: str = Field(max_length=100, description="机构名称，如 办公室")
    parent: str | None = Field(None, max_length=16, description="上级机构代码")
    sort_order: int = 0


class CategoryCreate(Body):
    preset: str = Field(max_length=8, description="预置门类：" + "、".join(f"{k}（{v['name']}）" for k, v in CATEGORY_PRESETS.items()))
    code_preset: str | None = Field(None, max_length=64, description="档号预设（可选），如 “DA/T 13-2022 文书（机构名称）”")


@router.get("/fonds", summary="全宗列表")
def list_fonds(dangan: Dangan = Depends(get_dangan), actor: Actor = Depends(current_actor)) -> list[dict[str, Any]]:
    return fonds.list_fonds(dangan, actor)


@router.post("/fonds", status_code=201, summary="新建全宗")
def create_fonds(body: FondsCreate, dangan: Dangan = Depends(get_dangan),
                 actor: Actor = Depends(current_actor)) -> dict[str, Any]:
    return fonds.create_fonds(dangan, actor, body.code, body.name, body.unit, body.description)


@router.get("/fonds/{fonds_code}", summary="全宗详情（含机构与门类）")
def show_fonds(fonds_code: str, dangan: Dangan = Depends(get_dangan),
               actor: Actor = Depends(current_actor)) -> dict[str, Any]:
    found = next((f for f in fonds.list_fonds(dangan, actor) if f["code"] == fonds_code.upper()), None)
    if found is None:
        raise NotFound(f"全宗“{fonds_code}”不存在", code="FONDS_NOT_FOUND")
    return {**found, "departments": fonds.list_departments(dangan, actor, fonds_code),
            "categories": categories.list_categories(dangan, actor, fonds_code)}


@router.get("/fonds/{fonds_code}/departments", summary="机构（问题）列表")
def list_departments(fonds_code: str, dangan: Dangan = Depends(get_dangan),
                     actor: Actor = Depends(current_actor)) -> list[dict[str, Any]]:
    return fonds.list_departments(dangan, actor, fonds_code)


@router.post("/fonds/{fonds_code}/departments", status_code=201, summary="新建机构（问题）")
def create_department(fonds_code: str, body: DepartmentCreate, dangan: Dangan = Depends(get_dangan),
                      actor: Actor = Depends(current_actor)) -> dict[str, Any]:
    return fonds.create_department(dangan, actor, fonds_code, body.code, body.name, body.parent, body.sort_order)


@router.get("/fonds/{fonds_code}/categories", summary="门类列表")
def list_categories(fonds_code: str, dangan: Dangan = Depends(get_dangan),
                    actor: Actor = Depends(current_actor)) -> list[dict[str, Any]]:
    return categories.list_categories(dangan, actor, fonds_code)


@router.get("/fonds/{fonds_code}/categories/{category_code}", summary="门类详情（元数据方案与档号模板）")
def show_category(fonds_code: str, category_code: str, dangan: Dangan = Depends(get_dangan),
                  actor: Actor = Depends(current_actor)) -> dict[str, Any]:
    return categories.show_category(dangan, actor, fonds_code, category_code)


@router.post("/fonds/{fonds_code}/categories", status_code=201, summary="按预置新建门类")
def create_category(fonds_code: str, body: CategoryCreate, dangan: Dangan = Depends(get_dangan),
                    actor: Actor = Depends(current_actor)) -> dict[str, Any]:
    return categories.create_category(dangan, actor, fonds_code, body.preset, code_preset=body.code_preset)


@router.get("/category-presets", summary="可用的预置门类")
def list_presets(actor: Actor = Depends(current_actor)) -> list[dict[str, Any]]:
    return [{"code": k, "name": v["name"], "arrangement": v["arrangement"], "code_preset": v["code_preset"],
             "basis": v["basis"]} for k, v in CATEGORY_PRESETS.items()]
