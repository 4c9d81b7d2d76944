"""Why a start is (not) bookable for one staff member.

`explain` answers for a single (service, staff, start) by the same rules as
`find_slots`; a start that `find_slots` returns for a staff member explains as
bookable, and every other start of the range explains with at least one reason.
It serves a calendar's "why not?" and booking's re-check of a chosen start.

Reason codes (stable; the API and the UI key translations on them):

- ``not_offered``   the staff member, service or location is inactive, or the
                    staff member does not offer the service, does not work at
                    the location, or the service is not offered there (§1).
- ``outside_hours`` [start, start + duration) is not inside one working window (§2).
- ``off_grid``      inside a window, but not on that window's slot grid (§4).
- ``break``         overlaps a break (§3).
- ``time_off``      overlaps time off (§3).
- ``location_busy`` overlaps busy time of the location's own synced calendar: the
                    location is closed then (README "Calendar sync"; cut like time off).
- ``booked``        overlaps another live appointment of the staff member (§5.2).
- ``buffer``        only the buffers (padding) overlap another appointment (§5.2).
- ``busy_external`` the padded interval overlaps a synced calendar's busy block (§5.3).
- ``min_notice``    earlier than now + minimum notice (§5.4).
- ``max_advance``   later than now + maximum advance (§5.4).
- ``full``          a group session starts here and has no seat left (§6).

A bookable start has ``reasons == ()``. Reasons come in the order above.
``not_offered`` comes alone. Of ``outside_hours``, ``off_grid`` and ``break`` at
most one appears: it describes the window that comes closest to holding the
start (locations by key, then days). ``Explanation.location`` is that window's
location (None outside hours). ``seats_left`` is for group services only: the
seats left when the start is bookable, 0 for a full session, else None.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Mapping

from app.scheduling.engine import StaffCalendar, duration_and_step, eligible_locations, serves_at
from app.scheduling.model import Booking, ServiceRules, Setup, StaffRules, UnknownKey
from app.scheduling.wallclock import LocalClock, floor_seconds, from_seconds

_ONE_DAY = timedelta(days=1)


@dataclass(frozen=True)
class Reason:
    code: str
    message: str
    detail: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Explanation:
    bookable: bool
    reasons: tuple[Reason, ...]
    seats_left: int | None  # group services: seats left at this start (0 when full)
    location: str | None  # the location whose window holds the start, if any


def _iso(u: int) -> str:
    return from_seconds(u).strftime("%Y-%m-%dT%H:%M:%SZ")


def _hhmm(minute: int) -> str:
    return f"{minute // 60:02d}:{minute % 60:02d}"


def _overlaps(a0: datetime, a1: datetime, b0: datetime, b1: datetime) -> bool:
    return max(a0, b0) < min(a1, b1)


def explain(
    setup: Setup,
    service: str,
    staff: str,
    start: datetime,
    now: datetime,
    location: str | None = None,
    exclude_refs: frozenset[str] = frozenset(),
) -> Explanation:
    """Whether `staff` can take `service` at `start`, and every rule that says no."""
    if start.tzinfo is None or now.tzinfo is None:
        raise ValueError("start and now must be timezone-aware")
    svc = setup.services.get(service)
    if svc is None:
        raise UnknownKey("service", service)
    person = setup.staff.get(staff)
    if person is None:
        raise UnknownKey("staff", staff)
    if location is not None and location not in setup.locations:
        raise UnknownKey("location", location)

    locs = eligible_locations(setup, svc, person, location)
    if not locs:
        return Explanation(False, (_not_offered(setup, svc, person, location),), None, location)

    reasons: list[Reason] = []
    exact = start.microsecond == 0
    s = floor_seconds(start)
    step = duration_and_step(svc)[1]
    end = start + timedelta(minutes=svc.duration_min)
    padded0 = start - timedelta(minutes=svc.buffer_before_min)
    padded1 = end + timedelta(minutes=svc.buffer_after_min)

    # §2-§4: find the window that comes closest to holding the start, by the
    # engine's order of locations (sorted keys) and days.
    cal = StaffCalendar(setup, person, locs)
    best: tuple[int, str, int, tuple[int, int] | None, object] | None = None  # rank, loc, w0, break, location busy
    for loc in locs:
        clock = LocalClock(cal.timezone(loc))
        d0 = clock.local_date(s)
        for d in (d0 - _ONE_DAY, d0, d0 + _ONE_DAY):
            for a_min, b_min in cal.day_spans(loc, d):
                w0, w1 = clock.at(d, a_min), clock.at(d, b_min)
                if not (from_seconds(w0) <= start and end <= from_seconds(w1)):
                    continue
                on_grid = exact and (s - w0) % step == 0
                hit = None
                for c_a, c_b in cal.break_spans(loc, d):
                    c0, c1 = clock.at(d, c_a), clock.at(d, c_b)
                    if _overlaps(start, end, from_seconds(c0), from_seconds(c1)):
                        hit = (c_a, c_b)
                        break
                closed = next((iv for iv in setup.locations[loc].busy if _overlaps(start, end, iv.start, iv.end)), None)
                # Ranks: 1 off the grid, 2 on the grid but in a break, 3 the location is busy, 4 free of all.
                rank = 1 + on_grid + (on_grid and hit is None) + (on_grid and hit is None and closed is None)
                if best is None or rank > best[0]:
                    best = (rank, loc, w0, hit, closed)
    where = best[1] if best is not None else location
    if best is None:
        reasons.append(Reason("outside_hours", "The start is outside the working hours."))
    elif best[0] == 1:
        reasons.append(
            Reason(
                "off_grid",
                "The start is not on the slot grid.",
                {"window_start": _iso(best[2]), "step_min": str(step // 60)},
            )
        )
    elif best[0] == 2 and best[3] is not None:
        reasons.append(
            Reason(
                "break",
                "The appointment would overlap a break.",
                {"start": _hhmm(best[3][0]), "end": _hhmm(best[3][1])},
            )
        )

    for iv in person.time_off:
        if _overlaps(start, end, iv.start, iv.end):
            reasons.append(
                Reason(
                    "time_off",
                    "The staff member is off.",
                    {"start": _iso(floor_seconds(iv.start)), "end": _iso(floor_seconds(iv.end))},
                )
            )
            break
    if best is not None and best[0] == 3 and best[4] is not None:
        iv = best[4]
        reasons.append(
            Reason(
                "location_busy",
                "The location's calendar is busy then.",
                {"start": _iso(floor_seconds(iv.start)), "end": _iso(floor_seconds(iv.end))},
            )
        )

    # §5.2 and §6.
    group = svc.capacity > 1
    mine = [
        b
        for b in setup.bookings
        if b.live and b.staff == staff and (b.ref is None or b.ref not in exclude_refs)
    ]
    session = [b for b in mine if group and b.service == service and b.start == start]
    seats = sum(b.seats for b in session)
    others = [b for b in mine if not (group and b.service == service and b.start == start)]
    booked = _first_conflict(others, start, end, padded0, padded1, padding_only=False)
    if booked is not None:
        reasons.append(_booking_reason("booked", "The staff member has an appointment then.", booked))
    buffer = _first_conflict(others, start, end, padded0, padded1, padding_only=True)
    if buffer is not None:
        reasons.append(
            _booking_reason("buffer", "The buffer time around an appointment overlaps.", buffer)
        )
    for iv in person.busy:
        if _overlaps(padded0, padded1, iv.start, iv.end):
            reasons.append(
                Reason(
                    "busy_external",
                    "The staff member's calendar is busy then.",
                    {"start": _iso(floor_seconds(iv.start)), "end": _iso(floor_seconds(iv.end))},
                )
            )
            break

    earliest = now + timedelta(minutes=svc.min_notice_min)
    latest = now + timedelta(days=svc.max_advance_days)
    if start < earliest:
        reasons.append(
            Reason("min_notice", "The start is too soon.", {"earliest": _iso(floor_seconds(earliest))})
        )
    if start > latest:
        reasons.append(
            Reason("max_advance", "The start is too far ahead.", {"latest": _iso(floor_seconds(latest))})
        )
    if group and seats >= svc.capacity:
        reasons.append(
            Reason(
                "full",
                "The session is full.",
                {"seats": str(seats), "capacity": str(svc.capacity)},
            )
        )

    bookable = not reasons
    seats_left: int | None = None
    if group:
        if bookable:
            seats_left = svc.capacity - seats
        elif seats >= svc.capacity:
            seats_left = 0
    return Explanation(bookable, tuple(reasons), seats_left, where)


def _first_conflict(
    bookings: list[Booking],
    start: datetime,
    end: datetime,
    padded0: datetime,
    padded1: datetime,
    padding_only: bool,
) -> Booking | None:
    for b in sorted(bookings, key=lambda b: b.start):
        b0 = b.start - timedelta(minutes=b.buffer_before_min)
        b1 = b.end + timedelta(minutes=b.buffer_after_min)
        if not _overlaps(padded0, padded1, b0, b1):
            continue
        if _overlaps(start, end, b.start, b.end) != padding_only:
            return b
    return None


def _booking_reason(code: str, message: str, b: Booking) -> Reason:
    detail = {"start": _iso(floor_seconds(b.start)), "end": _iso(floor_seconds(b.end)), "service": b.service}
    if b.ref is not None:
        detail["ref"] = b.ref
    return Reason(code, message, detail)


def _not_offered(setup: Setup, svc: ServiceRules, person: StaffRules, location: str | None) -> Reason:
    if not person.active:
        why = "The staff member is inactive."
    elif not svc.active:
        why = "The service is inactive."
    elif svc.key not in person.services:
        why = "The staff member does not offer this service."
    elif location is not None and location not in person.locations:
        why = "The staff member does not work at this location."
    elif location is not None and not setup.locations[location].active:
        why = "The location is inactive."
    elif location is not None and not serves_at(setup, svc, person, location):
        why = "The service is not offered at this location."
    else:
        why = "The service is not offered where the staff member works."
    detail = {"service": svc.key, "staff": person.key}
    if location is not None:
        detail["location"] = location
    return Reason("not_offered", why, detail)
