"""Alembic environment for the public schema (agencies, tenants, FAB security tables)."""

from alembic import context

import app.models  # noqa: F401  (registers public models on FAB's metadata)
import flask_appbuilder.security.sqla.models  # noqa: F401  (FAB users, roles, permissions)
from app.models.base import PublicModel

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=PublicModel.metadata,
    version_table="alembic_version",
    version_table_schema="public",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
