from datetime import datetime, timedelta, timezone
from urllib.parse import parse_qs, urlsplit
from zoneinfo import ZoneInfo

import icalendar
import pytest

from app.notifications.ics import IcsEvent, appointment_uid, as_cancelled, build_ics, google_calendar_link

BERLIN = ZoneInfo("Europe/Berlin")
STAMP = datetime(2026, 3, 1, 9, 0, tzinfo=timezone.utc)


def make_event(**overrides) -> IcsEvent:
    fields = dict(
        uid=appointment_uid(42, "riverside"),
        sequence=0,
        start=datetime(2026, 3, 17, 14, 30, tzinfo=BERLIN),
        end=datetime(2026, 3, 17, 15, 15, tzinfo=BERLIN),
        summary="Haircut & styling, with Oliver",
        description="Please arrive 5 minutes early.",
        location="12 Riverside Walk, London",
        url="https://meet.example.com/abc",
        organizer_name="Riverside Studio",
        organizer_email="hello@riverside.example",
        attendees=[("Emma Wilson", "emma@example.com")],
        dtstamp=STAMP,
    )
    fields.update(overrides)
    return IcsEvent(**fields)


def parse(data: bytes):
    cal = icalendar.Calendar.from_ical(data)
    [event] = cal.walk("VEVENT")
    return cal, event


def test_request_invite_parses_back_with_times_in_utc():
    cal, event = parse(build_ics(make_event(), "REQUEST"))

    assert str(cal["METHOD"]) == "REQUEST"
    assert str(event["UID"]) == "appt-42@riverside.upzento"
    assert event["SEQUENCE"] == 0
    assert str(event["STATUS"]) == "CONFIRMED"
    start, end = event.decoded("DTSTART"), event.decoded("DTEND")
    assert start == datetime(2026, 3, 17, 13, 30, tzinfo=timezone.utc)
    assert end - start == timedelta(minutes=45)
    assert start.utcoffset() == timedelta(0)
    assert b"DTSTART:20260317T133000Z" in build_ics(make_event(), "REQUEST")
    assert str(event["SUMMARY"]) == "Haircut & styling, with Oliver"
    assert str(event["LOCATION"]) == "12 Riverside Walk, London"
    assert str(event["URL"]) == "https://meet.example.com/abc"
    assert str(event["ORGANIZER"]) == "mailto:hello@riverside.example"
    assert event["ORGANIZER"].params["CN"] == "Riverside Studio"
    attendee = event["ATTENDEE"]
    assert str(attendee) == "mailto:emma@example.com"
    assert attendee.params["CN"] == "Emma Wilson"
    assert event.decoded("DTSTAMP") == STAMP


def test_cancel_keeps_uid_and_bumps_sequence():
    booked = make_event(sequence=3)
    cancelled = as_cancelled(booked, dtstamp=STAMP + timedelta(days=1))

    cal, event = parse(build_ics(cancelled, "CANCEL"))

    assert str(cal["METHOD"]) == "CANCEL"
    assert str(event["STATUS"]) == "CANCELLED"
    assert str(event["UID"]) == booked.uid
    assert event["SEQUENCE"] == 4


def test_output_is_deterministic_for_the_same_input():
    assert build_ics(make_event(), "REQUEST") == build_ics(make_event(), "REQUEST")


def test_alarm_is_added_only_when_asked():
    _, plain = parse(build_ics(make_event(), "REQUEST"))
    _, with_alarm = parse(build_ics(make_event(alarm_minutes=30), "REQUEST"))

    assert plain.walk("VALARM") == []
    [alarm] = with_alarm.walk("VALARM")
    assert alarm.decoded("TRIGGER") == timedelta(minutes=-30)


def test_online_event_without_url_or_description_still_valid():
    _, event = parse(build_ics(make_event(url=None, description="", location="Online"), "REQUEST"))
    assert "URL" not in event and "DESCRIPTION" not in event
    assert str(event["LOCATION"]) == "Online"


@pytest.mark.parametrize(
    "overrides, method, message",
    [
        ({"start": datetime(2026, 3, 17, 14, 30)}, "REQUEST", "timezone-aware"),
        ({"end": datetime(2026, 3, 17, 14, 0, tzinfo=BERLIN)}, "REQUEST", "after start"),
        ({}, "CANCEL", "does not go with"),
        ({"status": "CANCELLED"}, "REQUEST", "does not go with"),
        ({}, "PUBLISH", "method"),
    ],
)
def test_inconsistent_invites_are_rejected(overrides, method, message):
    with pytest.raises(ValueError, match=message):
        build_ics(make_event(**overrides), method)


def test_special_characters_survive_a_round_trip():
    event = make_event(summary="Färben; Schnitt, \"Deluxe\"", attendees=[('Zoë "Z" Ünal', "zoe@example.com")])
    _, parsed = parse(build_ics(event, "REQUEST"))
    assert str(parsed["SUMMARY"]) == 'Färben; Schnitt, "Deluxe"'
    assert parsed["ATTENDEE"].params["CN"] == 'Zoë "Z" Ünal'


def test_google_calendar_link_carries_utc_times_and_details():
    link = google_calendar_link(make_event())
    parts = urlsplit(link)
    query = parse_qs(parts.query)

    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == "https://calendar.google.com/calendar/render"
    assert query["action"] == ["TEMPLATE"]
    assert query["dates"] == ["20260317T133000Z/20260317T141500Z"]
    assert query["text"] == ["Haircut & styling, with Oliver"]
    assert query["location"] == ["12 Riverside Walk, London"]
    assert "https://meet.example.com/abc" in query["details"][0]
