"""Item 2: an API key authenticates the REST API only (with its scope), never an admin page,
never creates keys or invitations, never sets a cookie. Item 15: a new key's secret is not
carried in the session cookie."""

from __future__ import annotations

import pytest

SKIP_PREFIXES = ("/static/", "/appbuilder/")


@pytest.fixture(scope="module")
def keyed(app):
    import uuid

    from app.extensions import db
    from app.models.public import Tenant
    from app.services.people import create_api_key, create_user_with_role
    from app.services.setup_io import import_setup
    from sqlalchemy import select
    from support import minimal_setup

    setup = minimal_setup()
    setup["tenant"]["slug"] = slug = f"keyed_{uuid.uuid4().hex[:8]}"
    with app.app_context():
        import_setup(db.engine, setup, "test-agency")
        tenant = db.session.scalar(select(Tenant).where(Tenant.slug == slug))
        _, write_key = create_api_key(db.session, tenant, "rw", scopes="read write")
        _, read_key = create_api_key(db.session, tenant, "ro", scopes="read")
        create_user_with_role(db.session, username=f"ca_{slug}", email=f"ca_{slug}@x.org", password="password-1",
                              role="Client Admin", tenant_slug=slug)
        db.session.commit()
    return slug, write_key, read_key


def _counts(app):
    from sqlalchemy import text

    from app.extensions import db

    with app.app_context(), db.engine.connect() as conn:
        return conn.execute(text("SELECT (SELECT count(*) FROM tenant_api_key), (SELECT count(*) FROM access_token), "
                                 "(SELECT count(*) FROM ab_user)")).one()


def _non_api_urls(app, slug):
    adapter = app.url_map.bind("localhost")
    urls = []
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith(SKIP_PREFIXES):
            continue
        if rule.rule.startswith("/api/v1/") and not rule.rule.startswith(("/api/v1/public/", "/api/v1/security/")):
            continue
        values = {a: (slug if "slug" in a else "1") for a in rule.arguments - set(rule.defaults or {})}
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            try:
                urls.append((method, adapter.build(rule.endpoint, values, method=method)))
            except Exception:  # noqa: BLE001 - a converter that refuses "1" (none today)
                continue
    return urls


def test_api_key_on_every_non_api_route_is_401_without_a_cookie(app, keyed):
    slug, write_key, _ = keyed
    before = _counts(app)
    urls = _non_api_urls(app, slug)
    assert len(urls) > 150  # built from the URL map
    client = app.test_client()
    for header in ({"Authorization": f"Bearer {write_key}"}, {"X-Api-Key": write_key}):
        for method, url in urls:
            response = client.open(url, method=method, headers=header,
                                   data={"name": "via key", "email": "k@example.org", "role": "Client Admin"})
            assert response.status_code in (401, 403), (method, url, response.status_code)
            assert "Set-Cookie" not in response.headers, (method, url)
    assert _counts(app) == before  # no key, invitation or user was created


def test_api_key_reaches_rest_api_with_its_scope_and_no_cookie(app, keyed):
    slug, write_key, read_key = keyed
    client = app.test_client()
    for key in (write_key, read_key):
        response = client.get("/api/v1/locations/", headers={"Authorization": f"Bearer {key}"})
        assert response.status_code == 200 and "Set-Cookie" not in response.headers
    body = {"key": "k2", "name": "Room 2", "timezone": "Europe/Berlin"}
    refused = client.post("/api/v1/locations/", json=body, headers={"Authorization": f"Bearer {read_key}"})
    assert refused.status_code == 403 and refused.get_json()["error"]["code"] == "not_allowed"
    created = client.post("/api/v1/locations/", json=body, headers={"Authorization": f"Bearer {write_key}"})
    assert created.status_code == 201 and "Set-Cookie" not in created.headers


def test_new_key_secret_is_shown_once_and_not_in_the_cookie(app, keyed):
    slug, _, _ = keyed
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = "10.66.0.1"
    assert client.post("/login/", data={"username": f"ca_{slug}", "password": "password-1"}).status_code == 302
    response = client.post("/apikeyview/add", data={"name": "fresh", "scopes": "read"})
    assert response.status_code == 201
    page = response.get_data(as_text=True)
    import re

    secret = re.search(r"(upz_[A-Za-z0-9_-]+)", page).group(1)
    cookies = " ".join(response.headers.getlist("Set-Cookie"))
    from itsdangerous import base64_decode

    for part in re.findall(r"session=([^;]+)", cookies):
        payload = part.lstrip(".").split(".")[0]
        decoded = base64_decode(payload)
        if part.startswith("."):
            import zlib

            decoded = zlib.decompress(decoded)
        assert secret.encode() not in decoded
    listing = client.get("/apikeyview/list/").get_data(as_text=True)
    assert secret not in listing and "fresh" in listing
    # The key works, read-only.
    api = app.test_client()
    assert api.get("/api/v1/services/", headers={"Authorization": f"Bearer {secret}"}).status_code == 200
    assert api.post("/api/v1/services/", json={"key": "x"}, headers={"Authorization": f"Bearer {secret}"}).status_code == 403
