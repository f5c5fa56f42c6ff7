"""S3-compatible blob store (MinIO, Ceph RGW, SeaweedFS, cloud object storage), chosen by `s3://bucket/prefix`.

Design
------
Same contract as the local store: content-addressed by SHA-256, write once, SHA-256 and SM3 computed in
the single pass that reads the input.

``put(stream)``
    1. The input is streamed in 1 MiB chunks into a local *spool file* (``<data>/tmp/s3-spool/``, not
       ``/tmp``, which is often RAM-backed), feeding every chunk to ``DualDigest`` on the way. Memory stays
       flat whatever the file size. A read error, or fewer bytes than ``expected_size``, raises
       ``UploadIncomplete`` and the spool file is removed: nothing reaches the bucket.
    2. The key is ``<prefix>/sha256/ab/cd/<sha256>``. If an object with that key already exists the upload
       is skipped (deduplication; content is never overwritten).
    3. Otherwise the spool file is uploaded with the s3transfer manager (multipart above 64 MiB, parts of
       16 MiB, 4 in flight: at most ~64 MiB buffered whatever the size), with user metadata ``sha256`` and ``sm3``. Every PutObject and
       CompleteMultipartUpload carries ``If-None-Match: *``, so a concurrent writer of the same content
       cannot overwrite an object either (a 412 means "someone stored it first": deduplicated).
    4. The stored object's size is checked with HeadObject; a mismatch raises StorageError(S3_VERIFY_FAILED).
    The spool file is always removed at the end; a crash can leave one behind, which ``sweep_temporary``
    removes after the grace period, like the local store's ``tmp/upload-*`` files.

``open(key)``
    GetObject, returned as a streaming file-like object usable in ``with``. Transport errors while reading
    become ``OSError`` (so fixity reports "unreadable"), and a body shorter than its Content-Length
    raises too. A missing key raises StorageError(BLOB_MISSING).

``iter_objects`` pages through ListObjectsV2 under ``<prefix>/sha256/`` only (keys relative to the prefix),
so the sweep never sees or deletes anything else in the bucket. ``delete_unreferenced`` is DeleteObject.

The bucket is created on the first write if it does not exist. Credentials and endpoint come from
``DANGAN_S3_ENDPOINT_URL`` / ``DANGAN_S3_ACCESS_KEY`` / ``DANGAN_S3_SECRET_KEY`` / ``DANGAN_S3_REGION``; when
the keys are empty boto3's own chain applies (AWS_* variables, ~/.aws, instance roles). An unreachable
endpoint or refused credentials raise StorageError(S3_UNAVAILABLE) with a Chinese message saying what
to check; no call is made when the store is merely constructed.
"""

from __future__ import annotations

import contextlib
import io
import os
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import unquote, urlparse

import boto3
from boto3.s3.transfer import TransferConfig, create_transfer_manager
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError, PartialCredentialsError

from dangan.config import Settings
from dangan.errors import ConfigError, StorageError, UploadIncomplete
from dangan.storage.base import BlobInfo, BlobStore, StoredObject, check_repair_content, key_for
from dangan.storage.hashing import CHUNK, DualDigest

MULTIPART_THRESHOLD = 64 * 1024 * 1024
MULTIPART_CHUNK = 16 * 1024 * 1024
SPOOL_PREFIX = "spool-"
CONTENT_AREA = "sha256/"

_MISSING_CODES = {"404", "NoSuchKey", "NotFound"}
_NO_BUCKET_CODES = {"NoSuchBucket"}
_CREDENTIAL_CODES = {"InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied", "403", "InvalidToken",
                     "ExpiredToken", "AuthorizationHeaderMalformed", "InvalidClientTokenId"}
_PRECONDITION_CODES = {"PreconditionFailed", "412", "ConditionalRequestConflict"}


