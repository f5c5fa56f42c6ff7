"""search: the change log that keeps the embedded tantivy index in step with the database

Every change to a record's index row (search_docs) or to a record's trimming and filter columns appends the
record's id to `search_log` — by triggers, so no code path can change what a search must see without the
index hearing of it. The tantivy index stores the last sequence it applied and catches up before it answers.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01 23:40:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

TRACKED = ("fonds_id", "category_id", "department_id", "year", "date", "retention_period", "security_level",
           "state")


def upgrade() -> None:
    op.create_table(
        "search_log",
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("record_id", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("seq"),
        sqlite_autoincrement=True,
    )
    if op.get_bind().dialect.name == "sqlite":
        for name, event, ref in (("search_docs_log_ai", "INSERT", "new"), ("search_docs_log_ad", "DELETE", "old"),
                                 ("search_docs_log_au", "UPDATE", "new")):
            op.execute(f"CREATE TRIGGER {name} AFTER {event} ON search_docs BEGIN "
                       f"INSERT INTO search_log(record_id) VALUES ({ref}.record_id); END")
        changed = " OR ".join(f"old.{c} IS NOT new.{c}" for c in TRACKED)
        op.execute(f"CREATE TRIGGER records_log_au AFTER UPDATE OF {', '.join(TRACKED)} ON records "
                   f"WHEN {changed} BEGIN INSERT INTO search_log(record_id) VALUES (new.id); END")
        op.execute("CREATE TRIGGER records_log_ad AFTER DELETE ON records BEGIN "
                   "INSERT INTO search_log(record_id) VALUES (old.id); END")


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for t in ("records_log_ad", "records_log_au", "search_docs_log_au", "search_docs_log_ad",
                  "search_docs_log_ai"):
            op.execute(f"DROP TRIGGER IF EXISTS {t}")
    op.drop_table("search_log")
