"""Explain a start from the database: why it is (not) bookable for one staff member."""

from __future__ import annotations

import datetime as dt

from sqlalchemy.orm import Session

from app.errors import UnknownKey
from app.scheduling.explain import explain
from app.services.availability import load_setup
from app.services.booking import iso


def explain_start(session: Session, service: str, staff: str, start: dt.datetime, now: dt.datetime, location: str | None = None) -> dict:
    setup = load_setup(session, service, start - dt.timedelta(days=1), start + dt.timedelta(days=1), [staff])
    if staff not in setup.staff:
        from sqlalchemy import select

        from app.models.tenant import Staff

        if session.scalar(select(Staff.id).where(Staff.key == staff)) is None:
            raise UnknownKey(f"unknown staff {staff!r}", "staff")
        return {
            "service": service, "staff": staff, "start": iso(start), "bookable": False,
            "reasons": [{"code": "not_offered", "message": f"{staff} does not offer {service}"}],
        }
    result = explain(setup, service, staff, start, now, location)
    return {
        "service": service,
        "staff": staff,
        "start": iso(start),
        "bookable": result.bookable,
        "location": result.location,
        "seats_left": result.seats_left,
        "reasons": [{"code": r.code, "message": r.message, **({"detail": dict(r.detail)} if r.detail else {})} for r in result.reasons],
    }
