"""数字化 pages: the batch list with the upload form, the import job, a batch (progress, what is outstanding,
rework, 抽检, OCR, 挂接) and the page viewer (image and OCR text side by side, 公文 suggestions to confirm).

The work is done by services/digitise.py, which checks the rights and audits; a refused form shows the
service's message on the same page."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.datastructures import FormData, UploadFile

from dangan.errors import DanganError, FieldProblem, NotFound, PermissionDenied, ValidationFailed
from dangan.services import categories, fonds, jobs
from dangan.services import digitise as dg
from dangan.services.context import Actor, Dangan
from dangan.web.api.digitise import start_upload
from dangan.web.deps import can, current_actor, get_dangan, require_any
from dangan.web.ui.capture import _text, form_data
from dangan.web.ui.render import csrf_guard, render

router = APIRouter(include_in_schema=False, dependencies=[Depends(csrf_guard)])

NOTICES = {
    "qc": "已开始图像质量检查，进度见下方。", "ocr": "已开始 OCR 文字识别，进度见下方。", "sample": "已抽取本轮抽检的页面。",
    "inspect": "抽检判定已保存。", "rescan": "已用重新扫描的图像替换该页；原来的原件保留。", "blank": "空白页标记已保存。",
    "accepted": "批次已挂接：扫描件、PDF/A 利用副本和 OCR 全文已加入各件档案。", "confirmed": "著录已按您确认的内容修改。",
}
STEPS = [("import", "导入"), ("qc", "质量检查"), ("rework", "返工"), ("sample", "抽检"), ("ocr", "OCR 识别"),
         ("accept", "挂接")]


def _see_other(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)


def _uploads(form: FormData, key: str) -> list[UploadFile]:
    return [v for v in form.getlist(key) if isinstance(v, UploadFile) and v.filename]


def _home(request: Request, dangan: Dangan, actor: Actor, *, error: DanganError | None = None,
          values: dict[str, Any] | None = None, status: int = 200) -> Response:
    require_any(request, actor, *dg.SCAN_ACTIONS)
    fl = fonds.list_fonds(dangan, actor)
    cats = {f["code"]: categories.list_categories(dangan, actor, f["code"]) for f in fl}
    return render(request, "scan_batches.html", {
        "batches": dg.list_batches(dangan, actor, limit=100), "fonds_list": fl, "cats": cats, "error": error,
        "values": values or {}, "problems": {p.field: p.message for p in (error.problems if error else [])},
        "crumbs": [("首页", "/"), ("数字化", None)],
    }, status=status, active="scan")


@router.get("/scan", response_class=HTMLResponse)
def scan_home(request: Request, dangan: Dangan = Depends(get_dangan), actor: Actor = Depends(current_actor)) -> Response:
    return _home(request, dangan, actor)


@router.post("/scan")
def scan_upload(request: Request, form: FormData = Depends(form_data), dangan: Dangan = Depends(get_dangan),
                actor: Actor = Depends(current_actor)) -> Response:
    require_any(request, actor, "scan.import")
    values = {k: _text(form, k, 200) for k in ("fonds", "category", "year", "device", "software", "name")}
    try:
        year = None
        if values["year"]:
            if not values["year"].isdigit():
                raise ValidationFailed("年度应为四位数字，如 2024", code="WRONG_TYPE",
                                       problems=[FieldProblem("year", "WRONG_TYPE", "年度应为四位数字", "年度")])
            year = int(values["year"])
        if not values["fonds"]:
            raise ValidationFailed("请选择全宗", code="REQUIRED", problems=[FieldProblem("fonds", "REQUIRED", "请选择全宗")])
        jid = start_upload(request, dangan, actor, _uploads(form, "files") + _uploads(form, "folder"),
                           fonds=values["fonds"], category=values["category"] or None, year=year,
                           device=values["device"], software=values["software"], name=values["name"])
    except PermissionDenied:
        raise
    except DanganError as e:
        return _home(request, dangan, actor, error=e, values=values, status=e.status)
    return _see_other(f"/scan/jobs/{jid}")


@router.get("/scan/jobs/{job_id}", response_class=HTMLResponse)
def scan_job(request: Request, job_id: str, dangan: Dangan = Depends(get_dangan),
             actor: Actor = Depends(current_actor)) -> Response:
    job = jobs.get_job(dangan, actor, job_id[:64])
    if job["kind"] != "scan_import":
        raise NotFound(f"任务 {job_id} 不存在", code="JOB_NOT_FOUND")
    if job["status"] == "done" and (job.get("result") or {}).get("batch_id"):
        return _see_other(f"/scan/{job['result']['batch_id']}")
    return render(request, "scan_job.html", {"job": job, "error": job.get("error") or {},
                                             "crumbs": [("首页", "/"), ("数字化", "/scan"), ("导入扫描件", None)]},
                  active="scan")


def _steps(v: dict[str, Any]) -> list[dict[str, Any]]:
    c, ins = v["counts"], v["inspection_state"]
    kinds = {i["kind"] for i in v["issues"]}
    readable = c["pages"] - c.get("unreadable", 0)
    accepted = v["status"] == "accepted"
    done = {
        "import": True,
        "qc": c["pages"] > 0 and c["pending"] == 0 or accepted,
        "rework": c["pending"] == 0 and c["failing"] == 0 or accepted,
        "sample": ins["verdict"] == "合格" or accepted,
        "ocr": "ocr" not in kinds and c["ocr"] > 0 or accepted,
        "accept": v["status"] == "accepted",
    }
    notes = {
        "import": f"{v['summary'].get('files', 0)} 个文件",
        "qc": f"未检查 {c['pending']} 页" if c["pending"] else "已完成",
        "rework": (f"放行 {c['failing']} 页" if accepted else f"待返工 {c['failing']} 页") if c["failing"]
        else (f"已替换 {c['replaced']} 页" if c["replaced"] else "无"),
        "sample": ins["verdict"] or (f"已判定 {ins['checked']}/{ins['sampled']}" if ins["drawn"] else "未抽检"),
        "ocr": f"已识别 {c['ocr']}/{readable} 页" + (f"（{c['unreadable']} 页无法读取）" if c.get("unreadable") else ""),
        "accept": "已挂接" if v["status"] == "accepted" else "未挂接",
    }
    out, current_set = [], False
    for key, label in STEPS:
        state = "done" if done[key] else ("now" if not current_set else "later")
        if not done[key] and not current_set:
            current_set = True
        out.append({"key": key, "label": label, "state": state, "note": notes[key]})
    return out


def _batch_page(request: Request, dangan: Dangan, actor: Actor, batch_id: int, *, error: DanganError | None = None,
                notice: str = "", status: int = 200, values: dict[str, Any] | None = None) -> Response:
    v = dg.get_batch(dangan, actor, batch_id)
    crumbs = [("首页", "/"), ("数字化", "/scan"), (f"批次 #{v['id']}", None)]
    return render(request, "scan_batch.html", {
        "b": v, "steps": _steps(v), "error": error, "notice": notice, "values": values or {},
        "problems": {p.field: p.message for p in (error.problems if error else [])},
        "open": v["status"] == "open", "crumbs": crumbs,
        "may": {a: can(actor, a) for a in dg.SCAN_ACTIONS}, "may_download": can(actor, "file.download"),
    }, status=status, active="scan")


@router.get("/scan/pages/{page_id}", response_class=HTMLResponse)
def scan_page(request: Request, page_id: int, done: str | None = Query(None, max_length=16),
              dangan: Dangan = Depends(get_dangan), actor: Actor = Depends(current_actor)) -> Response:
    return _page_view(request, dangan, actor, page_id, notice=NOTICES.get(done or "", ""))


def _page_view(request: Request, dangan: Dangan, actor: Actor, page_id: int, *, error: DanganError | None = None,
               status: int = 200, notice: str = "", values: dict[str, Any] | None = None) -> Response:
    p = dg.page_detail(dangan, actor, page_id)
    where = f"{p['archival_code'] or p['file_name']} 第 {p['page_no']} 页" if p["page_no"] else p["file_name"]
    crumbs = [("首页", "/"), ("数字化", "/scan"), (f"批次 #{p['batch_id']}", f"/scan/{p['batch_id']}"), (where, None)]
    rec = p.get("record") or {}
    return render(request, "scan_page.html", {
        "p": p, "rec": rec, "error": error, "notice": notice, "values": values or {}, "crumbs": crumbs,
        "problems": {pr.field: pr.message for pr in (error.problems if error else [])},
        "may_update": can(actor, "record.update"), "may_download": can(actor, "file.download"),
        "filed": rec.get("state") == "filed",
    }, status=status, active="scan")


@router.post("/scan/pages/{page_id}/confirm")
def scan_page_confirm(request: Request, page_id: int, form: FormData = Depends(form_data),
                      dangan: Dangan = Depends(get_dangan), actor: Actor = Depends(current_actor)) -> Response:
    values = {k: _text(form, f"v_{k}", 500) for k in dg.SUGGEST_FIELDS if form.get(f"use_{k}") == "1"}
    suggested = {k: _text(form, f"s_{k}", 500) for k in dg.SUGGEST_FIELDS if form.get(f"s_{k}") is not None}
    reason = _text(form, "reason", 2000)
    version = _text(form, "row_version", 12)
    try:
        dg.confirm_metadata(dangan, actor, page_id, values, reason=reason,
                            row_version=int(version) if version.isdigit() else None, suggested=suggested)
    except PermissionDenied:
        raise
    except DanganError as e:
        if e.status == 404:
            raise
        return _page_view(request, dangan, actor, page_id, error=e, status=e.status,
                          values={"picked": set(values), **{f"v_{k}": v for k, v in values.items()}, "reason": reason})
    return _see_other(f"/scan/pages/{page_id}?done=confirmed#suggest")


@router.get("/scan/{batch_id}", response_class=HTMLResponse)
def scan_batch(request: Request, batch_id: int, done: str | None = Query(None, max_length=16),
               dangan: Dangan = Depends(get_dangan), actor: Actor = Depends(current_actor)) -> Response:
    return _batch_page(request, dangan, actor, batch_id, notice=NOTICES.get(done or "", ""))


def _act(request: Request, dangan: Dangan, actor: Actor, batch_id: int, fn: Any, done: str,
         anchor: str = "", values: dict[str, Any] | None = None) -> Response:
    try:
        fn()
    except PermissionDenied:
        raise
    except DanganError as e:
        if e.status == 404:
            raise
        return _batch_page(request, dangan, actor, batch_id, error=e, status=e.status, values=values)
    return _see_other(f"/scan/{batch_id}?done={done}{anchor}")


def _runner(request: Request) -> jobs.Runner:
    return request.app.state.jobs.capture


@router.post("/scan/{batch_id}/qc")
def scan_qc(request: Request, batch_id: int, form: FormData = Depends(form_data), dangan: Dangan = Depends(get_dangan),
            actor: Actor = Depends(current_actor)) -> Response:
    require_any(request, actor, "scan.qc")
    redo = form.get("redo") == "1"

    def go() -> None:
        jid = dg.prepare_qc(dangan, actor, batch_id, redo=redo)
        _runner(request).start(dangan, jid, dg.qc_work(dangan, actor, batch_id, redo=redo))

    return _act(request, dangan, actor, batch_id, go, "qc")


@router.post("/scan/{batch_id}/ocr")
def scan_ocr(request: Request, batch_id: int, form: FormData = Depends(form_data), dangan: Dangan = Depends(get_dangan),
             actor: Actor = Depends(current_actor)) -> Response:
    require_any(request, actor, "ocr.run")
    redo = form.get("redo") == "1"

    def go() -> None:
        jid = dg.prepare_ocr(dangan, actor, batch_id, redo=redo)
        _runner(request).start(dangan, jid, dg.ocr_work(dangan, actor, batch_id, redo=redo))

    return _act(request, dangan, actor, batch_id, go, "ocr")


@router.post("/scan/{batch_id}/sample")
def scan_sample(request: Request, batch_id: int, form: FormData = Depends(form_data),
                dangan: Dangan = Depends(get_dangan), actor: Actor = Depends(current_actor)) -> Response:
    require_any(request, actor, "scan.qc")
    rate, mark = _text(form, "rate", 16), _text(form, "pass_mark", 16)
    return _act(request, dangan, actor, batch_id,
                lambda: dg.draw_sample(dangan, actor, batch_id, rate=rate or None, pass_mark=mark or None), "sample",
                "#sample", {"rate": rate, "pass_mark": mark})


@router.post("/scan/{batch_id}/inspect")
def scan_inspect(request: Request, batch_id: int, form: FormData = Depends(form_data),
                 dangan: Dangan = Depends(get_dangan), actor: Actor = Depends(current_actor)) -> Response:
    require_any(request, actor, "scan.qc")
    page = _text(form, "page_id", 12)
    verdict, note = _text(form, "verdict", 8), _text(form, "note", 1000)
    return _act(request, dangan, actor, batch_id,
                lambda: dg.mark_sample(dangan, actor, batch_id, int(page) if page.isdigit() else 0, verdict, note),
                "inspect", "#sample", {"inspect_page": page, "note": note})


@router.post("/scan/{batch_id}/blank")
def scan_blank(request: Request, batch_id: int, form: FormData = Depends(form_data),
               dangan: Dangan = Depends(get_dangan), actor: Actor = Depends(current_actor)) -> Response:
    require_any(request, actor, "scan.qc")
    page = _text(form, "page_id", 12)
    blank = form.get("blank", "1") == "1"
    return _act(request, dangan, actor, batch_id,
                lambda: dg.declare_blank(dangan, actor, batch_id, int(page) if page.isdigit() else 0, blank),
                "blank", "#outstanding")


@router.post("/scan/{batch_id}/rescan")
def scan_rescan(request: Request, batch_id: int, form: FormData = Depends(form_data),
                dangan: Dangan = Depends(get_dangan), actor: Actor = Depends(current_actor)) -> Response:
    require_any(request, actor, "scan.import")
    page = _text(form, "page_id", 12)
    ups = _uploads(form, "file")

    def go() -> None:
        if not ups:
            raise ValidationFailed("请选择重新扫描的图像", code="REQUIRED",
                                   problems=[FieldProblem(f"rescan_{page}", "REQUIRED", "请选择重新扫描的图像")])
        up = ups[0]
        name = (dg.clean_upload_name(up.filename or "") or "rescan").rsplit("/", 1)[-1]
        dg.rescan_page(dangan, actor, batch_id, int(page) if page.isdigit() else 0,
                       dg.ScanSource(name, lambda: up.file))

    return _act(request, dangan, actor, batch_id, go, "rescan", "#outstanding", {"rescan_page": page})


@router.post("/scan/{batch_id}/accept")
def scan_accept(request: Request, batch_id: int, form: FormData = Depends(form_data),
                dangan: Dangan = Depends(get_dangan), actor: Actor = Depends(current_actor)) -> Response:
    require_any(request, actor, "scan.accept")
    overrides = [v for v in form.getlist("override") if isinstance(v, str)][:5000]
    reason = _text(form, "reason", 2000)
    return _act(request, dangan, actor, batch_id,
                lambda: dg.accept_batch(dangan, actor, batch_id, overrides=overrides, reason=reason), "accepted", "",
                {"overrides": set(overrides), "reason": reason})
