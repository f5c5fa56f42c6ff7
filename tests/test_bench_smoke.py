"""Bulk ingest (services.ingest) and the smoke run of bench/ingest.py, so that the benchmark cannot rot."""

import hashlib
import io
import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import func, select, update

from dangan.db.models import AuditEvent, File, NumberCounter, Record
from dangan.services import ingest as ingest_mod
from dangan.services.audit import verify_chain
from dangan.services.files import NewFile
from dangan.services.ingest import ingest_batch
from dangan.services.records import RecordInput, create_record

ROOT = Path(__file__).resolve().parents[1]
GOOD = {"title": "关于做好2024年度档案归档工作的通知", "year": 2024, "retention_period": "Y", "responsible": "办公室",
        "date": "2024-03-05"}


def item(i, state="filed", meta=None, files=None, **kw):
    inp = RecordInput("Z109", "WS", {**GOOD, "title": f"{GOOD['title']}（{i}）", **(meta or {})},
                      department=kw.pop("department", "BGS"), state=state, **kw)
    if files is None:
        files = [NewFile(f"正文{i}.pdf", io.BytesIO(b"%%PDF-1.4 item %d\n" % i))]
    return inp, files


def counts(app):
    with app.read_sessions() as s:
        return (s.scalar(select(func.count()).select_from(Record)), s.scalar(select(func.count()).select_from(File)))


def blob_keys(app):
    return sorted(o.key for o in app.store.iter_objects())


def code(n, cls="Z109-WS·2024-Y-BGS"):
    return f"{cls}-{n:04d}"


@pytest.fixture
def app(any_app):
    return any_app


def test_batches_are_filed_with_gapless_codes_in_input_order(app, admin):
    before = create_record(app, admin, *item(0))  # the counter already in use: the batch continues after it
    assert before["archival_code"] == code(1)
    items = [item(i, department=("BGS" if i % 3 else "CWK")) for i in range(1, 31)]
    items.insert(5, item(99, state="pending"))
    seen = []
    progress = []
    rep = ingest_batch(app, admin, iter(items), batch_size=7, on_item=seen.append,
                       progress=lambda r: progress.append(r.processed))
    assert (rep.created, rep.existing, rep.failed, rep.files) == (31, 0, 0, 31)
    assert rep.batches == 5 and progress == [7, 14, 21, 28, 31]
    assert [r.index for r in seen] == list(range(31))
    bgs = [r.archival_code for r in seen if r.archival_code and "BGS" in r.archival_code]
    cwk = [r.archival_code for r in seen if r.archival_code and "CWK" in r.archival_code]
    assert bgs == [code(n) for n in range(2, 22)]
    assert cwk == [code(n, "Z109-WS·2024-Y-CWK") for n in range(1, 11)]
    assert seen[5].archival_code is None  # created as pending: no number taken
    with app.read_sessions() as s:
        rec = s.get(Record, seen[0].record_id)
        assert rec.state == "filed" and rec.filed_by == admin.username and rec.expiry_date is None
        f = rec.files[0]
        assert f.sha256 == hashlib.sha256(b"%PDF-1.4 item 1\n").hexdigest() and f.sm3 and f.sequence == 1
        assert f.media_type == "application/pdf"
        assert app.store.exists(f.storage_key)
        pending = s.get(Record, seen[5].record_id)
        assert pending.state == "pending" and pending.seq is None
        events = s.scalars(select(AuditEvent).where(AuditEvent.action == "record.create")).all()
        assert len(events) == 32  # one per record (and the one create_record above)
        assert '"archival_code":"Z109-WS·2024-Y-BGS-0002"' in events[1].detail
        assert s.scalar(select(NumberCounter.last_value).where(NumberCounter.class_key == "Z109-WS·2024-Y-BGS")) == 21
        assert verify_chain(s).ok


