"""The blob store interface: put a stream once, get it back by its SHA-256 key, never overwrite."""

from __future__ import annotations

import abc
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import BinaryIO


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
