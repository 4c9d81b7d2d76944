"""dashboards: indexes for the calendar, list and analytics filters; saved list filters

The analytics figures aggregate appointments over start_at ranges; the covering
index lets PostgreSQL answer them with index-only scans (no heap visits for the
columns the figures read). Location and service filters of the calendar and the
list get their own (key, start_at) indexes, like staff has had since t0001.

Revision ID: t0009dash
Revises: t0006r
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = "t0009dash"
down_revision: Union[str, Sequence[str], None] = "t0006r"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

COVER = ["status", "staff_id", "service_id", "location_id", "source", "seats", "price", "currency", "end_at", "created_at"]


def upgrade() -> None:
    """Add the dashboard indexes and the saved_filter table of one tenant schema."""
    op.create_index("ix_appointment_start_cover", "appointment", ["start_at"], postgresql_include=COVER)
    op.create_index("ix_appointment_location_start", "appointment", ["location_id", "start_at"])
    op.create_index("ix_appointment_service_start", "appointment", ["service_id", "start_at"])
    op.create_index("ix_appointment_status_start", "appointment", ["status", "start_at"])
    op.create_table(
        "saved_filter",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("query", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.text("now()")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_saved_filter")),
        sa.UniqueConstraint("user_id", "name", name=op.f("uq_saved_filter_user_id")),
    )


def downgrade() -> None:
    """Drop them again."""
    op.drop_table("saved_filter")
    for name in ("ix_appointment_status_start", "ix_appointment_service_start", "ix_appointment_location_start",
                 "ix_appointment_start_cover"):
        op.drop_index(name, table_name="appointment")
