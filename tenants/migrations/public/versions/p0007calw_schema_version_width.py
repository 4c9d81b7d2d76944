"""tenant.schema_version holds every tenant head joined by "+": 40 characters are not enough

With several independent tenant heads (one per feature: t0007cal, t0008mtg, t0009dash,
t0010gdpr, ...) the joined revision string passed 40 characters and provisioning failed
with "value too long".

Revision ID: p0007calw
Revises: p0002n
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = "p0007calw"
down_revision: Union[str, Sequence[str], None] = "p0002n"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Widen tenant.schema_version to 400 characters."""
    op.alter_column("tenant", "schema_version", type_=sa.String(length=400), existing_type=sa.String(length=40),
                    existing_nullable=True)


def downgrade() -> None:
    """Back to 40 characters (fails while a longer value is stored)."""
    op.alter_column("tenant", "schema_version", type_=sa.String(length=40), existing_type=sa.String(length=400),
                    existing_nullable=True)
