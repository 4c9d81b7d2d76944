"""One public tenant resolver (app.tenancy.public_tenant) and one public catalogue read model
(app.services.public_catalogue) behind the public API, the widget frame and the portal."""

from __future__ import annotations

import json
import re

import pytest
from sqlalchemy import text


def _set_status(app, slug: str, status: str) -> None:
    from app.extensions import db
    from app.models.public import Tenant
    from app.uow import run_unit

    with app.app_context():
        def change():
            db.session.query(Tenant).filter_by(slug=slug).one().status = status

        run_unit(change)


def _answers(client, slug: str, public_id: str) -> dict[str, int]:
    return {
        "api": client.get(f"/api/v1/public/{slug}/services").status_code,
        "frame": client.get(f"/widget/v1/{slug}/{public_id}/frame").status_code,
        "portal": client.get(f"/portal/{slug}/").status_code,
    }


@pytest.mark.parametrize("status, expected", [("active", 200), ("suspended", 403), ("provisioning", 404)])
def test_api_frame_and_portal_follow_one_rule_for_the_tenant_status(app, client, widget_tenant, status, expected):
    slug, public_id = widget_tenant()
    _set_status(app, slug, status)
    try:
        assert _answers(client, slug, public_id) == {"api": expected, "frame": expected, "portal": expected}
    finally:
        _set_status(app, slug, "active")


def test_an_unknown_business_is_404_everywhere(client):
    assert _answers(client, "no_such_business", "nope") == {"api": 404, "frame": 404, "portal": 404}


def test_a_suspended_business_says_so_in_the_frame_and_the_api(app, client, widget_tenant):
    slug, public_id = widget_tenant()
    _set_status(app, slug, "suspended")
    try:
        api = client.get(f"/api/v1/public/{slug}/services").get_json()["error"]
        frame = client.get(f"/widget/v1/{slug}/{public_id}/frame").get_data(as_text=True)
    finally:
        _set_status(app, slug, "active")
    assert api["code"] == "tenant_suspended"
    assert api["message"] in frame


def _frame_data(client, slug, public_id) -> dict:
    page = client.get(f"/widget/v1/{slug}/{public_id}/frame").get_data(as_text=True)
    raw = re.search(r'<script[^>]*id="upz-data"[^>]*>(.*?)</script>', page, re.S)
    assert raw, page[:500]
    return json.loads(raw.group(1))


def test_the_api_and_the_frame_read_one_catalogue_and_see_an_edit_at_once(app, client, widget_tenant):
    from app.extensions import db

    slug, public_id = widget_tenant()
    api = client.get(f"/api/v1/public/{slug}/services").get_json()["services"]
    frame = _frame_data(client, slug, public_id)
    assert [s["key"] for s in api] == [s["key"] for s in frame["services"]]
    for a, f in zip(api, frame["services"]):
        assert (a["name"], a["duration_min"], a["price"], a["locations"], a["staff"]) == \
               (f["name"], f["duration_min"], f["price"], f["locations"], f["staff"])
    staff = client.get(f"/api/v1/public/{slug}/staff").get_json()["staff"]
    assert [s["key"] for s in staff] == [s["key"] for s in frame["staff"]]
    locations = client.get(f"/api/v1/public/{slug}/locations").get_json()["locations"]
    assert locations == frame["locations"]

    # A rule edit bumps the rules version: both answers change on the next request.
    first = api[0]["key"]
    with app.app_context(), db.engine.begin() as conn:
        conn.execute(text(f'UPDATE "tenant_{slug}".service SET name = :n WHERE key = :k'), {"n": "Renamed", "k": first})
    assert client.get(f"/api/v1/public/{slug}/services").get_json()["services"][0]["name"] == "Renamed"
    assert _frame_data(client, slug, public_id)["services"][0]["name"] == "Renamed"
