"""Admin: widget builder, booking-form field editor, consent texts; markup in labels and answers stays escaped."""

from __future__ import annotations

import re

import pytest
from support import unique_slug
from widget_support import MONDAY_9, NOW, tenant_rows

EVIL = '<script>alert("x")</script>'


@pytest.fixture()
def admin(app, client, widget_tenant, pinned_now):
    """(slug, widget id, logged-in client) for a Client Admin of a fresh tenant."""
    from app.extensions import db
    from app.services.people import create_user_with_role

    pinned_now(NOW)
    slug, widget = widget_tenant(origins=["https://shop.example"])
    name = unique_slug("wadm")
    with app.app_context():
        create_user_with_role(db.session, username=name, email=f"{name}@x.org", password="password-1",
                              role="Client Admin", tenant_slug=slug)
        db.session.commit()
    r = client.post("/login/", data={"username": name, "password": "password-1"})
    assert r.status_code in (200, 302)
    return slug, widget, client


def _form(**over):
    data = {"name": "Spring campaign", "mode": "popup", "primary_color": "#1d4ed8", "accent_color": "#0f766e",
            "radius_px": "12", "language": "de", "allowed_origins": "https://www.example.com/\nhttp://127.0.0.1:8080",
            "show_location_step": "1", "show_staff_step": "1", "show_phone": "1", "active": "1", "button_label": "Jetzt buchen"}
    data.update(over)
    return data


def test_builder_creates_several_widgets_with_preview_and_snippets(app, admin):
    slug, first, client = admin
    assert client.get("/widgets/").status_code == 200
    r = client.post("/widgets/new", data=_form())
    assert r.status_code == 302
    page = client.get(r.headers["Location"]).get_data(as_text=True)
    public_id = re.search(r'data-upzento-widget=&#34;(w[0-9a-f]+)&#34;|data-upzento-widget="(w[0-9a-f]+)"', page)
    assert public_id
    wid = public_id.group(1) or public_id.group(2)
    assert wid != first
    assert f"/widget/v1/loader.js" in page and "data-mode=&#34;popup&#34;" in page  # the JS snippet, escaped in the textarea
    assert f"/widget/v1/{slug}/{wid}/frame" in page and 'id="upz-preview"' in page  # live preview of the real frame
    assert page.count('class="btn btn-default upz-copy"') == 2
    rows = tenant_rows(app, slug, "SELECT name, mode, language, radius_px, allowed_origins FROM widget ORDER BY id")
    assert len(rows) == 2
    assert tuple(rows[1]) == ("Spring campaign", "popup", "de", 12, ["http://127.0.0.1:8080", "https://www.example.com"])
    listing = client.get("/widgets/").get_data(as_text=True)
    assert "Spring campaign" in listing and "Main site" in listing
    # The preview frame is framable by our own admin (frame-ancestors 'self').
    frame = client.get(f"/widget/v1/{slug}/{wid}/frame")
    assert "frame-ancestors 'self' http://127.0.0.1:8080 https://www.example.com" in frame.headers["Content-Security-Policy"]


@pytest.mark.parametrize("over, field, words", [
    ({"primary_color": "#ffff00"}, "primary_color", "#ffff00 has contrast"),
    ({"accent_color": "#99ccff"}, "accent_color", "WCAG AA"),
    ({"allowed_origins": "ftp://files.example"}, "allowed_origins", "not an origin"),
    ({"radius_px": "99"}, "radius_px", "0 to 32"),
    ({"default_service": "nope"}, "default_service", "unknown service"),
    ({"name": ""}, "name", "name"),
])
def test_builder_refuses_bad_settings_and_says_which(app, admin, over, field, words):
    slug, _, client = admin
    r = client.post("/widgets/new", data=_form(**over))
    assert r.status_code == 422
    page = r.get_data(as_text=True)
    assert f'data-field="{field}"' in page and words in page
    assert tenant_rows(app, slug, "SELECT count(*) FROM widget")[0][0] == 1


