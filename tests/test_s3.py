"""The S3 blob store against a real SeaweedFS S3 server, alone and under the services."""

from __future__ import annotations

import hashlib
import io
import os
import socket
import time
import tracemalloc
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from conftest import make_app
from dangan.config import load_settings
from dangan.errors import StorageError, UploadIncomplete
from dangan.services import audit, fixity, storage_ops
from dangan.services.context import Dangan, reading
from dangan.services.files import NewFile, open_file
from dangan.services.records import RecordInput, create_record
from dangan.storage import open_store
from dangan.storage.base import key_for
from dangan.storage.hashing import sm3_hex
from dangan.storage.s3 import S3BlobStore

if TYPE_CHECKING:
    from s3server import S3Server

pytestmark = pytest.mark.s3
pytest_plugins = ["s3server"]  # the s3_server and s3_url fixtures

META = {"title": "关于对象存储归档试点的通知", "year": 2024, "retention_period": "Y", "responsible": "办公室",
        "date": "2024-05-06"}


@pytest.fixture
def store(s3_url: str, tmp_path: Path) -> S3BlobStore:
    s = open_store(s3_url, load_settings(tmp_path / "data"))
    assert isinstance(s, S3BlobStore)
    return s


@pytest.fixture
def s3_app(s3_url: str, tmp_path: Path) -> Iterator[Dangan]:
    a = make_app(tmp_path / "data")
    assert isinstance(a.store, S3BlobStore)
    yield a
    a.close()


def _raw_key(store: S3BlobStore, key: str) -> str:
    return f"{store.prefix}/{key}"


class Broken(io.RawIOBase):
    """Gives `good` bytes, then fails like a dropped connection."""

    def __init__(self, good: bytes) -> None:
        self.good = io.BytesIO(good)

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        b = self.good.read(n)
        if not b:
            raise ConnectionResetError("connection reset by peer")
        return b


class Generated(io.RawIOBase):
    """`size` pseudo-random bytes produced on demand (never held in memory at once)."""

    def __init__(self, size: int) -> None:
        self.left = size
        self.block = os.urandom(1024 * 1024)
        self.i = 0

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        n = min(self.left, len(self.block) if n < 0 else n)
        self.left -= n
        self.i += 1
        return bytes([self.i % 256]) + self.block[1:n] if n else b""


def test_put_get_roundtrip_with_digests_and_metadata(store: S3BlobStore, s3_server: S3Server) -> None:
    data = "示范市人民政府办公室 2024 年工作总结".encode() * 1000
    info = store.put(io.BytesIO(data), expected_size=len(data))
    sha = hashlib.sha256(data).hexdigest()
    assert (info.key, info.sha256, info.sm3, info.size, info.existed) == (key_for(sha), sha, sm3_hex(data), len(data), False)
    assert store.exists(info.key) and store.size(info.key) == len(data)
    with store.open(info.key) as fh:
        assert fh.read() == data
    assert b"".join(store.iter_bytes(info.key, chunk=4096)) == data
    head = s3_server.client().head_object(Bucket=store.bucket, Key=_raw_key(store, info.key))
    assert head["Metadata"] == {"sha256": sha, "sm3": sm3_hex(data)}
    objs = list(store.iter_objects())
    assert [(o.key, o.size) for o in objs] == [(info.key, len(data))]
    assert abs(objs[0].modified - time.time()) < 300
    assert not list(store.spool_dir.glob("spool-*"))  # the spool file is gone


def test_dedupe_and_never_overwrite(store: S3BlobStore, s3_server: S3Server) -> None:
    a = store.put(io.BytesIO(b"same content"))
    raw = s3_server.client()
    before = raw.head_object(Bucket=store.bucket, Key=_raw_key(store, a.key))
    b = store.put(io.BytesIO(b"same content"))
    assert b.existed and b.key == a.key and b.sm3 == a.sm3
    after = raw.head_object(Bucket=store.bucket, Key=_raw_key(store, a.key))
    assert after["LastModified"] == before["LastModified"] and after["ETag"] == before["ETag"]
    # a writer racing us (its HEAD saw nothing) still cannot overwrite: the conditional write refuses
    with pytest.raises(Exception) as ei:
        store.client.put_object(Bucket=store.bucket, Key=_raw_key(store, a.key), Body=b"other bytes")
    assert "PreconditionFailed" in str(ei.value)
    with store.open(a.key) as fh:
        assert fh.read() == b"same content"
    assert len(list(store.iter_objects())) == 1


