"""kill -9 during ingest, then restart: nothing committed is lost, nothing half-written remains.

An ingest process files records with two files each in a loop, printing each committed record. It is
killed with SIGKILL, once from outside at an arbitrary moment after some records are committed, and once
from inside at the worst moment (blobs written, rows flushed, COMMIT not yet sent). Then a new process
must find: every committed record with its files, fixity clean, the audit chain intact, no record
without its file rows, only orphan blobs for the sweep, and numbering that continues without a gap.
"""

from __future__ import annotations

import io
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select

from dangan.config import load_settings
from dangan.db.models import File, Record
from dangan.services import audit, fixity, storage_ops
from dangan.services.context import Actor, Dangan, reading
from dangan.services.files import NewFile
from dangan.services.records import RecordInput, create_record

pytestmark = pytest.mark.slow

INGEST = r"""
import dataclasses, io, os, signal, sys
from sqlalchemy import event
from dangan.config import load_settings
from dangan.db.models import Record
from dangan.services.context import Actor, Dangan
from dangan.services.files import NewFile
from dangan.services.records import RecordInput, create_record

data, url, crash_at = sys.argv[1], sys.argv[2], int(sys.argv[3])
app = Dangan(load_settings(data, database_url=url))
actor = dataclasses.replace(Actor.admin("batch"), username="ingest")
done = 0

def before_commit(session):
    # crash_at > 0: die inside the transaction of record number crash_at, after its blobs and rows
    if done + 1 == crash_at and any(isinstance(o, Record) for o in session.identity_map.values()):
        os.kill(os.getpid(), signal.SIGKILL)

event.listen(app.sessions, "before_commit", before_commit)
print("ready", flush=True)
while done < 10_000:
    meta = {"title": f"批量导入第 {done} 件", "year": 2024, "retention_period": "D10", "responsible": "财务科",
            "date": "2024-07-01"}
    files = [NewFile("正文.pdf", io.BytesIO(b"%PDF-1.4 " + os.urandom(300_000))),
             NewFile("附件.txt", io.BytesIO(os.urandom(2_000)), role="attachment")]
    r = create_record(app, actor, RecordInput("Z109", "WS", meta, department="CWK", state="filed"), files)
    done += 1
    print("committed", r["id"], r["archival_code"], flush=True)
"""


def _ingest(app: Dangan, crash_at: int = 0, kill_after: int = 0) -> set[int]:
    """Run the ingest process until it dies; returns the ids it reported as committed."""
    url = app.settings.effective_database_url
    proc = subprocess.Popen([sys.executable, "-c", INGEST, str(app.settings.data_dir), url, str(crash_at)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    committed: set[int] = set()
    deadline = time.monotonic() + 60
    assert proc.stdout is not None
    try:
        for line in proc.stdout:
            if line.startswith("committed"):
                committed.add(int(line.split()[1]))
                if kill_after and len(committed) >= kill_after:
                    time.sleep(random.uniform(0, 0.15))  # land anywhere inside the next record(s)
                    proc.send_signal(signal.SIGKILL)
                    break
            assert time.monotonic() < deadline, "ingest did not reach the crash point in time"
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    err = proc.stderr.read() if proc.stderr else ""
    assert proc.returncode == -signal.SIGKILL, f"the ingest process ended with {proc.returncode}:\n{err}"
    for line in proc.stdout:  # whatever it printed before dying
        if line.startswith("committed"):
            committed.add(int(line.split()[1]))
    return committed


def _check_after_restart(data: Path, url: str, reported: set[int]) -> tuple[Dangan, int]:
    app = Dangan(load_settings(data, database_url=url))
    admin = Actor.admin("127.0.0.1")
    with reading(app) as s:
        recs = s.execute(select(Record.id, Record.seq).where(Record.department_id.is_not(None))).all()
        ids = {r.id for r in recs}
        assert reported <= ids, f"committed records lost: {sorted(reported - ids)}"
        per_record = dict(s.execute(select(File.record_id, func.count()).group_by(File.record_id)).all())
        assert all(per_record.get(i) == 2 for i in ids), "a record without its file rows"
        assert sorted(r.seq for r in recs) == list(range(1, len(recs) + 1)), "a gap in the numbering"
        referenced = set(s.scalars(select(File.storage_key)))
        assert audit.verify_chain(s).ok
    assert all(app.store.exists(k) for k in referenced), "a row that points to missing content"
    rep = fixity.check(app, admin)
    assert rep.ok and rep.checked == 2 * len(ids), rep.as_dict()

    stored = {o.key for o in app.store.iter_objects()}
    orphans = stored - referenced
    sw = storage_ops.sweep(app, admin, grace_seconds=0)
    assert set(sw.unreferenced) == orphans and sw.deleted == len(orphans)
    assert {o.key for o in app.store.iter_objects()} == referenced  # nothing referenced was touched
    assert not list((app.settings.data_dir / "blobs" / "tmp").glob("upload-*"))
    with reading(app) as s:
        assert audit.verify_chain(s).ok
    return app, len(orphans)


def _continue_numbering(app: Dangan) -> None:
    with reading(app) as s:
        top = s.scalar(select(func.max(Record.seq)).where(Record.department_id.is_not(None)))
    r = create_record(app, Actor.admin(), RecordInput("Z109", "WS", {
        "title": "重启后继续导入", "year": 2024, "retention_period": "D10", "responsible": "财务科", "date": "2024-07-02",
    }, department="CWK", state="filed"), [NewFile("正文.txt", io.BytesIO(b"after restart"))])
    assert r["seq"] == top + 1 and r["archival_code"].endswith(f"-{top + 1:04d}")


def test_kill_9_mid_ingest_then_restart(any_app: Dangan) -> None:
    data, url = any_app.settings.data_dir, any_app.settings.effective_database_url
    any_app.close()

    # 1. killed from outside, at an arbitrary moment after some records were committed
    reported = _ingest(any_app, kill_after=6)
    assert len(reported) >= 6
    app, _ = _check_after_restart(data, url, reported)  # 0 or 2 orphans, depending on where the kill landed
    with reading(app) as s:
        before = s.scalar(select(func.count()).select_from(Record))
    app.close()

    # 2. killed at the worst moment: blobs stored, rows flushed, COMMIT not sent
    reported2 = _ingest(any_app, crash_at=4)
    assert len(reported2) == 3
    app, orphans = _check_after_restart(data, url, reported | reported2)
    assert orphans == 2  # exactly the two files of the record whose transaction died
    with reading(app) as s:
        assert s.scalar(select(func.count()).select_from(Record)) == before + 3

    # 3. a new ingest continues the numbering without a gap
    _continue_numbering(app)
    with reading(app) as s:
        seqs = sorted(s.scalars(select(Record.seq).where(Record.department_id.is_not(None))))
        assert seqs == list(range(1, len(seqs) + 1))
        assert audit.verify_chain(s).ok
    app.close()
    assert os.path.isdir(data)
