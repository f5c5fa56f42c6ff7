"""固化信息检测: re-hash every stored file and report each missing, truncated or altered one."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select, update

from dangan.db.models import File, FixityResult, FixityRun, Record, utcnow
from dangan.errors import StorageError
from dangan.services.access import require
from dangan.services.context import Actor, Dangan
from dangan.storage.hashing import DualDigest

OUTCOME_LABELS = {"ok": "正常", "missing": "缺失", "truncated": "截断", "altered": "被篡改", "unreadable": "无法读取"}


@dataclass
class FixityFinding:
    file_id: int
    record_id: int
    archival_code: str | None
    name: str
    storage_key: str
    outcome: str
    expected: dict[str, Any]
    found: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "outcome_label": OUTCOME_LABELS[self.outcome]}


@dataclass
class FixityReport:
    run_id: int = 0
    checked: int = 0
    bytes_read: int = 0
    findings: list[FixityFinding] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.findings

    def as_dict(self) -> dict[str, Any]:
        return {"run_id": self.run_id, "ok": self.ok, "checked": self.checked, "bytes_read": self.bytes_read,
                "failed": len(self.findings), "findings": [f.as_dict() for f in self.findings]}


def verify_blob(app: Dangan, key: str, size: int, sha256: str, sm3: str) -> tuple[str, dict[str, Any], int]:
    """Re-hash one blob. Returns (outcome, what was found, bytes read)."""
    try:
        fh = app.store.open(key)
    except StorageError:
        return "missing", {"exists": False}, 0
    d = DualDigest()
    try:
        with fh:
            while True:
                b = fh.read(1024 * 1024)
                if not b:
                    break
                d.update(b)
    except OSError as e:
        return "unreadable", {"error": str(e)}, d.size
    found = {"size": d.size, "sha256": d.sha256, "sm3": d.sm3}
    if d.size < size:
        return "truncated", found, d.size
    if d.sha256 != sha256 or d.sm3 != sm3 or d.size != size:
        return "altered", found, d.size
    return "ok", found, d.size


def check(app: Dangan, actor: Actor, *, record_id: int | None = None,
          progress: Callable[[int, int, int], None] | None = None, batch: int = 500) -> FixityReport:
    """Verify all files (or one record's) in bounded batches; store the run and every failure; audit it."""
    with app.uow(actor, "fixity.check", "fixity_run") as uow:
        require(actor, "fixity.run")
        run = FixityRun(actor=actor.username)
        uow.session.add(run)
        uow.session.flush()
        run_id = run.id
    rep = FixityReport(run_id=run_id)
    with app.read_sessions() as s:
        q = select(func.count(File.id))
        if record_id is not None:
            q = q.where(File.record_id == record_id)
        total = s.scalar(q) or 0
    last = 0
    while True:
        with app.read_sessions() as s:
            q = (select(File, Record.archival_code).join(Record, Record.id == File.record_id)
                 .where(File.id > last).order_by(File.id).limit(batch))
            if record_id is not None:
                q = q.where(File.record_id == record_id)
            rows = s.execute(q).all()
        if not rows:
            break
        outcomes: dict[str, list[int]] = {}
        for f, code in rows:
            outcome, found, n = verify_blob(app, f.storage_key, f.size, f.sha256, f.sm3)
            rep.checked += 1
            rep.bytes_read += n
            outcomes.setdefault(outcome, []).append(f.id)
            if outcome != "ok":
                rep.findings.append(FixityFinding(f.id, f.record_id, code, f.name, f.storage_key, outcome,
                                                  {"size": f.size, "sha256": f.sha256, "sm3": f.sm3}, found))
            if progress:
                progress(rep.checked, total, rep.bytes_read)
        last = rows[-1][0].id
        with app.uow(actor) as uow:
            now = utcnow()
            for outcome, ids in outcomes.items():
                uow.session.execute(update(File).where(File.id.in_(ids)).values(last_fixity_at=now, last_fixity_outcome=outcome))
    with app.uow(actor, "fixity.check", "fixity_run", str(run_id)) as uow:
        run = uow.session.get(FixityRun, run_id)
        run.finished_at, run.checked, run.failed, run.bytes_read = utcnow(), rep.checked, len(rep.findings), rep.bytes_read
        for fd in rep.findings:
            uow.session.add(FixityResult(run_id=run_id, file_id=fd.file_id, outcome=fd.outcome,
                                         expected=json.dumps(fd.expected, ensure_ascii=False),
                                         found=json.dumps(fd.found, ensure_ascii=False)))
        uow.audit("fixity.check", "fixity_run", run_id, checked=rep.checked, failed=len(rep.findings),
                  outcome="ok" if rep.ok else "drift",
                  failures=[{"file_id": fd.file_id, "outcome": fd.outcome} for fd in rep.findings[:100]])
    return rep
