"""Zoom meetings over Server-to-Server OAuth.

Token: `POST {ZOOM_OAUTH_URL}?grant_type=account_credentials&account_id=...` with Basic
auth (client id / secret), cached until shortly before `expires_in`, fetched again on a 401.
Meetings: `POST {ZOOM_API_BASE_URL}/users/{userId}/meetings` (201, `join_url`),
`PATCH /meetings/{id}` and `DELETE /meetings/{id}` (204; 404 on delete means already gone).
"""

from __future__ import annotations

import datetime as dt

from app.meetings.base import Meeting, MeetingError, OAuthApi, iso_z, raise_for


class ZoomClient(OAuthApi):
    provider = "zoom"

    def __init__(self, account_id: str, client_id: str, client_secret: str,
                 oauth_url: str = "https://zoom.us/oauth/token", api_base_url: str = "https://api.zoom.us/v2",
                 **kwargs):
        super().__init__(**kwargs)
        if not (account_id and client_id and client_secret):
            raise MeetingError("Zoom is not configured (account id, client id, client secret)", temporary=False)
        self.account_id, self.client_id, self.client_secret = account_id, client_id, client_secret
        self.oauth_url, self.api = oauth_url, api_base_url.rstrip("/")

    def cache_key(self) -> tuple:
        return ("zoom", self.oauth_url, self.account_id, self.client_id)

    def fetch_token(self) -> tuple[str, float]:
        data = self.post_token(self.oauth_url, "Zoom token",
                               params={"grant_type": "account_credentials", "account_id": self.account_id},
                               auth=(self.client_id, self.client_secret))
        return data["access_token"], float(data.get("expires_in") or 3600)

    @staticmethod
    def _body(topic: str, start: dt.datetime, end: dt.datetime, timezone: str | None, agenda: str | None) -> dict:
        body = {"topic": topic[:200], "type": 2, "start_time": iso_z(start),
                "duration": max(1, int((end - start).total_seconds() // 60)), "timezone": timezone or "UTC"}
        if agenda:
            body["agenda"] = agenda[:2000]
        return body

    def create(self, user_id: str, topic: str, start: dt.datetime, end: dt.datetime, timezone: str | None = None,
               agenda: str | None = None, **_ignored) -> Meeting:
        body = self._body(topic, start, end, timezone, agenda)
        body["settings"] = {"join_before_host": False, "waiting_room": True}
        response = self.call("POST", f"{self.api}/users/{user_id}/meetings", "Zoom create meeting", json=body)
        raise_for(response, "Zoom create meeting")
        data = response.json()
        dial_in = [{"number": n.get("number"), "country": n.get("country_name") or n.get("country"),
                    "type": n.get("type")} for n in (data.get("settings") or {}).get("global_dial_in_numbers") or []]
        details = {k: v for k, v in {"passcode": data.get("password"), "dial_in": dial_in or None,
                                     "host_id": data.get("host_id")}.items() if v}
        return Meeting("zoom", str(data["id"]), data["join_url"], details)

    def update(self, meeting_id: str, topic: str, start: dt.datetime, end: dt.datetime, timezone: str | None = None,
               agenda: str | None = None, **_ignored) -> None:
        response = self.call("PATCH", f"{self.api}/meetings/{meeting_id}", "Zoom update meeting",
                             json=self._body(topic, start, end, timezone, agenda))
        raise_for(response, "Zoom update meeting")

    def delete(self, meeting_id: str, **_ignored) -> None:
        response = self.call("DELETE", f"{self.api}/meetings/{meeting_id}", "Zoom delete meeting")
        if response.status_code == 404:
            return
        raise_for(response, "Zoom delete meeting")
