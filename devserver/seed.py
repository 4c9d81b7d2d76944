"""Demo data: one agency, two client businesses, their setup and demo log-ins (idempotent).

The setups go through the same importer as `flask tenants import`, so the demo
exercises the real code path.
"""

from __future__ import annotations

from flask import Flask
from sqlalchemy import select

from app.extensions import db
from app.models.public import Agency, Tenant
from app.uow import unit_of_work

DEMO_AGENCY = ("demo", "Demo Agency")
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri")

DEMO_USERS = [
    # username, password, role, agency, tenant, staff key
    ("admin", "admin-demo-1", "Platform Admin", None, None, None),
    ("owner", "owner-demo-1", "Agency Owner", "demo", None, None),
    ("salon", "salon-demo-1", "Client Admin", None, "bella_salon", None),
    ("physio", "physio-demo-1", "Client Admin", None, "city_physio", None),
    ("mia", "staff-demo-1", "Staff", None, "bella_salon", "mia"),
    ("auditor", "auditor-demo-1", "Auditor", "demo", None, None),
]


def _week(location: str, start: str, end: str, days=WEEKDAYS) -> list[dict]:
    return [{"location": location, "weekday": d, "start": start, "end": end} for d in days]


def _lunch(days=WEEKDAYS) -> list[dict]:
    return [{"weekday": d, "start": "12:30", "end": "13:15"} for d in days]


def salon_setup() -> dict:
    return {
        "version": 1,
        "tenant": {"slug": "bella_salon", "name": "Bella Hair Salon", "timezone": "Europe/Berlin", "currency": "EUR", "locale": "de"},
        "locations": [
            {
                "key": "mitte", "name": "Bella Mitte", "timezone": "Europe/Berlin",
                "address": "Rosenthaler Str. 40, 10178 Berlin", "phone": "+49 30 1234567",
                "latitude": 52.5270, "longitude": 13.4020,
                "hours": {d: [["09:00", "19:00"]] for d in (*WEEKDAYS, "sat")},
            },
            {
                "key": "kreuzberg", "name": "Bella Kreuzberg", "timezone": "Europe/Berlin",
                "address": "Oranienstr. 12, 10999 Berlin",
                "hours": {d: [["10:00", "20:00"]] for d in WEEKDAYS},
            },
        ],
        "categories": [{"key": "hair", "name": "Hair"}, {"key": "color", "name": "Colour"}],
        "services": [
            {"key": "cut", "name": "Haircut", "category": "hair", "duration_min": 45, "price": "39.00",
             "slot_interval_min": 15, "buffer_after_min": 15, "min_notice_min": 60},
            {"key": "cut_wash", "name": "Cut & wash", "category": "hair", "duration_min": 60, "price": "52.00",
             "slot_interval_min": 30, "buffer_after_min": 15, "min_notice_min": 60},
            {"key": "color", "name": "Full colour", "category": "color", "duration_min": 120, "price": "95.00",
             "slot_interval_min": 30, "buffer_before_min": 10, "buffer_after_min": 20, "locations": ["mitte"]},
        ],
        "staff": [
            {"key": "mia", "name": "Mia Schulz", "email": "mia@bella.example", "services": ["cut", "cut_wash", "color"],
             "locations": ["mitte"], "hours": _week("mitte", "09:00", "17:00"), "breaks": _lunch()},
            {"key": "jonas", "name": "Jonas Weber", "email": "jonas@bella.example", "services": ["cut", "cut_wash"],
             "locations": ["mitte", "kreuzberg"],
             "hours": _week("mitte", "09:00", "13:00", ("mon", "wed", "fri")) + _week("kreuzberg", "12:00", "20:00", ("tue", "thu")),
             "breaks": [{"weekday": "tue", "start": "15:00", "end": "15:30"}]},
            {"key": "lea", "name": "Lea Braun", "email": "lea@bella.example", "services": ["cut", "color"],
             "locations": ["kreuzberg"], "hours": _week("kreuzberg", "10:00", "18:00"), "breaks": _lunch()},
        ],
    }


