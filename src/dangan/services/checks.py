"""四性检测 use cases: run a scheme over records, a batch or a package; keep every result; compare reruns; schemes.

A run is stored before it starts (status running) and completed with one result row per item, so a crash
leaves a run marked failed, never a half report that looks finished. Every run is audited (who checked what,
the verdict and the failing codes). Reading a run is trimmed like records: a run that concerns a record the
reader may not see does not exist for that reader.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import and_, exists, func, not_, select, update
from sqlalchemy.orm import Session, selectinload

from dangan.checks.engine import (
    REGISTRY,
    ItemReport,
    NullEnv,
    RunReport,
    items_for,
    resolve_scheme,
    run_items,
)
from dangan.checks.model import (
    CheckTarget,
    Dimension,
    FileUnderCheck,
    Outcome,
    RecordUnderCheck,
    Stage,
)
from dangan.checks.profile import Profiler
from dangan.checks.schemes import PRESETS, preset_items
from dangan.db.models import (
    AuditEvent,
    CaptureJob,
    Category,
    CheckResult,
    CheckRun,
    CheckRunRecord,
    CheckScheme,
    Department,
    File,
    Fonds,
    Record,
    utcnow,
)
from dangan.errors import NotFound, Problems, StateError, ValidationFailed
from dangan.services.access import require, visible
from dangan.services.context import Actor, Dangan
from dangan.services.views import iso
from dangan.storage.hashing import digests

MAX_RECORDS_PER_RUN = 20_000


# ---------------------------------------------------------------- environment over the database


class DbEnv(NullEnv):
    """Answers the items' questions from the archive: schemas, 档号 rules, duplicates, numbering, audit trail."""

    def __init__(self, app: Dangan, session: Session, *, stored: bool = True,
                 category: Category | None = None) -> None:
        self.app, self.s, self.stored = app, session, stored
        self.default_category = category
        self._cats: dict[tuple[str | None, str | None], Category | None] = {}
        self._memo: dict[tuple[Any, ...], Any] = {}  # schemas and schedules, parsed once per category and run
        self._scanner: Any = False

    def category(self, r: RecordUnderCheck) -> Category | None:
        key = (r.fonds_code, r.category_code)
        if key not in self._cats:
            cat = None
            if r.fonds_code and r.category_code:
                cat = self.s.scalar(select(Category).join(Fonds).where(Fonds.code == r.fonds_code,
                                                                       Category.code == r.category_code))
            self._cats[key] = cat or self.default_category
        return self._cats[key]

    def schema_for(self, r: RecordUnderCheck) -> Any:
        from dangan.domain.schema import MetadataSchema

        cat = self.category(r)
        if cat is None or r.level not in cat.schemas:
            return None
        key = ("schema", cat.id, r.level)
        if key not in self._memo:
            self._memo[key] = MetadataSchema.from_dict(cat.schemas[r.level])
        return self._memo[key]

    def code_template_for(self, r: RecordUnderCheck) -> Any:
        from dangan.services.records import _template

        cat = self.category(r)
        if cat is None or r.level not in cat.code_templates:
            return None
        return _template(cat, r.level, r.metadata.get("security_level"))

    def existing_values(self, field: str, values: list[str], exclude_record_ids: set[int]) -> dict[str, list[str]]:
        col = {"archival_code": Record.archival_code, "doc_number": Record.doc_number, "title": Record.title}.get(field)
        if col is None or not values:
            return {}
        out: dict[str, list[str]] = {}
        for i in range(0, len(values), 500):
            q = select(col, Record.archival_code, Record.id).where(col.in_(values[i:i + 500]),
                                                                   Record.state != "destroyed")
            if exclude_record_ids:
                q = q.where(Record.id.not_in(exclude_record_ids))
            for v, code, rid in self.s.execute(q.limit(5000)):
                out.setdefault(v, []).append(code or f"档案 #{rid}")
        return out

    def class_numbers(self, r: RecordUnderCheck) -> list[int] | None:
        cat = self.category(r)
        if not self.stored or cat is None or not r.class_key:
            return None
        return list(self.s.scalars(select(Record.seq).where(
            Record.category_id == cat.id, Record.level == r.level, Record.class_key == r.class_key,
            Record.seq.is_not(None), Record.state != "destroyed")))

    def blob_exists(self, f: FileUnderCheck) -> bool:
        if not self.stored or f.file_id is None:
            return f.opener is not None
        return bool(f.location) and self.app.store.exists(f.location)

    def schedule_rules_for(self, r: RecordUnderCheck) -> list[Any]:
        from dangan.domain.schedule import parse_rules

        cat = self.category(r)
        if cat is None or not cat.retention_table:
            return []
        key = ("rules", cat.id)
        if key not in self._memo:
            self._memo[key] = parse_rules(cat.retention_table)[0]
        return self._memo[key]

    def department_of(self, r: RecordUnderCheck) -> tuple[str, str] | None:
        return r.department

    def audit_history(self, r: RecordUnderCheck) -> dict[str, Any] | None:
        if not self.stored or r.record_id is None:
            return None
        from dangan.services.audit import entry_hash

        events = list(self.s.scalars(select(AuditEvent).where(AuditEvent.object_type == "record",
                                                                AuditEvent.object_id == str(r.record_id))
                                     .order_by(AuditEvent.seq).limit(2000)))
        broken = []
        prev_seqs = [e.seq - 1 for e in events if e.seq > 1]
        prev_hash = dict(self.s.execute(select(AuditEvent.seq, AuditEvent.hash).where(AuditEvent.seq.in_(prev_seqs))).all()
                         ) if prev_seqs else {}
        for e in events:
            own = entry_hash(e.prev_hash, e.seq, e.occurred_at, e.actor, e.action, e.object_type, e.object_id,
                             e.outcome, e.client_addr, e.detail)
            if own != e.hash:
                broken.append({"seq": e.seq, "action": e.action, "problem": "内容被修改（SM3 不符）",
                               "expected": e.hash, "found": own})
            elif e.seq > 1 and prev_hash.get(e.seq - 1) not in (None, e.prev_hash):
                broken.append({"seq": e.seq, "action": e.action, "problem": "与上一条不衔接（上一条被替换）",
                               "expected": e.prev_hash, "found": prev_hash.get(e.seq - 1)})
            elif e.seq > 1 and e.seq - 1 not in prev_hash:
                broken.append({"seq": e.seq, "action": e.action, "problem": "上一条已被删除",
                               "expected": f"第 {e.seq - 1} 条", "found": "不存在"})
        filed = any(e.action == "record.file" or (e.action.startswith("record.") and '"filed"' in e.detail)
                    for e in events)
        return {"events": len(events), "filed": filed, "broken": broken}

    def virus_scanner(self) -> Any:
        if self._scanner is False:
            try:
                from dangan.formats import clamav

                self._scanner = clamav.from_settings(self.app.settings)
            except (ImportError, AttributeError):
                self._scanner = None
        return self._scanner


