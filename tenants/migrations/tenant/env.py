"""Alembic environment for one tenant schema.

The caller sets `search_path` to the tenant schema on the connection, so the
migrations below are written without schema names and the version table lives
inside the tenant's own schema.
"""

from alembic import context

import app.models  # noqa: F401
from app.models.base import TenantBase

connection = context.config.attributes["connection"]
schema = context.config.attributes["schema"]
context.configure(
    connection=connection,
    target_metadata=TenantBase.metadata,
    version_table="alembic_version",
    version_table_schema=schema,
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
