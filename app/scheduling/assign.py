"""Who takes an "any staff" booking (AVAILABILITY.md §8)."""

from __future__ import annotations

from zoneinfo import ZoneInfo

from app.scheduling.model import Setup, Slot
from app.scheduling.wallclock import UTC


def pick_staff(setup: Setup, slot: Slot, exclude_refs: frozenset[str] = frozenset()) -> str:
    """Among the slot's staff, the one with the fewest live appointments that local day; ties by key."""
    if not slot.staff:
        raise ValueError("the slot has no staff")
    return rank_staff(setup, slot, exclude_refs)[0]


def rank_staff(setup: Setup, slot: Slot, exclude_refs: frozenset[str] = frozenset()) -> list[str]:
    """The slot's staff in the order "any staff" tries them (the next one takes over if a race is lost)."""

    def load(key: str) -> tuple[int, str]:
        loc = setup.locations.get(slot.locations.get(key, ""))
        # "That local day" is the day at the location where the appointment would take place.
        tz = ZoneInfo(loc.timezone) if loc is not None else UTC
        day = slot.start.astimezone(tz).date()
        count = sum(
            1
            for b in setup.bookings
            if b.live
            and b.staff == key
            and (b.ref is None or b.ref not in exclude_refs)
            and b.start.astimezone(tz).date() == day
        )
        return count, key

    return sorted(slot.staff, key=load)
