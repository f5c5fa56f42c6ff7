"""PostgreSQL for real: migrations, and a connection killed inside the record-creation transaction."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, event, func, select, text
from sqlalchemy.orm import Session

from conftest import make_app
from dangan.db.engine import current_revision, make_engine, upgrade
from dangan.db.models import AuditEvent, Base, File, NumberCounter, Record
from dangan.errors import DatabaseUnavailable
from dangan.services import audit, storage_ops
from dangan.services.context import Dangan, reading
from dangan.services.files import NewFile
from dangan.services.records import RecordInput, create_record

pytestmark = pytest.mark.postgres

META = {"title": "关于数据库中断演练的通知", "year": 2024, "retention_period": "D30", "responsible": "办公室",
        "date": "2024-06-01"}


def _head_revision(engine: Any) -> str:
    from alembic.script import ScriptDirectory

    from dangan.db.engine import alembic_config

    return ScriptDirectory.from_config(alembic_config(engine)).get_current_head()


def test_migrations_on_postgresql_match_the_models(pg_url: str) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    engine = make_engine(pg_url)
    try:
        assert current_revision(engine) is None
        upgrade(engine)
        head = _head_revision(engine)
        assert current_revision(engine) == head
        upgrade(engine)  # a second run (every start) changes nothing
        assert current_revision(engine) == head
        with engine.connect() as conn:
            from test_migrations import _orm_managed

            ctx = MigrationContext.configure(conn, opts={"compare_type": True, "include_object": _orm_managed})
            diff = compare_metadata(ctx, Base.metadata)
        assert diff == [], f"the migrations and the models disagree on PostgreSQL: {diff}"
        with engine.connect() as conn:
            tables = set(conn.execute(text("select tablename from pg_tables where schemaname = 'public'")).scalars())
        assert {"records", "files", "audit_events", "number_counters"} <= tables
    finally:
        engine.dispose()


def test_downgrade_to_base_and_back(pg_url: str) -> None:
    from alembic import command

    from dangan.db.engine import alembic_config

    engine = make_engine(pg_url)
    try:
        upgrade(engine)
        command.downgrade(alembic_config(engine), "base")
        assert current_revision(engine) is None
        with engine.connect() as conn:
            left = list(conn.execute(text("select tablename from pg_tables where schemaname = 'public' "
                                          "and tablename <> 'alembic_version'")).scalars())
        assert left == []
        upgrade(engine)
        assert current_revision(engine) == _head_revision(engine)
    finally:
        engine.dispose()


@pytest.fixture
def pg_app_s(tmp_path: Path, pg_url: str) -> Iterator[Dangan]:
    a = make_app(tmp_path / "data", pg_url)
    yield a
    a.close()


def _kill_inside_record_transaction(app: Dangan, pg_url: str) -> dict[str, Any]:
    """Terminate the backend of the record-creation transaction right before its COMMIT, once."""
    state: dict[str, Any] = {"fired": False}
    killer = create_engine(pg_url, isolation_level="AUTOCOMMIT")

    def before_commit(session: Session) -> None:
        if state["fired"] or not any(isinstance(o, Record) for o in session.identity_map.values()):
            return
        state["fired"] = True
        conn = session.connection()
        state["pid"] = conn.execute(text("select pg_backend_pid()")).scalar_one()
        # the record, its files, the 档号 counter and the audit events are flushed but not committed
        state["uncommitted_records"] = conn.execute(select(func.count()).select_from(Record)).scalar_one()
        with killer.connect() as k:
            assert k.execute(text("select pg_terminate_backend(:p)"), {"p": state["pid"]}).scalar_one()

    event.listen(app.sessions, "before_commit", before_commit)
    state["remove"] = lambda: (event.remove(app.sessions, "before_commit", before_commit), killer.dispose())
    return state


def test_connection_lost_mid_transaction(pg_app_s: Dangan, pg_url: str, admin) -> None:
    app = pg_app_s
    with reading(app) as s:
        audit_before = s.scalar(select(func.count()).select_from(AuditEvent))
    state = _kill_inside_record_transaction(app, pg_url)
    body = b"%PDF-1.4 content written to the store before the database failed"
    try:
        with pytest.raises(DatabaseUnavailable) as ei:
            create_record(app, admin, RecordInput("Z109", "WS", META, department="BGS", state="filed"),
                          [NewFile("正文.pdf", io.BytesIO(body))])
    finally:
        state["remove"]()
    assert state["fired"] and state["uncommitted_records"] == 1
    err = ei.value
    assert err.code == "DATABASE_UNAVAILABLE" and err.status == 503
    assert "数据库连接中断" in err.message and "未保存" in err.message

    # nothing half-written: no record, no file row, no counter, no audit event from the lost transaction
    with reading(app) as s:
        assert s.scalar(select(func.count()).select_from(Record)) == 0
        assert s.scalar(select(func.count()).select_from(File)) == 0
        assert s.scalar(select(func.count()).select_from(NumberCounter)) == 0
        assert s.scalar(select(func.count()).select_from(AuditEvent)) == audit_before
        assert audit.verify_chain(s).ok

    # the next call succeeds on a fresh connection (pool_pre_ping), and the number 0001 was given back
    r = create_record(app, admin, RecordInput("Z109", "WS", META, department="BGS", state="filed"),
                      [NewFile("正文.pdf", io.BytesIO(body))])
    assert r["archival_code"] == "Z109-WS·2024-D30-BGS-0001"
    with reading(app) as s:
        rep = audit.verify_chain(s)
        assert rep.ok, rep.as_dict()
    # the blob of the failed attempt is the same content: now referenced, so the sweep keeps it
    sw = storage_ops.sweep(app, admin, grace_seconds=0)
    assert sw.deleted == 0 and app.store.exists(r["files"][0]["storage_key"])


def test_connection_lost_leaves_only_an_orphan_blob_that_the_sweep_removes(pg_app_s: Dangan, pg_url: str,
                                                                            admin) -> None:
    app = pg_app_s
    state = _kill_inside_record_transaction(app, pg_url)
    try:
        with pytest.raises(DatabaseUnavailable):
            create_record(app, admin, RecordInput("Z109", "WS", META, department="BGS"),
                          [NewFile("草稿.txt", io.BytesIO("只写入了存储的内容".encode()))])
    finally:
        state["remove"]()
    orphans = [o.key for o in app.store.iter_objects()]
    assert len(orphans) == 1
    sw = storage_ops.sweep(app, admin, grace_seconds=0)
    assert sw.unreferenced == orphans and sw.deleted == 1
    assert list(app.store.iter_objects()) == []


def test_database_down_gives_a_clear_error(tmp_path: Path, pg_url: str, admin) -> None:
    """A server that cannot be reached at all: the same stable code, not a driver traceback."""
    import socket

    app = make_app(tmp_path / "data", pg_url)
    app.close()
    with socket.socket() as sk:
        sk.bind(("127.0.0.1", 0))
        port = sk.getsockname()[1]
    down_url = pg_url.replace("127.0.0.1:5432", f"127.0.0.1:{port}")
    assert down_url != pg_url
    down = Dangan(app.settings, engine=make_engine(down_url, connect_args={"connect_timeout": 2}))
    try:
        with pytest.raises(DatabaseUnavailable) as ei:
            create_record(down, admin, RecordInput("Z109", "WS", META, department="BGS"),
                          [NewFile("正文.txt", io.BytesIO(b"x"))])
        assert ei.value.code == "DATABASE_UNAVAILABLE"
    finally:
        down.close()
