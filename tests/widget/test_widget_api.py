"""Booking form, consent versions, colours and the widget's public endpoints (HTTP, real PostgreSQL)."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest
from widget_support import MONDAY_9, NOW, tenant_rows

FIELDS = [
    {"key": "reason", "label": "Reason for visit", "field_type": "select", "required": True, "options": ["Check-up", "Pain"]},
    {"key": "notes", "label": "Anything else?", "field_type": "textarea", "help_text": "Allergies, access needs"},
    {"key": "age", "label": "Age", "field_type": "number"},
    {"key": "topics", "label": "Topics", "field_type": "multiselect", "options": ["a", "b"]},
    {"key": "insured", "label": "Insured", "field_type": "checkbox", "required": True},
    {"key": "born", "label": "Born", "field_type": "date"},
    {"key": "alt_email", "label": "Other email", "field_type": "email"},
]
CONSENTS = {"terms": "Terms v1: be on time.", "privacy": "Privacy v1: we keep your data safe."}


def _body(**extra):
    body = {"service": "visit", "start": MONDAY_9, "customer": {"name": "Eve", "email": "eve@example.com"},
            "answers": {"reason": "Pain", "insured": True}, "consents": {"terms": 1, "privacy": 1}}
    body.update(extra)
    return body


@pytest.fixture()
def tenant(widget_tenant, pinned_now):
    pinned_now(NOW)
    return widget_tenant(origins=["https://shop.example"], fields=[dict(f) for f in FIELDS], consents=dict(CONSENTS))


def test_form_endpoint_lists_fields_in_order_and_current_consents(client, tenant):
    slug, _ = tenant
    body = client.get(f"/api/v1/public/{slug}/form?service=visit").get_json()
    assert [f["key"] for f in body["fields"]] == [f["key"] for f in FIELDS]
    assert body["fields"][1]["help"] == "Allergies, access needs"
    assert {(c["kind"], c["version"]) for c in body["consents"]} == {("terms", 1), ("privacy", 1)}
    assert client.get(f"/api/v1/public/{slug}/form?service=nope").status_code == 404


def test_booking_with_valid_answers_stores_them_and_records_consent(app, client, tenant):
    slug, widget = tenant
    answers = {"reason": "Pain", "insured": True, "age": "42", "topics": ["a", "b"], "born": "1985-02-03", "notes": "<b>hi</b>"}
    r = client.post(f"/api/v1/public/{slug}/bookings", json=_body(answers=answers, widget=widget),
                    environ_base={"REMOTE_ADDR": "127.0.0.9"})
    assert r.status_code == 201, r.get_json()
    appt_id = r.get_json()["appointment"]["id"]
    (stored,) = tenant_rows(app, slug, "SELECT answers FROM appointment WHERE id = :id", id=appt_id)
    assert stored[0] == {"reason": "Pain", "insured": True, "age": 42, "topics": ["a", "b"], "born": "1985-02-03", "notes": "<b>hi</b>"}
    records = tenant_rows(app, slug, "SELECT t.kind, t.version, r.email, r.ip, r.appointment_id::text FROM consent_record r "
                                     "JOIN consent_text t ON t.id = r.consent_text_id ORDER BY t.kind")
    assert [tuple(x) for x in records] == [("privacy", 1, "eve@example.com", "127.0.0.9", appt_id),
                                           ("terms", 1, "eve@example.com", "127.0.0.9", appt_id)]


@pytest.mark.parametrize("answers, field", [
    ({"insured": True}, "answers.reason"),
    ({"reason": "Pain"}, "answers.insured"),
    ({"reason": "Other", "insured": True}, "answers.reason"),
    ({"reason": "Pain", "insured": True, "age": "old"}, "answers.age"),
    ({"reason": "Pain", "insured": True, "born": "03/02/1985"}, "answers.born"),
    ({"reason": "Pain", "insured": True, "topics": ["z"]}, "answers.topics"),
    ({"reason": "Pain", "insured": True, "alt_email": "nope"}, "answers.alt_email"),
    ({"reason": "Pain", "insured": True, "unknown": "x"}, "answers.unknown"),
])
def test_bad_answers_are_refused_and_nothing_is_booked(app, client, tenant, answers, field):
    slug, _ = tenant
    r = client.post(f"/api/v1/public/{slug}/bookings", json=_body(answers=answers))
    assert r.status_code == 422
    err = r.get_json()["error"]
    assert err["code"] == "invalid_answers" and field in [e["field"] for e in err["errors"]]
    assert tenant_rows(app, slug, "SELECT count(*) FROM appointment")[0][0] == 0
    assert tenant_rows(app, slug, "SELECT count(*) FROM customer")[0][0] == 0


def test_all_missing_required_answers_are_listed_at_once(client, tenant):
    slug, _ = tenant
    err = client.post(f"/api/v1/public/{slug}/bookings", json=_body(answers={})).get_json()["error"]
    assert {e["field"] for e in err["errors"]} == {"answers.reason", "answers.insured"}


def test_consent_missing_or_outdated_is_refused(app, client, tenant):
    slug, _ = tenant
    r = client.post(f"/api/v1/public/{slug}/bookings", json=_body(consents={"terms": 1}))
    assert r.status_code == 422 and r.get_json()["error"]["field"] == "consents.privacy"
    from app.extensions import db
    from app.services import forms
    from app.tenancy import tenant_session

    with app.app_context(), tenant_session(db.engine, slug) as (session, _):
        same = forms.publish_consent(session, "terms", CONSENTS["terms"], "admin")
        assert same.version == 1  # unchanged text keeps its version
        changed = forms.publish_consent(session, "terms", "Terms v2: be early.", "admin")
        assert changed.version == 2
    r = client.post(f"/api/v1/public/{slug}/bookings", json=_body())
    assert r.status_code == 422 and r.get_json()["error"]["code"] == "consent_required"
    r = client.post(f"/api/v1/public/{slug}/bookings", json=_body(consents={"terms": 2, "privacy": 1}))
    assert r.status_code == 201
    rows = tenant_rows(app, slug, "SELECT t.kind, t.version, t.body FROM consent_record r JOIN consent_text t ON t.id = r.consent_text_id ORDER BY 1")
    assert [tuple(x) for x in rows] == [("privacy", 1, CONSENTS["privacy"]), ("terms", 2, "Terms v2: be early.")]


def test_widget_hidden_field_is_not_required(app, client, tenant):
    slug, widget = tenant
    from app.extensions import db
    from app.models import widgets as w
    from app.tenancy import tenant_session
    from sqlalchemy import update

    with app.app_context(), tenant_session(db.engine, slug) as (session, _):
        session.execute(update(w.Widget).values(hidden_fields=["insured"]))
    r = client.post(f"/api/v1/public/{slug}/bookings", json=_body(answers={"reason": "Pain"}, widget=widget))
    assert r.status_code == 201, r.get_json()
    r = client.post(f"/api/v1/public/{slug}/bookings", json=_body(answers={"reason": "Pain"}, widget="wnope"))
    assert r.status_code == 404 and r.get_json()["error"]["field"] == "widget"


def test_ics_download_by_manage_token(client, tenant):
    slug, _ = tenant
    token = client.post(f"/api/v1/public/{slug}/bookings", json=_body()).get_json()["manage_token"]
    r = client.get(f"/api/v1/public/{slug}/bookings/{token}/ics")
    assert r.status_code == 200 and r.mimetype == "text/calendar"
    assert b"DTSTART:20270104T080000Z" in r.data and b"BEGIN:VEVENT" in r.data
    assert client.get(f"/api/v1/public/{slug}/bookings/wrong/ics").status_code == 404


def test_widget_config_endpoint(client, tenant):
    slug, widget = tenant
    body = client.get(f"/api/v1/public/{slug}/widgets/{widget}").get_json()["widget"]
    assert body["id"] == widget and body["mode"] == "inline"
    assert "allowed_origins" not in body
    assert client.get(f"/api/v1/public/{slug}/widgets/wnope").status_code == 404


def test_contrast_rules():
    from app.services import forms

    assert forms.contrast("#000000", "#ffffff") == pytest.approx(21.0)
    assert forms.color_problems("#1d4ed8", "#0f766e") == []
    problems = forms.color_problems("#ffff00", "#0f766e")
    assert problems[0][0] == "primary_color" and "contrast" in problems[0][1]
    fixed = forms.adjust_for_contrast("#ffff00")
    assert forms.contrast(fixed, "#ffffff") >= 4.5 and fixed != "#ffff00"
    assert forms.adjust_for_contrast("#1d4ed8") == "#1d4ed8"


def test_frame_headers_csp_and_origin(client, tenant):
    slug, widget = tenant
    r = client.get(f"/widget/v1/{slug}/{widget}/frame?origin=https://shop.example", headers={"Accept-Encoding": "identity"})
    assert r.status_code == 200
    csp = r.headers["Content-Security-Policy"]
    assert "frame-ancestors 'self' https://shop.example" in csp
    assert '"parent_origin":"https://shop.example"' in r.get_data(as_text=True)
    # Another website gets a page with a link to the booking page: no booking data, nothing posted to it.
    r = client.get(f"/widget/v1/{slug}/{widget}/frame?origin=https://evil.example")
    body = r.get_data(as_text=True)
    assert "Open the booking page" in body and "upz-data" not in body and "evil.example" not in body
    assert "frame-ancestors *" in r.headers["Content-Security-Policy"] and "script-src" not in r.headers["Content-Security-Policy"]
    plain = client.get(f"/widget/v1/{slug}/{widget}/frame", headers={"Sec-Fetch-Dest": "iframe", "Referer": "https://evil.example/page"})
    assert "Open the booking page" in plain.get_data(as_text=True)
    top = client.get(f"/widget/v1/{slug}/{widget}/frame", headers={"Sec-Fetch-Dest": "document", "Referer": "https://evil.example/"})
    assert '"parent_origin":null' in top.get_data(as_text=True)  # opened as a page of its own: the booking page
    assert client.get(f"/widget/v1/{slug}/wnope/frame").status_code == 404
    assert client.get(f"/widget/v1/nobody_here/{widget}/frame").status_code == 404


def test_frame_adjusts_a_failing_primary_colour_and_says_so(client, tenant):
    slug, widget = tenant
    html = client.get(f"/widget/v1/{slug}/{widget}/frame?primary=%23ffff00").get_data(as_text=True)
    assert "--upz-primary:#ffff00" not in html and "fails WCAG AA" in html


def test_frame_languages(client, tenant):
    slug, widget = tenant
    for lang, word in (("de", "Termin buchen"), ("fr", "Prendre rendez-vous"), ("es", "Reservar cita"), ("en", "Book an appointment")):
        html = client.get(f"/widget/v1/{slug}/{widget}/frame?lang={lang}").get_data(as_text=True)
        assert f'<html lang="{lang}">' in html and word in html
    html = client.get(f"/widget/v1/{slug}/{widget}/frame", headers={"Accept-Language": "fr-CH, fr;q=0.9"}).get_data(as_text=True)
    assert '<html lang="fr">' in html


def test_xss_in_field_labels_stays_inert_in_the_frame(widget_tenant, client, pinned_now):
    pinned_now(NOW)
    evil = '</script><script>alert(1)</script><img src=x onerror=alert(2)>'
    slug, widget = widget_tenant(fields=[{"key": "q", "label": evil, "field_type": "text", "help_text": evil}])
    html = client.get(f"/widget/v1/{slug}/{widget}/frame").get_data(as_text=True)
    assert "</script><script>alert(1)" not in html
    assert "<img src=x" not in html.split('id="upz-data"')[0]


def test_loader_is_small_vanilla_and_gzipped(client):
    raw = (Path(__file__).resolve().parents[2] / "app/widget/static/loader.js").read_bytes()
    assert len(gzip.compress(raw, 9)) <= 5 * 1024
    r = client.get("/widget/v1/loader.js", headers={"Accept-Encoding": "gzip"})
    assert r.status_code == 200 and r.headers["Content-Encoding"] == "gzip"
    assert gzip.decompress(r.data) == raw
    assert "javascript" in r.headers["Content-Type"]
    assert client.get("/widget/v1/static/..%2Fviews.py").status_code == 404


def test_frame_carries_the_first_week_of_slots_when_it_starts_at_the_times(client, widget_tenant, pinned_now):
    import json
    import re

    pinned_now(NOW)
    slug, widget = widget_tenant(show_staff_step=False)
    html = client.get(f"/widget/v1/{slug}/{widget}/frame?service=visit").get_data(as_text=True)
    data = json.loads(re.search(r'id="upz-data">(.*?)</script>', html).group(1))
    inline = data["inline"]
    assert inline["from"] == "2027-01-01" and inline["tz"] == "Europe/Berlin" and inline["days"] == 7
    api = client.get(f"/api/v1/public/{slug}/availability?service=visit&from=2027-01-01&to=2027-01-07&timezone=Europe/Berlin&location=main")
    assert [s["start"] for s in inline["slots"]] == [s["start"] for s in api.get_json()["slots"]]
    # No service chosen yet: nothing to precompute.
    html = client.get(f"/widget/v1/{slug}/{widget}/frame").get_data(as_text=True)
    assert '"inline":null' in html


def test_frame_draws_the_first_days_of_slots_as_flow_js_would(client, widget_tenant, pinned_now):
    """The first slots are buttons in the page itself (no script needed to see them), worded like the browser's Intl."""
    import datetime as dt
    import re

    pinned_now(NOW)
    slug, widget = widget_tenant()
    url = f"/widget/v1/{slug}/{widget}/frame?service=visit"

    def drawn(html):
        main = html.split('<main id="upz-app"')[1].split("</main>")[0]
        days = re.findall(r'<h2 id="upz-day-([-0-9]+)">([^<]+)</h2><div class="upz-slots" role="group" aria-labelledby="upz-day-\1">', main)
        slots = re.findall(r'<button type="button" class="upz-slot" data-start="([^"]+)">([^<]+)(?:<small>([^<]+)</small>)?</button>', main)
        return main, days, slots

    main, days, slots = drawn(client.get(url, headers={"Accept-Language": "en-GB,en;q=0.8"}).get_data(as_text=True))
    # Friday and Monday (the first two days with times) in the visitor's regional English; the rest comes from flow.js.
    assert days == [("2027-01-01", "Friday 1 January"), ("2027-01-04", "Monday 4 January")]
    assert slots[0] == ("2027-01-01T08:00:00Z", "09:00", "") and len(slots) == 2 * 16
    api = client.get(f"/api/v1/public/{slug}/availability?service=visit&from=2027-01-01&to=2027-01-04&timezone=Europe/Berlin")
    assert [s[0] for s in slots] == [s["start"] for s in api.get_json()["slots"]]
    assert '<h1 tabindex="-1">Choose a date and time</h1>' in main and '<option value="Europe/Berlin" selected>' in main
    assert 'id="upz-later"' in main
    # The page keeps them only where the visitor's clock agrees: Berlin is UTC+1 at the start of the range.
    start = int(dt.datetime(2026, 12, 31, 23, tzinfo=dt.timezone.utc).timestamp() * 1000)
    assert f'data-tzo="{start}@-60 ' in main

    _, days, slots = drawn(client.get(url, headers={"Accept-Language": "en-US,en;q=0.8"}).get_data(as_text=True))
    assert days[0][1] == "Friday, January 1" and slots[0][1] == "09:00 AM"
    _, days, slots = drawn(client.get(url + "&lang=de").get_data(as_text=True))
    assert days[0][1] == "Freitag, 1. Januar" and slots[0][1] == "09:00"
    # A group class says the seats left, as flow.js does.
    _, _, slots = drawn(client.get(f"/widget/v1/{slug}/{widget}/frame?service=class&lang=de").get_data(as_text=True))
    assert slots[0][2] == "Noch 5 Plätze"

    # The popup's close button shows with them (it works from the first click: flow.js starts on it).
    assert 'id="upz-close" aria-label="Close"' in client.get(url + "&closable=1").get_data(as_text=True)
    assert 'id="upz-close" hidden' in client.get(url).get_data(as_text=True)

    # Nothing to draw before a service is chosen, or when a staff step comes first.
    html = client.get(f"/widget/v1/{slug}/{widget}/frame").get_data(as_text=True)
    assert 'class="upz-slot"' not in html and "Loading…" in html
    html = client.get(url + "&staff=nobody").get_data(as_text=True)
    assert 'class="upz-slot"' not in html


