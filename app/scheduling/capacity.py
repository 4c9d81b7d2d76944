"""Available working time per staff member: the engine's working windows, as seconds.

Pure, like the rest of app/scheduling: working spans (weekly hours or the date's
override, cut to the location's hours, none on closures) minus breaks and time
off, turned into instants through each location's clock, so a DST day counts the
hours it really has (a 09:00-17:00 day is 8 h even on the night the clocks move).
"""

from __future__ import annotations

from datetime import date, timedelta

from app.scheduling.engine import StaffCalendar, _free_segments, _to_seconds
from app.scheduling.model import Setup
from app.scheduling.wallclock import LocalClock

_ONE_DAY = timedelta(days=1)


def available_seconds(setup: Setup, staff_key: str, date_from: date, date_to: date, location: str | None = None) -> int:
    """Seconds `staff_key` is available to work on the local dates [date_from, date_to] (at `location`, or anywhere)."""
    staff = setup.staff.get(staff_key)
    if staff is None or not staff.active or date_to < date_from:
        return 0
    locs = sorted(
        k for k in staff.locations
        if k in setup.locations and setup.locations[k].active and (location is None or k == location)
    )
    if not locs:
        return 0
    cal = StaffCalendar(setup, staff, locs)
    off = sorted(_to_seconds(staff.time_off))
    clocks: dict[str, LocalClock] = {}
    total = 0
    for loc in locs:
        zone = cal.timezone(loc)
        clock = clocks.get(zone) or clocks.setdefault(zone, LocalClock(zone))
        d = date_from
        while d <= date_to:
            spans = cal.day_spans(loc, d)
            if spans:
                breaks = cal.break_spans(loc, d)
                for w0m, w1m in spans:
                    w0, w1 = clock.at(d, w0m), clock.at(d, w1m)
                    cuts = [(clock.at(d, b0), clock.at(d, b1)) for b0, b1 in breaks]
                    cuts += [o for o in off if o[0] < w1 and o[1] > w0]
                    cuts.sort()
                    total += sum(f1 - f0 for f0, f1 in _free_segments(w0, w1, cuts))
            d += _ONE_DAY
    return total
