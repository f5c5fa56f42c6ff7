"""Reading a ZIP handed in by a clerk or a business system, safely.

`SafeZip` checks the whole archive when it is opened and refuses it, before anything is extracted, with one
of these stable codes (ValidationFailed, one FieldProblem per offending entry):

- ZIP_MALFORMED       not a ZIP, truncated, or an entry that points past the end of the file
- ZIP_BOMB            too many entries, total declared size above `max_total`, or an entry above 1 MB that
                      claims a compression ratio above `max_ratio`
- ZIP_UNSAFE_PATH     absolute paths, `..` segments (also `..\\`), drive letters (C:), control characters
                      other than TAB, symbolic links
- ZIP_ENCRYPTED       password-protected entries (ZipCrypto, AES, strong encryption)
- ZIP_UNSUPPORTED     compression methods other than stored, deflate, bzip2 and LZMA (e.g. Deflate64, which
                      Windows Explorer uses for big files)
- ZIP_DUPLICATE_NAME  two entries with the same name after normalisation (NFC, `\\` → `/`, case-sensitive),
                      or a name that is both a file and a folder

Entry names are decoded as the archiver meant them: UTF-8 when the archive says so (flag bit 11) or gives an
Info-ZIP Unicode Path field; otherwise the bytes are in the local code page of the machine that made the
ZIP, which for Chinese Windows is GBK, so they are tried as UTF-8 and then GB18030 (a superset of GBK), and
read as CP437 only as a last resort.

`SafeZip.open(entry)` decompresses by itself, in bounded steps, counting the bytes it actually produces: an
entry that decompresses to more than its declared size (a lying header) raises ZIP_BOMB at that point; one
that ends early or whose CRC-32 does not match raises ZIP_MALFORMED. Since the declared sizes passed the
limits, what is read can never exceed them.
"""

from __future__ import annotations

import bz2
import io
import lzma
import os
import re
import stat
import struct
import threading
import unicodedata
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, BinaryIO

from dangan.errors import FieldProblem, ValidationFailed

__all__ = ["SafeZip", "ZipEntry", "decode_entry_name", "entry_path"]

MB = 2**20
_RATIO_MIN_SIZE = 1 * MB  # small entries may compress very well (text, empty pages) without being bombs
_MAX_LISTED = 20  # problems listed in one error
_CHUNK = 64 * 1024
_SUPPORTED_METHODS = {zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA}
_METHOD_NAMES = {9: "Deflate64", 6: "Implode", 98: "PPMd", 99: "AES 加密", 93: "Zstandard", 95: "XZ"}
_DRIVE = re.compile(r"^[A-Za-z]:")
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")  # TAB is allowed: harmless, and seen in real transfers
_FH = struct.Struct("<4s2B4HL2L2H")  # local file header, as in zipfile


@dataclass(frozen=True)
class ZipEntry:
    """One entry of the archive. `name` is the decoded, NFC-normalised relative path with `/` separators
    (folders end without `/`; see `is_dir`); `raw_name` is the name as stored, decoded the same way."""

    name: str
    size: int
    compressed_size: int
    is_dir: bool
    raw_name: str = ""
    encoding: str = "utf-8"  # how the name was decoded: "utf-8", "gb18030" or "cp437"
    crc: int = 0
    date_time: tuple[int, int, int, int, int, int] = (1980, 1, 1, 0, 0, 0)
    info: zipfile.ZipInfo | None = field(default=None, repr=False, compare=False)

    @property
    def basename(self) -> str:
        return self.name.rsplit("/", 1)[-1]


def decode_entry_name(info: zipfile.ZipInfo) -> tuple[str, str]:
    """(decoded name, encoding used) for a ZipInfo read by Python's zipfile (which decodes with CP437 when
    the UTF-8 flag is clear)."""
    if info.flag_bits & 0x800:
        return info.filename, "utf-8"
    raw = info.orig_filename.encode("cp437")
    unicode_path = _unicode_path_extra(info.extra, raw)
    if unicode_path is not None:
        return unicode_path, "utf-8"
    if raw.isascii():
        return info.orig_filename, "utf-8"
    for enc in ("utf-8", "gb18030"):
        try:
            return raw.decode(enc), enc
        except UnicodeDecodeError:
            continue
    return info.orig_filename, "cp437"


