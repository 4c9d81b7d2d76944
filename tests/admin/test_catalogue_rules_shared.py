"""One catalogue rule, one message: the same bad value through the REST API, the admin form and the
setup importer is refused with the same text (app.services.catalogue_rules), and the database's
constraint names map to those fields and messages."""

from __future__ import annotations

import html
import json

import pytest
from sqlalchemy import text
from support import minimal_setup

from app.services import catalogue_rules as rules

SERVICE_FORM = {"name": "Cut", "key": "cut", "duration_min": "30", "price": "20", "buffer_before_min": "5",
                "buffer_after_min": "5", "slot_interval_min": "15", "min_notice_min": "60", "max_advance_days": "90",
                "capacity": "1", "meeting": "none", "cancel_window_min": "60", "reschedule_window_min": "60"}
SERVICE_JSON = {"key": "cut", "name": "Cut", "duration_min": 30, "price": "20", "buffer_before_min": 5,
                "buffer_after_min": 5, "capacity": 1}

# rule -> (resource, field, bad value as JSON, as typed in the form, as written in a setup file, the expected message)
CASES = {
    "key format": ("locations", "key", "Bad Key!", "Bad Key!", "Bad Key!", rules.KEY_MESSAGE),
    "duration": ("services", "duration_min", 2, "2", 2, rules.DURATION_MESSAGE),
    "price": ("services", "price", "-5", "-5", "-5", rules.PRICE_MESSAGE),
    "time zone": ("locations", "timezone", "Mars/Base", "Mars/Base", "Mars/Base", rules.zone_message("Mars/Base")),
    "buffer below range": ("services", "buffer_before_min", -5, "-5", -5, rules.BUFFER_MESSAGE),
    "buffer above range": ("services", "buffer_after_min", 2000, "2000", 2000, rules.BUFFER_MESSAGE),
    "hours start before end": ("staff_hours", "end_min", 540, "09:00", "09:00", rules.SPAN_MESSAGE),
}


def _bearer(secret: str) -> dict:
    return {"Authorization": f"Bearer {secret}"}


@pytest.fixture()
def business(app, client, make_tenant, make_api_key, make_user, login):
    """(slug, API headers, admin client, staff id, location id) of a fresh business."""
    slug = make_tenant()
    headers = _bearer(make_api_key(slug))
    admin = app.test_client()
    login(admin, make_user("Client Admin", tenant=slug))
    from app.extensions import db

    with app.app_context(), db.engine.connect() as conn:
        staff = conn.execute(text(f'SELECT id FROM "tenant_{slug}".staff')).scalar()
        location = conn.execute(text(f'SELECT id FROM "tenant_{slug}".location')).scalar()
    return slug, headers, admin, staff, location


def _api_message(client, headers, resource, field, value, staff, location):
    if resource == "locations":
        body = {"key": "annex", "name": "Annex", "timezone": "Europe/Paris", field: value}
    elif resource == "services":
        body = {**SERVICE_JSON, field: value}
    else:
        body = {"staff": staff, "location": location, "weekday": 5, "start_min": 600, field: value}
    response = client.post(f"/api/v1/{resource}/", headers=headers, json=body)
    assert response.status_code == 422, response.get_data(as_text=True)
    error = response.get_json()["error"]
    assert error["field"] == field
    return error["message"]


def _admin_page(admin, resource, field, value, staff, location):
    if resource == "locations":
        url, form = "/locationview/add", {"name": "Annex", "key": "annex", "timezone": "Europe/Paris", field: value}
    elif resource == "services":
        url, form = "/serviceview/add", {**SERVICE_FORM, field: value}
    else:
        url, form = "/staffhoursview/add", {"staff": staff, "location": location, "weekday": 5, "start_min": "10:00",
                                            field: value}
    response = admin.post(url, data=form)
    # A refused form is shown again (200) with the field's error; nothing is saved (no redirect).
    assert response.status_code == 200, response.status_code
    return html.unescape(response.get_data(as_text=True))


def _import_errors(value_path, value) -> dict[str, str]:
    from app.services.setup_io import validate

    doc = json.loads(json.dumps(minimal_setup()))
    target = doc
    for part in value_path[:-1]:
        target = target[part]
    target[value_path[-1]] = value
    return {e.path: e.message for e in validate(doc)}


