"""Booking load through the public entry point, and the check that no acknowledged booking was lost.

`BookingLoad(url).start()` runs client threads that book distinct slots of the
topology's business, each with its own Idempotency-Key. A request that fails
without an answer (connection refused or reset, a 5xx from a node or the proxy) is
retried with the same key and body until it gets an answer or `retry_for` seconds
pass, as a careful client would. `stop()` returns every attempt.

`check_no_loss(database_url, attempts)` then reads the primary: every booking answered
2xx exists exactly once (one appointment per key: the customer e-mail carries the key),
no booking exists that was never asked for, and no staff member is double-booked.
"""

from __future__ import annotations

import datetime as dt
import itertools
import threading
import time
import uuid
from dataclasses import dataclass, field

import requests

from ops.topology import STAFF, TENANT

EMAIL_DOMAIN = "load.test"


@dataclass
class Attempt:
    """One booking as the client saw it."""

    key: str
    staff: str
    start: str
    status: int | None = None  # the final answer's status, None if none came
    appointment_id: str | None = None
    tries: int = 0
    errors: list[str] = field(default_factory=list)
    latency: float = 0.0  # seconds of the successful (final) try
    sent_at: float = 0.0  # time.monotonic() when the final try was sent
    answered_at: float = 0.0


def slots(days_ahead: int = 2, service_minutes: int = 15):
    """Distinct (staff, start) pairs: every staff member's 15-minute slots, day after day."""
    base = dt.datetime.now(dt.timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0)
    base += dt.timedelta(days=days_ahead)
    for step in itertools.count():
        day, rest = divmod(step, 24 * 60 // service_minutes)
        start = base + dt.timedelta(days=day, minutes=rest * service_minutes)
        for staff in STAFF:
            yield staff, start.strftime("%Y-%m-%dT%H:%M:%SZ")


class BookingLoad:
    """Client threads booking continuously through `base_url` until stop()."""

    def __init__(self, base_url: str, clients: int = 4, retry_for: float = 30.0, tenant: str = TENANT,
                 pause: float = 0.0, days_ahead: int = 2):
        self.base_url, self.clients, self.retry_for, self.tenant, self.pause = base_url, clients, retry_for, tenant, pause
        self.attempts: list[Attempt] = []
        self._slots = slots(days_ahead)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.run_id = uuid.uuid4().hex[:8]

    def _next_slot(self) -> tuple[str, str]:
        with self._lock:
            return next(self._slots)

    def book_one(self, session: requests.Session) -> Attempt:
        staff, start = self._next_slot()
        attempt = Attempt(key=f"{self.run_id}-{uuid.uuid4().hex}", staff=staff, start=start)
        with self._lock:
            self.attempts.append(attempt)
        body = {"service": "visit", "staff": staff, "start": start, "timezone": "UTC",
                "customer": {"name": f"Load {attempt.key[:12]}", "email": f"{attempt.key}@{EMAIL_DOMAIN}"}}
        url = f"{self.base_url}/api/v1/public/{self.tenant}/bookings"
        give_up = time.monotonic() + self.retry_for
        while True:
            attempt.tries += 1
            began = time.perf_counter()
            attempt.sent_at = time.monotonic()
            try:
                response = session.post(url, json=body, headers={"Idempotency-Key": attempt.key}, timeout=15)
            except requests.RequestException as exc:
                attempt.errors.append(exc.__class__.__name__)
            else:
                if response.status_code < 500:
                    attempt.status = response.status_code
                    attempt.latency = time.perf_counter() - began
                    attempt.answered_at = time.monotonic()
                    if response.status_code in (200, 201):
                        attempt.appointment_id = response.json()["appointment"]["id"]
                    return attempt
                attempt.errors.append(f"HTTP {response.status_code}")
            if time.monotonic() > give_up:
                return attempt
            time.sleep(0.2)

    def _client(self) -> None:
        with requests.Session() as session:
            while not self._stop.is_set():
                self.book_one(session)
                if self.pause:
                    time.sleep(self.pause)

    def start(self) -> "BookingLoad":
        for i in range(self.clients):
            thread = threading.Thread(target=self._client, name=f"load-{i}", daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self, timeout: float | None = None) -> list[Attempt]:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout if timeout is not None else self.retry_for + 20)
        return list(self.attempts)


def recovery_seconds(attempts: list[Attempt], since: float) -> float | None:
    """Seconds from `since` (time.monotonic(), e.g. the primary stopped) to the first booking answered 201
    whose request was sent after it: requests already in flight do not count."""
    answered = [a.answered_at for a in attempts if a.status in (200, 201) and a.sent_at >= since]
    return round(min(answered) - since, 2) if answered else None


def summary(attempts: list[Attempt]) -> dict:
    acknowledged = [a for a in attempts if a.status in (200, 201)]
    latencies = sorted(a.latency for a in acknowledged)
    return {
        "attempted": len(attempts),
        "acknowledged": len(acknowledged),
        "refused": sum(1 for a in attempts if a.status is not None and a.status not in (200, 201)),
        "unanswered": sum(1 for a in attempts if a.status is None),
        "retried": sum(1 for a in attempts if a.tries > 1),
        "failed_tries": sum(len(a.errors) for a in attempts),
        "p50_ms": round(latencies[len(latencies) // 2] * 1000, 1) if latencies else None,
        "p95_ms": round(latencies[int(len(latencies) * 0.95)] * 1000, 1) if latencies else None,
    }


def check_no_loss(database_url: str, attempts: list[Attempt], tenant: str = TENANT) -> dict:
    """Read the primary: acknowledged / found / duplicated / lost / unasked / double-booked."""
    import psycopg

    keys = {a.key: a for a in attempts}
    run_ids = {a.key.split("-", 1)[0] for a in attempts}
    with psycopg.connect(database_url, autocommit=True, connect_timeout=5) as conn:
        schema = conn.execute("SELECT schema_name FROM public.tenant WHERE slug = %s", (tenant,)).fetchone()[0]
        rows = conn.execute(
            f'SELECT split_part(c.email, \'@\', 1), a.id::text FROM "{schema}".appointment a '
            f'JOIN "{schema}".customer c ON c.id = a.customer_id WHERE c.email LIKE %s AND a.status <> \'cancelled\'',
            (f"%@{EMAIL_DOMAIN}",)).fetchall()
        overlaps = conn.execute(
            f'SELECT count(*) FROM "{schema}".appointment a JOIN "{schema}".appointment b '
            f"ON a.staff_id = b.staff_id AND a.id < b.id AND tstzrange(a.start_at, a.end_at) && tstzrange(b.start_at, b.end_at) "
            f"WHERE a.status <> 'cancelled' AND b.status <> 'cancelled'").fetchone()[0]
    found: dict[str, list[str]] = {}
    for key, appointment_id in rows:
        if key.split("-", 1)[0] in run_ids:
            found.setdefault(key, []).append(appointment_id)
    acknowledged = [a for a in attempts if a.status in (200, 201)]
    lost = [a.key for a in acknowledged if a.appointment_id not in found.get(a.key, [])]
    return {
        "attempted": len(attempts),
        "acknowledged": len(acknowledged),
        "found": sum(1 for a in acknowledged if a.appointment_id in found.get(a.key, [])),
        "duplicated": sum(len(ids) - 1 for ids in found.values() if len(ids) > 1),
        "lost": lost,
        # Written although the client never saw an answer: fine (the client gave up), listed for the report.
        "unacknowledged_but_written": sum(1 for k in found if k in keys and keys[k].status not in (200, 201)),
        "unknown": [k for k in found if k not in keys],
        "double_booked": overlaps,
    }
