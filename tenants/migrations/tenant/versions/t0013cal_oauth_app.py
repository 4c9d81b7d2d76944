"""Calendar sync: the OAuth app that issued a Google / Microsoft connection's tokens.

`oauth_app` is "platform" or "agency" (the agency's own app, integration_credential
`calendar_google` / `calendar_microsoft`), `oauth_client_id` its client id. Tokens are
refreshed only with that app; connections made before this revision came from the
platform's app (NULL reads as that).

Revision ID: t0013cal
Revises: t0012cal
"""

import sqlalchemy as sa
from alembic import op

revision = "t0013cal"
down_revision = "t0012cal"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("calendar_connection", sa.Column("oauth_app", sa.String(length=10), nullable=True))
    op.add_column("calendar_connection", sa.Column("oauth_client_id", sa.String(length=300), nullable=True))


def downgrade() -> None:
    op.drop_column("calendar_connection", "oauth_client_id")
    op.drop_column("calendar_connection", "oauth_app")