def test_frame_catalogue_follows_every_edit_at_once(app, client, widget_tenant, pinned_now):
    """The frame's catalogue is cached per rules version: renames, new questions and new consent texts show at once."""
    import json
    import re

    from sqlalchemy import update

    from app.extensions import db
    from app.models import tenant as m
    from app.models import widgets as w
    from app.services import forms
    from app.tenancy import tenant_session

    pinned_now(NOW)
    slug, widget = widget_tenant(consents={"terms": "Terms v1"})
    url = f"/widget/v1/{slug}/{widget}/frame"

    def data():
        html = client.get(url).get_data(as_text=True)
        return json.loads(re.search(r'id="upz-data">(.*?)</script>', html).group(1))

    before = data()
    assert before == data()  # served from the snapshot the second time
    assert [s["name"] for s in before["services"] if s["key"] == "visit"] == ["Visit"]
    with app.app_context(), tenant_session(db.engine, slug) as (session, _):
        session.execute(update(m.Service).where(m.Service.key == "visit").values(name="Check-up"))
        session.add(w.FormField(key="allergies", label="Allergies", field_type="text", position=9, options=[]))
        forms.publish_consent(session, "terms", "Terms v2", "test")
    after = data()
    assert [s["name"] for s in after["services"] if s["key"] == "visit"] == ["Check-up"]
    assert "allergies" in [f["key"] for f in after["fields"]["visit"]]
    assert [(c["kind"], c["version"]) for c in after["consents"]] == [("terms", 2)]
    # Per-request filtering leaves the shared snapshot alone.
    hidden = client.get(url + "?hide=allergies").get_data(as_text=True)
    assert '"key":"allergies"' not in hidden
    assert "allergies" in [f["key"] for f in data()["fields"]["visit"]]


