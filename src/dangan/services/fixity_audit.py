"""长期保存: the scheduled fixity audit, repair of drift from the replica store, and seeding the replica.

`fixity check` re-reads everything at once; the audit spreads the same work over time instead: every
`fixity_audit_interval_minutes` one bounded batch of the most overdue files (never verified first, then the
oldest `last_fixity_at`) is re-hashed, sized so that every file is re-verified within `fixity_cycle_days`:

    batch = max(MIN_BATCH, ceil(files / (cycle_days * 24 * 60 / interval_minutes)))

Drift (a blob missing, truncated, altered or unreadable) is repaired when a replica store is configured
(`replica_storage_url`): the replica's copy is streamed into the primary store's `replace_corrupt`, which
hashes it while spooling and writes it back atomically only if its SHA-256, SM3 and size are the recorded
ones; the file is then re-verified from the primary store. A replica copy that is bad too (or none at all)
is never written: the drift stays reported. Every batch is one FixityRun(kind="audit") with a FixityResult
per drifted file and one audit event; every repair attempt is an audit event of its own ("fixity.repair").

Two batches never run at once: a batch holds an exclusive lock (a file lock in the data folder; on
PostgreSQL also an advisory lock, so servers sharing the database exclude each other); a second caller gets
Conflict(FIXITY_AUDIT_RUNNING) and the scheduler just skips that turn.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import json
import logging
import math
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine, func, select, text, update

from dangan.db.models import File, FixityResult, FixityRun, Record, utcnow
from dangan.errors import ConfigError, Conflict, DanganError, StorageError
from dangan.services.access import require
from dangan.services.context import Actor, Dangan, record_failure
from dangan.services.fixity import OUTCOME_LABELS, verify_blob
from dangan.storage import BlobStore, open_store

log = logging.getLogger("dangan.fixity_audit")

MIN_BATCH = 50
DEFAULT_INTERVAL_MINUTES = 60  # for batch sizing when the scheduler is switched off (interval 0)
REPAIRABLE = frozenset({"missing", "truncated", "altered", "unreadable"})
PAGE = 1000
PG_LOCK_KEY = 0x64616E67616E  # "dangan": pg_try_advisory_lock key of the audit
Progress = Callable[[int, int, int], None]  # (done, total, bytes)


# ---------------------------------------------------------------- sizing and order


def runs_per_cycle(settings: Any) -> int:
    interval = settings.fixity_audit_interval_minutes
    if interval <= 0:
        interval = DEFAULT_INTERVAL_MINUTES
    return max(1, (max(1, settings.fixity_cycle_days) * 24 * 60) // interval)


def batch_size(total: int, settings: Any) -> int:
    """Files per batch so that `total` files are all re-verified within one cycle."""
    return max(MIN_BATCH, math.ceil(total / runs_per_cycle(settings)))


def _due(app: Dangan, n: int) -> list[tuple[File, str | None]]:
    """The n most overdue files: never verified (by id), then the oldest verification (two index-friendly queries)."""
    base = select(File, Record.archival_code).join(Record, Record.id == File.record_id)
    with app.read_sessions() as s:
        rows = [tuple(r) for r in s.execute(base.where(File.last_fixity_at.is_(None)).order_by(File.id).limit(n))]
        if len(rows) < n:
            rows += [tuple(r) for r in s.execute(base.where(File.last_fixity_at.is_not(None))
                                                 .order_by(File.last_fixity_at, File.id).limit(n - len(rows)))]
    return rows  # type: ignore[return-value]


# ---------------------------------------------------------------- exclusion


@contextlib.contextmanager
def _exclusive(app: Dangan) -> Iterator[bool]:
    """Yields True when this caller may run a batch now (no other thread, process or server is running one)."""
    path = app.settings.data_dir / "tmp" / "fixity-audit.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a+b") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            with _pg_lock(app.engine) as got:
                yield got
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def audit_running(app: Dangan) -> bool:
    """Is a batch running now (in this process, another one on this machine, or a server on the same database)?"""
    with _exclusive(app) as free:
        return not free


@contextlib.contextmanager
def _pg_lock(engine: Engine) -> Iterator[bool]:
    if engine.dialect.name != "postgresql":
        yield True
        return
    with engine.connect() as conn:
        got = bool(conn.scalar(text("SELECT pg_try_advisory_lock(:k)"), {"k": PG_LOCK_KEY}))
        conn.commit()
        try:
            yield got
        finally:
            if got:
                conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": PG_LOCK_KEY})
                conn.commit()


def _guard(app: Dangan, actor: Actor, action: str) -> None:
    try:
        require(actor, "fixity.run")
    except DanganError as e:
        record_failure(app, actor, action, "fixity_run", "", e)
        raise


# ---------------------------------------------------------------- replica and repair


def _redact(url: str) -> str:
    from dangan.services.setup import _redact as redact

    return redact(url)


def open_replica(app: Dangan) -> BlobStore | None:
    """The replica store named by `replica_storage_url`, or None. Raises ConfigError for a bad URL."""
    url = (app.settings.replica_storage_url or "").strip()
    return open_store(url, app.settings) if url else None


@dataclass
class _Replica:
    """Opened on first need; a bad URL becomes a note on every repair instead of stopping the audit."""

    app: Dangan
    store: BlobStore | None = None
    error: str = ""
    opened: bool = False

    @property
    def url(self) -> str:
        return _redact(self.app.settings.replica_storage_url or "")

    def get(self) -> BlobStore | None:
        if not self.opened:
            self.opened = True
            try:
                self.store = open_replica(self.app)
            except DanganError as e:
                self.error = e.message
        return self.store


@dataclass
class Repair:
    repaired: bool
    note: str
    detail: dict[str, Any] = field(default_factory=dict)


def _repair(app: Dangan, replica: _Replica, f: File, outcome: str) -> Repair:
    """Fetch the replica's copy, write it back only if it is exactly the recorded content, then re-verify."""
    store = replica.get()
    if store is None:
        if replica.error:
            return Repair(False, f"备份存储无法打开：{replica.error}；问题仍在，请人工处理", {"source": replica.url})
        return Repair(False, "未配置备份存储（DANGAN_REPLICA_STORAGE_URL），无法自动修复", {})
    where = {"source": replica.url}
    try:
        src = store.open(f.storage_key)
    except StorageError as e:
        if e.code == "BLOB_MISSING":
            return Repair(False, f"备份存储 {replica.url} 中也没有该内容，无法修复；请从其他备份恢复", where)
        return Repair(False, f"读取备份存储 {replica.url} 失败：{e.message}；问题仍在，稍后巡检将重试", where)
    try:
        with src:
            app.store.replace_corrupt(f.storage_key, src, size=f.size, sm3=f.sm3)
    except StorageError as e:
        if e.code == "REPAIR_MISMATCH":
            got = e.detail["found"]
            kind = "truncated" if got["size"] < f.size else "altered"
            return Repair(False, f"备份存储 {replica.url} 中的副本也已损坏（{OUTCOME_LABELS[kind]}：{got['size']} 字节，"
                                 f"SHA-256 {got['sha256'][:16]}…，登记为 {f.size} 字节），未写回；问题仍在，请从其他备份恢复",
                          {**where, "replica_outcome": kind, "replica_found": got})
        return Repair(False, f"修复失败：{e.message}；问题仍在，稍后巡检将重试", where)
    except OSError as e:
        return Repair(False, f"写回主存储失败：{e}；问题仍在，请检查存储后重试", where)
    after, found, _n = verify_blob(app, f.storage_key, f.size, f.sha256, f.sm3)
    if after != "ok":
        return Repair(False, f"已从备份写回，但复核仍不通过（{OUTCOME_LABELS[after]}），请人工处理",
                      {**where, "after": after, "after_found": found})
    return Repair(True, f"已从备份存储 {replica.url} 取回副本：SHA-256 与 SM3 与登记值一致后写回，写回后复核通过",
                  {**where, "after": "ok"})


