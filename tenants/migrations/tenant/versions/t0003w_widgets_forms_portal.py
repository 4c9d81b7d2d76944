"""widgets, booking forms, consent texts and records, customer portal

Revision ID: t0003w
Revises: t0001
Create Date: 2026-11-28 11:20:00

"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "t0003w"
down_revision: Union[str, Sequence[str], None] = "t0001"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def _ts(name: str, nullable: bool = False) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    """Create the widget, form, consent and portal tables."""
    op.create_table(
        "widget",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("public_id", sa.String(20), nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("mode", sa.String(10), nullable=False),
        sa.Column("primary_color", sa.String(7), nullable=False),
        sa.Column("accent_color", sa.String(7), nullable=False),
        sa.Column("logo_url", sa.String(500), nullable=True),
        sa.Column("font_family", sa.String(100), nullable=True),
        sa.Column("radius_px", sa.Integer(), nullable=False),
        sa.Column("language", sa.String(5), nullable=False),
        sa.Column("button_label", sa.String(60), nullable=True),
        sa.Column("default_service", sa.String(63), nullable=True),
        sa.Column("default_location", sa.String(63), nullable=True),
        sa.Column("show_location_step", sa.Boolean(), nullable=False),
        sa.Column("show_staff_step", sa.Boolean(), nullable=False),
        sa.Column("show_phone", sa.Boolean(), nullable=False),
        sa.Column("hidden_fields", postgresql.JSONB(), nullable=False),
        sa.Column("allowed_origins", postgresql.JSONB(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        _ts("created_at"),
        _ts("updated_at"),
        sa.CheckConstraint("mode IN ('inline', 'popup', 'floating')", name=op.f("ck_widget_mode")),
        sa.CheckConstraint("radius_px BETWEEN 0 AND 32", name=op.f("ck_widget_radius")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_widget")),
        sa.UniqueConstraint("public_id", name=op.f("uq_widget_public_id")),
    )
    op.create_table(
        "form_field",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("service_id", sa.Integer(), nullable=True),
        sa.Column("key", sa.String(41), nullable=False),
        sa.Column("label", sa.String(200), nullable=False),
        sa.Column("field_type", sa.String(20), nullable=False),
        sa.Column("required", sa.Boolean(), nullable=False),
        sa.Column("help_text", sa.String(500), nullable=True),
        sa.Column("options", postgresql.JSONB(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.CheckConstraint(
            "field_type IN ('text', 'textarea', 'email', 'phone', 'number', 'select', 'multiselect', 'checkbox', 'date')",
            name=op.f("ck_form_field_field_type"),
        ),
        sa.CheckConstraint("key ~ '^[a-z][a-z0-9_]{0,40}$'", name=op.f("ck_form_field_key_format")),
        sa.ForeignKeyConstraint(["service_id"], ["service.id"], name=op.f("fk_form_field_service_id_service"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_form_field")),
    )
    op.create_index("uq_form_field_scope_key", "form_field", [sa.text("coalesce(service_id, 0)"), "key"], unique=True)
    op.create_table(
        "consent_text",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(10), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        _ts("created_at"),
        sa.Column("created_by", sa.String(120), nullable=True),
        sa.CheckConstraint("kind IN ('terms', 'privacy')", name=op.f("ck_consent_text_kind")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_consent_text")),
        sa.UniqueConstraint("kind", "version", name=op.f("uq_consent_text_kind")),
    )
    op.create_table(
        "consent_record",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("consent_text_id", sa.Integer(), nullable=False),
        sa.Column("customer_id", sa.Integer(), nullable=False),
        sa.Column("appointment_id", sa.UUID(), nullable=True),
        sa.Column("email", sa.String(254), nullable=False),
        sa.Column("ip", sa.String(64), nullable=True),
        _ts("at"),
        sa.ForeignKeyConstraint(["consent_text_id"], ["consent_text.id"], name=op.f("fk_consent_record_consent_text_id_consent_text"), ondelete="RESTRICT"),
        sa.ForeignKeyConstraint(["customer_id"], ["customer.id"], name=op.f("fk_consent_record_customer_id_customer"), ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["appointment_id"], ["appointment.id"], name=op.f("fk_consent_record_appointment_id_appointment"), ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_consent_record")),
    )
    op.create_index(op.f("ix_consent_record_consent_text_id"), "consent_record", ["consent_text_id"])
    op.create_index(op.f("ix_consent_record_customer_id"), "consent_record", ["customer_id"])
    op.create_table(
        "portal_token",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("customer_id", sa.Integer(), nullable=False),
        _ts("created_at"),
        _ts("expires_at"),
        _ts("used_at", nullable=True),
        sa.ForeignKeyConstraint(["customer_id"], ["customer.id"], name=op.f("fk_portal_token_customer_id_customer"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_portal_token")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_portal_token_token_hash")),
    )
    op.create_index(op.f("ix_portal_token_customer_id"), "portal_token", ["customer_id"])
    op.create_table(
        "portal_login_attempt",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("email", sa.String(254), nullable=False),
        sa.Column("ip", sa.String(64), nullable=True),
        _ts("at"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_portal_login_attempt")),
    )
    op.create_index("ix_portal_login_attempt_at", "portal_login_attempt", ["at"])
    op.create_table(
        "notification_preference",
        sa.Column("customer_id", sa.Integer(), nullable=False),
        sa.Column("email_reminders", sa.Boolean(), nullable=False),
        _ts("updated_at"),
        sa.ForeignKeyConstraint(["customer_id"], ["customer.id"], name=op.f("fk_notification_preference_customer_id_customer"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("customer_id", name=op.f("pk_notification_preference")),
    )
    op.create_table(
        "erasure_request",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("customer_id", sa.Integer(), nullable=False),
        sa.Column("email", sa.String(254), nullable=False),
        sa.Column("ip", sa.String(64), nullable=True),
        sa.Column("status", sa.String(20), nullable=False),
        _ts("requested_at"),
        sa.ForeignKeyConstraint(["customer_id"], ["customer.id"], name=op.f("fk_erasure_request_customer_id_customer"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_erasure_request")),
    )
    op.create_index(op.f("ix_erasure_request_customer_id"), "erasure_request", ["customer_id"])


def downgrade() -> None:
    """Drop them again."""
    for table in (
        "erasure_request", "notification_preference", "portal_login_attempt", "portal_token",
        "consent_record", "consent_text", "form_field", "widget",
    ):
        op.drop_table(table)
