"""iCalendar (RFC 5545 / iTIP RFC 5546) invites for appointments.

One appointment keeps one UID for its whole life; every change is sent with the
same UID and a higher SEQUENCE, so calendar clients update (or, for
``METHOD:CANCEL``, remove) the entry they already hold instead of adding a copy.
The caller owns the sequence counter (it is stored with the appointment).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from urllib.parse import urlencode

from icalendar import Alarm, Calendar, Event, vCalAddress, vText

PRODID = "-//Upzento//Appointments//EN"
METHODS = ("REQUEST", "CANCEL")
STATUSES = ("CONFIRMED", "CANCELLED")
GOOGLE_CALENDAR_TEMPLATE_URL = "https://calendar.google.com/calendar/render"
OUTLOOK_COMPOSE_URL = "https://outlook.live.com/calendar/0/deeplink/compose"


@dataclass(frozen=True)
class IcsEvent:
    """Everything an invite says about one appointment; datetimes must be timezone-aware."""

    uid: str
    sequence: int
    start: datetime
    end: datetime
    summary: str
    organizer_name: str
    organizer_email: str
    dtstamp: datetime
    attendees: tuple[tuple[str, str], ...] = ()
    description: str = ""
    location: str = ""
    url: str | None = None
    status: str = "CONFIRMED"
    alarm_minutes: int | None = None

    def __post_init__(self) -> None:
        # Accept a list of pairs too, but keep the frozen dataclass hashable.
        object.__setattr__(self, "attendees", tuple((n, e) for n, e in self.attendees))


def appointment_uid(appointment_id: int | str, tenant_slug: str) -> str:
    """The stable UID of an appointment: it must never change between updates."""
    return f"appt-{appointment_id}@{tenant_slug}.upzento"


def as_cancelled(event: IcsEvent, dtstamp: datetime) -> IcsEvent:
    """The cancellation of ``event``: same UID, STATUS:CANCELLED, SEQUENCE + 1."""
    return dataclasses.replace(event, status="CANCELLED", sequence=event.sequence + 1, dtstamp=dtstamp)


def _utc(value: datetime, name: str) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware, got naive {value!r}")
    return value.astimezone(timezone.utc)


def _address(name: str, email: str, **params: str) -> vCalAddress:
    addr = vCalAddress(f"mailto:{email}")
    if name:
        addr.params["CN"] = vText(name)
    for key, value in params.items():
        addr.params[key.replace("_", "-").upper()] = vText(value)
    return addr


def _check(event: IcsEvent, method: str) -> None:
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if event.status not in STATUSES:
        raise ValueError(f"status must be one of {STATUSES}, got {event.status!r}")
    # iTIP has no "REQUEST that cancels": clients would keep a ghost entry.
    if (method == "CANCEL") != (event.status == "CANCELLED"):
        raise ValueError(f"method {method} does not go with status {event.status}")
    if event.sequence < 0:
        raise ValueError("sequence must be >= 0")
    if _utc(event.end, "end") <= _utc(event.start, "start"):
        raise ValueError("end must be after start")
    if not event.uid:
        raise ValueError("uid is required")


def build_ics(event: IcsEvent, method: str) -> bytes:
    """Serialize ``event`` as a VCALENDAR with ``METHOD:REQUEST`` or ``METHOD:CANCEL``."""
    method = method.upper()
    _check(event, method)

    cal = Calendar()
    cal.add("prodid", PRODID)
    cal.add("version", "2.0")
    cal.add("calscale", "GREGORIAN")
    cal.add("method", method)

    vevent = Event()
    vevent.add("uid", event.uid)
    vevent.add("sequence", event.sequence)
    vevent.add("dtstamp", _utc(event.dtstamp, "dtstamp"))
    vevent.add("dtstart", _utc(event.start, "start"))
    vevent.add("dtend", _utc(event.end, "end"))
    vevent.add("summary", event.summary)
    if event.description:
        vevent.add("description", event.description)
    if event.location:
        vevent.add("location", event.location)
    if event.url:
        vevent.add("url", event.url)
    vevent.add("status", event.status)
    vevent.add("transp", "OPAQUE")
    vevent.add("organizer", _address(event.organizer_name, event.organizer_email))
    for name, email in event.attendees:
        # The customer booked the slot themselves: ACCEPTED with RSVP=FALSE keeps
        # mail clients from showing accept/decline buttons whose replies would go
        # to the organizer mailbox and change nothing in the booking.
        vevent.add(
            "attendee",
            _address(name, email, role="REQ-PARTICIPANT", partstat="ACCEPTED", rsvp="FALSE"),
        )
    if event.alarm_minutes is not None and method == "REQUEST":
        alarm = Alarm()
        alarm.add("action", "DISPLAY")
        alarm.add("description", event.summary)
        alarm.add("trigger", timedelta(minutes=-event.alarm_minutes))
        vevent.add_component(alarm)

    cal.add_component(vevent)
    return cal.to_ical()


def _google_dates(event: IcsEvent) -> str:
    fmt = "%Y%m%dT%H%M%SZ"
    return f"{_utc(event.start, 'start').strftime(fmt)}/{_utc(event.end, 'end').strftime(fmt)}"


def google_calendar_link(event: IcsEvent, base_url: str = GOOGLE_CALENDAR_TEMPLATE_URL) -> str:
    """An "add to Google Calendar" URL for ``event`` (built here, never fetched)."""
    details = event.description
    if event.url and event.url not in details:
        details = f"{details}\n\n{event.url}" if details else event.url
    params = {"action": "TEMPLATE", "text": event.summary, "dates": _google_dates(event)}
    if details:
        params["details"] = details
    if event.location:
        params["location"] = event.location
    return f"{base_url}?{urlencode(params, safe='/')}"


def outlook_calendar_link(event: IcsEvent, base_url: str = OUTLOOK_COMPOSE_URL) -> str:
    """An "add to Outlook" URL for ``event`` (Outlook.com's compose deep link; built here, never fetched)."""
    details = event.description
    if event.url and event.url not in details:
        details = f"{details}\n\n{event.url}" if details else event.url
    fmt = "%Y-%m-%dT%H:%M:%SZ"
    params = {"path": "/calendar/action/compose", "rru": "addevent", "subject": event.summary,
              "startdt": _utc(event.start, "start").strftime(fmt), "enddt": _utc(event.end, "end").strftime(fmt)}
    if details:
        params["body"] = details
    if event.location:
        params["location"] = event.location
    return f"{base_url}?{urlencode(params, safe='/:')}"