# ---------------------------------------------------------------- the batch


@dataclass
class AuditFinding:
    file_id: int
    record_id: int
    archival_code: str | None
    name: str
    storage_key: str
    outcome: str
    expected: dict[str, Any]
    found: dict[str, Any]
    repaired: bool = False
    repair_note: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "outcome_label": OUTCOME_LABELS[self.outcome]}


def audit_batch(app: Dangan, actor: Actor, *, limit: int | None = None, progress: Progress | None = None,
                should_stop: Callable[[], bool] | None = None) -> dict[str, Any]:
    """Verify one bounded batch of the most overdue files, repair drift from the replica, record and audit it.

    Returns plain data: run_id, checked, bytes_read, drift, repaired, unrepaired, ok (no unrepaired drift and
    no error), verdict (ok | repaired | drift | error), error (the store could not be reached: the batch stopped
    there, files not reached keep their state), findings (each with expected and found digests, repaired and
    repair_note), batch_size, total_files, stopped (should_stop asked to end early).
    Raises Conflict(FIXITY_AUDIT_RUNNING) if another batch is running; PermissionDenied without fixity.run.
    """
    _guard(app, actor, "fixity.audit")
    with _exclusive(app) as mine:
        if not mine:
            raise Conflict("另一个固化信息巡检正在进行，本次未运行；请稍后再试", code="FIXITY_AUDIT_RUNNING")
        return _run_batch(app, actor, limit, progress, should_stop)


