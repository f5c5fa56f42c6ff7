"""数字化 API: scan batches (upload, QC, rescans, 抽检, OCR, 挂接), their pages (images, OCR text with boxes,
公文 suggestions confirmed by a person) and the QC report. The service checks the rights and audits."""

from __future__ import annotations

import contextlib
import uuid
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, File, Form, Query, Request, UploadFile
from fastapi.responses import FileResponse, Response, StreamingResponse
from pydantic import Field

from dangan.errors import DanganError, FieldProblem, ValidationFailed
from dangan.services import digitise as dg
from dangan.services import jobs
from dangan.services.access import require
from dangan.services.categories import get_category
from dangan.services.context import Actor, Dangan
from dangan.services.fonds import get_fonds
from dangan.web.api.bodies import Body
from dangan.web.api.capture import save_upload
from dangan.web.api.files import content_disposition
from dangan.web.deps import current_actor, get_dangan

router = APIRouter(tags=["数字化"])

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
MAX_FILES = 5000


def _runner(request: Request) -> jobs.Runner:
    return request.app.state.jobs.capture


# ---------------------------------------------------------------- intake (shared with the pages)


def start_upload(request: Request, dangan: Dangan, actor: Actor, uploads: list[Any], *, fonds: str,
                 category: str | None, year: int | None, device: str, software: str, name: str) -> str:
    """Save the uploaded files (images, scanned PDFs or ZIPs of them) and take them in as a background job.

    A ZIP is checked whole (zip-slip paths, bombs, encryption) before the job starts: a refused ZIP stores
    nothing. Returns the job id; its result names the new batch."""
    require(actor, "scan.import")
    uploads = [u for u in uploads if getattr(u, "filename", None)]
    if not uploads:
        raise ValidationFailed("请选择扫描件（图像、扫描 PDF，或它们的 ZIP 压缩包）", code="NO_SCANS",
                               problems=[FieldProblem("files", "REQUIRED", "请选择扫描件", "扫描件")])
    if len(uploads) > MAX_FILES:
        raise ValidationFailed(f"一次最多上传 {MAX_FILES} 个文件，请打包为 ZIP 或分批上传", code="TOO_MANY_FILES")
    if year is not None and not 1900 <= year <= 2999:
        raise ValidationFailed("年度应为四位数字，如 2024", code="WRONG_TYPE",
                               problems=[FieldProblem("year", "WRONG_TYPE", "年度应为四位数字", "年度")])
    with dangan.read_sessions() as s:  # an unknown fonds or category is refused now, not in a failed job
        f = get_fonds(s, fonds)
        if category:
            get_category(s, f.id, category)
    jid = uuid.uuid4().hex[:16]
    d = jobs.job_dir(dangan, jid)
    saved: list[tuple[str, Path, bool]] = []
    try:
        names: set[str] = set()
        for i, up in enumerate(uploads):
            clean = dg.clean_upload_name(up.filename or "")
            if clean is None:
                raise ValidationFailed(f"文件名“{(up.filename or '')[:100]}”不安全（含“..”、盘符或控制字符），未接收任何文件",
                                       code="UNSAFE_NAME")
            if clean in names:
                raise ValidationFailed(f"有两个文件同名：“{clean}”，未接收任何文件", code="DUPLICATE_NAME")
            names.add(clean)
            is_zip = clean.lower().endswith(".zip")
            path = d / f"{i:05d}{'.zip' if is_zip else ''}"
            save_upload(up, path)
            if is_zip:
                from dangan.capture.zipsafe import SafeZip

                with SafeZip(path):  # refuses zip-slip, bombs, encryption, duplicates before anything is stored
                    pass
            saved.append((clean, path, is_zip))
        if not any(is_zip or dg._is_image_name(clean) for clean, _, is_zip in saved):
            raise ValidationFailed("上传的文件中没有扫描图像（TIFF、JPEG、JPEG 2000、PNG、扫描 PDF）或 ZIP，未建立批次",
                                   code="NO_SCANS", problems=[FieldProblem("files", "NOT_AN_IMAGE", "不是扫描图像", "扫描件")])
    except DanganError:
        jobs.remove_workdir(dangan, jid)
        with contextlib.suppress(OSError):
            d.rmdir()
        raise
    params = {"fonds": fonds, "category": category, "year": year, "files": len(saved), "name": name}
    jobs.create_job(dangan, actor, "scan_import", params, job_id=jid)

    def work(prog: jobs.Progress) -> dict[str, Any]:
        from dangan.capture.zipsafe import SafeZip

        try:
            with contextlib.ExitStack() as stack:
                sources: list[dg.ScanSource] = []
                skipped: list[dg.Skipped] = []
                for clean, path, is_zip in saved:
                    if is_zip:
                        zf = stack.enter_context(SafeZip(path))
                        src, sk = dg.sources_from_zip(zf)
                        sources += src
                        skipped += sk
                    elif dg._is_image_name(clean):
                        sources.append(dg.ScanSource(clean, (lambda p=path: p.open("rb")), "utf-8", None,
                                                     path.stat().st_size))
                    else:
                        skipped.append(dg.Skipped(clean, "不是扫描图像（TIFF、JPEG、JPEG 2000、PNG 或扫描 PDF），未导入"))
                v = dg.import_batch(dangan, actor, sources, fonds=fonds, category=category, year=year, device=device,
                                    software=software, name=name or (saved[0][0].rsplit("/", 1)[0] if len(saved) > 1
                                                                     else saved[0][0]), skipped=skipped,
                                    progress=lambda n, t: prog.update(processed=n, total=t))
            return {"batch_id": v["id"], "files": v["summary"].get("files", 0), "pages": v["counts"]["pages"],
                    "skipped": v["summary"].get("skipped_count", 0)}
        finally:
            jobs.remove_workdir(dangan, jid)

    _runner(request).start(dangan, jid, work)
    return jid


