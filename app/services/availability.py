"""Availability from the database: load the rules the engine needs, then ask it.

The engine (app/scheduling) is pure; this module is the only place that turns
rows into its dataclasses. It loads just what a query can touch: the service,
the staff who offer it, their rules, and bookings/time off/busy blocks near the
requested range.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from sqlalchemy import and_, select
from sqlalchemy.orm import Session, selectinload

from app.errors import NotFound, ValidationError
from app.models import tenant as m
from app.scheduling import model as sm
from app.scheduling.engine import find_slots, slot_to_json

# Location zones differ from the query's by at most ~26 h, and paddings are short;
# two days either side covers every instant that can touch the range.
MARGIN = dt.timedelta(days=2)
UTC = dt.timezone.utc


@dataclass(frozen=True)
class AvailabilityQuery:
    service: str
    date_from: dt.date
    date_to: dt.date
    timezone: str
    location: str | None = None
    staff: str | None = None
    exclude_refs: frozenset[str] = frozenset()


def absolute_range(date_from: dt.date, date_to: dt.date, tz: str) -> tuple[dt.datetime, dt.datetime]:
    zone = ZoneInfo(tz)
    start = dt.datetime.combine(date_from, dt.time(), zone).astimezone(UTC)
    end = dt.datetime.combine(date_to + dt.timedelta(days=1), dt.time(), zone).astimezone(UTC)
    return start, end


def _spans(rows) -> dict[int, tuple[tuple[int, int], ...]]:
    out: dict[int, list[tuple[int, int]]] = {}
    for row in rows:
        out.setdefault(row.weekday, []).append((row.start_min, row.end_min))
    return {k: tuple(v) for k, v in out.items()}


def load_setup(
    session: Session,
    service_key: str,
    window_start: dt.datetime,
    window_end: dt.datetime,
    staff_keys: list[str] | None = None,
) -> sm.Setup:
    """Rules for `service_key` and everyone who offers it, for instants near the window."""
    service = session.scalar(select(m.Service).where(m.Service.key == service_key))
    if service is None:
        raise NotFound(f"unknown service {service_key!r}", "service")
    lo, hi = window_start - MARGIN, window_end + MARGIN

    locations = {}
    loc_key: dict[int, str] = {}
    for loc in session.scalars(
        select(m.Location).options(selectinload(m.Location.hours), selectinload(m.Location.closures))
    ):
        loc_key[loc.id] = loc.key
        hours = _spans(loc.hours) if loc.hours else None
        locations[loc.key] = sm.LocationRules(
            key=loc.key,
            timezone=loc.timezone,
            active=loc.active,
            hours=hours,
            closures=frozenset(c.date for c in loc.closures),
        )
    services = {service.key: service_rules(service)}

    staff_query = (
        select(m.Staff)
        .join(m.staff_service, m.staff_service.c.staff_id == m.Staff.id)
        .where(m.staff_service.c.service_id == service.id)
        .options(
            selectinload(m.Staff.services),
            selectinload(m.Staff.locations),
            selectinload(m.Staff.hours),
            selectinload(m.Staff.breaks),
            selectinload(m.Staff.overrides),
        )
    )
    if staff_keys is not None:
        staff_query = staff_query.where(m.Staff.key.in_(staff_keys))
    staff_rows = list(session.scalars(staff_query))
    by_id = {s.id: s for s in staff_rows}

    time_off: dict[int, list[sm.Interval]] = {}
    busy: dict[int, list[sm.Interval]] = {}
    if by_id:
        for row in session.execute(
            select(m.TimeOff.staff_id, m.TimeOff.start_at, m.TimeOff.end_at).where(
                m.TimeOff.staff_id.in_(by_id), m.TimeOff.start_at < hi, m.TimeOff.end_at > lo
            )
        ):
            time_off.setdefault(row.staff_id, []).append(sm.Interval(row.start_at, row.end_at))
        for row in session.execute(
            select(m.BusyBlock.staff_id, m.BusyBlock.start_at, m.BusyBlock.end_at).where(
                m.BusyBlock.staff_id.in_(by_id), m.BusyBlock.start_at < hi, m.BusyBlock.end_at > lo
            )
        ):
            busy.setdefault(row.staff_id, []).append(sm.Interval(row.start_at, row.end_at))

    staff = {}
    for s in staff_rows:
        staff[s.key] = sm.StaffRules(
            key=s.key,
            services=frozenset(x.key for x in s.services),
            locations=frozenset(x.key for x in s.locations),
            active=s.active,
            hours=tuple(sm.WeeklyHours(loc_key[h.location_id], h.weekday, h.start_min, h.end_min) for h in s.hours),
            breaks=tuple(
                sm.Break(b.weekday, b.start_min, b.end_min, loc_key.get(b.location_id) if b.location_id else None)
                for b in s.breaks
            ),
            overrides=tuple(
                sm.DateOverride(loc_key[o.location_id], o.date, tuple(tuple(i) for i in o.intervals))
                for o in s.overrides
                if lo.date() - dt.timedelta(days=1) <= o.date <= hi.date() + dt.timedelta(days=1)
            ),
            time_off=tuple(time_off.get(s.id, ())),
            busy=tuple(busy.get(s.id, ())),
        )

    bookings = []
    if by_id:
        rows = session.execute(
            select(
                m.Appointment.id,
                m.Appointment.staff_id,
                m.Appointment.start_at,
                m.Appointment.end_at,
                m.Appointment.seats,
                m.Appointment.location_id,
                m.Service.key.label("service_key"),
                m.Service.buffer_before_min,
                m.Service.buffer_after_min,
            )
            .join(m.Service, m.Service.id == m.Appointment.service_id)
            .where(
                and_(
                    m.Appointment.staff_id.in_(by_id),
                    m.Appointment.status != m.STATUS_CANCELLED,
                    m.Appointment.padded_start < hi,
                    m.Appointment.padded_end > lo,
                )
            )
        )
        for r in rows:
            bookings.append(
                sm.Booking(
                    staff=by_id[r.staff_id].key,
                    service=r.service_key,
                    start=r.start_at,
                    end=r.end_at,
                    buffer_before_min=r.buffer_before_min,
                    buffer_after_min=r.buffer_after_min,
                    seats=r.seats,
                    location=loc_key.get(r.location_id),
                    ref=str(r.id),
                )
            )
    return sm.Setup(locations=locations, services=services, staff=staff, bookings=tuple(bookings))


def service_rules(service: m.Service) -> sm.ServiceRules:
    return sm.ServiceRules(
        key=service.key,
        duration_min=service.duration_min,
        buffer_before_min=service.buffer_before_min,
        buffer_after_min=service.buffer_after_min,
        slot_interval_min=service.slot_interval_min,
        min_notice_min=service.min_notice_min,
        max_advance_days=service.max_advance_days,
        capacity=service.capacity,
        locations=None if service.all_locations else frozenset(loc.key for loc in service.locations),
        active=service.active,
    )


def query_slots(session: Session, query: AvailabilityQuery, now: dt.datetime) -> tuple[list[sm.Slot], bool]:
    """Bookable slots for `query` as of `now`; also whether the service is a group service."""
    start, end = absolute_range(query.date_from, query.date_to, query.timezone)
    staff_keys = [query.staff] if query.staff else None
    setup = load_setup(session, query.service, start, end, staff_keys)
    if query.location and query.location not in setup.locations:
        raise NotFound(f"unknown location {query.location!r}", "location")
    if query.staff and query.staff not in setup.staff:
        if session.scalar(select(m.Staff.id).where(m.Staff.key == query.staff)) is None:
            raise NotFound(f"unknown staff {query.staff!r}", "staff")
        # Known staff who does not offer this service: simply no slots.
        return [], setup.services[query.service].capacity > 1
    slots = find_slots(
        setup,
        sm.SlotQuery(
            service=query.service,
            date_from=query.date_from,
            date_to=query.date_to,
            timezone=query.timezone,
            now=now,
            location=query.location,
            staff=query.staff,
            exclude_refs=query.exclude_refs,
        ),
    )
    return slots, setup.services[query.service].capacity > 1


def slots_json(session: Session, query: AvailabilityQuery, now: dt.datetime) -> dict:
    """The availability answer as the API and the CLI print it."""
    slots, group = query_slots(session, query, now)
    return {"slots": [slot_to_json(s, group) for s in slots]}


def parse_query(args, max_days: int) -> AvailabilityQuery:
    """Validate availability parameters (from a request or the CLI); 422 names the field."""
    service = (args.get("service") or "").strip()
    if not service:
        raise ValidationError("service is required", "service", code="required")
    tz = (args.get("timezone") or "UTC").strip()
    try:
        ZoneInfo(tz)
    except Exception:
        raise ValidationError(f"unknown time zone {tz!r}", "timezone")
    dates = {}
    for name in ("from", "to"):
        raw = (args.get(name) or "").strip()
        if not raw:
            raise ValidationError(f"{name} is required (YYYY-MM-DD)", name, code="required")
        try:
            dates[name] = dt.date.fromisoformat(raw)
        except ValueError:
            raise ValidationError(f"{name} must be a date YYYY-MM-DD, got {raw!r}", name)
    if dates["to"] < dates["from"]:
        raise ValidationError("to must not be before from", "to")
    if (dates["to"] - dates["from"]).days + 1 > max_days:
        raise ValidationError(f"the range may cover at most {max_days} days", "to", code="range_too_long")
    return AvailabilityQuery(
        service=service,
        date_from=dates["from"],
        date_to=dates["to"],
        timezone=tz,
        location=(args.get("location") or "").strip() or None,
        staff=(args.get("staff") or "").strip() or None,
    )
