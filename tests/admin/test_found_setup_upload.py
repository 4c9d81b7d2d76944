"""Setup import as an admin upload: scope, every error with its JSON path, all-or-nothing."""

from __future__ import annotations

import io
import json

from sqlalchemy import func, select
from support import minimal_setup, unique_slug


def _upload(client, doc, agency: str | None = None):
    raw = doc if isinstance(doc, bytes) else json.dumps(doc).encode()
    data = {"file": (io.BytesIO(raw), "setup.json")}
    if agency:
        data["agency"] = agency
    return client.post("/setupimport/", data=data, content_type="multipart/form-data")


def _count(app, slug, model):
    from app.extensions import db
    from app.tenancy import tenant_session

    with app.app_context(), tenant_session(db.engine, slug) as (session, _):
        return session.scalar(select(func.count()).select_from(model))


def test_client_admin_updates_own_business_and_sees_every_error(app, client, make_tenant, make_user, login):
    from app.models import tenant as tm

    slug = make_tenant()
    login(client, make_user("Client Admin", tenant=slug))
    assert client.get("/setupimport/").status_code == 200
    doc = minimal_setup()
    doc["tenant"]["slug"] = slug
    doc["services"].append({"key": "massage", "name": "Massage", "duration_min": 60})
    doc["staff"][0]["services"].append("massage")
    ok = _upload(client, doc)
    assert ok.status_code == 200, ok.get_data(as_text=True)[-800:]
    assert _count(app, slug, tm.Service) == 2
    again = _upload(client, doc)  # idempotent by key
    assert again.status_code == 200 and _count(app, slug, tm.Service) == 2

    broken = json.loads(json.dumps(doc))
    broken["services"].append({"key": "yoga", "name": "Yoga", "duration_min": 45})
    broken["staff"][0]["services"].append("unknown_service")
    broken["staff"][0]["hours"][0]["end"] = "08:00"
    broken["locations"][0]["timezone"] = "Mars/Base"
    response = _upload(client, broken)
    page = response.get_data(as_text=True)
    assert response.status_code == 400
    for path in ("$.staff[0].services[2]", "$.staff[0].hours[0]", "$.locations[0].timezone"):
        assert path in page, path
    assert _count(app, slug, tm.Service) == 2  # the valid new service "yoga" was not written either

    assert "$: not valid JSON" in _upload(client, b"{nope").get_data(as_text=True)


def test_client_admin_cannot_touch_or_create_other_businesses(app, client, make_tenant, make_user, login):
    from app.models import tenant as tm

    own, other = make_tenant(), make_tenant()
    login(client, make_user("Client Admin", tenant=own))
    doc = minimal_setup()
    doc["tenant"]["slug"] = other
    doc["services"].append({"key": "sneaky", "name": "Sneaky", "duration_min": 30})
    refused = _upload(client, doc)
    assert refused.status_code == 400 and "$.tenant.slug" in refused.get_data(as_text=True)
    assert _count(app, other, tm.Service) == 1
    doc["tenant"]["slug"] = unique_slug("new")
    assert _upload(client, doc).status_code == 400


def test_agency_owner_creates_a_business(app, client, make_user, login):
    from app.extensions import db
    from app.models.public import Agency, Tenant

    login(client, make_user("Agency Owner", agency="test-agency"))
    with app.app_context():
        agency_id = db.session.scalar(select(Agency.id).where(Agency.slug == "test-agency"))
    doc = minimal_setup()
    doc["tenant"]["slug"] = slug = unique_slug("up")
    assert _upload(client, doc).status_code == 400  # no agency chosen for a new business
    created = _upload(client, doc, agency=str(agency_id))
    assert created.status_code == 200, created.get_data(as_text=True)[-800:]
    with app.app_context():
        tenant = db.session.scalar(select(Tenant).where(Tenant.slug == slug))
        assert tenant.status == "active" and tenant.agency_id == agency_id


def test_staff_and_auditor_cannot_import(client, make_tenant, make_user, login):
    slug = make_tenant()
    for role in ("Auditor", "Staff"):
        login(client, make_user(role, tenant=slug))
        doc = minimal_setup()
        doc["tenant"]["slug"] = slug
        assert _upload(client, doc).status_code in (302, 403)
        client.get("/logout/")


def test_export_download_round_trips_through_the_upload(app, client, make_tenant, make_user, login):
    from app.models import tenant as tm

    slug = make_tenant()
    login(client, make_user("Client Admin", tenant=slug))
    exported = client.get("/setupimport/export")
    assert exported.status_code == 200 and "attachment" in exported.headers["Content-Disposition"]
    doc = exported.get_json()
    assert doc["tenant"]["slug"] == slug and [s["key"] for s in doc["staff"]] == ["ann"]
    assert _upload(client, doc).status_code == 200
    assert client.get("/setupimport/export").get_json() == doc
    assert _count(app, slug, tm.Staff) == 1
    client.get("/logout/")
    login(client, make_user("Auditor", tenant=slug))
    assert client.get("/setupimport/export").status_code == 200  # a read: auditors may
