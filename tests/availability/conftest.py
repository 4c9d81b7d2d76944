"""Factories for availability tests: small setups written the way people describe them."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from types import SimpleNamespace

import pytest

from app.scheduling.model import (
    WEEKDAYS,
    Booking,
    Break,
    DateOverride,
    Interval,
    LocationRules,
    ServiceRules,
    Setup,
    SlotQuery,
    StaffRules,
    WeeklyHours,
)

UTC = timezone.utc
NOW = datetime(2027, 1, 1, tzinfo=UTC)


def hm(text: str) -> int:
    """Minutes of "HH:MM"."""
    h, m = text.split(":")
    return int(h) * 60 + int(m)


def at(text: str) -> datetime:
    """An aware UTC datetime from ISO 8601 ("2027-01-11T08:00Z" or with an offset)."""
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


def make_location(key="shop", tz="Europe/Berlin", hours=None, closures=(), active=True, busy=()) -> LocationRules:
    """hours: {"mon": [("08:00", "14:00")], ...} or None (no restriction); busy: (iso, iso) of its own calendar."""
    return LocationRules(
        key,
        tz,
        active=active,
        hours=None
        if hours is None
        else {WEEKDAYS.index(wd): tuple((hm(a), hm(b)) for a, b in spans) for wd, spans in hours.items()},
        closures=frozenset(date.fromisoformat(d) for d in closures),
        busy=tuple(Interval(at(a), at(b)) for a, b in busy),
    )


def make_service(key="cut", duration=30, **kw) -> ServiceRules:
    if "locations" in kw and kw["locations"] is not None:
        kw["locations"] = frozenset(kw["locations"])
    return ServiceRules(key, duration, **kw)


def make_staff(
    key="anna",
    services=("cut",),
    locations=("shop",),
    hours=None,
    breaks=(),
    overrides=(),
    time_off=(),
    busy=(),
    active=True,
) -> StaffRules:
    """hours: {"mon": [("09:00", "17:00")]} at the first location, or a list of
    (location, weekday, start, end); breaks: (weekday, start, end[, location]);
    overrides: (location, "YYYY-MM-DD", [(start, end)]); time_off/busy: (iso, iso)."""
    if hours is None:
        hours = {wd: [("09:00", "17:00")] for wd in WEEKDAYS[:5]}
    if isinstance(hours, dict):
        hours = [(locations[0], wd, a, b) for wd, spans in hours.items() for a, b in spans]
    return StaffRules(
        key,
        services=frozenset(services),
        locations=frozenset(locations),
        active=active,
        hours=tuple(WeeklyHours(loc, WEEKDAYS.index(wd), hm(a), hm(b)) for loc, wd, a, b in hours),
        breaks=tuple(
            Break(WEEKDAYS.index(b[0]), hm(b[1]), hm(b[2]), b[3] if len(b) > 3 else None) for b in breaks
        ),
        overrides=tuple(
            DateOverride(loc, date.fromisoformat(d), tuple((hm(a), hm(b)) for a, b in spans))
            for loc, d, spans in overrides
        ),
        time_off=tuple(Interval(at(a), at(b)) for a, b in time_off),
        busy=tuple(Interval(at(a), at(b)) for a, b in busy),
    )


def make_booking(staff_key, service_rules: ServiceRules, start: str, **kw) -> Booking:
    """A booking of `service_rules` with its duration and buffers, as booking would store it."""
    s = at(start)
    return Booking(
        staff=staff_key,
        service=service_rules.key,
        start=s,
        end=s + timedelta(minutes=service_rules.duration_min),
        buffer_before_min=kw.pop("buffer_before_min", service_rules.buffer_before_min),
        buffer_after_min=kw.pop("buffer_after_min", service_rules.buffer_after_min),
        **kw,
    )


def make_setup(locations=(), services=(), staff=(), bookings=()) -> Setup:
    locations = locations or [make_location()]
    services = services or [make_service()]
    staff_list = staff or [make_staff()]
    return Setup(
        locations={x.key: x for x in locations},
        services={x.key: x for x in services},
        staff={x.key: x for x in staff_list},
        bookings=tuple(bookings),
    )


def make_query(service_key="cut", frm="2027-01-11", to=None, tz="Europe/Berlin", now=NOW, **kw) -> SlotQuery:
    return SlotQuery(
        service=service_key,
        date_from=date.fromisoformat(frm),
        date_to=date.fromisoformat(to or frm),
        timezone=tz,
        now=now,
        **kw,
    )


def starts(slots) -> list[str]:
    """Slot starts as compact UTC strings, e.g. "2027-01-11T08:00Z"."""
    return [s.start.strftime("%Y-%m-%dT%H:%MZ") for s in slots]


@pytest.fixture(scope="session")
def sched() -> SimpleNamespace:
    """The factories above, for tests that prefer a fixture to an import."""
    return SimpleNamespace(
        hm=hm,
        at=at,
        location=make_location,
        service=make_service,
        staff=make_staff,
        booking=make_booking,
        setup=make_setup,
        query=make_query,
        starts=starts,
        NOW=NOW,
    )
