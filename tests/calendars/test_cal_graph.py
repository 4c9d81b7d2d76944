"""Microsoft 365 / Outlook sync against the loopback Graph fake."""

from __future__ import annotations

import datetime as dt
import uuid
from zoneinfo import ZoneInfo

from sqlalchemy import update

from cal_helpers import book, drain_outbox, slots, tenant_do, weekday_at
from test_cal_google import _iso, _next_dst_change, assert_ten_blocked_on_both_sides, connect, connection, link_of, pull, push

BERLIN = ZoneInfo("Europe/Berlin")


def test_graph_push_is_idempotent_by_transaction_id_and_follows_changes(app, client, cal_tenant, graph, cal_config):
    from app.models.calendar_sync import CalendarEventLink

    slug = cal_tenant
    connect(app, slug, graph, provider="microsoft")
    start = dt.datetime.combine(weekday_at(12), dt.time(13), BERLIN)
    graph.fail_next(503, {"error": {"code": "ServiceNotAvailable", "message": "try later"}}, method="POST")
    booked = book(client, slug, _iso(start))
    appt = booked["appointment"]["id"]
    drain_outbox(app, slug)
    assert link_of(app, slug, appt).push_status == "retry"
    assert [o["action"] for o in push(app, slug, appt)] == ["created"]
    [ev] = graph.live()
    assert ev["transactionId"] == f"{appt}-0" and ev["start"]["dateTime"].startswith(_iso(start)[:19])
    # The answer of a create was lost: the retried create carries the same transactionId.
    tenant_do(app, slug, lambda s, _r: s.execute(update(CalendarEventLink).values(external_id=None, content_hash=None)))
    push(app, slug, appt)
    assert len(graph.live()) == 1

    graph.fail_next(429, {"error": {"code": "TooManyRequests", "message": "slow down"}}, headers={"Retry-After": "9"},
                    method="PATCH")
    client.post(f"/api/v1/public/{slug}/bookings/{booked['manage_token']}/reschedule",
                json={"start": _iso(start + dt.timedelta(hours=1))})
    now = dt.datetime.now(dt.timezone.utc)
    drain_outbox(app, slug)
    link = link_of(app, slug, appt)
    assert link.push_status == "retry" and link.next_attempt_at >= now + dt.timedelta(seconds=9)
    push(app, slug, appt)
    assert graph.live()[0]["start"]["dateTime"].startswith(_iso(start + dt.timedelta(hours=1))[:19])
    # Deleted behind our back: the next change re-creates it (404 on patch).
    graph.remove(graph.live()[0]["id"])
    client.post(f"/api/v1/public/{slug}/bookings/{booked['manage_token']}/reschedule", json={"start": _iso(start)})
    drain_outbox(app, slug)
    assert len(graph.live()) == 1 and graph.live()[0]["transactionId"] == f"{appt}-1"


def test_graph_delta_pull_blocks_resyncs_on_410_and_reflects_outside_delete(app, client, cal_tenant, graph, cal_config):
    from app.models import tenant as m

    slug = cal_tenant
    conn_id = connect(app, slug, graph, provider="microsoft")
    day = weekday_at(11, weekday=4)
    before = slots(client, slug, day)
    s1 = dt.datetime.combine(day, dt.time(15), BERLIN)
    foreign = graph.add_foreign(s1, s1 + dt.timedelta(minutes=30))
    graph.add_foreign(s1 + dt.timedelta(hours=1), s1 + dt.timedelta(hours=2), showAs="free")
    graph.add_foreign(s1 - dt.timedelta(hours=2), s1 - dt.timedelta(hours=1), showAs="tentative")
    assert pull(app, slug, conn_id)["blocks"] == 2  # busy + tentative (counted by default), not free
    after = slots(client, slug, day)
    assert set(before) - set(after) == {_iso(s1), _iso(s1 - dt.timedelta(hours=2)), _iso(s1 - dt.timedelta(minutes=90))}

    graph.remove(foreign["id"])
    graph.expire_delta_links()
    assert pull(app, slug, conn_id)["full"] is True
    assert _iso(s1) in slots(client, slug, day)

    start = dt.datetime.combine(day, dt.time(9), BERLIN)
    appt = book(client, slug, _iso(start))["appointment"]["id"]
    drain_outbox(app, slug)
    pull(app, slug, conn_id)
    writes = len([r for r in graph.api_requests() if r.method != "GET"])
    graph.remove(link_of(app, slug, appt).external_id)
    assert pull(app, slug, conn_id)["reflected"] == [appt]
    assert tenant_do(app, slug, lambda s, _r: s.get(m.Appointment, uuid.UUID(appt)).status) == "cancelled"
    drain_outbox(app, slug)
    assert len([r for r in graph.api_requests() if r.method != "GET"]) == writes


