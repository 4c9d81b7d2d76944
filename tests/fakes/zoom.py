"""A loopback Zoom: Server-to-Server OAuth token endpoint and the meetings API, with its errors.

Tokens are random, expire after `token_ttl` seconds, and can be revoked (`revoke_tokens()`),
after which the API answers 401 as Zoom does for an expired token.
"""

from __future__ import annotations

import base64
import itertools
import secrets
import threading
import time

from fakes.http_fake import HttpFake, Response


class FakeZoom(HttpFake):
    account_id = "acc_test"
    client_id = "zoom-client"
    client_secret = "zoom-secret"

    def __init__(self, token_ttl: int = 3600):
        super().__init__()
        self.token_ttl = token_ttl
        self.tokens: dict[str, float] = {}
        self.meetings: dict[str, dict] = {}
        self.token_requests = 0
        self._ids = itertools.count(85_000_000_001)
        self._lock = threading.Lock()
        self.route("POST", r"/oauth/token", self._token)
        self.route("POST", r"/v2/users/([^/]+)/meetings", self._create)
        self.route("PATCH", r"/v2/meetings/(\d+)", self._patch)
        self.route("DELETE", r"/v2/meetings/(\d+)", self._delete)
        self.route("GET", r"/v2/meetings/(\d+)", self._get)

    @property
    def oauth_url(self) -> str:
        return self.base_url + "/oauth/token"

    @property
    def api_base_url(self) -> str:
        return self.base_url + "/v2"

    def revoke_tokens(self) -> None:
        with self._lock:
            self.tokens.clear()

    def _token(self, req, match):
        expected = "Basic " + base64.b64encode(f"{self.client_id}:{self.client_secret}".encode()).decode()
        if req.headers.get("authorization") != expected:
            return Response.json(401, {"reason": "Invalid client_id or client_secret", "error": "invalid_client"})
        if req.query.get("grant_type") != ["account_credentials"] or req.query.get("account_id") != [self.account_id]:
            return Response.json(400, {"reason": "Bad Request", "error": "invalid_request"})
        token = secrets.token_urlsafe(24)
        with self._lock:
            self.tokens[token] = time.monotonic() + self.token_ttl
            self.token_requests += 1
        return Response.json(200, {"access_token": token, "token_type": "bearer", "expires_in": self.token_ttl,
                                   "scope": "meeting:write:admin"})

    def _authorized(self, req) -> bool:
        token = (req.headers.get("authorization") or "").removeprefix("Bearer ")
        with self._lock:
            expiry = self.tokens.get(token)
        return expiry is not None and expiry > time.monotonic()

    def _unauthorized(self):
        return Response.json(401, {"code": 124, "message": "Invalid access token."})

    def _create(self, req, match):
        if not self._authorized(req):
            return self._unauthorized()
        body = req.json()
        for field in ("topic", "start_time", "duration"):
            if field not in body:
                return Response.json(400, {"code": 300, "message": f"{field} is required"})
        meeting_id = next(self._ids)
        meeting = {"id": meeting_id, "host_id": "host_" + match.group(1), "topic": body["topic"], "type": body.get("type", 2),
                   "start_time": body["start_time"], "duration": body["duration"], "timezone": body.get("timezone"),
                   "agenda": body.get("agenda", ""), "password": "a1B2c3",
                   "join_url": f"https://zoom.example/j/{meeting_id}?pwd=xyz",
                   "settings": {"global_dial_in_numbers": [{"country": "DE", "country_name": "Germany",
                                                            "number": "+49 69 7104 9922", "type": "toll"}]}}
        with self._lock:
            self.meetings[str(meeting_id)] = meeting
        return Response.json(201, meeting)

    def _patch(self, req, match):
        if not self._authorized(req):
            return self._unauthorized()
        with self._lock:
            meeting = self.meetings.get(match.group(1))
            if meeting is None:
                return Response.json(404, {"code": 3001, "message": "Meeting does not exist."})
            meeting.update({k: v for k, v in req.json().items() if k in ("topic", "start_time", "duration",
                                                                           "timezone", "agenda")})
        return Response(204)

    def _delete(self, req, match):
        if not self._authorized(req):
            return self._unauthorized()
        with self._lock:
            if self.meetings.pop(match.group(1), None) is None:
                return Response.json(404, {"code": 3001, "message": "Meeting does not exist."})
        return Response(204)

    def _get(self, req, match):
        if not self._authorized(req):
            return self._unauthorized()
        with self._lock:
            meeting = self.meetings.get(match.group(1))
        return Response.json(200, meeting) if meeting else Response.json(404, {"code": 3001,
                                                                                "message": "Meeting does not exist."})