def test_interrupted_and_short_uploads_leave_nothing(store: S3BlobStore) -> None:
    with pytest.raises(UploadIncomplete) as ei:
        store.put(Broken(b"x" * 3_000_000))
    assert ei.value.code == "UPLOAD_INCOMPLETE" and "3000000" in ei.value.message
    with pytest.raises(UploadIncomplete) as ei:
        store.put(io.BytesIO(b"only part"), expected_size=1000)
    assert ei.value.detail == {"expected_size": 1000, "received": 9}
    assert list(store.iter_objects()) == []
    assert not list(store.spool_dir.glob("spool-*"))


def test_missing_blob(store: S3BlobStore) -> None:
    key = key_for("0" * 64)
    with pytest.raises(StorageError) as ei:
        store.open(key)
    assert ei.value.code == "BLOB_MISSING"
    assert not store.exists(key) and store.size(key) is None
    store.delete_unreferenced(key)  # deleting what is not there is not an error
    with pytest.raises(StorageError):
        store.delete_unreferenced("../outside")


def test_multipart_upload_streams_in_bounded_memory(s3_url: str, s3_server: S3Server, tmp_path: Path) -> None:
    settings = load_settings(tmp_path / "data")
    store = S3BlobStore("dangan-t-" + uuid.uuid4().hex[:12], "mp", endpoint_url=s3_server.endpoint,
                        access_key=s3_server.access_key, secret_key=s3_server.secret_key,
                        spool_dir=settings.data_dir / "tmp" / "s3-spool",
                        multipart_threshold=5 * 1024 * 1024, multipart_chunksize=5 * 1024 * 1024, max_concurrency=2)
    size = 24 * 1024 * 1024 + 123
    src = Generated(size)
    store.put(io.BytesIO(b"warm-up"))  # load boto3's service model before measuring
    tracemalloc.start()
    try:
        info = store.put(src, expected_size=size)
        _cur, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert info.size == size
    # bounded by the 1 MiB read chunk and the parts in flight (2 x 5 MiB at most), not by the 24 MiB file
    assert peak < 12 * 1024 * 1024, f"memory grew with the file: peak {peak / 1e6:.1f} MB"
    head = s3_server.client().head_object(Bucket=store.bucket, Key=f"mp/{info.key}")
    assert head["ContentLength"] == size and "-" in head["ETag"]  # really multipart
    d = hashlib.sha256()
    for b in store.iter_bytes(info.key):
        d.update(b)
    assert d.hexdigest() == info.sha256


