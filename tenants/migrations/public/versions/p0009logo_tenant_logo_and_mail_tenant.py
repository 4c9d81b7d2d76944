"""Uploaded business logos (served by the app) and the business a platform mail belongs to

Revision ID: p0009logo
Revises: p0008loc
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = "p0009logo"
down_revision: Union[str, Sequence[str], None] = "p0008loc"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.create_table(
        "tenant_logo",
        sa.Column("tenant_id", sa.Integer(), nullable=False),
        sa.Column("content_type", sa.String(40), nullable=False),
        sa.Column("digest", sa.String(64), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.text("now()")),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenant.id"], name=op.f("fk_tenant_logo_tenant_id_tenant"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("tenant_id", name=op.f("pk_tenant_logo")),
    )
    op.add_column("platform_mail", sa.Column("tenant_id", sa.Integer(), nullable=True))
    op.create_foreign_key(op.f("fk_platform_mail_tenant_id_tenant"), "platform_mail", "tenant", ["tenant_id"], ["id"],
                          ondelete="CASCADE")
    op.create_index("ix_platform_mail_tenant_id", "platform_mail", ["tenant_id", "id"])


def downgrade() -> None:
    op.drop_index("ix_platform_mail_tenant_id", table_name="platform_mail")
    op.drop_constraint(op.f("fk_platform_mail_tenant_id_tenant"), "platform_mail", type_="foreignkey")
    op.drop_column("platform_mail", "tenant_id")
    op.drop_table("tenant_logo")