@router.get("/scan-batches", summary="数字化批次（最新在前）")
def list_batches(status: str | None = Query(None, max_length=16, description="importing、open 待验收、accepted 已挂接"),
                 limit: int = Query(50, ge=1, le=500), dangan: Dangan = Depends(get_dangan),
                 actor: Actor = Depends(current_actor)) -> list[dict[str, Any]]:
    return dg.list_batches(dangan, actor, limit=limit, status=status)


@router.post("/scan-batches", status_code=202,
             summary="上传扫描件建立批次（图像、扫描 PDF 或 ZIP；按 <档号>-<页号> 命名），在后台导入；轮询任务得到批次编号")
def upload_batch(request: Request,
                 files: list[UploadFile] = File(description="扫描件：TIFF、JPEG、JPEG 2000、PNG、扫描 PDF，或它们的 ZIP"),
                 fonds: str = Form(max_length=16, description="全宗号"),
                 category: str | None = Form(None, max_length=16, description="门类代码（批次的范围）"),
                 year: int | None = Form(None, description="年度（批次的范围）"),
                 device: str = Form("", max_length=200, description="扫描设备"),
                 software: str = Form("", max_length=200, description="扫描软件"),
                 name: str = Form("", max_length=200, description="批次名称"),
                 dangan: Dangan = Depends(get_dangan), actor: Actor = Depends(current_actor)) -> dict[str, Any]:
    jid = start_upload(request, dangan, actor, files, fonds=fonds, category=category or None, year=year,
                       device=device, software=software, name=name)
    return {"job": jobs.get_job(dangan, actor, jid), "poll": f"/api/v1/jobs/{jid}"}


@router.get("/scan-batches/{batch_id}", summary="一个批次：计数、待解决的问题（挂接前）、抽检、每件档案的页面")
def get_batch(batch_id: int, pages: bool = Query(True, description="包含每件档案的页面"),
              dangan: Dangan = Depends(get_dangan), actor: Actor = Depends(current_actor)) -> dict[str, Any]:
    return dg.get_batch(dangan, actor, batch_id, pages=pages)


@router.get("/scan-batches/{batch_id}/status", summary="批次当前（或上一个）任务的进度")
def batch_status(batch_id: int, dangan: Dangan = Depends(get_dangan),
                 actor: Actor = Depends(current_actor)) -> dict[str, Any]:
    return dg.batch_job(dangan, actor, batch_id)