def _run_batch(app: Dangan, actor: Actor, limit: int | None, progress: Progress | None,
               should_stop: Callable[[], bool] | None) -> dict[str, Any]:
    with app.read_sessions() as s:
        total = s.scalar(select(func.count(File.id))) or 0
    size = max(1, limit) if limit is not None else batch_size(total, app.settings)
    with app.uow(actor, "fixity.audit", "fixity_run") as uow:
        run = FixityRun(actor=actor.username, kind="audit")
        uow.session.add(run)
        uow.session.flush()
        run_id, started = run.id, run.started_at
    rows = _due(app, size)
    replica = _Replica(app)
    findings: list[AuditFinding] = []
    outcomes: dict[str, list[int]] = {}
    checked = bytes_read = 0
    stopped = False
    aborted: str | None = None
    for f, code in rows:
        if should_stop is not None and should_stop():
            stopped = True
            break
        try:
            outcome, found, n = verify_blob(app, f.storage_key, f.size, f.sha256, f.sm3)
            if outcome == "missing":
                app.store.exists(f.storage_key)  # "missing", or is the store itself unreachable?
        except StorageError as e:
            # the store cannot answer (S3 down, credentials refused): no verdict on this or any further file
            aborted = f"存储 {_redact(app.store.describe())} 无法访问，本批在第 {checked + 1} 个文件处中止：{e.message}"
            log.warning("固化信息巡检中止：%s", aborted)
            break
        except OSError as e:  # e.g. permission denied on the blob: the content cannot be read
            outcome, found, n = "unreadable", {"error": str(e)}, 0
        checked += 1
        bytes_read += n
        state = outcome
        if outcome != "ok":
            fd = AuditFinding(f.id, f.record_id, code, f.name, f.storage_key, outcome,
                              {"size": f.size, "sha256": f.sha256, "sm3": f.sm3}, found)
            findings.append(fd)
            if outcome in REPAIRABLE and (app.settings.replica_storage_url or "").strip():
                rp = _repair(app, replica, f, outcome)
                fd.repaired, fd.repair_note = rp.repaired, rp.note
                if rp.repaired:
                    state = "ok"
                with app.uow(actor) as uow:
                    uow.audit("fixity.repair", "file", f.id, outcome="success" if rp.repaired else "failure",
                              run_id=run_id, record_id=f.record_id, archival_code=code or "", storage_key=f.storage_key,
                              drift=outcome, expected=fd.expected, found=found, repaired=rp.repaired, note=rp.note,
                              **rp.detail)
            elif outcome in REPAIRABLE:
                fd.repair_note = "未配置备份存储（DANGAN_REPLICA_STORAGE_URL），无法自动修复"
        outcomes.setdefault(state, []).append(f.id)
        if progress:
            progress(checked, len(rows), bytes_read)
    repaired = sum(1 for fd in findings if fd.repaired)
    unrepaired = len(findings) - repaired
    verdict = "error" if aborted else "ok" if not findings else ("repaired" if not unrepaired else "drift")
    with app.uow(actor, "fixity.audit", "fixity_run", str(run_id)) as uow:
        now = utcnow()
        for state, ids in outcomes.items():
            for i in range(0, len(ids), PAGE):
                uow.session.execute(update(File).where(File.id.in_(ids[i:i + PAGE]))
                                    .values(last_fixity_at=now, last_fixity_outcome=state))
        run = uow.session.get(FixityRun, run_id)
        run.finished_at, run.checked, run.failed, run.repaired, run.bytes_read = now, checked, len(findings), repaired, bytes_read
        for fd in findings:
            uow.session.add(FixityResult(run_id=run_id, file_id=fd.file_id, outcome=fd.outcome,
                                         expected=json.dumps(fd.expected, ensure_ascii=False),
                                         found=json.dumps(fd.found, ensure_ascii=False),
                                         repaired=fd.repaired, repair_note=fd.repair_note))
        uow.audit("fixity.audit", "fixity_run", run_id, outcome=verdict, checked=checked, bytes_read=bytes_read,
                  batch_size=size, total_files=total, drift=len(findings), repaired=repaired, unrepaired=unrepaired,
                  stopped=stopped, error=aborted or "",
                  drifted=[{"file_id": fd.file_id, "outcome": fd.outcome, "repaired": fd.repaired} for fd in findings[:100]])
    return {"run_id": run_id, "kind": "audit", "started_at": _iso(started), "finished_at": _iso(now),
            "total_files": total, "batch_size": size, "checked": checked, "bytes_read": bytes_read,
            "drift": len(findings), "repaired": repaired, "unrepaired": unrepaired,
            "ok": unrepaired == 0 and not aborted, "verdict": verdict, "stopped": stopped, "error": aborted,
            "replica": replica.url or None,
            "findings": [fd.as_dict() for fd in findings]}


