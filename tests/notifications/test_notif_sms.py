"""SMS through the fake Twilio API with real workers: body, E.164, retries, status callbacks, STOP."""

from __future__ import annotations

from fakes.twilio import sign
from notif_db_helpers import booking_body, deliveries, relay, wait_until


def _book(client, slug, phone="030 901820"):
    response = client.post(f"/api/v1/public/{slug}/bookings", json=booking_body(customer={
        "name": "Eve Example", "email": "eve@example.com", "phone": phone}))
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def _sms_row(app, slug):
    rows = deliveries(app, slug, "channel = 'sms'")
    return rows[0] if rows and rows[0]["status"] not in ("queued", "sending", "retry") else None


def test_sms_body_number_and_status_callback(app, client, notif_tenant, twilio, smtp, live_server, workers):
    _book(client, notif_tenant)
    relay(app, notif_tenant)
    workers.start(1)
    [request] = twilio.wait_for_requests(1, timeout=20)
    form = request.form
    assert form["To"] == "+4930901820"  # national number read in the tenant's country (Berlin)
    assert form["From"] == "+15005550006"
    assert "Visit" in form["Body"] and "confirmed" in form["Body"]
    assert form["StatusCallback"] == f"{live_server}/hooks/sms/status/{notif_tenant}"
    row = wait_until(lambda: _sms_row(app, notif_tenant))
    assert row["status"] == "sent" and row["provider_id"].startswith("SM") and row["recipient"] == "+4930901820"

    answer = twilio.deliver_status(row["provider_id"], "delivered")
    assert answer.status_code == 204, answer.text
    assert deliveries(app, notif_tenant, "channel = 'sms'")[0]["status"] == "delivered"


def test_sms_retries_on_429_and_5xx_then_sends(app, client, notif_tenant, twilio, smtp, workers):
    twilio.fail_next(429, {"code": 20429, "message": "Too Many Requests"}, method="POST")
    twilio.fail_next(503, "unavailable", method="POST")
    _book(client, notif_tenant)
    relay(app, notif_tenant)
    workers.start(1)
    row = wait_until(lambda: _sms_row(app, notif_tenant), timeout=25)
    assert row["status"] == "sent"
    assert row["attempts"] == 3
    assert [r.status for r in twilio.requests] == [429, 503, 201]


def test_sms_400_is_not_retried_and_marked_failed(app, client, notif_tenant, twilio, smtp, workers):
    twilio.fail_next(400, {"code": 21211, "message": "Invalid 'To' Phone Number"}, method="POST")
    _book(client, notif_tenant)
    relay(app, notif_tenant)
    workers.start(1)
    row = wait_until(lambda: _sms_row(app, notif_tenant), timeout=20)
    assert row["status"] == "failed" and row["attempts"] == 1
    assert "21211" in row["last_error"]
    smtp.wait_for(2, timeout=10)  # the emails still went out
    assert len(twilio.requests) == 1


def test_status_callback_with_a_bad_signature_is_refused(app, client, notif_tenant, notif):
    form = {"MessageSid": "SMx", "MessageStatus": "delivered"}
    response = client.post(f"/hooks/sms/status/{notif_tenant}", data=form, headers={"X-Twilio-Signature": "nope"})
    assert response.status_code == 403
    assert response.get_json()["error"]["code"] == "bad_signature"


def test_inbound_stop_opts_the_customer_out(app, client, notif_tenant, twilio, smtp, notif):
    _book(client, notif_tenant)
    url = f"{app.config['PUBLIC_URL']}/hooks/sms/inbound/{notif_tenant}"
    form = {"From": "+4930901820", "Body": "stop", "To": "+15005550006"}
    response = client.post(f"/hooks/sms/inbound/{notif_tenant}", data=form,
                           headers={"X-Twilio-Signature": sign(twilio.auth_token, url, form)})
    assert response.status_code == 200 and b"<Response>" in response.data
    # The confirmation is planned after the opt-out: e-mail only, no SMS row at all.
    from sqlalchemy import text

    from app.extensions import db
    from app.jobs.notify import handle_event

    with app.app_context():
        with db.engine.connect() as conn:
            event_id = conn.execute(text(f'SELECT id FROM "tenant_{notif_tenant}".outbox_event'
                                             " WHERE event_type = 'appointment.booked'")).scalar()
            opted = conn.execute(text(f'SELECT sms_opt_out FROM "tenant_{notif_tenant}".customer')).scalar()
        assert opted is True
        assert handle_event(notif_tenant, event_id) == 2
    assert sorted(r["channel"] for r in deliveries(app, notif_tenant)) == ["email", "email"]
    assert twilio.requests == []


def test_stop_and_start_are_customer_updated_events_once_per_change(app, client, notif_tenant, twilio, smtp, notif):
    from sqlalchemy import text

    from app.extensions import db

    _book(client, notif_tenant)
    url = f"{app.config['PUBLIC_URL']}/hooks/sms/inbound/{notif_tenant}"

    def reply(body):
        form = {"From": "+4930901820", "Body": body, "To": "+15005550006"}
        response = client.post(f"/hooks/sms/inbound/{notif_tenant}", data=form,
                               headers={"X-Twilio-Signature": sign(twilio.auth_token, url, form)})
        assert response.status_code == 200

    def updates():
        with app.app_context(), db.engine.connect() as conn:
            return [(r.payload["fields"], r.aggregate_id) for r in conn.execute(text(
                f'SELECT payload, aggregate_id FROM "tenant_{notif_tenant}".outbox_event'
                " WHERE event_type = 'customer.updated' ORDER BY id"))]

    reply("STOP")
    reply("stop")     # no change: no second event
    reply("START")
    [(customer_id,)] = [(r[1],) for r in updates()[:1]]
    assert updates() == [(["sms_opt_out"], customer_id), (["sms_opt_out"], customer_id)]