def test_unreachable_endpoint_and_wrong_credentials(s3_server: S3Server, tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    down = S3BlobStore("dangan-down", "", endpoint_url=f"http://127.0.0.1:{port}", access_key="a", secret_key="b",
                       spool_dir=tmp_path / "spool")
    with pytest.raises(StorageError) as ei:
        down.put(io.BytesIO(b"x"))
    assert ei.value.code == "S3_UNAVAILABLE" and "无法连接对象存储" in ei.value.message
    assert "DANGAN_S3_ENDPOINT_URL" in ei.value.message and ei.value.detail["reason"] == "unreachable"
    with pytest.raises(StorageError) as ei:
        down.open(key_for("1" * 64))
    assert ei.value.code == "S3_UNAVAILABLE"
    assert not list((tmp_path / "spool").glob("spool-*"))

    for ak, sk in ((s3_server.access_key, "wrong-secret"), ("nobody", "nothing")):
        bad = S3BlobStore("dangan-bad", "", endpoint_url=s3_server.endpoint, access_key=ak, secret_key=sk,
                          spool_dir=tmp_path / "spool")
        with pytest.raises(StorageError) as ei:
            bad.put(io.BytesIO(b"x"))
        assert ei.value.code == "S3_UNAVAILABLE" and ei.value.detail["reason"] == "credentials"
        assert "DANGAN_S3_ACCESS_KEY" in ei.value.message
        with pytest.raises(StorageError) as ei:
            list(bad.iter_objects())
        assert ei.value.code == "S3_UNAVAILABLE"


def test_from_url_reads_settings_and_creates_bucket(s3_url: str, tmp_path: Path, s3_server: S3Server) -> None:
    settings = load_settings(tmp_path / "data")
    assert settings.storage_url == s3_url
    store = S3BlobStore.from_url(s3_url, settings)
    assert store.bucket == s3_url.split("/")[2] and store.prefix == "archive"
    assert store.endpoint_url == s3_server.endpoint
    assert store.spool_dir == settings.data_dir / "tmp" / "s3-spool"
    assert list(store.iter_objects()) == []  # no bucket yet: an empty store, not an error
    store.put(io.BytesIO(b"first"))
    assert s3_server.client().head_bucket(Bucket=store.bucket)["ResponseMetadata"]["HTTPStatusCode"] == 200
    with pytest.raises(Exception, match="桶名"):
        S3BlobStore.from_url("s3:///nobucket", settings)


def test_services_on_s3_create_download_fixity_sweep(s3_app: Dangan, admin, s3_server: S3Server) -> None:
    store = s3_app.store
    assert isinstance(store, S3BlobStore)
    body = b"%PDF-1.4 " + os.urandom(200_000)
    r = create_record(s3_app, admin, RecordInput("Z109", "WS", META, department="BGS", state="filed"),
                      [NewFile("正文.pdf", io.BytesIO(body), expected_size=len(body)),
                       NewFile("附件.txt", io.BytesIO("附件内容".encode()), role="attachment")])
    assert r["archival_code"] == "Z109-WS·2024-Y-BGS-0001"
    f0 = r["files"][0]
    view, fh = open_file(s3_app, admin, f0["id"])
    with fh:
        assert fh.read() == body
    assert view["sha256"] == hashlib.sha256(body).hexdigest()

    rep = fixity.check(s3_app, admin)
    assert rep.ok and rep.checked == 2 and rep.bytes_read == len(body) + len("附件内容".encode())

    # an orphan (a crash between blob and row) is swept; referenced content is kept
    orphan = store.put(io.BytesIO(b"orphan left by a crash"))
    (store.spool_dir / "spool-leftover").write_bytes(b"partial")
    old = time.time() - 10
    os.utime(store.spool_dir / "spool-leftover", (old, old))
    sw = storage_ops.sweep(s3_app, admin, dry_run=True, grace_seconds=0)
    assert sw.unreferenced == [orphan.key] and sw.deleted == 0 and sw.scanned == 3
    sw = storage_ops.sweep(s3_app, admin, grace_seconds=0)
    assert sw.deleted == 1 and sw.temporary_removed >= 1
    assert not store.exists(orphan.key)
    assert all(store.exists(f["storage_key"]) for f in r["files"])
    sw = storage_ops.sweep(s3_app, admin, grace_seconds=3600)  # a young orphan is kept by the grace period
    assert sw.deleted == 0
    with reading(s3_app) as s:
        assert audit.verify_chain(s).ok


def test_fixity_detects_objects_altered_or_deleted_in_s3(s3_app: Dangan, admin, s3_server: S3Server) -> None:
    store = s3_app.store
    assert isinstance(store, S3BlobStore)
    files = [NewFile(f"文件{i}.txt", io.BytesIO(f"第 {i} 份文件的内容".encode() * 100)) for i in range(3)]
    r = create_record(s3_app, admin, RecordInput("Z109", "WS", META, department="BGS"), files)
    k_alt, k_del, k_short = (f["storage_key"] for f in r["files"])
    raw = s3_server.client()
    raw.put_object(Bucket=store.bucket, Key=_raw_key(store, k_alt), Body="第 0 份文件的内容".encode() * 99 + b"X" * 25)
    raw.delete_object(Bucket=store.bucket, Key=_raw_key(store, k_del))
    raw.put_object(Bucket=store.bucket, Key=_raw_key(store, k_short), Body=b"cut")
    rep = fixity.check(s3_app, admin)
    got = {f.storage_key: f.outcome for f in rep.findings}
    assert got == {k_alt: "altered", k_del: "missing", k_short: "truncated"}
    assert rep.checked == 3
    # the sweep never touches what rows reference, even when it is damaged
    sw = storage_ops.sweep(s3_app, admin, grace_seconds=0)
    assert sw.deleted == 0 and store.exists(k_alt)
