"""Microsoft Graph calendars (Outlook / Microsoft 365): events, calendarView delta, subscriptions.

Creation carries `transactionId` (appointment id + generation), so Graph answers a
retried create with the event it already made. Times are sent and read in UTC
(`Prefer: outlook.timezone="UTC"`). The meeting job's `isOnlineMeeting` /
`onlineMeetingProvider` pass through `OurEvent.extra`; `onlineMeeting.joinUrl`
comes back in `Written.raw`. `changeKey` is the etag of our write.
"""

from __future__ import annotations

import datetime as dt
from urllib.parse import quote
from zoneinfo import ZoneInfo

from app.calendars.base import CalendarInfo, Changes, Occurrence, OurEvent, PulledEvent, Written
from app.calendars.http import JsonApi

UTC = dt.timezone.utc
PREFER = {"Prefer": 'outlook.timezone="UTC", odata.maxpagesize=500'}


def _dt(value: dt.datetime) -> dict:
    return {"dateTime": value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S"), "timeZone": "UTC"}


def transaction_id(appointment_id: str, generation: int = 0) -> str:
    return f"{appointment_id}-{generation}"


def body_of(event: OurEvent) -> dict:
    body = {
        "subject": event.title,
        "body": {"contentType": "text", "content": event.description},
        "start": _dt(event.start),
        "end": _dt(event.end),
        "location": {"displayName": event.location},
        "showAs": "busy",
        "isReminderOn": False,
    }
    body.update(event.extra or {})
    return body


def _when(part: dict, zone: ZoneInfo, all_day: bool) -> dt.datetime:
    value = _parse_iso(part["dateTime"]).replace(tzinfo=None)
    if all_day:
        return dt.datetime(value.year, value.month, value.day, tzinfo=zone).astimezone(UTC)
    tz = part.get("timeZone") or "UTC"
    return value.replace(tzinfo=UTC if tz == "UTC" else ZoneInfo(tz)).astimezone(UTC)


def pulled(item: dict, zone: ZoneInfo) -> PulledEvent:
    etag = item.get("changeKey") or item.get("@odata.etag")
    if "@removed" in item or item.get("isCancelled") or "start" not in item:
        return PulledEvent(item["id"], etag, deleted=True)
    all_day = bool(item.get("isAllDay"))
    start, end = _when(item["start"], zone, all_day), _when(item["end"], zone, all_day)
    show = item.get("showAs", "busy")
    return PulledEvent(item["id"], etag, occurrences=[Occurrence(start, end)] if end > start else [],
                       free=show in ("free", "workingElsewhere"), tentative=show == "tentative")


class GraphClient:
    """One Microsoft account's calendars."""

    def __init__(self, base_url: str, tokens, *, timezone: str = "UTC", timeout: float = 20):
        self.api = JsonApi(base_url, tokens, timeout, name="Microsoft Graph")
        self.zone = ZoneInfo(timezone)

    @property
    def requests(self) -> int:
        return self.api.requests

    def calendars(self) -> list[CalendarInfo]:
        out, url, absolute = [], "/me/calendars", False
        while url:
            data = self.api.call("GET", url, absolute=absolute)
            for item in data.get("value", []):
                out.append(CalendarInfo(item["id"], item.get("name") or item["id"], bool(item.get("isDefaultCalendar")),
                                        bool(item.get("canEdit", True))))
            url, absolute = data.get("@odata.nextLink"), True
        return out

    def upsert(self, calendar_id: str, event: OurEvent, external_id: str | None, generation: int = 0) -> Written:
        if external_id:
            data = self.api.call("PATCH", f"/me/events/{quote(external_id, safe='')}", json=body_of(event), headers=PREFER)
        else:
            body = {**body_of(event), "transactionId": transaction_id(event.appointment_id, generation)}
            data = self.api.call("POST", f"/me/calendars/{quote(calendar_id, safe='')}/events", json=body, headers=PREFER)
        return Written(data["id"], data.get("changeKey"), data)

    def delete(self, calendar_id: str, external_id: str) -> None:
        self.api.call("DELETE", f"/me/events/{quote(external_id, safe='')}")

    def changes(self, calendar_id: str, token: str | None, window: tuple[dt.datetime, dt.datetime]) -> Changes:
        if token:
            url, params, absolute = token, None, True
        else:
            url = f"/me/calendars/{quote(calendar_id, safe='')}/calendarView/delta"
            params = {"startDateTime": _dt(window[0])["dateTime"] + "Z", "endDateTime": _dt(window[1])["dateTime"] + "Z"}
            absolute = False
        events, delta = [], None
        while url:
            data = self.api.call("GET", url, params=params, headers=PREFER, absolute=absolute)
            events.extend(pulled(item, self.zone) for item in data.get("value", []))
            url, params, absolute = data.get("@odata.nextLink"), None, True
            delta = data.get("@odata.deltaLink") or delta
        return Changes(events=events, token=delta, full=token is None)

    def subscribe(self, calendar_id: str, address: str, client_state: str, expires: dt.datetime) -> dict:
        data = self.api.call("POST", "/subscriptions", json={
            "changeType": "created,updated,deleted", "notificationUrl": address,
            "resource": f"me/calendars/{calendar_id}/events",
            "expirationDateTime": expires.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.0000000Z"),
            "clientState": client_state})
        return {"id": data["id"], "expires": _parse_iso(data.get("expirationDateTime")) or expires}

    def renew(self, subscription_id: str, expires: dt.datetime) -> dict:
        data = self.api.call("PATCH", f"/subscriptions/{quote(subscription_id, safe='')}", json={
            "expirationDateTime": expires.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.0000000Z")})
        return {"id": subscription_id, "expires": _parse_iso(data.get("expirationDateTime")) or expires}


def _parse_iso(text: str | None) -> dt.datetime | None:
    """Graph's 7-digit fractions are more than fromisoformat takes: drop the fraction."""
    if not text:
        return None
    import re

    text = re.sub(r"\.\d+", "", text).replace("Z", "+00:00")
    value = dt.datetime.fromisoformat(text)
    return value if value.tzinfo else value.replace(tzinfo=UTC)
