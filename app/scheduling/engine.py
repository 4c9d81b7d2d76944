"""The availability engine: bookable starts by the rules of AVAILABILITY.md.

Pure: it reads a `Setup` and a `SlotQuery` and returns `Slot`s; it never reads
the clock (the query carries `now`) or a database.

How it stays fast: per staff member it merges the padded bookings and busy
blocks into one sorted list of disjoint blockers. A blocker [p0, p1) forbids
every start s in the open range (p0 - duration - buffer_after, p1 + buffer_before)
of the service asked for, so for each free segment [f0, f1) of a working window
the allowed starts are the closed range [f0, f1 - duration] minus those open
ranges (found by bisection), and only then are grid points enumerated. No
candidate is ever tested against every booking.

Instants are whole epoch seconds inside; blockers are widened to whole seconds
(floor of starts, ceiling of ends), which is exact because every candidate start
is a whole second.
"""

from __future__ import annotations

import json
from bisect import bisect_left, bisect_right
from collections import defaultdict
from datetime import date, datetime, timedelta
from math import ceil as _ceil
from math import floor as _floor
from typing import Iterable, Sequence

from app.scheduling.model import (
    Interval,
    LocationRules,
    ServiceRules,
    Setup,
    Slot,
    SlotQuery,
    Span,
    StaffRules,
    UnknownKey,
)
from app.scheduling.wallclock import (
    LocalClock,
    ceil_seconds,
    floor_seconds,
    from_seconds,
    UTC,
    notice_bounds,
)

_ONE_DAY = timedelta(days=1)


# --- local spans (minutes of one local day) --------------------------------------


def merge_spans(spans: Iterable[Span]) -> tuple[Span, ...]:
    """Sort spans and merge those that touch or overlap; drop empty ones."""
    out: list[list[int]] = []
    for a, b in sorted(spans):
        if b <= a:
            continue
        if out and a <= out[-1][1]:
            if b > out[-1][1]:
                out[-1][1] = b
        else:
            out.append([a, b])
    return tuple((a, b) for a, b in out)


def intersect_spans(xs: Sequence[Span], ys: Sequence[Span]) -> tuple[Span, ...]:
    """Intersection of two merged span lists, merged."""
    out: list[Span] = []
    i = j = 0
    while i < len(xs) and j < len(ys):
        a = max(xs[i][0], ys[j][0])
        b = min(xs[i][1], ys[j][1])
        if a < b:
            out.append((a, b))
        if xs[i][1] < ys[j][1]:
            i += 1
        else:
            j += 1
    return merge_spans(out)


def _merge_instants(pairs: list[tuple[int, int]]) -> tuple[list[int], list[int]]:
    """Merge half-open instant intervals that touch or overlap; return parallel start/end lists."""
    starts: list[int] = []
    ends: list[int] = []
    for a, b in sorted(pairs):
        if b <= a:
            continue
        if ends and a <= ends[-1]:
            if b > ends[-1]:
                ends[-1] = b
        else:
            starts.append(a)
            ends.append(b)
    return starts, ends


# --- who may serve -------------------------------------------------------------


def serves_at(setup: Setup, service: ServiceRules, staff: StaffRules, loc_key: str) -> bool:
    """Rule §1 for one location: may `staff` serve `service` at `loc_key`."""
    loc = setup.locations.get(loc_key)
    return (
        loc is not None
        and loc.active
        and service.active
        and staff.active
        and service.key in staff.services
        and loc_key in staff.locations
        and (service.locations is None or loc_key in service.locations)
    )


def eligible_locations(
    setup: Setup, service: ServiceRules, staff: StaffRules, only: str | None = None
) -> list[str]:
    """Sorted keys of the locations where `staff` may serve `service`."""
    keys = staff.locations if only is None else ({only} & staff.locations)
    return sorted(k for k in keys if serves_at(setup, service, staff, k))


# --- per-staff calendar --------------------------------------------------------


