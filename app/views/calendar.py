"""The admin calendar: day / week / month / agenda views (FullCalendar's free standard build, served
from app/static/vendor), resource columns per staff member or location, drag to reschedule,
a dialog of free slots, and actions (confirm, cancel, no-show, completed, note).

Every change goes through app.services.booking (one function per intent: the outbox event
and so the notification come with it) inside one app.uow unit of work. A refused drag
answers 409 with the engine's reasons (app.services.explaining), and the browser puts
the appointment back. A Staff log-in sees and moves only their own appointments; an
Auditor reads and cannot act (no `can_act`).
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from flask import g, jsonify, redirect, request, url_for
from flask_appbuilder import BaseView, expose, has_access
from flask_appbuilder.security.decorators import has_access_api, permission_name
from sqlalchemy import select

from app import security
from app.errors import ApiError, SlotUnavailable
from app.extensions import db
from app.models import tenant as m
from app.services import booking
from app.services import calendar as cal
from app.services.availability import AvailabilityQuery, query_slots
from app.services.explaining import explain_start
from app.uow import run_unit

UTC = dt.timezone.utc
ACTIONS = {"confirm": m.STATUS_CONFIRMED, "completed": m.STATUS_COMPLETED, "no_show": m.STATUS_NO_SHOW}


def _now() -> dt.datetime:
    return dt.datetime.now(UTC)


def _error(exc: ApiError):
    return jsonify(exc.to_dict()), exc.status


def viewer_staff_id() -> int | None:
    """The staff id a Staff-only log-in is limited to (-1 if not linked to a staff record), else None."""
    if security.is_staff_only():
        return security.current_staff_id() or -1
    return None


def actor() -> str:
    user = g.get("user")
    prefix = "staff" if security.is_staff_only() else "admin"
    return f"{prefix}:{getattr(user, 'username', '')}"


def _zone(value: str | None, default: str) -> str:
    try:
        ZoneInfo(value or default)
        return value or default
    except (KeyError, ValueError):
        return default


class CalendarView(BaseView):
    route_base = "/calendar"
    class_permission_name = "Calendar"
    default_view = "page"

    def _catalog(self):
        only = viewer_staff_id()
        staff_q = select(m.Staff).where(m.Staff.active.is_(True)).order_by(m.Staff.name)
        if only is not None:
            staff_q = staff_q.where(m.Staff.id == only)
        return (
            list(db.session.scalars(select(m.Location).where(m.Location.active.is_(True)).order_by(m.Location.name))),
            list(db.session.scalars(staff_q)),
            list(db.session.scalars(select(m.Service).where(m.Service.active.is_(True)).order_by(m.Service.name))),
        )

    def _default_zone(self, locations) -> str:
        # The viewer's zone when asked for, else the (first) location's, else the business's.
        return locations[0].timezone if locations else g.tenant.timezone

    @expose("/")
    @has_access
    @permission_name("list")
    def page(self):
        if g.get("tenant") is None:
            return redirect(url_for("TenantSwitchView.choose"))
        locations, staff, services = self._catalog()
        tz = _zone(request.args.get("timezone"), self._default_zone(locations))
        return self.render_template(
            "dash_calendar.html", locations=locations, staff=staff, services=services, tz=tz, args=request.args,
            choices={
                "staff": [(p.key, p.name) for p in staff], "location": [(x.key, x.name) for x in locations],
                "service": [(x.key, x.name) for x in services], "status": [(x, x.replace("_", "-")) for x in cal.STATUS_COLOURS],
                "source": [(x, x) for x in ("widget", "api", "admin", "import")],
            },
            filters={k: request.args.get(k, "") for k in ("staff", "location", "service", "status", "source")}
            | {"colour": request.args.get("colour", "service")},
            resources=(
                [{"key": p.key, "name": p.name} for p in staff] if request.args.get("group") == "staff"
                else [{"key": x.key, "name": x.name} for x in locations] if request.args.get("group") == "location" else []
            ),
            may_act=self.appbuilder.sm.has_access("can_act", self.class_permission_name),
            staff_only=viewer_staff_id() is not None,
        )

    @expose("/events")
    @has_access_api
    @permission_name("list")
    def events(self):
        # Only the first active location's zone is needed here (not the whole catalogue).
        first = db.session.scalars(select(m.Location).where(m.Location.active.is_(True)).order_by(m.Location.name).limit(1)).all()
        tz = _zone(request.args.get("timezone"), self._default_zone(first))
        try:
            lo, hi = cal.parse_window(request.args.get("start", ""), request.args.get("end", ""), tz)
        except ValueError:
            return _error(ApiError("invalid", "start and end must be ISO dates 1 to 62 days apart", "start", status=422))
        f = cal.Filters(
            location=request.args.get("location") or None, staff=request.args.get("staff") or None,
            service=request.args.get("service") or None, status=request.args.get("status") or None,
            source=request.args.get("source") or None, only_staff_id=viewer_staff_id(),
        )
        return jsonify(cal.events(db.session, lo, hi, tz, f, request.args.get("colour", "service")))

    @expose("/appointment/<appointment_id>")
    @has_access_api
    @permission_name("list")
    def appointment(self, appointment_id):
        try:
            appt = cal.load(db.session, appointment_id, viewer_staff_id())
        except ApiError as exc:
            return _error(exc)
        tz = _zone(request.args.get("timezone"), appt.timezone or g.tenant.timezone)
        return jsonify(cal.details(db.session, appt, tz))

    @expose("/appointment/<appointment_id>/slots")
    @has_access_api
    @permission_name("list")
    def slots(self, appointment_id):
        """Free starts of the appointment's service and staff member for a week: the reschedule dialog offers only these."""
        try:
            appt = cal.load(db.session, appointment_id, viewer_staff_id())
            tz = _zone(request.args.get("timezone"), appt.timezone or g.tenant.timezone)
            first = dt.date.fromisoformat(request.args.get("date") or appt.start_at.astimezone(ZoneInfo(tz)).date().isoformat())
            query = AvailabilityQuery(service=appt.service.key, date_from=first, date_to=first + dt.timedelta(days=6), timezone=tz,
                                      staff=appt.staff.key, exclude_refs=frozenset({str(appt.id)}))
            found, _group = query_slots(db.session, query, _now())
        except ValueError:
            return _error(ApiError("invalid", "date must be YYYY-MM-DD", "date", status=422))
        except ApiError as exc:
            return _error(exc)
        zone = ZoneInfo(tz)
        return jsonify({"timezone": tz, "staff": appt.staff.key,
                        "slots": [s.start.astimezone(zone).replace(tzinfo=None).isoformat(timespec="minutes") for s in found]})

    @expose("/appointment/<appointment_id>/move", methods=["POST"])
    @has_access_api
    @permission_name("act")
    def move(self, appointment_id):
        """Reschedule to `start` (wall time in `timezone`); 409 with the engine's reasons when refused."""
        body = request.get_json(silent=True) or request.form
        only = viewer_staff_id()
        try:
            appt = cal.load(db.session, appointment_id, only)
            tz = _zone(body.get("timezone"), appt.timezone or g.tenant.timezone)
            start = _parse_start(body.get("start", ""), tz)
            staff_key = body.get("staff") or None
            if only is not None and staff_key not in (None, appt.staff.key):
                raise ApiError("not_allowed", "staff move only their own appointments", "staff", status=403)
        except ApiError as exc:
            return _error(exc)
        appt_id, service_key, target = appt.id, appt.service.key, staff_key or appt.staff.key

        def work():
            fresh = cal.load(db.session, str(appt_id), only)
            return booking.reschedule(db.session, g.tenant, actor(), fresh, start, _now(), staff_key=staff_key, enforce_policy=False)

        try:
            moved = run_unit(work, db.session, retry=True)
        except SlotUnavailable as exc:
            explained = explain_start(db.session, service_key, target, start, _now())
            codes = set(exc.extra.get("reasons") or ())
            reasons = [r for r in explained["reasons"] if not codes or r["code"] in codes] or explained["reasons"]
            message = "; ".join(r["message"] for r in reasons) or exc.message
            return jsonify({"error": {"code": "slot_unavailable", "message": message, "field": "start", "reasons": reasons}}), 409
        except ApiError as exc:
            return _error(exc)
        zone = ZoneInfo(tz)
        return jsonify({"id": str(moved.id), "start": moved.start_at.astimezone(zone).replace(tzinfo=None).isoformat(timespec="minutes"),
                        "staff": moved.staff.key, "status": moved.status})

    @expose("/appointment/<appointment_id>/act", methods=["POST"])
    @has_access_api
    @permission_name("act")
    def act(self, appointment_id):
        """`action`: confirm | completed | no_show | cancel (with `reason`) | note (with `note`)."""
        body = request.get_json(silent=True) or request.form
        action = body.get("action", "")
        only = viewer_staff_id()
        if action not in (*ACTIONS, "cancel", "note"):
            return _error(ApiError("invalid", "action is confirm, completed, no_show, cancel or note", "action", status=422))

        def work():
            appt = cal.load(db.session, appointment_id, only)
            if action == "cancel":
                return booking.cancel(db.session, g.tenant, actor(), appt, _now(), reason=(body.get("reason") or None), enforce_policy=False)
            if action == "note":
                return booking.add_note(db.session, g.tenant, actor(), appt, body.get("note", ""))
            return booking.set_status(db.session, g.tenant, actor(), appt, ACTIONS[action], body.get("reason") or None)

        try:
            appt = run_unit(work, db.session, retry=True)
        except ApiError as exc:
            return _error(exc)
        return jsonify({"id": str(appt.id), "status": appt.status, "notes": appt.notes})


def _parse_start(value: str, tz: str) -> dt.datetime:
    try:
        parsed = dt.datetime.fromisoformat((value or "").strip().replace("Z", "+00:00"))
    except ValueError:
        raise ApiError("invalid", "start must be an ISO date and time", "start", status=422) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=ZoneInfo(tz))
    return parsed.astimezone(UTC)


# Staff see (and move) their own appointments here; Auditors read only (no can_act).
security.STAFF_VIEWS.add("Calendar")

VIEWS = [
    (CalendarView, "Calendar", "Bookings", security.TENANT_VIEWS, {"icon": "fa-calendar-o"}),
]
