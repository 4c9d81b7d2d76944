"""The dashboard home's lists: a day's appointments, the next days' count, and what needs attention."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.models import tenant as m
from app.services.analytics import local_bounds

UTC = dt.timezone.utc


def day_appointments(session: Session, day: dt.date, tz: str, only_staff_id: int | None = None, limit: int = 200) -> list[dict]:
    """Live appointments starting on local `day`, with the customer's contact details and meeting link."""
    lo, hi = local_bounds(day, day, tz)
    a, s, st, c, loc = m.Appointment, m.Service, m.Staff, m.Customer, m.Location
    query = (
        select(a.id, a.start_at, a.end_at, a.status, a.seats, a.meeting_join_url, a.notes, s.name.label("service"),
               st.name.label("staff"), c.name.label("customer"), c.email, c.phone, loc.name.label("location"))
        .join(s, s.id == a.service_id).join(st, st.id == a.staff_id)
        .outerjoin(c, c.id == a.customer_id).outerjoin(loc, loc.id == a.location_id)
        .where(a.start_at >= lo, a.start_at < hi, a.status != m.STATUS_CANCELLED)
        .order_by(a.start_at).limit(limit)
    )
    if only_staff_id is not None:
        query = query.where(a.staff_id == only_staff_id)
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

    out = []
    failed = session.scalar(
        select(func.count()).select_from(d).where(d.status.in_(("failed", "bounced")), d.created_at >= now - dt.timedelta(days=7))
    ) or 0
    if failed:
        out.append({"kind": "notifications", "count": failed, "text": f"{failed} notification(s) failed in the last 7 days"})
    meetings = session.scalar(
        select(func.count()).select_from(m.Appointment).where(m.Appointment.meeting_status == "failed", m.Appointment.start_at >= now)
    ) or 0
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
    stuck = session.scalar(
        select(func.count()).select_from(m.OutboxEvent).where(
            m.OutboxEvent.relayed_at.is_(None), m.OutboxEvent.created_at < now - dt.timedelta(minutes=5))
    ) or 0
    if stuck:
        out.append({"kind": "outbox", "count": stuck, "text": f"{stuck} booking event(s) waiting over 5 minutes for the notification relay"})
    return out
