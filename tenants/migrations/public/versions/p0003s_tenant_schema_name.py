"""tenants: slugs as setup-file keys (hyphens allowed); the schema name stored on the row

The URL slug and the PostgreSQL schema name are decoupled: `tenant.schema_name` is
derived once when a business is created and everything that routes reads it. Existing
rows keep the schema they have (`tenant_<slug>`, the rule until now).

Revision ID: p0003s
Revises: p0002n
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = "p0003s"
down_revision: Union[str, Sequence[str], None] = "p0002n"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.add_column("tenant", sa.Column("schema_name", sa.String(length=63), nullable=True))
    # Backfill: what schema_for(slug) answered until now (every existing slug matches ^[a-z][a-z0-9_]{1,40}$).
    op.execute("UPDATE tenant SET schema_name = 'tenant_' || slug WHERE schema_name IS NULL")
    op.alter_column("tenant", "schema_name", nullable=False)
    op.create_unique_constraint(op.f("uq_tenant_schema_name"), "tenant", ["schema_name"])
    op.create_check_constraint(op.f("ck_tenant_schema_name_format"), "tenant", "schema_name ~ '^tenant_[a-z0-9_]{1,56}$'")
    op.alter_column("tenant", "slug", type_=sa.String(length=63), existing_type=sa.String(length=41), existing_nullable=False)
    op.drop_constraint(op.f("ck_tenant_slug_format"), "tenant", type_="check")
    op.create_check_constraint(op.f("ck_tenant_slug_format"), "tenant", "slug ~ '^[a-z0-9][a-z0-9_-]{0,62}$'")


def downgrade() -> None:
    op.drop_constraint(op.f("ck_tenant_slug_format"), "tenant", type_="check")
    op.create_check_constraint(op.f("ck_tenant_slug_format"), "tenant", "slug ~ '^[a-z][a-z0-9_]{1,40}$'")
    op.alter_column("tenant", "slug", type_=sa.String(length=41), existing_type=sa.String(length=63), existing_nullable=False)
    op.drop_constraint(op.f("ck_tenant_schema_name_format"), "tenant", type_="check")
    op.drop_constraint(op.f("uq_tenant_schema_name"), "tenant", type_="unique")
    op.drop_column("tenant", "schema_name")
