"""A loopback Google Calendar v3 + OAuth 2.0 token endpoint, checked against Google's discovery document.

Every API request is matched to a method of `calendar.v3.json` (shipped inside
google-api-python-client): unknown paths or query parameters, parameters of the
wrong type and request-body fields that the method's schema does not define are
answered 400 (and recorded in `violations`, which tests assert empty).

State: calendars of one user, events with etags and a change serial; `syncToken`s
are serials (`expire_sync_tokens()` makes older ones 410); deleted ids stay (a
re-insert is 409, like Google). OAuth: authorization codes, refresh tokens (revoke
one → `invalid_grant`), access tokens that can be expired (→ 401). Push channels
from `events.watch` are notified with `notify(calendar)`.
"""

from __future__ import annotations

import base64
import copy
import datetime as dt
import itertools
import json
import os
import re
import secrets
import threading
from urllib.parse import parse_qs, unquote, urlencode, urlsplit

import requests

from fakes.http_fake import HttpFake, Request, Response, oauth_client


def _discovery() -> dict:
    import googleapiclient

    path = os.path.join(os.path.dirname(googleapiclient.__file__), "discovery_cache", "documents", "calendar.v3.json")
    with open(path) as fh:
        return json.load(fh)


DISCOVERY = _discovery()
API_PREFIX = "/" + DISCOVERY["servicePath"].rstrip("/")  # /calendar/v3


def _methods():
    out = []

    def walk(resources):
        for res in resources.values():
            for method in res.get("methods", {}).values():
                pattern = "^" + re.sub(r"\{(\w+)\}", lambda m: f"(?P<{m.group(1)}>[^/]+)",
                                       re.escape(method["path"]).replace(r"\{", "{").replace(r"\}", "}")) + "$"
                out.append((method["httpMethod"], re.compile(pattern), method))
            walk(res.get("resources", {}))

    walk(DISCOVERY["resources"])
    return out


METHODS = _methods()


def _error(status: int, reason: str, message: str, headers=None) -> Response:
    return Response.json(status, {"error": {"code": status, "message": message,
                                            "errors": [{"domain": "global", "reason": reason, "message": message}]}},
                         headers)


