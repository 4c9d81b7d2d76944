"""CalDAV (iCloud, Nextcloud, Fastmail, Radicale) through the `caldav` library, events through `icalendar`.

Our event lives at `<calendar>/upzento-<appointment hex>.ics` with a stable UID, so
a retried PUT overwrites the same resource instead of adding a second one. Pulls use
RFC 6578 sync-collection; an expired token gives a full listing of the calendar.
Recurring events are expanded (recurring-ical-events) in their own time zone.
"""

from __future__ import annotations

import datetime as dt
import logging
from urllib.parse import quote
from zoneinfo import ZoneInfo

import caldav
import icalendar
import recurring_ical_events
from caldav.lib import error as dav_error

from app.calendars.base import (
    AuthFailed,
    CalendarInfo,
    Changes,
    Gone,
    NotFound,
    Occurrence,
    OurEvent,
    ProviderError,
    PulledEvent,
    Written,
    parse_retry_after,
)

log = logging.getLogger(__name__)
UTC = dt.timezone.utc
MARK = "X-UPZENTO-APPOINTMENT"


def resource_name(appointment_id: str) -> str:
    return f"upzento-{appointment_id.replace('-', '')}.ics"


def to_ical(event: OurEvent) -> str:
    cal = icalendar.Calendar()
    cal.add("prodid", "-//Upzento//Appointments//EN")
    cal.add("version", "2.0")
    ev = icalendar.Event()
    ev.add("uid", event.uid)
    ev.add("dtstamp", dt.datetime.now(UTC))
    ev.add("dtstart", event.start.astimezone(UTC))
    ev.add("dtend", event.end.astimezone(UTC))
    ev.add("summary", event.title)
    if event.description:
        ev.add("description", event.description)
    if event.location:
        ev.add("location", event.location)
    ev.add("sequence", event.sequence)
    ev.add("status", "CONFIRMED")
    ev.add("transp", "OPAQUE")
    ev.add(MARK, event.appointment_id)
    for key, value in (event.extra or {}).items():
        if key.upper().startswith("X-") or key.upper() in ("URL", "CONFERENCE"):
            ev.add(key, value)
    cal.add_component(ev)
    return cal.to_ical().decode()


def _utc(value, zone: ZoneInfo) -> dt.datetime:
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:  # floating time: the owner's zone
            value = value.replace(tzinfo=zone)
        return value.astimezone(UTC)
    # a date (all-day): local midnight in the owner's zone
    return dt.datetime(value.year, value.month, value.day, tzinfo=zone).astimezone(UTC)


def parse_objects(href: str, etag: str | None, data: str, window: tuple[dt.datetime, dt.datetime],
                  zone: ZoneInfo) -> PulledEvent:
    """One calendar object resource → a PulledEvent with its occurrences in the window."""
    cal = icalendar.Calendar.from_ical(data)
    events = [c for c in cal.walk("VEVENT")]
    master = next((e for e in events if e.get("RECURRENCE-ID") is None), events[0] if events else None)
    if master is None:
        return PulledEvent(href, etag, deleted=True)
    ours = master.get(MARK)
    status = str(master.get("STATUS") or "CONFIRMED").upper()
    occurrences = []
    lo, hi = window
    for occ in recurring_ical_events.of(cal).between(lo, hi):
        if str(occ.get("STATUS") or "").upper() == "CANCELLED":
            continue
        start = occ.decoded("DTSTART")
        if occ.get("DTEND") is not None:
            end = occ.decoded("DTEND")
        elif occ.get("DURATION") is not None:
            end = start + occ.decoded("DURATION")
        else:
            end = start + (dt.timedelta(days=1) if not isinstance(start, dt.datetime) else dt.timedelta(0))
        s, e = _utc(start, zone), _utc(end, zone)
        if e > s:
            occurrences.append(Occurrence(s, e))
    return PulledEvent(
        external_id=href,
        etag=etag,
        deleted=status == "CANCELLED",
        occurrences=occurrences,
        free=str(master.get("TRANSP") or "OPAQUE").upper() == "TRANSPARENT",
        tentative=status == "TENTATIVE",
        ours=str(ours) if ours else None,
    )


