"""The week editors: one screen per staff member (intervals per day, the day's location, breaks,
"copy Monday to weekdays", a preview, days off and time off on a small calendar) and one per location
(opening intervals per day, closed days on the calendar). Both run the same form round (`_week_round`)
over app.services.week_hours."""

from __future__ import annotations

import calendar
import datetime as dt
from zoneinfo import ZoneInfo

from flask import flash, g, redirect, request, url_for
from flask_appbuilder import BaseView, expose, has_access
from sqlalchemy import select

from app import security
from app.extensions import db
from app.models import tenant as m
from app.services import local_time, week_hours
from app.services.local_time import SpanError
from app.uow import unit_of_work
from app.views.base import tenant_zone


def _plans_from_form(form) -> list[week_hours.DayPlan]:
    plans = []
    for day in range(7):
        location = form.get(f"location-{day}") or None
        plans.append(week_hours.DayPlan(
            day, int(location) if location and location.isdigit() else None,
            week_hours.parse_intervals(form.get(f"hours-{day}", ""), f"hours-{day}"),
            week_hours.parse_intervals(form.get(f"breaks-{day}", ""), f"breaks-{day}"),
        ))
    return plans


def _raw(plans) -> dict[str, str]:
    values = {}
    for p in plans:
        values[f"hours-{p.weekday}"] = week_hours.intervals_text(p.hours)
        values[f"breaks-{p.weekday}"] = week_hours.intervals_text(p.breaks)
        values[f"location-{p.weekday}"] = str(p.location_id or "")
    return values


def _months(first: dt.date, count: int = 2):
    """[(title, weeks)] where weeks are lists of 7 dates or None (Monday first)."""
    months, year, month = [], first.year, first.month
    for _ in range(count):
        weeks = [[dt.date(year, month, d) if d else None for d in week]
                 for week in calendar.Calendar(0).monthdayscalendar(year, month)]
        months.append((dt.date(year, month, 1).strftime("%B %Y"), weeks))
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return months


def _week_round(plans, save, saved_message: str, done_url: str):
    """One request of a week editor: GET shows the stored week; POST parses it, then copies Monday to
    the weekdays, previews, or saves through `save(plans)` in one unit of work.
    Answers (values, plans, errors, status, redirect or None)."""
    values, errors, status = _raw(plans), {}, 200
    if request.method != "POST":
        return values, plans, errors, status, None
    values = {k: request.form.get(k, "") for k in values}
    action = request.form.get("action", "save")
    try:
        plans = _plans_from_form(request.form)
        if action == "copy_monday":
            plans = week_hours.copy_day(plans, 0)
            values = _raw(plans)
        elif action == "save":
            with unit_of_work(db.session):
                save(plans)
            flash(saved_message, "success")
            return values, plans, errors, status, redirect(done_url)
    except SpanError as exc:
        errors[exc.field] = exc.message
        status = 422
    return values, plans, errors, status, None


def _month_window(zone: str):
    """(today, first day of the month shown, previous month, next month) from ?month=YYYY-MM."""
    today = dt.datetime.now(ZoneInfo(zone)).date()
    try:
        first = dt.date.fromisoformat((request.args.get("month") or "") + "-01")
    except ValueError:
        first = today.replace(day=1)
    prev_month = (first - dt.timedelta(days=1)).replace(day=1)
    next_month = (first + dt.timedelta(days=32)).replace(day=1)
    return today, first, prev_month.strftime("%Y-%m"), next_month.strftime("%Y-%m")


