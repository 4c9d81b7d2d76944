"""Public booking API: no login, tenant by slug, JSON in and out.

GET  /api/v1/public/<tenant>/services | /locations | /staff
GET  /api/v1/public/<tenant>/availability?service=&location=&staff=&from=&to=&timezone=
POST /api/v1/public/<tenant>/bookings                (Idempotency-Key header honoured)
GET  /api/v1/public/<tenant>/bookings/<token>
POST /api/v1/public/<tenant>/bookings/<token>/reschedule   {start}
POST /api/v1/public/<tenant>/bookings/<token>/cancel       {reason?}
GET  /api/v1/public/<tenant>/bookings/<token>/ics          (text/calendar)
GET  /api/v1/public/<tenant>/form?service=                 booking-form fields and current consent texts
GET  /api/v1/public/<tenant>/widgets/<widget id>           a widget's public settings

A booking's `answers` are checked against the booking form (app/services/forms.py);
`consents` ({"terms": version, "privacy": version}) must name the current texts,
and a consent record (who, when, version, IP) is written with the booking.

Errors: {"error": {"code", "message", "field"}} (app/errors.py).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import gzip
import hashlib

from flask import Blueprint, Response, current_app, g, jsonify, request
from sqlalchemy import func, select

from app import i18n
from app.errors import NotFound, ValidationError
from app.extensions import db
from app.models import tenant as m
from app.replica import read_session
from app.services import booking, forms, meetings
from app.services.availability import parse_query, slots_json_text
from app.services.public_catalogue import public_catalogue
from app.tenancy import public_tenant
from app.uow import discard

bp = Blueprint("public_api", __name__, url_prefix="/api/v1/public/<tenant_slug>")
UTC = dt.timezone.utc


def utcnow() -> dt.datetime:
    """The clock of the public API; tests may pin it with config PUBLIC_API_NOW (ISO instant)."""
    pinned = current_app.config.get("PUBLIC_API_NOW")
    if pinned:
        return dt.datetime.fromisoformat(pinned.replace("Z", "+00:00"))
    return dt.datetime.now(UTC)


@bp.url_value_preprocessor
def _resolve_tenant(endpoint, values):
    g.tenant_row = public_tenant(db.session, values.pop("tenant_slug", None) or "")


@bp.after_request
def _cors(response):
    # The widget iframe runs on our own origin; the API is also usable cross-origin
    # from a business's own site (read-only data and bookings, no cookies).
    response.headers["Access-Control-Allow-Origin"] = "*"
    response.headers["Access-Control-Allow-Headers"] = "Content-Type, Idempotency-Key"
    response.headers["Access-Control-Allow-Methods"] = "GET, POST, OPTIONS"
    return _gzip(response)


def _gzip(response):
    """Compress larger JSON answers (a month of slots shrinks ~10x): the widget's byte budget is tight."""
    if (
        response.mimetype == "application/json"
        and not response.direct_passthrough
        and "gzip" in (request.headers.get("Accept-Encoding") or "")
        and "Content-Encoding" not in response.headers
        and response.content_length is not None
        and response.content_length > 1400
    ):
        response.set_data(gzip.compress(response.get_data(), 5, mtime=0))
        response.headers["Content-Encoding"] = "gzip"
        response.headers.add("Vary", "Accept-Encoding")
    return response


@bp.get("/locations")
def locations():
    return jsonify({"locations": public_catalogue(db.session).locations})


@bp.get("/services")
def services():
    currency = g.tenant.currency
    return jsonify({"services": [{**svc, "currency": currency} for svc in public_catalogue(db.session).services]})


@bp.get("/staff")
def staff():
    return jsonify({"staff": public_catalogue(db.session).staff})


@bp.get("/availability")
def availability():
    query = parse_query(request.args, current_app.config["AVAILABILITY_MAX_RANGE_DAYS"])
    if not current_app.config.get("DATABASE_REPLICA_URL"):
        body = slots_json_text(db.session, query, utcnow())
        discard()  # a read: hand the connection back before answering
        return current_app.response_class(body, mimetype="application/json")
    discard()  # the tenant lookup's transaction, on the primary
    with read_session(g.tenant.schema) as session:
        body = slots_json_text(session, query, utcnow())
    return current_app.response_class(body, mimetype="application/json")


# --------------------------------------------------------------------------- bookings


def _json_body() -> dict:
    data = request.get_json(silent=True)
    if not isinstance(data, dict):
        raise ValidationError("the request body must be a JSON object", None, code="invalid_json")
    return data


def _instant(value, field: str) -> dt.datetime:
    if not isinstance(value, str) or not value:
        raise ValidationError(f"{field} is required (ISO 8601 instant)", field, code="required")
    try:
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ValidationError(f"{field} must be an ISO 8601 instant, got {value!r}", field)
    if parsed.tzinfo is None:
        raise ValidationError(f"{field} needs an offset or Z", field)
    return parsed.astimezone(UTC)


def _language(customer: dict) -> str | None:
    """``customer.locale``: the language the customer's messages are written in (the widget sends its own)."""
    raw = _str(customer, "locale", "customer.locale", max_len=35)
    if raw is None:
        return None
    code = i18n.normalize(raw)
    if code is None:
        raise ValidationError(f"customer.locale must be one of {', '.join(i18n.LANGUAGES)}", "customer.locale")
    return code


