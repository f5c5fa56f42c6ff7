"""Alembic migrations build exactly the schema the models describe, on SQLite and PostgreSQL."""

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from dangan.db.models import Base
from dangan.errors import ConfigError
from dangan.storage import open_store


def test_no_drift_between_models_and_migrations(any_app):
    with any_app.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata)
    assert diff == []


def test_migrate_is_idempotent(any_app):
    any_app.migrate()
    any_app.migrate()


def test_unknown_storage_url():
    with pytest.raises(ConfigError) as ei:
        open_store("ftp://example/x")
    assert ei.value.code == "BAD_STORAGE_URL"
