"""Models: public schema (agencies, tenants, access) and per-tenant schema (business data).

Every module of this package is imported here, so a feature adds its tables by
adding a module (e.g. app/models/notifications.py) and a migration.
"""

import importlib
import pkgutil

from app.models.base import NAMING_CONVENTION, PublicModel, TenantBase  # noqa: F401

for _module in sorted(m.name for m in pkgutil.iter_modules(__path__)):
    importlib.import_module(f"{__name__}.{_module}")
