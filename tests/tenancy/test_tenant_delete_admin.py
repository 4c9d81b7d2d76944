"""Deleting a client business from the admin drops its schema with the row; only its agency may."""

from __future__ import annotations

import pytest
from sqlalchemy import text


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
def people(agency_business):
    """A business of its own agency; log-ins ca_<slug> (client admin) and ow_<slug> (agency owner)."""
    return agency_business


def test_client_admin_cannot_delete_the_business(app, people):
    client = app.test_client()
    client.post("/login/", data={"username": f"ca_{people}", "password": "password-1"})
    client.post(f"/tenantview/delete/{_tenant_id(app, people)}")
    assert _tenant_id(app, people) is not None and _schema_exists(app, people)


def test_agency_owner_deletes_row_and_schema_together(app, people):
    client = app.test_client()
    client.post("/login/", data={"username": f"ow_{people}", "password": "password-1"})
    client.post(f"/tenantview/delete/{_tenant_id(app, people)}")
    assert _tenant_id(app, people) is None
    assert not _schema_exists(app, people)
    assert client.get(f"/api/v1/public/{people}/services").status_code == 404
