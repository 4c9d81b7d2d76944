"""Benchmark of the availability engine against the naive reference.

Run from the repository root:  python bench/engine_bench.py [--quick]

For each generated tenant it times `find_slots` for "any staff, any location"
(median and p95 of many runs, time.perf_counter), times the minute-by-minute
reference once, and asserts that both give identical answers on that query and
on a few others (one location, one staff with a booking excluded, a group
service). Targets: 20 staff x 30 days x 445 bookings <= 10 ms,
50 staff x 90 days x 5,000 bookings <= 50 ms. Both ranges cross a DST change.
"""

from __future__ import annotations

import gc
import random
import statistics
import sys
import time
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
if str(ROOT / "bench") not in sys.path:
    sys.path.insert(0, str(ROOT / "bench"))

from naive_reference import naive_find_slots  # noqa: E402

from app.scheduling.engine import find_slots  # noqa: E402
from app.scheduling.model import (  # noqa: E402
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

LOCATIONS = (
    # key, zone, opening hours (None: the location sets none)
    ("mitte", "Europe/Berlin", {wd: ((8 * 60, 20 * 60),) for wd in range(5)} | {5: ((9 * 60, 14 * 60),)}),
    ("kreuzberg", "Europe/Berlin", None),
    ("london", "Europe/London", {wd: ((7 * 60 + 30, 12 * 60), (12 * 60, 19 * 60)) for wd in range(6)}),
    ("vienna", "Europe/Vienna", {wd: ((8 * 60, 18 * 60),) for wd in range(6)}),
    ("newyork", "America/New_York", {wd: ((9 * 60, 17 * 60),) for wd in range(5)}),
)

SERVICES = (
    ServiceRules("consult", 30, buffer_before_min=5, buffer_after_min=10, slot_interval_min=15, min_notice_min=120),
    ServiceRules("massage", 60, buffer_after_min=15, locations=frozenset({"mitte", "kreuzberg", "vienna"})),
    ServiceRules("quick", 15),
    ServiceRules("class", 60, buffer_after_min=15, slot_interval_min=30, capacity=8),
    ServiceRules("hotline", 45, slot_interval_min=15, locations=frozenset({"kreuzberg"})),
)


@dataclass(frozen=True)
class Case:
    name: str
    setup: Setup
    queries: tuple[SlotQuery, ...]  # the first one is timed


def _dt(tzname: str, d: date, minute: int) -> datetime:
    naive = datetime(d.year, d.month, d.day) + timedelta(minutes=minute)
    return naive.replace(tzinfo=ZoneInfo(tzname)).astimezone(UTC)


def generate(name: str, seed: int, n_staff: int, first: date, n_days: int, n_bookings: int) -> Case:
    """A seeded random tenant whose bookings fall inside [first, first + n_days)."""
    rng = random.Random(seed)
    last = first + timedelta(days=n_days - 1)
    locations = {
        key: LocationRules(
            key,
            tz,
            hours=hours,
            closures=frozenset(first + timedelta(days=rng.randrange(n_days)) for _ in range(2)),
        )
        for key, tz, hours in LOCATIONS
    }
    zone_of = {key: tz for key, tz, _ in LOCATIONS}
    services = {s.key: s for s in SERVICES}
    loc_keys = sorted(locations)

    staff: dict[str, StaffRules] = {}
    for i in range(n_staff):
        key = f"staff-{i:03d}"
        if i % 10 == 9:
            # A night line across the DST change: 00:00-04:00 and 22:00-24:00.
            where = ("kreuzberg",)
            offers = frozenset({"hotline", "quick"})
            hours = tuple(
                WeeklyHours("kreuzberg", wd, a, b)
                for wd in range(7)
                for a, b in ((0, 4 * 60), (22 * 60, 24 * 60))
            )
            breaks = (Break(rng.randrange(7), 60, 90),)
        else:
            where = tuple(sorted(rng.sample(loc_keys, rng.choice((1, 1, 2)))))
            offers = frozenset({"consult"} | set(rng.sample(["massage", "quick", "class"], rng.randint(1, 3))))
            hours_list = []
            for wd in range(6):
                if rng.random() < 0.15:
                    continue
                loc = where[wd % len(where)]
                start = rng.choice(range(7 * 60, 10 * 60 + 1, 30))
                end = rng.choice(range(15 * 60, 20 * 60 + 1, 30))
                if rng.random() < 0.3:
                    # A split shift that touches: one window for the engine.
                    mid = 12 * 60 + 30
                    hours_list += [WeeklyHours(loc, wd, start, mid), WeeklyHours(loc, wd, mid, end)]
                elif rng.random() < 0.3:
                    hours_list += [WeeklyHours(loc, wd, start, 12 * 60), WeeklyHours(loc, wd, 13 * 60, end)]
                else:
                    hours_list.append(WeeklyHours(loc, wd, start, end))
            hours = tuple(hours_list)
            breaks = tuple(
                Break(wd, 12 * 60, 12 * 60 + 30, None if rng.random() < 0.7 else where[0])
                for wd in range(6)
                if rng.random() < 0.8
            ) + tuple(Break(rng.randrange(6), 15 * 60, 15 * 60 + 15) for _ in range(2))
        overrides = []
        for _ in range(rng.randint(0, 3)):
            d = first + timedelta(days=rng.randrange(n_days))
            spans = () if rng.random() < 0.5 else ((10 * 60, 14 * 60), (14 * 60, 16 * 60 + 30))
            overrides.append(DateOverride(where[0], d, spans))
        time_off = []
        for _ in range(rng.randint(0, 2)):
            d = first + timedelta(days=rng.randrange(n_days))
            tz = zone_of[where[0]]
            if rng.random() < 0.5:
                time_off.append(Interval(_dt(tz, d, 0), _dt(tz, d + timedelta(days=rng.randint(1, 4)), 0)))
            else:
                time_off.append(Interval(_dt(tz, d, 13 * 60), _dt(tz, d, 17 * 60 + 20)))
        busy = []
        for _ in range(rng.randint(2, 2 + n_days // 5)):
            d = first + timedelta(days=rng.randrange(n_days))
            m = rng.randrange(8 * 60, 18 * 60, 5)
            tz = zone_of[where[0]]
            busy.append(Interval(_dt(tz, d, m), _dt(tz, d, m + rng.choice((20, 30, 60, 90)))))
        staff[key] = StaffRules(
            key,
            services=offers,
            locations=frozenset(where),
            hours=hours,
            breaks=breaks,
            overrides=tuple(overrides),
            time_off=tuple(time_off),
            busy=tuple(busy),
        )

    bookings = []
    staff_keys = sorted(staff)
    sessions: list[tuple[str, datetime]] = []
    for i in range(n_bookings):
        who = staff[rng.choice(staff_keys)]
        svc = services[rng.choice(sorted(who.services))]
        loc = rng.choice(sorted(who.locations))
        if svc.capacity > 1 and sessions and rng.random() < 0.5:
            # Another seat in an existing session, so group sessions fill up.
            sk, start = rng.choice(sessions)
            who = staff[sk]
        else:
            d = first + timedelta(days=rng.randrange(n_days))
            start = _dt(zone_of[loc], d, rng.randrange(7 * 60, 19 * 60, 15))
            if svc.capacity > 1 and svc.key in who.services:
                sessions.append((who.key, start))
        bookings.append(
            Booking(
                staff=who.key,
                service=svc.key,
                start=start,
                end=start + timedelta(minutes=svc.duration_min),
                buffer_before_min=svc.buffer_before_min,
                buffer_after_min=svc.buffer_after_min,
                seats=rng.randint(1, 3) if svc.capacity > 1 else 1,
                location=loc,
                live=rng.random() > 0.1,
                ref=f"b{i}",
            )
        )

    setup = Setup(locations=locations, services=services, staff=staff, bookings=tuple(bookings))
    now = _dt("Europe/Berlin", first - timedelta(days=1), 9 * 60 + 7)
    some_staff = staff_keys[0]
    mine = [b.ref for b in bookings if b.staff == some_staff]
    queries = (
        SlotQuery("consult", first, last, "Europe/Berlin", now),
        SlotQuery("massage", first, last, "Europe/Berlin", now, location="mitte"),
        SlotQuery("consult", first, last, "Europe/London", now, staff=some_staff, exclude_refs=frozenset(mine[:3])),
        SlotQuery("class", first, last, "America/New_York", now),
        SlotQuery("hotline", first, last, "Europe/Berlin", now),
    )
    return Case(name, setup, queries)


def _time(fn, reps: int) -> list[float]:
    out = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t0) * 1000)
    return out


def _p95(xs: list[float]) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, round(0.95 * (len(xs) - 1)))]


