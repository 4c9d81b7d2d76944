"""Helpers for calendar tests (import as `from cal_helpers import ...`)."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select, update


def drain_outbox(app, slug: str) -> int:
    """What the relay + RQ would do, inline: hand this tenant's pending outbox events to the calendar job."""
    from app.extensions import db
    from app.jobs import calendar_sync as jobs
    from app.models.tenant import OutboxEvent
    from app.tenancy import tenant_session

    with app.app_context():
        with tenant_session(db.engine, slug) as (session, _ref):
            ids = list(session.scalars(select(OutboxEvent.id).where(OutboxEvent.relayed_at.is_(None))
                                       .order_by(OutboxEvent.id)))
            session.execute(update(OutboxEvent).where(OutboxEvent.id.in_(ids or [0]))
                            .values(relayed_at=dt.datetime.now(dt.timezone.utc)))
        return jobs.handle_events(slug, ids) if ids else 0


def book(client, slug: str, start: str, email: str = "cus@example.org", staff: str = "ann") -> dict:
    r = client.post(f"/api/v1/public/{slug}/bookings", json={
        "service": "visit", "start": start, "staff": staff, "customer": {"name": "Cus Tomer", "email": email}})
    assert r.status_code == 201, r.get_data(as_text=True)
    return r.get_json()


def slots(client, slug: str, day, staff: str = "ann") -> list[str]:
    r = client.get(f"/api/v1/public/{slug}/availability", query_string={
        "service": "visit", "staff": staff, "from": day.isoformat(), "to": day.isoformat(), "timezone": "Europe/Berlin"})
    assert r.status_code == 200, r.get_data(as_text=True)
    return [s["start"] for s in r.get_json()["slots"]]


def tenant_do(app, slug: str, fn):
    from app.extensions import db
    from app.tenancy import tenant_session

    with app.app_context():
        with tenant_session(db.engine, slug) as (session, ref):
            return fn(session, ref)


def staff_id(app, slug: str, key: str = "ann") -> int:
    from app.models import tenant as m

    return tenant_do(app, slug, lambda s, _r: s.scalar(select(m.Staff.id).where(m.Staff.key == key)))


def weekday_at(days_ahead: int, weekday: int = 0) -> dt.date:
    """The first `weekday` at least `days_ahead` days from today."""
    day = dt.date.today() + dt.timedelta(days=days_ahead)
    return day + dt.timedelta(days=(weekday - day.weekday()) % 7)