def test_large_json_answers_are_gzipped_for_clients_that_accept_it(client, widget_tenant, pinned_now):
    import json

    pinned_now(NOW)
    slug, _ = widget_tenant()
    url = f"/api/v1/public/{slug}/availability?service=visit&from=2027-01-01&to=2027-01-14&timezone=UTC"
    plain = client.get(url)
    packed = client.get(url, headers={"Accept-Encoding": "gzip, deflate"})
    assert "Content-Encoding" not in plain.headers and packed.headers["Content-Encoding"] == "gzip"
    assert json.loads(gzip.decompress(packed.data)) == plain.get_json()
    assert len(packed.data) * 5 < len(plain.data)


def test_demo_page_and_cli(app, client, widget_tenant, pinned_now):
    pinned_now(NOW)
    slug, widget = widget_tenant()
    page = client.get(f"/widget/v1/{slug}/{widget}/demo").get_data(as_text=True)
    assert f'data-upzento-widget="{widget}"' in page and "/widget/v1/loader.js" in page
    runner = app.test_cli_runner()
    out = runner.invoke(args=["widgets", "create", slug, "--name", "CLI site", "--origin", "https://a.example/"])
    assert out.exit_code == 0, out.output
    assert "demo page:" in out.output
    listed = runner.invoke(args=["widgets", "list", slug])
    assert "CLI site" in listed.output and "https://a.example" in listed.output
    bad = runner.invoke(args=["widgets", "create", slug, "--name", "Pale", "--primary", "#eeeeee"])
    assert bad.exit_code == 1 and "primary_color" in bad.output
    assert "Pale" not in runner.invoke(args=["widgets", "list", slug]).output
    assert runner.invoke(args=["widgets", "list", "no_such_tenant"]).exit_code == 1


