"""webhooks and integrations: agency-wide webhook endpoints, meeting credentials, inbound webhook ids

Revision ID: p0005wh
Revises: p0002n
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "p0005wh"
down_revision: Union[str, Sequence[str], None] = "p0002n"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Create the agency endpoint, credential and inbound-event tables."""
    op.create_table(
        "agency_webhook_endpoint",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("agency_id", sa.Integer(), nullable=False),
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
        sa.ForeignKeyConstraint(["agency_id"], ["agency.id"], ondelete="CASCADE",
                                name=op.f("fk_agency_webhook_endpoint_agency_id_agency")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_agency_webhook_endpoint")),
        sa.UniqueConstraint("uid", name=op.f("uq_agency_webhook_endpoint_uid")),
    )
    op.create_index("ix_agency_webhook_endpoint_agency_id", "agency_webhook_endpoint", ["agency_id"])
    op.create_table(
        "integration_credential",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("agency_id", sa.Integer(), nullable=True),
        sa.Column("tenant_id", sa.Integer(), nullable=True),
        sa.Column("provider", sa.String(length=20), nullable=False),
        sa.Column("data_enc", sa.Text(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("(agency_id IS NULL) <> (tenant_id IS NULL)", name=op.f("ck_integration_credential_scope")),
        sa.ForeignKeyConstraint(["agency_id"], ["agency.id"], ondelete="CASCADE",
                                name=op.f("fk_integration_credential_agency_id_agency")),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenant.id"], ondelete="CASCADE",
                                name=op.f("fk_integration_credential_tenant_id_tenant")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_integration_credential")),
    )
    op.create_index("uq_integration_credential_agency", "integration_credential", ["agency_id", "provider"],
                    unique=True, postgresql_where=sa.text("agency_id IS NOT NULL"))
    op.create_index("uq_integration_credential_tenant", "integration_credential", ["tenant_id", "provider"],
                    unique=True, postgresql_where=sa.text("tenant_id IS NOT NULL"))
    op.create_table(
        "inbound_webhook_event",
        sa.Column("source", sa.String(length=20), nullable=False),
        sa.Column("event_key", sa.String(length=200), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("source", "event_key", name=op.f("pk_inbound_webhook_event")),
    )


def downgrade() -> None:
    """Drop the three tables."""
    op.drop_table("inbound_webhook_event")
    op.drop_table("integration_credential")
    op.drop_table("agency_webhook_endpoint")
