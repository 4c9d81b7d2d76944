"""Locust load test: widget visitors, portal customers, business admins and REST clients across many businesses.

    DATABASE_URL=... python loadtest/prepare.py --tenants 100          # businesses t0000..., admins, API keys
    TRUSTED_PROXIES=1 gunicorn --workers 5 --bind 127.0.0.1:8000 app.wsgi:application &
    locust -f loadtest/locustfile.py --host http://127.0.0.1:8000 --headless --short --csv loadtest-short  # CI: 40 s
    locust -f loadtest/locustfile.py --host http://127.0.0.1:8000 --headless --long --csv loadtest-long    # bench: 10 min

`--short`: 24 users, 40 s; `--long`: 200 users, 10 minutes (they set -u, -r and -t). Without
either, -u/-r/-t as given. Users, by weight:

- **WidgetVisitor** (no credentials needed): services and staff, availability this month
  and next, and now and then books the first free slot, reads the booking back and cancels
  some. A 409 `slot_unavailable` (another visitor was faster) is the right answer.
- **PortalCustomer**: books through the widget API, signs in to the portal with the booking's
  manage link (the link every confirmation mail carries), opens the portal home and the
  appointment, signs out and asks for a magic link by e-mail (the mail goes to the outbox;
  following it needs the mailbox, so the load test does not). One journey per iteration, each
  with a new e-mail address and client address, as a new customer would.
- **BusinessAdmin**: a Client Admin signs in (FAB's form with its CSRF token) and opens the
  appointments list, the calendar page and the calendar's events of a week.
- **ApiClient**: the REST API with the business's key: appointments of a month, availability,
  and a booking (`POST /api/v1/appointments/` with an Idempotency-Key).

Every simulated user sends its own `X-Forwarded-For` address, so run the server with
`TRUSTED_PROXIES=1`: the per-address limits then apply per simulated client, as in production.
The businesses and secrets come from `loadtest/prepare.py` (LOADTEST_CREDENTIALS, default
loadtest/credentials.json); without that file only WidgetVisitor runs, over LOADTEST_TENANTS
businesses named LOADTEST_PREFIX + 4 digits.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import random
import re
import uuid
from pathlib import Path

from locust import HttpUser, between, events, task

HERE = Path(__file__).resolve().parent
SERVICE = os.environ.get("LOADTEST_SERVICE", "visit")
TIMEZONE = os.environ.get("LOADTEST_TIMEZONE", "Europe/Berlin")
MODES = {"short": (24, 12, 40), "long": (200, 20, 600)}  # users, spawn rate per second, seconds


def _credentials() -> dict[str, dict]:
    path = Path(os.environ.get("LOADTEST_CREDENTIALS", HERE / "credentials.json"))
    return json.loads(path.read_text()) if path.is_file() else {}


CREDENTIALS = _credentials()
SLUGS = sorted(CREDENTIALS) or [f"{os.environ.get('LOADTEST_PREFIX', 't')}{i:04d}"
                                for i in range(int(os.environ.get("LOADTEST_TENANTS", "100")))]
CSRF_RE = re.compile(r"<input[^>]*\bname=\"csrf_token\"[^>]*>")
VALUE_RE = re.compile(r"\bvalue=\"([^\"]*)\"")


@events.init_command_line_parser.add_listener
def _modes(parser):
    parser.add_argument("--short", action="store_true", default=False, help="CI mode: 24 users for 40 s")
    parser.add_argument("--long", action="store_true", default=False, help="bench mode: 200 users for 10 minutes")


@events.init.add_listener
def _apply_mode(environment, **_kwargs):
    options = environment.parsed_options
    mode = "short" if getattr(options, "short", False) else "long" if getattr(options, "long", False) else None
    if options is not None and mode:
        options.num_users, options.spawn_rate, options.run_time = MODES[mode]


def _days(offset: int, length: int = 30) -> tuple[str, str]:
    first = dt.date.today() + dt.timedelta(days=offset)
    return first.isoformat(), (first + dt.timedelta(days=length)).isoformat()


def _address() -> str:
    return f"10.{random.randrange(256)}.{random.randrange(256)}.{random.randrange(1, 255)}"


def _csrf(html: str) -> str:
    tag = CSRF_RE.search(html or "")
    value = VALUE_RE.search(tag.group(0)) if tag else None
    return value.group(1) if value else ""


class _Client(HttpUser):
    abstract = True

    def on_start(self) -> None:
        self.slug = random.choice(SLUGS)
        self.creds = CREDENTIALS.get(self.slug, {})
        self.client.headers["X-Forwarded-For"] = _address()
        self.public = f"/api/v1/public/{self.slug}"

    def first_free_slot(self, name: str, path: str | None = None) -> dict | None:
        day, _ = _days(random.randint(1, 20))
        with self.client.get(path or f"{self.public}/availability", name=name, catch_response=True,
                             params={"service": SERVICE, "from": day, "to": day, "timezone": TIMEZONE}) as answer:
            if answer.status_code != 200:
                answer.failure(f"{answer.status_code} {answer.text[:200]}")
                return None
            found = answer.json().get("slots")
        return random.choice(found[:5]) if found else None

    def book(self, email: str) -> str | None:
        """Book a free slot through the widget API; the manage token, or None when none was free or taken."""
        slot = self.first_free_slot("/availability (to book)")
        if slot is None:
            return None
        with self.client.post(f"{self.public}/bookings", name="/bookings", catch_response=True, json={
            "service": SERVICE, "start": slot["start"], "timezone": TIMEZONE,
            "customer": {"name": "Load Test", "email": email},
        }) as answer:
            if answer.status_code == 409:
                answer.success()  # somebody else took it first: the right answer
                return None
            if answer.status_code != 201:
                answer.failure(f"{answer.status_code} {answer.text[:200]}")
                return None
            return answer.json()["manage_token"]


class WidgetVisitor(_Client):
    weight = 10
    wait_time = between(0.5, 2.0)

    @task(4)
    def catalogue(self) -> None:
        self.client.get(f"{self.public}/services", name="/services")
        self.client.get(f"{self.public}/staff", name="/staff")

    @task(10)
    def availability_month(self) -> None:
        start, end = _days(1)
        self.client.get(f"{self.public}/availability", name="/availability (month)",
                        params={"service": SERVICE, "from": start, "to": end, "timezone": TIMEZONE})

    @task(3)
    def availability_next_month(self) -> None:
        start, end = _days(31)
        self.client.get(f"{self.public}/availability", name="/availability (next month)",
                        params={"service": SERVICE, "from": start, "to": end, "timezone": TIMEZONE})

    @task(2)
    def book_and_manage(self) -> None:
        token = self.book(f"lt-{uuid.uuid4().hex[:12]}@example.com")
        if token is None:
            return
        self.client.get(f"{self.public}/bookings/{token}", name="/bookings/<token>")
        if random.random() < 0.3:
            self.client.post(f"{self.public}/bookings/{token}/cancel", name="/bookings/<token>/cancel",
                             json={"reason": "load test"})


class PortalCustomer(_Client):
    weight = 3
    wait_time = between(1.0, 3.0)
    abstract = not CREDENTIALS

    @task
    def journey(self) -> None:
        self.client.cookies.clear()
        self.client.headers["X-Forwarded-For"] = _address()  # a new customer, from their own address
        email = f"lt-portal-{uuid.uuid4().hex[:12]}@example.com"
        token = self.book(email)
        if token is None:
            return
        portal = f"/portal/{self.slug}"
        with self.client.get(f"{portal}/manage/{token}", name="portal: /manage/<token> (sign in)",
                             catch_response=True) as answer:
            if answer.status_code != 200 or "/appointments/" not in answer.url:
                answer.failure(f"not signed in: {answer.status_code} {answer.url}")
                return
            csrf = _csrf(answer.text)
        home = self.portal_page(f"{portal}/", "portal: / (signed in)", signed_in=True)
        csrf = _csrf(home.text) or csrf
        self.portal_page(answer.url.split("?", 1)[0], "portal: /appointments/<id>", signed_in=True)
        self.client.post(f"{portal}/logout", name="portal: /logout", data={"csrf_token": csrf})
        page = self.portal_page(f"{portal}/", "portal: / (sign-in page)", signed_in=False)
        with self.client.post(f"{portal}/login", name="portal: /login (magic link)", catch_response=True,
                              data={"email": email, "csrf_token": _csrf(page.text)}) as sent:
            if sent.status_code != 200:
                sent.failure(f"{sent.status_code} {sent.text[:200]}")


    def portal_page(self, path: str, name: str, signed_in: bool):
        """GET a portal page; a failure unless it shows the sign-out form exactly when signed in."""
        with self.client.get(path, name=name, catch_response=True) as answer:
            if answer.status_code != 200 or ('/logout"' in answer.text) != signed_in:
                answer.failure(f"{answer.status_code}, signed in: {not signed_in}")
        return answer


class BusinessAdmin(_Client):
    weight = 2
    wait_time = between(1.0, 3.0)
    abstract = not CREDENTIALS

    def on_start(self) -> None:
        super().on_start()
        form = self.client.get("/login/", name="admin: /login/ (form)")
        with self.client.post("/login/", name="admin: /login/", catch_response=True, allow_redirects=False, data={
            "username": self.creds["admin"], "password": self.creds["password"], "csrf_token": _csrf(form.text),
        }) as answer:
            if answer.status_code != 302 or "/login" in answer.headers.get("Location", ""):
                answer.failure(f"log-in refused: {answer.status_code}")

    def signed_in_get(self, path: str, name: str, **params) -> None:
        """GET a page of the signed-in admin; being sent to the sign-in page is a failure, not a 200."""
        with self.client.get(path, name=name, params=params or None, catch_response=True) as answer:
            if answer.status_code != 200 or "/login" in answer.url:
                answer.failure(f"{answer.status_code} at {answer.url}")

    @task(3)
    def appointments_list(self) -> None:
        self.signed_in_get("/appointments/", "admin: /appointments/")

    @task(1)
    def calendar_page(self) -> None:
        self.signed_in_get("/calendar/", "admin: /calendar/")

    @task(3)
    def calendar_events(self) -> None:
        start, end = _days(random.randint(0, 21), 7)
        self.signed_in_get("/calendar/events", "admin: /calendar/events (week)", start=start, end=end,
                           timezone=TIMEZONE)


class ApiClient(_Client):
    weight = 3
    wait_time = between(0.5, 2.0)
    abstract = not CREDENTIALS

    def on_start(self) -> None:
        super().on_start()
        self.client.headers["Authorization"] = f"Bearer {self.creds['api_key']}"

    @task(3)
    def list_appointments(self) -> None:
        start, end = _days(0)
        self.client.get("/api/v1/appointments/", name="api: /appointments/ (list)",
                        params={"from": f"{start}T00:00:00Z", "to": f"{end}T00:00:00Z", "limit": 50})

    @task(3)
    def availability(self) -> None:
        start, end = _days(random.randint(1, 14), 7)
        self.client.get("/api/v1/availability/", name="api: /availability/",
                        params={"service": SERVICE, "from": start, "to": end, "timezone": TIMEZONE})

    @task(1)
    def create_booking(self) -> None:
        slot = self.first_free_slot("api: /availability/ (to book)", "/api/v1/availability/")
        if slot is None:
            return
        with self.client.post("/api/v1/appointments/", name="api: /appointments/ (create)", catch_response=True,
                              headers={"Idempotency-Key": uuid.uuid4().hex}, json={
                                  "service": SERVICE, "start": slot["start"], "timezone": TIMEZONE,
                                  "customer": {"name": "API Load", "email": f"lt-api-{uuid.uuid4().hex[:12]}@example.com"},
                              }) as answer:
            if answer.status_code == 409:
                answer.success()  # slot taken meanwhile: the documented answer
            elif answer.status_code != 201:
                answer.failure(f"{answer.status_code} {answer.text[:200]}")
