"""Busy time of a location's own calendar: the location is closed for those instants (README "Calendar sync").

AVAILABILITY.md §5.3 speaks of a staff member's busy blocks only; a front desk's calendar
closes its location instead: no appointment *at that location* may overlap it, for any
staff member working there, while their appointments elsewhere stay bookable. Like a
closing time (and like time off, §3) it is cut from the free time: the appointment's own
[start, end) must not overlap it, its buffers may, and the grid (§4) does not move.
2027-01-11 is a Monday; Berlin is UTC+1, so 09:00 local is 08:00Z.
"""

from __future__ import annotations

from app.scheduling.engine import find_slots
from app.scheduling.explain import explain


def hourly(*hours: int) -> list[str]:
    return [f"2027-01-11T{h:02d}:00Z" for h in hours]


def _two_shops(sched, busy_at_a):
    a = sched.location("a", busy=busy_at_a)
    b = sched.location("b")
    svc = sched.service(duration=60)
    # anna works at a (Mon 09-13) and at b (Mon 13-17); ben only at a.
    anna = sched.staff("anna", locations=("a", "b"),
                       hours=[("a", "mon", "09:00", "13:00"), ("b", "mon", "13:00", "17:00")])
    ben = sched.staff("ben", locations=("a",), hours={"mon": [("09:00", "17:00")]})
    return sched.setup(locations=[a, b], services=[svc], staff=[anna, ben])


def test_location_busy_blocks_everyone_at_that_location_only(sched):
    # The front desk of "a" is busy 10:00-11:00 local and 14:00-15:00 local.
    s = _two_shops(sched, [("2027-01-11T09:00Z", "2027-01-11T10:00Z"), ("2027-01-11T13:00Z", "2027-01-11T14:00Z")])
    slots = find_slots(s, sched.query(frm="2027-01-11"))
    by_start = {sched.starts([x])[0]: x.staff for x in slots}
    # ben (only at a) loses both hours; anna loses 10:00 at a but keeps 14:00, where she works at b.
    assert "2027-01-11T09:00Z" not in by_start
    assert by_start["2027-01-11T13:00Z"] == ("anna",)
    assert by_start["2027-01-11T08:00Z"] == ("anna", "ben")
    assert slots[[sched.starts([x])[0] for x in slots].index("2027-01-11T13:00Z")].locations == {"anna": "b"}
    # Asked for location b only, nothing of a's calendar matters.
    at_b = sched.starts(find_slots(s, sched.query(frm="2027-01-11", location="b")))
    assert at_b == hourly(12, 13, 14, 15)


def test_location_busy_keeps_the_grid_and_lets_buffers_overlap(sched):
    loc = sched.location(busy=[("2027-01-11T09:10Z", "2027-01-11T09:20Z")])
    svc = sched.service(duration=60, buffer_after_min=15)
    s = sched.setup(locations=[loc], services=[svc], staff=[sched.staff(hours={"mon": [("09:00", "13:00")]})])
    got = sched.starts(find_slots(s, sched.query(frm="2027-01-11")))
    # 10:00 local (09:00Z) is out; the grid stays on the hour (no start at 09:20Z); the 08:00Z
    # start's buffer (09:00-09:15Z) reaches into the busy time, as it may reach past a closing time.
    assert got == hourly(8, 10, 11)


def test_staff_busy_still_blocks_the_staff_member_at_every_location(sched):
    s = _two_shops(sched, [])
    anna = s.staff["anna"]
    from dataclasses import replace

    from app.scheduling.model import Interval

    s = replace(s, staff={**s.staff, "anna": replace(anna, busy=(Interval(sched.at("2027-01-11T13:00Z"),
                                                                             sched.at("2027-01-11T14:00Z")),))})
    slots = find_slots(s, sched.query(frm="2027-01-11", staff="anna"))
    assert "2027-01-11T13:00Z" not in sched.starts(slots)


def test_explain_names_the_busy_location_and_agrees_with_find_slots(sched):
    s = _two_shops(sched, [("2027-01-11T09:00Z", "2027-01-11T10:00Z")])
    now = sched.NOW
    why = explain(s, "cut", "ben", sched.at("2027-01-11T09:00Z"), now)
    assert [r.code for r in why.reasons] == ["location_busy"] and why.location == "a"
    assert why.reasons[0].detail == {"start": "2027-01-11T09:00:00Z", "end": "2027-01-11T10:00:00Z"}
    # Every start of the day: explain says bookable exactly when find_slots offers it.
    offered = {(k, x.start) for x in find_slots(s, sched.query(frm="2027-01-11")) for k in x.staff}
    for key in ("anna", "ben"):
        for h in range(6, 18):
            start = sched.at(f"2027-01-11T{h:02d}:00Z")
            assert explain(s, "cut", key, start, now).bookable == ((key, start) in offered), (key, h)
