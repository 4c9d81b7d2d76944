"""A loopback Microsoft Graph (calendars, events, calendarView/delta, subscriptions) + identity platform token endpoint.

Speaks the documented shapes: `transactionId` makes a create idempotent (a second
create with it answers the first event), `changeKey` changes on every write,
`calendarView/delta` needs startDateTime/endDateTime on the first call and answers
`@odata.deltaLink` (`expire_delta_links()` makes older links 410), removed events
come back as `{"id", "@removed": {"reason": "deleted"}}`. A recurring series (an event with a
`recurrence` patternedRecurrence: daily / weekly / absoluteMonthly, range endDate / numbered /
noEnd, wall-clock in its start's time zone) is never listed itself: calendarView lists its
occurrences in the window (`type` "occurrence", `seriesMasterId`, times in UTC as asked by
`Prefer: outlook.timezone`), and a changed or deleted series removes the occurrences it no
longer has (`@removed`), as Graph does. Subscriptions are
validated like Graph does (POST `?validationToken=` to the notificationUrl, which must
echo it as text/plain within 10 s) and `notify()` posts change notifications with
the clientState. 401 for unknown / expired access tokens, `invalid_grant` for revoked
refresh tokens. Request bodies are checked for the fields Graph defines (`violations`).
"""

from __future__ import annotations

import base64
import copy
import datetime as dt
import itertools
import json

import secrets
import threading
from urllib.parse import unquote, urlencode

import requests

from fakes.http_fake import HttpFake, Request, Response, oauth_client

EVENT_FIELDS = {"subject", "body", "start", "end", "location", "showAs", "isReminderOn", "transactionId",
                "isOnlineMeeting", "onlineMeetingProvider", "attendees", "categories", "sensitivity", "isAllDay",
                "importance", "singleValueExtendedProperties", "recurrence"}
DAYS = {"monday": "MO", "tuesday": "TU", "wednesday": "WE", "thursday": "TH", "friday": "FR", "saturday": "SA",
        "sunday": "SU"}


def occurrences(ev: dict, lo: dt.datetime | None = None, hi: dt.datetime | None = None, limit: int = 730) -> list[dict]:
    """The occurrences of a series that overlap [lo, hi), as calendarView lists them (UTC times)."""
    from zoneinfo import ZoneInfo

    from dateutil.rrule import rrulestr

    pattern, span = ev["recurrence"]["pattern"], ev["recurrence"]["range"]
    zone = ZoneInfo(ev["start"].get("timeZone") or "UTC")
    first = dt.datetime.fromisoformat(ev["start"]["dateTime"][:19])
    length = dt.datetime.fromisoformat(ev["end"]["dateTime"][:19]) - first
    rule = {"daily": "FREQ=DAILY", "weekly": "FREQ=WEEKLY", "absoluteMonthly": "FREQ=MONTHLY"}[pattern["type"]]
    rule += f";INTERVAL={pattern.get('interval', 1)}"
    if pattern["type"] == "weekly":
        rule += ";BYDAY=" + ",".join(DAYS[d] for d in pattern["daysOfWeek"])
    if pattern["type"] == "absoluteMonthly":
        rule += f";BYMONTHDAY={pattern['dayOfMonth']}"
    if span["type"] == "numbered":
        rule += f";COUNT={span['numberOfOccurrences']}"
    elif span["type"] == "endDate":
        rule += ";UNTIL=" + span["endDate"].replace("-", "") + "T235959"
    out = []
    # Wall-clock recurrence: expand on naive local times, then place each in the zone (DST moves the UTC hour).
    for n, local in enumerate(rrulestr("RRULE:" + rule, dtstart=first)):
        if n >= limit:
            break
        start = local.replace(tzinfo=zone).astimezone(dt.timezone.utc)
        end = start + length
        if hi is not None and start >= hi:
            break
        if lo is not None and end <= lo:
            continue
        item = {k: v for k, v in ev.items() if k != "recurrence"}
        item.update({"id": f"{ev['id']}_{start:%Y%m%dT%H%M%SZ}", "type": "occurrence", "seriesMasterId": ev["id"],
                     "start": GraphFake._dt(start), "end": GraphFake._dt(end)})
        out.append(item)
    return out