# ---------------------------------------------------------------- seeding the replica


def replicate(app: Dangan, actor: Actor, progress: Progress | None = None,
              should_stop: Callable[[], bool] | None = None) -> dict[str, Any]:
    """Copy every referenced blob the replica lacks (or holds at the wrong size), streamed and verified.

    Each copy goes through the replica's `replace_corrupt`: it is written under its key only if its SHA-256,
    SM3 and size are the recorded ones, so a damaged primary blob is reported (source_bad), never replicated.
    """
    _guard(app, actor, "fixity.replicate")
    try:
        replica = open_replica(app)
    except DanganError as e:
        record_failure(app, actor, "fixity.replicate", "storage", "", e)
        raise
    if replica is None:
        err = ConfigError("未配置备份存储：请设置 DANGAN_REPLICA_STORAGE_URL（如 file:///备份盘/dangan 或 s3://桶/前缀）",
                          code="NO_REPLICA")
        record_failure(app, actor, "fixity.replicate", "storage", "", err)
        raise err
    with app.read_sessions() as s:
        total = s.scalar(select(func.count(func.distinct(File.storage_key)))) or 0
    rep: dict[str, Any] = {"replica": _redact(app.settings.replica_storage_url), "total": total, "present": 0,
                           "copied": 0, "replaced": 0, "bytes_copied": 0, "source_bad": [], "failed": [],
                           "stopped": False}
    done, last = 0, ""
    while True:
        with app.read_sessions() as s:
            page = s.execute(select(File.storage_key, File.size, File.sm3).where(File.storage_key > last)
                             .group_by(File.storage_key, File.size, File.sm3)
                             .order_by(File.storage_key).limit(PAGE)).all()
        if not page:
            break
        for key, size, sm3 in page:
            if should_stop is not None and should_stop():
                rep["stopped"] = True
                break
            done += 1
            try:
                have = replica.size(key)
                if have != size:
                    with app.store.open(key) as fh:
                        replica.replace_corrupt(key, fh, size=size, sm3=sm3)
                    rep["copied" if have is None else "replaced"] += 1
                    rep["bytes_copied"] += size
                else:
                    rep["present"] += 1
            except StorageError as e:
                if e.code in ("BLOB_MISSING", "REPAIR_MISMATCH", "REPAIR_SOURCE_UNREADABLE"):
                    rep["source_bad"].append({"key": key, "code": e.code, "message": e.message})
                else:
                    rep["failed"].append({"key": key, "code": e.code, "message": e.message})
            except OSError as e:
                rep["failed"].append({"key": key, "code": "OS_ERROR", "message": str(e)})
            if progress:
                progress(done, total, rep["bytes_copied"])
        if rep["stopped"]:
            break
        last = page[-1][0]
    rep["ok"] = not rep["source_bad"] and not rep["failed"] and not rep["stopped"]
    with app.uow(actor) as uow:
        uow.audit("fixity.replicate", "storage", "replica", outcome="success" if rep["ok"] else "failure",
                  replica=rep["replica"], total=total, present=rep["present"], copied=rep["copied"],
                  replaced=rep["replaced"], bytes_copied=rep["bytes_copied"],
                  source_bad=[b["key"] for b in rep["source_bad"][:100]], failed=[b["key"] for b in rep["failed"][:100]])
    return rep


