"""固化信息检测 and the sweep: corrupt on purpose, expect the exact finding."""

import io
import os
import time

import pytest

from dangan.services import fixity, storage_ops
from dangan.services.audit import list_events
from dangan.services.files import NewFile
from dangan.services.records import RecordInput, create_record

META = {"title": "关于印发档案管理办法的通知", "year": 2023, "retention_period": "Y", "responsible": "办公室", "date": "2023-09-01"}


@pytest.fixture
def three(app, admin):
    ids = []
    for i in range(3):
        r = create_record(app, admin, RecordInput("Z109", "WS", META, department="BGS", state="filed"),
                          [NewFile(f"正文{i}.pdf", io.BytesIO(b"%PDF-1.4\n" + bytes([i]) * 4096))])
        ids.append(r["files"][0])
    return ids


def path(app, f):
    p = app.store.root / f["storage_key"]
    os.chmod(p, 0o644)
    return p


def test_clean_store(app, admin, three):
    rep = fixity.check(app, admin)
    assert rep.ok and rep.checked == 3 and rep.bytes_read == sum(f["size"] for f in three)


def test_missing_truncated_altered_are_each_reported(app, admin, three):
    path(app, three[0]).unlink()
    p = path(app, three[1])
    p.write_bytes(p.read_bytes()[:100])
    p = path(app, three[2])
    data = bytearray(p.read_bytes())
    data[2000] ^= 0x01  # one bit flipped
    p.write_bytes(bytes(data))
    rep = fixity.check(app, admin)
    got = {f.file_id: f.outcome for f in rep.findings}
    assert got == {three[0]["id"]: "missing", three[1]["id"]: "truncated", three[2]["id"]: "altered"}
    altered = next(f for f in rep.findings if f.outcome == "altered")
    assert altered.expected["sha256"] == three[2]["sha256"] and altered.found["sha256"] != three[2]["sha256"]
    assert altered.archival_code.startswith("Z109-WS·2023-Y-BGS-")
    ev = list_events(app, admin, action="fixity.check", audit_the_view=False)[0]
    assert ev["detail"]["failed"] == 3


def test_one_record_only(app, admin, three):
    rep = fixity.check(app, admin, record_id=three[0]["record_id"])
    assert rep.checked == 1


def test_sweep_removes_only_unreferenced_old_blobs(app, admin, three):
    orphan = app.store.put(io.BytesIO(b"left behind by a crash between blob and row"))
    recent = app.store.put(io.BytesIO(b"upload in flight"))
    old = time.time() - 7200
    os.utime(app.store.root / orphan.key, (old, old))
    (app.store.tmp / "upload-stale").write_bytes(b"partial")
    os.utime(app.store.tmp / "upload-stale", (old, old))
    dry = storage_ops.sweep(app, admin, dry_run=True)
    assert dry.unreferenced == [orphan.key] and dry.deleted == 0 and app.store.exists(orphan.key)
    rep = storage_ops.sweep(app, admin)
    assert rep.deleted == 1 and rep.kept_recent == 1 and rep.temporary_removed == 1
    assert not app.store.exists(orphan.key) and app.store.exists(recent.key)
    assert fixity.check(app, admin).ok  # nothing referenced was touched


def test_put_never_overwrites(app):
    a = app.store.put(io.BytesIO(b"content"))
    before = (app.store.root / a.key).stat().st_ino
    b = app.store.put(io.BytesIO(b"content"))
    assert b.existed and b.key == a.key and (app.store.root / a.key).stat().st_ino == before


def test_sm3_is_the_national_standard_digest(app):
    # GB/T 32905-2016 test vector for "abc"
    info = app.store.put(io.BytesIO(b"abc"))
    assert info.sm3 == "66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0"


def test_streaming_put_keeps_memory_flat(app):
    class Zeros(io.RawIOBase):
        def __init__(self, n):
            self.left = n

        def readable(self):
            return True

        def readinto(self, b):
            k = min(len(b), self.left)
            b[:k] = bytes(k)
            self.left -= k
            return k

    import resource

    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    info = app.store.put(io.BufferedReader(Zeros(300 * 1024 * 1024), 1024 * 1024))
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert info.size == 300 * 1024 * 1024 and grown_mb < 64