def _str(data: dict, key: str, field: str, required: bool = False, max_len: int = 500) -> str | None:
    value = data.get(key)
    if value is None or value == "":
        if required:
            raise ValidationError(f"{field} is required", field, code="required")
        return None
    if not isinstance(value, str):
        raise ValidationError(f"{field} must be a string", field)
    if len(value) > max_len:
        raise ValidationError(f"{field} is too long ({max_len} characters at most)", field)
    return value.strip()


def parse_booking(data: dict) -> booking.BookingRequest:
    allowed = {"service", "location", "staff", "start", "timezone", "customer", "seats", "answers", "recurrence", "notes",
               "consents", "widget"}
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise ValidationError(f"unknown field {unknown[0]!r}", unknown[0], code="unknown_field")
    service = _str(data, "service", "service", required=True, max_len=63)
    start = _instant(data.get("start"), "start")
    tz = _str(data, "timezone", "timezone", max_len=64)
    customer = data.get("customer")
    if not isinstance(customer, dict):
        raise ValidationError("customer is required: {name, email, phone?, locale?}", "customer", code="required")
    extra = sorted(set(customer) - {"name", "email", "phone", "locale"})
    if extra:
        raise ValidationError(f"unknown field customer.{extra[0]}", f"customer.{extra[0]}", code="unknown_field")
    seats = data.get("seats", 1)
    if not isinstance(seats, int) or isinstance(seats, bool):
        raise ValidationError("seats must be a whole number", "seats")
    answers = data.get("answers") or {}
    if not isinstance(answers, dict):
        raise ValidationError("answers must be an object", "answers")
    recurrence = None
    if data.get("recurrence") is not None:
        rec = data["recurrence"]
        if not isinstance(rec, dict) or not isinstance(rec.get("rrule"), str):
            raise ValidationError("recurrence must be {rrule, mode?}", "recurrence")
        recurrence = booking.Recurrence(rrule=rec["rrule"], mode=rec.get("mode", "all_or_nothing"))
    return booking.BookingRequest(
        service=service,
        start=start,
        customer=booking.CustomerInput(
            name=_str(customer, "name", "customer.name", required=True, max_len=200) or "",
            email=_str(customer, "email", "customer.email", required=True, max_len=254) or "",
            phone=_str(customer, "phone", "customer.phone", max_len=40),
            locale=_language(customer),
            timezone=tz,
        ),
        location=_str(data, "location", "location", max_len=63),
        staff=_str(data, "staff", "staff", max_len=63),
        seats=seats,
        timezone=tz,
        answers=answers,
        notes=_str(data, "notes", "notes", max_len=2000),
        source="widget" if request.headers.get("X-Upzento-Widget") else "api",
        recurrence=recurrence,
    )


def appointment_json(appt: m.Appointment) -> dict:
    return {
        "id": str(appt.id),
        "service": appt.service.key,
        "service_name": appt.service.name,
        "staff": appt.staff.key,
        "staff_name": appt.staff.name,
        "location": appt.location.key if appt.location else None,
        "location_name": appt.location.name if appt.location else None,
        "start": booking.iso(appt.start_at),
        "end": booking.iso(appt.end_at),
        "timezone": appt.timezone,
        "status": appt.status,
        "seats": appt.seats,
        "price": f"{appt.price:.2f}" if appt.price is not None else None,
        "currency": appt.currency,
        "series_id": str(appt.series_id) if appt.series_id else None,
        "customer": {"name": appt.customer.name, "email": appt.customer.email, "phone": appt.customer.phone}
        if appt.customer
        else None,
        "meeting": meetings.meeting_json(appt),
    }


def _idempotent(handler):
    """`handler()` -> (body, status) as a response; with an Idempotency-Key, the same body gets the stored answer, another 422.

    Nothing here commits: the caller's with_deadlock_retry does, once, so the
    booking and its stored answer are one transaction.
    """
    key = request.headers.get("Idempotency-Key")
    if not key:
        body, status = handler()
        return jsonify(body), status
    if len(key) > 200:
        raise ValidationError("Idempotency-Key is too long (200 characters at most)", "Idempotency-Key")
    digest = hashlib.sha256(request.get_data()).hexdigest()
    scoped = f"{request.path}:{key}"
    # Serialize requests carrying the same key; the second waits and then replays.
    db.session.execute(
        select(func.pg_advisory_xact_lock(7263, func.hashtext(f"{g.tenant.schema}:{scoped}")))
    )
    stored = db.session.get(m.IdempotencyKey, scoped)
    if stored is not None:
        if stored.request_hash != digest:
            raise ValidationError(
                "this Idempotency-Key was used with a different request body", "Idempotency-Key", code="idempotency_mismatch"
            )
        # A replay writes nothing: the caller's unit commits an empty transaction (and frees the key's lock).
        return jsonify(stored.response), stored.status_code
    body, status = handler()
    db.session.add(m.IdempotencyKey(key=scoped, request_hash=digest, status_code=status, response=body))
    return jsonify(body), status


