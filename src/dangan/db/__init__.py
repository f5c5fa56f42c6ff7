"""Database adapter: models, engine and migrations (SQLite embedded default, PostgreSQL for scale)."""
