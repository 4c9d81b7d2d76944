"""CRUD for a tenant's business data: locations, services, categories, staff and their rules, customers.

Every view here reads and writes through the request's tenant-routed session, so
rows of other tenants are not even visible to the query; an id from another
tenant is simply not found (404).
"""

from __future__ import annotations

import datetime as dt

from flask import g
from app.views.base import ModelView
from flask_appbuilder.models.sqla.filters import FilterEqualFunction
from app.views.base import FormModelView, Interface, local_formatter, tenant_zone, time_zone_field, titles
from wtforms import SelectField, StringField, ValidationError
from wtforms.fields import DateField, TimeField
from wtforms.validators import DataRequired, Optional

from app import security
from app.extensions import db
from app.models import tenant as m
from app.services import catalogue_rules as rules
from app.services import events, local_time
from app.services.setup_io import hhmm_to_min, min_to_hhmm

MEETING_CHOICES = [("none", "None (in person)"), ("zoom", "Zoom"), ("teams", "Microsoft Teams"), ("google_meet", "Google Meet")]
WEEKDAY_CHOICES = [(i, d.capitalize()) for i, d in enumerate(("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"))]


def rule(check, required: bool = False):
    """A WTForms validator running one catalogue rule (app.services.catalogue_rules): its message is the field error."""

    def validate(form, field):
        if field.data in (None, "") and not required:
            return
        try:
            check(field.data, field.name)
        except rules.RuleError as exc:
            raise ValidationError(exc.message)

    return validate


class RuleInterface(Interface):
    """The admin's model interface for catalogue rows: unique columns are checked by `unique_key` below
    (the database rule's message), not by FAB's own "Already exists." validator as well."""

    def is_unique(self, col_name: str) -> bool:
        return False


def unique_key(model, column: str = "key"):
    """A WTForms validator: `column` is not used by another row of this business (message: the uq_ constraint's)."""
    _code, _field, message = rules.constraint_rule(f"uq_{model.__tablename__}_{column}")

    def validate(form, field):
        from sqlalchemy import select

        from app.extensions import db

        if not field.data:
            return
        other = db.session.scalar(select(model.id).where(getattr(model, column) == field.data))
        if other is not None and other != getattr(form, "_id", None):
            raise ValidationError(message)

    return validate


KEY_VALIDATOR = rule(rules.check_key, required=True)


class DerivedKeyMixin:
    """A catalogue row's key may be left empty: it is derived from the name (made unique in the
    business with -2, -3 ...), like a business's short name. The rule is shown under the field."""

    description_columns = {"key": rules.KEY_HELP}

    def _derive_key(self, item) -> None:
        if item.key:
            return
        from sqlalchemy import select

        model = type(item)
        taken = lambda key: db.session.scalar(select(model.id).where(model.key == key, model.id != (item.id or -1))) is not None
        item.key = rules.free_key(item.name or "", taken, fallback=model.__tablename__)

    def pre_add(self, item):
        self._derive_key(item)
        super().pre_add(item)

    def pre_update(self, item):
        self._derive_key(item)
        super().pre_update(item)


def key_validators(model) -> list:
    return [Optional(), rule(rules.check_key), unique_key(model)]
NAME_VALIDATOR = rule(rules.check_name, required=True)


class HHMMField(StringField):
    """A wall-clock time typed as HH:MM (24:00 allowed as an end), stored as minutes."""

    def _value(self):
        if isinstance(self.data, int):
            return min_to_hhmm(self.data)
        return self.data or ""

    def process_formdata(self, valuelist):
        if not valuelist:
            return
        raw = (valuelist[0] or "").strip()
        try:
            hours, minutes = raw.split(":")
            value = int(hours) * 60 + int(minutes)
            if not (0 <= int(minutes) < 60 and 0 <= value <= 1440):
                raise ValueError
        except ValueError:
            self.data = None
            raise ValueError("use HH:MM between 00:00 and 24:00")
        self.data = value


def weekday_field() -> SelectField:
    return SelectField("Weekday", choices=WEEKDAY_CHOICES, coerce=int)


def hhmm_widget_args() -> dict:
    return {"render_kw": {"placeholder": "HH:MM", "inputmode": "numeric", "pattern": "([01][0-9]|2[0-3]):[0-5][0-9]|24:00"}}


def _span_validator(form, field):
    start = form.start_min.data
    if isinstance(start, int) and isinstance(field.data, int):
        try:
            rules.check_span(start, field.data, field.name)
        except rules.RuleError as exc:
            raise ValidationError(exc.message)


