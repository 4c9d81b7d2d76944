"""Creating a client business in the admin shows where building its schema stands; a failed build can be retried."""

from __future__ import annotations

import re

from sqlalchemy import select, text
from support import unique_slug


def _agency_id(app):
    from app.extensions import db
    from app.models.public import Agency

    with app.app_context():
        return db.session.scalar(select(Agency.id).where(Agency.slug == "test-agency"))


def _add(client, app, slug):
    return client.post("/tenantview/add", data={
        "agency": str(_agency_id(app)), "name": f"Biz {slug}", "slug": slug, "timezone": "Europe/Berlin",
        "currency": "EUR", "locale": "en",
    })


def test_create_shows_progress_page(app, client, make_user, login):
    login(client, make_user("Agency Owner", agency="test-agency"))
    slug = unique_slug("prov")
    created = _add(client, app, slug)
    assert created.status_code == 302, created.get_data(as_text=True)[-500:]
    assert "/tenantview/provisioning/" in created.headers["Location"]
    page = client.get(created.headers["Location"])
    body = page.get_data(as_text=True)
    steps = re.findall(r'<li class="list-group-item">(.*?)</li>', body, re.S)
    assert page.status_code == 200 and "active" in body and len(steps) == 4
    assert all("fa-check" in step and "hourglass" not in step for step in steps), steps
    status = client.get(created.headers["Location"] + "?format=json").get_json()
    assert status["status"] == "active" and all(step["done"] for step in status["steps"])
    # Filtered by slug: the list pages, and earlier tests may have made many businesses.
    listed = client.get(f"/tenantview/list/?_flt_0_slug={slug}").get_data(as_text=True)
    assert slug in listed


def test_failed_build_stays_visible_and_retry_finishes_it(app, client, make_user, login):
    from app.extensions import db

    slug = unique_slug("broken")
    with app.app_context():
        # A leftover table where the migration wants to create its own makes the build fail.
        db.session.execute(text(f'CREATE SCHEMA "tenant_{slug}"'))
        db.session.execute(text(f'CREATE TABLE "tenant_{slug}".location (id int)'))
        db.session.commit()
    login(client, make_user("Agency Owner", agency="test-agency"))
    created = _add(client, app, slug)
    assert created.status_code == 302
    url = created.headers["Location"]
    status = client.get(url + "?format=json").get_json()
    assert status["status"] == "provisioning"
    assert not status["steps"][-1]["done"]
    page = client.get(url).get_data(as_text=True)
    assert 'http-equiv="refresh"' in page and "Retry" in page
    assert "provisioning" in client.get(f"/tenantview/list/?_flt_0_slug={slug}").get_data(as_text=True)
    with app.app_context():
        db.session.execute(text(f'DROP TABLE "tenant_{slug}".location'))
        db.session.commit()
    pk = url.rstrip("/").rsplit("/", 1)[-1]
    assert client.post(f"/tenantview/provision/{pk}").status_code == 302
    assert client.get(url + "?format=json").get_json()["status"] == "active"


def test_progress_page_of_other_agency_is_404(app, client, make_user, login, make_tenant):
    from app.extensions import db
    from app.models.public import Tenant
    from tenants.provisioning import create_agency

    other = f"ag{unique_slug('x')[-8:]}"
    with app.app_context():
        create_agency(db.session, other, "Elsewhere")
        db.session.commit()
    slug = make_tenant(agency=other)
    with app.app_context():
        pk = db.session.scalar(select(Tenant.id).where(Tenant.slug == slug))
    login(client, make_user("Agency Owner", agency="test-agency"))
    assert client.get(f"/tenantview/provisioning/{pk}").status_code == 404
    assert client.post(f"/tenantview/provision/{pk}").status_code == 404
