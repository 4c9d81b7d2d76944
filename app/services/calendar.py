"""What the admin calendar shows: appointments of a time window as plain rows, and one appointment's details.

Rows come from one SQL statement over the (staff|location|service, start_at) indexes;
times are converted to the viewer's zone here, so the browser never does zone maths
(a DST night shows the hours it really has).
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.errors import NotFound
from app.models import tenant as m

UTC = dt.timezone.utc
MAX_EVENTS = 3000
STATUS_COLOURS = {
    "pending": "#8a6d00", "confirmed": "#1f5fa8", "completed": "#2e7d32", "no_show": "#a12622", "cancelled": "#6b6b6b",
}
# Dark enough for white text (WCAG AA against #fff).
PALETTE = ("#1f5fa8", "#7b3fa0", "#2e7d32", "#a12622", "#8a4b00", "#00697a", "#6a4c93", "#5d6d00", "#b0306a", "#3d5a80")


@dataclass(frozen=True)
class Filters:
    location: str | None = None
    staff: str | None = None
    service: str | None = None
    status: str | None = None
    source: str | None = None
    only_staff_id: int | None = None  # a Staff log-in: their own appointments only


def parse_window(start: str, end: str, tz: str) -> tuple[dt.datetime, dt.datetime]:
    """FullCalendar's range (ISO, with or without offset; without: wall time in `tz`) as UTC instants."""

    def one(value: str) -> dt.datetime:
        parsed = dt.datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=ZoneInfo(tz))
        return parsed.astimezone(UTC)

    lo, hi = one(start), one(end)
    if hi <= lo or hi - lo > dt.timedelta(days=62):
        raise ValueError("a window is 1 to 62 days")
    return lo, hi


def _local(value: dt.datetime, zone: ZoneInfo) -> str:
    return value.astimezone(zone).replace(tzinfo=None).isoformat(timespec="minutes")


def events(session: Session, lo: dt.datetime, hi: dt.datetime, tz: str, f: Filters, colour_by: str = "service") -> list[dict]:
    """Appointments meeting [lo, hi) as FullCalendar events (wall times in `tz`, no offset)."""
    a, s, st, loc, c = m.Appointment, m.Service, m.Staff, m.Location, m.Customer
    # Wall times as text straight from PostgreSQL (same format as _local): a week of a busy
    # business is a few thousand rows, and converting each in Python was most of the request.
    local = "YYYY-MM-DD\"T\"HH24:MI"
    query = (
        select(a.id, func.to_char(func.timezone(tz, a.start_at), local).label("local_start"),
               func.to_char(func.timezone(tz, a.end_at), local).label("local_end"),
               a.status, a.source, a.seats, a.service_id, s.key.label("service_key"),
               s.name.label("service"), st.key.label("staff_key"), st.name.label("staff"), loc.key.label("location_key"),
               loc.name.label("location"), c.name.label("customer"), a.meeting_join_url)
        .join(s, s.id == a.service_id).join(st, st.id == a.staff_id)
        .outerjoin(loc, loc.id == a.location_id).outerjoin(c, c.id == a.customer_id)
        .where(a.start_at < hi, a.start_at >= lo - dt.timedelta(days=1), a.end_at > lo)
        .order_by(a.start_at).limit(MAX_EVENTS)
    )
    if f.location:
        query = query.where(loc.key == f.location)
    if f.staff:
        query = query.where(st.key == f.staff)
    if f.service:
        query = query.where(s.key == f.service)
    if f.status:
        query = query.where(a.status == f.status)
    else:
        query = query.where(a.status != m.STATUS_CANCELLED)
    if f.source:
        query = query.where(a.source == f.source)
    if f.only_staff_id is not None:
        query = query.where(a.staff_id == f.only_staff_id)
    out = []
    for row in session.execute(query):
        colour = STATUS_COLOURS.get(row.status, "#444") if colour_by == "status" else PALETTE[row.service_id % len(PALETTE)]
        title = f"{row.customer or '—'} · {row.service}"
        out.append({
            "id": str(row.id), "title": title, "start": row.local_start, "end": row.local_end,
            "backgroundColor": colour, "borderColor": colour, "textColor": "#ffffff",
            "editable": row.status in (m.STATUS_PENDING, m.STATUS_CONFIRMED),
            "extendedProps": {
                "status": row.status, "source": row.source, "staff": row.staff_key, "staffName": row.staff,
                "service": row.service_key, "location": row.location_key, "locationName": row.location,
                "seats": row.seats, "meeting": row.meeting_join_url,
            },
        })
    return out


def load(session: Session, appointment_id: str, only_staff_id: int | None = None) -> m.Appointment:
    """The appointment of this business (and of this staff member, for a Staff log-in), else NotFound."""
    try:
        ident = uuid.UUID(str(appointment_id))
    except ValueError:
        raise NotFound("no such appointment") from None
    appt = session.get(m.Appointment, ident)
    if appt is None or (only_staff_id is not None and appt.staff_id != only_staff_id):
        raise NotFound("no such appointment")
    return appt


def details(session: Session, appt: m.Appointment, tz: str) -> dict:
    """Everything the calendar's detail panel shows: customer, answers, consents, history, notifications, meeting."""
    from app.models.notifications import NotificationDelivery
    from app.models.widgets import ConsentRecord

    zone = ZoneInfo(tz)
    consents = session.scalars(select(ConsentRecord).where(ConsentRecord.appointment_id == appt.id).order_by(ConsentRecord.at))
    deliveries = session.scalars(
        select(NotificationDelivery).where(NotificationDelivery.appointment_id == appt.id).order_by(NotificationDelivery.id)
    )
    customer = appt.customer
    return {
        "id": str(appt.id), "status": appt.status, "source": appt.source, "seats": appt.seats,
        "start": _local(appt.start_at, zone), "end": _local(appt.end_at, zone), "timezone": tz,
        "service": {"key": appt.service.key, "name": appt.service.name},
        "staff": {"key": appt.staff.key, "name": appt.staff.name},
        "location": {"key": appt.location.key, "name": appt.location.name} if appt.location else None,
        "customer": {"name": customer.name, "email": customer.email, "phone": customer.phone} if customer else None,
        "notes": appt.notes, "answers": appt.answers or {}, "cancel_reason": appt.cancel_reason,
        "price": str(appt.price) if appt.price is not None else None, "currency": appt.currency,
        "meeting": {"url": appt.meeting_join_url, "status": appt.meeting_status} if appt.meeting_status else None,
        "consents": [{"kind": r.text.kind, "version": r.text.version, "at": _local(r.at, zone), "email": r.email} for r in consents],
        "history": [{"at": _local(h.at, zone), "from": h.from_status, "to": h.to_status, "actor": h.actor, "reason": h.reason}
                    for h in appt.history],
        "notifications": [{"kind": d.kind, "channel": d.channel, "recipient": d.recipient, "status": d.status}
                          for d in deliveries],
    }
