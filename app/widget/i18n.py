"""The booking widget's texts: keys the flow script reads, English msgids for the catalogues.

The frame ships the texts of one language inline as ``{key: text}`` (flow.js reads
``T.key``), translated from the gettext catalogues in ``translations/``. ``{n}`` is filled
in by the script, so translations keep it as it is.
"""

from __future__ import annotations

from app import i18n as _i18n
from app.i18n import LANGUAGES, N_

__all__ = ["LANGUAGES", "STRINGS", "pick", "strings"]

STRINGS: dict[str, str] = {
    "fix_errors": N_("Please correct {n} field(s):"),
    "slot_keys": N_("Arrow keys move between times, up and down between days."),
    "book": N_("Book an appointment"), "location": N_("Choose a location"), "service": N_("Choose a service"),
    "staff": N_("Choose a person"), "any": N_("Anyone available"), "time": N_("Choose a date and time"),
    "details": N_("Your details"), "done": N_("Booking confirmed"), "back": N_("Back"),
    "timezone": N_("Time zone"), "later": N_("Later dates"), "no_slots": N_("No free times in this period."),
    "loading": N_("Loading…"), "seats_left": N_("{n} seats left"), "min": N_("min"), "repeat": N_("Repeat weekly"),
    "times": N_("Number of weeks"), "seats": N_("Seats"), "name": N_("Name"), "email": N_("Email"),
    "phone": N_("Phone"), "optional": N_("optional"), "required": N_("This field is required"),
    "invalid_email": N_("Please enter an email address"), "accept": N_("I accept the"),
    # Consent kinds (T[consent.kind]).
    "terms": N_("terms and conditions"), "privacy": N_("privacy notice"), "marketing": N_("News and offers"),
    "confirm": N_("Book now"), "ics": N_("Add to calendar (.ics)"), "google": N_("Add to Google Calendar"),
    "outlook": N_("Add to Outlook"), "manage": N_("Manage your booking"), "close": N_("Close"), "map": N_("Map"), "directions": N_("Directions"),
    "taken": N_("This time was just taken. Please choose another."),
    "error": N_("Something went wrong. Please try again."), "all": N_("Other"), "when": N_("When"),
    "with": N_("With"), "recurring_note": N_("{n} appointments booked"),
    # The page shown instead of the frame on a website the business did not allow.
    "elsewhere": N_("Online booking opens on our booking page."), "open_booking": N_("Open the booking page"),
}


def pick(wanted: str | None, accept=None, fallback: str = "en") -> str:
    """A supported language: the wanted one, else the browser's best match, else the fallback."""
    return _i18n.pick([wanted], accept, fallback)


def strings(lang: str) -> dict[str, str]:
    """The widget's texts in ``lang`` (English where the catalogue has no translation)."""
    return dict(_strings(_i18n.normalize(lang) or _i18n.DEFAULT_LANGUAGE))


_CACHE: dict[str, dict[str, str]] = {}


def _strings(lang: str) -> dict[str, str]:
    found = _CACHE.get(lang)
    if found is None:
        tr = _i18n.translations(lang)
        found = _CACHE[lang] = {key: tr.gettext(msgid) for key, msgid in STRINGS.items()}
    return found
