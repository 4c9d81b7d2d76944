"""ab_user.locale: the admin language a user chose (en, de, fr, es), kept across sessions

Revision ID: p0008loc
Revises: p0002n
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = "p0008loc"
down_revision: Union[str, Sequence[str], None] = "p0002n"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """NULL: no choice yet (the browser's language, then the business's, decide)."""
    op.add_column("ab_user", sa.Column("locale", sa.String(length=10), nullable=True))


def downgrade() -> None:
    op.drop_column("ab_user", "locale")
