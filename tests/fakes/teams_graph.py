"""A loopback Microsoft identity platform (client credentials) + Graph `onlineMeetings`, for Teams meeting links."""

from __future__ import annotations

import secrets
import threading
import time
import uuid

from fakes.http_fake import HttpFake, Response


class FakeTeamsGraph(HttpFake):
    tenant_id = "contoso-tenant"
    client_id = "graph-client"
    client_secret = "graph-secret"

    def __init__(self, token_ttl: int = 3600):
        super().__init__()
        self.token_ttl = token_ttl
        self.tokens: dict[str, float] = {}
        self.meetings: dict[str, dict] = {}
        self._lock = threading.Lock()
        self.route("POST", r"/([^/]+)/oauth2/v2.0/token", self._token)
        self.route("POST", r"/v1.0/users/([^/]+)/onlineMeetings", self._create)
        self.route("PATCH", r"/v1.0/users/([^/]+)/onlineMeetings/([^/]+)", self._patch)
        self.route("DELETE", r"/v1.0/users/([^/]+)/onlineMeetings/([^/]+)", self._delete)

    @property
    def login_base_url(self) -> str:
        return self.base_url

    @property
    def graph_base_url(self) -> str:
        return self.base_url + "/v1.0"

    def _token(self, req, match):
        form = req.form
        if match.group(1) != self.tenant_id or form.get("client_id") != self.client_id \
                or form.get("client_secret") != self.client_secret:
            return Response.json(401, {"error": "invalid_client", "error_description": "AADSTS7000215"})
        if form.get("grant_type") != "client_credentials" or form.get("scope") != "https://graph.microsoft.com/.default":
            return Response.json(400, {"error": "invalid_request"})
        token = secrets.token_urlsafe(24)
        with self._lock:
            self.tokens[token] = time.monotonic() + self.token_ttl
        return Response.json(200, {"token_type": "Bearer", "expires_in": self.token_ttl, "access_token": token})

    def _authorized(self, req) -> bool:
        token = (req.headers.get("authorization") or "").removeprefix("Bearer ")
        with self._lock:
            return self.tokens.get(token, 0) > time.monotonic()

    def _error(self, status, code, message):
        return Response.json(status, {"error": {"code": code, "message": message}})

    def _create(self, req, match):
        if not self._authorized(req):
            return self._error(401, "InvalidAuthenticationToken", "Access token has expired.")
        body = req.json()
        if not body.get("startDateTime") or not body.get("endDateTime"):
            return self._error(400, "BadRequest", "startDateTime and endDateTime are required")
        meeting_id = "MSo" + uuid.uuid4().hex
        meeting = {"id": meeting_id, "subject": body.get("subject"), "startDateTime": body["startDateTime"],
                   "endDateTime": body["endDateTime"], "organizer": match.group(1),
                   "joinWebUrl": f"https://teams.example/l/meetup-join/{meeting_id}",
                   "audioConferencing": {"conferenceId": "123456789", "tollNumber": "+1 555 0100",
                                         "tollNumbers": ["+1 555 0100"], "dialinUrl": "https://dialin.teams.example"}}
        with self._lock:
            self.meetings[meeting_id] = meeting
        return Response.json(201, meeting)

    def _patch(self, req, match):
        if not self._authorized(req):
            return self._error(401, "InvalidAuthenticationToken", "Access token has expired.")
        with self._lock:
            meeting = self.meetings.get(match.group(2))
            if meeting is None or meeting["organizer"] != match.group(1):
                return self._error(404, "NotFound", "meeting not found")
            meeting.update({k: v for k, v in req.json().items() if k in ("subject", "startDateTime", "endDateTime")})
            return Response.json(200, meeting)

    def _delete(self, req, match):
        if not self._authorized(req):
            return self._error(401, "InvalidAuthenticationToken", "Access token has expired.")
        with self._lock:
            meeting = self.meetings.get(match.group(2))
            if meeting is None or meeting["organizer"] != match.group(1):
                return self._error(404, "NotFound", "meeting not found")
            del self.meetings[match.group(2)]
        return Response(204)