class WeekHoursView(BaseView):
    route_base = "/weekhours"
    class_permission_name = "WeekHours"
    default_view = "index"

    def _staff(self, staff_id: int) -> m.Staff | None:
        return db.session.get(m.Staff, staff_id)

    @expose("/")
    @has_access
    def index(self):
        if g.get("tenant") is None:
            return redirect(url_for("TenantSwitchView.choose"))
        staff = db.session.scalars(select(m.Staff).order_by(m.Staff.name)).all()
        weeks = {p.id: week_hours.read_week(db.session, p) for p in staff}
        return self.render_template("admin/week_index.html", staff=staff, weeks=weeks, text=week_hours.intervals_text,
                                    title="Weekly hours")

    @expose("/<int:staff_id>", methods=["GET", "POST"])
    @has_access
    def edit(self, staff_id: int):
        staff = self._staff(staff_id) if g.get("tenant") is not None else None
        if staff is None:
            return self.render_template("desk_missing.html"), 404
        locations = staff.locations or db.session.scalars(select(m.Location).order_by(m.Location.name)).all()
        default_location = locations[0].id if len(locations) == 1 else None
        values, plans, errors, status, done = _week_round(
            week_hours.read_week(db.session, staff),
            lambda plans: week_hours.replace_week(db.session, staff, plans, default_location),
            f"The week of {staff.name} is saved.", url_for("WeekHoursView.edit", staff_id=staff.id))
        if done is not None:
            return done
        zone = local_time.staff_zone(staff, tenant_zone())
        today, first, prev_month, next_month = _month_window(zone)
        marks = week_hours.month_marks(db.session, staff, first, 62, zone)
        overrides = db.session.scalars(select(m.StaffOverride).where(
            m.StaffOverride.staff_id == staff.id, m.StaffOverride.date >= today).order_by(m.StaffOverride.date)).all()
        time_off = db.session.scalars(select(m.TimeOff).where(
            m.TimeOff.staff_id == staff.id, m.TimeOff.end_at >= dt.datetime.now(dt.timezone.utc)).order_by(m.TimeOff.start_at)).all()
        return self.render_template(
            "admin/week_edit.html", staff=staff, locations=locations, values=values, errors=errors,
            plans=plans, spans=week_hours.working_spans, hhmm=week_hours.hhmm, days=week_hours.DAY_NAMES,
            months=_months(first), marks=marks, prev_month=prev_month, next_month=next_month, today=today, zone=zone, overrides=overrides, time_off=time_off,
            label=lambda v: local_time.label(v, zone, with_zone=False), title=f"Weekly hours: {staff.name}",
        ), status

    @expose("/<int:staff_id>/dayoff", methods=["POST"])
    @has_access
    def day_off(self, staff_id: int):
        staff = self._staff(staff_id) if g.get("tenant") is not None else None
        if staff is None:
            return self.render_template("desk_missing.html"), 404
        try:
            day = dt.date.fromisoformat(request.form.get("date", ""))
            with unit_of_work(db.session):
                week_hours.add_day_off(db.session, staff, day, [loc.id for loc in staff.locations])
            flash(f"{day.strftime('%a %d %b %Y')} is a day off for {staff.name}.", "success")
            return redirect(url_for("WeekHoursView.edit", staff_id=staff.id, month=day.strftime("%Y-%m")))
        except ValueError as exc:
            flash(getattr(exc, "message", None) or "Choose a date.", "danger")
        return redirect(url_for("WeekHoursView.edit", staff_id=staff.id))


class LocationWeekView(BaseView):
    """A location's opening hours for the whole week in one save, its closed days on a calendar."""

    route_base = "/locationweek"
    class_permission_name = "LocationWeek"
    default_view = "index"

    def _location(self, location_id: int) -> m.Location | None:
        return db.session.get(m.Location, location_id) if g.get("tenant") is not None else None

    @expose("/")
    @has_access
    def index(self):
        if g.get("tenant") is None:
            return redirect(url_for("TenantSwitchView.choose"))
        locations = db.session.scalars(select(m.Location).order_by(m.Location.name)).all()
        weeks = {loc.id: week_hours.read_location_week(db.session, loc) for loc in locations}
        return self.render_template("admin/location_week_index.html", locations=locations, weeks=weeks,
                                    text=week_hours.intervals_text, title="Opening hours")

    @expose("/<int:location_id>", methods=["GET", "POST"])
    @has_access
    def edit(self, location_id: int):
        location = self._location(location_id)
        if location is None:
            return self.render_template("desk_missing.html"), 404
        values, plans, errors, status, done = _week_round(
            week_hours.read_location_week(db.session, location),
            lambda plans: week_hours.replace_location_week(db.session, location, plans),
            f"The opening hours of {location.name} are saved.", url_for("LocationWeekView.edit", location_id=location.id))
        if done is not None:
            return done
        today, first, prev_month, next_month = _month_window(location.timezone or tenant_zone())
        closures = db.session.scalars(select(m.LocationClosure).where(
            m.LocationClosure.location_id == location.id, m.LocationClosure.date >= today).order_by(m.LocationClosure.date)).all()
        return self.render_template(
            "admin/location_week.html", location=location, values=values, errors=errors, plans=plans,
            spans=week_hours.working_spans, hhmm=week_hours.hhmm, days=week_hours.DAY_NAMES, months=_months(first),
            marks=week_hours.closure_marks(db.session, location, first, 62), prev_month=prev_month,
            next_month=next_month, today=today, closures=closures, title=f"Opening hours: {location.name}",
        ), status

    @expose("/<int:location_id>/closed", methods=["POST"])
    @has_access
    def closed_day(self, location_id: int):
        location = self._location(location_id)
        if location is None:
            return self.render_template("desk_missing.html"), 404
        try:
            day = dt.date.fromisoformat(request.form.get("date", ""))
        except ValueError:
            flash("Choose a date.", "danger")
            return redirect(url_for("LocationWeekView.edit", location_id=location.id))
        with unit_of_work(db.session):
            week_hours.add_closed_day(db.session, location, day, (request.form.get("reason") or "").strip()[:200])
        flash(f"{location.name} is closed on {day.strftime('%a %d %b %Y')}.", "success")
        return redirect(url_for("LocationWeekView.edit", location_id=location.id, month=day.strftime("%Y-%m")))


VIEWS = [
    (WeekHoursView, "Weekly hours", "Team", security.TENANT_VIEWS, {"icon": "fa-calendar"}),
    (LocationWeekView, "Opening hours", "Business", security.TENANT_VIEWS, {"icon": "fa-clock-o"}),
]
