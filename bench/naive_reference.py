"""A deliberately simple, minute-by-minute reading of AVAILABILITY.md.

It exists to check the engine: it shares no code with it (only the dataclasses
of app/scheduling/model.py), walks every local day of every staff member one
minute at a time, and tests every grid candidate against every rule directly.
It is slow on purpose; clarity is its only job. It assumes whole-minute zone
offsets and transitions, which holds for every zone since the 1970s.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone
from functools import lru_cache
from zoneinfo import ZoneInfo

from app.scheduling.model import Setup, Slot, SlotQuery

EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
NAIVE_EPOCH = datetime(1970, 1, 1)
MINUTE = timedelta(minutes=1)


def instant(u: int) -> datetime:
    """The UTC datetime of `u` minutes after the epoch."""
    return EPOCH + u * MINUTE


def wall(u: int, tz: ZoneInfo) -> datetime:
    """The local wall-clock time at instant `u` (epoch minutes)."""
    return datetime.fromtimestamp(u * 60, tz).replace(tzinfo=None)


@lru_cache(maxsize=None)
def to_instant(tzname: str, local: datetime) -> int:
    """§2.4: the earliest instant whose wall clock reads `local` or later (epoch minutes).

    For an existing time that is the time itself; for an ambiguous one, its
    first occurrence; for one in a gap, the first instant after the gap.
    """
    tz = ZoneInfo(tzname)
    # No zone is ahead of UTC by more than 14 h, so no instant before this one
    # can read `local` or later: scanning forward from it finds the earliest.
    u = (local - NAIVE_EPOCH) // MINUTE - 15 * 60
    while wall(u, tz) < local:
        u += 1
    return u


def local_instant(tzname: str, d: date, minute: int) -> int:
    """Epoch minutes of local `minute` (0..1440) of date `d`."""
    return to_instant(tzname, datetime.combine(d, time()) + minute * MINUTE)


def runs(flags: list[bool]) -> list[tuple[int, int]]:
    """Maximal runs of True as half-open (start, end) minute spans."""
    out = []
    start = None
    for m, on in enumerate(flags + [False]):
        if on and start is None:
            start = m
        elif not on and start is not None:
            out.append((start, m))
            start = None
    return out


def paint(spans) -> list[bool]:
    """Minute flags of a local day covered by any of `spans`."""
    flags = [False] * 1440
    for a, b in spans:
        for m in range(a, b):
            flags[m] = True
    return flags


def overlaps(a0: datetime, a1: datetime, b0: datetime, b1: datetime) -> bool:
    """Whether two half-open intervals share an instant."""
    return max(a0, b0) < min(a1, b1)


def naive_find_slots(setup: Setup, query: SlotQuery) -> list[Slot]:
    """The same answer as engine.find_slots, found the slow way."""
    svc = setup.services[query.service]
    if not svc.active:
        return []
    dur = svc.duration_min
    step = svc.slot_interval_min or svc.duration_min
    cap = svc.capacity
    range_start = local_instant(query.timezone, query.date_from, 0)
    range_end = local_instant(query.timezone, query.date_to + timedelta(days=1), 0)
    earliest = query.now + timedelta(minutes=svc.min_notice_min)
    latest = query.now + timedelta(days=svc.max_advance_days)

    found: dict[int, dict[str, tuple[str, int | None]]] = {}
    for staff_key in sorted(setup.staff):
        if query.staff is not None and staff_key != query.staff:
            continue
        person = setup.staff[staff_key]
        if not person.active or svc.key not in person.services:
            continue
        bookings = [
            b
            for b in setup.bookings
            if b.staff == staff_key and b.live and b.ref not in query.exclude_refs
        ]
        for loc_key in sorted(person.locations):
            if query.location is not None and loc_key != query.location:
                continue
            loc = setup.locations.get(loc_key)
            if loc is None or not loc.active:
                continue
            if svc.locations is not None and loc_key not in svc.locations:
                continue
            tzname = loc.timezone
            # Any location's day that can hold a start of the range lies within
            # two days of the range's own dates.
            d = query.date_from - timedelta(days=2)
            while d <= query.date_to + timedelta(days=2):
                wd = d.weekday()
                overrides = [o for o in person.overrides if o.location == loc_key and o.date == d]
                if overrides:
                    spans = [sp for o in overrides for sp in o.intervals]
                else:
                    spans = [(h.start, h.end) for h in person.hours if h.location == loc_key and h.weekday == wd]
                works = paint(spans)
                if loc.hours is not None:
                    open_ = paint(loc.hours.get(wd, ()))
                    works = [w and o for w, o in zip(works, open_)]
                if d in loc.closures:
                    works = [False] * 1440
                pause = paint(
                    (br.start, br.end)
                    for br in person.breaks
                    if br.weekday == wd and br.location in (None, loc_key)
                )
                pauses = [
                    (local_instant(tzname, d, a), local_instant(tzname, d, b)) for a, b in runs(pause)
                ]
                for a, b in runs(works):
                    w0 = local_instant(tzname, d, a)
                    w1 = local_instant(tzname, d, b)
                    free = set()
                    for u in range(w0, w1):
                        if any(p0 <= u < p1 for p0, p1 in pauses):
                            continue
                        if any(overlaps(instant(u), instant(u + 1), t.start, t.end) for t in person.time_off):
                            continue
                        free.add(u)
                    near = [
                        b
                        for b in bookings
                        if overlaps(
                            instant(w0) - timedelta(minutes=svc.buffer_before_min),
                            instant(w1) + timedelta(minutes=svc.buffer_after_min),
                            b.start - timedelta(minutes=b.buffer_before_min),
                            b.end + timedelta(minutes=b.buffer_after_min),
                        )
                    ]
                    s = w0
                    while s < w1:
                        seats_left = _check(svc, person, near, free, s, dur, cap, earliest, latest)
                        if seats_left is not False and range_start <= s < range_end:
                            found.setdefault(s, {}).setdefault(staff_key, (loc_key, seats_left))
                        s += step
                d += timedelta(days=1)

    out = []
    for s in sorted(found):
        who = found[s]
        names = tuple(sorted(who))
        out.append(
            Slot(
                start=instant(s),
                end=instant(s + dur),
                staff=names,
                seats_left={k: who[k][1] for k in names} if cap > 1 else None,
                locations={k: who[k][0] for k in names},
            )
        )
    return out


def _check(svc, person, bookings, free, s, dur, cap, earliest, latest):
    """Seats left (None for a one-to-one service) if `s` is bookable, else False."""
    if not all(u in free for u in range(s, s + dur)):
        return False
    start = instant(s)
    if start < earliest or start > latest:
        return False
    session = [b for b in bookings if cap > 1 and b.service == svc.key and b.start == start]
    seats = sum(b.seats for b in session)
    if session and seats >= cap:
        return False
    p0 = start - timedelta(minutes=svc.buffer_before_min)
    p1 = start + timedelta(minutes=dur + svc.buffer_after_min)
    for b in bookings:
        if any(b is x for x in session):
            continue
        b0 = b.start - timedelta(minutes=b.buffer_before_min)
        b1 = b.end + timedelta(minutes=b.buffer_after_min)
        if overlaps(p0, p1, b0, b1):
            return False
    for blk in person.busy:
        if overlaps(p0, p1, blk.start, blk.end):
            return False
    return cap - seats if cap > 1 else None