def test_editing_a_widget_changes_it_and_a_bad_edit_changes_nothing(app, admin):
    slug, wid, client = admin
    (pk,) = tenant_rows(app, slug, "SELECT id FROM widget WHERE public_id = :p", p=wid)[0]
    assert client.post(f"/widgets/{pk}", data=_form(name="Main site v2", mode="floating")).status_code == 302
    assert client.post(f"/widgets/{pk}", data=_form(name="Broken", primary_color="#eeeeee")).status_code == 422
    assert tuple(tenant_rows(app, slug, "SELECT name, mode FROM widget WHERE id = :i", i=pk)[0]) == ("Main site v2", "floating")


def test_form_field_editor_and_escaping_of_labels_and_answers(app, admin):
    slug, _, client = admin
    r = client.post("/formfieldview/add", data={"label": f"Allergies {EVIL}", "key": "allergies", "field_type": "select",
                                                "options_text": "none\npollen\n", "required": "y", "position": "1", "active": "y"})
    assert r.status_code == 302
    rows = tenant_rows(app, slug, "SELECT key, field_type, required, options FROM form_field")
    assert tuple(rows[0]) == ("allergies", "select", True, ["none", "pollen"])
    listing = client.get("/formfieldview/list/").get_data(as_text=True)
    assert EVIL not in listing and "&lt;script&gt;" in listing
    # A select without options is refused with a message; nothing stored.
    client.post("/formfieldview/add", data={"label": "Pick", "key": "pick", "field_type": "select", "options_text": "", "position": "2"})
    assert tenant_rows(app, slug, "SELECT count(*) FROM form_field")[0][0] == 1

    booked = client.post(f"/api/v1/public/{slug}/bookings", json={
        "service": "visit", "start": MONDAY_9, "customer": {"name": f"Eve {EVIL}", "email": "eve@example.com"},
        "answers": {"allergies": "pollen"}})
    assert booked.status_code == 201
    r = client.post(f"/api/v1/public/{slug}/bookings", json={
        "service": "visit", "start": MONDAY_9, "customer": {"name": "Eve", "email": "eve@example.com"}, "answers": {"allergies": EVIL}})
    assert r.status_code == 422  # not one of the choices
    appt = booked.get_json()["appointment"]["id"]
    show = client.get(f"/appointmentview/show/{appt}").get_data(as_text=True)
    assert "allergies: pollen" in show and EVIL not in show


def test_consent_texts_are_versioned_never_edited(app, admin):
    slug, _, client = admin
    client.post("/consenttextview/add", data={"kind": "terms", "body": "Be on time."})
    client.post("/consenttextview/add", data={"kind": "terms", "body": "Be on time."})  # unchanged: refused
    client.post("/consenttextview/add", data={"kind": "terms", "body": f"Be early. {EVIL}"})
    rows = tenant_rows(app, slug, "SELECT kind, version, body FROM consent_text ORDER BY version")
    assert [(k, v) for k, v, _ in rows] == [("terms", 1), ("terms", 2)]
    assert client.get("/consenttextview/edit/1").status_code in (302, 403, 404)
    listing = client.get("/consenttextview/list/").get_data(as_text=True)
    assert "terms" in listing
    show = client.get(f"/consenttextview/show/{tenant_rows(app, slug, 'SELECT id FROM consent_text WHERE version = 2')[0][0]}")
    assert EVIL not in show.get_data(as_text=True)


def test_snippet_escapes_the_button_label(app, admin):
    from app.views.widgets import snippets
    from app.models.widgets import Widget

    slug, _, _client = admin
    widget = Widget(public_id="wabc", mode="popup", button_label='Book"><script>x()</script>')
    with app.test_request_context("/"):
        js = snippets(slug, widget)["js"]
    assert "<script>x()" not in js and 'data-label="Book&#34;&gt;&lt;script&gt;' in js
