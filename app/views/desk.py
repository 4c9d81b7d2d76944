"""The booking desk: see a week of slots, book for a customer, reschedule, explain a start.

Every action calls the same service functions as the public API; the desk only
adds the admin's "override" (book outside hours or notice, never overlapping),
which needs the explicit `can_override` permission.
"""

from __future__ import annotations

import datetime as dt
import uuid
from zoneinfo import ZoneInfo

from flask import flash, g, redirect, request, url_for
from flask_appbuilder import BaseView, expose, has_access
from flask_appbuilder.security.decorators import permission_name
from sqlalchemy import select

from app import security
from app.errors import ApiError
from app.extensions import db
from app.models import tenant as m
from app.services import booking
from app.services.availability import AvailabilityQuery, query_slots
from app.services.explaining import explain_start

UTC = dt.timezone.utc


def _now() -> dt.datetime:
    return dt.datetime.now(UTC)


def parse_local(value: str, tz: str) -> dt.datetime:
    """A `datetime-local` form value in `tz` → an aware UTC instant; ValueError on bad input."""
    naive = dt.datetime.fromisoformat((value or "").strip())
    if naive.tzinfo is not None:
        return naive.astimezone(UTC)
    return naive.replace(tzinfo=ZoneInfo(tz)).astimezone(UTC)


