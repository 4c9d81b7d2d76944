"""REST API for webhook endpoints and deliveries; the appointment's meeting columns in the REST API;
Zoom's webhook endpoint (signature, url_validation, idempotent)."""

from __future__ import annotations

import hashlib
import hmac
import json
import time

from integ_helpers import book


def _key(make_api_key, slug):
    return {"Authorization": f"Bearer {make_api_key(slug)}"}


def test_endpoints_and_deliveries_over_rest(app, client, make_tenant, make_api_key, pinned_now, monkeypatch):
    monkeypatch.setenv("WEBHOOK_ALLOW_PRIVATE", "1")
    pinned_now("2027-01-01T00:00:00Z")
    slug, other = make_tenant(), make_tenant()
    auth, other_auth = _key(make_api_key, slug), _key(make_api_key, other)

    r = client.post("/api/v1/webhooks/endpoints", headers=auth,
                    json={"url": "http://127.0.0.1:9/hook", "events": ["appointment.booked"], "description": "CRM"})
    assert r.status_code == 201, r.get_json()
    created = r.get_json()
    uid, secret = created["endpoint"]["id"], created["secret"]
    assert secret.startswith("whsec_") and created["endpoint"]["events"] == ["appointment.booked"]
    listed = client.get("/api/v1/webhooks/endpoints", headers=auth).get_json()["endpoints"]
    assert [e["id"] for e in listed] == [uid] and "whsec_" not in json.dumps(listed)
    # Another business's key does not see it.
    assert client.get(f"/api/v1/webhooks/endpoints/{uid}", headers=other_auth).status_code == 404
    assert client.get("/api/v1/webhooks/endpoints", headers=other_auth).get_json()["endpoints"] == []

    bad = client.post("/api/v1/webhooks/endpoints", headers=auth, json={"url": "http://127.0.0.1:9/h", "events": ["nope"]})
    assert bad.status_code == 422 and bad.get_json()["error"]["field"] == "events"
    assert client.post("/api/v1/webhooks/endpoints", headers=auth, json={"url": "ftp://x"}).get_json()["error"][
        "field"] == "url"

    r = client.patch(f"/api/v1/webhooks/endpoints/{uid}", headers=auth, json={"enabled": False, "events": []})
    assert r.status_code == 200 and r.get_json()["endpoint"]["enabled"] is False
    rotated = client.post(f"/api/v1/webhooks/endpoints/{uid}/rotate-secret", headers=auth).get_json()["secret"]
    assert rotated.startswith("whsec_") and rotated != secret
    assert client.get(f"/api/v1/webhooks/endpoints/{uid}", headers=auth).get_json()["endpoint"][
        "secret_rotating_until"]

    r = client.post(f"/api/v1/webhooks/endpoints/{uid}/test", headers=auth)
    assert r.status_code == 202, r.get_json()
    delivery = r.get_json()["delivery"]
    assert delivery["event_type"] == "webhook.test" and delivery["status"] == "pending"
    page = client.get("/api/v1/webhooks/deliveries", headers=auth).get_json()
    assert [d["id"] for d in page["deliveries"]] == [delivery["id"]]
    one = client.get(f"/api/v1/webhooks/deliveries/{delivery['id']}", headers=auth).get_json()["delivery"]
    assert one["webhook_id"] == delivery["webhook_id"] and json.loads(one["request"]["body"])["type"] == "webhook.test"
    assert client.get(f"/api/v1/webhooks/deliveries/{delivery['id']}", headers=other_auth).status_code == 404
    assert client.post(f"/api/v1/webhooks/deliveries/{delivery['id']}/replay", headers=auth).status_code == 202
    assert client.post("/api/v1/webhooks/deliveries/replay", headers=auth, json={"since": "yesterday"}).status_code == 422
    assert client.post("/api/v1/webhooks/deliveries/replay", headers=auth, json={}).status_code == 202
    assert client.delete(f"/api/v1/webhooks/endpoints/{uid}", headers=auth).status_code == 200
    assert client.get(f"/api/v1/webhooks/endpoints/{uid}", headers=auth).status_code == 404


def test_rest_appointment_carries_the_meeting_columns(app, client, make_tenant, make_api_key, pinned_now):
    pinned_now("2027-01-01T00:00:00Z")
    slug = make_tenant()
    booked = book(client, slug)
    r = client.get("/api/v1/appointments/", headers=_key(make_api_key, slug))
    assert r.status_code == 200, r.get_json()
    [result] = r.get_json()["result"]
    assert result["id"] == booked["appointment"]["id"]
    assert "meeting" in result  # {provider, status, join_url, passcode, dial_in} or null


def _zoom_post(client, secret, body: dict, ts: int | None = None, signature: str | None = None):
    raw = json.dumps(body)
    ts = ts or int(time.time())
    sig = signature or "v0=" + hmac.new(secret.encode(), f"v0:{ts}:{raw}".encode(), hashlib.sha256).hexdigest()
    return client.post("/hooks/zoom", data=raw, content_type="application/json",
                       headers={"x-zm-request-timestamp": str(ts), "x-zm-signature": sig})


def test_zoom_webhook_verifies_validates_and_ignores_repeats(app, client, monkeypatch):
    secret = "zoom-secret-token"
    monkeypatch.setitem(app.config, "ZOOM_WEBHOOK_SECRET_TOKEN", secret)
    r = _zoom_post(client, secret, {"event": "endpoint.url_validation", "payload": {"plainToken": "qgg8vlvZRS6UYooatFL8Aw"}})
    assert r.status_code == 200
    assert r.get_json() == {"plainToken": "qgg8vlvZRS6UYooatFL8Aw", "encryptedToken": hmac.new(
        secret.encode(), b"qgg8vlvZRS6UYooatFL8Aw", hashlib.sha256).hexdigest()}
    assert _zoom_post(client, secret, {"event": "x"}, signature="v0=deadbeef").status_code == 401
    assert _zoom_post(client, secret, {"event": "x"}, ts=int(time.time()) - 3600).status_code == 401
    event = {"event": "meeting.ended", "event_ts": int(time.time() * 1000), "payload": {"object": {"id": 42}}}
    assert _zoom_post(client, secret, event).get_json() == {"status": "ok"}
    assert _zoom_post(client, secret, event).get_json() == {"status": "duplicate"}
