"""Online meetings against loopback Zoom and Graph fakes: booking → outbox → relay → rq worker.

The join URL reaches the appointment, the public answer, the confirmation email and
its .ics, the .ics download and the customer portal; reschedule patches, cancel deletes;
the Zoom token is cached and fetched again after a 401; an outage keeps the booking."""

from __future__ import annotations

import re
import time

import icalendar
import pytest
from sqlalchemy import text

from fakes.teams_graph import FakeTeamsGraph
from fakes.zoom import FakeZoom
from integ_helpers import MONDAY_0900, book, relay, rows, wait_until
from support import minimal_setup


def _setup(meeting: str) -> dict:
    setup = minimal_setup()
    setup["services"][0]["meeting"] = meeting
    setup["staff"][0]["email"] = "ann@salon.test"
    return setup


@pytest.fixture()
def zoom(integ_config):
    from app.meetings.base import TOKENS

    TOKENS.clear()
    with FakeZoom() as fake:
        integ_config(ZOOM_ACCOUNT_ID=fake.account_id, ZOOM_CLIENT_ID=fake.client_id,
                     ZOOM_CLIENT_SECRET=fake.client_secret, ZOOM_OAUTH_URL=fake.oauth_url,
                     ZOOM_API_BASE_URL=fake.api_base_url, MEETING_HOLD_SECONDS=300)
        yield fake


def _ics(message):
    for part in message.walk():
        if part.get_content_type() == "application/ics":
            return icalendar.Calendar.from_ical(part.get_payload(decode=True))
    raise AssertionError("no .ics attachment")


def _appointment(app, slug, appointment_id):
    [row] = rows(app, slug, "appointment", "id = :id", {"id": appointment_id})
    return row


def _when_ready(app, slug, appointment_id, timeout: float = 60):
    """The appointment's row once its meeting is ready (waits for the worker)."""
    def ready():
        row = _appointment(app, slug, appointment_id)
        return row if row["meeting_status"] == "ready" else None

    return wait_until(ready, timeout=timeout)


def _portal_page(app, client, slug, email, appointment_id) -> str:
    client.post(f"/portal/{slug}/login", data={"email": email})
    from app.extensions import db

    with app.app_context(), db.engine.connect() as conn:
        body = conn.execute(text("SELECT body FROM public.platform_mail WHERE to_email = :e ORDER BY id DESC"),
                            {"e": email}).scalars().first()
    link = re.search(r"(/portal/\S+/auth/\S+)", body).group(1)
    assert client.post(link).status_code == 303
    return client.get(f"/portal/{slug}/appointments/{appointment_id}").get_data(as_text=True)


