"""CalDAV two-way sync against a real Radicale server."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from zoneinfo import ZoneInfo

import icalendar
from cal_helpers import book, drain_outbox, slots, staff_id, tenant_do, weekday_at

BERLIN = ZoneInfo("Europe/Berlin")
UTC = dt.timezone.utc


def _connect(app, slug, radicale, **kw):
    from app.services import calendar_sync as cal

    user, cal_url, calendar = radicale.account()
    sid = staff_id(app, slug)

    def go(session, _ref):
        conn = cal.connect_caldav(session, owner_kind="staff", staff_id=sid, url=radicale.url, username=user,
                                  password="app-pass", **kw)
        return conn.id

    return tenant_do(app, slug, go), calendar


def _events(calendar) -> list[icalendar.Event]:
    out = []
    for obj in calendar.get_objects_by_sync_token(load_objects=True).objects:
        if obj.data:
            out.extend(icalendar.Calendar.from_ical(obj.data).walk("VEVENT"))
    return out


def _pull(app, slug, conn_id):
    from app.jobs import calendar_sync as jobs

    with app.app_context():
        return jobs.pull(slug, conn_id)


def test_book_reschedule_cancel_reach_the_caldav_calendar(app, client, cal_tenant, radicale, cal_config):
    slug = cal_tenant
    conn_id, calendar = _connect(app, slug, radicale)
    day = weekday_at(14)
    start = dt.datetime.combine(day, dt.time(10, 0), BERLIN).astimezone(UTC)
    booked = book(client, slug, start.strftime("%Y-%m-%dT%H:%M:%SZ"))
    appt_id = booked["appointment"]["id"]
    assert drain_outbox(app, slug) == 1

    events = _events(calendar)
    assert len(events) == 1
    assert str(events[0]["UID"]) == f"appt-{appt_id}@{slug}.upzento"
    assert events[0].decoded("DTSTART") == start
    assert "Visit" in str(events[0]["SUMMARY"])

    # The same push again writes nothing and duplicates nothing.
    from app.jobs import calendar_sync as jobs

    with app.app_context():
        assert [o["action"] for o in jobs.push(slug, appt_id)] == ["unchanged"]
    assert len(_events(calendar)) == 1

    new_start = start + dt.timedelta(hours=2)
    token = booked["manage_token"]
    r = client.post(f"/api/v1/public/{slug}/bookings/{token}/reschedule",
                    json={"start": new_start.strftime("%Y-%m-%dT%H:%M:%SZ")})
    assert r.status_code == 200, r.get_data(as_text=True)
    drain_outbox(app, slug)
    events = _events(calendar)
    assert len(events) == 1 and events[0].decoded("DTSTART") == new_start

    # Our own write comes back on the next pull as an echo: no reschedule, no busy block.
    result = _pull(app, slug, conn_id)
    assert result["reflected"] == [] and result["blocks"] == 0

    r = client.post(f"/api/v1/public/{slug}/bookings/{token}/cancel", json={"reason": "ill"})
    assert r.status_code == 200, r.get_data(as_text=True)
    drain_outbox(app, slug)
    assert _events(calendar) == []


def test_foreign_caldav_event_blocks_public_availability_after_one_pull(app, client, cal_tenant, radicale, cal_config):
    slug = cal_tenant
    conn_id, calendar = _connect(app, slug, radicale)
    day = weekday_at(10, weekday=2)
    before = slots(client, slug, day)
    busy_start = dt.datetime.combine(day, dt.time(11, 0), BERLIN)
    assert busy_start.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") in before

    # Another client (the caldav library, as a phone would) adds a private event.
    calendar.save_event(dtstart=busy_start, dtend=busy_start + dt.timedelta(hours=1), summary="Dentist",
                        uid=f"foreign-{uuid.uuid4().hex}")
    assert slots(client, slug, day) == before  # nothing known until a pull
    result = _pull(app, slug, conn_id)
    assert result["blocks"] == 1
    after = slots(client, slug, day)
    blocked = {(busy_start + dt.timedelta(minutes=30 * i)).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") for i in range(2)}
    assert blocked <= set(before) and not blocked & set(after)
    assert set(before) - set(after) == blocked

    # A second pull (incremental) changes nothing; deleting the event frees the slots.
    assert _pull(app, slug, conn_id)["blocks"] == 0
    assert slots(client, slug, day) == after
    for obj in calendar.get_objects_by_sync_token(load_objects=True).objects:
        obj.delete()
    _pull(app, slug, conn_id)
    assert slots(client, slug, day) == before


def test_recurring_foreign_event_across_dst_blocks_the_same_local_time(app, client, cal_tenant, radicale, cal_config,
                                                                       monkeypatch):
    """A weekly 10:00 Berlin meeting keeps blocking 10:00 local after the clocks change (UTC hour moves)."""
    # The next clock change can be up to ~7 months away: pull a window that reaches past it in any season.
    monkeypatch.setitem(app.config, "CALENDAR_WINDOW_DAYS", 400)
    slug = cal_tenant
    conn_id, calendar = _connect(app, slug, radicale)
    # The next European DST change: last Sunday of March or October.
    today = dt.date.today()
    change = None
    for year in (today.year, today.year + 1):
        for month in (3, 10):
            last = dt.date(year, month, 31)
            sunday = last - dt.timedelta(days=(last.weekday() - 6) % 7)
            if sunday > today + dt.timedelta(days=8) and change is None:
                change = sunday
    monday_before = change - dt.timedelta(days=6)
    monday_after = change + dt.timedelta(days=1)
    first = dt.datetime.combine(monday_before - dt.timedelta(days=7), dt.time(10, 0), BERLIN)
    ics = (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\n"
        "BEGIN:VTIMEZONE\r\nTZID:Europe/Berlin\r\n"
        "BEGIN:DAYLIGHT\r\nTZOFFSETFROM:+0100\r\nTZOFFSETTO:+0200\r\nTZNAME:CEST\r\nDTSTART:19700329T020000\r\n"
        "RRULE:FREQ=YEARLY;BYMONTH=3;BYDAY=-1SU\r\nEND:DAYLIGHT\r\n"
        "BEGIN:STANDARD\r\nTZOFFSETFROM:+0200\r\nTZOFFSETTO:+0100\r\nTZNAME:CET\r\nDTSTART:19701025T030000\r\n"
        "RRULE:FREQ=YEARLY;BYMONTH=10;BYDAY=-1SU\r\nEND:STANDARD\r\nEND:VTIMEZONE\r\n"
        f"BEGIN:VEVENT\r\nUID:weekly-{uuid.uuid4().hex}\r\nDTSTAMP:20260101T000000Z\r\n"
        f"DTSTART;TZID=Europe/Berlin:{first:%Y%m%dT%H%M%S}\r\nDTEND;TZID=Europe/Berlin:{first:%Y%m%dT}110000\r\n"
        "RRULE:FREQ=WEEKLY;COUNT=5\r\nSUMMARY:Team meeting\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
    )
    calendar.save_event(ics)
    _pull(app, slug, conn_id)
    for monday in (monday_before, monday_after):
        free = slots(client, slug, monday)
        ten = dt.datetime.combine(monday, dt.time(10, 0), BERLIN).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        nine = dt.datetime.combine(monday, dt.time(9, 0), BERLIN).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        assert ten not in free, (monday, ten, free[:4])
        assert nine in free


def test_cli_connect_sync_health_and_isolation(app, client, cal_tenant, make_tenant, radicale, cal_config):
    slug = cal_tenant
    user, cal_url, calendar = radicale.account()
    runner = app.test_cli_runner()
    r = runner.invoke(args=["calendars", "connect-caldav", slug, "--staff", "ann", "--url", radicale.url,
                            "--username", user, "--password", "app-pass", "--target-calendar", "Nope"])
    assert r.exit_code != 0 and "error: no calendar 'Nope'" in r.output
    r = runner.invoke(args=["calendars", "connect-caldav", slug, "--staff", "ann", "--url", radicale.url,
                            "--username", user, "--password", "app-pass", "--busy-calendar", "Work",
                            "--target-calendar", "Work"])
    assert r.exit_code == 0, r.output
    conn_id = json.loads(r.output)["id"]
    # The password is stored encrypted, never in clear.
    from app.models.calendar_sync import CalendarConnection

    secret = tenant_do(app, slug, lambda s, _r: s.get(CalendarConnection, conn_id).secret_enc)
    assert "app-pass" not in secret

    day = weekday_at(7, weekday=1)
    start = dt.datetime.combine(day, dt.time(9, 0), BERLIN).astimezone(UTC)
    book(client, slug, start.strftime("%Y-%m-%dT%H:%M:%SZ"))  # not relayed: the sync pass pushes it
    r = runner.invoke(args=["calendars", "sync", slug, "--staff", "ann"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.output.splitlines()[0])["pushed"] == 1
    assert len(_events(calendar)) == 1

    r = runner.invoke(args=["calendars", "health", slug])
    assert r.exit_code == 0, r.output
    rows = json.loads(r.output)
    assert [(x["id"], x["status"], x["pending"], x["failed"]) for x in rows] == [(conn_id, "active", 0, 0)]
    assert rows[0]["last_pull"] and rows[0]["last_push"]
    r = runner.invoke(args=["calendars", "list", slug])
    assert r.exit_code == 0 and r.output.startswith(f"{conn_id}\tcaldav\tstaff Ann\t{user}\tactive\tWork")

    # Another business sees neither the connection nor its blocks.
    other = make_tenant()
    r = runner.invoke(args=["calendars", "health", other])
    assert r.exit_code == 0 and json.loads(r.output) == []
    r = runner.invoke(args=["calendars", "disconnect", other, str(conn_id)])
    assert r.exit_code != 0 and "no such calendar connection" in r.output

    # A server that is down: sync exits non-zero with the reason.
    from sqlalchemy import update

    dead = "http://127.0.0.1:9/u/work/"
    tenant_do(app, slug, lambda s, _r: s.execute(update(CalendarConnection).values(
        url="http://127.0.0.1:9/", busy_calendars=[{"id": dead, "name": "Work"}], target_calendar=dead)))
    r = runner.invoke(args=["calendars", "sync", slug])
    assert r.exit_code != 0 and "error: connection" in r.output
