"""Outgoing webhooks end to end: booking → outbox → relay → rq worker → a loopback receiver
that verifies every delivery with the independent `standardwebhooks` package."""

from __future__ import annotations

import datetime as dt

from fakes.webhook_receiver import WebhookReceiver
from integ_helpers import MONDAY_0900, book, cli, relay, rows, wait_until


def _add(app, slug, url, *extra):
    result = cli(app, "webhooks", "add", slug, url, *extra)
    assert result.exit_code == 0, result.output
    lines = dict(line.split(" ", 1) for line in result.output.strip().splitlines())
    assert lines["secret"].startswith("whsec_")
    return lines["endpoint"], lines["secret"]


def test_booking_is_delivered_signed_and_retried_with_the_same_id(app, client, make_tenant, pinned_now, integ,
                                                                   integ_workers):
    pinned_now("2027-01-01T00:00:00Z")
    slug = make_tenant()
    with WebhookReceiver() as receiver:
        endpoint, secret = _add(app, slug, receiver.url, "--events", "appointment.booked,appointment.cancelled")
        receiver.secret = secret
        receiver.fail_next(500, "down for a moment", times=1)
        booked = book(client, slug)
        assert relay(app, slug) == 2  # the booking and its new customer (customer.created)
        integ_workers.start(1)
        [got] = wait_until(lambda: receiver.received, timeout=60)
        attempts = [r for r in receiver.requests if r.method == "POST"]
        assert [r.status for r in attempts] == [500, 200]
        assert attempts[0].headers["webhook-id"] == attempts[1].headers["webhook-id"] == got["id"]
        assert receiver.rejected == []

        payload = got["payload"]
        assert payload["type"] == "appointment.booked" and payload["version"] == 1
        assert payload["id"] == got["id"] and payload["tenant"] == slug
        appt = payload["data"]["appointment"]
        assert appt["id"] == booked["appointment"]["id"]
        assert appt["start"] == MONDAY_0900 and appt["service"]["key"] == "visit"
        assert appt["customer"]["email"] == "eve@example.com"

        [log] = wait_until(lambda: [r for r in rows(app, slug, "webhook_delivery") if r["status"] == "delivered"])
        assert log["attempts"] == 2 and log["last_status"] == 200 and log["msg_id"] == got["id"]
        assert log["latency_ms"] is not None and log["request_headers"]["webhook-id"] == got["id"]

        # Replay: the same webhook-id and body again.
        result = cli(app, "webhooks", "replay", slug, log["id"])
        assert result.exit_code == 0, result.output
        wait_until(lambda: len(receiver.received) == 2)
        assert receiver.received[1]["id"] == got["id"] and receiver.received[1]["raw"] == got["raw"]

        # The CLI log lists it; a test event reaches the endpoint too.
        wait_until(lambda: rows(app, slug, "webhook_delivery", "status = 'delivered'"))
        listing = cli(app, "webhooks", "deliveries", slug).output
        assert got["id"] in listing and "delivered" in listing
        assert cli(app, "webhooks", "test", slug, endpoint).exit_code == 0
        wait_until(lambda: len(receiver.received) == 3)
        assert receiver.received[2]["payload"]["type"] == "webhook.test"

        # The filter: the cancellation is heard, the status change is not.
        token = booked["manage_token"]
        assert client.post(f"/api/v1/public/{slug}/bookings/{token}/cancel", json={}).status_code == 200
        with app.app_context():
            from app.extensions import db
            from app.services import events
            from app.tenancy import tenant_session

            with tenant_session(db.engine, slug) as (session, ref):
                events.emit(session, events.STATUS_CHANGED, booked["appointment"]["id"], slug,
                            from_status="confirmed", to_status="cancelled")
        relay(app, slug)
        wait_until(lambda: len(receiver.received) == 4)
        assert receiver.received[3]["payload"]["type"] == "appointment.cancelled"
        assert len([r for r in rows(app, slug, "webhook_delivery")]) == 3  # booked, test, cancelled