def test_zoom_link_in_appointment_mail_ics_and_portal_then_patch_and_delete(
        app, client, make_tenant, pinned_now, integ, integ_smtp, integ_workers, zoom):
    pinned_now("2027-01-01T00:00:00Z")
    slug = make_tenant(_setup("zoom"))
    booked = book(client, slug)
    appointment_id, token = booked["appointment"]["id"], booked["manage_token"]
    assert booked["appointment"]["meeting"] == {"provider": "zoom", "status": "pending", "join_url": None,
                                                "passcode": None, "dial_in": None}
    relay(app, slug)
    started = time.monotonic()
    integ_workers.start(2)
    mails = integ_smtp.wait_for(2, timeout=120)
    # Held for the link (MEETING_HOLD_SECONDS=300) and released as soon as it existed.
    assert time.monotonic() - started < 120

    row = _appointment(app, slug, appointment_id)
    assert row["meeting_status"] == "ready" and row["meeting_provider"] == "zoom"
    meeting = zoom.meetings[row["meeting_id"]]
    join = meeting["join_url"]
    assert row["meeting_join_url"] == join
    assert row["meeting_details"]["passcode"] == "a1B2c3"
    assert meeting["start_time"] == MONDAY_0900 and meeting["duration"] == 30
    assert [r.path for r in zoom.requests if r.method == "POST"] == ["/oauth/token", "/v2/users/ann@salon.test/meetings"]

    by_rcpt = {m.rcpt_tos[0]: m.message for m in mails}
    customer = by_rcpt["eve@example.com"]
    assert join in customer.get_body(("plain",)).get_content()
    [event] = [c for c in _ics(customer).walk() if c.name == "VEVENT"]
    assert str(event["LOCATION"]) == join
    assert join in by_rcpt["ann@salon.test"].get_body(("plain",)).get_content()

    shown = client.get(f"/api/v1/public/{slug}/bookings/{token}").get_json()["appointment"]["meeting"]
    assert shown["join_url"] == join and shown["status"] == "ready" and shown["passcode"] == "a1B2c3"
    assert join.encode() in client.get(f"/api/v1/public/{slug}/bookings/{token}/ics").data
    assert join in _portal_page(app, app.test_client(), slug, "eve@example.com", appointment_id)

    # Reschedule: the same meeting is patched (token reused from the cache).
    moved = client.post(f"/api/v1/public/{slug}/bookings/{token}/reschedule", json={"start": "2027-01-12T09:00:00Z"})
    assert moved.status_code == 200, moved.get_json()
    relay(app, slug)
    wait_until(lambda: zoom.meetings[row["meeting_id"]]["start_time"] == "2027-01-12T09:00:00Z", timeout=60)
    assert zoom.token_requests == 1
    wait_until(lambda: _appointment(app, slug, appointment_id)["meeting_details"].get("synced", {}).get("start", "")
               .startswith("2027-01-12T09:00"))

    # The token is revoked (expired early): the next call gets 401, fetches a new token once, and deletes.
    zoom.revoke_tokens()
    assert client.post(f"/api/v1/public/{slug}/bookings/{token}/cancel", json={}).status_code == 200
    relay(app, slug)
    wait_until(lambda: row["meeting_id"] not in zoom.meetings, timeout=60)
    assert zoom.token_requests == 2
    deletes = [r.status for r in zoom.requests if r.method == "DELETE"]
    assert deletes == [401, 204]
    wait_until(lambda: _appointment(app, slug, appointment_id)["meeting_status"] == "deleted")


def test_zoom_outage_keeps_the_booking_retries_and_tells_staff(app, client, make_tenant, pinned_now, integ,
                                                               integ_smtp, integ_workers, zoom):
    pinned_now("2027-01-01T00:00:00Z")
    slug = make_tenant(_setup("zoom"))
    zoom.fail_next(503, {"code": 503, "message": "Service unavailable"}, times=2, method="POST",
                   path=r"/v2/users/.*")
    from app.extensions import db

    with app.app_context(), db.engine.connect() as conn:  # platform mail is shared by every test's business
        mail_before = conn.execute(text("SELECT coalesce(max(id), 0) FROM public.platform_mail")).scalar()
    booked = book(client, slug)
    appointment_id = booked["appointment"]["id"]
    relay(app, slug)
    integ_workers.start(1)
    row = _when_ready(app, slug, appointment_id)
    assert row["status"] == "confirmed"  # the booking never moved
    posts = [r.status for r in zoom.requests if r.method == "POST" and r.path.startswith("/v2/")]
    assert posts == [503, 503, 201]
    with app.app_context(), db.engine.connect() as conn:
        told = conn.execute(text("SELECT subject, body FROM public.platform_mail WHERE to_email = 'ann@salon.test' "
                                 "AND id > :before ORDER BY id"), {"before": mail_before}).all()
    assert len(told) == 1 and "No Zoom link yet" in told[0][0] and "503" in told[0][1]
    mails = integ_smtp.wait_for(2, timeout=60)
    assert all(row["meeting_join_url"] in m.message.get_body(("plain",)).get_content() for m in mails)