def _form_checked(data: dict, req: booking.BookingRequest):
    """Answers cleaned against the booking form (minus the widget's hidden fields) and the consent texts agreed to."""
    hidden: set[str] = set()
    if data.get("widget") is not None:
        widget = forms.find_widget(db.session, str(data["widget"]))
        if widget is None:
            raise NotFound(f"unknown widget {data['widget']!r}", "widget")
        hidden = set(widget.hidden_fields or [])
    answers = forms.clean_answers(db.session, req.service, req.answers, hidden, booking.zone_country(g.tenant.timezone))
    texts = forms.check_consents(db.session, data.get("consents"))
    return dataclasses.replace(req, answers=answers), texts


@bp.post("/bookings")
def create_booking():
    data = _json_body()
    req, consent_texts = _form_checked(data, parse_booking(data))

    def handler():
        result = booking.book(db.session, g.tenant, "customer", req, utcnow())
        forms.record_consents(db.session, consent_texts, result.appointments[0], request.remote_addr,
                              "widget" if data.get("widget") else "api")
        body = {
            "appointment": appointment_json(result.appointments[0]),
            "manage_token": result.manage_token,
        }
        if req.recurrence is not None:
            body["appointments"] = [appointment_json(a) for a in result.appointments]
            body["conflicts"] = result.conflicts
        return body, 201

    # A deadlock (two series locking the same staff in another order) is retried once.
    return booking.with_deadlock_retry(lambda: _idempotent(handler), db.session)


@bp.get("/bookings/<token>")
def show_booking(token: str):
    appt = booking.find_by_token(db.session, token)
    items = booking.series_of(db.session, appt)
    return jsonify({"appointment": appointment_json(appt), "appointments": [appointment_json(a) for a in items]})


@bp.post("/bookings/<token>/reschedule")
def reschedule_booking(token: str):
    data = _json_body()
    new_start = _instant(data.get("start"), "start")

    def move():
        appt = booking.find_by_token(db.session, token)
        if data.get("series"):
            return appt, booking.reschedule_series(db.session, g.tenant, "customer", appt, new_start, utcnow())
        return appt, [booking.reschedule(db.session, g.tenant, "customer", appt, new_start, utcnow())]

    appt, moved = booking.with_deadlock_retry(move, db.session)
    return jsonify({"appointment": appointment_json(appt), "appointments": [appointment_json(a) for a in moved]})


@bp.post("/bookings/<token>/cancel")
def cancel_booking(token: str):
    data = request.get_json(silent=True) or {}
    if not isinstance(data, dict):
        raise ValidationError("the request body must be a JSON object", None, code="invalid_json")
    reason = _str(data, "reason", "reason", max_len=2000)

    def cancel():
        appt = booking.find_by_token(db.session, token)
        targets = booking.series_of(db.session, appt) if data.get("series") else [appt]
        now = utcnow()
        for item in targets:
            if item.start_at > now or item is appt:
                booking.cancel(db.session, g.tenant, "customer", item, now, reason=reason)
        return appt, targets

    appt, targets = booking.with_deadlock_retry(cancel, db.session)
    return jsonify({"appointment": appointment_json(appt), "cancelled": [str(a.id) for a in targets if a.status == "cancelled"]})


@bp.get("/bookings/<token>/ics")
def booking_ics(token: str):
    from app.services.portal import appointment_ics

    appt = booking.find_by_token(db.session, token)
    organizer = g.tenant_row.contact_email or current_app.config["MAIL_FROM"]
    body = appointment_ics(g.tenant, organizer, appt, None)
    return Response(body, mimetype="text/calendar", headers={"Content-Disposition": 'attachment; filename="appointment.ics"'})


@bp.get("/form")
def booking_form():
    service = request.args.get("service") or None
    if service and not db.session.scalar(select(m.Service.id).where(m.Service.key == service)):
        raise NotFound(f"unknown service {service!r}", "service")
    return jsonify(
        {
            "fields": [forms.field_json(f) for f in forms.fields_for(db.session, service)],
            "consents": [{"kind": t.kind, "version": t.version, "body": t.body} for t in forms.current_consents(db.session).values()],
        }
    )


def widget_json(widget) -> dict:
    return {
        "id": widget.public_id,
        "name": widget.name,
        "mode": widget.mode,
        "primary_color": widget.primary_color,
        "accent_color": widget.accent_color,
        "logo_url": widget.logo_url,
        "font_family": widget.font_family,
        "radius_px": widget.radius_px,
        "language": widget.language,
        "button_label": widget.button_label,
        "default_service": widget.default_service,
        "default_location": widget.default_location,
        "show_location_step": widget.show_location_step,
        "show_staff_step": widget.show_staff_step,
        "show_phone": widget.show_phone,
        "hidden_fields": list(widget.hidden_fields or []),
    }


@bp.get("/widgets/<public_id>")
def widget_config(public_id: str):
    widget = forms.find_widget(db.session, public_id)
    if widget is None:
        raise NotFound(f"unknown widget {public_id!r}", "widget")
    return jsonify({"widget": widget_json(widget)})