class StaffCalendar:
    """A staff member's wall-clock rules at some locations, precomputed per weekday."""

    __slots__ = ("staff", "locations", "weekly", "breaks", "overrides", "_loc_rules")

    def __init__(self, setup: Setup, staff: StaffRules, locations: Sequence[str]) -> None:
        self.staff = staff
        self.locations = list(locations)
        self._loc_rules: dict[str, LocationRules] = {k: setup.locations[k] for k in locations}
        raw_hours: dict[tuple[str, int], list[Span]] = {}
        for h in staff.hours:
            raw_hours.setdefault((h.location, h.weekday), []).append((h.start, h.end))
        raw_breaks: dict[tuple[str, int], list[Span]] = {}
        for br in staff.breaks:
            for k in self.locations if br.location is None else (br.location,):
                raw_breaks.setdefault((k, br.weekday), []).append((br.start, br.end))
        raw_overrides: dict[tuple[str, date], list[Span]] = {}
        for ov in staff.overrides:
            raw_overrides.setdefault((ov.location, ov.date), []).extend(ov.intervals)
        # Per location: merged working spans per weekday (already cut to the
        # location's hours), merged break spans per weekday, and the dates whose
        # override replaces the weekday (cut to the location's hours too).
        self.weekly: dict[str, list[tuple[Span, ...]]] = {}
        self.breaks: dict[str, list[tuple[Span, ...]]] = {}
        self.overrides: dict[str, dict[date, tuple[Span, ...]]] = {k: {} for k in self.locations}
        for k in self.locations:
            self.weekly[k] = [
                self._clip(k, wd, merge_spans(raw_hours.get((k, wd), ()))) for wd in range(7)
            ]
            self.breaks[k] = [merge_spans(raw_breaks.get((k, wd), ())) for wd in range(7)]
        for (k, d), spans in raw_overrides.items():
            if k in self._loc_rules:
                self.overrides[k][d] = self._clip(k, d.weekday(), merge_spans(spans))

    def _clip(self, loc_key: str, weekday: int, spans: tuple[Span, ...]) -> tuple[Span, ...]:
        hours = self._loc_rules[loc_key].hours
        if hours is None or not spans:
            return spans
        return intersect_spans(spans, merge_spans(hours.get(weekday, ())))

    def day_spans(self, loc_key: str, d: date) -> tuple[Span, ...]:
        """Merged local working spans at a location on a local date (§2.1-2.3)."""
        if d in self._loc_rules[loc_key].closures:
            return ()
        ov = self.overrides[loc_key].get(d)
        return self.weekly[loc_key][d.weekday()] if ov is None else ov

    def break_spans(self, loc_key: str, d: date) -> tuple[Span, ...]:
        """Merged local break spans at a location on a local date."""
        return self.breaks[loc_key][d.weekday()]

    def timezone(self, loc_key: str) -> str:
        """IANA zone of a location."""
        return self._loc_rules[loc_key].timezone


# --- the engine ---------------------------------------------------------------


class _StaffPlan:
    __slots__ = ("key", "cal", "pads", "raw", "sessions")

    def __init__(self, key: str, cal: StaffCalendar) -> None:
        self.key = key
        self.cal = cal
        self.pads: list[tuple[int, int]] = []  # padded live bookings near the range
        self.raw: list[tuple[int, int, str, int | None]] = []  # same, for group sessions
        self.sessions: dict[int, int] = {}  # start -> seats, group services only


def _check_query(setup: Setup, query: SlotQuery) -> ServiceRules:
    service = setup.services.get(query.service)
    if service is None:
        raise UnknownKey("service", query.service)
    if query.location is not None and query.location not in setup.locations:
        raise UnknownKey("location", query.location)
    if query.staff is not None and query.staff not in setup.staff:
        raise UnknownKey("staff", query.staff)
    return service