def test_a_link_made_after_the_confirmation_went_out_is_mailed_with_an_updated_invitation(
        app, client, make_tenant, pinned_now, integ, integ_config, integ_smtp, integ_workers, zoom):
    """The hold ended while Zoom was down, so the confirmation went without a link: once the link
    exists the customer gets it (appointment.meeting_ready), with an .ics that updates the same
    calendar entry; a link made in time sends nothing more (the first test above)."""
    integ_config(MEETING_HOLD_SECONDS=1, MEETING_RETRY_SCHEDULE="4,4,4")  # the hold ends long before the link
    pinned_now("2027-01-01T00:00:00Z")
    slug = make_tenant(_setup("zoom"))
    zoom.fail_next(503, {"code": 503, "message": "Service unavailable"}, times=2, method="POST", path=r"/v2/users/.*")
    booked = book(client, slug)
    appointment_id = booked["appointment"]["id"]
    relay(app, slug)
    integ_workers.start(1)
    wait_until(lambda: rows(app, slug, "notification_delivery", "kind = 'booking_confirmed'"), timeout=60)
    time.sleep(1.2)
    from app.jobs.periodic import sweep_due

    with app.app_context():
        sweep_due()  # what rq cron does every minute: the held confirmations are due now
    first = integ_smtp.wait_for(2, timeout=60)
    row = _when_ready(app, slug, appointment_id)
    join = row["meeting_join_url"]
    confirmation = {m.rcpt_tos[0]: m.message for m in first}["eve@example.com"]
    assert join not in confirmation.get_body(("plain",)).get_content()

    relay(app, slug)  # the meeting job wrote appointment.meeting_ready
    [ready] = integ_smtp.wait_until(lambda r: "eve@example.com" in r.rcpt_tos and r not in first, 1, timeout=60)
    body = ready.message.get_body(("plain",)).get_content()
    assert join in body and "meeting link" in ready.message["Subject"]
    [event] = [c for c in _ics(ready.message).walk() if c.name == "VEVENT"]
    [original] = [c for c in _ics(confirmation).walk() if c.name == "VEVENT"]
    assert str(event["UID"]) == str(original["UID"]) and str(event["LOCATION"]) == join
    assert [r["kind"] for r in rows(app, slug, "notification_delivery", "kind = 'meeting_ready'")] == ["meeting_ready"]
    time.sleep(1.0)
    assert sorted(m.rcpt_tos[0] for m in integ_smtp.messages) == ["ann@salon.test", "eve@example.com", "eve@example.com"], [(m.rcpt_tos, m.message["Subject"]) for m in integ_smtp.messages]


def test_zoom_refusing_for_good_marks_the_meeting_failed_and_the_health_page_shows_it(
        app, client, make_tenant, pinned_now, integ, integ_workers, zoom, integ_config):
    pinned_now("2027-01-01T00:00:00Z")
    integ_config(ZOOM_CLIENT_SECRET="wrong")
    slug = make_tenant(_setup("zoom"))
    appointment_id = book(client, slug)["appointment"]["id"]
    relay(app, slug)
    integ_workers.start(1)
    row = wait_until(lambda: (lambda r: r if r["meeting_status"] == "failed" else None)(
        _appointment(app, slug, appointment_id)), timeout=60)
    assert "401" in row["meeting_error"] and row["status"] == "confirmed"
    assert rows(app, slug, "appointment", "meeting_status = 'failed'")


@pytest.fixture()
def graph(integ_config):
    from app.meetings.base import TOKENS

    TOKENS.clear()
    with FakeTeamsGraph() as fake:
        integ_config(MS_TEAMS_TENANT_ID=fake.tenant_id, MS_CLIENT_ID=fake.client_id, MS_CLIENT_SECRET=fake.client_secret,
                     MS_LOGIN_BASE_URL=fake.login_base_url, MS_GRAPH_BASE_URL=fake.graph_base_url)
        yield fake


def test_teams_meeting_made_moved_and_deleted_through_graph(app, client, make_tenant, pinned_now, integ,
                                                           integ_workers, graph):
    pinned_now("2027-01-01T00:00:00Z")
    slug = make_tenant(_setup("teams"))
    booked = book(client, slug)
    appointment_id, token = booked["appointment"]["id"], booked["manage_token"]
    relay(app, slug)
    integ_workers.start(1)
    row = _when_ready(app, slug, appointment_id)
    meeting = graph.meetings[row["meeting_id"]]
    assert row["meeting_join_url"] == meeting["joinWebUrl"] and meeting["organizer"] == "ann@salon.test"
    assert meeting["startDateTime"] == MONDAY_0900 and meeting["endDateTime"] == "2027-01-11T08:30:00Z"
    assert row["meeting_details"]["conference_id"] == "123456789"
    shown = client.get(f"/api/v1/public/{slug}/bookings/{token}").get_json()["appointment"]["meeting"]
    assert shown["provider"] == "teams" and shown["join_url"] == meeting["joinWebUrl"]

    assert client.post(f"/api/v1/public/{slug}/bookings/{token}/reschedule",
                       json={"start": "2027-01-12T09:00:00Z"}).status_code == 200
    relay(app, slug)
    wait_until(lambda: graph.meetings[row["meeting_id"]]["startDateTime"] == "2027-01-12T09:00:00Z", timeout=60)
    assert client.post(f"/api/v1/public/{slug}/bookings/{token}/cancel", json={}).status_code == 200
    relay(app, slug)
    wait_until(lambda: row["meeting_id"] not in graph.meetings, timeout=60)


