"""Locust load test: widget visitors across many businesses, through the public booking API.

    # businesses t0000 ... t0999 (bench/tenants_bench.py makes them, or `flask seed`-like set-ups)
    locust -f loadtest/locustfile.py --host http://127.0.0.1:8000 --headless \
        -u 50 -r 10 -t 60s --csv loadtest-short          # short mode (CI: 60 s)
    LOADTEST_TENANTS=1000 locust -f loadtest/locustfile.py --host ... --headless -u 200 -r 20 -t 10m   # long mode

A visitor picks a business (LOADTEST_TENANTS, slugs LOADTEST_PREFIX + 4 digits), reads its
services and staff, asks for availability (this month, sometimes next month or one staff
member), and one visitor in ten books the first free slot, reads the booking back and, now
and then, cancels it. The mix (weights below) follows a widget's funnel: many looks, few
bookings. A 409 `slot_unavailable` (another visitor was faster) counts as a success: it is
the right answer. Rate limits apply as in production; run the server with higher
`PUBLIC_RATE_LIMIT_PER_IP` when every simulated visitor comes from one address.
"""

from __future__ import annotations

import datetime as dt
import os
import random
import uuid

from locust import HttpUser, between, task

TENANTS = int(os.environ.get("LOADTEST_TENANTS", "100"))
PREFIX = os.environ.get("LOADTEST_PREFIX", "t")
SERVICE = os.environ.get("LOADTEST_SERVICE", "visit")
TIMEZONE = os.environ.get("LOADTEST_TIMEZONE", "Europe/Berlin")


def _month(offset_days: int = 1) -> tuple[str, str]:
    first = dt.date.today() + dt.timedelta(days=offset_days)
    return first.isoformat(), (first + dt.timedelta(days=30)).isoformat()


class WidgetVisitor(HttpUser):
    wait_time = between(0.5, 2.0)

    def on_start(self) -> None:
        self.slug = f"{PREFIX}{random.randrange(TENANTS):04d}"
        self.base = f"/api/v1/public/{self.slug}"

    @task(4)
    def catalogue(self) -> None:
        self.client.get(f"{self.base}/services", name="/services")
        self.client.get(f"{self.base}/staff", name="/staff")

    @task(10)
    def availability_month(self) -> None:
        start, end = _month()
        self.client.get(f"{self.base}/availability", name="/availability (month)",
                        params={"service": SERVICE, "from": start, "to": end, "timezone": TIMEZONE})

    @task(3)
    def availability_next_month(self) -> None:
        start, end = _month(31)
        self.client.get(f"{self.base}/availability", name="/availability (next month)",
                        params={"service": SERVICE, "from": start, "to": end, "timezone": TIMEZONE})

    @task(2)
    def book(self) -> None:
        start, end = _month(random.randint(1, 20))
        slots = self.client.get(f"{self.base}/availability", name="/availability (to book)",
                                params={"service": SERVICE, "from": start, "to": start, "timezone": TIMEZONE})
        found = slots.json().get("slots") if slots.ok else None
        if not found:
            return
        slot = random.choice(found[:5])
        with self.client.post(f"{self.base}/bookings", name="/bookings", catch_response=True, json={
            "service": SERVICE, "start": slot["start"], "timezone": TIMEZONE,
            "customer": {"name": "Load Test", "email": f"lt-{uuid.uuid4().hex[:12]}@example.com"},
        }) as answer:
            if answer.status_code == 409:
                answer.success()  # somebody else took it first: the right answer
                return
            if answer.status_code != 201:
                answer.failure(f"{answer.status_code} {answer.text[:200]}")
                return
        token = answer.json()["manage_token"]
        self.client.get(f"{self.base}/bookings/{token}", name="/bookings/<token>")
        if random.random() < 0.3:
            self.client.post(f"{self.base}/bookings/{token}/cancel", name="/bookings/<token>/cancel",
                             json={"reason": "load test"})
