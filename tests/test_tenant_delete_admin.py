"""Deleting a client business from the admin drops its schema with the row; only its agency may."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from support import unique_slug


def _schema_exists(app, slug) -> bool:
    from app.extensions import db

    with app.app_context(), db.engine.connect() as conn:
        return bool(conn.execute(text("SELECT 1 FROM information_schema.schemata WHERE schema_name = :s"),
                                 {"s": f"tenant_{slug}"}).scalar())


def _tenant_id(app, slug):
    from app.extensions import db

    with app.app_context(), db.engine.connect() as conn:
        return conn.execute(text("SELECT id FROM tenant WHERE slug = :s"), {"s": slug}).scalar()


@pytest.fixture()
def people(app, make_tenant):
    from app.extensions import db
    from app.services.people import create_user_with_role
    from tenants.provisioning import create_agency

    agency = unique_slug("del").replace("_", "-")
    with app.app_context():
        create_agency(db.session, agency, "Deleting agency")
        db.session.commit()
    slug = make_tenant(agency=agency)
    with app.app_context():
        create_user_with_role(db.session, username=f"own_{slug}", email=f"own_{slug}@x.org", password="password-1",
                              role="Agency Owner", agency_slug=agency)
        create_user_with_role(db.session, username=f"adm_{slug}", email=f"adm_{slug}@x.org", password="password-1",
                              role="Client Admin", tenant_slug=slug)
        db.session.commit()
    return slug


def test_client_admin_cannot_delete_the_business(app, people):
    client = app.test_client()
    client.post("/login/", data={"username": f"adm_{people}", "password": "password-1"})
    client.post(f"/tenantview/delete/{_tenant_id(app, people)}")
    assert _tenant_id(app, people) is not None and _schema_exists(app, people)


def test_agency_owner_deletes_row_and_schema_together(app, people):
    client = app.test_client()
    client.post("/login/", data={"username": f"own_{people}", "password": "password-1"})
    client.post(f"/tenantview/delete/{_tenant_id(app, people)}")
    assert _tenant_id(app, people) is None
    assert not _schema_exists(app, people)
    assert client.get(f"/api/v1/public/{people}/services").status_code == 404