# ---------------------------------------------------------------- status


def _iso(t: dt.datetime | None) -> str | None:
    if t is None:
        return None
    if t.tzinfo is None:  # SQLite gives back naive UTC
        t = t.replace(tzinfo=dt.UTC)
    return t.isoformat()


def _run_view(r: FixityRun) -> dict[str, Any]:
    return {"id": r.id, "kind": r.kind, "actor": r.actor, "started_at": _iso(r.started_at),
            "finished_at": _iso(r.finished_at), "checked": r.checked, "failed": r.failed, "repaired": r.repaired,
            "bytes_read": r.bytes_read}


def audit_status(app: Dangan, actor: Actor | None = None, *, runs: int = 10, drift_limit: int = 100) -> dict[str, Any]:
    """Where the audit stands (JSON-friendly): coverage of the cycle, the last runs, drift not yet resolved.

    `actor`: when given, the fixity.run right is required (the web page and API pass the user)."""
    if actor is not None:
        _guard(app, actor, "fixity.status")
    s_ = app.settings
    now = utcnow()
    cutoff = now - dt.timedelta(days=s_.fixity_cycle_days)
    with app.read_sessions() as s:
        total, size_total = s.execute(select(func.count(File.id), func.coalesce(func.sum(File.size), 0))).one()
        never = s.scalar(select(func.count(File.id)).where(File.last_fixity_at.is_(None))) or 0
        within = s.scalar(select(func.count(File.id)).where(File.last_fixity_at >= cutoff)) or 0
        oldest = s.scalar(select(func.min(File.last_fixity_at)))
        newest = s.scalar(select(func.max(File.last_fixity_at)))
        bad = (File.last_fixity_outcome.is_not(None)) & (File.last_fixity_outcome != "ok")
        by_outcome = dict(s.execute(select(File.last_fixity_outcome, func.count(File.id)).where(bad)
                                    .group_by(File.last_fixity_outcome)).all())
        drift_rows = s.execute(select(File, Record.archival_code).join(Record, Record.id == File.record_id)
                               .where(bad).order_by(File.id).limit(drift_limit)).all()
        last_runs = [_run_view(r) for r in s.scalars(select(FixityRun).order_by(FixityRun.id.desc()).limit(runs))]
        last_audit = s.scalar(select(FixityRun).where(FixityRun.kind == "audit", FixityRun.finished_at.is_not(None))
                              .order_by(FixityRun.id.desc()).limit(1))
        last_check = s.scalar(select(FixityRun).where(FixityRun.kind == "check", FixityRun.finished_at.is_not(None))
                              .order_by(FixityRun.id.desc()).limit(1))
        notes = {}
        if drift_rows:
            ids = [f.id for f, _c in drift_rows]
            for fid, note in s.execute(select(FixityResult.file_id, FixityResult.repair_note)
                                       .where(FixityResult.file_id.in_(ids)).order_by(FixityResult.id)):
                notes[fid] = note
    drift_total = sum(by_outcome.values())
    overdue = total - never - within
    replica_url = (s_.replica_storage_url or "").strip()
    return {
        "generated_at": _iso(now),
        "files_total": total,
        "bytes_total": int(size_total or 0),
        "verified_within_cycle": within,
        "overdue": overdue,
        "never_verified": never,
        "due": overdue + never,
        "coverage": round(within / total, 4) if total else 1.0,
        "oldest_verification_at": _iso(oldest),
        "latest_verification_at": _iso(newest),
        "cycle_days": s_.fixity_cycle_days,
        "interval_minutes": s_.fixity_audit_interval_minutes,
        "scheduler_enabled": s_.fixity_audit_interval_minutes > 0,
        "audit_running": audit_running(app),
        "runs_per_cycle": runs_per_cycle(s_),
        "batch_size": batch_size(total, s_),
        "replica": {"configured": bool(replica_url), "url": _redact(replica_url) if replica_url else None},
        "last_audit": _run_view(last_audit) if last_audit else None,
        "last_check": _run_view(last_check) if last_check else None,
        "last_runs": last_runs,
        "drift_outstanding": drift_total,
        "drift_by_outcome": {k: {"count": v, "label": OUTCOME_LABELS.get(k, k)} for k, v in sorted(by_outcome.items())},
        "drift": [{"file_id": f.id, "record_id": f.record_id, "archival_code": code, "name": f.name,
                   "storage_key": f.storage_key, "outcome": f.last_fixity_outcome,
                   "outcome_label": OUTCOME_LABELS.get(f.last_fixity_outcome or "", f.last_fixity_outcome),
                   "last_fixity_at": _iso(f.last_fixity_at), "repair_note": notes.get(f.id, "")}
                  for f, code in drift_rows],
        "ok": drift_total == 0 and overdue + never == 0,
    }


