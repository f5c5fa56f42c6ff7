"""search: extracted text per file and page; the search index (FTS5 on SQLite, weighted tsvector + GIN on PostgreSQL)

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01 21:40:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

FIELDS = ("title", "doc_number", "responsible", "archival_code", "keywords", "content")


def upgrade() -> None:
    op.create_table(
        "file_texts",
        sa.Column("file_id", sa.Integer(), sa.ForeignKey("files.id", ondelete="CASCADE"), nullable=False),
        sa.Column("record_id", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("encoding", sa.String(length=32), nullable=True),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("chars", sa.Integer(), nullable=False),
        sa.Column("pages", sa.Integer(), nullable=False),
        sa.Column("truncated", sa.Boolean(), nullable=False),
        sa.Column("extracted_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("file_id"),
    )
    op.create_index("ix_file_texts_record_id", "file_texts", ["record_id"])
    op.create_table(
        "file_text_pages",
        sa.Column("file_id", sa.Integer(), sa.ForeignKey("files.id", ondelete="CASCADE"), nullable=False),
        sa.Column("page", sa.Integer(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("file_id", "page"),
    )
    op.create_table(
        "search_docs",
        sa.Column("record_id", sa.Integer(), sa.ForeignKey("records.id", ondelete="CASCADE"), nullable=False),
        *[sa.Column(f, sa.Text(), nullable=False) for f in FIELDS],
        sa.Column("seg_version", sa.String(length=40), nullable=False),
        sa.Column("content_files", sa.Integer(), nullable=False),
        sa.Column("indexed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("record_id"),
    )
    if op.get_bind().dialect.name == "sqlite":
        cols = ", ".join(FIELDS)
        op.execute(f"CREATE VIRTUAL TABLE search_fts USING fts5({cols}, content='search_docs', "
                   "content_rowid='record_id', tokenize='ascii')")
        new = ", ".join(f"new.{f}" for f in FIELDS)
        old = ", ".join(f"old.{f}" for f in FIELDS)
        op.execute(f"CREATE TRIGGER search_docs_ai AFTER INSERT ON search_docs BEGIN "
                   f"INSERT INTO search_fts(rowid, {cols}) VALUES (new.record_id, {new}); END")
        op.execute(f"CREATE TRIGGER search_docs_ad AFTER DELETE ON search_docs BEGIN "
                   f"INSERT INTO search_fts(search_fts, rowid, {cols}) VALUES ('delete', old.record_id, {old}); END")
        op.execute(f"CREATE TRIGGER search_docs_au AFTER UPDATE ON search_docs BEGIN "
                   f"INSERT INTO search_fts(search_fts, rowid, {cols}) VALUES ('delete', old.record_id, {old}); "
                   f"INSERT INTO search_fts(rowid, {cols}) VALUES (new.record_id, {new}); END")
    else:
        op.execute("ALTER TABLE search_docs ADD COLUMN tsv tsvector GENERATED ALWAYS AS ("
                   "setweight(to_tsvector('simple', title), 'A') || "
                   "setweight(to_tsvector('simple', doc_number || ' ' || archival_code), 'B') || "
                   "setweight(to_tsvector('simple', responsible || ' ' || keywords), 'C') || "
                   "setweight(to_tsvector('simple', content), 'D')) STORED")
        op.execute("CREATE INDEX ix_search_docs_tsv ON search_docs USING GIN (tsv)")


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for t in ("search_docs_au", "search_docs_ad", "search_docs_ai"):
            op.execute(f"DROP TRIGGER IF EXISTS {t}")
        op.execute("DROP TABLE IF EXISTS search_fts")
    op.drop_table("search_docs")
    op.drop_table("file_text_pages")
    op.drop_index("ix_file_texts_record_id", "file_texts")
    op.drop_table("file_texts")
