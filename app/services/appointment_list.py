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
