"""收集与整理 pages: 批量导入 and its job page, 接收归档 (the review queue), 归档计划, 保管期限表, 归档文件目录.

The work is done by the services (imports, jobs, prefiling, schedule, outputs) and the REST API's import
helpers (start_import, resume_import), which check the rights and audit; the pages gather the form, show
problems field by field and the outcome. A refusal is the service's answer: the error page, as elsewhere.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import io
import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.datastructures import FormData, UploadFile

from dangan.domain.retention import STANDARD_PERIODS, parse_retention
from dangan.domain.states import STATE_LABELS, RecordState
from dangan.errors import DanganError, NotFound, PermissionDenied, ValidationFailed
from dangan.services import categories, fonds, jobs, prefiling, records, schedule
from dangan.services.context import Actor, Dangan
from dangan.services.outputs import MAX_PDF_ROWS
from dangan.web.api.capture import resume_import, start_import
from dangan.web.deps import can, current_actor, get_dangan, require_any
from dangan.web.ui.render import csrf_guard, query, render

router = APIRouter(include_in_schema=False, dependencies=[Depends(csrf_guard)])

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
# the columns of an 归档文件目录 a clerk fills in (field code or a column the importer knows; label)
CATALOGUE_COLUMNS = [("_seq", "序号"), ("archival_code", "档号"), ("doc_number", "文号"), ("responsible", "责任者"),
                     ("title", "题名"), ("date", "日期"), ("security_level", "密级"), ("pages", "页数"),
                     ("remarks", "备注"), ("year", "年度"), ("retention_period", "保管期限"), ("_files", "文件名")]
COLUMN_HELP = {
    "_seq": "可不填，仅供核对", "archival_code": "已有档号时填写；没有“文件名”时按档号挂接同名文件或文件夹",
    "doc_number": "如 示政发〔2024〕12号", "responsible": "制发文件的机关或个人，如 示范市人民政府办公室",
    "title": "文件的标题", "date": "如 2024-03-05、2024年3月5日、20240305", "remarks": "需要说明的情况",
    "security_level": "公开、内部、秘密、机密（默认公开）；涉密文件须另有“保密期限”列", "pages": "整数",
    "year": "四位数字，如 2024", "retention_period": "永久、定期30年、定期10年（或 Y、D30、D10）",
    "_files": "ZIP 中的文件名（可带文件夹），多个用分号分隔", "department": "机构代码或名称；不填则用默认机构",
}
DONE = {
    "order": "已调整排列顺序，接收时按此顺序编件号。",
    "auto": "已按日期（同一天的按重要程度）重新排列。",
    "plan_created": "归档计划已制定。",
    "plan_deleted": "归档计划已删除。",
    "schedule_saved": "保管期限表已保存；著录时将按新表给出建议。",
}


async def form_data(request: Request) -> Any:
    form = await request.form()
    try:
        yield form
    finally:
        await form.close()


def _see_other(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)


def _text(form: FormData, key: str, limit: int = 1000) -> str:
    v = form.get(key)
    return v.strip()[:limit] if isinstance(v, str) else ""


def _upload(form: FormData, key: str) -> UploadFile | None:
    v = form.get(key)
    return v if isinstance(v, UploadFile) and v.filename else None


def _ids(form: FormData, key: str = "ids") -> list[int]:
    return [int(v) for v in form.getlist(key) if isinstance(v, str) and v.isdigit()]


def _reraise_denied(e: DanganError) -> None:
    if isinstance(e, PermissionDenied):
        raise e


def _retention_label(code: str | None) -> str:
    try:
        return parse_retention(code or "").label
    except ValueError:
        return code or ""


def _fonds_code(dangan: Dangan, actor: Actor, code: str | None) -> tuple[list[dict[str, Any]], str]:
    all_fonds = fonds.list_fonds(dangan, actor)
    if not all_fonds:
        raise NotFound("还没有全宗，请先新建全宗", code="FONDS_NOT_FOUND")
    codes = [f["code"] for f in all_fonds]
    code = (code or "").upper()
    if code in codes:
        return all_fonds, code
    # the first fonds that has categories (a fonds just created has none yet)
    return all_fonds, next((c for c in codes if categories.list_categories(dangan, actor, c)), codes[0])


def _my_departments(dangan: Dangan, actor: Actor, fonds_code: str, action: str) -> list[dict[str, Any]]:
    """The departments the actor may choose for the action: all of them, or their own for a department scope."""
    depts = fonds.list_departments(dangan, actor, fonds_code)
    if actor.scope_for(action) == "all":
        return depts
    return [d for d in depts if d["id"] in actor.department_ids]


# ---------------------------------------------------------------- 批量导入


def _targets(dangan: Dangan, actor: Actor) -> list[dict[str, Any]]:
    """The categories an import may go into: those arranged by 件 (a catalogue row is one record)."""
    out = []
    for f in fonds.list_fonds(dangan, actor):
        for c in categories.list_categories(dangan, actor, f["code"]):
            if c["levels"] == ["item"]:
                out.append({"value": f"{f['code']}/{c['code']}", "fonds": f["code"], "fonds_name": f["name"],
                            "code": c["code"], "name": c["name"]})
    return out


def _state_choices(actor: Actor) -> list[tuple[str, str, str]]:
    out = [(RecordState.PRE_FILING.value, STATE_LABELS[RecordState.PRE_FILING], "继续整理，可修改")]
    if can(actor, "record.submit"):
        out.append((RecordState.PENDING.value, STATE_LABELS[RecordState.PENDING], "直接提交档案员审核"))
    if can(actor, "record.file"):
        out.append((RecordState.FILED.value, STATE_LABELS[RecordState.FILED], "立即归档并赋予档号"))
    return out


def template_columns(cat: dict[str, Any]) -> list[tuple[str, str]]:
    """The catalogue columns for a category: the standard ones it has, its other required fields, 机构, 文件名."""
    fields = {f["code"]: f for f in cat["schemas"]["item"]["fields"]}
    cols = [(code, fields[code]["label"] if code in fields else label) for code, label in CATALOGUE_COLUMNS
            if code.startswith("_") or code == "archival_code" or code in fields]
    have = {c for c, _ in cols}
    extra = [(f["code"], f["label"]) for f in fields.values() if f.get("obligation") == "required" and f["code"] not in have]
    return cols[:-1] + extra + [("department", "机构")] + cols[-1:]


def _import_ctx(dangan: Dangan, actor: Actor, values: dict[str, Any] | None = None) -> dict[str, Any]:
    targets = _targets(dangan, actor)
    values = dict(values or {})
    if not values.get("target") and targets:
        values["target"] = targets[0]["value"]
    chosen = next((t for t in targets if t["value"] == values.get("target")), targets[0] if targets else None)
    cat = categories.show_category(dangan, actor, chosen["fonds"], chosen["code"]) if chosen else None
    depts = _my_departments(dangan, actor, chosen["fonds"], "record.import") if chosen else []
    if not values.get("department") and len(depts) >= 1 and actor.scope_for("record.import") != "all":
        values["department"] = depts[0]["code"]
    values.setdefault("state", RecordState.PRE_FILING.value)
    return {
        "targets": targets, "chosen": chosen, "departments": depts, "states": _state_choices(actor),
        "columns": template_columns(cat) if cat else [], "column_help": COLUMN_HELP,
        "required": {f["code"] for f in cat["schemas"]["item"]["fields"]
                     if f.get("obligation") == "required" and f["code"] != "security_level"} if cat else set(),
        "jobs": jobs.list_jobs(dangan, actor, 10), "values": values, "errors": {}, "error": None,
        "crumbs": [("首页", "/"), ("批量导入", None)],
    }


@router.get("/import", response_class=HTMLResponse)
def import_page(request: Request, dangan: Dangan = Depends(get_dangan), actor: Actor = Depends(current_actor)) -> Response:
    require_any(request, actor, "record.import")
    return render(request, "import.html", _import_ctx(dangan, actor), active="import")


@router.post("/import", response_class=HTMLResponse)
def import_start(request: Request, form: FormData = Depends(form_data), dangan: Dangan = Depends(get_dangan),
                 actor: Actor = Depends(current_actor)) -> Response:
    require_any(request, actor, "record.import")
    values = {"target": _text(form, "target", 40), "department": _text(form, "department", 100),
              "state": _text(form, "state", 16) or RecordState.PRE_FILING.value, "dry_run": form.get("dry_run") == "1"}
    ctx = _import_ctx(dangan, actor, values)
    errors: dict[str, list[str]] = ctx["errors"]
    target = next((t for t in ctx["targets"] if t["value"] == values["target"]), None)
    if target is None:
        errors.setdefault("target", []).append("请选择要导入的门类")
    catalogue, files = _upload(form, "catalogue"), _upload(form, "files")
    if catalogue is None:
        errors.setdefault("catalogue", []).append("请选择归档文件目录（Excel 工作簿 .xlsx）")
    elif not (catalogue.filename or "").lower().endswith((".xlsx", ".xlsm")):
        errors.setdefault("catalogue", []).append("目录应为 Excel 工作簿（.xlsx）；.xls 请先在 Excel 中另存为 .xlsx")
    if files is not None and not (files.filename or "").lower().endswith(".zip"):
        errors.setdefault("files", []).append("电子文件应打包为一个 ZIP 压缩包")
    if values["state"] not in [s for s, _, _ in ctx["states"]]:
        errors.setdefault("state", []).append("您不能把导入的档案直接设为该状态")
    if values["department"] and values["department"].upper() not in {d["code"] for d in ctx["departments"]}:
        errors.setdefault("department", []).append("只能选择您有权导入的机构" if actor.scope_for("record.import") != "all"
                                                   else "没有这个机构")
    if errors:
        ctx["error"] = ValidationFailed(f"有 {sum(len(v) for v in errors.values())} 处需要修改，未开始导入")
        ctx["had_files"] = catalogue is not None or files is not None
        return render(request, "import.html", ctx, status=422, active="import")
    assert target is not None and catalogue is not None
    try:
        job = start_import(request, dangan, actor, catalogue, files, target["fonds"], target["code"],  # type: ignore[arg-type]
                           values["department"] or None, values["state"], bool(values["dry_run"]))
    except DanganError as e:
        _reraise_denied(e)
        ctx["error"], ctx["had_files"] = e, True
        return render(request, "import.html", ctx, status=e.status, active="import")
    return _see_other(f"/import/jobs/{job['id']}")


@router.get("/import/template.xlsx")
def import_template(request: Request, fonds_code: str | None = Query(None, alias="fonds", max_length=16),
                    category: str | None = Query(None, max_length=16), dangan: Dangan = Depends(get_dangan),
                    actor: Actor = Depends(current_actor)) -> Response:
    """An empty 归档文件目录 with the category's columns, and a sheet explaining each column."""
    require_any(request, actor, "record.import")
    import openpyxl
    from openpyxl.styles import Alignment, Font, PatternFill

    _, fonds_code = _fonds_code(dangan, actor, fonds_code)
    cats = categories.list_categories(dangan, actor, fonds_code)
    codes = [c["code"] for c in cats if c["levels"] == ["item"]] or [c["code"] for c in cats]
    if not codes:
        raise NotFound(f"全宗 {fonds_code} 还没有门类", code="CATEGORY_NOT_FOUND")
    code = category.upper() if category and category.upper() in codes else codes[0]
    cat = categories.show_category(dangan, actor, fonds_code, code)
    cols = template_columns(cat)
    fields = {f["code"]: f for f in cat["schemas"]["item"]["fields"]}
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = "归档文件目录"
    ws.append([label for _, label in cols])
    head = PatternFill("solid", fgColor="DCE6F2")
    for i, (c, label) in enumerate(cols, 1):
        cell = ws.cell(row=1, column=i)
        cell.font, cell.fill, cell.alignment = Font(bold=True), head, Alignment(horizontal="center")
        width = {"title": 48, "_files": 30, "doc_number": 20, "responsible": 20, "remarks": 20, "archival_code": 24}
        ws.column_dimensions[cell.column_letter].width = width.get(c, max(8, len(label) * 2 + 4))
    ws.freeze_panes = "A2"
    notes = wb.create_sheet("填写说明")
    notes.append(["列名", "是否必填", "填写说明"])
    for c in (1, 2, 3):
        notes.cell(row=1, column=c).font = Font(bold=True)
    for c, label in cols:
        f = fields.get(c, {})
        need = "必填" if f.get("obligation") == "required" and c not in ("security_level",) else "选填"
        hint = COLUMN_HELP.get(c) or f.get("description") or ""
        notes.append([label, need, hint])
    notes.append([])
    notes.append(["说明", "", f"门类：{cat['name']}（{cat['code']}）；第一行为列名，从第二行起每行一件。"
                  "不认识的列会在导入结果中列出并忽略。"])
    for col, width in (("A", 14), ("B", 10), ("C", 80)):
        notes.column_dimensions[col].width = width
    buf = io.BytesIO()
    wb.save(buf)
    name = f"归档文件目录模板-{cat['name']}.xlsx"
    return Response(buf.getvalue(), media_type=XLSX,
                    headers={"Content-Disposition": f"attachment; filename*=UTF-8''{quote(name)}"})