class IntervalsField(StringField):
    """Date-override hours typed as "09:00-12:00, 13:00-17:00"; empty means a day off."""

    def _value(self):
        if isinstance(self.data, list):
            return m.intervals_to_text(self.data)
        return self.data or ""

    def process_formdata(self, valuelist):
        raw = (valuelist[0] if valuelist else "").strip()
        spans = []
        for part in filter(None, (p.strip() for p in raw.split(","))):
            try:
                start, end = part.split("-")
                spans.append([hhmm_to_min(start.strip()), hhmm_to_min(end.strip())])
            except ValueError:
                self.data = []
                raise ValueError(f"{part!r}: use HH:MM-HH:MM")
            if not (0 <= spans[-1][0] < spans[-1][1] <= 1440):
                raise ValueError(f"{part!r}: end must be after start, within 00:00-24:00")
        self.data = spans


class TenantModelView(FormModelView):
    """Base for tenant views (routing is done per request in app.security)."""

    page_size = 25


def weekly_span_form(start_label: str, end_label: str) -> dict:
    """Form fields of a weekly wall-clock row: weekday choice plus HH:MM start and end."""
    return {
        "weekday": weekday_field(),
        "start_min": HHMMField(start_label, validators=[DataRequired()], **hhmm_widget_args()),
        "end_min": HHMMField(end_label, validators=[DataRequired(), _span_validator], **hhmm_widget_args()),
    }


class StaffWeeklyView(TenantModelView):
    """Staff hours and breaks: the same columns and form, different tables."""

    list_columns = ["staff", "location", "weekday_name", "start", "end"]
    add_columns = edit_columns = ["staff", "location", "weekday", "start_min", "end_min"]
    search_columns = ["staff", "location", "weekday"]
    label_columns = {"start_min": "From", "end_min": "Until", "start": "From", "end": "Until", "weekday_name": "Weekday"}
    add_form_extra_fields = edit_form_extra_fields = weekly_span_form("From", "Until")


class LocationHoursView(TenantModelView):
    datamodel = RuleInterface(m.LocationHours)
    class_permission_name = "LocationHours"
    list_columns = ["location", "weekday_name", "start", "end"]
    add_columns = edit_columns = ["location", "weekday", "start_min", "end_min"]
    label_columns = {"weekday_name": "Weekday", "start_min": "Opens", "end_min": "Closes", "start": "Opens", "end": "Closes"}
    add_form_extra_fields = edit_form_extra_fields = weekly_span_form("Opens", "Closes")


class LocationView(DerivedKeyMixin, TenantModelView):
    locals().update(titles("location", "Locations"))
    datamodel = RuleInterface(m.Location, optional=("key",))
    class_permission_name = "Locations"
    list_columns = ["name", "key", "timezone", "address", "virtual", "active"]
    show_columns = ["name", "key", "timezone", "address", "phone", "latitude", "longitude", "virtual", "active", "hours", "closures"]
    add_columns = edit_columns = ["name", "key", "timezone", "address", "phone", "latitude", "longitude", "virtual", "active"]
    search_columns = ["name", "key", "address", "timezone", "active"]
    validators_columns = {"key": key_validators(m.Location), "name": [NAME_VALIDATOR]}
    add_form_extra_fields = edit_form_extra_fields = {"timezone": time_zone_field()}
    related_views = [LocationHoursView]


class LocationClosureView(TenantModelView):
    locals().update(titles("closure", "Closures"))
    datamodel = RuleInterface(m.LocationClosure)
    class_permission_name = "LocationClosures"
    list_columns = ["location", "date", "reason"]
    add_columns = edit_columns = ["location", "date", "reason"]
    search_columns = ["location", "date"]


class CategoryView(DerivedKeyMixin, TenantModelView):
    locals().update(titles("category", "Categories"))
    datamodel = RuleInterface(m.Category, optional=("key",))
    class_permission_name = "Categories"
    list_columns = ["name", "key", "position"]
    add_columns = edit_columns = ["name", "key", "position"]
    search_columns = ["name", "key"]
    validators_columns = {"key": key_validators(m.Category), "name": [NAME_VALIDATOR]}


class ServiceView(DerivedKeyMixin, TenantModelView):
    locals().update(titles("service", "Services"))
    datamodel = RuleInterface(m.Service, optional=("key",))
    class_permission_name = "Services"
    list_columns = ["name", "key", "category", "duration_min", "price", "capacity", "meeting", "active"]
    show_columns = [
        "name", "key", "description", "category", "duration_min", "price", "buffer_before_min", "buffer_after_min",
        "slot_interval_min", "min_notice_min", "max_advance_days", "capacity", "meeting", "all_locations", "locations",
        "cancel_window_min", "reschedule_window_min", "allow_recurring", "active",
    ]
    add_columns = edit_columns = show_columns
    search_columns = ["name", "key", "category", "meeting", "active", "capacity"]
    label_columns = {
        "duration_min": "Duration (min)", "buffer_before_min": "Buffer before (min)", "buffer_after_min": "Buffer after (min)",
        "slot_interval_min": "Slot interval (min, empty = duration)", "min_notice_min": "Minimum notice (min)",
        "max_advance_days": "Bookable up to (days ahead)", "cancel_window_min": "No online cancel later than (min before)",
        "reschedule_window_min": "No online reschedule later than (min before)", "all_locations": "Offered at every location",
    }
    validators_columns = {
        "key": key_validators(m.Service), "name": [NAME_VALIDATOR],
        # The meeting is a choice list (below); every other column runs its rule.
        **{f: [rule(check)] for f, check in rules.SERVICE_FIELDS.items() if f not in ("key", "name", "meeting")},
    }
    add_form_extra_fields = edit_form_extra_fields = {
        "meeting": SelectField("Online meeting", choices=MEETING_CHOICES, default="none"),
    }


