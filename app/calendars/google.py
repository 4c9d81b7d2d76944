"""Google Calendar API v3 (events insert/patch/delete, incremental list with syncToken, watch channels).

Our event id is derived from the appointment id (base32hex: the UUID's hex digits,
plus "v<n>" when it had to be re-created), so a retried insert after a lost answer
gets 409 instead of making a second event; a 409 is answered by updating that id
(which also revives an event we deleted before). Extra fields (the meeting job's
`conferenceData.createRequest`) pass through `OurEvent.extra`; the answer's
`hangoutLink` / `conferenceData` are returned in `Written.raw`.
"""

from __future__ import annotations

import datetime as dt
from urllib.parse import quote
from zoneinfo import ZoneInfo

from app.calendars.base import CalendarInfo, Changes, Conflict, Gone, NotFound, Occurrence, OurEvent, PulledEvent, Written
from app.calendars.http import JsonApi

UTC = dt.timezone.utc
MARK = "upzento"


def event_id(appointment_id: str, generation: int = 0) -> str:
    """A valid Google event id ([a-v0-9]{5,1024}) for an appointment."""
    base = appointment_id.replace("-", "").lower()
    return base if not generation else f"{base}v{generation}"


def _rfc3339(value: dt.datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def body_of(event: OurEvent, generation: int = 0, with_id: bool = True) -> dict:
    body = {
        "summary": event.title,
        "description": event.description,
        "location": event.location,
        "start": {"dateTime": _rfc3339(event.start), "timeZone": event.timezone},
        "end": {"dateTime": _rfc3339(event.end), "timeZone": event.timezone},
        "status": "confirmed",
        "transparency": "opaque",
        "extendedProperties": {"private": {MARK: event.appointment_id}},
    }
    if with_id:
        # No iCalUID: the staff member may have added our e-mailed invitation (same UID) already.
        body["id"] = event_id(event.appointment_id, generation)
    body.update({k: v for k, v in (event.extra or {}).items()})
    return body


def _when(part: dict, zone: ZoneInfo) -> dt.datetime:
    if part.get("dateTime"):
        value = dt.datetime.fromisoformat(part["dateTime"].replace("Z", "+00:00"))
        if value.tzinfo is None:
            value = value.replace(tzinfo=ZoneInfo(part.get("timeZone") or str(zone)))
        return value.astimezone(UTC)
    day = dt.date.fromisoformat(part["date"])
    return dt.datetime(day.year, day.month, day.day, tzinfo=zone).astimezone(UTC)


def pulled(item: dict, zone: ZoneInfo) -> PulledEvent:
    ours = ((item.get("extendedProperties") or {}).get("private") or {}).get(MARK)
    if item.get("status") == "cancelled" or "start" not in item:
        return PulledEvent(item["id"], item.get("etag"), deleted=True, ours=ours)
    start, end = _when(item["start"], zone), _when(item["end"], zone)
    return PulledEvent(
        external_id=item["id"], etag=item.get("etag"),
        occurrences=[Occurrence(start, end)] if end > start else [],
        free=item.get("transparency") == "transparent", tentative=item.get("status") == "tentative", ours=ours)


class GoogleClient:
    """One Google account's calendars."""

    def __init__(self, base_url: str, tokens, *, timezone: str = "UTC", timeout: float = 20):
        self.api = JsonApi(base_url, tokens, timeout, name="Google Calendar")
        self.zone = ZoneInfo(timezone)

    @property
    def requests(self) -> int:
        return self.api.requests

    def _events(self, calendar_id: str) -> str:
        return f"/calendars/{quote(calendar_id, safe='')}/events"

    def calendars(self) -> list[CalendarInfo]:
        out, page = [], None
        while True:
            data = self.api.call("GET", "/users/me/calendarList", params={"pageToken": page} if page else None)
            for item in data.get("items", []):
                out.append(CalendarInfo(item["id"], item.get("summaryOverride") or item.get("summary") or item["id"],
                                        bool(item.get("primary")), item.get("accessRole") in ("owner", "writer")))
            page = data.get("nextPageToken")
            if not page:
                return out

    def upsert(self, calendar_id: str, event: OurEvent, external_id: str | None, generation: int = 0) -> Written:
        params = {"conferenceDataVersion": 1} if "conferenceData" in (event.extra or {}) else {}
        if external_id:
            data = self.api.call("PATCH", f"{self._events(calendar_id)}/{quote(external_id)}", params=params or None,
                                 json=body_of(event, with_id=False))
            return Written(data["id"], data.get("etag"), data)
        eid = event_id(event.appointment_id, generation)
        try:
            data = self.api.call("POST", self._events(calendar_id), params=params or None, json=body_of(event, generation))
        except Conflict:
            # The id exists: our earlier insert went through (answer lost), or we deleted it
            # before; Google keeps deleted ids, so update it (status confirmed revives it).
            data = self.api.call("PUT", f"{self._events(calendar_id)}/{eid}", params=params or None,
                                 json=body_of(event, with_id=False))
        return Written(data["id"], data.get("etag"), data)

    def delete(self, calendar_id: str, external_id: str) -> None:
        try:
            self.api.call("DELETE", f"{self._events(calendar_id)}/{quote(external_id)}")
        except Gone:
            raise NotFound("already deleted", 410)

    def changes(self, calendar_id: str, token: str | None, window: tuple[dt.datetime, dt.datetime]) -> Changes:
        params = {"singleEvents": "true", "showDeleted": "true", "maxResults": 2500}
        if token:
            params["syncToken"] = token
        else:
            params["timeMin"], params["timeMax"] = _rfc3339(window[0]), _rfc3339(window[1])
        events, page, next_token = [], None, None
        while True:
            data = self.api.call("GET", self._events(calendar_id), params={**params, **({"pageToken": page} if page else {})})
            events.extend(pulled(item, self.zone) for item in data.get("items", []))
            page = data.get("nextPageToken")
            if not page:
                next_token = data.get("nextSyncToken")
                break
        return Changes(events=events, token=next_token, full=token is None)

    def watch(self, calendar_id: str, address: str, channel_id: str, channel_token: str, ttl_seconds: int) -> dict:
        """Open a push channel; returns {resource_id, expires (datetime)}."""
        data = self.api.call("POST", f"{self._events(calendar_id)}/watch", json={
            "id": channel_id, "type": "web_hook", "address": address, "token": channel_token,
            "params": {"ttl": str(int(ttl_seconds))}})
        expires = dt.datetime.fromtimestamp(int(data.get("expiration", 0)) / 1000, UTC) if data.get("expiration") else None
        return {"resource_id": data.get("resourceId"), "expires": expires}

    def stop(self, channel_id: str, resource_id: str) -> None:
        try:
            self.api.call("POST", "/channels/stop", json={"id": channel_id, "resourceId": resource_id})
        except NotFound:
            pass
