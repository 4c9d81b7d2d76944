"""The first days of slots as HTML in the frame page, shown before any script runs.

The frame's first slots are otherwise drawn by flow.js, which must first start
the browser's Intl machinery (some 15 ms in a fresh page) and build the DOM.
Here the server writes the same markup flow.js would (same elements, classes,
ids and ARIA), with labels formatted like the browser's Intl.DateTimeFormat
(CLDR patterns via Babel), and flow.js adopts it: it wires the buttons, fills
in the remaining days and puts its own wording on any label that differs.

The markup is in the location's zone; a small inline script in the page keeps
it only where the visitor's clock gives the same UTC offsets (their own zone
may differ in name only), else hides it and flow.js renders in their zone.
"""

from __future__ import annotations

import datetime as dt
import re
from functools import lru_cache
from zoneinfo import ZoneInfo

from babel import Locale, UnknownLocaleError
from babel.dates import format_datetime

# Drawn by the server; flow.js adds the rest of the week after the first paint.
# More days make the first layout (and the page) bigger for times below the fold.
RENDERED_DAYS = 2
_QUOTED = re.compile(r"('[^']*')")


def visitor_locale(lang: str, accept_languages) -> str:
    """The locale flow.js formats with: the browser's first language if it is of `lang` (en-GB), else `lang`.

    flow.js takes navigator.language, which browsers send first in Accept-Language.
    """
    first = next((value for value, _q in accept_languages), "") if accept_languages else ""
    return first if first[:2].lower() == lang and _patterns(first) is not None else lang


def _outside_quotes(pattern: str, fn) -> str:
    return "".join(part if part.startswith("'") else fn(part) for part in _QUOTED.split(pattern))


@lru_cache(maxsize=64)
def _patterns(locale_id: str) -> tuple[Locale, str, str] | None:
    """(locale, day pattern, time pattern) as ICU builds them for flow.js's options, or None for an unknown locale.

    Day: {weekday: long, day: numeric, month: long}, the locale's MMMMEd skeleton
    with the weekday widened. Time: {hour: 2-digit, minute: 2-digit}, the locale's
    own hour cycle with the hour widened to two digits.
    """
    try:
        locale = Locale.parse(locale_id, sep="-")
    except (ValueError, TypeError, UnknownLocaleError):
        return None
    skeletons = locale.datetime_skeletons
    day = skeletons["MMMMEd"].pattern if "MMMMEd" in skeletons else "EEEE d MMMM"
    day = _outside_quotes(day, lambda p: re.sub(r"E+", "EEEE", p))
    h12 = re.search(r"[hK]", _QUOTED.sub("", locale.time_formats["short"].pattern)) is not None
    time = skeletons["hm" if h12 else "Hm"].pattern
    time = _outside_quotes(time, lambda p: re.sub(r"(?<![hHkK])([hHkK])(?![hHkK])", r"\1\1", p))
    return locale, day, time


def time_screen(inline: dict | None, zones: list[str], locale_id: str, seats_text: str) -> dict | None:
    """What frame.html needs to draw the first days of `inline` (views._first_slots), or None without slots.

    `zones` are the business's and the location's, listed after the visitor's in the zone picker.

    `checks` pairs instants with the zone's offset there as JavaScript's
    getTimezoneOffset() gives it: the range's ends and every drawn slot.
    """
    if not inline or not inline["slots"]:
        return None
    locale, day_pattern, time_pattern = _patterns(locale_id) or _patterns("en")
    zone = ZoneInfo(inline["tz"])
    start = dt.date.fromisoformat(inline["from"])
    ends = [dt.datetime.combine(start + dt.timedelta(days=n), dt.time(), zone) for n in (0, inline["days"])]
    days: list[dict] = []
    drawn: list[dt.datetime] = []
    for slot in inline["slots"]:
        at = dt.datetime.fromisoformat(slot["start"].replace("Z", "+00:00")).astimezone(zone)
        key = at.date().isoformat()
        if not days or days[-1]["key"] != key:
            if len(days) == RENDERED_DAYS:
                break
            days.append({"key": key, "label": format_datetime(at, day_pattern, locale=locale), "slots": []})
        left = max(slot["seats_left"].values(), default=0) if "seats_left" in slot else None
        # Chromium's ICU writes a plain space where newer CLDR has a narrow one (before AM/PM).
        days[-1]["slots"].append({
            "start": slot["start"], "label": format_datetime(at, time_pattern, locale=locale).replace("\u202f", " "),
            "left": seats_text.replace("{n}", str(left)) if left is not None else None,
        })
        drawn.append(at)
    checks = " ".join(f"{int(at.timestamp() * 1000)}@{-int(at.utcoffset().total_seconds() // 60)}" for at in ends + drawn)
    return {"days": days, "checks": checks, "zones": list(dict.fromkeys([inline["tz"], *zones, "UTC"])), "tz": inline["tz"]}
