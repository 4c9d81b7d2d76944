"""platform mail on the outbox path: the relay enqueues account mail, not the request

A `platform_mail` row (invitation, password reset, portal sign-in link) is written in
the request's transaction with `relayed_at` NULL when it is to be sent; a trigger
NOTIFYs the relay on commit (payload `public`), the relay enqueues the send job and
stamps `relayed_at`. Rows kept only for the development outbox (no SMTP) are written
relayed. Existing rows count as relayed (nothing old is sent again).

Revision ID: p0003sm
Revises: p0003s
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = "p0003sm"
down_revision: Union[str, Sequence[str], None] = "p0003s"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

NOTIFY_FUNCTION = """
CREATE OR REPLACE FUNCTION public.platform_mail_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('upzento_outbox', 'public');
    RETURN NULL;
END $$;
"""


def upgrade() -> None:
    op.add_column("platform_mail", sa.Column("relayed_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("platform_mail", sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"))
    op.add_column("platform_mail", sa.Column("last_error", sa.Text(), nullable=True))
    op.execute("UPDATE platform_mail SET relayed_at = created_at")
    op.create_index("ix_platform_mail_unsent", "platform_mail", ["id"], postgresql_where=sa.text("NOT sent"))
    op.execute(NOTIFY_FUNCTION)
    op.execute(
        "CREATE TRIGGER platform_mail_notify AFTER INSERT ON platform_mail "
        "FOR EACH ROW WHEN (NEW.relayed_at IS NULL) EXECUTE FUNCTION public.platform_mail_notify()"
    )


def downgrade() -> None:
    op.execute("DROP TRIGGER IF EXISTS platform_mail_notify ON platform_mail")
    op.execute("DROP FUNCTION IF EXISTS public.platform_mail_notify()")
    op.drop_index("ix_platform_mail_unsent", table_name="platform_mail")
    op.drop_column("platform_mail", "last_error")
    op.drop_column("platform_mail", "attempts")
    op.drop_column("platform_mail", "relayed_at")
