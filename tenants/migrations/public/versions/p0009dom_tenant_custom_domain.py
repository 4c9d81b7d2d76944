"""tenant.custom_domain: a business's own host name for its links, with the token that proves control

Also joins the public tree's heads (each feature branched off p0002n) into one.

Revision ID: p0009dom
Revises: p0003sm, p0005wh, p0006aud, p0007calw, p0008api, p0009logo
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = "p0009dom"
down_revision: Union[str, Sequence[str], None] = ("p0003sm", "p0005wh", "p0006aud", "p0007calw", "p0008api", "p0009logo")
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.add_column("tenant", sa.Column("custom_domain", sa.String(length=253), nullable=True))
    op.add_column("tenant", sa.Column("custom_domain_token", sa.String(length=64), nullable=True))
    op.add_column("tenant", sa.Column("custom_domain_verified_at", sa.DateTime(timezone=True), nullable=True))
    # Lower-case host name only (the service validates fully; this keeps raw SQL honest).
    op.create_check_constraint(
        op.f("ck_tenant_custom_domain_format"), "tenant",
        r"custom_domain ~ '^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)+$'",
    )
    # Several businesses may claim a name while verifying; only one may hold it verified.
    op.create_index("uq_tenant_custom_domain_verified", "tenant", ["custom_domain"], unique=True,
                    postgresql_where=sa.text("custom_domain_verified_at IS NOT NULL"))
    op.create_index("ix_tenant_custom_domain", "tenant", ["custom_domain"])


def downgrade() -> None:
    op.drop_index("ix_tenant_custom_domain", table_name="tenant")
    op.drop_index("uq_tenant_custom_domain_verified", table_name="tenant")
    op.drop_constraint(op.f("ck_tenant_custom_domain_format"), "tenant", type_="check")
    op.drop_column("tenant", "custom_domain_verified_at")
    op.drop_column("tenant", "custom_domain_token")
    op.drop_column("tenant", "custom_domain")
