"""Import and export a tenant's setup (tenant-setup.schema.json, version 1).

Import validates everything first (JSON Schema, then references and rules) and
reports every problem with its JSON path; only a clean file is written, in one
transaction, upserting by `key`. Re-importing the same file changes nothing.
The file's `now` is ignored. Export writes the same shape back.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from zoneinfo import ZoneInfo

from jsonschema import Draft202012Validator, FormatChecker
from sqlalchemy import func, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from app.models import tenant as m
from app.models.public import Agency, Tenant
from app.services import catalogue_rules as rules
from app.services import day_rollup
from app.services.booking import iso
from app.tenancy import TenantRef, route_session
from app.uow import unit_of_work
from tenants.provisioning import ProvisioningError, TenantSpec, check_timezone, create_tenant_in, validate_spec

SCHEMA_PATH = Path(__file__).resolve().parent / "schemas" / "tenant-setup.schema.json"
DAY = {name: i for i, name in enumerate(m.WEEKDAYS)}
UTC = dt.timezone.utc


@dataclass(frozen=True)
class SetupError:
    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


class SetupInvalid(ValueError):
    def __init__(self, errors: list[SetupError]):
        super().__init__("; ".join(str(e) for e in errors))
        self.errors = errors


@lru_cache(maxsize=1)
def _validator() -> Draft202012Validator:
    schema = json.loads(SCHEMA_PATH.read_text())
    return Draft202012Validator(schema, format_checker=FormatChecker())


def _path(parts) -> str:
    out = "$"
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else f".{p}"
    return out


def hhmm_to_min(value: str) -> int:
    hours, minutes = value.split(":")
    return int(hours) * 60 + int(minutes)


def min_to_hhmm(value: int) -> str:
    return f"{value // 60:02d}:{value % 60:02d}"


def _instant(value: str) -> dt.datetime:
    parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        raise ValueError("an instant needs an offset or Z")
    return parsed.astimezone(UTC)


# Schema checks whose value has a catalogue rule: the file reports the rule's message (app.services.catalogue_rules).
RULE_VALIDATORS = frozenset({"minimum", "maximum", "pattern", "minLength", "maxLength", "enum"})
RULE_FIELDS = frozenset(rules.SERVICE_FIELDS) | {"category", "timezone", "currency"}


def _schema_message(error) -> str:
    field = error.absolute_path[-1] if error.absolute_path else None
    if error.validator in RULE_VALIDATORS and field in RULE_FIELDS:
        return rules.field_problem(field, error.instance) or error.message
    return error.message


def validate(doc) -> list[SetupError]:
    """Every problem of the file, each with its JSON path; [] when the file can be imported."""
    errors = [
        SetupError(_path(e.absolute_path), _schema_message(e))
        for e in sorted(_validator().iter_errors(doc), key=lambda e: list(map(str, e.absolute_path)))
    ]
    if errors or not isinstance(doc, dict):
        return errors
    return _check_references(doc)


def _check_references(doc: dict) -> list[SetupError]:
    errors: list[SetupError] = []

    def err(path, message):
        errors.append(SetupError(_path(path), message))

    def tz_ok(name, path):
        try:
            check_timezone(name)
        except ProvisioningError as exc:
            err(path, str(exc))

    def span_ok(start, end, path):
        if start == "24:00":
            err(path, "a span cannot start at 24:00")
            return
        try:
            rules.check_span(hhmm_to_min(start), hhmm_to_min(end))
        except rules.RuleError as exc:
            err(path, exc.message)

    def name_ok(item, path):
        if "name" in item:
            try:
                rules.check_name(item["name"])
            except rules.RuleError as exc:
                err([*path, "name"], exc.message)

    def unique(items, kind, base):
        seen = set()
        for i, item in enumerate(items):
            if item["key"] in seen:
                err([base, i, "key"], f"duplicate {kind} key {item['key']!r}")
            seen.add(item["key"])
        return seen

    tz_ok(doc["tenant"]["timezone"], ["tenant", "timezone"])
    name_ok(doc["tenant"], ["tenant"])
    for kind in ("locations", "categories", "staff"):
        for i, item in enumerate(doc.get(kind, [])):
            name_ok(item, [kind, i])
    for i, svc in enumerate(doc.get("services", [])):
        for problem in rules.service_problems({k: v for k, v in svc.items() if k in rules.SERVICE_FIELDS and k != "key"}):
            err(["services", i, problem.field], problem.message)
    locations = doc.get("locations", [])
    categories = doc.get("categories", [])
    services = doc.get("services", [])
    staff = doc.get("staff", [])
    loc_keys = unique(locations, "location", "locations")
    cat_keys = unique(categories, "category", "categories")
    svc_keys = unique(services, "service", "services")
    staff_keys = unique(staff, "staff", "staff")

    for i, loc in enumerate(locations):
        tz_ok(loc["timezone"], ["locations", i, "timezone"])
        for day, spans in (loc.get("hours") or {}).items():
            for j, (start, end) in enumerate(spans):
                span_ok(start, end, ["locations", i, "hours", day, j])
    for i, svc in enumerate(services):
        if svc.get("category") and svc["category"] not in cat_keys:
            err(["services", i, "category"], f"unknown category {svc['category']!r}")
        for j, key in enumerate(svc.get("locations", [])):
            if key not in loc_keys:
                err(["services", i, "locations", j], f"unknown location {key!r}")
    svc_by_key = {s["key"]: s for s in services}
    for i, person in enumerate(staff):
        own_locations = set(person.get("locations", []))
        for j, key in enumerate(person.get("services", [])):
            if key not in svc_keys:
                err(["staff", i, "services", j], f"unknown service {key!r}")
        for j, key in enumerate(person.get("locations", [])):
            if key not in loc_keys:
                err(["staff", i, "locations", j], f"unknown location {key!r}")
        for kind in ("hours", "overrides"):
            for j, row in enumerate(person.get(kind, [])):
                if row["location"] not in loc_keys:
                    err(["staff", i, kind, j, "location"], f"unknown location {row['location']!r}")
                elif row["location"] not in own_locations:
                    err(
                        ["staff", i, kind, j, "location"],
                        f"{person['key']} does not work at {row['location']!r} (not in staff.locations)",
                    )
        for j, row in enumerate(person.get("hours", [])):
            span_ok(row["start"], row["end"], ["staff", i, "hours", j])
        for j, row in enumerate(person.get("breaks", [])):
            span_ok(row["start"], row["end"], ["staff", i, "breaks", j])
            if row.get("location") and row["location"] not in own_locations:
                err(["staff", i, "breaks", j, "location"], f"{person['key']} does not work at {row['location']!r}")
        for j, row in enumerate(person.get("overrides", [])):
            for k, (start, end) in enumerate(row["intervals"]):
                span_ok(start, end, ["staff", i, "overrides", j, "intervals", k])
        for kind in ("time_off", "busy"):
            for j, row in enumerate(person.get(kind, [])):
                try:
                    if _instant(row["end"]) <= _instant(row["start"]):
                        err(["staff", i, kind, j], "end must be after start")
                except ValueError as exc:
                    err(["staff", i, kind, j], str(exc))

    sessions: dict[tuple, int] = {}
    staff_by_key = {s["key"]: s for s in staff}
    for i, appt in enumerate(doc.get("appointments", [])):
        if appt["service"] not in svc_keys:
            err(["appointments", i, "service"], f"unknown service {appt['service']!r}")
            continue
        if appt["staff"] not in staff_keys:
            err(["appointments", i, "staff"], f"unknown staff {appt['staff']!r}")
            continue
        if appt.get("location") and appt["location"] not in loc_keys:
            err(["appointments", i, "location"], f"unknown location {appt['location']!r}")
        if appt["service"] not in staff_by_key[appt["staff"]].get("services", []):
            err(["appointments", i, "staff"], f"{appt['staff']} does not offer {appt['service']!r}")
        try:
            start = _instant(appt["start"])
        except ValueError as exc:
            err(["appointments", i, "start"], str(exc))
            continue
        if appt.get("status", "confirmed") != "cancelled":
            key = (appt["service"], appt["staff"], appt.get("location"), start)
            sessions[key] = sessions.get(key, 0) + appt.get("seats", 1)
            capacity = svc_by_key[appt["service"]].get("capacity", 1)
            if sessions[key] > capacity:
                err(["appointments", i, "seats"], f"the session holds {capacity} seat(s); this row makes {sessions[key]}")
    return errors


def parse_and_validate(text: str) -> dict:
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SetupInvalid([SetupError("$", f"not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}")])
    errors = validate(doc)
    if errors:
        raise SetupInvalid(errors)
    return doc


# --------------------------------------------------------------------------- import


@dataclass
class ImportReport:
    tenant: str
    created_tenant: bool
    counts: dict[str, int]


def import_setup(engine: Engine, doc: dict, agency_slug: str | None = None) -> ImportReport:
    """Create or update the tenant named in `doc` from it; all of it or nothing."""
    errors = validate(doc)
    if errors:
        raise SetupInvalid(errors)
    info = doc["tenant"]
    spec = TenantSpec(
        slug=info["slug"],
        name=info["name"],
        timezone=info["timezone"],
        currency=info.get("currency", "EUR"),
        locale=(info.get("locale") or "en")[:2],
    )
    try:
        validate_spec(spec)
    except ProvisioningError as exc:
        raise SetupInvalid([SetupError(f"$.tenant.{exc.field or 'slug'}", str(exc))])
    with Session(engine, expire_on_commit=False) as session, unit_of_work(session):
        tenant = session.scalar(select(Tenant).where(Tenant.slug == spec.slug))
        created = tenant is None
        if created:
            if not agency_slug:
                raise SetupInvalid([SetupError("$.tenant.slug", f"tenant {spec.slug!r} does not exist; name an agency to create it in")])
            agency = session.scalar(select(Agency).where(Agency.slug == agency_slug))
            if agency is None:
                raise SetupInvalid([SetupError("$", f"unknown agency {agency_slug!r}")])
            tenant = create_tenant_in(session, agency, spec)
        else:
            if agency_slug and tenant.agency.slug != agency_slug:
                raise SetupInvalid([SetupError("$.tenant.slug", f"tenant {spec.slug!r} belongs to another agency")])
            tenant.name, tenant.timezone, tenant.currency = spec.name, spec.timezone, spec.currency
            # The analytics day rollup counts local days: recounted in a new zone, same transaction.
            day_rollup.follow_timezone(session, tenant)
            if info.get("locale"):
                tenant.locale = spec.locale
        ref = TenantRef.of(tenant)
        route_session(session, ref.schema)
        counts = _apply(session, ref, doc)
        route_session(session, None)
    return ImportReport(spec.slug, created, counts)


def _replace(session: Session, owner, attr: str, rows: list) -> None:
    """Replace a child collection; the old rows go first so unique keys (date, ...) can be reused."""
    if getattr(owner, attr):
        setattr(owner, attr, [])
        session.flush()
    setattr(owner, attr, rows)


def _upsert(session: Session, model, key: str):
    row = session.scalar(select(model).where(model.key == key))
    if row is None:
        row = model(key=key)
        session.add(row)
    return row


def _apply(session: Session, tenant: TenantRef, doc: dict) -> dict[str, int]:
    locations = {}
    for item in doc.get("locations", []):
        loc = _upsert(session, m.Location, item["key"])
        loc.name = item["name"]
        loc.timezone = item["timezone"]
        loc.virtual = item.get("virtual", False)
        loc.address = item.get("address")
        loc.phone = item.get("phone")
        loc.latitude = item.get("latitude")
        loc.longitude = item.get("longitude")
        loc.active = True
        _replace(session, loc, "hours", [
            m.LocationHours(weekday=DAY[day], start_min=hhmm_to_min(s), end_min=hhmm_to_min(e))
            for day, spans in (item.get("hours") or {}).items()
            for s, e in spans
        ])
        _replace(session, loc, "closures", [m.LocationClosure(date=dt.date.fromisoformat(d)) for d in sorted(set(item.get("closures", [])))])
        locations[item["key"]] = loc
    session.flush()
    all_locations = {l.key: l for l in session.scalars(select(m.Location))}

    categories = {}
    for pos, item in enumerate(doc.get("categories", [])):
        cat = _upsert(session, m.Category, item["key"])
        cat.name = item["name"]
        cat.position = pos
        categories[item["key"]] = cat
    session.flush()
    all_categories = {c.key: c for c in session.scalars(select(m.Category))}

    for pos, item in enumerate(doc.get("services", [])):
        svc = _upsert(session, m.Service, item["key"])
        svc.name = item["name"]
        svc.category = all_categories.get(item["category"]) if item.get("category") else None
        svc.duration_min = item["duration_min"]
        svc.price = item.get("price")
        svc.buffer_before_min = item.get("buffer_before_min", 0)
        svc.buffer_after_min = item.get("buffer_after_min", 0)
        svc.slot_interval_min = item.get("slot_interval_min")
        svc.min_notice_min = item.get("min_notice_min", 0)
        svc.max_advance_days = item.get("max_advance_days", 365)
        svc.capacity = item.get("capacity", 1)
        svc.meeting = item.get("meeting", "none")
        svc.active = item.get("active", True)
        svc.position = pos
        svc.all_locations = "locations" not in item
        svc.locations = [all_locations[k] for k in item.get("locations", [])]
    session.flush()
    all_services = {s.key: s for s in session.scalars(select(m.Service))}

    staff_rows = {}
    for item in doc.get("staff", []):
        person = _upsert(session, m.Staff, item["key"])
        person.name = item["name"]
        person.email = item.get("email")
        person.phone = item.get("phone")
        person.active = item.get("active", True)
        person.services = [all_services[k] for k in item.get("services", [])]
        person.locations = [all_locations[k] for k in item.get("locations", [])]
        _replace(session, person, "hours", [
            m.StaffHours(
                location=all_locations[h["location"]],
                weekday=DAY[h["weekday"]],
                start_min=hhmm_to_min(h["start"]),
                end_min=hhmm_to_min(h["end"]),
            )
            for h in item.get("hours", [])
        ])
        _replace(session, person, "breaks", [
            m.StaffBreak(
                location=all_locations[b["location"]] if b.get("location") else None,
                weekday=DAY[b["weekday"]],
                start_min=hhmm_to_min(b["start"]),
                end_min=hhmm_to_min(b["end"]),
            )
            for b in item.get("breaks", [])
        ])
        _replace(session, person, "overrides", [
            m.StaffOverride(
                location=all_locations[o["location"]],
                date=dt.date.fromisoformat(o["date"]),
                intervals=[[hhmm_to_min(s), hhmm_to_min(e)] for s, e in o["intervals"]],
            )
            for o in item.get("overrides", [])
        ])
        _replace(session, person, "time_off", [
            m.TimeOff(start_at=_instant(t["start"]), end_at=_instant(t["end"]), reason=t.get("reason"))
            for t in item.get("time_off", [])
        ])
        staff_rows[item["key"]] = (person, item.get("busy", []))
    session.flush()
    for person, busy in staff_rows.values():
        wanted = {(_instant(b["start"]), _instant(b["end"])) for b in busy}
        existing = list(session.scalars(select(m.BusyBlock).where(m.BusyBlock.staff_id == person.id, m.BusyBlock.source == "import")))
        for block in existing:
            if (block.start_at, block.end_at) in wanted:
                wanted.discard((block.start_at, block.end_at))
            else:
                session.delete(block)
        for start, end in sorted(wanted):
            session.add(m.BusyBlock(staff_id=person.id, start_at=start, end_at=end, source="import"))
    session.flush()

    appointments = _import_appointments(session, tenant, doc.get("appointments", []))
    return {
        "locations": len(doc.get("locations", [])),
        "categories": len(doc.get("categories", [])),
        "services": len(doc.get("services", [])),
        "staff": len(doc.get("staff", [])),
        "appointments": appointments,
    }


def _import_appointments(session: Session, tenant: TenantRef, rows: list[dict]) -> int:
    """Appointments are matched by (service, staff, location, start, customer email): re-import updates them."""
    from app.services import booking

    from app.errors import ApiError

    count = 0
    for index, item in enumerate(rows):
        start = _instant(item["start"])
        service = session.scalar(select(m.Service).where(m.Service.key == item["service"]))
        staff = session.scalar(select(m.Staff).where(m.Staff.key == item["staff"]))
        location = session.scalar(select(m.Location).where(m.Location.key == item["location"])) if item.get("location") else None
        customer_info = item.get("customer")
        query = select(m.Appointment).where(
            m.Appointment.service_id == service.id,
            m.Appointment.staff_id == staff.id,
            m.Appointment.start_at == start,
            m.Appointment.location_id == (location.id if location else None),
        )
        if customer_info:
            query = query.join(m.Customer, m.Customer.id == m.Appointment.customer_id).where(
                func.lower(m.Customer.email) == customer_info["email"].lower()
            )
        else:
            query = query.where(m.Appointment.customer_id.is_(None))
        existing = session.scalar(query)
        status = item.get("status", "confirmed")
        seats = item.get("seats", 1)
        if existing is not None:
            existing.seats = seats
            if existing.status != status:
                booking._record_status(existing, existing.status, status, "import")
                existing.status = status
            count += 1
            continue
        req = booking.BookingRequest(
            service=service.key,
            start=start,
            customer=booking.CustomerInput(**customer_info) if customer_info else None,
            location=location.key if location else None,
            staff=staff.key,
            seats=seats,
            source="import",
            status=status,
            override_rules=True,
        )
        try:
            booking.book(session, tenant, "import", req, dt.datetime.now(UTC))
        except ApiError as exc:
            path = f"$.appointments[{index}]" + (f".{exc.field}" if exc.field else "")
            raise SetupInvalid([SetupError(path, exc.message)]) from exc
        count += 1
    session.flush()
    if rows:
        # One import writes many delta rows: fold them into the day rollup with the import.
        day_rollup.compact(session)
    return count


# --------------------------------------------------------------------------- export


def export_setup(session: Session, tenant: Tenant, with_appointments: bool = True) -> dict:
    """The tenant's setup in the import format (session routed to the tenant)."""
    doc: dict = {
        "version": 1,
        "tenant": {
            "slug": tenant.slug,
            "name": tenant.name,
            "timezone": tenant.timezone,
            "currency": tenant.currency,
            "locale": tenant.locale,
        },
    }
    locations = []
    for loc in session.scalars(select(m.Location).order_by(m.Location.id)):
        item = {"key": loc.key, "name": loc.name, "timezone": loc.timezone}
        if loc.virtual:
            item["virtual"] = True
        for attr in ("address", "phone", "latitude", "longitude"):
            if getattr(loc, attr) is not None:
                item[attr] = getattr(loc, attr)
        if loc.hours:
            hours: dict[str, list] = {}
            for h in loc.hours:
                hours.setdefault(m.WEEKDAYS[h.weekday], []).append([min_to_hhmm(h.start_min), min_to_hhmm(h.end_min)])
            item["hours"] = hours
        if loc.closures:
            item["closures"] = [c.date.isoformat() for c in loc.closures]
        locations.append(item)
    doc["locations"] = locations
    doc["categories"] = [
        {"key": c.key, "name": c.name} for c in session.scalars(select(m.Category).order_by(m.Category.position, m.Category.id))
    ]
    services = []
    for svc in session.scalars(select(m.Service).order_by(m.Service.position, m.Service.id)):
        item = {"key": svc.key, "name": svc.name}
        if svc.category:
            item["category"] = svc.category.key
        item["duration_min"] = svc.duration_min
        if svc.price is not None:
            item["price"] = f"{svc.price:.2f}"
        for attr, default in (
            ("buffer_before_min", 0), ("buffer_after_min", 0), ("slot_interval_min", None), ("min_notice_min", 0),
            ("max_advance_days", 365), ("capacity", 1), ("meeting", "none"),
        ):
            if getattr(svc, attr) != default:
                item[attr] = getattr(svc, attr)
        if not svc.all_locations:
            item["locations"] = [l.key for l in svc.locations]
        if not svc.active:
            item["active"] = False
        services.append(item)
    doc["services"] = services
    staff = []
    for person in session.scalars(select(m.Staff).order_by(m.Staff.id)):
        item = {"key": person.key, "name": person.name}
        if person.email:
            item["email"] = person.email
        if person.phone:
            item["phone"] = person.phone
        item["services"] = [s.key for s in person.services]
        item["locations"] = [l.key for l in person.locations]
        if not person.active:
            item["active"] = False
        item["hours"] = [
            {"location": h.location.key, "weekday": m.WEEKDAYS[h.weekday], "start": min_to_hhmm(h.start_min), "end": min_to_hhmm(h.end_min)}
            for h in person.hours
        ]
        breaks = []
        for b in person.breaks:
            row = {"weekday": m.WEEKDAYS[b.weekday], "start": min_to_hhmm(b.start_min), "end": min_to_hhmm(b.end_min)}
            if b.location:
                row = {"location": b.location.key, **row}
            breaks.append(row)
        if breaks:
            item["breaks"] = breaks
        if person.overrides:
            item["overrides"] = [
                {"location": o.location.key, "date": o.date.isoformat(), "intervals": [[min_to_hhmm(s), min_to_hhmm(e)] for s, e in o.intervals]}
                for o in person.overrides
            ]
        if person.time_off:
            item["time_off"] = [
                {"start": iso(t.start_at), "end": iso(t.end_at), **({"reason": t.reason} if t.reason else {})}
                for t in person.time_off
            ]
        busy = list(session.scalars(select(m.BusyBlock).where(m.BusyBlock.staff_id == person.id).order_by(m.BusyBlock.start_at)))
        if busy:
            item["busy"] = [{"start": iso(b.start_at), "end": iso(b.end_at)} for b in busy]
        staff.append(item)
    doc["staff"] = staff
    if with_appointments:
        appointments = []
        for appt in session.scalars(select(m.Appointment).order_by(m.Appointment.start_at, m.Appointment.created_at, m.Appointment.id)):
            item = {"service": appt.service.key, "staff": appt.staff.key}
            if appt.location:
                item["location"] = appt.location.key
            item["start"] = iso(appt.start_at)
            if appt.status != "confirmed":
                item["status"] = appt.status
            if appt.seats != 1:
                item["seats"] = appt.seats
            if appt.customer:
                cust = {"name": appt.customer.name, "email": appt.customer.email}
                if appt.customer.phone:
                    cust["phone"] = appt.customer.phone
                item["customer"] = cust
            appointments.append(item)
        doc["appointments"] = appointments
    return doc
