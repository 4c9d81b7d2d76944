"""Tenant isolation in the admin: a user scoped to one business never sees another's rows."""

from __future__ import annotations

import pytest
from support import minimal_setup, unique_slug

ADMIN_LISTS = ["/locationview/list/", "/serviceview/list/", "/staffview/list/", "/customerview/list/",
               "/appointmentview/list/", "/staffhoursview/list/", "/timeoffview/list/"]


def _setup(marker: str) -> dict:
    doc = minimal_setup()
    doc["locations"][0]["name"] = f"Location {marker}"
    doc["services"][0]["name"] = f"Service {marker}"
    doc["staff"][0]["name"] = f"Staff {marker}"
    return doc


@pytest.fixture()
def two_tenants(app, make_tenant):
    from app.extensions import db
    from app.services.people import create_user_with_role

    a, b = unique_slug("iso_a"), unique_slug("iso_b")
    make_tenant(_setup("ALPHA" + a[-6:]), slug=a)
    make_tenant(_setup("BRAVO" + b[-6:]), slug=b)
    with app.app_context():
        for slug, role in ((a, "Client Admin"), (a, "Auditor")):
            create_user_with_role(db.session, username=f"{role[:5]}_{slug}", email=f"{role[:5]}_{slug}@x.org",
                                  password="password-1", role=role, tenant_slug=slug)
        db.session.commit()
    return a, b


def _login(client, username):
    response = client.post("/login/", data={"username": username, "password": "password-1"})
    assert response.status_code in (302, 200)


@pytest.mark.parametrize("role", ["Clien", "Audit"])
def test_scoped_user_sees_only_own_tenant_rows(client, two_tenants, role):
    a, b = two_tenants
    _login(client, f"{role}_{a}")
    seen_own = False
    for url in ADMIN_LISTS:
        page = client.get(url)
        assert page.status_code in (200, 302), url
        text = page.get_data(as_text=True)
        assert "BRAVO" not in text, url
        seen_own |= "ALPHA" in text
    assert seen_own
    # Searching does not reach the other tenant either.
    search = client.get("/locationview/list/?_flt_0_name=BRAVO").get_data(as_text=True)
    assert "Location BRAVO" not in search  # the page echoes the search term itself, not rows
    # Switching to a business outside the user's scope is a 404.
    assert client.post(f"/switch/{b}").status_code == 404


def test_auditor_cannot_write(client, two_tenants):
    a, _ = two_tenants
    _login(client, f"Audit_{a}")
    response = client.post("/locationview/add", data={"name": "X", "key": "x", "timezone": "Europe/Berlin"})
    assert response.status_code in (302, 403)
    listing = client.get("/locationview/list/").get_data(as_text=True)
    assert ">X<" not in listing


def test_admin_lists_need_login(client):
    for url in ADMIN_LISTS:
        response = client.get(url)
        assert response.status_code in (302, 401, 403), url
