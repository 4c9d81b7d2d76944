"""Helpers for the meetings and webhooks tests (import as `from integ_helpers import ...`)."""

from __future__ import annotations

import time

from sqlalchemy import text

MONDAY_0900 = "2027-01-11T08:00:00Z"  # 09:00 Berlin


def wait_until(predicate, timeout: float = 30.0, interval: float = 0.05):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {getattr(predicate, '__name__', predicate)}")
        time.sleep(interval)


def rows(app, slug: str, table: str, where: str = "true", params: dict | None = None) -> list[dict]:
    from app.extensions import db

    with app.app_context(), db.engine.connect() as conn:
        found = conn.execute(text(f'SELECT * FROM "tenant_{slug}".{table} WHERE {where} ORDER BY 1'), params or {})
        return [dict(r._mapping) for r in found]


def relay(app, slug: str) -> int:
    from app.extensions import db
    from app.jobs.relay import relay_tenant

    with app.app_context():
        return relay_tenant(db.engine, slug)


def book(client, slug: str, start: str = MONDAY_0900, service: str = "visit", email: str = "eve@example.com"):
    response = client.post(f"/api/v1/public/{slug}/bookings", json={
        "service": service, "start": start, "timezone": "Europe/Berlin",
        "customer": {"name": "Eve Example", "email": email}})
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def cli(app, *args):
    result = app.test_cli_runner().invoke(args=[str(a) for a in args])
    return result
