"""Fixtures of the analytics tests: users with a role in a scope, log-in, API keys, appointments written as rows."""

from __future__ import annotations

import uuid

import pytest

PASSWORD = "password-1"


@pytest.fixture()
def make_user(app):
    """make_user(role, tenant=None, agency=None, staff_id=None) -> username (password PASSWORD)."""
    from app.extensions import db
    from app.services.people import create_user_with_role

    def factory(role: str, tenant: str | None = None, agency: str | None = None, staff_id: int | None = None) -> str:
        name = f"u_{uuid.uuid4().hex[:10]}"
        with app.app_context():
            create_user_with_role(db.session, username=name, email=f"{name}@example.org", password=PASSWORD,
                                  role=role, tenant_slug=tenant, agency_slug=agency, staff_id=staff_id)
            db.session.commit()
        return name

    return factory


@pytest.fixture()
def login():
    def do(client, username: str, password: str = PASSWORD):
        response = client.post("/login/", data={"username": username, "password": password})
        assert response.status_code == 302, response.get_data(as_text=True)[:300]
        assert "/login" not in response.headers.get("Location", "")

    return do


@pytest.fixture()
def make_api_key(app):
    """make_api_key(slug) -> the secret of a fresh key of that tenant."""
    from sqlalchemy import select

    from app.extensions import db
    from app.models.public import Tenant
    from app.services.people import create_api_key

    def factory(slug: str) -> str:
        with app.app_context():
            tenant = db.session.scalar(select(Tenant).where(Tenant.slug == slug))
            _, secret = create_api_key(db.session, tenant, "test key")
            db.session.commit()
        return secret

    return factory


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
