"""API keys: agency keys (an agency instead of one business) and a rate-limit plan per key

Revision ID: p0010akey
Revises: p0009dom
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = "p0010akey"
down_revision: Union[str, Sequence[str], None] = "p0009dom"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.alter_column("tenant_api_key", "tenant_id", existing_type=sa.Integer(), nullable=True)
    op.add_column("tenant_api_key", sa.Column("agency_id", sa.Integer(), nullable=True))
    op.create_foreign_key(op.f("fk_tenant_api_key_agency_id_agency"), "tenant_api_key", "agency",
                          ["agency_id"], ["id"], ondelete="CASCADE")
    op.create_index(op.f("ix_tenant_api_key_agency_id"), "tenant_api_key", ["agency_id"])
    # A key belongs to exactly one business or exactly one agency.
    op.create_check_constraint(op.f("ck_tenant_api_key_owner"), "tenant_api_key",
                               "(tenant_id IS NULL) <> (agency_id IS NULL)")
    # NULL: the configured default plan (API_RATE_PLAN_DEFAULT), so changing the default moves every such key.
    op.add_column("tenant_api_key", sa.Column("rate_plan", sa.String(length=32), nullable=True))


def downgrade() -> None:
    op.drop_column("tenant_api_key", "rate_plan")
    op.execute("DELETE FROM tenant_api_key WHERE agency_id IS NOT NULL")
    op.drop_constraint(op.f("ck_tenant_api_key_owner"), "tenant_api_key", type_="check")
    op.drop_index(op.f("ix_tenant_api_key_agency_id"), table_name="tenant_api_key")
    op.drop_constraint(op.f("fk_tenant_api_key_agency_id_agency"), "tenant_api_key", type_="foreignkey")
    op.drop_column("tenant_api_key", "agency_id")
    op.alter_column("tenant_api_key", "tenant_id", existing_type=sa.Integer(), nullable=False)
