"""The rules of a business's catalogue, once: keys, names, durations, buffers, prices, hours, time zones ...

The REST API (app/api_rest.py), the admin forms (app/views/business.py), the setup
importer (app/services/setup_io.py) and provisioning call these functions, so the
same bad value gets the same message everywhere. Each check returns the cleaned
value or raises `RuleError(field, message)`; the callers only put the message in
their own shape (422 JSON with `field`, a form field error, a JSON path).

`constraint_rule()` maps the database's CHECK / UNIQUE constraint names (stable,
from the naming convention in app/models/base.py) to the same field and message,
for the rare write that reaches the database without passing a check.
"""

from __future__ import annotations

import decimal
import re
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

KEY_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,62}$"
KEY_RE = re.compile(KEY_PATTERN)
HEX_RE = re.compile(r"^#[0-9a-fA-F]{6}$")
CURRENCY_RE = re.compile(r"^[A-Z]{3}$")
NAME_MAX = 200
DURATION_MIN, DURATION_MAX = 5, 1440
BUFFER_MAX = 1440
INTERVAL_MIN = 5
PRICE_MAX = decimal.Decimal("99999999.99")  # Numeric(10, 2)
MEETINGS = ("none", "zoom", "teams", "google_meet")

KEY_MESSAGE = "lower-case letters, digits, - and _ (max 63), starting with a letter or digit"
NAME_MESSAGE = f"a name of 1 to {NAME_MAX} characters is required"
DURATION_MESSAGE = f"duration is {DURATION_MIN} to {DURATION_MAX} minutes"
BUFFER_MESSAGE = f"a buffer is 0 to {BUFFER_MAX} minutes"
INTERVAL_MESSAGE = f"the slot interval is at least {INTERVAL_MIN} minutes (empty: the duration)"
CAPACITY_MESSAGE = "capacity is at least 1"
NOTICE_MESSAGE = "minimum notice is 0 minutes or more"
ADVANCE_MESSAGE = "bookable up to at least 1 day ahead"
MEETING_MESSAGE = "meeting is none, zoom, teams or google_meet"
PRICE_MESSAGE = "price is an amount of 0 or more with at most 2 decimals, such as 25 or 25.50"
CURRENCY_MESSAGE = "currency must be a 3-letter ISO code such as EUR"
WEEKDAY_MESSAGE = "weekday is 0 (Monday) to 6 (Sunday)"
MINUTE_MESSAGE = "minutes after midnight, 0 to 1440"
SPAN_MESSAGE = "end must be after start"
DUPLICATE_MESSAGE = "already used in this business"


