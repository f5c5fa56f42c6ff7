"""长期保存: the scheduled fixity audit. Corrupt blobs on purpose, expect the exact finding, repair from a replica."""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import os
import time
from pathlib import Path

import pytest
from sqlalchemy import select, update
from typer.testing import CliRunner

from conftest import make_app
from dangan.cli import app as cli
from dangan.config import load_settings
from dangan.db.models import File, FixityResult, FixityRun
from dangan.errors import Conflict, PermissionDenied, StorageError
from dangan.services import audit, fixity
from dangan.services import fixity_audit as fa
from dangan.services.audit import list_events
from dangan.services.context import Actor, Dangan, reading
from dangan.services.files import NewFile
from dangan.services.records import RecordInput, create_record
from dangan.storage.local import LocalBlobStore
from dangan.storage.s3 import S3BlobStore

pytest_plugins = ["s3server"]  # the s3_server and s3_url fixtures (used by the tests marked s3 only)

META = {"title": "关于印发档案管理办法的通知", "year": 2023, "retention_period": "Y", "responsible": "办公室", "date": "2023-09-01"}
runner = CliRunner()


def content(i: int) -> bytes:
    return b"%PDF-1.4\n" + f"第 {i} 份文件".encode() + bytes([i % 256]) * 4096


def add_files(app: Dangan, admin: Actor, n: int, start: int = 0) -> list[dict]:
    """One record holding n files (cheap: one transaction)."""
    r = create_record(app, admin, RecordInput("Z109", "WS", META, department="BGS", state="filed"),
                      [NewFile(f"正文{i}.pdf", io.BytesIO(content(i))) for i in range(start, start + n)])
    return r["files"]


def blob(store: LocalBlobStore, f: dict) -> Path:
    p = store.root / f["storage_key"]
    if p.exists():
        os.chmod(p, 0o644)
    return p


def digests(data: bytes) -> dict:
    return {"size": len(data), "sha256": hashlib.sha256(data).hexdigest(), "sm3": hashlib.new("sm3", data).hexdigest()}


def damage(store: LocalBlobStore, files: list[dict]) -> dict[int, dict]:
    """files[0] deleted, files[1] truncated to 100 bytes, files[2] one bit flipped; returns what is now found."""
    blob(store, files[0]).unlink()
    p = blob(store, files[1])
    short = p.read_bytes()[:100]
    p.write_bytes(short)
    p = blob(store, files[2])
    data = bytearray(p.read_bytes())
    data[2000] ^= 0x01
    p.write_bytes(bytes(data))
    return {files[0]["id"]: {"exists": False}, files[1]["id"]: digests(short), files[2]["id"]: digests(bytes(data))}


@pytest.fixture
def replica(app: Dangan, tmp_path: Path) -> LocalBlobStore:
    """A second local store folder as the replica, configured as a deployment would."""
    app.settings.replica_storage_url = (tmp_path / "replica").as_uri()
    store = fa.open_replica(app)
    assert isinstance(store, LocalBlobStore)
    return store


def outcomes(app: Dangan) -> dict[int, tuple[str | None, dt.datetime | None]]:
    with reading(app) as s:
        return {f.id: (f.last_fixity_outcome, f.last_fixity_at) for f in s.scalars(select(File))}


# ---------------------------------------------------------------- sizing and order


def test_batch_size_covers_every_file_within_the_cycle(tmp_path: Path) -> None:
    s = load_settings(tmp_path)  # 30 days, one batch an hour: 720 batches per cycle
    assert fa.runs_per_cycle(s) == 720
    assert fa.batch_size(100_000, s) == 139  # ceil(100000 / 720)
    assert fa.batch_size(720 * 50 + 1, s) == 51
    assert fa.batch_size(10, s) == fa.MIN_BATCH == 50
    s = load_settings(tmp_path, fixity_cycle_days=1, fixity_audit_interval_minutes=15)
    assert fa.runs_per_cycle(s) == 96 and fa.batch_size(10_000, s) == 105
    s = load_settings(tmp_path, fixity_audit_interval_minutes=0)  # scheduler off: manual batches sized as hourly
    assert fa.runs_per_cycle(s) == 720


