"""Helpers for the notification DB tests (import as `from notif_db_helpers import ...`)."""

from __future__ import annotations

import datetime as dt
import time

from sqlalchemy import text


def wait_until(predicate, timeout: float = 15.0, interval: float = 0.05):
    """Poll `predicate` until it returns something truthy; the value, or an AssertionError."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {getattr(predicate, '__name__', predicate)}")
        time.sleep(interval)


def deliveries(app, slug: str, where: str = "true") -> list[dict]:
    from app.extensions import db

    with app.app_context(), db.engine.connect() as conn:
        rows = conn.execute(text(f'SELECT * FROM "tenant_{slug}".notification_delivery WHERE {where} ORDER BY id'))
        return [dict(r._mapping) for r in rows]


def relay(app, slug: str) -> int:
    from app.extensions import db
    from app.jobs.relay import relay_tenant

    with app.app_context():
        return relay_tenant(db.engine, slug)


MONDAY_0900 = "2027-01-11T08:00:00Z"  # 09:00 Berlin


def booking_body(**overrides):
    body = {"service": "visit", "start": MONDAY_0900, "timezone": "Europe/Berlin",
            "customer": {"name": "Eve Example", "email": "eve@example.com", "phone": "+49 30 901820"}}
    body.update(overrides)
    return body


def utc(value: str) -> dt.datetime:
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
