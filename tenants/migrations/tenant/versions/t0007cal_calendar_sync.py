"""calendar sync: connections, our events in them, feeds; busy blocks know their connection

Revision ID: t0007cal
Revises: t0006r
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "t0007cal"
down_revision: Union[str, Sequence[str], None] = "t0006r"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Create the calendar tables of one tenant schema."""
    op.create_table(
        "calendar_settings",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("external_changes", sa.String(length=10), nullable=False, server_default="reflect"),
        sa.Column("privacy", sa.String(length=10), nullable=False, server_default="details"),
        sa.Column("title_template", sa.Text(), nullable=False),
        sa.Column("description_template", sa.Text(), nullable=False),
        sa.Column("failing_alert_minutes", sa.Integer(), nullable=False, server_default="30"),
        sa.CheckConstraint("id = 1", name=op.f("ck_calendar_settings_single")),
        sa.CheckConstraint("external_changes IN ('reflect', 'ignore')", name=op.f("ck_calendar_settings_external_changes")),
        sa.CheckConstraint("privacy IN ('details', 'busy')", name=op.f("ck_calendar_settings_privacy")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_calendar_settings")),
    )
    op.create_table(
        "calendar_connection",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("uid", sa.String(length=40), nullable=False),
        sa.Column("provider", sa.String(length=12), nullable=False),
        sa.Column("owner_kind", sa.String(length=10), nullable=False),
        sa.Column("staff_id", sa.Integer(), nullable=True),
        sa.Column("location_id", sa.Integer(), nullable=True),
        sa.Column("account", sa.String(length=254), nullable=True),
        sa.Column("url", sa.Text(), nullable=True),
        sa.Column("secret_enc", sa.Text(), nullable=True),
        sa.Column("token_expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("busy_calendars", postgresql.JSONB(), nullable=False),
        sa.Column("target_calendar", sa.Text(), nullable=True),
        sa.Column("target_calendar_name", sa.String(length=300), nullable=True),
        sa.Column("include_tentative", sa.Boolean(), nullable=False),
        sa.Column("sync_state", postgresql.JSONB(), nullable=False),
        sa.Column("channel", postgresql.JSONB(), nullable=False),
        sa.Column("next_renewal_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("next_pull_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_pull_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_push_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("last_error_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("failing_since", sa.DateTime(timezone=True), nullable=True),
        sa.Column("alerted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_by", sa.String(length=120), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("provider IN ('google', 'microsoft', 'caldav')", name=op.f("ck_calendar_connection_provider")),
        sa.CheckConstraint("owner_kind IN ('staff', 'location', 'business')", name=op.f("ck_calendar_connection_owner_kind")),
        sa.CheckConstraint(
            "(owner_kind = 'staff' AND staff_id IS NOT NULL) OR (owner_kind = 'location' AND location_id IS NOT NULL)"
            " OR (owner_kind = 'business')", name=op.f("ck_calendar_connection_owner")),
        sa.CheckConstraint("status IN ('active', 'needs_reconnect', 'disconnected')", name=op.f("ck_calendar_connection_status")),
        sa.ForeignKeyConstraint(["staff_id"], ["staff.id"], name=op.f("fk_calendar_connection_staff_id_staff"), ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["location_id"], ["location.id"], name=op.f("fk_calendar_connection_location_id_location"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_calendar_connection")),
        sa.UniqueConstraint("uid", name=op.f("uq_calendar_connection_uid")),
    )
    op.create_index("ix_calendar_connection_staff", "calendar_connection", ["staff_id"])
    op.create_index("ix_calendar_connection_location", "calendar_connection", ["location_id"])
    op.create_index("ix_calendar_connection_next_pull", "calendar_connection", ["next_pull_at"],
                    postgresql_where=sa.text("status = 'active'"))
    op.create_table(
        "calendar_event_link",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("connection_id", sa.Integer(), nullable=False),
        sa.Column("appointment_id", postgresql.UUID(as_uuid=True), nullable=False),
        sa.Column("calendar_id", sa.Text(), nullable=True),
        sa.Column("external_id", sa.Text(), nullable=True),
        sa.Column("etag", sa.Text(), nullable=True),
        sa.Column("content_hash", sa.String(length=64), nullable=True),
        sa.Column("pushed_start", sa.DateTime(timezone=True), nullable=True),
        sa.Column("pushed_end", sa.DateTime(timezone=True), nullable=True),
        sa.Column("deleted", sa.Boolean(), nullable=False),
        sa.Column("generation", sa.Integer(), nullable=False),
        sa.Column("push_status", sa.String(length=8), nullable=False),
        sa.Column("push_attempts", sa.Integer(), nullable=False),
        sa.Column("push_error", sa.Text(), nullable=True),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("provider_requests", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("push_status IN ('ok', 'pending', 'retry', 'failed')", name=op.f("ck_calendar_event_link_push_status")),
        sa.ForeignKeyConstraint(["connection_id"], ["calendar_connection.id"],
                                name=op.f("fk_calendar_event_link_connection_id_calendar_connection"), ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["appointment_id"], ["appointment.id"],
                                name=op.f("fk_calendar_event_link_appointment_id_appointment"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_calendar_event_link")),
        sa.UniqueConstraint("connection_id", "appointment_id", name=op.f("uq_calendar_event_link_connection_id")),
    )
    op.create_index("ix_calendar_event_link_external", "calendar_event_link", ["connection_id", "external_id"])
    op.create_index("ix_calendar_event_link_due", "calendar_event_link", ["next_attempt_at"],
                    postgresql_where=sa.text("push_status IN ('pending', 'retry')"))
    op.create_table(
        "calendar_feed",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("staff_id", sa.Integer(), nullable=True),
        sa.Column("customer_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("(staff_id IS NOT NULL) <> (customer_id IS NOT NULL)", name=op.f("ck_calendar_feed_owner")),
        sa.ForeignKeyConstraint(["staff_id"], ["staff.id"], name=op.f("fk_calendar_feed_staff_id_staff"), ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["customer_id"], ["customer.id"], name=op.f("fk_calendar_feed_customer_id_customer"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_calendar_feed")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_calendar_feed_token_hash")),
    )
    op.add_column("busy_block", sa.Column("connection_id", sa.Integer(), nullable=True))
    op.add_column("busy_block", sa.Column("event_key", sa.String(length=64), nullable=True))
    op.create_foreign_key(op.f("fk_busy_block_connection_id_calendar_connection"), "busy_block", "calendar_connection",
                          ["connection_id"], ["id"], ondelete="CASCADE")
    op.create_index("ix_busy_block_connection_event", "busy_block", ["connection_id", "event_key"])


def downgrade() -> None:
    """Drop the calendar tables and the busy blocks' link to them."""
    op.drop_index("ix_busy_block_connection_event", table_name="busy_block")
    op.drop_constraint(op.f("fk_busy_block_connection_id_calendar_connection"), "busy_block", type_="foreignkey")
    op.drop_column("busy_block", "event_key")
    op.drop_column("busy_block", "connection_id")
    op.drop_table("calendar_feed")
    op.drop_table("calendar_event_link")
    op.drop_table("calendar_connection")
    op.drop_table("calendar_settings")