# ---------------------------------------------------------------- targets


def _file_under_check(app: Dangan, f: Any) -> FileUnderCheck:
    local = getattr(app.store, "_path", None)
    local_path = None
    if local is not None:
        try:
            local_path = str(local(f.storage_key))
        except Exception:
            local_path = None
    key = f.storage_key
    return FileUnderCheck(ref=str(f.id), name=f.name, role=f.role, size=f.size, sha256=f.sha256, sm3=f.sm3,
                          media_type=f.media_type, format_name=f.format_name, puid=f.puid,
                          created_at=f.source_created_at, location=key, opener=lambda: app.store.open(key),
                          local_path=local_path, file_id=f.id)


def record_under_check(app: Dangan, rec: Record, parent_codes: dict[int, str] | None = None) -> RecordUnderCheck:
    meta = dict(rec.meta or {})
    return RecordUnderCheck(
        ref=str(rec.id), title=rec.title, archival_code=rec.archival_code, record_id=rec.id, level=rec.level,
        state=rec.state, category_code=rec.category.code, fonds_code=rec.fonds.code, metadata=meta,
        files=[_file_under_check(app, f) for f in rec.files if f.is_current], class_key=rec.class_key, seq=rec.seq,
        department=(rec.department.code, rec.department.name) if rec.department is not None else None,
        parent_code=parent_codes.get(rec.parent_id) if parent_codes and rec.parent_id else None)


