"""Shared fixtures: a fresh data folder per test (SQLite + local store) and, under CI, a real PostgreSQL."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from dangan.config import load_settings
from dangan.services.context import Actor, Dangan
from dangan.services.setup import init

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus"
if not CORPUS.is_dir():  # CI clones the repo with shared/ beside it
    CORPUS = Path(os.environ.get("DANGAN_CORPUS", "../shared/corpus")).resolve()

PG_ADMIN_URL = os.environ.get("DANGAN_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


@pytest.fixture
def admin() -> Actor:
    return Actor.admin("127.0.0.1")


def make_app(data: Path, database_url: str | None = None, fonds: bool = True) -> Dangan:
    settings = load_settings(data, database_url=database_url)
    init(settings, fonds_code="Z109" if fonds else None, fonds_name="示范市人民政府办公室", admin_accounts=False)
    app = Dangan(settings)
    if fonds:
        from dangan.services.fonds import create_department

        for i, (code, name) in enumerate([("BGS", "办公室"), ("CWK", "财务科"), ("JJK", "基建科")]):
            create_department(app, Actor.system(), "Z109", code, name, sort_order=i)
    return app


@pytest.fixture
def app(tmp_path: Path) -> Iterator[Dangan]:
    """A new archive on SQLite with fonds Z109, its three departments and the five preset categories."""
    a = make_app(tmp_path / "data")
    yield a
    a.close()


def _pg_available() -> bool:
    try:
        eng = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
        with eng.connect() as c:
            c.execute(text("select 1"))
        eng.dispose()
        return True
    except Exception:
        return False


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh PostgreSQL database for one test, dropped afterwards. Under CI=true it must not skip."""
    if not _pg_available():
        if IN_CI:
            pytest.fail(f"PostgreSQL is required under CI=true but {PG_ADMIN_URL} is unreachable")
        pytest.skip("PostgreSQL not reachable (runs under CI=true)")
    name = f"dangan_t_{uuid.uuid4().hex[:10]}"
    eng = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with eng.connect() as c:
        c.execute(text(f'CREATE DATABASE "{name}"'))
    url = PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    try:
        yield url
    finally:
        with eng.connect() as c:
            c.execute(text(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'"))
            c.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
        eng.dispose()


@pytest.fixture
def pg_app(tmp_path: Path, pg_url: str) -> Iterator[Dangan]:
    a = make_app(tmp_path / "data", pg_url)
    yield a
    a.close()


@pytest.fixture(params=["sqlite", "postgresql"])
def any_app(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Dangan]:
    """The same test on both engines."""
    if request.param == "sqlite":
        a = make_app(tmp_path / "data")
    else:
        a = make_app(tmp_path / "data", request.getfixturevalue("pg_url"))
    yield a
    a.close()