class StaffHoursView(StaffWeeklyView):
    datamodel = RuleInterface(m.StaffHours)
    class_permission_name = "StaffHours"


class StaffBreakView(StaffWeeklyView):
    datamodel = RuleInterface(m.StaffBreak)
    class_permission_name = "StaffBreaks"


def time_off_form() -> dict:
    """Time off as local dates (and optional times) in the staff member's zone; saved as UTC."""
    return {
        "start_date": DateField("First day", validators=[DataRequired()]),
        "start_time": TimeField("From (empty: the whole day)", validators=[Optional()]),
        "end_date": DateField("Last day (empty: the same day)", validators=[Optional()]),
        "end_time": TimeField("Until (empty: the end of the day)", validators=[Optional()]),
    }


class TimeOffFormMixin:
    """Local date/time fields <-> start_at/end_at, in the zone of the staff member's location."""

    add_form_extra_fields = edit_form_extra_fields = time_off_form()
    formatters_columns = {"start_at": local_formatter(), "end_at": local_formatter()}
    label_columns = {"start_at": "From", "end_at": "Until"}
    description_columns = {"start_date": "Dates and times are local, in the staff member's location's time zone."}

    def _zone(self, item) -> str:
        staff = item.staff if getattr(item, "staff", None) is not None else (
            db.session.get(m.Staff, item.staff_id) if getattr(item, "staff_id", None) else None)
        return local_time.staff_zone(staff, tenant_zone())

    def _apply_span(self, item) -> None:
        item.start_at, item.end_at = local_time.local_span(
            item.start_date, item.start_time, item.end_date, item.end_time, self._zone(item))

    def pre_add(self, item):
        self._apply_span(item)

    def pre_update(self, item):
        self._apply_span(item)

    def prefill_form(self, form, pk):
        item = self.datamodel.get(pk)
        if item is not None:
            for name, value in local_time.split_local(item.start_at, item.end_at, self._zone(item)).items():
                form[name].data = value


class TimeOffView(TimeOffFormMixin, TenantModelView):
    locals().update(titles("time off", "Time off"))
    datamodel = RuleInterface(m.TimeOff)
    class_permission_name = "TimeOff"
    list_columns = ["staff", "start_at", "end_at", "reason"]
    show_columns = ["staff", "start_at", "end_at", "reason"]
    add_columns = edit_columns = ["staff", "start_date", "start_time", "end_date", "end_time", "reason"]
    search_columns = ["staff", "start_at", "reason"]


class StaffOverrideView(TenantModelView):
    locals().update(titles("date override", "Date overrides"))
    datamodel = RuleInterface(m.StaffOverride)
    class_permission_name = "StaffOverrides"
    list_columns = ["staff", "location", "date", "intervals_text"]
    add_columns = edit_columns = ["staff", "location", "date", "intervals"]
    label_columns = {"intervals": "Hours (e.g. 09:00-12:00, 13:00-17:00; empty = day off)", "intervals_text": "Hours"}
    add_form_extra_fields = edit_form_extra_fields = {
        "intervals": IntervalsField("Hours (e.g. 09:00-12:00, 13:00-17:00; empty = day off)")
    }
    search_columns = ["staff", "location", "date"]


class StaffView(DerivedKeyMixin, TenantModelView):
    locals().update(titles("staff member", "Staff"))
    datamodel = RuleInterface(m.Staff, optional=("key",))
    class_permission_name = "Staff"
    list_columns = ["name", "key", "email", "phone", "active"]
    show_columns = ["name", "key", "email", "phone", "bio", "photo_url", "active", "services", "locations"]
    add_columns = edit_columns = show_columns
    search_columns = ["name", "key", "email", "active", "services", "locations"]
    validators_columns = {"key": key_validators(m.Staff), "name": [NAME_VALIDATOR]}
    related_views = [StaffHoursView, StaffBreakView, StaffOverrideView, TimeOffView]


