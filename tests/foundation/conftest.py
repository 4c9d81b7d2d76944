"""Fixtures of the foundation tests: users with a role in a scope, log-in, API keys."""

from __future__ import annotations

import uuid

import pytest

PASSWORD = "password-1"


@pytest.fixture()
def make_user(app):
    """make_user(role, tenant=None, agency=None, staff_id=None) -> username (password PASSWORD)."""
    from app.extensions import db
    from app.services.people import create_user_with_role

    def factory(role: str, tenant: str | None = None, agency: str | None = None, staff_id: int | None = None) -> str:
        name = f"u_{uuid.uuid4().hex[:10]}"
        with app.app_context():
            create_user_with_role(db.session, username=name, email=f"{name}@example.org", password=PASSWORD,
                                  role=role, tenant_slug=tenant, agency_slug=agency, staff_id=staff_id)
            db.session.commit()
        return name

    return factory


@pytest.fixture()
def login():
    def do(client, username: str, password: str = PASSWORD):
        response = client.post("/login/", data={"username": username, "password": password})
        assert response.status_code == 302, response.get_data(as_text=True)[:300]
        assert "/login" not in response.headers.get("Location", "")

    return do


@pytest.fixture()
def make_api_key(app):
    """make_api_key(slug) -> the secret of a fresh key of that tenant."""
    from sqlalchemy import select

    from app.extensions import db
    from app.models.public import Tenant
    from app.services.people import create_api_key

    def factory(slug: str) -> str:
        with app.app_context():
            tenant = db.session.scalar(select(Tenant).where(Tenant.slug == slug))
            _, secret = create_api_key(db.session, tenant, "test key")
            db.session.commit()
        return secret

    return factory
