"""Models: public schema (agencies, tenants, access) and per-tenant schema (business data)."""

from app.models.base import NAMING_CONVENTION, PublicModel, TenantBase  # noqa: F401
from app.models import public, tenant  # noqa: F401