def test_a_batch_takes_its_share_and_the_next_batch_the_rest(app: Dangan, admin: Actor) -> None:
    files = add_files(app, admin, 120)
    app.settings.fixity_cycle_days, app.settings.fixity_audit_interval_minutes = 1, 720  # two batches per cycle
    first = fa.audit_batch(app, admin)
    assert (first["batch_size"], first["checked"], first["total_files"], first["ok"]) == (60, 60, 120, True)
    state = outcomes(app)
    assert sorted(i for i, (o, _t) in state.items() if o == "ok") == [f["id"] for f in files[:60]]
    second = fa.audit_batch(app, admin)
    assert second["checked"] == 60
    assert all(o == "ok" for o, _t in outcomes(app).values())
    third = fa.audit_batch(app, admin, limit=5)  # now the oldest verified come first: the first batch's
    assert third["checked"] == 5
    state = outcomes(app)
    newest = sorted(state, key=lambda i: (state[i][1], i))[-5:]
    assert newest == [f["id"] for f in files[:5]]


def test_most_overdue_first_never_verified_then_oldest(app: Dangan, admin: Actor) -> None:
    files = add_files(app, admin, 5)
    ids = [f["id"] for f in files]
    now = dt.datetime.now(dt.UTC)
    ages = {ids[0]: 10, ids[1]: None, ids[2]: 40, ids[3]: 1, ids[4]: None}
    with app.sessions.begin() as s:
        for fid, days in ages.items():
            s.execute(update(File).where(File.id == fid).values(
                last_fixity_at=None if days is None else now - dt.timedelta(days=days),
                last_fixity_outcome=None if days is None else "ok"))
    assert [f.id for f, _c in fa._due(app, 5)] == [ids[1], ids[4], ids[2], ids[0], ids[3]]
    rep = fa.audit_batch(app, admin, limit=3)
    assert rep["checked"] == 3
    state = outcomes(app)
    touched = {i for i, (_o, t) in state.items() if t is not None and t.replace(tzinfo=dt.UTC) > now}
    assert touched == {ids[1], ids[4], ids[2]}


# ---------------------------------------------------------------- detection


def test_deleted_truncated_altered_are_reported_exactly(app: Dangan, admin: Actor) -> None:
    files = add_files(app, admin, 4)
    found = damage(app.store, files)
    rep = fa.audit_batch(app, admin)
    assert (rep["checked"], rep["drift"], rep["repaired"], rep["unrepaired"], rep["ok"]) == (4, 3, 0, 3, False)
    assert rep["verdict"] == "drift" and rep["replica"] is None
    got = {f["file_id"]: f for f in rep["findings"]}
    assert {k: v["outcome"] for k, v in got.items()} == {files[0]["id"]: "missing", files[1]["id"]: "truncated",
                                                         files[2]["id"]: "altered"}
    for f in files[:3]:
        g = got[f["id"]]
        assert g["expected"] == {"size": f["size"], "sha256": f["sha256"], "sm3": f["sm3"]}
        assert g["found"] == found[f["id"]]
        assert g["repaired"] is False and g["repair_note"] == "未配置备份存储（DANGAN_REPLICA_STORAGE_URL），无法自动修复"
    assert got[files[1]["id"]]["outcome_label"] == "截断" and got[files[2]["id"]]["archival_code"].startswith("Z109-WS·2023-Y-BGS-")
    state = outcomes(app)
    assert [state[f["id"]][0] for f in files] == ["missing", "truncated", "altered", "ok"]
    with reading(app) as s:
        run = s.get(FixityRun, rep["run_id"])
        assert (run.kind, run.checked, run.failed, run.repaired, run.finished_at is not None) == ("audit", 4, 3, 0, True)
        results = {r.file_id: r for r in s.scalars(select(FixityResult).where(FixityResult.run_id == run.id))}
    assert json.loads(results[files[2]["id"]].found) == found[files[2]["id"]]
    assert json.loads(results[files[0]["id"]].expected)["sha256"] == files[0]["sha256"]
    assert not any(r.repaired for r in results.values())
    ev = list_events(app, admin, action="fixity.audit", audit_the_view=False)[0]
    assert ev["outcome"] == "drift" and ev["object_id"] == str(rep["run_id"])
    assert ev["detail"]["checked"] == 4 and ev["detail"]["drift"] == 3 and ev["detail"]["unrepaired"] == 3
    assert sorted(d["file_id"] for d in ev["detail"]["drifted"]) == sorted(f["id"] for f in files[:3])
    assert list_events(app, admin, action="fixity.repair", audit_the_view=False) == []  # nothing attempted