def _job_page(request: Request, dangan: Dangan, actor: Actor, job_id: str, *, error: DanganError | None = None,
              status: int = 200) -> Response:
    job = jobs.get_job(dangan, actor, job_id)
    params = job.get("params") or {}
    target = ""
    if params.get("fonds") and params.get("category"):
        try:
            target = categories.show_category(dangan, actor, params["fonds"], params["category"])["name"]
        except DanganError:
            target = params["category"]
    result = job.get("result") or {}
    dept = params.get("department") or ""
    if dept and params.get("fonds"):
        with contextlib.suppress(DanganError):
            dept = next((f"{d['name']}（{d['code']}）" for d in fonds.list_departments(dangan, actor, params["fonds"])
                         if d["code"] == dept.upper() or d["name"] == dept), dept)
    return render(request, "import_job.html", {
        "job": job, "params": params, "result": result, "target": target, "error": error, "department": dept,
        "state_label": STATE_LABELS.get(RecordState(params["state"])) if params.get("state") in {s.value for s in RecordState} else "",
        "resumable": job["kind"] == "import" and job["status"] in ("interrupted", "failed"),
        "crumbs": [("首页", "/"), ("批量导入", "/import"), (f"任务 {job_id}", None)],
    }, status=status, active="import")


@router.get("/import/jobs/{job_id}", response_class=HTMLResponse)
def import_job(request: Request, job_id: str, dangan: Dangan = Depends(get_dangan),
               actor: Actor = Depends(current_actor)) -> Response:
    return _job_page(request, dangan, actor, job_id[:64])