def _unicode_path_extra(extra: bytes, raw: bytes) -> str | None:
    """The Info-ZIP Unicode Path extra field (0x7075), used only when its CRC matches the stored name."""
    i = 0
    while i + 4 <= len(extra):
        tag, size = struct.unpack("<HH", extra[i : i + 4])
        body = extra[i + 4 : i + 4 + size]
        if tag == 0x7075 and len(body) >= 5 and body[0] == 1:
            (crc,) = struct.unpack("<L", body[1:5])
            if crc == zlib.crc32(raw):
                try:
                    return body[5:].decode("utf-8")
                except UnicodeDecodeError:
                    return None
        i += 4 + size
    return None


def _normalise(name: str) -> tuple[str, bool, str | None]:
    """(normalised relative path, is_dir, reason it is unsafe or None)."""
    s = unicodedata.normalize("NFC", name).replace("\\", "/")
    is_dir = s.endswith("/")
    if _CONTROL.search(s):
        return s, is_dir, "文件名含控制字符"
    if s.startswith("/"):
        return s, is_dir, "绝对路径"
    if _DRIVE.match(s):
        return s, is_dir, "带盘符的路径"
    parts = [p for p in s.split("/") if p not in ("", ".")]
    if any(p == ".." for p in parts):
        return s, is_dir, "路径含“..”，会写到目标文件夹之外"
    if not parts:
        return s, is_dir, "文件名为空"
    return "/".join(parts), is_dir, None


def _is_symlink(info: zipfile.ZipInfo) -> bool:
    mode = info.external_attr >> 16
    return stat.S_ISLNK(mode) if mode else False


def _fail(code: str, message: str, problems: list[FieldProblem], message_en: str) -> ValidationFailed:
    shown = problems[:_MAX_LISTED]
    names = "、".join(f"“{p.field}”" for p in shown[:5])
    more = f" 等 {len(problems)} 个条目" if len(problems) > 5 else ""
    text = message.format(names=names + more) if "{names}" in message else message
    return ValidationFailed(
        text, code=code, message_en=message_en, problems=shown,
        detail={"entries_with_problems": len(problems)},
    )


def _gb(n: int) -> str:
    return f"{n / 2**30:.1f} GB" if n >= 2**30 else f"{n / MB:.1f} MB"


