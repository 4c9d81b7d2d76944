"""One test per rule of AVAILABILITY.md, on setups small enough to check by hand.

2027-01-11 is a Monday; Berlin is UTC+1 in winter, so 09:00 local is 08:00Z.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from app.scheduling.assign import pick_staff
from app.scheduling.engine import find_slots, slot_to_json
from app.scheduling.model import UnknownKey


def hourly(day: str, *hours: int) -> list[str]:
    return [f"{day}T{h:02d}:00Z" for h in hours]


# --- §2.4 daylight saving time ------------------------------------------------


def test_spring_forward_gap_window_keeps_its_real_length(sched):
    # 2027-03-28: Berlin jumps from 02:00 CET to 03:00 CEST; 01:00-05:00 lasts 3 hours.
    s = sched.setup(
        services=[sched.service(duration=60)],
        staff=[sched.staff(hours={"sun": [("01:00", "05:00")]})],
    )
    got = sched.starts(find_slots(s, sched.query(frm="2027-03-28")))
    assert got == hourly("2027-03-28", 0, 1, 2)


def test_window_starting_in_the_gap_starts_at_the_first_real_instant(sched):
    s = sched.setup(
        services=[sched.service(duration=60)],
        staff=[sched.staff(hours={"sun": [("02:30", "05:00")]})],
    )
    # 02:30 does not exist: the window starts at 03:00 CEST (01:00Z) and the grid with it.
    assert sched.starts(find_slots(s, sched.query(frm="2027-03-28"))) == hourly("2027-03-28", 1, 2)


def test_fall_back_day_midnight_to_four_is_five_hours(sched):
    # 2027-10-31: Berlin goes back from 03:00 CEST to 02:00 CET.
    s = sched.setup(
        services=[sched.service(duration=60)],
        staff=[sched.staff(hours={"sun": [("00:00", "04:00")]})],
    )
    got = sched.starts(find_slots(s, sched.query(frm="2027-10-31")))
    assert got == ["2027-10-30T22:00Z", "2027-10-30T23:00Z"] + hourly("2027-10-31", 0, 1, 2)


def test_grid_steps_in_absolute_time_across_the_fall_back(sched):
    s = sched.setup(
        services=[sched.service(duration=60, slot_interval_min=90)],
        staff=[sched.staff(hours={"sun": [("00:00", "04:00")]})],
    )
    got = sched.starts(find_slots(s, sched.query(frm="2027-10-31")))
    assert got == ["2027-10-30T22:00Z", "2027-10-30T23:30Z", "2027-10-31T01:00Z"]


def test_ambiguous_window_start_takes_the_first_occurrence(sched):
    s = sched.setup(
        services=[sched.service(duration=60)],
        staff=[sched.staff(hours={"sun": [("02:30", "04:00")]})],
    )
    # First 02:30 is CEST (00:30Z); 04:00 CET is 03:00Z: 2.5 hours.
    assert sched.starts(find_slots(s, sched.query(frm="2027-10-31"))) == [
        "2027-10-31T00:30Z",
        "2027-10-31T01:30Z",
    ]


def test_dst_change_at_midnight_moves_the_day_start(sched):
    # Havana skips 00:00-01:00 on 2027-03-14: the day starts at 01:00 CDT (05:00Z).
    s = sched.setup(
        locations=[sched.location(tz="America/Havana")],
        services=[sched.service(duration=60)],
        staff=[sched.staff(hours={"sun": [("00:00", "03:00")]})],
    )
    got = sched.starts(find_slots(s, sched.query(frm="2027-03-14", tz="America/Havana")))
    assert got == hourly("2027-03-14", 5, 6)


def test_break_in_local_time_follows_the_dst_change(sched):
    s = sched.setup(
        services=[sched.service(duration=60)],
        staff=[sched.staff(hours={"sun": [("00:00", "06:00")]}, breaks=[("sun", "01:00", "03:00")])],
    )
    # The break 01:00 CET-03:00 CEST is one real hour (00:00Z-01:00Z).
    got = sched.starts(find_slots(s, sched.query(frm="2027-03-28")))
    assert got == ["2027-03-27T23:00Z"] + hourly("2027-03-28", 1, 2, 3)


# --- §2.1-2.3 windows -----------------------------------------------------------


def test_override_replaces_weekly_hours_for_that_date(sched):
    s = sched.setup(
        services=[sched.service(duration=60)],
        staff=[sched.staff(overrides=[("shop", "2027-01-11", [("13:00", "15:00")])])],
    )
    assert sched.starts(find_slots(s, sched.query())) == hourly("2027-01-11", 12, 13)


def test_empty_override_is_a_day_off(sched):
    s = sched.setup(staff=[sched.staff(overrides=[("shop", "2027-01-11", [])])])
    assert find_slots(s, sched.query(to="2027-01-12"))[0].start.date().isoformat() == "2027-01-12"
    assert find_slots(s, sched.query()) == []


def test_override_can_open_a_day_without_weekly_hours(sched):
    s = sched.setup(
        services=[sched.service(duration=60)],
        staff=[sched.staff(overrides=[("shop", "2027-01-16", [("10:00", "12:00")])])],
    )
    assert sched.starts(find_slots(s, sched.query(frm="2027-01-16"))) == hourly("2027-01-16", 9, 10)


def test_closure_empties_the_day_even_with_an_override(sched):
    s = sched.setup(
        locations=[sched.location(closures=["2027-01-11"])],
        staff=[sched.staff(overrides=[("shop", "2027-01-11", [("10:00", "12:00")])])],
    )
    assert find_slots(s, sched.query()) == []
    assert find_slots(s, sched.query(frm="2027-01-12")) != []


def test_location_hours_cut_staff_hours(sched):
    s = sched.setup(
        locations=[sched.location(hours={"mon": [("08:00", "11:00"), ("15:00", "20:00")]})],
        services=[sched.service(duration=60)],
    )
    assert sched.starts(find_slots(s, sched.query())) == hourly("2027-01-11", 8, 9, 14, 15)


def test_location_hours_missing_weekday_is_closed(sched):
    s = sched.setup(locations=[sched.location(hours={"tue": [("08:00", "20:00")]})])
    assert find_slots(s, sched.query()) == []


def test_touching_intervals_merge_so_the_grid_runs_across_the_seam(sched):
    s = sched.setup(
        services=[sched.service(duration=60)],
        staff=[sched.staff(hours={"mon": [("09:00", "10:30"), ("10:30", "12:00")]})],
    )
    assert sched.starts(find_slots(s, sched.query())) == hourly("2027-01-11", 8, 9, 10)


def test_location_hours_that_touch_merge_after_the_cut(sched):
    s = sched.setup(
        locations=[sched.location(hours={"mon": [("08:00", "10:30"), ("10:30", "20:00")]})],
        services=[sched.service(duration=60)],
        staff=[sched.staff(hours={"mon": [("09:00", "12:00")]})],
    )
    assert sched.starts(find_slots(s, sched.query())) == hourly("2027-01-11", 8, 9, 10)


def test_windows_of_different_dates_never_merge(sched):
    s = sched.setup(
        services=[sched.service(duration=60, slot_interval_min=30)],
        staff=[sched.staff(hours={"mon": [("22:00", "24:00")], "tue": [("00:00", "02:00")]})],
    )
    got = sched.starts(find_slots(s, sched.query(to="2027-01-12")))
    # 23:30 Monday would run past Monday's window, so it is not offered.
    assert got == ["2027-01-11T21:00Z", "2027-01-11T21:30Z", "2027-01-11T22:00Z",
                   "2027-01-11T23:00Z", "2027-01-11T23:30Z", "2027-01-12T00:00Z"]


def test_grid_starts_at_the_window_not_at_the_break(sched):
    s = sched.setup(
        services=[sched.service(duration=60)],
        staff=[sched.staff(hours={"mon": [("09:00", "13:00")]}, breaks=[("mon", "09:30", "10:00")])],
    )
    # Free 10:00-13:00, but the grid is 09:00 + k hours, so 10:00, 11:00 and 12:00 local.
    assert sched.starts(find_slots(s, sched.query())) == hourly("2027-01-11", 9, 10, 11)


# --- §3 free time -------------------------------------------------------------------


def test_break_for_one_location_leaves_the_other_alone(sched):
    s = sched.setup(
        locations=[sched.location("a"), sched.location("b")],
        services=[sched.service(duration=60)],
        staff=[
            sched.staff(
                locations=("a", "b"),
                hours=[("a", "mon", "09:00", "12:00"), ("b", "tue", "09:00", "12:00")],
                breaks=[("mon", "10:00", "11:00", "a"), ("tue", "10:00", "11:00", "a")],
            )
        ],
    )
    got = find_slots(s, sched.query(to="2027-01-12"))
    assert sched.starts(got) == hourly("2027-01-11", 8, 10) + hourly("2027-01-12", 8, 9, 10)
    assert [x.locations for x in got] == [{"anna": "a"}] * 2 + [{"anna": "b"}] * 3


def test_break_without_location_applies_everywhere(sched):
    s = sched.setup(
        locations=[sched.location("a"), sched.location("b")],
        services=[sched.service(duration=60)],
        staff=[
            sched.staff(
                locations=("a", "b"),
                hours=[("a", "mon", "09:00", "12:00"), ("b", "tue", "09:00", "12:00")],
                breaks=[("mon", "10:00", "11:00"), ("tue", "10:00", "11:00")],
            )
        ],
    )
    got = sched.starts(find_slots(s, sched.query(to="2027-01-12")))
    assert got == hourly("2027-01-11", 8, 10) + hourly("2027-01-12", 8, 10)


def test_time_off_removes_overlapping_starts(sched):
    s = sched.setup(
        services=[sched.service(duration=60)],
        staff=[sched.staff(hours={"mon": [("09:00", "13:00")]}, time_off=[("2027-01-11T09:30Z", "2027-01-11T10:00Z")])],
    )
    assert sched.starts(find_slots(s, sched.query())) == hourly("2027-01-11", 8, 10, 11)


# --- §5 bookings, buffers, busy, notice --------------------------------------------


def test_existing_booking_blocks_with_its_own_buffers(sched):
    svc = sched.service(duration=60)
    s = sched.setup(
        services=[svc],
        staff=[sched.staff(hours={"mon": [("09:00", "15:00")]})],
        # Stored with a 60-minute buffer after, from the service as it was then.
        bookings=[sched.booking("anna", svc, "2027-01-11T10:00Z", buffer_after_min=60)],
    )
    assert sched.starts(find_slots(s, sched.query())) == hourly("2027-01-11", 8, 9, 12, 13)


def test_candidate_uses_the_queried_services_buffers(sched):
    other = sched.service("other", duration=60)
    padded = sched.service(duration=60, buffer_before_min=15)
    s = sched.setup(
        services=[other, padded],
        staff=[sched.staff(services=("cut", "other"), hours={"mon": [("09:00", "13:00")]})],
        bookings=[sched.booking("anna", other, "2027-01-11T09:00Z")],
    )
    # 10:00Z minus its 15-minute buffer overlaps the booking that ends at 10:00Z.
    assert sched.starts(find_slots(s, sched.query())) == hourly("2027-01-11", 8, 11)
    assert sched.starts(find_slots(s, sched.query("other"))) == hourly("2027-01-11", 8, 10, 11)


def test_cancelled_booking_blocks_nothing(sched):
    svc = sched.service(duration=60)
    s = sched.setup(
        services=[svc],
        staff=[sched.staff(hours={"mon": [("09:00", "11:00")]})],
        bookings=[sched.booking("anna", svc, "2027-01-11T08:00Z", live=False)],
    )
    assert sched.starts(find_slots(s, sched.query())) == hourly("2027-01-11", 8, 9)


def test_booking_at_another_location_still_blocks(sched):
    svc = sched.service(duration=60)
    s = sched.setup(
        locations=[sched.location("a"), sched.location("b")],
        services=[svc],
        staff=[sched.staff(locations=("a", "b"), hours=[("a", "mon", "09:00", "11:00")])],
        bookings=[sched.booking("anna", svc, "2027-01-11T08:00Z", location="b")],
    )
    assert sched.starts(find_slots(s, sched.query())) == hourly("2027-01-11", 9)


def test_exclude_refs_ignores_the_booking_being_rescheduled(sched):
    svc = sched.service(duration=60)
    s = sched.setup(
        services=[svc],
        staff=[sched.staff(hours={"mon": [("09:00", "11:00")]})],
        bookings=[sched.booking("anna", svc, "2027-01-11T08:00Z", ref="a1")],
    )
    assert sched.starts(find_slots(s, sched.query())) == hourly("2027-01-11", 9)
    got = find_slots(s, sched.query(exclude_refs=frozenset({"a1"})))
    assert sched.starts(got) == hourly("2027-01-11", 8, 9)


def test_busy_block_blocks_the_padded_interval(sched):
    s = sched.setup(
        services=[sched.service(duration=60, buffer_after_min=30)],
        staff=[sched.staff(hours={"mon": [("09:00", "13:00")]}, busy=[("2027-01-11T10:15Z", "2027-01-11T10:45Z")])],
    )
    # 09:00Z ends 10:00Z, padded to 10:30Z, which reaches into the busy block.
    assert sched.starts(find_slots(s, sched.query())) == hourly("2027-01-11", 8, 11)


def test_min_notice_boundary_is_inclusive(sched):
    s = sched.setup(services=[sched.service(duration=60, min_notice_min=120)])
    now = sched.at("2027-01-11T07:00Z")
    assert sched.starts(find_slots(s, sched.query(now=now)))[0] == "2027-01-11T09:00Z"
    later = now + timedelta(seconds=1)
    assert sched.starts(find_slots(s, sched.query(now=later)))[0] == "2027-01-11T10:00Z"


def test_max_advance_boundary_is_inclusive(sched):
    s = sched.setup(services=[sched.service(duration=60, max_advance_days=10)])
    now = sched.at("2027-01-01T10:00Z")
    assert sched.starts(find_slots(s, sched.query(now=now))) == hourly("2027-01-11", 8, 9, 10)


# --- §1 who may serve --------------------------------------------------------------


@pytest.mark.parametrize(
    "change",
    ["staff_inactive", "service_inactive", "location_inactive", "not_offered_by_staff", "not_at_location"],
)
def test_nobody_serves_when_the_relation_is_broken(sched, change):
    loc = sched.location(active=change != "location_inactive")
    svc = sched.service(
        active=change != "service_inactive",
        locations=("elsewhere",) if change == "not_at_location" else None,
    )
    person = sched.staff(
        active=change != "staff_inactive",
        services=() if change == "not_offered_by_staff" else ("cut",),
    )
    s = sched.setup(locations=[loc, sched.location("elsewhere")], services=[svc], staff=[person])
    assert find_slots(s, sched.query()) == []


def test_location_filter_and_staff_filter(sched):
    s = sched.setup(
        locations=[sched.location("a"), sched.location("b")],
        services=[sched.service(duration=60)],
        staff=[
            sched.staff("anna", locations=("a",), hours={"mon": [("09:00", "10:00")]}),
            sched.staff("bob", locations=("b",), hours={"mon": [("09:00", "11:00")]}),
        ],
    )
    assert [x.staff for x in find_slots(s, sched.query())] == [("anna", "bob"), ("bob",)]
    assert [x.staff for x in find_slots(s, sched.query(location="a"))] == [("anna",)]
    assert [x.staff for x in find_slots(s, sched.query(staff="bob"))] == [("bob",), ("bob",)]
    assert find_slots(s, sched.query(staff="bob", location="a")) == []


@pytest.mark.parametrize(("field", "kind"), [("service_key", "service"), ("location", "location"), ("staff", "staff")])
def test_unknown_keys_raise(sched, field, kind):
    s = sched.setup()
    with pytest.raises(UnknownKey) as err:
        find_slots(s, sched.query(**{field: "nope"}))
    assert (err.value.kind, err.value.key) == (kind, "nope")
    assert isinstance(err.value, ValueError)


# --- §6 group services -----------------------------------------------------------


def test_group_sessions_seats_and_neighbours(sched):
    cls = sched.service("class", duration=60, capacity=5, slot_interval_min=30)
    s = sched.setup(
        services=[cls],
        staff=[sched.staff(services=("class",), hours={"mon": [("09:00", "12:00")]})],
        bookings=[
            sched.booking("anna", cls, "2027-01-11T08:00Z", seats=2, ref="x1"),
            sched.booking("anna", cls, "2027-01-11T08:00Z", seats=1, ref="x2"),
            sched.booking("anna", cls, "2027-01-11T08:00Z", seats=2, live=False),
            sched.booking("anna", cls, "2027-01-11T10:00Z", seats=5),
        ],
    )
    got = find_slots(s, sched.query("class"))
    # 08:00Z has 3 seats taken; 08:30Z and 09:30Z overlap sessions; 10:00Z is full.
    assert [slot_to_json(x, True) for x in got] == [
        {"start": "2027-01-11T08:00:00Z", "end": "2027-01-11T09:00:00Z", "staff": ["anna"], "seats_left": {"anna": 2}},
        {"start": "2027-01-11T09:00:00Z", "end": "2027-01-11T10:00:00Z", "staff": ["anna"], "seats_left": {"anna": 5}},
    ]
    # Rescheduling one attendee frees their seats only.
    again = find_slots(s, sched.query("class", exclude_refs=frozenset({"x1"})))
    assert again[0].seats_left == {"anna": 4}


def test_group_session_is_still_subject_to_other_rules(sched):
    cls = sched.service("class", duration=60, capacity=5)
    s = sched.setup(
        services=[cls],
        staff=[sched.staff(services=("class",), hours={"mon": [("09:00", "12:00")]},
                           busy=[("2027-01-11T08:30Z", "2027-01-11T08:45Z")])],
        bookings=[sched.booking("anna", cls, "2027-01-11T08:00Z", seats=1)],
    )
    # The session at 08:00Z has seats, but the busy block rules it out.
    assert sched.starts(find_slots(s, sched.query("class"))) == hourly("2027-01-11", 9, 10)


def test_one_to_one_service_has_no_seats(sched):
    got = find_slots(sched.setup(), sched.query())
    assert all(x.seats_left is None for x in got)
    assert "seats_left" not in slot_to_json(got[0], False)


# --- §7 answer -------------------------------------------------------------------


def test_range_is_the_local_dates_of_the_query_time_zone(sched):
    s = sched.setup(
        services=[sched.service(duration=60)],
        staff=[sched.staff(hours={wd: [("00:00", "24:00")] for wd in ("mon", "tue")})],
    )
    # Monday in New York is 05:00Z Monday to 05:00Z Tuesday.
    got = find_slots(s, sched.query(tz="America/New_York"))
    assert (got[0].start.isoformat(), got[-1].start.isoformat()) == (
        "2027-01-11T05:00:00+00:00",
        "2027-01-12T04:00:00+00:00",
    )
    assert len(got) == 24


def test_results_sorted_with_sorted_staff_and_utc_json(sched):
    s = sched.setup(
        services=[sched.service(duration=60)],
        staff=[sched.staff("zoe", hours={"mon": [("09:00", "11:00")]}), sched.staff("al", hours={"mon": [("10:00", "11:00")]})],
    )
    got = find_slots(s, sched.query())
    assert [slot_to_json(x, False) for x in got] == [
        {"start": "2027-01-11T08:00:00Z", "end": "2027-01-11T09:00:00Z", "staff": ["zoe"]},
        {"start": "2027-01-11T09:00:00Z", "end": "2027-01-11T10:00:00Z", "staff": ["al", "zoe"]},
    ]


def test_staff_with_overlapping_windows_at_two_locations_gets_the_first_location(sched):
    s = sched.setup(
        locations=[sched.location("b"), sched.location("a")],
        services=[sched.service(duration=60)],
        staff=[sched.staff(locations=("a", "b"), hours=[("a", "mon", "09:00", "10:00"), ("b", "mon", "09:00", "11:00")])],
    )
    assert [x.locations for x in find_slots(s, sched.query())] == [{"anna": "a"}, {"anna": "b"}]


def test_any_staff_picks_the_least_busy_that_day_then_by_key(sched):
    svc = sched.service(duration=60)
    s = sched.setup(
        services=[svc],
        staff=[sched.staff("bea", hours={"mon": [("09:00", "17:00")]}), sched.staff("al", hours={"mon": [("09:00", "17:00")]})],
        bookings=[sched.booking("al", svc, "2027-01-11T14:00Z")],
    )
    slot = find_slots(s, sched.query())[0]
    assert slot.staff == ("al", "bea")
    assert pick_staff(s, slot) == "bea"
    assert pick_staff(sched.setup(services=[svc], staff=list(s.staff.values())), slot) == "al"
