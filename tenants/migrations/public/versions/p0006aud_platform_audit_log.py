"""Platform audit log (append-only): tenant archives and drops, agencies, memberships, API keys

Revision ID: p0006aud
Revises: p0002n
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "p0006aud"
down_revision: Union[str, Sequence[str], None] = "p0002n"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.create_table(
        "platform_audit_log",
        sa.Column("id", sa.BigInteger(), sa.Identity(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False, server_default=sa.text("now()")),
        sa.Column("actor_kind", sa.String(20), nullable=False),
        sa.Column("actor_id", sa.String(80)),
        sa.Column("actor_label", sa.String(200)),
        sa.Column("ip", sa.String(64)),
        sa.Column("user_agent", sa.String(300)),
        sa.Column("request_id", sa.String(128)),
        sa.Column("entity", sa.String(63), nullable=False),
        sa.Column("entity_id", sa.String(80)),
        sa.Column("action", sa.String(40), nullable=False),
        sa.Column("changes", postgresql.JSONB(), nullable=False, server_default=sa.text("'{}'::jsonb")),
        sa.Column("tenant_slug", sa.String(41)),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_platform_audit_log")),
    )
    op.create_index("ix_platform_audit_log_at", "platform_audit_log", ["at"])
    op.execute(
        """
        CREATE FUNCTION public.platform_audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            RAISE EXCEPTION 'platform_audit_log is append-only: % refused', TG_OP
                USING ERRCODE = 'insufficient_privilege';
        END $$;
        CREATE TRIGGER platform_audit_log_no_change BEFORE UPDATE OR DELETE ON public.platform_audit_log
            FOR EACH ROW EXECUTE FUNCTION public.platform_audit_log_append_only();
        CREATE TRIGGER platform_audit_log_no_truncate BEFORE TRUNCATE ON public.platform_audit_log
            FOR EACH STATEMENT EXECUTE FUNCTION public.platform_audit_log_append_only();
        REVOKE UPDATE, DELETE, TRUNCATE ON public.platform_audit_log FROM PUBLIC;
        """
    )


def downgrade() -> None:
    op.drop_table("platform_audit_log")
    op.execute("DROP FUNCTION IF EXISTS public.platform_audit_log_append_only()")
