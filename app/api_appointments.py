"""REST API for bookings: appointments and availability (/api/v1/appointments, /api/v1/availability).

Same login as the rest of the tenant REST API (API key or admin session, routed to one
business). Every change goes through app.services.booking (the same functions as the
public API, the desk and the admin), so rules, locks, status history and outbox events
are the same. A key restricted to a location sees and books that location only.

| method | path | |
|---|---|---|
| GET | /appointments?from=&to=&status=&staff=&service=&location=&customer=&source=&series=&cursor=&limit= | `{result, next_cursor}`, by start ascending |
| POST | /appointments | `{service, start, customer{name,email,phone?} \\| customer_id, location?, staff?, seats?, timezone?, notes?, status?}` → 201 |
| GET | /appointments/<id> | `{result}` with an ETag |
| POST | /appointments/<id>/reschedule | `{start, staff?}` (If-Match) |
| POST | /appointments/<id>/cancel | `{reason?}` (If-Match) |
| POST | /appointments/<id>/no-show, /appointments/<id>/complete | (If-Match) |
| GET | /availability?service=&from=&to=&location=&staff=&timezone= | `{slots: [{start, end, staff, seats_left?}]}` |
"""

from __future__ import annotations

import datetime as dt

from flask import current_app, g, jsonify, request
from flask_appbuilder.api import BaseApi, expose
from flask_appbuilder.security.decorators import permission_name, protect
from sqlalchemy import select

from app.api_common import check_if_match, etag_of, json_body, remember
from app.api_rest import _customer_at, _error, _require_tenant
from app.errors import ApiError, ValidationError
from app.extensions import db
from app.models import tenant as m
from app.services import appointment_list, booking, meetings
from app.services.availability import parse_query, slots_json_text
from app.uow import discard, run_unit

UTC = dt.timezone.utc
BODY_FIELDS = {"service", "start", "customer", "customer_id", "location", "staff", "seats", "timezone", "notes", "status"}


def utcnow() -> dt.datetime:
    """The API's clock (tests pin it with PUBLIC_API_NOW, as for the public API)."""
    pinned = current_app.config.get("PUBLIC_API_NOW")
    if pinned:
        return dt.datetime.fromisoformat(pinned.replace("Z", "+00:00"))
    return dt.datetime.now(UTC)


def _ref(obj) -> dict | None:
    return {"id": obj.id, "key": obj.key, "name": obj.name} if obj is not None else None


def appointment_json(appt: m.Appointment) -> dict:
    customer = appt.customer
    return {
        "id": str(appt.id),
        "status": appt.status,
        "start": booking.iso(appt.start_at),
        "end": booking.iso(appt.end_at),
        "timezone": appt.timezone,
        "service": _ref(appt.service),
        "staff": _ref(appt.staff),
        "location": _ref(appt.location),
        "customer": {"id": customer.id, "name": customer.name, "email": customer.email, "phone": customer.phone}
        if customer is not None else None,
        "seats": appt.seats,
        "price": f"{appt.price:.2f}" if appt.price is not None else None,
        "currency": appt.currency,
        "source": appt.source,
        "notes": appt.notes,
        "series_id": str(appt.series_id) if appt.series_id else None,
        "created_at": booking.iso(appt.created_at) if getattr(appt, "created_at", None) else None,
        "meeting": meetings.meeting_json(appt),
    }


def _instant(raw, field: str, required: bool = True) -> dt.datetime | None:
    if raw in (None, ""):
        if required:
            raise ValidationError(f"{field} is required (ISO 8601 instant)", field, code="required")
        return None
    if not isinstance(raw, str):
        raise ValidationError(f"{field} must be an ISO 8601 instant", field)
    try:
        value = dt.datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise ValidationError(f"{field} must be an ISO 8601 instant", field) from None
    if value.tzinfo is None:
        raise ValidationError(f"{field} needs an offset or Z", field)
    try:
        return value.astimezone(UTC)
    except (OverflowError, ValueError):
        raise ValidationError(f"{field} is out of range", field) from None


def _text(data: dict, name: str, max_len: int, required: bool = False) -> str | None:
    value = data.get(name)
    if value is None or value == "":
        if required:
            raise ValidationError(f"{name} is required", name, code="required")
        return None
    if not isinstance(value, str):
        raise ValidationError(f"{name} must be a string", name)
    if len(value) > max_len:
        raise ValidationError(f"{name} is too long ({max_len} characters at most)", name)
    return value.strip()


def _location_restriction() -> str | None:
    return g.get("api_key_location")


def _actor() -> str:
    if g.get("api_key_id"):
        return f"api:{g.get('api_key_label') or g.api_key_id}"
    return f"admin:{getattr(g.get('user'), 'username', '?')}"


