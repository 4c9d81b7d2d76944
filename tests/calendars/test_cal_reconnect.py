"""CalDAV reconnect in place: a new URL / user / app password for an existing connection (admin and CLI),
checked against the server first; a connection that needed a reconnect is active again afterwards."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from zoneinfo import ZoneInfo

from cal_helpers import book, drain_outbox, slots, staff_id, tenant_do, weekday_at
from test_cal_caldav import _events

BERLIN = ZoneInfo("Europe/Berlin")
UTC = dt.timezone.utc


def _iso(value: dt.datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _conn(app, slug, conn_id):
    from app.models.calendar_sync import CalendarConnection

    return tenant_do(app, slug, lambda s, _r: s.get(CalendarConnection, conn_id))


def _needs_reconnect(app, slug, conn_id):
    """What a 401 from the server does (Radicale here logs anyone in, so the refusal is recorded directly)."""
    from app.services import calendar_sync as cal

    def go(session, _ref):
        cal.mark_reconnect(session, cal.connection_for(session, conn_id), "401 Unauthorized",
                           dt.datetime.now(UTC))

    tenant_do(app, slug, go)
    assert _conn(app, slug, conn_id).status == "needs_reconnect"


def test_cli_changes_user_and_password_in_place_and_the_connection_works_again(app, client, cal_tenant, radicale,
                                                                               cal_config):
    slug = cal_tenant
    runner = app.test_cli_runner()
    user_a, _url_a, cal_a = radicale.account()
    r = runner.invoke(args=["calendars", "connect-caldav", slug, "--staff", "ann", "--url", radicale.url,
                            "--username", user_a, "--password", "old-pass"])
    assert r.exit_code == 0, r.output
    conn_id = json.loads(r.output)["id"]
    day = weekday_at(12, weekday=1)
    start = dt.datetime.combine(day, dt.time(10), BERLIN)
    appt = book(client, slug, _iso(start))["appointment"]["id"]
    drain_outbox(app, slug)
    assert len(_events(cal_a)) == 1
    _needs_reconnect(app, slug, conn_id)
    before = _conn(app, slug, conn_id)

    # Refused values change nothing: the connection still waits for a reconnect, with its old values.
    r = runner.invoke(args=["calendars", "reconnect-caldav", slug, str(conn_id), "--url", "ftp://x"])
    assert r.exit_code != 0 and "must start with http" in r.output
    r = runner.invoke(args=["calendars", "reconnect-caldav", slug, str(conn_id), "--url", "http://127.0.0.1:9/"])
    assert r.exit_code != 0 and "could not be read" in r.output
    r = runner.invoke(args=["calendars", "reconnect-caldav", slug, str(conn_id)])
    assert r.exit_code != 0
    r = runner.invoke(args=["calendars", "reconnect-caldav", slug, "999999", "--password", "x"])
    assert r.exit_code != 0 and "no such calendar connection" in r.output
    after = _conn(app, slug, conn_id)
    assert (after.status, after.url, after.account, after.secret_enc) == (
        "needs_reconnect", before.url, before.account, before.secret_enc)

    # Another account on the same server (a new user and app password): its "Work" calendar is found by name.
    user_b, _url_b, cal_b = radicale.account()
    r = runner.invoke(args=["calendars", "reconnect-caldav", slug, str(conn_id), "--username", user_b,
                            "--password", "new-pass"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.output)
    assert out["status"] == "active" and out["account"] == user_b and out["target_calendar"] == "Work"
    conn = _conn(app, slug, conn_id)
    assert conn.target_calendar != before.target_calendar and "new-pass" not in conn.secret_enc
    assert conn.failing_since is None and conn.last_error is None

    # One sync pass: our booking is written into the new calendar, and the new calendar's events block.
    busy = dt.datetime.combine(day, dt.time(14), BERLIN)
    cal_b.save_event(dtstart=busy, dtend=busy + dt.timedelta(hours=1), summary="Physio",
                     uid=f"foreign-{uuid.uuid4().hex}")
    assert _iso(busy) in slots(client, slug, day)
    r = runner.invoke(args=["calendars", "sync", slug])
    assert r.exit_code == 0, r.output
    uids = sorted(str(e["UID"]) for e in _events(cal_b))
    assert len(uids) == 2 and uids[0] == f"appt-{appt}@{slug}.upzento" and uids[1].startswith("foreign-")
    assert _iso(busy) not in slots(client, slug, day)
    rows = json.loads(runner.invoke(args=["calendars", "health", slug]).output)
    assert [(x["id"], x["status"], x["pending"], x["failed"]) for x in rows] == [(conn_id, "active", 0, 0)]


def test_admin_reconnects_caldav_in_place_and_other_businesses_ids_are_404(app, client, agency_business, make_tenant,
                                                                           radicale, cal_config):
    from app.services import calendar_sync as cal
    from test_cal_admin_hooks import _login

    slug = agency_business
    sid = staff_id(app, slug)
    user, _url, _calendar = radicale.account()
    conn_id = tenant_do(app, slug, lambda s, _r: cal.connect_caldav(
        s, owner_kind="staff", staff_id=sid, url=radicale.url, username=user, password="old-pass").id)
    _needs_reconnect(app, slug, conn_id)
    _login(client, f"ca_{slug}", slug)
    page = client.get("/calendar-connections/").get_data(as_text=True)
    assert f'action="/calendar-connections/{conn_id}/caldav"' in page and "old-pass" not in page

    r = client.post(f"/calendar-connections/{conn_id}/caldav", data={"url": "http://127.0.0.1:9/", "password": ""})
    assert r.status_code == 302
    assert "could not be read" in client.get("/calendar-connections/").get_data(as_text=True)
    assert _conn(app, slug, conn_id).status == "needs_reconnect"

    r = client.post(f"/calendar-connections/{conn_id}/caldav", data={"url": radicale.url, "password": ""})
    assert r.status_code == 302
    conn = _conn(app, slug, conn_id)
    assert conn.status == "active" and conn.account == user
    assert tenant_do(app, slug, lambda _s, _r: cal.secret_of(conn)) == {"password": "old-pass"}  # empty: kept
    # Another business's admin cannot reach this connection.
    other = make_tenant()
    from app.extensions import db
    from app.services.people import create_user_with_role

    with app.app_context():
        create_user_with_role(db.session, username=f"ca_{other}", email=f"ca_{other}@x.org", password="password-1",
                              role="Client Admin", tenant_slug=other)
        db.session.commit()
    client.get("/logout/")
    _login(client, f"ca_{other}", other)
    assert client.post(f"/calendar-connections/{conn_id}/caldav", data={"password": "x"}).status_code == 404
