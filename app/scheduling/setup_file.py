"""Read the tenant-setup JSON shape (tenant-setup.schema.json) into a `Setup`.

Tests, scenarios and benchmarks build their inputs with it; the database layer
builds `Setup` objects itself. The document is assumed valid against the schema
(validate it first where it comes from a user); this only converts.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any

from app.scheduling.model import (
    WEEKDAYS,
    Booking,
    Break,
    DateOverride,
    Interval,
    LocationRules,
    ServiceRules,
    Setup,
    StaffRules,
    WeeklyHours,
)
from app.scheduling.wallclock import UTC

_WEEKDAY_INDEX = {name: i for i, name in enumerate(WEEKDAYS)}


def parse_hhmm(text: str) -> int:
    """Minutes since midnight of "HH:MM" ("24:00" is 1440)."""
    hh, mm = text.split(":")
    minutes = int(hh) * 60 + int(mm)
    if not 0 <= minutes <= 1440 or not 0 <= int(mm) < 60:
        raise ValueError(f"bad time of day: {text!r}")
    return minutes


def parse_instant(text: str) -> datetime:
    """An ISO 8601 instant with an offset or Z, as an aware UTC datetime."""
    dt = datetime.fromisoformat(text)
    if dt.tzinfo is None:
        raise ValueError(f"instant without offset: {text!r}")
    return dt.astimezone(UTC)


def _span(pair: list[str]) -> tuple[int, int]:
    return parse_hhmm(pair[0]), parse_hhmm(pair[1])


def _interval(doc: dict[str, Any]) -> Interval:
    return Interval(parse_instant(doc["start"]), parse_instant(doc["end"]))


def _location(doc: dict[str, Any]) -> LocationRules:
    hours = doc.get("hours")
    return LocationRules(
        key=doc["key"],
        timezone=doc["timezone"],
        active=doc.get("active", True),
        hours=None
        if hours is None
        else {_WEEKDAY_INDEX[wd]: tuple(_span(p) for p in spans) for wd, spans in hours.items()},
        closures=frozenset(date.fromisoformat(d) for d in doc.get("closures", ())),
    )


def _service(doc: dict[str, Any]) -> ServiceRules:
    locations = doc.get("locations")
    return ServiceRules(
        key=doc["key"],
        duration_min=doc["duration_min"],
        buffer_before_min=doc.get("buffer_before_min", 0),
        buffer_after_min=doc.get("buffer_after_min", 0),
        slot_interval_min=doc.get("slot_interval_min"),
        min_notice_min=doc.get("min_notice_min", 0),
        max_advance_days=doc.get("max_advance_days", 365),
        capacity=doc.get("capacity", 1),
        locations=None if locations is None else frozenset(locations),
        active=doc.get("active", True),
    )


def _staff(doc: dict[str, Any]) -> StaffRules:
    hours = tuple(
        WeeklyHours(h["location"], _WEEKDAY_INDEX[h["weekday"]], parse_hhmm(h["start"]), parse_hhmm(h["end"]))
        for h in doc.get("hours", ())
    )
    overrides = tuple(
        DateOverride(o["location"], date.fromisoformat(o["date"]), tuple(_span(p) for p in o["intervals"]))
        for o in doc.get("overrides", ())
    )
    locations = doc.get("locations")
    if locations is None:
        # A file that lists hours but not locations means the places it lists hours for.
        locations = {h.location for h in hours} | {o.location for o in overrides}
    return StaffRules(
        key=doc["key"],
        services=frozenset(doc.get("services", ())),
        locations=frozenset(locations),
        active=doc.get("active", True),
        hours=hours,
        breaks=tuple(
            Break(_WEEKDAY_INDEX[b["weekday"]], parse_hhmm(b["start"]), parse_hhmm(b["end"]), b.get("location"))
            for b in doc.get("breaks", ())
        ),
        overrides=overrides,
        time_off=tuple(_interval(t) for t in doc.get("time_off", ())),
        busy=tuple(_interval(t) for t in doc.get("busy", ())),
    )


def setup_from_file(doc: dict) -> tuple[Setup, datetime | None]:
    """The `Setup` of a tenant-setup document, and its "now" (None if absent)."""
    locations = {d["key"]: _location(d) for d in doc.get("locations", ())}
    services = {d["key"]: _service(d) for d in doc.get("services", ())}
    staff = {d["key"]: _staff(d) for d in doc.get("staff", ())}
    bookings = []
    for i, a in enumerate(doc.get("appointments", ())):
        svc = services.get(a["service"])
        if svc is None:
            raise ValueError(f"appointment {i + 1}: unknown service {a['service']!r}")
        start = parse_instant(a["start"])
        bookings.append(
            Booking(
                staff=a["staff"],
                service=svc.key,
                start=start,
                end=start + timedelta(minutes=svc.duration_min),
                buffer_before_min=svc.buffer_before_min,
                buffer_after_min=svc.buffer_after_min,
                seats=a.get("seats", 1),
                location=a.get("location"),
                live=a.get("status", "confirmed") != "cancelled",
                # Files carry no appointment ids; the position names the row.
                ref=f"appt-{i + 1}",
            )
        )
    now = parse_instant(doc["now"]) if "now" in doc else None
    return Setup(locations=locations, services=services, staff=staff, bookings=tuple(bookings)), now
