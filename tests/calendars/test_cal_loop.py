"""Loop test: random changes on both sides, interleaved with pushes and pulls, converge without
duplicates or ping-pong; against the Google fake and the Microsoft Graph fake."""

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


class GoogleSide:
    """The other side's moves on Google Calendar (our events have the appointment id without dashes)."""

    provider = "google"

    def __init__(self, fake):
        self.fake, self.cal = fake, fake.email

    def calendar_id(self) -> str:
        return self.cal

    def writes(self) -> int:
        return len([r for r in self.fake.api_requests() if r.method != "GET"])

    def live(self, eid: str) -> bool:
        return self.fake.events[self.cal].get(eid, {}).get("status", "cancelled") != "cancelled"

    def ours(self, appointment_id: str) -> str:
        return appointment_id.replace("-", "")

    def add_foreign(self, start, end, free: bool) -> str:
        return self.fake.add_foreign(self.cal, start, end, transparency="transparent" if free else "opaque")["id"]

    def foreign_free(self, eid: str) -> bool:
        return self.fake.events[self.cal][eid].get("transparency") == "transparent"

    def move(self, eid: str, start, end) -> None:
        self.fake.edit(self.cal, eid, start={"dateTime": _iso(start), "timeZone": "Europe/Berlin"},
                       end={"dateTime": _iso(end), "timeZone": "Europe/Berlin"})

    def remove(self, eid: str) -> None:
        self.fake.remove(self.cal, eid)

    def ours_there(self) -> dict[str, tuple[str, str]]:
        """Appointment id -> (start, end) of each live event of ours; a duplicate fails."""
        found = {}
        for ev in self.fake.events[self.cal].values():
            mark = (ev.get("extendedProperties") or {}).get("private", {}).get("upzento")
            if mark and ev["status"] != "cancelled":
                assert mark not in found, f"duplicate event for {mark}"
                found[mark] = (ev["start"]["dateTime"], ev["end"]["dateTime"])
        return found


class GraphSide:
    """The other side's moves on Outlook (our events carry transactionId "<appointment id>-<generation>")."""

    provider = "microsoft"

    def __init__(self, fake):
        self.fake = fake

    def calendar_id(self) -> str:
        return "AAMkCal1"

    def writes(self) -> int:
        return len([r for r in self.fake.api_requests() if r.method != "GET"])

    def live(self, eid: str | None) -> bool:
        return eid is not None and eid in self.fake.events and not self.fake.events[eid]["_deleted"]

    def ours(self, appointment_id: str) -> str | None:
        for ev in self.fake.events.values():
            if (ev.get("transactionId") or "").rsplit("-", 1)[0] == appointment_id and not ev["_deleted"]:
                return ev["id"]
        return None

    def add_foreign(self, start, end, free: bool) -> str:
        return self.fake.add_foreign(start, end, showAs="free" if free else "busy")["id"]

    def foreign_free(self, eid: str) -> bool:
        return self.fake.events[eid].get("showAs") == "free"

    def move(self, eid: str, start, end) -> None:
        self.fake.edit(eid, start=self.fake._dt(start), end=self.fake._dt(end))

    def remove(self, eid: str) -> None:
        self.fake.remove(eid)

    def ours_there(self) -> dict[str, tuple[str, str]]:
        found = {}
        for ev in self.fake.events.values():
            mark = (ev.get("transactionId") or "").rsplit("-", 1)[0]
            if mark and not ev["_deleted"]:
                assert mark not in found, f"duplicate event for {mark}"
                found[mark] = tuple(_iso(dt.datetime.fromisoformat(ev[part]["dateTime"][:19]).replace(tzinfo=UTC))
                                    for part in ("start", "end"))
        return found


def test_hundred_random_changes_on_google_and_here_converge(app, client, cal_tenant, google, cal_config):
    _converge(app, client, cal_tenant, GoogleSide(google), seed=1414)


def test_hundred_random_changes_on_outlook_and_here_converge(app, client, cal_tenant, graph, cal_config):
    _converge(app, client, cal_tenant, GraphSide(graph), seed=2718)


def _converge(app, client, slug, side, seed: int) -> None:
    from app.models import tenant as m

    rng = random.Random(seed)
    conn_id = connect(app, slug, side.fake, provider=side.provider)
    days = [weekday_at(7 + i) for i in range(12)]
    days = [d for d in days if d.weekday() < 5]
    tokens: dict[str, str] = {}  # appointment id -> manage token
    foreign: list[str] = []
    kinds = []

    for step in range(100):
        kind = rng.choice(["book", "book", "move_here", "cancel_here", "add_there", "edit_there", "delete_there",
                           "move_ours_there", "delete_ours_there"])
        live_ours = [a for a in tokens if side.live(side.ours(a))]
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
            foreign.append(side.add_foreign(start, start + dt.timedelta(minutes=rng.choice((30, 60, 90))),
                                            free=rng.choice([False, False, True])))
        elif kind == "edit_there" and foreign:
            eid = rng.choice(foreign)
            if side.live(eid):
                start = dt.datetime.combine(rng.choice(days), dt.time(rng.randint(9, 16)), BERLIN)
                side.move(eid, start, start + dt.timedelta(hours=1))
        elif kind == "delete_there" and foreign:
            eid = rng.choice(foreign)
            if side.live(eid):
                side.remove(eid)
        elif kind == "move_ours_there" and live_ours:
            eid = side.ours(rng.choice(live_ours))
            start = dt.datetime.combine(rng.choice(days), dt.time(rng.randint(9, 16), rng.choice((0, 30))), BERLIN)
            side.move(eid, start, start + dt.timedelta(minutes=30))
        elif kind == "delete_ours_there" and live_ours:
            side.remove(side.ours(rng.choice(live_ours)))
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
    settled = side.writes()
    drain_outbox(app, slug)
    pull(app, slug, conn_id)
    drain_outbox(app, slug)
    assert side.writes() == settled, "a quiet round wrote again: ping-pong"
    assert side.writes() <= 3 * len(kinds)

    appts = tenant_do(app, slug, lambda s, _r: {str(a.id): (a.status, a.start_at, a.end_at) for a in s.scalars(
        select(m.Appointment).where(m.Appointment.id.in_([uuid.UUID(a) for a in tokens])))})
    ours_there = side.ours_there()
    for appt, (status, start, end) in appts.items():
        if status == "cancelled":
            assert appt not in ours_there, appt
        else:
            assert ours_there[appt] == (_iso(start), _iso(end)), (appt, ours_there[appt])
    # Busy blocks are exactly the live foreign events that are not shown as free.
    wanted = {eid for eid in foreign if side.live(eid) and not side.foreign_free(eid)}
    from app.services.calendar_sync import event_key

    keys = tenant_do(app, slug, lambda s, _r: set(s.scalars(select(m.BusyBlock.event_key).where(
        m.BusyBlock.connection_id == conn_id))))
    assert keys == {event_key(side.calendar_id(), eid) for eid in wanted}
    count = tenant_do(app, slug, lambda s, _r: s.scalar(select(func.count()).select_from(m.BusyBlock).where(
        m.BusyBlock.connection_id == conn_id)))
    assert count == len(wanted)
    print(f"{side.provider} loop: {len(kinds)} changes, {side.writes()} writes, "
          f"{len(ours_there)} of our events live, {len(wanted)} busy blocks")
