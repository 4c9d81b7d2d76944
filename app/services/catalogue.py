"""A tenant's catalogue (services, staff, locations, booking form, consent texts), read once per rules version.

The public endpoints look these rows up on every request; they change only when
an admin edits them, and every such edit bumps the tenant's rules version (a
trigger on each table). So one snapshot per version serves every request and
every worker thread until the next edit.

The snapshot holds detached ORM objects, loaded in a side session on the
caller's connection (same transaction, same schema) so the caller's session
never sees them. They are read-only: `attach()` gives the caller a copy in its
own session (no query) when an object must be linked to new rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeVar

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.models import tenant as m
from app.models import widgets as w
from app.services.availability import versioned
from app.tenancy import TENANT_INFO_KEY, plain_session, session_schema

T = TypeVar("T")


@dataclass(frozen=True)
class Catalogue:
    services: dict[str, m.Service]
    staff: dict[str, m.Staff]
    locations: dict[str, m.Location]
    # Active form fields, tenant-wide ones first, then per service; each in id order.
    form_fields: tuple[w.FormField, ...]
    # The latest version of each consent text (kind -> text).
    consents: dict[str, w.ConsentText]


def _load(session: Session) -> Catalogue:
    side = Session(bind=session.connection(), info={TENANT_INFO_KEY: session_schema(session)})
    try:
        services = {s.key: s for s in side.scalars(select(m.Service))}
        staff = {s.key: s for s in side.scalars(select(m.Staff))}
        locations = {loc.key: loc for loc in side.scalars(select(m.Location))}
        fields = tuple(side.scalars(
            select(w.FormField).where(w.FormField.active.is_(True)).order_by(w.FormField.service_id.nulls_first(), w.FormField.id)
        ))
        consents: dict[str, w.ConsentText] = {}
        for text in side.scalars(select(w.ConsentText).order_by(w.ConsentText.kind, w.ConsentText.version)):
            consents[text.kind] = text
        side.expunge_all()
    finally:
        side.close()
    return Catalogue(services, staff, locations, fields, consents)


def catalogue(session: Session) -> Catalogue:
    """The current tenant's catalogue snapshot (one small query when nothing changed)."""
    return versioned(plain_session(session), "catalogue", _load)[1]


def attach(session: Session, obj: T) -> T:
    """A copy of a snapshot object that belongs to `session`, made without a query."""
    return session.merge(obj, load=False)
