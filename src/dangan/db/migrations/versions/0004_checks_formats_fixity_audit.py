"""preservation: check schemes, runs and results; format identification on files; fixity audit bookkeeping

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01 20:30:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("files") as b:
        b.add_column(sa.Column("puid", sa.String(length=32), nullable=True))
        b.add_column(sa.Column("format_version", sa.String(length=32), nullable=True))
        b.add_column(sa.Column("identification", sa.JSON(), nullable=True))
        b.add_column(sa.Column("validation", sa.JSON(), nullable=True))
    with op.batch_alter_table("fixity_runs") as b:
        b.add_column(sa.Column("kind", sa.String(length=16), nullable=False, server_default="check"))
        b.add_column(sa.Column("repaired", sa.Integer(), nullable=False, server_default="0"))
    with op.batch_alter_table("fixity_results") as b:
        b.add_column(sa.Column("repaired", sa.Boolean(), nullable=False, server_default=sa.false()))
        b.add_column(sa.Column("repair_note", sa.Text(), nullable=False, server_default=""))
    op.create_index("ix_files_fixity_due", "files", ["last_fixity_at"])
    op.create_table(
        "check_schemes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("stage", sa.String(length=16), nullable=False),
        sa.Column("category_code", sa.String(length=16), nullable=True),
        sa.Column("items", sa.JSON(), nullable=False),
        sa.Column("is_default", sa.Boolean(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_by", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "check_runs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("stage", sa.String(length=16), nullable=False),
        sa.Column("scheme_id", sa.Integer(), sa.ForeignKey("check_schemes.id"), nullable=True),
        sa.Column("scheme", sa.JSON(), nullable=False),
        sa.Column("target_kind", sa.String(length=16), nullable=False),
        sa.Column("target_label", sa.String(length=300), nullable=False),
        sa.Column("target_key", sa.String(length=200), nullable=False),
        sa.Column("actor", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("verdict", sa.String(length=16), nullable=True),
        sa.Column("summary", sa.JSON(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("error", sa.JSON(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_check_runs_started", "check_runs", ["started_at"])
    op.create_table(
        "check_run_records",
        sa.Column("run_id", sa.Integer(), sa.ForeignKey("check_runs.id", ondelete="CASCADE"), nullable=False),
        sa.Column("record_id", sa.Integer(), sa.ForeignKey("records.id"), nullable=False),
        sa.PrimaryKeyConstraint("run_id", "record_id"),
    )
    op.create_index("ix_check_run_records_record_id", "check_run_records", ["record_id"])
    op.create_table(
        "check_results",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.Integer(), sa.ForeignKey("check_runs.id", ondelete="CASCADE"), nullable=False),
        sa.Column("code", sa.String(length=16), nullable=False),
        sa.Column("item_key", sa.String(length=48), nullable=False),
        sa.Column("dimension", sa.Integer(), nullable=False),
        sa.Column("title", sa.String(length=100), nullable=False),
        sa.Column("outcome", sa.String(length=8), nullable=False),
        sa.Column("veto", sa.Boolean(), nullable=False),
        sa.Column("checked", sa.Integer(), nullable=False),
        sa.Column("evidence", sa.JSON(), nullable=False),
        sa.Column("evidence_count", sa.Integer(), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_check_results_run", "check_results", ["run_id"])


def downgrade() -> None:
    op.drop_index("ix_check_results_run", "check_results")
    op.drop_table("check_results")
    op.drop_index("ix_check_run_records_record_id", "check_run_records")
    op.drop_table("check_run_records")
    op.drop_index("ix_check_runs_started", "check_runs")
    op.drop_table("check_runs")
    op.drop_table("check_schemes")
    op.drop_index("ix_files_fixity_due", "files")
    with op.batch_alter_table("fixity_results") as b:
        b.drop_column("repair_note")
        b.drop_column("repaired")
    with op.batch_alter_table("fixity_runs") as b:
        b.drop_column("repaired")
        b.drop_column("kind")
    with op.batch_alter_table("files") as b:
        b.drop_column("validation")
        b.drop_column("identification")
        b.drop_column("format_version")
        b.drop_column("puid")
