"""Shared pieces of the admin views: the model interface (writes through app.uow) and a ModelView
whose add/edit forms keep what was typed and show any refusal at its field."""

from __future__ import annotations

import datetime as dt
import logging
import re

from flask import abort, flash, g, request
from flask_appbuilder import ModelView as _FabModelView, expose
from flask_appbuilder.models.sqla.interface import SQLAInterface
from flask_appbuilder.urltools import get_filter_args, get_order_args, get_page_args, get_page_size_args
from sqlalchemy.exc import DBAPIError

from app.services import local_time
from app.uow import sqlstate, unit_of_work

log = logging.getLogger(__name__)

# (table, check name) -> (form field, message). Names follow NAMING_CONVENTION: ck_<table>_<name>.
CHECK_MESSAGES: dict[tuple[str, str], tuple[str, str]] = {
    ("service", "duration"): ("duration_min", "A duration is between 5 and 1440 minutes."),
    ("service", "buffers"): ("buffer_before_min", "Buffers cannot be negative."),
    ("service", "interval"): ("slot_interval_min", "At least 5 minutes, or empty to use the duration."),
    ("service", "capacity"): ("capacity", "At least 1 seat."),
    ("service", "window"): ("min_notice_min", "Notice cannot be negative, and a service is bookable at least 1 day ahead."),
    ("service", "meeting"): ("meeting", "Choose none, Zoom, Microsoft Teams or Google Meet."),
    ("time_off", "span"): ("end_date", "The end must be after the start."),
    ("staff_hours", "span"): ("end_min", "The end must be after the start, within 00:00–24:00."),
    ("staff_break", "span"): ("end_min", "The end must be after the start, within 00:00–24:00."),
    ("location_hours", "span"): ("end_min", "The end must be after the start, within 00:00–24:00."),
}


def tenant_zone() -> str:
    """The zone admin pages show times in: the current business's (UTC with none chosen)."""
    tenant = g.get("tenant")
    return tenant.timezone if tenant is not None and tenant.timezone else "UTC"


def local_formatter():
    """A list/show formatter: a stored UTC instant as local wall-clock time, labelled with the zone."""
    def fmt(value):
        return local_time.label(value, tenant_zone()) if isinstance(value, dt.datetime) else value
    return fmt