class CustomerInterface(RuleInterface):
    """Customer rows: each add, edit or delete also writes customer.created / .updated / .deleted to the
    outbox, in its transaction (a delete refused because the customer has appointments writes nothing)."""

    def add(self, item, commit: bool = True) -> None:
        self._write(lambda: events.record_customer_changes(self.session, g.tenant.slug, item))

    def edit(self, item, commit: bool = True) -> None:
        def work():
            events.record_customer_changes(self.session, g.tenant.slug, item)
            self.session.merge(item)

        self._write(work)

    def delete(self, item, commit: bool = True) -> None:
        self.delete_all([item])

    def delete_all(self, items) -> None:
        def work():
            for item in items:
                events.emit_customer_deleted(self.session, g.tenant.slug, item.id)
                self.session.delete(item)

        self._write(work)


class CustomerView(TenantModelView):
    locals().update(titles("customer", "Customers"))
    datamodel = CustomerInterface(m.Customer)
    class_permission_name = "Customers"
    list_columns = ["name", "email", "phone", "locale", "sms_opt_out", "created_at"]
    show_columns = ["name", "email", "phone", "locale", "timezone", "sms_opt_out", "marketing_opt_in", "created_at"]
    formatters_columns = {"created_at": local_formatter()}
    label_columns = {"created_at": "Created", "sms_opt_out": "No text messages", "locale": "Language"}
    add_columns = edit_columns = ["name", "email", "phone", "locale", "timezone", "sms_opt_out", "marketing_opt_in"]
    search_columns = ["name", "email", "phone"]
    add_form_extra_fields = edit_form_extra_fields = {
        "timezone": time_zone_field(required=False, description="Empty: times are shown in the location's zone.")}


# ---------------------------------------------------------------- staff's own data


class MyTimeOffView(TimeOffFormMixin, TenantModelView):
    """A staff member's own time off; the filter narrows every query to their staff id."""

    datamodel = RuleInterface(m.TimeOff)
    class_permission_name = "MyTimeOff"
    route_base = "/mytimeoff"
    list_columns = show_columns = ["start_at", "end_at", "reason"]
    search_columns = ["start_at", "reason"]
    add_columns = edit_columns = ["start_date", "start_time", "end_date", "end_time", "reason"]
    base_filters = [["staff_id", FilterEqualFunction, lambda: security.current_staff_id() or -1]]

    def pre_add(self, item):
        item.staff_id = security.current_staff_id()
        self._apply_span(item)


class MyHoursView(TenantModelView):
    datamodel = RuleInterface(m.StaffHours)
    class_permission_name = "MyHours"
    route_base = "/myhours"
    list_columns = ["location", "weekday_name", "start", "end"]
    search_columns = ["weekday"]
    base_permissions = ["can_list", "can_show"]
    base_filters = [["staff_id", FilterEqualFunction, lambda: security.current_staff_id() or -1]]


class ServiceReadView(TenantModelView):
    """Read-only service list for staff."""

    datamodel = RuleInterface(m.Service)
    class_permission_name = "ServiceCatalog"
    route_base = "/servicecatalog"
    list_columns = ["name", "category", "duration_min", "price", "capacity"]
    base_permissions = ["can_list", "can_show"]


VIEWS = [
    (LocationView, "Locations", "Business", security.TENANT_VIEWS, {"icon": "fa-map-marker"}),
    (LocationClosureView, "Closures", "Business", security.TENANT_VIEWS, {"icon": "fa-ban"}),
    (CategoryView, "Categories", "Business", security.TENANT_VIEWS, {"icon": "fa-tags"}),
    (ServiceView, "Services", "Business", security.TENANT_VIEWS, {"icon": "fa-briefcase"}),
    (StaffView, "Staff", "Team", security.TENANT_VIEWS, {"icon": "fa-users"}),
    (StaffOverrideView, "Date overrides", "Team", security.TENANT_VIEWS, {"icon": "fa-calendar-o"}),
    (TimeOffView, "Time off", "Team", security.TENANT_VIEWS, {"icon": "fa-plane"}),
    (CustomerView, "Customers", "Bookings", security.TENANT_VIEWS, {"icon": "fa-address-book"}),
    (MyTimeOffView, "My time off", "Me", security.STAFF_VIEWS, {"icon": "fa-plane"}),
    (MyHoursView, "My hours", "Me", security.STAFF_VIEWS, {"icon": "fa-clock-o"}),
    (ServiceReadView, "Service catalogue", "Me", security.STAFF_READ_VIEWS, {"icon": "fa-list"}),
]
# Single hour/break rows stay reachable (the staff page lists them); the menu offers the week editor.
NO_MENU = [(LocationHoursView, security.TENANT_VIEWS), (StaffHoursView, security.TENANT_VIEWS),
           (StaffBreakView, security.TENANT_VIEWS)]
