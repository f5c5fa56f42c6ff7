"""Capture jobs: long imports and large submissions, run in the background, with their progress kept in the database.

A job row says what was asked (kind, params), by whom, how far it got and how it ended. The work runs in a
thread of the process that accepted it (the embedded default needs no broker); its progress is written to
the row at most twice a second, so a web page or an API client polls `GET /api/v1/jobs/{id}`.

A process that dies leaves its jobs "running": the next start marks them "interrupted", and running the job
again resumes it, because capture is idempotent (every row carries a sender_ref derived from its source):
what was stored is skipped, never stored twice.
"""

from __future__ import annotations

import shutil
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import select, update

from dangan.db.models import CaptureJob, utcnow
from dangan.errors import DanganError, NotFound
from dangan.services.context import Actor, Dangan
from dangan.services.views import iso

STATUS_LABELS = {"queued": "排队中", "running": "进行中", "done": "已完成", "failed": "失败", "interrupted": "已中断"}
KIND_LABELS = {"import": "批量导入", "dry_run": "导入预检（不入库）", "submit_zip": "接收数据包", "submit_eep": "接收封装包",
               "check": "四性检测", "package_import": "导入数据包（移交与接收）",
               "reindex": "重建检索索引"}
_PROGRESS_EVERY = 0.5  # seconds between progress writes


class Progress:
    """Handed to the work: `update(processed=..., created=...)` as it goes; written to the row now and then."""

    def __init__(self, app: Dangan, job_id: str) -> None:
        self.app, self.job_id = app, job_id
        self.values: dict[str, Any] = {}
        self._last = 0.0

    def update(self, force: bool = False, **values: Any) -> None:
        self.values.update(values)
        now = time.monotonic()
        if force or now - self._last >= _PROGRESS_EVERY:
            self._last = now
            cols = {k: v for k, v in self.values.items() if k in ("total", "processed", "created", "existing", "failed")}
            if cols:
                with self.app.sessions.begin() as s:
                    s.execute(update(CaptureJob).where(CaptureJob.id == self.job_id).values(**cols))


def job_dir(app: Dangan, job_id: str) -> Path:
    """The job's working folder (uploaded package, catalogue, report) under the data folder."""
    d = app.settings.data_dir / "capture" / job_id
    d.mkdir(parents=True, exist_ok=True)
    return d


def create_job(app: Dangan, actor: Actor, kind: str, params: dict[str, Any], job_id: str | None = None) -> str:
    jid = job_id or uuid.uuid4().hex[:16]
    with app.sessions.begin() as s:
        s.add(CaptureJob(id=jid, kind=kind, status="queued", actor=actor.username, params=params, result={}))
    return jid


def run(app: Dangan, job_id: str, work: Callable[[Progress], dict[str, Any]]) -> dict[str, Any]:
    """Run the work in this thread, keeping the job row up to date; returns the job view at the end."""
    with app.sessions.begin() as s:
        s.execute(update(CaptureJob).where(CaptureJob.id == job_id)
                  .values(status="running", started_at=utcnow(), error=None, finished_at=None))
    prog = Progress(app, job_id)
    status, result, error = "failed", {}, None
    try:
        result = work(prog)
        status = "done"
    except DanganError as e:
        error = e.as_dict()
    except Exception as e:  # a background job must end with a status, never vanish
        error = {"code": "INTERNAL_ERROR", "message": f"任务意外中止：{type(e).__name__}: {str(e)[:200]}"}
        if threading.current_thread() is threading.main_thread():
            _finish(app, job_id, prog, status, result, error)
            raise
    _finish(app, job_id, prog, status, result, error)
    return _view_by_id(app, job_id)


def _finish(app: Dangan, job_id: str, prog: Progress, status: str, result: dict[str, Any],
            error: dict[str, Any] | None) -> None:
    cols = {k: v for k, v in prog.values.items() if k in ("total", "processed", "created", "existing", "failed")}
    with app.sessions.begin() as s:
        s.execute(update(CaptureJob).where(CaptureJob.id == job_id)
                  .values(status=status, result=result, error=error, finished_at=utcnow(), **cols))


class Runner:
    """Background threads for jobs started from the web or the API (one process)."""

    def __init__(self) -> None:
        self._threads: list[threading.Thread] = []

    def start(self, app: Dangan, job_id: str, work: Callable[[Progress], dict[str, Any]]) -> None:
        t = threading.Thread(target=run, args=(app, job_id, work), name=f"capture-{job_id}", daemon=True)
        self._threads.append(t)
        t.start()

    def join(self, timeout: float = 60) -> None:
        for t in list(self._threads):
            t.join(timeout)
        self._threads = [t for t in self._threads if t.is_alive()]


def mark_interrupted(app: Dangan) -> int:
    """At start-up: jobs left running by a process that died are interrupted (and may be resumed)."""
    with app.sessions.begin() as s:
        res = s.execute(update(CaptureJob).where(CaptureJob.status.in_(("running", "queued")))
                        .values(status="interrupted", finished_at=utcnow()))
        return int(res.rowcount or 0)


def _view(j: CaptureJob) -> dict[str, Any]:
    total = j.total or 0
    done = j.status == "done"
    return {
        "id": j.id, "kind": j.kind, "kind_label": KIND_LABELS.get(j.kind, j.kind), "status": j.status,
        "status_label": STATUS_LABELS.get(j.status, j.status), "actor": j.actor, "params": j.params,
        "total": total, "processed": j.processed, "created": j.created, "existing": j.existing, "failed": j.failed,
        "percent": 100 if done else (int(j.processed * 100 / total) if total else 0),
        "result": j.result, "error": j.error, "created_at": iso(j.created_at), "started_at": iso(j.started_at),
        "finished_at": iso(j.finished_at), "finished": j.status in ("done", "failed", "interrupted"),
    }


def _view_by_id(app: Dangan, job_id: str) -> dict[str, Any]:
    with app.read_sessions() as s:
        j = s.get(CaptureJob, job_id)
        assert j is not None
        return _view(j)


def get_job(app: Dangan, actor: Actor, job_id: str) -> dict[str, Any]:
    """A job is seen by the person who started it (and the system operator); to others it does not exist."""
    with app.read_sessions() as s:
        j = s.get(CaptureJob, job_id)
        if j is None or (j.actor != actor.username and not actor.superuser):
            raise NotFound(f"任务 {job_id} 不存在", code="JOB_NOT_FOUND")
        return _view(j)


def list_jobs(app: Dangan, actor: Actor, limit: int = 20) -> list[dict[str, Any]]:
    with app.read_sessions() as s:
        q = select(CaptureJob).order_by(CaptureJob.created_at.desc()).limit(max(1, min(limit, 200)))
        if not actor.superuser:
            q = q.where(CaptureJob.actor == actor.username)
        return [_view(j) for j in s.scalars(q)]


def remove_workdir(app: Dangan, job_id: str, keep: tuple[str, ...] = ()) -> None:
    """Delete the uploaded package of a finished job (the report is kept)."""
    d = app.settings.data_dir / "capture" / job_id
    if not d.is_dir():
        return
    for p in d.iterdir():
        if p.name in keep:
            continue
        if p.is_dir():
            shutil.rmtree(p, ignore_errors=True)
        else:
            p.unlink(missing_ok=True)
