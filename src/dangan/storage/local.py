"""Local filesystem store: temp file + fsync + link (never overwrites) + directory fsync, read-only blobs."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO
from urllib.parse import unquote, urlparse

from dangan.errors import StorageError, UploadIncomplete
from dangan.storage.base import BlobInfo, BlobStore, StoredObject, check_repair_content, key_for
from dangan.storage.hashing import CHUNK, DualDigest


class LocalBlobStore(BlobStore):
    def __init__(self, root: Path) -> None:
        self.root = root
        self.url = root.as_uri()
        self.tmp = root / "tmp"
        self.tmp.mkdir(parents=True, exist_ok=True)

    @classmethod
    def from_url(cls, url: str) -> LocalBlobStore:
        return cls(Path(unquote(urlparse(url).path)))

    def _path(self, key: str) -> Path:
        if ".." in key.split("/") or key.startswith("/"):
            raise StorageError(f"存储键“{key}”无效", code="BAD_STORAGE_KEY")
        return self.root / key

    def put(self, stream: BinaryIO, *, expected_size: int | None = None) -> BlobInfo:
        digest = DualDigest()
        fd, tmp_name = tempfile.mkstemp(dir=self.tmp, prefix="upload-")
        tmp = Path(tmp_name)
        try:
            with os.fdopen(fd, "wb") as out:
                while True:
                    try:
                        chunk = stream.read(CHUNK)
                    except (OSError, ValueError) as e:
                        raise UploadIncomplete(
                            f"读取上传内容时中断（已收到 {digest.size} 字节）：{e}。请重新上传该文件",
                            code="UPLOAD_INCOMPLETE",
                        ) from e
                    if not chunk:
                        break
                    digest.update(chunk)
                    out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
            if expected_size is not None and digest.size != expected_size:
                raise UploadIncomplete(
                    f"上传内容不完整：声明 {expected_size} 字节，实际收到 {digest.size} 字节。请重新上传",
                    code="UPLOAD_INCOMPLETE",
                    detail={"expected_size": expected_size, "received": digest.size},
                )
            key = key_for(digest.sha256)
            final = self._path(key)
            existed = False
            if final.exists():
                existed = True
            else:
                _make_dirs(final.parent)
                os.chmod(tmp, 0o444)
                try:
                    os.link(tmp, final)  # fails if present: content is never overwritten
                except FileExistsError:
                    existed = True
                else:
                    _fsync_dir(final.parent)
            return BlobInfo(key, digest.sha256, digest.sm3, digest.size, existed, digest.head)
        finally:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()

    def open(self, key: str) -> BinaryIO:
        try:
            return self._path(key).open("rb")
        except FileNotFoundError as e:
            raise StorageError(f"存储中找不到内容 {key}", code="BLOB_MISSING") from e

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def size(self, key: str) -> int | None:
        try:
            return self._path(key).stat().st_size
        except FileNotFoundError:
            return None

    def iter_objects(self) -> Iterator[StoredObject]:
        base = self.root / "sha256"
        if not base.is_dir():
            return
        for dirpath, _dirs, files in os.walk(base):
            for name in files:
                p = Path(dirpath) / name
                st = p.stat()
                yield StoredObject(p.relative_to(self.root).as_posix(), st.st_size, st.st_mtime)

    def delete_unreferenced(self, key: str) -> None:
        p = self._path(key)
        with contextlib.suppress(FileNotFoundError):
            os.chmod(p, 0o644)
            p.unlink()

    def replace_corrupt(self, key: str, stream: BinaryIO, *, size: int, sm3: str) -> BlobInfo:
        """Repair only: temp file + fsync, digests checked, then rename over the damaged blob (atomic)."""
        final = self._path(key)
        digest = DualDigest()
        fd, tmp_name = tempfile.mkstemp(dir=self.tmp, prefix="upload-repair-")
        tmp = Path(tmp_name)
        try:
            with os.fdopen(fd, "wb") as out:
                while True:
                    try:
                        chunk = stream.read(CHUNK)
                    except (OSError, ValueError) as e:
                        raise StorageError(f"读取用于修复 {key} 的内容时中断（已读 {digest.size} 字节）：{e}",
                                           code="REPAIR_SOURCE_UNREADABLE") from e
                    if not chunk:
                        break
                    digest.update(chunk)
                    out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
            check_repair_content(key, digest, size, sm3)
            _make_dirs(final.parent)
            os.chmod(tmp, 0o444)
            os.replace(tmp, final)
            _fsync_dir(final.parent)
            return BlobInfo(key, digest.sha256, digest.sm3, digest.size, False, digest.head)
        finally:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()

    def sweep_temporary(self, older_than: float) -> int:
        n = 0
        for p in self.tmp.glob("upload-*"):
            with contextlib.suppress(FileNotFoundError):
                if p.stat().st_mtime < older_than:
                    p.unlink()
                    n += 1
        return n


def _make_dirs(path: Path) -> None:
    """Create missing folders and fsync each new one's parent, so the new entries survive a power cut."""
    missing = []
    p = path
    while not p.exists():
        missing.append(p)
        p = p.parent
    for d in reversed(missing):
        try:
            d.mkdir()
        except FileExistsError:
            continue
        _fsync_dir(d.parent)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