def test_embed_code_hides_optional_questions_only(client, widget_tenant, pinned_now):
    import json
    import re

    pinned_now(NOW)
    slug, widget = widget_tenant(fields=[{"key": "must", "label": "Must", "field_type": "text", "required": True},
                                         {"key": "may", "label": "May", "field_type": "text"}])
    html = client.get(f"/widget/v1/{slug}/{widget}/frame?hide=must,may,phone").get_data(as_text=True)
    data = json.loads(re.search(r'id="upz-data">(.*?)</script>', html).group(1))
    assert [f["key"] for f in data["fields"]["visit"]] == ["must"] and data["hide_phone"] is True


def test_markup_from_a_booking_is_escaped_in_the_confirmation_email_html():
    from app.notifications import templating

    context = templating.sample_context("en")
    evil = '<img src=x onerror="alert(1)">'
    context["customer"]["name"] = evil
    context["service"]["name"] = evil
    resolved = templating.resolve_template("booking_confirmed", "email", "en")
    message = templating.render(resolved.template, context)
    assert evil not in message.html and "&lt;img src=x" in message.html


def test_reserved_answer_keys_cannot_become_form_fields(app, widget_tenant, pinned_now):
    from app.errors import ValidationError
    from app.extensions import db
    from app.models import widgets as w
    from app.services import forms
    from app.tenancy import tenant_session

    pinned_now(NOW)
    slug, _ = widget_tenant()
    with app.app_context(), tenant_session(db.engine, slug) as (session, _):
        with pytest.raises(ValidationError, match="reserved"):
            forms.save_field(session, w.FormField(key="meeting_url", label="Link", field_type="text", options=[]))