def _connect_ann(app, slug, provider, fake):
    """Ann's own Google / Microsoft calendar connection, signed in at the fake (it receives our events)."""
    from app.extensions import db
    from app.models import tenant as m
    from app.services import calendar_sync as cal
    from app.tenancy import tenant_session

    with app.app_context(), tenant_session(db.engine, slug) as (session, _ref):
        ann = session.query(m.Staff).filter_by(key="ann").one()
        cal.connect_oauth(session, provider=provider, owner_kind="staff", staff_id=ann.id, tokens=fake.grant(),
                          account=fake.email, cfg=cal.SyncConfig.from_config(app.config))


def test_meet_link_is_made_on_the_staff_members_own_google_event(app, client, make_tenant, pinned_now, integ,
                                                                 integ_config, integ_smtp, integ_workers):
    """A staff member with a Google calendar connection: the pushed event itself asks for the Meet
    conference; its link reaches the appointment and the held confirmations; no second event and no
    business-level Meet call; a reschedule moves that event and a cancel removes it with its link."""
    from fakes.google_calendar import GoogleCalendarFake

    pinned_now("2027-01-01T00:00:00Z")
    slug = make_tenant(_setup("google_meet"))
    with GoogleCalendarFake() as google:
        integ_config(GOOGLE_API_BASE_URL=google.api_base, GOOGLE_OAUTH_URL=google.base_url,
                     GOOGLE_AUTH_URL=google.base_url + "/o/oauth2/v2/auth", GOOGLE_CLIENT_ID="gid",
                     GOOGLE_CLIENT_SECRET="gsecret", MEETING_HOLD_SECONDS=300)
        _connect_ann(app, slug, "google", google)

        booked = book(client, slug)
        appointment_id, token = booked["appointment"]["id"], booked["manage_token"]
        relay(app, slug)
        started = time.monotonic()
        integ_workers.start(2)
        mails = integ_smtp.wait_for(2, timeout=120)
        assert time.monotonic() - started < 120  # released by the push, not by the 300 s hold

        row = _appointment(app, slug, appointment_id)
        [event] = google.live(google.email)
        assert event["id"] == appointment_id.replace("-", "")
        link = event["hangoutLink"]
        assert link.startswith("https://meet.google.com/")
        assert (row["meeting_provider"], row["meeting_status"], row["meeting_join_url"]) == ("google_meet", "ready", link)
        assert row["meeting_details"]["via"] == "calendar"
        assert event["conferenceData"]["createRequest"]["conferenceSolutionKey"] == {"type": "hangoutsMeet"}
        inserts = [r for r in google.api_requests("POST") if r.path.endswith("/events")]
        assert len(inserts) == 1 and inserts[0].query.get("conferenceDataVersion") == ["1"]
        by_rcpt = {mail.rcpt_tos[0]: mail.message for mail in mails}
        assert link in by_rcpt["eve@example.com"].get_body(("plain",)).get_content()
        assert link in by_rcpt["ann@salon.test"].get_body(("plain",)).get_content()
        shown = client.get(f"/api/v1/public/{slug}/bookings/{token}").get_json()["appointment"]["meeting"]
        assert shown["provider"] == "google_meet" and shown["join_url"] == link

        moved = client.post(f"/api/v1/public/{slug}/bookings/{token}/reschedule", json={"start": "2027-01-12T09:00:00Z"})
        assert moved.status_code == 200, moved.get_json()
        relay(app, slug)
        wait_until(lambda: google.live(google.email)[0]["start"]["dateTime"] == "2027-01-12T09:00:00Z", timeout=60)
        assert google.live(google.email)[0]["hangoutLink"] == link  # the same meeting moved with its event
        assert _appointment(app, slug, appointment_id)["meeting_join_url"] == link

        assert client.post(f"/api/v1/public/{slug}/bookings/{token}/cancel", json={}).status_code == 200
        relay(app, slug)
        wait_until(lambda: google.live(google.email) == [], timeout=60)
        wait_until(lambda: _appointment(app, slug, appointment_id)["meeting_status"] == "deleted", timeout=60)
        assert len([r for r in google.api_requests("POST") if r.path.endswith("/events")]) == 1
        assert google.violations == []