@router.post("/import/jobs/{job_id}/resume", response_class=HTMLResponse)
def import_job_resume(request: Request, job_id: str, form: FormData = Depends(form_data),
                      dangan: Dangan = Depends(get_dangan), actor: Actor = Depends(current_actor)) -> Response:
    try:
        resume_import(request, dangan, actor, job_id[:64])
    except NotFound:
        raise
    except DanganError as e:
        _reraise_denied(e)
        return _job_page(request, dangan, actor, job_id[:64], error=e, status=e.status)
    return _see_other(f"/import/jobs/{job_id[:64]}")


# ---------------------------------------------------------------- 接收归档 (the review queue)


def _groups(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Consecutive records of the same class (门类, 年度, 保管期限, 机构): they are numbered together."""
    groups: list[dict[str, Any]] = []
    for r in items:
        key = (r["category_code"], r["year"], r["retention_period"], r["department_id"])
        if not groups or groups[-1]["key"] != key:
            label = [r["category_name"], f"{r['year']} 年" if r["year"] else "年度未填",
                     r["retention_label"] or "保管期限未填", r["department_name"] or "未指定机构"]
            groups.append({"key": key, "label": label, "items": []})
        groups[-1]["items"].append(r)
    return groups


def _review_filters(form: FormData) -> dict[str, str]:
    return {k: _text(form, k, 100) for k in ("category", "department")}


def _review_page(request: Request, dangan: Dangan, actor: Actor, filters: dict[str, str], *, notice: str = "",
                 error: DanganError | None = None, outcome: dict[str, Any] | None = None, status: int = 200,
                 reason: str = "", selected: list[int] | None = None) -> Response:
    all_fonds, fonds_code = _fonds_code(dangan, actor, None)
    cats = categories.list_categories(dangan, actor, fonds_code)
    if filters.get("category") and filters["category"].upper() not in {c["code"] for c in cats}:
        filters["category"] = ""
    depts = fonds.list_departments(dangan, actor, fonds_code)
    if filters.get("department") and filters["department"].upper() not in {d["code"] for d in depts}:
        filters["department"] = ""
    q = prefiling.queue(dangan, actor, fonds_code, filters.get("category") or None, filters.get("department") or None)
    return render(request, "review.html", {
        "queue": q, "groups": _groups(q["items"]), "cats": cats, "departments": depts, "filters": filters,
        "fonds_code": fonds_code, "notice": notice, "error": error, "outcome": outcome, "reason": reason,
        "selected": set(selected or []), "crumbs": [("首页", "/"), ("接收归档", None)],
    }, status=status, active="review")


@router.get("/review", response_class=HTMLResponse)
def review_page(request: Request, category: str | None = Query(None, max_length=16),
                department: str | None = Query(None, max_length=100), done: str | None = Query(None, max_length=20),
                dangan: Dangan = Depends(get_dangan), actor: Actor = Depends(current_actor)) -> Response:
    require_any(request, actor, "record.file")
    return _review_page(request, dangan, actor, {"category": category or "", "department": department or ""},
                        notice=DONE.get(done or "", ""))


def _back_to_review(filters: dict[str, str], done: str, anchor: str = "") -> RedirectResponse:
    return _see_other("/review" + query(filters, done=done) + anchor)


@router.post("/review/accept", response_class=HTMLResponse)
def review_accept(request: Request, form: FormData = Depends(form_data), dangan: Dangan = Depends(get_dangan),
                  actor: Actor = Depends(current_actor)) -> Response:
    require_any(request, actor, "record.file")
    filters = _review_filters(form)
    ids = _ids(form)
    try:
        out = prefiling.accept(dangan, actor, ids)
    except DanganError as e:
        _reraise_denied(e)
        return _review_page(request, dangan, actor, filters, error=e, status=e.status)
    return _review_page(request, dangan, actor, filters, outcome=out)


@router.post("/review/return", response_class=HTMLResponse)
def review_return(request: Request, form: FormData = Depends(form_data), dangan: Dangan = Depends(get_dangan),
                  actor: Actor = Depends(current_actor)) -> Response:
    require_any(request, actor, "record.file")
    filters = _review_filters(form)
    ids, reason = _ids(form), _text(form, "reason", 2000)
    if not ids:
        e = ValidationFailed("请先勾选要退回的档案", code="NOTHING_SELECTED")
        return _review_page(request, dangan, actor, filters, error=e, status=422, reason=reason)
    if not reason:
        e = ValidationFailed("退回必须写明原因，部门档案员将在档案页面看到这一原因", code="REASON_REQUIRED")
        return _review_page(request, dangan, actor, filters, error=e, status=422, selected=ids)
    returned: list[dict[str, Any]] = []
    refused: list[dict[str, Any]] = []
    for rid in ids:
        try:
            v = prefiling.return_record(dangan, actor, rid, reason)
            returned.append({"id": rid, "title": v["title"]})
        except DanganError as e:
            _reraise_denied(e)
            refused.append({"id": rid, **e.as_dict()})
    return _review_page(request, dangan, actor, filters, outcome={"returned": returned, "refused": refused,
                                                                  "reason": reason})


def _group_ids(form: FormData) -> dict[str, list[int]]:
    out: dict[str, list[int]] = {}
    for k, v in form.multi_items():
        if re.fullmatch(r"g\d{1,5}", k) and isinstance(v, str) and v.isdigit():
            out.setdefault(k[1:], []).append(int(v))
    return out


@router.post("/review/order")
def review_order(request: Request, form: FormData = Depends(form_data), dangan: Dangan = Depends(get_dangan),
                 actor: Actor = Depends(current_actor)) -> Response:
    """Move one record up or down within its class (the list is renumbered from 1 in the new order)."""
    require_any(request, actor, "record.file")
    filters = _review_filters(form)
    rid_s, _, way = _text(form, "move", 40).partition(":")
    groups = _group_ids(form)
    if not rid_s.isdigit() or way not in ("up", "down"):
        return _review_page(request, dangan, actor, filters, status=422,
                            error=ValidationFailed("请用“上移”“下移”按钮调整顺序", code="BAD_ORDER"))
    rid = int(rid_s)
    order = next((ids for ids in groups.values() if rid in ids), [rid])
    i = order.index(rid)
    j = i - 1 if way == "up" else i + 1
    if 0 <= j < len(order):
        order[i], order[j] = order[j], order[i]
    try:
        prefiling.set_order(dangan, actor, order)
    except DanganError as e:
        _reraise_denied(e)
        return _review_page(request, dangan, actor, filters, error=e, status=e.status)
    return _back_to_review(filters, "order", f"#r{rid}")


@router.post("/review/auto")
def review_auto(request: Request, form: FormData = Depends(form_data), dangan: Dangan = Depends(get_dangan),
                actor: Actor = Depends(current_actor)) -> Response:
    """按日期排序: the records of one class (or all listed), by 日期 then importance."""
    require_any(request, actor, "record.file")
    filters = _review_filters(form)
    groups = _group_ids(form)
    g = _text(form, "group", 10)
    ids = groups.get(g) if g else [i for ids in groups.values() for i in ids]
    if not ids:
        ids = _ids(form)
    try:
        if not ids:
            raise ValidationFailed("没有可排列的档案", code="NOTHING_SELECTED")
        prefiling.auto_order(dangan, actor, ids)
    except DanganError as e:
        _reraise_denied(e)
        return _review_page(request, dangan, actor, filters, error=e, status=e.status)
    return _back_to_review(filters, "auto", f"#g{g}" if g else "")


# ---------------------------------------------------------------- 归档计划


def _plans_page(request: Request, dangan: Dangan, actor: Actor, *, notice: str = "", error: DanganError | None = None,
                values: dict[str, Any] | None = None, errors: dict[str, list[str]] | None = None,
                status: int = 200) -> Response:
    require_any(request, actor, "plan.manage", "record.create")
    all_fonds, fonds_code = _fonds_code(dangan, actor, None)
    plans = prefiling.list_plans(dangan, actor)
    order = {"overdue": 0, "due_soon": 1, "open": 2, "complete": 3}
    plans.sort(key=lambda p: (order.get(p["status"], 9), p["deadline"], p["department_code"]))
    manage = can(actor, "plan.manage")
    today = dt.date.today()
    defaults = {"year": str(today.year - 1 if today.month <= 6 else today.year),
                "deadline": f"{today.year if today.month <= 6 else today.year + 1}-06-30"}
    return render(request, "plans.html", {
        "plans": plans, "manage": manage, "fonds_code": fonds_code,
        "departments": fonds.list_departments(dangan, actor, fonds_code),
        "cats": [c for c in categories.list_categories(dangan, actor, fonds_code)],
        "mine": [d["name"] for d in fonds.list_departments(dangan, actor, fonds_code) if d["id"] in actor.department_ids],
        "values": {**defaults, **(values or {})}, "errors": errors or {}, "error": error, "notice": notice,
        "crumbs": [("首页", "/"), ("归档计划", None)],
    }, status=status, active="plans")


@router.get("/plans", response_class=HTMLResponse)
def plans_page(request: Request, done: str | None = Query(None, max_length=20), dangan: Dangan = Depends(get_dangan),
               actor: Actor = Depends(current_actor)) -> Response:
    return _plans_page(request, dangan, actor, notice=DONE.get(done or "", ""))


def _int_or_text(v: str) -> Any:
    return int(v) if re.fullmatch(r"\d{1,9}", v) else (v or None)


@router.post("/plans", response_class=HTMLResponse)
def plans_create(request: Request, form: FormData = Depends(form_data), dangan: Dangan = Depends(get_dangan),
                 actor: Actor = Depends(current_actor)) -> Response:
    values = {k: _text(form, k, 1000) for k in ("department", "category", "year", "deadline", "expected_count", "note")}
    _, fonds_code = _fonds_code(dangan, actor, _text(form, "fonds", 16))
    try:
        prefiling.create_plan(dangan, actor, fonds_code, values["department"], values["category"],
                              _int_or_text(values["year"]), values["deadline"], _int_or_text(values["expected_count"]),
                              values["note"])
    except DanganError as e:
        _reraise_denied(e)
        errors: dict[str, list[str]] = {}
        for k, label in (("department", "机构"), ("category", "门类")):
            if not values[k]:
                errors[k] = [f"请选择{label}"]
        for p in e.problems:
            errors.setdefault(p.field, []).append(p.message)
        if errors:
            e = ValidationFailed(f"有 {len(errors)} 处需要修改，计划未保存", problems=e.problems)
        return _plans_page(request, dangan, actor, error=e, values=values, errors=errors, status=e.status)
    return _see_other("/plans?done=plan_created")


@router.post("/plans/{plan_id}/delete")
def plans_delete(request: Request, plan_id: int, form: FormData = Depends(form_data),
                 dangan: Dangan = Depends(get_dangan), actor: Actor = Depends(current_actor)) -> Response:
    prefiling.delete_plan(dangan, actor, plan_id)
    return _see_other("/plans?done=plan_deleted")


# ---------------------------------------------------------------- 保管期限表

RULE_FIELDS = ("item", "retention_period", "keywords", "doc_types", "departments", "class_code", "basis", "note")


def _schedule_page(request: Request, dangan: Dangan, actor: Actor, fonds_code: str | None, category: str | None, *,
                   notice: str = "", rows: list[dict[str, Any]] | None = None, errors: dict[str, list[str]] | None = None,
                   error: DanganError | None = None, status: int = 200) -> Response:
    require_any(request, actor, "schedule.manage", "record.create")
    all_fonds, fonds_code = _fonds_code(dangan, actor, fonds_code)
    cats = categories.list_categories(dangan, actor, fonds_code)
    if not cats:
        raise NotFound(f"全宗 {fonds_code} 还没有门类", code="CATEGORY_NOT_FOUND")
    codes = [c["code"] for c in cats]
    code = category.upper() if category and category.upper() in codes else codes[0]
    cat = categories.show_category(dangan, actor, fonds_code, code)
    sched = schedule.get_schedule(dangan, actor, fonds_code, code)
    if rows is None:
        rows = [{k: ("、".join(v) if isinstance(v, list) else (v or "")) for k, v in
                 ((k, r.get(k)) for k in RULE_FIELDS)} for r in sched["rules"]]
    field_codes = {f["code"] for lvl in cat["levels"] for f in cat["schemas"][lvl]["fields"]}
    has_class = "class_code" in field_codes or any(r.get("class_code") for r in rows)
    return render(request, "schedule.html", {
        "fonds_list": all_fonds, "fonds_code": fonds_code, "cats": cats, "cat": cat, "rules": sched["rules"],
        "rows": rows, "errors": errors or {}, "error": error, "notice": notice, "has_class": has_class,
        "manage": can(actor, "schedule.manage"), "retentions": [(r.code, r.label) for r in STANDARD_PERIODS],
        "retention_label": _retention_label, "blank_rows": 1 if rows else 3,
        "crumbs": [("首页", "/"), ("保管期限表", "/schedule"), (cat["name"], None)],
    }, status=status, active="schedule")


@router.get("/schedule", response_class=HTMLResponse)
def schedule_page(request: Request, fonds_code: str | None = Query(None, alias="fonds", max_length=16),
                  category: str | None = Query(None, max_length=16), done: str | None = Query(None, max_length=20),
                  dangan: Dangan = Depends(get_dangan), actor: Actor = Depends(current_actor)) -> Response:
    return _schedule_page(request, dangan, actor, fonds_code, category, notice=DONE.get(done or "", ""))


def _form_rows(form: FormData) -> Iterator[tuple[int, dict[str, str], bool]]:
    """(row number on the page, the row's values, marked for deletion), in page order."""
    nums = sorted({int(m.group(1)) for k in form if (m := re.fullmatch(r"item_(\d{1,4})", k))})
    for n in nums:
        row = {k: _text(form, f"{k}_{n}", 2000) for k in RULE_FIELDS}
        yield n, row, form.get(f"delete_{n}") == "1"


@router.post("/schedule", response_class=HTMLResponse)
def schedule_save(request: Request, form: FormData = Depends(form_data), dangan: Dangan = Depends(get_dangan),
                  actor: Actor = Depends(current_actor)) -> Response:
    fonds_code, category = _text(form, "fonds", 16), _text(form, "category", 16)
    rules: list[dict[str, Any]] = []
    rows: list[dict[str, Any]] = []
    where: dict[int, int] = {}  # rule number (1-based, as the service names it) → row index on the page
    for _n, row, deleted in _form_rows(form):
        if deleted or not any(row.values()):
            continue
        rows.append(row)
        where[len(rows)] = len(rows) - 1
        rules.append({k: v for k, v in row.items() if v})
    try:
        schedule.set_schedule(dangan, actor, fonds_code, category, rules)
    except DanganError as e:
        _reraise_denied(e)
        errors: dict[str, list[str]] = {}
        for p in e.problems:
            m = re.fullmatch(r"rules\[(\d+)\](?:\.(\w+))?", p.field)
            if m and int(m.group(1)) in where:
                row, key = where[int(m.group(1))], m.group(2) or "item"
                empty = key == "retention_period" and not rows[row]["retention_period"]
                errors.setdefault(f"{row}.{key}", []).append("请选择保管期限" if empty else p.message)
            else:
                errors.setdefault("general", []).append(f"{p.label or p.field}：{p.message}")
        return _schedule_page(request, dangan, actor, fonds_code, category, rows=rows, errors=errors, error=e,
                              status=e.status)
    return _see_other("/schedule" + query({}, fonds=fonds_code, category=category, done="schedule_saved"))


# ---------------------------------------------------------------- 归档文件目录


@router.get("/catalogue", response_class=HTMLResponse)
def catalogue_page(
    request: Request,
    fonds_code: str | None = Query(None, alias="fonds", max_length=16),
    category: str | None = Query(None, max_length=16),
    year: str | None = Query(None, max_length=4),
    retention: str | None = Query(None, max_length=16),
    department: str | None = Query(None, max_length=100),
    dangan: Dangan = Depends(get_dangan), actor: Actor = Depends(current_actor),
) -> Response:
    require_any(request, actor, "record.read")
    all_fonds, fonds_code = _fonds_code(dangan, actor, fonds_code)
    cats = categories.list_categories(dangan, actor, fonds_code)
    category = category.upper() if category and category.upper() in {c["code"] for c in cats} else None
    depts = fonds.list_departments(dangan, actor, fonds_code)
    department = department.upper() if department and department.upper() in {d["code"] for d in depts} else None
    year_n = int(year) if year and year.isdigit() and 1900 <= int(year) <= 2999 else None
    retention = retention if retention and _retention_label(retention) != retention else None
    flt = records.RecordFilter(fonds=fonds_code, category=category, year=year_n, retention_period=retention,
                               department=department, state=RecordState.FILED.value, level="item")
    preview = records.list_records(dangan, actor, flt, limit=20, sort="code", audit=False)
    years = sorted((y["value"] for y in records.facets(dangan, actor, records.RecordFilter(
        fonds=fonds_code, category=category, state=RecordState.FILED.value))["year"] if y["value"]), reverse=True)
    params = {"fonds": fonds_code, "category": category, "year": year_n, "retention_period": retention,
              "department": department}
    return render(request, "catalogue.html", {
        "fonds_list": all_fonds, "fonds_code": fonds_code, "cats": cats, "departments": depts, "years": years,
        "retentions": [(r.code, r.label) for r in STANDARD_PERIODS], "preview": preview, "max_pdf": MAX_PDF_ROWS,
        "sel": {"category": category, "year": year_n, "retention": retention, "department": department},
        "xlsx_url": "/api/v1/catalogue" + query(params, format="xlsx"),
        "pdf_url": "/api/v1/catalogue" + query(params, format="pdf"),
        "crumbs": [("首页", "/"), ("归档文件目录", None)],
    }, active="catalogue")
