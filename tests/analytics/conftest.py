"""Fixtures of the analytics tests: appointments written as rows (log-ins and API keys are in tests/conftest.py)."""

from __future__ import annotations

import pytest


@pytest.fixture()
def put_appointments(app):
    """put_appointments(slug, [dict(start=aware, minutes=30, status=..., price=..., seats=..., source=..., created=aware)]).

    Rows straight into the tenant's table (figures are what is tested here, not booking
    rules); staff, service and location are the setup's first unless given by key."""
    import datetime as dt
    import uuid as _uuid

    from sqlalchemy import select

    from app.extensions import db
    from app.models import tenant as m
    from app.tenancy import tenant_session

    def put(slug: str, rows: list[dict]) -> list[str]:
        ids = []
        with app.app_context(), tenant_session(db.engine, slug) as (session, ref):
            def pick(model, key):
                query = select(model).order_by(model.id)
                if key:
                    query = select(model).where(model.key == key)
                return session.scalars(query).first()

            for row in rows:
                start = row["start"]
                end = start + dt.timedelta(minutes=row.get("minutes", 30))
                staff, service, location = pick(m.Staff, row.get("staff")), pick(m.Service, row.get("service")), pick(m.Location, row.get("location"))
                appt = m.Appointment(
                    id=_uuid.uuid4(), service_id=service.id, staff_id=staff.id, location_id=location.id,
                    start_at=start, end_at=end, padded_start=start, padded_end=end, session_key=f"a:{_uuid.uuid4().hex}",
                    status=row.get("status", "confirmed"), seats=row.get("seats", 1), source=row.get("source", "admin"),
                    price=row.get("price"), currency=row.get("currency", ref.currency), answers={},
                    created_at=row.get("created", start - dt.timedelta(days=1)),
                )
                session.add(appt)
                ids.append(str(appt.id))
            session.flush()
        return ids

    return put


@pytest.fixture()
def book_real(app):
    """book_real(slug, start_utc, staff="ann", service="visit") -> appointment id, through booking.book (engine, outbox)."""
    import datetime as dt
    import uuid as _uuid

    from app.extensions import db
    from app.services import booking
    from app.tenancy import tenant_session

    def book(slug: str, start: dt.datetime, staff: str = "ann", service: str = "visit") -> str:
        with app.app_context(), tenant_session(db.engine, slug) as (session, ref):
            req = booking.BookingRequest(
                service=service, start=start, staff=staff, source="admin",
                customer=booking.CustomerInput("Cal Customer", f"c{_uuid.uuid4().hex[:8]}@example.org"),
            )
            result = booking.book(session, ref, "test", req, dt.datetime.now(dt.timezone.utc))
            return str(result.appointments[0].id)

    return book


@pytest.fixture()
def staff_ids(app):
    """staff_ids(slug) -> {staff key: id}."""
    from sqlalchemy import select

    from app.extensions import db
    from app.models import tenant as m
    from app.tenancy import tenant_session

    def ids(slug: str) -> dict:
        with app.app_context(), tenant_session(db.engine, slug) as (session, _ref):
            return dict(session.execute(select(m.Staff.key, m.Staff.id)).all())

    return ids