def test_teams_link_is_made_on_the_staff_members_own_outlook_event(app, client, make_tenant, pinned_now, integ,
                                                                   integ_config, integ_workers):
    """Teams with a Microsoft calendar connection: the pushed event carries isOnlineMeeting and its
    joinUrl becomes the appointment's link; the onlineMeetings API (business credentials) is not used."""
    from fakes.graph import GraphFake

    pinned_now("2027-01-01T00:00:00Z")
    slug = make_tenant(_setup("teams"))
    with GraphFake() as graph:
        integ_config(MS_GRAPH_BASE_URL=graph.graph_base, MS_LOGIN_BASE_URL=graph.base_url, MS_CLIENT_ID="mid",
                     MS_CLIENT_SECRET="msecret", MEETING_HOLD_SECONDS=300)
        _connect_ann(app, slug, "microsoft", graph)
        booked = book(client, slug)
        appointment_id, token = booked["appointment"]["id"], booked["manage_token"]
        relay(app, slug)
        integ_workers.start(1)
        row = _when_ready(app, slug, appointment_id)
        [event] = graph.live()
        assert event["isOnlineMeeting"] is True and event["onlineMeetingProvider"] == "teamsForBusiness"
        assert row["meeting_join_url"] == event["onlineMeeting"]["joinUrl"] and row["meeting_provider"] == "teams"
        assert not any("/onlineMeetings" in r.path for r in graph.requests)
        assert client.post(f"/api/v1/public/{slug}/bookings/{token}/cancel", json={}).status_code == 200
        relay(app, slug)
        wait_until(lambda: graph.live() == [], timeout=60)
        wait_until(lambda: _appointment(app, slug, appointment_id)["meeting_status"] == "deleted", timeout=60)
        assert graph.violations == []


def test_a_link_committed_while_the_confirmation_is_planned_is_in_the_message(app, client, make_tenant, pinned_now):
    """The plan loads the appointment, then the calendar push commits the link, then the plan asks
    whether to hold: it sends at once, and the message it renders from its appointment carries the
    link (the object is refreshed under the lock, not kept as it was first read)."""
    import datetime as dt

    from app.extensions import db
    from app.services import notify
    from app.tenancy import tenant_session

    pinned_now("2027-01-01T00:00:00Z")
    slug = make_tenant(_setup("google_meet"))
    appointment_id = book(client, slug)["appointment"]["id"]
    link = "https://meet.google.com/abc-defg-hij"
    now = dt.datetime(2027, 1, 1, tzinfo=dt.timezone.utc)
    settings = notify.Settings.from_config(app.config)
    with app.app_context(), tenant_session(db.engine, slug) as (session, _ref):
        appt = notify.load_appointment(session, appointment_id)
        assert appt.meeting_join_url is None
        with db.engine.begin() as other:  # the push's transaction, committed in between
            other.execute(text(f'UPDATE "tenant_{slug}".appointment SET meeting_join_url = :u, meeting_status = \'ready\' '
                               'WHERE id = :id'), {"u": link, "id": appointment_id})
        assert notify.meeting_hold(session, appt, settings, now) == now
        assert notify.meeting_url(notify.load_appointment(session, appointment_id)) == link
        session.rollback()

    with app.app_context(), tenant_session(db.engine, slug) as (session, _ref):
        with db.engine.begin() as other:  # no link yet: held for MEETING_HOLD_SECONDS
            other.execute(text(f'UPDATE "tenant_{slug}".appointment SET meeting_join_url = NULL, meeting_status = \'pending\' '
                               'WHERE id = :id'), {"id": appointment_id})
        appt = notify.load_appointment(session, appointment_id)
        assert notify.meeting_hold(session, appt, settings, now) == now + dt.timedelta(seconds=settings.meeting_hold_seconds)
        session.rollback()