def select_records(app: Dangan, actor: Actor, s: Session, *, record_ids: list[int] | None = None,
                   job_id: str | None = None, fonds: str | None = None, category: str | None = None,
                   year: int | None = None, state: str | None = None, department: str | None = None) -> list[Record]:
    """The records a run concerns, trimmed for the actor (a record they may not see is not checked)."""
    q = (select(Record).where(visible(s, actor, "check.run"))
         .options(selectinload(Record.files), selectinload(Record.category), selectinload(Record.fonds),
                  selectinload(Record.department)))
    if record_ids is not None:
        q = q.where(Record.id.in_(record_ids))
    if job_id:
        job = s.get(CaptureJob, job_id)
        if job is None or (job.actor != actor.username and not actor.superuser and actor.scope_for("check.run") != "all"):
            raise NotFound(f"批次 {job_id} 不存在", code="BATCH_NOT_FOUND")
        prefix = (job.result or {}).get("sender_ref_prefix") or (job.params or {}).get("sender_ref_prefix")
        ids = (job.result or {}).get("record_ids") or [
            r["record_id"] for r in (job.result or {}).get("records", []) if isinstance(r, dict) and r.get("record_id")]
        if ids:
            q = q.where(Record.id.in_(ids))
        elif prefix:
            q = q.where(Record.sender_ref.startswith(prefix, autoescape=True))
        else:
            raise ValidationFailed(f"批次 {job_id} 没有记录它所接收的档案，无法按批次检测", code="BATCH_WITHOUT_RECORDS")
    if fonds:
        q = q.join(Fonds, Fonds.id == Record.fonds_id).where(Fonds.code == fonds)
    if category:
        q = q.join(Category, Category.id == Record.category_id).where(Category.code == category)
    if year is not None:
        q = q.where(Record.year == year)
    if state:
        q = q.where(Record.state == state)
    if department:
        q = q.join(Department, Department.id == Record.department_id).where(Department.code == department)
    rows = list(s.scalars(q.order_by(Record.id).limit(MAX_RECORDS_PER_RUN + 1)))
    if len(rows) > MAX_RECORDS_PER_RUN:
        raise ValidationFailed(f"一次检测最多 {MAX_RECORDS_PER_RUN} 件，请按年度、门类或机构缩小范围",
                               code="TOO_MANY_RECORDS")
    return rows


# ---------------------------------------------------------------- schemes


def ensure_default_schemes(session: Session) -> None:
    """The preset scheme of each stage (created once; later edits by the archivist are kept)."""
    have = {(s.stage, s.category_code) for s in session.scalars(select(CheckScheme).where(CheckScheme.is_default))}
    for stage in Stage:
        if (stage.value, None) not in have:
            session.add(CheckScheme(name=PRESETS[stage]["name"], stage=stage.value, category_code=None,
                                    items=preset_items(stage), is_default=True, updated_by="system"))


def scheme_for(session: Session, stage: Stage, category_code: str | None, scheme_id: int | None = None) -> CheckScheme:
    if scheme_id is not None:
        sch = session.get(CheckScheme, scheme_id)
        if sch is None:
            raise NotFound(f"检测方案 {scheme_id} 不存在", code="SCHEME_NOT_FOUND")
        if sch.stage != stage.value:
            raise ValidationFailed(f"检测方案“{sch.name}”属于{sch.stage}环节，不能用于{stage.value}环节",
                                   code="SCHEME_STAGE_MISMATCH")
        return sch
    q = select(CheckScheme).where(CheckScheme.stage == stage.value)
    if category_code:
        sch = session.scalar(q.where(CheckScheme.category_code == category_code).order_by(CheckScheme.id))
        if sch is not None:
            return sch
    sch = session.scalar(q.where(CheckScheme.category_code.is_(None), CheckScheme.is_default))
    if sch is None:
        raise NotFound(f"{stage.value}环节没有检测方案", code="SCHEME_NOT_FOUND")
    return sch


def ensure_schemes(app: Dangan) -> None:
    """Create the preset schemes once per process (an existing archive upgraded to this version has none)."""
    if getattr(app, "_check_schemes_ready", False):
        return
    with app.sessions.begin() as s:
        ensure_default_schemes(s)
    app._check_schemes_ready = True  # type: ignore[attr-defined]


def scheme_view(sch: CheckScheme) -> dict[str, Any]:
    stage = Stage(sch.stage)
    items = []
    for item, setting in resolve_scheme(stage, sch.items or {}):
        items.append({**item.describe(stage), "enabled": setting.enabled, "veto": setting.veto,
                      "advisory": setting.advisory, "params": setting.params})
    return {"id": sch.id, "name": sch.name, "stage": sch.stage, "category_code": sch.category_code,
            "is_default": sch.is_default, "updated_at": iso(sch.updated_at), "updated_by": sch.updated_by,
            "items": items}


def list_schemes(app: Dangan, actor: Actor) -> list[dict[str, Any]]:
    require(actor, "check.run")
    ensure_schemes(app)
    with app.read_sessions() as s:
        return [scheme_view(x) for x in s.scalars(select(CheckScheme).order_by(CheckScheme.stage, CheckScheme.id))]


def get_scheme(app: Dangan, actor: Actor, scheme_id: int) -> dict[str, Any]:
    require(actor, "check.run")
    with app.read_sessions() as s:
        sch = s.get(CheckScheme, scheme_id)
        if sch is None:
            raise NotFound(f"检测方案 {scheme_id} 不存在", code="SCHEME_NOT_FOUND")
        return scheme_view(sch)