class S3BlobStore(BlobStore):
    def __init__(self, bucket: str, prefix: str = "", *, endpoint_url: str | None = None,
                 access_key: str | None = None, secret_key: str | None = None, region: str | None = None,
                 spool_dir: Path | None = None, multipart_threshold: int = MULTIPART_THRESHOLD,
                 multipart_chunksize: int = MULTIPART_CHUNK, max_concurrency: int = 4) -> None:
        if not bucket:
            raise ConfigError("S3 存储地址缺少桶名，应为 s3://桶名/前缀", code="BAD_STORAGE_URL")
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.url = f"s3://{bucket}/{self.prefix}" if self.prefix else f"s3://{bucket}"
        self.endpoint_url = endpoint_url or None
        self.region = region or None
        self._access_key = access_key or None
        self._secret_key = secret_key or None
        self.spool_dir = spool_dir or Path(tempfile.gettempdir()) / "dangan-s3-spool"
        self.transfer_config = TransferConfig(multipart_threshold=multipart_threshold,
                                              multipart_chunksize=multipart_chunksize,
                                              max_concurrency=max_concurrency)
        self._lock = threading.Lock()
        self._client: Any = None
        self._client_pid = 0
        self._bucket_ready = False
        self._conditional_writes = True  # If-None-Match: * on writes; switched off if the server refuses it

    @classmethod
    def from_url(cls, url: str, settings: Settings | None = None) -> S3BlobStore:
        u = urlparse(url)
        if u.scheme != "s3" or not u.netloc:
            raise ConfigError(f"S3 存储地址“{url}”无效，应为 s3://桶名/前缀", code="BAD_STORAGE_URL")
        s = settings or Settings()
        return cls(u.netloc, unquote(u.path), endpoint_url=s.s3_endpoint_url, access_key=s.s3_access_key,
                   secret_key=s.s3_secret_key, region=s.s3_region, spool_dir=s.data_dir / "tmp" / "s3-spool")

    # ----- connection -----

    @property
    def client(self) -> Any:
        """One boto3 client per process (clients are thread-safe but must not cross a fork)."""
        pid = os.getpid()
        if self._client is None or self._client_pid != pid:
            with self._lock:
                if self._client is None or self._client_pid != pid:
                    self._client = self._make_client()
                    self._client_pid = pid
                    self._bucket_ready = False
        return self._client

    def _make_client(self, conditional: bool = True) -> Any:
        cfg = Config(s3={"addressing_style": "path"} if self.endpoint_url else {},
                     retries={"max_attempts": 5, "mode": "standard"}, connect_timeout=5, read_timeout=60,
                     max_pool_connections=16)
        kw: dict[str, Any] = {"config": cfg}
        if self.endpoint_url:
            kw["endpoint_url"] = self.endpoint_url
        if self.region:
            kw["region_name"] = self.region
        if self._access_key and self._secret_key:
            kw["aws_access_key_id"] = self._access_key
            kw["aws_secret_access_key"] = self._secret_key
        client = boto3.session.Session().client("s3", **kw)
        if not conditional:  # replace_corrupt only: a repair must replace the damaged object
            return client
        client.meta.events.register("before-parameter-build.s3.PutObject", self._add_if_none_match)
        client.meta.events.register("before-parameter-build.s3.CompleteMultipartUpload", self._add_if_none_match)
        return client

    def _add_if_none_match(self, params: dict[str, Any], **_kw: Any) -> None:
        if self._conditional_writes:
            params.setdefault("IfNoneMatch", "*")

    def _where(self) -> str:
        return self.endpoint_url or f"AWS S3（区域 {self.region or '默认'}）"

    def _unavailable(self, e: Exception, doing: str) -> StorageError:
        """Translate a transport or permission failure into a Chinese message that says what to check."""
        if isinstance(e, NoCredentialsError | PartialCredentialsError):
            msg = (f"{doing}失败：没有找到对象存储的访问密钥。请设置 DANGAN_S3_ACCESS_KEY 和 DANGAN_S3_SECRET_KEY"
                   "（或 AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY）")
            reason = "no_credentials"
        elif isinstance(e, ClientError) and _code(e) in _CREDENTIAL_CODES:
            code = _code(e)
            msg = (f"{doing}失败：对象存储 {self._where()} 拒绝了访问（{code}）。访问密钥错误或没有桶“{self.bucket}”的权限，"
                   "请检查 DANGAN_S3_ACCESS_KEY / DANGAN_S3_SECRET_KEY 及桶的授权")
            reason = "credentials"
        elif isinstance(e, ClientError):
            msg = (f"{doing}失败：对象存储 {self._where()} 暂时无法服务（{_code(e)}：{_message(e)}）。"
                   "请检查对象存储服务的状态，稍后重试")
            reason = "server_error"
        else:
            msg = (f"{doing}失败：无法连接对象存储 {self._where()}（{type(e).__name__}）。"
                   "请检查 DANGAN_S3_ENDPOINT_URL、网络和对象存储服务是否在运行，然后重试")
            reason = "unreachable"
        return StorageError(msg, code="S3_UNAVAILABLE", message_en=f"S3 unavailable: {type(e).__name__}: {e}"[:300],
                            detail={"endpoint": self.endpoint_url or "", "bucket": self.bucket, "reason": reason})

    def _translate(self, e: Exception, doing: str) -> Exception:
        if isinstance(e, ClientError) and _code(e) not in _CREDENTIAL_CODES and _status(e) < 500:
            return StorageError(f"{doing}失败：对象存储返回错误 {_code(e)}：{_message(e)}", code="S3_ERROR",
                                message_en=str(e)[:300], detail={"bucket": self.bucket})
        if isinstance(e, ClientError | BotoCoreError):
            return self._unavailable(e, doing)
        return e

    def _ensure_bucket(self) -> None:
        if self._bucket_ready:
            return
        try:
            self.client.head_bucket(Bucket=self.bucket)
        except ClientError as e:
            if _code(e) not in _MISSING_CODES | _NO_BUCKET_CODES:
                raise self._translate(e, f"访问存储桶“{self.bucket}”") from e
            try:
                kw: dict[str, Any] = {"Bucket": self.bucket}
                if self.region and self.region != "us-east-1":
                    kw["CreateBucketConfiguration"] = {"LocationConstraint": self.region}
                self.client.create_bucket(**kw)
            except ClientError as e2:
                if _code(e2) not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                    raise self._translate(e2, f"创建存储桶“{self.bucket}”") from e2
            except BotoCoreError as e2:
                raise self._unavailable(e2, f"创建存储桶“{self.bucket}”") from e2
        except BotoCoreError as e:
            raise self._unavailable(e, f"访问存储桶“{self.bucket}”") from e
        self._bucket_ready = True

    def _full(self, key: str) -> str:
        if not key or ".." in key.split("/") or key.startswith("/"):
            raise StorageError(f"存储键“{key}”无效", code="BAD_STORAGE_KEY")
        return f"{self.prefix}/{key}" if self.prefix else key

    def _head(self, key: str) -> dict[str, Any] | None:
        try:
            return self.client.head_object(Bucket=self.bucket, Key=self._full(key))
        except ClientError as e:
            if _code(e) in _MISSING_CODES | _NO_BUCKET_CODES:
                return None
            raise self._translate(e, f"查询对象 {key}") from e
        except BotoCoreError as e:
            raise self._unavailable(e, f"查询对象 {key}") from e

    # ----- BlobStore -----

    def put(self, stream: BinaryIO, *, expected_size: int | None = None) -> BlobInfo:
        digest = DualDigest()
        self.spool_dir.mkdir(parents=True, exist_ok=True)
        fd, spool_name = tempfile.mkstemp(dir=self.spool_dir, prefix=SPOOL_PREFIX)
        spool = Path(spool_name)
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
            if expected_size is not None and digest.size != expected_size:
                raise UploadIncomplete(
                    f"上传内容不完整：声明 {expected_size} 字节，实际收到 {digest.size} 字节。请重新上传",
                    code="UPLOAD_INCOMPLETE",
                    detail={"expected_size": expected_size, "received": digest.size},
                )
            key = key_for(digest.sha256)
            self._ensure_bucket()
            existed = self._head(key) is not None
            if not existed:
                existed = self._upload(spool, key, digest)
            head = self._head(key)
            if head is None or int(head.get("ContentLength", -1)) != digest.size:
                found = None if head is None else head.get("ContentLength")
                raise StorageError(
                    f"对象存储中的内容 {key} 校验失败：应为 {digest.size} 字节，实际为 {found if found is not None else '不存在'}。"
                    "本次未保存，请重试；如反复出现请检查对象存储",
                    code="S3_VERIFY_FAILED", detail={"key": key, "expected_size": digest.size, "found_size": found},
                )
            return BlobInfo(key, digest.sha256, digest.sm3, digest.size, existed, digest.head)
        finally:
            with contextlib.suppress(FileNotFoundError):
                spool.unlink()

    def _upload(self, spool: Path, key: str, digest: DualDigest) -> bool:
        """Upload the spool file; returns True if another writer stored the same content first."""
        extra = {"Metadata": {"sha256": digest.sha256, "sm3": digest.sm3},
                 "ContentType": "application/octet-stream"}
        for _attempt in range(2):
            try:
                with create_transfer_manager(self.client, self.transfer_config) as tm:
                    tm.upload(str(spool), self.bucket, self._full(key), extra_args=extra).result()
                return False
            except ClientError as e:
                code = _code(e)
                if code in _PRECONDITION_CODES:
                    return True  # stored meanwhile by a concurrent writer: same key, same content
                if code in ("NotImplemented", "501") and self._conditional_writes:
                    self._conditional_writes = False  # a store without conditional writes: HEAD check only
                    continue
                raise self._translate(e, f"上传内容 {key}") from e
            except BotoCoreError as e:
                raise self._unavailable(e, f"上传内容 {key}") from e
        raise StorageError(f"上传内容 {key} 失败，请重试", code="S3_ERROR")

    def replace_corrupt(self, key: str, stream: BinaryIO, *, size: int, sm3: str) -> BlobInfo:
        """Repair only: spool and hash, check the digests, then upload over the damaged object (PUT is atomic)."""
        full = self._full(key)
        digest = DualDigest()
        self.spool_dir.mkdir(parents=True, exist_ok=True)
        fd, spool_name = tempfile.mkstemp(dir=self.spool_dir, prefix=SPOOL_PREFIX)
        spool = Path(spool_name)
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
            check_repair_content(key, digest, size, sm3)
            self._ensure_bucket()
            extra = {"Metadata": {"sha256": digest.sha256, "sm3": digest.sm3}, "ContentType": "application/octet-stream"}
            try:
                with create_transfer_manager(self._make_client(conditional=False), self.transfer_config) as tm:
                    tm.upload(str(spool), self.bucket, full, extra_args=extra).result()
            except (ClientError, BotoCoreError) as e:
                raise self._translate(e, f"修复内容 {key}") from e
            head = self._head(key)
            if head is None or int(head.get("ContentLength", -1)) != digest.size:
                raise StorageError(f"修复后对象存储中的内容 {key} 大小不符，请重试", code="S3_VERIFY_FAILED",
                                   detail={"key": key, "expected_size": digest.size})
            return BlobInfo(key, digest.sha256, digest.sm3, digest.size, False, digest.head)
        finally:
            with contextlib.suppress(FileNotFoundError):
                spool.unlink()

    def open(self, key: str) -> BinaryIO:
        try:
            resp = self.client.get_object(Bucket=self.bucket, Key=self._full(key))
        except ClientError as e:
            if _code(e) in _MISSING_CODES | _NO_BUCKET_CODES:
                raise StorageError(f"存储中找不到内容 {key}", code="BLOB_MISSING") from e
            raise self._translate(e, f"读取内容 {key}") from e
        except BotoCoreError as e:
            raise self._unavailable(e, f"读取内容 {key}") from e
        return _S3Reader(resp["Body"], key)  # type: ignore[return-value]

    def exists(self, key: str) -> bool:
        return self._head(key) is not None

    def size(self, key: str) -> int | None:
        head = self._head(key)
        return None if head is None else int(head["ContentLength"])

    def iter_objects(self) -> Iterator[StoredObject]:
        base = f"{self.prefix}/" if self.prefix else ""
        try:
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=base + CONTENT_AREA, PaginationConfig={"PageSize": 1000})
            for page in pages:
                for obj in page.get("Contents", []):
                    yield StoredObject(obj["Key"][len(base):], int(obj["Size"]), obj["LastModified"].timestamp())
        except ClientError as e:
            if _code(e) in _NO_BUCKET_CODES:
                return
            raise self._translate(e, "列出存储内容") from e
        except BotoCoreError as e:
            raise self._unavailable(e, "列出存储内容") from e

    def delete_unreferenced(self, key: str) -> None:
        if not key.startswith(CONTENT_AREA):
            raise StorageError(f"存储键“{key}”不在内容区内，拒绝删除", code="BAD_STORAGE_KEY")
        try:
            self.client.delete_object(Bucket=self.bucket, Key=self._full(key))
        except ClientError as e:
            if _code(e) in _MISSING_CODES | _NO_BUCKET_CODES:
                return
            raise self._translate(e, f"删除内容 {key}") from e
        except BotoCoreError as e:
            raise self._unavailable(e, f"删除内容 {key}") from e

    def sweep_temporary(self, older_than: float) -> int:
        """Remove spool files left by a crashed process (their upload never completed)."""
        n = 0
        if self.spool_dir.is_dir():
            for p in self.spool_dir.glob(SPOOL_PREFIX + "*"):
                with contextlib.suppress(FileNotFoundError):
                    if p.stat().st_mtime < older_than:
                        p.unlink()
                        n += 1
        # multipart uploads abandoned by a crash hold storage until aborted
        base = f"{self.prefix}/" if self.prefix else ""
        try:
            resp = self.client.list_multipart_uploads(Bucket=self.bucket, Prefix=base + CONTENT_AREA)
            for up in resp.get("Uploads", []):
                if up["Initiated"].timestamp() < older_than:
                    with contextlib.suppress(ClientError):
                        self.client.abort_multipart_upload(Bucket=self.bucket, Key=up["Key"], UploadId=up["UploadId"])
                        n += 1
        except (ClientError, BotoCoreError):
            pass  # not every S3-compatible store lists multipart uploads; spool cleanup is what matters
        return n

    def describe(self) -> str:
        return f"{self.url} @ {self.endpoint_url}" if self.endpoint_url else self.url


class _S3Reader(io.RawIOBase):
    """A GetObject body as a file-like object: streams, works in `with`, reports transport errors as OSError."""

    def __init__(self, body: Any, key: str) -> None:
        super().__init__()
        self._body = body
        self.key = key

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:  # type: ignore[override]
        try:
            return self._body.read(None if size is None or size < 0 else size)
        except (BotoCoreError, ConnectionError) as e:
            raise OSError(f"读取对象存储内容 {self.key} 时中断：{e}") from e

    def readinto(self, b: Any) -> int:
        data = self.read(len(b))
        n = len(data)
        b[:n] = data
        return n

    def close(self) -> None:
        if not self.closed:
            with contextlib.suppress(Exception):
                self._body.close()
        super().close()


def _code(e: ClientError) -> str:
    return str(e.response.get("Error", {}).get("Code", ""))


def _message(e: ClientError) -> str:
    return str(e.response.get("Error", {}).get("Message", ""))


def _status(e: ClientError) -> int:
    return int(e.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)

