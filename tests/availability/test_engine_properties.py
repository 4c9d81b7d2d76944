"""Random small setups: the engine agrees with the minute-by-minute reference and
with `explain`, and every slot it returns obeys the rules on its face.

Dates cluster around DST changes (Europe, the US, Havana at midnight, Lord Howe's
half hour) so that gaps and folds come up often.
"""

from __future__ import annotations

import importlib.util
import json
from datetime import date, datetime, time, timedelta, timezone
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.scheduling.engine import find_slots, find_slots_json, slot_to_json
from app.scheduling.explain import explain
from app.scheduling.model import (
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
_REF_PATH = Path(__file__).resolve().parents[2] / "bench" / "naive_reference.py"
_spec = importlib.util.spec_from_file_location("scheduling_naive_reference", _REF_PATH)
naive = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(naive)

ZONES = ["Europe/Berlin", "America/New_York", "America/Havana", "Australia/Lord_Howe", "Europe/London", "UTC"]
ANCHORS = [
    date(2027, 3, 28),  # EU spring forward
    date(2027, 10, 31),  # EU fall back
    date(2027, 3, 14),  # US spring forward; Havana skips midnight
    date(2027, 11, 7),  # US fall back; Havana repeats midnight-01:00
    date(2027, 4, 4),  # Lord Howe falls back half an hour
    date(2027, 10, 3),  # Lord Howe springs forward half an hour
    date(2027, 1, 11),  # nothing happens
]

SETTINGS = settings(
    max_examples=100,
    deadline=None,
    database=None,  # keep the work tree free of .hypothesis/
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

quarter = st.integers(0, 96).map(lambda q: q * 15)  # minutes 00:00..24:00


def _between(lo_q: int, hi_q: int, min_len: int, max_len: int):
    """(start, end) minutes with start in [lo_q, hi_q] quarters and a length in quarters."""
    return st.integers(lo_q, hi_q).flatmap(
        lambda q: st.integers(q + min_len, min(96, q + max_len)).map(lambda e: (q * 15, e * 15))
    )


day_span = _between(24, 48, 16, 40)  # starts 06:00-12:00, 4-10 hours
night_span = _between(0, 12, 4, 20)  # around the small hours, where DST changes happen
open_span = _between(16, 36, 32, 64)  # opening hours: from 04:00-09:00, 8-16 hours
# Mostly working-day spans; some short, some anywhere, some empty or backwards.
span = st.one_of(day_span, day_span, night_span, _between(0, 95, 1, 16), st.tuples(quarter, quarter))
mostly = st.sampled_from([True] * 9 + [False])  # first element first: usually True


@st.composite
def cases(draw, group=False):
    anchor = draw(st.sampled_from(ANCHORS))
    near = st.integers(-2, 2).map(lambda k: anchor + timedelta(days=k))
    frm = draw(near)
    to = frm + timedelta(days=draw(st.integers(0, 2)))
    in_range = st.integers(0, (to - frm).days).map(lambda k: frm + timedelta(days=k))

    loc_keys = ["l1", "l2"][: draw(st.integers(1, 2))]
    locations = {}
    for key in loc_keys:
        hours = draw(
            st.sampled_from([None, None, None])
            | st.dictionaries(
                st.integers(0, 6), st.lists(st.one_of(open_span, open_span, span), min_size=1, max_size=2).map(tuple), min_size=5
            )
        )
        locations[key] = LocationRules(
            key,
            draw(st.sampled_from(ZONES)),
            active=draw(mostly),
            hours=hours,
            closures=frozenset(draw(st.lists(near, max_size=1))),
        )

    capacity = draw(st.sampled_from([2, 3, 4] if group else [1, 1, 2, 3]))
    main = ServiceRules(
        "s",
        duration_min=draw(st.sampled_from([15, 30, 45, 60, 90])),
        buffer_before_min=draw(st.sampled_from([0, 0, 5, 15])),
        buffer_after_min=draw(st.sampled_from([0, 0, 10, 30])),
        slot_interval_min=draw(st.sampled_from([None, 10, 15, 20, 30, 45])),
        min_notice_min=draw(st.sampled_from([0, 0, 60, 600])),
        max_advance_days=draw(st.sampled_from([2, 3, 365, 365])),
        capacity=capacity,
        locations=draw(
            st.sampled_from([None, None, None]) | st.sets(st.sampled_from(loc_keys), min_size=1).map(frozenset)
        ),
        active=draw(mostly),
    )
    other = ServiceRules(
        "o",
        duration_min=draw(st.sampled_from([15, 30, 60])),
        buffer_before_min=draw(st.sampled_from([0, 10])),
        buffer_after_min=draw(st.sampled_from([0, 20])),
    )
    services = {"s": main, "o": other}
    step = main.slot_interval_min or main.duration_min

    staff = {}
    for key in ["p1", "p2", "p3"][: draw(st.integers(1, 3))]:
        where = sorted(draw(st.sets(st.sampled_from(loc_keys), min_size=1)))
        hours = []
        for wd in range(7):
            # Hypothesis favours the first element: a weekday usually has one span.
            for _ in range(draw(st.sampled_from([1, 1, 1, 2, 0]))):
                a, b = draw(span)
                hours.append(WeeklyHours(draw(st.sampled_from(where)), wd, a, b))
        breaks = tuple(
            Break(wd, a, b, loc)
            for wd, (a, b), loc in draw(
                st.lists(st.tuples(st.integers(0, 6), span, st.none() | st.sampled_from(where)), max_size=3)
            )
        )
        overrides = tuple(
            DateOverride(loc, d, tuple(spans))
            for loc, d, spans in draw(
                st.lists(st.tuples(st.sampled_from(where), near, st.lists(span, max_size=2)), max_size=2)
            )
        )
        staff[key] = StaffRules(
            key,
            services=frozenset(draw(st.sampled_from([{"s"}, {"s", "o"}] * 4 + [{"o"}]))),
            locations=frozenset(where),
            active=draw(mostly),
            hours=tuple(hours),
            breaks=breaks,
            overrides=overrides,
            time_off=tuple(draw(st.lists(instant_interval(anchor), max_size=2))),
            busy=tuple(draw(st.lists(instant_interval(anchor), max_size=2))),
        )

    bookings = []
    for i in range(draw(st.integers(0, 6))):
        svc = services[draw(st.sampled_from(["s", "s", "s", "o"] if group else ["s", "s", "o"]))]
        seats = draw(st.integers(1, 3))
        offering = sorted(k for k, p in staff.items() if svc.key in p.services and p.active)
        who = draw(st.sampled_from(offering if group and offering else sorted(staff)))
        person = staff[who]
        d = draw(in_range)
        that_day = [h for h in person.hours if h.weekday == d.weekday()]
        if that_day and (group or draw(st.booleans())):
            # On a window's grid, so that group sessions and exact collisions come up.
            h = draw(st.sampled_from(that_day))
            minute = min(1440, h.start + step * draw(st.integers(0, 2)))
            start = naive.instant(naive.local_instant(locations[h.location].timezone, d, minute))
        else:
            start = _midnight_utc(anchor) + timedelta(minutes=15 * draw(st.integers(-4 * 24, 4 * 48)))
        bookings.append(
            Booking(
                staff=who,
                service=svc.key,
                start=start,
                end=start + timedelta(minutes=svc.duration_min),
                buffer_before_min=svc.buffer_before_min,
                buffer_after_min=draw(st.sampled_from([svc.buffer_after_min, 0, 45])),
                seats=seats,
                location=draw(st.sampled_from(sorted(person.locations))),
                live=draw(mostly),
                ref=f"r{i}",
            )
        )
    setup = Setup(locations, services, staff, tuple(bookings))

    query = SlotQuery(
        service="s",
        date_from=frm,
        date_to=to,
        timezone=draw(st.sampled_from(ZONES)),
        now=_midnight_utc(anchor) + timedelta(minutes=draw(st.integers(-4 * 24 * 60, 24 * 60))),
        location=draw(st.sampled_from([None, None, None, *loc_keys])),
        staff=draw(st.sampled_from([None, None, None, None, *sorted(staff)])),
        exclude_refs=frozenset(draw(st.lists(st.sampled_from([f"r{i}" for i in range(6)]), max_size=2))),
    )
    probes = draw(st.lists(st.integers(0, 3 * 24 * 12), max_size=15))
    return setup, query, probes


def _midnight_utc(d: date) -> datetime:
    return datetime.combine(d, time(), UTC)


def instant_interval(anchor: date):
    base = _midnight_utc(anchor)
    return st.tuples(st.integers(-2 * 24 * 4, 3 * 24 * 4), st.integers(1, 4 * 12)).map(
        lambda t: Interval(base + timedelta(minutes=15 * t[0]), base + timedelta(minutes=15 * (t[0] + t[1])))
    )


def _overlaps(a0, a1, b0, b1) -> bool:
    return max(a0, b0) < min(a1, b1)


def _range(query: SlotQuery) -> tuple[datetime, datetime]:
    """The query's [from 00:00, to + 1 day 00:00) in its zone, by the reference's conversion."""
    lo = naive.instant(naive.local_instant(query.timezone, query.date_from, 0))
    hi = naive.instant(naive.local_instant(query.timezone, query.date_to + timedelta(days=1), 0))
    return lo, hi


@SETTINGS
@given(cases())
def test_engine_equals_the_minute_by_minute_reference(case):
    setup, query, _ = case
    assert find_slots(setup, query) == naive.naive_find_slots(setup, query)


@SETTINGS
@given(cases(group=True))
def test_group_sessions_equal_the_reference(case):
    setup, query, _ = case
    assert find_slots(setup, query) == naive.naive_find_slots(setup, query)


@SETTINGS
@given(st.booleans().flatmap(lambda group: cases(group=group)))
def test_json_text_writer_equals_dumping_each_slot(case):
    setup, query, _ = case
    group = setup.services[query.service].capacity > 1
    expected = json.dumps({"slots": [slot_to_json(s, group) for s in find_slots(setup, query)]}, separators=(",", ":"))
    assert find_slots_json(setup, query) == expected


@SETTINGS
@given(cases())
def test_every_slot_obeys_the_rules_on_its_face(case):
    setup, query, _ = case
    svc = setup.services[query.service]
    lo, hi = _range(query)
    slots = find_slots(setup, query)
    assert [s.start for s in slots] == sorted({s.start for s in slots})
    for slot in slots:
        assert lo <= slot.start < hi
        assert slot.end - slot.start == timedelta(minutes=svc.duration_min)
        assert query.now + timedelta(minutes=svc.min_notice_min) <= slot.start
        assert slot.start <= query.now + timedelta(days=svc.max_advance_days)
        assert slot.staff and list(slot.staff) == sorted(slot.staff)
        assert set(slot.locations) == set(slot.staff)
        assert (slot.seats_left is None) == (svc.capacity == 1)
        p0 = slot.start - timedelta(minutes=svc.buffer_before_min)
        p1 = slot.end + timedelta(minutes=svc.buffer_after_min)
        for key in slot.staff:
            person = setup.staff[key]
            assert person.active and svc.key in person.services
            assert slot.locations[key] in person.locations
            assert not any(_overlaps(slot.start, slot.end, t.start, t.end) for t in person.time_off)
            assert not any(_overlaps(p0, p1, b.start, b.end) for b in person.busy)
            for b in setup.bookings:
                if b.staff != key or not b.live or b.ref in query.exclude_refs:
                    continue
                same_session = svc.capacity > 1 and b.service == svc.key and b.start == slot.start
                if not same_session:
                    b0 = b.start - timedelta(minutes=b.buffer_before_min)
                    b1 = b.end + timedelta(minutes=b.buffer_after_min)
                    assert not _overlaps(p0, p1, b0, b1)
            if svc.capacity > 1:
                assert 0 < slot.seats_left[key] <= svc.capacity


@SETTINGS
@given(cases())
def test_explain_agrees_with_find_slots(case):
    setup, query, probes = case
    slots = find_slots(setup, query)
    offered = {(s.start, k): s for s in slots for k in s.staff}
    for (start, key), slot in offered.items():
        why = explain(setup, query.service, key, start, query.now, query.location, query.exclude_refs)
        assert why.bookable and why.reasons == ()
        assert why.location == slot.locations[key]
        assert why.seats_left == (slot.seats_left[key] if slot.seats_left is not None else None)
    lo, hi = _range(query)
    keys = [query.staff] if query.staff else sorted(setup.staff)
    for p in probes:
        start = lo + timedelta(minutes=5 * p)
        if start >= hi:
            continue
        for key in keys:
            why = explain(setup, query.service, key, start, query.now, query.location, query.exclude_refs)
            assert why.bookable == ((start, key) in offered)
            assert why.bookable == (why.reasons == ())