@router.get("/scan-batches/{batch_id}/report.xlsx", summary="质量检查报告（Excel）", response_class=Response)
def batch_report(batch_id: int, dangan: Dangan = Depends(get_dangan), actor: Actor = Depends(current_actor)) -> Response:
    data = dg.report_xlsx(dangan, actor, batch_id)
    return Response(data, media_type=XLSX,
                    headers={"Content-Disposition": content_disposition(f"数字化质检报告-{batch_id}.xlsx", batch_id, False)})


class JobBody(Body):
    redo: bool = Field(False, description="重新处理全部页面（默认只处理尚未处理的页面）")


@router.post("/scan-batches/{batch_id}/qc", status_code=202, summary="图像质量检查（后台任务）")
def start_qc(request: Request, batch_id: int, body: JobBody | None = None, dangan: Dangan = Depends(get_dangan),
             actor: Actor = Depends(current_actor)) -> dict[str, Any]:
    redo = bool(body and body.redo)
    jid = dg.prepare_qc(dangan, actor, batch_id, redo=redo)
    _runner(request).start(dangan, jid, dg.qc_work(dangan, actor, batch_id, redo=redo))
    return {"job": dg.batch_job(dangan, actor, batch_id), "poll": f"/api/v1/scan-batches/{batch_id}/status"}


@router.post("/scan-batches/{batch_id}/ocr", status_code=202,
             summary="OCR 文字识别并生成每件档案的可检索 PDF/A 利用副本（后台任务，页面并行）")
def start_ocr(request: Request, batch_id: int, body: JobBody | None = None, dangan: Dangan = Depends(get_dangan),
              actor: Actor = Depends(current_actor)) -> dict[str, Any]:
    redo = bool(body and body.redo)
    jid = dg.prepare_ocr(dangan, actor, batch_id, redo=redo)
    _runner(request).start(dangan, jid, dg.ocr_work(dangan, actor, batch_id, redo=redo))
    return {"job": dg.batch_job(dangan, actor, batch_id), "poll": f"/api/v1/scan-batches/{batch_id}/status"}


class SampleBody(Body):
    rate: str | float | None = Field(None, description="抽检比例：0.05 或“5%”（默认 5%，至少 1 页）")
    pass_mark: str | float | None = Field(None, description="合格率要求：0.95 或“95%”")


@router.post("/scan-batches/{batch_id}/sample", summary="抽检：按比例随机抽取页面（开始新一轮）")
def draw_sample(batch_id: int, body: SampleBody | None = None, dangan: Dangan = Depends(get_dangan),
                actor: Actor = Depends(current_actor)) -> dict[str, Any]:
    return dg.draw_sample(dangan, actor, batch_id, rate=body.rate if body else None,
                          pass_mark=body.pass_mark if body else None)


class InspectBody(Body):
    page_id: int = Field(description="样本中的页面编号")
    verdict: str = Field(max_length=8, description="合格 或 不合格")
    note: str = Field("", max_length=1000, description="说明（不合格时必填）")


@router.post("/scan-batches/{batch_id}/inspect", summary="抽检判定一页：合格或不合格（不合格的页待返工）")
def inspect(batch_id: int, body: InspectBody, dangan: Dangan = Depends(get_dangan),
            actor: Actor = Depends(current_actor)) -> dict[str, Any]:
    return dg.mark_sample(dangan, actor, batch_id, body.page_id, body.verdict, body.note)


class BlankBody(Body):
    page_id: int = Field(description="页面编号")
    blank: bool = Field(True, description="原件确为空白页")
    note: str = Field("", max_length=500)


@router.post("/scan-batches/{batch_id}/blank", summary="标记原件确为空白的页（不再作为空白页返工）")
def blank(batch_id: int, body: BlankBody, dangan: Dangan = Depends(get_dangan),
          actor: Actor = Depends(current_actor)) -> dict[str, Any]:
    return dg.declare_blank(dangan, actor, batch_id, body.page_id, body.blank, body.note)


@router.post("/scan-batches/{batch_id}/rescan", status_code=201,
             summary="返工：用重新扫描的图像（1 页）替换一页；原来的原件保留，标为已替换")
