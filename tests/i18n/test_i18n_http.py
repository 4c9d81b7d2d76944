"""Languages over HTTP: widget frame, portal, public API, admin (menu choice kept per user), and a
confirmation mail written in the customer's language by a real rq worker."""

from __future__ import annotations

import json
import re

from sqlalchemy import text
from widget_support import NOW, tenant_rows

from notifications.notif_db_helpers import relay


def _frame_data(html: str) -> dict:
    found = re.search(r'<script type="application/json" id="upz-data"[^>]*>(.*?)</script>', html, re.S)
    assert found, html[:400]
    return json.loads(found.group(1))


def _set_tenant_locale(app, slug: str, locale: str) -> None:
    from app.extensions import db
    from app.tenancy import find_tenant

    with app.app_context():
        find_tenant(db.session, slug).locale = locale  # through the ORM: drops the recent-tenant cache
        db.session.commit()


def test_widget_frame_language_from_option_browser_then_business(app, client, widget_tenant):
    slug, widget = widget_tenant()
    url = f"/widget/v1/{slug}/{widget}/frame"
    html = client.get(url + "?lang=de", headers={"Accept-Language": "fr"}).get_data(as_text=True)
    assert '<html lang="de">' in html and "Termin buchen" in html
    html = client.get(url, headers={"Accept-Language": "pt-BR, fr-CA;q=0.8, de;q=0.5"}).get_data(as_text=True)
    assert '<html lang="fr">' in html and "Prendre rendez-vous" in html
    _set_tenant_locale(app, slug, "es")
    html = client.get(url, headers={"Accept-Language": "pt"}).get_data(as_text=True)
    assert '<html lang="es">' in html and "Reservar cita" in html


def test_portal_pages_in_the_visitors_language(app, client, widget_tenant):
    slug, _ = widget_tenant()
    html = client.get(f"/portal/{slug}/?lang=fr").get_data(as_text=True)
    assert '<html lang="fr"' in html and "Mes rendez-vous" in html and "Recevoir un lien de connexion" in html
    html = client.get(f"/portal/{slug}/", headers={"Accept-Language": "es"}).get_data(as_text=True)
    assert "Mis citas" in html and "My appointments" not in html


def test_public_api_refuses_an_unknown_customer_language(client, widget_tenant, pinned_now):
    pinned_now(NOW)
    slug, _ = widget_tenant()
    body = {"service": "visit", "start": "2027-01-04T08:00:00Z", "timezone": "Europe/Berlin",
            "customer": {"name": "Eve", "email": "eve@example.com", "locale": "klingon"}}
    r = client.post(f"/api/v1/public/{slug}/bookings", json=body)
    assert r.status_code == 422 or r.status_code == 400, r.get_json()
    assert r.get_json()["error"]["field"] == "customer.locale"
    assert tenant_rows(client.application, slug, "SELECT count(*) FROM appointment")[0][0] == 0


def test_admin_language_follows_browser_then_the_users_menu_choice_kept_for_later_sessions(
        app, make_user, login, agency_business):
    user = make_user("Client Admin", tenant=agency_business)
    anonymous = app.test_client()
    page = anonymous.get("/login/", headers={"Accept-Language": "de"}).get_data(as_text=True)
    assert '<html lang="de"' in page and "Passwort" in page  # FAB's own German catalogue

    first = app.test_client()
    login(first, user)
    assert first.get("/lang/fr").status_code == 302
    with app.app_context():
        from app.extensions import db

        stored = db.session.execute(text("SELECT locale FROM public.ab_user WHERE username = :u"), {"u": user}).scalar()
    assert stored == "fr"
    # A new session of the same user, from an English browser: French again, menu included.
    second = app.test_client()
    login(second, user)
    home = second.get("/", headers={"Accept-Language": "en"}, follow_redirects=True).get_data(as_text=True)
    assert '<html lang="fr"' in home
    assert re.search(r">\s*Réservations<", home)  # the "Bookings" menu category, from translations/
    assert "Tableau de bord" in home
    assert first.get("/lang/xx").status_code == 404


def test_confirmation_mail_in_the_customers_language(app, client, widget_tenant, pinned_now, notif, smtp, workers):
    pinned_now(NOW)
    slug, widget = widget_tenant()
    html = client.get(f"/widget/v1/{slug}/{widget}/frame?lang=fr").get_data(as_text=True)
    lang = _frame_data(html)["lang"]
    # What flow.js sends: the frame's language as customer.locale.
    body = {"service": "visit", "start": "2027-01-04T08:00:00Z", "timezone": "Europe/Berlin",
            "customer": {"name": "Camille Martin", "email": "camille@example.com", "locale": lang}}
    r = client.post(f"/api/v1/public/{slug}/bookings", json=body, headers={"X-Upzento-Widget": "1"})
    assert r.status_code == 201, r.get_json()
    assert relay(app, slug) == 2  # the booking and its new customer (customer.created)
    workers.start(1)
    [mail] = smtp.wait_until(lambda r: list(r.rcpt_tos) == ["camille@example.com"], 1, timeout=20)
    message = mail.message
    assert " ".join(str(message["Subject"]).split()).startswith("Réservation confirmée : Visit le lundi 4 janvier 2027")
    plain = message.get_body(("plain",)).get_content()
    html_part = message.get_body(("html",)).get_content()
    assert plain.startswith("Bonjour Camille Martin,")
    assert "Quand\u00a0: lundi 4 janvier 2027" in plain and "09:00" in plain
    assert "40,00\u00a0€" in plain  # price per locale
    assert '<html lang="fr">' in html_part and "Gérer votre réservation" in html_part