class FieldRefused(ValueError):
    """The database (or a rule) refused a value: shown at `field` of the form, the input kept."""

    def __init__(self, field: str | None, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


def refusal(exc: DBAPIError, table) -> FieldRefused:
    """A user-facing refusal for a database error on `table`: never the SQL, its parameters or a driver name."""
    diag = getattr(getattr(exc, "orig", None), "diag", None)
    name = getattr(diag, "constraint_name", None) or ""
    code = sqlstate(exc) or ""
    columns = [c.name for c in table.columns]
    if code == "23505":  # unique_violation: uq_<table>_<column>
        column = _column_in(name.removeprefix(f"uq_{table.name}_"), columns)
        return FieldRefused(column, "This is already used by another entry: choose another.")
    if code == "23514":  # check_violation: ck_<table>_<name>
        check = name.removeprefix(f"ck_{table.name}_")
        if (table.name, check) in CHECK_MESSAGES:
            return FieldRefused(*CHECK_MESSAGES[(table.name, check)])
        text = next((str(c.sqltext) for c in table.constraints if getattr(c, "name", None) == check and hasattr(c, "sqltext")), "")
        return FieldRefused(next((c for c in columns if re.search(rf"\b{c}\b", text)), None), "This value is not allowed.")
    if code == "23502":  # not_null_violation
        return FieldRefused(getattr(diag, "column_name", None), "This field is required.")
    if code == "23503":  # foreign_key_violation: fk_<table>_<column>_<other table>
        return FieldRefused(_column_in(name.removeprefix(f"fk_{table.name}_"), columns), "This entry no longer exists: choose another.")
    if code.startswith("22"):  # data exception: too long, out of range, bad format
        return FieldRefused(getattr(diag, "column_name", None), "A value is too long or out of range.")
    return FieldRefused(None, "This could not be saved. Please check the values and try again.")


def _column_in(rest: str, columns: list[str]) -> str | None:
    for column in sorted(columns, key=len, reverse=True):
        if rest == column or rest.startswith(column + "_"):
            return column
    return None


class Interface(SQLAInterface):
    """FAB's model interface with two changes.

    - A NOT NULL boolean is still optional in a form (an unticked checkbox sends no input).
    - Add / edit / delete commit through app.uow, and a refused row becomes a FieldRefused.
    """

    def __init__(self, obj, session=None, optional=()):
        super().__init__(obj, session)
        self.optional = frozenset(optional)  # NOT NULL columns a view fills itself when left empty

    def is_nullable(self, col_name: str) -> bool:
        if self.is_boolean(col_name) or col_name in self.optional:
            return True
        return super().is_nullable(col_name)

    def _write(self, fn) -> None:
        try:
            with unit_of_work(self.session):
                fn()
        except DBAPIError as exc:
            log.info("admin form refused by the database: %s", sqlstate(exc))
            raise refusal(exc, self.obj.__table__) from exc

    def add(self, item, commit: bool = True) -> None:
        self._write(lambda: self.session.add(item))

    def edit(self, item, commit: bool = True) -> None:
        self._write(lambda: self.session.merge(item))

    def delete(self, item, commit: bool = True) -> None:
        def work():
            self._delete_files(item)
            self.session.delete(item)

        self._write(work)

    def delete_all(self, items) -> None:
        def work():
            for item in items:
                self._delete_files(item)
                self.session.delete(item)

        self._write(work)


def show_refusal(form, exc: Exception) -> None:
    """Put a refusal at its form field (or, with no field on the form, in a message above it)."""
    field_name = getattr(exc, "field", None)
    message = getattr(exc, "message", None) or str(exc)
    field = form[field_name] if field_name and field_name in form else None
    if field is not None:
        field.errors = [*field.errors, message] if isinstance(field.errors, list) else [message]
    else:
        flash(message, "danger")


def titles(noun: str, plural: str) -> dict[str, str]:
    """Page titles in people's words ("Add client business", not FAB's "Add Tenant")."""
    return {"list_title": plural, "add_title": f"Add {noun}", "edit_title": f"Edit {noun}", "show_title": noun.capitalize()}


class ModelView(_FabModelView):
    """FAB's ModelView whose actions load rows through the view's scoped query.

    FAB's `action` / `action_post` load rows with `datamodel.get(pk)`, without the
    view's `base_filters`, so another business's (or agency's, or colleague's) id went
    through. Here every row an action touches is loaded with the same filters as
    list/show/edit; one id out of scope (or malformed) is 404 and nothing runs. Every
    admin view inherits from this class (app.views.register_views refuses others).
    """

    MAX_PAGE = 1_000_000
    MAX_PAGE_SIZE = 1_000

    def _check_list_args(self) -> None:
        """FAB parses paging with int() and orders by any name: bad values are 400, not 500."""
        import re

        for arg, value in request.args.items():
            if re.search("psize_", arg) or re.search("page_", arg):
                limit = self.MAX_PAGE_SIZE if re.search("psize_", arg) else self.MAX_PAGE
                if not value.isdigit() or int(value) > limit or (re.search("psize_", arg) and int(value) < 1):
                    abort(400, f"{arg} must be a whole number up to {limit}")
            elif arg.startswith("_od_") and value not in ("asc", "desc"):
                abort(400, f"{arg} must be asc or desc")
            elif arg.startswith("_oc_") and value not in (self.order_columns or []):
                abort(400, f"{arg}: cannot order by that column")

    def _list(self, **kwargs):
        self._check_list_args()
        return super()._list(**kwargs)

    def _scoped_items(self, raw_pks: list[str]) -> list:
        from sqlalchemy.exc import SQLAlchemyError

        if not raw_pks:
            abort(400)
        items = []
        for raw in raw_pks:
            try:
                pk = self._deserialize_pk_if_composite(raw)
                item = self.datamodel.get(pk, self._base_filters)
            except (SQLAlchemyError, ValueError, TypeError):
                from app.uow import discard

                discard(self.datamodel.session)
                abort(404)
            if item is None:
                abort(404)
            items.append(item)
        return items

    def _allowed_action(self, name: str | None):
        action = self.actions.get(name or "")
        if action is None:
            abort(404)
        if not self.appbuilder.sm.has_access(self.get_action_permission_name(name), self.class_permission_name):
            abort(403)
        return action

    @expose("/action/<string:name>/<pk>", methods=["POST"])
    def action(self, name, pk):
        """One row's action (show page); POST only, the row through the scoped query."""
        action = self._allowed_action(name)
        return action.func(self._scoped_items([pk])[0])

    @expose("/action_post", methods=["POST"])
    def action_post(self):
        """An action on the rows selected in a list; every row through the scoped query."""
        action = self._allowed_action(request.form.get("action"))
        items = self._scoped_items(request.form.getlist("rowid"))
        if not action.multiple:
            if len(items) > 1:
                abort(400)
            return action.func(items[0])  # a single-row action gets its row, as from the show page
        return action.func(items)


class FormModelView(ModelView):
    """FAB's ModelView, except that a refused add or edit re-shows the form with what was typed
    and the reason at its field (FAB redirects and loses the input)."""

    def _add(self):
        get_filter_args(self._filters, disallow_if_not_in_search=False)
        exclude_cols = self._filters.get_relation_cols()
        form = self.add_form.refresh()
        if request.method == "POST":
            self._fill_form_exclude_cols(exclude_cols, form)
            if form.validate():
                self.process_form(form, True)
                item = self.datamodel.obj()
                try:
                    form.populate_obj(item)
                    self.pre_add(item)
                    self.datamodel.add(item)
                except (ValueError, TypeError) as exc:
                    show_refusal(form, exc)
                else:
                    self.post_add(item)
                    flash(self.add_row_message, "success")
                    return None
        else:
            self.update_redirect()
        return self._get_add_widget(form=form, exclude_cols=exclude_cols)

    def _edit(self, pk):
        pages, page_sizes, orders = get_page_args(), get_page_size_args(), get_order_args()
        get_filter_args(self._filters, disallow_if_not_in_search=False)
        exclude_cols = self._filters.get_relation_cols()
        item = self.datamodel.get(pk, self._base_filters)
        if not item:
            abort(404)
        pk = self.datamodel.get_pk_value(item)
        if request.method == "POST":
            form = self.edit_form.refresh(request.form)
            self._fill_form_exclude_cols(exclude_cols, form)
            form._id = pk
            if form.validate():
                self.process_form(form, False)
                try:
                    form.populate_obj(item)
                    self.pre_update(item)
                    self.datamodel.edit(item)
                except (ValueError, TypeError) as exc:
                    show_refusal(form, exc)
                    item = self.datamodel.get(pk, self._base_filters) or item
                else:
                    self.post_update(item)
                    flash(self.edit_row_message, "success")
                    return None
        else:
            form = self.edit_form.refresh(obj=item)
            self.prefill_form(form, pk)
            self.update_redirect()
        widgets = self._get_edit_widget(form=form, exclude_cols=exclude_cols)
        return self._get_related_views_widgets(item, filters={}, orders=orders, pages=pages, page_sizes=page_sizes, widgets=widgets)


def time_zone_field(label: str = "Time zone", required: bool = True, description: str | None = None):
    """A searchable select of IANA zone names (FAB's local select2): the business's zone and the common
    ones first, preset to the business's zone. The choice is checked by the catalogue rule, so a name
    posted by hand gets the same message as in the API ("unknown time zone ..., did you mean ...")."""
    from flask_appbuilder.fieldwidgets import Select2Widget
    from wtforms import SelectField
    from wtforms.validators import DataRequired, Optional

    from app.services import catalogue_rules as rules

    def choices():
        zone = g.get("tenant").timezone if g.get("tenant") is not None else None
        groups = rules.zone_choices(zone)
        if not required:
            groups = {"": [("", "—")], **groups}
        return groups

    def check(form, field):
        from wtforms import ValidationError

        if not field.data:
            return
        try:
            rules.check_timezone(field.data, field.name)
        except rules.RuleError as exc:
            raise ValidationError(exc.message)

    return SelectField(
        label, choices=choices, validate_choice=False, widget=Select2Widget(),
        default=(lambda: g.get("tenant").timezone if g.get("tenant") is not None else None) if required else None,
        validators=[DataRequired() if required else Optional(), check],
        description=description or "Type to search, e.g. Vienna or New York.",
    )