class RuleError(ValueError):
    """A value breaks a catalogue rule; `field` names it (the column name)."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field
        self.message = message


def _whole(value, field: str, message: str, low: int | None, high: int | None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise RuleError(field, message)
    if (low is not None and value < low) or (high is not None and value > high):
        raise RuleError(field, message)
    return value


# --------------------------------------------------------------------------- single values


def check_key(value, field: str = "key") -> str:
    if not isinstance(value, str) or not KEY_RE.match(value):
        raise RuleError(field, KEY_MESSAGE)
    return value


KEY_HELP = ("Used in links, the widget's embed code and setup files: lower-case letters, digits, - and _. "
            "Leave empty to derive it from the name.")


def key_from_name(name: str, fallback: str = "item") -> str:
    """'Haircut & Blow-dry (Long)' -> 'haircut-blow-dry-long': the key rule applied to a name."""
    import unicodedata

    plain = unicodedata.normalize("NFKD", name or "").encode("ascii", "ignore").decode().lower()
    return re.sub(r"[^a-z0-9]+", "-", plain).strip("-")[:56].strip("-") or fallback


def free_key(name: str, taken, fallback: str = "item") -> str:
    """The key derived from `name`, with -2, -3 ... appended while `taken(key)` says it is used."""
    base = key_from_name(name, fallback)
    key, n = base, 1
    while taken(key):
        n += 1
        key = f"{base}-{n}"
    return key


def check_name(value, field: str = "name") -> str:
    if not isinstance(value, str) or not value.strip() or len(value.strip()) > NAME_MAX:
        raise RuleError(field, NAME_MESSAGE)
    return value.strip()


def check_duration(value, field: str = "duration_min") -> int:
    return _whole(value, field, DURATION_MESSAGE, DURATION_MIN, DURATION_MAX)


def check_buffer(value, field: str = "buffer_before_min") -> int:
    return _whole(value, field, BUFFER_MESSAGE, 0, BUFFER_MAX)


def check_interval(value, field: str = "slot_interval_min") -> int | None:
    return None if value is None else _whole(value, field, INTERVAL_MESSAGE, INTERVAL_MIN, None)


def check_capacity(value, field: str = "capacity") -> int:
    return _whole(value, field, CAPACITY_MESSAGE, 1, None)


def check_notice(value, field: str = "min_notice_min") -> int:
    return _whole(value, field, NOTICE_MESSAGE, 0, None)


def check_advance(value, field: str = "max_advance_days") -> int:
    return _whole(value, field, ADVANCE_MESSAGE, 1, None)


def check_meeting(value, field: str = "meeting") -> str:
    if value not in MEETINGS:
        raise RuleError(field, MEETING_MESSAGE)
    return value


def check_price(value, field: str = "price") -> decimal.Decimal | None:
    """An amount (string, int or Decimal) of 0 or more with at most 2 decimals; None means no price."""
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int, decimal.Decimal, float)):
        raise RuleError(field, PRICE_MESSAGE)
    try:
        amount = decimal.Decimal(str(value).strip())
    except decimal.InvalidOperation:
        raise RuleError(field, PRICE_MESSAGE)
    if not amount.is_finite() or amount < 0 or amount > PRICE_MAX or amount.as_tuple().exponent < -2:
        raise RuleError(field, PRICE_MESSAGE)
    return amount


@lru_cache(maxsize=1)
def _zones() -> frozenset[str]:
    return frozenset(available_timezones()) | {"UTC"}


def zone_message(name) -> str:
    near = [z for z in sorted(_zones()) if isinstance(name, str) and name.strip()
            and z.lower().rsplit("/", 1)[-1] == name.strip().lower().replace(" ", "_")]
    hint = f"did you mean {near[0]}?" if near else "use an IANA name such as Europe/Berlin"
    return f"unknown time zone {name!r} ({hint})"


# Offered first in time-zone selects (after the business's own zone): the zones most businesses pick.
COMMON_ZONES = (
    "Europe/Berlin", "Europe/Vienna", "Europe/Zurich", "Europe/London", "Europe/Paris", "Europe/Madrid",
    "Europe/Rome", "Europe/Amsterdam", "Europe/Brussels", "Europe/Warsaw", "Europe/Stockholm", "Europe/Lisbon",
    "America/New_York", "America/Chicago", "America/Denver", "America/Los_Angeles", "America/Toronto",
    "Asia/Dubai", "Asia/Singapore", "Asia/Tokyo", "Australia/Sydney", "UTC",
)


def zone_choices(first: str | None = None) -> dict[str, list[tuple[str, str]]]:
    """Choices of a time-zone select as option groups: `first` (the business's zone) and the common
    zones, then every other IANA name in alphabetical order (each name once)."""
    common = [z for z in dict.fromkeys(((first,) if first else ()) + COMMON_ZONES) if z in _zones()]
    rest = sorted(_zones() - set(common))
    return {"Common": [(z, z.replace("_", " ")) for z in common], "All time zones": [(z, z.replace("_", " ")) for z in rest]}


def check_timezone(name, field: str = "timezone") -> str:
    if not isinstance(name, str) or name not in _zones():
        raise RuleError(field, zone_message(name))
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise RuleError(field, zone_message(name))
    return name


def check_currency(value, field: str = "currency") -> str:
    if not isinstance(value, str) or not CURRENCY_RE.match(value):
        raise RuleError(field, CURRENCY_MESSAGE)
    return value


def check_color(value, field: str = "primary_color") -> str:
    if not isinstance(value, str) or not HEX_RE.match(value):
        raise RuleError(field, f"{field.replace('_', ' ')} must look like #1d4ed8")
    return value


def check_weekday(value, field: str = "weekday") -> int:
    return _whole(value, field, WEEKDAY_MESSAGE, 0, 6)


def check_minute(value, field: str = "start_min") -> int:
    return _whole(value, field, MINUTE_MESSAGE, 0, 1440)


def check_span(start_min: int, end_min: int, field: str = "end_min") -> None:
    """Weekly hours, a break or an override interval: inside the day, end after start."""
    if end_min <= start_min:
        raise RuleError(field, SPAN_MESSAGE)


# --------------------------------------------------------------------------- a whole service

# Column -> check, for the fields of a service each caller has in hand.
SERVICE_FIELDS = {
    "key": check_key,
    "name": check_name,
    "duration_min": check_duration,
    "buffer_before_min": check_buffer,
    "buffer_after_min": check_buffer,
    "slot_interval_min": check_interval,
    "capacity": check_capacity,
    "min_notice_min": check_notice,
    "max_advance_days": check_advance,
    "meeting": check_meeting,
    "price": check_price,
}
# Field name -> check, for a value met alone (an API validator, a schema error in a setup file).
FIELD_CHECKS = {
    **SERVICE_FIELDS,
    "category": check_key,
    "timezone": check_timezone,
    "currency": check_currency,
    "primary_color": check_color,
    "accent_color": check_color,
    "weekday": check_weekday,
    "start_min": check_minute,
    "end_min": check_minute,
}


def field_problem(field: str, value) -> str | None:
    """The rule message for `value` in `field` (None: fine, or no rule for that field)."""
    check = FIELD_CHECKS.get(field)
    if check is None:
        return None
    try:
        check(value, field)
    except RuleError as exc:
        return exc.message
    return None


def service_problems(values: dict) -> list[RuleError]:
    """Every rule a service's values (those present in `values`) break."""
    problems = []
    for field, check in SERVICE_FIELDS.items():
        if field in values:
            try:
                check(values[field], field)
            except RuleError as exc:
                problems.append(exc)
    return problems


# --------------------------------------------------------------------------- database constraint names

CONSTRAINTS: dict[str, tuple[str | None, str]] = {
    "ck_service_duration": ("duration_min", DURATION_MESSAGE),
    "ck_service_buffers": ("buffer_before_min", BUFFER_MESSAGE),
    "ck_service_interval": ("slot_interval_min", INTERVAL_MESSAGE),
    "ck_service_capacity": ("capacity", CAPACITY_MESSAGE),
    "ck_service_window": ("max_advance_days", ADVANCE_MESSAGE),
    "ck_service_meeting": ("meeting", MEETING_MESSAGE),
    "ck_location_hours_span": ("end_min", SPAN_MESSAGE),
    "ck_staff_hours_span": ("end_min", SPAN_MESSAGE),
    "ck_staff_break_span": ("end_min", SPAN_MESSAGE),
    "ck_location_hours_weekday": ("weekday", WEEKDAY_MESSAGE),
    "ck_staff_hours_weekday": ("weekday", WEEKDAY_MESSAGE),
    "ck_staff_break_weekday": ("weekday", WEEKDAY_MESSAGE),
    "ck_time_off_span": ("end_at", SPAN_MESSAGE),
}

# Unique indexes whose name does not end in the column.
UNIQUE_FIELDS = {"uq_customer_email_lower": "email"}


def constraint_rule(name: str | None) -> tuple[str, str | None, str] | None:
    """(code, field, message) for a database constraint name; None for names no rule covers."""
    if not name:
        return None
    if name in CONSTRAINTS:
        field, message = CONSTRAINTS[name]
        return "invalid", field, message
    if name in UNIQUE_FIELDS:
        return "duplicate", UNIQUE_FIELDS[name], DUPLICATE_MESSAGE
    if name.startswith("uq_"):
        # uq_<table>_<column>: a key already taken.
        return "duplicate", name.split("_")[-1], DUPLICATE_MESSAGE
    if name.startswith("fk_"):
        return "invalid", None, "a referenced item does not exist in this business"
    return None
