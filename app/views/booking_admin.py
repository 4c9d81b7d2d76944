"""Appointments in the admin: list/filter, cancel, no-show, complete; staff's "my day"."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from flask import flash, g, redirect, url_for
from app.views.base import ModelView
from flask_appbuilder.actions import action
from flask_appbuilder.models.filters import BaseFilter
from flask_appbuilder.models.sqla.filters import FilterEqualFunction
from app.views.base import Interface, local_formatter

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
    label_columns = {"start_at": "Start", "end_at": "End", "answers": "Booking form answers", "created_at": "Booked at",
                     "updated_at": "Last change"}
    formatters_columns = {"answers": answers_text, "start_at": local_formatter(), "end_at": local_formatter(),
                          "created_at": local_formatter(), "updated_at": local_formatter()}

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


def shown_day() -> dt.date:
    """The local day "my day" shows: ?day=YYYY-MM-DD, else today in the business's zone."""
    from flask import request

    from app.views.base import tenant_zone

    try:
        return dt.date.fromisoformat(request.args.get("day", ""))
    except ValueError:
        return dt.datetime.now(ZoneInfo(tenant_zone())).date()


def _day_range() -> tuple[dt.datetime, dt.datetime] | None:
    """The UTC range of the day the list shows; None on the other pages (an own appointment of
    another day opens from a link, and its show page is not limited to today)."""
    from flask import request

    from app.views.base import tenant_zone

    if not (request.endpoint or "").endswith(".list"):
        return None

    zone = ZoneInfo(tenant_zone())
    day = shown_day()
    start = dt.datetime.combine(day, dt.time(0), tzinfo=zone)
    return start.astimezone(UTC), (start + dt.timedelta(days=1)).astimezone(UTC)


class FilterLocalDay(BaseFilter):
    """Rows starting within the local day the page shows (a function gives the UTC range)."""

    name = "On the day shown"
    arg_name = "lday"

    def apply(self, query, func):
        shown = func()
        if shown is None:
            return query
        start, end = shown
        column = getattr(self.model, self.column_name)
        return query.filter(column >= start, column < end)


class MyDayView(ModelView):
    """A staff member's own appointments (their calendar); nobody else's rows reach the query."""

    datamodel = Interface(m.Appointment)
    class_permission_name = "MyDay"
    route_base = "/myday"
    base_permissions = ["can_list", "can_show"]
    list_columns = ["start_at", "end_at", "service", "location", "customer", "status", "seats"]
    show_columns = ["start_at", "end_at", "service", "location", "customer", "status", "seats", "notes", "answers"]
    label_columns = {"answers": "Booking form answers", "start_at": "Start", "end_at": "End"}
    formatters_columns = {"answers": answers_text, "start_at": local_formatter(), "end_at": local_formatter()}
    # No relation filters: their choice lists would name every customer of the business.
    search_columns = ["start_at", "status"]
    base_filters = [["staff_id", FilterEqualFunction, lambda: security.current_staff_id() or -1],
                    ["start_at", FilterLocalDay, _day_range]]
    base_order = ("start_at", "asc")
    list_template = "admin/my_day.html"
    list_title = "My day"

    def render_template(self, template, **kwargs):
        day = shown_day()
        kwargs.update(day=day, prev_day=day - dt.timedelta(days=1), next_day=day + dt.timedelta(days=1))
        return super().render_template(template, **kwargs)


VIEWS = [
    (AppointmentView, "Appointments", "Bookings", security.TENANT_VIEWS, {"icon": "fa-calendar"}),
    (MyDayView, "My day", "Me", security.STAFF_VIEWS, {"icon": "fa-calendar-check-o"}),
]
