"""setup_from_file: the tenant-setup JSON shape becomes the engine's dataclasses."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import pytest

from app.scheduling.setup_file import parse_hhmm, setup_from_file

DOC = {
    "version": 1,
    "now": "2027-01-01T01:00:00+01:00",
    "tenant": {"slug": "t", "name": "T", "timezone": "Europe/Berlin"},
    "locations": [
        {"key": "north", "name": "North", "timezone": "Europe/Berlin",
         "hours": {"mon": [["08:00", "24:00"]]}, "closures": ["2027-01-13"]},
        {"key": "south", "name": "South", "timezone": "Europe/Vienna"},
    ],
    "services": [
        {"key": "cut", "name": "Cut", "duration_min": 45, "buffer_after_min": 15, "locations": ["north"]},
        {"key": "yoga", "name": "Yoga", "duration_min": 60, "capacity": 8},
    ],
    "staff": [
        {"key": "ann", "name": "Ann", "services": ["cut"], "locations": ["north"],
         "hours": [{"location": "north", "weekday": "tue", "start": "09:00", "end": "17:30"}],
         "breaks": [{"weekday": "tue", "start": "12:00", "end": "12:30", "location": "north"}],
         "overrides": [{"location": "north", "date": "2027-01-12", "intervals": []}],
         "time_off": [{"start": "2027-02-01T00:00:00Z", "end": "2027-02-02T00:00:00Z", "reason": "flu"}],
         "busy": [{"start": "2027-01-12T10:00:00+01:00", "end": "2027-01-12T11:00:00+01:00"}]},
        {"key": "bo", "name": "Bo", "hours": [{"location": "south", "weekday": "wed", "start": "10:00", "end": "12:00"}]},
    ],
    "appointments": [
        {"service": "cut", "staff": "ann", "location": "north", "start": "2027-01-12T09:00:00+01:00"},
        {"service": "yoga", "staff": "bo", "start": "2027-01-13T10:00:00Z", "seats": 3, "status": "cancelled"},
    ],
}

UTC = timezone.utc


def test_locations_services_and_staff():
    setup, now = setup_from_file(DOC)
    assert now == datetime(2027, 1, 1, tzinfo=UTC)
    north, south = setup.locations["north"], setup.locations["south"]
    assert north.hours == {0: ((480, 1440),)} and north.closures == frozenset({date(2027, 1, 13)})
    assert south.hours is None and south.timezone == "Europe/Vienna"
    assert setup.services["cut"].locations == frozenset({"north"})
    assert setup.services["yoga"].locations is None and setup.services["yoga"].capacity == 8
    ann = setup.staff["ann"]
    assert [(h.weekday, h.start, h.end) for h in ann.hours] == [(1, 540, 1050)]
    assert ann.breaks[0].location == "north" and ann.overrides[0].intervals == ()
    assert ann.busy[0].start == datetime(2027, 1, 12, 9, tzinfo=UTC)
    # Without "locations", the places a person has hours at.
    assert setup.staff["bo"].locations == frozenset({"south"})


def test_appointments_take_duration_and_buffers_from_their_service():
    setup, _ = setup_from_file(DOC)
    cut, yoga = setup.bookings
    assert cut.end - cut.start == timedelta(minutes=45)
    assert (cut.buffer_before_min, cut.buffer_after_min, cut.live, cut.ref) == (0, 15, True, "appt-1")
    assert (yoga.seats, yoga.live, yoga.location) == (3, False, None)


def test_no_now_is_none():
    doc = {k: v for k, v in DOC.items() if k != "now"}
    assert setup_from_file(doc)[1] is None


@pytest.mark.parametrize("bad", ["24:01", "7:60", "25:00"])
def test_bad_time_of_day(bad):
    with pytest.raises(ValueError):
        parse_hhmm(bad)