def _validate_items(stage: Stage, items: Any) -> dict[str, Any]:
    p = Problems()
    known = {i.key: i for i in items_for(stage)}
    if not isinstance(items, dict):
        p.add("items", "WRONG_TYPE", "检测项设置应为“检测项 → 设置”的对象", "检测项")
        p.raise_if_any("检测方案有误，未保存")
    out: dict[str, Any] = {}
    for key, raw in items.items():
        item = known.get(key)
        if item is None:
            p.add(f"items.{key}", "UNKNOWN_ITEM", f"{stage.value}环节没有检测项“{key}”", key)
            continue
        if not isinstance(raw, dict):
            p.add(f"items.{key}", "WRONG_TYPE", "检测项设置应为对象（enabled、veto、advisory、params）", item.title)
            continue
        setting: dict[str, Any] = {}
        for flag in ("enabled", "veto", "advisory"):
            if flag in raw:
                if not isinstance(raw[flag], bool):
                    p.add(f"items.{key}.{flag}", "WRONG_TYPE", "应为 true 或 false", item.title)
                else:
                    setting[flag] = raw[flag]
        params = raw.get("params") or {}
        if not isinstance(params, dict):
            p.add(f"items.{key}.params", "WRONG_TYPE", "参数应为对象", item.title)
            params = {}
        clean: dict[str, Any] = {}
        for pk, pv in params.items():
            if pk not in item.defaults:
                p.add(f"items.{key}.params.{pk}", "UNKNOWN_PARAM", f"检测项“{item.title}”没有参数“{pk}”", item.title)
                continue
            want = type(item.defaults[pk])
            if want is list and isinstance(pv, str):
                pv = [x.strip() for x in pv.replace("，", ",").split(",") if x.strip()]
            if not isinstance(pv, want) or (want is int and isinstance(pv, bool)):
                p.add(f"items.{key}.params.{pk}", "WRONG_TYPE",
                      f"参数“{item.param_labels.get(pk, pk)}”类型应为{_type_label(want)}", item.title)
                continue
            if want is list and any(not isinstance(x, str) or len(x) > 64 for x in pv):
                p.add(f"items.{key}.params.{pk}", "WRONG_TYPE", "列表中的每一项应为不超过 64 个字符的文本", item.title)
                continue
            clean[pk] = pv
        if clean:
            setting["params"] = clean
        out[key] = setting
    p.raise_if_any("检测方案有误，未保存，请按提示逐项修改")
    return out


