"""explain(): each reason code in a case where it really happens, and agreement with find_slots.

Anna works Monday 2027-01-11 09:00-17:00 Berlin (08:00Z-16:00Z) with lunch 12:00-13:00.
"""

from __future__ import annotations

import json
from datetime import date, timedelta
from pathlib import Path

import pytest

from app.scheduling.engine import find_slots
from app.scheduling.explain import explain
from app.scheduling.model import SlotQuery, UnknownKey
from app.scheduling.setup_file import setup_from_file
from support import SCENARIO_DIR

SCENARIOS = SCENARIO_DIR


@pytest.fixture
def clinic(sched):
    """A one-person clinic with a booking, time off and a synced busy block on Monday."""
    cut = sched.service(duration=30, buffer_after_min=15, max_advance_days=30)
    anna = sched.staff(
        hours={"mon": [("09:00", "17:00")]},
        breaks=[("mon", "12:00", "13:00")],
        time_off=[("2027-01-11T14:00Z", "2027-01-11T14:30Z")],
        busy=[("2027-01-11T15:00Z", "2027-01-11T15:10Z")],
    )
    ben = sched.staff("ben", services=(), hours={"mon": [("09:00", "17:00")]})
    return sched.setup(
        services=[cut],
        staff=[anna, ben],
        bookings=[sched.booking("anna", cut, "2027-01-11T09:00Z", ref="apt-7")],
    )


def codes(why) -> list[str]:
    return [r.code for r in why.reasons]


@pytest.mark.parametrize(
    ("start", "expected"),
    [
        ("2027-01-11T08:00Z", []),
        ("2027-01-11T07:00Z", ["outside_hours"]),
        ("2027-01-11T15:45Z", ["outside_hours"]),  # would end after 17:00 local
        ("2027-01-11T08:10Z", ["off_grid"]),
        ("2027-01-11T11:00Z", ["break"]),
        ("2027-01-11T14:00Z", ["time_off"]),
        ("2027-01-11T09:00Z", ["booked"]),
        ("2027-01-11T08:30Z", ["buffer"]),  # its 15 minutes after reach 09:00Z
        ("2027-01-11T09:30Z", ["buffer"]),  # the booking's 15 minutes after reach 09:30Z
        ("2027-01-11T15:00Z", ["busy_external"]),
        ("2027-01-11T14:30Z", ["busy_external"]),  # padding reaches 15:00Z-15:10Z
    ],
)
def test_reason_codes(sched, clinic, start, expected):
    why = explain(clinic, "cut", "anna", sched.at(start), sched.NOW)
    assert codes(why) == expected
    assert why.bookable == (expected == [])
    # The location is the one whose window holds the start; outside hours there is none.
    assert why.location == (None if expected == ["outside_hours"] else "shop")


def test_booked_names_the_appointment(sched, clinic):
    why = explain(clinic, "cut", "anna", sched.at("2027-01-11T09:00Z"), sched.NOW)
    assert why.reasons[0].detail["ref"] == "apt-7"
    assert why.reasons[0].message


def test_rescheduling_ignores_the_own_appointment(sched, clinic):
    why = explain(clinic, "cut", "anna", sched.at("2027-01-11T09:00Z"), sched.NOW, exclude_refs=frozenset({"apt-7"}))
    assert why.bookable


def test_min_notice_and_max_advance(sched, clinic):
    soon = explain(clinic, "cut", "anna", sched.at("2027-01-11T08:00Z"), sched.at("2027-01-11T08:00:01Z"))
    assert codes(soon) == ["min_notice"]
    far = explain(clinic, "cut", "anna", sched.at("2027-01-11T08:00Z"), sched.at("2026-12-01T00:00Z"))
    assert codes(far) == ["max_advance"]


def test_several_reasons_come_in_rule_order(sched, clinic):
    why = explain(clinic, "cut", "anna", sched.at("2027-01-11T09:10Z"), sched.at("2027-01-11T09:30Z"))
    assert codes(why) == ["off_grid", "booked", "min_notice"]


