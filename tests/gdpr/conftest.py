"""GDPR/audit fixtures: a business with bookings, and SQL helpers on its schema."""

from __future__ import annotations

import pytest
from sqlalchemy import text

NOW = "2027-01-01T00:00:00Z"


@pytest.fixture()
def gdpr_tenant(make_tenant, pinned_now):
    pinned_now(NOW)
    return make_tenant()


@pytest.fixture()
def sql(app):
    """sql(slug, statement, **params) -> list of rows, run in the tenant's schema."""
    from app.extensions import db

    def run(slug, statement, **params):
        with app.app_context(), db.engine.begin() as conn:
            conn.exec_driver_sql(f'SET LOCAL search_path TO "tenant_{slug}", public')
            result = conn.execute(text(statement), params)
            return result.all() if result.returns_rows else []

    return run
