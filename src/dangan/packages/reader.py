"""Reading a package handed over for 移交与接收 (or re-checked later) into what the 四性 check engine compares.

`open_package` recognises
- a BagIt bag (RFC 8493; any BagIt version bagit-python reads), as a folder or a ZIP, with the bag at the
  top of the ZIP or inside one top folder;
- a DA/T 48-2009 EEP (XML; also sniffed by its root element);
- dangan's ZIP (or folder) with manifest.json (the submission format of `services.capture`);
- a plain folder (or ZIP) of files.

It reports what is there and what the package claims, and decides nothing: `entries` is every file physically
present (paths relative to the package root, NFC, "/"), `manifest` / `tag_manifest` what the manifests list
with their digests (algorithm names as in the file name: sha256, sm3, md5 …), `declared_counts` the totals
the sender declared (Payload-Oxum bytes and files; the number of records and files of manifest.json or of the
EEP), `metadata_files` and `allowed_extra` (the format's own tag files), `structure_problems` one Evidence
per thing wrong with the structure itself (unsafe or undecodable paths, malformed manifest lines, a missing
bagit.txt or bag-info.txt, a refused ZIP or EEP …), and `signatures` (EEP: `verify_eep_signatures`).

Records: our bags give one per data/<folder>/metadata.json; a bag without them one per payload folder (the
files its manifest lists); an EEP one; manifest.json one per listed record; a plain folder one per top folder.
Every FileUnderCheck carries the declared size and digests (metadata.json, else the manifest; an EEP's
计算机文件大小) and an `opener` on the bytes actually present, None when the declared file is missing.

Safety: ZIPs are opened only through `SafeZip` (zip-slip, bombs, encrypted entries, GBK names): a ZIP it
refuses becomes structure problems and no entries — nothing is expanded. With `workdir` the ZIP is extracted
there (entry by entry, through SafeZip's bounded reader) and openers read the extracted files; without it,
openers read the entries in place (the archive stays open while openers are referenced). An EEP with a
DOCTYPE/ENTITY (XML bomb, XXE) is refused by `parse_eep` before parsing and reported; its Base64 data is
decoded to spooled temporary files (in `workdir` when given). Symbolic links in folders are reported, never
followed. Nothing is fetched (a BagIt fetch.txt is reported, not downloaded).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import shutil
import stat
import tempfile
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO
from xml.parsers import expat

from dangan.capture.eep import EepFile, parse_eep
from dangan.capture.zipsafe import SafeZip, ZipEntry, entry_path
from dangan.checks.model import (
    Evidence,
    FileUnderCheck,
    ManifestEntry,
    Outcome,
    PackageEntry,
    PackageUnderCheck,
    RecordUnderCheck,
)
from dangan.errors import ValidationFailed
from dangan.packages.bagit_pkg import METADATA_FILE, METS_FILE, RECORD_FORMAT
from dangan.packages.eep_writer import ROLE_LABELS, verify_eep_signatures

__all__ = ["open_package"]

MANIFEST_JSON = "manifest.json"
_MAX_JSON = 20 * 2**20
_MAX_TAG_FILE = 4 * 2**20
_MAX_MANIFEST = 512 * 2**20
_MAX_PROBLEMS = 1000
_CHUNK = 1 << 20
_MANIFEST_RE = re.compile(r"^(tag)?manifest-([A-Za-z0-9_-]+)\.txt$")
_HEX_LEN = {"md5": 32, "sha1": 40, "sha224": 56, "sha256": 64, "sha384": 96, "sha512": 128, "sm3": 64}
_ROLE = {"主文档": "main", "附属文档": "attachment", **{v: k for k, v in ROLE_LABELS.items()}}

Opener = Callable[[], BinaryIO]


# -- sources: a folder or a ZIP, as paths → files -------------------------------------------------------


@dataclass
class _File:
    path: str                      # relative to the package root, NFC, "/"
    size: int
    opener: Opener
    local_path: str | None = None


@dataclass
class _Source:
    files: dict[str, _File] = field(default_factory=dict)
    problems: list[Evidence] = field(default_factory=list)

    def read(self, path: str, limit: int) -> bytes | None:
        f = self.files.get(path)
        if f is None:
            return None
        with f.opener() as fh:
            data = fh.read(limit + 1)
        if len(data) > limit:
            raise ValueError(f"超过 {limit // 2**20} MB")
        return bytes(data)


def _problem(message: str, *, subject: str = "", file_ref: str = "", expected: Any = None, found: Any = None,
             outcome: Outcome = Outcome.FAIL, field_: str = "") -> Evidence:
    return Evidence(message=message, subject=subject, file_ref=file_ref, expected=expected, found=found,
                    outcome=outcome, field=field_)


def _nfc(s: str) -> str:
    return unicodedata.normalize("NFC", s)


def _file_opener(path: str) -> Opener:
    return lambda: open(path, "rb")  # noqa: SIM115 - the caller closes it


def _folder_source(root: Path, label: str) -> _Source:
    src = _Source()
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False, onerror=None):
        base = Path(dirpath)
        for d in list(dirnames):
            p = base / d
            rel = _nfc(p.relative_to(root).as_posix())
            if p.is_symlink():
                src.problems.append(_problem(f"“{rel}”是符号链接，未跟随读取", subject=rel, file_ref=rel, found="符号链接"))
                dirnames.remove(d)
            elif not os.access(p, os.R_OK | os.X_OK):
                src.problems.append(_problem(f"文件夹“{rel}”无法读取（权限不足）", subject=rel, file_ref=rel))
                dirnames.remove(d)
        for name in filenames:
            p = base / name
            rel = _nfc(p.relative_to(root).as_posix())
            try:
                st = p.lstat()
            except OSError as e:
                src.problems.append(_problem(f"文件“{rel}”无法读取（{e.strerror}）", subject=rel, file_ref=rel))
                continue
            if stat.S_ISLNK(st.st_mode):
                src.problems.append(_problem(f"“{rel}”是符号链接，未跟随读取", subject=rel, file_ref=rel, found="符号链接"))
                continue
            if not stat.S_ISREG(st.st_mode):
                src.problems.append(_problem(f"“{rel}”不是普通文件（设备、管道等）", subject=rel, file_ref=rel))
                continue
            if not os.access(p, os.R_OK):
                src.problems.append(_problem(f"文件“{rel}”无法读取（权限不足）", subject=rel, file_ref=rel))
                continue
            if rel in src.files:
                src.problems.append(_problem(f"“{rel}”与另一个文件的名称仅 Unicode 规范化形式不同", subject=rel,
                                             file_ref=rel))
                continue
            src.files[rel] = _File(rel, st.st_size, _file_opener(str(p)), str(p))
    return src


def _zip_problems(e: ValidationFailed, label: str) -> list[Evidence]:
    if not e.problems:
        return [_problem(f"压缩包已拒收：{e.message}（{e.code}）", subject=label, file_ref=label, field_=e.code)]
    out = [_problem(f"压缩包已拒收：{e.message}（{e.code}）", subject=label, file_ref=label, field_=e.code)]
    for p in e.problems:
        out.append(_problem(f"{p.message}（{p.code}）", subject=p.field, file_ref=p.field, found=p.field, field_=p.code))
    return out


def _zip_source(zf: SafeZip, workdir: Path | None, label: str) -> _Source:
    src = _Source()
    target: Path | None = None
    if workdir is not None:
        workdir.mkdir(parents=True, exist_ok=True)
        target = Path(tempfile.mkdtemp(prefix=f"{_safe_stem(label)}-", dir=workdir))
    for entry in zf.files():
        if target is None:
            src.files[entry.name] = _File(entry.name, entry.size, _zip_opener(zf, entry))
            continue
        dest = entry_path(target, entry)
        dest.parent.mkdir(parents=True, exist_ok=True)
        try:
            with zf.open(entry) as fin, dest.open("xb") as fout:
                shutil.copyfileobj(fin, fout, _CHUNK)
        except ValidationFailed as e:  # a damaged entry (CRC, truncated) or a lying header: report, go on
            dest.unlink(missing_ok=True)
            src.problems.append(_problem(f"压缩包中的“{entry.name}”无法解压：{e.message}", subject=entry.name,
                                         file_ref=entry.name, field_=e.code))
            continue
        src.files[entry.name] = _File(entry.name, entry.size, _file_opener(str(dest)), str(dest))
    return src


def _zip_opener(zf: SafeZip, entry: ZipEntry) -> Opener:
    return lambda: zf.open(entry)


def _safe_stem(label: str) -> str:
    return re.sub(r"[^\w.-]+", "_", Path(label).stem)[:40] or "package"


def _sub_source(src: _Source, prefix: str) -> tuple[_Source, list[str]]:
    """The files under `prefix/` re-rooted there, and the paths left outside it."""
    out = _Source(problems=src.problems)
    outside = []
    for path, f in src.files.items():
        if path.startswith(prefix + "/"):
            rel = path[len(prefix) + 1:]
            out.files[rel] = _File(rel, f.size, f.opener, f.local_path)
        else:
            outside.append(path)
    return out, outside


# -- helpers ---------------------------------------------------------------------------------------------


def _digest_file(path: Path) -> dict[str, str]:
    sha, sm3 = hashlib.sha256(), hashlib.new("sm3")
    with path.open("rb") as fh:
        while chunk := fh.read(_CHUNK):
            sha.update(chunk)
            sm3.update(chunk)
    return {"sha256": sha.hexdigest(), "sm3": sm3.hexdigest()}


def _sent_digest(path: Path) -> dict[str, str] | None:
    """Digests the sender announced beside the package: <name>.sha256 / <name>.sm3 (sha256sum style)."""
    out: dict[str, str] = {}
    for alg in ("sha256", "sm3"):
        side = path.with_name(f"{path.name}.{alg}")
        try:
            if side.is_file() and side.stat().st_size < 4096:
                m = re.match(r"\s*([0-9A-Fa-f]{64})\b", side.read_text("utf-8", errors="replace"))
                if m:
                    out[alg] = m.group(1).lower()
        except OSError:
            continue
    return out or None


def _safe_rel(path: str) -> tuple[str, str | None]:
    """(normalised relative path, reason it is unsafe or None) of a path written in a manifest."""
    s = _nfc(path).replace("\\", "/")
    if re.search(r"[\x00-\x1f\x7f]", s):
        return s, "含控制字符"
    if s.startswith("/") or re.match(r"^[A-Za-z]:", s) or s.startswith("~"):
        return s, "绝对路径"
    parts = [p for p in s.split("/") if p not in ("", ".")]
    if any(p == ".." for p in parts):
        return s, "路径含“..”，指向包外"
    if not parts:
        return s, "路径为空"
    return "/".join(parts), None


def _decode_bagit_path(s: str) -> str:
    """RFC 8493 §2.1.3: %0A, %0D and %25 in manifest paths (bagit-python decodes the first two only)."""
    return re.sub(r"%(0[AaDd]|25)", lambda m: chr(int(m.group(1), 16)), s)


def _parse_tag_text(text: str) -> tuple[dict[str, list[str]], list[tuple[int, str]]]:
    """Tags of bagit.txt / bag-info.txt (continuation lines start with whitespace), and bad lines."""
    tags: dict[str, list[str]] = {}
    bad: list[tuple[int, str]] = []
    last: str | None = None
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        if line[:1] in (" ", "\t") and last is not None:
            tags[last][-1] += " " + line.strip()
            continue
        if ":" not in line:
            bad.append((n, line))
            continue
        k, v = line.split(":", 1)
        last = k.strip()
        tags.setdefault(last, []).append(v.strip())
    return tags, bad


def _short(s: str, n: int = 80) -> str:
    return s if len(s) <= n else s[:n] + "…"


# -- BagIt ----------------------------------------------------------------------------------------------


def _find_bag_root(src: _Source) -> str | None:
    if "bagit.txt" in src.files:
        return ""
    tops = {p.split("/", 1)[0] for p in src.files if "/" in p}
    candidates = [t for t in tops if f"{t}/bagit.txt" in src.files]
    if len(candidates) == 1:
        return candidates[0]
    return None


def _read_manifest(src: _Source, name: str, alg: str, pkg: PackageUnderCheck, payload: bool
                   ) -> dict[str, str]:
    """path → digest of one manifest; every malformed, unsafe or duplicate line is a structure problem."""
    out: dict[str, str] = {}
    f = src.files[name]
    if f.size > _MAX_MANIFEST:
        pkg.structure_problems.append(_problem(f"{name} 超过 {_MAX_MANIFEST // 2**20} MB，未读取", subject=name,
                                               file_ref=name))
        return out
    want_len = _HEX_LEN.get(alg)
    try:
        known = hashlib.new(alg) is not None
    except (ValueError, TypeError):
        known = False
    if not known:
        pkg.structure_problems.append(_problem(
            f"{name} 使用了本系统不支持的摘要算法“{alg}”，其中的摘要无法核对", subject=name, file_ref=name,
            outcome=Outcome.WARN))
    with f.opener() as fh:
        raw = fh.read()
    if raw.startswith(b"\xef\xbb\xbf"):
        pkg.structure_problems.append(_problem(f"{name} 以 UTF-8 BOM 开头，不符合 BagIt 规范", subject=name, file_ref=name,
                                               outcome=Outcome.WARN))
        raw = raw[3:]
    text = raw.decode("utf-8", errors="replace")
    if "\ufffd" in text:
        pkg.structure_problems.append(_problem(f"{name} 不是有效的 UTF-8 文本，部分路径无法识别", subject=name,
                                               file_ref=name))
    for n, line in enumerate(text.splitlines(), 1):
        if len(pkg.structure_problems) > _MAX_PROBLEMS:
            break
        s = line.strip()
        if not s or s.startswith("#"):
            continue
        parts = s.split(None, 1)
        where = f"{name} 第 {n} 行"
        if len(parts) != 2:
            pkg.structure_problems.append(_problem(f"{where}格式错误（应为“摘要 路径”）：{_short(s)}", subject=name,
                                                   file_ref=name, found=_short(s)))
            continue
        digest, path = parts[0].lower(), _decode_bagit_path(parts[1].lstrip("*"))
        if not re.fullmatch(r"[0-9a-f]+", digest) or (want_len and len(digest) != want_len):
            pkg.structure_problems.append(_problem(
                f"{where}的摘要“{_short(parts[0], 20)}”不是 {alg} 的十六进制摘要", subject=path, file_ref=path,
                expected=f"{want_len or ''} 位十六进制", found=_short(parts[0], 80)))
            continue
        rel, why = _safe_rel(path)
        if why:
            pkg.structure_problems.append(_problem(f"{where}的路径“{_short(path)}”不安全：{why}", subject=path,
                                                   file_ref=path, found=path))
            continue
        if payload and not rel.startswith("data/"):
            pkg.structure_problems.append(_problem(f"{where}的“{rel}”不在 data/ 目录下", subject=rel, file_ref=rel,
                                                   found=rel))
            continue
        if not payload and rel.startswith("data/"):
            pkg.structure_problems.append(_problem(f"{where}的“{rel}”是内容文件，不应列在标签清单中", subject=rel,
                                                   file_ref=rel, outcome=Outcome.WARN))
        if rel in out:
            same = out[rel] == digest
            pkg.structure_problems.append(_problem(
                f"{where}重复列出“{rel}”" + ("" if same else "，且摘要不同"), subject=rel, file_ref=rel,
                expected=out[rel], found=digest, outcome=Outcome.WARN if same else Outcome.FAIL))
            continue
        out[rel] = digest
    return out


class _Missing(Exception):
    pass


def _read_bag(src: _Source, pkg: PackageUnderCheck) -> list[RecordUnderCheck]:
    files = src.files
    pkg.kind = "bagit"
    own = ["bagit.txt"]
    # bagit.txt
    try:
        raw = src.read("bagit.txt", _MAX_TAG_FILE)
        if raw is None:
            raise _Missing()
        if raw.startswith(b"\xef\xbb\xbf"):
            pkg.structure_problems.append(_problem("bagit.txt 以 UTF-8 BOM 开头，不符合 BagIt 规范",
                                                   subject="bagit.txt", file_ref="bagit.txt"))
            raw = raw[3:]
        tags, bad = _parse_tag_text(raw.decode("utf-8", errors="replace"))
        for key in ("BagIt-Version", "Tag-File-Character-Encoding"):
            if key not in tags:
                pkg.structure_problems.append(_problem(f"bagit.txt 缺少“{key}”", subject="bagit.txt",
                                                       file_ref="bagit.txt", expected=key, found="无"))
        version = (tags.get("BagIt-Version") or [""])[0]
        if version and not re.fullmatch(r"\d+\.\d+", version):
            pkg.structure_problems.append(_problem(f"bagit.txt 的 BagIt-Version“{version}”无效", subject="bagit.txt",
                                                   file_ref="bagit.txt", found=version))
        encoding = (tags.get("Tag-File-Character-Encoding") or ["UTF-8"])[0]
        if encoding.replace("-", "").lower() != "utf8":
            pkg.structure_problems.append(_problem(
                f"标签文件编码为“{encoding}”，本系统按 UTF-8 读取", subject="bagit.txt", file_ref="bagit.txt",
                expected="UTF-8", found=encoding, outcome=Outcome.WARN))
    except _Missing:
        pass  # reported by the caller
    except (OSError, ValueError, ValidationFailed) as e:
        pkg.structure_problems.append(_problem(f"bagit.txt 无法读取：{e}", subject="bagit.txt", file_ref="bagit.txt"))
    # bag-info.txt
    info: dict[str, list[str]] = {}
    if "bag-info.txt" in files:
        own.append("bag-info.txt")
        pkg.metadata_files.append("bag-info.txt")
        try:
            raw = src.read("bag-info.txt", _MAX_TAG_FILE) or b""
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                pkg.structure_problems.append(_problem(f"bag-info.txt 不是 UTF-8 编码（第 {e.start} 字节）",
                                                       subject="bag-info.txt", file_ref="bag-info.txt"))
                text = raw.decode("utf-8", errors="replace")
            info, bad = _parse_tag_text(text.lstrip("\ufeff"))
            for n, line in bad[:20]:
                pkg.structure_problems.append(_problem(f"bag-info.txt 第 {n} 行不是“名称: 值”格式：{_short(line)}",
                                                       subject="bag-info.txt", file_ref="bag-info.txt"))
        except (OSError, ValueError, ValidationFailed) as e:
            pkg.structure_problems.append(_problem(f"bag-info.txt 无法读取：{e}", subject="bag-info.txt",
                                                   file_ref="bag-info.txt"))
    else:
        pkg.structure_problems.append(_problem("缺少 bag-info.txt（应写明移交单位、打包日期、Payload-Oxum 等）",
                                               subject="bag-info.txt", file_ref="bag-info.txt",
                                               expected="bag-info.txt", found="无"))
    oxum = (info.get("Payload-Oxum") or [None])[0]
    if oxum is not None:
        m = re.fullmatch(r"(\d+)\.(\d+)", oxum)
        if m:
            pkg.declared_counts["bytes"] = int(m.group(1))
            pkg.declared_counts["files"] = int(m.group(2))
        else:
            pkg.structure_problems.append(_problem(f"bag-info.txt 的 Payload-Oxum“{_short(oxum)}”格式错误（应为 字节数.文件数）",
                                                   subject="bag-info.txt", file_ref="bag-info.txt",
                                                   field_="Payload-Oxum", found=oxum))
    elif info:
        pkg.structure_problems.append(_problem("bag-info.txt 没有 Payload-Oxum（内容总字节数与文件数）",
                                               subject="bag-info.txt", file_ref="bag-info.txt",
                                               field_="Payload-Oxum", outcome=Outcome.WARN))
    if "data" not in {p.split("/", 1)[0] for p in files if "/" in p}:
        pkg.structure_problems.append(_problem("缺少 data/ 内容目录（或其中没有文件）", subject="data/", file_ref="data/",
                                               outcome=Outcome.WARN))
    if "fetch.txt" in files:
        own.append("fetch.txt")
        pkg.structure_problems.append(_problem("包含 fetch.txt：部分文件需从网络获取，本系统不下载，这些文件视为缺失",
                                               subject="fetch.txt", file_ref="fetch.txt"))
    # manifests
    payload: dict[str, dict[str, str]] = {}
    tagm: dict[str, dict[str, str]] = {}
    for name in sorted(p for p in files if "/" not in p):
        m = _MANIFEST_RE.match(name)
        if not m:
            continue
        own.append(name)
        is_tag, alg = bool(m.group(1)), m.group(2).lower()
        for path, digest in _read_manifest(src, name, alg, pkg, payload=not is_tag).items():
            (tagm if is_tag else payload).setdefault(path, {})[alg] = digest
    if not any(_MANIFEST_RE.match(p) and not p.startswith("tag") for p in files if "/" not in p):
        pkg.structure_problems.append(_problem("缺少内容清单 manifest-<算法>.txt", subject=pkg.label,
                                               expected="manifest-sha256.txt", found="无"))
    pkg.manifest = [ManifestEntry(p, d) for p, d in sorted(payload.items())]
    pkg.tag_manifest = [ManifestEntry(p, d) for p, d in sorted(tagm.items())]
    if METS_FILE in files:
        pkg.metadata_files.append(METS_FILE)
    pkg.allowed_extra = own
    return _bag_records(src, pkg, payload)


def _bag_records(src: _Source, pkg: PackageUnderCheck, payload: dict[str, dict[str, str]]
                 ) -> list[RecordUnderCheck]:
    folders: dict[str, list[str]] = {}
    for path in sorted(set(payload) | {p for p in src.files if p.startswith("data/")}):
        rest = path[len("data/"):]
        folder = rest.split("/", 1)[0] if "/" in rest else ""
        folders.setdefault(folder, []).append(path)
    records: list[RecordUnderCheck] = []
    for folder, paths in sorted(folders.items()):
        meta_path = f"data/{folder}/{METADATA_FILE}" if folder else ""
        rec = _our_record(src, pkg, folder, meta_path, payload, paths) if meta_path in src.files else None
        if rec is None:
            declared = [p for p in paths if p in payload]  # the manifest is what the sender declared
            rec = RecordUnderCheck(ref=folder or "data", title=folder or "data")
            for p in declared:
                rec.files.append(_file_for(src, p, Path(p).name, payload.get(p, {})))
            rec.declared_file_count = len(declared)
        records.append(rec)
    return records


def _file_for(src: _Source, path: str, name: str, digests: dict[str, str], *, ref: str | None = None,
              role: str = "main", size: int | None = None, media_type: str | None = None,
              format_name: str | None = None, puid: str | None = None, created_at: Any = None,
              sha256: str | None = None, sm3: str | None = None) -> FileUnderCheck:
    phys = src.files.get(path)
    return FileUnderCheck(
        ref=ref or path, name=name, role=role, size=size, sha256=sha256 or digests.get("sha256"),
        sm3=sm3 or digests.get("sm3"), media_type=media_type, format_name=format_name, puid=puid,
        created_at=_parse_dt(created_at), location=path, opener=phys.opener if phys else None,
        local_path=phys.local_path if phys else None,
    )


def _parse_dt(v: Any) -> Any:
    import datetime as dt

    if not v or not isinstance(v, str):
        return None
    try:
        return dt.datetime.fromisoformat(v)
    except ValueError:
        return None


def _load_json(src: _Source, path: str, pkg: PackageUnderCheck) -> Any:
    try:
        raw = src.read(path, _MAX_JSON)
        return json.loads((raw or b"").decode("utf-8-sig"))
    except UnicodeDecodeError as e:
        why = f"不是 UTF-8 编码（第 {e.start} 字节）"
    except json.JSONDecodeError as e:
        why = f"不是有效的 JSON（第 {e.lineno} 行第 {e.colno} 列：{e.msg}）"
    except ValueError as e:
        why = str(e)
    except (OSError, ValidationFailed) as e:
        why = f"无法读取（{e}）"
    pkg.structure_problems.append(_problem(f"{path} {why}", subject=path, file_ref=path))
    return None


def _our_record(src: _Source, pkg: PackageUnderCheck, folder: str, meta_path: str,
                payload: dict[str, dict[str, str]], folder_paths: list[str] | None = None) -> RecordUnderCheck | None:
    doc = _load_json(src, meta_path, pkg)
    if not isinstance(doc, dict) or doc.get("format") != RECORD_FORMAT:
        return None  # not ours: the folder is read as a plain payload folder (metadata.json is one of its files)
    pkg.metadata_files.append(meta_path)
    md = doc.get("metadata") if isinstance(doc.get("metadata"), dict) else {}
    rec = RecordUnderCheck(
        ref=str(doc.get("ref") or folder), title=str(doc.get("title") or md.get("title") or ""),
        archival_code=doc.get("archival_code") or None, record_id=None, level=str(doc.get("level") or "item"),
        state=doc.get("state"), category_code=doc.get("category_code"), fonds_code=doc.get("fonds_code"),
        metadata=md, class_key=doc.get("class_key"), seq=doc.get("seq") if isinstance(doc.get("seq"), int) else None,
        parent_code=doc.get("parent_code") or None,
    )
    dep = doc.get("department")
    if isinstance(dep, list) and len(dep) == 2 and all(isinstance(x, str) for x in dep):
        rec.department = (dep[0], dep[1])
    listed = doc.get("files") if isinstance(doc.get("files"), list) else []
    if not isinstance(doc.get("files"), list):
        pkg.structure_problems.append(_problem(f"{meta_path} 缺少 files 文件清单", subject=meta_path, file_ref=meta_path))
    seen: set[str] = set()
    for i, fd in enumerate(listed):
        where = f"{meta_path} files[{i}]"
        if not isinstance(fd, dict) or not isinstance(fd.get("path"), str):
            pkg.structure_problems.append(_problem(f"{where} 缺少 path", subject=meta_path, file_ref=meta_path))
            continue
        rel, why = _safe_rel(fd["path"])
        if why or "/" in rel:
            pkg.structure_problems.append(_problem(f"{where} 的路径“{_short(fd['path'])}”不安全：{why or '不在本件文件夹内'}",
                                                   subject=meta_path, file_ref=meta_path, found=fd["path"]))
            continue
        path = f"data/{folder}/{rel}"
        seen.add(path)
        digests = payload.get(path, {})
        sha256 = _hex(fd.get("sha256"))
        sm3 = _hex(fd.get("sm3"))
        for alg, mine in (("sha256", sha256), ("sm3", sm3)):
            theirs = digests.get(alg)
            if mine and theirs and mine != theirs:
                pkg.structure_problems.append(_problem(
                    f"“{path}”在 {METADATA_FILE} 与 manifest-{alg}.txt 中登记的摘要不同", subject=path, file_ref=path,
                    expected=mine, found=theirs))
        size = fd.get("size") if isinstance(fd.get("size"), int) and not isinstance(fd.get("size"), bool) else None
        rec.files.append(_file_for(
            src, path, str(fd.get("name") or rel), digests, ref=str(fd.get("ref") or path),
            role=_ROLE.get(str(fd.get("role") or "main"), str(fd.get("role") or "main")), size=size, media_type=fd.get("media_type"),
            format_name=fd.get("format_name"), puid=fd.get("puid"), created_at=fd.get("created_at"),
            sha256=sha256, sm3=sm3))
    rec.declared_file_count = len(listed)
    # the folder's own paths (not a scan of the whole manifest per record: that made opening a bag quadratic)
    mine = folder_paths if folder_paths is not None else [p for p in payload if p.startswith(f"data/{folder}/")]
    for path in sorted(p for p in mine if p in payload and p != meta_path and p not in seen):
        pkg.structure_problems.append(_problem(
            f"“{path}”列在清单中，但没有登记在该件的 {METADATA_FILE} 里", subject=path, file_ref=path,
            outcome=Outcome.WARN))
    return rec


def _hex(v: Any) -> str | None:
    return v.strip().lower() if isinstance(v, str) and v.strip() else None


# -- manifest.json (dangan submission format) ------------------------------------------------------------


def _read_manifest_json(src: _Source, pkg: PackageUnderCheck) -> list[RecordUnderCheck]:
    pkg.metadata_files.append(MANIFEST_JSON)
    pkg.allowed_extra.append(MANIFEST_JSON)
    data = _load_json(src, MANIFEST_JSON, pkg)
    if not isinstance(data, dict) or not isinstance(data.get("records"), list):
        if data is not None:
            pkg.structure_problems.append(_problem(f"{MANIFEST_JSON} 应为对象，并以 records 列出档案",
                                                   subject=MANIFEST_JSON, file_ref=MANIFEST_JSON))
        return []
    by_base: dict[str, list[str]] = {}
    for p in src.files:
        by_base.setdefault(p.rsplit("/", 1)[-1], []).append(p)
    records: list[RecordUnderCheck] = []
    manifest: dict[str, ManifestEntry] = {}
    n_files = 0
    for i, r in enumerate(data["records"]):
        where = f"{MANIFEST_JSON} records[{i}]"
        if not isinstance(r, dict):
            pkg.structure_problems.append(_problem(f"{where} 不是对象", subject=MANIFEST_JSON, file_ref=MANIFEST_JSON))
            continue
        md = r.get("metadata") if isinstance(r.get("metadata"), dict) else {}
        rec = RecordUnderCheck(
            ref=str(r.get("sender_ref") or f"records[{i}]"), title=str(md.get("title") or ""),
            archival_code=md.get("archival_code") or r.get("archival_code") or None, metadata=md,
            fonds_code=r.get("fonds") or data.get("fonds"), category_code=r.get("category") or data.get("category"),
            level=str(r.get("level") or data.get("level") or "item"),
        )
        raw_files = r.get("files") if isinstance(r.get("files"), list) else []
        for j, fd in enumerate(raw_files):
            path = fd.get("path") if isinstance(fd, dict) else fd
            if not isinstance(path, str) or not path.strip():
                pkg.structure_problems.append(_problem(f"{where}.files[{j}] 缺少 path", subject=MANIFEST_JSON,
                                                       file_ref=MANIFEST_JSON))
                continue
            rel, why = _safe_rel(path.strip())
            if why:
                pkg.structure_problems.append(_problem(f"{where}.files[{j}] 的路径“{_short(path)}”不安全：{why}",
                                                       subject=path, file_ref=path, found=path))
                continue
            if rel not in src.files:  # as submission does: a unique base name is accepted for a bare name
                alts = by_base.get(rel.rsplit("/", 1)[-1], []) if "/" not in rel else []
                if len(alts) == 1:
                    rel = alts[0]
            fdict = fd if isinstance(fd, dict) else {}
            size = fdict.get("size") if isinstance(fdict.get("size"), int) else None
            digests = {k: v for k in ("sha256", "sm3") if (v := _hex(fdict.get(k)))}
            role_raw = str(fdict.get("role") or ("main" if j == 0 else "attachment"))
            rec.files.append(_file_for(src, rel, rel.rsplit("/", 1)[-1], digests, role=_ROLE.get(role_raw, role_raw),
                                       size=size))
            entry = manifest.setdefault(rel, ManifestEntry(rel, {}, size))
            entry.digests.update(digests)
            n_files += 1
        rec.declared_file_count = len(raw_files)
        records.append(rec)
    pkg.manifest = list(manifest.values())
    pkg.declared_counts = {"records": len(data["records"]), "files": n_files}
    return records


# -- plain folders ----------------------------------------------------------------------------------------


def _plain_records(src: _Source) -> list[RecordUnderCheck]:
    groups: dict[str, list[str]] = {}
    for path in sorted(src.files):
        top = path.split("/", 1)[0] if "/" in path else ""
        groups.setdefault(top, []).append(path)
    records = []
    for top, paths in groups.items():
        rec = RecordUnderCheck(ref=top or ".", title=top or "")
        for p in paths:
            rec.files.append(_file_for(src, p, p.rsplit("/", 1)[-1], {}))
        records.append(rec)
    return records


# -- EEP -------------------------------------------------------------------------------------------------


class _PreadReader(io.RawIOBase):
    """Reads a file descriptor from offset 0 with pread: independent readers on one spooled temp file."""

    def __init__(self, fd: int, size: int, keep: Any) -> None:
        super().__init__()
        self._fd, self._size, self._pos, self._keep = fd, size, 0, keep

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        n = min(len(b), self._size - self._pos)
        if n <= 0:
            return 0
        data = os.pread(self._fd, n, self._pos)
        b[: len(data)] = data
        self._pos += len(data)
        return len(data)

    def close(self) -> None:  # the spooled file belongs to the package, not to this reader
        self._keep = None
        super().close()


def _eep_opener(f: EepFile) -> Opener:
    stream: Any = f.data_stream
    inner = getattr(stream, "_file", stream)
    if isinstance(inner, io.BytesIO):
        data = inner.getvalue()
        return lambda: io.BytesIO(data)
    fd = stream.fileno()
    size = f.size
    return lambda: io.BufferedReader(_PreadReader(fd, size, stream), buffer_size=_CHUNK)  # type: ignore[return-value]


class _Stop(Exception):
    pass


def _eep_archival_code(path: Path) -> str | None:
    """The leading text of 文件实体/档号 (dangan writes the whole 档号 there); stops reading at 文件数据."""
    names: list[str] = []
    text: list[str] = []
    found: dict[str, str] = {}

    def start(name: str, attrs: Any) -> None:
        local = name.rsplit(":", 1)[-1]
        if local == "文件数据":
            raise _Stop()
        if names and names[-1] == "档号" and "档号" not in found:
            found["档号"] = "".join(text)
        names.append(local)
        if local == "档号":
            text.clear()

    def end(name: str) -> None:
        local = names.pop()
        if local == "档号":
            found.setdefault("档号", "".join(text))
            raise _Stop()

    def chars(data: str) -> None:
        if names and names[-1] == "档号":
            text.append(data)

    def refuse(*_a: Any) -> None:
        raise _Stop()

    p = expat.ParserCreate()
    p.StartElementHandler, p.EndElementHandler, p.CharacterDataHandler = start, end, chars
    p.StartDoctypeDeclHandler = refuse
    p.EntityDeclHandler = refuse
    try:
        with path.open("rb") as fh:
            while chunk := fh.read(64 * 1024):
                p.Parse(chunk, False)
    except (_Stop, expat.ExpatError, OSError):
        pass
    code = found.get("档号", "").strip(" \t\r\n\u3000")
    return code or None


def _read_eep(path: Path, pkg: PackageUnderCheck, eep_xsd: Path | None, workdir: Path | None
              ) -> list[RecordUnderCheck]:
    pkg.kind = "eep"
    pkg.metadata_files.append(pkg.label)
    tmp = str(workdir) if workdir is not None else None
    if workdir is not None:
        workdir.mkdir(parents=True, exist_ok=True)
    try:
        eep = parse_eep(path, xsd_path=eep_xsd, tmp_dir=Path(tmp) if tmp else None)
    except ValidationFailed as e:
        for ev in _eep_problems(e, pkg.label):
            pkg.structure_problems.append(ev)
        if e.code != "EEP_INVALID" or eep_xsd is None:
            return []  # DOCTYPE (XML bomb), not well-formed, too large: nothing is read further
        try:  # schema errors: reported above; still read what the package says, without the schema
            eep = parse_eep(path, xsd_path=None, tmp_dir=Path(tmp) if tmp else None)
        except ValidationFailed:
            return []
    try:
        pkg.signatures = [c.as_dict() for c in verify_eep_signatures(path)]
    except ValidationFailed as e:
        pkg.structure_problems.append(_problem(f"电子签名无法验证：{e.message}", subject=pkg.label, file_ref=pkg.label))
    for p in eep.raw_problems:
        pkg.structure_problems.append(_problem(f"{p.label or p.field}：{p.message}", subject=pkg.label,
                                               file_ref=pkg.label, field_=p.field, found=p.value,
                                               outcome=Outcome.WARN))
    md = dict(eep.metadata)  # the department travels as RecordUnderCheck.department, not as a metadata field
    rec = RecordUnderCheck(ref=eep.sender_ref or path.stem, title=str(md.get("title") or ""),
                           archival_code=_eep_archival_code(path), fonds_code=eep.fonds_code or None, metadata=md,
                           department=(eep.department, "") if eep.department else None)
    used: set[str] = set()
    declared_total = 0
    sizes_known = True
    for i, f in enumerate(eep.files, 1):
        name = f.name
        entry_name = name if name not in used else f"{i}-{name}"
        used.add(entry_name)
        opener = _eep_opener(f)
        pkg.entries.append(PackageEntry(entry_name, f.size, opener))
        declared: int | None = None
        if re.fullmatch(r"\s*\d+\s*", f.declared_size or ""):
            declared = int(f.declared_size)
            declared_total += declared
        else:
            sizes_known = False
            if f.declared_size:
                pkg.structure_problems.append(_problem(
                    f"“{name}”的计算机文件大小“{_short(f.declared_size, 30)}”不是字节数", subject=entry_name,
                    file_ref=entry_name, found=f.declared_size, outcome=Outcome.WARN))
        pkg.manifest.append(ManifestEntry(entry_name, {}, declared))
        rec.files.append(FileUnderCheck(
            ref=f"{f.document_id or 'DOC'}/{i}", name=name, role=_ROLE.get(f.role, f.role or "main"), size=declared,
            format_name=f.format or None, location=entry_name, opener=opener))
    rec.declared_file_count = len(eep.files)
    pkg.declared_counts = {"records": 1, "files": len(eep.files)}
    if sizes_known and eep.files:
        pkg.declared_counts["bytes"] = declared_total
    return [rec]


def _eep_problems(e: ValidationFailed, label: str) -> list[Evidence]:
    head = _problem(f"封装包已拒收：{e.message}（{e.code}）", subject=label, file_ref=label, field_=e.code)
    out = [head]
    for p in e.problems[:_MAX_PROBLEMS]:
        out.append(_problem(p.message, subject=label, file_ref=label, field_=p.field, found=p.value))
    return out


# -- entry point -----------------------------------------------------------------------------------------


def _sniff(path: Path) -> str:
    try:
        with path.open("rb") as fh:
            head = fh.read(8192)
    except OSError as e:
        raise ValidationFailed(f"无法读取“{path.name}”（{e.strerror}）", code="PACKAGE_UNREADABLE") from e
    if head[:4] in (b"PK\x03\x04", b"PK\x05\x06", b"PK\x07\x08"):
        return "zip"
    if path.suffix.lower() == ".xml" or "电子文件封装包".encode() in head:
        return "eep"
    if path.suffix.lower() == ".zip":
        return "zip"
    return ""


def open_package(path: Path, *, eep_xsd: Path | None = None, workdir: Path | None = None
                 ) -> tuple[PackageUnderCheck, list[RecordUnderCheck]]:
    """What the package at `path` holds and claims, and its records (see the module docstring).

    Raises ValidationFailed only when `path` is not a package at all (missing, unreadable, or a single file
    that is neither a ZIP nor an EEP); everything wrong inside a package is in `structure_problems`."""
    path = Path(path)
    if not path.exists():
        raise ValidationFailed(f"找不到数据包“{path}”", code="PACKAGE_NOT_FOUND")
    label = path.name
    pkg = PackageUnderCheck(kind="folder", label=label)
    if path.is_dir():
        src = _folder_source(path, label)
        return _finish(src, pkg, eep_xsd, workdir)
    kind = _sniff(path)
    if not kind:
        raise ValidationFailed(f"“{label}”不是可识别的数据包（应为 BagIt 包、DA/T 48 封装包 XML 或 ZIP 数据包）",
                               code="PACKAGE_UNKNOWN_FORMAT")
    pkg.received_digest = _digest_file(path)
    pkg.sent_digest = _sent_digest(path)
    if kind == "eep":
        records = _read_eep(path, pkg, eep_xsd, workdir)
        return pkg, records
    pkg.kind = "zip"
    try:
        zf = SafeZip(path)
    except ValidationFailed as e:
        pkg.structure_problems.extend(_zip_problems(e, label))
        return pkg, []
    try:
        src = _zip_source(zf, workdir, label)
    except BaseException:
        zf.close()
        raise
    if workdir is not None:
        zf.close()
    return _finish(src, pkg, eep_xsd, workdir)


def _is_eep_batch(src: _Source) -> bool:
    """A folder or ZIP holding only DA/T 48 封装包 (one XML per 件), as an EEP export of several records is."""
    if not src.files or not all(p.lower().endswith(".xml") and "/" not in p for p in src.files):
        return False
    return all("电子文件封装包".encode() in _head(src, p) for p in src.files)


def _head(src: _Source, path: str, n: int = 4096) -> bytes:
    with src.files[path].opener() as fh:
        return bytes(fh.read(n))


def _read_eep_batch(src: _Source, pkg: PackageUnderCheck, eep_xsd: Path | None, workdir: Path | None
                    ) -> list[RecordUnderCheck]:
    """Each EEP read as its own package, merged: its files appear as "<xml name>/<file name>"."""
    pkg.kind = "eep"
    records: list[RecordUnderCheck] = []
    totals = {"records": 0, "files": 0, "bytes": 0}
    bytes_known = True
    for p in sorted(src.files):
        f = src.files[p]
        local = f.local_path
        spooled = None
        if local is None:
            fd, spooled = tempfile.mkstemp(prefix="eep-", suffix=".xml", dir=str(workdir) if workdir else None)
            with os.fdopen(fd, "wb") as out, f.opener() as fin:
                shutil.copyfileobj(fin, out, _CHUNK)
            local = spooled
        sub = PackageUnderCheck(kind="eep", label=p)
        recs = _read_eep(Path(local), sub, eep_xsd, workdir)
        pkg.metadata_files.append(p)
        pkg.structure_problems.extend(sub.structure_problems)
        pkg.signatures.extend({**sig, "signer": f"{p}：{sig.get('signer') or '签名'}"} for sig in sub.signatures)
        for e in sub.entries:
            pkg.entries.append(PackageEntry(f"{p}/{e.path}", e.size, e.opener, e.local_path))
        for m in sub.manifest:
            pkg.manifest.append(ManifestEntry(f"{p}/{m.path}", m.digests, m.size))
        for r in recs:
            for fu in r.files:
                fu.location = f"{p}/{fu.location}"
            records.append(r)
        for k in totals:
            if k in sub.declared_counts:
                totals[k] += sub.declared_counts[k]
            elif k == "bytes":
                bytes_known = False
    pkg.declared_counts = {k: v for k, v in totals.items() if k != "bytes" or bytes_known}
    return records


def _finish(src: _Source, pkg: PackageUnderCheck, eep_xsd: Path | None = None, workdir: Path | None = None
            ) -> tuple[PackageUnderCheck, list[RecordUnderCheck]]:
    pkg.structure_problems.extend(src.problems)
    root = _find_bag_root(src)
    if root is None and any(p.startswith("data/") for p in src.files) and any(
            _MANIFEST_RE.match(p) for p in src.files if "/" not in p):
        pkg.structure_problems.append(_problem("有 data/ 目录和 manifest 清单，但缺少 bagit.txt，不是完整的 BagIt 包",
                                               subject="bagit.txt", file_ref="bagit.txt", expected="bagit.txt",
                                               found="无"))
        root = ""
    if root is not None:
        if root:
            src, outside = _sub_source(src, root)
            for p in outside:
                pkg.structure_problems.append(_problem(f"“{p}”在 BagIt 包目录“{root}/”之外", subject=p, file_ref=p,
                                                       found=p))
        records = _read_bag(src, pkg)
    elif MANIFEST_JSON in src.files:
        records = _read_manifest_json(src, pkg)
    elif _is_eep_batch(src):
        records = _read_eep_batch(src, pkg, eep_xsd, workdir)
        return pkg, records
    else:
        if pkg.kind == "zip":
            pkg.structure_problems.append(_problem(
                "压缩包中既没有 bagit.txt（BagIt 包）也没有 manifest.json（数据包清单），按普通文件夹读取",
                subject=pkg.label, file_ref=pkg.label, outcome=Outcome.WARN))
        records = _plain_records(src)
    pkg.entries = [PackageEntry(f.path, f.size, f.opener, f.local_path) for f in sorted(src.files.values(),
                                                                                        key=lambda f: f.path)]
    return pkg, records