def duration_and_step(service: ServiceRules) -> tuple[int, int]:
    """The service's duration and grid step in seconds, refusing values that would never end."""
    dur = 60 * service.duration_min
    step = 60 * (service.slot_interval_min or service.duration_min)
    if dur <= 0 or step <= 0:
        raise ValueError(f"service {service.key!r}: duration and slot interval must be positive")
    return dur, step


def _to_seconds(pairs: Iterable[Interval]) -> list[tuple[int, int]]:
    return [(floor_seconds(iv.start), ceil_seconds(iv.end)) for iv in pairs]


# A "piece" is (first, last, w0): the grid-aligned first start and the last
# possible start (f1 - duration) of one free segment, and the start w0 of the
# working window whose grid it follows. Starts are w0 + k * step in [first, last].


def _free_segments(w0: int, w1: int, cuts: Sequence[tuple[int, int]]) -> list[tuple[int, int]]:
    """[w0, w1) minus the sorted `cuts` (empty ones ignored): the free segments, in order."""
    free = []
    cur = w0
    for c0, c1 in cuts:
        if c1 <= c0 or c1 <= cur:
            continue
        if c0 >= w1:
            break
        if c0 > cur:
            free.append((cur, c0))
        cur = c1
        if cur >= w1:
            break
    if cur < w1:
        free.append((cur, w1))
    return free


def _local_pieces(
    spans: Sequence[Span], breaks: Sequence[Span], dur: int, step: int
) -> tuple[tuple[int, int, int], ...]:
    """Pieces of one plain local day, in seconds after local midnight."""
    out = []
    for w0m, w1m in spans:
        if (w1m - w0m) * 60 < dur:
            continue
        w0 = w0m * 60
        for f0m, f1m in _free_segments(w0m, w1m, breaks):
            last = f1m * 60 - dur
            first = w0 - (w0 - f0m * 60) // step * step
            if first <= last:
                out.append((first, last, w0))
    return tuple(out)


def _instant_pieces(
    clock: LocalClock,
    d: date,
    spans: Sequence[Span],
    breaks: Sequence[Span],
    off_s: list[int],
    off_e: list[int],
    dur: int,
    step: int,
) -> list[tuple[int, int, int]]:
    """Pieces of one local day as instants: for DST days and days with time off."""
    out = []
    n_off = len(off_s)
    for w0m, w1m in spans:
        w0 = clock.at(d, w0m)
        w1 = clock.at(d, w1m)
        if w1 - w0 < dur:
            continue
        cuts = [(clock.at(d, c0), clock.at(d, c1)) for c0, c1 in breaks]
        i = bisect_right(off_e, w0)
        while i < n_off and off_s[i] < w1:
            cuts.append((off_s[i], off_e[i]))
            i += 1
        cuts.sort()
        for f0, f1 in _free_segments(w0, w1, cuts):
            last = f1 - dur
            first = w0 - (w0 - f0) // step * step
            if first <= last:
                out.append((first, last, w0))
    return out


def find_slots(setup: Setup, query: SlotQuery) -> list[Slot]:
    """Every bookable start of the query's range, with its staff (spec §7)."""
    result = _find(setup, query)
    if result is None:
        return []
    found, seats_found, dur, group = result
    out: list[Slot] = []
    length = timedelta(seconds=dur)
    gaps: dict[int, timedelta] = {}
    prev = 0
    when = None
    for s in sorted(found):
        # Stepping from the previous start keeps datetime construction cheap.
        if when is None:
            when = from_seconds(s)
        else:
            gap = gaps.get(s - prev)
            if gap is None:
                gap = gaps[s - prev] = timedelta(seconds=s - prev)
            when = when + gap
        prev = s
        locs = found[s]
        names = tuple(locs)
        out.append(
            # Positional: measurably cheaper than keywords for thousands of slots.
            Slot(when, when + length, names, seats_found[s] if group else None, locs)
        )
    return out


