"""meetings and webhooks: the appointment's meeting columns, webhook endpoints and the delivery log

The meeting columns are filled by the meeting job (app/jobs/meetings.py), never by
the booking itself: `meeting_status` is NULL for services without meetings, then
pending -> ready, or retry/failed while the provider refuses (the booking stays).

Revision ID: t0008mtg
Revises: t0006r
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "t0008mtg"
down_revision: Union[str, Sequence[str], None] = "t0006r"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Add the meeting columns and the webhook tables of one tenant schema."""
    op.add_column("appointment", sa.Column("meeting_provider", sa.String(length=20), nullable=True))
    op.add_column("appointment", sa.Column("meeting_id", sa.String(length=200), nullable=True))
    op.add_column("appointment", sa.Column("meeting_join_url", sa.Text(), nullable=True))
    op.add_column("appointment", sa.Column("meeting_details", postgresql.JSONB(), nullable=True))
    op.add_column("appointment", sa.Column("meeting_status", sa.String(length=12), nullable=True))
    op.add_column("appointment", sa.Column("meeting_error", sa.Text(), nullable=True))
    op.add_column("appointment", sa.Column("meeting_attempts", sa.Integer(), nullable=True))
    op.create_index("ix_appointment_meeting_status", "appointment", ["meeting_status"],
                    postgresql_where=sa.text("meeting_status IN ('pending', 'retry', 'failed')"))

    op.create_table(
        "webhook_endpoint",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("uid", sa.String(length=40), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("events", postgresql.JSONB(), nullable=False),
        sa.Column("description", sa.String(length=300), nullable=True),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("secret_enc", sa.Text(), nullable=False),
        sa.Column("old_secret_enc", sa.Text(), nullable=True),
        sa.Column("old_secret_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("failing_since", sa.DateTime(timezone=True), nullable=True),
        sa.Column("disabled_reason", sa.Text(), nullable=True),
        sa.Column("last_success_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_endpoint")),
        sa.UniqueConstraint("uid", name=op.f("uq_webhook_endpoint_uid")),
    )
    op.create_table(
        "webhook_delivery",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("msg_id", sa.String(length=40), nullable=False),
        sa.Column("endpoint_scope", sa.String(length=8), nullable=False),
        sa.Column("endpoint_id", sa.Integer(), nullable=False),
        sa.Column("event_type", sa.String(length=60), nullable=False),
        sa.Column("event_id", sa.Integer(), nullable=True),
        sa.Column("event_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_status", sa.Integer(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("request_headers", postgresql.JSONB(), nullable=True),
        sa.Column("response_body", sa.Text(), nullable=True),
        sa.Column("latency_ms", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("endpoint_scope IN ('tenant', 'agency')", name=op.f("ck_webhook_delivery_scope")),
        sa.CheckConstraint("status IN ('pending', 'sending', 'retry', 'delivered', 'failed')",
                           name=op.f("ck_webhook_delivery_status")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_delivery")),
    )
    op.create_index("uq_webhook_delivery_once", "webhook_delivery", ["endpoint_scope", "endpoint_id", "event_id"],
                    unique=True, postgresql_where=sa.text("event_id IS NOT NULL"))
    op.create_index("ix_webhook_delivery_due", "webhook_delivery",
                    ["endpoint_scope", "endpoint_id", "event_at", "id"],
                    postgresql_where=sa.text("status IN ('pending', 'retry', 'sending')"))
    op.create_index("ix_webhook_delivery_created", "webhook_delivery", ["created_at"])


def downgrade() -> None:
    """Drop the webhook tables and the meeting columns."""
    op.drop_table("webhook_delivery")
    op.drop_table("webhook_endpoint")
    op.drop_index("ix_appointment_meeting_status", table_name="appointment")
    for column in ("meeting_attempts", "meeting_error", "meeting_status", "meeting_details", "meeting_join_url",
                   "meeting_id", "meeting_provider"):
        op.drop_column("appointment", column)