def _filters() -> appointment_list.ApiFilter:
    args = request.args
    statuses = tuple(s for s in (args.get("status") or "").split(",") if s)
    for status in statuses:
        if status not in m.STATUSES:
            raise ValidationError(f"status is one or more of {', '.join(m.STATUSES)} (comma-separated)", "status")
    customer = args.get("customer") or None
    if customer is not None and (not customer.isdigit() or len(customer) > 12):
        raise ValidationError("customer is a customer id", "customer")
    series = args.get("series") or None
    if series is not None:
        import uuid

        try:
            series = str(uuid.UUID(series))
        except ValueError:
            raise ValidationError("series is a series id (UUID)", "series") from None
    location = args.get("location") or None
    restricted = _location_restriction()
    if restricted is not None:
        if location not in (None, restricted):
            raise ApiError("not_allowed", "this API key is restricted to another location", "location", status=403)
        location = restricted
    for name in ("staff", "service", "location", "source"):
        value = args.get(name)
        if value is not None and len(value) > 63:
            raise ValidationError(f"{name} is a key (63 characters at most)", name)
    return appointment_list.ApiFilter(
        start_from=_instant(args.get("from"), "from", required=False),
        start_to=_instant(args.get("to"), "to", required=False),
        status=statuses, staff=args.get("staff") or None, service=args.get("service") or None,
        location=location, customer=int(customer) if customer else None,
        source=args.get("source") or None, series=series,
    )


def _limit() -> int:
    raw = request.args.get("limit") or "50"
    if not raw.isdigit() or not 1 <= int(raw) <= appointment_list.API_MAX_LIMIT:
        raise ValidationError(f"limit is a whole number from 1 to {appointment_list.API_MAX_LIMIT}", "limit")
    return int(raw)


def _booking_request(data: dict) -> booking.BookingRequest:
    unknown = sorted(set(data) - BODY_FIELDS)
    if unknown:
        raise ValidationError(f"unknown field {unknown[0]!r}", unknown[0], code="unknown_field")
    service = _text(data, "service", 63, required=True)
    start = _instant(data.get("start"), "start")
    tz = _text(data, "timezone", 64)
    seats = data.get("seats", 1)
    if not isinstance(seats, int) or isinstance(seats, bool) or not 1 <= seats <= 1000:
        raise ValidationError("seats is a whole number from 1 to 1000", "seats")
    status = data.get("status", m.STATUS_CONFIRMED)
    if status not in (m.STATUS_CONFIRMED, m.STATUS_PENDING):
        raise ValidationError("status of a new appointment is confirmed or pending", "status")
    customer = data.get("customer")
    customer_input = None
    if data.get("customer_id") is not None:
        if customer is not None:
            raise ValidationError("give customer or customer_id, not both", "customer_id")
        ident = data["customer_id"]
        if not isinstance(ident, int) or isinstance(ident, bool) or not 1 <= ident < 2**31:
            raise ValidationError("customer_id is a customer id", "customer_id")
        row = db.session.get(m.Customer, ident)
        restricted = _location_restriction()
        if row is not None and restricted is not None and not db.session.scalar(
                select(_customer_at(restricted)).where(m.Customer.id == row.id)):
            row = None  # a customer of another location is not known to this key
        if row is None:
            raise ApiError("unknown_key", "no such customer in this business", "customer_id", status=422)
        customer_input = booking.CustomerInput(name=row.name, email=row.email or "", phone=row.phone, timezone=tz)
    else:
        if not isinstance(customer, dict):
            raise ValidationError("customer is required: {name, email, phone?} (or customer_id)", "customer",
                                  code="required")
        extra = sorted(set(customer) - {"name", "email", "phone"})
        if extra:
            raise ValidationError(f"unknown field customer.{extra[0]}", f"customer.{extra[0]}", code="unknown_field")
        customer_input = booking.CustomerInput(
            name=_text(customer, "name", 200, required=True) or "",
            email=_text(customer, "email", 254, required=True) or "",
            phone=_text(customer, "phone", 40), timezone=tz)
    location = _text(data, "location", 63)
    restricted = _location_restriction()
    if restricted is not None:
        if location not in (None, restricted):
            raise ApiError("not_allowed", "this API key is restricted to another location", "location", status=403)
        location = restricted
    return booking.BookingRequest(
        service=service, start=start, customer=customer_input, location=location, staff=_text(data, "staff", 63),
        seats=seats, timezone=tz, notes=_text(data, "notes", 2000), source="api", status=status)


class _TenantApi(BaseApi):
    """A REST resource of the current business: refused without one; errors in the standard shape."""

    def create_blueprint(self, appbuilder, *args, **kwargs):
        blueprint = super().create_blueprint(appbuilder, *args, **kwargs)
        blueprint.before_request(_require_tenant)
        return blueprint

    def response_401(self):
        return _error(401, "unauthorized", "sign in or send a valid API key")

    def response_403(self):
        return _error(403, "not_allowed", "this role may not do that here")


