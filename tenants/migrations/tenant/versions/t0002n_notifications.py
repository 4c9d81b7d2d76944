"""notifications: delivery log, reminder settings per service, template overrides, outbox NOTIFY

Revision ID: t0002n
Revises: t0001
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "t0002n"
down_revision: Union[str, Sequence[str], None] = "t0001"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

# NOTIFY is delivered on commit only, so the relay hears of committed events and
# never of rolled-back ones. The payload is the schema, i.e. which tenant to relay.
NOTIFY_FUNCTION = """
CREATE OR REPLACE FUNCTION outbox_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('upzento_outbox', TG_TABLE_SCHEMA);
    RETURN NULL;
END $$;
"""


def upgrade() -> None:
    """Create the notification tables and the outbox trigger of one tenant schema."""
    op.create_table(
        "notification_delivery",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("appointment_id", postgresql.UUID(as_uuid=True), nullable=False),
        sa.Column("kind", sa.String(length=40), nullable=False),
        sa.Column("offset_min", sa.Integer(), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("channel", sa.String(length=10), nullable=False),
        sa.Column("recipient", sa.String(length=254), nullable=False),
        sa.Column("recipient_role", sa.String(length=10), nullable=False),
        sa.Column("language", sa.String(length=10), nullable=True),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("provider_id", sa.String(length=200), nullable=True),
        sa.Column("event_id", sa.Integer(), nullable=True),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("not_before", sa.DateTime(timezone=True), nullable=False),
        sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("subject", sa.Text(), nullable=True),
        sa.Column("body_text", sa.Text(), nullable=True),
        sa.Column("body_html", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("channel IN ('email', 'sms')", name=op.f("ck_notification_delivery_channel")),
        sa.CheckConstraint(
            "status IN ('queued', 'sending', 'retry', 'sent', 'delivered', 'failed', 'bounced', 'skipped')",
            name=op.f("ck_notification_delivery_status"),
        ),
        sa.ForeignKeyConstraint(["appointment_id"], ["appointment.id"], ondelete="CASCADE",
                                name=op.f("fk_notification_delivery_appointment_id_appointment")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notification_delivery")),
        sa.UniqueConstraint("appointment_id", "kind", "offset_min", "revision", "channel", "recipient",
                            name="uq_notification_delivery_once"),
    )
    op.create_index("ix_notification_delivery_due", "notification_delivery", ["not_before"],
                    postgresql_where=sa.text("status IN ('queued', 'retry', 'sending')"))
    op.create_index("ix_notification_delivery_created", "notification_delivery", ["created_at"])
    op.create_index("ix_notification_delivery_provider", "notification_delivery", ["provider_id"])

    op.create_table(
        "service_notification_settings",
        sa.Column("service_id", sa.Integer(), nullable=False),
        sa.Column("reminder_offsets", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("reminder_channels", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("follow_up_delay_min", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(["service_id"], ["service.id"], ondelete="CASCADE",
                                name=op.f("fk_service_notification_settings_service_id_service")),
        sa.PrimaryKeyConstraint("service_id", name=op.f("pk_service_notification_settings")),
    )
    op.create_table(
        "notification_template",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("event", sa.String(length=40), nullable=False),
        sa.Column("channel", sa.String(length=10), nullable=False),
        sa.Column("language", sa.String(length=10), nullable=False),
        sa.Column("subject", sa.Text(), nullable=False),
        sa.Column("body_text", sa.Text(), nullable=False),
        sa.Column("body_html", sa.Text(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notification_template")),
        sa.UniqueConstraint("event", "channel", "language", name=op.f("uq_notification_template_event")),
    )
    op.execute(NOTIFY_FUNCTION)
    op.execute(
        "CREATE TRIGGER outbox_notify AFTER INSERT ON outbox_event "
        "FOR EACH STATEMENT EXECUTE FUNCTION outbox_notify()"
    )


def downgrade() -> None:
    """Drop what upgrade() created."""
    op.execute("DROP TRIGGER IF EXISTS outbox_notify ON outbox_event")
    op.execute("DROP FUNCTION IF EXISTS outbox_notify()")
    op.drop_table("notification_template")
    op.drop_table("service_notification_settings")
    op.drop_index("ix_notification_delivery_provider", table_name="notification_delivery")
    op.drop_index("ix_notification_delivery_created", table_name="notification_delivery")
    op.drop_index("ix_notification_delivery_due", table_name="notification_delivery")
    op.drop_table("notification_delivery")