class SafeZip:
    """A ZIP archive checked as a whole on opening (see the module docstring for the codes).

    `path_or_file` is a path or a seekable binary file object (not closed by `close()`).
    Use as a context manager, or call `close()`.
    """

    def __init__(
        self,
        path_or_file: str | os.PathLike[str] | BinaryIO,
        *,
        max_total: int = 20 * 2**30,
        max_entries: int = 200_000,
        max_ratio: int = 200,
    ) -> None:
        self.max_total = max_total
        self.max_entries = max_entries
        self.max_ratio = max_ratio
        self._own = isinstance(path_or_file, str | os.PathLike)
        if isinstance(path_or_file, str | os.PathLike):
            self._fp: IO[bytes] = open(path_or_file, "rb")  # noqa: SIM115 - closed by close()
        else:
            self._fp = path_or_file
        self._zf: zipfile.ZipFile | None = None
        try:
            self._entries = self._check()
        except BaseException:
            self.close()
            raise
        self._by_path = {e.name: e for e in self._entries}
        self._by_base: dict[str, list[ZipEntry]] = {}
        self._by_base_fold: dict[str, list[ZipEntry]] = {}
        for e in self._entries:
            if not e.is_dir:
                self._by_base.setdefault(e.basename, []).append(e)
                self._by_base_fold.setdefault(e.basename.casefold(), []).append(e)

    # -- checks -------------------------------------------------------------------------------------------

    def _malformed(self, why: str) -> ValidationFailed:
        return ValidationFailed(
            f"文件不是有效的 ZIP 压缩包，或压缩包已损坏、不完整（{why}），请重新压缩后上传",
            code="ZIP_MALFORMED",
            message_en=f"not a valid ZIP archive: {why}",
        )

    def _precheck_entry_count(self, file_size: int) -> None:
        """Read the end-of-central-directory record before zipfile loads every entry into memory."""
        end_rec = getattr(zipfile, "_EndRecData", None)
        if end_rec is None:
            return
        try:
            rec = end_rec(self._fp)
        except OSError:
            rec = None
        if not rec:
            raise self._malformed("找不到 ZIP 目录结构")
        total = rec[getattr(zipfile, "_ECD_ENTRIES_TOTAL", 4)]
        if total > self.max_entries:
            raise ValidationFailed(
                f"压缩包含 {total} 个条目，超过上限 {self.max_entries}（疑似压缩炸弹），已整体拒收；请分批打包后上传",
                code="ZIP_BOMB",
                message_en="too many entries",
                detail={"entries": total, "max_entries": self.max_entries},
            )

    def _check(self) -> list[ZipEntry]:
        fp = self._fp
        try:
            fp.seek(0, io.SEEK_END)
            file_size = fp.tell()
            fp.seek(0)
            head = fp.read(4)
            fp.seek(0)
        except (OSError, ValueError) as e:
            raise self._malformed("无法读取") from e
        if head[:4] == b"\xd0\xcf\x11\xe0":
            raise self._malformed("这是 Office 旧格式或加密文档，不是 ZIP")
        self._precheck_entry_count(file_size)
        try:
            self._zf = zipfile.ZipFile(fp)
            infos = self._zf.infolist()
        except (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError, EOFError, OSError, ValueError,
                struct.error) as e:
            raise self._malformed(str(e) or type(e).__name__) from e

        if len(infos) > self.max_entries:
            raise ValidationFailed(
                f"压缩包含 {len(infos)} 个条目，超过上限 {self.max_entries}（疑似压缩炸弹），已整体拒收；请分批打包后上传",
                code="ZIP_BOMB", message_en="too many entries",
            )

        entries: list[ZipEntry] = []
        truncated: list[FieldProblem] = []
        bombs: list[FieldProblem] = []
        unsafe: list[FieldProblem] = []
        encrypted: list[FieldProblem] = []
        unsupported: list[FieldProblem] = []
        total = 0
        for info in infos:
            decoded, enc = decode_entry_name(info)
            name, is_dir, why = _normalise(decoded)
            is_dir = is_dir or info.is_dir()
            if why is None and _is_symlink(info):
                why = "符号链接（可能指向系统文件）"
            if why:
                unsafe.append(
                    FieldProblem(decoded, "ZIP_UNSAFE_PATH", f"条目“{decoded}”：{why}", "压缩包条目", decoded)
                )
            if info.flag_bits & 0x41 or info.compress_type == 99:
                encrypted.append(FieldProblem(decoded, "ZIP_ENCRYPTED", f"条目“{decoded}”设置了密码", "压缩包条目"))
            elif not is_dir and info.compress_type not in _SUPPORTED_METHODS:
                method = _METHOD_NAMES.get(info.compress_type, f"方法 {info.compress_type}")
                unsupported.append(FieldProblem(
                    decoded, "ZIP_UNSUPPORTED", f"条目“{decoded}”使用了不支持的压缩方式（{method}）", "压缩包条目"
                ))
            total += info.file_size
            too_dense = info.file_size > self.max_ratio * max(info.compress_size, 1)
            if info.file_size > _RATIO_MIN_SIZE and too_dense:
                ratio = info.file_size // max(info.compress_size, 1)
                bombs.append(FieldProblem(
                    decoded, "ZIP_BOMB",
                    f"条目“{decoded}”压缩比为 {ratio}:1（解压后 {_gb(info.file_size)}），超过上限 {self.max_ratio}:1",
                    "压缩包条目",
                ))
            if info.header_offset + info.compress_size > file_size:
                truncated.append(FieldProblem(decoded, "ZIP_MALFORMED", f"条目“{decoded}”的数据不完整", "压缩包条目"))
            entries.append(ZipEntry(
                name=name, size=info.file_size, compressed_size=info.compress_size, is_dir=is_dir,
                raw_name=decoded, encoding=enc, crc=info.CRC, date_time=info.date_time, info=info,
            ))

        if truncated:
            raise _fail(
                "ZIP_MALFORMED", "压缩包不完整（可能上传中断或文件被截断）：{names}的数据缺失，请重新上传完整的压缩包",
                truncated, "truncated archive",
            )
        if total > self.max_total:
            raise ValidationFailed(
                f"压缩包解压后共 {_gb(total)}，超过上限 {_gb(self.max_total)}（疑似压缩炸弹），已整体拒收；请分批打包后上传",
                code="ZIP_BOMB", message_en="total uncompressed size above the limit",
                detail={"total": total, "max_total": self.max_total},
            )
        if bombs:
            raise _fail(
                "ZIP_BOMB", "压缩包中{names}的压缩比异常（疑似压缩炸弹），已整体拒收；请检查文件后重新打包",
                bombs, "compression ratio above the limit",
            )
        if unsafe:
            raise _fail(
                "ZIP_UNSAFE_PATH",
                "压缩包中有不安全的条目：{names}（绝对路径、“..”、盘符或符号链接），已整体拒收；请删除这些条目后重新压缩",
                unsafe, "unsafe entry path",
            )
        if encrypted:
            raise _fail(
                "ZIP_ENCRYPTED", "压缩包设置了密码（{names}已加密），请解除密码后重新压缩上传", encrypted, "encrypted entries"
            )
        if unsupported:
            raise _fail(
                "ZIP_UNSUPPORTED",
                "压缩包中{names}使用了不支持的压缩方式，请用“标准（Deflate）”方式重新压缩，"
                "如 7-Zip 选择 ZIP 格式、Deflate 方法",
                unsupported, "unsupported compression method",
            )
        self._check_duplicates(entries)
        return entries

    def _check_duplicates(self, entries: list[ZipEntry]) -> None:
        seen: dict[str, ZipEntry] = {}
        dups: list[FieldProblem] = []
        for e in entries:
            other = seen.get(e.name)
            if other is not None and not (e.is_dir and other.is_dir):
                dups.append(FieldProblem(
                    e.name, "ZIP_DUPLICATE_NAME", f"“{other.raw_name}”与“{e.raw_name}”重名", "压缩包条目"
                ))
            seen.setdefault(e.name, e)
        files = {e.name for e in entries if not e.is_dir}
        for e in entries:
            parts = e.name.split("/")
            for i in range(1, len(parts)):
                parent = "/".join(parts[:i])
                if parent in files:
                    dups.append(FieldProblem(
                        parent, "ZIP_DUPLICATE_NAME", f"“{parent}”既是文件又是文件夹", "压缩包条目"
                    ))
                    files.discard(parent)
        if dups:
            raise _fail(
                "ZIP_DUPLICATE_NAME", "压缩包中有重名的条目：{names}，请改名后重新压缩", dups, "duplicate entry names"
            )

    # -- access -------------------------------------------------------------------------------------------

    def entries(self) -> list[ZipEntry]:
        """All entries (files and folders), in archive order."""
        return list(self._entries)

    def files(self) -> list[ZipEntry]:
        return [e for e in self._entries if not e.is_dir]

    def __iter__(self) -> Iterator[ZipEntry]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def find(self, name: str) -> list[ZipEntry]:
        """Files matching `name`, for 挂接 catalogue rows to files by the name a clerk typed.

        `name` may be a relative path (`2024/通知.pdf`, `\\` allowed) or a base name (`通知.pdf`). Exact path
        first; otherwise every file whose path ends with it (segment-aligned), case-sensitively, then
        ignoring case. Returns all matches — more than one means the name is ambiguous; none means missing.
        """
        q, _, _ = _normalise(name.strip())
        q = q.strip("/")
        if not q:
            return []
        exact = self._by_path.get(q)
        if exact is not None and not exact.is_dir:
            return [exact]
        base = q.rsplit("/", 1)[-1]
        found = [e for e in self._by_base.get(base, []) if e.name == q or e.name.endswith("/" + q)]
        if found:
            return found
        qf = q.casefold()
        return [
            e for e in self._by_base_fold.get(base.casefold(), [])
            if e.name.casefold() == qf or e.name.casefold().endswith("/" + qf)
        ]

    def open(self, entry: ZipEntry | str) -> BinaryIO:
        """A streaming reader of the entry's content; see the module docstring for what it checks."""
        if isinstance(entry, str):
            e = self._by_path.get(_normalise(entry)[0])
            if e is None:
                raise ValidationFailed(
                    f"压缩包中没有“{entry}”", code="ZIP_ENTRY_NOT_FOUND", message_en="no such entry"
                )
            entry = e
        if entry.is_dir or entry.info is None:
            raise ValidationFailed(
                f"“{entry.name}”是文件夹，不是文件", code="ZIP_ENTRY_NOT_FOUND", message_en="a folder"
            )
        raw = _EntryReader(self._fp, entry)
        return io.BufferedReader(raw, buffer_size=_CHUNK)  # type: ignore[return-value]

    def read(self, entry: ZipEntry | str) -> bytes:
        with self.open(entry) as f:
            return f.read()

    def close(self) -> None:
        if self._zf is not None:
            self._zf.close()
            self._zf = None
        if self._own and not self._fp.closed:
            self._fp.close()

    def __enter__(self) -> SafeZip:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