def _err(status: int, code: str, message: str, headers=None) -> Response:
    return Response.json(status, {"error": {"code": code, "message": message}}, headers)


class GraphFake(HttpFake):
    def __init__(self, email: str = "staff@contoso.test"):
        super().__init__()
        self.email = email
        self.violations: list[str] = []
        self.lock = threading.RLock()
        self.serial = itertools.count(1)
        self.last_serial = 0
        self.min_delta_serial = 0
        self.calendars = {"AAMkCal1": {"id": "AAMkCal1", "name": "Calendar", "isDefaultCalendar": True, "canEdit": True},
                          "AAMkCal2": {"id": "AAMkCal2", "name": "Birthdays", "isDefaultCalendar": False, "canEdit": False}}
        self.events: dict[str, dict] = {}  # id -> event (with _calendar, _serial, _deleted)
        self.refresh_tokens: dict[str, bool] = {}
        self.access_tokens: dict[str, bool] = {}
        self.token_requests: list[dict] = []
        self.codes: dict[str, tuple[str, str]] = {}  # code -> (redirect_uri, client_id)
        self.refresh_client: dict[str, str] = {}
        # Registered apps: id -> secret; codes and refresh tokens work only for the app they were issued to.
        self.clients: dict[str, str] = {"mid": "msecret"}
        self.token_clients: list[str | None] = []
        self.token_paths: list[str] = []  # which directory's token endpoint each request used
        self.subscriptions: dict[str, dict] = {}
        self.route("POST", r"/[^/]+/oauth2/v2\.0/token", self._token)
        self.route("GET", r"/[^/]+/oauth2/v2\.0/authorize", self._authorize)
        self.route("GET", r"/v1\.0/me/calendars", self._calendars)
        self.route("POST", r"/v1\.0/me/calendars/([^/]+)/events", self._create)
        self.route("GET", r"/v1\.0/me/calendars/([^/]+)/calendarView/delta", self._delta)
        self.route("GET", r"/v1\.0/me/events/([^/]+)", self._get)
        self.route("PATCH", r"/v1\.0/me/events/([^/]+)", self._patch)
        self.route("DELETE", r"/v1\.0/me/events/([^/]+)", self._delete)
        self.route("POST", r"/v1\.0/subscriptions", self._subscribe)
        self.route("PATCH", r"/v1\.0/subscriptions/([^/]+)", self._renew)

    @property
    def graph_base(self) -> str:
        return self.base_url + "/v1.0"

    # ------------------------------------------------------------------ test helpers
    def grant(self, client_id: str = "mid") -> dict:
        refresh = "M.R3_" + secrets.token_hex(8)
        self.refresh_tokens[refresh] = True
        self.refresh_client[refresh] = client_id
        return {"access_token": self._new_access(), "refresh_token": refresh, "token_type": "Bearer",
                "expires_at": int(dt.datetime.now(dt.timezone.utc).timestamp()) + 3600}

    def revoke_all(self):
        for d in (self.refresh_tokens, self.access_tokens):
            for k in d:
                d[k] = False

    def expire_access_tokens(self):
        for k in self.access_tokens:
            self.access_tokens[k] = False

    def expire_delta_links(self):
        self.min_delta_serial = self.last_serial + 1

    def live(self, calendar: str = "AAMkCal1") -> list[dict]:
        return [e for e in self.events.values() if e["_calendar"] == calendar and not e["_deleted"]]

    def add_foreign(self, start: dt.datetime, end: dt.datetime, calendar: str = "AAMkCal1", **fields) -> dict:
        with self.lock:
            ev = {"id": "AAMkEv" + secrets.token_hex(8), "subject": "Private", "showAs": "busy", "isAllDay": False,
                  "start": self._dt(start), "end": self._dt(end), **fields}
            return self._store(ev, calendar)

    def add_series(self, start: dt.datetime, end: dt.datetime, recurrence: dict, calendar: str = "AAMkCal1",
                   **fields) -> dict:
        """A recurring series whose first occurrence is [start, end), wall-clock in start's zone."""
        def local(value: dt.datetime) -> dict:
            return {"dateTime": value.strftime("%Y-%m-%dT%H:%M:%S.0000000"), "timeZone": str(value.tzinfo)}

        with self.lock:
            ev = {"id": "AAMkEv" + secrets.token_hex(8), "subject": "Private", "showAs": "busy", "isAllDay": False,
                  "type": "seriesMaster", "start": local(start), "end": local(end), "recurrence": recurrence, **fields}
            return self._store(ev, calendar)

    def edit(self, eid: str, **fields) -> dict:
        with self.lock:
            ev = copy.deepcopy(self.events[eid])
            ev.update(fields)
            return self._store(ev, ev["_calendar"])

    def remove(self, eid: str) -> None:
        with self.lock:
            ev = copy.deepcopy(self.events[eid])
            ev["_deleted"] = True
            self._store(ev, ev["_calendar"])

    def notify(self) -> list[int]:
        out = []
        for sub in list(self.subscriptions.values()):
            r = requests.post(sub["notificationUrl"], timeout=10, json={"value": [{
                "subscriptionId": sub["id"], "clientState": sub["clientState"], "changeType": "updated",
                "resource": sub["resource"], "tenantId": "t1",
                "subscriptionExpirationDateTime": sub["expirationDateTime"]}]})
            out.append(r.status_code)
        return out

    def api_requests(self, method: str | None = None) -> list[Request]:
        return [r for r in self.requests if r.path.startswith("/v1.0") and (method is None or r.method == method)]

    @staticmethod
    def _dt(value: dt.datetime) -> dict:
        return {"dateTime": value.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.0000000"), "timeZone": "UTC"}

    # ------------------------------------------------------------------ identity platform
    def _new_access(self) -> str:
        token = "eyJ0" + secrets.token_hex(12)
        self.access_tokens[token] = True
        return token

    def _authorize(self, req: Request, m) -> Response:
        q = {k: v[-1] for k, v in req.query.items()}
        if "offline_access" not in q.get("scope", "") or "Calendars.ReadWrite" not in q.get("scope", ""):
            return Response.text(400, "AADSTS: offline_access and Calendars.ReadWrite expected")
        if q.get("client_id") not in self.clients:
            return Response.text(400, "AADSTS700016: Application not found in the directory")
        code = "0.A" + secrets.token_hex(8)
        self.codes[code] = (q["redirect_uri"], q["client_id"])
        return Response(302, b"", {"Location": q["redirect_uri"] + "?" + urlencode({"code": code, "state": q["state"]})})

    def _token(self, req: Request, m) -> Response:
        form = req.form
        self.token_requests.append(form)
        self.token_paths.append(req.path)
        client_id, client_secret = oauth_client(req)
        self.token_clients.append(client_id)
        if client_id not in self.clients or self.clients[client_id] != client_secret:
            return Response.json(401, {"error": "invalid_client", "error_description": "AADSTS7000215: Invalid client secret"})
        if form.get("grant_type") == "authorization_code":
            issued = self.codes.pop(form.get("code", ""), None)
            if issued is None or issued[1] != client_id:
                return Response.json(400, {"error": "invalid_grant", "error_description": "AADSTS70000"})
            tokens = self.grant(client_id)
            claims = base64.urlsafe_b64encode(json.dumps({"preferred_username": self.email}).encode()).decode().rstrip("=")
            return Response.json(200, {"access_token": tokens["access_token"], "refresh_token": tokens["refresh_token"],
                                       "expires_in": 3599, "token_type": "Bearer", "id_token": f"e30.{claims}.",
                                       "scope": "Calendars.ReadWrite"})
        if form.get("grant_type") == "refresh_token":
            if not self.refresh_tokens.get(form.get("refresh_token", "")):
                return Response.json(400, {"error": "invalid_grant", "error_description": "AADSTS700082: expired"})
            if self.refresh_client.get(form["refresh_token"]) != client_id:
                return Response.json(400, {"error": "invalid_grant", "error_description": "AADSTS70000: issued to another app"})
            new_refresh = "M.R3_" + secrets.token_hex(8)  # Microsoft rotates refresh tokens
            self.refresh_tokens[new_refresh] = True
            self.refresh_client[new_refresh] = client_id
            return Response.json(200, {"access_token": self._new_access(), "refresh_token": new_refresh,
                                       "expires_in": 3599, "token_type": "Bearer"})
        return Response.json(400, {"error": "unsupported_grant_type"})

    # ------------------------------------------------------------------ Graph
    def _authed(self, req: Request) -> bool:
        auth = req.headers.get("authorization", "")
        return auth.startswith("Bearer ") and bool(self.access_tokens.get(auth[7:]))

    def _store(self, ev: dict, calendar: str) -> dict:
        before = self.events.get(ev["id"])
        if before is not None and before.get("recurrence"):  # what a delta must remove if the series lost it
            ev["_before"] = {o["id"] for o in occurrences(before)} | before.get("_before", set())
        serial = next(self.serial)
        self.last_serial = serial
        ev.update(_calendar=calendar, _serial=serial, changeKey=f"ck{serial}{secrets.token_hex(2)}")
        ev.setdefault("_deleted", False)
        self.events[ev["id"]] = ev
        return ev

    @staticmethod
    def _public(ev: dict) -> dict:
        out = {k: v for k, v in ev.items() if not k.startswith("_")}
        out["@odata.etag"] = f'W/"{ev["changeKey"]}"'
        return out

    def _check_body(self, body) -> str | None:
        if not isinstance(body, dict):
            return "body must be a JSON object"
        unknown = set(body) - EVENT_FIELDS
        if unknown:
            return f"unknown event properties {sorted(unknown)}"
        for part in ("start", "end"):
            if part in body:
                v = body[part]
                if not isinstance(v, dict) or set(v) - {"dateTime", "timeZone"} or "dateTime" not in v:
                    return f"{part} must be a dateTimeTimeZone"
                try:
                    dt.datetime.fromisoformat(v["dateTime"])
                except ValueError:
                    return f"{part}.dateTime is not an ISO date-time"
        return None

    def _guard(self, req: Request):
        if not self._authed(req):
            return _err(401, "InvalidAuthenticationToken", "Access token has expired or is not yet valid.")
        return None

    def _calendars(self, req, m):
        return self._guard(req) or Response.json(200, {"value": list(self.calendars.values())})

    def _create(self, req, m):
        denied = self._guard(req)
        if denied:
            return denied
        cal = unquote(m.group(1))
        if cal not in self.calendars:
            return _err(404, "ErrorItemNotFound", "The specified object was not found in the store.")
        body = req.json()
        problem = self._check_body(body)
        if problem:
            self.violations.append(problem)
            return _err(400, "ErrorInvalidRequest", problem)
        with self.lock:
            tid = body.get("transactionId")
            if tid:
                for ev in self.events.values():
                    if ev.get("transactionId") == tid and not ev["_deleted"]:
                        return Response.json(201, self._public(ev))
            ev = {"id": "AAMkEv" + secrets.token_hex(8), "isAllDay": False, **body}
            if body.get("isOnlineMeeting"):
                ev["onlineMeeting"] = {"joinUrl": f"https://teams.microsoft.com/l/meetup-join/{secrets.token_hex(6)}"}
            return Response.json(201, self._public(self._store(ev, cal)))

    def _find(self, m):
        ev = self.events.get(unquote(m.group(1)))
        return None if ev is None or ev["_deleted"] else ev

    def _get(self, req, m):
        denied = self._guard(req)
        if denied:
            return denied
        ev = self._find(m)
        return Response.json(200, self._public(ev)) if ev else _err(404, "ErrorItemNotFound", "Not found")

    def _patch(self, req, m):
        denied = self._guard(req)
        if denied:
            return denied
        body = req.json()
        problem = self._check_body(body)
        if problem:
            self.violations.append(problem)
            return _err(400, "ErrorInvalidRequest", problem)
        with self.lock:
            ev = self._find(m)
            if ev is None:
                return _err(404, "ErrorItemNotFound", "The specified object was not found in the store.")
            new = {**copy.deepcopy(ev), **body}
            return Response.json(200, self._public(self._store(new, ev["_calendar"])))

    def _delete(self, req, m):
        denied = self._guard(req)
        if denied:
            return denied
        with self.lock:
            ev = self._find(m)
            if ev is None:
                return _err(404, "ErrorItemNotFound", "Not found")
            ev = copy.deepcopy(ev)
            ev["_deleted"] = True
            self._store(ev, ev["_calendar"])
        return Response(204)

    def _delta(self, req, m):
        denied = self._guard(req)
        if denied:
            return denied
        cal = unquote(m.group(1))
        q = {k: v[-1] for k, v in req.query.items()}
        if "$deltatoken" in q:
            serial = int(q["$deltatoken"])
            if serial < self.min_delta_serial:
                return _err(410, "SyncStateNotFound", "The sync state generation is not found.")
            lo, hi = q["_lo"], q["_hi"]
            items = [e for e in self.events.values() if e["_calendar"] == cal and e["_serial"] > serial]
        else:
            if "startDateTime" not in q or "endDateTime" not in q:
                self.violations.append("delta without startDateTime/endDateTime")
                return _err(400, "ErrorInvalidParameter", "startDateTime and endDateTime are required")
            lo, hi = q["startDateTime"], q["endDateTime"]
            items = [e for e in self.events.values() if e["_calendar"] == cal and not e["_deleted"]]
        lo_t = dt.datetime.fromisoformat(lo.replace("Z", "+00:00"))
        hi_t = dt.datetime.fromisoformat(hi.replace("Z", "+00:00"))
        out = []
        for e in sorted(items, key=lambda e: e["_serial"]):
            if e.get("recurrence"):
                now = [] if e["_deleted"] else occurrences(e, lo_t, hi_t)
                gone = (e.get("_before", set()) | ({o["id"] for o in occurrences(e)} if e["_deleted"] else set())) \
                    - {o["id"] for o in now}
                out += [{"id": i, "@removed": {"reason": "deleted"}} for i in sorted(gone)]
                out += [self._public(o) for o in now]
                continue
            if e["_deleted"]:
                out.append({"id": e["id"], "@removed": {"reason": "deleted"}})
                continue
            s = dt.datetime.fromisoformat(e["start"]["dateTime"][:19]).replace(tzinfo=dt.timezone.utc)
            f = dt.datetime.fromisoformat(e["end"]["dateTime"][:19]).replace(tzinfo=dt.timezone.utc)
            if f > lo_t and s < hi_t:
                out.append(self._public(e))
        link = f"{self.graph_base}/me/calendars/{cal}/calendarView/delta?" + urlencode(
            {"$deltatoken": self.last_serial, "_lo": lo, "_hi": hi})
        return Response.json(200, {"value": out, "@odata.deltaLink": link})

    def _subscribe(self, req, m):
        denied = self._guard(req)
        if denied:
            return denied
        body = req.json()
        for needed in ("changeType", "notificationUrl", "resource", "expirationDateTime", "clientState"):
            if needed not in body:
                self.violations.append(f"subscription without {needed}")
                return _err(400, "InvalidRequest", f"{needed} is required")
        token = secrets.token_urlsafe(16)
        try:
            r = requests.post(body["notificationUrl"] + ("&" if "?" in body["notificationUrl"] else "?") +
                              urlencode({"validationToken": token}), timeout=10)
        except requests.RequestException as exc:
            return _err(400, "InvalidRequest", f"Subscription validation request failed: {exc}")
        if r.status_code != 200 or r.text != token or not r.headers.get("Content-Type", "").startswith("text/plain"):
            return _err(400, "InvalidRequest", "Subscription validation request failed. Response must exactly match "
                                              "validationToken query parameter.")
        sub = {"id": secrets.token_hex(8), **body}
        self.subscriptions[sub["id"]] = sub
        return Response.json(201, sub)

    def _renew(self, req, m):
        denied = self._guard(req)
        if denied:
            return denied
        sub = self.subscriptions.get(unquote(m.group(1)))
        if sub is None:
            return _err(404, "ResourceNotFound", "subscription not found")
        sub["expirationDateTime"] = req.json()["expirationDateTime"]
        return Response.json(200, sub)
