"""Wall-clock time of a business for people: entering local dates and times, showing instants labelled
with their zone. Storage stays UTC."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from app.models import tenant as m

UTC = dt.timezone.utc


class SpanError(ValueError):
    """A local span that cannot be saved; `field` names the form field at fault."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


def staff_zone(staff: m.Staff | None, default: str) -> str:
    """The zone a staff member's local times are in: their first location's, else the business's."""
    if staff is not None:
        for location in staff.locations or ():
            if location.timezone:
                return location.timezone
    return default


def local_span(start_date: dt.date | None, start_time: dt.time | None, end_date: dt.date | None,
               end_time: dt.time | None, zone: str) -> tuple[dt.datetime, dt.datetime]:
    """Local dates (times optional: whole days) in `zone` -> the UTC instants [start, end).

    No start time: from the start of the day; no end time: to the end of the end day (so one
    date alone is one whole day). DST is handled by the zone (a skipped time moves forward)."""
    if start_date is None:
        raise SpanError("start_date", "Choose the first day.")
    end_date = end_date or start_date
    tz = ZoneInfo(zone)
    start = dt.datetime.combine(start_date, start_time or dt.time(0), tzinfo=tz)
    if end_time is None:
        end = dt.datetime.combine(end_date + dt.timedelta(days=1), dt.time(0), tzinfo=tz)
    else:
        end = dt.datetime.combine(end_date, end_time, tzinfo=tz)
    start_utc, end_utc = start.astimezone(UTC), end.astimezone(UTC)
    if end_utc <= start_utc:
        raise SpanError("end_date", "The end must be after the start.")
    return start_utc, end_utc


def split_local(start: dt.datetime, end: dt.datetime, zone: str) -> dict:
    """The form values of a stored span: dates, and times unless it covers whole local days."""
    tz = ZoneInfo(zone)
    a, b = start.astimezone(tz), end.astimezone(tz)
    whole = a.time() == dt.time(0) and b.time() == dt.time(0)
    return {
        "start_date": a.date(), "start_time": None if whole else a.time().replace(second=0, microsecond=0),
        "end_date": (b - dt.timedelta(days=1)).date() if whole else b.date(),
        "end_time": None if whole else b.time().replace(second=0, microsecond=0),
    }


def label(instant: dt.datetime | None, zone: str, with_zone: bool = True) -> str:
    """'Mon 11 Jan 2027, 09:00 (Europe/Berlin)': an instant as people read it in `zone`."""
    if instant is None:
        return ""
    local = instant.astimezone(ZoneInfo(zone))
    text = local.strftime("%a %d %b %Y, %H:%M")
    return f"{text} ({zone})" if with_zone else text