class AppointmentsApi(_TenantApi):
    resource_name = "appointments"
    class_permission_name = "AppointmentsApi"
    allow_browser_login = True
    method_permission_name = {"list_": "get", "get_one": "get", "create": "post", "reschedule": "put",
                              "cancel": "put", "no_show": "put", "complete": "put"}
    openapi_spec_tag = "Appointments"


    @staticmethod
    def _answer(fn, status: int = 200, etag: bool = False):
        try:
            body = run_unit(lambda: fn(), db.session, retry=True)
        except ApiError as exc:
            return _error(exc.status, exc.code, exc.message, exc.field, **exc.extra)
        response = jsonify(body)
        response.status_code = status
        if etag and "result" in body:
            response.headers["ETag"] = etag_of(body["result"])
        return response

    @staticmethod
    def _find(pk: str) -> m.Appointment:
        return appointment_list.find_appointment(db.session, pk, _location_restriction())

    @expose("/", methods=["GET"])
    @protect()
    @permission_name("get")
    def list_(self):
        """Appointments by start (ascending), filtered, one keyset page at a time."""
        try:
            f, limit = _filters(), _limit()
            rows, next_cursor = appointment_list.api_page(db.session, f, request.args.get("cursor") or None, limit)
            body = {"result": [appointment_json(a) for a in rows], "next_cursor": next_cursor}
        except ApiError as exc:
            discard()
            return _error(exc.status, exc.code, exc.message, exc.field, **exc.extra)
        discard()
        return jsonify(body)

    @expose("/<pk>", methods=["GET"])
    @protect()
    @permission_name("get")
    def get_one(self, pk):
        try:
            body = {"result": appointment_json(self._find(pk))}
        except ApiError as exc:
            discard()
            return _error(exc.status, exc.code, exc.message, exc.field)
        discard()
        response = jsonify(body)
        response.headers["ETag"] = etag_of(body["result"])
        return response

    @expose("/", methods=["POST"])
    @protect()
    @permission_name("post")
    def create(self):
        """Book through the booking service (rules, locks, outbox) and answer 201 with the appointment."""
        try:
            data = json_body()
        except ApiError as exc:
            return _error(exc.status, exc.code, exc.message, exc.field)

        def work():
            req = _booking_request(data)
            result = booking.book(db.session, g.tenant, _actor(), req, utcnow())
            body = {"result": appointment_json(result.appointments[0])}
            remember(body, 201)
            return body

        return self._answer(work, 201, etag=True)

    def _change(self, pk, change):
        try:
            data = json_body(required=False)
        except ApiError as exc:
            return _error(exc.status, exc.code, exc.message, exc.field)

        def work():
            appt = self._find(pk)
            check_if_match(etag_of(appointment_json(appt)))
            change(appt, data)
            db.session.flush()
            body = {"result": appointment_json(appt)}
            remember(body, 200)
            return body

        return self._answer(work, etag=True)

    @expose("/<pk>/reschedule", methods=["POST"])
    @protect()
    @permission_name("put")
    def reschedule(self, pk):
        def change(appt, data):
            extra = sorted(set(data) - {"start", "staff"})
            if extra:
                raise ValidationError(f"unknown field {extra[0]!r}", extra[0], code="unknown_field")
            booking.reschedule(db.session, g.tenant, _actor(), appt, _instant(data.get("start"), "start"), utcnow(),
                               staff_key=_text(data, "staff", 63), enforce_policy=False)

        return self._change(pk, change)

    @expose("/<pk>/cancel", methods=["POST"])
    @protect()
    @permission_name("put")
    def cancel(self, pk):
        def change(appt, data):
            extra = sorted(set(data) - {"reason"})
            if extra:
                raise ValidationError(f"unknown field {extra[0]!r}", extra[0], code="unknown_field")
            booking.cancel(db.session, g.tenant, _actor(), appt, utcnow(), reason=_text(data, "reason", 2000),
                           enforce_policy=False)

        return self._change(pk, change)

    @expose("/<pk>/no-show", methods=["POST"])
    @protect()
    @permission_name("put")
    def no_show(self, pk):
        return self._change(pk, lambda appt, data: booking.set_status(db.session, g.tenant, _actor(), appt,
                                                                       m.STATUS_NO_SHOW))

    @expose("/<pk>/complete", methods=["POST"])
    @protect()
    @permission_name("put")
    def complete(self, pk):
        return self._change(pk, lambda appt, data: booking.set_status(db.session, g.tenant, _actor(), appt,
                                                                       m.STATUS_COMPLETED))


class AvailabilityApi(_TenantApi):
    resource_name = "availability"
    class_permission_name = "AppointmentsApi"
    allow_browser_login = True
    method_permission_name = {"slots": "get"}
    openapi_spec_tag = "Availability"

    @expose("/", methods=["GET"])
    @protect()
    @permission_name("get")
    def slots(self):
        """Bookable starts of a service (the engine of the public API; every active staff member and location)."""
        try:
            query = parse_query(request.args, current_app.config["AVAILABILITY_MAX_RANGE_DAYS"])
            restricted = _location_restriction()
            if restricted is not None:
                if query.location not in (None, restricted):
                    raise ApiError("not_allowed", "this API key is restricted to another location", "location",
                                   status=403)
                import dataclasses

                query = dataclasses.replace(query, location=restricted)
            body = slots_json_text(db.session, query, utcnow())
        except ApiError as exc:
            discard()
            return _error(exc.status, exc.code, exc.message, exc.field, **exc.extra)
        discard()
        return current_app.response_class(body, mimetype="application/json")
