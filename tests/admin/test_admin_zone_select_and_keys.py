"""Time zones are chosen from a searchable select (the business's zone and the common ones first), and
catalogue keys left empty are derived from the name."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import text


def _login(client, slug):
    assert client.post("/login/", data={"username": f"ca_{slug}", "password": "password-1"}).status_code == 302
    client.post(f"/switch/{slug}")


def _rows(app, slug, sql):
    from app.extensions import db

    with app.app_context(), db.engine.connect() as conn:
        return conn.execute(text(sql.replace("T.", f'"tenant_{slug}".'))).all()


def _options(page: str, name: str) -> list[str]:
    select = re.search(rf'<select[^>]*name="{name}"[^>]*>(.*?)</select>', page, re.S)
    assert select, f"no select named {name}"
    return re.findall(r'<option[^>]*value="([^"]*)"', select.group(1))


def test_location_zone_is_a_select_preset_from_the_business_with_common_zones_first(app, client, agency_business):
    slug = agency_business
    _login(client, slug)
    zone = "Europe/Berlin"  # the minimal setup's business zone
    form = client.get("/locationview/add").get_data(as_text=True)
    assert '<input' not in re.search(r'(<[^>]*name="timezone"[^>]*>)', form).group(1)
    options = _options(form, "timezone")
    assert options[0] == zone and options.index("Europe/Vienna") < 20 and options.index("America/New_York") < 30
    assert "Pacific/Auckland" in options and len(options) == len(set(options)) > 300
    assert re.search(r'<option selected value="Europe/Berlin"|<option value="Europe/Berlin" selected|selected[^>]*value="Europe/Berlin"', form)
    assert "my_select2" in form  # searchable through FAB's local select2, no CDN
    # A name typed by hand is refused at the field, with the nearest IANA name offered.
    refused = client.post("/locationview/add", data={"name": "Annex", "timezone": "Vienna"}).get_data(as_text=True)
    assert "did you mean Europe/Vienna?" in refused and 'aria-describedby="timezone-error"' in refused
    assert client.post("/locationview/add", data={"name": "Annex", "timezone": "Europe/Vienna"}).status_code == 302
    assert ("annex", "Europe/Vienna") in [tuple(r) for r in _rows(app, slug, "SELECT key, timezone FROM T.location")]


def test_business_and_customer_forms_offer_the_zone_select(app, client, agency_business):
    slug = agency_business
    assert client.post("/login/", data={"username": f"ow_{slug}", "password": "password-1"}).status_code == 302
    client.post(f"/switch/{slug}")
    business = client.get("/tenantview/add").get_data(as_text=True)
    assert "Europe/Vienna" in _options(business, "timezone")
    customer = client.get("/customerview/add").get_data(as_text=True)
    assert _options(customer, "timezone")[0] == ""  # optional: an empty choice first
    assert client.post("/customerview/add", data={"name": "No Zone", "email": "nz@example.com"}).status_code == 302


@pytest.mark.parametrize("view, table, data", [
    ("locationview", "location", {"name": "Zürich Süd & Co.", "timezone": "Europe/Zurich"}),
    ("categoryview", "category", {"name": "Zürich Süd & Co.", "position": "0"}),
    ("serviceview", "service", {"name": "Zürich Süd & Co.", "duration_min": "30", "capacity": "1", "meeting": "none",
                                "max_advance_days": "60", "min_notice_min": "0", "buffer_before_min": "0", "buffer_after_min": "0",
                                "cancel_window_min": "0", "reschedule_window_min": "0", "all_locations": "y"}),
    ("staffview", "staff", {"name": "Zürich Süd & Co."}),
])
def test_an_empty_key_is_derived_from_the_name_and_kept_unique(app, client, agency_business, view, table, data):
    slug = agency_business
    _login(client, slug)
    form = client.get(f"/{view}/add").get_data(as_text=True)
    assert "Leave empty to derive it from the name." in form
    for _ in range(2):
        response = client.post(f"/{view}/add", data={**data, "key": ""})
        assert response.status_code == 302, response.get_data(as_text=True)[-3000:]
    keys = [r[0] for r in _rows(app, slug, f"SELECT key FROM T.{table} WHERE name = 'Zürich Süd & Co.' ORDER BY id")]
    assert keys == ["zurich-sud-co", "zurich-sud-co-2"]
    # A typed key still follows the rule, and its message is shown before saving is tried again.
    bad = client.post(f"/{view}/add", data={**data, "key": "Bad Key"}).get_data(as_text=True)
    assert "lower-case letters, digits" in bad


@pytest.mark.browser
def test_zone_is_searched_by_typing_in_the_browser_and_the_form_is_accessible(app, live_server, agency_business, page):
    from admin_browser_support import sign_in
    from axe_support import assert_accessible

    slug = agency_business
    errors = []
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    sign_in(page, live_server, f"ca_{slug}", business=slug)
    page.goto(f"{live_server}/locationview/add")
    assert_accessible(page, "location form")
    page.fill("#name", "Vienna studio")
    page.click("#timezone + .select2 .select2-selection")
    page.locator(".select2-search__field").fill("vienna")
    shown = page.locator("li.select2-results__option[role=option]")
    assert shown.count() == 1 and shown.inner_text() == "Europe/Vienna"  # the search narrows 400 names to one
    page.keyboard.press("Enter")
    page.click("main form button[type=submit]")
    page.wait_for_load_state()
    assert not [e for e in errors if "Content Security Policy" in e], errors
    assert ("vienna-studio", "Europe/Vienna") in [tuple(r) for r in _rows(app, slug, "SELECT key, timezone FROM T.location")]
