"""收集与整理: submission packages (ZIP, EEP), batch import jobs, filing plans, review and acceptance,
arrangement, the retention schedule, and the printed outputs (归档文件目录, 归档章, 案卷封面/卷内目录/备考表)."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, File, Form, Query, Request, UploadFile
from fastapi.responses import FileResponse, Response, StreamingResponse
from pydantic import Field

from dangan.errors import NotFound, ValidationFailed
from dangan.services import capture, imports, jobs, outputs, prefiling, schedule
from dangan.services.access import require
from dangan.services.context import Actor, Dangan
from dangan.web.api.bodies import Body
from dangan.web.deps import current_actor, get_dangan

router = APIRouter(tags=["收集与整理"])

MAX_UPLOAD = 20 * 2**30


def save_upload(upload: UploadFile, dest: Path, limit: int = MAX_UPLOAD) -> int:
    """Stream an upload to the job folder; refuse it past `limit` bytes."""
    n = 0
    with open(dest, "wb") as out:
        while chunk := upload.file.read(1 << 20):
            n += len(chunk)
            if n > limit:
                out.close()
                dest.unlink(missing_ok=True)
                raise ValidationFailed(f"上传的文件超过 {limit // 2**30} GB", code="UPLOAD_TOO_LARGE")
            out.write(chunk)
    return n


def _runner(request: Request) -> jobs.Runner:
    return request.app.state.jobs.capture


# ---------------------------------------------------------------- submission packages


@router.post("/submissions/package", status_code=201,
             summary="提交数据包（ZIP：manifest.json + 电子文件）；整包校验，有任何问题则不接收；大包转为后台任务")
def submit_package(request: Request, package: UploadFile = File(description="ZIP 数据包，根目录含 manifest.json"),
                   dry_run: bool = Form(False, description="只校验，不接收"),
                   dangan: Dangan = Depends(get_dangan), actor: Actor = Depends(current_actor)) -> dict[str, Any]:
    require(actor, "record.create")
    jid = jobs.create_job(dangan, actor, "submit_zip", {"name": package.filename or "", "dry_run": dry_run})
    path = jobs.job_dir(dangan, jid) / "package.zip"
    size = save_upload(package, path)

    def work(prog: jobs.Progress) -> dict[str, Any]:
        try:
            return capture.submit_package(dangan, actor, path, dry_run=dry_run)
        finally:
            jobs.remove_workdir(dangan, jid)

    if size > dangan.settings.async_threshold:
        _runner(request).start(dangan, jid, work)
        return {"job": jobs.get_job(dangan, actor, jid), "poll": f"/api/v1/jobs/{jid}"}
    view = jobs.run(dangan, jid, work)
    if view["status"] == "failed" and view["error"]:
        raise _error(view["error"])
    return view["result"]


def _error(err: dict[str, Any]) -> ValidationFailed:
    from dangan.errors import FieldProblem

    e = ValidationFailed(err.get("message", ""), code=err.get("code", "ERROR"),
                         problems=[FieldProblem(p.get("field", ""), p.get("code", ""), p.get("message", ""),
                                                p.get("label", "")) for p in err.get("problems", [])],
                         detail=err.get("detail"))
    if err.get("code") in ("PERMISSION_DENIED",):
        e.status = 403
    return e


@router.post("/submissions/eep", status_code=201, summary="提交 DA/T 48 电子文件封装包（EEP，XML）")
def submit_eep(eep: UploadFile = File(description="EEP 封装包（XML）"),
               category: str | None = Form(None, max_length=16, description="接收到的门类，如 WS（令牌只限一个门类时可省略）"),
               fonds: str | None = Form(None, max_length=16, description="全宗号（默认取封装包中的全宗号）"),
               department: str | None = Form(None, max_length=100),
               state: str = Form("pre_filing", max_length=16),
               dangan: Dangan = Depends(get_dangan), actor: Actor = Depends(current_actor)) -> dict[str, Any]:
    require(actor, "record.create")
    return capture.submit_eep(dangan, actor, eep.file, category=category, fonds=fonds, department=department,
                              state=state)


# ---------------------------------------------------------------- jobs and imports


@router.get("/jobs", summary="我发起的导入与接收任务")
def list_jobs(limit: int = Query(20, ge=1, le=200), dangan: Dangan = Depends(get_dangan),
              actor: Actor = Depends(current_actor)) -> list[dict[str, Any]]:
    return jobs.list_jobs(dangan, actor, limit)


@router.get("/jobs/{job_id}", summary="任务进度与结果（轮询）")
def get_job(job_id: str, dangan: Dangan = Depends(get_dangan), actor: Actor = Depends(current_actor)) -> dict[str, Any]:
    return jobs.get_job(dangan, actor, job_id)


@router.get("/jobs/{job_id}/report", summary="下载导入校验报告（Excel）")
def job_report(job_id: str, dangan: Dangan = Depends(get_dangan), actor: Actor = Depends(current_actor)) -> FileResponse:
    job = jobs.get_job(dangan, actor, job_id)
    path = dangan.settings.data_dir / "capture" / job_id / "report.xlsx"
    if not job["finished"] or not path.is_file():
        raise NotFound("该任务没有校验报告（尚未完成或未生成）", code="REPORT_NOT_FOUND")
    return FileResponse(path, filename=f"导入校验报告-{job_id}.xlsx",
                        media_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")


def start_import(request: Request, dangan: Dangan, actor: Actor, catalogue: UploadFile, files: UploadFile | None,
                 fonds: str, category: str, department: str | None, state: str, dry_run: bool) -> dict[str, Any]:
    """Save the uploads in a job folder and run the import (or dry run) in the background."""
    require(actor, "record.import")
    if not (catalogue.filename or "").lower().endswith((".xlsx", ".xlsm")):
        raise ValidationFailed("目录应为 Excel 工作簿（.xlsx）", code="XLSX_MALFORMED")
    jid = uuid.uuid4().hex[:16]
    d = jobs.job_dir(dangan, jid)
    try:  # the uploads first: a failed upload leaves no job behind
        save_upload(catalogue, d / "catalogue.xlsx")
        files_path = None
        if files is not None and files.filename:
            files_path = d / "files.zip"
            save_upload(files, files_path)
    except BaseException:
        jobs.remove_workdir(dangan, jid)
        d.rmdir()
        raise
    spec = imports.ImportSpec(fonds, category, d / "catalogue.xlsx", files_path, department=department or None,
                              state=state)
    params = {**spec.as_params(), "catalogue_name": catalogue.filename, "files_name": files.filename if files else None,
              "dry_run": dry_run}
    jobs.create_job(dangan, actor, "dry_run" if dry_run else "import", params, job_id=jid)
    _runner(request).start(dangan, jid, import_work(dangan, actor, spec, dry_run, d / "report.xlsx"))
    return jobs.get_job(dangan, actor, jid)


def import_work(dangan: Dangan, actor: Actor, spec: imports.ImportSpec, dry_run: bool, report: Path) -> Any:
    def work(prog: jobs.Progress) -> dict[str, Any]:
        res = imports.run_import(dangan, actor, spec, dry_run=dry_run, report=report,
                                 progress=lambda v: prog.update(**v))
        prog.update(force=True, total=res.rows, processed=res.rows, created=res.created, existing=res.existing,
                    failed=res.failed)
        out = res.as_dict()
        out["report"] = bool(res.report)
        return out
    return work


@router.post("/imports", status_code=202, summary="批量导入：Excel 归档文件目录 + 电子文件（ZIP）；后台任务，可轮询进度")
def create_import(request: Request, catalogue: UploadFile = File(description="归档文件目录（.xlsx）"),
                  files: UploadFile | None = File(None, description="电子文件（ZIP，按文件名或档号挂接）"),
                  fonds: str = Form(max_length=16), category: str = Form(max_length=16),
                  department: str | None = Form(None, max_length=100, description="目录中没有“机构”列时使用"),
                  state: str = Form("pre_filing", max_length=16),
                  dry_run: bool = Form(False, description="只校验并生成报告，不入库"),
                  dangan: Dangan = Depends(get_dangan), actor: Actor = Depends(current_actor)) -> dict[str, Any]:
    return start_import(request, dangan, actor, catalogue, files, fonds, category, department, state, dry_run)


@router.post("/jobs/{job_id}/resume", status_code=202, summary="继续一个中断的导入（已导入的行不会重复导入）")
def resume_job(request: Request, job_id: str, dangan: Dangan = Depends(get_dangan),
               actor: Actor = Depends(current_actor)) -> dict[str, Any]:
    return resume_import(request, dangan, actor, job_id)


def resume_import(request: Request, dangan: Dangan, actor: Actor, job_id: str) -> dict[str, Any]:
    """Run an interrupted or failed import again in the background (shared by the API and the job page)."""
    job = jobs.get_job(dangan, actor, job_id)
    if job["kind"] != "import" or job["status"] not in ("interrupted", "failed"):
        raise ValidationFailed("只有中断或失败的导入任务可以继续", code="JOB_NOT_RESUMABLE")
    spec = imports.ImportSpec.from_params(job["params"])
    d = jobs.job_dir(dangan, job_id)
    _runner(request).start(dangan, job_id, import_work(dangan, actor, spec, False, d / "report.xlsx"))
    return jobs.get_job(dangan, actor, job_id)


# ---------------------------------------------------------------- plans, review, acceptance, arrangement


class PlanCreate(Body):
    fonds: str = Field(max_length=16)
    department: str = Field(max_length=100, description="机构代码")
    category: str = Field(max_length=16)
    year: int = Field(description="年度")
    deadline: str = Field(max_length=10, description="截止日期，如 2025-03-31")
    expected_count: int | None = Field(None, description="应归档件数（可不填）")
    note: str = Field("", max_length=1000)


class PlanUpdate(Body):
    deadline: str | None = Field(None, max_length=10)
    expected_count: int | None = None
    note: str | None = Field(None, max_length=1000)


@router.get("/plans", summary="年度归档计划与进度（部门档案员只看到本部门的）")
def list_plans(fonds: str | None = Query(None, max_length=16), year: int | None = Query(None, ge=1900, le=2999),
               dangan: Dangan = Depends(get_dangan), actor: Actor = Depends(current_actor)) -> list[dict[str, Any]]:
    return prefiling.list_plans(dangan, actor, fonds, year)


@router.post("/plans", status_code=201, summary="制定年度归档计划")
def create_plan(body: PlanCreate, dangan: Dangan = Depends(get_dangan),
                actor: Actor = Depends(current_actor)) -> dict[str, Any]:
    return prefiling.create_plan(dangan, actor, body.fonds, body.department, body.category, body.year, body.deadline,
                                 body.expected_count, body.note)


@router.patch("/plans/{plan_id}", summary="修改归档计划")
def update_plan(plan_id: int, body: PlanUpdate, dangan: Dangan = Depends(get_dangan),
                actor: Actor = Depends(current_actor)) -> dict[str, Any]:
    changes = body.model_dump(exclude_unset=True)
    return prefiling.update_plan(dangan, actor, plan_id, deadline=changes.get("deadline"),
                                 expected_count=changes.get("expected_count", ...), note=changes.get("note"))


@router.delete("/plans/{plan_id}", status_code=204, summary="删除归档计划")
def delete_plan(plan_id: int, dangan: Dangan = Depends(get_dangan), actor: Actor = Depends(current_actor)) -> None:
    prefiling.delete_plan(dangan, actor, plan_id)


@router.get("/reminders", summary="临近截止或已逾期的归档计划")
def reminders(dangan: Dangan = Depends(get_dangan), actor: Actor = Depends(current_actor)) -> list[dict[str, Any]]:
    return prefiling.reminders(dangan, actor)


@router.get("/review-queue", summary="待接收（待归档）的档案，按整理顺序")
def review_queue(fonds: str | None = Query(None, max_length=16), category: str | None = Query(None, max_length=16),
                 department: str | None = Query(None, max_length=100), limit: int = Query(500, ge=1, le=5000),
                 dangan: Dangan = Depends(get_dangan), actor: Actor = Depends(current_actor)) -> dict[str, Any]:
    return prefiling.queue(dangan, actor, fonds, category, department, limit)


class IdsBody(Body):
    record_ids: list[int] = Field(min_length=1, max_length=prefiling.MAX_BATCH)


@router.post("/accept", summary="接收归档：按整理顺序赋予档号；逐件报告未接收的原因")
def accept(body: IdsBody, dangan: Dangan = Depends(get_dangan), actor: Actor = Depends(current_actor)) -> dict[str, Any]:
    return prefiling.accept(dangan, actor, body.record_ids)


@router.put("/arrangement", summary="调整未归档档案的排列顺序（按给出的顺序编件号）")
def arrange(body: IdsBody, dangan: Dangan = Depends(get_dangan),
            actor: Actor = Depends(current_actor)) -> list[dict[str, Any]]:
    return prefiling.set_order(dangan, actor, body.record_ids)


@router.post("/arrangement/auto", summary="按日期、重要程度自动排列")
def auto_arrange(body: IdsBody, dangan: Dangan = Depends(get_dangan),
                 actor: Actor = Depends(current_actor)) -> list[dict[str, Any]]:
    return prefiling.auto_order(dangan, actor, body.record_ids)


# ---------------------------------------------------------------- retention schedule


class ScheduleBody(Body):
    rules: list[dict[str, Any]] = Field(max_length=500)


class SuggestBody(Body):
    fonds: str = Field(max_length=16)
    category: str = Field(max_length=16)
    department: str | None = Field(None, max_length=100)
    metadata: dict[str, Any]


@router.get("/fonds/{fonds_code}/categories/{category_code}/schedule", summary="归档范围和保管期限表")
def get_schedule(fonds_code: str, category_code: str, dangan: Dangan = Depends(get_dangan),
                 actor: Actor = Depends(current_actor)) -> dict[str, Any]:
    return schedule.get_schedule(dangan, actor, fonds_code, category_code)


@router.put("/fonds/{fonds_code}/categories/{category_code}/schedule", summary="修改归档范围和保管期限表（整表替换）")
def put_schedule(fonds_code: str, category_code: str, body: ScheduleBody, dangan: Dangan = Depends(get_dangan),
                 actor: Actor = Depends(current_actor)) -> dict[str, Any]:
    return schedule.set_schedule(dangan, actor, fonds_code, category_code, body.rules)


@router.post("/retention/suggest", summary="按保管期限表建议保管期限（著录时显示）")
def suggest(body: SuggestBody, dangan: Dangan = Depends(get_dangan),
            actor: Actor = Depends(current_actor)) -> dict[str, Any]:
    return {"suggestion": schedule.suggest_retention(dangan, actor, body.fonds, body.category, body.metadata,
                                                     body.department)}


# ---------------------------------------------------------------- printed outputs


def attachment(name: str) -> dict[str, str]:
    from urllib.parse import quote

    return {"Content-Disposition": f"attachment; filename*=UTF-8''{quote(name)}"}


@router.get("/catalogue", summary="归档文件目录（Excel 或 PDF；只含您有权查看的已归档档案，按档号排列）")
def catalogue(fonds: str = Query(max_length=16), category: str | None = Query(None, max_length=16),
              year: int | None = Query(None, ge=1900, le=2999), retention_period: str | None = Query(None, max_length=16),
              department: str | None = Query(None, max_length=100), format: str = Query("xlsx", pattern="^(xlsx|pdf)$"),
              dangan: Dangan = Depends(get_dangan), actor: Actor = Depends(current_actor)) -> StreamingResponse:
    from dangan.services.records import RecordFilter

    flt = RecordFilter(fonds=fonds, category=category, year=year, retention_period=retention_period,
                       department=department, level="item")
    stream, media, name = outputs.catalogue(dangan, actor, flt, format)
    return StreamingResponse(stream, media_type=media, headers=attachment(name))


@router.get("/records/{record_id}/stamp", summary="归档章（PNG 图像或 PDF，供纸质文件打印加盖）")
def record_stamp(record_id: int, format: str = Query("png", pattern="^(png|pdf)$"), dangan: Dangan = Depends(get_dangan),
                 actor: Actor = Depends(current_actor)) -> Response:
    data, media = outputs.stamp(dangan, actor, record_id, format)
    return Response(data, media_type=media)


@router.get("/files/{file_id}/stamped", summary="加盖归档章的 PDF 副本（原件不变）")
def stamped(file_id: int, dangan: Dangan = Depends(get_dangan), actor: Actor = Depends(current_actor)) -> StreamingResponse:
    stream, name = outputs.stamped_copy(dangan, actor, file_id)
    return StreamingResponse(stream, media_type="application/pdf", headers=attachment(name))


@router.get("/records/{record_id}/volume/{kind}", summary="案卷封面 cover、卷内目录 contents、备考表 notes（PDF）")
def volume(record_id: int, kind: str, dangan: Dangan = Depends(get_dangan),
           actor: Actor = Depends(current_actor)) -> Response:
    data, name = outputs.volume_pdf(dangan, actor, record_id, kind)
    return Response(data, media_type="application/pdf", headers=attachment(name))