def find_slots_json(setup: Setup, query: SlotQuery) -> str:
    """find_slots() as the API's compact JSON text, equal to dumping slot_to_json() of each slot.

    Written straight from the engine's integer starts: no Slot objects, no
    datetimes, one staff list per distinct staff set.
    """
    _starts, parts = find_slots_json_parts(setup, query)
    return '{"slots":[' + ",".join(parts) + "]}"


def find_slots_json_parts(setup: Setup, query: SlotQuery) -> tuple[list[int], list[str]]:
    """find_slots_json() before the join: each slot's start (epoch seconds, ascending) and its JSON object text."""
    result = _find(setup, query)
    if result is None:
        return [], []
    found, seats_found, dur, group = result
    staff_text: dict[tuple, str] = {}
    starts = sorted(found)
    parts = []
    append = parts.append
    for s in starts:
        names = tuple(found[s])
        listed = staff_text.get(names)
        if listed is None:
            listed = staff_text[names] = json.dumps(list(names), separators=(",", ":"))
        if group:
            seats = json.dumps(seats_found[s], separators=(",", ":"))
            append(f'{{"start":"{_iso_seconds(s)}","end":"{_iso_seconds(s + dur)}","staff":{listed},"seats_left":{seats}}}')
        else:
            append(f'{{"start":"{_iso_seconds(s)}","end":"{_iso_seconds(s + dur)}","staff":{listed}}}')
    return starts, parts


_EPOCH_DAY = date(1970, 1, 1)
# Instant texts by epoch second: the same grid of starts is written for every query.
_ISO_TEXT: dict[int, str] = {}


def _iso_seconds(s: int) -> str:
    """Whole seconds since the epoch as 'YYYY-MM-DDTHH:MM:SSZ'."""
    text = _ISO_TEXT.get(s)
    if text is None:
        if len(_ISO_TEXT) > 65_536:  # about 8 MB at most: a year of 5-minute starts
            _ISO_TEXT.clear()
        day, tod = divmod(s, 86400)
        h, rest = divmod(tod, 3600)
        text = _ISO_TEXT[s] = f"{(_EPOCH_DAY + timedelta(days=day)).isoformat()}T{h:02d}:{rest // 60:02d}:{rest % 60:02d}Z"
    return text


