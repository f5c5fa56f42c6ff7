"""四性检测 and 长期保存 pages: start a check (records or an uploaded package) with live progress, the report of a
run (summary per dimension, every item, the evidence), comparison with the previous run, the check schemes,
the scheduled fixity audit, and receiving a package (移交与接收). The services check the rights and audit."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from starlette.datastructures import FormData

from dangan.checks.model import Stage
from dangan.errors import DanganError, NotFound, PermissionDenied, StateError, ValidationFailed
from dangan.services import categories, fixity_audit, fonds, jobs, packages
from dangan.services import checks as check_svc
from dangan.services.context import Actor, Dangan
from dangan.web.api.capture import save_upload
from dangan.web.deps import can, current_actor, get_dangan, require_any
from dangan.web.ui.capture import _text, _upload, form_data
from dangan.web.ui.render import csrf_guard, render

router = APIRouter(include_in_schema=False, dependencies=[Depends(csrf_guard)])

STAGES = [s.value for s in Stage]
STATE_CHOICES = [("filed", "已归档"), ("pending", "待归档"), ("pre_filing", "预归档"), ("", "全部状态")]
NOTICES = {"scheme_saved": "检测方案已保存，下次检测按新方案执行。", "audit_done": "已完成一批固化信息巡检。"}


def _see_other(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)


def _runner(request: Request) -> jobs.Runner:
    return request.app.state.jobs.capture


def _fonds_and_categories(dangan: Dangan, actor: Actor) -> tuple[list[dict[str, Any]], dict[str, list[dict[str, Any]]]]:
    fl = fonds.list_fonds(dangan, actor)
    cats = {f["code"]: categories.list_categories(dangan, actor, f["code"]) for f in fl}
    return fl, cats


def _home(request: Request, dangan: Dangan, actor: Actor, *, error: DanganError | None = None,
          values: dict[str, Any] | None = None, status: int = 200, stage: str | None = None,
          verdict: str | None = None, before: int | None = None) -> Response:
    require_any(request, actor, "check.run")
    runs = check_svc.list_runs(dangan, actor, stage=stage or None, verdict=verdict or None, before_id=before, limit=30)
    fl, cats = _fonds_and_categories(dangan, actor)
    return render(request, "checks.html", {
        "runs": runs, "stages": STAGES, "states": STATE_CHOICES, "fonds_list": fl, "cats": cats,
        "f_stage": stage or "", "f_verdict": verdict or "", "error": error, "values": values or {},
        "problems": {p.field: p.message for p in (error.problems if error else [])},
    }, status=status, active="checks")


@router.get("/checks", response_class=HTMLResponse)
def checks_home(request: Request, stage: str | None = Query(None, max_length=16),
                verdict: str | None = Query(None, max_length=8), before: int | None = Query(None),
                dangan: Dangan = Depends(get_dangan), actor: Actor = Depends(current_actor)) -> Response:
    return _home(request, dangan, actor, stage=stage, verdict=verdict, before=before)


@router.post("/checks/start")
def checks_start(request: Request, form: FormData = Depends(form_data), dangan: Dangan = Depends(get_dangan),
                 actor: Actor = Depends(current_actor)) -> Response:
    require_any(request, actor, "check.run")
    values = {k: _text(form, k, 32) for k in ("stage", "fonds", "category", "year", "state", "record_id")}
    try:
        year = int(values["year"]) if values["year"] else None
        if values["year"] and not (year and 1900 <= year <= 2999):
            raise ValidationFailed("年度应为四位数字", code="WRONG_TYPE", problems=[])
        record_ids = [int(values["record_id"])] if values["record_id"].isdigit() else None
        kw = {"stage": values["stage"] or "长期保存", "fonds": values["fonds"] or None,
              "category": values["category"] or None, "year": year, "state": values["state"] or None,
              "record_ids": record_ids}
        check_svc._stage(kw["stage"])  # refuse an unknown stage before a job exists
        if not (record_ids or kw["fonds"] or kw["category"] or year or kw["state"]):
            raise ValidationFailed("请选择要检测的范围（全宗、门类、年度或状态）", code="NOTHING_TO_CHECK")
    except DanganError as e:
        return _home(request, dangan, actor, error=e, values=values, status=e.status)
    if record_ids:
        try:
            run = check_svc.run_records(dangan, actor, **kw)  # type: ignore[arg-type]
        except NotFound:
            raise
        except DanganError as e:
            return _home(request, dangan, actor, error=e, values=values, status=e.status)
        return _see_other(f"/checks/{run['id']}")
    jid = jobs.create_job(dangan, actor, "check", {k: v for k, v in kw.items() if v is not None})

    def work(prog: jobs.Progress) -> dict[str, Any]:
        def step(phase: str, n: int, total: int) -> None:
            if phase == "files":
                prog.update(total=total, processed=n)

        run = check_svc.run_records(dangan, actor, progress=step, **kw)  # type: ignore[arg-type]
        return {"check_run_id": run["id"], "verdict": run["verdict"], "target": run["target_label"]}

    _runner(request).start(dangan, jid, work)
    return _see_other(f"/checks/jobs/{jid}")


def _start_package_job(request: Request, dangan: Dangan, actor: Actor, upload: Any, kind: str,
                       params: dict[str, Any], run: Any) -> str:
    name = Path(upload.filename or "package").name
    jid = jobs.create_job(dangan, actor, kind, {"name": name, **params})
    path = jobs.job_dir(dangan, jid) / ("package.xml" if name.lower().endswith(".xml") else "package.zip")
    save_upload(upload, path)

    def work(prog: jobs.Progress) -> dict[str, Any]:
        def step(phase: str, n: int, total: int) -> None:
            if phase == "files":
                prog.update(total=total, processed=n)

        try:
            return run(path, name, step)
        finally:
            jobs.remove_workdir(dangan, jid)

    _runner(request).start(dangan, jid, work)
    return jid


@router.post("/checks/package")
def checks_package(request: Request, form: FormData = Depends(form_data), dangan: Dangan = Depends(get_dangan),
                   actor: Actor = Depends(current_actor)) -> Response:
    require_any(request, actor, "check.run")
    values = {k: _text(form, k, 64) for k in ("stage", "fonds", "category", "sm3")}
    upload = _upload(form, "package")
    try:
        if upload is None:
            raise ValidationFailed("请选择要检测的数据包（ZIP 或 XML）", code="REQUIRED")
        stage = values["stage"] or "移交与接收"
        check_svc._stage(stage)
    except DanganError as e:
        return _home(request, dangan, actor, error=e, values=values, status=e.status)
    digests = {"sm3": values["sm3"].lower()} if values["sm3"] else None

    def run(path: Path, name: str, step: Any) -> dict[str, Any]:
        r = check_svc.run_package(dangan, actor, path, stage=stage, fonds=values["fonds"] or None,
                                  category=values["category"] or None, label=name, progress=step, sent_digest=digests)
        return {"check_run_id": r["id"], "verdict": r["verdict"], "target": r["target_label"]}

    jid = _start_package_job(request, dangan, actor, upload, "check", {"stage": stage}, run)
    return _see_other(f"/checks/jobs/{jid}")


@router.get("/checks/jobs/{job_id}", response_class=HTMLResponse)
def check_job(request: Request, job_id: str, dangan: Dangan = Depends(get_dangan),
              actor: Actor = Depends(current_actor)) -> Response:
    job = jobs.get_job(dangan, actor, job_id[:64])
    if job["kind"] not in ("check", "package_import"):
        raise NotFound(f"任务 {job_id} 不存在", code="JOB_NOT_FOUND")
    result = job.get("result") or {}
    if job["status"] == "done" and job["kind"] == "check" and result.get("check_run_id"):
        return _see_other(f"/checks/{result['check_run_id']}")
    run_id = result.get("check_run", {}).get("id") if job["kind"] == "package_import" else None
    error = job.get("error") or {}
    failed_run = (error.get("detail") or {}).get("check_run_id")
    return render(request, "check_job.html", {"job": job, "result": result, "error": error, "run_id": run_id,
                                              "failed_run": failed_run},
                  active="package_import" if job["kind"] == "package_import" else "checks")


def _run_page(request: Request, dangan: Dangan, actor: Actor, run_id: int) -> dict[str, Any]:
    run = check_svc.get_run(dangan, actor, run_id)
    by_dim: dict[int, list[dict[str, Any]]] = {}
    for it in run.get("items", []):
        by_dim.setdefault(it["dimension"], []).append(it)
    return {"run": run, "by_dim": sorted(by_dim.items()),
            "dims": sorted((run.get("summary") or {}).get("dimensions", {}).items())}


@router.get("/checks/{run_id}", response_class=HTMLResponse)
def check_run(request: Request, run_id: int, dangan: Dangan = Depends(get_dangan),
              actor: Actor = Depends(current_actor)) -> Response:
    ctx = _run_page(request, dangan, actor, run_id)
    crumbs = [("首页", "/"), ("四性检测", "/checks"), (f"检测 #{run_id}", None)]
    return render(request, "check_run.html", {**ctx, "crumbs": crumbs}, active="checks")


@router.get("/checks/{run_id}/report.pdf")
def check_run_pdf(run_id: int, dangan: Dangan = Depends(get_dangan), actor: Actor = Depends(current_actor)) -> Response:
    from dangan.outputs.check_report import report_pdf

    run = check_svc.get_run(dangan, actor, run_id)
    name = f"四性检测报告-{run_id}.pdf"
    return Response(report_pdf(run), media_type="application/pdf",
                    headers={"Content-Disposition": f"attachment; filename*=UTF-8''{quote(name)}"})


@router.get("/checks/{run_id}/report.json")
def check_run_json(run_id: int, dangan: Dangan = Depends(get_dangan), actor: Actor = Depends(current_actor)) -> Response:
    run = check_svc.get_run(dangan, actor, run_id)
    name = f"四性检测报告-{run_id}.json"
    return Response(json.dumps(run, ensure_ascii=False, indent=2, default=str), media_type="application/json",
                    headers={"Content-Disposition": f"attachment; filename*=UTF-8''{quote(name)}"})


@router.get("/checks/{run_id}/compare", response_class=HTMLResponse)
def check_compare(request: Request, run_id: int, other: int | None = Query(None),
                  dangan: Dangan = Depends(get_dangan), actor: Actor = Depends(current_actor)) -> Response:
    run = check_svc.get_run(dangan, actor, run_id)
    try:
        diff = check_svc.compare_runs(dangan, actor, run_id, other)
    except StateError:  # NO_PREVIOUS_RUN: the page says so
        diff = None
    crumbs = [("首页", "/"), ("四性检测", "/checks"), (f"检测 #{run_id}", f"/checks/{run_id}"), ("比较", None)]
    return render(request, "check_compare.html", {"run": run, "diff": diff, "crumbs": crumbs}, active="checks")


@router.post("/records/{record_id}/check")
def record_check(request: Request, record_id: int, form: FormData = Depends(form_data),
                 dangan: Dangan = Depends(get_dangan), actor: Actor = Depends(current_actor)) -> Response:
    stage = _text(form, "stage", 16) or "长期保存"
    run = check_svc.run_records(dangan, actor, stage=stage, record_ids=[record_id])
    return _see_other(f"/checks/{run['id']}")


@router.post("/records/{record_id}/export")
def record_export(request: Request, record_id: int, form: FormData = Depends(form_data),
                  dangan: Dangan = Depends(get_dangan), actor: Actor = Depends(current_actor)) -> Response:
    fmt = _text(form, "format", 8) or "eep"
    d = dangan.settings.data_dir / "exports" / uuid.uuid4().hex[:12]
    d.mkdir(parents=True, exist_ok=True)
    res = packages.export_records(dangan, actor, [record_id], fmt, d / f"dangan-{fmt}-{record_id}")
    path = Path(res["path"])
    return FileResponse(path, media_type="application/xml" if path.suffix == ".xml" else "application/zip",
                        headers={"Content-Disposition": f"attachment; filename*=UTF-8''{quote(path.name)}",
                                 "X-Checksum-SM3": res["sm3"]})


# ---------------------------------------------------------------- schemes


@router.get("/check-schemes", response_class=HTMLResponse)
def schemes_page(request: Request, done: str | None = Query(None, max_length=16), dangan: Dangan = Depends(get_dangan),
                 actor: Actor = Depends(current_actor)) -> Response:
    require_any(request, actor, "check.run")
    return render(request, "check_schemes.html", {"schemes": check_svc.list_schemes(dangan, actor),
                                                  "notice": NOTICES.get(done or "", "")}, active="schemes")


def _scheme_page(request: Request, dangan: Dangan, actor: Actor, scheme_id: int, *, error: DanganError | None = None,
                 status: int = 200, notice: str = "", submitted: dict[str, Any] | None = None) -> Response:
    sch = check_svc.get_scheme(dangan, actor, scheme_id)
    for it in sch["items"] if submitted else []:  # a refused form shows what the person entered, not the saved scheme
        mine = submitted.get(it["key"], {})  # type: ignore[union-attr]
        it.update({k: mine[k] for k in ("enabled", "veto", "advisory") if k in mine})
        it["params"] = {**it["params"], **mine.get("params", {})}
    crumbs = [("首页", "/"), ("检测方案", "/check-schemes"), (sch["name"], None)]
    problems = {p.field: p.message for p in (error.problems if error else [])}
    return render(request, "check_scheme.html", {"scheme": sch, "error": error, "problems": problems,
                                                 "manage": can(actor, "check.manage"), "notice": notice,
                                                 "crumbs": crumbs}, status=status, active="schemes")


@router.get("/check-schemes/{scheme_id}", response_class=HTMLResponse)
def scheme_page(request: Request, scheme_id: int, done: str | None = Query(None, max_length=16),
                dangan: Dangan = Depends(get_dangan), actor: Actor = Depends(current_actor)) -> Response:
    return _scheme_page(request, dangan, actor, scheme_id, notice=NOTICES.get(done or "", ""))


def _param_value(raw: str, default: Any) -> Any:
    if isinstance(default, bool):
        return raw in ("1", "true", "on", "是")
    if isinstance(default, int):
        return int(raw) if raw.strip().lstrip("-").isdigit() else raw
    if isinstance(default, list):
        return [x.strip() for x in raw.replace("，", ",").replace("、", ",").split(",") if x.strip()]
    if isinstance(default, dict):
        try:
            return json.loads(raw or "{}")
        except json.JSONDecodeError:
            return raw
    return raw


@router.post("/check-schemes/{scheme_id}")
def scheme_save(request: Request, scheme_id: int, form: FormData = Depends(form_data),
                dangan: Dangan = Depends(get_dangan), actor: Actor = Depends(current_actor)) -> Response:
    require_any(request, actor, "check.manage")
    current = check_svc.get_scheme(dangan, actor, scheme_id)
    items: dict[str, Any] = {}
    for it in current["items"]:
        k = it["key"]
        setting: dict[str, Any] = {"enabled": form.get(f"{k}.enabled") == "on", "veto": form.get(f"{k}.veto") == "on",
                                   "advisory": form.get(f"{k}.advisory") == "on"}
        params = {}
        for pk, default in it["defaults"].items():
            raw = form.get(f"{k}.param.{pk}")
            if isinstance(default, bool):
                params[pk] = raw == "on"
            elif isinstance(raw, str):
                params[pk] = _param_value(raw.strip()[:2000], default)
        if params:
            setting["params"] = params
        items[k] = setting
    try:
        check_svc.save_scheme(dangan, actor, stage=current["stage"], scheme_id=scheme_id, items=items,
                              name=_text(form, "name", 100) or None)
    except PermissionDenied:
        raise
    except DanganError as e:
        return _scheme_page(request, dangan, actor, scheme_id, error=e, status=e.status, submitted=items)
    return _see_other(f"/check-schemes/{scheme_id}?done=scheme_saved")


# ---------------------------------------------------------------- 长期保存: scheduled fixity audit


@router.get("/preservation", response_class=HTMLResponse)
def preservation(request: Request, done: str | None = Query(None, max_length=16), dangan: Dangan = Depends(get_dangan),
                 actor: Actor = Depends(current_actor)) -> Response:
    require_any(request, actor, "fixity.run")
    status = fixity_audit.audit_status(dangan, actor)
    return render(request, "preservation.html", {"st": status, "notice": NOTICES.get(done or "", ""),
                                                 "last": None}, active="preservation")


@router.post("/preservation/audit", response_class=HTMLResponse)
def preservation_audit(request: Request, form: FormData = Depends(form_data), dangan: Dangan = Depends(get_dangan),
                       actor: Actor = Depends(current_actor)) -> Response:
    require_any(request, actor, "fixity.run")
    try:
        last = fixity_audit.audit_batch(dangan, actor)
        error = None
    except PermissionDenied:
        raise
    except DanganError as e:
        last, error = None, e
    status = fixity_audit.audit_status(dangan, actor)
    return render(request, "preservation.html", {"st": status, "last": last, "error": error,
                                                 "notice": NOTICES["audit_done"] if last else ""},
                  status=error.status if error else 200, active="preservation")


# ---------------------------------------------------------------- 移交与接收: receive a package


def _import_page(request: Request, dangan: Dangan, actor: Actor, *, error: DanganError | None = None,
                 values: dict[str, Any] | None = None, status: int = 200) -> Response:
    require_any(request, actor, "record.import")
    fl, cats = _fonds_and_categories(dangan, actor)
    return render(request, "package_import.html", {"fonds_list": fl, "cats": cats, "error": error,
                                                   "values": values or {}}, status=status, active="package_import")


@router.get("/packages/import", response_class=HTMLResponse)
def package_import_page(request: Request, dangan: Dangan = Depends(get_dangan),
                        actor: Actor = Depends(current_actor)) -> Response:
    return _import_page(request, dangan, actor)


@router.post("/packages/import")
def package_import(request: Request, form: FormData = Depends(form_data), dangan: Dangan = Depends(get_dangan),
                   actor: Actor = Depends(current_actor)) -> Response:
    require_any(request, actor, "record.import")
    values = {k: _text(form, k, 64) for k in ("fonds", "category", "department", "sm3")}
    upload = _upload(form, "package")
    try:
        if upload is None:
            raise ValidationFailed("请选择要接收的数据包（BagIt ZIP、DA/T 48 封装包或数据包 ZIP）", code="REQUIRED")
        if not values["fonds"] or not values["category"]:
            raise ValidationFailed("请选择接收到的全宗和门类", code="REQUIRED")
    except DanganError as e:
        return _import_page(request, dangan, actor, error=e, values=values, status=e.status)
    digests = {"sm3": values["sm3"].lower()} if values["sm3"] else None

    def run(path: Path, name: str, step: Any) -> dict[str, Any]:
        return packages.import_package(dangan, actor, path, fonds=values["fonds"], category=values["category"],
                                       department=values["department"] or None, sent_digest=digests, progress=step)

    jid = _start_package_job(request, dangan, actor, upload, "package_import",
                             {"fonds": values["fonds"], "category": values["category"]}, run)
    return _see_other(f"/checks/jobs/{jid}")
