"""Microsoft Teams meetings through Graph `onlineMeetings`, with app (client-credentials) permissions.

Token: `POST {MS_LOGIN_BASE_URL}/{tenant}/oauth2/v2.0/token` (client_credentials,
scope `https://graph.microsoft.com/.default`). Meetings: `POST {MS_GRAPH_BASE_URL}/users/{id}/onlineMeetings`
→ `joinWebUrl`; PATCH and DELETE `/users/{id}/onlineMeetings/{meetingId}`. The organizer is the
staff member's Microsoft account (their email as UPN). This needs an application access
policy in the customer's Microsoft tenant that lets the app act for those users.
"""

from __future__ import annotations

import datetime as dt

from app.meetings.base import Meeting, MeetingError, OAuthApi, iso_z, raise_for


class TeamsClient(OAuthApi):
    provider = "teams"

    def __init__(self, tenant_id: str, client_id: str, client_secret: str,
                 login_base_url: str = "https://login.microsoftonline.com",
                 graph_base_url: str = "https://graph.microsoft.com/v1.0", **kwargs):
        super().__init__(**kwargs)
        if not (tenant_id and client_id and client_secret):
            raise MeetingError("Microsoft Teams is not configured (tenant id, client id, client secret)",
                               temporary=False)
        self.tenant_id, self.client_id, self.client_secret = tenant_id, client_id, client_secret
        self.login, self.graph = login_base_url.rstrip("/"), graph_base_url.rstrip("/")

    def cache_key(self) -> tuple:
        return ("teams", self.login, self.tenant_id, self.client_id)

    def fetch_token(self) -> tuple[str, float]:
        data = self.post_token(f"{self.login}/{self.tenant_id}/oauth2/v2.0/token", "Microsoft token", data={
            "client_id": self.client_id, "client_secret": self.client_secret,
            "scope": "https://graph.microsoft.com/.default", "grant_type": "client_credentials"})
        return data["access_token"], float(data.get("expires_in") or 3600)

    def create(self, user_id: str, topic: str, start: dt.datetime, end: dt.datetime, **_ignored) -> Meeting:
        response = self.call("POST", f"{self.graph}/users/{user_id}/onlineMeetings", "Teams create meeting",
                             json={"subject": topic[:255], "startDateTime": iso_z(start), "endDateTime": iso_z(end)})
        raise_for(response, "Teams create meeting")
        data = response.json()
        audio = data.get("audioConferencing") or {}
        details = {k: v for k, v in {"organizer": user_id, "conference_id": audio.get("conferenceId"),
                                     "dial_in": [{"number": n} for n in audio.get("tollNumbers") or
                                                 ([audio["tollNumber"]] if audio.get("tollNumber") else [])] or None,
                                     "dial_in_url": audio.get("dialinUrl")}.items() if v}
        return Meeting("teams", data["id"], data["joinWebUrl"], details)

    def update(self, meeting_id: str, topic: str, start: dt.datetime, end: dt.datetime, user_id: str = "",
               **_ignored) -> None:
        response = self.call("PATCH", f"{self.graph}/users/{user_id}/onlineMeetings/{meeting_id}",
                             "Teams update meeting",
                             json={"subject": topic[:255], "startDateTime": iso_z(start), "endDateTime": iso_z(end)})
        raise_for(response, "Teams update meeting")

    def delete(self, meeting_id: str, user_id: str = "") -> None:
        response = self.call("DELETE", f"{self.graph}/users/{user_id}/onlineMeetings/{meeting_id}",
                             "Teams delete meeting")
        if response.status_code == 404:
            return
        raise_for(response, "Teams delete meeting")