def physio_setup() -> dict:
    return {
        "version": 1,
        "tenant": {"slug": "city_physio", "name": "City Physio", "timezone": "Europe/London", "currency": "GBP", "locale": "en"},
        "locations": [
            {"key": "soho", "name": "City Physio Soho", "timezone": "Europe/London", "address": "12 Greek St, London W1D 4DL",
             "latitude": 51.5145, "longitude": -0.1313,
             "hours": {d: [["08:00", "20:00"]] for d in WEEKDAYS}},
            {"key": "online", "name": "Video consultation", "timezone": "Europe/London", "virtual": True},
        ],
        "categories": [{"key": "treat", "name": "Treatments"}, {"key": "class", "name": "Classes"}],
        "services": [
            {"key": "assessment", "name": "Initial assessment", "category": "treat", "duration_min": 60, "price": "75.00",
             "buffer_after_min": 10, "min_notice_min": 120, "locations": ["soho"]},
            {"key": "followup", "name": "Follow-up treatment", "category": "treat", "duration_min": 30, "price": "50.00",
             "buffer_after_min": 10, "locations": ["soho", "online"]},
            {"key": "pilates", "name": "Rehab pilates class", "category": "class", "duration_min": 60, "price": "18.00",
             "capacity": 6, "buffer_after_min": 15, "locations": ["soho"]},
        ],
        "staff": [
            {"key": "sam", "name": "Sam Patel", "email": "sam@cityphysio.example",
             "services": ["assessment", "followup", "pilates"], "locations": ["soho", "online"],
             "hours": _week("soho", "08:00", "16:00", ("mon", "tue", "wed")) + _week("online", "09:00", "13:00", ("thu", "fri")),
             "breaks": _lunch()},
            {"key": "olivia", "name": "Olivia Reed", "email": "olivia@cityphysio.example",
             "services": ["assessment", "followup"], "locations": ["soho"],
             "hours": _week("soho", "12:00", "20:00"), "breaks": [{"weekday": d, "start": "16:00", "end": "16:30"} for d in WEEKDAYS]},
        ],
    }


def _seed_widget(engine, slug: str, primary: str) -> str | None:
    """One inline booking widget per demo business (the builder's defaults), unless it has one."""
    from werkzeug.datastructures import MultiDict

    from app.models import widgets as w
    from app.services import forms
    from app.tenancy import tenant_session

    with tenant_session(engine, slug) as (session, _ref):
        if session.scalar(select(w.Widget.id).limit(1)) is not None:
            return None
        widget = w.Widget(hidden_fields=[], allowed_origins=[])
        problems = forms.apply_widget_settings(session, widget, MultiDict({
            "name": "Website", "mode": "inline", "primary_color": primary, "accent_color": "#0f766e", "language": "auto",
            "radius_px": "8", "allowed_origins": "", "show_location_step": "1", "show_staff_step": "1",
            "show_phone": "1", "active": "1",
        }))
        if problems:
            raise RuntimeError(f"demo widget for {slug}: {problems[0].message}")
        return widget.public_id


def demo_links(app: Flask, base: str) -> list[str]:
    """Where to try each demo business: its widget demo page and its portal."""
    from app.models import widgets as w
    from app.tenancy import tenant_session

    lines = []
    with app.app_context():
        for slug in ("bella_salon", "city_physio"):
            with tenant_session(db.engine, slug) as (session, _ref):
                public_id = session.scalar(select(w.Widget.public_id).order_by(w.Widget.id).limit(1))
            if public_id:
                lines.append(f"{slug}: widget {base}/widget/v1/{slug}/{public_id}/demo   portal {base}/portal/{slug}/")
    return lines


# Demo history and bookings relative to today: (tenant, days from today, local time, service, staff,
# customer, status, seats). Past ones are history (completed, cancelled, no-show); entered as imports,
# so no message goes out for any of them.
DEMO_APPOINTMENTS = [
    ("bella_salon", -9, "10:00", "cut", "mia", ("Anna Krüger", "anna@example.com"), "completed", 1),
    ("bella_salon", -8, "14:00", "color", "mia", ("Ben Otto", "ben@example.com"), "completed", 1),
    ("bella_salon", -7, "10:30", "cut_wash", "mia", ("Clara Voss", "clara@example.com"), "cancelled", 1),
    ("bella_salon", -6, "11:00", "cut", "jonas", ("David Lang", "david@example.com"), "no_show", 1),
    ("bella_salon", -2, "15:00", "cut", "lea", ("Eva Roth", "eva@example.com"), "completed", 1),
    ("bella_salon", 1, "10:00", "cut", "mia", ("Anna Krüger", "anna@example.com"), "confirmed", 1),
    ("bella_salon", 2, "14:00", "cut_wash", "lea", ("Felix Hahn", "felix@example.com"), "confirmed", 1),
    ("bella_salon", 3, "09:30", "color", "mia", ("Greta Sommer", "greta@example.com"), "confirmed", 1),
    ("city_physio", -5, "09:00", "assessment", "sam", ("Harry Cole", "harry@example.com"), "completed", 1),
    ("city_physio", -4, "13:00", "followup", "olivia", ("Isla Moore", "isla@example.com"), "no_show", 1),
    # A group class: three customers in one session of the pilates class.
    ("city_physio", 2, "14:00", "pilates", "sam", ("Jack Hill", "jack@example.com"), "confirmed", 2),
    ("city_physio", 2, "14:00", "pilates", "sam", ("Kate Wood", "kate@example.com"), "confirmed", 1),
    ("city_physio", 2, "14:00", "pilates", "sam", ("Liam Ward", "liam@example.com"), "confirmed", 1),
]
# A weekly series of four follow-ups (recurring), starting on the next Monday at 10:00.
DEMO_SERIES = ("city_physio", "followup", "sam", "10:00", ("Mona Price", "mona@example.com"))


