"""A whole week in one save, for a staff member (working intervals per day at a location, breaks,
days off) or a location (opening intervals per day, closed days). Rules here; the admin's week
editors only parse the form and render. Both owners share the reading, copying, checking and
replacing of weekly rows (`_read_rows`, `_replace_rows`); only what a day may hold differs."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from app.models import tenant as m
from app.services.local_time import SpanError

DAY_NAMES = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_SPAN = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*[-–]\s*(\d{1,2}):(\d{2})\s*$")


@dataclass
class DayPlan:
    weekday: int
    location_id: int | None = None
    hours: list[tuple[int, int]] = field(default_factory=list)
    breaks: list[tuple[int, int]] = field(default_factory=list)

    @property
    def name(self) -> str:
        return DAY_NAMES[self.weekday]


def hhmm(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def intervals_text(spans) -> str:
    return ", ".join(f"{hhmm(a)}-{hhmm(b)}" for a, b in spans)


def parse_intervals(text: str, field_name: str) -> list[tuple[int, int]]:
    """"09:00-12:00, 13:00-17:00" -> sorted minute spans; empty text -> []; SpanError naming the field."""
    spans = []
    for part in filter(None, (p.strip() for p in re.split(r"[,;]", text or ""))):
        match = _SPAN.match(part)
        if not match:
            raise SpanError(field_name, f"'{part}': write times as HH:MM-HH:MM, several separated by commas")
        h1, m1, h2, m2 = map(int, match.groups())
        start, end = h1 * 60 + m1, h2 * 60 + m2
        if m1 > 59 or m2 > 59 or start > 1440 or end > 1440:
            raise SpanError(field_name, f"'{part}': times run from 00:00 to 24:00")
        if end <= start:
            raise SpanError(field_name, f"'{part}': the end must be after the start")
        spans.append((start, end))
    spans.sort()
    for (a1, b1), (a2, b2) in zip(spans, spans[1:]):
        if a2 < b1:
            raise SpanError(field_name, f"{hhmm(a1)}-{hhmm(b1)} and {hhmm(a2)}-{hhmm(b2)} overlap")
    return spans


def _read_rows(session: Session, plans: list[DayPlan], model, owner_column, owner_id: int, attr: str) -> None:
    """Append the owner's weekly rows of `model` to the plans' `attr` list (hours or breaks), in order."""
    for row in session.scalars(select(model).where(owner_column == owner_id).order_by(model.weekday, model.start_min)):
        plan = plans[row.weekday]
        if attr == "hours":
            plan.location_id = plan.location_id or getattr(row, "location_id", None)
        getattr(plan, attr).append((row.start_min, row.end_min))


def read_week(session: Session, staff: m.Staff) -> list[DayPlan]:
    """The stored week, one plan per weekday (the day's location: that of its first interval)."""
    plans = [DayPlan(d) for d in range(7)]
    _read_rows(session, plans, m.StaffHours, m.StaffHours.staff_id, staff.id, "hours")
    _read_rows(session, plans, m.StaffBreak, m.StaffBreak.staff_id, staff.id, "breaks")
    return plans


def read_location_week(session: Session, location: m.Location) -> list[DayPlan]:
    """A location's opening hours, one plan per weekday (no breaks: a pause splits the day's intervals)."""
    plans = [DayPlan(d, location.id) for d in range(7)]
    _read_rows(session, plans, m.LocationHours, m.LocationHours.location_id, location.id, "hours")
    return plans


def _replace_rows(session: Session, model, owner_column, owner: dict, plans: list[DayPlan], attr: str,
                  with_location: bool) -> None:
    """Delete the owner's weekly rows of `model` and write the plans' `attr` spans instead."""
    session.execute(delete(model).where(owner_column == next(iter(owner.values()))))
    for plan in plans:
        for start, end in getattr(plan, attr):
            extra = {"location_id": plan.location_id} if with_location else {}
            session.add(model(**owner, **extra, weekday=plan.weekday, start_min=start, end_min=end))


def copy_day(plans: list[DayPlan], source: int, targets=range(1, 5)) -> list[DayPlan]:
    """Monday's hours, breaks and location onto Tuesday-Friday (or other days)."""
    src = plans[source]
    for day in targets:
        plans[day] = DayPlan(day, src.location_id, list(src.hours), list(src.breaks))
    return plans


def replace_week(session: Session, staff: m.Staff, plans: list[DayPlan], default_location: int | None) -> None:
    """Store the whole week at once: every weekly hour and break row of the staff member is replaced.

    A day with hours needs a location (the staff member's only one is the default); breaks on a day
    without hours are refused, so the preview and the stored week are the same. Flushes only."""
    allowed = {loc.id for loc in staff.locations} or None
    for plan in plans:
        if plan.hours and plan.location_id is None:
            plan.location_id = default_location
        if plan.hours and plan.location_id is None:
            raise SpanError(f"location-{plan.weekday}", f"{plan.name}: choose where {staff.name} works")
        if plan.hours and allowed is not None and plan.location_id not in allowed:
            raise SpanError(f"location-{plan.weekday}", f"{plan.name}: {staff.name} does not work at that location")
        if plan.breaks and not plan.hours:
            raise SpanError(f"breaks-{plan.weekday}", f"{plan.name}: a break needs working hours that day")
    owner = {"staff_id": staff.id}
    _replace_rows(session, m.StaffHours, m.StaffHours.staff_id, owner, plans, "hours", with_location=True)
    _replace_rows(session, m.StaffBreak, m.StaffBreak.staff_id, owner, plans, "breaks", with_location=True)
    session.flush()
    session.expire(staff, ["hours", "breaks"])


def replace_location_week(session: Session, location: m.Location, plans: list[DayPlan]) -> None:
    """Store a location's opening hours for the whole week at once (every weekly row replaced). Flushes only."""
    for plan in plans:
        if plan.breaks:
            raise SpanError(f"hours-{plan.weekday}", f"{plan.name}: write a pause as two intervals, e.g. 09:00-12:00, 13:00-18:00")
    _replace_rows(session, m.LocationHours, m.LocationHours.location_id, {"location_id": location.id}, plans, "hours",
                  with_location=False)
    session.flush()
    session.expire(location, ["hours"])


def add_closed_day(session: Session, location: m.Location, day: dt.date, reason: str | None = None) -> None:
    """A closure of the location on `day` (an existing one that day keeps its row, with the new reason if given)."""
    row = session.scalar(select(m.LocationClosure).where(m.LocationClosure.location_id == location.id,
                                                         m.LocationClosure.date == day))
    if row is None:
        session.add(m.LocationClosure(location_id=location.id, date=day, reason=(reason or None)))
    elif reason:
        row.reason = reason
    session.flush()


def closure_marks(session: Session, location: m.Location, first: dt.date, days: int) -> dict[dt.date, str]:
    """date -> "off" for the location's closed days in [first, first + days), for the calendar."""
    last = first + dt.timedelta(days=days)
    return {row.date: "off" for row in session.scalars(select(m.LocationClosure).where(
        m.LocationClosure.location_id == location.id, m.LocationClosure.date >= first, m.LocationClosure.date < last))}


def working_spans(plan: DayPlan) -> list[tuple[int, int]]:
    """The day's bookable spans: hours minus breaks (for the preview)."""
    spans = []
    for start, end in plan.hours:
        pieces = [(start, end)]
        for b0, b1 in plan.breaks:
            pieces = [p for a, z in pieces for p in ((a, min(z, b0)), (max(a, b1), z)) if p[0] < p[1]]
        spans.extend(pieces)
    return spans


def add_day_off(session: Session, staff: m.Staff, day: dt.date, location_ids: list[int]) -> None:
    """A date override with no hours (a day off) at each given location; an existing override that day is replaced."""
    if not location_ids:
        raise SpanError("day_off", f"{staff.name} works at no location yet")
    for location_id in location_ids:
        row = session.scalar(select(m.StaffOverride).where(
            m.StaffOverride.staff_id == staff.id, m.StaffOverride.location_id == location_id, m.StaffOverride.date == day))
        if row is None:
            session.add(m.StaffOverride(staff_id=staff.id, location_id=location_id, date=day, intervals=[]))
        else:
            row.intervals = []
    session.flush()


def month_marks(session: Session, staff: m.Staff, first: dt.date, days: int, zone: str) -> dict[dt.date, str]:
    """date -> "off" (time off or a day-off override) or "changed" (other hours that day), for the calendar."""
    from zoneinfo import ZoneInfo

    last = first + dt.timedelta(days=days)
    marks: dict[dt.date, str] = {}
    for row in session.scalars(select(m.StaffOverride).where(
            m.StaffOverride.staff_id == staff.id, m.StaffOverride.date >= first, m.StaffOverride.date < last)):
        marks[row.date] = "off" if not row.intervals else marks.get(row.date, "changed")
    tz = ZoneInfo(zone)
    start_utc = dt.datetime.combine(first, dt.time(0), tzinfo=tz)
    end_utc = dt.datetime.combine(last, dt.time(0), tzinfo=tz)
    for row in session.scalars(select(m.TimeOff).where(
            m.TimeOff.staff_id == staff.id, m.TimeOff.end_at > start_utc, m.TimeOff.start_at < end_utc)):
        day = row.start_at.astimezone(tz).date()
        while day < last and dt.datetime.combine(day, dt.time(0), tzinfo=tz) < row.end_at:
            if day >= first:
                marks[day] = "off"
            day += dt.timedelta(days=1)
    return marks
