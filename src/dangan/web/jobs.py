"""Long work started from the web (the fixity check) runs in a background thread; pages poll its status.

This is the simplest runner that keeps the request short. The jobs module of the core (persisted,
resumable, Celery-capable) replaces it when it lands; the status shape stays the same.
"""

from __future__ import annotations

import datetime as dt
import threading
import uuid
from dataclasses import asdict, dataclass, field
from typing import Any

from dangan.errors import DanganError
from dangan.services import fixity
from dangan.services import jobs as capture_jobs
from dangan.services.context import Actor, Dangan


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


@dataclass
class JobStatus:
    id: str
    kind: str
    state: str = "running"  # running | done | failed
    checked: int = 0
    total: int = 0
    bytes_read: int = 0
    started_at: str = field(default_factory=_now)
    finished_at: str | None = None
    record_id: int | None = None
    result: dict[str, Any] | None = None
    error: dict[str, Any] | None = None

    @property
    def percent(self) -> int:
        if self.state != "running":
            return 100
        return int(self.checked * 100 / self.total) if self.total else 0

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "percent": self.percent,
                "state_label": {"running": "进行中", "done": "已完成", "failed": "失败"}[self.state]}


class JobRunner:
    """At most one fixity check at a time per process; a second start returns the running one."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.current: JobStatus | None = None
        self._threads: list[threading.Thread] = []
        self.capture = capture_jobs.Runner()  # imports and large submissions (persisted in capture_jobs)

    def start_fixity(self, app: Dangan, actor: Actor, record_id: int | None = None) -> tuple[JobStatus, bool]:
        with self._lock:
            if self.current is not None and self.current.state == "running":
                return self.current, False
            job = JobStatus(id=uuid.uuid4().hex[:12], kind="fixity.check", record_id=record_id)
            self.current = job
        t = threading.Thread(target=self._run_fixity, args=(app, actor, job), name=f"fixity-{job.id}", daemon=True)
        self._threads.append(t)
        t.start()
        return job, True

    def _run_fixity(self, app: Dangan, actor: Actor, job: JobStatus) -> None:
        def progress(checked: int, total: int, bytes_read: int) -> None:
            job.checked, job.total, job.bytes_read = checked, total, bytes_read

        try:
            rep = fixity.check(app, actor, record_id=job.record_id, progress=progress)
            job.result = rep.as_dict()
            job.checked, job.bytes_read = rep.checked, rep.bytes_read
            job.total = max(job.total, rep.checked)
            job.state = "done"
        except DanganError as e:
            job.error, job.state = e.as_dict(), "failed"
        except Exception as e:  # a background thread must report, never die silently
            job.error, job.state = {"code": "INTERNAL_ERROR", "message": f"检测意外中止：{type(e).__name__}"}, "failed"
        finally:
            job.finished_at = _now()

    def get(self, job_id: str | None = None) -> JobStatus | None:
        job = self.current
        if job is None or (job_id and job.id != job_id):
            return None
        return job

    def join(self, timeout: float = 30) -> None:
        for t in list(self._threads):
            t.join(timeout)
        self.capture.join(timeout)
