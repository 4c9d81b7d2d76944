"""Declarative bases: FAB's `Model` for the public schema, `TenantBase` for tenant schemas.

Tenant tables are declared without a schema. A session routed to a tenant runs
every transaction under `SET LOCAL search_path TO tenant_<slug>, public`
(see app/tenancy.py); without a tenant the path is `public`, where no tenant
table exists, so a forgotten tenant fails closed with "relation does not exist".
"""

from __future__ import annotations

from flask_appbuilder import Model
from sqlalchemy import MetaData
from sqlalchemy.orm import DeclarativeBase

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# FAB's own tables are already defined when this runs; ours get stable names.
Model.metadata.naming_convention = NAMING_CONVENTION


class TenantBase(DeclarativeBase):
    """Base of every table that lives inside a `tenant_<slug>` schema."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


PublicModel = Model
