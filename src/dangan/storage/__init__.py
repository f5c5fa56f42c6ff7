"""Write-once, content-addressed blob stores (local filesystem, S3), chosen by DANGAN_STORAGE_URL."""

from __future__ import annotations

from urllib.parse import urlparse

from dangan.config import Settings
from dangan.errors import ConfigError
from dangan.storage.base import BlobInfo, BlobStore
from dangan.storage.hashing import DualDigest

__all__ = ["BlobInfo", "BlobStore", "DualDigest", "open_store"]


def open_store(url: str, settings: Settings | None = None) -> BlobStore:
    scheme = urlparse(url).scheme
    if scheme == "file":
        from dangan.storage.local import LocalBlobStore

        return LocalBlobStore.from_url(url)
    if scheme == "s3":
        from dangan.storage.s3 import S3BlobStore

        return S3BlobStore.from_url(url, settings)
    raise ConfigError(f"存储地址“{url}”无法识别：应以 file:// 或 s3:// 开头", code="BAD_STORAGE_URL")
