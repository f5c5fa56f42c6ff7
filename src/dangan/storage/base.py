"""The blob store interface: put a stream once, get it back by its SHA-256 key, never overwrite."""

from __future__ import annotations

import abc
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, BinaryIO

if TYPE_CHECKING:
    from dangan.storage.hashing import DualDigest


@dataclass(frozen=True)
class BlobInfo:
    key: str
    sha256: str
    sm3: str
    size: int
    existed: bool = False  # the content was already in the store (deduplicated)
    head: bytes = field(default=b"", repr=False)  # first bytes of the content, for format sniffing


@dataclass(frozen=True)
class StoredObject:
    key: str
    size: int
    modified: float  # POSIX timestamp


def key_for(sha256: str) -> str:
    return f"sha256/{sha256[:2]}/{sha256[2:4]}/{sha256}"


class BlobStore(abc.ABC):
    """Content-addressed and write-once: `put` computes SHA-256 and SM3 while it streams, in one pass."""

    url: str

    @abc.abstractmethod
    def put(self, stream: BinaryIO, *, expected_size: int | None = None) -> BlobInfo:
        """Store the stream. Raises UploadIncomplete if it ends early or breaks; nothing is left behind."""

    @abc.abstractmethod
    def open(self, key: str) -> BinaryIO:
        """Open stored content for streaming reads. Raises StorageError(BLOB_MISSING) if absent."""

    @abc.abstractmethod
    def exists(self, key: str) -> bool: ...

    @abc.abstractmethod
    def size(self, key: str) -> int | None: ...

    @abc.abstractmethod
    def iter_objects(self) -> Iterator[StoredObject]:
        """Every stored blob (for the sweep of unreferenced content)."""

    @abc.abstractmethod
    def delete_unreferenced(self, key: str) -> None:
        """Remove a blob that no row references. Only `storage sweep` calls this."""

    def iter_bytes(self, key: str, chunk: int = 1024 * 1024) -> Iterator[bytes]:
        with self.open(key) as fh:
            while True:
                b = fh.read(chunk)
                if not b:
                    return
                yield b

    def sweep_temporary(self, older_than: float) -> int:
        """Remove leftovers of interrupted uploads older than `older_than` (POSIX time). Returns the count."""
        return 0

    def describe(self) -> str:
        return self.url

    def replace_corrupt(self, key: str, stream: BinaryIO, *, size: int, sm3: str) -> BlobInfo:
        """Repair only (fixity audit): write `stream` at `key` over a blob whose content no longer matches its key
        (altered, truncated, missing). The one exception to write-once, because the bytes written are exactly the
        ones the key names: the content is spooled and hashed first and replaces the blob atomically only if its
        SHA-256 is the key's, its SM3 is `sm3` and its size is `size`; otherwise StorageError(REPAIR_MISMATCH)
        and the blob is left as it was."""
        from dangan.errors import StorageError

        raise StorageError(f"存储 {self.describe()} 不支持修复内容", code="REPAIR_UNSUPPORTED")


def check_repair_content(key: str, digest: DualDigest, size: int, sm3: str) -> None:
    """Refuse repair content that is not exactly what `key` names (see BlobStore.replace_corrupt)."""
    from dangan.errors import StorageError

    if key == key_for(digest.sha256) and digest.size == size and digest.sm3 == sm3:
        return
    raise StorageError(
        f"用于修复 {key} 的内容与登记的固化信息不符（应为 {size} 字节，实际 {digest.size} 字节；"
        f"SHA-256 {digest.sha256[:16]}…），未写入",
        code="REPAIR_MISMATCH",
        detail={"key": key, "expected": {"size": size, "sha256": key.rsplit("/", 1)[-1], "sm3": sm3},
                "found": {"size": digest.size, "sha256": digest.sha256, "sm3": digest.sm3}},
    )
