"""Fixtures of the security tests: log-ins with a private client IP (the sign-in throttle
counts per IP), API keys with a scope."""

from __future__ import annotations

import itertools

import pytest

PASSWORD = "password-1"
_ips = itertools.count(10)


def fresh_ip() -> str:
    n = next(_ips)
    return f"10.77.{n // 250}.{n % 250 + 1}"


@pytest.fixture()
def ip_client(app):
    """A test client whose requests come from an IP no other test uses."""

    def make():
        client = app.test_client()
        client.environ_base["REMOTE_ADDR"] = fresh_ip()
        return client

    return make


@pytest.fixture()
def sign_in(app):
    def do(client, username: str, password: str = PASSWORD):
        response = client.post("/login/", data={"username": username, "password": password})
        assert response.status_code == 302 and "/login" not in response.headers.get("Location", ""), \
            response.get_data(as_text=True)[:300]
        return client

    return do


@pytest.fixture()
def api_key(app):
    """api_key(slug, scopes="read write") -> the secret of a fresh key of that business."""
    from sqlalchemy import select

    from app.extensions import db
    from app.models.public import Tenant
    from app.services.people import create_api_key

    def make(slug: str, scopes: str = "read write") -> str:
        with app.app_context():
            tenant = db.session.scalar(select(Tenant).where(Tenant.slug == slug))
            _, secret = create_api_key(db.session, tenant, "sec key", scopes=scopes)
            db.session.commit()
        return secret

    return make