class BookingDeskView(BaseView):
    route_base = "/desk"
    class_permission_name = "BookingDesk"
    default_view = "week"

    def _catalog(self):
        services = list(db.session.scalars(select(m.Service).where(m.Service.active.is_(True)).order_by(m.Service.name)))
        locations = list(db.session.scalars(select(m.Location).where(m.Location.active.is_(True)).order_by(m.Location.name)))
        staff = list(db.session.scalars(select(m.Staff).where(m.Staff.active.is_(True)).order_by(m.Staff.name)))
        return services, locations, staff

    def _may_override(self) -> bool:
        return self.appbuilder.sm.has_access("can_override", self.class_permission_name)

    @expose("/")
    @has_access
    def week(self):
        tenant = g.get("tenant")
        if tenant is None:
            flash("Choose a client business first.", "warning")
            return redirect(url_for("TenantSwitchView.choose"))
        services, locations, staff = self._catalog()
        tz = request.args.get("timezone") or tenant.timezone
        service = request.args.get("service") or (services[0].key if services else None)
        try:
            week_start = dt.date.fromisoformat(request.args.get("week") or dt.date.today().isoformat())
            ZoneInfo(tz)
        except (ValueError, KeyError):
            flash("Invalid week or time zone.", "danger")
            return redirect(url_for("BookingDeskView.week"))
        week_start -= dt.timedelta(days=week_start.weekday())
        days: dict[dt.date, list] = {week_start + dt.timedelta(days=i): [] for i in range(7)}
        error = None
        if service:
            query = AvailabilityQuery(
                service=service,
                date_from=week_start,
                date_to=week_start + dt.timedelta(days=6),
                timezone=tz,
                location=request.args.get("location") or None,
                staff=request.args.get("staff") or None,
            )
            try:
                slots, _group = query_slots(db.session, query, _now())
            except ApiError as exc:
                slots, error = [], exc.message
            zone = ZoneInfo(tz)
            for slot in slots:
                local = slot.start.astimezone(zone)
                days.setdefault(local.date(), []).append((local, slot))
        return self.render_template(
            "desk_week.html",
            services=services, locations=locations, staff=staff, days=days, tz=tz, service=service,
            location=request.args.get("location", ""), staff_key=request.args.get("staff", ""),
            week_start=week_start, prev_week=week_start - dt.timedelta(days=7), next_week=week_start + dt.timedelta(days=7),
            error=error, iso=booking.iso, names={p.key: p.name for p in staff},
        )

    @expose("/book", methods=["GET", "POST"])
    @has_access
    def book(self):
        tenant = g.get("tenant")
        if tenant is None:
            return redirect(url_for("TenantSwitchView.choose"))
        services, locations, staff = self._catalog()
        form = request.form if request.method == "POST" else request.args
        tz = form.get("timezone") or tenant.timezone
        values = {k: form.get(k, "") for k in ("service", "staff", "location", "start", "name", "email", "phone", "notes", "seats",
                                               "override", "record_past")}
        may_override = self._may_override()
        if request.method == "POST":
            record = bool(form.get("record_past"))
            # Recording what already happened bypasses hours and notice by nature (never overlaps).
            override = (bool(form.get("override")) and may_override) or record
            if form.get("override") and not may_override:
                flash("You do not have the override permission.", "danger")
            try:
                start = parse_local(values["start"], tz)
                seats = int(values["seats"] or 1)
                req = booking.BookingRequest(
                    service=values["service"],
                    start=start,
                    customer=booking.CustomerInput(values["name"], values["email"], values["phone"] or None),
                    location=values["location"] or None,
                    staff=values["staff"] or None,
                    seats=seats,
                    timezone=tz,
                    notes=values["notes"] or None,
                    source=booking.RECORD_SOURCE if record else "admin",
                    status=m.STATUS_COMPLETED if record else m.STATUS_CONFIRMED,
                    override_rules=override,
                )
                result = booking.with_deadlock_retry(
                    lambda: booking.book(db.session, tenant, f"admin:{g.user.username}", req, _now()), db.session
                )
            except ValueError:
                flash("Start must be a date and time (YYYY-MM-DD HH:MM); seats a whole number.", "danger")
            except ApiError as exc:
                reasons = ", ".join(exc.extra.get("reasons", [])) if exc.extra.get("reasons") else ""
                flash(f"{exc.message}{' (' + reasons + ')' if reasons else ''}" + (f" [{exc.field}]" if exc.field else ""), "danger")
            else:
                appt = result.appointments[0]
                flash(f"Booked {appt.service.name} with {appt.staff.name} at {values['start']} ({tz}).", "success")
                return redirect(url_for("AppointmentView.show", pk=str(appt.id)))
        return self.render_template(
            "desk_book.html", services=services, locations=locations, staff=staff, values=values, tz=tz, may_override=may_override
        )

    @expose("/reschedule/<appointment_id>", methods=["GET", "POST"])
    @has_access
    def reschedule(self, appointment_id):
        tenant = g.get("tenant")
        try:
            appt = db.session.get(m.Appointment, uuid.UUID(appointment_id))
        except ValueError:
            appt = None
        if tenant is None or appt is None:
            return self.render_template("desk_missing.html"), 404
        tz = appt.timezone or tenant.timezone
        _services, _locations, staff = self._catalog()
        may_override = self._may_override()
        if request.method == "POST":
            try:
                start = parse_local(request.form.get("start", ""), tz)
                booking.with_deadlock_retry(
                    lambda: booking.reschedule(
                        db.session, tenant, f"admin:{g.user.username}", appt, start, _now(),
                        staff_key=request.form.get("staff") or None, enforce_policy=False,
                        override_rules=bool(request.form.get("override")) and may_override,
                    ),
                    db.session,
                )
            except ValueError:
                flash("Start must be a date and time (YYYY-MM-DD HH:MM).", "danger")
            except ApiError as exc:
                flash(exc.message, "danger")
            else:
                flash("Appointment moved.", "success")
                return redirect(url_for("AppointmentView.show", pk=str(appt.id)))
        local = appt.start_at.astimezone(ZoneInfo(tz)).strftime("%Y-%m-%dT%H:%M")
        return self.render_template("desk_reschedule.html", appt=appt, tz=tz, local=local, staff=staff, may_override=may_override)

    @expose("/explain")
    @has_access
    def explain(self):
        tenant = g.get("tenant")
        if tenant is None:
            return redirect(url_for("TenantSwitchView.choose"))
        services, _locations, staff = self._catalog()
        tz = request.args.get("timezone") or tenant.timezone
        result = error = None
        if request.args.get("start"):
            try:
                start = parse_local(request.args["start"], tz)
                result = explain_start(db.session, request.args.get("service", ""), request.args.get("staff", ""), start, _now())
            except ValueError:
                error = "Start must be a date and time (YYYY-MM-DD HH:MM)."
            except ApiError as exc:
                error = exc.message
        return self.render_template(
            "desk_explain.html", services=services, staff=staff, args=request.args, tz=tz, result=result, error=error
        )

    @expose("/override")
    @has_access
    @permission_name("override")
    def override_permission(self):
        """Holds the `can_override` permission (book outside hours/notice); shows what it allows."""
        flash("You may book outside working hours and notice rules (never overlapping).", "info")
        return redirect(url_for("BookingDeskView.book"))


VIEWS = [
    (BookingDeskView, "Booking desk", "Bookings", security.TENANT_VIEWS, {"icon": "fa-calendar-plus-o"}),
]