@pytest.mark.parametrize(
    ("staff_key", "location"),
    [("ben", None), ("anna", "annex")],
)
def test_not_offered(sched, clinic, staff_key, location):
    s = sched.setup(
        locations=[sched.location(), sched.location("annex")],
        services=list(clinic.services.values()),
        staff=list(clinic.staff.values()),
    )
    why = explain(s, "cut", staff_key, sched.at("2027-01-11T08:00Z"), sched.NOW, location=location)
    assert codes(why) == ["not_offered"]
    assert not why.bookable


def test_inactive_staff_is_not_offered(sched):
    s = sched.setup(staff=[sched.staff(active=False)])
    assert codes(explain(s, "cut", "anna", sched.at("2027-01-11T08:00Z"), sched.NOW)) == ["not_offered"]


def test_group_session_full_and_partial(sched):
    cls = sched.service("class", duration=60, capacity=3)
    s = sched.setup(
        services=[cls],
        staff=[sched.staff(services=("class",), hours={"mon": [("09:00", "12:00")]})],
        bookings=[
            sched.booking("anna", cls, "2027-01-11T08:00Z", seats=3),
            sched.booking("anna", cls, "2027-01-11T10:00Z", seats=1),
        ],
    )
    full = explain(s, "class", "anna", sched.at("2027-01-11T08:00Z"), sched.NOW)
    assert (codes(full), full.seats_left) == (["full"], 0)
    partial = explain(s, "class", "anna", sched.at("2027-01-11T10:00Z"), sched.NOW)
    assert (partial.bookable, partial.seats_left) == (True, 2)
    fresh = explain(s, "class", "anna", sched.at("2027-01-11T09:00Z"), sched.NOW)
    assert (fresh.bookable, fresh.seats_left) == (True, 3)


def test_one_to_one_service_has_no_seats(sched, clinic):
    assert explain(clinic, "cut", "anna", sched.at("2027-01-11T08:00Z"), sched.NOW).seats_left is None


def test_dst_gap_start_explains_like_find_slots(sched):
    s = sched.setup(
        services=[sched.service(duration=60)],
        staff=[sched.staff(hours={"sun": [("02:30", "05:00")]})],
    )
    # The window starts at 03:00 CEST (01:00Z), not at the 02:30 that does not exist.
    assert explain(s, "cut", "anna", sched.at("2027-03-28T01:00Z"), sched.NOW).bookable
    assert codes(explain(s, "cut", "anna", sched.at("2027-03-28T00:30Z"), sched.NOW)) == ["outside_hours"]


@pytest.mark.parametrize(("arg", "kind"), [("service", "service"), ("staff", "staff"), ("location", "location")])
def test_unknown_keys_raise(sched, clinic, arg, kind):
    kwargs = {"service": "cut", "staff": "anna", "location": None, arg: "nope"}
    with pytest.raises(UnknownKey) as err:
        explain(clinic, kwargs["service"], kwargs["staff"], sched.at("2027-01-11T08:00Z"), sched.NOW, kwargs["location"])
    assert err.value.kind == kind


def _scenario_queries():
    out = []
    for path in sorted(SCENARIOS.glob("*.json")):
        doc = json.loads(path.read_text())
        for i, q in enumerate(doc["queries"]):
            out.append(pytest.param(doc, q, id=f"{path.stem}-q{i + 1}"))
    return out


@pytest.mark.parametrize(("doc", "q"), _scenario_queries())
def test_every_five_minutes_explain_matches_find_slots(doc, q):
    setup, now = setup_from_file(doc["setup"])
    query = SlotQuery(
        q["service"], date.fromisoformat(q["from"]), date.fromisoformat(q["to"]), q["timezone"], now,
        location=q.get("location"), staff=q.get("staff"),
    )
    slots = find_slots(setup, query)
    offered = {(s.start, k): s for s in slots for k in s.staff}
    first = min(s.start for s in slots) - timedelta(hours=3)
    last = max(s.start for s in slots) + timedelta(hours=3)
    keys = [query.staff] if query.staff else sorted(setup.staff)
    start = first
    while start <= last:
        for key in keys:
            why = explain(setup, query.service, key, start, now, query.location)
            hit = offered.get((start, key))
            assert why.bookable == (hit is not None), (start, key, why.reasons)
            if hit is not None:
                assert why.location == hit.locations[key]
                assert why.seats_left == (hit.seats_left[key] if hit.seats_left else None)
        start += timedelta(minutes=5)