def test_events_arrive_in_order_and_rotation_signs_with_both_secrets(app, client, make_tenant, pinned_now, integ,
                                                                     integ_workers):
    pinned_now("2027-01-01T00:00:00Z")
    slug = make_tenant()
    with WebhookReceiver() as new_side, WebhookReceiver() as old_side:
        endpoint, secret = _add(app, slug, new_side.url, "--events", "appointment.booked")
        starts = ["2027-01-11T08:00:00Z", "2027-01-11T09:00:00Z", "2027-01-11T10:00:00Z", "2027-01-11T11:00:00Z"]
        ids = [book(client, slug, start=s, email=f"c{i}@example.com")["appointment"]["id"] for i, s in enumerate(starts)]
        relay(app, slug)
        new_side.secret = secret
        integ_workers.start(2)
        wait_until(lambda: len(new_side.received) == 4, timeout=60)
        assert [p["data"]["appointment"]["id"] for p in new_side.payloads()] == ids

        # Rotate: during the overlap every delivery carries two signatures; either secret verifies.
        result = cli(app, "webhooks", "rotate-secret", slug, endpoint)
        assert result.exit_code == 0, result.output
        new_secret = result.output.split()[-1]
        assert new_secret.startswith("whsec_") and new_secret != secret
        new_side.secret = new_secret
        assert cli(app, "webhooks", "test", slug, endpoint).exit_code == 0
        got = wait_until(lambda: new_side.received[4:], timeout=60)[0]
        assert len(got["signature"].split()) == 2
        old_side.secret = secret
        from standardwebhooks.webhooks import Webhook

        headers = {"webhook-id": got["id"], "webhook-signature": got["signature"],
                   "webhook-timestamp": [r for r in new_side.requests if r.headers.get("webhook-id") == got["id"]][-1]
                   .headers["webhook-timestamp"]}
        assert Webhook(secret).verify(got["raw"], headers)["type"] == "webhook.test"
        assert new_side.rejected == []


def test_exhausted_retries_fail_then_replay_all_failed_delivers(app, client, make_tenant, pinned_now, integ,
                                                                  integ_workers):
    pinned_now("2027-01-01T00:00:00Z")
    slug = make_tenant()
    with WebhookReceiver() as receiver:
        _endpoint, secret = _add(app, slug, receiver.url, "--events", "appointment.booked")
        receiver.secret = secret
        receiver.fail_next(503, "busy", times=4)  # the test schedule allows 4 attempts
        book(client, slug)
        relay(app, slug)
        integ_workers.start(1)
        [row] = wait_until(lambda: [r for r in rows(app, slug, "webhook_delivery") if r["status"] == "failed"],
                           timeout=60)
        assert row["attempts"] == 4 and row["last_status"] == 503 and "busy" in row["response_body"]
        assert "failed" in cli(app, "webhooks", "deliveries", slug, "--failed").output
        since = (dt.datetime.now(dt.timezone.utc) - dt.timedelta(hours=1)).isoformat()
        result = cli(app, "webhooks", "replay", slug, "--all-failed", "--since", since)
        assert result.exit_code == 0, result.output
        [got] = wait_until(lambda: receiver.received, timeout=60)
        assert got["id"] == row["msg_id"]


def test_an_endpoint_failing_too_long_is_disabled_and_owners_told(app, client, agency_business, pinned_now, integ,
                                                                   integ_workers):
    from sqlalchemy import text

    from app.extensions import db

    pinned_now("2027-01-01T00:00:00Z")
    slug = agency_business
    integ["WEBHOOK_DISABLE_AFTER_SECONDS"] = "0.5"
    with WebhookReceiver() as receiver:
        endpoint, secret = _add(app, slug, receiver.url, "--agency")
        receiver.fail_next(500, times=100)
        book(client, slug)
        relay(app, slug)
        integ_workers.start(1)
        with app.app_context():
            def disabled():
                with db.engine.connect() as conn:
                    return conn.execute(text("SELECT enabled, disabled_reason FROM agency_webhook_endpoint "
                                             "WHERE uid = :u"), {"u": endpoint}).one()
            state = wait_until(lambda: (lambda s: s if not s[0] else None)(disabled()), timeout=60)
            assert "disabled automatically" in state[1]
            with db.engine.connect() as conn:
                mails = conn.execute(text("SELECT to_email, subject FROM platform_mail WHERE to_email = :e"),
                                     {"e": f"ow_{slug}@x.org"}).all()
        assert mails and "disabled" in mails[0][1]
        assert "disabled" in cli(app, "webhooks", "list", slug).output
