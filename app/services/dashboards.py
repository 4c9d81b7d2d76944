"""The dashboard home's lists: a day's appointments, the next days' count, and what needs attention."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from sqlalchemy import func, select, true
from sqlalchemy.orm import Session

from app.models import tenant as m
from app.services.analytics import local_bounds

UTC = dt.timezone.utc


def day_appointments(session: Session, day: dt.date, tz: str, only_staff_id: int | None = None, limit: int = 200) -> list[dict]:
    """Live appointments starting on local `day`, with the customer's contact details and meeting link."""
    lo, hi = local_bounds(day, day, tz)
    a, s, st, c, loc = m.Appointment, m.Service, m.Staff, m.Customer, m.Location
    # The day's rows first (at most `limit`), then their names.
    day_rows = (
        select(a.id, a.start_at, a.end_at, a.status, a.seats, a.meeting_join_url, a.notes, a.service_id, a.staff_id,
               a.customer_id, a.location_id)
        .where(a.start_at >= lo, a.start_at < hi, a.status != m.STATUS_CANCELLED)
        .order_by(a.start_at).limit(limit)
    )
    if only_staff_id is not None:
        day_rows = day_rows.where(a.staff_id == only_staff_id)
    d = day_rows.subquery("d")
    # LATERAL with LIMIT 1 (which PostgreSQL does not flatten into a join): one primary-key look-up
    # per row; as a join, the planner hashed all 20,000 customers of the bench business for 185 rows.
    who = select(c.name, c.email, c.phone).where(c.id == d.c.customer_id).limit(1).lateral("who")
    query = (
        select(d.c.id, d.c.start_at, d.c.end_at, d.c.status, d.c.seats, d.c.meeting_join_url, d.c.notes, s.name.label("service"),
               st.name.label("staff"), who.c.name.label("customer"), who.c.email, who.c.phone, loc.name.label("location"))
        .select_from(d)
        .join(s, s.id == d.c.service_id).join(st, st.id == d.c.staff_id)
        .outerjoin(who, true()).outerjoin(loc, loc.id == d.c.location_id)
        .order_by(d.c.start_at)
    )
    zone = ZoneInfo(tz)
    return [dict(row._mapping, local=row.start_at.astimezone(zone), local_end=row.end_at.astimezone(zone)) for row in session.execute(query)]


def upcoming_count(session: Session, now: dt.datetime, days: int = 7) -> int:
    a = m.Appointment
    return session.scalar(
        select(func.count()).select_from(a).where(a.start_at >= now, a.start_at < now + dt.timedelta(days=days), a.status != m.STATUS_CANCELLED)
    ) or 0


def alerts(session: Session, now: dt.datetime) -> list[dict]:
    """Failed notifications (7 days), failed meeting links, calendar sync problems, booking events the relay has not passed on."""
    from app.models.notifications import NotificationDelivery as d

    def count(model, *where):
        return select(func.count()).select_from(model).where(*where).scalar_subquery()

    out = []
    # One round trip for the three counts (each is an index scan on a small range).
    failed, meetings, stuck = session.execute(select(
        count(d, d.status.in_(("failed", "bounced")), d.created_at >= now - dt.timedelta(days=7)),
        count(m.Appointment, m.Appointment.meeting_status == "failed", m.Appointment.start_at >= now),
        count(m.OutboxEvent, m.OutboxEvent.relayed_at.is_(None), m.OutboxEvent.created_at < now - dt.timedelta(minutes=5)),
    )).one()
    if failed:
        out.append({"kind": "notifications", "count": failed, "text": f"{failed} notification(s) failed in the last 7 days"})
    if meetings:
        out.append({"kind": "meetings", "count": meetings, "text": f"{meetings} upcoming appointment(s) without their meeting link"})
    from app.services.calendar_sync import problem_counts

    sync = problem_counts(session, now)
    if sync["needs_reconnect"]:
        out.append({"kind": "calendar_sync", "count": sync["needs_reconnect"],
                    "text": f"{sync['needs_reconnect']} calendar connection(s) need to be reconnected"})
    if sync["failing"]:
        out.append({"kind": "calendar_sync", "count": sync["failing"],
                    "text": f"{sync['failing']} calendar connection(s) failing to sync"})
    if sync["failed_pushes"]:
        out.append({"kind": "calendar_sync", "count": sync["failed_pushes"],
                    "text": f"{sync['failed_pushes']} appointment(s) not copied to a staff calendar"})
    if stuck:
        out.append({"kind": "outbox", "count": stuck, "text": f"{stuck} booking event(s) waiting over 5 minutes for the notification relay"})
    return out
