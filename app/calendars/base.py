"""What every provider client offers, and the errors the sync tells apart."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any, Protocol


class ProviderError(Exception):
    """A provider refused or failed; `status` is the HTTP status (0: no answer)."""

    def __init__(self, message: str, status: int = 0, retry_after: float | None = None, body: Any = None):
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after
        self.body = body

    @property
    def temporary(self) -> bool:
        return self.status in (0, 408, 429) or self.status >= 500


class AuthFailed(ProviderError):
    """invalid_grant, a revoked token, 401 after a refresh: the connection needs a reconnect."""


class Gone(ProviderError):
    """The sync token / delta link is no longer valid (410): resync the window in full."""


class NotFound(ProviderError):
    """404: the event (or calendar) is not there."""


class Conflict(ProviderError):
    """409: e.g. Google's answer to inserting an id that was used (and deleted) before."""


@dataclass
class CalendarInfo:
    id: str
    name: str
    primary: bool = False
    can_write: bool = True


@dataclass
class OurEvent:
    """The event we want in the target calendar for one appointment."""

    appointment_id: str
    uid: str  # iCalendar UID (stable per appointment)
    title: str
    description: str
    location: str
    start: dt.datetime  # UTC
    end: dt.datetime
    timezone: str
    sequence: int = 0
    extra: dict = field(default_factory=dict)  # provider-specific fields (conferenceData, isOnlineMeeting...)


@dataclass
class Written:
    external_id: str
    etag: str | None
    raw: dict = field(default_factory=dict)  # the provider's answer (hangoutLink, onlineMeeting, ...)


@dataclass
class Occurrence:
    start: dt.datetime  # aware, UTC
    end: dt.datetime


@dataclass
class PulledEvent:
    """One changed event of a busy calendar, its occurrences already expanded (UTC)."""

    external_id: str
    etag: str | None
    deleted: bool = False
    occurrences: list[Occurrence] = field(default_factory=list)
    free: bool = False  # transparent / showAs free
    tentative: bool = False
    ours: str | None = None  # our appointment id when the event carries our mark


@dataclass
class Changes:
    events: list[PulledEvent]
    token: str | None  # the next syncToken / deltaLink / sync-token
    full: bool  # a full listing (first pull or after 410): events not listed are gone


class CalendarClient(Protocol):
    def calendars(self) -> list[CalendarInfo]: ...

    def upsert(self, calendar_id: str, event: OurEvent, external_id: str | None, generation: int) -> Written: ...

    def delete(self, calendar_id: str, external_id: str) -> None: ...

    def changes(self, calendar_id: str, token: str | None, window: tuple[dt.datetime, dt.datetime]) -> Changes: ...


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    from email.utils import parsedate_to_datetime

    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, (when - dt.datetime.now(dt.timezone.utc)).total_seconds())
