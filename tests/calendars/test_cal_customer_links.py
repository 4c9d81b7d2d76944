"""The customer's calendars: "Subscribe to my bookings" in the portal (a private feed, shown once, revocable)
and "Add to Google Calendar / Outlook" links built from the booking."""

from __future__ import annotations

import datetime as dt
import html
import re
from urllib.parse import parse_qs, urlsplit
from zoneinfo import ZoneInfo

import icalendar

from cal_helpers import book, weekday_at

BERLIN = ZoneInfo("Europe/Berlin")
UTC = dt.timezone.utc


def _iso(value):
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def test_portal_subscribe_button_gives_a_private_feed_of_my_bookings_and_stops_it(app, client, cal_tenant, cal_config):
    slug = cal_tenant
    start = dt.datetime.combine(weekday_at(8), dt.time(10), BERLIN)
    mine = book(client, slug, _iso(start), email="first@example.org")
    book(client, slug, _iso(start + dt.timedelta(hours=1)), email="second@example.org")

    client.get(f"/portal/{slug}/manage/{mine['manage_token']}")  # signs the customer in
    profile = client.get(f"/portal/{slug}/profile").get_data(as_text=True)
    assert 'id="upz-feed-subscribe"' in profile and 'id="upz-feed-revoke"' not in profile
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', profile).group(1)

    shown = client.post(f"/portal/{slug}/calendar-feed", data={"csrf_token": csrf}).get_data(as_text=True)
    url = html.unescape(re.search(r'id="upz-feed-url" value="([^"]+)"', shown).group(1))
    assert url.startswith(f"http://127.0.0.1:9/hooks/calendar/feed/{slug}/") and url.endswith(".ics")
    assert f'href="webcal://127.0.0.1:9/hooks/calendar/feed/{slug}/' in shown
    path = urlsplit(url).path
    feed = client.get(path)
    assert feed.status_code == 200 and feed.mimetype == "text/calendar"
    events = icalendar.Calendar.from_ical(feed.data).walk("VEVENT")
    assert [str(e["UID"]) for e in events] == [f"appt-{mine['appointment']['id']}@{slug}.upzento"]  # mine only

    # Shown once: the profile page later says a feed exists, without its address.
    later = client.get(f"/portal/{slug}/profile").get_data(as_text=True)
    assert path not in later and 'id="upz-feed-revoke"' in later
    # A new address stops the old one; "stop" ends the new one too.
    again = client.post(f"/portal/{slug}/calendar-feed", data={"csrf_token": csrf}).get_data(as_text=True)
    new_path = urlsplit(html.unescape(re.search(r'id="upz-feed-url" value="([^"]+)"', again).group(1))).path
    assert client.get(path).status_code == 404 and client.get(new_path).status_code == 200
    stopped = client.post(f"/portal/{slug}/calendar-feed", data={"csrf_token": csrf, "action": "revoke"})
    assert stopped.status_code == 200 and 'id="upz-feed-revoke"' not in stopped.get_data(as_text=True)
    assert client.get(new_path).status_code == 404


def test_portal_appointment_offers_google_and_outlook_links_of_that_booking(app, client, cal_tenant, cal_config):
    slug = cal_tenant
    start = dt.datetime.combine(weekday_at(9), dt.time(11), BERLIN)
    booked = book(client, slug, _iso(start))
    appt_id = booked["appointment"]["id"]
    client.get(f"/portal/{slug}/manage/{booked['manage_token']}")
    page = client.get(f"/portal/{slug}/appointments/{appt_id}").get_data(as_text=True)

    google = html.unescape(re.search(r'href="([^"]+)"[^>]*id="upz-google"', page).group(1))
    assert google.startswith("https://calendar.google.com/calendar/render?")
    g = parse_qs(urlsplit(google).query)
    end = start + dt.timedelta(minutes=30)
    assert g["action"] == ["TEMPLATE"] and g["text"][0].startswith("Visit – ")
    assert g["dates"] == [f"{start.astimezone(UTC):%Y%m%dT%H%M%SZ}/{end.astimezone(UTC):%Y%m%dT%H%M%SZ}"]
    assert g["location"] == ["Main"] and f"/portal/{slug}/appointments/{appt_id}" in g["details"][0]

    outlook = html.unescape(re.search(r'href="([^"]+)"[^>]*id="upz-outlook"', page).group(1))
    assert outlook.startswith("https://outlook.live.com/calendar/0/deeplink/compose?")
    o = parse_qs(urlsplit(outlook).query)
    assert o["rru"] == ["addevent"] and o["subject"] == g["text"]
    assert o["startdt"] == [_iso(start)] and o["enddt"] == [_iso(end)] and o["location"] == ["Main"]
    # Nothing personal travels to the calendar provider in the link.
    assert "cus@example.org" not in google + outlook and "Cus Tomer" not in google + outlook

    client.post(f"/api/v1/public/{slug}/bookings/{booked['manage_token']}/cancel", json={})
    cancelled = client.get(f"/portal/{slug}/appointments/{appt_id}").get_data(as_text=True)
    assert 'id="upz-google"' not in cancelled and 'id="upz-outlook"' not in cancelled
