"""Google Calendar sync against the loopback fake (requests checked against calendar.v3.json)."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from sqlalchemy import func, select

from cal_helpers import book, drain_outbox, slots, staff_id, tenant_do, weekday_at

BERLIN = ZoneInfo("Europe/Berlin")
UTC = dt.timezone.utc


def _iso(value: dt.datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def connect(app, slug, fake, provider="google"):
    from app.services import calendar_sync as cal

    sid = staff_id(app, slug)
    cfg = cal.SyncConfig.from_config(app.config)

    def go(session, _ref):
        return cal.connect_oauth(session, provider=provider, owner_kind="staff", staff_id=sid, tokens=fake.grant(),
                                 account=fake.email, cfg=cfg).id

    return tenant_do(app, slug, go)


def link_of(app, slug, appointment_id):
    from app.models.calendar_sync import CalendarEventLink

    return tenant_do(app, slug, lambda s, _r: s.scalar(select(CalendarEventLink).where(
        CalendarEventLink.appointment_id == appointment_id)))


def connection(app, slug, conn_id):
    from app.models.calendar_sync import CalendarConnection

    return tenant_do(app, slug, lambda s, _r: s.get(CalendarConnection, conn_id))


def pull(app, slug, conn_id):
    from app.jobs import calendar_sync as jobs

    with app.app_context():
        return jobs.pull(slug, conn_id)


def push(app, slug, appointment_id):
    from app.jobs import calendar_sync as jobs

    with app.app_context():
        return jobs.push(slug, appointment_id)


def test_push_creates_patches_deletes_with_a_deterministic_id(app, client, cal_tenant, google, cal_config):
    slug = cal_tenant
    connect(app, slug, google)
    start = dt.datetime.combine(weekday_at(14), dt.time(10), BERLIN)
    booked = book(client, slug, _iso(start))
    appt = booked["appointment"]["id"]
    drain_outbox(app, slug)
    cal = google.email
    ev = google.events[cal][appt.replace("-", "")]
    assert ev["status"] == "confirmed" and ev["extendedProperties"]["private"]["upzento"] == appt
    assert ev["start"]["dateTime"] == _iso(start) and ev["start"]["timeZone"] == "Europe/Berlin"

    r = client.post(f"/api/v1/public/{slug}/bookings/{booked['manage_token']}/reschedule",
                    json={"start": _iso(start + dt.timedelta(hours=1))})
    assert r.status_code == 200
    drain_outbox(app, slug)
    assert google.events[cal][appt.replace("-", "")]["start"]["dateTime"] == _iso(start + dt.timedelta(hours=1))
    assert [r.method for r in google.api_requests()][-1] == "PATCH"
    client.post(f"/api/v1/public/{slug}/bookings/{booked['manage_token']}/cancel", json={})
    drain_outbox(app, slug)
    assert google.live(cal) == []
    # Our echo (the deleted event) on the next pull changes nothing here.
    assert pull(app, slug, connection(app, slug, link_of(app, slug, appt).connection_id).id)["reflected"] == []


def test_retry_after_503_and_429_does_not_duplicate(app, client, cal_tenant, google, cal_config):
    slug = cal_tenant
    connect(app, slug, google)
    start = dt.datetime.combine(weekday_at(15), dt.time(11), BERLIN)
    google.fail_next(503, {"error": {"code": 503, "message": "Backend Error", "errors": [{"reason": "backendError"}]}},
                     method="POST")
    appt = book(client, slug, _iso(start))["appointment"]["id"]
    drain_outbox(app, slug)
    link = link_of(app, slug, appt)
    assert link.push_status == "retry" and "503" in link.push_error and google.live(google.email) == []
    google.fail_next(429, {"error": {"code": 429, "message": "Rate Limit Exceeded",
                                     "errors": [{"reason": "rateLimitExceeded"}]}}, headers={"Retry-After": "7"},
                     method="POST")
    before = dt.datetime.now(UTC)
    assert [o["action"] for o in push(app, slug, appt)] == ["retry"]
    link = link_of(app, slug, appt)
    assert link.next_attempt_at >= before + dt.timedelta(seconds=7)
    assert [o["action"] for o in push(app, slug, appt)] == ["created"]
    assert [o["action"] for o in push(app, slug, appt)] == ["unchanged"]
    assert len(google.live(google.email)) == 1
    # An insert whose answer was lost: the retry's 409 updates the same id instead of adding one.
    from app.models.calendar_sync import CalendarEventLink
    from sqlalchemy import update

    tenant_do(app, slug, lambda s, _r: s.execute(update(CalendarEventLink).values(external_id=None, content_hash=None)))
    assert [o["action"] for o in push(app, slug, appt)] == ["created"]
    assert len(google.live(google.email)) == 1
    assert any(r.method == "PUT" for r in google.api_requests())


def test_foreign_events_block_and_410_resyncs_in_full(app, client, cal_tenant, google, cal_config):
    slug = cal_tenant
    conn_id = connect(app, slug, google)
    day = weekday_at(9, weekday=3)
    before = slots(client, slug, day)
    s1 = dt.datetime.combine(day, dt.time(14), BERLIN)
    google.add_foreign(google.email, s1, s1 + dt.timedelta(minutes=30))
    google.add_foreign(google.email, s1 + dt.timedelta(hours=1), s1 + dt.timedelta(hours=2), transparency="transparent")
    allday = google.add_foreign(google.email, start={"date": (day + dt.timedelta(days=1)).isoformat()},
                                end={"date": (day + dt.timedelta(days=2)).isoformat()})
    assert pull(app, slug, conn_id)["blocks"] == 2  # the free one blocks nothing
    after = slots(client, slug, day)
    assert set(before) - set(after) == {_iso(s1)}
    assert slots(client, slug, day + dt.timedelta(days=1)) == []  # all day, Berlin's day
    google.remove(google.email, allday["id"])
    google.expire_sync_tokens()
    result = pull(app, slug, conn_id)
    assert result["full"] is True
    assert slots(client, slug, day + dt.timedelta(days=1)) != []
    assert slots(client, slug, day) == after


def test_token_expiry_refreshes_and_invalid_grant_needs_reconnect(app, client, cal_tenant, google, cal_config):
    from app.models.public import PlatformMail
    from app.services import calendar_sync as cal

    slug = cal_tenant
    conn_id = connect(app, slug, google)
    old_secret = connection(app, slug, conn_id).secret_enc
    google.expire_access_tokens()
    start = dt.datetime.combine(weekday_at(16), dt.time(9), BERLIN)
    appt = book(client, slug, _iso(start))["appointment"]["id"]
    drain_outbox(app, slug)
    assert link_of(app, slug, appt).push_status == "ok"
    assert [t["grant_type"] for t in google.token_requests] == ["refresh_token"]
    conn = connection(app, slug, conn_id)
    assert conn.secret_enc != old_secret and conn.token_expires_at > dt.datetime.now(UTC)
    assert google.refresh_tokens  # the refresh token itself is never in clear in the row
    assert not any(t in conn.secret_enc for t in google.refresh_tokens)

    google.revoke_all()
    second = book(client, slug, _iso(start + dt.timedelta(hours=2)))  # booking keeps working
    drain_outbox(app, slug)
    conn = connection(app, slug, conn_id)
    assert conn.status == "needs_reconnect" and "invalid_grant" in conn.last_error
    mails = tenant_do(app, slug, lambda s, _r: list(s.scalars(select(PlatformMail.to_email).where(
        PlatformMail.subject.like("Calendar connection needs%")))))
    assert "ann@salon.test" in mails
    health = tenant_do(app, slug, lambda s, _r: cal.health(s, dt.datetime.now(UTC)))
    assert health[0]["status"] == "needs_reconnect" and health[0]["alert"] is True and health[0]["pending"] == 1
    assert link_of(app, slug, second["appointment"]["id"]).push_status == "retry"


def test_outside_move_and_delete_of_our_event_are_reflected_without_writing_back(app, client, cal_tenant, google,
                                                                               cal_config):
    slug = cal_tenant
    conn_id = connect(app, slug, google)
    start = dt.datetime.combine(weekday_at(17), dt.time(10), BERLIN)
    appt = book(client, slug, _iso(start))["appointment"]["id"]
    drain_outbox(app, slug)
    pull(app, slug, conn_id)  # first full pull: our own event, an echo
    eid = appt.replace("-", "")
    moved = start + dt.timedelta(hours=3)
    google.edit(google.email, eid, start={"dateTime": _iso(moved)}, end={"dateTime": _iso(moved + dt.timedelta(minutes=30))})
    writes_before = len([r for r in google.api_requests() if r.method != "GET"])
    assert pull(app, slug, conn_id)["reflected"] == [appt]
    r = client.get(f"/api/v1/public/{slug}/availability", query_string={
        "service": "visit", "staff": "ann", "from": moved.date().isoformat(), "to": moved.date().isoformat(),
        "timezone": "Europe/Berlin"})
    assert _iso(moved) not in [s["start"] for s in r.get_json()["slots"]]
    assert _iso(start) in [s["start"] for s in r.get_json()["slots"]]
    drain_outbox(app, slug)  # the reschedule's event: nothing goes back to Google
    assert len([r for r in google.api_requests() if r.method != "GET"]) == writes_before

    google.remove(google.email, eid)
    assert pull(app, slug, conn_id)["reflected"] == [appt]
    from app.models import tenant as m

    status = tenant_do(app, slug, lambda s, _r: s.get(m.Appointment, __import__("uuid").UUID(appt)).status)
    assert status == "cancelled"
    drain_outbox(app, slug)
    assert len([r for r in google.api_requests() if r.method != "GET"]) == writes_before


def _next_dst_change(min_days: int) -> dt.date:
    """The next European clock change (last Sunday of March or October) at least `min_days` ahead."""
    today = dt.date.today()
    changes = []
    for year in (today.year, today.year + 1):
        for month in (3, 10):
            last = dt.date(year, month, 31)
            changes.append(last - dt.timedelta(days=(last.weekday() - 6) % 7))
    return min(c for c in changes if c > today + dt.timedelta(days=min_days))


def assert_ten_blocked_on_both_sides(client, slug, monday_before, monday_after) -> None:
    """10:00-11:00 Berlin is busy on both Mondays, 09:00 and 11:00 are free, and the two Mondays
    really are on both sides of a clock change (the UTC hour of 10:00 differs)."""
    offsets = set()
    for monday in (monday_before, monday_after):
        ten = dt.datetime.combine(monday, dt.time(10), BERLIN)
        offsets.add(ten.utcoffset())
        free = slots(client, slug, monday)
        assert _iso(ten) not in free and _iso(ten + dt.timedelta(minutes=30)) not in free, (monday, free[:6])
        assert _iso(ten - dt.timedelta(hours=1)) in free and _iso(ten + dt.timedelta(hours=1)) in free
    assert len(offsets) == 2


def test_recurring_google_event_across_a_dst_change_blocks_the_same_local_time(app, client, cal_tenant, google,
                                                                                cal_config, monkeypatch):
    """A weekly 10:00 Berlin series (one event with an RRULE; Google lists its instances with singleEvents)
    blocks 10:00 local before and after the clocks change, although the UTC hour moves."""
    monkeypatch.setitem(app.config, "CALENDAR_WINDOW_DAYS", 400)  # the next change may be 7 months away
    slug = cal_tenant
    conn_id = connect(app, slug, google)
    change = _next_dst_change(16)
    monday_before, monday_after = change - dt.timedelta(days=6), change + dt.timedelta(days=1)
    first = dt.datetime.combine(monday_before - dt.timedelta(days=7), dt.time(10), BERLIN)
    google.add_foreign(google.email, {"dateTime": first.isoformat(), "timeZone": "Europe/Berlin"},
                       {"dateTime": (first + dt.timedelta(hours=1)).isoformat(), "timeZone": "Europe/Berlin"},
                       recurrence=["RRULE:FREQ=WEEKLY;COUNT=4"], summary="Team meeting")
    result = pull(app, slug, conn_id)
    assert result["events"] == 4 and result["blocks"] == 4  # the instances, not one master event
    listed = google.api_requests("GET")[-1]
    assert listed.query.get("singleEvents") == ["true"]
    assert_ten_blocked_on_both_sides(client, slug, monday_before, monday_after)

    # Cancelling the series frees its times again.
    master = next(eid for eid, ev in google.events[google.email].items() if ev.get("recurrence"))
    google.remove(google.email, master)
    pull(app, slug, conn_id)
    ten = dt.datetime.combine(monday_after, dt.time(10), BERLIN)
    assert _iso(ten) in slots(client, slug, monday_after)


def test_busy_blocks_of_one_business_never_block_another(app, client, cal_tenant, make_tenant, google, cal_config):
    """Two businesses with a staff member of the same key: a foreign event pulled for one blocks only there."""
    from app.models import tenant as m
    from support import minimal_setup

    slug = cal_tenant
    other = make_tenant(minimal_setup())
    conn_id = connect(app, slug, google)
    day = weekday_at(11, weekday=3)
    before_other = slots(client, other, day)
    busy = dt.datetime.combine(day, dt.time(15), BERLIN)
    assert _iso(busy) in before_other
    google.add_foreign(google.email, busy, busy + dt.timedelta(hours=1))
    assert pull(app, slug, conn_id)["blocks"] == 1
    assert _iso(busy) not in slots(client, slug, day)
    assert slots(client, other, day) == before_other
    count = tenant_do(app, other, lambda s, _r: s.scalar(select(func.count()).select_from(m.BusyBlock)))
    assert count == 0