# ---------------------------------------------------------------- the scheduler of `dangan serve`


class AuditScheduler:
    """A daemon thread running one `audit_batch` every interval as the system actor; never two at once.

    A turn that finds another batch running is skipped; an error is logged and the next turn runs as usual.
    `stop()` asks a running batch to finish early (what it checked so far is recorded) and joins the thread.
    """

    def __init__(self, app: Dangan, *, interval_seconds: float, initial_delay: float = 60.0) -> None:
        self.app = app
        self.interval = interval_seconds
        self.initial_delay = initial_delay
        self.runs = 0
        self.skipped = 0
        self.errors = 0
        self.last_result: dict[str, Any] | None = None
        self.last_error: str | None = None
        self._stop = threading.Event()
        self._busy = threading.Lock()
        self._thread: threading.Thread | None = None

    @property
    def enabled(self) -> bool:
        return self.interval > 0

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> AuditScheduler:
        if self.enabled and self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="dangan-fixity-audit", daemon=True)
            self._thread.start()
            log.info("固化信息巡检已启动：每 %.0f 秒一批", self.interval)
        return self

    def run_once(self) -> dict[str, Any] | None:
        """One turn: the batch's result, or None when skipped (another batch running) or failed (logged)."""
        if not self._busy.acquire(blocking=False):
            self.skipped += 1
            log.info("固化信息巡检：上一批尚未结束，本次跳过")
            return None
        try:
            res = audit_batch(self.app, Actor.system("scheduler"), should_stop=self._stop.is_set)
        except Conflict as e:
            if e.code != "FIXITY_AUDIT_RUNNING":
                raise
            self.skipped += 1
            log.info("固化信息巡检：另一个巡检正在进行，本次跳过")
            return None
        except Exception as e:  # noqa: BLE001 - the scheduler must survive anything and try again next turn
            self.errors += 1
            self.last_error = f"{type(e).__name__}: {e}"
            log.exception("固化信息巡检出错（下次按时重试）")
            return None
        finally:
            self._busy.release()
        self.runs += 1
        self.last_result = res
        level = logging.WARNING if res["unrepaired"] else logging.INFO
        log.log(level, "固化信息巡检批次 %s：检测 %s 个文件，问题 %s 个，已修复 %s 个", res["run_id"], res["checked"],
                res["drift"], res["repaired"])
        return res

    def _loop(self) -> None:
        if self._stop.wait(self.initial_delay):
            return
        while True:
            self.run_once()
            if self._stop.wait(self.interval):
                return

    def stop(self, timeout: float | None = 30.0) -> bool:
        """Stop the thread; True when it has ended."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            return not self._thread.is_alive()
        return True


def start_scheduler(app: Dangan, *, interval_seconds: float | None = None,
                    initial_delay: float | None = None) -> AuditScheduler:
    """Start the audit thread for `dangan serve` (disabled, and not started, when the interval is 0).

    Default: every `fixity_audit_interval_minutes`, the first batch one minute after start (or sooner if the
    interval is shorter), so that restarts do not postpone the audit indefinitely."""
    interval = app.settings.fixity_audit_interval_minutes * 60.0 if interval_seconds is None else interval_seconds
    delay = min(60.0, interval) if initial_delay is None else initial_delay
    return AuditScheduler(app, interval_seconds=interval, initial_delay=delay).start()
