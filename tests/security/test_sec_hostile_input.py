"""Items 13 and 14: hostile input is a 4xx with the error shape, never a 500; bodies are capped."""

from __future__ import annotations

import json

import pytest

WEIRD_DATES = ["0001-01-01", "9999-12-31", "0001-01-01T00:00:00Z", "9999-12-31T23:59:59Z", "2027-02-30", "x"]


@pytest.fixture(scope="module")
def shop(app):
    import uuid

    from app.extensions import db
    from app.services.people import create_user_with_role
    from app.services.setup_io import import_setup
    from support import minimal_setup

    setup = minimal_setup()
    setup["tenant"]["slug"] = slug = f"hostile_{uuid.uuid4().hex[:8]}"
    with app.app_context():
        import_setup(db.engine, setup, "test-agency")
        create_user_with_role(db.session, username=f"ca_{slug}", email=f"ca_{slug}@x.org", password="password-1",
                              role="Client Admin", tenant_slug=slug)
        db.session.commit()
    return slug


def _ok(response, url):
    assert 400 <= response.status_code < 500, (url, response.status_code, response.get_data(as_text=True)[:300])


def _shape(response, url):
    _ok(response, url)
    body = response.get_json(silent=True)
    assert body and set(body["error"]) >= {"code", "message", "field"}, (url, response.get_data(as_text=True)[:300])


def test_public_api_dates_nul_and_deep_json(app, shop, ip_client):
    client = ip_client()
    base = f"/api/v1/public/{shop}"
    for value in WEIRD_DATES:
        url = f"{base}/availability?service=visit&from={value}&to={value}"
        _shape(client.get(url), url)
        url = f"{base}/availability?service=visit&from=2027-01-11&to={value}"
        _shape(client.get(url), url)
        booking = {"service": "visit", "start": value, "customer": {"name": "A", "email": "a@example.com"}}
        _shape(client.post(f"{base}/bookings", json=booking), f"POST bookings start={value}")
    for url in (f"{base}/services?x=a%00b", f"{base}/availability?service=vi%00sit&from=2027-01-11&to=2027-01-12"):
        _shape(client.get(url), url)
    nul = {"service": "visit", "start": "2027-01-11T10:00:00Z", "customer": {"name": "A\u0000B", "email": "a@example.com"}}
    _shape(client.post(f"{base}/bookings", json=nul), "NUL in JSON")
    deep = "[" * 100_000 + "]" * 100_000
    _shape(client.post(f"{base}/bookings", data=deep, content_type="application/json"), "deep JSON")
    huge = json.dumps({"service": "visit", "notes": "x" * 200_000})
    response = client.post(f"{base}/bookings", data=huge, content_type="application/json")
    assert response.status_code == 413, response.status_code
    _shape(response, "huge public body")
    # An error that echoes input never echoes much of it.
    long_key = "k" * 5000
    response = client.get(f"{base}/availability?service={long_key}&from=2027-01-11&to=2027-01-12")
    _shape(response, "long key")
    assert len(response.get_data()) < 1500


def test_rest_api_paging_and_rison(app, shop, api_key, ip_client):
    client = ip_client()
    headers = {"Authorization": f"Bearer {api_key(shop)}"}
    for q in ["(page:-1,page_size:10)", "(page:0,page_size:-5)", "(page:0,page_size:100000000)",
              "(page:99999999999999999999,page_size:10)", "(filters:!((col:name,opr:sw,value:", "((((", "(page:'x')",
              "(order_column:nope,order_direction:asc)", "(order_column:name,order_direction:sideways)",
              "(filters:!((col:nope,opr:eq,value:1)))", "(columns:!(nope))"]:
        url = f"/api/v1/locations/?q={q}"
        response = client.get(url, headers=headers)
        assert response.status_code < 500, (url, response.status_code)
        if response.status_code >= 400:
            _shape(response, url)
    for url in ("/api/v1/locations/0", "/api/v1/locations/-1", "/api/v1/locations/99999999999999999999",
                "/api/v1/locations/abc"):
        assert 400 <= client.get(url, headers=headers).status_code < 500, url
    response = client.post("/api/v1/locations/", json={"key": "a\u0000", "name": "N", "timezone": "Europe/Berlin"},
                           headers=headers)
    _shape(response, "REST NUL")
    response = client.post("/api/v1/time_off/", json={"staff": 1, "start": "0001-01-01T00:00:00", "end": "9999-12-31T23:59:59"},
                           headers=headers)
    assert response.status_code < 500, response.get_data(as_text=True)[:300]


def test_admin_list_paging_and_ordering(app, shop, ip_client, sign_in):
    client = sign_in(ip_client(), f"ca_{shop}")
    for query in ["psize_LocationView=-1", "psize_LocationView=abc", "page_LocationView=-3", "page_LocationView=abc",
                  "page_LocationView=99999999999999999999", "psize_LocationView=100000000",
                  "_oc_LocationView=nope&_od_LocationView=asc", "_oc_LocationView=name&_od_LocationView=sideways",
                  "_flt_0_name=a%00b", "_flt_99_name=x", "_flt_0_nope=x"]:
        url = f"/locationview/list/?{query}"
        response = client.get(url)
        assert response.status_code < 500, (url, response.status_code)
    for url in ("/locationview/show/abc", "/locationview/show/99999999999999999999", "/appointmentview/show/not-a-uuid"):
        assert client.get(url).status_code in (302, 400, 404), url
    for url in ("/desk/?week=0001-01-01", "/desk/?week=9999-12-31", "/desk/?week=x"):
        assert client.get(url).status_code < 500, url
