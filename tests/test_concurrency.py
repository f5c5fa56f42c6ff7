"""件号 allocation and state transitions with 8 concurrent writer processes, on SQLite and PostgreSQL.

Every process opens its own application (engine, pool, store) from the same data folder, as separate
server workers or CLI runs would, waits at a barrier, then writes as fast as it can. The processes are fresh
(forkserver/spawn): nothing opened by the test is shared with them.
"""

from __future__ import annotations

import dataclasses
import io
import multiprocessing as mp
import random
import traceback
from typing import Any

import pytest
from sqlalchemy import func, select

from dangan.config import load_settings
from dangan.db.models import AuditEvent, File, NumberCounter, Record
from dangan.errors import DanganError
from dangan.services import audit
from dangan.services.context import Actor, Dangan, reading
from dangan.services.files import NewFile
from dangan.services.records import RecordInput, create_record, transition

pytestmark = pytest.mark.slow

WRITERS = 8
PER_WRITER = 16
TO_FILE = 30


def _meta(title: str, year: int) -> dict[str, Any]:
    return {"title": title, "year": year, "retention_period": "D30", "responsible": "办公室", "date": f"{year}-03-01"}


def _open(data: str, db_url: str) -> Dangan:
    return Dangan(load_settings(data, database_url=db_url))


def _worker(data: str, db_url: str, wid: int, n: int, to_file: list[int], barrier: Any, q: Any) -> None:
    """Phase 1: create `n` filed records. Phase 2 (all together again): try to file every pending record."""
    made: list[tuple[int, str]] = []
    filed: list[int] = []
    codes: list[str] = []
    try:
        app = _open(data, db_url)
        actor = dataclasses.replace(Actor.admin(f"10.0.0.{wid}"), username=f"writer{wid}")
        barrier.wait(120)
        for i in range(n):
            body = f"第 {wid} 号进程的第 {i} 件".encode()
            r = create_record(app, actor, RecordInput("Z109", "WS", _meta(f"并发著录 {wid}-{i}", 2024), department="BGS",
                                                       state="filed"),
                              [NewFile("正文.txt", io.BytesIO(body))])
            made.append((r["id"], r["archival_code"]))
        order = list(to_file)
        random.Random(wid).shuffle(order)
        barrier.wait(120)
        for rid in order:
            try:
                transition(app, actor, rid, "filed")
                filed.append(rid)
            except DanganError as e:
                codes.append(e.code)
        app.close()
        q.put((wid, made, filed, codes, None))
    except BaseException:  # noqa: BLE001 - report everything to the parent
        q.put((wid, made, filed, codes, traceback.format_exc()))


def _run(data: str, db_url: str, to_file: list[int]) -> list[Any]:
    # fresh processes that inherit no connection, lock or thread from the test: "forkserver" forks them from a
    # clean server process that has imported dangan once (like "spawn", but 8 cold imports on a 2-core runner
    # cost more than the test itself); "spawn" where forkserver does not exist
    if "forkserver" in mp.get_all_start_methods():
        ctx = mp.get_context("forkserver")
        ctx.set_forkserver_preload(["dangan.services.records", "dangan.services.files", "sqlalchemy", "psycopg",
                                    __name__])
    else:
        ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(WRITERS)
    q = ctx.Queue()
    procs = [ctx.Process(target=_worker, args=(data, db_url, w, PER_WRITER, to_file, barrier, q))
             for w in range(WRITERS)]
    for p in procs:
        p.start()
    try:
        results = [q.get(timeout=180) for _ in procs]
    finally:
        for p in procs:
            p.join(30)
            if p.is_alive():
                p.kill()
    problems = [r[-1] for r in results if r[-1]]
    assert not problems, "a writer process failed:\n" + "\n".join(problems)
    return results


def test_concurrent_writers_and_transitions(any_app: Dangan, admin) -> None:
    # records waiting to be filed in another class (2023), raced for by all writers in phase 2
    to_file = [create_record(any_app, admin, RecordInput("Z109", "WS", _meta(f"待归档 {i}", 2023), department="BGS",
                                                          state="pending"))["id"] for i in range(TO_FILE)]
    results = _run(str(any_app.settings.data_dir), any_app.settings.effective_database_url, to_file)

    # phase 1: 件号 gapless and never duplicated
    made = [m for r in results for m in r[1]]
    total = WRITERS * PER_WRITER
    assert len(made) == total
    with reading(any_app) as s:
        rows = s.execute(select(Record.seq, Record.archival_code, Record.class_key).where(Record.year == 2024)
                         .order_by(Record.seq)).all()
        assert [r.seq for r in rows] == list(range(1, total + 1))
        assert len({r.archival_code for r in rows}) == total
        assert len({r.class_key for r in rows}) == 1
        assert {c for _id, c in made} == {r.archival_code for r in rows}
        assert s.scalar(select(NumberCounter.last_value).where(NumberCounter.class_key == rows[0].class_key)) == total
        assert s.scalar(select(func.count()).select_from(File)) == total
        events = s.execute(select(AuditEvent.action, AuditEvent.outcome, AuditEvent.object_id)).all()
    assert sum(1 for a, o, _ in events if a == "record.create" and o == "success") == total + TO_FILE

    # phase 2: each pending record filed by exactly one process; the others get a stable error code
    filed = [rid for r in results for rid in r[2]]
    codes = [c for r in results for c in r[3]]
    assert sorted(filed) == sorted(to_file), "each record is filed by exactly one process"
    assert len(codes) == WRITERS * TO_FILE - TO_FILE
    assert set(codes) <= {"INVALID_TRANSITION", "CONCURRENT_CONFLICT"}, set(codes)
    with reading(any_app) as s:
        rows = s.execute(select(Record.seq, Record.archival_code, Record.state, Record.row_version)
                         .where(Record.id.in_(to_file)).order_by(Record.seq)).all()
        assert [r.seq for r in rows] == list(range(1, TO_FILE + 1))
        assert len({r.archival_code for r in rows}) == TO_FILE
        assert {r.state for r in rows} == {"filed"}
        assert {r.row_version for r in rows} == {2}  # changed once, by the winner
    filed_events = sorted(int(oid) for a, o, oid in events if a == "record.file" and o == "success" and oid
                          and int(oid) in set(to_file))
    assert filed_events == sorted(to_file)

    # one audit chain, no fork, nothing lost
    with reading(any_app) as s:
        rep = audit.verify_chain(s)
        assert rep.ok, rep.as_dict()
        assert rep.checked == rep.head_seq == s.scalar(select(func.count()).select_from(AuditEvent))
