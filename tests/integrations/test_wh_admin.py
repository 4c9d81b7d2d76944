"""Settings → Webhooks and Settings → Meetings in the admin: add (secret shown once), test event,
delivery page with replay, replay failed; the meetings health list, retry now, encrypted credentials."""

from __future__ import annotations

import re

from sqlalchemy import text

from integ_helpers import book, rows


def _login(client, slug, who="ca"):
    r = client.post("/login/", data={"username": f"{who}_{slug}", "password": "password-1"})
    assert r.status_code == 302


def test_webhooks_page_adds_tests_and_replays(app, client, agency_business, pinned_now, monkeypatch):
    monkeypatch.setenv("WEBHOOK_ALLOW_PRIVATE", "1")
    pinned_now("2027-01-01T00:00:00Z")
    slug = agency_business
    _login(client, slug)
    assert client.get("/settings/webhooks/").status_code == 200
    page = client.post("/settings/webhooks/add", data={"url": "http://127.0.0.1:9/hook", "description": "CRM",
                                                       "events": ["appointment.booked"]}).get_data(as_text=True)
    secret = re.search(r"<code>(whsec_[^<]+)</code>", page).group(1)
    assert "CRM" in page and "appointment.booked" in page
    assert secret not in client.get("/settings/webhooks/").get_data(as_text=True)  # shown once
    # A client admin may not add an agency-wide endpoint.
    client.post("/settings/webhooks/add", data={"url": "http://127.0.0.1:9/other", "scope": "agency"})
    from app.extensions import db

    with app.app_context(), db.engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM agency_webhook_endpoint WHERE url LIKE '%/other'")).scalar() == 0
    # A refused URL keeps the page and says why.
    refused = client.post("/settings/webhooks/add", data={"url": "ftp://x"}, follow_redirects=True)
    assert "only http and https" in refused.get_data(as_text=True)

    [endpoint] = rows(app, slug, "webhook_endpoint")
    assert secret not in endpoint["secret_enc"]  # encrypted at rest
    client.post(f"/settings/webhooks/{endpoint['uid']}/test")
    [delivery] = rows(app, slug, "webhook_delivery")
    assert delivery["event_type"] == "webhook.test"
    shown = client.get(f"/settings/webhooks/deliveries/{delivery['id']}").get_data(as_text=True)
    assert delivery["msg_id"] in shown and "webhook.test" in shown
    with app.app_context(), db.engine.begin() as conn:
        conn.execute(text(f'UPDATE "tenant_{slug}".webhook_delivery SET status = \'failed\', attempts = 8'))
    assert client.post(f"/settings/webhooks/deliveries/{delivery['id']}/replay").status_code == 302
    assert rows(app, slug, "webhook_delivery")[0]["status"] in ("pending", "retry", "delivered")
    with app.app_context(), db.engine.begin() as conn:
        conn.execute(text(f'UPDATE "tenant_{slug}".webhook_delivery SET status = \'failed\', attempts = 8'))
    client.post("/settings/webhooks/replay-failed", data={"since": "2020-01-01 00:00"})
    assert rows(app, slug, "webhook_delivery")[0]["attempts"] == 0
    client.post(f"/settings/webhooks/{endpoint['uid']}/toggle")
    assert rows(app, slug, "webhook_endpoint")[0]["enabled"] is False

    # The agency owner adds one for every business of the agency.
    other = app.test_client()
    _login(other, slug, "ow")
    other.post("/settings/webhooks/add", data={"url": "http://127.0.0.1:9/agency", "scope": "agency"})
    with app.app_context(), db.engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM agency_webhook_endpoint WHERE url LIKE '%/agency'")).scalar() == 1
    assert "/agency" in client.get("/settings/webhooks/").get_data(as_text=True)  # listed to the business too


def test_meetings_page_lists_failed_links_and_stores_credentials_encrypted(app, client, agency_business, pinned_now):
    from app.extensions import db

    pinned_now("2027-01-01T00:00:00Z")
    slug = agency_business
    appointment_id = book(client, slug)["appointment"]["id"]
    with app.app_context(), db.engine.begin() as conn:
        conn.execute(text(f'UPDATE "tenant_{slug}".appointment SET meeting_status = \'failed\', '
                          "meeting_provider = 'zoom', meeting_error = 'Zoom token: HTTP 401' WHERE id = :id"),
                     {"id": appointment_id})
    _login(client, slug)
    page = client.get("/settings/meetings/").get_data(as_text=True)
    assert "Zoom token: HTTP 401" in page and "failed" in page
    r = client.post("/settings/meetings/credentials/zoom", data={
        "level": "business", "account_id": "acc1", "client_id": "cid", "client_secret": "very-secret-value",
        "api_base_url": "https://zoom.internal.example/v2"})
    assert r.status_code == 302
    with app.app_context(), db.engine.connect() as conn:
        stored = conn.execute(text("SELECT data_enc FROM integration_credential WHERE provider = 'zoom' "
                                   "AND tenant_id = (SELECT id FROM tenant WHERE slug = :s)"), {"s": slug}).scalar()
    assert stored and "very-secret-value" not in stored and "acc1" not in stored
    page = client.get("/settings/meetings/").get_data(as_text=True)
    assert "acc1" in page and "very-secret-value" not in page
    with app.app_context():
        from app.models.public import Tenant
        from app.services import meetings

        tenant = db.session.scalar(__import__("sqlalchemy").select(Tenant).where(Tenant.slug == slug))
        creds = meetings.credentials(db.session, "zoom", tenant.id, tenant.agency_id, app.config)
        assert creds["client_secret"] == "very-secret-value" and creds["api_base_url"].startswith("https://zoom.internal")
    # A client admin cannot set the agency's credentials.
    client.post("/settings/meetings/credentials/zoom", data={"level": "agency", "account_id": "x"})
    with app.app_context(), db.engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM integration_credential WHERE agency_id IS NOT NULL "
                                 "AND agency_id = (SELECT agency_id FROM tenant WHERE slug = :s)"),
                            {"s": slug}).scalar() == 0
