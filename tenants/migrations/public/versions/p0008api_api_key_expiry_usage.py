"""API keys: optional expiry, a request count beside the last-used time, an optional location restriction

Revision ID: p0008api
Revises: p0004sec
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = "p0008api"
down_revision: Union[str, Sequence[str], None] = "p0004sec"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.add_column("tenant_api_key", sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("tenant_api_key", sa.Column("request_count", sa.BigInteger(), nullable=False, server_default="0"))
    # A location key of the business (its own schema, so no foreign key): the key then sees and books that location only.
    op.add_column("tenant_api_key", sa.Column("location_key", sa.String(length=63), nullable=True))


def downgrade() -> None:
    op.drop_column("tenant_api_key", "location_key")
    op.drop_column("tenant_api_key", "request_count")
    op.drop_column("tenant_api_key", "expires_at")
