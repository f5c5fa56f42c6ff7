"""门类: create categories from presets (or a full definition), read their schemas and 档号 templates."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from dangan.db.models import Category
from dangan.domain.archival_code import CodeTemplate
from dangan.domain.presets import ARRANGEMENTS, CATEGORY_PRESETS, category_preset
from dangan.domain.schema import MetadataSchema
from dangan.errors import Conflict, NotFound, Problems, ValidationFailed
from dangan.services.access import require
from dangan.services.context import Actor, Dangan
from dangan.services.fonds import get_fonds
from dangan.services.views import category_view


def get_category(session: Session, fonds_id: int, code_or_id: str | int) -> Category:
    if isinstance(code_or_id, int):
        c = session.get(Category, code_or_id)
        if c is not None and c.fonds_id != fonds_id:
            c = None
    else:
        c = session.scalar(select(Category).where(Category.fonds_id == fonds_id, Category.code == str(code_or_id).upper()))
    if c is None:
        raise NotFound(f"门类“{code_or_id}”不存在，可用 dangan category list 查看已有门类", code="CATEGORY_NOT_FOUND")
    return c


def check_definition(defn: dict[str, Any]) -> None:
    """A category definition must be coherent before it is stored: levels, schemas and templates agree."""
    p = Problems()
    arrangement = defn.get("arrangement")
    if arrangement not in ARRANGEMENTS:
        p.add("arrangement", "NOT_IN_DOMAIN", "整理方式应为 item（件）、volume（案卷/卷内）、project（项目/案卷/卷内）或 group（组/张）", "整理方式")
        p.raise_if_any()
    code = str(defn.get("code", ""))
    if not (code.isascii() and code.isalpha() and 1 <= len(code) <= 4):
        p.add("code", "PATTERN_MISMATCH", "门类代码应为 1–4 位字母，如 WS、KU", "门类代码", code)
    if not str(defn.get("name", "")).strip():
        p.add("name", "REQUIRED", "门类名称不能为空", "门类名称")
    for level in ARRANGEMENTS[arrangement]["levels"]:
        try:
            MetadataSchema.from_dict(defn["schemas"][level])
        except KeyError:
            p.add(f"schemas.{level}", "REQUIRED", f"缺少层级 {level} 的元数据方案", "元数据方案")
        except ValueError as e:
            p.add(f"schemas.{level}", "INVALID_SCHEMA", str(e), "元数据方案")
        try:
            t = CodeTemplate.from_list(defn["code_templates"][level])
            if t.uses_parent == (level == ARRANGEMENTS[arrangement]["levels"][0]):
                p.add(f"code_templates.{level}", "INVALID_TEMPLATE",
                      "最高层级的档号不能引用上级档号，下级层级的档号必须以上级档号开头", "档号模板")
        except KeyError:
            p.add(f"code_templates.{level}", "REQUIRED", f"缺少层级 {level} 的档号模板", "档号模板")
        except (ValueError, TypeError) as e:
            p.add(f"code_templates.{level}", "INVALID_TEMPLATE", str(e), "档号模板")
    for key in defn.get("code_templates", {}):
        base, _, variant = key.partition("@")
        if variant and (variant != "classified" or base not in ARRANGEMENTS[arrangement]["levels"]):
            p.add(f"code_templates.{key}", "INVALID_TEMPLATE", "只能为已有层级定义“@classified”（涉密件单独编号）模板", "档号模板")
        elif variant:
            try:
                CodeTemplate.from_list(defn["code_templates"][key])
            except (ValueError, TypeError, KeyError) as e:
                p.add(f"code_templates.{key}", "INVALID_TEMPLATE", str(e), "档号模板")
    p.raise_if_any("门类定义有误，请按提示修改")


def create_category(
    app: Dangan, actor: Actor, fonds: str, preset: str | None = None, *, definition: dict[str, Any] | None = None,
    code_preset: str | None = None,
) -> dict[str, Any]:
    """Create a category from a preset (WS, KU, KJ, ZP, LX) or from a full definition."""
    if definition is None:
        if not preset or preset.upper() not in CATEGORY_PRESETS:
            raise ValidationFailed(f"没有预置门类“{preset}”，可选：{'、'.join(CATEGORY_PRESETS)}", code="UNKNOWN_PRESET")
        definition = category_preset(preset.upper())
        if code_preset:
            from dangan.domain.archival_code import PRESETS

            if code_preset not in PRESETS:
                raise ValidationFailed(f"没有档号预设“{code_preset}”，可选：{'、'.join(PRESETS)}", code="UNKNOWN_CODE_PRESET")
            levels = ARRANGEMENTS[definition["arrangement"]]["levels"]
            if {k.split("@")[0] for k in PRESETS[code_preset]} != set(levels):
                raise ValidationFailed(f"档号预设“{code_preset}”的层级与门类的整理方式不符", code="CODE_PRESET_MISMATCH")
            definition["code_templates"] = {lvl: t.as_list() for lvl, t in PRESETS[code_preset].items()}
            definition["code_preset"] = code_preset
    check_definition(definition)
    code = definition["code"].upper()
    with app.uow(actor, "category.create", "category", code) as uow:
        require(actor, "fonds.manage")
        f = get_fonds(uow.session, fonds)
        if uow.session.scalar(select(Category.id).where(Category.fonds_id == f.id, Category.code == code)):
            raise Conflict(f"全宗 {f.code} 已有门类 {code}", code="CATEGORY_EXISTS")
        c = Category(
            fonds_id=f.id, code=code, name=definition["name"], arrangement=definition["arrangement"],
            schemas=definition["schemas"], code_templates=definition["code_templates"],
            code_preset=definition.get("code_preset", ""), retention_table=definition.get("retention_table", []),
            basis=definition.get("basis", ""),
        )
        uow.session.add(c)
        uow.session.flush()
        uow.audit("category.create", "category", c.id, fonds=f.code, code=code, preset=preset or "")
        return category_view(c)


def list_categories(app: Dangan, actor: Actor, fonds: str) -> list[dict[str, Any]]:
    with app.read_sessions() as s:
        f = get_fonds(s, fonds)
        return [category_view(c, full=False) for c in s.scalars(select(Category).where(Category.fonds_id == f.id).order_by(Category.id))]


def show_category(app: Dangan, actor: Actor, fonds: str, code: str) -> dict[str, Any]:
    with app.read_sessions() as s:
        f = get_fonds(s, fonds)
        return category_view(get_category(s, f.id, code))
