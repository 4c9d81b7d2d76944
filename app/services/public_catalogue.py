"""What the public sees of a business's catalogue, JSON-ready: one read model for the public API,
the widget frame and the portal.

Active locations, services and staff, every service's booking-form fields and the
current consent texts, built once per rules version (`versioned()`; a trigger on
every table read here bumps it), so a public request costs no catalogue query
while nothing changed. The model is shared between requests and threads: read
it, never change it.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote_plus

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from app.models import tenant as m
from app.services import forms
from app.services.availability import versioned
from app.tenancy import plain_session


@dataclass(frozen=True)
class PublicCatalogue:
    locations: list[dict]
    # The public API's service rows (category as {key, name}); the frame's are `frame_services`.
    services: list[dict]
    frame_services: list[dict]
    staff: list[dict]
    frame_staff: list[dict]
    # Service key -> its active form fields (tenant-wide ones included), field_json() each.
    fields: dict[str, list[dict]]
    consents: list[dict]


def map_links(location: m.Location) -> dict:
    if location.latitude is not None and location.longitude is not None:
        q = f"{location.latitude},{location.longitude}"
    elif location.address:
        q = location.address
    else:
        return {"map_url": None, "directions_url": None}
    return {
        "map_url": f"https://www.openstreetmap.org/search?query={quote_plus(q)}",
        "directions_url": f"https://www.google.com/maps/dir/?api=1&destination={quote_plus(q)}",
    }


def location_json(loc: m.Location) -> dict:
    return {
        "key": loc.key,
        "name": loc.name,
        "timezone": loc.timezone,
        "virtual": loc.virtual,
        "address": loc.address,
        "phone": loc.phone,
        "latitude": loc.latitude,
        "longitude": loc.longitude,
        **map_links(loc),
    }


def _load(session: Session) -> PublicCatalogue:
    staff_rows = list(session.scalars(
        select(m.Staff).where(m.Staff.active.is_(True))
        .options(selectinload(m.Staff.services), selectinload(m.Staff.locations)).order_by(m.Staff.name)))
    location_rows = list(session.scalars(select(m.Location).where(m.Location.active.is_(True)).order_by(m.Location.name)))
    active_locations = sorted(loc.key for loc in location_rows)
    services, frame_services, ids = [], [], {}
    for svc in session.scalars(
        select(m.Service).where(m.Service.active.is_(True))
        .options(selectinload(m.Service.locations), selectinload(m.Service.category))
        .order_by(m.Service.position, m.Service.name)
    ):
        ids[svc.key] = svc.id
        common = {
            "key": svc.key, "name": svc.name, "description": svc.description,
            "duration_min": svc.duration_min,
            "price": f"{svc.price:.2f}" if svc.price is not None else None,
            "capacity": svc.capacity, "allow_recurring": svc.allow_recurring,
            "locations": active_locations if svc.all_locations else [loc.key for loc in svc.locations if loc.active],
            "staff": sorted(s.key for s in staff_rows if svc in s.services),
        }
        category = svc.category
        services.append({**common, "category": {"key": category.key, "name": category.name} if category else None,
                         "meeting": svc.meeting})
        frame_services.append({**common, "category": category.name if category else None})
    by_service = forms.fields_by_service(session, ids)
    return PublicCatalogue(
        locations=[location_json(loc) for loc in location_rows],
        services=services,
        frame_services=frame_services,
        staff=[{
            "key": s.key, "name": s.name, "bio": s.bio, "photo_url": s.photo_url,
            "services": [x.key for x in s.services if x.active],
            "locations": [x.key for x in s.locations if x.active],
        } for s in staff_rows],
        frame_staff=[{"key": s.key, "name": s.name} for s in staff_rows],
        # Every active field; each frame leaves out the ones its widget or embed code hides.
        fields={key: [forms.field_json(f) for f in rows] for key, rows in by_service.items()},
        consents=[{"kind": t.kind, "version": t.version, "body": t.body} for t in forms.current_consents(session).values()],
    )


def public_catalogue(session: Session) -> PublicCatalogue:
    """The current tenant's public catalogue (one small query when nothing changed)."""
    return versioned(plain_session(session), "public-catalogue", _load)[1]
