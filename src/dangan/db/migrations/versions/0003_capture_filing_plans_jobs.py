"""capture: filing plans, capture jobs, pre-filing columns on records

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25 07:10:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("records") as b:
        b.add_column(sa.Column("submitted_at", sa.DateTime(timezone=True), nullable=True))
        b.add_column(sa.Column("submitted_by", sa.String(length=64), nullable=True))
        b.add_column(sa.Column("return_reason", sa.Text(), nullable=True))
        b.add_column(sa.Column("position", sa.Integer(), nullable=True))
    op.create_table(
        "filing_plans",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("fonds_id", sa.Integer(), sa.ForeignKey("fonds.id"), nullable=False),
        sa.Column("department_id", sa.Integer(), sa.ForeignKey("departments.id"), nullable=False),
        sa.Column("category_id", sa.Integer(), sa.ForeignKey("categories.id"), nullable=False),
        sa.Column("year", sa.Integer(), nullable=False),
        sa.Column("deadline", sa.Date(), nullable=False),
        sa.Column("expected_count", sa.Integer(), nullable=True),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("created_by", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("fonds_id", "department_id", "category_id", "year", name="uq_filing_plan"),
    )
    op.create_table(
        "capture_jobs",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("actor", sa.String(length=64), nullable=False),
        sa.Column("params", sa.JSON(), nullable=False),
        sa.Column("total", sa.Integer(), nullable=False),
        sa.Column("processed", sa.Integer(), nullable=False),
        sa.Column("created", sa.Integer(), nullable=False),
        sa.Column("existing", sa.Integer(), nullable=False),
        sa.Column("failed", sa.Integer(), nullable=False),
        sa.Column("result", sa.JSON(), nullable=False),
        sa.Column("error", sa.JSON(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_capture_jobs_actor", "capture_jobs", ["actor", "created_at"])


def downgrade() -> None:
    op.drop_index("ix_capture_jobs_actor", "capture_jobs")
    op.drop_table("capture_jobs")
    op.drop_table("filing_plans")
    with op.batch_alter_table("records") as b:
        b.drop_column("position")
        b.drop_column("return_reason")
        b.drop_column("submitted_by")
        b.drop_column("submitted_at")
