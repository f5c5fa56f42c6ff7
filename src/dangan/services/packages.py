"""Package use cases: export records as DA/T 48 EEPs (signed with SM2) or a BagIt bag with METS/PREMIS; import a
package after the 移交与接收 checks pass (nothing of a package that fails them is stored)."""

from __future__ import annotations

import hashlib
import io
import shutil
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import selectinload

from dangan.checks.model import CheckTarget, RecordUnderCheck, Stage
from dangan.db.models import Category, Fonds, Record
from dangan.errors import NotFound, ValidationFailed
from dangan.services import checks as check_svc
from dangan.services.access import require, visible
from dangan.services.context import Actor, Dangan
from dangan.services.files import NewFile
from dangan.services.records import RecordInput
from dangan.storage.hashing import digests

FORMATS = {"eep": "DA/T 48 电子文件封装包", "bagit": "BagIt 包（含 METS/PREMIS）"}
MAX_EXPORT = 10_000


def signer_for(app: Dangan) -> Any:
    """The SM2 key that signs exported EEPs: the configured one, or one made once in the data folder."""
    from dangan.packages.sm2 import load_or_create_signer

    path = app.settings.signing_key or (app.settings.data_dir / "keys" / "eep-sm2.pem")
    path.parent.mkdir(parents=True, exist_ok=True)
    return load_or_create_signer(Path(path))


def _fonds_unit(app: Dangan, fonds_code: str | None) -> str:
    with app.read_sessions() as s:
        f = s.scalar(select(Fonds).where(Fonds.code == fonds_code)) if fonds_code else None
        return (f.unit or f.name) if f else app.settings.site_name


def export_records(app: Dangan, actor: Actor, record_ids: list[int], fmt: str, dest: Path, *,
                   progress: Callable[[int, int], None] | None = None) -> dict[str, Any]:
    """Write the records (those the actor may download) to `dest`: one .xml EEP for one record, a .zip of EEPs
    for several, a .zip BagIt bag. Returns what was written with its SHA-256 and SM3."""
    if fmt not in FORMATS:
        raise ValidationFailed(f"封装格式“{fmt}”不支持，可选：eep（DA/T 48）、bagit", code="UNKNOWN_FORMAT")
    if not record_ids:
        raise ValidationFailed("请选择要导出的档案", code="NOTHING_TO_EXPORT")
    if len(record_ids) > MAX_EXPORT:
        raise ValidationFailed(f"一次最多导出 {MAX_EXPORT} 件", code="TOO_MANY_RECORDS")
    with app.uow(actor, "package.export", "package", fmt) as uow:
        require(actor, "package.export")
        s = uow.session
        recs = list(s.scalars(select(Record).where(Record.id.in_(record_ids), visible(s, actor, "file.download"))
                              .options(selectinload(Record.files), selectinload(Record.category),
                                       selectinload(Record.fonds), selectinload(Record.department))
                              .order_by(Record.archival_code, Record.id)))
        if len(recs) != len(set(record_ids)):
            raise NotFound("部分档案不存在或您无权下载其电子文件，未导出", code="RECORD_NOT_FOUND")
        parent_ids = {r.parent_id for r in recs if r.parent_id}
        parents = dict(s.execute(select(Record.id, Record.archival_code).where(Record.id.in_(parent_ids))).all()
                       ) if parent_ids else {}
        targets = [check_svc.record_under_check(app, r, parents) for r in recs]
        uow.audit("package.export", "package", fmt, format=fmt, records=[r.id for r in recs][:1000], count=len(recs))
    unit = _fonds_unit(app, targets[0].fonds_code)
    dest.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "eep":
        path = _export_eeps(app, targets, dest, unit, progress)
    else:
        from dangan.packages.bagit_pkg import export_bag

        info = {"Source-Organization": unit, "External-Identifier": dest.stem}
        path = export_bag(targets, dest.with_suffix(""), info=info, zip_output=True,
                          progress=(lambda n, total, _b: progress(n, total)) if progress else None)
    digests = _digests(path)
    return {"format": fmt, "format_label": FORMATS[fmt], "path": str(path), "name": path.name, "records": len(targets),
            "size": path.stat().st_size, **digests}


def _export_eeps(app: Dangan, targets: list[RecordUnderCheck], dest: Path, unit: str,
                 progress: Callable[[int, int], None] | None) -> Path:
    from dangan.packages.bagit_pkg import safe_name
    from dangan.packages.eep_writer import write_eep

    signer = signer_for(app)
    if len(targets) == 1:
        path = dest.with_suffix(".xml")
        tmp = path.with_suffix(".xml.part")
        with tmp.open("wb") as out:
            write_eep(targets[0], out, unit=unit, signer=signer)
        tmp.replace(path)
        if progress:
            progress(1, 1)
        return path
    path = dest.with_suffix(".zip")
    tmp = path.with_suffix(".zip.part")
    used: set[str] = set()
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED, allowZip64=True) as zf:
        for n, t in enumerate(targets, 1):
            name = safe_name(t.archival_code or t.ref, "档案") + ".xml"
            while name in used:
                name = f"{n}-{name}"
            used.add(name)
            with zf.open(name, "w", force_zip64=True) as out:
                write_eep(t, out, unit=unit, signer=signer)
            if progress:
                progress(n, len(targets))
    tmp.replace(path)
    return path


