"""security: per-user session generation; API key scopes

Revision ID: p0004sec
Revises: p0002n
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = "p0004sec"
down_revision: Union[str, Sequence[str], None] = "p0002n"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    # A session cookie records the generation it was issued under; bumping it ends every session.
    op.add_column("ab_user", sa.Column("session_generation", sa.Integer(), nullable=False, server_default="0"))
    # "read" or "read write"; keys made before scopes existed could write, and keep that.
    op.add_column("tenant_api_key", sa.Column("scopes", sa.String(length=32), nullable=False, server_default="read write"))


def downgrade() -> None:
    op.drop_column("tenant_api_key", "scopes")
    op.drop_column("ab_user", "session_generation")