def rescan(batch_id: int, page_id: int = Form(description="要替换的页面编号"),
           file: UploadFile = File(description="重新扫描的图像"), dangan: Dangan = Depends(get_dangan),
           actor: Actor = Depends(current_actor)) -> dict[str, Any]:
    name = dg.clean_upload_name(file.filename or "") or "rescan"
    return dg.rescan_page(dangan, actor, batch_id, page_id, dg.ScanSource(name.rsplit("/", 1)[-1], lambda: file.file))


class AcceptBody(Body):
    overrides: list[str] = Field(default_factory=list, max_length=5000,
                                 description="放行的问题（其 key 见批次的 issues）；放行时须写明原因")
    reason: str = Field("", max_length=2000, description="放行的原因")


@router.post("/scan-batches/{batch_id}/accept",
             summary="挂接：扫描件成为档案的“扫描件”、PDF/A 成为“版式文件”、OCR 全文进入检索；有未解决的问题时拒绝（422）")
def accept(batch_id: int, body: AcceptBody | None = None, dangan: Dangan = Depends(get_dangan),
           actor: Actor = Depends(current_actor)) -> dict[str, Any]:
    return dg.accept_batch(dangan, actor, batch_id, overrides=body.overrides if body else [],
                           reason=body.reason if body else "")


# ---------------------------------------------------------------- pages


@router.get("/scan-pages/{page_id}", summary="一页：数字化属性、质检、OCR 文字与每行的位置；档案首页还有公文著录建议")
def page(page_id: int, dangan: Dangan = Depends(get_dangan), actor: Actor = Depends(current_actor)) -> dict[str, Any]:
    return dg.page_detail(dangan, actor, page_id)


@router.get("/scan-pages/{page_id}/image", summary="一页的利用图像（JPEG：纠偏、去黑边；原件不变）", response_class=FileResponse)
def page_image(page_id: int, dangan: Dangan = Depends(get_dangan), actor: Actor = Depends(current_actor)) -> Response:
    return FileResponse(dg.page_image(dangan, actor, page_id), media_type="image/jpeg")


@router.get("/scan-pages/{page_id}/thumb", summary="一页的缩略图（JPEG）", response_class=FileResponse)
def page_thumb(page_id: int, dangan: Dangan = Depends(get_dangan), actor: Actor = Depends(current_actor)) -> Response:
    return FileResponse(dg.page_image(dangan, actor, page_id, "thumb"), media_type="image/jpeg")


@router.get("/scan-pages/{page_id}/master", summary="下载一页所在的原件（保存的扫描文件，未经任何改动）",
            response_class=StreamingResponse)
def page_master(page_id: int, dangan: Dangan = Depends(get_dangan), actor: Actor = Depends(current_actor)) -> Response:
    view, fh = dg.open_master(dangan, actor, page_id)

    def chunks() -> Any:
        with fh:
            while b := fh.read(1 << 20):
                yield b

    return StreamingResponse(chunks(), media_type=view["media_type"] or "application/octet-stream",
                             headers={"Content-Disposition": content_disposition(view["name"], page_id, False),
                                      "Content-Length": str(view["size"]), "X-Checksum-SM3": view["sm3"],
                                      "ETag": f'"{view["sha256"]}"'})


class ConfirmBody(Body):
    values: dict[str, str] = Field(description="确认（接受或改正）的著录项：responsible、doc_number、title、date、"
                                               "security_level、secrecy_period、urgency、main_recipient")
    reason: str = Field("", max_length=2000, description="修改原因（已归档的档案必填）")
    row_version: int | None = Field(None, description="档案的版本号（防止覆盖他人的修改）")
    suggested: dict[str, str] = Field(default_factory=dict, description="系统给出的建议值（用于统计接受与改正）")


@router.post("/scan-pages/{page_id}/confirm", summary="确认公文著录：只写入本人确认的项，经档案修改的校验与审计")
def confirm(page_id: int, body: ConfirmBody, dangan: Dangan = Depends(get_dangan),
            actor: Actor = Depends(current_actor)) -> dict[str, Any]:
    return dg.confirm_metadata(dangan, actor, page_id, body.values, reason=body.reason, row_version=body.row_version,
                               suggested=body.suggested)