def _digests(path: Path) -> dict[str, str]:
    with path.open("rb") as fh:
        return digests(fh, {"sha256", "sm3"})


def import_package(app: Dangan, actor: Actor, path: Path, *, fonds: str, category: str, department: str | None = None,
                   state: str = "pending", scheme_id: int | None = None, sent_digest: dict[str, str] | None = None,
                   progress: Callable[[str, int, int], None] | None = None) -> dict[str, Any]:
    """移交与接收: check the package with the 移交与接收 scheme; only when it passes are its records stored.

    Re-importing the same package changes nothing (each record's sender_ref is derived from the package
    digest and the record's place in it)."""
    require(actor, "record.import")
    check_svc.ensure_schemes(app)
    from dangan.packages.reader import open_package

    path = Path(path)
    if not path.exists():
        raise ValidationFailed(f"数据包“{path}”不存在", code="FILE_MISSING")
    with app.read_sessions() as s:
        cat = s.scalar(select(Category).join(Fonds).where(Fonds.code == fonds, Category.code == category))
        if cat is None:
            raise NotFound(f"全宗 {fonds} 下没有门类 {category}", code="CATEGORY_NOT_FOUND")
        sch = check_svc.scheme_for(s, Stage.TRANSFER, category, scheme_id)
        scheme = {"id": sch.id, "name": sch.name, "items": dict(sch.items or {})}
    workdir = check_svc._workdir(app)
    try:
        pkg, recs = open_package(path, eep_xsd=app.settings.eep_xsd, workdir=workdir)
        for r in recs:
            r.fonds_code, r.category_code = fonds, category
        if sent_digest:
            pkg.sent_digest = {k.lower(): v.lower() for k, v in sent_digest.items()}
            if path.is_file():
                pkg.received_digest = check_svc._file_digests(path, set(pkg.sent_digest))
        digest = check_svc._file_digests(path, {"sha256"})["sha256"] if path.is_file() else hashlib.sha256(
            str(path.resolve()).encode()).hexdigest()
        target = CheckTarget(stage=Stage.TRANSFER, kind="package", label=pkg.label, records=recs, package=pkg)
        run = check_svc._run(app, actor, target, scheme, f"package:{digest[:32]}", [], progress=progress,
                             stored=False, category=cat, audit_action="package.import")
        if run["verdict"] != "通过":
            failing = [f"{i['code']} {i['title']}" for i in run["items"] if i["outcome"] == "不通过" and "建议项" not in i["note"]]
            err = ValidationFailed("数据包未通过移交与接收检测，未接收任何档案：" + "、".join(failing[:8]),
                                   code="PACKAGE_CHECK_FAILED", detail={"check_run_id": run["id"]})
            err.check_run = run  # type: ignore[attr-defined]
            raise err
        items = [(_record_input(r, fonds, category, department, state, f"package:{digest[:24]}:{i}"), _new_files(r))
                 for i, r in enumerate(recs)]
        from dangan.services.ingest import ingest_batch

        # a package that passed its checks may still hold records the receiving category refuses (a field it
        # does not have): the report says which, record by record; the records that fit are stored
        out = ingest_batch(app, actor, items, stop_on_error=False).as_dict()
        return {"check_run": {"id": run["id"], "verdict": run["verdict"]}, "records": len(recs), **out}
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _record_input(r: RecordUnderCheck, fonds: str, category: str, department: str | None, state: str,
                  sender_ref: str) -> RecordInput:
    meta = {k: v for k, v in (r.metadata or {}).items() if v not in (None, "")}
    if r.title and not meta.get("title"):
        meta["title"] = r.title
    dept = department or (r.department[0] if r.department else None)
    return RecordInput(fonds=fonds, category=category, metadata=meta, level=r.level or "item", department=dept,
                       state=state, sender_ref=sender_ref)


class _LazyStream(io.RawIOBase):
    """Opens the package file only when the ingest reads it (a large package is not opened all at once)."""

    def __init__(self, opener: Callable[[], Any]) -> None:
        self._opener, self._fh = opener, None

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        if self._fh is None:
            self._fh = self._opener()
        data = self._fh.read(len(b))
        b[: len(data)] = data
        return len(data)

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
        super().close()


def _new_files(r: RecordUnderCheck) -> list[NewFile]:
    out = []
    for f in r.files:
        if f.opener is None:
            continue
        out.append(NewFile(name=f.name, stream=io.BufferedReader(_LazyStream(f.opener), 1024 * 1024), role=f.role,
                           media_type=f.media_type, expected_size=f.size, source_created_at=f.created_at))
    return out