def test_invalid_item_is_reported_field_by_field_and_nothing_of_it_is_written(app, admin):
    bad_content = b"%PDF-1.4 never stored"
    items = [item(1), item(2, meta={"title": "", "date": "2024-02-30"},
                                files=[NewFile("../正文.pdf", io.BytesIO(bad_content))], sender_ref="bad-2"),
             item(3, department="NOPE"), item(4)]
    rep = ingest_batch(app, admin, items)
    assert (rep.created, rep.failed) == (2, 2)
    f2, f3 = rep.failures
    assert f2.index == 1 and f2.sender_ref == "bad-2" and f2.code == "VALIDATION_FAILED"
    assert {(p.field, p.code) for p in f2.problems} >= {("title", "REQUIRED"), ("files[0].name", "INVALID_FILE_NAME")}
    assert any(p.field == "date" for p in f2.problems)
    assert [(p.field, p.code) for p in f3.problems] == [("department", "NOT_FOUND")]
    assert counts(app) == (2, 2)
    assert hashlib.sha256(bad_content).hexdigest() not in " ".join(blob_keys(app))  # validated before any blob
    with app.read_sessions() as s:
        assert s.scalar(select(Record.id).where(Record.sender_ref == "bad-2")) is None
        # the refused items take no number: the valid ones stay gapless
        assert s.scalars(select(Record.archival_code).order_by(Record.id)).all() == [code(1), code(2)]
        failures = s.scalars(select(AuditEvent).where(AuditEvent.outcome == "failure")).all()
        assert len(failures) == 2 and '"code":"VALIDATION_FAILED"' in failures[0].detail
        assert verify_chain(s).ok


def test_stop_on_error_writes_the_items_before_the_failure_only(app, admin):
    items = [item(1), item(2), item(3, meta={"retention_period": "forever"}), item(4)]
    rep = ingest_batch(app, admin, items, stop_on_error=True)
    assert rep.stopped and (rep.created, rep.failed) == (2, 1)
    assert counts(app) == (2, 2)


def test_sender_ref_makes_a_retry_idempotent(app, admin):
    def items():
        for i in range(1, 6):
            yield item(i, sender_ref=f"oa-2024-{i}")
        yield item(3, sender_ref="oa-2024-3")  # the same item twice in one call

    first = []
    rep1 = ingest_batch(app, admin, items(), batch_size=4, on_item=first.append)
    assert (rep1.created, rep1.existing) == (5, 1)
    assert first[5].status == "existing" and first[5].record_id == first[2].record_id
    blobs = blob_keys(app)
    again = []
    rep2 = ingest_batch(app, admin, items(), on_item=again.append)
    assert (rep2.created, rep2.existing, rep2.failed) == (0, 6, 0)
    assert [(r.record_id, r.archival_code) for r in again] == [(r.record_id, r.archival_code) for r in first]
    assert counts(app) == (5, 5) and blob_keys(app) == blobs  # nothing stored twice
    with app.read_sessions() as s:
        assert s.scalar(select(NumberCounter.last_value)) == 5


def test_a_class_that_runs_out_of_numbers_refuses_the_rest_and_gives_nothing_away(app, admin):
    ingest_batch(app, admin, [item(1)])
    with app.sessions() as s, s.begin():
        s.execute(update(NumberCounter).values(last_value=9997))
    rep = ingest_batch(app, admin, [item(i) for i in range(2, 6)])
    assert (rep.created, rep.failed) == (2, 2)
    assert {f.code for f in rep.failures} == {"ARCHIVAL_CODE_OVERFLOW"}
    with app.read_sessions() as s:
        assert s.scalar(select(NumberCounter.last_value)) == 9999
        assert s.scalar(select(func.max(Record.archival_code))) == code(9999)


def test_a_crash_before_the_rows_leaves_only_unreferenced_blobs(app, admin, monkeypatch):
    def boom(*_a, **_k):
        raise OSError("disk gone")

    monkeypatch.setattr(ingest_mod, "_insert_records", boom)
    with pytest.raises(OSError):
        ingest_batch(app, admin, [item(1), item(2)])
    assert counts(app) == (0, 0)
    assert len(blob_keys(app)) == 2  # content first, rows never: the sweep removes these
    with app.read_sessions() as s:
        assert s.scalar(select(func.count()).select_from(NumberCounter)) in (0, 1)
        assert not s.scalar(select(func.coalesce(func.sum(NumberCounter.last_value), 0)))  # no number taken
        assert verify_chain(s).ok


