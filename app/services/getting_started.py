"""The getting-started checklist of a business: which set-up steps are done, in the order a new owner takes them."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import exists, select
from sqlalchemy.orm import Session

from app.models import tenant as m
from app.models import widgets as w


@dataclass(frozen=True)
class Step:
    key: str        # location | service | staff | hours | widget
    label: str
    hint: str
    done: bool


STEPS = (
    ("location", "Add a location", "Where you work: address and time zone."),
    ("service", "Add a service", "What customers book: name, duration, price."),
    ("staff", "Add staff and the services they offer", "Who does the work."),
    ("hours", "Set working hours", "The week of each staff member, with breaks."),
    ("widget", "Create a booking widget", "Paste its snippet into your website."),
)


def checklist(session: Session) -> list[Step]:
    """Each step and whether it is done, for the tenant the session is routed to (one query)."""
    row = session.execute(
        select(
            exists(select(m.Location.id)),
            exists(select(m.Service.id)),
            exists(select(m.staff_service.c.staff_id)),
            exists(select(m.StaffHours.id)),
            exists(select(w.Widget.id)),
        )
    ).one()
    return [Step(key, label, hint, bool(done)) for (key, label, hint), done in zip(STEPS, row)]


def is_set_up(steps: list[Step]) -> bool:
    return all(step.done for step in steps)
