"""BagIt (RFC 8493) export of records for 移交 / long-term backup, validated with LoC bagit-python.

Layout of a bag:

    bagit.txt                 BagIt-Version 1.0, UTF-8
    bag-info.txt              Source-Organization, Bagging-Date, Payload-Oxum, External-Description (Chinese),
                              External-Identifier, Bag-Count, Bag-Size, Bag-Software-Agent + what the caller gives
    manifest-sha256.txt       every payload file
    manifest-sm3.txt          the same files, SM3 (GB/T 32905)
    mets.xml                  METS 1.12 + PREMIS 3 (see `mets`): a tag file, covered by the tag manifests
    tagmanifest-sha256.txt    bagit.txt, bag-info.txt, the payload manifests, mets.xml
    tagmanifest-sm3.txt
    data/<档号>/<file names>  one folder per record, named by its 档号 (or ref) made safe for any file system
    data/<档号>/metadata.json  the record: ref, 档号, 题名, level, metadata, and every file with its role,
                              size, SHA-256 and SM3 (`path` relative to the record folder)

SM3. bagit-python only knows the algorithms of `hashlib.algorithms_guaranteed`: it writes an SM3 manifest when
asked but its validator ignores manifest-sm3.txt and tagmanifest-sm3.txt (it does not fail on them). The stock
validator therefore checks the SHA-256 manifests, and the SM3 manifest is itself covered by
tagmanifest-sha256.txt; `reader.open_package` reads both so that SM3 is verified by dangan (the check engine
compares each declared digest with the bytes). bagit is not patched.

Why the files are written here and not by `bagit.make_bag`: make_bag and Bag.save `os.chdir` into the bag,
which changes the working directory of every thread of a running server (relative settings paths would then
resolve elsewhere). The payload is copied once, hashed (SHA-256 + SM3) while copying and checked against the
declared size and digests; the manifests are written in bagit-python's own format; then the finished bag is
validated with `bagit.Bag(path).validate()` (no chdir) before it is moved into place. A failed export leaves
nothing at `dest`.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import secrets
import shutil
import unicodedata
import zipfile
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any, BinaryIO

import bagit

from dangan import __version__
from dangan.checks.model import FileUnderCheck, RecordUnderCheck
from dangan.errors import FieldProblem, ValidationFailed
from dangan.packages.mets import write_mets
from dangan.storage.hashing import DualDigest

__all__ = ["METADATA_FILE", "METS_FILE", "RECORD_FORMAT", "export_bag", "safe_name"]

METADATA_FILE = "metadata.json"
METS_FILE = "mets.xml"
RECORD_FORMAT = "dangan-record"
ALGORITHMS = ("sha256", "sm3")
_CHUNK = 1 << 20
_UNSAFE = re.compile(r'[\\/:*?"<>|%\x00-\x1f\x7f]')
_RESERVED = re.compile(r"^(CON|PRN|AUX|NUL|COM[1-9]|LPT[1-9])(\..*)?$", re.IGNORECASE)
_MAX_NAME_BYTES = 180

Progress = Callable[[int, int, int], None]


def safe_name(name: str, fallback: str = "未命名") -> str:
    """A file or folder name that is the same on Windows, macOS and Linux and in a BagIt manifest: NFC,
    no separators or characters Windows refuses, no `%` (bagit-python does not decode %25), no leading or
    trailing dots and spaces, not a reserved device name, at most 180 bytes of UTF-8 (extension kept)."""
    s = unicodedata.normalize("NFC", name or "")
    s = _UNSAFE.sub("_", s).strip(" .\u3000")
    if not s or set(s) <= {"_"}:
        s = fallback
    if _RESERVED.match(s):
        s = "_" + s
    if len(s.encode()) > _MAX_NAME_BYTES:
        stem, dot, ext = s.rpartition(".")
        if not dot or len(ext) > 10:
            stem, ext = s, ""
        budget = _MAX_NAME_BYTES - len(ext.encode()) - (1 if ext else 0)
        while len(stem.encode()) > budget:
            stem = stem[:-1]
        s = f"{stem}.{ext}" if ext else stem
    return s


def _unique(name: str, used: set[str]) -> str:
    """`name`, or `name (2).ext`… when a name that differs only in case is taken (case-insensitive disks)."""
    candidate, n = name, 1
    while candidate.casefold() in used:
        n += 1
        stem, dot, ext = name.rpartition(".")
        candidate = f"{stem} ({n}).{ext}" if dot and stem else f"{name} ({n})"
    used.add(candidate.casefold())
    return candidate


def _json_safe(v: Any) -> Any:
    if isinstance(v, dt.datetime | dt.date):
        return v.isoformat()
    if isinstance(v, dict):
        return {str(k): _json_safe(x) for k, x in v.items()}
    if isinstance(v, list | tuple | set):
        return [_json_safe(x) for x in v]
    if isinstance(v, bytes):
        return v.hex()
    if v is None or isinstance(v, str | int | float | bool):
        return v
    return str(v)


def _open(f: FileUnderCheck) -> BinaryIO:
    if f.opener is not None:
        return f.opener()
    if f.local_path:
        return open(f.local_path, "rb")  # noqa: SIM115 - closed by the caller
    raise ValidationFailed(f"文件“{f.name}”的内容不可读，无法导出", code="BAG_FILE_MISSING",
                           detail={"file": f.ref})


def _copy(f: FileUnderCheck, target: Path, counted: Callable[[int], None]) -> DualDigest:
    d = DualDigest()
    with _open(f) as src, target.open("xb") as out:
        while chunk := src.read(_CHUNK):
            out.write(chunk)
            d.update(chunk)
            counted(len(chunk))
    problems = []
    if f.size is not None and f.size != d.size:
        problems.append(f"大小应为 {f.size} 字节，读到 {d.size} 字节")
    if f.sha256 and f.sha256.lower() != d.sha256:
        problems.append("SHA-256 与登记值不符")
    if f.sm3 and f.sm3.lower() != d.sm3:
        problems.append("SM3 与登记值不符")
    if problems:
        raise ValidationFailed(
            f"文件“{f.name}”的内容与登记的不一致（{'；'.join(problems)}），已停止导出，请先核查该文件",
            code="BAG_SOURCE_DIGEST_MISMATCH",
            detail={"file": f.ref, "expected_sha256": f.sha256, "found_sha256": d.sha256, "found_size": d.size},
        )
    return d


def _tag_value(v: Any) -> str:
    return re.sub(r"[\r\n]+", " ", str(v)).strip()


def _human(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if n < 1024 or unit == "TB":
            return f"{n} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return str(n)


def _hash_file(path: Path) -> dict[str, str]:
    d = DualDigest()
    with path.open("rb") as fh:
        while chunk := fh.read(_CHUNK):
            d.update(chunk)
    return {"sha256": d.sha256, "sm3": d.sm3}


def _manifest_line(digest: str, rel: str) -> str:
    # bagit-python's own encoding of line breaks in names (safe_name never leaves any, the metadata may)
    return f"{digest}  {rel.replace(chr(13), '%0D').replace(chr(10), '%0A')}\n"


def export_bag(
    records: list[RecordUnderCheck],
    dest: Path,
    *,
    info: dict[str, str],
    zip_output: bool = False,
    progress: Progress | None = None,
    verify: bool = True,
) -> Path:
    """Write `records` as a BagIt bag at `dest` (a folder that must not exist yet, or be empty), or with
    `zip_output` as `dest`.zip (the bag inside one top folder named like `dest`). Returns the path written.

    `info` goes to bag-info.txt; Source-Organization is required, External-Description defaults to a Chinese
    summary, External-Identifier (also the METS OBJID) to the folder name. `progress(files_done, files_total,
    bytes_done)` is called after each file. With `verify` (default) the bag is validated by bagit-python
    before it is moved into place. Raises ValidationFailed: BAG_INFO_MISSING, BAG_DEST_EXISTS,
    BAG_FILE_MISSING, BAG_SOURCE_DIGEST_MISMATCH, BAG_INVALID.
    """
    dest = Path(dest)
    org = _tag_value(info.get("Source-Organization", ""))
    if not org:
        raise ValidationFailed("请给出移交单位（bag-info 的 Source-Organization）", code="BAG_INFO_MISSING",
                               problems=[FieldProblem("Source-Organization", "REQUIRED", "缺少移交单位", "移交单位")])
    if zip_output:
        final = dest if dest.suffix.lower() == ".zip" else dest.with_name(dest.name + ".zip")
        top = final.stem if dest.suffix.lower() == ".zip" else dest.name
    else:
        final, top = dest, dest.name
    if final.exists() and not (final.is_dir() and not any(final.iterdir())):
        raise ValidationFailed(f"目标“{final}”已存在且不为空，请换一个位置", code="BAG_DEST_EXISTS")
    final.parent.mkdir(parents=True, exist_ok=True)
    staging = final.parent / f".{top}.partial-{secrets.token_hex(4)}"
    staging.mkdir()
    try:
        _build(records, staging, info, org, top, progress)
        if verify:
            try:
                bagit.Bag(str(staging)).validate(processes=1)
            except bagit.BagError as e:  # a bug here or a disk problem: never hand out such a bag
                raise ValidationFailed(f"导出的 BagIt 包未通过校验：{e}", code="BAG_INVALID") from e
        if zip_output:
            partial = final.with_name(f".{final.name}.partial-{secrets.token_hex(4)}")
            try:
                _zip(staging, partial, top)
                os.replace(partial, final)
            finally:
                partial.unlink(missing_ok=True)
            shutil.rmtree(staging)
        else:
            if final.is_dir():
                final.rmdir()  # it was empty
            os.rename(staging, final)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return final


def _build(records: list[RecordUnderCheck], root: Path, info: dict[str, str], org: str, top: str,
           progress: Progress | None) -> None:
    data = root / "data"
    data.mkdir()
    total_files = sum(len(r.files) for r in records)
    state = {"files": 0, "bytes": 0}
    manifest: list[tuple[str, dict[str, str], int]] = []  # (path in bag, digests, size)
    described: list[RecordUnderCheck] = []
    used_folders: set[str] = set()

    def counted(n: int) -> None:
        state["bytes"] += n

    for rec in records:
        folder = _unique(safe_name(rec.archival_code or rec.ref, "档案"), used_folders)
        (data / folder).mkdir()
        used_names = {METADATA_FILE.casefold()}
        entries: list[dict[str, Any]] = []
        placed: list[FileUnderCheck] = []
        for f in rec.files:
            name = _unique(safe_name(f.name, "文件"), used_names)
            d = _copy(f, data / folder / name, counted)
            rel = f"data/{folder}/{name}"
            manifest.append((rel, {"sha256": d.sha256, "sm3": d.sm3}, d.size))
            entries.append({
                "path": name, "name": f.name, "ref": f.ref, "role": f.role, "size": d.size, "sha256": d.sha256,
                "sm3": d.sm3, "media_type": f.media_type, "format_name": f.format_name, "puid": f.puid,
                "created_at": _json_safe(f.created_at), "file_id": f.file_id,
            })
            placed.append(replace(f, size=d.size, sha256=d.sha256, sm3=d.sm3, location=rel, opener=None,
                                  local_path=None))
            state["files"] += 1
            if progress:
                progress(state["files"], total_files, state["bytes"])
        doc = {
            "format": RECORD_FORMAT, "version": 1, "ref": rec.ref, "archival_code": rec.archival_code,
            "title": rec.title, "level": rec.level, "state": rec.state, "fonds_code": rec.fonds_code,
            "category_code": rec.category_code, "class_key": rec.class_key, "seq": rec.seq,
            "record_id": rec.record_id, "department": list(rec.department) if rec.department else None,
            "parent_code": rec.parent_code, "declared_file_count": len(entries),
            "metadata": _json_safe(rec.metadata or {}), "files": entries,
        }
        meta_path = data / folder / METADATA_FILE
        meta_path.write_bytes(json.dumps(doc, ensure_ascii=False, indent=2, sort_keys=False).encode() + b"\n")
        rel = f"data/{folder}/{METADATA_FILE}"
        manifest.append((rel, _hash_file(meta_path), meta_path.stat().st_size))
        described.append(replace(rec, files=placed))

    manifest.sort(key=lambda m: m[0])
    for alg in ALGORITHMS:
        with (root / f"manifest-{alg}.txt").open("w", encoding="utf-8", newline="\n") as fh:
            for rel, digests, _size in manifest:
                fh.write(_manifest_line(digests[alg], rel))
    (root / "bagit.txt").write_text("BagIt-Version: 1.0\nTag-File-Character-Encoding: UTF-8\n", encoding="utf-8")
    payload_bytes = sum(m[2] for m in manifest)
    n_files = sum(len(r.files) for r in records)
    package_id = _tag_value(info.get("External-Identifier") or top)
    tags: dict[str, str] = {
        "Source-Organization": org,
        "Bagging-Date": dt.date.today().isoformat(),
        "External-Identifier": package_id,
        "External-Description": f"{org}移交的电子档案，共 {len(records)} 件、{n_files} 个电子文件；"
                                f"每件一个文件夹（以档号命名），{METADATA_FILE} 为该件的著录项与文件清单，"
                                f"{METS_FILE} 为 METS/PREMIS 描述",
        "Bag-Count": "1 of 1",
        "Bag-Size": _human(payload_bytes),
        "Bag-Software-Agent": f"dangan {__version__}",
    }
    for k, v in info.items():
        if k != "Payload-Oxum" and _tag_value(v):
            tags[_tag_value(k).replace(":", "")] = _tag_value(v)
    tags["Payload-Oxum"] = f"{payload_bytes}.{len(manifest)}"
    with (root / "bag-info.txt").open("w", encoding="utf-8", newline="\n") as fh:
        for k, v in tags.items():
            fh.write(f"{k}: {v}\n")
    (root / METS_FILE).write_bytes(write_mets(described, agency=org, package_id=package_id))
    tag_files = ["bagit.txt", "bag-info.txt", *(f"manifest-{a}.txt" for a in ALGORITHMS), METS_FILE]
    digests = {name: _hash_file(root / name) for name in tag_files}
    for alg in ALGORITHMS:
        with (root / f"tagmanifest-{alg}.txt").open("w", encoding="utf-8", newline="\n") as fh:
            for name in tag_files:
                fh.write(_manifest_line(digests[name][alg], name))


def _zip(root: Path, target: Path, top: str) -> None:
    with zipfile.ZipFile(target, "x", compression=zipfile.ZIP_DEFLATED, compresslevel=6, allowZip64=True) as zf:
        for path in sorted(root.rglob("*")):
            rel = path.relative_to(root).as_posix()
            if path.is_dir():
                continue
            zinfo = zipfile.ZipInfo.from_file(path, f"{top}/{rel}")
            zinfo.compress_type = zipfile.ZIP_DEFLATED
            with path.open("rb") as src, zf.open(zinfo, "w", force_zip64=zinfo.file_size > 2**31) as out:
                shutil.copyfileobj(src, out, _CHUNK)
