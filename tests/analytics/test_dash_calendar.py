"""The admin calendar's JSON: events in the viewer's zone, details, free slots, moves through the
booking service (outbox event), refusals with the engine's reasons, and who may see and act."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from support import minimal_setup, next_weekday

BERLIN = ZoneInfo("Europe/Berlin")


def two_staff() -> dict:
    setup = minimal_setup()
    setup["staff"].append(dict(setup["staff"][0], key="bob", name="Bob"))
    return setup


def at(day: dt.date, hhmm: str) -> dt.datetime:
    h, mnt = map(int, hhmm.split(":"))
    return dt.datetime.combine(day, dt.time(h, mnt), BERLIN).astimezone(dt.timezone.utc)


def outbox(app, slug, appointment_id):
    from sqlalchemy import select

    from app.extensions import db
    from app.models import tenant as m
    from app.tenancy import tenant_session

    with app.app_context(), tenant_session(db.engine, slug) as (session, _ref):
        return list(session.scalars(select(m.OutboxEvent.event_type).where(m.OutboxEvent.aggregate_id == appointment_id)
                                    .order_by(m.OutboxEvent.id)))


def test_events_move_and_refusal(app, client, make_tenant, make_user, login, book_real):
    slug = make_tenant(two_staff())
    day = next_weekday(1, weeks_ahead=2)  # a Tuesday
    a = book_real(slug, at(day, "10:00"))
    book_real(slug, at(day, "14:00"))
    book_real(slug, at(day, "11:00"), staff="bob")
    login(client, make_user("Client Admin", tenant=slug))
    assert client.get("/calendar/").status_code == 200
    window = f"start={day.isoformat()}T00:00:00&end={(day + dt.timedelta(days=1)).isoformat()}T00:00:00&timezone=Europe/Berlin"
    events = client.get(f"/calendar/events?{window}").get_json()
    assert sorted(e["start"][11:] for e in events) == ["10:00", "11:00", "14:00"]
    assert [e["start"][11:] for e in client.get(f"/calendar/events?{window}&staff=bob").get_json()] == ["11:00"]
    # In New York the same appointment is six hours earlier.
    ny = client.get(f"/calendar/events?start={day}T00:00:00&end={day + dt.timedelta(days=1)}T00:00:00&timezone=America/New_York&staff=bob").get_json()
    assert [e["start"][11:] for e in ny] == ["05:00"]

    details = client.get(f"/calendar/appointment/{a}").get_json()
    assert details["customer"]["name"] == "Cal Customer" and details["history"][0]["to"] == "confirmed"
    slots = client.get(f"/calendar/appointment/{a}/slots?date={day}").get_json()["slots"]
    assert f"{day}T10:00" in slots and f"{day}T14:00" not in slots  # own time is free, the other booking's is not

    moved = client.post(f"/calendar/appointment/{a}/move", json={"start": f"{day}T12:00", "timezone": "Europe/Berlin"})
    assert moved.status_code == 200, moved.get_data(as_text=True)
    assert moved.get_json()["start"] == f"{day}T12:00"
    assert outbox(app, slug, a)[-1] == "appointment.rescheduled"

    refused = client.post(f"/calendar/appointment/{a}/move", json={"start": f"{day}T14:00", "timezone": "Europe/Berlin"})
    assert refused.status_code == 409
    error = refused.get_json()["error"]
    assert error["code"] == "slot_unavailable" and error["reasons"] and error["message"]
    evening = client.post(f"/calendar/appointment/{a}/move", json={"start": f"{day}T19:00", "timezone": "Europe/Berlin"})
    assert evening.status_code == 409 and "hours" in evening.get_json()["error"]["message"].lower()
    assert client.get(f"/calendar/appointment/{a}").get_json()["start"] == f"{day}T12:00"

    noted = client.post(f"/calendar/appointment/{a}/act", json={"action": "note", "note": "bring x-rays"})
    assert noted.get_json()["notes"] == "bring x-rays"
    done = client.post(f"/calendar/appointment/{a}/act", json={"action": "cancel", "reason": "ill"})
    assert done.get_json()["status"] == "cancelled"
    assert outbox(app, slug, a)[-1] == "appointment.cancelled"


def test_staff_see_and_move_only_their_own_and_auditor_cannot_act(app, client, make_tenant, make_user, login, book_real, staff_ids):
    slug = make_tenant(two_staff())
    day = next_weekday(2, weeks_ahead=2)
    mine = book_real(slug, at(day, "10:00"))
    theirs = book_real(slug, at(day, "11:00"), staff="bob")
    login(client, make_user("Staff", tenant=slug, staff_id=staff_ids(slug)["ann"]))
    window = f"start={day}T00:00:00&end={day + dt.timedelta(days=1)}T00:00:00"
    seen = client.get(f"/calendar/events?{window}&staff=bob").get_json()
    assert [e["id"] for e in client.get(f"/calendar/events?{window}").get_json()] == [mine] and seen == []
    assert client.get(f"/calendar/appointment/{theirs}").status_code == 404
    assert client.post(f"/calendar/appointment/{theirs}/act", json={"action": "no_show"}).status_code == 404
    assert client.post(f"/calendar/appointment/{mine}/move", json={"start": f"{day}T12:00", "staff": "bob"}).status_code == 403
    assert client.post(f"/calendar/appointment/{mine}/move", json={"start": f"{day}T12:00"}).status_code == 200
    client.get("/logout/")
    login(client, make_user("Auditor", tenant=slug))
    assert len(client.get(f"/calendar/events?{window}").get_json()) == 2
    refused = client.post(f"/calendar/appointment/{theirs}/act", json={"action": "no_show"})
    assert refused.status_code in (401, 403)
    assert client.get(f"/calendar/appointment/{theirs}").get_json()["status"] == "confirmed"
