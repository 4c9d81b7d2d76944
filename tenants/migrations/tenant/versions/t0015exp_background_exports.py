"""Exports built in the background: `export_file` (filters, progress, expiry) and its file in
`export_chunk` rows of 1 MiB.

Revision ID: t0015exp
Revises: t0014day
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "t0015exp"
down_revision = "t0014day"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "export_file",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("format", sa.String(length=4), nullable=False),
        sa.Column("filters", postgresql.JSONB(), nullable=False),
        sa.Column("timezone", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("progress", sa.Integer(), nullable=False),
        sa.Column("rows", sa.Integer(), nullable=True),
        sa.Column("size", sa.BigInteger(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("user_id", sa.Integer(), nullable=True),
        sa.Column("requested_by", sa.String(length=200), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("kind IN ('appointments')", name=op.f("ck_export_file_kind")),
        sa.CheckConstraint("format IN ('csv', 'xlsx')", name=op.f("ck_export_file_format")),
        sa.CheckConstraint("status IN ('queued', 'running', 'done', 'failed')", name=op.f("ck_export_file_status")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_export_file")),
    )
    op.create_index(op.f("ix_export_file_user_id_created_at"), "export_file", ["user_id", "created_at"])
    op.create_table(
        "export_chunk",
        sa.Column("export_id", sa.Integer(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(["export_id"], ["export_file.id"], ondelete="CASCADE",
                                name=op.f("fk_export_chunk_export_id_export_file")),
        sa.PrimaryKeyConstraint("export_id", "seq", name=op.f("pk_export_chunk")),
    )


def downgrade() -> None:
    op.drop_table("export_chunk")
    op.drop_index("ix_export_file_user_id_created_at", table_name="export_file")
    op.drop_table("export_file")
