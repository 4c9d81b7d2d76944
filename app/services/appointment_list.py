"""The appointments list: one filtered SQL query for the page, the streamed CSV / XLSX export and bulk actions.

Filters are query-string values, so a saved filter is just the query string. Rows are
plain tuples (no ORM objects), and the export reads them through a server-side cursor
in batches, so 250,000 rows stream in constant memory.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from app.errors import ValidationError
from app.models import tenant as m
from app.services.analytics import local_bounds

FILTER_KEYS = ("q", "from", "to", "status", "staff", "service", "location", "source", "customer")
EXPORT_COLUMNS = ("id", "start", "end", "timezone", "status", "service", "staff", "location", "customer", "email", "phone",
                  "source", "seats", "price", "currency", "created")
PAGE_SIZE = 50


@dataclass(frozen=True)
class ListFilter:
    q: str | None = None
    date_from: dt.date | None = None
    date_to: dt.date | None = None
    status: str | None = None
    staff: str | None = None
    service: str | None = None
    location: str | None = None
    source: str | None = None
    customer: int | None = None
    only_staff_id: int | None = None


def parse_filter(args) -> ListFilter:
    def day(name):
        raw = (args.get(name) or "").strip()
        if not raw:
            return None
        try:
            return dt.date.fromisoformat(raw)
        except ValueError:
            raise ValidationError(f"{name} must be a date (YYYY-MM-DD)", name) from None

    customer = (args.get("customer") or "").strip()
    if customer and not customer.isdigit():
        raise ValidationError("customer is a customer id", "customer")
    status = args.get("status") or None
    if status and status not in m.STATUSES:
        raise ValidationError("unknown status", "status")
    return ListFilter(
        q=(args.get("q") or "").strip() or None, date_from=day("from"), date_to=day("to"), status=status,
        staff=args.get("staff") or None, service=args.get("service") or None, location=args.get("location") or None,
        source=args.get("source") or None, customer=int(customer) if customer else None,
    )


def _query(f: ListFilter, tz: str):
    a, s, st, loc, c = m.Appointment, m.Service, m.Staff, m.Location, m.Customer
    query = (
        select(a.id, a.start_at, a.end_at, a.status, s.name.label("service"), st.name.label("staff"), loc.name.label("location"),
               c.name.label("customer"), c.email, c.phone, a.source, a.seats, a.price, a.currency, a.created_at, a.timezone)
        .join(s, s.id == a.service_id).join(st, st.id == a.staff_id)
        .outerjoin(loc, loc.id == a.location_id).outerjoin(c, c.id == a.customer_id)
    )
    if f.date_from or f.date_to:
        lo, hi = local_bounds(f.date_from or dt.date(1970, 1, 1), f.date_to or dt.date(9998, 12, 31), tz)
        query = query.where(a.start_at >= lo, a.start_at < hi)
    if f.status:
        query = query.where(a.status == f.status)
    if f.staff:
        query = query.where(st.key == f.staff)
    if f.service:
        query = query.where(s.key == f.service)
    if f.location:
        query = query.where(loc.key == f.location)
    if f.source:
        query = query.where(a.source == f.source)
    if f.customer:
        query = query.where(a.customer_id == f.customer)
    if f.only_staff_id is not None:
        query = query.where(a.staff_id == f.only_staff_id)
    if f.q:
        like = f"%{f.q.replace('%', '').replace('_', '')}%"
        query = query.where(or_(c.name.ilike(like), c.email.ilike(like), c.phone.ilike(like)))
    return query


def page(session: Session, f: ListFilter, tz: str, number: int = 1) -> tuple[list, bool]:
    """One page of rows (newest start first) and whether there is a next page."""
    number = max(1, number)
    query = _query(f, tz).order_by(m.Appointment.start_at.desc(), m.Appointment.id).offset((number - 1) * PAGE_SIZE).limit(PAGE_SIZE + 1)
    rows = list(session.execute(query))
    return rows[:PAGE_SIZE], len(rows) > PAGE_SIZE


def count(session: Session, f: ListFilter, tz: str) -> int:
    return session.scalar(select(func.count()).select_from(_query(f, tz).subquery())) or 0


def export_rows(session: Session, f: ListFilter, tz: str, batch: int = 2000):
    """Rows for CSV/XLSX, oldest first, read through a server-side cursor `batch` at a time."""
    zone = ZoneInfo(tz)
    query = _query(f, tz).order_by(m.Appointment.start_at, m.Appointment.id).execution_options(stream_results=True, yield_per=batch)
    for r in session.execute(query):
        yield (
            str(r.id), r.start_at.astimezone(zone).strftime("%Y-%m-%d %H:%M"), r.end_at.astimezone(zone).strftime("%Y-%m-%d %H:%M"),
            tz, r.status, r.service, r.staff, r.location or "", r.customer or "", r.email or "", r.phone or "", r.source, r.seats,
            str(r.price) if r.price is not None else "", r.currency or "", r.created_at.astimezone(zone).strftime("%Y-%m-%d %H:%M"),
        )


# --------------------------------------------------------------------------- REST API: keyset pages

API_MAX_LIMIT = 200


@dataclass(frozen=True)
class ApiFilter:
    """Filters of `GET /api/v1/appointments`: instants (UTC), keys, a customer id."""

    start_from: dt.datetime | None = None
    start_to: dt.datetime | None = None
    status: tuple[str, ...] = ()
    staff: str | None = None
    service: str | None = None
    location: str | None = None
    customer: int | None = None
    source: str | None = None
    series: str | None = None


def encode_cursor(start_at: dt.datetime, appointment_id) -> str:
    import base64

    raw = f"{start_at.astimezone(dt.timezone.utc).isoformat()}|{appointment_id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[dt.datetime, "uuid.UUID"]:
    import base64
    import binascii
    import uuid

    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        when, _, ident = raw.partition("|")
        start = dt.datetime.fromisoformat(when)
        if start.tzinfo is None:
            raise ValueError
        return start, uuid.UUID(ident)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise ValidationError("cursor is not one this API gave out", "cursor") from None


def api_page(session: Session, f: ApiFilter, cursor: str | None, limit: int) -> tuple[list[m.Appointment], str | None]:
    """Appointments by (start, id) ascending after `cursor`; the next cursor or None at the end.

    Keyset paging: a page costs the same at any depth and rows added meanwhile are not skipped or repeated.
    """
    from sqlalchemy.orm import selectinload

    a = m.Appointment
    query = select(a).options(selectinload(a.service), selectinload(a.staff), selectinload(a.location),
                              selectinload(a.customer))
    if f.start_from is not None:
        query = query.where(a.start_at >= f.start_from)
    if f.start_to is not None:
        query = query.where(a.start_at < f.start_to)
    if f.status:
        query = query.where(a.status.in_(f.status))
    if f.staff:
        query = query.where(a.staff_id == select(m.Staff.id).where(m.Staff.key == f.staff).scalar_subquery())
    if f.service:
        query = query.where(a.service_id == select(m.Service.id).where(m.Service.key == f.service).scalar_subquery())
    if f.location:
        query = query.where(a.location_id == select(m.Location.id).where(m.Location.key == f.location).scalar_subquery())
    if f.customer is not None:
        query = query.where(a.customer_id == f.customer)
    if f.source:
        query = query.where(a.source == f.source)
    if f.series:
        query = query.where(a.series_id == f.series)
    if cursor:
        after_start, after_id = decode_cursor(cursor)
        query = query.where((a.start_at > after_start) | ((a.start_at == after_start) & (a.id > after_id)))
    rows = list(session.scalars(query.order_by(a.start_at, a.id).limit(limit + 1)))
    more = len(rows) > limit
    rows = rows[:limit]
    return rows, (encode_cursor(rows[-1].start_at, rows[-1].id) if more and rows else None)


def find_appointment(session: Session, appointment_id: str, location: str | None = None) -> m.Appointment:
    """One appointment by id (404 for anything else, a malformed id included; outside `location` too)."""
    import uuid

    from app.errors import NotFound

    try:
        ident = uuid.UUID(str(appointment_id))
    except ValueError:
        raise NotFound("no such appointment in this business", "id") from None
    appt = session.get(m.Appointment, ident)
    if appt is None or (location is not None and (appt.location is None or appt.location.key != location)):
        raise NotFound("no such appointment in this business", "id")
    return appt