def test_bench_ingest_tiny_runs(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "ingest.py"), "--tiny", "--data", str(tmp_path / "b")],
                          capture_output=True, text=True, timeout=600, env=env, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    for figure in ("small records: ingest_batch records/s", "large files: ingest_batch MB/s", "vs. a one-thread copy",
                   "create_record one at a time", "RSS at 10%", "RSS at 50%", "RSS at 100%", "peak RSS"):
        assert figure in out, figure
    assert "check FAIL" not in out and "audit chain verifies" in out


def test_each_item_is_checked_against_the_actors_rights(app, admin):
    from test_identity import make_user

    clerk = make_user(app, "clerk", ["clerk"], "内部", depts=["BGS"])  # may register pre-filing records of BGS only
    items = [item(1, state="pre_filing"), item(2, state="pre_filing", department="CWK"), item(3, state="filed"),
             item(4, state="pre_filing", meta={"security_level": "秘密", "secrecy_period": "10年"})]
    rep = ingest_batch(app, clerk, items)
    assert rep.created == 1 and rep.failed == 3
    by_index = {f.index: f for f in rep.failures}
    assert by_index[1].code == by_index[2].code == "PERMISSION_DENIED"
    assert [(p.field, p.code) for p in by_index[3].problems] == [("security_level", "ABOVE_CLEARANCE")]
    assert counts(app) == (1, 1)
    with app.read_sessions() as s:
        outcomes = s.scalars(select(AuditEvent.outcome).where(AuditEvent.action == "record.create",
                                                              AuditEvent.actor == "clerk")).all()
        assert sorted(outcomes) == ["denied", "denied", "failure", "success"]


def test_allocate_many_under_concurrent_batches_is_gapless_without_duplicates_or_deadlocks(app):
    """Batches naming the same classes in different orders, some rolled back: every class ends 1..n, no deadlock."""
    import random
    import threading
    import time

    from dangan.db.models import Category
    from dangan.services.numbering import allocate, allocate_many

    with app.read_sessions() as s:
        cats = list(s.scalars(select(Category.id).order_by(Category.id)))[:2]
    classes = [(c, "item", f"K{k}") for c in cats for k in range(4)]  # none exists yet: the first batches create them
    kept: list[tuple[tuple[int, str, str], int, int]] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def worker(n: int) -> None:
        rnd = random.Random(n)
        try:
            for t in range(12):
                keys = rnd.sample(classes, rnd.randint(1, len(classes)))  # random subset, random order
                req = {k: rnd.randint(1, 3) for k in keys}
                with app.sessions() as s, s.begin():
                    firsts = allocate_many(s, req)
                    time.sleep(0.002)  # hold the counters: the other batches queue up behind them
                    if t % 4 == 3:
                        s.rollback()  # gives its numbers back
                        continue
                with lock:
                    kept.extend((k, firsts[k], req[k]) for k in keys)
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert not errors, errors
    by_class: dict[tuple[int, str, str], list[int]] = {}
    for k, first, n in kept:
        by_class.setdefault(k, []).extend(range(first, first + n))
    with app.read_sessions() as s:
        counters = {(c, lv, k): v for c, lv, k, v in s.execute(
            select(NumberCounter.category_id, NumberCounter.level, NumberCounter.class_key, NumberCounter.last_value))}
    for k, nums in by_class.items():
        assert sorted(nums) == list(range(1, len(nums) + 1)), f"gap or duplicate in {k}"
        assert counters[k] == len(nums)
    with app.sessions() as s, s.begin():
        assert allocate(s, *classes[0]) == counters[classes[0]] + 1  # the 1-count case continues the block
        with pytest.raises(ValueError):
            allocate_many(s, {classes[1]: 0})


def test_bench_import_catalogue_tiny_runs(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "import_catalogue.py"), "--rows", "300",
                           "--data", str(tmp_path / "b")], capture_output=True, text=True, timeout=600, env=env, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for figure in ("import records/s", "dry run rows/s", "plain openpyxl read", "RSS at 50%", "peak RSS"):
        assert figure in proc.stdout, figure
    assert "check OK" in proc.stdout
