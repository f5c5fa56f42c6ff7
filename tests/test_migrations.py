"""Alembic migrations build exactly the schema the models describe, on SQLite and PostgreSQL."""

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from dangan.db.models import Base
from dangan.errors import ConfigError
from dangan.storage import open_store


def _orm_managed(obj, name, type_, reflected, compare_to) -> bool:  # type: ignore[no-untyped-def]
    """The search index's engine-specific parts are made by migration 0005, not described by the models:
    the FTS5 table and its shadow tables on SQLite, the generated tsv column and its GIN index on PostgreSQL."""
    if type_ == "table" and name.startswith("search_fts"):
        return False
    if type_ == "column" and name == "tsv" and getattr(obj.table, "name", "") == "search_docs":
        return False
    return not (type_ == "index" and name == "ix_search_docs_tsv")


def test_no_drift_between_models_and_migrations(any_app):
    with any_app.engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True, "include_object": _orm_managed})
        diff = compare_metadata(ctx, Base.metadata)
    assert diff == []


def test_migrate_is_idempotent(any_app):
    any_app.migrate()
    any_app.migrate()


def test_unknown_storage_url():
    with pytest.raises(ConfigError) as ei:
        open_store("ftp://example/x")
    assert ei.value.code == "BAD_STORAGE_URL"
