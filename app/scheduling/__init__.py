"""Pure availability engine (AVAILABILITY.md): plain dataclasses in, bookable slots out.

No Flask, no SQLAlchemy, no clock reads: callers pass `now`.
"""

from app.scheduling.engine import find_slots, slot_to_json
from app.scheduling.explain import Explanation, Reason, explain
from app.scheduling.model import (
    WEEKDAYS,
    Booking,
    Break,
    DateOverride,
    Interval,
    LocationRules,
    ServiceRules,
    Setup,
    Slot,
    SlotQuery,
    Span,
    StaffRules,
    UnknownKey,
    WeeklyHours,
)
from app.scheduling.setup_file import setup_from_file

__all__ = [
    "WEEKDAYS",
    "Booking",
    "Break",
    "DateOverride",
    "Explanation",
    "Interval",
    "LocationRules",
    "Reason",
    "ServiceRules",
    "Setup",
    "Slot",
    "SlotQuery",
    "Span",
    "StaffRules",
    "UnknownKey",
    "WeeklyHours",
    "explain",
    "find_slots",
    "setup_from_file",
    "slot_to_json",
]
