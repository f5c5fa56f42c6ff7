"""数字化: scan batches, their files (write-once masters) and pages (挂接, QC, 抽检, OCR), PDF/A access copies

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-10 10:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def _ts(name: str, nullable: bool = False) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "scan_batches",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("fonds_id", sa.Integer(), sa.ForeignKey("fonds.id"), nullable=False),
        sa.Column("category_id", sa.Integer(), sa.ForeignKey("categories.id"), nullable=True),
        sa.Column("year", sa.Integer(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("device", sa.String(length=200), nullable=False),
        sa.Column("software", sa.String(length=200), nullable=False),
        sa.Column("settings", sa.JSON(), nullable=False),
        sa.Column("summary", sa.JSON(), nullable=False),
        sa.Column("inspection", sa.JSON(), nullable=True),
        sa.Column("overrides", sa.JSON(), nullable=False),
        sa.Column("job_id", sa.String(length=32), nullable=True),
        _ts("qc_at", True),
        _ts("ocr_at", True),
        sa.Column("created_by", sa.String(length=64), nullable=False),
        _ts("created_at"),
        sa.Column("accepted_by", sa.String(length=64), nullable=True),
        _ts("accepted_at", True),
        sa.Column("accept_note", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_scan_batches_created", "scan_batches", ["created_at"])
    op.create_table(
        "scan_files",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("batch_id", sa.Integer(), sa.ForeignKey("scan_batches.id"), nullable=False),
        sa.Column("name", sa.String(length=500), nullable=False),
        sa.Column("name_encoding", sa.String(length=16), nullable=False),
        sa.Column("archival_code", sa.String(length=120), nullable=True),
        sa.Column("first_page", sa.Integer(), nullable=True),
        sa.Column("layout", sa.String(length=16), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("sm3", sa.String(length=64), nullable=False),
        sa.Column("storage_key", sa.String(length=300), nullable=False),
        sa.Column("media_type", sa.String(length=100), nullable=False),
        sa.Column("format_name", sa.String(length=100), nullable=False),
        sa.Column("page_count", sa.Integer(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("properties", sa.JSON(), nullable=False),
        sa.Column("created_by", sa.String(length=64), nullable=False),
        _ts("created_at"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_scan_files_batch", "scan_files", ["batch_id"])
    op.create_index("ix_scan_files_key", "scan_files", ["storage_key"])
    op.create_table(
        "scan_pages",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("batch_id", sa.Integer(), sa.ForeignKey("scan_batches.id"), nullable=False),
        sa.Column("file_id", sa.Integer(), sa.ForeignKey("scan_files.id"), nullable=False),
        sa.Column("index", sa.Integer(), nullable=False),
        sa.Column("archival_code", sa.String(length=120), nullable=True),
        sa.Column("page_no", sa.Integer(), nullable=True),
        sa.Column("record_id", sa.Integer(), sa.ForeignKey("records.id"), nullable=True),
        sa.Column("is_current", sa.Boolean(), nullable=False),
        sa.Column("superseded_by_id", sa.Integer(), sa.ForeignKey("scan_pages.id"), nullable=True),
        sa.Column("width", sa.Integer(), nullable=True),
        sa.Column("height", sa.Integer(), nullable=True),
        sa.Column("dpi", sa.Integer(), nullable=True),
        sa.Column("colour", sa.String(length=8), nullable=False),
        sa.Column("compression", sa.String(length=32), nullable=False),
        sa.Column("device", sa.String(length=200), nullable=False),
        sa.Column("software", sa.String(length=200), nullable=False),
        _ts("scanned_at", True),
        sa.Column("qc", sa.JSON(), nullable=True),
        sa.Column("flags", sa.JSON(), nullable=False),
        sa.Column("qc_status", sa.String(length=8), nullable=False),
        sa.Column("declared_blank", sa.Boolean(), nullable=False),
        sa.Column("sampled", sa.Boolean(), nullable=False),
        sa.Column("sample_verdict", sa.String(length=8), nullable=True),
        sa.Column("sample_note", sa.Text(), nullable=False),
        sa.Column("sample_by", sa.String(length=64), nullable=True),
        _ts("sample_at", True),
        sa.Column("ocr_text", sa.Text(), nullable=True),
        sa.Column("ocr", sa.JSON(), nullable=True),
        _ts("ocr_at", True),
        sa.Column("file_row_id", sa.Integer(), sa.ForeignKey("files.id"), nullable=True),
        _ts("created_at"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_scan_pages_batch", "scan_pages", ["batch_id", "archival_code", "page_no"])
    op.create_index("ix_scan_pages_record", "scan_pages", ["record_id"])
    op.create_index("ix_scan_pages_file", "scan_pages", ["file_id"])
    op.create_table(
        "scan_outputs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("batch_id", sa.Integer(), sa.ForeignKey("scan_batches.id"), nullable=False),
        sa.Column("record_id", sa.Integer(), sa.ForeignKey("records.id"), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("sm3", sa.String(length=64), nullable=False),
        sa.Column("storage_key", sa.String(length=300), nullable=False),
        sa.Column("pages", sa.Integer(), nullable=False),
        sa.Column("page_ids", sa.JSON(), nullable=False),
        sa.Column("file_row_id", sa.Integer(), sa.ForeignKey("files.id"), nullable=True),
        sa.Column("created_by", sa.String(length=64), nullable=False),
        _ts("created_at"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_scan_outputs_batch", "scan_outputs", ["batch_id", "record_id"])
    op.create_index("ix_scan_outputs_key", "scan_outputs", ["storage_key"])


def downgrade() -> None:
    op.drop_index("ix_scan_outputs_key", "scan_outputs")
    op.drop_index("ix_scan_outputs_batch", "scan_outputs")
    op.drop_table("scan_outputs")
    op.drop_index("ix_scan_pages_file", "scan_pages")
    op.drop_index("ix_scan_pages_record", "scan_pages")
    op.drop_index("ix_scan_pages_batch", "scan_pages")
    op.drop_table("scan_pages")
    op.drop_index("ix_scan_files_key", "scan_files")
    op.drop_index("ix_scan_files_batch", "scan_files")
    op.drop_table("scan_files")
    op.drop_index("ix_scan_batches_created", "scan_batches")
    op.drop_table("scan_batches")