def test_service_specific_fields_apply_to_that_service_only(app, client, widget_tenant, pinned_now):
    pinned_now(NOW)
    slug, _ = widget_tenant(fields=[{"key": "notes", "label": "Notes", "field_type": "text"},
                                    {"key": "level", "label": "Level", "field_type": "select", "required": True,
                                     "options": ["beginner", "advanced"]}])
    from sqlalchemy import update

    from app.extensions import db
    from app.models import tenant as m
    from app.models import widgets as w
    from app.tenancy import tenant_session

    with app.app_context(), tenant_session(db.engine, slug) as (session, _):
        class_id = session.query(m.Service.id).filter_by(key="class").scalar()
        session.execute(update(w.FormField).where(w.FormField.key == "level").values(service_id=class_id))
        session.add(w.FormField(key="notes", label="Notes for the class", field_type="textarea", required=True,
                                service_id=class_id, position=5, options=[]))
    visit = client.get(f"/api/v1/public/{slug}/form?service=visit").get_json()["fields"]
    klass = client.get(f"/api/v1/public/{slug}/form?service=class").get_json()["fields"]
    assert [f["key"] for f in visit] == ["notes"] and visit[0]["required"] is False
    assert {f["key"]: (f["label"], f["required"]) for f in klass} == {
        "level": ("Level", True), "notes": ("Notes for the class", True)}
    r = client.post(f"/api/v1/public/{slug}/bookings", json={
        "service": "visit", "start": MONDAY_9, "customer": {"name": "Eve", "email": "eve@example.com"}, "answers": {}})
    assert r.status_code == 201


def test_every_language_has_every_text():
    from app.widget import i18n

    # The texts come from the gettext catalogues (tests/i18n checks each one is translated).
    english = i18n.strings("en")
    assert english == i18n.STRINGS
    for lang in i18n.LANGUAGES:
        texts = i18n.strings(lang)
        assert set(texts) == set(english) and all(v.strip() for v in texts.values()), lang
        assert lang == "en" or texts["book"] != english["book"], lang
    assert i18n.pick("xx", None, "de") == "de" and i18n.pick("es") == "es"