class GoogleCalendarFake(HttpFake):
    """Google Calendar API v3 and Google's OAuth token endpoint on one loopback port."""

    def __init__(self, email: str = "staff@gmail.test"):
        super().__init__()
        self.email = email
        self.violations: list[str] = []
        self.lock = threading.RLock()
        self.serial = itertools.count(1)
        self.last_serial = 0
        self.min_sync_serial = 0
        self.calendars = {email: {"id": email, "summary": email, "primary": True, "accessRole": "owner"},
                          "family": {"id": "family", "summary": "Family", "accessRole": "reader"}}
        self.events: dict[str, dict[str, dict]] = {cid: {} for cid in self.calendars}
        self.codes: dict[str, tuple[str, str]] = {}  # code -> (redirect_uri, client_id)
        self.refresh_tokens: dict[str, bool] = {}  # token -> valid
        self.refresh_client: dict[str, str] = {}  # refresh token -> the client it was issued to
        self.access_tokens: dict[str, bool] = {}
        self.token_requests: list[dict] = []
        # OAuth clients (apps) this Google knows: id -> secret. A token request must authenticate as one,
        # and a code or refresh token works only for the client it was issued to (else unauthorized_client).
        self.clients: dict[str, str] = {"gid": "gsecret"}
        self.token_clients: list[str | None] = []  # the client id of each token request, in order
        self.channels: dict[str, dict] = {}
        self.route("POST", r"/token", self._token)
        self.route("POST", r"/revoke", lambda req, m: Response(200))
        self.route("GET", r"/o/oauth2/v2/auth", self._authorize)
        for verb in ("GET", "POST", "PUT", "PATCH", "DELETE"):
            self.route(verb, re.escape(API_PREFIX) + r"/.*", self._api)

    # ------------------------------------------------------------------ helpers for tests
    @property
    def api_base(self) -> str:
        return self.base_url + API_PREFIX

    def grant(self, client_id: str = "gid") -> dict:
        """Tokens as after a consent to `client_id` (for tests that skip the browser step)."""
        refresh = "1//r-" + secrets.token_hex(8)
        self.refresh_tokens[refresh] = True
        self.refresh_client[refresh] = client_id
        access = self._new_access()
        return {"access_token": access, "refresh_token": refresh, "token_type": "Bearer",
                "expires_at": int(dt.datetime.now(dt.timezone.utc).timestamp()) + 3600}

    def revoke_all(self) -> None:
        for k in self.refresh_tokens:
            self.refresh_tokens[k] = False
        for k in self.access_tokens:
            self.access_tokens[k] = False

    def expire_access_tokens(self) -> None:
        for k in self.access_tokens:
            self.access_tokens[k] = False

    def expire_sync_tokens(self) -> None:
        self.min_sync_serial = self.last_serial + 1

    def add_foreign(self, calendar: str, start, end,
                    **fields) -> dict:
        """An event made by another client (the staff member's phone); start/end: datetimes or Google dicts."""
        eid = fields.pop("id", None) or secrets.token_hex(10)
        with self.lock:
            ev = {"kind": "calendar#event", "id": eid, "status": "confirmed", "summary": "Private",
                  "start": start if isinstance(start, dict) else {"dateTime": start.isoformat()},
                  "end": end if isinstance(end, dict) else {"dateTime": end.isoformat()}, **fields}
            self._store(calendar, ev)
        return ev

    def edit(self, calendar: str, eid: str, **fields) -> dict:
        with self.lock:
            ev = copy.deepcopy(self.events[calendar][eid])
            ev.update(fields)
            self._store(calendar, ev)
            return ev

    def remove(self, calendar: str, eid: str) -> None:
        with self.lock:
            ev = copy.deepcopy(self.events[calendar][eid])
            ev["status"] = "cancelled"
            self._store(calendar, ev)

    def live(self, calendar: str) -> list[dict]:
        return [e for e in self.events[calendar].values() if e["status"] != "cancelled"]

    def api_requests(self, method: str | None = None) -> list[Request]:
        return [r for r in self.requests if r.path.startswith(API_PREFIX) and (method is None or r.method == method)]

    def notify(self, calendar: str, state: str = "exists") -> list[int]:
        """POST a change notification to every channel watching `calendar` (as Google does)."""
        out = []
        for ch in list(self.channels.values()):
            if ch["calendar"] != calendar:
                continue
            ch["n"] += 1
            r = requests.post(ch["address"], timeout=10, headers={
                "X-Goog-Channel-ID": ch["id"], "X-Goog-Channel-Token": ch.get("token") or "",
                "X-Goog-Resource-ID": ch["resourceId"], "X-Goog-Resource-State": state,
                "X-Goog-Resource-URI": f"{self.api_base}/calendars/{calendar}/events", "X-Goog-Message-Number": str(ch["n"])})
            out.append(r.status_code)
        return out

    # ------------------------------------------------------------------ OAuth
    def _new_access(self) -> str:
        token = "ya29." + secrets.token_hex(12)
        self.access_tokens[token] = True
        return token

    def _id_token(self) -> str:
        def b64(d):
            return base64.urlsafe_b64encode(json.dumps(d).encode()).decode().rstrip("=")
        return f"{b64({'alg': 'none'})}.{b64({'email': self.email, 'sub': '1'})}."

    def _authorize(self, req: Request, m) -> Response:
        q = {k: v[-1] for k, v in req.query.items()}
        for needed in ("client_id", "redirect_uri", "response_type", "scope", "state"):
            if needed not in q:
                return Response.text(400, f"missing {needed}")
        if q.get("access_type") != "offline" or "calendar.events" not in q["scope"]:
            return Response.text(400, "offline access to calendar.events expected")
        if q["client_id"] not in self.clients:
            return Response.text(401, "Error 401: invalid_client. The OAuth client was not found.")
        code = "4/" + secrets.token_hex(8)
        self.codes[code] = (q["redirect_uri"], q["client_id"])
        sep = "&" if "?" in q["redirect_uri"] else "?"
        return Response(302, b"", {"Location": q["redirect_uri"] + sep + urlencode({"code": code, "state": q["state"]})})

    def _token(self, req: Request, m) -> Response:
        form = req.form
        self.token_requests.append(form)
        client_id, client_secret = oauth_client(req)
        self.token_clients.append(client_id)
        if client_id not in self.clients or self.clients[client_id] != client_secret:
            return Response.json(401, {"error": "invalid_client", "error_description": "Unauthorized"})
        grant = form.get("grant_type")
        if grant == "authorization_code":
            issued = self.codes.pop(form.get("code", ""), None)
            if issued is None or issued[1] != client_id:
                return Response.json(400, {"error": "invalid_grant", "error_description": "Bad code"})
            tokens = self.grant(client_id)
            return Response.json(200, {"access_token": tokens["access_token"], "refresh_token": tokens["refresh_token"],
                                       "expires_in": 3599, "token_type": "Bearer", "id_token": self._id_token(),
                                       "scope": "https://www.googleapis.com/auth/calendar.events"})
        if grant == "refresh_token":
            if not self.refresh_tokens.get(form.get("refresh_token", "")):
                return Response.json(400, {"error": "invalid_grant", "error_description": "Token has been expired or revoked."})
            if self.refresh_client.get(form["refresh_token"]) != client_id:
                return Response.json(400, {"error": "unauthorized_client", "error_description": "Unauthorized"})
            return Response.json(200, {"access_token": self._new_access(), "expires_in": 3599, "token_type": "Bearer"})
        return Response.json(400, {"error": "unsupported_grant_type"})

    # ------------------------------------------------------------------ API
    def _violation(self, text: str) -> Response:
        self.violations.append(text)
        return _error(400, "invalid", text)

    def _check(self, req: Request, method: dict, path_params: dict) -> str | None:
        params = {**DISCOVERY["parameters"], **method.get("parameters", {})}
        for name in path_params:
            if params.get(name, {}).get("location") != "path":
                return f"{name} is not a path parameter of {method['id']}"
        for name, values in req.query.items():
            spec = params.get(name)
            if spec is None or spec.get("location") != "query":
                return f"unknown query parameter {name!r} for {method['id']}"
            for v in values:
                if spec.get("type") == "integer":
                    if not re.fullmatch(r"-?\d+", v):
                        return f"{name} must be an integer"
                    if "minimum" in spec and int(v) < int(spec["minimum"]) or "maximum" in spec and int(v) > int(spec["maximum"]):
                        return f"{name} out of range"
                if spec.get("type") == "boolean" and v not in ("true", "false"):
                    return f"{name} must be true/false"
        for name, spec in params.items():
            if spec.get("required") and spec.get("location") == "query" and name not in req.query:
                return f"missing required {name}"
        ref = (method.get("request") or {}).get("$ref")
        if ref:
            try:
                body = req.json()
            except ValueError:
                return "body is not JSON"
            problem = self._check_schema(body, DISCOVERY["schemas"][ref], ref)
            if problem:
                return problem
        elif req.body and req.method in ("POST", "PUT", "PATCH"):
            return f"{method['id']} takes no body"
        return None

    def _check_schema(self, value, schema: dict, where: str) -> str | None:
        if "$ref" in schema:
            schema = DISCOVERY["schemas"][schema["$ref"]]
        kind = schema.get("type")
        if kind == "object":
            if not isinstance(value, dict):
                return f"{where} must be an object"
            props = schema.get("properties")
            extra = schema.get("additionalProperties")
            for k, v in value.items():
                if props and k in props:
                    p = self._check_schema(v, props[k], f"{where}.{k}")
                elif extra:
                    p = self._check_schema(v, extra, f"{where}.{k}")
                else:
                    p = f"unknown field {where}.{k}"
                if p:
                    return p
        elif kind == "array":
            if not isinstance(value, list):
                return f"{where} must be a list"
            for i, v in enumerate(value):
                p = self._check_schema(v, schema.get("items", {}), f"{where}[{i}]")
                if p:
                    return p
        elif kind == "string":
            if not isinstance(value, str):
                return f"{where} must be a string"
            if schema.get("format") == "date-time":
                try:
                    dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
                except ValueError:
                    return f"{where} is not RFC 3339"
        elif kind == "integer" and not isinstance(value, int):
            return f"{where} must be an integer"
        elif kind == "boolean" and not isinstance(value, bool):
            return f"{where} must be a boolean"
        return None

    def _api(self, req: Request, m) -> Response:
        rel = req.path[len(API_PREFIX) + 1:]
        for verb, pattern, method in METHODS:
            match = pattern.match(rel)
            if match and verb == req.method:
                break
        else:
            return self._violation(f"no discovery method for {req.method} {rel}")
        params = {k: unquote(v) for k, v in match.groupdict().items()}
        problem = self._check(req, method, params)
        if problem:
            return self._violation(problem)
        auth = req.headers.get("authorization", "")
        if not auth.startswith("Bearer ") or not self.access_tokens.get(auth[7:]):
            return _error(401, "authError", "Invalid Credentials")
        handler = getattr(self, "_m_" + method["id"].replace("calendar.", "").replace(".", "_"), None)
        if handler is None:
            return _error(501, "notImplemented", method["id"])
        with self.lock:
            return handler(req, params)

    def _store(self, calendar: str, ev: dict) -> dict:
        serial = next(self.serial)
        self.last_serial = serial
        ev["_serial"] = serial
        ev["etag"] = f'"{serial}{secrets.token_hex(3)}"'
        ev["updated"] = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000Z")
        ev.setdefault("kind", "calendar#event")
        self.events[calendar][ev["id"]] = ev
        return ev

    @staticmethod
    def _public(ev: dict) -> dict:
        out = {k: v for k, v in ev.items() if not k.startswith("_")}
        if out.get("status") == "cancelled":
            out = {k: out[k] for k in ("kind", "id", "etag", "status", "updated", "extendedProperties") if k in out}
        return out

    def _calendar(self, params) -> str | None:
        cid = params["calendarId"]
        if cid == "primary":
            cid = self.email
        return cid if cid in self.events else None

    def _m_calendarList_list(self, req, params):
        return Response.json(200, {"kind": "calendar#calendarList", "items": list(self.calendars.values())})

    def _m_events_insert(self, req, params):
        cid = self._calendar(params)
        if cid is None:
            return _error(404, "notFound", "Not Found")
        body = req.json()
        eid = body.get("id") or secrets.token_hex(10)
        if not re.fullmatch(r"[a-v0-9]{5,1024}", eid):
            return _error(400, "invalid", "Invalid resource id value.")
        if eid in self.events[cid]:
            return _error(409, "duplicate", "The requested identifier already exists.")
        if "start" not in body or "end" not in body:
            return _error(400, "required", "Missing end time.")
        ev = {**body, "id": eid, "status": body.get("status", "confirmed"), "sequence": 0}
        self._conference(req, ev)
        return Response.json(200, self._public(self._store(cid, ev)))

    def _conference(self, req, ev):
        request = (ev.get("conferenceData") or {}).get("createRequest")
        if request and req.query.get("conferenceDataVersion") == ["1"]:
            code = "abc-defg-hij"
            ev["hangoutLink"] = f"https://meet.google.com/{code}"
            ev["conferenceData"] = {"conferenceId": code, "createRequest": {**request, "status": {"statusCode": "success"}},
                                    "entryPoints": [{"entryPointType": "video", "uri": ev["hangoutLink"]}]}

    def _existing(self, params):
        cid = self._calendar(params)
        if cid is None:
            return None, None
        return cid, self.events[cid].get(params["eventId"])

    def _m_events_patch(self, req, params):
        cid, ev = self._existing(params)
        if ev is None:
            return _error(404, "notFound", "Not Found")
        if ev["status"] == "cancelled" and req.json().get("status") != "confirmed":
            return _error(404, "notFound", "Not Found")  # Google: a deleted event is gone for patch
        merged = {**copy.deepcopy(ev), **req.json(), "id": ev["id"], "sequence": ev.get("sequence", 0) + 1}
        self._conference(req, merged)
        return Response.json(200, self._public(self._store(cid, merged)))

    def _m_events_update(self, req, params):
        cid, ev = self._existing(params)
        if ev is None:
            return _error(404, "notFound", "Not Found")
        body = req.json()
        new = {**body, "id": ev["id"], "status": body.get("status", "confirmed"), "sequence": ev.get("sequence", 0) + 1}
        self._conference(req, new)
        return Response.json(200, self._public(self._store(cid, new)))

    def _m_events_delete(self, req, params):
        cid, ev = self._existing(params)
        if ev is None:
            return _error(404, "notFound", "Not Found")
        if ev["status"] == "cancelled":
            return _error(410, "deleted", "Resource has been deleted")
        ev = copy.deepcopy(ev)
        ev["status"] = "cancelled"
        self._store(cid, ev)
        return Response(204)

    def _m_events_list(self, req, params):
        cid = self._calendar(params)
        if cid is None:
            return _error(404, "notFound", "Not Found")
        q = {k: v[-1] for k, v in req.query.items()}
        token = q.get("syncToken")
        if token and any(k in q for k in ("timeMin", "timeMax", "updatedMin", "q", "orderBy", "iCalUID")):
            return self._violation("syncToken cannot be combined with timeMin/timeMax/updatedMin/q/orderBy/iCalUID")
        items = sorted(self.events[cid].values(), key=lambda e: e["_serial"])
        if token:
            serial = int(token[1:])
            if serial < self.min_sync_serial:
                return _error(410, "fullSyncRequired", "Sync token is no longer valid, a full sync is required.")
            items = [e for e in items if e["_serial"] > serial]
        else:
            lo = dt.datetime.fromisoformat(q["timeMin"].replace("Z", "+00:00")) if "timeMin" in q else None
            hi = dt.datetime.fromisoformat(q["timeMax"].replace("Z", "+00:00")) if "timeMax" in q else None
            if q.get("showDeleted") != "true":
                items = [e for e in items if e["status"] != "cancelled"]
            items = [e for e in items if e["status"] == "cancelled" or e.get("recurrence") or self._overlaps(e, lo, hi)]
        if q.get("singleEvents") == "true":
            # As Google does: a recurring event is listed as its instances, expanded in its own time zone.
            lo = dt.datetime.fromisoformat(q["timeMin"].replace("Z", "+00:00")) if "timeMin" in q else None
            hi = dt.datetime.fromisoformat(q["timeMax"].replace("Z", "+00:00")) if "timeMax" in q else None
            items = [i for e in items for i in (self._instances(e, lo, hi) if e.get("recurrence") else [e])]
        page_size = int(q.get("maxResults", 250))
        start = int(q.get("pageToken", "0") or 0)
        page = items[start:start + page_size]
        body = {"kind": "calendar#events", "items": [self._public(e) for e in page]}
        if start + page_size < len(items):
            body["nextPageToken"] = str(start + page_size)
        else:
            body["nextSyncToken"] = f"s{self.last_serial}"
        return Response.json(200, body)

    def _instances(self, ev: dict, lo, hi, limit: int = 730) -> list[dict]:
        """The instances of a recurring event (RRULE / EXDATE lines of `recurrence`) that overlap [lo, hi)."""
        from zoneinfo import ZoneInfo

        from dateutil.rrule import rrulestr

        zone = ZoneInfo(ev["start"].get("timeZone") or "UTC")
        if "dateTime" not in ev["start"]:
            return [ev]  # all-day series: not needed by the tests
        first = dt.datetime.fromisoformat(ev["start"]["dateTime"].replace("Z", "+00:00")).astimezone(zone)
        length = dt.datetime.fromisoformat(ev["end"]["dateTime"].replace("Z", "+00:00")) - first
        # Wall-clock recurrence: expand on naive local times, then place each in the zone (DST moves the UTC hour).
        rules = rrulestr("\n".join(ev["recurrence"]), dtstart=first.replace(tzinfo=None), forceset=True)
        out = []
        for n, local in enumerate(rules):
            if n >= limit:
                break
            start = local.replace(tzinfo=zone)
            end = start + length
            if hi is not None and start >= hi:
                break
            if lo is not None and end <= lo:
                continue
            stamp = start.astimezone(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
            inst = {k: v for k, v in ev.items() if k != "recurrence"}
            inst.update({"id": f"{ev['id']}_{stamp}", "recurringEventId": ev["id"],
                         "originalStartTime": {"dateTime": start.isoformat(), "timeZone": str(zone)},
                         "start": {"dateTime": start.isoformat(), "timeZone": str(zone)},
                         "end": {"dateTime": end.isoformat(), "timeZone": str(zone)}})
            out.append(inst)
        return out

    @staticmethod
    def _overlaps(ev, lo, hi) -> bool:
        def when(part):
            if "dateTime" in part:
                return dt.datetime.fromisoformat(part["dateTime"].replace("Z", "+00:00"))
            return dt.datetime.fromisoformat(part["date"] + "T00:00:00+00:00")
        s, e = when(ev["start"]), when(ev["end"])
        return (lo is None or e > lo) and (hi is None or s < hi)

    def _m_events_watch(self, req, params):
        cid = self._calendar(params)
        if cid is None:
            return _error(404, "notFound", "Not Found")
        body = req.json()
        if body.get("type") != "web_hook" or not body.get("address") or not body.get("id"):
            return _error(400, "invalid", "web_hook channel with id and address expected")
        ttl = int((body.get("params") or {}).get("ttl", "604800"))
        expiration = int((dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=ttl)).timestamp() * 1000)
        channel = {"id": body["id"], "address": body["address"], "token": body.get("token"), "calendar": cid,
                   "resourceId": "res-" + secrets.token_hex(6), "n": 0, "expiration": expiration}
        self.channels[body["id"]] = channel
        requests.post(body["address"], timeout=10, headers={  # Google's "sync" message on a new channel
            "X-Goog-Channel-ID": body["id"], "X-Goog-Channel-Token": body.get("token") or "",
            "X-Goog-Resource-ID": channel["resourceId"], "X-Goog-Resource-State": "sync", "X-Goog-Message-Number": "1"})
        return Response.json(200, {"kind": "api#channel", "id": body["id"], "resourceId": channel["resourceId"],
                                   "resourceUri": f"{self.api_base}/calendars/{cid}/events", "expiration": str(expiration)})

    def _m_channels_stop(self, req, params):
        body = req.json()
        ch = self.channels.get(body.get("id"))
        if ch is None or ch["resourceId"] != body.get("resourceId"):
            return _error(404, "notFound", "Channel not found")
        del self.channels[body["id"]]
        return Response(204)


def split(url: str) -> tuple[str, dict]:
    parts = urlsplit(url)
    return parts.path, {k: v[-1] for k, v in parse_qs(parts.query).items()}
