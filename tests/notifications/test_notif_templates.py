"""Templates: client over agency over platform, per-language rendering, validation in the admin editor."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from notif_db_helpers import booking_body, deliveries, relay


def _book_and_plan(app, client, slug, locale=None, start="2027-01-11T08:00:00Z"):
    from app.extensions import db
    from app.jobs.notify import handle_event

    response = client.post(f"/api/v1/public/{slug}/bookings", json=booking_body(start=start, customer={
        "name": "Eve Example", "email": "eve@example.com"}))
    assert response.status_code == 201, response.get_json()
    with app.app_context():
        with db.engine.begin() as conn:
            if locale:
                conn.execute(text(f'UPDATE "tenant_{slug}".customer SET locale = :l'), {"l": locale})
            event_id = conn.execute(text(f'SELECT max(id) FROM "tenant_{slug}".outbox_event')).scalar()
        handle_event(slug, event_id)
    return {r["kind"]: r for r in deliveries(app, slug)}


def _agency_id(app, slug):
    from app.extensions import db

    with app.app_context(), db.engine.connect() as conn:
        return conn.execute(text("SELECT agency_id FROM tenant WHERE slug = :s"), {"s": slug}).scalar()


def _override(app, slug, scope, subject, language="en"):
    from app.extensions import db

    with app.app_context(), db.engine.begin() as conn:
        if scope == "agency":
            conn.execute(text(
                "INSERT INTO agency_notification_template (agency_id, event, channel, language, subject, body_text,"
                " body_html, updated_at) VALUES (:a, 'booking_confirmed', 'email', :l, :s, 'Hi {{ customer.name }}',"
                " '', now())"), {"a": _agency_id(app, slug), "s": subject, "l": language})
        else:
            conn.execute(text(
                f'INSERT INTO "tenant_{slug}".notification_template (event, channel, language, subject, body_text,'
                " body_html, updated_at) VALUES ('booking_confirmed', 'email', :l, :s, 'Hello {{ customer.name }}',"
                " '', now())"), {"s": subject, "l": language})


@pytest.fixture()
def dev_mail(app, monkeypatch):
    """No SMTP: mail is kept for the development outbox page."""
    monkeypatch.setitem(app.config, "SMTP_HOST", None)
    monkeypatch.setitem(app.config, "SMS_API_BASE_URL", None)


def test_platform_default_then_agency_then_client_override(app, client, make_tenant, pinned_now, dev_mail):
    from app.extensions import db
    from tenants.provisioning import create_agency
    from support import unique_slug

    pinned_now("2027-01-01T00:00:00Z")
    agency = unique_slug("ag").replace("_", "-")
    with app.app_context():
        create_agency(db.session, agency, "Own Agency")  # its overrides touch no other test
        db.session.commit()
    first = make_tenant(agency=agency)
    sibling = make_tenant(agency=agency)
    assert _book_and_plan(app, client, first)["booking_confirmed"]["subject"].startswith("Booking confirmed:")

    _override(app, first, "agency", "Agency says {{ service.name }}")
    _override(app, first, "client", "Client says {{ service.name }}")
    assert _book_and_plan(app, client, first, start="2027-01-11T09:00:00Z")  # same customer, new appointment
    subjects = [r["subject"] for r in deliveries(app, first, "kind = 'booking_confirmed'")]
    assert subjects[-1] == "Client says Visit"
    # The agency text reaches another business of the same agency that has no text of its own.
    assert _book_and_plan(app, client, sibling)["booking_confirmed"]["subject"] == "Agency says Visit"
    # Removing the client's own text falls back to the agency's.
    with app.app_context(), db.engine.begin() as conn:
        conn.execute(text(f'DELETE FROM "tenant_{first}".notification_template'))
    _book_and_plan(app, client, first, start="2027-01-11T10:00:00Z")
    subjects = [r["subject"] for r in deliveries(app, first, "kind = 'booking_confirmed'")]
    assert subjects == ["Booking confirmed: Visit on Monday, January 11, 2027", "Client says Visit", "Agency says Visit"]


@pytest.mark.parametrize("locale,expected", [
    ("de", "Buchung bestätigt: Visit am Montag, 11. Januar 2027"),
    ("fr", "Réservation confirmée"),
    ("es", "Reserva confirmada"),
    ("en", "Booking confirmed: Visit on Monday, January 11, 2027"),
])
def test_customer_language_picks_the_template_and_the_date_format(app, client, make_tenant, pinned_now, dev_mail,
                                                                  locale, expected):
    pinned_now("2027-01-01T00:00:00Z")
    slug = make_tenant()
    row = _book_and_plan(app, client, slug, locale=locale)["booking_confirmed"]
    assert row["language"] == locale
    assert row["subject"].startswith(expected)
    assert row["status"] == "sent" and row["provider_id"] == "dev-outbox"


def _login_admin(app, client, slug):
    from app.extensions import db
    from app.services.people import create_user_with_role

    name = f"ca_{slug}"
    with app.app_context():
        create_user_with_role(db.session, username=name, email=f"{name}@x.org", password="password-1",
                              role="Client Admin", tenant_slug=slug)
        db.session.commit()
    assert client.post("/login/", data={"username": name, "password": "password-1"}).status_code in (200, 302)


def test_editor_rejects_unknown_variables_and_unsafe_constructs_and_saves_nothing(app, client, make_tenant):
    slug = make_tenant()
    _login_admin(app, client, slug)
    url = f"/notifications/templates/booking_confirmed/email/de"
    page = client.get(url)
    assert page.status_code == 200 and "Buchung bestätigt" in page.get_data(as_text=True)

    bad = client.post(url, data={"subject": "Hi {{ customer.nme }}", "body_text": "{% for x in y %}{% endfor %}",
                                 "body_html": "", "action": "save"})
    body = bad.get_data(as_text=True)
    assert bad.status_code == 200
    assert "unknown variable &#39;customer.nme&#39;" in body or "unknown variable 'customer.nme'" in body
    assert "not allowed" in body
    from app.extensions import db

    with app.app_context(), db.engine.connect() as conn:
        assert conn.execute(text(f'SELECT count(*) FROM "tenant_{slug}".notification_template')).scalar() == 0

    preview = client.post(url + "/preview", data={"subject": "Termin {{ service.name }}",
                                                  "body_text": "Hallo {{ customer.name }}", "body_html": ""})
    data = preview.get_json()
    assert data["ok"] is True and data["subject"].startswith("Termin ") and data["text"].startswith("Hallo ")
    bad_preview = client.post(url + "/preview", data={"subject": "x", "body_text": "{{ ''.__class__ }}"}).get_json()
    assert bad_preview["ok"] is False and bad_preview["errors"]

    good = client.post(url, data={"subject": "Termin: {{ service.name }}", "body_text": "Hallo {{ customer.name }}",
                                  "body_html": "", "action": "save"})
    assert good.status_code == 302
    with app.app_context(), db.engine.connect() as conn:
        saved = conn.execute(text(f'SELECT subject, language FROM "tenant_{slug}".notification_template')).one()
    assert tuple(saved) == ("Termin: {{ service.name }}", "de")
    grid = client.get("/notifications/templates/").get_data(as_text=True)
    assert "client" in grid
    # An agency-wide text needs an agency role.
    assert client.get(url + "?scope=agency").status_code == 403


def test_agency_owner_saves_an_agency_wide_text(app, client, make_tenant):
    from app.extensions import db
    from app.services.people import create_user_with_role
    from support import unique_slug
    from tenants.provisioning import create_agency

    agency = unique_slug("ag").replace("_", "-")
    with app.app_context():
        create_agency(db.session, agency, "Own Agency")
        db.session.commit()
    slug = make_tenant(agency=agency)
    name = f"ao_{slug}"
    with app.app_context():
        create_user_with_role(db.session, username=name, email=f"{name}@x.org", password="password-1",
                              role="Agency Owner", agency_slug=agency)
        db.session.commit()
    assert client.post("/login/", data={"username": name, "password": "password-1"}).status_code in (200, 302)
    url = "/notifications/templates/reminder/sms/en"
    answer = client.post(url, data={"scope": "agency", "subject": "", "body_html": "", "action": "save",
                                    "body_text": "{{ business.name }}: see you {{ appointment.time }}"})
    assert answer.status_code == 302, answer.get_data(as_text=True)[:500]
    with app.app_context(), db.engine.connect() as conn:
        rows = conn.execute(text("SELECT a.slug, t.event, t.channel FROM agency_notification_template t "
                                 "JOIN agency a ON a.id = t.agency_id WHERE a.slug = :s"), {"s": agency}).all()
        own = conn.execute(text(f'SELECT count(*) FROM "tenant_{slug}".notification_template')).scalar()
    assert [tuple(r) for r in rows] == [(agency, "reminder", "sms")] and own == 0
    assert "agency" in client.get("/notifications/templates/").get_data(as_text=True)