def test_permission_is_the_fixity_check_right(app: Dangan) -> None:
    clerk = Actor("clerk", "普通用户", grants=(("record.read", "all"),))
    with pytest.raises(PermissionDenied):
        fa.audit_batch(app, clerk)
    with pytest.raises(PermissionDenied):
        fa.replicate(app, clerk)
    with pytest.raises(PermissionDenied):
        fa.audit_status(app, clerk)
    ev = list_events(app, Actor.admin(), action="fixity.audit", audit_the_view=False)[0]
    assert (ev["actor"], ev["outcome"], ev["detail"]["code"]) == ("clerk", "denied", "PERMISSION_DENIED")
    with reading(app) as s:
        assert s.scalar(select(FixityRun)) is None
    allowed = Actor("keeper", grants=(("fixity.run", "all"),))
    assert fa.audit_batch(app, allowed)["ok"]


def test_an_unreachable_store_stops_the_batch_without_a_verdict(app: Dangan, admin: Actor,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    add_files(app, admin, 3)
    assert fa.audit_batch(app, admin, limit=1)["checked"] == 1  # files[0] verified once, before the outage
    before = outcomes(app)
    down = StorageError("读取内容失败：无法连接对象存储 http://10.0.0.9:9000（ConnectTimeoutError）", code="S3_UNAVAILABLE")

    def unreachable(key: str) -> None:
        raise down

    monkeypatch.setattr(app.store, "open", unreachable)
    monkeypatch.setattr(app.store, "exists", unreachable)
    rep = fa.audit_batch(app, admin)
    assert (rep["checked"], rep["drift"], rep["ok"], rep["verdict"]) == (0, 0, False, "error")
    assert rep["error"] == (f"存储 {app.store.url} 无法访问，本批在第 1 个文件处中止：{down.message}")
    assert outcomes(app) == before  # nobody is told a file is missing when the store is merely down
    ev = list_events(app, admin, action="fixity.audit", audit_the_view=False)[0]
    assert ev["outcome"] == "error" and ev["detail"]["error"] == rep["error"]
    monkeypatch.setattr(LocalBlobStore, "open", lambda self, key: unreachable(key))  # the CLI opens its own store
    monkeypatch.setattr(LocalBlobStore, "exists", lambda self, key: unreachable(key))
    r = cli_run(app.settings.data_dir, "audit")
    assert r.exit_code == 1 and "✗ 存储 file://" in r.flat and "无法访问，本批在第 1 个文件处中止" in r.flat


def test_a_blob_that_cannot_be_opened_is_unreadable(app: Dangan, admin: Actor, monkeypatch: pytest.MonkeyPatch) -> None:
    files = add_files(app, admin, 2)
    real_open = app.store.open

    def open_(key: str):
        if key == files[1]["storage_key"]:
            raise PermissionError(13, "Permission denied", key)
        return real_open(key)

    monkeypatch.setattr(app.store, "open", open_)
    rep = fa.audit_batch(app, admin)
    assert rep["checked"] == 2 and [(g["file_id"], g["outcome"]) for g in rep["findings"]] == [(files[1]["id"], "unreadable")]
    assert rep["findings"][0]["found"] == {"error": f"[Errno 13] Permission denied: '{files[1]['storage_key']}'"}


# ---------------------------------------------------------------- repair


def test_drift_is_repaired_from_the_replica_and_verified(app: Dangan, admin: Actor, replica: LocalBlobStore) -> None:
    files = add_files(app, admin, 4)
    seeded = fa.replicate(app, admin)
    assert (seeded["total"], seeded["copied"], seeded["present"], seeded["ok"]) == (4, 4, 0, True)
    assert seeded["bytes_copied"] == sum(f["size"] for f in files)
    found = damage(app.store, files)
    rep = fa.audit_batch(app, admin)
    assert (rep["drift"], rep["repaired"], rep["unrepaired"], rep["ok"], rep["verdict"]) == (3, 3, 0, True, "repaired")
    for g in rep["findings"]:
        assert g["repaired"] is True and g["found"] == found[g["file_id"]]  # what was found is still reported
        assert g["repair_note"] == (f"已从备份存储 {replica.url} 取回副本：SHA-256 与 SM3 与登记值一致后写回，写回后复核通过")
    for i, f in enumerate(files):
        p = app.store.root / f["storage_key"]
        assert p.read_bytes() == content(i) and (p.stat().st_mode & 0o777) == 0o444
    assert all(o == "ok" for o, _t in outcomes(app).values())
    assert fixity.check(app, admin).ok
    with reading(app) as s:
        run = s.get(FixityRun, rep["run_id"])
        assert (run.failed, run.repaired) == (3, 3)
        assert all(r.repaired and r.repair_note.startswith("已从备份存储") for r in s.scalars(select(FixityResult)))
    events = list_events(app, admin, action="fixity.repair", audit_the_view=False)
    assert sorted(int(e["object_id"]) for e in events) == sorted(f["id"] for f in files[:3])
    by_file = {int(e["object_id"]): e for e in events}
    e = by_file[files[2]["id"]]
    assert (e["outcome"], e["object_type"], e["detail"]["drift"], e["detail"]["repaired"]) == ("success", "file", "altered", True)
    assert e["detail"]["found"] == found[files[2]["id"]] and e["detail"]["run_id"] == rep["run_id"]
    assert e["detail"]["source"] == replica.url and e["detail"]["after"] == "ok"
    assert list_events(app, admin, action="fixity.audit", audit_the_view=False)[0]["outcome"] == "repaired"
    with reading(app) as s:
        chain = audit.verify_chain(s)
    assert chain.ok and chain.checked > 0
    assert not list(app.store.tmp.glob("upload-*"))  # no spool left behind


def test_a_bad_replica_copy_is_never_written_back(app: Dangan, admin: Actor, replica: LocalBlobStore) -> None:
    files = add_files(app, admin, 3)
    fa.replicate(app, admin)
    damage(app.store, files)  # 0 deleted, 1 truncated, 2 altered in the primary store
    blob(replica, files[0]).unlink()  # the replica lost file 0 too
    p = blob(replica, files[1])
    p.write_bytes(p.read_bytes()[:50])  # ... and holds a truncated copy of file 1
    p = blob(replica, files[2])
    bad = bytearray(p.read_bytes())
    bad[10] ^= 0xFF
    p.write_bytes(bytes(bad))  # ... and an altered copy of file 2
    primary_before = {f["id"]: (app.store.root / f["storage_key"]).read_bytes() for f in files[1:]}
    rep = fa.audit_batch(app, admin)
    assert (rep["drift"], rep["repaired"], rep["unrepaired"], rep["ok"]) == (3, 0, 3, False)
    notes = {g["file_id"]: g["repair_note"] for g in rep["findings"]}
    assert notes[files[0]["id"]] == f"备份存储 {replica.url} 中也没有该内容，无法修复；请从其他备份恢复"
    assert notes[files[1]["id"]] == (
        f"备份存储 {replica.url} 中的副本也已损坏（截断：50 字节，SHA-256 {digests(content(1)[:50])['sha256'][:16]}…，"
        f"登记为 {files[1]['size']} 字节），未写回；问题仍在，请从其他备份恢复")
    assert notes[files[2]["id"]].startswith(f"备份存储 {replica.url} 中的副本也已损坏（被篡改：{files[2]['size']} 字节，"
                                            f"SHA-256 {digests(bytes(bad))['sha256'][:16]}…")
    for fid, before in primary_before.items():  # the primary keeps exactly what it had: nothing wrong written
        key = next(f["storage_key"] for f in files if f["id"] == fid)
        assert (app.store.root / key).read_bytes() == before
    assert not (app.store.root / files[0]["storage_key"]).exists()
    assert [outcomes(app)[f["id"]][0] for f in files] == ["missing", "truncated", "altered"]
    events = list_events(app, admin, action="fixity.repair", audit_the_view=False)
    assert len(events) == 3 and {e["outcome"] for e in events} == {"failure"}
    e = next(e for e in events if e["object_id"] == str(files[2]["id"]))
    assert e["detail"]["replica_outcome"] == "altered" and e["detail"]["replica_found"] == digests(bytes(bad))
    st = fa.audit_status(app)
    assert st["drift_outstanding"] == 3 and {d["file_id"]: d["repair_note"] for d in st["drift"]} == notes
    assert not list(app.store.tmp.glob("upload-*"))


def test_replace_corrupt_refuses_content_that_is_not_what_the_key_names(app: Dangan, admin: Actor) -> None:
    f = add_files(app, admin, 1)[0]
    p = blob(app.store, f)
    p.write_bytes(b"damaged")
    with pytest.raises(StorageError) as e:
        app.store.replace_corrupt(f["storage_key"], io.BytesIO(content(0)[:-1]), size=f["size"], sm3=f["sm3"])
    assert e.value.code == "REPAIR_MISMATCH" and e.value.detail["found"] == digests(content(0)[:-1])
    assert p.read_bytes() == b"damaged"
    with pytest.raises(StorageError) as e:  # right bytes, wrong recorded SM3: refused as well
        app.store.replace_corrupt(f["storage_key"], io.BytesIO(content(0)), size=f["size"], sm3="0" * 64)
    assert e.value.code == "REPAIR_MISMATCH" and p.read_bytes() == b"damaged"
    info = app.store.replace_corrupt(f["storage_key"], io.BytesIO(content(0)), size=f["size"], sm3=f["sm3"])
    assert (info.key, info.sha256, info.size) == (f["storage_key"], f["sha256"], f["size"])
    assert p.read_bytes() == content(0) and (p.stat().st_mode & 0o777) == 0o444


def test_replicate_copies_what_is_lacking_and_never_a_damaged_blob(app: Dangan, admin: Actor,
                                                                   replica: LocalBlobStore) -> None:
    files = add_files(app, admin, 4)
    add_files(app, admin, 1)  # the same content as files[0]: one blob, referenced twice
    seen: list[tuple[int, int, int]] = []
    first = fa.replicate(app, admin, progress=lambda *a: seen.append(a))
    assert (first["total"], first["copied"], first["present"]) == (4, 4, 0)
    assert seen[-1] == (4, 4, sum(f["size"] for f in files))
    again = fa.replicate(app, admin)
    assert (again["copied"], again["present"], again["bytes_copied"], again["ok"]) == (0, 4, 0, True)
    blob(replica, files[1]).write_bytes(b"short")  # a wrong-size replica copy is replaced
    blob(replica, files[2]).unlink()
    blob(app.store, files[2]).write_bytes(b"rotten")  # ... but a damaged primary blob is never copied
    blob(replica, files[3]).unlink()
    rep = fa.replicate(app, admin)
    assert (rep["copied"], rep["replaced"], rep["present"], rep["ok"]) == (1, 1, 1, False)
    assert [b["key"] for b in rep["source_bad"]] == [files[2]["storage_key"]]
    assert rep["source_bad"][0]["code"] == "REPAIR_MISMATCH"
    assert (replica.root / files[1]["storage_key"]).read_bytes() == content(1)
    assert (replica.root / files[3]["storage_key"]).read_bytes() == content(3)
    assert not replica.exists(files[2]["storage_key"])
    assert [o.key for o in replica.iter_objects() if o.size == len(b"rotten")] == []  # no orphan either
    ev = list_events(app, admin, action="fixity.replicate", audit_the_view=False)[0]
    assert ev["outcome"] == "failure" and ev["detail"]["source_bad"] == [files[2]["storage_key"]]
    assert ev["detail"]["copied"] == 1 and ev["detail"]["replaced"] == 1


def test_replicate_without_a_replica_is_a_clear_error(app: Dangan, admin: Actor) -> None:
    from dangan.errors import ConfigError

    with pytest.raises(ConfigError) as e:
        fa.replicate(app, admin)
    assert e.value.code == "NO_REPLICA" and "DANGAN_REPLICA_STORAGE_URL" in e.value.message


# ---------------------------------------------------------------- status


def test_status_counts_the_cycle_runs_and_outstanding_drift(app: Dangan, admin: Actor) -> None:
    files = add_files(app, admin, 6)
    st = fa.audit_status(app)
    assert (st["files_total"], st["never_verified"], st["verified_within_cycle"], st["overdue"], st["due"]) == (6, 6, 0, 0, 6)
    assert st["last_audit"] is None and st["last_runs"] == [] and st["ok"] is False and st["coverage"] == 0
    assert st["bytes_total"] == sum(f["size"] for f in files) and st["replica"] == {"configured": False, "url": None}
    blob(app.store, files[0]).unlink()
    fa.audit_batch(app, admin, limit=4)
    with app.sessions.begin() as s:  # one file verified long ago: overdue
        s.execute(update(File).where(File.id == files[4]["id"]).values(
            last_fixity_at=dt.datetime.now(dt.UTC) - dt.timedelta(days=31), last_fixity_outcome="ok"))
    st = fa.audit_status(app)
    assert (st["never_verified"], st["verified_within_cycle"], st["overdue"], st["due"]) == (1, 4, 1, 2)
    assert st["drift_outstanding"] == 1 and st["drift_by_outcome"] == {"missing": {"count": 1, "label": "缺失"}}
    assert st["drift"][0]["file_id"] == files[0]["id"] and st["drift"][0]["outcome_label"] == "缺失"
    assert st["last_audit"]["checked"] == 4 and st["last_audit"]["failed"] == 1 and st["last_audit"]["kind"] == "audit"
    assert st["coverage"] == round(4 / 6, 4) and st["batch_size"] == 50 and st["scheduler_enabled"] is True
    assert json.loads(json.dumps(st)) == st  # JSON-friendly as it is


# ---------------------------------------------------------------- exclusion and the scheduler


def test_two_batches_never_run_at_once(app: Dangan, admin: Actor) -> None:
    add_files(app, admin, 2)
    assert fa.audit_running(app) is False
    with fa._exclusive(app) as mine:
        assert mine and fa.audit_running(app) and fa.audit_status(app)["audit_running"] is True
        with pytest.raises(Conflict) as e:
            fa.audit_batch(app, admin)
        assert e.value.code == "FIXITY_AUDIT_RUNNING"
    assert fa.audit_status(app)["audit_running"] is False
    assert fa.audit_batch(app, admin)["checked"] == 2


@pytest.mark.postgres
def test_on_postgresql_servers_sharing_the_database_exclude_each_other(pg_app: Dangan, admin: Actor,
                                                                       pg_url: str, tmp_path: Path) -> None:
    files = add_files(pg_app, admin, 3)
    pg_app.settings.replica_storage_url = (tmp_path / "replica").as_uri()
    fa.replicate(pg_app, admin)
    damage(pg_app.store, files)
    other = Dangan(load_settings(tmp_path / "other-server", database_url=pg_url))  # its own data folder
    try:
        with fa._exclusive(pg_app), pytest.raises(Conflict):
            fa.audit_batch(other, admin)  # the file lock is not shared, the advisory lock is
        rep = fa.audit_batch(pg_app, admin)
        assert (rep["drift"], rep["repaired"], rep["ok"]) == (3, 3, True)
        st = fa.audit_status(other)
        assert st["drift_outstanding"] == 0 and st["verified_within_cycle"] == 3 and st["last_audit"]["repaired"] == 3
        with reading(pg_app) as s:
            assert audit.verify_chain(s).ok
    finally:
        other.close()


def test_scheduler_runs_a_batch_and_stops_cleanly(app: Dangan, admin: Actor) -> None:
    add_files(app, admin, 3)
    sched = fa.start_scheduler(app, interval_seconds=3600, initial_delay=0)
    assert sched.enabled and sched.alive
    deadline = time.monotonic() + 30
    while sched.runs == 0 and sched.errors == 0 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert sched.stop(timeout=10) and not sched.alive
    assert (sched.runs, sched.errors, sched.last_result["checked"]) == (1, 0, 3)
    ev = list_events(app, admin, action="fixity.audit", audit_the_view=False)[0]
    assert (ev["actor"], ev["client_addr"]) == ("system", "scheduler")


def test_scheduler_skips_while_a_batch_runs_and_survives_errors(app: Dangan, admin: Actor,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    add_files(app, admin, 2)
    sched = fa.AuditScheduler(app, interval_seconds=3600)  # not started: turns driven by the test
    with fa._exclusive(app):
        assert sched.run_once() is None
    assert (sched.skipped, sched.runs, sched.errors) == (1, 0, 0)

    def boom(*a: object, **k: object) -> dict:
        raise RuntimeError("数据库暂时不可用")

    monkeypatch.setattr(fa, "audit_batch", boom)
    assert sched.run_once() is None and sched.errors == 1 and sched.last_error == "RuntimeError: 数据库暂时不可用"
    monkeypatch.undo()
    assert sched.run_once()["checked"] == 2 and sched.runs == 1


def test_scheduler_is_off_when_the_interval_is_zero(app: Dangan) -> None:
    app.settings.fixity_audit_interval_minutes = 0
    sched = fa.start_scheduler(app)
    assert not sched.enabled and not sched.alive and sched.stop()


def test_stop_ends_a_running_batch_early_and_records_what_was_checked(app: Dangan, admin: Actor) -> None:
    add_files(app, admin, 5)
    calls = []
    rep = fa.audit_batch(app, admin, should_stop=lambda: len(calls) >= 2,
                         progress=lambda done, total, n: calls.append(done))
    assert rep["checked"] == 2 and rep["stopped"] is True
    with reading(app) as s:
        assert s.get(FixityRun, rep["run_id"]).checked == 2


# ---------------------------------------------------------------- CLI


def cli_run(data: Path, *args: str, **env: str):
    r = runner.invoke(cli, ["--data", str(data), "fixity", *args], env=env)
    r.flat = r.output.replace("\n", "")  # type: ignore[attr-defined]  (rich wraps at the terminal width)
    return r


def test_cli_audit_status_replicate(app: Dangan, admin: Actor, tmp_path: Path) -> None:
    files = add_files(app, admin, 3)
    data = tmp_path / "data"
    r = cli_run(data, "audit")
    assert r.exit_code == 0, r.output
    assert "巡检 3 个文件" in r.flat and "全部完好" in r.flat
    r = cli_run(data, "replicate", "--json")
    assert r.exit_code == 1 and json.loads(r.stdout)["error"]["code"] == "NO_REPLICA"
    rep_url = (tmp_path / "replica").as_uri()
    r = cli_run(data, "replicate", "--json", DANGAN_REPLICA_STORAGE_URL=rep_url)
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["copied"] == 3
    r = cli_run(data, "replicate", DANGAN_REPLICA_STORAGE_URL=rep_url)
    assert r.exit_code == 0 and "已有 3 个" in r.flat
    damage(app.store, files)
    r = cli_run(data, "audit", "--json")
    assert r.exit_code == 1  # drift without a replica stays unrepaired
    got = json.loads(r.stdout)
    assert got["unrepaired"] == 3 and {f["outcome"] for f in got["findings"]} == {"missing", "truncated", "altered"}
    r = cli_run(data, "audit", DANGAN_REPLICA_STORAGE_URL=rep_url)
    assert r.exit_code == 0, r.output
    assert "已修复 3 个" in r.flat and "缺失" in r.flat and "均已从备份存储修复" in r.flat
    r = cli_run(data, "status", "--json")
    assert r.exit_code == 0
    st = json.loads(r.stdout)
    assert st["files_total"] == 3 and st["drift_outstanding"] == 0 and st["last_audit"]["repaired"] == 3
    r = cli_run(data, "status")
    assert r.exit_code == 0 and "周期内已复核 3 个" in r.flat
    r = cli_run(data, "audit", "--limit", "1", "--json")
    assert r.exit_code == 0 and json.loads(r.stdout)["checked"] == 1


# ---------------------------------------------------------------- S3


@pytest.mark.s3
def test_s3_primary_repaired_from_a_local_replica(s3_url: str, s3_server, tmp_path: Path, admin: Actor) -> None:
    app = make_app(tmp_path / "data")  # DANGAN_STORAGE_URL points at a fresh bucket
    try:
        store = app.store
        assert isinstance(store, S3BlobStore)
        app.settings.replica_storage_url = (tmp_path / "replica").as_uri()
        files = add_files(app, admin, 3)
        assert fa.replicate(app, admin)["copied"] == 3
        raw = s3_server.client()
        k = [f"{store.prefix}/{f['storage_key']}" for f in files]
        raw.delete_object(Bucket=store.bucket, Key=k[0])
        raw.put_object(Bucket=store.bucket, Key=k[1], Body=content(1)[:100])
        raw.put_object(Bucket=store.bucket, Key=k[2], Body=content(2).replace(b"PDF", b"PDX"))
        rep = fa.audit_batch(app, admin)
        assert {g["file_id"]: g["outcome"] for g in rep["findings"]} == {
            files[0]["id"]: "missing", files[1]["id"]: "truncated", files[2]["id"]: "altered"}
        assert (rep["repaired"], rep["unrepaired"]) == (3, 0)
        for i, key in enumerate(k):
            obj = raw.get_object(Bucket=store.bucket, Key=key)
            assert obj["Body"].read() == content(i) and obj["Metadata"]["sm3"] == files[i]["sm3"]
        assert fixity.check(app, admin).ok
    finally:
        app.close()


@pytest.mark.s3
def test_local_primary_repaired_from_an_s3_replica(app: Dangan, admin: Actor, s3_server) -> None:
    import uuid

    app.settings.s3_endpoint_url, app.settings.s3_region = s3_server.endpoint, "us-east-1"
    app.settings.s3_access_key, app.settings.s3_secret_key = s3_server.access_key, s3_server.secret_key
    bucket = f"dangan-r-{uuid.uuid4().hex[:12]}"
    app.settings.replica_storage_url = f"s3://{bucket}/replica"
    files = add_files(app, admin, 2)
    assert fa.replicate(app, admin)["copied"] == 2
    raw = s3_server.client()
    raw.put_object(Bucket=bucket, Key=f"replica/{files[1]['storage_key']}", Body=b"bad replica copy")
    for f in files:
        blob(app.store, f).write_bytes(b"rot")
    rep = fa.audit_batch(app, admin)
    got = {g["file_id"]: g for g in rep["findings"]}
    assert got[files[0]["id"]]["repaired"] is True and blob(app.store, files[0]).read_bytes() == content(0)
    assert got[files[1]["id"]]["repaired"] is False and blob(app.store, files[1]).read_bytes() == b"rot"
    assert got[files[1]["id"]]["repair_note"].startswith(
        f"备份存储 s3://{bucket}/replica 中的副本也已损坏（截断：16 字节")
    again = fa.replicate(app, admin)  # the wrong-size replica copy cannot be fixed from a damaged primary
    assert again["present"] == 1 and [b["key"] for b in again["source_bad"]] == [files[1]["storage_key"]]
