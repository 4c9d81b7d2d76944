"""notifications: agency template overrides

Revision ID: p0002n
Revises: p0001
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = "p0002n"
down_revision: Union[str, Sequence[str], None] = "p0001"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Create the agency-level template table."""
    op.create_table(
        "agency_notification_template",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("agency_id", sa.Integer(), nullable=False),
        sa.Column("event", sa.String(length=40), nullable=False),
        sa.Column("channel", sa.String(length=10), nullable=False),
        sa.Column("language", sa.String(length=10), nullable=False),
        sa.Column("subject", sa.Text(), nullable=False),
        sa.Column("body_text", sa.Text(), nullable=False),
        sa.Column("body_html", sa.Text(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["agency_id"], ["agency.id"], ondelete="CASCADE",
                                name=op.f("fk_agency_notification_template_agency_id_agency")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_agency_notification_template")),
        sa.UniqueConstraint("agency_id", "event", "channel", "language",
                            name=op.f("uq_agency_notification_template_agency_id")),
    )


def downgrade() -> None:
    """Drop the agency-level template table."""
    op.drop_table("agency_notification_template")