def _merge_items(base: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """Item settings with `changes` applied flag by flag and param by param (a setting that names only a
    param keeps the item's veto, advisory and enabled flags)."""
    out = dict(base)
    for key, new in changes.items():
        old = out.get(key) or {}
        merged = {**old, **new}
        if "params" in old or "params" in new:
            merged["params"] = {**(old.get("params") or {}), **(new.get("params") or {})}
        out[key] = merged
    return out


def _type_label(t: type) -> str:
    return {bool: "是/否", int: "整数", str: "文本", list: "列表", dict: "对象"}.get(t, t.__name__)


def save_scheme(app: Dangan, actor: Actor, *, stage: str, items: dict[str, Any], name: str | None = None,
                scheme_id: int | None = None, category_code: str | None = None) -> dict[str, Any]:
    """Create or update a scheme. Items not named keep their defaults (enabled, not veto)."""
    st = _stage(stage)
    with app.uow(actor, "check.scheme", "check_scheme", str(scheme_id or "")) as uow:
        require(actor, "check.manage")
        ensure_default_schemes(uow.session)
        clean = _validate_items(st, items)
        nm = (name or "").strip()
        if len(nm) > 100:
            raise ValidationFailed("方案名称不能超过 100 个字符", code="TOO_LONG")
        s = uow.session
        if scheme_id is not None:
            sch = s.get(CheckScheme, scheme_id)
            if sch is None:
                raise NotFound(f"检测方案 {scheme_id} 不存在", code="SCHEME_NOT_FOUND")
            if sch.stage != st.value:
                raise ValidationFailed("不能修改检测方案所属的环节", code="SCHEME_STAGE_MISMATCH")
            before = sch.items
            sch.items = _merge_items(sch.items or {}, clean)
            if nm:
                sch.name = nm
        else:
            if not nm:
                raise ValidationFailed("请填写方案名称", code="REQUIRED")
            before = {}
            sch = CheckScheme(name=nm, stage=st.value, category_code=category_code or None,
                              items=_merge_items(preset_items(st), clean), is_default=False)
            s.add(sch)
        sch.updated_at, sch.updated_by = utcnow(), actor.username
        s.flush()
        uow.audit("check.scheme", "check_scheme", sch.id, name=sch.name, stage=sch.stage, before=before, after=sch.items)
        return scheme_view(sch)


def _stage(value: str | Stage) -> Stage:
    if isinstance(value, Stage):
        return value
    try:
        return Stage.parse(value)
    except ValueError as e:
        raise ValidationFailed(str(e), code="UNKNOWN_STAGE") from None


# ---------------------------------------------------------------- runs


def run_records(app: Dangan, actor: Actor, *, stage: str | Stage = Stage.PRESERVATION, record_ids: list[int] | None = None,
                job_id: str | None = None, fonds: str | None = None, category: str | None = None,
                year: int | None = None, state: str | None = None, department: str | None = None,
                scheme_id: int | None = None, label: str | None = None,
                progress: Callable[[str, int, int], None] | None = None, audit_action: str = "check.run"
                ) -> dict[str, Any]:
    """Check stored records (one, a batch, or those matching a filter) and keep the run."""
    st = _stage(stage)
    require(actor, "check.run")
    ensure_schemes(app)
    with app.read_sessions() as s:
        recs = select_records(app, actor, s, record_ids=record_ids, job_id=job_id, fonds=fonds, category=category,
                              year=year, state=state, department=department)
        if not recs:
            raise NotFound("没有找到要检测的档案（或您无权查看）", code="NOTHING_TO_CHECK")
        parent_ids = {r.parent_id for r in recs if r.parent_id}
        parent_codes = dict(s.execute(select(Record.id, Record.archival_code).where(Record.id.in_(parent_ids))).all()
                            ) if parent_ids else {}
        targets = [record_under_check(app, r, parent_codes) for r in recs]
        cat_code = recs[0].category.code if len({r.category_id for r in recs}) == 1 else None
        sch = scheme_for(s, st, cat_code, scheme_id)
        scheme = {"id": sch.id, "name": sch.name, "items": dict(sch.items or {})}
    kind = "record" if len(recs) == 1 and record_ids else "batch"
    if label is None:
        label = (recs[0].archival_code or recs[0].title[:40]) if kind == "record" else _batch_label(
            recs, job_id, fonds, category, year, state, department)
    key = f"record:{recs[0].id}" if kind == "record" else (f"job:{job_id}" if job_id else "filter:" + hashlib.sha256(
        repr((fonds, category, year, state, department, sorted(r.id for r in recs))).encode()).hexdigest()[:24])
    target = CheckTarget(stage=st, kind=kind, label=label, records=targets)
    return _run(app, actor, target, scheme, key, [r.id for r in recs], progress=progress, stored=True,
                audit_action=audit_action)


def _batch_label(recs: list[Record], job_id: str | None, fonds: str | None, category: str | None, year: int | None,
                 state: str | None, department: str | None) -> str:
    parts = [f"批次 {job_id}" if job_id else "", fonds or "", category or "", f"{year}年" if year else "",
             department or "", {"filed": "已归档", "pending": "待归档", "pre_filing": "预归档"}.get(state or "", state or "")]
    text = " ".join(p for p in parts if p) or "全部档案"
    return f"{text}（{len(recs)} 件）"


def run_package(app: Dangan, actor: Actor, path: Path, *, stage: str | Stage = Stage.TRANSFER,
                fonds: str | None = None, category: str | None = None, scheme_id: int | None = None,
                label: str | None = None, progress: Callable[[str, int, int], None] | None = None,
                sent_digest: dict[str, str] | None = None) -> dict[str, Any]:
    """Check a package (BagIt, DA/T 48 EEP, dangan ZIP or folder) before anything of it is stored."""
    st = _stage(stage)
    require(actor, "check.run")
    ensure_schemes(app)
    from dangan.packages.reader import open_package

    workdir = _workdir(app)
    pkg, recs = open_package(Path(path), eep_xsd=app.settings.eep_xsd, workdir=workdir)
    if sent_digest:
        pkg.sent_digest = {k.lower(): v.lower() for k, v in sent_digest.items()}
        if Path(path).is_file():
            pkg.received_digest = _file_digests(Path(path), set(pkg.sent_digest))
    with app.read_sessions() as s:
        cat = None
        if fonds and category:
            cat = s.scalar(select(Category).join(Fonds).where(Fonds.code == fonds, Category.code == category))
            if cat is None:
                raise NotFound(f"全宗 {fonds} 下没有门类 {category}", code="CATEGORY_NOT_FOUND")
        for r in recs:
            r.fonds_code = r.fonds_code or fonds
            r.category_code = r.category_code or category
        sch = scheme_for(s, st, category, scheme_id)
        scheme = {"id": sch.id, "name": sch.name, "items": dict(sch.items or {})}
    target = CheckTarget(stage=st, kind="package", label=label or pkg.label, records=recs, package=pkg)
    digest = _file_digests(Path(path), {"sha256"}).get("sha256", "") if Path(path).is_file() else ""
    key = f"package:{digest[:32] or pkg.label}"
    try:
        return _run(app, actor, target, scheme, key, [], progress=progress, stored=False, category=cat)
    finally:
        _cleanup(workdir)


def check_target(app: Dangan, target: CheckTarget, scheme_items: dict[str, Any], *, stored: bool,
                 category: Category | None = None, progress: Callable[[str, int, int], None] | None = None) -> RunReport:
    """Run a scheme over a target without storing anything (the engine behind every run and the filing hook)."""
    import contextlib
    import time

    t0 = time.perf_counter()
    chosen = [i for i, sset in resolve_scheme(target.stage, scheme_items) if sset.enabled]
    needs_content = any(i.needs_content for i in chosen)
    deep = any(i.key in ("electronic_attributes", "content_opens", "no_encryption", "format_allowed", "fixity_info")
               for i in chosen)
    work = _workdir(app)  # spooled copies of non-local content; removed with the run, whatever happens
    with contextlib.ExitStack() as stack, app.read_sessions() as s:
        stack.callback(_cleanup, work)
        env = DbEnv(app, s, stored=stored, category=category)
        scanner = env.virus_scanner() if any(i.key == "virus_scan" for i in chosen) else None
        with Profiler(deep=deep, scanner=scanner, tmp_dir=str(work)) as prof:
            files = [f for r in target.records for f in r.files]
            if needs_content and files:
                prof.prefetch(files)
                if progress:
                    _wait_with_progress(prof, len(files), progress)
            items = run_items(target, scheme_items, env, prof,
                              on_item=(lambda n, total, code: progress("items", n, total)) if progress else None)
            bytes_read = prof.bytes_read
            file_results = _file_results(prof, files) if stored and deep else {}
    return RunReport(target.stage, target.kind, target.label, items, len(target.records),
                     sum(len(r.files) for r in target.records), bytes_read, time.perf_counter() - t0, file_results)


def _file_results(prof: Profiler, files: list[FileUnderCheck]) -> dict[int, dict[str, Any]]:
    """What the run learnt about each stored file, written back to its row (identification is refreshed)."""
    out: dict[int, dict[str, Any]] = {}
    for f in files:
        if f.file_id is None:
            continue
        p = prof(f)
        if not p.present or p.identification is None:
            continue
        ident, v = p.identification, p.validation
        out[f.file_id] = {
            "puid": ident.puid, "format_version": (ident.version or None) and ident.version[:32],
            "identification": {"basis": ident.basis, "extension_matches": ident.extension_matches, "pdfa": ident.pdfa,
                               "warnings": list(ident.warnings)[:5], "mime": ident.mime,
                               "format_name": ident.format_name},
            "validation": None if v is None else {
                "status": v.status, "problems": v.problems[:10], "warnings": v.warnings[:10], "encrypted": v.encrypted,
                "page_count": v.page_count, "signatures": [sg.as_dict() for sg in v.signatures][:10],
                "checked_at": utcnow().isoformat()},
        }
    return out


def _wait_with_progress(prof: Profiler, total: int, progress: Callable[[str, int, int], None]) -> None:
    import time

    while prof.done < total:
        progress("files", prof.done, total)
        time.sleep(0.2)
    progress("files", total, total)


def _run(app: Dangan, actor: Actor, target: CheckTarget, scheme: dict[str, Any], key: str, record_ids: list[int], *,
         progress: Callable[[str, int, int], None] | None, stored: bool, category: Category | None = None,
         audit_action: str = "check.run") -> dict[str, Any]:
    with app.uow(actor) as uow:
        run = CheckRun(stage=target.stage.value, scheme_id=scheme["id"], scheme=scheme, target_kind=target.kind,
                       target_label=target.label[:300], target_key=key[:200], actor=actor.username, status="running",
                       summary={})
        uow.session.add(run)
        uow.session.flush()
        run_id = run.id
        for rid in record_ids:
            uow.session.add(CheckRunRecord(run_id=run_id, record_id=rid))
    try:
        report = check_target(app, target, scheme["items"], stored=stored, category=category, progress=progress)
    except Exception as e:
        with app.uow(actor, audit_action, "check_run", str(run_id)) as uow:
            r = uow.session.get(CheckRun, run_id)
            r.status, r.finished_at = "failed", utcnow()
            r.error = {"code": getattr(e, "code", "INTERNAL_ERROR"), "message": str(getattr(e, "message", e))[:500]}
            uow.audit(audit_action, "check_run", run_id, outcome="failure", error=r.error)
        raise
    return store_report(app, actor, run_id, report, audit_action=audit_action)


def store_report(app: Dangan, actor: Actor, run_id: int, report: RunReport, *, audit_action: str = "check.run"
                 ) -> dict[str, Any]:
    with app.uow(actor, audit_action, "check_run", str(run_id)) as uow:
        run = uow.session.get(CheckRun, run_id)
        assert run is not None
        run.status, run.finished_at = "done", utcnow()
        run.verdict = report.verdict.value
        run.summary = report.summary()
        for it in report.items:
            uow.session.add(CheckResult(run_id=run_id, code=it.code, item_key=it.key, dimension=int(it.dimension),
                                        title=it.title, outcome=it.outcome.value, veto=it.veto, checked=it.checked,
                                        evidence=[e.as_dict() for e in it.evidence], evidence_count=it.evidence_count,
                                        note=(it.note + ("（建议项：仅作提示）" if it.advisory else ""))[:2000]))
        for file_id, values in report.file_results.items():
            uow.session.execute(update(File).where(File.id == file_id).values(**values))
        failed = [it.code for it in report.items if it.outcome == Outcome.FAIL]
        uow.audit(audit_action, "check_run", run_id, stage=report.stage.value, target=report.target_label[:200],
                  verdict=report.verdict.value, failed=failed, records=report.records, files=report.files)
    return get_run(app, actor, run_id)


def _file_digests(path: Path, algs: set[str]) -> dict[str, str]:
    with path.open("rb") as fh:
        return digests(fh, algs)


def _workdir(app: Dangan) -> Path:
    import uuid

    d = app.settings.data_dir / "checks" / "work" / uuid.uuid4().hex[:12]
    d.mkdir(parents=True, exist_ok=True)
    return d


def _cleanup(d: Path) -> None:
    import shutil

    shutil.rmtree(d, ignore_errors=True)


# ---------------------------------------------------------------- reading runs


def _visible_runs(s: Session, actor: Actor) -> Any:
    """A run is visible to a holder of check.run when every record it concerns is visible to them; a package
    run (no stored records) to the person who ran it and to holders of check.run over all records."""
    hidden = exists(select(CheckRunRecord.run_id).join(Record, Record.id == CheckRunRecord.record_id)
                    .where(CheckRunRecord.run_id == CheckRun.id, not_(visible(s, actor, "check.run"))))
    cond = not_(hidden)
    if not actor.superuser and actor.scope_for("check.run") != "all":
        cond = and_(cond, (CheckRun.actor == actor.username) | exists().where(CheckRunRecord.run_id == CheckRun.id))
    return cond


def run_view(run: CheckRun, results: list[CheckResult] | None = None) -> dict[str, Any]:
    d: dict[str, Any] = {
        "id": run.id, "stage": run.stage, "stage_prefix": Stage(run.stage).prefix, "scheme_id": run.scheme_id,
        "scheme_name": (run.scheme or {}).get("name"), "target_kind": run.target_kind,
        "target_kind_label": {"record": "单件", "batch": "批次", "package": "数据包"}.get(run.target_kind, run.target_kind),
        "target_label": run.target_label, "target_key": run.target_key, "actor": run.actor, "status": run.status,
        "status_label": {"running": "检测中", "done": "已完成", "failed": "检测出错"}.get(run.status, run.status),
        "verdict": run.verdict, "summary": run.summary or {}, "started_at": iso(run.started_at),
        "finished_at": iso(run.finished_at), "error": run.error,
    }
    if results is not None:
        items_for(Stage(run.stage))  # loads the item classes (their purpose is shown beside each result)
        d["items"] = [{"code": r.code, "key": r.item_key, "dimension": r.dimension,
                       "dimension_label": Dimension(r.dimension).label, "title": r.title, "outcome": r.outcome,
                       "veto": r.veto, "checked": r.checked, "evidence": r.evidence, "evidence_count": r.evidence_count,
                       "note": r.note, "purpose": getattr(REGISTRY.get(r.item_key), "purpose", "")}
                      for r in results]
    return d


def get_run(app: Dangan, actor: Actor, run_id: int) -> dict[str, Any]:
    require(actor, "check.run")
    with app.read_sessions() as s:
        run = s.scalar(select(CheckRun).where(CheckRun.id == run_id, _visible_runs(s, actor)))
        if run is None:
            raise NotFound(f"检测记录 {run_id} 不存在", code="CHECK_RUN_NOT_FOUND")
        results = list(s.scalars(select(CheckResult).where(CheckResult.run_id == run_id)
                                 .order_by(CheckResult.dimension, CheckResult.id)))
        view = run_view(run, results)
        view["record_ids"] = list(s.scalars(select(CheckRunRecord.record_id).where(CheckRunRecord.run_id == run_id)
                                            .limit(5000)))
        prev = s.scalar(select(CheckRun.id).where(CheckRun.target_key == run.target_key, CheckRun.id < run.id,
                                                  CheckRun.status == "done", _visible_runs(s, actor))
                        .order_by(CheckRun.id.desc()).limit(1))
        view["previous_run_id"] = prev
        return view


def list_runs(app: Dangan, actor: Actor, *, stage: str | None = None, record_id: int | None = None,
              verdict: str | None = None, before_id: int | None = None, limit: int = 50) -> dict[str, Any]:
    """Newest first, keyset-paginated by id."""
    require(actor, "check.run")
    limit = max(1, min(limit, 200))
    with app.read_sessions() as s:
        q = select(CheckRun).where(_visible_runs(s, actor))
        if stage:
            q = q.where(CheckRun.stage == _stage(stage).value)
        if record_id is not None:
            q = q.where(exists().where(CheckRunRecord.run_id == CheckRun.id, CheckRunRecord.record_id == record_id))
        if verdict:
            q = q.where(CheckRun.verdict == verdict)
        total = s.scalar(select(func.count()).select_from(q.subquery())) or 0
        if before_id is not None:
            q = q.where(CheckRun.id < before_id)
        runs = list(s.scalars(q.order_by(CheckRun.id.desc()).limit(limit + 1)))
        more = len(runs) > limit
        runs = runs[:limit]
        return {"total": total, "runs": [run_view(r) for r in runs],
                "next_before_id": runs[-1].id if more and runs else None}


def compare_runs(app: Dangan, actor: Actor, run_id: int, other_id: int | None = None) -> dict[str, Any]:
    """What changed between a run and an earlier one of the same target (default: the previous run)."""
    new = get_run(app, actor, run_id)
    other_id = other_id or new.get("previous_run_id")
    if other_id is None:
        raise StateError("该检测对象没有更早的检测记录可比对", code="NO_PREVIOUS_RUN")
    old = get_run(app, actor, other_id)
    by_code_old = {i["key"]: i for i in old["items"]}
    changes = []
    for it in new["items"]:
        before = by_code_old.pop(it["key"], None)
        ev_new = {(e.get("subject"), e.get("message")) for e in it["evidence"]}
        ev_old = {(e.get("subject"), e.get("message")) for e in (before or {}).get("evidence", [])}
        if before is None or before["outcome"] != it["outcome"] or ev_new != ev_old:
            changes.append({"code": it["code"], "title": it["title"], "before": before["outcome"] if before else None,
                            "after": it["outcome"],
                            "new_findings": [{"subject": a, "message": b} for a, b in sorted(ev_new - ev_old, key=str)][:50],
                            "resolved_findings": [{"subject": a, "message": b}
                                                  for a, b in sorted(ev_old - ev_new, key=str)][:50]})
    for it in by_code_old.values():
        changes.append({"code": it["code"], "title": it["title"], "before": it["outcome"], "after": None,
                        "new_findings": [], "resolved_findings": []})
    return {"run_id": run_id, "other_id": other_id, "same_target": new["target_key"] == old["target_key"],
            "verdict": {"before": old["verdict"], "after": new["verdict"]}, "changes": changes}


# ---------------------------------------------------------------- the filing hook


def filing_check(app: Dangan, actor: Actor, record_id: int) -> dict[str, Any]:
    """归档环节四性检测, registered in `Dangan.filing_checks`: runs before the record is filed; refuses on 不通过."""
    res = run_records(app, actor, stage=Stage.FILING, record_ids=[record_id], audit_action="check.filing")
    problems = []
    for it in res["items"]:
        if it["outcome"] != Outcome.FAIL.value or "建议项" in it["note"]:
            continue
        for ev in it["evidence"][:20]:
            if ev.get("outcome") == Outcome.FAIL.value:
                problems.append({"field": ev.get("field") or it["code"], "code": "CHECK_" + it["key"].upper(),
                                 "message": f"{it['code']} {it['title']}：{ev.get('message')}", "label": it["title"]})
    return {"name": "four_property_check", "label": "归档环节四性检测", "passed": res["verdict"] == Outcome.PASS.value,
            "problems": problems, "run_id": res["id"]}


def install_filing_hook(app: Dangan) -> None:
    if filing_check not in app.filing_checks:
        app.filing_checks.append(filing_check)


__all__ = ["ItemReport", "run_records", "run_package", "get_run", "list_runs", "compare_runs", "list_schemes",
           "get_scheme", "save_scheme", "filing_check", "install_filing_hook", "check_target"]
