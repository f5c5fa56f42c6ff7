"""四性检测 and long-term preservation: check items and schemes, runs over records or an uploaded package (with
human PDF and machine JSON reports), package export and import, the scheduled fixity audit."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, File, Form, Query, Request, UploadFile
from fastapi.responses import FileResponse, Response
from pydantic import Field

from dangan.checks.engine import items_for
from dangan.errors import DanganError, ValidationFailed
from dangan.services import checks as check_svc
from dangan.services import fixity_audit, jobs, packages
from dangan.services.access import require
from dangan.services.context import Actor, Dangan
from dangan.web.api.bodies import Body
from dangan.web.api.capture import save_upload
from dangan.web.deps import current_actor, get_dangan

router = APIRouter(tags=["四性检测与长期保存"])

SYNC_RECORDS = 200  # a run over more records than this goes to the background


def _runner(request: Request) -> jobs.Runner:
    return request.app.state.jobs.capture


def _job_progress(prog: jobs.Progress) -> Any:
    def step(phase: str, n: int, total: int) -> None:
        if phase == "files":
            prog.update(total=total, processed=n)

    return step


@router.get("/check-items", summary="检测项目录（每个环节的检测项、编号、检测内容与参数）")
def check_items(stage: str = Query("归档", max_length=16, description="归档、移交与接收、长期保存"),
                actor: Actor = Depends(current_actor)) -> list[dict[str, Any]]:
    require(actor, "check.run")
    st = check_svc._stage(stage)
    return [i.describe(st) for i in items_for(st)]


@router.get("/check-schemes", summary="检测方案")
def list_schemes(dangan: Dangan = Depends(get_dangan), actor: Actor = Depends(current_actor)) -> list[dict[str, Any]]:
    return check_svc.list_schemes(dangan, actor)


@router.get("/check-schemes/{scheme_id}", summary="一个检测方案（每个检测项是否启用、是否一票否决、参数）")
def get_scheme(scheme_id: int, dangan: Dangan = Depends(get_dangan), actor: Actor = Depends(current_actor)
               ) -> dict[str, Any]:
    return check_svc.get_scheme(dangan, actor, scheme_id)


class SchemeBody(Body):
    name: str | None = Field(None, max_length=100, description="方案名称")
    stage: str | None = Field(None, max_length=16, description="环节（新建时必填）")
    category_code: str | None = Field(None, max_length=16, description="只用于该门类（新建时可选）")
    items: dict[str, Any] = Field(default_factory=dict, description="检测项键 → {enabled, veto, advisory, params}")


@router.put("/check-schemes/{scheme_id}", summary="修改检测方案（只改给出的检测项）")
def update_scheme(scheme_id: int, body: SchemeBody, dangan: Dangan = Depends(get_dangan),
                  actor: Actor = Depends(current_actor)) -> dict[str, Any]:
    current = check_svc.get_scheme(dangan, actor, scheme_id)
    return check_svc.save_scheme(dangan, actor, stage=current["stage"], scheme_id=scheme_id, items=body.items,
                                 name=body.name)


@router.post("/check-schemes", status_code=201, summary="新建检测方案（可只用于一个门类）")
def create_scheme(body: SchemeBody, dangan: Dangan = Depends(get_dangan), actor: Actor = Depends(current_actor)
                  ) -> dict[str, Any]:
    if not body.stage:
        raise ValidationFailed("请指定环节：归档、移交与接收或长期保存", code="REQUIRED")
    return check_svc.save_scheme(dangan, actor, stage=body.stage, items=body.items, name=body.name,
                                 category_code=body.category_code)


class RunBody(Body):
    stage: str = Field("长期保存", max_length=16, description="检测环节")
    record_ids: list[int] | None = Field(None, max_length=20000, description="档案编号")
    job_id: str | None = Field(None, max_length=32, description="按批次：导入或接收任务编号")
    fonds: str | None = Field(None, max_length=16)
    category: str | None = Field(None, max_length=16)
    year: int | None = Field(None, ge=1900, le=2999)
    state: str | None = Field(None, max_length=16)
    department: str | None = Field(None, max_length=32)
    scheme_id: int | None = None
    background: bool = Field(False, description="在后台检测（返回任务，可轮询进度）；超过 200 件时总在后台")


@router.post("/checks", status_code=201, summary="检测已入库的档案（单件、批次或按条件）；结果与证据全部保存")
def run_check(request: Request, body: RunBody, dangan: Dangan = Depends(get_dangan),
              actor: Actor = Depends(current_actor)) -> dict[str, Any]:
    require(actor, "check.run")
    if not (body.record_ids or body.job_id or body.fonds or body.category or body.year or body.state):
        raise ValidationFailed("请指定要检测的档案：record_ids、job_id 或 fonds/category/year 等条件", code="NOTHING_TO_CHECK")
    kw = {"stage": body.stage, "record_ids": body.record_ids, "job_id": body.job_id, "fonds": body.fonds,
          "category": body.category, "year": body.year, "state": body.state, "department": body.department,
          "scheme_id": body.scheme_id}
    if body.background or (body.record_ids is None or len(body.record_ids) > SYNC_RECORDS):
        jid = jobs.create_job(dangan, actor, "check", {k: v for k, v in kw.items() if v is not None})

        def work(prog: jobs.Progress) -> dict[str, Any]:
            run = check_svc.run_records(dangan, actor, progress=_job_progress(prog), **kw)  # type: ignore[arg-type]
            return {"check_run_id": run["id"], "verdict": run["verdict"], "target": run["target_label"]}

        if body.background or body.record_ids is None:
            _runner(request).start(dangan, jid, work)
            return {"job": jobs.get_job(dangan, actor, jid), "poll": f"/api/v1/jobs/{jid}"}
        view = jobs.run(dangan, jid, work)
        if view["status"] != "done":
            raise _job_error(view)
        return check_svc.get_run(dangan, actor, view["result"]["check_run_id"])
    return check_svc.run_records(dangan, actor, **kw)  # type: ignore[arg-type]


def _job_error(view: dict[str, Any]) -> DanganError:
    e = view.get("error") or {}
    return ValidationFailed(e.get("message", "检测失败"), code=e.get("code", "CHECK_FAILED"), detail=e.get("detail"))


def _run_upload_job(request: Request, dangan: Dangan, actor: Actor, jid: str, path: Path, work: Any) -> dict[str, Any]:
    """A large upload is worked on in the background (the answer says where to poll); a small one at once: its
    result, or its error as the answer."""
    if path.stat().st_size > dangan.settings.async_threshold:
        _runner(request).start(dangan, jid, work)
        return {"job": jobs.get_job(dangan, actor, jid), "poll": f"/api/v1/jobs/{jid}"}
    view = jobs.run(dangan, jid, work)
    if view["status"] != "done":
        raise _job_error(view)
    return view["result"]


def _save_package(dangan: Dangan, actor: Actor, upload: UploadFile, kind: str, params: dict[str, Any]) -> tuple[str, Path]:
    name = Path(upload.filename or "package").name
    suffix = ".xml" if name.lower().endswith(".xml") else ".zip"
    jid = jobs.create_job(dangan, actor, kind, {"name": name, **params})
    path = jobs.job_dir(dangan, jid) / f"package{suffix}"
    save_upload(upload, path)
    return jid, path


@router.post("/checks/package", status_code=201,
             summary="检测上传的数据包（BagIt ZIP、DA/T 48 封装包 XML、数据包 ZIP），不入库；大包转为后台任务")
def check_package(request: Request, package: UploadFile = File(description="数据包"),
                  stage: str = Form("移交与接收", max_length=16), fonds: str | None = Form(None, max_length=16),
                  category: str | None = Form(None, max_length=16), scheme_id: int | None = Form(None),
                  sm3: str | None = Form(None, max_length=64, description="发送方告知的整包 SM3"),
                  sha256: str | None = Form(None, max_length=64, description="发送方告知的整包 SHA-256"),
                  dangan: Dangan = Depends(get_dangan), actor: Actor = Depends(current_actor)) -> dict[str, Any]:
    require(actor, "check.run")
    check_svc._stage(stage)
    jid, path = _save_package(dangan, actor, package, "check", {"stage": stage})
    digests = {k: v for k, v in (("sm3", sm3), ("sha256", sha256)) if v}
    label = Path(package.filename or "package").name[:200]

    def work(prog: jobs.Progress) -> dict[str, Any]:
        try:
            run = check_svc.run_package(dangan, actor, path, stage=stage, fonds=fonds, category=category,
                                        scheme_id=scheme_id, label=label, progress=_job_progress(prog),
                                        sent_digest=digests or None)
            return {"check_run_id": run["id"], "verdict": run["verdict"], "target": run["target_label"]}
        finally:
            jobs.remove_workdir(dangan, jid)

    done = _run_upload_job(request, dangan, actor, jid, path, work)
    return done if "poll" in done else check_svc.get_run(dangan, actor, done["check_run_id"])


@router.get("/checks", summary="检测记录（最新在前；只含您有权查看的）")
def list_checks(stage: str | None = Query(None, max_length=16), record_id: int | None = Query(None),
                verdict: str | None = Query(None, max_length=8), before_id: int | None = Query(None),
                limit: int = Query(50, ge=1, le=200), dangan: Dangan = Depends(get_dangan),
                actor: Actor = Depends(current_actor)) -> dict[str, Any]:
    return check_svc.list_runs(dangan, actor, stage=stage, record_id=record_id, verdict=verdict, before_id=before_id,
                               limit=limit)


@router.get("/checks/{run_id}", summary="一次检测的机读报告（JSON：汇总、每个检测项、证据）")
def get_check(run_id: int, dangan: Dangan = Depends(get_dangan), actor: Actor = Depends(current_actor)) -> dict[str, Any]:
    return check_svc.get_run(dangan, actor, run_id)


@router.get("/checks/{run_id}/report.pdf", summary="四性检测报告（PDF，可打印签字）")
def check_report_pdf(run_id: int, dangan: Dangan = Depends(get_dangan), actor: Actor = Depends(current_actor)) -> Response:
    from urllib.parse import quote

    from dangan.outputs.check_report import report_pdf

    run = check_svc.get_run(dangan, actor, run_id)
    pdf = report_pdf(run)
    name = f"四性检测报告-{run_id}.pdf"
    return Response(pdf, media_type="application/pdf",
                    headers={"Content-Disposition": f"attachment; filename*=UTF-8''{quote(name)}"})


@router.get("/checks/{run_id}/compare", summary="与同一对象的上一次（或指定的）检测比较")
def compare_check(run_id: int, other: int | None = Query(None, description="比较的检测编号（默认上一次）"),
                  dangan: Dangan = Depends(get_dangan), actor: Actor = Depends(current_actor)) -> dict[str, Any]:
    return check_svc.compare_runs(dangan, actor, run_id, other)


# ---------------------------------------------------------------- packages


class ExportBody(Body):
    record_ids: list[int] = Field(min_length=1, max_length=10000, description="要导出的档案编号")
    format: str = Field("eep", max_length=8, description="eep（DA/T 48，SM2 签名）或 bagit（含 METS/PREMIS）")


@router.post("/packages/export", summary="导出封装包：一件为 .xml，多件为 ZIP；BagIt 为 ZIP")
def export_package(body: ExportBody, dangan: Dangan = Depends(get_dangan), actor: Actor = Depends(current_actor)
                   ) -> FileResponse:
    from urllib.parse import quote

    d = dangan.settings.data_dir / "exports" / uuid.uuid4().hex[:12]
    d.mkdir(parents=True, exist_ok=True)
    res = packages.export_records(dangan, actor, body.record_ids, body.format, d / f"dangan-{body.format}")
    path = Path(res["path"])
    return FileResponse(path, media_type="application/xml" if path.suffix == ".xml" else "application/zip",
                        headers={"Content-Disposition": f"attachment; filename*=UTF-8''{quote(path.name)}",
                                 "X-Checksum-SM3": res["sm3"], "ETag": f'"{res["sha256"]}"'})


@router.post("/packages/import", status_code=201,
             summary="导入数据包：先做移交与接收检测，通过后才接收（档案为待归档）；不通过时返回检测报告编号")
def import_package(request: Request, package: UploadFile = File(description="数据包"),
                   fonds: str = Form(max_length=16), category: str = Form(max_length=16),
                   department: str | None = Form(None, max_length=32),
                   sm3: str | None = Form(None, max_length=64), sha256: str | None = Form(None, max_length=64),
                   dangan: Dangan = Depends(get_dangan), actor: Actor = Depends(current_actor)) -> dict[str, Any]:
    require(actor, "record.import")
    jid, path = _save_package(dangan, actor, package, "package_import", {"fonds": fonds, "category": category})
    digests = {k: v for k, v in (("sm3", sm3), ("sha256", sha256)) if v}

    def work(prog: jobs.Progress) -> dict[str, Any]:
        try:
            return packages.import_package(dangan, actor, path, fonds=fonds, category=category, department=department,
                                           sent_digest=digests or None, progress=_job_progress(prog))
        finally:
            jobs.remove_workdir(dangan, jid)

    return _run_upload_job(request, dangan, actor, jid, path, work)


# ---------------------------------------------------------------- scheduled fixity audit


@router.get("/fixity/audit", tags=["固化检测"], summary="定期固化信息巡检的状态（周期内已复核、逾期、未复核、未解决的偏差）")
def fixity_audit_status(dangan: Dangan = Depends(get_dangan), actor: Actor = Depends(current_actor)) -> dict[str, Any]:
    return fixity_audit.audit_status(dangan, actor)


class AuditBody(Body):
    limit: int | None = Field(None, ge=1, le=100000, description="本批最多复核多少个文件（默认按周期计算）")


@router.post("/fixity/audit", tags=["固化检测"], summary="立即运行一批固化信息巡检（逾期最久的文件优先；有副本时自动修复）")
def fixity_audit_run(body: AuditBody | None = None, dangan: Dangan = Depends(get_dangan),
                     actor: Actor = Depends(current_actor)) -> dict[str, Any]:
    return fixity_audit.audit_batch(dangan, actor, limit=body.limit if body else None)
