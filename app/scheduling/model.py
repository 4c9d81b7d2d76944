"""Plain data the availability engine reads and returns.

Everything here is a frozen dataclass with no behaviour, so the database layer,
the setup-file importer, the tests and the benchmark can all build the same
inputs. Minutes are minutes since local midnight (0..1440, 1440 = "24:00");
datetimes are timezone-aware instants.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Mapping

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")  # index == date.weekday()

Span = tuple[int, int]  # (start_min, end_min) on the local wall clock, half-open


class UnknownKey(ValueError):
    """A query named a service, location or staff member the setup does not have."""

    def __init__(self, kind: str, key: str) -> None:
        super().__init__(f"unknown {kind}: {key!r}")
        self.kind = kind
        self.key = key


@dataclass(frozen=True)
class Interval:
    start: datetime
    end: datetime


@dataclass(frozen=True)
class LocationRules:
    key: str
    timezone: str
    active: bool = True
    # None: the location sets no opening hours, so it restricts nothing. With a
    # mapping, a weekday that is missing (or empty) is closed.
    hours: Mapping[int, tuple[Span, ...]] | None = None
    closures: frozenset[date] = frozenset()
    # Busy time of the location's own calendar (a front desk's synced calendar): the
    # location is closed for these instants, for every staff member working there.
    busy: tuple[Interval, ...] = ()


@dataclass(frozen=True)
class ServiceRules:
    key: str
    duration_min: int
    buffer_before_min: int = 0
    buffer_after_min: int = 0
    slot_interval_min: int | None = None
    min_notice_min: int = 0
    max_advance_days: int = 365
    capacity: int = 1
    locations: frozenset[str] | None = None  # None: offered at every location
    active: bool = True


@dataclass(frozen=True)
class WeeklyHours:
    location: str
    weekday: int
    start: int
    end: int


@dataclass(frozen=True)
class Break:
    weekday: int
    start: int
    end: int
    location: str | None = None  # None: at every location


@dataclass(frozen=True)
class DateOverride:
    location: str
    date: date
    intervals: tuple[Span, ...]  # empty: a day off


@dataclass(frozen=True)
class StaffRules:
    key: str
    services: frozenset[str]
    locations: frozenset[str]
    active: bool = True
    hours: tuple[WeeklyHours, ...] = ()
    breaks: tuple[Break, ...] = ()
    overrides: tuple[DateOverride, ...] = ()
    time_off: tuple[Interval, ...] = ()
    busy: tuple[Interval, ...] = ()


@dataclass(frozen=True)
class Booking:
    staff: str
    service: str
    start: datetime
    end: datetime
    # The buffers of the booking's own service, frozen at booking time, so a
    # later edit of the service does not move the padding of existing bookings.
    buffer_before_min: int = 0
    buffer_after_min: int = 0
    seats: int = 1
    location: str | None = None
    live: bool = True  # False for cancelled appointments, which block nothing
    ref: str | None = None  # appointment id: named by explain, skipped via exclude_refs


@dataclass(frozen=True)
class Setup:
    locations: Mapping[str, LocationRules]
    services: Mapping[str, ServiceRules]
    staff: Mapping[str, StaffRules]
    bookings: tuple[Booking, ...] = ()


@dataclass(frozen=True)
class SlotQuery:
    service: str
    date_from: date
    date_to: date
    timezone: str
    now: datetime
    location: str | None = None
    staff: str | None = None
    exclude_refs: frozenset[str] = frozenset()  # e.g. the appointment being rescheduled


@dataclass(frozen=True)
class Slot:
    start: datetime
    end: datetime
    staff: tuple[str, ...]
    seats_left: Mapping[str, int] | None = None  # group services only
    # staff key -> the location whose working window holds this start; booking
    # needs it to store the appointment's location.
    locations: Mapping[str, str] = field(default_factory=dict)