def _zoom_event(client, secret: str, name: str, obj: dict):
    import hashlib
    import hmac
    import json

    raw = json.dumps({"event": name, "event_ts": int(time.time() * 1000),
                      "payload": {"account_id": "acc", "operator": "host@salon.test", "object": obj}})
    ts = str(int(time.time()))
    signature = "v0=" + hmac.new(secret.encode(), f"v0:{ts}:{raw}".encode(), hashlib.sha256).hexdigest()
    answer = client.post("/hooks/zoom", data=raw, content_type="application/json",
                         headers={"x-zm-request-timestamp": ts, "x-zm-signature": signature})
    assert answer.status_code == 200, answer.get_data(as_text=True)
    return answer.get_json()


def test_zoom_notifications_reach_the_appointment_whose_meeting_it_is(app, client, make_tenant, pinned_now, integ,
                                                                     integ_workers, zoom, monkeypatch):
    """meeting.updated with another time: the appointment decides, the meeting is moved back;
    started / ended are recorded; meeting.deleted shows the meeting failed; found through
    public.provider_meeting, not by searching every business."""
    secret = "zoom-secret-token"
    monkeypatch.setitem(app.config, "ZOOM_WEBHOOK_SECRET_TOKEN", secret)
    pinned_now("2027-01-01T00:00:00Z")
    slug = make_tenant(_setup("zoom"))
    appointment_id = book(client, slug)["appointment"]["id"]
    relay(app, slug)
    integ_workers.start(1)
    meeting_id = _when_ready(app, slug, appointment_id)["meeting_id"]
    [indexed] = rows(app, slug, "appointment", "id = :id", {"id": appointment_id})
    from app.extensions import db

    with app.app_context(), db.engine.connect() as conn:
        owner = conn.execute(text("SELECT t.slug, p.appointment_id FROM public.provider_meeting p "
                                  "JOIN public.tenant t ON t.id = p.tenant_id "
                                  "WHERE p.provider = 'zoom' AND p.meeting_id = :m"), {"m": meeting_id}).one()
    assert tuple(owner) == (slug, appointment_id) and indexed["meeting_id"] == meeting_id

    # The host drags the meeting to 10:00 and makes it 60 minutes in Zoom: it is put back.
    zoom.meetings[meeting_id].update(start_time="2027-01-11T10:00:00Z", duration=60)
    patches = len([r for r in zoom.requests if r.method == "PATCH"])
    assert _zoom_event(client, secret, "meeting.updated",
                       {"id": int(meeting_id), "start_time": "2027-01-11T10:00:00Z", "duration": 60}) == {"status": "ok"}
    wait_until(lambda: zoom.meetings[meeting_id]["start_time"] == MONDAY_0900 and zoom.meetings[meeting_id]["duration"] == 30,
               timeout=60)
    _when_ready(app, slug, appointment_id)
    assert _appointment(app, slug, appointment_id)["meeting_details"]["changed_in_zoom"]["start_time"] == "2027-01-11T10:00:00Z"
    assert len([r for r in zoom.requests if r.method == "PATCH"]) == patches + 1
    # A change that keeps the appointment's time (the topic) moves nothing.
    _zoom_event(client, secret, "meeting.updated", {"id": int(meeting_id), "topic": "Renamed"})
    time.sleep(1)
    assert len([r for r in zoom.requests if r.method == "PATCH"]) == patches + 1

    _zoom_event(client, secret, "meeting.started", {"id": int(meeting_id), "uuid": "u1"})
    _zoom_event(client, secret, "meeting.ended", {"id": int(meeting_id), "uuid": "u1"})
    details = _appointment(app, slug, appointment_id)["meeting_details"]
    assert "started_at" in details and "ended_at" in details
    assert _zoom_event(client, secret, "meeting.deleted", {"id": 999999, "uuid": "not-ours"}) == {"status": "ok"}
    assert _appointment(app, slug, appointment_id)["meeting_status"] == "ready"  # someone else's meeting
    _zoom_event(client, secret, "meeting.deleted", {"id": int(meeting_id), "uuid": "u1"})
    row = _appointment(app, slug, appointment_id)
    assert (row["meeting_status"], row["meeting_error"]) == ("failed", "the meeting was deleted in Zoom")
    with app.app_context(), db.engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM public.provider_meeting WHERE meeting_id = :m"),
                            {"m": meeting_id}).scalar() == 0
