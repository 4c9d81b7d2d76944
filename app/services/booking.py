"""The booking core: book, reschedule, cancel, change status.

One function per intent, shared by the public API, the admin, the portal and
the importer. Each runs inside the caller's transaction and only flushes; the
request (or job, or CLI command) commits once.

Race safety, twice over (AVAILABILITY.md §8):
1. `pg_advisory_xact_lock` on each staff member touched, in sorted order, then
   the rules are re-checked by the engine with fresh data under the lock.
2. The exclusion constraint `xc_appointment_no_overlap` refuses overlapping
   padded ranges of one staff member even if the code above were wrong.
SQLSTATE 23P01 (exclusion) and 40P01 (deadlock) become `slot_unavailable`.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import re
import secrets
import uuid
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Iterator
from zoneinfo import ZoneInfo

from sqlalchemy import bindparam, event, func, insert, select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, make_transient_to_detached

from app.gdpr import audit
from app.errors import ApiError, Conflict, NotFound, SlotUnavailable, UnknownKey, ValidationError
from app.models import tenant as m
from app.notifications import sms
from app.scheduling import model as sm
from app.scheduling.assign import rank_staff
from app.scheduling.engine import find_slots
from app.scheduling.explain import explain
from app.security import hash_secret
from app.services import events
from app.services.availability import RULES_UNTOUCHED, load_setup
from app.services.catalogue import attach, catalogue
from app.tenancy import TenantRef, plain_session
from app.uow import REFUSED, run_unit, sqlstate

UTC = dt.timezone.utc
EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
LOCK_NAMESPACE = 7262


class PolicyWindow(Conflict):
    def __init__(self, action: str, deadline: dt.datetime):
        super().__init__(
            "policy_window",
            f"this appointment can no longer be {action} online; the deadline was {iso(deadline)}",
            None,
            deadline=iso(deadline),
        )


def iso(value: dt.datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class CustomerInput:
    name: str
    email: str
    phone: str | None = None
    locale: str | None = None
    timezone: str | None = None


@dataclass(frozen=True)
class Recurrence:
    rrule: str
    # "all_or_nothing": any conflict books nothing; "skip_conflicts": book the free ones.
    mode: str = "all_or_nothing"


@dataclass(frozen=True)
class BookingRequest:
    service: str
    start: dt.datetime
    customer: CustomerInput | None
    location: str | None = None
    staff: str | None = None
    seats: int = 1
    timezone: str | None = None
    answers: dict = field(default_factory=dict)
    notes: str | None = None
    source: str = "api"
    status: str = m.STATUS_CONFIRMED
    recurrence: Recurrence | None = None
    # Admins with the override permission may book outside hours/notice; never overlapping.
    override_rules: bool = False


# Sources that write appointments which already happened: no confirmation goes out for them.
RECORD_SOURCE = "admin_record"
PAST_SOURCES = frozenset({"import", RECORD_SOURCE})


def _check_past(req: BookingRequest, start: dt.datetime, now: dt.datetime) -> None:
    """An override skips the notice rule, never "not in the past": a time that has passed is only
    recorded as such, explicitly (RECORD_SOURCE), and a recorded one must have passed."""
    if req.source == RECORD_SOURCE and start >= now:
        raise ValidationError("a recorded appointment must have started already; book future times normally", "start")
    if req.override_rules and start < now and req.source not in PAST_SOURCES:
        raise ValidationError(
            "this time is in the past; to enter an appointment that already happened, choose "
            "'Record an appointment that already happened' (no confirmation is sent)", "start", code="in_past")


@dataclass
class BookingResult:
    appointments: list[m.Appointment]
    manage_token: str | None
    conflicts: list[dict] = field(default_factory=list)
    series_id: uuid.UUID | None = None


# --------------------------------------------------------------------------- helpers


def normalize_phone(raw: str | None, region: str | None, field_name: str = "customer.phone") -> str | None:
    """An optional phone number as E.164 (the SMS client's rule), or a 422 naming the field."""
    if raw is None or not raw.strip():
        return None
    try:
        return sms.normalize_phone(raw, region)
    except sms.InvalidPhone as exc:
        raise ValidationError(str(exc), field_name)


def validate_customer(customer: CustomerInput | None, region: str | None) -> CustomerInput:
    if customer is None:
        raise ValidationError("customer is required", "customer", code="required")
    name = (customer.name or "").strip()
    email = (customer.email or "").strip()
    if not name:
        raise ValidationError("customer name is required", "customer.name", code="required")
    if len(name) > 200:
        raise ValidationError("customer name is too long (200 characters at most)", "customer.name")
    if not EMAIL_RE.match(email) or len(email) > 254:
        raise ValidationError(f"{email!r} is not an email address", "customer.email")
    phone = normalize_phone(customer.phone, region)
    return CustomerInput(name=name, email=email, phone=phone, locale=customer.locale, timezone=customer.timezone)


def upsert_customer(session: Session, data: CustomerInput, tenant_slug: str | None = None) -> m.Customer:
    """Customers are one per email address (case-insensitive) within a tenant.

    One statement: concurrent first bookings with the same address meet in the
    unique index instead of racing between a select and an insert. A known
    customer gets the new name; phone, language and zone only when given.
    With `tenant_slug`, a new customer is a `customer.created` event and a changed
    one a `customer.updated` (a returning customer with the same details: none).
    """
    values = {"name": data.name, "email": data.email, "phone": data.phone, "locale": data.locale, "timezone": data.timezone}
    customer, inserted, changed = session.execute(
        _upsert_customer_statement(), values, execution_options={"populate_existing": True, RULES_UNTOUCHED: True}
    ).one()
    # Plain SQL, unseen by the ORM's audit hook: note it (values are personal, so only which fields).
    audit.note(session, "customer", "upsert", customer.id, _UPSERT_CHANGES, customer_id=customer.id)
    if tenant_slug is not None:
        if inserted:
            events.emit_customer(session, events.CUSTOMER_CREATED, tenant_slug, customer.id)
        elif changed:
            events.emit_customer(session, events.CUSTOMER_UPDATED, tenant_slug, customer.id, changed)
    return customer


_UPSERT_CHANGES = {name: [None, audit.PERSONAL_MARK] for name in ("name", "email", "phone", "locale", "timezone")}
_UPSERTED = ("name", "phone", "locale", "timezone")


@lru_cache(maxsize=1)
def _upsert_customer_statement():
    # Plain SQL: SQLAlchemy cannot cache the compiled form of its PostgreSQL
    # INSERT .. ON CONFLICT construct (2.0), and this runs on every booking.
    # `old` is the row as the statement found it (a CTE sees the snapshot before the
    # insert), so the answer says whether the row is new and which fields changed.
    from sqlalchemy import ARRAY, Boolean, String, column

    table = m.Customer.__table__
    names = ", ".join(f"customer.{c.name}" for c in table.columns)
    changed = " || ".join(
        f"CASE WHEN old.{n} IS DISTINCT FROM customer.{n} THEN ARRAY['{n}'] ELSE ARRAY[]::text[] END" for n in _UPSERTED)
    upsert = text(
        "WITH old AS (SELECT id, name, phone, locale, timezone FROM customer WHERE lower(email) = lower(:email))"
        " INSERT INTO customer (name, email, phone, locale, timezone, sms_opt_out, marketing_opt_in, created_at)"
        " VALUES (:name, :email, :phone, :locale, :timezone, false, false, now())"
        " ON CONFLICT (lower(email)) DO UPDATE SET name = EXCLUDED.name,"
        " phone = COALESCE(EXCLUDED.phone, customer.phone),"
        " locale = COALESCE(EXCLUDED.locale, customer.locale),"
        " timezone = COALESCE(EXCLUDED.timezone, customer.timezone)"
        f" RETURNING {names}, (customer.xmax = 0) AS upz_inserted,"
        f" (SELECT {changed} FROM old WHERE old.id = customer.id) AS upz_changed"
    ).columns(*table.columns, column("upz_inserted", Boolean), column("upz_changed", ARRAY(String)))
    return select(m.Customer, column("upz_inserted", Boolean), column("upz_changed", ARRAY(String))).from_statement(upsert)


# A select(), not text(): it writes nothing, so the rules version read earlier stays valid.
_LOCK_STATEMENT = select(func.pg_advisory_xact_lock(LOCK_NAMESPACE, func.hashtext(bindparam("key"))))


def lock_staff(session: Session, tenant: TenantRef, staff_ids) -> None:
    """Serialize bookings per staff member; sorted so two transactions never wait on each other in a cycle."""
    for staff_id in sorted(set(staff_ids)):
        session.connection().execute(_LOCK_STATEMENT, {"key": f"{tenant.schema}:{staff_id}"})


def session_key(service: m.Service, staff_id: int, start: dt.datetime) -> str:
    if service.capacity > 1:
        return f"g:{service.id}:{staff_id}:{iso(start)}"
    return f"a:{uuid.uuid4().hex}"


def _service(session: Session, key: str) -> m.Service:
    service = catalogue(session).services.get(key)
    if service is None or not service.active:
        raise UnknownKey(f"unknown service {key!r}", "service")
    return attach(session, service)


def _staff_by_key(session: Session, key: str) -> m.Staff:
    staff = catalogue(session).staff.get(key)
    if staff is None:
        raise UnknownKey(f"unknown staff {key!r}", "staff")
    return attach(session, staff)


def _location_by_key(session: Session, key: str) -> m.Location:
    location = catalogue(session).locations.get(key)
    if location is None:
        raise UnknownKey(f"unknown location {key!r}", "location")
    return attach(session, location)


def _local_day_bounds(start: dt.datetime, tz: str) -> tuple[dt.date, dt.datetime, dt.datetime]:
    zone = ZoneInfo(tz)
    local_date = start.astimezone(zone).date()
    lo = dt.datetime.combine(local_date, dt.time(), zone).astimezone(UTC)
    hi = dt.datetime.combine(local_date + dt.timedelta(days=1), dt.time(), zone).astimezone(UTC)
    return local_date, lo, hi


def _bookable_staff_at(
    session: Session,
    service: m.Service,
    start: dt.datetime,
    now: dt.datetime,
    staff_keys: list[str] | None,
    location: str | None,
    tz: str,
    exclude_refs: frozenset[str] = frozenset(),
) -> tuple[dict[str, int | None], dict[str, str], list[str]]:
    """Who can take `start` now: staff key -> seats left (None for 1:1), their location, "any staff" order."""
    local_date, lo, hi = _local_day_bounds(start, tz)
    setup = load_setup(session, service.key, lo, hi, staff_keys)
    query = sm.SlotQuery(
        service=service.key,
        # `start` lies in this local day of `tz` by construction: one day to search.
        date_from=local_date,
        date_to=local_date,
        timezone=tz,
        now=now,
        location=location,
        exclude_refs=exclude_refs,
    )
    for slot in find_slots(setup, query):
        if slot.start == start:
            seats = {k: (slot.seats_left or {}).get(k) for k in slot.staff}
            return seats, dict(slot.locations), rank_staff(setup, slot, exclude_refs)
    return {}, {}, []


def _why_not(session: Session, service: m.Service, staff_key: str, start: dt.datetime, now: dt.datetime, tz: str) -> list[str]:
    _, lo, hi = _local_day_bounds(start, tz)
    setup = load_setup(session, service.key, lo, hi, [staff_key])
    if staff_key not in setup.staff:
        return ["not_offered"]
    return [r.code for r in explain(setup, service.key, staff_key, start, now).reasons]


@contextlib.contextmanager
def _refusal_as_slot_unavailable() -> Iterator[None]:
    """The database's overlap refusal (23P01) or a deadlock (40P01) inside becomes `slot_unavailable`.

    No savepoint here: a refusal ends the request (or the caller's own savepoint,
    as a series occurrence does), so the extra round trips buy nothing.
    """
    try:
        yield
    except DBAPIError as exc:
        if sqlstate(exc) in REFUSED:
            raise SlotUnavailable() from exc
        raise


def _flush_guarded(session: Session) -> None:
    """Flush, turning the database's overlap refusal into `slot_unavailable`."""
    with _refusal_as_slot_unavailable():
        session.flush()


def _record_status(appointment: m.Appointment, from_status: str | None, to_status: str, actor: str, reason: str | None = None) -> None:
    appointment.history.append(m.StatusChange(from_status=from_status, to_status=to_status, actor=actor, reason=reason))


# --------------------------------------------------------------------------- book


def _place_one(
    session: Session,
    tenant: TenantRef,
    service: m.Service,
    req: BookingRequest,
    start: dt.datetime,
    customer: m.Customer | None,
    actor: str,
    now: dt.datetime,
    tz: str,
    series: m.Series | None,
    token_hash: str | None,
    preferred_staff: str | None = None,
) -> m.Appointment:
    """Book one start: lock, re-check, insert. Raises SlotUnavailable when nobody can take it."""
    staff_keys = [req.staff] if req.staff else None
    if req.location:
        _location_by_key(session, req.location)
    if req.override_rules:
        return _place_override(session, tenant, service, req, start, customer, actor, tz, series, token_hash)

    if req.staff:
        order = [_staff_by_key(session, req.staff)]
    else:
        # A first look without locks, to know whom to lock; the real check follows under the lock.
        candidates, _, ranked = _bookable_staff_at(session, service, start, now, staff_keys, req.location, tz)
        if not candidates:
            raise SlotUnavailable()
        if preferred_staff in ranked:
            # A series keeps the staff member of its first occurrence where possible.
            ranked.remove(preferred_staff)
            ranked.insert(0, preferred_staff)
        order = [_staff_by_key(session, k) for k in ranked]
    for staff in order:
        lock_staff(session, tenant, [staff.id])
        seats_left, locations, _ = _bookable_staff_at(session, service, start, now, [staff.key], req.location, tz)
        if staff.key not in seats_left:
            continue
        left = seats_left[staff.key]
        if left is not None and req.seats > left:
            continue
        location_key = req.location or locations.get(staff.key)
        location = _location_by_key(session, location_key) if location_key else None
        return _insert(session, tenant, service, req, start, staff, location, customer, actor, tz, series, token_hash)
    if req.staff:
        reasons = _why_not(session, service, req.staff, start, now, tz)
        raise SlotUnavailable(reasons=reasons) if reasons else SlotUnavailable()
    raise SlotUnavailable()


def _place_override(session, tenant, service, req, start, customer, actor, tz, series, token_hash) -> m.Appointment:
    """Admin booking outside the rules (hours, notice): still never overlapping, still one staff."""
    if not req.staff:
        raise ValidationError("an override booking needs a staff member", "staff", code="required")
    staff = _staff_by_key(session, req.staff)
    location = _location_by_key(session, req.location) if req.location else None
    lock_staff(session, tenant, [staff.id])
    return _insert(session, tenant, service, req, start, staff, location, customer, actor, tz, series, token_hash)


def _insert(session, tenant, service, req, start, staff, location, customer, actor, tz, series, token_hash) -> m.Appointment:
    """Write the appointment, its first status and its `appointment.booked` event in one statement."""
    end = start + dt.timedelta(minutes=service.duration_min)
    now = dt.datetime.now(UTC)
    appointment = m.Appointment(
        id=uuid.uuid4(),
        service_id=service.id,
        staff_id=staff.id,
        location_id=location.id if location else None,
        customer_id=customer.id if customer else None,
        series_id=series.id if series else None,
        start_at=start,
        end_at=end,
        padded_start=start - dt.timedelta(minutes=service.buffer_before_min),
        padded_end=end + dt.timedelta(minutes=service.buffer_after_min),
        session_key=session_key(service, staff.id, start),
        status=req.status,
        seats=req.seats,
        source=req.source,
        timezone=tz,
        notes=req.notes,
        answers=req.answers or {},
        price=service.price,
        currency=tenant.currency,
        manage_token_hash=token_hash,
        sequence=0,
        cancel_reason=None,
        created_at=now,
        updated_at=now,
    )
    params = {f"a_{column.key}": getattr(appointment, column.key) for column in m.Appointment.__table__.columns}
    params.update(
        status=req.status,
        at=now,
        actor=actor,
        event_type=events.BOOKED,
        aggregate_id=str(appointment.id),
        payload=events.payload_of(
            events.BOOKED,
            str(appointment.id),
            tenant.slug,
            start=iso(start),
            end=iso(end),
            staff=staff.key,
            service=service.key,
            location=location.key if location else None,
            customer_id=customer.id if customer else None,
            seats=req.seats,
            source=req.source,
            series_id=str(series.id) if series else None,
        ),
    )
    with _refusal_as_slot_unavailable():
        session.connection().execute(_booked_statement(), params)
    # The row exists now: hand the caller the object as if loaded, with the loaded
    # service, staff, location and customer attached (answering needs no lazy loads).
    appointment.service, appointment.staff, appointment.location, appointment.customer = service, staff, location, customer
    _adopt(session, appointment)
    audit.note(session, "appointment", "create", appointment.id, audit.row_changes("appointment", params, "a_"),
               customer_id=appointment.customer_id, staff_id=appointment.staff_id)
    return appointment


_ADOPTED = "booking_adopted_rows"


def _adopt(session: Session, obj) -> None:
    """Attach an object whose row was written with plain SQL, as if it had been loaded.

    Unlike an ORM insert, the session would keep it after a rollback of the
    (sub)transaction that wrote the row; the hooks below take it out then.
    """
    session = plain_session(session)
    make_transient_to_detached(obj)
    session.add(obj)
    transaction = session.get_nested_transaction() or session.get_transaction()
    session.info.setdefault(_ADOPTED, []).append((transaction, obj))


@event.listens_for(Session, "after_soft_rollback")
def _drop_rolled_back_rows(session: Session, previous_transaction) -> None:
    adopted = session.info.get(_ADOPTED)
    if not adopted:
        return
    kept = []
    for transaction, obj in adopted:
        outer = transaction
        while outer is not None and outer is not previous_transaction:
            outer = outer.parent
        if outer is None:
            kept.append((transaction, obj))  # written outside what was rolled back
        elif obj in session:
            session.expunge(obj)
    session.info[_ADOPTED] = kept


@event.listens_for(Session, "after_commit")
def _forget_adopted_rows(session: Session) -> None:
    session.info.pop(_ADOPTED, None)


@lru_cache(maxsize=1)
def _booked_statement():
    """INSERT appointment, its first status_change and its outbox event: one round trip, built once.

    PostgreSQL runs every data-modifying CTE exactly once; the status row's
    foreign key is checked at the end of the statement, when the appointment exists.
    """
    appointment, history, outbox = m.Appointment.__table__, m.StatusChange.__table__, m.OutboxEvent.__table__
    new = (
        insert(appointment)
        .values({c.name: bindparam(f"a_{c.key}", type_=c.type) for c in appointment.columns})
        .returning(appointment.c.id)
        .cte("new_appointment")
    )
    first_status = insert(history).from_select(
        ["appointment_id", "to_status", "at", "actor"],
        select(
            new.c.id,
            bindparam("status", type_=history.c.to_status.type),
            bindparam("at", type_=history.c.at.type),
            bindparam("actor", type_=history.c.actor.type),
        ),
    ).cte("first_status")
    return (
        insert(outbox)
        .values(
            event_type=bindparam("event_type", type_=outbox.c.event_type.type),
            aggregate_id=bindparam("aggregate_id", type_=outbox.c.aggregate_id.type),
            payload=bindparam("payload", type_=outbox.c.payload.type),
            attempts=0,
        )
        .add_cte(new, first_status)
    )


RRULE_PARTS = frozenset({"FREQ", "COUNT", "UNTIL", "INTERVAL", "BYDAY", "BYMONTHDAY", "WKST"})


def _occurrences(req: BookingRequest, tz: str, service: m.Service, now: dt.datetime) -> list[dt.datetime]:
    """Expand the RRULE in local wall-clock time (10:00 stays 10:00 across DST)."""
    from dateutil.rrule import DAILY, MONTHLY, WEEKLY, rrulestr

    rule_text = (req.recurrence.rrule or "").strip()
    if rule_text.upper().startswith("RRULE:"):
        rule_text = rule_text[6:]
    parts = dict(p.split("=", 1) for p in rule_text.upper().split(";") if "=" in p)
    if parts.get("FREQ") not in ("WEEKLY", "MONTHLY"):
        raise ValidationError("recurrence supports FREQ=WEEKLY or FREQ=MONTHLY", "recurrence.rrule")
    if "COUNT" not in parts and "UNTIL" not in parts:
        raise ValidationError("recurrence needs COUNT (at most 52) or UNTIL", "recurrence.rrule")
    if "COUNT" in parts and (not parts["COUNT"].isdigit() or not 1 <= int(parts["COUNT"]) <= 52):
        raise ValidationError("COUNT must be between 1 and 52", "recurrence.rrule")
    # dateutil searches period by period up to year 9999 for a rule that never matches
    # (BYMONTH=2;BYMONTHDAY=30 took ~2 s of CPU per request). Only parts that always
    # match within weeks are accepted, and the expansion below stops at the booking window.
    unknown = sorted(set(parts) - RRULE_PARTS)
    if unknown:
        raise ValidationError(f"recurrence supports {', '.join(sorted(RRULE_PARTS))}; not {unknown[0]}", "recurrence.rrule")
    if "INTERVAL" in parts and (not parts["INTERVAL"].isdigit() or not 1 <= int(parts["INTERVAL"]) <= 12):
        raise ValidationError("INTERVAL must be between 1 and 12", "recurrence.rrule")
    zone = ZoneInfo(tz)
    local_start = req.start.astimezone(zone).replace(tzinfo=None)
    try:
        rule = rrulestr(rule_text, dtstart=local_start)
    except (ValueError, TypeError) as exc:
        raise ValidationError(f"recurrence rule is not valid: {exc}", "recurrence.rrule")
    if getattr(rule, "_freq", None) not in (WEEKLY, MONTHLY) and getattr(rule, "_freq", None) != DAILY:
        raise ValidationError("recurrence supports FREQ=WEEKLY or FREQ=MONTHLY", "recurrence.rrule")
    horizon = now + dt.timedelta(days=service.max_advance_days)
    # 52 monthly occurrences span under five years: the search never goes further.
    search_end = req.start.astimezone(UTC) + dt.timedelta(days=5 * 366)
    out = []
    for i, local in enumerate(rule):
        if i >= 52:
            break
        instant = local.replace(tzinfo=zone).astimezone(UTC)
        if instant > search_end or (instant > horizon and "UNTIL" in parts):
            break
        out.append(instant)
    if not out:
        raise ValidationError("recurrence produces no occurrence", "recurrence.rrule")
    return out


def book(session: Session, tenant: TenantRef, actor: str, req: BookingRequest, now: dt.datetime) -> BookingResult:
    """Book `req` (one start or a recurring series) for its customer."""
    service = _service(session, req.service)
    if req.start.tzinfo is None:
        raise ValidationError("start must carry a time zone offset or Z", "start")
    start = req.start.astimezone(UTC)
    if not isinstance(req.seats, int) or req.seats < 1:
        raise ValidationError("seats must be a whole number of at least 1", "seats")
    if req.seats > service.capacity:
        raise ValidationError(f"this service takes at most {service.capacity} seat(s) per booking", "seats")
    if req.status not in m.STATUSES or req.status == m.STATUS_CANCELLED and not req.override_rules:
        raise ValidationError(f"status must be one of {', '.join(m.STATUSES)}", "status")
    tz = req.timezone or tenant.timezone
    try:
        ZoneInfo(tz)
    except Exception:
        raise ValidationError(f"unknown time zone {tz!r}", "timezone")
    _check_past(req, start, now)
    customer = None
    if req.customer is not None or req.source != "import":
        data = validate_customer(req.customer, _region(tenant))
        customer = upsert_customer(session, data, tenant.slug)
    token = secrets.token_urlsafe(24)
    token_hash = hash_secret(token)

    if req.recurrence is None:
        appointment = _place_one(session, tenant, service, req, start, customer, actor, now, tz, None, token_hash)
        return BookingResult([appointment], token)

    if req.recurrence.mode not in ("all_or_nothing", "skip_conflicts"):
        raise ValidationError("recurrence.mode must be all_or_nothing or skip_conflicts", "recurrence.mode")
    if not service.allow_recurring and not req.override_rules:
        raise ValidationError("this service cannot be booked as a series", "recurrence", code="not_allowed")
    starts = _occurrences(req, tz, service, now)
    series = m.Series(rrule=req.recurrence.rrule, timezone=tz)
    session.add(series)
    session.flush()
    booked: list[m.Appointment] = []
    conflicts: list[dict] = []
    preferred = req.staff
    for occurrence in starts:
        try:
            with session.begin_nested():
                # Occurrences share one manage token: it manages the whole series.
                appt = _place_one(
                    session, tenant, service, req, occurrence, customer, actor, now, tz, series,
                    token_hash if not booked else None, preferred_staff=preferred,
                )
            booked.append(appt)
            preferred = preferred or appt.staff.key
        except SlotUnavailable as exc:
            conflicts.append({"start": iso(occurrence), "code": exc.code, "message": exc.message})
    if conflicts and req.recurrence.mode == "all_or_nothing":
        raise SlotUnavailable(
            f"{len(conflicts)} of {len(starts)} occurrences are not available; nothing was booked",
            conflicts=conflicts,
        )
    if not booked:
        raise SlotUnavailable("no occurrence of the series is available", conflicts=conflicts)
    for appt in booked[1:]:
        appt.manage_token_hash = None
    return BookingResult(booked, token, conflicts, series.id)


def _region(tenant: TenantRef) -> str | None:
    """Default region for national phone numbers: the country of the tenant's time zone."""
    return zone_country(tenant.timezone)


@lru_cache(maxsize=1)
def _zone_countries() -> dict[str, str]:
    import zoneinfo

    table: dict[str, str] = {}
    for base in zoneinfo.TZPATH:
        path = Path(base) / "zone.tab"
        if path.exists():
            for line in path.read_text().splitlines():
                if line and not line.startswith("#"):
                    cols = line.split("\t")
                    table.setdefault(cols[2], cols[0])
            break
    return table


def zone_country(tz: str) -> str | None:
    return _zone_countries().get(tz)


# --------------------------------------------------------------------------- manage


def find_by_token(session: Session, token: str) -> m.Appointment:
    appointment = session.scalar(select(m.Appointment).where(m.Appointment.manage_token_hash == hash_secret(token or "")))
    if appointment is None:
        raise NotFound("no booking matches this link", "token")
    return appointment


def series_of(session: Session, appointment: m.Appointment) -> list[m.Appointment]:
    if appointment.series_id is None:
        return [appointment]
    return list(
        session.scalars(
            select(m.Appointment).where(m.Appointment.series_id == appointment.series_id).order_by(m.Appointment.start_at)
        )
    )


def _check_policy(appointment: m.Appointment, minutes: int, action: str, now: dt.datetime) -> None:
    deadline = appointment.start_at - dt.timedelta(minutes=minutes)
    if now > deadline:
        raise PolicyWindow(action, deadline)


def reschedule(
    session: Session,
    tenant: TenantRef,
    actor: str,
    appointment: m.Appointment,
    new_start: dt.datetime,
    now: dt.datetime,
    *,
    staff_key: str | None = None,
    enforce_policy: bool = True,
    override_rules: bool = False,
) -> m.Appointment:
    """Move one appointment to `new_start` (same staff unless another is named)."""
    if appointment.status == m.STATUS_CANCELLED:
        raise Conflict("cancelled", "a cancelled appointment cannot be rescheduled", None)
    if new_start.tzinfo is None:
        raise ValidationError("start must carry a time zone offset or Z", "start")
    new_start = new_start.astimezone(UTC)
    service = appointment.service
    if enforce_policy:
        _check_policy(appointment, service.reschedule_window_min, "rescheduled", now)
    target = _staff_by_key(session, staff_key) if staff_key else appointment.staff
    previous = (appointment.start_at, appointment.end_at, appointment.staff.key)
    lock_staff(session, tenant, [appointment.staff_id, target.id])
    tz = appointment.timezone or tenant.timezone
    location_key = appointment.location.key if appointment.location else None
    if not override_rules:
        seats_left, locations, _ = _bookable_staff_at(
            session, service, new_start, now, [target.key], None, tz, exclude_refs=frozenset({str(appointment.id)})
        )
        left = seats_left.get(target.key, 0) if target.key in seats_left else 0
        if target.key not in seats_left or (left is not None and appointment.seats > left):
            raise SlotUnavailable(reasons=_why_not(session, service, target.key, new_start, now, tz))
        location_key = locations.get(target.key, location_key)
    end = new_start + dt.timedelta(minutes=service.duration_min)
    appointment.staff_id = target.id
    appointment.staff = target
    if location_key:
        appointment.location = _location_by_key(session, location_key)
    appointment.start_at = new_start
    appointment.end_at = end
    appointment.padded_start = new_start - dt.timedelta(minutes=service.buffer_before_min)
    appointment.padded_end = end + dt.timedelta(minutes=service.buffer_after_min)
    appointment.session_key = session_key(service, target.id, new_start)
    appointment.sequence += 1
    _record_status(appointment, appointment.status, appointment.status, actor, f"rescheduled from {iso(previous[0])}")
    _flush_guarded(session)
    events.emit(
        session,
        events.RESCHEDULED,
        str(appointment.id),
        tenant.slug,
        previous_start=iso(previous[0]),
        previous_end=iso(previous[1]),
        previous_staff=previous[2],
        start=iso(new_start),
        end=iso(end),
        staff=target.key,
        sequence=appointment.sequence,
    )
    return appointment


def reschedule_series(
    session: Session,
    tenant: TenantRef,
    actor: str,
    anchor: m.Appointment,
    new_start: dt.datetime,
    now: dt.datetime,
    *,
    enforce_policy: bool = True,
) -> list[m.Appointment]:
    """Move this occurrence and every later live one by the same wall-clock shift; all or nothing."""
    if new_start.tzinfo is None:
        raise ValidationError("start must carry a time zone offset or Z", "start")
    zone = ZoneInfo(anchor.timezone or tenant.timezone)
    shift = new_start.astimezone(zone).replace(tzinfo=None) - anchor.start_at.astimezone(zone).replace(tzinfo=None)
    items = [a for a in series_of(session, anchor) if a.start_at >= anchor.start_at and a.status != m.STATUS_CANCELLED]
    # Move the far end first when shifting later (and the near end when earlier), so no
    # occurrence lands on a sibling that has not moved yet.
    items.sort(key=lambda a: a.start_at, reverse=shift > dt.timedelta(0))
    conflicts = []
    with session.begin_nested() as savepoint:
        for item in items:
            target = (item.start_at.astimezone(zone).replace(tzinfo=None) + shift).replace(tzinfo=zone).astimezone(UTC)
            try:
                with session.begin_nested():
                    reschedule(session, tenant, actor, item, target, now, enforce_policy=enforce_policy)
            except SlotUnavailable as exc:
                conflicts.append({"start": iso(target), "code": exc.code, "message": exc.message})
        if conflicts:
            savepoint.rollback()
    if conflicts:
        session.expire_all()
        raise SlotUnavailable(f"{len(conflicts)} occurrence(s) cannot move; nothing was changed", conflicts=conflicts)
    return sorted(items, key=lambda a: a.start_at)


def cancel(
    session: Session,
    tenant: TenantRef,
    actor: str,
    appointment: m.Appointment,
    now: dt.datetime,
    *,
    reason: str | None = None,
    enforce_policy: bool = True,
) -> m.Appointment:
    """Cancel one appointment; idempotent for one already cancelled."""
    if appointment.status == m.STATUS_CANCELLED:
        return appointment
    if enforce_policy:
        _check_policy(appointment, appointment.service.cancel_window_min, "cancelled", now)
    if reason is not None and len(reason) > 2000:
        raise ValidationError("reason is too long (2000 characters at most)", "reason")
    previous = appointment.status
    appointment.status = m.STATUS_CANCELLED
    appointment.cancel_reason = reason
    appointment.sequence += 1
    _record_status(appointment, previous, m.STATUS_CANCELLED, actor, reason)
    session.flush()
    events.emit(
        session, events.CANCELLED, str(appointment.id), tenant.slug, reason=reason, by=actor, start=iso(appointment.start_at)
    )
    return appointment


def set_status(
    session: Session, tenant: TenantRef, actor: str, appointment: m.Appointment, status: str, reason: str | None = None
) -> m.Appointment:
    """Mark confirmed, completed or no-show (cancelling goes through cancel())."""
    if status not in (m.STATUS_PENDING, m.STATUS_CONFIRMED, m.STATUS_COMPLETED, m.STATUS_NO_SHOW):
        raise ValidationError("status must be pending, confirmed, completed or no_show", "status")
    if appointment.status == m.STATUS_CANCELLED:
        raise Conflict("cancelled", "a cancelled appointment cannot change status", "status")
    previous = appointment.status
    if previous == status:
        return appointment
    appointment.status = status
    _record_status(appointment, previous, status, actor, reason)
    session.flush()
    events.emit(session, events.STATUS_CHANGED, str(appointment.id), tenant.slug, from_status=previous, to_status=status)
    if status == m.STATUS_NO_SHOW:
        events.emit(session, events.NO_SHOW, str(appointment.id), tenant.slug, start=iso(appointment.start_at))
    return appointment


def add_note(session: Session, tenant: TenantRef, actor: str, appointment: m.Appointment, note: str) -> m.Appointment:
    """Append a staff note to the appointment (kept in its history too); no notification."""
    note = (note or "").strip()
    if not note:
        raise ValidationError("a note needs some text", "note")
    if len(note) > 2000:
        raise ValidationError("a note is at most 2000 characters", "note")
    appointment.notes = f"{appointment.notes}\n{note}" if appointment.notes else note
    _record_status(appointment, appointment.status, appointment.status, actor, f"note: {note}")
    session.flush()
    return appointment


def with_deadlock_retry(fn, session: Session, attempts: int = 2):
    """Run `fn()` in one unit of work (app.uow), once more after a deadlock; kept for its callers."""
    return run_unit(fn, session, retry=attempts > 1)
