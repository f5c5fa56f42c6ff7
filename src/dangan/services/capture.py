"""前端控制: business systems (OA, finance, project systems) submit records as they are created.

Three forms, all idempotent by the sender's identifier (sender_ref: a retry returns the same record):

- JSON metadata + files (multipart): `records.create_record` (the API's /records endpoints);
- a ZIP with `manifest.json` listing records and the paths of their files inside the ZIP (`submit_package`);
- a DA/T 48-2009 EEP (电子文件封装包) XML with the files embedded (`submit_eep`).

Every package is checked whole at the gate (schema of the category, the token's scope, 密级, files present):
when one record has a problem, the answer lists every problem, record by record and field by field, and
nothing is stored.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, BinaryIO

from dangan.capture.eep import parse_eep
from dangan.capture.zipsafe import SafeZip
from dangan.errors import FieldProblem, ValidationFailed
from dangan.services import ingest
from dangan.services.access import require
from dangan.services.context import Actor, Dangan
from dangan.services.files import NewFile, parse_role
from dangan.services.records import RecordInput, create_record

MANIFEST = "manifest.json"
MAX_MANIFEST = 20 * 2**20
MAX_RECORDS = 10_000
_KEYS = {"fonds", "category", "department", "level", "state", "parent_id", "sender_ref", "metadata", "files"}

MANIFEST_EXAMPLE = {
    "fonds": "Z109", "category": "WS", "department": "BGS",
    "records": [{"sender_ref": "OA-2024-000123",
                 "metadata": {"title": "关于印发《档案工作规定》的通知", "year": 2024, "date": "2024-03-05",
                              "responsible": "示范市人民政府办公室", "retention_period": "Y"},
                 "files": [{"path": "OA-2024-000123/正文.pdf", "role": "main"},
                           {"path": "OA-2024-000123/处理单.pdf", "role": "processing_sheet"}]}],
}


def _default_scope(actor: Actor, key: str) -> str | None:
    """A token limited to one category (or department) need not name it in every package."""
    lim = actor.token_limits(key)
    return lim[0] if lim and len(lim) == 1 else None


def _manifest(zf: SafeZip) -> dict[str, Any]:
    found = [e for e in zf.files() if e.name == MANIFEST]
    if not found:
        raise ValidationFailed(f"数据包中没有 {MANIFEST}（放在压缩包根目录，列出每件档案的著录项和文件路径）",
                               code="PACKAGE_NO_MANIFEST", detail={"example": MANIFEST_EXAMPLE})
    if found[0].size > MAX_MANIFEST:
        raise ValidationFailed(f"{MANIFEST} 超过 20 MB，请分成多个数据包提交", code="PACKAGE_TOO_LARGE")
    try:
        data = json.loads(zf.read(found[0]).decode("utf-8-sig"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValidationFailed(f"{MANIFEST} 不是有效的 UTF-8 JSON：{e}", code="PACKAGE_MANIFEST_INVALID") from e
    if not isinstance(data, dict) or not isinstance(data.get("records"), list) or not data["records"]:
        raise ValidationFailed(f"{MANIFEST} 应为对象，并以 records 列出至少一件档案", code="PACKAGE_MANIFEST_INVALID",
                               detail={"example": MANIFEST_EXAMPLE})
    if len(data["records"]) > MAX_RECORDS:
        raise ValidationFailed(f"一个数据包最多 {MAX_RECORDS} 件档案，请分包提交", code="PACKAGE_TOO_LARGE")
    return data


def _items(actor: Actor, zf: SafeZip, data: dict[str, Any]
           ) -> tuple[list[tuple[RecordInput, list[NewFile]]], list[int], list[FieldProblem]]:
    """The records of the manifest, the manifest index of each, and the problems found in the manifest itself."""
    problems: list[FieldProblem] = []
    items: list[tuple[RecordInput, list[NewFile]]] = []
    where_of: list[int] = []
    defaults = {"fonds": data.get("fonds"), "category": data.get("category") or _default_scope(actor, "categories"),
                "department": data.get("department") or _default_scope(actor, "departments"),
                "state": data.get("state", "pre_filing"), "level": data.get("level", "item")}
    for i, r in enumerate(data["records"]):
        where = f"records[{i}]"
        if not isinstance(r, dict) or not isinstance(r.get("metadata"), dict):
            problems.append(FieldProblem(where, "WRONG_TYPE", "每件档案应为对象，且带 metadata（著录项）", f"第 {i + 1} 件"))
            continue
        extra = set(r) - _KEYS
        if extra:
            problems.append(FieldProblem(where, "UNKNOWN_FIELD", f"未知的项：{'、'.join(sorted(extra))}", f"第 {i + 1} 件"))
        v = {**defaults, **{k: r[k] for k in ("fonds", "category", "department", "state", "level") if r.get(k)}}
        if not v["fonds"] or not v["category"]:
            problems.append(FieldProblem(where, "REQUIRED", "须给出全宗号 fonds 和门类 category（可写在清单顶层）",
                                         f"第 {i + 1} 件"))
            continue
        files: list[NewFile] = []
        raw_files = r.get("files") or []
        if not isinstance(raw_files, list):
            problems.append(FieldProblem(f"{where}.files", "WRONG_TYPE", "files 应为列表", f"第 {i + 1} 件"))
            raw_files = []
        for j, fd in enumerate(raw_files):
            path = fd.get("path") if isinstance(fd, dict) else fd
            if not isinstance(path, str) or not path:
                problems.append(FieldProblem(f"{where}.files[{j}]", "REQUIRED", "每个文件须给出 path（压缩包内路径）",
                                             f"第 {i + 1} 件"))
                continue
            found = [e for e in zf.find(path) if e.name == path.strip().strip("/").replace("\\", "/")] or zf.find(path)
            if len(found) != 1:
                msg = "不在数据包中" if not found else "对应多个文件，请写出完整路径"
                problems.append(FieldProblem(f"{where}.files[{j}]", "FILE_MISSING", f"文件“{path}”{msg}",
                                             f"第 {i + 1} 件"))
                continue
            try:
                role = parse_role(fd.get("role", "main") if isinstance(fd, dict) else ("main" if j == 0 else "attachment"))
            except ValueError as e:
                problems.append(FieldProblem(f"{where}.files[{j}].role", "NOT_IN_DOMAIN", str(e), f"第 {i + 1} 件"))
                continue
            entry = found[0]
            files.append(NewFile(entry.basename, _Deferred(zf, entry), role=role, expected_size=entry.size))
        items.append((RecordInput(str(v["fonds"]), str(v["category"]), r["metadata"], level=str(v["level"]),
                                  department=v["department"], parent_id=r.get("parent_id"), state=str(v["state"]),
                                  sender_ref=r.get("sender_ref")), files))
        where_of.append(i)
    return items, where_of, problems


class _Deferred:
    """A ZIP entry opened when first read (after the whole package was checked)."""

    def __init__(self, zf: SafeZip, entry: Any) -> None:
        self.zf, self.entry, self._f = zf, entry, None

    def read(self, n: int = -1) -> bytes:
        if self._f is None:
            self._f = self.zf.open(self.entry)
        return self._f.read(n)

    def close(self) -> None:
        if self._f is not None:
            self._f.close()


def submit_package(app: Dangan, actor: Actor, package: Path | BinaryIO, *, dry_run: bool = False) -> dict[str, Any]:
    """A ZIP with manifest.json: all records are checked first; one problem anywhere stores nothing."""
    require(actor, "record.create")
    with SafeZip(package) as zf:
        data = _manifest(zf)
        items, where_of, problems = _items(actor, zf, data)

        def seen(res: ingest.ItemResult) -> None:
            if res.failure is not None:
                i = where_of[res.index]
                for p in res.failure.problems:
                    problems.append(FieldProblem(f"records[{i}].{p.field}", p.code, p.message,
                                                 f"第 {i + 1} 件 {p.label}".strip()))
                if not res.failure.problems:
                    problems.append(FieldProblem(f"records[{i}]", res.failure.code, res.failure.message,
                                                 f"第 {i + 1} 件"))

        if items:
            ingest.validate_only(app, actor, items, batch_size=max(1, len(items)), on_item=seen)
        problems.sort(key=lambda p: p.field)
        if problems:
            raise ValidationFailed(f"数据包有 {len(problems)} 处问题，未接收任何档案，请逐项修改后重新提交",
                                   code="PACKAGE_INVALID", problems=problems)
        if dry_run:
            return {"dry_run": True, "records": len(items), "files": sum(len(f) for _, f in items)}
        results: list[dict[str, Any]] = []
        rep = ingest.ingest_batch(app, actor, items, batch_size=max(1, len(items)),
                                  on_item=lambda r: results.append(
                                      {"index": r.index, "status": r.status, "record_id": r.record_id,
                                       "archival_code": r.archival_code, "sender_ref": r.sender_ref,
                                       **({"error": r.failure.as_dict()} if r.failure else {})}))
        return {"created": rep.created, "existing": rep.existing, "failed": rep.failed, "files": rep.files,
                "records": results}


def submit_eep(app: Dangan, actor: Actor, source: Path | BinaryIO, *, category: str | None = None,
               fonds: str | None = None, department: str | None = None, state: str = "pre_filing") -> dict[str, Any]:
    """A DA/T 48 EEP: validated (against the configured XSD), mapped to the category's fields, files decoded."""
    require(actor, "record.create")
    pkg = parse_eep(source, xsd_path=app.settings.eep_xsd)
    problems = list(pkg.raw_problems)
    category = category or _default_scope(actor, "categories")
    if not category:
        problems.append(FieldProblem("category", "REQUIRED", "请指定接收到哪个门类（category，如 WS）", "门类"))
    fonds = fonds or pkg.fonds_code
    if not fonds:
        problems.append(FieldProblem("fonds", "REQUIRED", "封装包没有全宗号，请在请求中指定 fonds", "全宗号"))
    if problems:
        raise ValidationFailed("封装包有误，未接收，请按提示修改后重新提交", code="EEP_INVALID", problems=problems)
    files = [NewFile(f.name, f.data_stream, role="main" if i == 0 else "attachment")
             for i, f in enumerate(pkg.files)]
    try:
        return create_record(app, actor, RecordInput(
            str(fonds), str(category), pkg.metadata, department=department or pkg.department or
            _default_scope(actor, "departments"), state=state, sender_ref=pkg.sender_ref), files)
    finally:
        for f in pkg.files:
            f.data_stream.close()
