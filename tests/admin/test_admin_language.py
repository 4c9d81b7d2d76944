"""People's words in the admin: titles, a short name derived from the name, the current business in the bar."""

from __future__ import annotations

import re

from support import unique_slug


def test_client_business_pages_speak_plainly_and_derive_the_short_name(app, client, make_user, login, make_tenant):
    make_tenant()  # a second business of the agency: the switcher has somewhere to go
    login(client, make_user("Agency Owner", agency="test-agency"))
    page = client.get("/tenantview/add").get_data(as_text=True)
    assert re.search(r"<h1[^>]*>\s*Add client business\s*</h1>", page) and "Add Tenant" not in page
    assert "Leave empty to derive it from the name" in page  # the rule is shown before any error
    from app.extensions import db
    from app.models.public import Agency, Tenant

    with app.app_context():
        agency = db.session.query(Agency).filter_by(slug="test-agency").one().id
    name = f"Salon {unique_slug('x')[2:]} Wien"
    created = client.post("/tenantview/add", data={"agency": agency, "name": name, "slug": "", "timezone": "Europe/Vienna",
                                                   "currency": "EUR", "locale": "de"})
    assert created.status_code == 302, re.findall(r"alert-danger[^>]*>(.*?)</div>", created.get_data(as_text=True), re.S)
    with app.app_context():
        slug = db.session.query(Tenant).filter_by(name=name).one().slug
    assert slug == re.sub(r"[^a-z0-9]+", "_", name.lower())
    client.post(f"/switch/{slug}")
    # The business speaks German by default; this reader's browser asks for English.
    home = client.get("/", headers={"Accept-Language": "en"}).get_data(as_text=True)
    assert re.search(r'id="current-business">\s*<span class="sr-only">Business: </span>' + re.escape(name), home)
    assert "/switch/" in home and "All businesses" in home  # the switcher beside it