_SEEK_LOCK = threading.Lock()


def _pread(fp: IO[bytes], n: int, pos: int) -> bytes:
    """Read n bytes at pos without moving a shared file position: entries of one archive are read by several
    threads at once (the blob writers of an import), so seek-then-read would interleave."""
    try:
        fd = fp.fileno()
    except (AttributeError, OSError, io.UnsupportedOperation):
        fd = None
    if fd is not None:
        out = bytearray()
        while len(out) < n:
            chunk = os.pread(fd, n - len(out), pos + len(out))
            if not chunk:
                break
            out += chunk
        return bytes(out)
    with _SEEK_LOCK:
        fp.seek(pos)
        return fp.read(n)


class _EntryReader(io.RawIOBase):
    """Decompresses one entry in bounded steps, never producing more than its declared size + 1 byte."""

    def __init__(self, fp: IO[bytes], entry: ZipEntry) -> None:
        super().__init__()
        info = entry.info
        assert info is not None
        self._fp = fp
        self._entry = entry
        self._declared = info.file_size
        self._produced = 0
        self._crc = 0
        self._pending = b""  # decompressed, not yet returned
        self._done = False
        fh = _pread(fp, _FH.size, info.header_offset)
        if len(fh) != _FH.size or fh[:4] != b"PK\x03\x04":
            raise self._bad("本地文件头缺失")
        fields = _FH.unpack(fh)
        name_len, extra_len = fields[10], fields[11]
        stored = _pread(fp, name_len, info.header_offset + _FH.size)
        raw = info.orig_filename.encode("utf-8" if info.flag_bits & 0x800 else "cp437")
        if stored != raw:  # tools that extract by the local header would write another name
            raise self._bad("本地文件头中的文件名与目录不一致")
        self._pos = info.header_offset + _FH.size + name_len + extra_len
        self._compress_left = info.compress_size
        self._method = info.compress_type
        self._expected_crc = info.CRC
        self._dec: Any = None
        if self._method == zipfile.ZIP_DEFLATED:
            self._dec = zlib.decompressobj(-15)
        elif self._method == zipfile.ZIP_BZIP2:
            self._dec = bz2.BZ2Decompressor()
        elif self._method == zipfile.ZIP_LZMA:
            head = self._read_raw(4)
            if len(head) < 4:
                raise self._bad("LZMA 头不完整")
            (psize,) = struct.unpack("<H", head[2:4])
            props = self._read_raw(psize)
            try:
                filt = lzma._decode_filter_properties(lzma.FILTER_LZMA1, props)  # type: ignore[attr-defined]
                self._dec = lzma.LZMADecompressor(lzma.FORMAT_RAW, filters=[filt])
            except (lzma.LZMAError, ValueError, AttributeError) as e:
                raise self._bad("LZMA 参数无效") from e
        elif self._method != zipfile.ZIP_STORED:
            raise ValidationFailed(
                f"条目“{entry.name}”使用了不支持的压缩方式", code="ZIP_UNSUPPORTED", message_en="unsupported method"
            )

    def _bad(self, why: str) -> ValidationFailed:
        return ValidationFailed(
            f"压缩包中的“{self._entry.name}”已损坏（{why}），请重新压缩后上传",
            code="ZIP_MALFORMED", message_en=f"corrupt entry: {why}",
        )

    def _read_raw(self, n: int) -> bytes:
        n = min(n, self._compress_left)
        if n <= 0:
            return b""
        data = _pread(self._fp, n, self._pos)
        self._pos += len(data)
        self._compress_left -= len(data)
        if len(data) < n:
            raise self._bad("数据被截断")
        return data

    def readable(self) -> bool:
        return True

    def _produce(self, want: int) -> bytes:
        """Up to `want` decompressed bytes (never more than declared size + 1 in total); b"" at the end."""
        limit = max(1, min(want, self._declared + 1 - self._produced))
        if self._pending:
            out, self._pending = self._pending[:limit], self._pending[limit:]
            return out
        dec = self._dec
        if dec is None:  # stored
            return self._read_raw(limit)
        while True:
            if dec.eof:
                return b""
            if self._method == zipfile.ZIP_DEFLATED:
                data_in = dec.unconsumed_tail or self._read_raw(_CHUNK)
                if not data_in:
                    out = dec.flush()  # at most one pending match (258 bytes) once the input is used up
                    out, self._pending = out[:limit], out[limit:]
                    return out
                out = dec.decompress(data_in, limit)
                if out or dec.eof:
                    return out
                continue
            # bz2 / lzma decompressors take max_length and keep the rest of their input themselves
            data_in = b""
            if dec.needs_input:
                data_in = self._read_raw(_CHUNK)
                if not data_in:
                    return b""
            out = dec.decompress(data_in, limit)
            if out:
                return out

    def readinto(self, b: Any) -> int:
        if self._done:
            return 0
        try:
            out = self._produce(len(b))
        except (zlib.error, OSError, EOFError, lzma.LZMAError) as e:
            raise self._bad(f"解压失败：{e}") from e
        if out:
            self._produced += len(out)
            if self._produced > self._declared:
                raise ValidationFailed(
                    f"压缩包中的“{self._entry.name}”解压后超过其声明的大小 {self._declared} 字节（文件头被篡改，疑似压缩炸弹），"
                    "已停止读取；请检查来源后重新打包",
                    code="ZIP_BOMB", message_en="entry decompresses to more than its declared size",
                )
            self._crc = zlib.crc32(out, self._crc)
            b[: len(out)] = out
            return len(out)
        self._done = True
        if self._produced != self._declared:
            raise self._bad(f"解压后只有 {self._produced} 字节，声明为 {self._declared} 字节")
        if self._crc != self._expected_crc:
            raise self._bad("CRC 校验和不符")
        return 0


def entry_path(base: Path, entry: ZipEntry) -> Path:
    """Where `entry` would go under `base`; the name was checked at opening, this checks again."""
    target = (base / entry.name).resolve()
    if not target.is_relative_to(base.resolve()):
        raise ValidationFailed(f"条目“{entry.name}”的路径不安全", code="ZIP_UNSAFE_PATH", message_en="unsafe path")
    return target