def _workday(today, offset: int):
    """today + offset days, moved away from Saturday/Sunday in the same direction (demo hours are Mon-Fri)."""
    import datetime as dt

    day = today + dt.timedelta(days=offset)
    step = -1 if offset < 0 else 1
    while day.weekday() >= 5:
        day += dt.timedelta(days=step)
    return day


def _seed_appointments(engine, slug: str) -> int:
    """Past and future appointments of one demo business, once (only while it has none)."""
    import datetime as dt
    from zoneinfo import ZoneInfo

    from app.errors import ApiError
    from app.models import tenant as m
    from app.services import booking
    from app.tenancy import tenant_session

    now = dt.datetime.now(dt.timezone.utc)
    made = 0
    with tenant_session(engine, slug) as (session, ref):
        if session.scalar(select(m.Appointment.id).limit(1)) is not None:
            return 0
        zone = ZoneInfo(ref.timezone)
        today = now.astimezone(zone).date()

        def at(day, hhmm: str):
            hours, minutes = map(int, hhmm.split(":"))
            return dt.datetime.combine(day, dt.time(hours, minutes), tzinfo=zone)

        for tenant_slug, offset, hhmm, service, staff, (name, email), status, seats in DEMO_APPOINTMENTS:
            if tenant_slug != slug:
                continue
            req = booking.BookingRequest(
                service=service, start=at(_workday(today, offset), hhmm), customer=booking.CustomerInput(name, email),
                staff=staff, seats=seats, timezone=ref.timezone, source="import", status=status, override_rules=True)
            try:
                with session.begin_nested():
                    booking.book(session, ref, "seed", req, now)
                made += 1
            except ApiError:
                pass  # taken already (a re-run on a changed setup): the rest still goes in
        tenant_slug, service, staff, hhmm, (name, email) = DEMO_SERIES
        if tenant_slug == slug:
            monday = today + dt.timedelta(days=7 - today.weekday())
            req = booking.BookingRequest(
                service=service, start=at(monday, hhmm), customer=booking.CustomerInput(name, email), staff=staff,
                timezone=ref.timezone, source="import", override_rules=True,
                recurrence=booking.Recurrence("FREQ=WEEKLY;COUNT=4", "skip_conflicts"))
            try:
                with session.begin_nested():
                    made += len(booking.book(session, ref, "seed", req, now).appointments)
            except ApiError:
                pass
    return made


def seed_demo(app: Flask) -> list[str]:
    """Create what is missing of the demo; returns lines worth printing."""
    from app.models.tenant import Staff
    from app.services.people import PeopleError, create_user_with_role
    from app.services.setup_io import import_setup
    from app.tenancy import route_session
    from tenants.provisioning import create_agency

    out: list[str] = []
    with app.app_context():
        engine = db.engine
        with unit_of_work(db.session):
            if db.session.scalar(select(Agency).where(Agency.slug == DEMO_AGENCY[0])) is None:
                create_agency(db.session, *DEMO_AGENCY)
                out.append(f"created agency {DEMO_AGENCY[0]}")
        with unit_of_work(db.session):
            for setup in (salon_setup(), physio_setup()):
                if db.session.scalar(select(Tenant).where(Tenant.slug == setup["tenant"]["slug"])) is None:
                    import_setup(engine, setup, DEMO_AGENCY[0])
                    out.append(f"created tenant {setup['tenant']['slug']}")
        for slug, color in (("bella_salon", "#9d174d"), ("city_physio", "#1d4ed8")):
            if _seed_widget(engine, slug, color):
                out.append(f"created a booking widget for {slug}")
            made = _seed_appointments(engine, slug)
            if made:
                out.append(f"created {made} demo appointments (past and coming) for {slug}")
        sm = app.appbuilder.sm
        for username, password, role, agency, tenant_slug, staff_key in DEMO_USERS:
            if sm.find_user(username=username):
                continue
            staff_id = None
            try:
                with unit_of_work(db.session):
                    if staff_key:
                        tenant = db.session.scalar(select(Tenant).where(Tenant.slug == tenant_slug))
                        route_session(db.session, tenant.schema)
                        staff = db.session.scalar(select(Staff).where(Staff.key == staff_key))
                        staff_id = staff.id
                        staff.user_id = None  # linked below once the user exists
                        route_session(db.session, None)
                    user = create_user_with_role(
                        db.session, username=username, email=f"{username}@demo.upzento.local", password=password,
                        role=role, agency_slug=agency, tenant_slug=tenant_slug, staff_id=staff_id,
                    )
            except PeopleError as exc:
                route_session(db.session, None)
                out.append(f"could not create {username}: {exc}")
                continue
            if staff_key:
                route_session(db.session, tenant.schema)
                with unit_of_work(db.session):
                    db.session.scalar(select(Staff).where(Staff.key == staff_key)).user_id = user.id
                route_session(db.session, None)
            out.append(f"created user {username} ({role})")
    return out
