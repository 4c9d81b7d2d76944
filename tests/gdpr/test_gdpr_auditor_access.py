"""Audit log pages: Client Admin, Agency Owner and Auditor read them (CSV too); Staff cannot;
an auditor sees only the tenants assigned to them and writes nothing anywhere."""

from __future__ import annotations

import csv
import io

import pytest
from gdpr_support import book
from sqlalchemy import text


def _login(client, username):
    client.get("/logout/")
    response = client.post("/login/", data={"username": username, "password": "password-1"})
    assert response.status_code == 302


@pytest.fixture()
def auditor(app, agency_business, make_tenant):
    """(auditor user name, assigned slug, other slug of the same agency)."""
    from app.extensions import db
    from app.models.public import Tenant
    from app.services.people import create_user_with_role

    slug = agency_business
    with app.app_context():
        agency = db.session.query(Tenant).filter_by(slug=slug).one().agency.slug
    other = make_tenant(agency=agency)
    with app.app_context():
        create_user_with_role(db.session, username=f"au_{slug}", email=f"au_{slug}@x.org", password="password-1",
                              role="Auditor", tenant_slug=slug)
        db.session.commit()
    return f"au_{slug}", slug, other


@pytest.mark.parametrize("who", ["ca", "ow", "au"])
def test_audit_log_page_and_csv_for_admins_owner_and_auditor(app, client, auditor, who, pinned_now):
    username, slug, _other = auditor
    pinned_now("2027-01-01T00:00:00Z")
    book(client, slug, email="csv@example.com")
    _login(client, f"{who}_{slug}")
    page = client.get("/audit/log/?entity=appointment")
    assert page.status_code == 200, page.status_code
    assert "appointment" in page.get_data(as_text=True)
    response = client.get("/audit/log/export.csv?entity=appointment")
    assert response.status_code == 200 and response.mimetype == "text/csv"
    rows = list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))
    assert rows and {r["entity"] for r in rows} == {"appointment"} and rows[0]["actor_kind"] == "public"


def test_staff_cannot_read_the_audit_log(app, client, agency_business):
    from app.extensions import db
    from app.services.people import create_user_with_role

    slug = agency_business
    with app.app_context():
        create_user_with_role(db.session, username=f"sf_{slug}", email=f"sf_{slug}@x.org", password="password-1",
                              role="Staff", tenant_slug=slug)
        db.session.commit()
    _login(client, f"sf_{slug}")
    response = client.get("/audit/log/")
    assert response.status_code in (302, 403)
    assert "Audit log" not in client.get(response.headers.get("Location", "/")).get_data(as_text=True)


def test_auditor_sees_only_assigned_tenant_and_cannot_write(app, client, auditor, sql):
    username, slug, other = auditor
    sql(other, "INSERT INTO audit_log (actor_kind, entity, action) VALUES ('system', 'other_marker', 'probe')")
    sql(slug, "INSERT INTO audit_log (actor_kind, entity, action) VALUES ('system', 'own_marker', 'probe')")
    _login(client, username)
    # Asking to switch into the other business of the agency is refused: still the own one.
    client.post(f"/switch/{other}")
    body = client.get("/audit/log/").get_data(as_text=True)
    assert "own_marker" in body and "other_marker" not in body
    csv_body = client.get("/audit/log/export.csv").get_data(as_text=True)
    assert "own_marker" in csv_body and "other_marker" not in csv_body
    # Read-only: adding a service or editing a customer is refused and writes nothing.
    before = sql(slug, "SELECT count(*) FROM service")[0][0]
    response = client.post("/serviceview/add", data={"key": "x1", "name": "X", "duration_min": 30})
    assert response.status_code in (302, 403)
    assert sql(slug, "SELECT count(*) FROM service")[0][0] == before
    assert client.post(f"/serviceview/delete/{sql(slug, 'SELECT min(id) FROM service')[0][0]}").status_code in (302, 403)
    assert sql(slug, "SELECT count(*) FROM service")[0][0] == before
