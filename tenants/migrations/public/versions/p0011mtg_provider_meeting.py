"""Meetings made through a provider's API, by meeting id: the business and appointment a
provider's notification (Zoom `meeting.*` webhooks) is about

Revision ID: p0011mtg
Revises: p0010akey
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = "p0011mtg"
down_revision: Union[str, Sequence[str], None] = "p0010akey"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.create_table(
        "provider_meeting",
        sa.Column("provider", sa.String(length=20), nullable=False),
        sa.Column("meeting_id", sa.String(length=200), nullable=False),
        sa.Column("tenant_id", sa.Integer(), nullable=False),
        sa.Column("appointment_id", sa.String(length=36), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenant.id"], ondelete="CASCADE",
                                name=op.f("fk_provider_meeting_tenant_id_tenant")),
        sa.PrimaryKeyConstraint("provider", "meeting_id", name=op.f("pk_provider_meeting")),
    )
    op.create_index(op.f("ix_provider_meeting_tenant_id"), "provider_meeting", ["tenant_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_provider_meeting_tenant_id"), table_name="provider_meeting")
    op.drop_table("provider_meeting")
