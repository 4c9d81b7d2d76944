"""Loop test: random changes on both sides, interleaved with pushes and pulls, converge without duplicates or ping-pong."""

from __future__ import annotations

import datetime as dt
import random
import uuid
from zoneinfo import ZoneInfo

from sqlalchemy import func, select

from cal_helpers import drain_outbox, slots, tenant_do, weekday_at
from test_cal_google import _iso, connect, pull

BERLIN = ZoneInfo("Europe/Berlin")
UTC = dt.timezone.utc


def test_hundred_random_changes_on_both_sides_converge(app, client, cal_tenant, google, cal_config):
    from app.models import tenant as m

    rng = random.Random(1414)
    slug = cal_tenant
    conn_id = connect(app, slug, google)
    cal = google.email
    days = [weekday_at(7 + i) for i in range(12)]
    days = [d for d in days if d.weekday() < 5]
    tokens: dict[str, str] = {}  # appointment id -> manage token
    foreign: list[str] = []
    kinds = []

    def writes():
        return len([r for r in google.api_requests() if r.method != "GET"])

    for step in range(100):
        kind = rng.choice(["book", "book", "move_here", "cancel_here", "add_there", "edit_there", "delete_there",
                           "move_ours_there", "delete_ours_there"])
        live_ours = [a for a in tokens if google.events[cal].get(a.replace("-", ""), {}).get("status") == "confirmed"]
        if kind == "book" or (kind in ("move_here", "cancel_here") and not tokens):
            day = rng.choice(days)
            free = slots(client, slug, day)
            if not free:
                continue
            r = client.post(f"/api/v1/public/{slug}/bookings", json={
                "service": "visit", "start": rng.choice(free), "staff": "ann",
                "customer": {"name": "Loop", "email": f"loop{step}@example.org"}})
            if r.status_code == 201:
                tokens[r.get_json()["appointment"]["id"]] = r.get_json()["manage_token"]
        elif kind == "move_here":
            appt = rng.choice(list(tokens))
            free = slots(client, slug, rng.choice(days))
            if free:
                client.post(f"/api/v1/public/{slug}/bookings/{tokens[appt]}/reschedule", json={"start": rng.choice(free)})
        elif kind == "cancel_here":
            appt = rng.choice(list(tokens))
            client.post(f"/api/v1/public/{slug}/bookings/{tokens[appt]}/cancel", json={})
        elif kind == "add_there":
            start = dt.datetime.combine(rng.choice(days), dt.time(rng.randint(8, 17), rng.choice((0, 30))), BERLIN)
            foreign.append(google.add_foreign(cal, start, start + dt.timedelta(minutes=rng.choice((30, 60, 90))),
                                              transparency=rng.choice(["opaque", "opaque", "transparent"]))["id"])
        elif kind == "edit_there" and foreign:
            eid = rng.choice(foreign)
            if google.events[cal][eid]["status"] != "cancelled":
                start = dt.datetime.combine(rng.choice(days), dt.time(rng.randint(9, 16)), BERLIN)
                google.edit(cal, eid, start={"dateTime": start.isoformat()},
                            end={"dateTime": (start + dt.timedelta(hours=1)).isoformat()})
        elif kind == "delete_there" and foreign:
            eid = rng.choice(foreign)
            if google.events[cal][eid]["status"] != "cancelled":
                google.remove(cal, eid)
        elif kind == "move_ours_there" and live_ours:
            eid = rng.choice(live_ours).replace("-", "")
            start = dt.datetime.combine(rng.choice(days), dt.time(rng.randint(9, 16), rng.choice((0, 30))), BERLIN)
            google.edit(cal, eid, start={"dateTime": _iso(start), "timeZone": "Europe/Berlin"},
                        end={"dateTime": _iso(start + dt.timedelta(minutes=30)), "timeZone": "Europe/Berlin"})
        elif kind == "delete_ours_there" and live_ours:
            google.remove(cal, rng.choice(live_ours).replace("-", ""))
        else:
            continue
        kinds.append(kind)
        # Interleave: sometimes the relay runs first, sometimes the pull, sometimes neither yet.
        for action in rng.sample(["push", "pull", "none"], 2):
            if action == "push":
                drain_outbox(app, slug)
            elif action == "pull":
                pull(app, slug, conn_id)

    assert len(kinds) >= 80, kinds
    for _ in range(3):  # let both sides settle
        drain_outbox(app, slug)
        pull(app, slug, conn_id)
    settled = writes()
    drain_outbox(app, slug)
    pull(app, slug, conn_id)
    drain_outbox(app, slug)
    assert writes() == settled, "a quiet round wrote again: ping-pong"
    assert writes() <= 3 * len(kinds)

    appts = tenant_do(app, slug, lambda s, _r: {str(a.id): (a.status, a.start_at, a.end_at) for a in s.scalars(
        select(m.Appointment).where(m.Appointment.id.in_([uuid.UUID(a) for a in tokens])))})
    ours_there = {}
    for ev in google.events[cal].values():
        mark = (ev.get("extendedProperties") or {}).get("private", {}).get("upzento")
        if mark and ev["status"] != "cancelled":
            assert mark not in ours_there, f"duplicate event for {mark}"
            ours_there[mark] = ev
    for appt, (status, start, end) in appts.items():
        if status == "cancelled":
            assert appt not in ours_there, appt
        else:
            ev = ours_there[appt]
            assert ev["start"]["dateTime"] == _iso(start) and ev["end"]["dateTime"] == _iso(end), (appt, ev["start"])
    # Busy blocks are exactly the live, opaque foreign events.
    wanted = {eid for eid in foreign if google.events[cal][eid]["status"] != "cancelled"
              and google.events[cal][eid].get("transparency") != "transparent"}
    from app.services.calendar_sync import event_key

    keys = tenant_do(app, slug, lambda s, _r: set(s.scalars(select(m.BusyBlock.event_key).where(
        m.BusyBlock.connection_id == conn_id))))
    assert keys == {event_key(cal, eid) for eid in wanted}
    count = tenant_do(app, slug, lambda s, _r: s.scalar(select(func.count()).select_from(m.BusyBlock).where(
        m.BusyBlock.connection_id == conn_id)))
    assert count == len(wanted)