def run_case(case: Case, reps: int, target_ms: float) -> dict:
    """Time the engine and the reference on one case; assert identical answers."""
    main = case.queries[0]
    find_slots(case.setup, main)  # warm imports and zone caches
    times = _time(lambda: find_slots(case.setup, main), reps)
    slots = find_slots(case.setup, main)
    t0 = time.perf_counter()
    reference = naive_find_slots(case.setup, main)
    naive_ms = (time.perf_counter() - t0) * 1000
    assert slots == reference, f"{case.name}: engine and reference differ on the timed query"
    checked = 1
    for q in case.queries[1:]:
        assert find_slots(case.setup, q) == naive_find_slots(case.setup, q), (
            f"{case.name}: engine and reference differ on {q.service} {q.location} {q.staff}"
        )
        checked += 1
    med = statistics.median(times)
    result = {
        "name": case.name,
        "slots": len(slots),
        "pairs": sum(len(s.staff) for s in slots),
        "median": med,
        "p95": _p95(times),
        "min": min(times),
        "naive": naive_ms,
        "checked": checked,
        "target": target_ms,
        "ok": med <= target_ms,
    }
    print(
        f"{case.name:<24} engine median {med:6.2f} ms  p95 {result['p95']:6.2f} ms  "
        f"min {result['min']:6.2f} ms  (target {target_ms:.0f} ms, {reps} runs)  naive {naive_ms:6.0f} ms  "
        f"slots {result['slots']} (staff-starts {result['pairs']})  "
        f"identical on {checked} queries",
        flush=True,
    )
    return result


def main(argv: list[str]) -> int:
    """Run both sizes and print the figures; exit 1 if a target is missed."""
    quick = "--quick" in argv
    sizes = [
        (("20x30x445 (spring DST)", 1, 20, date(2027, 3, 15), 30, 445), 60, 10.0),
        (("50x90x5000 (autumn DST)", 2, 50, date(2027, 9, 20), 90, 5000), 25, 50.0),
    ]
    if quick:
        sizes = sizes[:1]
    results = []
    for args, reps, target in sizes:
        # One tenant in memory at a time, as a worker serving one request would have.
        case = generate(*args)
        gc.collect()
        results.append(run_case(case, reps, target))
        del case
    missed = [r["name"] for r in results if not r["ok"]]
    if missed:
        print("target missed:", ", ".join(missed))
        return 1
    print("all targets met")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