def _find(setup: Setup, query: SlotQuery):
    """The core of find_slots: start -> {staff: location}, start -> {staff: seats left}, duration, group?; None if nothing."""
    service = _check_query(setup, query)
    if query.now.tzinfo is None:
        raise ValueError("query.now must be timezone-aware")
    if not service.active or query.date_to < query.date_from:
        return None

    dur, step = duration_and_step(service)
    bb = 60 * service.buffer_before_min
    span_after = dur + 60 * service.buffer_after_min  # a blocker starting before s + span_after hits s
    capacity = service.capacity
    group = capacity > 1

    qclock = LocalClock(query.timezone)
    q0 = qclock.at(query.date_from, 0)
    q1 = qclock.at(query.date_to + _ONE_DAY, 0)
    n_lo, n_hi = notice_bounds(query.now, service.min_notice_min, service.max_advance_days)
    lo = max(q0, n_lo)
    hi = min(q1 - 1, n_hi)  # closed bound on starts
    if lo > hi:
        return None

    staff_keys = [query.staff] if query.staff is not None else sorted(setup.staff)
    plans: dict[str, _StaffPlan] = {}
    for key in staff_keys:
        staff = setup.staff[key]
        if not staff.active or service.key not in staff.services:
            continue
        locs = eligible_locations(setup, service, staff, query.location)
        if locs:
            plans[key] = _StaffPlan(key, StaffCalendar(setup, staff, locs))
    if not plans:
        return None

    # Blockers only matter if they come near [lo - bb, hi + dur + ba).
    reach_lo = lo - bb
    reach_hi = hi + span_after
    exclude = query.exclude_refs
    plans_get = plans.get
    for b in setup.bookings:
        if not b.live:
            continue
        plan = plans_get(b.staff)
        if plan is None or (exclude and b.ref in exclude):
            continue
        # Outward rounding to whole seconds is exact for whole-second candidates.
        p0 = _floor(b.start.timestamp()) - 60 * b.buffer_before_min
        p1 = _ceil(b.end.timestamp()) + 60 * b.buffer_after_min
        if p1 <= reach_lo or p0 >= reach_hi:
            continue
        plan.pads.append((p0, p1))
        if group:
            # A session start can only match a candidate if it is a whole second.
            st = floor_seconds(b.start) if b.start.microsecond == 0 else None
            plan.raw.append((p0, p1, b.service, st))
            if b.service == service.key and st is not None:
                plan.sessions[st] = plan.sessions.get(st, 0) + b.seats

    # The local days of each location that can hold a start in [lo, hi]:
    # (date, weekday, instant of midnight, plain 24 h day?), closures left out.
    clocks: dict[str, LocalClock] = {query.timezone: qclock}
    days_of: dict[str, list[tuple[date, int, int, bool]]] = {}
    for plan in plans.values():
        for loc in plan.cal.locations:
            if loc in days_of:
                continue
            rules = setup.locations[loc]
            clock = clocks.get(rules.timezone)
            if clock is None:
                clock = clocks[rules.timezone] = LocalClock(rules.timezone)
            days = []
            d = clock.local_date(lo) - _ONE_DAY
            d_last = clock.local_date(hi) + _ONE_DAY
            while d <= d_last:
                if d not in rules.closures:
                    u_mid, plain = clock.day(d)
                    if clock.at(d, 1440) > lo and u_mid <= hi:
                        days.append((d, d.weekday(), u_mid, plain))
                d += _ONE_DAY
            days_of[loc] = days

    # start -> {staff: location}, filled in staff-key order so that it becomes
    # the slot's `locations` as is and its keys the sorted staff tuple.
    found: defaultdict[int, dict[str, str]] = defaultdict(dict)
    seats_found: defaultdict[int, dict[str, int]] = defaultdict(dict)

    for key in sorted(plans):
        plan = plans[key]
        cal = plan.cal
        staff = cal.staff
        busy = _to_seconds(staff.busy)
        blk_s, blk_e = _merge_instants(plan.pads + busy)
        n_blk = len(blk_s)
        staff_off = _to_seconds(staff.time_off)
        staff_off_merged = _merge_instants(staff_off)
        sess_starts = sorted(plan.sessions) if group else []
        busy_s, busy_e = _merge_instants(busy) if sess_starts else ([], [])
        per_loc: list[tuple[str, list[int]]] = []
        session_ok: dict[int, str] = {}

        for loc in cal.locations:
            # Location busy time closes the location for those instants: cut from the free
            # time there like time off (§3), so it never shifts the grid (§4).
            loc_busy = setup.locations[loc].busy
            off_s, off_e = _merge_instants(staff_off + _to_seconds(loc_busy)) if loc_busy else staff_off_merged
            n_off = len(off_s)
            weekly = cal.weekly[loc]
            breaks = cal.breaks[loc]
            overrides = cal.overrides[loc]
            clock = clocks[cal.timezone(loc)]
            templates: list[tuple[tuple[int, int, int], ...] | None] = [None] * 7
            starts: list[int] = []
            extend = starts.extend
            for d, wd, u_mid, plain in days_of[loc]:
                spans = overrides.get(d) if overrides else None
                if spans is None:
                    spans = weekly[wd]
                    if not spans:
                        continue
                    pieces = templates[wd]
                    if pieces is None:
                        pieces = templates[wd] = _local_pieces(spans, breaks[wd], dur, step)
                elif not spans:
                    continue
                else:
                    pieces = _local_pieces(spans, breaks[wd], dur, step)
                base = u_mid
                if not plain or (
                    n_off
                    and (i := bisect_right(off_e, u_mid)) < n_off
                    and off_s[i] < u_mid + 86400
                ):
                    pieces = _instant_pieces(clock, d, spans, breaks[wd], off_s, off_e, dur, step)
                    base = 0

                for first, last, w0 in pieces:
                    first += base
                    last += base
                    if first < lo:
                        w = w0 + base
                        first = w - (w - lo) // step * step
                    if last > hi:
                        last = hi
                    if first > last:
                        continue
                    # Allowed starts: [first, last] minus each blocker's open
                    # forbidden range (p0 - dur - buffer_after, p1 + buffer_before).
                    i = bisect_right(blk_e, first - bb)
                    if i == n_blk or blk_s[i] - span_after >= last:
                        extend(range(first, last + 1, step))
                        continue
                    w = w0 + base
                    cur = first
                    while True:
                        if i < n_blk and blk_s[i] - span_after < last:
                            x = blk_s[i] - span_after
                            if x >= cur:
                                extend(range(cur, x + 1, step))
                            nxt = blk_e[i] + bb
                            if nxt > cur:
                                # The first grid point at or after the blocker's end.
                                cur = w - (w - nxt) // step * step
                                if cur > last:
                                    break
                            i += 1
                        else:
                            extend(range(cur, last + 1, step))
                            break

                if sess_starts:
                    j = bisect_left(sess_starts, u_mid)
                    while j < len(sess_starts) and sess_starts[j] < u_mid + 2 * 86400:
                        s = sess_starts[j]
                        j += 1
                        if s in session_ok or not lo <= s <= hi:
                            continue
                        for first, last, w0 in pieces:
                            if base + first <= s <= base + last and (s - w0 - base) % step == 0:
                                break
                        else:
                            continue
                        if not _session_blocked(plan, busy_s, busy_e, s, bb, span_after, service.key):
                            session_ok[s] = loc
            per_loc.append((loc, starts))

        if len(per_loc) == 1 and not group:
            loc = per_loc[0][0]
            for s in per_loc[0][1]:
                found[s][key] = loc
            continue
        # Later writes win, so writing locations backwards leaves each start
        # with the first location (by key) whose window holds it.
        mine: dict[int, str] = {}
        for loc, starts in reversed(per_loc):
            mine.update(dict.fromkeys(starts, loc))
        if not group:
            for s, loc in mine.items():
                found[s][key] = loc
            continue
        seats_of: dict[int, int] = {}
        # §6: a session's own bookings never block its start; a full one is never offered.
        for s, seats in plan.sessions.items():
            mine.pop(s, None)
            if seats < capacity and s in session_ok:
                mine[s] = session_ok[s]
                seats_of[s] = capacity - seats
        for s, loc in mine.items():
            found[s][key] = loc
            seats_found[s][key] = seats_of.get(s, capacity)

    return found, seats_found, dur, group


def _session_blocked(
    plan: _StaffPlan, busy_s: list[int], busy_e: list[int], s: int, bb: int, span_after: int, service: str
) -> bool:
    """Rules 5.2/5.3 for a session start, ignoring the session's own bookings."""
    c0 = s - bb
    c1 = s + span_after
    i = bisect_right(busy_e, c0)
    if i < len(busy_s) and busy_s[i] < c1:
        return True
    for p0, p1, svc, st in plan.raw:
        if p0 < c1 and c0 < p1 and not (svc == service and st == s):
            return True
    return False


def slot_to_json(slot: Slot, group: bool) -> dict:
    """The API/scenario shape of a slot; `seats_left` only for group services."""
    out: dict = {
        "start": _iso_z(slot.start),
        "end": _iso_z(slot.end),
        "staff": list(slot.staff),
    }
    if group:
        out["seats_left"] = dict(slot.seats_left or {})
    return out


def _iso_z(dt: datetime) -> str:
    # isoformat() is C code; this runs twice per slot, so it dominated serialising a month.
    if dt.utcoffset():
        dt = dt.astimezone(UTC)
    return dt.replace(microsecond=0).isoformat()[:19] + "Z"