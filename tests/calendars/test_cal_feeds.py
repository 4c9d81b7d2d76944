"""Private subscription feeds: a secret-token iCalendar URL per staff member and per customer, revocable."""

from __future__ import annotations

import datetime as dt
import re
from zoneinfo import ZoneInfo

import icalendar
from sqlalchemy import select

from cal_helpers import book, staff_id, tenant_do, weekday_at

BERLIN = ZoneInfo("Europe/Berlin")
UTC = dt.timezone.utc


def _iso(value):
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def test_staff_feed_from_my_calendar_and_customer_feed_lists_only_theirs(app, client, agency_business, make_user,
                                                                        make_tenant, cal_config):
    from app.models import tenant as m
    from app.services import calendar_sync as cal

    slug = agency_business
    start = dt.datetime.combine(weekday_at(8), dt.time(10), BERLIN)
    mine = book(client, slug, _iso(start), email="first@example.org")
    book(client, slug, _iso(start + dt.timedelta(hours=1)), email="second@example.org")
    cancelled = book(client, slug, _iso(start + dt.timedelta(hours=2)), email="first@example.org")
    client.post(f"/api/v1/public/{slug}/bookings/{cancelled['manage_token']}/cancel", json={})

    user = make_user("Staff", tenant=slug, staff_id=staff_id(app, slug))
    client.post("/login/", data={"username": user, "password": "password-1"})
    client.post(f"/switch/{slug}")
    r = client.post("/my-calendar/feed", data={"action": "create"})
    assert r.status_code == 302
    page = client.get("/my-calendar/").get_data(as_text=True)
    url = re.search(r"(http://[^ ]+/hooks/calendar/feed/[^ ]+\.ics)", page).group(1)
    path = url.split("//", 1)[1].split("/", 1)[1]
    feed = client.get("/" + path)
    assert feed.status_code == 200 and feed.mimetype == "text/calendar"
    events = icalendar.Calendar.from_ical(feed.data).walk("VEVENT")
    assert len(events) == 2  # both live bookings of Ann, not the cancelled one
    assert {str(e["UID"]) for e in events} >= {f"appt-{mine['appointment']['id']}@{slug}.upzento"}

    # A new URL revokes the old one; another business's slug never serves it.
    client.post("/my-calendar/feed", data={"action": "create"})
    assert client.get("/" + path).status_code == 404
    other = make_tenant()
    assert client.get("/" + path.replace(slug, other)).status_code == 404

    customer_id = tenant_do(app, slug, lambda s, _r: s.scalar(select(m.Customer.id).where(
        m.Customer.email == "first@example.org")))
    token = tenant_do(app, slug, lambda s, _r: cal.create_feed(s, customer_id=customer_id))
    events = icalendar.Calendar.from_ical(client.get(f"/hooks/calendar/feed/{slug}/{token}.ics").data).walk("VEVENT")
    assert [str(e["UID"]) for e in events] == [f"appt-{mine['appointment']['id']}@{slug}.upzento"]
    assert "Cus Tomer" not in str(events[0].get("DESCRIPTION", ""))
    tenant_do(app, slug, lambda s, _r: cal.revoke_feeds(s, customer_id=customer_id))
    assert client.get(f"/hooks/calendar/feed/{slug}/{token}.ics").status_code == 404
