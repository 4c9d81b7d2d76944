"""Appointments in the admin: list/filter, cancel, no-show, complete; staff's "my day"."""

from __future__ import annotations

import datetime as dt

from flask import flash, g, redirect, url_for
from flask_appbuilder import ModelView
from flask_appbuilder.actions import action
from flask_appbuilder.models.sqla.filters import FilterEqualFunction
from app.views.base import Interface

from app import security
from app.errors import ApiError
from app.extensions import db
from app.models import tenant as m
from app.services import booking
from app.uow import run_unit

UTC = dt.timezone.utc


def answers_text(answers) -> str:
    """Booking-form answers as plain "question: answer" lines (escaped by the template like any text)."""
    if not answers:
        return ""
    parts = []
    for key, value in answers.items():
        if isinstance(value, list):
            value = ", ".join(map(str, value))
        elif isinstance(value, bool):
            value = "yes" if value else "no"
        parts.append(f"{key}: {value}")
    return "; ".join(parts)


def _actor() -> str:
    user = g.get("user")
    return f"admin:{user.username}" if user is not None and getattr(user, "username", None) else "admin"


class AppointmentView(ModelView):
    datamodel = Interface(m.Appointment)
    class_permission_name = "Appointments"
    base_permissions = ["can_list", "can_show"]
    list_columns = ["start_at", "end_at", "service", "staff", "location", "customer", "status", "seats", "source"]
    show_columns = [
        "start_at", "end_at", "service", "staff", "location", "customer", "status", "seats", "source", "price",
        "currency", "notes", "answers", "cancel_reason", "series", "created_at", "updated_at",
    ]
    search_columns = ["start_at", "service", "staff", "location", "customer", "status", "source"]
    base_order = ("start_at", "desc")
    label_columns = {"start_at": "Start (UTC)", "end_at": "End (UTC)", "answers": "Booking form answers"}
    formatters_columns = {"answers": answers_text}

    def _apply(self, items, fn, done: str):
        items = items if isinstance(items, list) else [items]
        now = dt.datetime.now(UTC)
        try:
            run_unit(lambda: [fn(item, now) for item in items])
            flash(f"{len(items)} appointment(s) {done}.", "success")
        except ApiError as exc:
            flash(exc.message, "danger")
        return redirect(self.get_redirect())

    @action("cancel", "Cancel", "Cancel the selected appointments?", "fa-times")
    def cancel(self, items):
        return self._apply(
            items, lambda a, now: booking.cancel(db.session, g.tenant, _actor(), a, now, reason="cancelled by the business", enforce_policy=False), "cancelled"
        )

    @action("no_show", "No-show", "Mark the selected appointments as no-show?", "fa-user-times")
    def no_show(self, items):
        return self._apply(items, lambda a, now: booking.set_status(db.session, g.tenant, _actor(), a, m.STATUS_NO_SHOW), "marked no-show")

    @action("complete", "Completed", "Mark the selected appointments as completed?", "fa-check")
    def complete(self, items):
        return self._apply(items, lambda a, now: booking.set_status(db.session, g.tenant, _actor(), a, m.STATUS_COMPLETED), "completed")


    @action("reschedule", "Reschedule", None, "fa-clock-o", multiple=False)
    def reschedule(self, item):
        return redirect(url_for("BookingDeskView.reschedule", appointment_id=str(item.id)))


class MyDayView(ModelView):
    """A staff member's own appointments (their calendar); nobody else's rows reach the query."""

    datamodel = Interface(m.Appointment)
    class_permission_name = "MyDay"
    route_base = "/myday"
    base_permissions = ["can_list", "can_show"]
    list_columns = ["start_at", "end_at", "service", "location", "customer", "status", "seats"]
    show_columns = ["start_at", "end_at", "service", "location", "customer", "status", "seats", "notes", "answers"]
    label_columns = {"answers": "Booking form answers"}
    formatters_columns = {"answers": answers_text}
    # No relation filters: their choice lists would name every customer of the business.
    search_columns = ["start_at", "status"]
    base_filters = [["staff_id", FilterEqualFunction, lambda: security.current_staff_id() or -1]]
    base_order = ("start_at", "asc")


VIEWS = [
    (AppointmentView, "Appointments", "Bookings", security.TENANT_VIEWS, {"icon": "fa-calendar"}),
    (MyDayView, "My day", "Me", security.STAFF_VIEWS, {"icon": "fa-calendar-check-o"}),
]