class CalDavClient:
    """One CalDAV account (URL + user + app password)."""

    def __init__(self, url: str, username: str, password: str, *, timezone: str = "UTC", timeout: int = 20):
        self.url = url.rstrip("/") + "/"
        self.zone = ZoneInfo(timezone)
        self.client = caldav.DAVClient(url=self.url, username=username, password=password, timeout=timeout,
                                       enable_rfc6764=False, require_tls=False, rate_limit_handle=False)
        self.requests = 0

    # -- helpers -------------------------------------------------------------
    def _call(self, fn, *args, **kwargs):
        self.requests += 1
        try:
            return fn(*args, **kwargs)
        except dav_error.AuthorizationError as exc:
            if getattr(exc, "reason", "") and "sync" in str(exc).lower():
                raise Gone(str(exc), 403) from exc
            raise AuthFailed(f"CalDAV refused the credentials: {exc}", 401) from exc
        except dav_error.NotFoundError as exc:
            raise NotFound(str(exc), 404) from exc
        except dav_error.RateLimitError as exc:
            raise ProviderError(f"CalDAV rate limit: {exc}", 429,
                                retry_after=getattr(exc, "retry_after_seconds", None)) from exc
        except dav_error.DAVError as exc:
            raise ProviderError(f"CalDAV error: {exc}", 502) from exc
        except (OSError, ConnectionError) as exc:
            raise ProviderError(f"CalDAV server unreachable: {exc}", 0) from exc
        except Exception as exc:  # niquests' own connection errors
            if type(exc).__name__ in ("ConnectionError", "Timeout", "ReadTimeout", "ConnectTimeout"):
                raise ProviderError(f"CalDAV server unreachable: {exc}", 0) from exc
            raise

    def _raw(self, method: str, url: str, body: str = "", headers=None):
        response = self._call(self.client.request, url, method, body, headers or {})
        status = response.status
        if status in (401, 403):
            raise AuthFailed(f"CalDAV {method} refused ({status})", 401)
        if status == 404:
            raise NotFound(f"CalDAV {method} {url}: not found", 404)
        if status == 429 or status >= 500:
            raise ProviderError(f"CalDAV {method} answered {status}", status,
                                retry_after=parse_retry_after(response.headers.get("Retry-After")))
        if status >= 400:
            raise ProviderError(f"CalDAV {method} answered {status}", status)
        return response

    def _calendar(self, calendar_id: str):
        return self.client.calendar(url=calendar_id)

    # -- interface -----------------------------------------------------------
    def calendars(self) -> list[CalendarInfo]:
        principal = self._call(self.client.principal)
        out = []
        for cal in self._call(principal.calendars):
            name = None
            try:
                name = cal.get_display_name()
            except Exception:  # noqa: BLE001 - a name is nice to have
                pass
            out.append(CalendarInfo(id=str(cal.url), name=name or str(cal.url).rstrip("/").rsplit("/", 1)[-1]))
        return out

    def make_calendar(self, name: str) -> CalendarInfo:
        principal = self._call(self.client.principal)
        cal = self._call(principal.make_calendar, name=name)
        return CalendarInfo(id=str(cal.url), name=name)

    def upsert(self, calendar_id: str, event: OurEvent, external_id: str | None, generation: int = 0) -> Written:
        href = external_id or (calendar_id.rstrip("/") + "/" + quote(resource_name(event.appointment_id)))
        response = self._raw("PUT", href, to_ical(event), {"Content-Type": "text/calendar; charset=utf-8"})
        etag = response.headers.get("ETag") or response.headers.get("Etag")
        return Written(external_id=href, etag=etag, raw={})

    def delete(self, calendar_id: str, external_id: str) -> None:
        self._raw("DELETE", external_id)

    def changes(self, calendar_id: str, token: str | None, window: tuple[dt.datetime, dt.datetime]) -> Changes:
        cal = self._calendar(calendar_id)
        full = token is None
        result = None
        if token is not None:
            try:
                self.requests += 1
                result = cal.get_objects_by_sync_token(sync_token=token, load_objects=True, disable_fallback=True)
            except (dav_error.AuthorizationError, dav_error.ReportError, dav_error.DAVError) as exc:
                # RFC 6578 3.2: an expired/unknown token is a 403 (DAV:valid-sync-token), 412 on some
                # servers. A real credentials problem shows again on the full listing below.
                log.info("CalDAV sync token of %s refused (%s): full listing", calendar_id, exc)
                full = True
        if result is None:
            result = self._call(cal.get_objects_by_sync_token, sync_token=None, load_objects=True,
                                disable_fallback=True)
        deleted = {str(u) for u in getattr(result, "deleted_urls", ()) or ()}
        events: list[PulledEvent] = []
        for obj in result.objects:
            href = str(obj.url)
            etag = (obj.props or {}).get("{DAV:}getetag")
            if href in deleted or obj.url.canonical() in deleted or not obj.data:
                events.append(PulledEvent(href, etag, deleted=True))
                continue
            try:
                events.append(parse_objects(href, etag, obj.data, window, self.zone))
            except Exception as exc:  # noqa: BLE001 - one broken object must not stop the pull
                log.warning("CalDAV object %s unreadable: %s", href, exc)
        for url in deleted:
            if not any(e.external_id == url for e in events):
                events.append(PulledEvent(url, None, deleted=True))
        return Changes(events=events, token=str(result.sync_token) if result.sync_token else None, full=full)