def test_graph_refresh_rotates_tokens_and_online_meeting_fields_pass_through(app, cal_tenant, graph, cal_config):
    from app.calendars.base import OurEvent
    from app.services import calendar_sync as cal

    slug = cal_tenant
    conn_id = connect(app, slug, graph, provider="microsoft")
    graph.expire_access_tokens()

    def create(session, _ref):
        conn = session.get(cal.CalendarConnection, conn_id)
        client = cal.client_for(session, conn, cal.SyncConfig.from_config(app.config))
        start = dt.datetime(2030, 1, 7, 9, tzinfo=dt.timezone.utc)
        event = OurEvent(str(uuid.uuid4()), "uid", "Call", "", "", start, start + dt.timedelta(minutes=30), "UTC",
                         extra={"isOnlineMeeting": True, "onlineMeetingProvider": "teamsForBusiness"})
        return client.upsert(conn.target_calendar, event, None).raw

    raw = tenant_do(app, slug, create)
    assert raw["onlineMeeting"]["joinUrl"].startswith("https://teams.microsoft.com/")
    assert [t["grant_type"] for t in graph.token_requests] == ["refresh_token"]
    # The rotated refresh token was stored: revoking the old one alone does not break the connection.
    old = graph.token_requests[0]["refresh_token"]
    graph.refresh_tokens[old] = False
    graph.expire_access_tokens()
    assert tenant_do(app, slug, lambda s, _r: len(cal.client_for(
        s, s.get(cal.CalendarConnection, conn_id), cal.SyncConfig.from_config(app.config)).calendars())) == 2
    assert connection(app, slug, conn_id).status == "active"


def test_recurring_outlook_series_across_a_dst_change_blocks_the_same_local_time(app, client, cal_tenant, graph,
                                                                                 cal_config, monkeypatch):
    """A weekly Monday 10:00 Berlin series: calendarView lists its occurrences (in UTC), each
    blocks 10:00 local before and after the clocks change; shortening the series frees the
    occurrences it lost (Graph sends them as removed); deleting it frees the rest."""
    monkeypatch.setitem(app.config, "CALENDAR_WINDOW_DAYS", 400)  # the next change may be 7 months away
    slug = cal_tenant
    conn_id = connect(app, slug, graph, provider="microsoft")
    change = _next_dst_change(16)
    monday_before, monday_after = change - dt.timedelta(days=6), change + dt.timedelta(days=1)
    first = monday_before - dt.timedelta(days=7)
    series = graph.add_series(
        dt.datetime.combine(first, dt.time(10), BERLIN), dt.datetime.combine(first, dt.time(11), BERLIN),
        subject="Team meeting",
        recurrence={"pattern": {"type": "weekly", "interval": 1, "daysOfWeek": ["monday"], "firstDayOfWeek": "monday"},
                    "range": {"type": "numbered", "startDate": first.isoformat(), "numberOfOccurrences": 4}})
    result = pull(app, slug, conn_id)
    assert result["events"] == 4 and result["blocks"] == 4  # the occurrences, never the series itself
    assert_ten_blocked_on_both_sides(client, slug, monday_before, monday_after)

    # Two occurrences only: the Monday after the change is free again; the one before stays blocked.
    graph.edit(series["id"], recurrence={**series["recurrence"], "range": {**series["recurrence"]["range"],
                                                                           "numberOfOccurrences": 2}})
    assert pull(app, slug, conn_id)["full"] is False
    ten_before = dt.datetime.combine(monday_before, dt.time(10), BERLIN)
    ten_after = dt.datetime.combine(monday_after, dt.time(10), BERLIN)
    assert _iso(ten_after) in slots(client, slug, monday_after)
    assert _iso(ten_before) not in slots(client, slug, monday_before)

    graph.remove(series["id"])
    pull(app, slug, conn_id)
    assert _iso(ten_before) in slots(client, slug, monday_before)
