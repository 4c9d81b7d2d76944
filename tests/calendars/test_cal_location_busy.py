"""A location's own calendar (front desk) closes that location while it is busy, for everyone working there,
and only there: the same staff member stays bookable at another location (public availability and booking)."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from sqlalchemy import select

from cal_helpers import book, tenant_do, weekday_at
from support import minimal_setup

BERLIN = ZoneInfo("Europe/Berlin")
UTC = dt.timezone.utc
DAYS = ("mon", "tue", "wed", "thu", "fri")


def _iso(value: dt.datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _two_locations(make_tenant, pinned_now) -> str:
    setup = minimal_setup()
    setup["locations"].append({"key": "annex", "name": "Annex", "timezone": "Europe/Berlin"})
    setup["staff"][0]["locations"] = ["main", "annex"]
    setup["staff"][0]["hours"] = (
        [{"location": "main", "weekday": d, "start": "09:00", "end": "13:00"} for d in DAYS]
        + [{"location": "annex", "weekday": d, "start": "13:00", "end": "17:00"} for d in DAYS])
    setup["staff"].append({"key": "bob", "name": "Bob", "services": ["visit"], "locations": ["main"],
                           "hours": [{"location": "main", "weekday": d, "start": "09:00", "end": "17:00"}
                                     for d in DAYS]})
    pinned_now(None)
    return make_tenant(setup)


def _slots(client, slug, day, **kw) -> set[str]:
    r = client.get(f"/api/v1/public/{slug}/availability", query_string={
        "service": "visit", "from": day.isoformat(), "to": day.isoformat(), "timezone": "Europe/Berlin", **kw})
    assert r.status_code == 200, r.get_data(as_text=True)
    return {s["start"] for s in r.get_json()["slots"]}


def test_front_desk_calendar_blocks_bookings_at_its_location_only(app, client, make_tenant, pinned_now, google,
                                                                  cal_config):
    from app.jobs import calendar_sync as jobs
    from app.models import tenant as m
    from app.services import calendar_sync as cal

    slug = _two_locations(make_tenant, pinned_now)
    main_id = tenant_do(app, slug, lambda s, _r: s.scalar(select(m.Location.id).where(m.Location.key == "main")))
    cfg = cal.SyncConfig.from_config(app.config)
    conn_id = tenant_do(app, slug, lambda s, _r: cal.connect_oauth(
        s, provider="google", owner_kind="location", location_id=main_id, tokens=google.grant(),
        account=google.email, cfg=cfg).id)
    day = weekday_at(9, weekday=2)
    at = {h: _iso(dt.datetime.combine(day, dt.time(h), BERLIN)) for h in range(9, 17)}
    half = {h: _iso(dt.datetime.combine(day, dt.time(h, 30), BERLIN)) for h in range(9, 17)}
    before = {"ann": _slots(client, slug, day, staff="ann"), "bob": _slots(client, slug, day, staff="bob"),
              "annex": _slots(client, slug, day, location="annex")}
    assert {at[10], at[14]} <= before["ann"] and {at[10], at[14]} <= before["bob"]

    # The front desk's calendar is busy 10:00-11:00 and 14:00-15:00 (local).
    for h in (10, 14):
        google.add_foreign(google.email, dt.datetime.combine(day, dt.time(h), BERLIN),
                           dt.datetime.combine(day, dt.time(h + 1), BERLIN), summary="Delivery")
    with app.app_context():
        assert jobs.pull(slug, conn_id)["blocks"] == 2
    rows = tenant_do(app, slug, lambda s, _r: [(b.staff_id, b.location_id) for b in s.scalars(
        select(m.BusyBlock).where(m.BusyBlock.connection_id == conn_id))])
    assert rows == [(None, main_id)] * 2  # blocks of the location, not copies per staff member

    ann, bob = _slots(client, slug, day, staff="ann"), _slots(client, slug, day, staff="bob")
    # Bob works only at main: both hours are gone.
    assert before["bob"] - bob == {at[10], half[10], at[14], half[14]}
    # Ann is at main in the morning (blocked) and at the annex in the afternoon (not blocked).
    assert before["ann"] - ann == {at[10], half[10]} and {at[14], half[14]} <= ann
    assert _slots(client, slug, day, location="annex") == before["annex"]
    assert not {at[10], at[14]} & _slots(client, slug, day, location="main")

    # Booking agrees: Ann at 14:00 (annex) is taken; Bob at 14:00 (main) is refused.
    booked = book(client, slug, at[14], staff="ann")
    import uuid

    where = tenant_do(app, slug, lambda s, _r: s.scalar(select(m.Location.key).join(
        m.Appointment, m.Appointment.location_id == m.Location.id).where(
        m.Appointment.id == uuid.UUID(booked["appointment"]["id"]))))
    assert where == "annex"
    r = client.post(f"/api/v1/public/{slug}/bookings", json={
        "service": "visit", "start": at[14], "staff": "bob", "customer": {"name": "C", "email": "c@example.org"}})
    assert r.status_code in (409, 422) and r.get_json()["error"]["code"]

    # The event moves away: the next pull frees the morning again.
    eid = next(e["id"] for e in google.live(google.email) if e["start"]["dateTime"].startswith(f"{day}T10"))
    google.remove(google.email, eid)
    with app.app_context():
        jobs.pull(slug, conn_id)
    assert {at[10], half[10]} <= _slots(client, slug, day, staff="bob")
