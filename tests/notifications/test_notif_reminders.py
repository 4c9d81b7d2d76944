"""Reminders with a controlled clock: once per offset, moved by a reschedule, never after cancel, two workers."""

from __future__ import annotations

import datetime as dt

from notif_db_helpers import booking_body, deliveries, utc, wait_until

START = "2027-01-11T08:00:00Z"      # Monday 09:00 Berlin
MOVED = "2027-01-12T08:00:00Z"      # Tuesday 09:00 Berlin
MINUTE = dt.timedelta(minutes=1)


def _book(client, slug, start=START, email="eve@example.com"):
    response = client.post(f"/api/v1/public/{slug}/bookings", json=booking_body(
        start=start, customer={"name": "Eve Example", "email": email}))
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def _scan(app, slug, now):
    from app.jobs.periodic import scan_tenant_reminders

    with app.app_context():
        return scan_tenant_reminders(slug, now)


def _reminders(app, slug):
    return [(r["offset_min"], r["status"]) for r in deliveries(app, slug, "kind = 'reminder'")]


def test_reminders_follow_reschedule_and_go_once_per_offset(app, client, notif_tenant, smtp, notif):
    booked = _book(client, notif_tenant)
    moved = client.post(f"/api/v1/public/{notif_tenant}/bookings/{booked['manage_token']}/reschedule",
                        json={"start": MOVED})
    assert moved.status_code == 200, moved.get_json()

    assert _scan(app, notif_tenant, utc(START) - dt.timedelta(hours=24) + MINUTE) == []  # the old time
    assert _scan(app, notif_tenant, utc(MOVED) - dt.timedelta(hours=25)) == []
    assert len(_scan(app, notif_tenant, utc(MOVED) - dt.timedelta(hours=24) + MINUTE)) == 1
    assert _scan(app, notif_tenant, utc(MOVED) - dt.timedelta(hours=24) + 2 * MINUTE) == []  # once
    [first] = smtp.wait_for(1)
    assert first.message["Subject"].startswith("Reminder:")
    assert "Tuesday, January 12, 2027" in first.message.get_body(("plain",)).get_content()

    assert len(_scan(app, notif_tenant, utc(MOVED) - dt.timedelta(hours=2) + MINUTE)) == 1
    assert _scan(app, notif_tenant, utc(MOVED) - dt.timedelta(minutes=30)) == []
    assert _reminders(app, notif_tenant) == [(1440, "sent"), (120, "sent")]
    assert len(smtp.wait_for(2)) == 2


def test_cancelled_appointment_never_gets_a_reminder(app, client, notif_tenant, smtp, notif):
    booked = _book(client, notif_tenant)
    assert client.post(f"/api/v1/public/{notif_tenant}/bookings/{booked['manage_token']}/cancel",
                       json={}).status_code == 200
    for hours in (24, 2):
        assert _scan(app, notif_tenant, utc(START) - dt.timedelta(hours=hours) + MINUTE) == []
    assert deliveries(app, notif_tenant, "kind = 'reminder'") == [] and smtp.messages == []


def test_reminder_planned_then_cancelled_or_moved_before_sending_is_not_sent(app, client, notif_tenant, smtp, notif):
    from app.jobs.notify import deliver
    from app.jobs.periodic import scan_tenant_reminders

    first = _book(client, notif_tenant)
    second = _book(client, notif_tenant, start="2027-01-11T10:00:00Z", email="bob@example.com")
    now = utc(START) - dt.timedelta(hours=2) + MINUTE
    with app.app_context():
        planned = scan_tenant_reminders(notif_tenant, now, send=False)
    assert len(planned) == 2
    assert client.post(f"/api/v1/public/{notif_tenant}/bookings/{first['manage_token']}/cancel",
                       json={}).status_code == 200
    assert client.post(f"/api/v1/public/{notif_tenant}/bookings/{second['manage_token']}/reschedule",
                       json={"start": "2027-01-13T10:00:00Z"}).status_code == 200
    with app.app_context():
        assert sorted(deliver(notif_tenant, i, now=now) for i in planned) == ["moved", "skipped"]
    assert _reminders(app, notif_tenant) == [(120, "skipped")]
    assert smtp.messages == []


def test_two_workers_scanning_at_once_send_each_reminder_once(app, client, notif_tenant, smtp, workers):
    from app.queueing import queue

    starts = [f"2027-01-11T{h:02d}:00:00Z" for h in (8, 9, 10, 11, 12)]
    for i, start in enumerate(starts):
        _book(client, notif_tenant, start=start, email=f"c{i}@example.com")
    now = (utc(starts[0]) - dt.timedelta(hours=2) + MINUTE).isoformat()
    with app.app_context():
        q = queue("notifications")
        jobs = [q.enqueue("app.jobs.periodic.scan_reminders", now, [notif_tenant]) for _ in range(4)]
    workers.start(2)
    # Each scan finds the 2 h reminder of the first (its 24 h one is superseded) and the 24 h ones of the others.
    wait_until(lambda: all(j.get_status(refresh=True) == "finished" for j in jobs), timeout=30)
    rows = deliveries(app, notif_tenant, "kind = 'reminder'")
    assert sorted(r["offset_min"] for r in rows) == [120] + [1440] * 4
    assert {r["status"] for r in rows} == {"sent"}
    assert sum(j.return_value() for j in jobs) == 5  # the unique key let each in exactly once
    wait_until(lambda: len(smtp.messages) >= 5)
    assert sorted(r.rcpt_tos[0] for r in smtp.messages) == [f"c{i}@example.com" for i in range(5)]


def test_customer_who_turned_email_reminders_off_gets_none(app, client, notif_tenant, smtp, notif):
    from sqlalchemy import text

    from app.extensions import db

    _book(client, notif_tenant)
    with app.app_context(), db.engine.begin() as conn:
        conn.execute(text(f'INSERT INTO "tenant_{notif_tenant}".notification_preference (customer_id, email_reminders,'
                          f' updated_at) SELECT id, false, now() FROM "tenant_{notif_tenant}".customer'))
    assert _scan(app, notif_tenant, utc(START) - dt.timedelta(hours=2) + MINUTE) == []
    assert smtp.messages == []
