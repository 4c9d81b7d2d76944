"""Google Meet links: a Calendar event with `conferenceData.createRequest` (`conferenceDataVersion=1`).

Until staff Google connections exist (calendar sync), the event goes into one calendar
of the business's Google account, configured as an OAuth client and refresh token
(Settings → Meetings): `calendar_id` (default "primary"). The access token comes from
`POST {GOOGLE_OAUTH_URL}` (grant_type=refresh_token) and is cached like the others.
"""

from __future__ import annotations

import datetime as dt
import uuid
from urllib.parse import quote

from app.meetings.base import Meeting, MeetingError, OAuthApi, iso_z, raise_for


class GoogleMeetClient(OAuthApi):
    provider = "google_meet"

    def __init__(self, client_id: str, client_secret: str, refresh_token: str, calendar_id: str = "primary",
                 oauth_url: str = "https://oauth2.googleapis.com",
                 api_base_url: str = "https://www.googleapis.com/calendar/v3", **kwargs):
        super().__init__(**kwargs)
        if not (client_id and client_secret and refresh_token):
            raise MeetingError("Google Meet is not configured (client id, client secret, refresh token)",
                               temporary=False)
        self.client_id, self.client_secret, self.refresh_token = client_id, client_secret, refresh_token
        self.calendar = quote(calendar_id or "primary", safe="@.")
        self.oauth_url, self.api = oauth_url, api_base_url.rstrip("/")

    def cache_key(self) -> tuple:
        return ("google", self.oauth_url, self.client_id, self.refresh_token[-12:])

    def fetch_token(self) -> tuple[str, float]:
        url = self.oauth_url if self.oauth_url.endswith("/token") else self.oauth_url.rstrip("/") + "/token"
        data = self.post_token(url, "Google token", data={
            "client_id": self.client_id, "client_secret": self.client_secret,
            "refresh_token": self.refresh_token, "grant_type": "refresh_token"})
        return data["access_token"], float(data.get("expires_in") or 3600)

    def _events(self) -> str:
        return f"{self.api}/calendars/{self.calendar}/events"

    def create(self, user_id: str, topic: str, start: dt.datetime, end: dt.datetime, timezone: str | None = None,
               agenda: str | None = None, request_id: str | None = None) -> Meeting:
        body = {"summary": topic[:200], "description": agenda or "",
                "start": {"dateTime": iso_z(start)}, "end": {"dateTime": iso_z(end)},
                "conferenceData": {"createRequest": {"requestId": request_id or uuid.uuid4().hex,
                                                     "conferenceSolutionKey": {"type": "hangoutsMeet"}}}}
        if user_id and "@" in user_id:
            body["attendees"] = [{"email": user_id}]
        response = self.call("POST", self._events(), "Google create event", params={"conferenceDataVersion": 1},
                             json=body)
        raise_for(response, "Google create event")
        data = response.json()
        points = (data.get("conferenceData") or {}).get("entryPoints") or []
        video = next((p.get("uri") for p in points if p.get("entryPointType") == "video"), None)
        link = data.get("hangoutLink") or video
        if not link:
            # The conference is still being made (status pending): try again later.
            raise MeetingError("Google created the event without a Meet link yet")
        phones = [{"number": p.get("label") or p.get("uri"), "pin": p.get("pin")} for p in points
                  if p.get("entryPointType") == "phone"]
        return Meeting("google_meet", data["id"], link, {k: v for k, v in {"dial_in": phones or None}.items() if v})

    def update(self, meeting_id: str, topic: str, start: dt.datetime, end: dt.datetime, **_ignored) -> None:
        response = self.call("PATCH", f"{self._events()}/{meeting_id}", "Google update event",
                             params={"conferenceDataVersion": 1},
                             json={"summary": topic[:200], "start": {"dateTime": iso_z(start)},
                                   "end": {"dateTime": iso_z(end)}})
        raise_for(response, "Google update event")

    def delete(self, meeting_id: str, **_ignored) -> None:
        response = self.call("DELETE", f"{self._events()}/{meeting_id}", "Google delete event")
        if response.status_code in (404, 410):
            return
        raise_for(response, "Google delete event")