FILE_PATHS = {
    "key format": (["locations", 0, "key"], "$.locations[0].key"),
    "duration": (["services", 0, "duration_min"], "$.services[0].duration_min"),
    "price": (["services", 0, "price"], "$.services[0].price"),
    "time zone": (["locations", 0, "timezone"], "$.locations[0].timezone"),
    "buffer below range": (["services", 0, "buffer_before_min"], "$.services[0].buffer_before_min"),
    "buffer above range": (["services", 0, "buffer_after_min"], "$.services[0].buffer_after_min"),
    "hours start before end": (["staff", 0, "hours", 0, "end"], "$.staff[0].hours[0]"),
}


@pytest.mark.parametrize("rule", sorted(CASES))
def test_the_same_bad_value_gets_the_same_message_in_api_admin_and_importer(app, client, business, rule):
    slug, headers, admin, staff, location = business
    resource, field, as_json, as_form, in_file, expected = CASES[rule]

    api = _api_message(client, headers, resource, field, as_json, staff, location)
    page = _admin_page(admin, resource, field, as_form, staff, location)
    value_path, json_path = FILE_PATHS[rule]
    errors = _import_errors(value_path, in_file)

    assert api == expected
    assert expected in page
    assert errors.get(json_path) == expected, errors


def test_a_good_value_passes_all_three(app, client, business):
    slug, headers, admin, staff, location = business
    assert client.post("/api/v1/services/", headers=headers, json=SERVICE_JSON).status_code == 201
    assert admin.post("/serviceview/add", data={**SERVICE_FORM, "key": "cut2"}).status_code == 302
    assert _import_errors(["services", 0, "price"], "25.50") == {}


def test_a_duplicate_key_is_a_field_error_with_the_constraint_message(app, client, business):
    slug, headers, admin, staff, location = business
    taken = client.post("/api/v1/categories/", headers=headers, json={"key": "hair", "name": "Hair"})
    assert taken.status_code == 201
    again = client.post("/api/v1/categories/", headers=headers, json={"key": "hair", "name": "Hair again"})
    assert again.status_code == 422
    assert again.get_json()["error"] == {"code": "duplicate", "message": rules.DUPLICATE_MESSAGE, "field": "key"}
    page = admin.post("/categoryview/add", data={"name": "Hair again", "key": "hair", "position": "1"})
    assert page.status_code == 200 and rules.DUPLICATE_MESSAGE in html.unescape(page.get_data(as_text=True))


def test_every_catalogue_check_constraint_has_a_field_and_message(app, make_tenant):
    """A new CHECK on a catalogue table needs its entry in catalogue_rules.CONSTRAINTS."""
    from app.extensions import db

    slug = make_tenant()
    with app.app_context(), db.engine.connect() as conn:
        names = set(conn.execute(text(
            "SELECT c.conname FROM pg_constraint c JOIN pg_class t ON t.oid = c.conrelid "
            "JOIN pg_namespace n ON n.oid = t.relnamespace WHERE n.nspname = :schema AND c.contype = 'c' "
            "AND t.relname IN ('service', 'location_hours', 'staff_hours', 'staff_break', 'time_off')"),
            {"schema": f"tenant_{slug}"}).scalars())
    assert "ck_service_duration" in names and "ck_staff_hours_span" in names
    assert names <= set(rules.CONSTRAINTS), names - set(rules.CONSTRAINTS)
    for name in names:
        code, field, message = rules.constraint_rule(name)
        assert code == "invalid" and field and message


@pytest.mark.parametrize("value, ok", [("0", True), ("25", True), ("25.5", True), ("25.50", True), ("-1", False),
                                       ("1.234", False), ("abc", False), ("NaN", False), ("100000000", False),
                                       (True, False), (None, True)])
def test_price_rule(value, ok):
    if ok:
        rules.check_price(value)
    else:
        with pytest.raises(rules.RuleError, match="price is an amount"):
            rules.check_price(value)


def test_constraint_names_map_to_fields():
    assert rules.constraint_rule("uq_customer_email_lower") == ("duplicate", "email", rules.DUPLICATE_MESSAGE)
    assert rules.constraint_rule("uq_staff_key") == ("duplicate", "key", rules.DUPLICATE_MESSAGE)
    assert rules.constraint_rule("ck_service_buffers") == ("invalid", "buffer_before_min", rules.BUFFER_MESSAGE)
    assert rules.constraint_rule("fk_staff_hours_staff_id_staff")[0] == "invalid"
    assert rules.constraint_rule("something_else") is None
